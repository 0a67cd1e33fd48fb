// Critical path and self time over a span tree from tree.js. Pure logic,
// unit-tested under node.
//
// The critical path is the chain of work that decides the trace's end-to-end
// latency. Walk back from the root's end: at each span, the child that
// finished last before the cursor was what the span waited for; the gap
// between that child's end and the cursor is the span's own work. Move the
// cursor to that child's start, explain the child the same way, then carry
// on in the parent before the child started. Children that overlap the
// chosen one ran in parallel and are not on the path.
//
// Like Jaeger: only CHILD_OF children count (a FOLLOWS_FROM span does not
// hold its parent up), and children are clipped to their parent's interval
// (clock skew can make a child start before or end after its parent); a
// child entirely outside its parent is ignored with its subtree.
// Iterative (an explicit stack), so a 50,000-deep chain is fine.

function isChildOf(span, parentSpan) {
  for (const r of span.references || []) {
    if (r.spanID === parentSpan.spanID) return r.refType === 'CHILD_OF' || r.refType === undefined;
  }
  return false;
}

/**
 * @param tree buildTree() result
 * @param root index of the span to start from (default: the earliest root)
 * @returns {{sections: Array<{i:number, start:number, end:number}>, bySpan: Map<number, Array<[number, number]>>}}
 *   sections in time order (µs, absolute); bySpan groups them per span index.
 */
export function criticalPath(tree, root = tree.roots[0]) {
  const sections = [];
  const bySpan = new Map();
  if (root === undefined || root < 0) return { sections, bySpan };
  const { spans, children, order, parent } = tree;
  const n = spans.length;
  // Effective (clipped) intervals, parents first (pre-order); NaN = excluded.
  const s0 = new Float64Array(n).fill(NaN), e0 = new Float64Array(n).fill(NaN);
  s0[root] = spans[root].startTime;
  e0[root] = spans[root].startTime + spans[root].duration;
  for (let j = tree.pos[root] + 1; j < tree.pos[root] + tree.size[root]; j++) {
    const i = order[j], p = parent[i];
    if (Number.isNaN(s0[p]) || !isChildOf(spans[i], spans[p])) continue;
    const a = spans[i].startTime, b = a + spans[i].duration;
    if (a >= e0[p] || b <= s0[p]) continue;
    s0[i] = Math.max(a, s0[p]);
    e0[i] = Math.min(b, e0[p]);
  }
  // Candidate children by end, latest first; a per-span pointer only moves
  // forward because a span's cursor only moves back.
  const cands = new Map();
  const candidates = (i) => {
    let c = cands.get(i);
    if (!c) {
      c = { list: children[i].filter((k) => !Number.isNaN(s0[k])).sort((x, y) => e0[y] - e0[x] || s0[y] - s0[x]), at: 0 };
      cands.set(i, c);
    }
    return c;
  };
  const add = (i, start, end) => {
    if (!(end > start)) return;
    sections.push({ i, start, end });
    if (!bySpan.has(i)) bySpan.set(i, []);
    bySpan.get(i).push([start, end]);
  };
  // Frames: [span, cursor]. The top frame is the span being explained.
  const stack = [[root, e0[root]]];
  while (stack.length) {
    const top = stack[stack.length - 1];
    const [i, t] = top;
    const c = candidates(i);
    while (c.at < c.list.length && e0[c.list[c.at]] > t) c.at++;
    if (c.at < c.list.length) {
      const k = c.list[c.at++];
      add(i, e0[k], t);
      top[1] = Math.min(t, s0[k]);
      stack.push([k, e0[k]]);
    } else {
      add(i, s0[i], t);
      stack.pop();
    }
  }
  sections.sort((a, b) => a.start - b.start || a.end - b.end);
  for (const list of bySpan.values()) list.sort((a, b) => a[0] - b[0]);
  return { sections, bySpan };
}

/**
 * Self time of every span (µs): its duration minus the union of its
 * children's intervals clipped to it (parallel children are not
 * double-counted).
 */
export function selfTimes(tree) {
  const { spans, children } = tree;
  const out = new Float64Array(spans.length);
  for (let i = 0; i < spans.length; i++) {
    const a = spans[i].startTime, b = a + spans[i].duration;
    const iv = [];
    for (const k of children[i]) {
      const x = Math.max(a, spans[k].startTime), y = Math.min(b, spans[k].startTime + spans[k].duration);
      if (y > x) iv.push([x, y]);
    }
    iv.sort((p, q) => p[0] - q[0]);
    let covered = 0, cs = -Infinity, ce = -Infinity;
    for (const [x, y] of iv) {
      if (x > ce) { if (ce > cs) covered += ce - cs; cs = x; ce = y; } else if (y > ce) ce = y;
    }
    if (ce > cs) covered += ce - cs;
    out[i] = Math.max(0, spans[i].duration - covered);
  }
  return out;
}
