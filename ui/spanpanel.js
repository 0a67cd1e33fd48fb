// Span detail panel: status, ids (with copy), attributes with their types,
// resource (process) tags, events relative to trace start, references and
// server warnings, clock-skew shifts first.
import { esc, chip, copyText } from './dom.js';
import { formatDuration } from './axis.js';
import { isErrorSpan, tagValue, skewShift } from './model.js';
import { metricsLinkHtml } from './links.js';

const kvTable = (tags) => tags && tags.length
  ? `<table class="attrs"><tbody>${tags.map((t) => `<tr><th>${esc(t.key)}</th><td class="type">${esc(t.type || typeof t.value)}</td><td class="val">${esc(typeof t.value === 'object' ? JSON.stringify(t.value) : t.value)}</td></tr>`).join('')}</tbody></table>`
  : '<p class="none">None</p>';

const idRow = (label, id) => `<dt>${label}</dt><dd><code>${esc(id)}</code><button class="copy" data-copy="${esc(id)}" title="Copy ${label}">Copy</button></dd>`;

/**
 * @param ctx {trace, tree, traceStart, colorOf(service), serviceOf(span), indexOf(spanID)}
 */
export function spanPanelHtml(ctx, i) {
  const s = ctx.tree.spans[i];
  const svc = ctx.serviceOf(s);
  const proc = (ctx.trace.processes || {})[s.processID] || {};
  const err = isErrorSpan(s);
  const kind = tagValue(s.tags, 'span.kind');
  const scope = tagValue(s.tags, 'otel.scope.name');
  const scopeVer = tagValue(s.tags, 'otel.scope.version');
  const statusMsg = tagValue(s.tags, 'otel.status_description');
  const status = tagValue(s.tags, 'otel.status_code') || (err ? 'ERROR' : 'UNSET');
  const parentIdx = ctx.tree.parent[i];
  const shift = skewShift(s);
  const warnings = s.warnings || [];
  const logs = (s.logs || []).slice().sort((a, b) => a.timestamp - b.timestamp);
  const refs = s.references || [];

  return `
  <div class="sd-head">
    <div>${chip(svc, ctx.colorOf(svc))}</div>
    <h3>${esc(s.operationName)}</h3>
    <button class="close" data-close title="Close">×</button>
  </div>
  <div class="sd-badges">
    <span class="status ${err ? 'err' : status === 'OK' ? 'ok' : ''}">${esc(status)}</span>
    ${kind ? `<span class="badge">${esc(kind)}</span>` : ''}
    ${shift !== null ? `<span class="skew-badge" title="Clock skew adjustment">skew ${shift > 0 ? '+' : ''}${esc(formatDuration(shift))}</span>` : ''}
  </div>
  ${statusMsg ? `<div class="notice error">${esc(statusMsg)}</div>` : ''}
  ${warnings.map((w) => `<div class="notice warn"><b>${/clock skew/i.test(w) ? 'Clock skew' : 'Warning'}:</b> ${esc(w)}</div>`).join('')}
  <dl class="sd-facts">
    <dt>Start</dt><dd>+${esc(formatDuration(s.startTime - ctx.traceStart))}</dd>
    <dt>Duration</dt><dd>${esc(formatDuration(s.duration))}</dd>
    ${idRow('Span ID', s.spanID)}
    ${idRow('Trace ID', s.traceID || ctx.trace.traceID)}
    <dt>Parent</dt><dd>${parentIdx >= 0 ? `<a href="#" data-goto="${parentIdx}">${esc(ctx.tree.spans[parentIdx].operationName)}</a>` : '<span class="none">root</span>'}</dd>
    ${scope ? `<dt>Scope</dt><dd>${esc(scope)}${scopeVer ? ' ' + esc(scopeVer) : ''}</dd>` : ''}
  </dl>
  <div class="sd-links">${metricsLinkHtml(svc, s.operationName, kind, 'Metrics for this operation')}<span class="corr-links" data-corr></span></div>
  <section><h4>Attributes <span>${(s.tags || []).length}</span></h4>${kvTable(s.tags)}</section>
  <section><h4>Resource <span>${(proc.tags || []).length + 1}</span></h4>${kvTable([{ key: 'service.name', type: 'string', value: svc }, ...(proc.tags || [])])}</section>
  <section><h4>Events <span>${logs.length}</span></h4>${logs.length ? logs.map((l) => {
    const name = tagValue(l.fields, 'event');
    const rest = (l.fields || []).filter((f) => f.key !== 'event');
    return `<div class="event"><div class="ev-head"><span class="ev-time">+${esc(formatDuration(l.timestamp - ctx.traceStart))}</span> <b>${esc(name || 'log')}</b></div>${rest.length ? kvTable(rest) : ''}</div>`;
  }).join('') : '<p class="none">None</p>'}</section>
  <section><h4>References <span>${refs.length}</span></h4>${refs.length ? `<ul class="refs">${refs.map((r) => {
    const j = ctx.indexOf(r.spanID);
    const target = j === undefined ? `<code>${esc(r.spanID)}</code> <span class="none">(not in trace)</span>`
      : `<a href="#" data-goto="${j}">${esc(ctx.tree.spans[j].operationName)}</a> <code>${esc(r.spanID)}</code>`;
    const other = r.traceID && r.traceID !== ctx.trace.traceID ? ` in trace <a href="/trace/${encodeURIComponent(r.traceID)}" data-link><code>${esc(r.traceID)}</code></a>` : '';
    return `<li><span class="badge">${esc(r.refType)}</span> ${target}${other}</li>`;
  }).join('')}</ul>` : '<p class="none">None</p>'}</section>`;
}

/** Wires copy / close / go-to-span buttons inside the panel (once). */
export function wirePanel(panel, { onClose, onGoto }) {
  panel.addEventListener('click', (e) => {
    const c = e.target.closest('[data-copy]');
    if (c) {
      copyText(c.dataset.copy).then(() => {
        c.textContent = 'Copied';
        setTimeout(() => { c.textContent = 'Copy'; }, 1200);
      });
      return;
    }
    if (e.target.closest('[data-close]')) { onClose(); return; }
    const g = e.target.closest('[data-goto]');
    if (g) { e.preventDefault(); onGoto(Number(g.dataset.goto)); }
  });
}
