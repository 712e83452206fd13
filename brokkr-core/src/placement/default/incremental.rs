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
//!   agent (a stack that was not full had no one waiting: nothing to search).
//!
//! Anything else (`rebalance`, a chosen agent that changed its spread value or its
//! rank, unknown agents) answers `None`: decide in full.

use std::collections::HashMap;

use crate::id::AgentId;
use crate::placement::AgentChange;

use super::fit::Fit;

/// The chosen set after `change`, or `None` for "decide in full".
pub(super) fn update(change: &AgentChange<'_>) -> Option<Vec<AgentId>> {
    let policy = change.policy;
    if policy.rebalance {
        return None;
    }
    let fit = Fit::new(policy, change.now, change.stale_after);
    let after = change.after;
    let chosen = change.chosen;
    let max = policy.max_clusters.map_or(usize::MAX, |n| n as usize);
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
            let same_domain = fit.domain(before) == fit.domain(after);
            if fit.failing(after, true).is_none() {
                // Still in; only a move to another spread value can shift others.
                return same_domain.then(|| chosen.to_vec());
            }
            let mut next = chosen.to_vec();
            next.remove(at);
            // Counts per spread value of the agents that stay.
            let mut per_domain: HashMap<Option<&str>, u32> = HashMap::new();
            if policy.spread.is_some() {
                for id in &next {
                    *per_domain
                        .entry(fit.domain(change.inventory.get(id)?))
                        .or_default() += 1;
                }
            }
            let left_full = chosen.len() >= max
                || policy.spread.as_ref().is_some_and(|spread| {
                    let value = fit.domain(before);
                    per_domain.get(&value).copied().unwrap_or(0) + 1 >= spread.max_per_value
                });
            if !left_full {
                // Nobody was waiting for this place: every agent that fits had one.
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
