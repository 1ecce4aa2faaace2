// Shared helpers: the session token, the API client, DOM building, the
// error region and the in-page confirmation dialog.

const tokenKey = 'eventbus.token';

/** The token lives in sessionStorage: this browser tab only. */
export const session = {
  get token() { return sessionStorage.getItem(tokenKey) || ''; },
  set token(t) { if (t) sessionStorage.setItem(tokenKey, t); else sessionStorage.removeItem(tokenKey); },
  me: null,
};

/** APIError carries the HTTP status and the API's error code and message. */
export class APIError extends Error {
  constructor(status, code, message) { super(message); this.status = status; this.code = code; }
}

/**
 * api calls the HTTP API with the session's bearer token and returns the
 * decoded JSON. Statuses in opts.accept are returned, not thrown.
 */
export async function api(method, path, body, opts = {}) {
  const headers = { Authorization: 'Bearer ' + session.token, Accept: 'application/json' };
  const init = { method, headers, signal: opts.signal };
  if (body !== undefined) { headers['Content-Type'] = 'application/json'; init.body = JSON.stringify(body); }
  let res;
  try { res = await fetch(path, init); } catch (e) {
    if (e.name === 'AbortError') throw e;
    throw new APIError(0, 'network', `cannot reach the server (${method} ${path}): ${e.message}`);
  }
  const text = await res.text();
  let data = null;
  try { data = text ? JSON.parse(text) : null; } catch { data = null; }
  if (!res.ok && !(opts.accept || []).includes(res.status)) {
    const msg = (data && data.error && data.error.message) || text || res.statusText;
    throw new APIError(res.status, (data && data.error && data.error.code) || '', `${method} ${path}: ${res.status} ${msg}`);
  }
  return data;
}

/** qs builds a query string from the non-empty values of obj. */
export function qs(obj) {
  const p = new URLSearchParams();
  for (const [k, v] of Object.entries(obj)) if (v !== undefined && v !== null && v !== '') p.set(k, v);
  const s = p.toString();
  return s ? '?' + s : '';
}

/** h builds an element: h('button', {class: 'x', testid: 't', onclick: f}, 'text', child). */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'testid') el.dataset.testid = v;
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'value') el.value = v;
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, v);
  }
  for (const c of children.flat()) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

/** field is a labelled input: label text, then the input's attributes. */
export function field(label, attrs) {
  const id = attrs.id || ('f-' + (attrs.name || Math.random().toString(36).slice(2)));
  return h('label', { for: id, class: attrs.type === 'checkbox' ? 'check' : undefined },
    attrs.type === 'checkbox' ? [h('input', { ...attrs, id }), label] : [label, h('input', { ...attrs, id })]);
}

/** showError puts msg in the page's error region (or clears it with ''). */
export function showError(msg) {
  const el = document.getElementById('error');
  el.textContent = msg || '';
  el.hidden = !msg;
}

/** report shows an error unless it is an abort; returns nothing. */
export function report(e) {
  if (e && e.name === 'AbortError') return;
  showError(e instanceof Error ? e.message : String(e));
}

/** confirmDialog asks in a <dialog> of the page; resolves true on confirm. */
export function confirmDialog(title, text, confirmLabel) {
  return new Promise((resolve) => {
    const ok = h('button', { type: 'button', class: 'primary', testid: 'confirm-ok' }, confirmLabel);
    const cancel = h('button', { type: 'button', testid: 'confirm-cancel' }, 'Cancel');
    const dlg = h('dialog', { testid: 'confirm-dialog', 'aria-labelledby': 'confirm-title' },
      h('h3', { id: 'confirm-title' }, title), h('p', { testid: 'confirm-text' }, text),
      h('div', { class: 'row-actions' }, ok, cancel));
    const done = (v) => { dlg.close(); dlg.remove(); resolve(v); };
    ok.addEventListener('click', () => done(true));
    cancel.addEventListener('click', () => done(false));
    dlg.addEventListener('cancel', (e) => { e.preventDefault(); done(false); });
    document.body.append(dlg);
    dlg.showModal();
    cancel.focus();
  });
}

/** fmtTime formats an RFC 3339 time for the page. */
export function fmtTime(t) {
  if (!t) return '';
  const d = new Date(t);
  return isNaN(d) ? String(t) : d.toISOString().replace('T', ' ').replace(/\.\d+Z$/, 'Z');
}

/** fmtMs formats a duration in milliseconds. */
export function fmtMs(ms) {
  if (ms === null || ms === undefined) return '–';
  if (ms < 1000) return ms + ' ms';
  const s = Math.round(ms / 1000);
  if (s < 120) return s + ' s';
  if (s < 7200) return Math.round(s / 60) + ' min';
  return Math.round(s / 3600) + ' h';
}

/** toRFC3339 turns a typed time (RFC 3339 or a datetime) into RFC 3339, or ''. */
export function toRFC3339(v) {
  v = (v || '').trim();
  if (!v) return '';
  const d = new Date(v);
  return isNaN(d) ? v : d.toISOString();
}

/** pretty renders a JSON value indented. */
export function pretty(v) { return JSON.stringify(v, null, 2); }
