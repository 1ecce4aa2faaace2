// Consumers: each consumer of the group with its handlers, pending count
// and idle time, refreshed every 5 s.
import { api, h, report, fmtMs, fmtTime } from './lib.js';

export function render(root) {
  const body = h('tbody', { testid: 'consumer-rows' });
  root.append(h('h2', {}, 'Consumers'),
    h('table', {}, h('thead', {}, h('tr', {}, ['Consumer', 'Handlers', 'Pending', 'Idle', 'Last seen'].map((t) => h('th', { scope: 'col' }, t)))), body));
  async function load() {
    try {
      const res = await api('GET', '/admin/consumers');
      body.replaceChildren(...(res.items || []).map((c) => h('tr', { testid: 'consumer-row', 'data-name': c.name },
        h('td', {}, c.name), h('td', {}, (c.handlers || []).join(', ')), h('td', { class: 'num', testid: 'consumer-pending' }, c.pending),
        h('td', { class: 'num' }, fmtMs(c.idleMs)), h('td', {}, fmtTime(c.lastSeen)))));
      if (!body.children.length) body.append(h('tr', {}, h('td', { colspan: 5, class: 'muted' }, 'No consumers.')));
    } catch (e) { report(e); }
  }
  load();
  const timer = setInterval(load, 5000);
  return () => clearInterval(timer);
}
