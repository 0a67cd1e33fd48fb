// Pure helpers over Jaeger-format traces: summaries, errors, clock-skew
// warnings and search-query building. No DOM here (unit-tested under node).

export function tagValue(tags, key) {
  if (!tags) return undefined;
  for (const t of tags) if (t.key === key) return t.value;
  return undefined;
}

export function isErrorSpan(span) {
  const e = tagValue(span.tags, 'error');
  if (e === true || e === 'true') return true;
  const s = tagValue(span.tags, 'otel.status_code');
  return typeof s === 'string' && s.toUpperCase() === 'ERROR';
}

const SKEW = /clock skew adjustment[^+\-\d]*([+-]?\d+(?:\.\d+)?)\s*(ns|µs|us|ms|s)?/i;

/** Shift (µs) the server applied to correct clock skew, or null if none. */
export function skewShift(span) {
  for (const w of span.warnings || []) {
    const m = SKEW.exec(w);
    if (m) {
      const mult = { ns: 1e-3, us: 1, 'µs': 1, ms: 1e3, s: 1e6 }[(m[2] || 'µs').toLowerCase()] || 1;
      return Number(m[1]) * mult;
    }
  }
  return null;
}

export function serviceOf(trace, span) {
  const p = trace.processes && trace.processes[span.processID];
  return (p && p.serviceName) || 'unknown';
}

/** Start and end (µs) spanning every span of the trace. */
export function traceBounds(spans) {
  let start = Infinity, end = -Infinity;
  for (const s of spans) {
    if (s.startTime < start) start = s.startTime;
    if (s.startTime + s.duration > end) end = s.startTime + s.duration;
  }
  if (!Number.isFinite(start)) return { start: 0, end: 0, duration: 0 };
  return { start, end, duration: end - start };
}

/** What a search result row shows about one trace. */
export function summarizeTrace(trace) {
  const spans = trace.spans || [];
  const ids = new Set(spans.map((s) => s.spanID));
  let root = null;
  const counts = new Map();
  let errors = 0;
  for (const s of spans) {
    const svc = serviceOf(trace, s);
    counts.set(svc, (counts.get(svc) || 0) + 1);
    if (isErrorSpan(s)) errors++;
    const hasParent = (s.references || []).some((r) => ids.has(r.spanID));
    if (!hasParent && (!root || s.startTime < root.startTime)) root = s;
  }
  if (!root && spans.length) root = spans[0];
  const b = traceBounds(spans);
  return {
    traceID: trace.traceID,
    rootService: root ? serviceOf(trace, root) : 'unknown',
    rootOperation: root ? root.operationName : '(no spans)',
    rootKind: root ? tagValue(root.tags, 'span.kind') : undefined,
    spanCount: spans.length,
    errorCount: errors,
    services: [...counts].map(([name, count]) => ({ name, count }))
      .sort((a, b2) => a.name.localeCompare(b2.name)),
    start: b.start,
    duration: b.duration,
  };
}

export const LOOKBACKS = { '15m': 15 * 60e6, '1h': 3600e6, '6h': 6 * 3600e6, '24h': 24 * 3600e6, '7d': 7 * 24 * 3600e6 };

/** "k=v k2=v2" or one per line; quotes allow spaces: k="a b". */
export function parseTags(text) {
  const out = {};
  const re = /([^\s=]+)=(?:"([^"]*)"|(\S*))/g;
  let m;
  while ((m = re.exec(text || ''))) out[m[1]] = m[2] !== undefined ? m[2] : m[3];
  return out;
}

/**
 * Form state → /api/traces query string. `form`: {service, operation, tags,
 * minDuration, maxDuration, lookback ('1h'… or 'custom'), start, end
 * (datetime-local strings when custom), limit}. `now` in ms.
 */
export function buildSearchQuery(form, now = Date.now()) {
  const q = new URLSearchParams();
  if (form.service) q.set('service', form.service);
  if (form.service && form.operation) q.set('operation', form.operation);
  const tags = parseTags(form.tags);
  if (Object.keys(tags).length) q.set('tags', JSON.stringify(tags));
  if (form.minDuration) q.set('minDuration', form.minDuration.trim());
  if (form.maxDuration) q.set('maxDuration', form.maxDuration.trim());
  let end = now * 1000, start;
  if (form.lookback === 'custom') {
    const s = Date.parse(form.start), e = Date.parse(form.end);
    if (Number.isFinite(e)) end = e * 1000;
    start = Number.isFinite(s) ? s * 1000 : end - LOOKBACKS['1h'];
  } else {
    start = end - (LOOKBACKS[form.lookback] || LOOKBACKS['1h']);
  }
  q.set('start', String(Math.round(start)));
  q.set('end', String(Math.round(end)));
  q.set('limit', String(form.limit || 20));
  return q.toString();
}
