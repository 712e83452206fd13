// The audit log, newest first, with the API's filters (admin).

import { call, query } from '../api.js';
import { h, table, section, ago, shortId } from '../dom.js';
import { pager } from '../live.js';

const ACTORS = ['', 'admin', 'agent', 'generator', 'system'];
const RESOURCES = ['', 'stack', 'deployment_object', 'agent', 'agent_target', 'agent_event', 'generator', 'template', 'api_key', 'placement', 'plan'];
const ACTIONS = ['', 'create', 'update', 'delete', 'assign', 'unassign', 'rotate_key', 'set_metadata', 'remove_metadata', 'place', 'confirm'];
const UUID = /^[0-9a-f-]{36}$/i;

/** An RFC 3339 time from a `datetime-local` value (the browser's zone), or ''. */
function instant(value) {
  const at = value ? new Date(value) : null;
  return at && !Number.isNaN(at.getTime()) ? at.toISOString() : '';
}

/** A `datetime-local` value (the browser's zone) for an RFC 3339 time, or ''. */
function local(iso) {
  const at = iso ? new Date(iso) : null;
  if (!at || Number.isNaN(at.getTime())) return '';
  return new Date(at.getTime() - at.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
}

function choice(id, label, values, current) {
  return [h('label', { for: id, text: label }),
    h('select', { id, name: id }, values.map((v) => h('option', { value: v, selected: v === current, text: v || 'any' })))];
}

export async function renderAudit(ctx) {
  const q = ctx.query;
  const pick = (name, values) => (values.includes(q.get(name)) ? q.get(name) : '');
  const filters = {
    actor_type: pick('actor_type', ACTORS),
    resource_type: pick('resource_type', RESOURCES),
    action: pick('action', ACTIONS),
    resource_id: UUID.test(q.get('resource_id') ?? '') ? q.get('resource_id') : '',
    since: instant(q.get('since')),
    until: instant(q.get('until')),
  };
  const form = h('form', { class: 'filters', role: 'search' },
    choice('actor_type', 'Actor', ACTORS, filters.actor_type),
    choice('resource_type', 'Resource', RESOURCES, filters.resource_type),
    choice('action', 'Action', ACTIONS, filters.action),
    h('label', { for: 'resource_id', text: 'Resource id' }),
    h('input', { id: 'resource_id', name: 'resource_id', type: 'search', value: filters.resource_id, placeholder: 'uuid' }),
    h('label', { for: 'since', text: 'From' }),
    h('input', { id: 'since', name: 'since', type: 'datetime-local', value: local(filters.since) }),
    h('label', { for: 'until', text: 'Before' }),
    h('input', { id: 'until', name: 'until', type: 'datetime-local', value: local(filters.until) }),
    h('button', { type: 'submit', text: 'Filter' }));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const data = new FormData(form);
    const chosen = Object.fromEntries([...data.entries()].map(([k, v]) => [k, String(v).trim()]));
    chosen.since = instant(chosen.since);
    chosen.until = instant(chosen.until);
    location.hash = `#/audit${query(chosen)}`;
  });
  const list = pager(
    (cursor) => call(`/admin/audit-logs${query({ ...filters, order: 'desc', limit: 50, cursor })}`),
    (items) => table([
      { title: 'When', cell: (r) => ago(r.created_at) },
      { title: 'Who', cell: (r) => h('span', {}, r.actor_type, r.actor_id ? [' ', shortId(r.actor_id)] : null) },
      { title: 'Action', cell: (r) => h('code', { text: r.action }) },
      { title: 'Resource', cell: (r) => h('span', {}, r.resource_type, ' ', shortId(r.resource_id)) },
      { title: 'Summary', cell: (r) => r.summary },
    ], items, { empty: 'No audit records match.', label: 'Audit records' }),
    { label: 'Pages of audit records' },
  );
  await list.reload();
  ctx.live(list.refresh);
  return h('div', {}, h('h1', { text: 'Audit log' }), form, section('Records, newest first', list.node).node);
}
