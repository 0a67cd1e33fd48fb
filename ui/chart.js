// Small SVG time-series chart for the Monitor page: lines with gaps, a
// marker per point (clickable), optional extra dots (exemplars), y grid with
// round ticks and time labels. Builds a string, so it is testable under node.
import { esc } from './dom.js';
import { niceStep } from './axis.js';

const f1 = (n) => n.toFixed(1);

/** Maps [d0, d1] onto [r0, r1]; a zero-width domain maps to r0. */
export function scale(d0, d1, r0, r1) {
  const k = d1 > d0 ? (r1 - r0) / (d1 - d0) : 0;
  return (v) => r0 + (v - d0) * k;
}

/**
 * SVG path of `points` ({t, v}, sorted by t): a `null` value or a gap longer
 * than `maxGap` ms breaks the line, so a window without data is not drawn as
 * a straight ramp across it.
 */
export function linePath(points, x, y, maxGap = Infinity) {
  let d = '';
  let prev = null;
  for (const p of points) {
    if (p.v === null || !Number.isFinite(p.v)) { prev = null; continue; }
    const cmd = prev === null || p.t - prev > maxGap ? 'M' : 'L';
    d += `${d ? ' ' : ''}${cmd}${f1(x(p.t))} ${f1(y(p.v))}`;
    prev = p.t;
  }
  return d;
}

/**
 * Indexes of points with no drawn neighbour (a line needs two points, so
 * these would not show without a marker of their own).
 */
export function isolated(points, maxGap = Infinity) {
  const ok = (p) => p && p.v !== null && Number.isFinite(p.v);
  const out = new Set();
  points.forEach((p, i) => {
    if (!ok(p)) return;
    const a = points[i - 1], b = points[i + 1];
    const joinedA = ok(a) && p.t - a.t <= maxGap, joinedB = ok(b) && b.t - p.t <= maxGap;
    if (!joinedA && !joinedB) out.add(i);
  });
  return out;
}

/** Round ticks from 0 up to the first at or above `max` (so the axis covers it). */
export function valueTicks(max, n = 4) {
  if (!(max > 0)) return [0];
  const step = niceStep(max, n);
  const out = [0];
  for (let k = 1; out[out.length - 1] < max - step * 1e-9; k++) out.push(Number((k * step).toPrecision(12)));
  return out;
}

const pad2 = (n) => String(n).padStart(2, '0');

/** Local time label: HH:MM, with the day when the range spans more than a day. */
export function timeLabel(ms, rangeMs) {
  const d = new Date(ms);
  const hm = `${pad2(d.getHours())}:${pad2(d.getMinutes())}`;
  return rangeMs > 86_400_000 ? `${pad2(d.getMonth() + 1)}-${pad2(d.getDate())} ${hm}` : hm;
}

/**
 * @param o {width, height, x0, x1 (ms), step (ms), yFmt(v), axisFmt(v)
 *   (tick labels, default yFmt), label,
 *   series: [{name, color, points: [{t, v}]}],
 *   dots: [{t, v, traceId, title}]}
 * Points carry data-t and data-series; dots carry data-trace-id.
 */
export function lineChart(o) {
  const W = Math.max(240, o.width || 480), H = o.height || 180;
  const m = { l: 58, r: 12, t: 10, b: 24 };
  const all = o.series.flatMap((s) => s.points.map((p) => p.v)).concat((o.dots || []).map((d) => d.v))
    .filter((v) => v !== null && Number.isFinite(v));
  const yt = valueTicks(Math.max(...all, 0) * 1.08 || 1);
  const yMax = yt[yt.length - 1] || 1;
  const x = scale(o.x0, o.x1, m.l, W - m.r);
  const y = scale(0, yMax, H - m.b, m.t);
  let svg = `<svg class="chart" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" role="img" aria-label="${esc(o.label || '')}">`;
  for (const v of yt) {
    svg += `<line class="grid" x1="${m.l}" x2="${W - m.r}" y1="${f1(y(v))}" y2="${f1(y(v))}"/>`;
    svg += `<text class="axis" x="${m.l - 6}" y="${f1(y(v) + 4)}" text-anchor="end">${v === 0 ? '0' : esc((o.axisFmt || o.yFmt)(v))}</text>`;
  }
  const range = o.x1 - o.x0;
  for (let i = 0; i <= 4; i++) {
    const t = o.x0 + (range * i) / 4;
    svg += `<text class="axis" x="${f1(x(t))}" y="${H - 6}" text-anchor="${i === 0 ? 'start' : i === 4 ? 'end' : 'middle'}">${esc(timeLabel(t, range))}</text>`;
  }
  // A missing window (no calls) breaks the line; up to 1.5 steps is one window.
  const gap = (o.step || Infinity) * 1.5;
  for (const s of o.series) {
    svg += `<path class="series" data-series="${esc(s.name)}" stroke="${esc(s.color)}" d="${linePath(s.points, x, y, gap)}"/>`;
  }
  for (const s of o.series) {
    const solo = isolated(s.points, gap);
    for (const [i, p] of s.points.entries()) {
      if (p.v === null || !Number.isFinite(p.v)) continue;
      svg += `<circle class="pt${solo.has(i) ? ' solo' : ''}" data-series="${esc(s.name)}" data-t="${p.t}" cx="${f1(x(p.t))}" cy="${f1(y(p.v))}" r="4" fill="${esc(s.color)}"><title>${esc(`${s.name} ${o.yFmt(p.v)} at ${new Date(p.t).toLocaleString()}`)}</title></circle>`;
    }
  }
  for (const d of o.dots || []) {
    svg += `<circle class="exemplar" data-trace-id="${esc(d.traceId)}" data-t="${d.t}" cx="${f1(x(d.t))}" cy="${f1(y(d.v))}" r="3.5"><title>${esc(d.title || d.traceId)}</title></circle>`;
  }
  return svg + '</svg>';
}
