// Agents, a page at a time, by status and cluster (admin).

import { call, query } from '../api.js';
import { h, table, section, ago, badge, link } from '../dom.js';
import { pager } from '../live.js';

const STATUSES = ['', 'active', 'stale', 'inactive'];

export async function renderAgents(ctx) {
  const status = STATUSES.includes(ctx.query.get('status')) ? ctx.query.get('status') : '';
  const cluster = ctx.query.get('cluster') ?? '';
  const select = h('select', { id: 'agent-status', name: 'status' },
    STATUSES.map((s) => h('option', { value: s, selected: s === status, text: s || 'any' })));
  const clusterInput = h('input', { id: 'agent-cluster', name: 'cluster', type: 'search', value: cluster, placeholder: 'cluster name' });
  const form = h('form', { class: 'filters', role: 'search' },
    h('label', { for: 'agent-status', text: 'Status' }), select,
    h('label', { for: 'agent-cluster', text: 'Cluster' }), clusterInput,
    h('button', { type: 'submit', text: 'Filter' }));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    location.hash = `#/agents${query({ status: select.value, cluster: clusterInput.value.trim() })}`;
  });
  const list = pager(
    (cursor) => call(`/agents${query({ status, cluster_name: cluster, limit: 50, cursor })}`),
    (items) => table([
      { title: 'Agent', cell: (a) => link(`/agents/${a.id}`, a.name) },
      { title: 'Cluster', cell: (a) => a.cluster_name },
      { title: 'Status', cell: (a) => badge(a.status) },
      { title: 'Heartbeat', cell: (a) => ago(a.last_heartbeat) },
      { title: 'Kubernetes', cell: (a) => a.capabilities?.kubernetes_version ?? '—' },
    ], items, {
      empty: status ? `No ${status} agents on this page.` : 'No agents registered yet.',
      label: 'Agents',
      rowClass: (a) => `agent-${a.status}`,
    }),
    { label: 'Pages of agents' },
  );
  await list.reload();
  ctx.live(list.refresh);
  const note = status === 'active' || status === 'stale'
    ? h('p', { class: 'muted', text: 'Active and stale are judged by heartbeat age after paging, so a page may hold fewer agents than others.' })
    : null;
  return h('div', {}, h('h1', { text: 'Agents' }), form, note, section('Registered agents', list.node).node);
}
