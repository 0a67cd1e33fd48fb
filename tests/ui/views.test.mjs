import test from 'node:test';
import assert from 'node:assert/strict';
import { buildTree } from '../../ui/tree.js';
import { criticalPath, selfTimes } from '../../ui/critical.js';
import { diffTraces, diffSummary } from '../../ui/diff.js';
import { spanRows, sortRows, filterRows } from '../../ui/table.js';

const span = (id, start, end, parent, refType = 'CHILD_OF', extra = {}) => ({
  spanID: id, operationName: extra.op || id, startTime: start, duration: end - start, processID: extra.p || 'p1',
  references: parent ? [{ refType, spanID: parent }] : [], tags: extra.tags || [],
});

const named = (tree, sections) => sections.map((s) => [tree.spans[s.i].spanID, s.start, s.end]);

test('critical path walks back from the root through the last-finishing children', () => {
  const t = buildTree([
    span('root', 0, 100),
    span('a', 10, 40, 'root'), // overlaps b, which ends later: parallel, not on the path
    span('b', 20, 90, 'root'),
    span('b1', 30, 60, 'b'),
    span('b2', 65, 95, 'b'), // ends after its parent: clipped to 90
    span('late', 50, 120, 'root', 'FOLLOWS_FROM'), // does not hold the root up
  ]);
  const { sections, bySpan } = criticalPath(t);
  assert.deepEqual(named(t, sections), [
    ['root', 0, 20], ['b', 20, 30], ['b1', 30, 60], ['b', 60, 65], ['b2', 65, 90], ['root', 90, 100],
  ]);
  // The path covers the root exactly once, end to end.
  assert.equal(sections.reduce((n, s) => n + s.end - s.start, 0), 100);
  for (let k = 1; k < sections.length; k++) assert.equal(sections[k].start, sections[k - 1].end);
  assert.equal(bySpan.has(1), false, 'the overlapped child is off the path');
  assert.equal(bySpan.has(5), false, 'FOLLOWS_FROM children are off the path');
  assert.deepEqual(bySpan.get(2), [[20, 30], [60, 65]]);
});

test('sequential children are all on the path; gaps belong to the parent', () => {
  const t = buildTree([span('r', 0, 50), span('x', 5, 20, 'r'), span('y', 20, 40, 'r'), span('z', 42, 45, 'r')]);
  assert.deepEqual(named(t, criticalPath(t).sections), [
    ['r', 0, 5], ['x', 5, 20], ['y', 20, 40], ['r', 40, 42], ['z', 42, 45], ['r', 45, 50],
  ]);
});

test('the child that ends last wins, not the one that starts last', () => {
  // `short` starts later but ends earlier, inside `long`: they ran in parallel.
  const t = buildTree([span('r', 0, 100), span('long', 10, 80, 'r'), span('short', 20, 30, 'r')]);
  assert.deepEqual(named(t, criticalPath(t).sections), [['r', 0, 10], ['long', 10, 80], ['r', 80, 100]]);
});

test('clock skew: children outside the parent are ignored, straddling ones clipped', () => {
  const t = buildTree([
    span('r', 100, 200),
    span('early', 50, 130, 'r'), // starts before the parent: clipped to 100..130
    span('after', 210, 260, 'r'), // entirely after the parent ended
    span('kid', 220, 230, 'after'),
  ]);
  const { sections, bySpan } = criticalPath(t);
  assert.deepEqual(named(t, sections), [['early', 100, 130], ['r', 130, 200]]);
  assert.equal(bySpan.has(2) || bySpan.has(3), false);
});

test('critical path of a 50,000-deep chain does not overflow the stack', () => {
  const n = 50000;
  const spans = Array.from({ length: n }, (_, i) => span('s' + i, i, 2 * n - i, i ? 's' + (i - 1) : null));
  const { sections } = criticalPath(buildTree(spans));
  assert.equal(sections.reduce((a, s) => a + s.end - s.start, 0), 2 * n);
  assert.equal(new Set(sections.map((s) => s.i)).size, n);
});

test('self time subtracts the union of children, clipped to the span', () => {
  const t = buildTree([
    span('r', 0, 100), span('a', 10, 40, 'r'), span('b', 30, 60, 'r'), span('c', 90, 130, 'r'), span('leaf', 11, 12, 'a'),
  ]);
  assert.deepEqual([...selfTimes(t)], [100 - 50 - 10, 29, 30, 40, 1]);
});

const trace = (id, defs) => ({
  traceID: id,
  processes: { p1: { serviceName: 'frontend' }, p2: { serviceName: 'cart' }, p3: { serviceName: 'checkout' }, p4: { serviceName: 'payment' }, p5: { serviceName: 'shipping' } },
  spans: defs.map(([sid, p, op, parent, start]) => span(sid, start, start + 10, parent, 'CHILD_OF', { p, op })),
});

test('trace diff matches spans by their (service, operation) path', () => {
  const a = trace('A', [
    ['1', 'p1', 'GET /', null, 0], ['2', 'p2', 'GetCart', '1', 1], ['3', 'p2', 'GetCart', '1', 2],
    ['4', 'p3', 'PlaceOrder', '1', 3], ['5', 'p4', 'Charge', '4', 4], ['6', 'p2', 'GetCart', '4', 5],
  ]);
  const b = trace('B', [
    ['x1', 'p1', 'GET /', null, 0], ['x2', 'p2', 'GetCart', 'x1', 1],
    ['x4', 'p3', 'PlaceOrder', 'x1', 3], ['x5', 'p5', 'GetQuote', 'x4', 4], ['x6', 'p2', 'GetCart', 'x4', 5],
  ]);
  const rows = diffTraces(a, b);
  const view = rows.map((r) => [' '.repeat(r.depth) + r.service + ' ' + r.operation, r.a, r.b, r.state]);
  assert.deepEqual(view, [
    ['frontend GET /', 1, 1, 'same'],
    [' cart GetCart', 2, 1, 'changed'],
    [' checkout PlaceOrder', 1, 1, 'same'],
    ['  payment Charge', 1, 0, 'removed'],
    ['  cart GetCart', 1, 1, 'same'], // same operation under another parent is another node
    ['  shipping GetQuote', 0, 1, 'added'],
  ]);
  assert.deepEqual(diffSummary(rows), { added: 1, removed: 1, changed: 1, same: 3 });
  assert.equal(rows[1].durA, 20);
  assert.equal(rows[1].durB, 10);
  assert.equal(diffTraces(a, a).every((r) => r.state === 'same'), true);
});

test('span table rows sort by each column and filter by text', () => {
  const spans = [
    span('r', 1000, 1100, null, 'CHILD_OF', { op: 'GET /cart', tags: [{ key: 'span.kind', value: 'server' }] }),
    span('q', 1010, 1090, 'r', 'CHILD_OF', { op: 'HGETALL', tags: [{ key: 'span.kind', value: 'client' }, { key: 'otel.status_code', value: 'ERROR' }] }),
    span('z', 1020, 1030, 'r', 'CHILD_OF', { op: 'render' }),
  ];
  const t = buildTree(spans);
  const rows = spanRows(spans, ['frontend', 'redis', 'frontend'], selfTimes(t), 1000);
  assert.deepEqual(rows.map((r) => [r.offset, r.self, r.status, r.kind]),
    [[0, 20, 'UNSET', 'server'], [10, 80, 'ERROR', 'client'], [20, 10, 'UNSET', 'internal']]);
  const ops = (rs) => rs.map((r) => r.operation);
  assert.deepEqual(ops(sortRows(rows, 'duration', 'desc')), ['GET /cart', 'HGETALL', 'render']);
  assert.deepEqual(ops(sortRows(rows, 'duration', 'asc')), ['render', 'HGETALL', 'GET /cart']);
  assert.deepEqual(ops(sortRows(rows, 'self', 'desc')), ['HGETALL', 'GET /cart', 'render']);
  assert.deepEqual(ops(sortRows(rows, 'operation')), ['GET /cart', 'HGETALL', 'render']);
  assert.deepEqual(ops(sortRows(rows, 'service', 'desc')), ['HGETALL', 'GET /cart', 'render'], 'ties keep start order');
  assert.deepEqual(ops(filterRows(rows, 'REDIS')), ['HGETALL']);
  assert.deepEqual(ops(filterRows(rows, 'error')), ['HGETALL']);
  assert.equal(filterRows(rows, '  ').length, 3);
});
