// A stack's placement: the policy, whom it chose, and why every other agent was not
// chosen (counted per reason, the first rejections listed with their detail).

import { h, fill, table, ago, badge, facts } from '../dom.js';
import { agentsById, agentLink } from '../names.js';

const shown = new WeakMap();
const CHOSEN_SHOWN = 20;

export async function placementView(node, placement, me) {
  const json = JSON.stringify(placement);
  if (shown.get(node) === json) return;
  shown.set(node, json);
  if (!placement) {
    fill(node, h('p', { class: 'empty', text: 'No placement policy: agents get this stack only when assigned directly.' }));
    return;
  }
  const decision = placement.decision ?? null;
  const chosen = decision?.chosen ?? [];
  const rejected = decision?.rejected ?? [];
  const known = await agentsById([...chosen.slice(0, CHOSEN_SHOWN), ...rejected.map((r) => r.agent_id)], me);
  const reasons = Object.entries(decision?.rejected_by_reason ?? {});
  fill(node,
    facts([
      ['Decided', decision ? ago(placement.decided_at) : h('span', { class: 'muted', text: 'not yet' })],
      ['Chosen', h('span', {}, `${chosen.length} agent${chosen.length === 1 ? '' : 's'}`, ' ',
        h('span', { class: 'inline-list' }, chosen.slice(0, CHOSEN_SHOWN).map((id) => [agentLink(id, known, me), ' '])),
        chosen.length > CHOSEN_SHOWN ? h('span', { class: 'muted', text: `and ${chosen.length - CHOSEN_SHOWN} more` }) : null)],
      ['Not chosen', `${decision?.rejected_total ?? 0} agents`],
      placement.held ? ['Held', badge('degraded', 'a decision waits for an admin to confirm its plan')] : null,
    ]),
    decision ? h('h3', { text: 'Reasons agents were not chosen' }) : null,
    decision ? table([
      { title: 'Reason', cell: ([reason]) => h('code', { text: reason }) },
      { title: 'Agents', cell: ([, count]) => String(count) },
    ], reasons, { empty: 'Every live agent was chosen.', label: 'Rejections by reason' }) : null,
    rejected.length ? h('h3', { text: `First ${rejected.length} agents not chosen` }) : null,
    rejected.length ? table([
      { title: 'Agent', cell: (r) => agentLink(r.agent_id, known, me) },
      { title: 'Reason', cell: (r) => h('code', { text: r.reason }) },
      { title: 'Detail', cell: (r) => r.detail ?? '' },
    ], rejected, { label: 'Agents not chosen' }) : null,
    h('details', {}, h('summary', { text: 'Policy' }),
      h('pre', { class: 'json', text: JSON.stringify(placement.policy, null, 2) })));
}
