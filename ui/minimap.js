// Overview of the whole (expanded) trace beside the timeline: one thin bar
// per visible row on a canvas, and a window showing what is on screen.
// Clicking or dragging moves that window, i.e. scrolls the timeline.
import { colors } from './colors.js';

export class Minimap {
  constructor(el, view, scrollTo) {
    this.el = el;
    this.view = view;
    this.scrollTo = scrollTo;
    el.innerHTML = '<canvas></canvas><div class="mm-window"></div>';
    this.canvas = el.querySelector('canvas');
    this.win = el.querySelector('.mm-window');
    this.total = 1;
    this.viewport = 0;
    let dragOffset = null;
    el.addEventListener('pointerdown', (e) => {
      el.setPointerCapture(e.pointerId);
      const r = this.win.getBoundingClientRect();
      // Grabbing the window keeps the grab point; elsewhere centre on it.
      dragOffset = e.clientY >= r.top && e.clientY <= r.bottom ? e.clientY - r.top : r.height / 2;
      this.moveTo(e.clientY - dragOffset);
    });
    el.addEventListener('pointermove', (e) => { if (dragOffset !== null) this.moveTo(e.clientY - dragOffset); });
    const stop = () => { dragOffset = null; };
    el.addEventListener('pointerup', stop);
    el.addEventListener('pointercancel', stop);
  }

  moveTo(clientTop) {
    const r = this.el.getBoundingClientRect();
    const frac = (clientTop - r.top) / Math.max(1, this.usedH || r.height);
    this.scrollTo(Math.max(0, frac * this.total));
  }

  setWindow(scrollTop, viewport, total) {
    this.total = Math.max(1, total);
    this.viewport = viewport;
    const h = this.usedH || this.el.clientHeight;
    const top = (scrollTop / this.total) * h;
    const height = Math.max(6, Math.min(h, (viewport / this.total) * h));
    this.win.style.transform = `translateY(${Math.min(top, h - height)}px)`;
    this.win.style.height = height + 'px';
  }

  draw() {
    const { view } = this;
    const w = this.el.clientWidth, h = this.el.clientHeight;
    if (!w || !h) return;
    const dpr = window.devicePixelRatio || 1;
    this.canvas.width = Math.round(w * dpr);
    this.canvas.height = Math.round(h * dpr);
    const g = this.canvas.getContext('2d');
    g.setTransform(dpr, 0, 0, dpr, 0, 0);
    g.clearRect(0, 0, w, h);
    const rows = view.rows;
    const n = rows.length;
    const dur = view.bounds.duration || 1;
    const rowH = Math.min(4, h / Math.max(1, n));
    const usedH = rowH * n;
    this.usedH = usedH;
    const pad = 4;
    for (let k = 0; k < n; k++) {
      const i = rows[k];
      const s = view.tree.spans[i];
      const x = pad + ((s.startTime - view.bounds.start) / dur) * (w - 2 * pad);
      const bw = Math.max(1, (s.duration / dur) * (w - 2 * pad));
      g.fillStyle = view.err[i] ? '#dc2626' : colors.get(view.svc[i]);
      g.fillRect(x, (k / n) * usedH, bw, Math.max(1, rowH - (rowH > 2 ? 1 : 0)));
    }
  }
}
