import test from 'node:test';
import assert from 'node:assert/strict';
import { buildTree, visibleRows, toggle, expandTo, collapseBelow } from '../../ui/tree.js';

const span = (id, start, parent, refType = 'CHILD_OF') => ({
  spanID: id, startTime: start, duration: 10,
  references: parent ? [{ refType, traceID: 't', spanID: parent }] : [],
});

const ids = (tree, rows) => rows.map((i) => tree.spans[i].spanID);

test('builds pre-order with children sorted by start time', () => {
  const t = buildTree([span('c', 30, 'a'), span('a', 0), span('b', 10, 'a'), span('d', 15, 'b')]);
  assert.deepEqual(ids(t, [...t.order]), ['a', 'b', 'd', 'c']);
  assert.deepEqual([...t.order].map((i) => t.depth[i]), [0, 1, 2, 1]);
  assert.equal(t.size[t.order[0]], 4);
});

test('orphans whose parent is missing become roots', () => {
  const t = buildTree([span('a', 0), span('x', 5, 'missing'), span('b', 1, 'a')]);
  assert.deepEqual(ids(t, t.roots), ['a', 'x']);
  assert.deepEqual(ids(t, [...t.order]), ['a', 'b', 'x']);
  assert.equal(t.depth[1], 0);
});

test('CHILD_OF wins over FOLLOWS_FROM; FOLLOWS_FROM alone is a parent', () => {
  const s = span('c', 5);
  s.references = [{ refType: 'FOLLOWS_FROM', spanID: 'b' }, { refType: 'CHILD_OF', spanID: 'a' }];
  const t = buildTree([span('a', 0), span('b', 1, 'a'), s, span('d', 9, 'b', 'FOLLOWS_FROM')]);
  assert.equal(t.spans[t.parent[2]].spanID, 'a');
  assert.equal(t.spans[t.parent[3]].spanID, 'b');
});

test('reference cycles are cut so every span shows exactly once', () => {
  const t = buildTree([span('a', 0, 'b'), span('b', 1, 'a'), span('r', 2), span('self', 3, 'self')]);
  const order = [...t.order];
  assert.equal(new Set(order).size, 4);
  assert.equal(order.length, 4);
});

test('deep chains do not overflow the call stack', () => {
  const n = 50000;
  const spans = Array.from({ length: n }, (_, i) => span('s' + i, i, i ? 's' + (i - 1) : null));
  const t = buildTree(spans);
  assert.equal(t.depth[n - 1], n - 1);
  assert.equal(t.size[0], n);
});

test('collapse hides the subtree, expand restores it', () => {
  const t = buildTree([span('a', 0), span('b', 1, 'a'), span('c', 2, 'b'), span('d', 3, 'a')]);
  const collapsed = new Set();
  assert.equal(visibleRows(t, collapsed).length, 4);
  assert.equal(toggle(t, collapsed, 1), true);
  assert.deepEqual(ids(t, visibleRows(t, collapsed)), ['a', 'b', 'd']);
  assert.equal(toggle(t, collapsed, 0), true);
  assert.deepEqual(ids(t, visibleRows(t, collapsed)), ['a']);
  expandTo(t, collapsed, 2);
  assert.deepEqual(ids(t, visibleRows(t, collapsed)), ['a', 'b', 'c', 'd']);
  assert.equal(toggle(t, collapsed, 2), false, 'a leaf never collapses');
  assert.equal(visibleRows(t, collapsed).length, 4);
});

test('collapseBelow folds nodes at and past a depth', () => {
  const t = buildTree([span('a', 0), span('b', 1, 'a'), span('c', 2, 'b'), span('d', 3, 'a')]);
  const collapsed = new Set();
  collapseBelow(t, collapsed, 1);
  assert.deepEqual(ids(t, visibleRows(t, collapsed)), ['a', 'b', 'd']);
});
