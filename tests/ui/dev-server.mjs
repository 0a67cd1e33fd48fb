// Development only: serves ui/ the way strand does and answers the Jaeger
// query API with generated fixtures, to work on the UI without a backend.
// The real test is browser.test.mjs, which runs against `strand serve`.
//   node tests/ui/dev-server.mjs [port]
import http from 'node:http';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const UI = path.join(path.dirname(fileURLToPath(import.meta.url)), '../../ui');
const TYPES = { '.js': 'text/javascript', '.css': 'text/css', '.html': 'text/html', '.svg': 'image/svg+xml' };
const now = Date.now() * 1000;
const SVCS = ['frontend', 'checkout', 'payments', 'inventory', 'postgres', 'redis'];
let seq = 1;
const hex = (n, w) => n.toString(16).padStart(w, '0');

function makeTrace(n, t0, opts = {}) {
  const traceID = hex(seq++, 32);
  const processes = Object.fromEntries(SVCS.map((s, i) => [`p${i + 1}`, { serviceName: s, tags: [
    { key: 'host.name', type: 'string', value: `node-${i}` }, { key: 'telemetry.sdk.language', type: 'string', value: 'rust' }] }]));
  const spans = [];
  for (let i = 0; i < n; i++) {
    const parent = i === 0 ? null : spans[Math.floor(Math.random() * Math.min(i, opts.wide ? i : 12))];
    const start = parent ? parent.startTime + Math.floor(Math.random() * parent.duration * 0.6) : t0;
    const duration = parent ? Math.max(20, Math.floor((parent.startTime + parent.duration - start) * Math.random())) : 180000 + Math.floor(Math.random() * 900000);
    const err = i > 0 && Math.random() < 0.06;
    const s = {
      traceID, spanID: hex(seq++, 16), operationName: ['GET /api/cart', 'SELECT orders', 'charge', 'reserve', 'HGET session', 'render'][i % 6],
      references: parent ? [{ refType: 'CHILD_OF', traceID, spanID: parent.spanID }] : [],
      startTime: start, duration, processID: `p${(i % SVCS.length) + 1}`,
      tags: [{ key: 'span.kind', type: 'string', value: i % 2 ? 'client' : 'server' },
        { key: 'otel.scope.name', type: 'string', value: 'strand-dev' },
        { key: 'http.status_code', type: 'int64', value: err ? 500 : 200 },
        ...(err ? [{ key: 'error', type: 'bool', value: true }, { key: 'otel.status_code', type: 'string', value: 'ERROR' },
          { key: 'otel.status_description', type: 'string', value: 'upstream timed out' }] : [])],
      logs: i % 4 === 0 ? [{ timestamp: start + 10, fields: [{ key: 'event', type: 'string', value: 'cache miss' }, { key: 'key', type: 'string', value: 'cart:42' }] }] : [],
      warnings: i === 3 ? ['clock skew adjustment: shifted +1234µs'] : null,
    };
    spans.push(s);
  }
  return { traceID, spans, processes, warnings: null };
}

const traces = Array.from({ length: 18 }, (_, k) => makeTrace(5 + Math.floor(Math.random() * 60), now - k * 170e6));
const big = makeTrace(50000, now - 5e6, { wide: true });
traces.push(big);
console.log('big trace', big.traceID);

// Span metrics in Jaeger's metrics JSON, for the Monitor page.
const OPS = ['GET /api/cart', 'SELECT orders', 'charge'];
function metricFamily(kind, u) {
  const svc = u.searchParams.get('service');
  const grouped = u.searchParams.get('groupByOperation') === 'true';
  const end = Number(u.searchParams.get('endTs')), lookback = Number(u.searchParams.get('lookback'));
  const step = Number(u.searchParams.get('step'));
  const q = Number(u.searchParams.get('quantile') || 0.5);
  const series = (op, k) => {
    const points = [];
    for (let t = Math.floor((end - lookback) / step) * step; t < end; t += step) {
      const wave = 1 + 0.5 * Math.sin(t / 6e5 + k);
      const v = kind === 'calls' ? 3 * wave * (k + 1) : kind === 'errors' ? 0.02 * wave * k : (20 + 40 * k) * wave * (1 + 4 * (q - 0.5));
      points.push({ gaugeValue: { doubleValue: v }, timestamp: new Date(t).toISOString() });
    }
    const labels = [{ name: 'service_name', value: svc }, ...(op ? [{ name: 'operation', value: op }] : [])];
    return { labels, metricPoints: points };
  };
  return { name: `service_${grouped ? 'operation_' : ''}${kind}`, type: 'GAUGE', help: '',
    metrics: grouped ? OPS.map((op, k) => series(op, k)) : [series(null, 1)] };
}

const json = (res, code, body) => { res.writeHead(code, { 'content-type': 'application/json' }); res.end(JSON.stringify(body)); };
http.createServer((req, res) => {
  const u = new URL(req.url, 'http://x');
  const p = u.pathname;
  if (p === '/api/services') return json(res, 200, { data: SVCS });
  if (p.startsWith('/api/services/')) return json(res, 200, { data: ['GET /api/cart', 'SELECT orders', 'charge'] });
  if (p === '/api/traces') {
    const svc = u.searchParams.get('service');
    const out = traces.filter((t) => t !== big && (!svc || t.spans.some((s) => t.processes[s.processID].serviceName === svc)));
    return json(res, 200, { data: out.slice(0, Number(u.searchParams.get('limit') || 20)) });
  }
  if (p.startsWith('/api/traces/')) {
    const t = traces.find((x) => x.traceID === p.slice(12));
    return t ? json(res, 200, { data: [t] }) : json(res, 404, { errors: [{ code: 404, msg: 'trace not found' }] });
  }
  if (/^\/api\/metrics\/(calls|errors|latencies)$/.test(p)) return json(res, 200, metricFamily(p.split('/')[3], u));
  if (p === '/api/metrics/minstep') return json(res, 200, { data: 10000, total: 0, limit: 0, offset: 0, errors: null });
  if (p === '/api/metrics/exemplars') {
    const t = traces.filter((x) => x !== big).slice(0, 8);
    return json(res, 200, { exemplars: t.map((x, k) => ({ traceId: x.traceID, spanId: x.spans[0].spanID, operation: OPS[k % 3],
      durationMs: x.spans[0].duration / 1000, timestampMs: Math.floor(x.spans[0].startTime / 1000), bucketLeMs: null })) });
  }
  if (p === '/api/ui/links') {
    const v = Object.fromEntries(u.searchParams);
    return json(res, 200, { links: [{ name: v.scope === 'span' ? 'Span logs' : 'Trace logs', url: `https://logs.example/?trace=${encodeURIComponent(v.traceId)}&from=${v.start}&to=${v.end}` }] });
  }
  if (p === '/api/dependencies') {
    return json(res, 200, { data: [
      { parent: 'frontend', child: 'checkout', callCount: 120, errorCount: 3 }, { parent: 'checkout', child: 'payments', callCount: 80, errorCount: 0 },
      { parent: 'checkout', child: 'inventory', callCount: 95, errorCount: 1 }, { parent: 'inventory', child: 'postgres', callCount: 300, errorCount: 0 },
      { parent: 'frontend', child: 'redis', callCount: 410, errorCount: 0 }, { parent: 'payments', child: 'postgres', callCount: 60, errorCount: 2 }] });
  }
  const file = p.startsWith('/static/') ? p.slice(8) : 'index.html';
  try {
    const body = readFileSync(path.join(UI, path.basename(file)));
    res.writeHead(200, { 'content-type': TYPES[path.extname(file)] || 'application/octet-stream' });
    res.end(body);
  } catch { res.writeHead(404); res.end(); }
}).listen(Number(process.argv[2] || 8099), '127.0.0.1');
