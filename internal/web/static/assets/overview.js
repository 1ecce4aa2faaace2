// Overview: health badge and alarms, the stats cards and a throughput
// chart (inline SVG), refreshed every 5 s.
import { api, h, report, showError } from './lib.js';

const svgNS = 'http://www.w3.org/2000/svg';

function svg(tag, attrs, ...kids) {
  const el = document.createElementNS(svgNS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
  for (const k of kids) el.append(k instanceof Node ? k : document.createTextNode(String(k)));
  return el;
}

/** chart draws values (oldest first) as bars. */
function chart(values, unit) {
  const W = 1200, H = 160, pad = 22;
  const max = Math.max(1, ...values);
  const bw = (W - pad) / Math.max(1, values.length);
  const root = svg('svg', { viewBox: `0 0 ${W} ${H + 16}`, role: 'img', 'aria-label': `events per ${unit}, max ${max}`, 'data-testid': 'chart-svg' });
  root.append(svg('line', { class: 'axis', x1: pad, y1: H, x2: W, y2: H }));
  root.append(svg('text', { x: 0, y: 10 }, String(max)));
  root.append(svg('text', { x: 0, y: H }, '0'));
  values.forEach((v, i) => {
    const bh = (v / max) * (H - 10);
    const rect = svg('rect', { class: 'bar', x: pad + i * bw + 1, y: H - bh, width: Math.max(1, bw - 2), height: bh });
    rect.append(svg('title', {}, `${v} event(s), ${values.length - 1 - i} ${unit}(s) ago`));
    root.append(rect);
  });
  root.append(svg('text', { x: pad, y: H + 14 }, `-${values.length} ${unit}s`));
  root.append(svg('text', { x: W - 30, y: H + 14 }, 'now'));
  return root;
}

function card(label, value, testid, sub) {
  return h('div', { class: 'card' }, h('div', { class: 'label' }, label),
    h('div', { class: 'value', testid }, value === null || value === undefined ? '–' : String(value)),
    sub ? h('div', { class: 'hint' }, sub) : null);
}

export function render(root, ctx) {
  let range = 'hour';
  let last = null;
  const badge = h('span', { class: 'badge', testid: 'health-badge' }, '…');
  const alarms = h('ul', { testid: 'alarms' });
  const cards = h('div', { class: 'cards', testid: 'cards' });
  const toggle = h('button', { type: 'button', testid: 'chart-toggle', 'aria-pressed': 'false' }, 'Show last 24 h');
  const chartBox = h('div', { class: 'chart', testid: 'chart' });
  const updated = h('span', { class: 'hint', testid: 'overview-updated' });
  const partsBox = h('div', { testid: 'partitions', hidden: true });
  root.append(h('h2', {}, 'Overview'),
    h('p', {}, 'Health: ', badge, ' ', updated), alarms,
    ctx.canAdmin ? cards : h('p', { class: 'notice', testid: 'overview-note' },
      'Stats are for admin and owner roles; this token sees the health badge only.'),
    ctx.canAdmin ? h('div', {}, h('div', { class: 'toolbar' }, h('h3', {}, 'Throughput'), toggle), chartBox) : null,
    ctx.canAdmin ? partsBox : null);

  toggle.addEventListener('click', () => {
    range = range === 'hour' ? 'day' : 'hour';
    toggle.textContent = range === 'hour' ? 'Show last 24 h' : 'Show last hour';
    toggle.setAttribute('aria-pressed', String(range === 'day'));
    drawChart();
  });

  function drawChart() {
    if (!last) return;
    const tp = last.throughput || {};
    const vals = range === 'hour' ? (tp.perMinute || []) : (tp.perHour || []);
    chartBox.replaceChildren(h('div', { class: 'hint' }, range === 'hour' ? 'Events published per minute, last hour' : 'Events published per hour, last 24 h'),
      vals.length ? chart(vals, range === 'hour' ? 'minute' : 'hour') : h('p', { class: 'muted' }, 'No per-minute series in the stats.'));
  }

  /** drawPartitions lists the partitions of the stats (only when more than one). */
  function drawPartitions(parts) {
    partsBox.hidden = parts.length < 2;
    if (partsBox.hidden) { partsBox.replaceChildren(); return; }
    const num = (v) => h('td', { class: 'num' }, v === null || v === undefined ? 'unknown' : String(v));
    partsBox.replaceChildren(h('h3', {}, `Partitions (${parts.length})`),
      h('table', { testid: 'partitions-table' },
        h('thead', {}, h('tr', {}, h('th', {}, '#'), h('th', {}, 'Role'), h('th', {}, 'Stream'),
          h('th', { class: 'num' }, 'Length'), h('th', { class: 'num' }, 'Lag'), h('th', { class: 'num' }, 'Pending'),
          h('th', { class: 'num' }, 'DLQ'))),
        h('tbody', {}, ...parts.map((p) => p.error
          ? h('tr', { testid: 'partition-row', 'data-index': String(p.index), class: 'bad' },
            h('td', {}, String(p.index)), h('td', {}, p.role), h('td', {}, p.stream),
            h('td', { colspan: '4', testid: 'partition-error' }, p.error))
          : h('tr', { testid: 'partition-row', 'data-index': String(p.index) },
            h('td', {}, String(p.index)), h('td', {}, p.role), h('td', {}, p.stream),
            num(p.length), num(p.lag), num(p.pending), num(p.dlq))))));
  }

  async function refresh() {
    try {
      const health = await api('GET', '/health/events', undefined, { accept: [503] });
      badge.textContent = health.healthy ? 'healthy' : 'unhealthy';
      badge.className = 'badge ' + (health.healthy ? 'ok' : 'bad');
      const items = [];
      for (const w of health.warnings || []) items.push(h('li', { testid: 'alarm' }, w));
      if (ctx.canAdmin) {
        const st = await api('GET', '/admin/events/stats');
        last = st;
        for (const a of st.alarms || []) items.push(h('li', { testid: 'alarm' }, `${a.level}: ${a.message}`));
        const g = st.consumerGroup || {};
        const dlq = st.dlq || {};
        cards.replaceChildren(
          card('Events, last hour', st.throughput.lastHour, 'card-last-hour'),
          card('Events, last 24 h', st.throughput.last24h, 'card-last-24h'),
          card('Dead letters', dlq.length, 'card-dlq', dlq.budget ? `${(dlq.usedPercent || 0).toFixed(1)} % of budget ${dlq.budget}` : 'no budget set'),
          card('Lag', g.lag, 'card-lag', g.name ? 'group ' + g.name : null),
          card('Pending', g.pending, 'card-pending'),
          card('Consumers', g.consumers, 'card-consumers'),
          card('Stream length', st.mainStream ? st.mainStream.length : null, 'card-stream'),
          card('Retries scheduled', g.retriesScheduled, 'card-retries'),
          ...((st.partitions || []).length > 1 ? [card('Partitions', st.partitions.length, 'card-partitions', st.incomplete ? 'some could not be read: the figures above leave them out' : 'the figures above are totals over them')] : []));
        drawChart();
        drawPartitions(st.partitions || []);
      }
      alarms.replaceChildren(...items);
      updated.textContent = 'updated ' + new Date().toLocaleTimeString();
      showError('');
    } catch (e) { report(e); }
  }
  refresh();
  const timer = setInterval(refresh, 5000);
  return () => clearInterval(timer);
}
