// Dependency graph page: services as nodes, calls as edges, for a window.
import { esc, getJSON, errorBox } from './dom.js';
import { layoutGraph } from './layout.js';
import { colors } from './colors.js';

const LOOKBACKS = { '1h': 3600e3, '6h': 6 * 3600e3, '24h': 24 * 3600e3, '7d': 7 * 24 * 3600e3 };
const NODE_W = 150, NODE_H = 38;

export function renderDeps(root) {
  const ctrl = new AbortController();
  const q = new URLSearchParams(location.search);
  const lb = LOOKBACKS[q.get('lookback')] ? q.get('lookback') : '24h';
  root.innerHTML = `<div class="deps-page">
    <div class="panel deps-toolbar"><h2>Service dependencies</h2>
      <label>Window <select id="deps-lookback">${Object.keys(LOOKBACKS).map((k) => `<option${k === lb ? ' selected' : ''}>${k}</option>`).join('')}</select></label>
      <span class="muted" id="deps-summary"></span></div>
    <div class="panel deps-graph" id="deps-graph"><div class="loading">Loading…</div></div>
    <div class="panel"><table class="deps-table" id="deps-table"></table></div></div>`;
  root.querySelector('#deps-lookback').addEventListener('change', (e) => {
    history.replaceState({}, '', '/dependencies?lookback=' + e.target.value);
    load(e.target.value);
  });
  const load = async (key) => {
    const graph = root.querySelector('#deps-graph');
    try {
      const res = await getJSON(`/api/dependencies?endTs=${Date.now()}&lookback=${LOOKBACKS[key]}`, ctrl.signal);
      draw(root, res.data || []);
    } catch (e) {
      if (e.name !== 'AbortError') graph.innerHTML = errorBox('Could not load dependencies: ' + e.message);
    }
  };
  load(lb);
  return () => ctrl.abort();
}

function draw(root, links) {
  const graph = root.querySelector('#deps-graph');
  const table = root.querySelector('#deps-table');
  const calls = links.reduce((a, l) => a + (l.callCount || 0), 0);
  const g = layoutGraph(links, { colW: 270, rowH: 84, padX: NODE_W / 2 + 20, padY: NODE_H / 2 + 24 });
  root.querySelector('#deps-summary').textContent = `${g.nodes.length} services · ${links.length} edges · ${calls} calls`;
  if (!links.length) {
    graph.innerHTML = '<div class="empty"><h3>No dependencies</h3><p>No calls between services were recorded in this window.</p></div>';
    table.innerHTML = '';
    return;
  }
  colors.assignAll(g.nodes.map((n) => n.id));
  const pos = new Map(g.nodes.map((n) => [n.id, n]));
  let svg = `<svg width="${g.width}" height="${g.height}" viewBox="0 0 ${g.width} ${g.height}" role="img" aria-label="Service dependency graph">
    <defs><marker id="arrow" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0 0L10 5L0 10z" fill="#94a3b8"/></marker>
    <marker id="arrow-err" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0 0L10 5L0 10z" fill="#dc2626"/></marker></defs>`;
  let labels = '';
  for (const l of links) {
    const a = pos.get(l.parent), b = pos.get(l.child);
    const err = (l.errorCount || 0) > 0;
    let d, mx, my;
    if (a === b) {
      const x = a.x, y = a.y - NODE_H / 2;
      d = `M${x - 20} ${y} C${x - 40} ${y - 50} ${x + 40} ${y - 50} ${x + 20} ${y}`;
      mx = x; my = y - 40;
    } else {
      const x1 = a.x + NODE_W / 2, y1 = a.y, x2 = b.x - NODE_W / 2, y2 = b.y;
      const back = x2 < x1;
      const bend = back ? 70 : Math.max(40, (x2 - x1) / 2);
      d = back ? `M${x1} ${y1} C${x1 + bend} ${y1 + 90} ${x2 - bend} ${y2 + 90} ${x2} ${y2}`
        : `M${x1} ${y1} C${x1 + bend} ${y1} ${x2 - bend} ${y2} ${x2} ${y2}`;
      mx = (x1 + x2) / 2; my = (y1 + y2) / 2 + (back ? 68 : 0);
    }
    svg += `<path class="edge${err ? ' err' : ''}" d="${d}" marker-end="url(#${err ? 'arrow-err' : 'arrow'})"/>`;
    const text = `${l.callCount} call${l.callCount === 1 ? '' : 's'}${err ? ` · ${l.errorCount} err` : ''}`;
    const tw = text.length * 6.4 + 12;
    labels += `<g class="edge-label${err ? ' err' : ''}"><rect x="${mx - tw / 2}" y="${my - 10}" width="${tw}" height="19" rx="9"/><text x="${mx}" y="${my + 4}" text-anchor="middle">${esc(text)}</text></g>`;
  }
  svg += labels;
  for (const n of g.nodes) {
    svg += `<g class="node" data-service="${esc(n.id)}"><rect x="${n.x - NODE_W / 2}" y="${n.y - NODE_H / 2}" width="${NODE_W}" height="${NODE_H}" rx="8"/>
      <rect class="stripe" x="${n.x - NODE_W / 2}" y="${n.y - NODE_H / 2}" width="6" height="${NODE_H}" rx="3" style="fill:${esc(colors.get(n.id))}"/>
      <text x="${n.x + 3}" y="${n.y + 5}" text-anchor="middle">${esc(n.id.length > 20 ? n.id.slice(0, 19) + '…' : n.id)}</text><title>${esc(n.id)}</title></g>`;
  }
  graph.innerHTML = svg + '</svg>';
  const sorted = links.slice().sort((x, y) => y.callCount - x.callCount);
  table.innerHTML = `<thead><tr><th>Caller</th><th>Callee</th><th class="num">Calls</th><th class="num">Errors</th></tr></thead><tbody>${sorted.map((l) =>
    `<tr><td>${esc(l.parent)}</td><td>${esc(l.child)}</td><td class="num">${l.callCount}</td><td class="num${l.errorCount ? ' errtext' : ''}">${l.errorCount || 0}</td></tr>`).join('')}</tbody>`;
}
