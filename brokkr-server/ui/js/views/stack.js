// One stack: what it is, which version each agent runs and how healthy it is, its
// deployment objects with their provenance, and why placement chose what it chose.

import { call, optional, query } from '../api.js';
import { h, fill, table, section, ago, badge, chips, facts, short, shortId } from '../dom.js';
import { pager } from '../live.js';
import { agentsById, agentLink, message } from '../names.js';
import { placementView } from './placement.js';

const BAD_HEALTH = new Set(['failed', 'degraded']);

/** The newest objects of the stack, to name the version each agent runs. */
async function recentObjects(id) {
  const page = await call(`/stacks/${id}/deployment-objects${query({ order: 'desc', limit: 50 })}`);
  return page.items ?? [];
}

/** The latest event of each agent among the stack's recent events (admin only). */
async function latestEvents(id, me) {
  const out = new Map();
  if (me.role !== 'admin') return out;
  const page = await call(`/agent-events${query({ stack_id: id, order: 'desc', limit: 200 })}`);
  for (const event of page.items ?? []) {
    if (!out.has(event.agent_id)) out.set(event.agent_id, event);
  }
  return out;
}

/** A stack's health answer holds one report per agent, unpaged: on a stack with many
 * agents it is read again only every HEALTH_SLOW_MS (10,000 reports are ~3 MB). */
const MANY_REPORTS = 500;
const HEALTH_SLOW_MS = 15000;

function healthReader(id) {
  let last = null;
  let readAt = 0;
  return async () => {
    const big = last && (last.items ?? []).length > MANY_REPORTS;
    if (!last || !big || Date.now() - readAt >= HEALTH_SLOW_MS) {
      last = await call(`/stacks/${id}/health`);
      readAt = Date.now();
    }
    return last;
  };
}

/** One page of the stack's agents, each with its version, health and latest event. */
async function agentPage(id, me, cursor, readHealth) {
  const [targets, health, objects, events] = await Promise.all([
    call(`/stacks/${id}/targets${query({ limit: 50, cursor })}`),
    readHealth(),
    recentObjects(id),
    latestEvents(id, me),
  ]);
  const items = targets.items ?? [];
  const agents = await agentsById(items.map((t) => t.agent_id), me);
  const reports = new Map((health.items ?? []).map((r) => [r.agent_id, r]));
  const sequences = new Map(objects.map((o) => [o.id, o.sequence_id]));
  const latest = objects[0]?.id ?? null;
  const rows = items.map((t) => {
    const report = reports.get(t.agent_id) ?? null;
    const event = events.get(t.agent_id) ?? null;
    const running = report?.deployment_object_id
      ?? (event && event.status === 'success' ? event.deployment_object_id : null);
    const failing = BAD_HEALTH.has(report?.status) || event?.status === 'failure';
    return {
      agent_id: t.agent_id,
      agent: agents.get(t.agent_id) ?? null,
      source: t.source,
      removed: Boolean(t.removed_at),
      running,
      sequence: running ? sequences.get(running) ?? null : null,
      current: running !== null && running === latest,
      health: report?.status ?? null,
      summary: report?.summary ?? null,
      event,
      failing,
    };
  });
  return { items: rows, next_cursor: targets.next_cursor, status: health.status ?? null };
}

function version(row) {
  if (!row.running) return h('span', { class: 'muted', text: 'nothing reported' });
  const label = row.sequence !== null ? `#${row.sequence}` : short(row.running);
  return h('span', { class: 'version' }, h('code', { title: row.running, text: label }), ' ',
    row.current ? badge('healthy', 'latest') : badge('progressing', 'behind'));
}

function agentTable(rows, me) {
  const known = new Map(rows.filter((r) => r.agent).map((r) => [r.agent_id, r.agent]));
  return table([
    { title: 'Agent', cell: (r) => h('span', {}, agentLink(r.agent_id, known, me), r.failing ? [' ', badge('failed', 'failing')] : null) },
    { title: 'Target', cell: (r) => (r.removed ? badge('inactive', 'removing') : h('span', { text: r.source })) },
    { title: 'Version', cell: version },
    { title: 'Health', cell: (r) => h('span', {}, r.health ? badge(r.health) : badge('unreported', 'not reported'), r.summary ? [' ', h('span', { class: 'muted', text: r.summary })] : null) },
    { title: 'Last event', cell: (r) => (r.event ? h('span', {}, badge(r.event.status === 'success' ? 'healthy' : 'failed', `${r.event.event_type} ${r.event.status}`), ' ', ago(r.event.created_at), r.event.status === 'failure' ? [' ', message(r.event.message)] : null) : h('span', { class: 'muted', text: me.role === 'admin' ? 'none' : 'admin only' })) },
  ], rows, { empty: 'No agent is responsible for this stack.', label: 'Agents of this stack', rowClass: (r) => (r.failing ? 'failing agent-row' : 'agent-row') });
}

function provenance(o) {
  const p = o.provenance;
  if (!p) return h('span', { class: 'muted', text: 'YAML sent as is' });
  const source = p.generator
    ? `generator ${p.generator}`
    : `template ${short(p.template_id)} v${p.template_version}`;
  return h('details', {}, h('summary', { text: source }),
    h('pre', { class: 'json', text: JSON.stringify(p.parameters, null, 2) }));
}

function objectTable(items) {
  return table([
    { title: 'Sequence', cell: (o) => h('code', { class: 'sequence', text: `#${o.sequence_id}` }) },
    { title: 'Stored', cell: (o) => ago(o.created_at) },
    { title: 'Content', cell: (o) => (o.is_deletion_marker ? badge('failed', 'deletion marker') : h('span', { text: `${o.yaml_bytes} bytes` })) },
    { title: 'Checksum', cell: (o) => h('code', { title: o.yaml_checksum, text: o.yaml_checksum.slice(0, 12) }) },
    { title: 'Provenance', cell: provenance },
  ], items, { empty: 'No deployment object yet.', label: 'Deployment objects' });
}

export async function renderStack(ctx) {
  const [id] = ctx.params;
  const stack = await call(`/stacks/${id}`);
  const { me } = ctx;
  const overall = h('span', { id: 'stack-health' });
  let lastStatus;
  const readHealth = healthReader(id);
  const agents = pager(async (cursor) => {
    const page = await agentPage(id, me, cursor, readHealth);
    if (page.status !== lastStatus) {
      lastStatus = page.status;
      fill(overall, page.status ? badge(page.status) : badge('unreported', 'no reports'));
    }
    return page;
  }, (rows) => agentTable(rows, me), { label: 'Pages of agents' });
  const objects = pager(
    (cursor) => call(`/stacks/${id}/deployment-objects${query({ order: 'desc', limit: 10, cursor })}`),
    objectTable,
    { label: 'Pages of deployment objects' },
  );
  const placement = h('div', {});
  const drawPlacement = async () => {
    const current = await optional(`/stacks/${id}/placement${query({ limit: 20 })}`);
    await placementView(placement, current, me);
  };
  await Promise.all([agents.reload(), objects.reload(), drawPlacement()]);
  ctx.live(() => Promise.all([agents.refresh(), objects.refresh(), drawPlacement()]));

  const agentSection = section('Agents', agents.node);
  agentSection.node.id = 'stack-agents';
  const objectSection = section('Deployment objects', objects.node);
  objectSection.node.id = 'stack-objects';
  const placementSection = section('Placement', placement);
  placementSection.node.id = 'stack-placement';
  return h('div', {},
    h('h1', {}, h('span', { class: 'muted', text: 'Stack ' }), h('span', { id: 'stack-name', text: stack.name })),
    h('section', { class: 'card' }, facts([
      ['Health', overall],
      ['Id', shortId(stack.id)],
      ['Owner', stack.generator_id ? shortId(stack.generator_id) : 'admin'],
      stack.description ? ['Description', stack.description] : null,
      ['Labels', chips(stack.labels)],
      ['Annotations', chips(stack.annotations)],
      ['Created', ago(stack.created_at)],
    ])),
    agentSection.node, objectSection.node, placementSection.node);
}
