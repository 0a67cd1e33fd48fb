// Span tree from Jaeger references, built in linear passes over flat arrays
// so a 50,000-span trace costs milliseconds and never recurses (a deep chain
// would overflow the call stack).

/** Parent of a span: first CHILD_OF reference found in the trace, else the
 *  first FOLLOWS_FROM one; spans whose parent is missing become roots. */
function parentIndex(span, byId) {
  const refs = span.references || [];
  let follows = -1;
  for (const r of refs) {
    const i = byId.get(r.spanID);
    if (i === undefined) continue;
    if (r.refType === 'CHILD_OF' || r.refType === undefined) return i;
    if (follows < 0) follows = i;
  }
  return follows;
}

/**
 * @param {Array} spans Jaeger spans
 * @returns {{spans, parent:Int32Array, children:Array<number[]>, roots:number[],
 *   order:Int32Array, depth:Int32Array, size:Int32Array, pos:Int32Array}}
 *   `order` is the pre-order walk; `size[i]` counts i and its descendants, so a
 *   collapsed subtree is skipped in one jump; `pos[i]` is i's place in `order`.
 */
export function buildTree(spans) {
  const n = spans.length;
  const byId = new Map();
  for (let i = 0; i < n; i++) {
    if (!byId.has(spans[i].spanID)) byId.set(spans[i].spanID, i);
  }
  const parent = new Int32Array(n).fill(-1);
  for (let i = 0; i < n; i++) {
    const p = parentIndex(spans[i], byId);
    if (p !== i) parent[i] = p;
  }
  const children = Array.from({ length: n }, () => []);
  const roots = [];
  for (let i = 0; i < n; i++) {
    if (parent[i] < 0) roots.push(i);
    else children[parent[i]].push(i);
  }
  const byStart = (a, b) => (spans[a].startTime - spans[b].startTime) || (a - b);
  for (const c of children) if (c.length > 1) c.sort(byStart);
  roots.sort(byStart);

  const order = new Int32Array(n);
  const depth = new Int32Array(n);
  const size = new Int32Array(n).fill(1);
  const pos = new Int32Array(n).fill(-1);
  let k = 0;
  const walk = (root) => {
    const stack = [root];
    depth[root] = 0;
    while (stack.length) {
      const i = stack.pop();
      pos[i] = k;
      order[k++] = i;
      const c = children[i];
      for (let j = c.length - 1; j >= 0; j--) {
        depth[c[j]] = depth[i] + 1;
        stack.push(c[j]);
      }
    }
  };
  for (const r of roots) walk(r);
  // Spans caught in a reference cycle are unreachable from any root: cut the
  // cycle at its earliest span and show it as a root.
  if (k < n) {
    for (let i = 0; i < n; i++) {
      if (pos[i] >= 0) continue;
      const p = parent[i];
      if (p >= 0) children[p].splice(children[p].indexOf(i), 1);
      parent[i] = -1;
      roots.push(i);
      walk(i);
    }
  }
  // Subtree sizes: children come after their parent in pre-order.
  for (let j = n - 1; j >= 0; j--) {
    const i = order[j];
    if (parent[i] >= 0) size[parent[i]] += size[i];
  }
  return { spans, parent, children, roots, order, depth, size, pos };
}

/** Node indices shown, in order, when the subtrees under `collapsed` are folded. */
export function visibleRows(tree, collapsed) {
  const { order, size, children } = tree;
  const out = [];
  for (let j = 0; j < order.length; ) {
    const i = order[j];
    out.push(i);
    j += collapsed.has(i) && children[i].length ? size[i] : 1;
  }
  return out;
}

/** Toggles node `i`; leaves are never collapsed. Returns the new state. */
export function toggle(tree, collapsed, i) {
  if (!tree.children[i] || !tree.children[i].length) return false;
  if (collapsed.has(i)) { collapsed.delete(i); return false; }
  collapsed.add(i);
  return true;
}

/** Unfolds every ancestor of `i`, so a selected span is on screen. */
export function expandTo(tree, collapsed, i) {
  for (let p = tree.parent[i]; p >= 0; p = tree.parent[p]) collapsed.delete(p);
}

/** Folds every node deeper than `level` that has children. */
export function collapseBelow(tree, collapsed, level) {
  collapsed.clear();
  for (let i = 0; i < tree.spans.length; i++) {
    if (tree.depth[i] >= level && tree.children[i].length) collapsed.add(i);
  }
}
