// Client-side router: /search, /trace/{id}, /compare/{a}/{b}, /dependencies, /monitor. The server sends
// index.html for each of these paths, so links can be shared and reloaded.
import { navigate } from './dom.js';
import { renderSearch } from './search.js';
import { renderTrace } from './trace.js';
import { renderDeps } from './deps.js';
import { renderCompare } from './compare.js';
import { renderMonitor } from './monitor.js';

const app = document.getElementById('app');
let cleanup = null;

function route() {
  if (cleanup) cleanup();
  cleanup = null;
  const path = location.pathname;
  let page = 'search';
  if (path.startsWith('/trace/')) {
    page = 'trace';
    cleanup = renderTrace(app, decodeURIComponent(path.slice('/trace/'.length)));
  } else if (path === '/compare' || path.startsWith('/compare/')) {
    page = 'compare';
    const [a = '', b = ''] = path.slice('/compare/'.length).split('/').map((x) => decodeURIComponent(x));
    cleanup = renderCompare(app, a, b);
  } else if (path === '/monitor') {
    page = 'monitor';
    cleanup = renderMonitor(app, new URLSearchParams(location.search));
  } else if (path === '/dependencies') {
    page = 'dependencies';
    cleanup = renderDeps(app);
  } else {
    cleanup = renderSearch(app, new URLSearchParams(location.search));
  }
  document.body.dataset.page = page;
  for (const a of document.querySelectorAll('[data-nav]')) a.classList.toggle('active', a.dataset.nav === page);
}

document.addEventListener('click', (e) => {
  const a = e.target.closest('a[data-link]');
  if (!a || e.button !== 0 || e.ctrlKey || e.metaKey || e.shiftKey) return;
  e.preventDefault();
  navigate(a.getAttribute('href'));
});

document.getElementById('lookup').addEventListener('submit', (e) => {
  e.preventDefault();
  const id = e.target.q.value.trim();
  if (id) navigate('/trace/' + encodeURIComponent(id));
  e.target.reset();
});

window.addEventListener('popstate', route);
window.addEventListener('strand:navigate', route);
route();
