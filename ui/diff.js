// Structural diff of two traces, for the compare page. Pure logic,
// unit-tested under node.
//
// Spans are matched by their path of (service, operation) pairs from the
// root, so "checkout PlaceOrder under frontend GET /checkout" is the same
// node in both traces whatever the span ids. Each node counts its spans in
// A and in B; a node is `removed` (only in A), `added` (only in B),
// `changed` (in both, different counts) or `same`.
import { buildTree } from './tree.js';
import { serviceOf } from './model.js';

const SEP = '\u0000';

/** Path key → {service, operation, parentKey, depth, count, duration, first} for one trace. */
export function pathNodes(trace) {
  const spans = trace.spans || [];
  const tree = buildTree(spans);
  const keyOf = new Array(spans.length);
  const nodes = new Map();
  for (let j = 0; j < tree.order.length; j++) {
    const i = tree.order[j], p = tree.parent[i];
    const service = serviceOf(trace, spans[i]);
    const operation = String(spans[i].operationName);
    const parentKey = p >= 0 ? keyOf[p] : '';
    const key = parentKey + SEP + service + SEP + operation;
    keyOf[i] = key;
    let node = nodes.get(key);
    if (!node) {
      node = { key, service, operation, parentKey, depth: tree.depth[i], count: 0, duration: 0, first: j };
      nodes.set(key, node);
    }
    node.count++;
    node.duration += spans[i].duration;
  }
  return nodes;
}

/**
 * @returns Array of {key, service, operation, depth, a, b, durA, durB, state}
 *   in tree order: each node after its parent, siblings in the order they
 *   first occur (A's order, then B-only nodes by B's order).
 */
export function diffTraces(traceA, traceB) {
  const A = pathNodes(traceA), B = pathNodes(traceB);
  const merged = new Map();
  for (const [side, nodes] of [['a', A], ['b', B]]) {
    for (const n of nodes.values()) {
      let m = merged.get(n.key);
      if (!m) {
        m = { key: n.key, service: n.service, operation: n.operation, parentKey: n.parentKey, depth: n.depth,
          a: 0, b: 0, durA: 0, durB: 0, rank: (side === 'a' ? 0 : 1e9) + n.first };
        merged.set(n.key, m);
      }
      m[side] = n.count;
      m[side === 'a' ? 'durA' : 'durB'] = n.duration;
    }
  }
  const kids = new Map();
  for (const m of merged.values()) {
    m.state = !m.a ? 'added' : !m.b ? 'removed' : m.a !== m.b ? 'changed' : 'same';
    if (!kids.has(m.parentKey)) kids.set(m.parentKey, []);
    kids.get(m.parentKey).push(m);
  }
  for (const list of kids.values()) list.sort((x, y) => x.rank - y.rank);
  const out = [];
  const stack = [...(kids.get('') || [])].reverse();
  while (stack.length) {
    const m = stack.pop();
    const { parentKey, rank, ...row } = m;
    out.push(row);
    const c = kids.get(m.key);
    if (c) for (let j = c.length - 1; j >= 0; j--) stack.push(c[j]);
  }
  return out;
}

/** Counts of nodes per state, for the page header. */
export function diffSummary(rows) {
  const s = { added: 0, removed: 0, changed: 0, same: 0 };
  for (const r of rows) s[r.state]++;
  return s;
}
