// Monitor page (/monitor?service=S[&operation=O][&spanKind=K][&lookback=L]):
// RED metrics of a service or one of its operations from the span-metrics
// API (100% of traffic, before sampling) — latency quantiles with exemplar
// traces, request rate, error rate — and its operations table.
import { esc, navigate, getJSON, errorBox } from './dom.js';
import { formatDuration } from './axis.js';
import { lineChart } from './chart.js';
import {
  LOOKBACKS, LOOKBACK_LABELS, KINDS, ALL_KINDS, QUANTILES, COLUMNS, pickStep, metricsQuery, exemplarsQuery,
  byOperation, single, opsRows, sortRows, exemplarFor, alignedEnd, searchUrl, monitorUrl, fmtRate, fmtPct, fmtStep, rateAxisFmt,
} from './monitor-model.js';

const QCOLORS = { p50: '#10b981', p95: '#f59e0b', p99: '#dc2626' };
const fmtMs = (v) => formatDuration(v * 1000);
const HEAD = { operation: 'Operation', rate: 'Request rate', errorRate: 'Error rate', p50: 'p50', p95: 'p95', p99: 'p99' };
const FMT = { rate: fmtRate, errorRate: fmtPct, p50: fmtMs, p95: fmtMs, p99: fmtMs };

function formHtml(st) {
  return `<form class="panel monitor-form" id="monitor-form" autocomplete="off">
    <label>Service<select name="service" id="m-service"><option value="${esc(st.service)}">${esc(st.service || '…')}</option></select></label>
    <label>Span kind<select name="spanKind" id="m-kind">${[...KINDS, 'all'].map((k) =>
      `<option value="${k}"${k === st.spanKind ? ' selected' : ''}>${k === 'all' ? 'All kinds' : k}</option>`).join('')}</select></label>
    <label>Time range<select name="lookback" id="m-lookback">${Object.entries(LOOKBACK_LABELS).map(([k, t]) =>
      `<option value="${k}"${k === st.lookback ? ' selected' : ''}>${t}</option>`).join('')}</select></label>
    <button type="submit" class="primary">Refresh</button>
  </form>`;
}

function urlOf(st) {
  const q = new URLSearchParams(monitorUrl(st.service, st.operation, st.spanKind).split('?')[1]);
  q.set('lookback', st.lookback);
  if (st.sort !== 'rate' || !st.desc) { q.set('sort', st.sort); q.set('dir', st.desc ? 'desc' : 'asc'); }
  return '/monitor?' + q;
}

export function renderMonitor(root, params) {
  const ctrl = new AbortController();
  const sort = COLUMNS.includes(params.get('sort')) ? params.get('sort') : 'rate';
  const st = {
    service: params.get('service') || '',
    operation: params.get('operation') || '',
    spanKind: [...KINDS, 'all'].includes(params.get('spanKind')) ? params.get('spanKind') : 'server',
    lookback: LOOKBACKS[params.get('lookback')] ? params.get('lookback') : '1h',
    sort,
    desc: params.get('dir') ? params.get('dir') === 'desc' : sort !== 'operation',
  };
  root.innerHTML = `<div class="monitor-page">${formHtml(st)}<div id="monitor-body"><div class="loading">Loading services…</div></div></div>`;
  const form = root.querySelector('#monitor-form');
  const body = root.querySelector('#monitor-body');
  const go = () => {
    const f = new FormData(form);
    const svc = f.get('service');
    // A different service has different operations.
    const next = { ...st, service: svc, spanKind: f.get('spanKind'), lookback: f.get('lookback'), operation: svc === st.service ? st.operation : '' };
    navigate(urlOf(next));
  };
  form.addEventListener('change', go);
  form.addEventListener('submit', (e) => { e.preventDefault(); go(); });

  getJSON('/api/services', ctrl.signal).then((r) => {
    const svcs = (r.data || []).slice().sort();
    if (!st.service && svcs.length) {
      navigate(urlOf({ ...st, service: svcs[0] }), true);
      return;
    }
    const sel = form.querySelector('#m-service');
    if (st.service && !svcs.includes(st.service)) svcs.unshift(st.service);
    sel.innerHTML = svcs.map((s) => `<option value="${esc(s)}"${s === st.service ? ' selected' : ''}>${esc(s)}</option>`).join('');
    if (!svcs.length) {
      body.innerHTML = '<div class="empty"><h3>No services yet</h3><p>Send some spans, then come back.</p></div>';
      return;
    }
    return load(body, st, ctrl.signal);
  }).catch((e) => {
    if (e.name !== 'AbortError') body.innerHTML = errorBox('Could not load metrics: ' + e.message);
  });
  return () => ctrl.abort();
}

async function load(body, st, signal) {
  body.innerHTML = `<div class="loading">Loading metrics for <b>${esc(st.service)}</b>…</div>`;
  // The store's resolution (`data`, ms); 10 s if the server does not say.
  const res = await getJSON('/api/metrics/minstep', signal).then((r) => Number(r && r.data) || 10e3, () => 10e3);
  if (signal.aborted) return;
  const endTs = alignedEnd(Date.now(), res);
  const lookback = LOOKBACKS[st.lookback];
  const step = pickStep(lookback, res);
  const spanKind = st.spanKind === 'all' ? ALL_KINDS : st.spanKind;
  const base = { service: st.service, spanKind, endTs, lookback, step };
  const get = (what, extra) => getJSON(`/api/metrics/${what}?` + metricsQuery({ ...base, ...extra }), signal);
  const family = (grouped, extra = {}) => Promise.all([
    get('calls', { groupByOperation: grouped, ...extra }),
    get('errors', { groupByOperation: grouped, ...extra }),
    ...QUANTILES.map(([, q]) => get('latencies', { groupByOperation: grouped, quantile: q, ...extra })),
  ]);
  // The charts: the selected operation's series, or the whole service's;
  // the table: each operation over the whole range (one window).
  let charts, table, exemplars = [], exemplarError = '';
  try {
    [charts, table] = await Promise.all([
      family(!!st.operation),
      family(true, { step: lookback }),
    ]);
  } catch (e) {
    if (e.name === 'AbortError') return;
    body.innerHTML = errorBox(`Could not load span metrics for ${st.service}: ${e.message}`);
    return;
  }
  try {
    const r = await getJSON('/api/metrics/exemplars?' + exemplarsQuery({ ...base, spanKind: st.spanKind === 'all' ? '' : st.spanKind, operation: st.operation }), signal);
    exemplars = (r && r.exemplars) || [];
  } catch (e) {
    if (e.name === 'AbortError') return;
    exemplarError = e.message;
  }
  const pick = (i) => (st.operation ? (byOperation(charts[i]).get(st.operation) || []) : single(charts[i]));
  const series = { rate: pick(0), errors: pick(1) };
  QUANTILES.forEach(([k], i) => { series[k] = pick(2 + i); });
  const g = { calls: byOperation(table[0]), errors: byOperation(table[1]) };
  QUANTILES.forEach(([k], i) => { g[k] = byOperation(table[2 + i]); });
  const rows = opsRows(g, endTs);
  const view = { st, step, x0: endTs - lookback, x1: endTs, series, rows, exemplars, exemplarError };
  draw(body, view, signal);
}

function draw(body, v, signal) {
  const { st } = v;
  const scope = st.operation ? `<span class="op">${esc(st.operation)}</span>` : '<span class="muted">all operations</span>';
  const hasData = v.series.rate.some((p) => p.v !== null) || v.rows.length > 0;
  body.innerHTML = `
    <div class="monitor-head"><h2>${esc(st.service)} · ${scope}</h2>
      ${st.operation ? `<a href="${esc(monitorUrl(st.service, '', st.spanKind))}" data-link id="m-all-ops">All operations</a>` : ''}
      <a href="${esc(searchUrl(st.service, st.operation, v.x0, v.x1))}" data-link>Find traces</a>
      <span class="muted">step ${esc(fmtStep(v.step))} · ${esc(st.spanKind === 'all' ? 'all span kinds' : st.spanKind + ' spans')} · counted before sampling</span></div>
    ${hasData ? '' : `<div class="notice warn">No span metrics for ${esc(st.service)} in this range.</div>`}
    ${v.exemplarError ? `<div class="notice warn">Exemplars unavailable: ${esc(v.exemplarError)}</div>` : ''}
    <div class="charts" data-step="${v.step}">
      <section class="panel chart-panel" data-chart="latency"><h3>Latency</h3><div class="legend">${QUANTILES.map(([k]) =>
        `<span><i style="background:${QCOLORS[k]}"></i>${k}</span>`).join('')}<span><i class="ex"></i>exemplar trace</span></div><div class="chart-box"></div></section>
      <section class="panel chart-panel" data-chart="rate"><h3>Request rate</h3><div class="chart-box"></div></section>
      <section class="panel chart-panel" data-chart="errors"><h3>Error rate</h3><div class="chart-box"></div></section>
    </div>
    <section class="panel ops-panel"><table class="ops-table" id="ops-table"><thead><tr>${COLUMNS.map((c) =>
      `<th data-sort="${c}" class="${c === 'operation' ? '' : 'num'}">${HEAD[c]}</th>`).join('')}<th></th></tr></thead><tbody></tbody></table>
      ${v.rows.length ? '' : '<p class="none">No operations in this range.</p>'}</section>`;
  drawCharts(body, v);
  drawTable(body, v);
  let t = 0;
  const onResize = () => { clearTimeout(t); t = setTimeout(() => { if (body.isConnected) drawCharts(body, v); }, 100); };
  window.addEventListener('resize', onResize, { signal });

  body.querySelector('.charts').addEventListener('click', (e) => {
    const ex = e.target.closest('.exemplar');
    if (ex) { navigate('/trace/' + encodeURIComponent(ex.dataset.traceId)); return; }
    const pt = e.target.closest('.pt');
    if (!pt) return;
    const t0 = Number(pt.dataset.t); // the window [t0 - step, t0)
    const hit = exemplarFor(v.exemplars, t0, v.step);
    navigate(hit ? '/trace/' + encodeURIComponent(hit.traceId) : searchUrl(st.service, st.operation, t0 - v.step, t0));
  });
  body.querySelector('#ops-table thead').addEventListener('click', (e) => {
    const th = e.target.closest('th[data-sort]');
    if (!th) return;
    const key = th.dataset.sort;
    st.desc = key === st.sort ? !st.desc : key !== 'operation';
    st.sort = key;
    // Sorting is local: keep it shareable without reloading the data.
    history.replaceState({}, '', urlOf(st));
    drawTable(body, v);
  });
}

function drawCharts(body, v) {
  const common = { x0: v.x0, x1: v.x1, step: v.step, height: 190 };
  const box = (name) => body.querySelector(`[data-chart="${name}"] .chart-box`);
  const width = (el) => Math.max(240, el.clientWidth);
  const lat = box('latency');
  const dots = v.exemplars.filter((e) => e.timestampMs >= v.x0 && e.timestampMs <= v.x1).map((e) => ({
    t: e.timestampMs, v: e.durationMs, traceId: e.traceId,
    title: `${e.operation} · ${fmtMs(e.durationMs)} · trace ${e.traceId}`,
  }));
  lat.innerHTML = lineChart({
    ...common, width: width(lat), label: 'Latency', yFmt: fmtMs, dots,
    series: QUANTILES.map(([k]) => ({ name: k, color: QCOLORS[k], points: v.series[k] })),
  });
  const rate = box('rate');
  const maxRate = Math.max(0, ...v.series.rate.map((p) => p.v ?? 0));
  rate.innerHTML = lineChart({ ...common, width: width(rate), label: 'Request rate', yFmt: fmtRate, axisFmt: rateAxisFmt(maxRate * 1.08), series: [{ name: 'rate', color: '#2563eb', points: v.series.rate }] });
  const err = box('errors');
  err.innerHTML = lineChart({ ...common, width: width(err), label: 'Error rate', yFmt: fmtPct, series: [{ name: 'errors', color: '#dc2626', points: v.series.errors }] });
}

function drawTable(body, v) {
  const { st } = v;
  for (const th of body.querySelectorAll('#ops-table th[data-sort]')) {
    th.setAttribute('aria-sort', th.dataset.sort === st.sort ? (st.desc ? 'descending' : 'ascending') : 'none');
  }
  body.querySelector('#ops-table tbody').innerHTML = sortRows(v.rows, st.sort, st.desc).map((r) => `
    <tr data-op="${esc(r.operation)}"${r.operation === st.operation ? ' class="sel"' : ''}>
      <td><a href="${esc(urlOf({ ...st, operation: r.operation }))}" data-link>${esc(r.operation)}</a></td>
      ${COLUMNS.slice(1).map((c) => `<td class="num" data-v="${r[c] ?? ''}">${esc(FMT[c](r[c]))}</td>`).join('')}
      <td><a href="${esc(searchUrl(st.service, r.operation, v.x0, v.x1))}" data-link>traces</a></td></tr>`).join('');
}
