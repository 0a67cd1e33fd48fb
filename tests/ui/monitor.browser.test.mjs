// Headless Chromium against a real `strand serve` for span metrics: the
// Monitor page (charts, operations table, exemplar → trace), the trace
// page's links to the operation's metrics, and `[[ui.links]]` correlation
// links. Same setup as browser.test.mjs (Debian's chromium, STRAND_BIN).
import test, { before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { launch, requireChromium } from './chromium.mjs';
import { startStrand, ingest, poll, getJSON } from './strand.mjs';
import { hexId, request } from './fixtures.mjs';

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const BIN = path.resolve(ROOT, process.env.STRAND_BIN || 'target/debug/strand');
const ARTIFACTS = path.join(ROOT, 'target/ui-artifacts');

const LINKS = [
  '[[ui.links]]', 'name = "Span logs"',
  'url = "https://logs.example/search?trace={trace_id}&span={span_id}&svc={service}&op={operation}&from={start}&to={end}"',
  '[[ui.links]]', 'name = "Trace in Kibana"', 'scope = "trace"',
  'url = "https://kibana.example/app/discover#/?q=trace.id:{trace_id}&from={start_iso}&to={end_iso}"',
];

// One service, three server operations with different shapes: GET /fast is
// the busiest, GET /slow the slowest, POST /pay the only one that fails.
const SERVICE = 'shop-api';
const OPS = {
  'GET /fast': { count: 24, ms: 4, errors: 0 },
  'GET /slow': { count: 8, ms: 420, errors: 0 },
  'POST /pay': { count: 10, ms: 40, errors: 6 },
};

/** Each call is a trace: a SERVER root and a CLIENT child to `db`. */
function workload(now = Date.now()) {
  const spans = [];
  const traces = [];
  let k = 0;
  for (const [op, { count, ms, errors }] of Object.entries(OPS)) {
    for (let i = 0; i < count; i++, k++) {
      const traceId = hexId(16), root = hexId(8), child = hexId(8);
      // Spread over the last two minutes, whole milliseconds.
      const start = now - 120_000 + ((k * 2_713) % 110_000);
      const dur = ms + (i % 4);
      const failed = i < errors;
      const ns = (t) => (BigInt(t) * 1_000_000n).toString();
      spans.push({
        service: SERVICE, traceId, spanId: root, parentSpanId: '', name: op, kind: 2,
        startTimeUnixNano: ns(start), endTimeUnixNano: ns(start + dur), attributes: [],
        status: failed ? { code: 2, message: 'card declined' } : { code: 0 },
      }, {
        service: 'db', traceId, spanId: child, parentSpanId: root, name: 'query', kind: 3,
        startTimeUnixNano: ns(start + 1), endTimeUnixNano: ns(start + dur - 1), attributes: [], status: { code: 0 },
      });
      traces.push({ traceId, rootSpanId: root, op, start, end: start + dur });
    }
  }
  return { body: request(spans), traces };
}

let server, chrome, page, fx, ready;

// Metrics are flushed by the receivers and exemplars come from stored
// traces: wait (once) until the API has every operation and an exemplar.
function metricsReady() {
  ready ??= (async () => {
    await poll('span metrics of every operation', async () => {
      const q = `service=${SERVICE}&groupByOperation=true&spanKind=server&endTs=${Date.now()}&lookback=900000&step=30000&ratePer=30000`;
      const r = await getJSON(server, `/api/metrics/calls?${q}`);
      const ops = (r.metrics || []).filter((m) => m.metricPoints.length).map((m) => m.labels.find((l) => l.name === 'operation').value);
      return Object.keys(OPS).every((op) => ops.includes(op));
    }, 90_000, 500);
    await poll('exemplars', async () => {
      const r = await getJSON(server, `/api/metrics/exemplars?service=${SERVICE}&endTs=${Date.now()}&lookback=900000`);
      return (r.exemplars || []).length > 0;
    }, 60_000, 500);
  })();
  return ready;
}

const pageErrors = [];
const consoleErrors = [];

before(async () => {
  requireChromium();
  server = await startStrand(BIN, LINKS);
  fx = workload();
  await ingest(server, fx.body);
  await poll('the traces to be stored', async () => {
    const r = await getJSON(server, `/api/traces/${fx.traces[fx.traces.length - 1].traceId}`);
    return r.data && r.data[0] && r.data[0].spans.length === 2;
  }, 30_000);
  chrome = await launch({ width: 1280, height: 900 });
  ({ page } = chrome);
  page.on('pageerror', (e) => pageErrors.push(e.message));
  page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
  mkdirSync(ARTIFACTS, { recursive: true });
});

after(async () => {
  if (chrome) await chrome.close();
  if (server) await server.stop();
});

const traceIds = () => new Set(fx.traces.map((t) => t.traceId));
const cellValues = (col) => page.locator(`#ops-table tbody td:nth-child(${col})`).evaluateAll((els) => els.map((e) => (e.dataset.v === '' ? null : Number(e.dataset.v))));
const tableOps = () => page.locator('#ops-table tbody tr').evaluateAll((els) => els.map((e) => e.dataset.op));

test('Monitor page: charts, sortable operations table, exemplar opens its trace', async () => {
  await metricsReady();
  await page.goto(`${server.queryUrl}/search`);
  await page.click('[data-nav="monitor"]');
  await page.waitForURL(/\/monitor\?service=/);
  await page.goto(`${server.queryUrl}/monitor?service=${SERVICE}&lookback=15m`);
  await page.waitForSelector('#ops-table tbody tr');

  // Every chart has a drawn line with points.
  for (const [chart, series] of [['latency', 'p50'], ['latency', 'p95'], ['latency', 'p99'], ['rate', 'rate'], ['errors', 'errors']]) {
    const d = await page.getAttribute(`[data-chart="${chart}"] path.series[data-series="${series}"]`, 'd');
    assert.match(d || '', /^M\d/, `${chart}/${series} has a path`);
    assert.ok(await page.locator(`[data-chart="${chart}"] circle.pt[data-series="${series}"]`).count() > 0, `${chart}/${series} points`);
  }
  const exemplars = await page.locator('[data-chart="latency"] circle.exemplar').evaluateAll((els) => els.map((e) => e.dataset.traceId));
  assert.ok(exemplars.length > 0, 'exemplar dots on the latency chart');
  for (const id of exemplars) assert.ok(traceIds().has(id), `exemplar ${id} is one of the sent traces`);
  await page.screenshot({ path: path.join(ARTIFACTS, 'monitor.png'), fullPage: true });

  // The table: one row per operation; each column sorts, a second click reverses.
  assert.deepEqual((await tableOps()).sort(), Object.keys(OPS).sort());
  const cols = { rate: 2, errorRate: 3, p50: 4, p95: 5, p99: 6 };
  const top = { rate: 'GET /fast', errorRate: 'POST /pay', p50: 'GET /slow', p95: 'GET /slow', p99: 'GET /slow' };
  for (const [key, col] of Object.entries(cols)) {
    await page.click(`#ops-table th[data-sort="${key}"]`);
    if (key === 'rate') await page.click(`#ops-table th[data-sort="${key}"]`); // rate was the default: back to descending
    assert.equal(await page.getAttribute(`#ops-table th[data-sort="${key}"]`, 'aria-sort'), 'descending');
    const v = await cellValues(col);
    assert.deepEqual(v, v.slice().sort((a, b) => b - a), `${key} largest first: ${v}`);
    assert.equal((await tableOps())[0], top[key], `${key}: ${top[key]} first`);
    await page.click(`#ops-table th[data-sort="${key}"]`);
    assert.deepEqual(await cellValues(col), v.slice().reverse(), `${key} reversed`);
  }
  assert.match(page.url(), /sort=p99&dir=asc/, 'the sort is in the URL');

  // Clicking an exemplar dot opens that trace (the last drawn is on top of any it overlaps).
  const id = exemplars[exemplars.length - 1];
  await page.locator(`[data-chart="latency"] circle.exemplar[data-trace-id="${id}"]`).last().click();
  await page.waitForURL(`**/trace/${id}`);
  await page.waitForSelector('#tl-rows .row');
  assert.equal(await page.locator('.trace-header code.tid').innerText(), id);
});

test('clicking a chart point opens a trace from that window', async () => {
  await metricsReady();
  await page.goto(`${server.queryUrl}/monitor?service=${SERVICE}&lookback=15m`);
  await page.waitForSelector('[data-chart="latency"] circle.exemplar');
  // A point at t covers [t - step, t); an exemplar is stamped with its
  // span's start, so allow one window either side.
  const pts = await page.evaluate(() => {
    const step = Number(document.querySelector('.charts').dataset.step);
    const ex = [...document.querySelectorAll('[data-chart="latency"] circle.exemplar')]
      .map((e) => ({ id: e.dataset.traceId, t: Number(e.dataset.t) }));
    return [...document.querySelectorAll('[data-chart="latency"] circle.pt[data-series="p99"]')].map((p) => {
      const t = Number(p.dataset.t);
      return { t, step, near: ex.filter((e) => e.t >= t - 2 * step && e.t < t + step).map((e) => e.id) };
    });
  });
  const withEx = pts.find((p) => p.near.length);
  assert.ok(withEx, 'a latency point with an exemplar in or beside its window');
  await page.locator(`[data-chart="latency"] circle.pt[data-series="p99"][data-t="${withEx.t}"]`).dispatchEvent('click');
  await page.waitForURL('**/trace/*');
  const opened = decodeURIComponent(new URL(page.url()).pathname.split('/').pop());
  assert.ok(withEx.near.includes(opened), `opened ${opened}, one of the window's exemplars ${withEx.near}`);
  await page.waitForSelector('#tl-rows .row');
});

test('trace page: correlation links with substituted values on the header and the span panel', async () => {
  const t = fx.traces.find((x) => x.op === 'GET /slow');
  await page.goto(`${server.queryUrl}/trace/${t.traceId}`);
  await page.waitForSelector('#tl-rows .row');

  // Trace header: the trace-scoped link, filled with the trace's id and interval.
  const kibana = page.locator('.th-links .ext-link', { hasText: 'Trace in Kibana' });
  await kibana.waitFor();
  const iso = (ms) => encodeURIComponent(new Date(ms).toISOString());
  assert.equal(await kibana.getAttribute('href'),
    `https://kibana.example/app/discover#/?q=trace.id:${t.traceId}&from=${iso(t.start)}&to=${iso(t.end)}`);
  assert.equal(await page.locator('.th-links .ext-link', { hasText: 'Span logs' }).count(), 0, 'span links stay on the span panel');
  assert.equal(new URL(await page.getAttribute('.th-links .metrics-link', 'href'), server.queryUrl).search,
    `?service=${SERVICE}&operation=${encodeURIComponent('GET /slow').replace(/%20/g, '+')}&spanKind=server`);

  // Span panel: the root span's link, URL-encoded values, ms epoch times.
  await page.locator('#tl-rows .row').first().click();
  const logs = page.locator('.sd-links .ext-link', { hasText: 'Span logs' });
  await logs.waitFor();
  assert.equal(await logs.getAttribute('href'),
    `https://logs.example/search?trace=${t.traceId}&span=${t.rootSpanId}&svc=${SERVICE}&op=GET%20%2Fslow&from=${t.start}&to=${t.end}`);
  assert.equal(await logs.getAttribute('target'), '_blank');
  await page.screenshot({ path: path.join(ARTIFACTS, 'trace-links.png') });
  assert.deepEqual(pageErrors, []);
});

test('span panel → Monitor page with service, operation and kind preselected', async () => {
  await metricsReady();
  const t = fx.traces.find((x) => x.op === 'GET /slow');
  await page.goto(`${server.queryUrl}/trace/${t.traceId}`);
  await page.waitForSelector('#tl-rows .row');
  await page.locator('#tl-rows .row').first().click();
  await page.click('.sd-links .metrics-link');
  await page.waitForURL(/\/monitor\?/);
  await page.waitForSelector('#ops-table tbody tr.sel');
  assert.equal(await page.locator('#ops-table tbody tr.sel').getAttribute('data-op'), 'GET /slow');
  assert.match(await page.locator('.monitor-head h2').innerText(), /shop-api · GET \/slow/);
  assert.equal(await page.inputValue('#m-service'), SERVICE);
  assert.equal(await page.inputValue('#m-kind'), 'server');
  const d = await page.getAttribute('[data-chart="latency"] path.series[data-series="p50"]', 'd');
  assert.match(d || '', /^M\d/, 'the operation\'s own latency is charted');

  assert.deepEqual(pageErrors, []);
  assert.deepEqual(consoleErrors, []);
});
