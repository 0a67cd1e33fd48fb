// Search page: query form, duration-over-time scatter plot, result list.
import { esc, navigate, getJSON, chip, fmtTime, fmtAgo, errorBox } from './dom.js';
import { buildSearchQuery, summarizeTrace } from './model.js';
import { formatDuration, ticks } from './axis.js';
import { colors } from './colors.js';

const FIELDS = ['service', 'operation', 'tags', 'lookback', 'start', 'end', 'minDuration', 'maxDuration', 'limit', 'sort'];
const LOOKBACK_LABELS = { '15m': 'Last 15 minutes', '1h': 'Last hour', '6h': 'Last 6 hours', '24h': 'Last 24 hours', '7d': 'Last 7 days', custom: 'Custom range' };

function formHtml(p) {
  const v = (k, d = '') => esc(p.get(k) ?? d);
  const lb = p.get('lookback') || '1h';
  return `
  <form class="panel search-form" id="search-form" autocomplete="off">
    <h2>Search</h2>
    <label>Service<select name="service" id="f-service"><option value="">All services</option></select></label>
    <label>Operation<select name="operation" id="f-operation"><option value="">All operations</option></select></label>
    <label>Tags<textarea name="tags" rows="2" placeholder="http.status_code=500 error=true" spellcheck="false">${v('tags')}</textarea></label>
    <label>Lookback<select name="lookback" id="f-lookback">${Object.entries(LOOKBACK_LABELS)
      .map(([k, t]) => `<option value="${k}"${k === lb ? ' selected' : ''}>${t}</option>`).join('')}</select></label>
    <div class="custom-range"${lb === 'custom' ? '' : ' hidden'}>
      <label>From<input type="datetime-local" name="start" value="${v('start')}"></label>
      <label>To<input type="datetime-local" name="end" value="${v('end')}"></label>
    </div>
    <div class="row2">
      <label>Min duration<input name="minDuration" placeholder="e.g. 100ms" value="${v('minDuration')}"></label>
      <label>Max duration<input name="maxDuration" placeholder="e.g. 2s" value="${v('maxDuration')}"></label>
    </div>
    <label>Limit results<input type="number" name="limit" min="1" max="1500" value="${v('limit', '20')}"></label>
    <button class="primary" type="submit">Find traces</button>
  </form>`;
}

export function renderSearch(root, params) {
  const ctrl = new AbortController();
  root.innerHTML = `<div class="search-layout">${formHtml(params)}
    <section class="results" id="results"><div class="empty">
      <h3>Find traces</h3><p>Choose a service (or all services) and a time range, then <b>Find traces</b>.</p></div>
    </section></div>`;
  const form = root.querySelector('#search-form');
  const svcSel = form.querySelector('#f-service');
  const opSel = form.querySelector('#f-operation');

  const loadOps = async (svc, want) => {
    opSel.innerHTML = '<option value="">All operations</option>';
    if (!svc) return;
    try {
      const ops = ((await getJSON(`/api/services/${encodeURIComponent(svc)}/operations`, ctrl.signal)).data || [])
        .map((o) => (typeof o === 'string' ? o : o && o.name)).filter(Boolean);
      opSel.innerHTML += ops.slice().sort().map((o) => `<option value="${esc(o)}"${o === want ? ' selected' : ''}>${esc(o)}</option>`).join('');
    } catch { /* the form still works without the list */ }
  };
  getJSON('/api/services', ctrl.signal).then((r) => {
    const svcs = (r.data || []).slice().sort();
    colors.assignAll(svcs);
    const want = params.get('service') || '';
    svcSel.innerHTML += svcs.map((s) => `<option value="${esc(s)}"${s === want ? ' selected' : ''}>${esc(s)}</option>`).join('');
    loadOps(svcSel.value, params.get('operation'));
  }).catch((e) => {
    if (e.name !== 'AbortError') root.querySelector('#results').innerHTML = errorBox('Could not load services: ' + e.message);
  });
  svcSel.addEventListener('change', () => loadOps(svcSel.value));
  form.querySelector('#f-lookback').addEventListener('change', (e) => {
    form.querySelector('.custom-range').hidden = e.target.value !== 'custom';
  });
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const q = new URLSearchParams();
    for (const [k, val] of new FormData(form)) if (val !== '' && FIELDS.includes(k)) q.set(k, val);
    if (params.get('sort')) q.set('sort', params.get('sort'));
    q.set('run', '1');
    navigate('/search?' + q);
  });

  if (params.get('run')) runSearch(root.querySelector('#results'), params, ctrl.signal);
  return () => ctrl.abort();
}

const SORTS = {
  recent: (a, b) => b.start - a.start,
  longest: (a, b) => b.duration - a.duration,
  shortest: (a, b) => a.duration - b.duration,
  spans: (a, b) => b.spanCount - a.spanCount,
};

async function runSearch(el, params, signal) {
  el.innerHTML = '<div class="loading">Searching…</div>';
  const form = Object.fromEntries(FIELDS.map((k) => [k, params.get(k) || '']));
  form.lookback = form.lookback || '1h';
  let res;
  try {
    res = await getJSON('/api/traces?' + buildSearchQuery(form), signal);
  } catch (e) {
    if (e.name !== 'AbortError') el.innerHTML = errorBox('Search failed: ' + e.message);
    return;
  }
  const sums = (res.data || []).map(summarizeTrace);
  colors.assignAll(sums.flatMap((s) => s.services.map((x) => x.name)));
  const sort = SORTS[params.get('sort')] ? params.get('sort') : 'recent';
  sums.sort(SORTS[sort]);
  if (!sums.length) {
    el.innerHTML = '<div class="empty"><h3>No traces found</h3><p>Widen the time range or remove some conditions.</p></div>';
    return;
  }
  const maxDur = Math.max(...sums.map((s) => s.duration), 1);
  el.innerHTML = `
    <div class="panel scatter-panel"><div class="scatter" id="scatter"></div></div>
    <div class="results-bar"><span><span id="result-count">${sums.length} trace${sums.length === 1 ? '' : 's'}</span><button class="compare-btn" id="compare" disabled title="Select two traces to compare">Compare</button></span>
      <label>Sort <select id="sort">${Object.keys(SORTS).map((k) =>
        `<option value="${k}"${k === sort ? ' selected' : ''}>${{ recent: 'Most recent', longest: 'Longest first', shortest: 'Shortest first', spans: 'Most spans' }[k]}</option>`).join('')}</select></label></div>
    <ul class="trace-list">${sums.map((s) => itemHtml(s, maxDur)).join('')}</ul>`;
  el.querySelector('#sort').addEventListener('change', (e) => {
    const q = new URLSearchParams(location.search);
    q.set('sort', e.target.value);
    navigate('/search?' + q, true);
  });
  // Pick two traces (the two most recently ticked) → Compare.
  const picked = [];
  const cmp = el.querySelector('#compare');
  const syncPicks = () => {
    for (const box of el.querySelectorAll('input[data-pick]')) box.checked = picked.includes(box.dataset.pick);
    cmp.disabled = picked.length !== 2;
    cmp.textContent = picked.length === 2 ? 'Compare 2 traces' : `Compare (${picked.length}/2)`;
  };
  el.querySelector('.trace-list').addEventListener('change', (e) => {
    const id = e.target.dataset && e.target.dataset.pick;
    if (!id) return;
    const at = picked.indexOf(id);
    if (e.target.checked && at < 0) { picked.push(id); if (picked.length > 2) picked.shift(); }
    if (!e.target.checked && at >= 0) picked.splice(at, 1);
    syncPicks();
  });
  cmp.addEventListener('click', () => {
    if (picked.length === 2) navigate(`/compare/${encodeURIComponent(picked[0])}/${encodeURIComponent(picked[1])}`);
  });
  syncPicks();
  const scatter = el.querySelector('#scatter');
  drawScatter(scatter, sums);
  scatter.addEventListener('click', (e) => {
    const dot = e.target.closest('circle[data-trace-id]');
    if (dot) navigate('/trace/' + encodeURIComponent(dot.dataset.traceId));
  });
  let t = 0;
  window.addEventListener('resize', () => { clearTimeout(t); t = setTimeout(() => drawScatter(scatter, sums), 100); }, { signal });
}

function itemHtml(s, maxDur) {
  const href = '/trace/' + encodeURIComponent(s.traceID);
  return `<li class="trace-item panel" data-trace-id="${esc(s.traceID)}">
    <a class="trace-title" href="${href}" data-link>
      <span class="dur-bar" style="width:${((s.duration / maxDur) * 100).toFixed(2)}%"></span>
      <span class="title-text"><b>${esc(s.rootService)}:</b> ${esc(s.rootOperation)}
      <code class="tid">${esc(s.traceID.slice(0, 7))}</code></span>
      <span class="dur">${formatDuration(s.duration)}</span>
    </a>
    <div class="trace-meta">
      <label class="pick"><input type="checkbox" data-pick="${esc(s.traceID)}" aria-label="Select for compare">compare</label>
      <span class="badge">${s.spanCount} span${s.spanCount === 1 ? '' : 's'}</span>
      ${s.errorCount ? `<span class="badge err">${s.errorCount} error${s.errorCount === 1 ? '' : 's'}</span>` : ''}
      <span class="chips">${s.services.map((x) => chip(x.name, colors.get(x.name), x.count)).join('')}</span>
      <span class="when" title="${esc(fmtTime(s.start))}">${esc(fmtTime(s.start).slice(0, 19))} · ${fmtAgo(s.start)}</span>
    </div></li>`;
}

function drawScatter(el, sums) {
  const W = Math.max(300, el.clientWidth), H = 170;
  const m = { l: 64, r: 16, t: 12, b: 26 };
  let t0 = Math.min(...sums.map((s) => s.start)), t1 = Math.max(...sums.map((s) => s.start));
  if (t1 - t0 < 1e6) { t0 -= 5e5; t1 += 5e5; }
  const pad = (t1 - t0) * 0.03;
  t0 -= pad; t1 += pad;
  const maxDur = Math.max(...sums.map((s) => s.duration), 1) * 1.1;
  const x = (t) => m.l + ((t - t0) / (t1 - t0)) * (W - m.l - m.r);
  const y = (d) => H - m.b - (d / maxDur) * (H - m.t - m.b);
  const yt = ticks(maxDur, 5).filter((t) => t.value <= maxDur);
  let svg = `<svg width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="Trace durations over time">`;
  for (const t of yt) {
    svg += `<line class="grid" x1="${m.l}" x2="${W - m.r}" y1="${y(t.value)}" y2="${y(t.value)}"/>`;
    svg += `<text class="axis" x="${m.l - 8}" y="${y(t.value) + 4}" text-anchor="end">${t.label}</text>`;
  }
  for (let i = 0; i <= 4; i++) {
    const t = t0 + ((t1 - t0) * i) / 4;
    const label = new Date(t / 1000).toTimeString().slice(0, 8);
    svg += `<text class="axis" x="${x(t)}" y="${H - 6}" text-anchor="${i === 0 ? 'start' : i === 4 ? 'end' : 'middle'}">${label}</text>`;
  }
  svg += `<text class="axis" x="12" y="${m.t + 4}" transform="rotate(-90 12 ${m.t + 4})" text-anchor="end">duration</text>`;
  for (const s of sums) {
    const r = 4 + Math.min(6, Math.log2(s.spanCount + 1));
    svg += `<circle class="dot${s.errorCount ? ' err' : ''}" data-trace-id="${esc(s.traceID)}" cx="${x(s.start).toFixed(1)}" cy="${y(s.duration).toFixed(1)}" r="${r.toFixed(1)}" fill="${esc(colors.get(s.rootService))}"><title>${esc(`${s.rootService}: ${s.rootOperation}\n${formatDuration(s.duration)} · ${s.spanCount} spans${s.errorCount ? ` · ${s.errorCount} errors` : ''}`)}</title></circle>`;
  }
  el.innerHTML = svg + '</svg>';
}
