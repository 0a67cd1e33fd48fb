// Small DOM helpers shared by the pages. Every string from a trace is
// untrusted: it reaches the DOM only through esc() or textContent.

const ESC = { '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' };
export const esc = (v) => String(v ?? '').replace(/[&<>"']/g, (c) => ESC[c]);

export function navigate(url, replace = false) {
  history[replace ? 'replaceState' : 'pushState']({}, '', url);
  window.dispatchEvent(new Event('strand:navigate'));
}

export async function getJSON(path, signal) {
  const r = await fetch(path, { signal, headers: { Accept: 'application/json' } });
  let body = null;
  try { body = await r.json(); } catch { /* non-JSON error page */ }
  if (!r.ok) {
    const msg = body && body.errors && body.errors[0] && body.errors[0].msg;
    const err = new Error(msg || `${r.status} ${r.statusText}`);
    err.status = r.status;
    throw err;
  }
  return body;
}

export function chip(name, color, extra = '') {
  return `<span class="chip"><i style="background:${esc(color)}"></i>${esc(name)}${extra ? ` <b>${esc(extra)}</b>` : ''}</span>`;
}

export async function copyText(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const ta = document.createElement('textarea');
    ta.value = text;
    document.body.appendChild(ta);
    ta.select();
    document.execCommand('copy');
    ta.remove();
  }
}

export function fmtTime(us) {
  const d = new Date(us / 1000);
  const pad = (n, w = 2) => String(n).padStart(w, '0');
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function fmtAgo(us, now = Date.now()) {
  const s = Math.round((now - us / 1000) / 1000);
  if (s < 60) return `${Math.max(0, s)}s ago`;
  if (s < 3600) return `${Math.round(s / 60)}m ago`;
  if (s < 86400) return `${Math.round(s / 3600)}h ago`;
  return `${Math.round(s / 86400)}d ago`;
}

export const errorBox = (msg) => `<div class="notice error">${esc(msg)}</div>`;
