// Dead letters: the table with filters, one letter's detail (error
// history, stacks, envelope), retry and delete one, and bulk retry and
// purge by the current filter after a dry run shown in a <dialog>.
import { api, h, field, qs, report, showError, confirmDialog, fmtTime, pretty, toRFC3339 } from './lib.js';

export function render(root, ctx) {
  const form = h('form', { class: 'filters', testid: 'dlq-filters' },
    field('Type', { name: 'type', id: 'dlq-type', placeholder: 'e.g. billing.*', testid: 'dlq-filter-type' }),
    field('Handler', { name: 'handler', id: 'dlq-handler', testid: 'dlq-filter-handler' }),
    ctx.platform ? field('Tenant', { name: 'tenantId', id: 'dlq-tenant', testid: 'dlq-filter-tenant' }) : null,
    field('Error text', { name: 'q', id: 'dlq-q', testid: 'dlq-filter-q' }),
    field('From (RFC 3339)', { name: 'from', id: 'dlq-from' }),
    field('To (RFC 3339)', { name: 'to', id: 'dlq-to' }),
    h('button', { type: 'submit', class: 'primary', testid: 'dlq-apply' }, 'Apply'));
  const notice = h('p', { class: 'notice', testid: 'dlq-notice', hidden: true });
  const body = h('tbody', { testid: 'dlq-rows' });
  const more = h('button', { type: 'button', testid: 'dlq-next', hidden: true }, 'Next page');
  const detail = h('section', { class: 'detail', testid: 'dlq-detail', 'aria-live': 'polite', tabindex: '-1' });
  const bulk = ctx.canAdmin ? h('div', { class: 'toolbar' },
    h('button', { type: 'button', testid: 'dlq-bulk-retry', onclick: () => bulkAction('retry') }, 'Retry all matching…'),
    h('button', { type: 'button', class: 'danger', testid: 'dlq-bulk-purge', onclick: () => bulkAction('purge') }, 'Purge all matching…')) : null;
  root.append(h('h2', {}, 'Dead letters'), form, bulk, notice,
    h('table', {}, h('thead', {}, h('tr', {}, ['Event', 'Type', 'Tenant', 'Handler', 'Attempts', 'Last error', 'Moved', ''].map((t) => h('th', { scope: 'col' }, t)))), body),
    more, detail);

  let cursor = '';
  function filter() {
    const f = Object.fromEntries(new FormData(form));
    f.from = toRFC3339(f.from); f.to = toRFC3339(f.to);
    return f;
  }
  function say(msg) { notice.textContent = msg; notice.hidden = !msg; }

  async function load(append) {
    try {
      const page = await api('GET', '/admin/events/dlq' + qs({ ...filter(), cursor: append ? cursor : '' }));
      if (!append) body.replaceChildren();
      for (const it of page.items || []) body.append(row(it));
      if (!body.children.length) body.append(h('tr', { testid: 'dlq-empty' }, h('td', { colspan: 8, class: 'muted' }, 'No dead letters match.')));
      cursor = page.nextCursor || '';
      more.hidden = !cursor;
    } catch (e) { report(e); }
  }

  function row(it) {
    const actions = ctx.canAdmin ? h('div', { class: 'row-actions' },
      h('button', { type: 'button', testid: 'dlq-retry', 'aria-label': `Retry ${it.eventId}`, onclick: () => retryOne(it) }, 'Retry'),
      h('button', { type: 'button', class: 'danger', testid: 'dlq-delete', 'aria-label': `Delete ${it.eventId}`, onclick: () => deleteOne(it) }, 'Delete')) : null;
    return h('tr', { testid: 'dlq-row', 'data-event-id': it.eventId, 'data-tenant': it.tenantId },
      h('td', {}, h('button', { type: 'button', class: 'link', testid: 'dlq-open', onclick: () => show(it) }, it.eventId || it.id)),
      h('td', {}, it.type), h('td', {}, it.tenantId), h('td', {}, it.handler),
      h('td', { class: 'num' }, it.attempts), h('td', { class: 'err' }, it.lastError || it.reason),
      h('td', {}, fmtTime(it.movedAt)), h('td', {}, actions));
  }

  function tenantQ(it) { return ctx.platform && it.tenantId ? qs({ tenantId: it.tenantId }) : ''; }

  async function show(it) {
    try {
      const res = await api('GET', `/admin/events/dlq/${encodeURIComponent(it.eventId)}` + tenantQ(it));
      detail.replaceChildren(h('h3', {}, 'Dead letter ', it.eventId));
      for (const en of res.entries || []) {
        detail.append(h('div', { class: 'card', testid: 'dlq-entry' },
          h('p', {}, `handler ${en.handler || '–'} · group ${en.group} · ${en.attempts} attempt(s) · moved ${fmtTime(en.movedAt)} · ${en.reason || ''}`),
          h('h3', {}, 'Errors'),
          h('ol', {}, (en.errors || []).map((er) => h('li', { testid: 'dlq-error' },
            `attempt ${er.attempt} at ${fmtTime(er.at)}: ${er.message}`, er.stack ? h('pre', { testid: 'dlq-stack' }, er.stack) : null))),
          h('h3', {}, 'Envelope'), h('pre', { testid: 'dlq-envelope' }, en.event ? pretty(en.event) : (en.raw || ''))));
      }
      detail.focus();
    } catch (e) { report(e); }
  }

  async function retryOne(it) {
    try {
      const res = await api('POST', `/admin/events/dlq/${encodeURIComponent(it.eventId)}/retry` + tenantQ(it));
      say(`Retried ${it.eventId}: ${res.redriven} entr${res.redriven === 1 ? 'y' : 'ies'} sent back to the handler.`);
      detail.replaceChildren();
      await load(false);
    } catch (e) { report(e); }
  }

  async function deleteOne(it) {
    if (!await confirmDialog('Delete dead letter', `Delete every dead letter of event ${it.eventId}? This cannot be undone.`, 'Delete')) return;
    try {
      const res = await api('DELETE', `/admin/events/dlq/${encodeURIComponent(it.eventId)}` + tenantQ(it));
      say(`Deleted ${res.deleted} entr${res.deleted === 1 ? 'y' : 'ies'} of ${it.eventId}.`);
      detail.replaceChildren();
      await load(false);
    } catch (e) { report(e); }
  }

  async function bulkAction(kind) {
    const f = filter();
    const fb = {};
    for (const k of ['handler', 'tenantId', 'from', 'to', 'q']) if (f[k]) fb[k] = f[k];
    if (f.type) fb.type = f.type;
    const path = `/admin/events/dlq/${kind}`;
    try {
      const dry = await api('POST', path, { filter: fb, confirm: false });
      if (!dry.matched) { say(`No dead letters match the filter; nothing to ${kind}.`); return; }
      const verb = kind === 'retry' ? 'Retry' : 'Purge';
      if (!await confirmDialog(`${verb} dead letters`, `${dry.matched} dead letter(s) match the current filter. ${verb} them?`, `${verb} ${dry.matched}`)) return;
      const res = await api('POST', path, { filter: fb, confirm: true });
      say(kind === 'retry' ? `Retried ${res.redriven} of ${res.matched} matched.` : `Purged ${res.deleted} of ${res.matched} matched.`);
      await load(false);
    } catch (e) { report(e); }
  }

  form.addEventListener('submit', (e) => { e.preventDefault(); showError(''); load(false); });
  more.addEventListener('click', () => load(true));
  load(false);
  return () => {};
}
