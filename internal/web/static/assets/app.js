// The dashboard's shell: login, the hash router and the page lifecycle.
// Each page module exports render(container, ctx) and returns a function
// that stops its timers and streams when the user leaves the page.
import { api, session, showError, report, h } from './lib.js';

const pages = {
  overview: () => import('./overview.js'),
  events: () => import('./events.js'),
  dlq: () => import('./dlq.js'),
  replay: () => import('./replay.js'),
  tail: () => import('./tail.js'),
  consumers: () => import('./consumers.js'),
};

let stopPage = null;
let generation = 0;

function showLogin(msg) {
  document.getElementById('nav').hidden = true;
  document.getElementById('who').hidden = true;
  document.getElementById('page').replaceChildren();
  document.getElementById('login').hidden = false;
  if (msg) showError(msg);
  document.getElementById('token').focus();
}

async function loadMe() {
  if (session.me) return session.me;
  session.me = await api('GET', '/v1/me');
  return session.me;
}

async function route() {
  const gen = ++generation;
  if (stopPage) { stopPage(); stopPage = null; }
  showError('');
  if (!session.token) { showLogin(); return; }
  let me;
  try { me = await loadMe(); } catch (e) {
    if (e.status === 401) { session.token = ''; session.me = null; showLogin('The token was refused: ' + e.message); return; }
    report(e); return;
  }
  if (gen !== generation) return;
  document.getElementById('login').hidden = true;
  document.getElementById('nav').hidden = false;
  document.getElementById('who').hidden = false;
  document.getElementById('whoami').textContent =
    `${me.subject} · tenant ${me.tenantId === '*' ? '* (platform)' : me.tenantId} · ${me.role}${me.canAdmin ? '' : ' (read only)'}`;
  const name = (location.hash.replace(/^#\/?/, '').split('?')[0]) || 'overview';
  const load = pages[name];
  for (const a of document.querySelectorAll('nav a')) {
    if (a.getAttribute('href') === '#/' + name) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  const container = document.getElementById('page');
  if (!load) { container.replaceChildren(h('p', {}, `No page "${name}".`)); return; }
  container.replaceChildren(h('p', { class: 'muted' }, 'Loading…'));
  try {
    const mod = await load();
    if (gen !== generation) return;
    container.replaceChildren();
    const stop = mod.render(container, { me, canAdmin: !!me.canAdmin, platform: me.tenantId === '*' });
    stopPage = typeof stop === 'function' ? stop : null;
  } catch (e) { report(e); }
}

document.getElementById('login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  const input = document.getElementById('token');
  session.token = input.value.trim();
  session.me = null;
  input.value = '';
  if (!location.hash || location.hash === '#/' || location.hash === '#') location.hash = '#/overview';
  else route();
});
document.getElementById('logout').addEventListener('click', () => {
  session.token = ''; session.me = null;
  if (stopPage) { stopPage(); stopPage = null; }
  showLogin();
});
window.addEventListener('hashchange', route);
route();
