// Live tail: GET /v1/events/stream read with fetch() (EventSource cannot
// send the Authorization header), parsed as Server-Sent Events, with type
// and tenant filters, pause and clear.
import { h, field, qs, session, report, showError, fmtTime } from './lib.js';

const maxRows = 500;

export function render(root, ctx) {
  const form = h('form', { class: 'filters', testid: 'tail-filters' },
    field('Type', { name: 'type', id: 'tail-type', placeholder: 'e.g. order.*', testid: 'tail-filter-type' }),
    ctx.platform ? field('Tenant', { name: 'tenantId', id: 'tail-tenant', testid: 'tail-filter-tenant' }) : null,
    h('button', { type: 'submit', class: 'primary', testid: 'tail-apply' }, 'Apply'));
  const status = h('span', { class: 'badge', testid: 'tail-status' }, 'connecting');
  const pause = h('button', { type: 'button', testid: 'tail-pause', 'aria-pressed': 'false' }, 'Pause');
  const clear = h('button', { type: 'button', testid: 'tail-clear' }, 'Clear');
  const counter = h('span', { class: 'hint', testid: 'tail-count' });
  const body = h('tbody', { testid: 'tail-rows' });
  root.append(h('h2', {}, 'Live tail'), form, h('div', { class: 'toolbar' }, status, pause, clear, counter),
    h('table', {}, h('thead', {}, h('tr', {}, ['Time', 'Type', 'Tenant', 'Event id', 'Data'].map((t) => h('th', { scope: 'col' }, t)))), body));

  let paused = false;
  let held = [];
  let seen = 0;
  let ctrl = null;

  function addRow(item) {
    const ev = item.event || {};
    body.prepend(h('tr', { testid: 'tail-row', 'data-event-id': ev.id || '', 'data-type': ev.type || '' },
      h('td', {}, fmtTime(item.time || ev.timestamp)), h('td', {}, ev.type || ''), h('td', {}, ev.tenantId || ''),
      h('td', {}, ev.id || item.streamId || ''), h('td', { class: 'err' }, ev.data ? JSON.stringify(ev.data) : (item.raw || ''))));
    while (body.children.length > maxRows) body.lastChild.remove();
  }

  function onMessage(name, data) {
    if (name === 'dropped') { showError('The live tail fell behind and the server dropped it: ' + data); return; }
    if (name !== 'event') return;
    let item;
    try { item = JSON.parse(data); } catch { return; }
    seen++;
    if (paused) held.push(item); else addRow(item);
    counter.textContent = `${seen} event(s) received${paused ? `, ${held.length} held while paused` : ''}`;
  }

  async function connect() {
    if (ctrl) ctrl.abort();
    const mine = new AbortController();
    ctrl = mine;
    const f = Object.fromEntries(new FormData(form));
    status.textContent = 'connecting'; status.className = 'badge warn';
    try {
      const res = await fetch('/v1/events/stream' + qs(f), {
        headers: { Authorization: 'Bearer ' + session.token, Accept: 'text/event-stream' }, signal: mine.signal,
      });
      if (!res.ok) {
        let msg = res.statusText;
        try { msg = (await res.json()).error.message; } catch { /* not JSON */ }
        throw new Error(`GET /v1/events/stream: ${res.status} ${msg}`);
      }
      status.textContent = 'connected'; status.className = 'badge ok';
      const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
      let buf = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value.replace(/\r\n?/g, '\n');
        let i;
        while ((i = buf.indexOf('\n\n')) >= 0) {
          const block = buf.slice(0, i);
          buf = buf.slice(i + 2);
          let name = 'message';
          const data = [];
          for (const line of block.split('\n')) {
            if (line.startsWith(':')) continue;
            const c = line.indexOf(':');
            const k = c < 0 ? line : line.slice(0, c);
            const v = c < 0 ? '' : line.slice(c + 1).replace(/^ /, '');
            if (k === 'event') name = v; else if (k === 'data') data.push(v);
          }
          if (data.length) onMessage(name, data.join('\n'));
        }
      }
      if (ctrl === mine) { status.textContent = 'disconnected'; status.className = 'badge bad'; }
    } catch (e) {
      if (e.name === 'AbortError') return;
      status.textContent = 'disconnected'; status.className = 'badge bad';
      report(e);
    }
  }

  form.addEventListener('submit', (e) => { e.preventDefault(); showError(''); connect(); });
  pause.addEventListener('click', () => {
    paused = !paused;
    pause.textContent = paused ? 'Resume' : 'Pause';
    pause.setAttribute('aria-pressed', String(paused));
    if (!paused) { for (const it of held) addRow(it); held = []; }
  });
  clear.addEventListener('click', () => { body.replaceChildren(); held = []; seen = 0; counter.textContent = ''; });
  connect();
  return () => { if (ctrl) ctrl.abort(); ctrl = null; };
}
