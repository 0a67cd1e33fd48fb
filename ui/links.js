// Trace page ↔ elsewhere: the Monitor page of a span's operation, and the
// configured correlation links (`[[ui.links]]`), which the server renders
// with URL-encoded values (GET /api/ui/links).
import { esc, getJSON } from './dom.js';
import { monitorUrl, kindOf } from './monitor-model.js';
import { tagValue } from './model.js';

/** Link to the operation's metrics on the Monitor page. */
export function metricsLinkHtml(service, operation, kindTag, label = 'Metrics') {
  const href = monitorUrl(service, operation, kindOf(kindTag));
  return `<a class="metrics-link" href="${esc(href)}" data-link title="Request rate, errors and latency of ${esc(service)} · ${esc(operation)}">${esc(label)}</a>`;
}

export const spanKindTag = (span) => tagValue(span.tags, 'span.kind');

/**
 * Rendered links of a scope. `values`: {traceId, spanId?, service,
 * operation, start, end} with start/end in Unix ms.
 */
export async function fetchLinks(scope, values, signal) {
  const q = new URLSearchParams({ scope });
  for (const [k, v] of Object.entries(values)) if (v !== undefined && v !== null) q.set(k, String(v));
  const r = await getJSON('/api/ui/links?' + q, signal);
  return (r && r.links) || [];
}

/** Server-rendered URLs (their scheme is fixed by config) as external links. */
export function linksHtml(links) {
  return links.map((l) => `<a class="ext-link" href="${esc(l.url)}" target="_blank" rel="noopener noreferrer">${esc(l.name)}</a>`).join('');
}

/** µs interval of a span or trace as the ms the templates use. */
export const msRange = (startUs, durUs) => ({ start: Math.floor(startUs / 1000), end: Math.ceil((startUs + durUs) / 1000) });
