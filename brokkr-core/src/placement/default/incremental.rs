//! [`DefaultPlacement`](super::DefaultPlacement)'s answer to one agent's change
//! without a full decision: an agent that drops out or joins changes the chosen set
//! by itself plus, at most, the one agent that takes the place it left.
//!
//! Without `rebalance` a decision is: every incumbent that still fits (ranked first,
//! and within the limits, since they all were before), then newcomers in rank order
//! while a slot is free. So, from a chosen set that was a full decision:
//!
//! - an agent that joins (fits as a newcomer, was not chosen) is added if a slot is
//!   free for it, and changes nothing otherwise (incumbents keep their places);
//! - a chosen agent that leaves (no longer fits as an incumbent) is removed, and its
//!   place goes to the best-ranked newcomer that fits and whose spread value has room;
//!   the inventory is visited in rank order, so the search stops at the first such
//!   agent (a stack that was not full had no one waiting: nothing to search);
//! - a chosen agent that moves to another spread value keeps its place unless that
//!   value is over its limit with it, in which case the lowest-ranked agent there
//!   loses it; the place left behind is filled as above.
//!
//! With `rebalance` and no spread, a decision is the `max_clusters` best-ranked agents
//! that fit (incumbents still judged leniently), so a change swaps at most one agent
//! in or out: the changed one against the lowest-ranked chosen agent or the
//! best-ranked one waiting.
//!
//! Anything else (`rebalance` with a spread, unknown agents) answers `None`: decide in
//! full.

use std::cmp::Reverse;
use std::collections::HashMap;

use crate::id::AgentId;
use crate::model::Agent;
use crate::placement::AgentChange;

use super::fit::Fit;

/// The chosen set after `change`, or `None` for "decide in full".
pub(super) fn update(change: &AgentChange<'_>) -> Option<Vec<AgentId>> {
    let policy = change.policy;
    let fit = Fit::new(policy, change.now, change.stale_after);
    let max = policy.max_clusters.map_or(usize::MAX, |n| n as usize);
    if policy.rebalance {
        return match policy.spread {
            None => rebalanced(change, &fit, max),
            Some(_) => None,
        };
    }
    let after = change.after;
    let chosen = change.chosen;
    match chosen.binary_search(&after.id) {
        Err(at) => {
            if fit.failing(after, false).is_some() || chosen.len() >= max {
                return Some(chosen.to_vec());
            }
            if let Some(spread) = &policy.spread {
                let value = fit.domain(after);
                let mut taken = 0;
                for id in chosen {
                    taken += usize::from(fit.domain(change.inventory.get(id)?) == value);
                }
                if taken >= spread.max_per_value as usize {
                    return Some(chosen.to_vec());
                }
            }
            let mut next = chosen.to_vec();
            next.insert(at, after.id);
            Some(next)
        }
        Ok(at) => {
            let before = change.before?;
            let fits = fit.failing(after, true).is_none();
            let moved = fit.domain(before) != fit.domain(after);
            if fits && !moved {
                return Some(chosen.to_vec());
            }
            let mut next = chosen.to_vec();
            if !fits {
                next.remove(at);
            }
            // Counts per spread value of the agents that stay (the changed one at its
            // new value).
            let mut per_domain: HashMap<Option<&str>, u32> = HashMap::new();
            if policy.spread.is_some() {
                for id in &next {
                    *per_domain
                        .entry(fit.domain(change.inventory.get(id)?))
                        .or_default() += 1;
                }
            }
            if let Some(spread) = &policy.spread
                && fits
                && per_domain.get(&fit.domain(after)).copied().unwrap_or(0) > spread.max_per_value
            {
                // It moved into a full value: the lowest-ranked agent there loses its
                // place (incumbents rank by capacity, then ascending id).
                let value = fit.domain(after);
                let mut lowest: Option<(u64, u64, std::cmp::Reverse<AgentId>)> = None;
                for id in &next {
                    let agent = change.inventory.get(id)?;
                    if fit.domain(agent) == value {
                        let capabilities = &agent.capabilities;
                        let rank = (
                            capabilities.allocatable_cpu_millis.unwrap_or(0),
                            capabilities.allocatable_memory_bytes.unwrap_or(0),
                            std::cmp::Reverse(agent.id),
                        );
                        lowest = Some(lowest.map_or(rank, |l| l.min(rank)));
                    }
                }
                let (_, _, std::cmp::Reverse(out)) = lowest?;
                next.retain(|id| *id != out);
                if let Some(count) = per_domain.get_mut(&value) {
                    *count -= 1;
                }
            }
            // Someone may be waiting for the freed place only if the stack was full, or
            // the value the agent left was.
            let old_value_was_full = policy.spread.as_ref().is_some_and(|spread| {
                per_domain.get(&fit.domain(before)).copied().unwrap_or(0) + 1
                    >= spread.max_per_value
            });
            if next.len() >= max || !(chosen.len() >= max || old_value_was_full) {
                return Some(next);
            }
            let mut replacement = None;
            change.inventory.visit_by_capacity(&mut |agent| {
                if agent.id == after.id
                    || next.binary_search(&agent.id).is_ok()
                    || fit.failing(agent, false).is_some()
                {
                    return true;
                }
                let room = policy.spread.as_ref().is_none_or(|spread| {
                    per_domain.get(&fit.domain(agent)).copied().unwrap_or(0) < spread.max_per_value
                });
                if room {
                    replacement = Some(agent.id);
                }
                !room
            });
            if let Some(id) = replacement
                && let Err(at) = next.binary_search(&id)
            {
                next.insert(at, id);
            }
            Some(next)
        }
    }
}

/// Where an agent ranks; smaller is better.
type Rank = (Reverse<u64>, Reverse<u64>, AgentId);

/// Smaller is better: most CPU, then most memory, then ascending id.
fn rank(agent: &Agent) -> Rank {
    let capabilities = &agent.capabilities;
    (
        Reverse(capabilities.allocatable_cpu_millis.unwrap_or(0)),
        Reverse(capabilities.allocatable_memory_bytes.unwrap_or(0)),
        agent.id,
    )
}

/// The best-ranked agent that is not in `chosen`, is not `skip`, and fits as a newcomer.
fn best_waiting<'a>(
    change: &AgentChange<'a>,
    fit: &Fit<'_>,
    chosen: &[AgentId],
    skip: AgentId,
) -> Option<(AgentId, Rank)> {
    let mut best = None;
    change.inventory.visit_by_capacity(&mut |agent| {
        if agent.id == skip
            || chosen.binary_search(&agent.id).is_ok()
            || fit.failing(agent, false).is_some()
        {
            return true;
        }
        best = Some((agent.id, rank(agent)));
        false
    });
    best
}

/// [`update`] under `rebalance` without a spread.
fn rebalanced(change: &AgentChange<'_>, fit: &Fit<'_>, max: usize) -> Option<Vec<AgentId>> {
    let (after, chosen) = (change.after, change.chosen);
    let mut next = chosen.to_vec();
    let full = chosen.len() >= max;
    match chosen.binary_search(&after.id) {
        Ok(at) => {
            let fits = fit.failing(after, true).is_none();
            if !fits {
                next.remove(at);
            }
            if !full {
                // Every agent that fits was chosen: nobody waits.
                return Some(next);
            }
            if let Some((id, waiting)) = best_waiting(change, fit, chosen, after.id)
                && (!fits || waiting < rank(after))
            {
                if fits {
                    next.remove(at);
                }
                if let Err(at) = next.binary_search(&id) {
                    next.insert(at, id);
                }
            }
            Some(next)
        }
        Err(at) => {
            if fit.failing(after, false).is_some() {
                return Some(next);
            }
            if !full {
                next.insert(at, after.id);
                return Some(next);
            }
            let mut lowest: Option<&Agent> = None;
            for id in chosen {
                let agent = change.inventory.get(id)?;
                if lowest.is_none_or(|l| rank(agent) > rank(l)) {
                    lowest = Some(agent);
                }
            }
            if let Some(lowest) = lowest
                && rank(after) < rank(lowest)
            {
                let out = lowest.id;
                next.retain(|id| *id != out);
                if let Err(at) = next.binary_search(&after.id) {
                    next.insert(at, after.id);
                }
            }
            Some(next)
        }
    }
}
