// Unit tests of the Monitor page's pure logic and the SVG chart module.
import test from 'node:test';
import { readFileSync } from 'node:fs';
import assert from 'node:assert/strict';
import {
  pickStep, metricsQuery, exemplarsQuery, ALL_KINDS, parseTimestamp, parseValue, parseFamily, byOperation, single, opsRows, sortRows,
  exemplarFor, alignedEnd, searchUrl, monitorUrl, kindOf, fmtRate, fmtPct, fmtStep, rateAxisFmt,
} from '../../ui/monitor-model.js';
import { scale, linePath, valueTicks, lineChart, isolated } from '../../ui/chart.js';

const family = (series) => ({
  name: 'service_operation_call_rate', type: 'GAUGE', help: '',
  metrics: series.map(([op, pts]) => ({
    labels: [{ name: 'service_name', value: 'shop' }, ...(op === null ? [] : [{ name: 'operation', value: op }])],
    metricPoints: pts.map(([t, v]) => ({ gaugeValue: { doubleValue: v }, timestamp: new Date(t).toISOString() })),
  })),
});

test('step: round multiples of 10 s, at most 60 points', () => {
  assert.equal(pickStep(15 * 60e3), 30e3);
  assert.equal(pickStep(3600e3), 60e3);
  assert.equal(pickStep(24 * 3600e3), 1800e3);
  assert.equal(pickStep(60e3), 10e3, 'never finer than the stored resolution');
  assert.equal(pickStep(60e3, 60e3), 60e3);
  assert.equal(pickStep(3600e3, 7e3), 63e3, 'an odd resolution: a multiple of it');
  for (const lb of [15 * 60e3, 3600e3, 6 * 3600e3, 7 * 86400e3, 30 * 86400e3]) {
    const s = pickStep(lb);
    assert.ok(lb / s <= 60, `${lb}: ${s}`);
    assert.equal(s % 10e3, 0);
  }
});

test('metrics query carries every parameter Jaeger defines', () => {
  const q = new URLSearchParams(metricsQuery({ service: 'a b', groupByOperation: true, spanKind: 'server', endTs: 1000.4, lookback: 60e3, step: 10e3, quantile: 0.95 }));
  assert.deepEqual(Object.fromEntries(q), {
    service: 'a b', groupByOperation: 'true', spanKind: 'server', endTs: '1000', lookback: '60000', step: '10000', ratePer: '10000', quantile: '0.95',
  });
  assert.equal(new URLSearchParams(metricsQuery({ service: 's', endTs: 1, lookback: 1, step: 1 })).has('spanKind'), false);
  const all = new URLSearchParams(metricsQuery({ service: 's', spanKind: ALL_KINDS, endTs: 1, lookback: 1, step: 1 }));
  assert.deepEqual(all.getAll('spanKind'), ['server', 'client', 'producer', 'consumer', 'internal', 'unspecified'], 'all kinds are named');
  const ex = new URLSearchParams(exemplarsQuery({ service: 's', operation: 'o', spanKind: '', endTs: 5, lookback: 2 }));
  assert.deepEqual(Object.fromEntries(ex), { service: 's', operation: 'o', endTs: '5', lookback: '2' });
});

test('timestamps and values in every spelling Jaeger uses', () => {
  const t = Date.parse('2026-12-02T10:00:00.500Z');
  assert.equal(parseTimestamp('2026-12-02T10:00:00.500Z'), t);
  assert.equal(parseTimestamp(t), t);
  assert.equal(parseTimestamp(t / 1000), t, 'epoch seconds');
  assert.equal(parseTimestamp({ seconds: String(t / 1000 - 0.5), nanos: 5e8 }), t);
  assert.equal(parseTimestamp('nope'), null);
  assert.equal(parseValue({ doubleValue: 1.5 }), 1.5);
  assert.equal(parseValue({ doubleValue: '2.5' }), 2.5);
  assert.equal(parseValue({ doubleValue: 'NaN' }), null);
  assert.equal(parseValue({ doubleValue: null }), null);
  assert.equal(parseValue({}), null);
});

test('families parse into sorted series per operation', () => {
  const f = family([['GET /', [[2000, 2], [1000, 1]]], ['POST /', [[1000, '3']]]]);
  const s = parseFamily(f);
  assert.deepEqual(s[0], { operation: 'GET /', service: 'shop', points: [{ t: 1000, v: 1 }, { t: 2000, v: 2 }] });
  assert.deepEqual(byOperation(f).get('POST /'), [{ t: 1000, v: 3 }]);
  assert.deepEqual(single(family([[null, [[5, 1]]]])), [{ t: 5, v: 1 }]);
  assert.deepEqual(single({ metrics: [] }), []);
  assert.deepEqual(parseFamily(null), []);
});

test('the metrics API fixture the server side is tested against parses', () => {
  const f = JSON.parse(readFileSync(new URL('../fixtures/metrics/calls-by-operation.json', import.meta.url), 'utf8'));
  const g = byOperation(f);
  assert.deepEqual([...g.keys()], ['GET /cart', 'POST /pay']);
  const cart = g.get('GET /cart');
  assert.deepEqual(cart.map((p) => p.v), [0, 0.2, 0]);
  assert.equal(cart[1].t - cart[0].t, 20_000);
  assert.equal(cart[0].t, Date.parse('1970-01-01T00:16:40Z'));
  assert.equal(parseValue({ doubleValue: 'Infinity' }), null);
});

test('operations table: each operation at the end of its one whole-range window', () => {
  const g = {
    calls: byOperation(family([['a', [[0, 1], [10, 3]]], ['b', [[0, 2]]]])),
    errors: byOperation(family([['a', [[0, 0], [10, 0.5]]], ['b', [[0, 0]]]])),
    p50: byOperation(family([['a', [[0, 10], [10, 30]]]])),
    p95: byOperation(family([['a', [[0, 100], [10, null]]]])),
    p99: byOperation(family([['c', [[10, 7]]]])),
  };
  const end = byOperation(family([['x', [[10, 0]]]])).get('x')[0].t;
  const rows = Object.fromEntries(opsRows(g, end).map((r) => [r.operation, r]));
  assert.equal(rows.a.rate, 3, 'the point at the end covers the whole range');
  assert.equal(rows.a.errorRate, 0.5);
  assert.equal(rows.a.p50, 30);
  assert.equal(rows.a.p95, null, 'no data (NaN) stays empty');
  assert.equal(rows.b.rate, 0, 'no point at the end: no calls in the range');
  assert.equal(rows.b.p50, null);
  assert.equal(rows.c.rate, 0);
  assert.equal(rows.c.p99, 7);
});

test('sorting: numbers largest first, names A→Z, reversible, missing values last', () => {
  const rows = [
    { operation: 'b', rate: 1, p95: null }, { operation: 'a', rate: 3, p95: 5 }, { operation: 'c', rate: 1, p95: 9 },
  ];
  assert.deepEqual(sortRows(rows, 'rate').map((r) => r.operation), ['a', 'b', 'c'], 'ties by name');
  assert.deepEqual(sortRows(rows, 'rate', false).map((r) => r.operation), ['b', 'c', 'a']);
  assert.deepEqual(sortRows(rows, 'p95').map((r) => r.operation), ['c', 'a', 'b']);
  assert.deepEqual(sortRows(rows, 'p95', false).map((r) => r.operation), ['a', 'c', 'b']);
  assert.deepEqual(sortRows(rows, 'operation').map((r) => r.operation), ['a', 'b', 'c']);
  assert.deepEqual(sortRows(rows, 'operation', true).map((r) => r.operation), ['c', 'b', 'a']);
  assert.equal(rows[0].operation, 'b', 'input untouched');
});

test('a chart point opens the slowest exemplar of its window [t - step, t), else the nearest', () => {
  const ex = [
    { traceId: 'x', timestampMs: 1005, durationMs: 5 }, { traceId: 'y', timestampMs: 1009, durationMs: 50 },
    { traceId: 'z', timestampMs: 1032, durationMs: 1 }, { traceId: 'w', timestampMs: 1010, durationMs: 99 },
  ];
  assert.equal(exemplarFor(ex, 1010, 10).traceId, 'y', 'w starts the next window');
  assert.equal(exemplarFor(ex, 1020, 10).traceId, 'w');
  assert.equal(exemplarFor(ex, 1030, 10).traceId, 'z', 'none inside: the nearest');
  assert.equal(exemplarFor(ex, 2000, 10), null);
  assert.equal(exemplarFor([], 0, 10), null);
  assert.equal(alignedEnd(1_000_001), 1_010_000);
  assert.equal(alignedEnd(1_010_000), 1_010_000);
});

test('links to search and to the Monitor page', () => {
  const u = new URL('http://x' + searchUrl('shop', 'GET /a', Date.UTC(2026, 0, 2, 3, 4, 5), Date.UTC(2026, 0, 2, 3, 5, 5)));
  assert.equal(u.pathname, '/search');
  assert.equal(u.searchParams.get('operation'), 'GET /a');
  assert.equal(u.searchParams.get('lookback'), 'custom');
  assert.equal(Date.parse(u.searchParams.get('start')), Date.UTC(2026, 0, 2, 3, 4, 5), 'local time the search form reads back');
  assert.equal(Date.parse(u.searchParams.get('end')) - Date.parse(u.searchParams.get('start')), 60e3);
  assert.equal(monitorUrl('a&b', 'op/1', 'server'), '/monitor?service=a%26b&operation=op%2F1&spanKind=server');
  assert.equal(monitorUrl('a', '', ''), '/monitor?service=a');
  assert.equal(kindOf('SERVER'), 'server');
  assert.equal(kindOf(undefined), '');
  assert.equal(kindOf('weird'), '');
});

test('rate and percentage formatting', () => {
  assert.equal(fmtRate(250.4), '250/s');
  assert.equal(fmtRate(2.345), '2.35/s');
  assert.equal(fmtRate(0.5), '30/min');
  assert.equal(fmtRate(1 / 7200), '0.5/h');
  assert.equal(fmtRate(null), '–');
  assert.equal(fmtPct(0.25), '25%');
  assert.equal(fmtPct(0.0123), '1.23%');
  assert.equal(fmtPct(0), '0%');
  assert.deepEqual([0.5, 1].map(rateAxisFmt(1.2)), ['0.5/s', '1/s'], 'one unit on an axis');
  assert.deepEqual([0.25, 0.5].map(rateAxisFmt(0.6)), ['15/min', '30/min']);
  assert.deepEqual([10e3, 90e3, 60e3, 1800e3, 3 * 3600e3, 86400e3].map(fmtStep), ['10s', '90s', '1m', '30m', '3h', '1d']);
});

test('chart: line breaks at nulls and gaps, round value ticks', () => {
  const x = scale(0, 100, 0, 1000), y = scale(0, 10, 100, 0);
  assert.equal(x(50), 500);
  assert.equal(scale(5, 5, 7, 9)(5), 7);
  const pts = [{ t: 0, v: 0 }, { t: 10, v: 5 }, { t: 20, v: null }, { t: 30, v: 10 }, { t: 90, v: 10 }];
  assert.equal(linePath(pts, x, y), 'M0.0 100.0 L100.0 50.0 M300.0 0.0 L900.0 0.0');
  assert.equal(linePath(pts, x, y, 15), 'M0.0 100.0 L100.0 50.0 M300.0 0.0 M900.0 0.0');
  assert.equal(linePath([], x, y), '');
  assert.deepEqual([...isolated(pts)], [], 'every point has a neighbour');
  assert.deepEqual([...isolated(pts, 15)], [3, 4], 'after a null or across a gap a point stands alone');
  assert.deepEqual(valueTicks(9), [0, 5, 10], 'the last tick covers the maximum');
  assert.deepEqual(valueTicks(0.03), [0, 0.01, 0.02, 0.03]);
  assert.deepEqual(valueTicks(0), [0]);
});

test('chart SVG: one path per series, a marker per point, exemplar dots with their trace', () => {
  const svg = lineChart({
    width: 400, height: 150, x0: 0, x1: 60e3, step: 10e3, yFmt: (v) => `${v}ms`, label: 'Latency',
    series: [{ name: 'p50', color: '#111', points: [{ t: 0, v: 1 }, { t: 10e3, v: 2 }] }, { name: 'p99', color: '#222', points: [] }],
    dots: [{ t: 5e3, v: 40, traceId: 'abc<', title: 'slow' }],
  });
  assert.equal((svg.match(/<path class="series"/g) || []).length, 2);
  assert.match(svg, /data-series="p50" stroke="#111" d="M\d/);
  assert.match(svg, /data-series="p99" stroke="#222" d=""/);
  assert.equal((svg.match(/class="pt"/g) || []).length, 2);
  const solo = lineChart({ width: 400, x0: 0, x1: 60e3, step: 10e3, yFmt: String, series: [{ name: 'e', color: '#333', points: [{ t: 0, v: 1 }, { t: 30e3, v: 2 }] }] });
  assert.equal((solo.match(/class="pt solo"/g) || []).length, 2, 'points without a neighbour get a visible marker');
  assert.match(svg, /data-t="10000"/);
  assert.match(svg, /class="exemplar" data-trace-id="abc&lt;"/);
  assert.match(svg, />40ms<|>50ms</, 'the y axis reaches the exemplar');
});
