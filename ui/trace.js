// Trace page: header, Gantt timeline (virtualized rows, collapsible tree,
// shared time axis, critical-path overlay) or span table, side minimap and
// span detail panel.
import { esc, getJSON, chip, fmtTime, errorBox } from './dom.js';
import { buildTree, visibleRows, toggle, expandTo, collapseBelow } from './tree.js';
import { virtualWindow, scrollToRow } from './virtual.js';
import { ticksBetween, formatDuration } from './axis.js';
import { colors } from './colors.js';
import { isErrorSpan, skewShift, serviceOf, traceBounds, summarizeTrace } from './model.js';
import { spanPanelHtml, wirePanel } from './spanpanel.js';
import { Minimap } from './minimap.js';
import { criticalPath, selfTimes } from './critical.js';
import { SpanTable, spanRows } from './table.js';
import { metricsLinkHtml, fetchLinks, linksHtml, msRange, spanKindTag } from './links.js';

const ROW_H = 26;
const INDENT = 12;
const MAX_INDENT_LEVELS = 24;

export function renderTrace(root, id) {
  const ctrl = new AbortController();
  root.innerHTML = `<div class="loading">Loading trace <code>${esc(id)}</code>…</div>`;
  let view = null;
  const t0 = performance.now();
  getJSON('/api/traces/' + encodeURIComponent(id), ctrl.signal).then((res) => {
    const trace = res && res.data && res.data[0];
    if (!trace || !(trace.spans || []).length) throw new Error('trace not found');
    const t1 = performance.now();
    view = new TraceView(root, trace);
    // Timings read by the browser test: fetch+parse, then tree+first paint.
    requestAnimationFrame(() => {
      const page = root.querySelector('.trace-page');
      page.dataset.fetchMs = String(Math.round(t1 - t0));
      page.dataset.buildMs = String(Math.round(performance.now() - t1));
      page.dataset.renderMs = String(Math.round(performance.now() - t0));
    });
  }).catch((e) => {
    if (e.name === 'AbortError') return;
    root.innerHTML = errorBox(e.status === 404 ? `Trace ${id} not found.` : `Could not load trace ${id}: ${e.message}`);
  });
  return () => { ctrl.abort(); if (view) view.destroy(); };
}

class TraceView {
  constructor(root, trace) {
    this.trace = trace;
    this.tree = buildTree(trace.spans);
    this.bounds = traceBounds(trace.spans);
    this.collapsed = new Set();
    this.selected = -1;
    const n = trace.spans.length;
    this.svc = new Array(n);
    this.err = new Uint8Array(n);
    this.byId = new Map();
    const svcs = new Set();
    for (let i = 0; i < n; i++) {
      const s = trace.spans[i];
      this.svc[i] = serviceOf(trace, s);
      svcs.add(this.svc[i]);
      this.err[i] = isErrorSpan(s) ? 1 : 0;
      if (!this.byId.has(s.spanID)) this.byId.set(s.spanID, i);
    }
    colors.assignAll([...svcs]);
    this.rows = visibleRows(this.tree, this.collapsed);
    // On by default, as in Jaeger: what to optimise is the first question.
    this.cp = criticalPath(this.tree);
    this.showCp = true;
    this.view = 'timeline';
    this.table = null;
    this.mount(root, summarizeTrace(trace));
  }

  mount(root, sum) {
    let maxDepth = 0;
    for (let i = 0; i < this.tree.depth.length; i++) if (this.tree.depth[i] > maxDepth) maxDepth = this.tree.depth[i];
    root.innerHTML = `<div class="trace-page">
      <div class="panel trace-header">
        <div class="th-title"><h1><span class="svc-dot" style="background:${esc(colors.get(sum.rootService))}"></span>${esc(sum.rootService)}: <span class="op">${esc(sum.rootOperation)}</span></h1>
          <code class="tid">${esc(this.trace.traceID)}</code>
          <span class="th-links" id="th-links">${metricsLinkHtml(sum.rootService, sum.rootOperation, sum.rootKind, 'Metrics')}<span class="corr-links" id="trace-links"></span></span></div>
        <div class="th-stats">
          <div><span>Start</span><b>${esc(fmtTime(this.bounds.start))}</b></div>
          <div><span>Duration</span><b>${esc(formatDuration(this.bounds.duration))}</b></div>
          <div><span>Services</span><b>${sum.services.length}</b></div>
          <div><span>Depth</span><b>${maxDepth + 1}</b></div>
          <div><span>Spans</span><b id="span-count">${sum.spanCount}</b></div>
          <div><span>Errors</span><b class="${sum.errorCount ? 'errtext' : ''}">${sum.errorCount}</b></div>
        </div>
        <div class="th-row"><div class="chips">${sum.services.map((s) => chip(s.name, colors.get(s.name), s.count)).join('')}</div>
          <div class="th-actions"><span class="find-count tl-only" id="find-count"></span><input class="tl-only" id="find" type="search" placeholder="Find spans…" aria-label="Find spans" spellcheck="false"><button data-act="unzoom" hidden>Reset zoom</button><button class="tl-only toggle" data-act="cp" aria-pressed="true" title="Highlight the spans that decide the trace's end-to-end latency">Critical path</button><button class="tl-only" data-act="expand">Expand all</button><button class="tl-only" data-act="collapse">Collapse to level 1</button>
            <span class="view-switch" role="group" aria-label="View"><button data-view="timeline" aria-pressed="true">Timeline</button><button data-view="table" aria-pressed="false">Table</button></span></div></div>
      </div>
      <div class="trace-body">
        <div class="panel timeline">
          <div class="tl-header"><div class="tl-name-h">Service &amp; operation<span class="col-resize" id="col-resize" title="Drag to resize"></span></div><div class="tl-axis" id="tl-axis" title="Drag to zoom into a time range; double-click to reset"></div></div>
          <div class="tl-main">
            <div class="tl-scroll" id="tl-scroll" tabindex="0">
              <div class="tl-spacer" id="tl-spacer"><div class="tl-grid" id="tl-grid"></div><div class="tl-rows" id="tl-rows"></div></div>
            </div>
            <div class="minimap" id="minimap" title="Trace overview: click or drag to scroll"></div>
          </div>
        </div>
        <div class="panel span-table-view" id="span-table-view" hidden></div>
        <aside class="panel span-detail" id="span-detail"><div class="empty small"><p>Select a span to see its attributes, events and references.</p></div></aside>
      </div></div>`;
    this.scroll = root.querySelector('#tl-scroll');
    this.spacer = root.querySelector('#tl-spacer');
    this.rowsEl = root.querySelector('#tl-rows');
    this.panel = root.querySelector('#span-detail');
    this.page = root.querySelector('.trace-page');
    this.zoom = [0, 1];
    this.axisEl = root.querySelector('#tl-axis');
    this.gridEl = root.querySelector('#tl-grid');
    this.unzoomBtn = root.querySelector('[data-act="unzoom"]');
    this.drawAxis();
    this.wireZoom(this.axisEl);
    this.minimap = new Minimap(root.querySelector('#minimap'), this, (top) => { this.scroll.scrollTop = top; });

    let pending = false;
    this.onScroll = () => {
      if (pending) return;
      pending = true;
      requestAnimationFrame(() => { pending = false; this.renderRows(); });
    };
    this.scroll.addEventListener('scroll', this.onScroll, { passive: true });
    this.onResize = () => { this.renderRows(); this.minimap.draw(); };
    window.addEventListener('resize', this.onResize);
    this.rowsEl.addEventListener('click', (e) => this.onRowClick(e));
    this.scroll.addEventListener('keydown', (e) => this.onKey(e));
    root.querySelector('.th-actions').addEventListener('click', (e) => {
      if (e.target.dataset.view) { this.setView(e.target.dataset.view); return; }
      const act = e.target.dataset.act;
      if (act === 'unzoom') { this.setZoom(0, 1); return; }
      if (act === 'cp') {
        this.showCp = !this.showCp;
        e.target.setAttribute('aria-pressed', String(this.showCp));
        this.renderRows();
        return;
      }
      if (act === 'expand') this.collapsed.clear();
      else if (act === 'collapse') collapseBelow(this.tree, this.collapsed, 1);
      else return;
      this.refreshRows();
    });
    this.wireFind(root.querySelector('#find'), root.querySelector('#find-count'));
    this.wireResize(root.querySelector('#col-resize'), root.querySelector('.timeline'));
    wirePanel(this.panel, { onClose: () => this.select(-1), onGoto: (i) => this.select(i, true) });
    this.renderRows();
    this.minimap.draw();
    this.linksCtrl = new AbortController();
    this.spanLinks = new Map();
    const tl = root.querySelector('#trace-links');
    fetchLinks('trace', { traceId: this.trace.traceID, service: sum.rootService, operation: sum.rootOperation, ...msRange(this.bounds.start, this.bounds.duration) }, this.linksCtrl.signal)
      .then((links) => { tl.innerHTML = linksHtml(links); })
      .catch(() => { /* links are an extra: the trace stays usable without them */ });
  }

  /** Span-scoped correlation links, fetched once per span and filled in when they arrive. */
  fillSpanLinks(i) {
    const s = this.tree.spans[i];
    let p = this.spanLinks.get(i);
    if (!p) {
      p = fetchLinks('span', { traceId: s.traceID || this.trace.traceID, spanId: s.spanID, service: this.svc[i], operation: s.operationName, ...msRange(s.startTime, s.duration) }, this.linksCtrl.signal);
      this.spanLinks.set(i, p);
    }
    p.then((links) => {
      const el = this.selected === i && this.panel.querySelector('[data-corr]');
      if (el) el.innerHTML = linksHtml(links);
    }).catch(() => { this.spanLinks.delete(i); });
  }

  /** Timeline or span table; the span panel and selection are shared. */
  setView(v) {
    this.view = v === 'table' ? 'table' : 'timeline';
    this.page.dataset.view = this.view;
    for (const b of this.page.querySelectorAll('[data-view]')) b.setAttribute('aria-pressed', String(b.dataset.view === this.view));
    const tableEl = this.page.querySelector('#span-table-view');
    tableEl.hidden = this.view !== 'table';
    this.page.querySelector('.timeline').hidden = this.view === 'table';
    if (this.view === 'table' && !this.table) {
      const rows = spanRows(this.tree.spans, this.svc, selfTimes(this.tree), this.bounds.start);
      this.table = new SpanTable(tableEl, rows, (s) => colors.get(s), (i) => this.select(i));
      this.table.setSelected(this.selected);
    }
    if (this.view === 'timeline') { this.renderRows(); this.minimap.draw(); }
  }

  destroy() {
    window.removeEventListener('resize', this.onResize);
    this.linksCtrl.abort();
  }

  /** Highlights spans whose service, operation, id or a tag value contains the text; Enter walks them. */
  wireFind(input, count) {
    this.matches = null;
    let timer = 0, cursor = -1;
    const run = () => {
      const q = input.value.trim().toLowerCase();
      cursor = -1;
      if (!q) { this.matches = null; count.textContent = ''; this.renderRows(); return; }
      const m = new Set();
      const spans = this.tree.spans;
      for (let i = 0; i < spans.length; i++) {
        const s = spans[i];
        if (this.svc[i].toLowerCase().includes(q) || String(s.operationName).toLowerCase().includes(q) || s.spanID === q
          || (s.tags || []).some((t) => String(t.value).toLowerCase().includes(q) || t.key.toLowerCase() === q)) m.add(i);
      }
      this.matches = m;
      count.textContent = `${m.size} match${m.size === 1 ? '' : 'es'}`;
      this.renderRows();
    };
    input.addEventListener('input', () => { clearTimeout(timer); timer = setTimeout(run, 150); });
    input.addEventListener('keydown', (e) => {
      if (e.key !== 'Enter' || !this.matches || !this.matches.size) return;
      e.preventDefault();
      // Next match in tree order after the current one.
      const inOrder = [...this.matches].sort((a, b) => this.tree.pos[a] - this.tree.pos[b]);
      cursor = (cursor + (e.shiftKey ? -1 : 1) + inOrder.length) % inOrder.length;
      this.select(inOrder[cursor], true);
    });
  }

  /** Drag the name column's right edge to widen it (deep trees, long names). */
  wireResize(handle, timeline) {
    handle.addEventListener('pointerdown', (e) => {
      e.preventDefault();
      handle.setPointerCapture(e.pointerId);
      const box = timeline.getBoundingClientRect();
      const move = (ev) => {
        const frac = Math.min(0.7, Math.max(0.15, (ev.clientX - box.left) / (box.width - 86)));
        timeline.style.setProperty('--name-w', (frac * 100).toFixed(2) + '%');
      };
      const up = () => { handle.removeEventListener('pointermove', move); handle.removeEventListener('pointerup', up); };
      handle.addEventListener('pointermove', move);
      handle.addEventListener('pointerup', up);
    });
  }

  /** Shows the time window [z0, z1] (fractions of the trace) across the bars. */
  setZoom(z0, z1) {
    this.zoom = [Math.max(0, z0), Math.min(1, z1)];
    this.unzoomBtn.hidden = this.zoom[0] === 0 && this.zoom[1] === 1;
    this.drawAxis();
    this.renderRows();
  }

  wireZoom(axis) {
    let from = null;
    const sel = document.createElement('div');
    sel.className = 'zoom-sel';
    const frac = (e) => {
      const r = axis.getBoundingClientRect();
      return Math.min(1, Math.max(0, (e.clientX - r.left) / r.width));
    };
    axis.addEventListener('pointerdown', (e) => {
      from = frac(e);
      axis.setPointerCapture(e.pointerId);
      sel.style.left = from * 100 + '%';
      sel.style.width = '0';
      axis.appendChild(sel);
    });
    axis.addEventListener('pointermove', (e) => {
      if (from === null) return;
      const to = frac(e);
      sel.style.left = Math.min(from, to) * 100 + '%';
      sel.style.width = Math.abs(to - from) * 100 + '%';
    });
    axis.addEventListener('pointerup', (e) => {
      if (from === null) return;
      const to = frac(e);
      sel.remove();
      const [a, b] = [Math.min(from, to), Math.max(from, to)];
      from = null;
      if (b - a < 0.005) return;
      const [z0, z1] = this.zoom;
      this.setZoom(z0 + a * (z1 - z0), z0 + b * (z1 - z0));
    });
    axis.addEventListener('dblclick', () => this.setZoom(0, 1));
  }

  drawAxis() {
    const d = this.bounds.duration;
    const t = ticksBetween(this.zoom[0] * d, this.zoom[1] * d, 5);
    this.axisEl.innerHTML = t.map((x) => `<span class="tick${x.frac > 0.97 ? ' last' : ''}${x.frac < 0.03 ? ' first' : ''}" style="left:${(x.frac * 100).toFixed(3)}%">${esc(x.label)}</span>`).join('');
    this.gridEl.innerHTML = t.map((x) => `<i style="left:${(x.frac * 100).toFixed(3)}%"></i>`).join('');
  }

  refreshRows() {
    this.rows = visibleRows(this.tree, this.collapsed);
    this.page.querySelector('#tl-rows').dataset.total = String(this.rows.length);
    this.renderRows();
    this.minimap.draw();
  }

  renderRows() {
    const w = virtualWindow({ scrollTop: this.scroll.scrollTop, viewportHeight: this.scroll.clientHeight, rowHeight: ROW_H, rowCount: this.rows.length });
    this.spacer.style.height = w.totalHeight + 'px';
    this.rowsEl.style.transform = `translateY(${w.offsetTop}px)`;
    this.rowsEl.dataset.total = String(this.rows.length);
    let html = '';
    for (let k = w.start; k < w.end; k++) html += this.rowHtml(k, this.rows[k]);
    this.rowsEl.innerHTML = html;
    this.minimap.setWindow(this.scroll.scrollTop, this.scroll.clientHeight, w.totalHeight);
  }

  rowHtml(k, i) {
    const s = this.tree.spans[i];
    const svc = this.svc[i];
    const color = colors.get(svc);
    const d = this.tree.depth[i];
    const hasKids = this.tree.children[i].length > 0;
    const folded = this.collapsed.has(i);
    const dur = this.bounds.duration || 1;
    const span = (this.zoom[1] - this.zoom[0]) * dur || 1;
    const left = ((s.startTime - this.bounds.start - this.zoom[0] * dur) / span) * 100;
    const width = Math.max((s.duration / span) * 100, 0);
    const shift = skewShift(s);
    const label = formatDuration(s.duration);
    const skew = shift === null ? '' : `<span class="skew-badge" title="${esc((s.warnings || []).join('\n'))}">skew ${shift > 0 ? '+' : ''}${esc(formatDuration(shift))}</span>`;
    // Label after the bar, before it when the bar ends near the right edge,
    // inside it when the bar spans nearly the whole trace.
    let labelPos, labelCls = '';
    if (left + width <= 0) labelPos = 'left:0;padding-left:2px', labelCls = ' off';
    else if (left >= 100) labelPos = 'right:0;padding-right:2px', labelCls = ' off';
    else {
      // Place by the visible part of the bar (zoom may clip it).
      const vl = Math.max(left, 0), vr = Math.min(left + width, 100);
      if (vr < 85) labelPos = `left:${vr.toFixed(3)}%;padding-left:6px`;
      else if (vl > 15) labelPos = `right:${(100 - vl).toFixed(3)}%;padding-right:6px`;
      else { labelPos = `right:${(100 - vr).toFixed(3)}%;padding-right:6px`; labelCls = ' inside'; }
    }
    const indent = Math.min(d, MAX_INDENT_LEVELS) * INDENT;
    const match = this.matches && this.matches.has(i) ? ' match' : '';
    const cpSegs = this.showCp && this.cp.bySpan.get(i);
    let cp = '';
    if (cpSegs) {
      for (const [a, b] of cpSegs) {
        const l = ((a - this.bounds.start - this.zoom[0] * dur) / span) * 100;
        cp += `<div class="cp-seg" style="left:${l.toFixed(3)}%;width:${(((b - a) / span) * 100).toFixed(3)}%"></div>`;
      }
    }
    return `<div class="row${this.err[i] ? ' error' : ''}${i === this.selected ? ' selected' : ''}${match}${cp ? ' on-cp' : ''}" data-i="${i}" data-k="${k}" style="height:${ROW_H}px">
      <div class="name" style="--svc:${esc(color)}"><span class="indent" style="width:${indent}px">${d > MAX_INDENT_LEVELS ? `<em>${d}</em>` : ''}</span>${hasKids
        ? `<button class="tg" aria-label="${folded ? 'Expand' : 'Collapse'}" aria-expanded="${!folded}">${folded ? '▸' : '▾'}</button>`
        : '<span class="tg-leaf"></span>'}<span class="svc">${esc(svc)}</span><span class="op">${esc(s.operationName)}</span>${folded ? `<span class="folded">+${this.tree.size[i] - 1}</span>` : ''}${this.err[i] ? '<span class="err-icon" title="Error">!</span>' : ''}</div>
      <div class="bars"><div class="bar" style="left:${left.toFixed(3)}%;width:${width.toFixed(3)}%;background:${esc(color)}"></div>${cp}<span class="bar-label${labelCls}" style="${labelPos}">${left >= 100 ? esc(label) + ' ›' : left + width <= 0 ? '‹ ' + esc(label) : esc(label)}${skew}</span></div>
    </div>`;
  }

  onRowClick(e) {
    const row = e.target.closest('.row');
    if (!row) return;
    const i = Number(row.dataset.i);
    if (e.target.closest('.tg')) {
      toggle(this.tree, this.collapsed, i);
      this.refreshRows();
      return;
    }
    this.select(i === this.selected ? -1 : i);
  }

  onKey(e) {
    const k = this.rows.indexOf(this.selected);
    let next = -1;
    if (e.key === 'ArrowDown') next = Math.min(this.rows.length - 1, k + 1);
    else if (e.key === 'ArrowUp') next = Math.max(0, k - 1);
    else if ((e.key === 'ArrowLeft' || e.key === 'ArrowRight') && this.selected >= 0) {
      const fold = e.key === 'ArrowLeft';
      if (fold !== this.collapsed.has(this.selected)) { toggle(this.tree, this.collapsed, this.selected); this.refreshRows(); }
      e.preventDefault();
      return;
    } else return;
    e.preventDefault();
    this.select(this.rows[next], true);
  }

  select(i, reveal = false) {
    this.selected = i;
    if (i < 0) {
      this.panel.innerHTML = '<div class="empty small"><p>Select a span to see its attributes, events and references.</p></div>';
    } else {
      if (reveal) {
        const before = this.rows.length;
        expandTo(this.tree, this.collapsed, i);
        this.rows = visibleRows(this.tree, this.collapsed);
        if (before !== this.rows.length) this.minimap.draw();
        const k = this.rows.indexOf(i);
        this.scroll.scrollTop = scrollToRow({ row: k, scrollTop: this.scroll.scrollTop, viewportHeight: this.scroll.clientHeight, rowHeight: ROW_H });
      }
      this.panel.innerHTML = spanPanelHtml({
        trace: this.trace, tree: this.tree, traceStart: this.bounds.start,
        colorOf: (s) => colors.get(s), serviceOf: (s) => serviceOf(this.trace, s), indexOf: (id) => this.byId.get(id),
      }, i);
      this.panel.scrollTop = 0;
      this.fillSpanLinks(i);
    }
    if (this.table) this.table.setSelected(i);
    if (this.view === 'timeline') this.renderRows();
  }
}
