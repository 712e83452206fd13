// One agent: its labels, annotations, taints, capabilities and heartbeat, the
// stacks it is responsible for, and what it reported lately (admin).

import { call, query } from '../api.js';
import { h, fill, table, section, ago, badge, chips, facts, shortId } from '../dom.js';
import { pager } from '../live.js';
import { stacksById, stackLink, message } from '../names.js';

const TAINTS = 'brokkr.io/taints';

function taints(annotations) {
  const value = annotations?.[TAINTS];
  if (!value) return h('span', { class: 'muted', text: 'none' });
  return h('ul', { class: 'chips' }, value.split(',').map((t) => h('li', {}, h('code', { text: t.trim() }))));
}

function capabilities(c) {
  const extra = Object.keys(c?.extra ?? {}).length ? JSON.stringify(c.extra, null, 2) : null;
  return facts([
    ['Kubernetes', c?.kubernetes_version ?? '—'],
    ['Nodes', c?.node_count ?? '—'],
    ['CPU', c?.allocatable_cpu_millis !== undefined ? `${c.allocatable_cpu_millis} m` : '—'],
    ['Memory', c?.allocatable_memory_bytes !== undefined ? `${Math.round(c.allocatable_memory_bytes / 2 ** 20)} MiB` : '—'],
    ['Features', (c?.features ?? []).length ? chips(Object.fromEntries(c.features.map((f) => [f, '']))) : h('span', { class: 'muted', text: 'none' })],
    extra ? ['Extra', h('pre', { class: 'json', text: extra })] : null,
  ]);
}

export async function renderAgent(ctx) {
  const [id] = ctx.params;
  const agent = await call(`/agents/${id}`);
  const head = h('div', {});
  const draw = (a) => fill(head, h('section', { class: 'card' }, facts([
    ['Status', badge(a.status)],
    ['Heartbeat', ago(a.last_heartbeat)],
    ['Cluster', a.cluster_name],
    ['Id', shortId(a.id)],
    ['Labels', chips(a.labels)],
    ['Annotations', chips(Object.fromEntries(Object.entries(a.annotations).filter(([k]) => k !== TAINTS)))],
    ['Taints', taints(a.annotations)],
  ])), section('Capabilities', capabilities(a.capabilities)).node);
  draw(agent);

  const stacks = pager(async (cursor) => {
    const page = await call(`/agents/${id}/targets${query({ limit: 25, cursor })}`);
    const names = await stacksById((page.items ?? []).map((t) => t.stack_id));
    return { items: (page.items ?? []).map((t) => ({ ...t, stack: names.get(t.stack_id)?.name ?? null })), next_cursor: page.next_cursor };
  }, (items) => table([
    { title: 'Stack', cell: (t) => stackLink(t.stack_id, new Map(t.stack ? [[t.stack_id, { name: t.stack }]] : [])) },
    { title: 'Source', cell: (t) => t.source },
    { title: 'Since', cell: (t) => ago(t.created_at) },
    { title: 'State', cell: (t) => (t.removed_at ? badge('inactive', 'removing') : badge('active', 'assigned')) },
  ], items, { empty: 'This agent is responsible for no stack.', label: 'Stacks of this agent' }), { label: 'Pages of stacks' });

  const events = pager(async (cursor) => {
    const page = await call(`/agents/${id}/events${query({ order: 'desc', limit: 20, cursor })}`);
    const names = await stacksById((page.items ?? []).map((e) => e.stack_id));
    return { items: (page.items ?? []).map((e) => ({ ...e, stack: names.get(e.stack_id)?.name ?? null })), next_cursor: page.next_cursor };
  }, (items) => table([
    { title: 'When', cell: (e) => ago(e.created_at) },
    { title: 'Stack', cell: (e) => stackLink(e.stack_id, new Map(e.stack ? [[e.stack_id, { name: e.stack }]] : [])) },
    { title: 'Attempt', cell: (e) => badge(e.status === 'success' ? 'healthy' : 'failed', `${e.event_type} ${e.status}`) },
    { title: 'Message', cell: (e) => message(e.message) },
  ], items, { empty: 'No events reported yet.', label: 'Recent events', rowClass: (e) => (e.status === 'failure' ? 'failing' : null) }), { label: 'Pages of events' });

  await Promise.all([stacks.reload(), events.reload()]);
  let shown = JSON.stringify(agent);
  ctx.live(async () => {
    const now = await call(`/agents/${id}`);
    const json = JSON.stringify(now);
    if (json !== shown) { shown = json; draw(now); }
    await Promise.all([stacks.refresh(), events.refresh()]);
  });
  return h('div', {},
    h('h1', {}, h('span', { class: 'muted', text: 'Agent ' }), h('span', { id: 'agent-name', text: agent.name })),
    head, section('Stacks', stacks.node).node, section('Recent events', events.node).node);
}
