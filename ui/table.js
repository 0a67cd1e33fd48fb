// Span table view of a trace: one row per span, sortable by each column,
// filterable by text; clicking a row opens the span panel. The row model,
// sorting and filtering are pure (unit-tested under node); SpanTable is the
// DOM part.
import { esc } from './dom.js';
import { formatDuration } from './axis.js';
import { isErrorSpan, tagValue } from './model.js';

export const COLUMNS = [
  { key: 'service', label: 'Service' },
  { key: 'operation', label: 'Operation' },
  { key: 'duration', label: 'Duration', num: true },
  { key: 'self', label: 'Self time', num: true },
  { key: 'offset', label: 'Start', num: true },
  { key: 'status', label: 'Status' },
  { key: 'kind', label: 'Kind' },
];

/** One row per span. `svc[i]` is span i's service, `self[i]` its self time. */
export function spanRows(spans, svc, self, traceStart) {
  return spans.map((s, i) => ({
    i,
    service: svc[i],
    operation: String(s.operationName),
    duration: s.duration,
    self: self[i],
    offset: s.startTime - traceStart,
    status: isErrorSpan(s) ? 'ERROR' : String(tagValue(s.tags, 'otel.status_code') || 'UNSET').toUpperCase(),
    kind: String(tagValue(s.tags, 'span.kind') || 'internal'),
  }));
}

/** Sorted copy; numbers numerically, text case-insensitively; ties by start. */
export function sortRows(rows, key, dir = 'asc') {
  const col = COLUMNS.find((c) => c.key === key);
  if (!col) return rows.slice();
  const sign = dir === 'desc' ? -1 : 1;
  const cmp = col.num
    ? (a, b) => a[key] - b[key]
    : (a, b) => a[key].localeCompare(b[key], undefined, { sensitivity: 'base' });
  return rows.slice().sort((a, b) => sign * cmp(a, b) || a.offset - b.offset || a.i - b.i);
}

/** Rows whose service, operation, status or kind contains `text` (any case). */
export function filterRows(rows, text) {
  const q = String(text || '').trim().toLowerCase();
  if (!q) return rows;
  return rows.filter((r) => [r.service, r.operation, r.status, r.kind].some((v) => v.toLowerCase().includes(q)));
}

/** Rows rendered at most; a filter narrows a larger trace. */
export const MAX_TABLE_ROWS = 2000;

export class SpanTable {
  /** @param onSelect(i) opens span i in the panel */
  constructor(el, rows, colorOf, onSelect) {
    this.el = el;
    this.rows = rows;
    this.colorOf = colorOf;
    this.sort = { key: 'offset', dir: 'asc' };
    this.filter = '';
    this.selected = -1;
    el.innerHTML = `<div class="st-bar"><input id="st-filter" type="search" placeholder="Filter spans…" aria-label="Filter spans" spellcheck="false"><span class="st-count" id="st-count"></span></div>
      <div class="st-scroll"><table class="span-table" id="span-table"><thead><tr>${COLUMNS.map((c) =>
        `<th data-sort="${c.key}"${c.num ? ' class="num"' : ''}><button>${c.label}</button></th>`).join('')}</tr></thead><tbody></tbody></table></div>`;
    this.body = el.querySelector('tbody');
    let timer = 0;
    el.querySelector('#st-filter').addEventListener('input', (e) => {
      clearTimeout(timer);
      timer = setTimeout(() => { this.filter = e.target.value; this.render(); }, 120);
    });
    el.querySelector('thead').addEventListener('click', (e) => {
      const th = e.target.closest('th[data-sort]');
      if (!th) return;
      const key = th.dataset.sort;
      const col = COLUMNS.find((c) => c.key === key);
      // First click: longest/largest first for numbers, A→Z for text.
      this.sort = this.sort.key === key
        ? { key, dir: this.sort.dir === 'asc' ? 'desc' : 'asc' }
        : { key, dir: col.num ? 'desc' : 'asc' };
      this.render();
    });
    this.body.addEventListener('click', (e) => {
      const tr = e.target.closest('tr[data-i]');
      if (tr) onSelect(Number(tr.dataset.i));
    });
    this.render();
  }

  setSelected(i) {
    this.selected = i;
    for (const tr of this.body.querySelectorAll('tr.selected')) tr.classList.remove('selected');
    const tr = this.body.querySelector(`tr[data-i="${i}"]`);
    if (tr) tr.classList.add('selected');
  }

  render() {
    const rows = sortRows(filterRows(this.rows, this.filter), this.sort.key, this.sort.dir);
    for (const th of this.el.querySelectorAll('th[data-sort]')) {
      th.setAttribute('aria-sort', th.dataset.sort === this.sort.key ? (this.sort.dir === 'asc' ? 'ascending' : 'descending') : 'none');
    }
    const shown = rows.slice(0, MAX_TABLE_ROWS);
    this.el.querySelector('#st-count').textContent = rows.length > shown.length
      ? `${shown.length} of ${rows.length} spans shown (filter to narrow)`
      : `${rows.length} span${rows.length === 1 ? '' : 's'}`;
    this.body.innerHTML = shown.map((r) => `<tr data-i="${r.i}" class="${r.status === 'ERROR' ? 'error' : ''}${r.i === this.selected ? ' selected' : ''}">
      <td><span class="chip"><i style="background:${esc(this.colorOf(r.service))}"></i>${esc(r.service)}</span></td>
      <td class="op">${esc(r.operation)}</td>
      <td class="num" data-us="${r.duration}">${esc(formatDuration(r.duration))}</td>
      <td class="num">${esc(formatDuration(r.self))}</td>
      <td class="num">+${esc(formatDuration(r.offset))}</td>
      <td><span class="status${r.status === 'ERROR' ? ' err' : r.status === 'OK' ? ' ok' : ''}">${esc(r.status)}</span></td>
      <td>${esc(r.kind)}</td></tr>`).join('');
  }
}
