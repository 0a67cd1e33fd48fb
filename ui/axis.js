// Time-axis arithmetic: round tick steps (1-2-5 series) and short durations.

/** Smallest 1/2/5×10^k step giving at most `maxTicks` intervals over `range`. */
export function niceStep(range, maxTicks) {
  if (!(range > 0) || !(maxTicks >= 1)) return 1;
  const raw = range / maxTicks;
  const mag = Math.pow(10, Math.floor(Math.log10(raw)));
  for (const m of [1, 2, 5, 10]) if (m * mag >= raw) return m * mag;
  return 10 * mag;
}

/** Ticks over [0, range] µs: [{value, label, frac}], frac in 0..1 along the axis. */
export function ticks(range, maxTicks = 6) {
  if (!(range > 0)) return [{ value: 0, label: formatDuration(0), frac: 0 }];
  const step = niceStep(range, maxTicks);
  const out = [];
  for (let v = 0; v <= range + step * 1e-9; v += step) {
    const value = Math.round(v * 1e6) / 1e6;
    out.push({ value, label: formatDuration(value), frac: value / range });
  }
  return out;
}

/** Ticks at round values inside [a, b] µs (a zoomed window); frac along the axis. */
export function ticksBetween(a, b, maxTicks = 6) {
  if (!(b > a)) return [{ value: a, label: formatDuration(a), frac: 0 }];
  const step = niceStep(b - a, maxTicks);
  const out = [];
  for (let k = Math.ceil(a / step - 1e-9); k * step <= b + step * 1e-9; k++) {
    const value = Math.round(k * step * 1e6) / 1e6;
    out.push({ value, label: formatDuration(value), frac: (value - a) / (b - a) });
  }
  return out;
}

const trim = (x) => String(Number(x.toFixed(2)));

/** Microseconds as a short human duration: 850µs, 1.25ms, 3.5s, 2m 5s, 1h 2m. */
export function formatDuration(us) {
  if (!Number.isFinite(us)) return '–';
  const sign = us < 0 ? '-' : '';
  const a = Math.abs(us);
  if (a < 1000) return sign + trim(a) + 'µs';
  if (a < 1e6) return sign + trim(a / 1000) + 'ms';
  if (a < 60e6) return sign + trim(a / 1e6) + 's';
  const totalS = Math.round(a / 1e6);
  if (totalS < 3600) return `${sign}${Math.floor(totalS / 60)}m ${totalS % 60}s`;
  return `${sign}${Math.floor(totalS / 3600)}h ${Math.floor((totalS % 3600) / 60)}m`;
}

/** "100ms", "1.5s" → µs; bare numbers are µs; null if unparseable. */
export function parseDuration(text) {
  const m = /^\s*(\d+(?:\.\d+)?)\s*(us|µs|ms|s|m|h)?\s*$/.exec(text || '');
  if (!m) return null;
  const mult = { us: 1, 'µs': 1, ms: 1e3, s: 1e6, m: 60e6, h: 3600e6 }[m[2] || 'us'];
  return Math.round(Number(m[1]) * mult);
}
