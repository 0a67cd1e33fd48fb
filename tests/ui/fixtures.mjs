// OTLP/JSON trace fixtures for the browser test: ids are hex, times are
// unix nanoseconds as strings, enums are integers (OTLP/JSON encoding).
import { randomBytes } from 'node:crypto';

export const hexId = (bytes) => randomBytes(bytes).toString('hex');
const ns = (ms) => (BigInt(Math.round(ms * 1000)) * 1000n).toString();

const attr = (key, v) => ({
  key,
  value: typeof v === 'boolean' ? { boolValue: v }
    : Number.isInteger(v) ? { intValue: String(v) }
    : typeof v === 'number' ? { doubleValue: v } : { stringValue: String(v) },
});
const attrs = (o) => Object.entries(o).map(([k, v]) => attr(k, v));

/** Groups spans {service, ...} into resourceSpans by service. */
export function request(spans, resourceExtra = {}) {
  const by = new Map();
  for (const s of spans) {
    if (!by.has(s.service)) by.set(s.service, []);
    const { service, ...rest } = s;
    by.get(s.service).push(rest);
  }
  return {
    resourceSpans: [...by].map(([service, list]) => ({
      resource: { attributes: attrs({ 'service.name': service, 'host.name': `${service}-host-1`, ...resourceExtra }) },
      scopeSpans: [{ scope: { name: 'strand-ui-test', version: '1.0.0' }, spans: list }],
    })),
  };
}

/**
 * A checkout request across five services, 9 spans, two failing; the
 * inventory host's clock runs 50 ms slow, so strand shifts that span.
 * @returns {{traceId, body, spanCount, ops}}
 */
export function checkoutTrace(startMs = Date.now() - 60_000) {
  const traceId = hexId(16);
  const ids = Array.from({ length: 9 }, () => hexId(8));
  const span = (i, parent, service, name, kind, from, to, extra = {}) => ({
    service, traceId, spanId: ids[i], parentSpanId: parent === null ? '' : ids[parent], name, kind,
    startTimeUnixNano: ns(startMs + from), endTimeUnixNano: ns(startMs + to),
    attributes: attrs(extra.attrs || {}), events: extra.events || [], status: extra.status || { code: 0 },
  });
  const spans = [
    span(0, null, 'frontend', 'GET /checkout', 2, 0, 120, { attrs: { 'http.method': 'GET', 'http.route': '/checkout', 'http.status_code': 500 }, status: { code: 2, message: 'payment failed' } }),
    span(1, 0, 'frontend', 'render cart', 1, 2, 10, { attrs: { 'cart.items': 3 } }),
    span(2, 0, 'checkout', 'PlaceOrder', 2, 12, 110, {
      attrs: { 'rpc.system': 'grpc', 'order.total': 42.5 },
      events: [{ timeUnixNano: ns(startMs + 15), name: 'order validated', attributes: attrs({ 'order.id': 'A-1001' }) }],
    }),
    span(3, 2, 'checkout', 'SELECT cart', 3, 14, 22, { attrs: { 'db.system': 'postgresql', 'db.statement': 'SELECT * FROM cart WHERE id = $1' } }),
    span(4, 3, 'postgres', 'query', 2, 15, 21, { attrs: { 'db.rows': 3 } }),
    span(5, 2, 'payments', 'charge', 2, 25, 100, {
      attrs: { 'payment.provider': 'stripe', 'payment.retry': true },
      status: { code: 2, message: 'card declined' },
      events: [{ timeUnixNano: ns(startMs + 60), name: 'exception', attributes: attrs({ 'exception.type': 'CardDeclined', 'exception.message': 'card declined' }) }],
    }),
    span(6, 5, 'payments', 'fraud check', 1, 30, 55, { attrs: { 'fraud.score': 0.12 } }),
    span(7, 2, 'checkout', 'publish order', 4, 102, 108, { attrs: { 'messaging.system': 'kafka' } }),
    span(8, 2, 'inventory', 'reserve stock', 2, 5, 11, { attrs: { 'stock.sku': 'SKU-7' } }),
  ];
  return { traceId, body: request(spans, { 'deployment.environment': 'test' }), spanCount: spans.length };
}

/**
 * A 50,000-span trace in chunks of `chunk` spans; every span's parent is
 * emitted before it, fan-out 4 (depth ≈ 8), five services.
 */
export function bigTrace(n = 50_000, chunk = 5_000, startMs = Date.now() - 30_000) {
  const traceId = hexId(16);
  const svcs = ['gateway', 'search', 'ranker', 'index', 'cache'];
  const spanIds = Array.from({ length: n }, () => hexId(8));
  const start = new Float64Array(n), dur = new Float64Array(n);
  start[0] = 0; dur[0] = 20_000;
  const chunks = [];
  let cur = [];
  for (let i = 0; i < n; i++) {
    const p = i === 0 ? -1 : Math.floor((i - 1) / 4);
    if (p >= 0) {
      const slot = (i - 1) % 4;
      dur[i] = dur[p] / 5;
      start[i] = start[p] + (slot * dur[p]) / 4.5;
    }
    cur.push({
      service: svcs[i % svcs.length], traceId, spanId: spanIds[i], parentSpanId: p >= 0 ? spanIds[p] : '',
      name: `op-${i % 17}`, kind: 1, startTimeUnixNano: ns(startMs + start[i]), endTimeUnixNano: ns(startMs + start[i] + dur[i]),
      attributes: attrs({ 'span.index': i }), status: { code: i % 997 === 5 ? 2 : 0 },
    });
    if (cur.length === chunk) { chunks.push(request(cur)); cur = []; }
  }
  if (cur.length) chunks.push(request(cur));
  return { traceId, chunks, spanCount: n };
}

/**
 * A trace from a list of [key, parentKey|null, service, name, fromMs, toMs]
 * rows (times relative to `startMs`); keys become fresh span ids.
 * @returns {{traceId, body, spanCount}}
 */
export function traceOf(rows, startMs = Date.now() - 60_000) {
  const traceId = hexId(16);
  const ids = new Map(rows.map(([key]) => [key, hexId(8)]));
  const spans = rows.map(([key, parent, service, name, from, to]) => ({
    service, traceId, spanId: ids.get(key), parentSpanId: parent ? ids.get(parent) : '', name,
    kind: parent ? 3 : 2, startTimeUnixNano: ns(startMs + from), endTimeUnixNano: ns(startMs + to),
    attributes: attrs({ 'fixture.key': key }), status: { code: 0 },
  }));
  return { traceId, body: request(spans), spanCount: spans.length };
}

/**
 * A shop page whose critical path is known: the root waits on GetCart
 * (which waits on HGET), then on Recommend (which waits on
 * GetRecommendedProducts); ListProducts runs in parallel and is off the path.
 * Root path sections: 0–5, 25–30 and 80–100 ms.
 */
export function criticalPathTrace(startMs) {
  return traceOf([
    ['root', null, 'frontend', 'GET /shop', 0, 100],
    ['cart', 'root', 'cart', 'GetCart', 5, 25],
    ['hget', 'cart', 'cart', 'HGET', 8, 12],
    ['list', 'root', 'product-catalog', 'ListProducts', 10, 60],
    ['warm', 'list', 'product-catalog', 'warm cache', 12, 20],
    ['rec', 'root', 'recommendation', 'Recommend', 30, 80],
    ['recp', 'rec', 'product-catalog', 'GetRecommendedProducts', 40, 70],
  ], startMs);
}

/** Two checkouts: B calls GetProduct twice (A once) and adds SendConfirmation. */
export function comparePair(startMs = Date.now() - 50_000) {
  const base = [
    ['root', null, 'frontend', 'POST /checkout', 0, 90],
    ['place', 'root', 'checkout', 'PlaceOrder', 5, 85],
    ['p1', 'place', 'product-catalog', 'GetProduct', 10, 20],
    ['pay', 'place', 'payment', 'Charge', 30, 60],
  ];
  const a = traceOf(base, startMs);
  const b = traceOf([...base, ['p2', 'place', 'product-catalog', 'GetProduct', 20, 28],
    ['mail', 'place', 'email', 'SendConfirmation', 62, 80]], startMs + 1000);
  return { a, b };
}
