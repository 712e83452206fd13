// Names for ids, read once per page load: a table row shows an agent's or a stack's
// name, not only its id. A generator may not read agents, so it sees their ids.

import { call } from './api.js';
import { h, link, short, shortId } from './dom.js';

const agents = new Map();
const stacks = new Map();

function cached(map, id, load) {
  if (!map.has(id)) {
    map.set(id, load().catch(() => null));
  }
  return map.get(id);
}

/** Agents by id, for the ids given (admin only; others get an empty map). */
export async function agentsById(ids, me) {
  const out = new Map();
  if (me.role !== 'admin') return out;
  await Promise.all([...new Set(ids)].map(async (id) => {
    const agent = await cached(agents, id, () => call(`/agents/${id}`));
    if (agent) out.set(id, agent);
  }));
  return out;
}

/** Stacks by id, for the ids given (those the key may see). */
export async function stacksById(ids) {
  const out = new Map();
  await Promise.all([...new Set(ids)].map(async (id) => {
    const stack = await cached(stacks, id, () => call(`/stacks/${id}`));
    if (stack) out.set(id, stack);
  }));
  return out;
}

/** A link to an agent, by name when known. */
export function agentLink(id, known, me) {
  const agent = known.get(id);
  if (me.role !== 'admin') return shortId(id);
  return link(`/agents/${id}`, agent ? `${agent.name} (${agent.cluster_name})` : short(id));
}

/** A link to a stack, by name when known. */
export function stackLink(id, known) {
  const stack = known.get(id);
  return link(`/stacks/${id}`, stack ? stack.name : short(id));
}

/** The text of a failed event, or a dash. */
export function message(text) {
  return text ? h('span', { class: 'message', text }) : h('span', { class: 'muted', text: '—' });
}
