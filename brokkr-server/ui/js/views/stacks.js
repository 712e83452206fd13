// Stacks, a page at a time, with the exact-name filter the API has.

import { call, query } from '../api.js';
import { h, table, section, ago, chips, link, shortId } from '../dom.js';
import { pager } from '../live.js';

export async function renderStacks(ctx) {
  const name = ctx.query.get('name') ?? '';
  const input = h('input', { id: 'stack-name', name: 'name', type: 'search', value: name, placeholder: 'exact name' });
  const form = h('form', { class: 'filters', role: 'search' },
    h('label', { for: 'stack-name', text: 'Name' }), input,
    h('button', { type: 'submit', text: 'Filter' }));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const value = input.value.trim();
    location.hash = value ? `#/stacks?name=${encodeURIComponent(value)}` : '#/stacks';
  });
  const list = pager(
    (cursor) => call(`/stacks${query({ name, limit: 50, cursor })}`),
    (items) => table([
      { title: 'Stack', cell: (s) => link(`/stacks/${s.id}`, s.name) },
      { title: 'Owner', cell: (s) => (s.generator_id ? shortId(s.generator_id) : h('span', { class: 'muted', text: 'admin' })) },
      { title: 'Labels', cell: (s) => chips(s.labels) },
      { title: 'Created', cell: (s) => ago(s.created_at) },
    ], items, { empty: name ? 'No stack has this name.' : 'No stacks yet.', label: 'Stacks' }),
    { label: 'Pages of stacks' },
  );
  await list.reload();
  ctx.live(list.refresh);
  return h('div', {}, h('h1', { text: 'Stacks' }), form, section('All stacks', list.node).node);
}
