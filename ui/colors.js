// One colour per service, stable for the page's lifetime so a service has the
// same colour in search chips, the timeline and the dependency graph.

export const PALETTE = [
  '#3b82f6', '#f59e0b', '#10b981', '#8b5cf6', '#ec4899', '#06b6d4', '#84cc16',
  '#f97316', '#6366f1', '#14b8a6', '#eab308', '#a855f7', '#0ea5e9', '#22c55e',
  '#e11d48', '#64748b',
];

export class ColorAssigner {
  constructor(palette = PALETTE) {
    this.palette = palette;
    this.map = new Map();
  }

  /** Colour of `name`: palette entries first, then golden-angle hues. */
  get(name) {
    let c = this.map.get(name);
    if (c) return c;
    const n = this.map.size;
    if (n < this.palette.length) c = this.palette[n];
    else {
      const hue = Math.round((n * 137.508) % 360);
      const light = 42 + ((Math.floor(n / 7) * 9) % 24);
      c = `hsl(${hue}, 65%, ${light}%)`;
    }
    this.map.set(name, c);
    return c;
  }

  /** Assigns in sorted order so a fresh page colours the same set identically. */
  assignAll(names) {
    for (const n of [...new Set(names)].sort()) this.get(n);
    return this;
  }
}

export const colors = new ColorAssigner();
