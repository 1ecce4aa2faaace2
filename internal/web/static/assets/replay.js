// Replay: a form that starts a job, and the job list with live progress
// (polled every second) and cancel.
import { api, h, field, report, showError, fmtTime, toRFC3339 } from './lib.js';

const active = new Set(['pending', 'running']);

export function render(root, ctx) {
  const now = new Date();
  const form = h('form', { class: 'stack', testid: 'replay-form' },
    field('From (RFC 3339)', { name: 'from', id: 'rp-from', required: true, value: new Date(now - 3600e3).toISOString(), testid: 'replay-from' }),
    field('To (RFC 3339)', { name: 'to', id: 'rp-to', required: true, value: now.toISOString(), testid: 'replay-to' }),
    field('Types (patterns, comma-separated)', { name: 'types', id: 'rp-types', testid: 'replay-types' }),
    field('Handlers (comma-separated; empty: all)', { name: 'handlers', id: 'rp-handlers', testid: 'replay-handlers' }),
    field('Rate (events/s; empty: default)', { name: 'rate', id: 'rp-rate', type: 'number', min: '0', testid: 'replay-rate' }),
    field('Dry run (count only)', { name: 'dryRun', id: 'rp-dry', type: 'checkbox', testid: 'replay-dryrun' }),
    h('button', { type: 'submit', class: 'primary', testid: 'replay-submit' }, 'Start replay'));
  const notice = h('p', { class: 'notice', testid: 'replay-notice', hidden: true });
  const body = h('tbody', { testid: 'replay-rows' });
  root.append(h('h2', {}, 'Replay'),
    ctx.canAdmin ? form : h('p', { class: 'notice' }, 'Starting and cancelling replays needs the admin or owner role.'),
    notice,
    h('h3', {}, 'Jobs'),
    h('table', {}, h('thead', {}, h('tr', {}, ['Job', 'Status', 'Progress', 'Matched', 'Written', 'Errors', 'Window', 'By', ''].map((t) => h('th', { scope: 'col' }, t)))), body));

  const list = (s) => (s || '').split(',').map((x) => x.trim()).filter(Boolean);

  form.addEventListener('submit', async (e) => {
    e.preventDefault();
    showError('');
    const f = Object.fromEntries(new FormData(form));
    const req = { from: toRFC3339(f.from), to: toRFC3339(f.to) };
    if (list(f.types).length) req.types = list(f.types);
    if (list(f.handlers).length) req.handlers = list(f.handlers);
    if (f.rate) req.rate = Number(f.rate);
    if (f.dryRun) req.dryRun = true;
    try {
      const res = await api('POST', '/admin/events/replay', req);
      notice.textContent = `Started job ${res.jobId} (${res.status}), about ${res.estimatedEvents} event(s).`;
      notice.hidden = false;
      load();
    } catch (err) { report(err); }
  });

  async function cancel(job) {
    try {
      await api('POST', `/admin/events/replay/${encodeURIComponent(job.id)}/cancel`);
      load();
    } catch (err) { report(err); }
  }

  async function load() {
    try {
      const res = await api('GET', '/admin/events/replay');
      body.replaceChildren(...(res.items || []).map((j) => h('tr', { testid: 'replay-row', 'data-job-id': j.id, 'data-status': j.status },
        h('td', {}, j.id), h('td', { testid: 'replay-status' }, j.status + (j.cancelRequested && active.has(j.status) ? ' (cancelling)' : '') + (j.error ? ': ' + j.error : '')),
        h('td', {}, h('progress', { max: '100', value: String(j.progress), 'aria-label': `progress of ${j.id}` }), ' ', h('span', { testid: 'replay-progress' }, `${j.progress} %`)),
        h('td', { class: 'num' }, j.matched), h('td', { class: 'num' }, j.written), h('td', { class: 'num' }, j.errors),
        h('td', {}, `${fmtTime(j.request.from)} → ${fmtTime(j.request.to)}`), h('td', {}, j.requestedBy),
        h('td', {}, ctx.canAdmin && active.has(j.status) && !j.cancelRequested
          ? h('button', { type: 'button', class: 'danger', testid: 'replay-cancel', onclick: () => cancel(j) }, 'Cancel') : null))));
      if (!body.children.length) body.append(h('tr', {}, h('td', { colspan: 9, class: 'muted' }, 'No replay jobs.')));
    } catch (err) { report(err); }
  }
  load();
  const timer = setInterval(load, 1000);
  return () => clearInterval(timer);
}
