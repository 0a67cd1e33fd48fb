// Monitor page logic (pure, unit-tested): metrics API queries, Jaeger's
// metrics JSON into series, the operations table and its sorting, and
// where a click on a chart goes.

export const LOOKBACKS = {
  '15m': 15 * 60e3, '1h': 3600e3, '6h': 6 * 3600e3, '24h': 24 * 3600e3, '7d': 7 * 86400e3, '30d': 30 * 86400e3,
};
export const LOOKBACK_LABELS = {
  '15m': 'Last 15 minutes', '1h': 'Last hour', '6h': 'Last 6 hours', '24h': 'Last 24 hours', '7d': 'Last 7 days', '30d': 'Last 30 days',
};
export const KINDS = ['server', 'client', 'producer', 'consumer', 'internal'];
/** What "all kinds" asks the metrics API for. */
export const ALL_KINDS = [...KINDS, 'unspecified'];
export const QUANTILES = [['p50', 0.5], ['p95', 0.95], ['p99', 0.99]];

// Multiples of the finest stored resolution (10 s), so windows line up.
const STEPS = [10e3, 30e3, 60e3, 120e3, 300e3, 600e3, 1800e3, 3600e3, 3 * 3600e3, 6 * 3600e3, 12 * 3600e3, 86400e3];

/**
 * The smallest round step giving at most `maxPoints` points over the
 * lookback, a multiple of the store's resolution `minStepMs`.
 */
export function pickStep(lookbackMs, minStepMs = 10e3, maxPoints = 60) {
  const want = Math.max(minStepMs, lookbackMs / maxPoints);
  const s = STEPS.find((x) => x >= want && x % minStepMs === 0);
  return s || Math.ceil(want / minStepMs) * minStepMs;
}

/**
 * Query string of /api/metrics/{calls,errors,latencies}. `spanKind`: one
 * kind, or a list (the API's default is server only, so "all kinds" has to
 * name every kind).
 */
export function metricsQuery({ service, groupByOperation, spanKind, endTs, lookback, step, quantile }) {
  const q = new URLSearchParams({ service, groupByOperation: String(!!groupByOperation) });
  for (const k of [].concat(spanKind || [])) q.append('spanKind', k);
  q.set('endTs', String(Math.round(endTs)));
  q.set('lookback', String(Math.round(lookback)));
  q.set('step', String(step));
  // Rates are per second over each step's window.
  q.set('ratePer', String(step));
  if (quantile !== undefined) q.set('quantile', String(quantile));
  return q.toString();
}

/** Query string of /api/metrics/exemplars (no `spanKind`: every kind). */
export function exemplarsQuery({ service, operation, spanKind, endTs, lookback }) {
  const q = new URLSearchParams({ service });
  if (operation) q.set('operation', operation);
  for (const k of [].concat(spanKind || [])) q.append('spanKind', k);
  q.set('endTs', String(Math.round(endTs)));
  q.set('lookback', String(Math.round(lookback)));
  return q.toString();
}

/** Jaeger's timestamps: RFC 3339 strings (protobuf JSON), epoch numbers or {seconds, nanos}. */
export function parseTimestamp(ts) {
  if (typeof ts === 'string') {
    if (/^\d+$/.test(ts)) return parseTimestamp(Number(ts));
    const t = Date.parse(ts);
    return Number.isFinite(t) ? t : null;
  }
  if (typeof ts === 'number') return ts < 1e11 ? ts * 1000 : ts;
  if (ts && typeof ts === 'object') return Number(ts.seconds || 0) * 1000 + Number(ts.nanos || 0) / 1e6;
  return null;
}

/** A gauge value: number, numeric string, "NaN" or null (no data). */
export function parseValue(gv) {
  const raw = gv && gv.doubleValue;
  if (raw === null || raw === undefined) return null;
  const v = Number(raw);
  return Number.isFinite(v) ? v : null;
}

/**
 * A metric family ({name, metrics: [{labels, metricPoints}]}) as
 * [{operation, service, points: [{t, v}]}], points sorted by time.
 */
export function parseFamily(json) {
  return ((json && json.metrics) || []).map((m) => {
    const labels = Object.fromEntries((m.labels || []).map((l) => [l.name, l.value]));
    const points = (m.metricPoints || [])
      .map((p) => ({ t: parseTimestamp(p.timestamp), v: parseValue(p.gaugeValue) }))
      .filter((p) => p.t !== null)
      .sort((a, b) => a.t - b.t);
    return { operation: labels.operation ?? '', service: labels.service_name ?? '', points };
  });
}

/** Map operation → points of a grouped family. */
export function byOperation(json) {
  return new Map(parseFamily(json).map((s) => [s.operation, s.points]));
}

/** The one series of an ungrouped family (empty if none). */
export function single(json) {
  const fam = parseFamily(json);
  return fam.length ? fam[0].points : [];
}

const sum = (xs) => xs.reduce((a, b) => a + b, 0);

/**
 * One row per operation from the table's requests, whose one window is
 * the whole range (step = ratePer = lookback): the point at the range's
 * end is the operation's call rate, error ratio and quantiles over all of
 * it, quantiles from the merged histogram (exact, unlike averaging the
 * windows' quantiles).
 * @param g {calls, errors, p50, p95, p99}: Maps operation → points
 * @param endTs the range's end (ms): the point to read
 */
export function opsRows(g, endTs) {
  const ops = new Set([...g.calls.keys(), ...g.errors.keys(), ...QUANTILES.flatMap(([k]) => [...g[k].keys()])]);
  const at = (pts) => {
    const p = (pts || []).find((x) => x.t === endTs);
    return p ? p.v : null;
  };
  return [...ops].map((op) => {
    const row = { operation: op, rate: at(g.calls.get(op)) ?? 0, errorRate: at(g.errors.get(op)) };
    for (const [k] of QUANTILES) row[k] = at(g[k].get(op));
    return row;
  });
}

export const COLUMNS = ['operation', 'rate', 'errorRate', 'p50', 'p95', 'p99'];

/**
 * Sorted copy by `key`: by default numbers largest first and text A→Z;
 * `desc` picks the direction. Rows without a value go last either way;
 * ties by operation name.
 */
export function sortRows(rows, key, desc = key !== 'operation') {
  const dir = desc ? -1 : 1;
  return rows.slice().sort((a, b) => {
    const x = a[key], y = b[key];
    const xn = x === null || x === undefined, yn = y === null || y === undefined;
    if (xn !== yn) return xn ? 1 : -1;
    let c = 0;
    if (!xn) c = typeof x === 'string' ? x.localeCompare(y) : x - y;
    return c * dir || a.operation.localeCompare(b.operation);
  });
}

/**
 * The exemplar a click on the point at `t` opens. As in Prometheus' range
 * queries, the point at `t` covers the window `[t - step, t)` (ratePer =
 * step). The slowest exemplar in it, else the nearest within one more step
 * either side (an exemplar is stamped with its span's start, which may sit
 * in the window before the one that counted it).
 */
export function exemplarFor(exemplars, t, step) {
  const from = t - step;
  const inside = exemplars.filter((e) => e.timestampMs >= from && e.timestampMs < t);
  if (inside.length) return inside.reduce((a, b) => (b.durationMs > a.durationMs ? b : a));
  const mid = t - step / 2;
  const near = exemplars.filter((e) => Math.abs(e.timestampMs - mid) <= step * 1.5);
  if (!near.length) return null;
  return near.reduce((a, b) => (Math.abs(b.timestampMs - mid) < Math.abs(a.timestampMs - mid) ? b : a));
}

/** `endTs` rounded up to the stored resolution, so each window is whole stored windows. */
export const alignedEnd = (now, resolution = 10e3) => Math.ceil(now / resolution) * resolution;

const pad2 = (n) => String(n).padStart(2, '0');
/** Local `YYYY-MM-DDTHH:MM:SS`, the search form's custom-range format. */
export const localDateTime = (ms) => {
  const d = new Date(ms);
  return `${d.getFullYear()}-${pad2(d.getMonth() + 1)}-${pad2(d.getDate())}T${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())}`;
};

/** The search page for a service (and operation) over [fromMs, toMs). */
export function searchUrl(service, operation, fromMs, toMs) {
  const q = new URLSearchParams({ service });
  if (operation) q.set('operation', operation);
  q.set('lookback', 'custom');
  q.set('start', localDateTime(fromMs));
  q.set('end', localDateTime(toMs));
  q.set('run', '1');
  return '/search?' + q;
}

/** The Monitor page for a service (and operation, span kind). */
export function monitorUrl(service, operation, spanKind) {
  const q = new URLSearchParams({ service });
  if (operation) q.set('operation', operation);
  if (spanKind) q.set('spanKind', spanKind);
  return '/monitor?' + q;
}

/** Span kind as the metrics API spells it, from a Jaeger `span.kind` tag. */
export function kindOf(tagValue) {
  const k = String(tagValue || '').toLowerCase();
  return KINDS.includes(k) ? k : '';
}

/** A step as the picker's round units: 30s, 5m, 3h, 1d. */
export function fmtStep(ms) {
  for (const [u, k] of [['d', 86400e3], ['h', 3600e3], ['m', 60e3]]) if (ms >= k && ms % k === 0) return `${ms / k}${u}`;
  return `${ms / 1000}s`;
}

/** One unit (per second, minute or hour) for every tick of a rate axis up to `max`/s. */
export function rateAxisFmt(max) {
  const [mult, unit] = max >= 1 ? [1, 's'] : max * 60 >= 1 ? [60, 'min'] : [3600, 'h'];
  return (v) => `${Number((v * mult).toPrecision(3))}/${unit}`;
}

/** Requests per second, short. */
export function fmtRate(v) {
  if (v === null || !Number.isFinite(v)) return '–';
  if (v === 0) return '0/s';
  if (v >= 100) return `${Math.round(v)}/s`;
  if (v >= 1) return `${Number(v.toFixed(2))}/s`;
  if (v * 60 >= 1) return `${Number((v * 60).toFixed(2))}/min`;
  return `${Number((v * 3600).toFixed(2))}/h`;
}

export function fmtPct(v) {
  if (v === null || !Number.isFinite(v)) return '–';
  const p = v * 100;
  return `${p === 0 || p >= 10 ? Math.round(p) : Number(p.toFixed(2))}%`;
}
