// Which rows of a long list are in the DOM: only those in the viewport plus
// a little overscan, so scrolling 50,000 rows touches a few dozen nodes.

/**
 * @returns {{start:number, end:number, offsetTop:number, totalHeight:number}}
 *   rows [start, end) are rendered, the first at `offsetTop` pixels.
 */
export function virtualWindow({ scrollTop, viewportHeight, rowHeight, rowCount, overscan = 8 }) {
  const totalHeight = Math.max(0, rowCount * rowHeight);
  if (rowCount <= 0 || rowHeight <= 0) return { start: 0, end: 0, offsetTop: 0, totalHeight };
  const maxTop = Math.max(0, totalHeight - viewportHeight);
  const top = Math.min(Math.max(0, scrollTop || 0), maxTop);
  const first = Math.floor(top / rowHeight);
  const visible = Math.ceil(Math.max(0, viewportHeight) / rowHeight) + 1;
  const start = Math.max(0, first - overscan);
  const end = Math.min(rowCount, first + visible + overscan);
  return { start, end, offsetTop: start * rowHeight, totalHeight };
}

/** scrollTop that brings `row` into view, or the current one if it already is. */
export function scrollToRow({ row, scrollTop, viewportHeight, rowHeight }) {
  const top = row * rowHeight;
  if (top < scrollTop) return top;
  if (top + rowHeight > scrollTop + viewportHeight) return top + rowHeight - viewportHeight;
  return scrollTop;
}
