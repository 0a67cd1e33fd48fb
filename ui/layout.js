// Layered layout of the service dependency graph: each service sits one
// layer right of its deepest caller (longest path from the sources), cycles
// broken by ignoring edges that point back along the current DFS path.

/** @returns {{nodes:[{id,layer,row,x,y}], edges:[{parent,child,callCount,errorCount}], width, height}} */
export function layoutGraph(links, opts = {}) {
  const { colW = 220, rowH = 80, padX = 90, padY = 50 } = opts;
  const ids = new Set();
  for (const l of links) { ids.add(l.parent); ids.add(l.child); }
  const names = [...ids].sort();
  const out = new Map(names.map((n) => [n, []]));
  for (const l of links) if (l.parent !== l.child) out.get(l.parent).push(l.child);

  // Back edges: found by an iterative DFS with an on-stack marker.
  const state = new Map(); // 1 = on stack, 2 = done
  const back = new Set();
  for (const s of names) {
    if (state.get(s)) continue;
    const stack = [[s, 0]];
    state.set(s, 1);
    while (stack.length) {
      const top = stack[stack.length - 1];
      const kids = out.get(top[0]);
      if (top[1] < kids.length) {
        const c = kids[top[1]++];
        if (state.get(c) === 1) back.add(top[0] + '\u0000' + c);
        else if (!state.get(c)) { state.set(c, 1); stack.push([c, 0]); }
      } else { state.set(top[0], 2); stack.pop(); }
    }
  }
  // Longest-path layering over the remaining DAG (Kahn's order).
  const indeg = new Map(names.map((n) => [n, 0]));
  const fwd = new Map(names.map((n) => [n, []]));
  for (const [p, kids] of out) for (const c of kids) {
    if (back.has(p + '\u0000' + c)) continue;
    fwd.get(p).push(c);
    indeg.set(c, indeg.get(c) + 1);
  }
  const layer = new Map(names.map((n) => [n, 0]));
  const queue = names.filter((n) => indeg.get(n) === 0);
  for (let qi = 0; qi < queue.length; qi++) {
    const p = queue[qi];
    for (const c of fwd.get(p)) {
      layer.set(c, Math.max(layer.get(c), layer.get(p) + 1));
      indeg.set(c, indeg.get(c) - 1);
      if (indeg.get(c) === 0) queue.push(c);
    }
  }
  const perLayer = [];
  for (const n of names) {
    const l = layer.get(n);
    (perLayer[l] = perLayer[l] || []).push(n);
  }
  const maxRows = Math.max(1, ...perLayer.map((r) => (r ? r.length : 0)));
  const nodes = [];
  perLayer.forEach((row, l) => {
    if (!row) return;
    const offset = ((maxRows - row.length) * rowH) / 2;
    row.forEach((id, r) => nodes.push({ id, layer: l, row: r, x: padX + l * colW, y: padY + offset + r * rowH }));
  });
  return {
    nodes,
    edges: links.slice(),
    width: padX * 2 + Math.max(0, perLayer.length - 1) * colW,
    height: padY * 2 + (maxRows - 1) * rowH,
  };
}
