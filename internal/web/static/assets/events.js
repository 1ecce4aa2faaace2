// Events: browse the main stream with type / tenant / time filters, a
// cursor for the next page, and one event's envelope and handler status.
import { api, h, field, qs, report, showError, fmtTime, pretty, toRFC3339 } from './lib.js';

export function render(root, ctx) {
  const form = h('form', { class: 'filters', testid: 'events-filters' },
    field('Type', { name: 'type', id: 'ev-type', placeholder: 'e.g. order.*', testid: 'events-filter-type' }),
    ctx.platform ? field('Tenant', { name: 'tenantId', id: 'ev-tenant', testid: 'events-filter-tenant' }) : null,
    field('From (RFC 3339)', { name: 'from', id: 'ev-from' }),
    field('To (RFC 3339)', { name: 'to', id: 'ev-to' }),
    h('button', { type: 'submit', class: 'primary', testid: 'events-apply' }, 'Apply'));
  const body = h('tbody', { testid: 'events-rows' });
  const more = h('button', { type: 'button', testid: 'events-next', hidden: true }, 'Next page');
  const detail = h('section', { class: 'detail', testid: 'event-detail', tabindex: '-1' });
  root.append(h('h2', {}, 'Events'), form,
    h('table', {}, h('thead', {}, h('tr', {}, ['Time', 'Type', 'Tenant', 'Event id', 'Stream id'].map((t) => h('th', { scope: 'col' }, t)))), body),
    more, detail);

  let cursor = '';
  async function load(append) {
    const f = Object.fromEntries(new FormData(form));
    f.from = toRFC3339(f.from); f.to = toRFC3339(f.to);
    try {
      const page = await api('GET', '/v1/events' + qs({ ...f, cursor: append ? cursor : '' }));
      if (!append) body.replaceChildren();
      for (const it of page.items || []) {
        const ev = it.event || {};
        body.append(h('tr', { testid: 'event-row', 'data-event-id': ev.id || '', 'data-tenant': ev.tenantId || '' },
          h('td', {}, fmtTime(it.time)), h('td', {}, ev.type || h('span', { class: 'muted' }, it.decodeError || 'not an event')),
          h('td', {}, ev.tenantId || ''),
          h('td', {}, ev.id ? h('button', { type: 'button', testid: 'event-open', onclick: () => show(it) }, ev.id) : ''),
          h('td', { class: 'muted' }, it.streamId)));
      }
      if (!body.children.length) body.append(h('tr', { testid: 'events-empty' }, h('td', { colspan: 5, class: 'muted' }, 'No events match.')));
      cursor = page.nextCursor || '';
      more.hidden = !cursor;
    } catch (e) { report(e); }
  }

  async function show(it) {
    const ev = it.event;
    detail.replaceChildren(h('h3', {}, 'Event ', ev.id), h('pre', { testid: 'event-envelope' }, pretty(ev)));
    try {
      const st = await api('GET', `/v1/events/${encodeURIComponent(ev.id)}` + qs({ tenantId: ctx.platform ? ev.tenantId : '' }));
      detail.append(h('p', { testid: 'event-state' }, `State ${st.state}, ${st.attempts} attempt(s)${st.lastError ? ', last error: ' + st.lastError : ''}`),
        h('table', {}, h('thead', {}, h('tr', {}, ['Handler', 'State', 'Attempts', 'Last error', 'Next attempt', 'Updated'].map((t) => h('th', { scope: 'col' }, t)))),
          h('tbody', {}, (st.handlers || []).map((hs) => h('tr', { testid: 'event-handler' },
            h('td', {}, hs.name), h('td', {}, hs.state), h('td', { class: 'num' }, hs.attempts), h('td', { class: 'err' }, hs.lastError || ''),
            h('td', {}, fmtTime(hs.nextAttemptAt)), h('td', {}, fmtTime(hs.updatedAt)))))),
        (st.handlers || []).length ? null : h('p', { class: 'hint' }, 'The API holds no per-handler records for this event.'));
    } catch (e) { report(e); }
    detail.focus();
  }

  form.addEventListener('submit', (e) => { e.preventDefault(); showError(''); load(false); });
  more.addEventListener('click', () => load(true));
  load(false);
  return () => {};
}
