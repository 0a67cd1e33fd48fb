import test from 'node:test';
import assert from 'node:assert/strict';
import { virtualWindow, scrollToRow } from '../../ui/virtual.js';
import { ticks, niceStep, formatDuration, parseDuration } from '../../ui/axis.js';
import { ColorAssigner, PALETTE } from '../../ui/colors.js';
import { summarizeTrace, isErrorSpan, skewShift, parseTags, buildSearchQuery } from '../../ui/model.js';
import { layoutGraph } from '../../ui/layout.js';

test('virtual window renders only the viewport plus overscan', () => {
  const w = virtualWindow({ scrollTop: 24000, viewportHeight: 480, rowHeight: 24, rowCount: 50000, overscan: 5 });
  assert.equal(w.start, 995);
  assert.equal(w.end, 1000 + 21 + 5);
  assert.equal(w.offsetTop, 995 * 24);
  assert.equal(w.totalHeight, 50000 * 24);
});

test('virtual window clamps at both ends and handles empty lists', () => {
  const top = virtualWindow({ scrollTop: -50, viewportHeight: 100, rowHeight: 10, rowCount: 5, overscan: 2 });
  assert.deepEqual([top.start, top.end], [0, 5]);
  const bottom = virtualWindow({ scrollTop: 1e9, viewportHeight: 100, rowHeight: 10, rowCount: 1000, overscan: 0 });
  assert.equal(bottom.end, 1000);
  assert.equal(bottom.start, 990);
  assert.deepEqual(virtualWindow({ scrollTop: 0, viewportHeight: 100, rowHeight: 10, rowCount: 0 }),
    { start: 0, end: 0, offsetTop: 0, totalHeight: 0 });
});

test('scrollToRow scrolls only when the row is off screen', () => {
  assert.equal(scrollToRow({ row: 5, scrollTop: 0, viewportHeight: 100, rowHeight: 10 }), 0);
  assert.equal(scrollToRow({ row: 50, scrollTop: 0, viewportHeight: 100, rowHeight: 10 }), 410);
  assert.equal(scrollToRow({ row: 2, scrollTop: 300, viewportHeight: 100, rowHeight: 10 }), 20);
});

test('ticks use 1-2-5 steps and cover the range', () => {
  assert.equal(niceStep(1000, 5), 200);
  assert.equal(niceStep(7, 5), 2);
  assert.equal(niceStep(9000, 4), 5000);
  const t = ticks(1000, 5);
  assert.deepEqual(t.map((x) => x.label), ['0µs', '200µs', '400µs', '600µs', '800µs', '1ms']);
  assert.equal(t.at(-1).frac, 1);
  const big = ticks(2.5e6, 5);
  assert.deepEqual(big.map((x) => x.label), ['0µs', '500ms', '1s', '1.5s', '2s', '2.5s']);
  assert.deepEqual(ticks(0).map((x) => x.label), ['0µs']);
});

test('durations format and parse', () => {
  assert.equal(formatDuration(850), '850µs');
  assert.equal(formatDuration(1250), '1.25ms');
  assert.equal(formatDuration(3.5e6), '3.5s');
  assert.equal(formatDuration(125e6), '2m 5s');
  assert.equal(parseDuration('100ms'), 100000);
  assert.equal(parseDuration('1.5s'), 1500000);
  assert.equal(parseDuration('abc'), null);
});

test('colours: one per service, stable, distinct beyond the palette', () => {
  const c = new ColorAssigner();
  c.assignAll(['web', 'db', 'api', 'db']);
  assert.equal(c.get('api'), PALETTE[0]);
  assert.equal(c.get('db'), PALETTE[1]);
  assert.equal(c.get('web'), c.get('web'));
  const all = Array.from({ length: 40 }, (_, i) => c.get('svc' + i));
  assert.equal(new Set(all).size, 40);
});

const trace = {
  traceID: 'abc',
  processes: { p1: { serviceName: 'frontend' }, p2: { serviceName: 'db' } },
  spans: [
    { spanID: '2', startTime: 1100, duration: 50, processID: 'p2', references: [{ refType: 'CHILD_OF', spanID: '1' }],
      tags: [{ key: 'otel.status_code', type: 'string', value: 'ERROR' }], warnings: ['clock skew adjustment: shifted +1234µs'] },
    { spanID: '1', startTime: 1000, duration: 500, processID: 'p1', operationName: 'GET /', references: [], tags: [] },
    { spanID: '3', startTime: 1200, duration: 400, processID: 'p2', references: [{ refType: 'CHILD_OF', spanID: '1' }],
      tags: [{ key: 'error', type: 'bool', value: true }] },
  ],
};

test('trace summary: root, services, duration, errors', () => {
  const s = summarizeTrace(trace);
  assert.equal(s.rootService, 'frontend');
  assert.equal(s.rootOperation, 'GET /');
  assert.equal(s.spanCount, 3);
  assert.equal(s.errorCount, 2);
  assert.equal(s.duration, 600);
  assert.deepEqual(s.services, [{ name: 'db', count: 2 }, { name: 'frontend', count: 1 }]);
});

test('errors and clock-skew shifts are recognised', () => {
  assert.equal(isErrorSpan(trace.spans[0]), true);
  assert.equal(isErrorSpan(trace.spans[1]), false);
  assert.equal(skewShift(trace.spans[0]), 1234);
  assert.equal(skewShift({ warnings: ['clock skew adjustment: shifted -2.5ms'] }), -2500);
  assert.equal(skewShift({ warnings: null }), null);
  assert.equal(skewShift({ warnings: ['clock skew adjustment: shifted -1500ns to fit within the parent span'] }), -1.5);
  assert.equal(skewShift({ warnings: ['something else'] }), null);
});

test('search form becomes a Jaeger query', () => {
  assert.deepEqual(parseTags('http.status_code=500 error=true\nmsg="a b"'),
    { 'http.status_code': '500', error: 'true', msg: 'a b' });
  const q = new URLSearchParams(buildSearchQuery({
    service: 'web', operation: 'GET', tags: 'a=1', minDuration: '100ms', lookback: '1h', limit: 50,
  }, 1_700_000_000_000));
  assert.equal(q.get('service'), 'web');
  assert.equal(q.get('operation'), 'GET');
  assert.equal(q.get('tags'), '{"a":"1"}');
  assert.equal(q.get('minDuration'), '100ms');
  assert.equal(q.get('end'), '1700000000000000');
  assert.equal(q.get('start'), String(1_700_000_000_000_000 - 3600e6));
  assert.equal(q.get('limit'), '50');
  const all = new URLSearchParams(buildSearchQuery({ service: '', operation: 'x', lookback: '15m' }, 0));
  assert.equal(all.has('service'), false);
  assert.equal(all.has('operation'), false);
});

test('dependency layout puts callees right of callers, survives cycles', () => {
  const g = layoutGraph([
    { parent: 'web', child: 'api', callCount: 3 }, { parent: 'api', child: 'db', callCount: 2 },
    { parent: 'web', child: 'db', callCount: 1 }, { parent: 'db', child: 'web', callCount: 1 },
  ]);
  const layer = Object.fromEntries(g.nodes.map((n) => [n.id, n.layer]));
  assert.equal(g.nodes.length, 3);
  assert.ok(layer.api > layer.web || layer.web > layer.db, 'some order survives the cycle');
  const dag = layoutGraph([{ parent: 'a', child: 'b' }, { parent: 'b', child: 'c' }, { parent: 'a', child: 'c' }]);
  const l2 = Object.fromEntries(dag.nodes.map((n) => [n.id, n.layer]));
  assert.deepEqual(l2, { a: 0, b: 1, c: 2 });
});

test('ticks inside a zoomed window sit on round values', async () => {
  const { ticksBetween } = await import('../../ui/axis.js');
  const t = ticksBetween(1234, 5678, 5);
  assert.deepEqual(t.map((x) => x.value), [2000, 3000, 4000, 5000]);
  assert.ok(t.every((x) => x.frac > 0 && x.frac < 1));
  assert.equal(ticksBetween(0, 1000, 5).at(-1).frac, 1);
});
