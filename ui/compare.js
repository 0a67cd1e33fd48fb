// Compare page (/compare/{a}/{b}): two traces side by side and their
// structural diff (diff.js): one row per (service, operation) path, coloured
// by whether it is only in A, only in B, or in both with other counts.
import { esc, getJSON, navigate, chip, fmtTime, errorBox } from './dom.js';
import { formatDuration } from './axis.js';
import { colors } from './colors.js';
import { summarizeTrace } from './model.js';
import { diffTraces, diffSummary } from './diff.js';

const STATE_LABEL = { added: 'only in B', removed: 'only in A', changed: 'count differs', same: 'same' };
const INDENT = 14;

function formHtml(a, b) {
  return `<form class="panel cmp-form" id="cmp-form" autocomplete="off">
    <b>Compare</b>
    <label>A <input name="a" value="${esc(a)}" placeholder="Trace ID" spellcheck="false" aria-label="Trace A"></label>
    <label>B <input name="b" value="${esc(b)}" placeholder="Trace ID" spellcheck="false" aria-label="Trace B"></label>
    <button class="primary" type="submit">Compare</button></form>`;
}

function sideHtml(tag, s) {
  return `<div class="panel cmp-side" data-side="${tag}">
    <h3><span class="tag">${tag}</span><a href="/trace/${encodeURIComponent(s.traceID)}" data-link>${esc(s.rootService)}: ${esc(s.rootOperation)}</a></h3>
    <div><code class="tid">${esc(s.traceID)}</code></div>
    <div>${esc(formatDuration(s.duration))} · ${s.spanCount} span${s.spanCount === 1 ? '' : 's'}${s.errorCount ? ` · <span class="errtext">${s.errorCount} error${s.errorCount === 1 ? '' : 's'}</span>` : ''} · ${esc(fmtTime(s.start))}</div>
    <div class="chips">${s.services.map((x) => chip(x.name, colors.get(x.name), x.count)).join('')}</div></div>`;
}

function rowHtml(r) {
  const delta = r.b - r.a;
  return `<tr class="${r.state}" data-state="${r.state}" data-service="${esc(r.service)}" data-operation="${esc(r.operation)}">
    <td><span class="node" style="padding-left:${Math.min(r.depth, 24) * INDENT}px">${chip(r.service, colors.get(r.service))}<span class="op">${esc(r.operation)}</span></span></td>
    <td class="num">${r.a}</td><td class="num">${r.b}</td>
    <td class="num">${delta > 0 ? '+' : ''}${delta || ''}</td>
    <td class="num">${r.a ? esc(formatDuration(r.durA)) : ''}</td><td class="num">${r.b ? esc(formatDuration(r.durB)) : ''}</td>
    <td><span class="dstate ${r.state}">${STATE_LABEL[r.state]}</span></td></tr>`;
}

export function renderCompare(root, a, b) {
  const ctrl = new AbortController();
  root.innerHTML = `<div class="compare-page">${formHtml(a, b)}<div id="cmp-body">${a && b
    ? '<div class="loading">Loading traces…</div>'
    : '<div class="empty"><h3>Compare two traces</h3><p>Enter two trace IDs, or select two traces in the search results and press <b>Compare</b>.</p></div>'}</div></div>`;
  root.querySelector('#cmp-form').addEventListener('submit', (e) => {
    e.preventDefault();
    const x = e.target.a.value.trim(), y = e.target.b.value.trim();
    if (x && y) navigate(`/compare/${encodeURIComponent(x)}/${encodeURIComponent(y)}`);
  });
  if (!a || !b) return () => ctrl.abort();
  const load = (id) => getJSON('/api/traces/' + encodeURIComponent(id), ctrl.signal).then((r) => {
    const t = r && r.data && r.data[0];
    if (!t || !(t.spans || []).length) throw Object.assign(new Error(`trace ${id} not found`), { status: 404 });
    return t;
  }).catch((e) => { e.message = e.status === 404 ? `Trace ${id} not found.` : `Could not load trace ${id}: ${e.message}`; throw e; });
  const body = root.querySelector('#cmp-body');
  Promise.all([load(a), load(b)]).then(([ta, tb]) => {
    const sa = summarizeTrace(ta), sb = summarizeTrace(tb);
    colors.assignAll([...sa.services, ...sb.services].map((x) => x.name));
    const rows = diffTraces(ta, tb);
    const sum = diffSummary(rows);
    body.innerHTML = `<div class="cmp-sides">${sideHtml('A', sa)}${sideHtml('B', sb)}</div>
      <div class="panel cmp-legend" id="cmp-legend">${['removed', 'added', 'changed', 'same'].map((k) =>
        `<span data-count="${k}"><i class="${k}"></i>${STATE_LABEL[k]}: <b>${sum[k]}</b></span>`).join('')}</div>
      <div class="panel"><table class="diff-table" id="diff-table"><thead><tr><th>Service &amp; operation (path from the root)</th>
        <th class="num">A</th><th class="num">B</th><th class="num">Δ</th><th class="num">A total</th><th class="num">B total</th><th>State</th></tr></thead>
        <tbody>${rows.map(rowHtml).join('')}</tbody></table></div>`;
  }).catch((e) => {
    if (e.name !== 'AbortError') body.innerHTML = errorBox(e.message);
  });
  return () => ctrl.abort();
}
