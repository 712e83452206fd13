// The fleet at a glance: agents by status, stacks by health, recent failures (admin);
// a generator sees its own stacks.

import { call, query } from '../api.js';
import { h, fill, table, section, ago, badge, link } from '../dom.js';
import { agentsById, stacksById, agentLink, stackLink, message } from '../names.js';
import { pager } from '../live.js';

const AGENT_STATES = ['active', 'stale', 'inactive'];
const HEALTH_STATES = ['healthy', 'progressing', 'degraded', 'failed', 'unreported'];

function counters(title, counts, states, route) {
  return h('section', { class: 'card counters', 'aria-label': title },
    h('h2', {}, title, ' ', h('span', { class: 'muted', text: `(${counts.total})` })),
    h('ul', {}, states.map((state) => h('li', { class: `counter counter-${state}`, 'data-state': state },
      route ? link(route(state), String(counts[state] ?? 0), { class: 'count' })
        : h('span', { class: 'count', text: String(counts[state] ?? 0) }),
      ' ', badge(state)))));
}

async function failures(me) {
  const page = await call(`/agent-events${query({ status: 'failure', order: 'desc', limit: 10 })}`);
  const items = page.items ?? [];
  const [agents, stacks] = await Promise.all([
    agentsById(items.map((e) => e.agent_id), me),
    stacksById(items.map((e) => e.stack_id)),
  ]);
  return table([
    { title: 'When', cell: (e) => ago(e.created_at) },
    { title: 'Agent', cell: (e) => agentLink(e.agent_id, agents, me) },
    { title: 'Stack', cell: (e) => stackLink(e.stack_id, stacks) },
    { title: 'Attempt', cell: (e) => badge('failed', `${e.event_type} failed`) },
    { title: 'Message', cell: (e) => message(e.message) },
  ], items, { empty: 'No failures reported.', label: 'Recent failures', rowClass: () => 'failing' });
}

async function adminOverview(ctx) {
  const fleet = h('div', { class: 'grid', id: 'fleet' });
  const recent = section('Recent failures');
  recent.node.id = 'recent-failures';
  let shown = null;
  const refresh = async () => {
    const [overview, failed] = await Promise.all([call('/admin/overview'), failures(ctx.me)]);
    const json = JSON.stringify(overview);
    if (json !== shown) {
      shown = json;
      fill(fleet,
        counters('Agents', overview.agents, AGENT_STATES, (s) => `/agents?status=${s}`),
        counters('Stacks by health', overview.stacks, HEALTH_STATES));
    }
    fill(recent.body, failed);
  };
  await refresh();
  ctx.live(refresh);
  return h('div', {}, h('h1', { text: 'Fleet overview' }), fleet, recent.node);
}

async function generatorOverview(ctx) {
  const list = pager(
    (cursor) => call(`/stacks${query({ limit: 25, cursor })}`),
    (items) => table([
      { title: 'Stack', cell: (s) => link(`/stacks/${s.id}`, s.name) },
      { title: 'Created', cell: (s) => ago(s.created_at) },
    ], items, { empty: 'This generator has no stacks yet.', label: 'Your stacks' }),
    { label: 'Pages of your stacks' },
  );
  await list.reload();
  ctx.live(list.refresh);
  const mine = section('Stacks', list.node);
  return h('div', {}, h('h1', { text: 'Your stacks' }),
    h('p', { class: 'muted', text: 'A generator key sees only the stacks it owns.' }), mine.node);
}

export function renderOverview(ctx) {
  return ctx.me.role === 'admin' ? adminOverview(ctx) : generatorOverview(ctx);
}
