//! Graceful eviction (ROLLOUTS.md section 11, after Karmada's `GracefulEvictionTask`):
//! when a decision drops an agent that is still active and fresh while it adds others,
//! the dropped agent keeps the stack (its target, hence its objects) until every agent
//! the move added reports the stack healthy, or until the policy's
//! [`eviction_grace_secs`](crate::PlacementPolicy::eviction_grace_secs) runs out. Without
//! it a spread move from A to B removed the workload from A before B ran it: a gap in
//! service.
//!
//! This module is the pure part: from the stored decision, the new chosen set, the
//! time and two answers about agents (may this agent keep the stack at all; has this
//! agent reported the stack healthy since some time), [`next_leaving`] tells which
//! agents are leaving now and which were released, and why. The control plane asks
//! it whenever it records a decision and whenever a leaving agent's replacement
//! reports healthy or a deadline may have passed; the list is stored with the
//! decision ([`PlacementDecision::leaving`]), so restarts and other replicas see it.
//!
//! An agent leaves at once, as before, when it cannot run the stack anyway (deleted,
//! paused, stale, or past `evict_after_secs`), when the decision adds nobody (a lower
//! `max_clusters` shrinks, it does not move), or with a grace of zero.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use super::PlacementDecision;
use crate::id::AgentId;

/// The grace a dropped agent gets when the policy does not say: 10 minutes.
pub const DEFAULT_EVICTION_GRACE_SECS: u64 = 600;

/// An agent a decision dropped that keeps the stack for now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Leaving {
    /// The agent.
    pub agent_id: AgentId,
    /// The agents the move added and still chosen, ordered by id: it is released once
    /// every one of them reported the stack healthy after `since`.
    pub replacements: Vec<AgentId>,
    /// When the decision dropped it.
    pub since: DateTime<Utc>,
    /// When it loses the stack whatever its replacements report.
    pub until: DateTime<Utc>,
}

/// Why a leaving agent lost the stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Release {
    /// Every replacement reported the stack healthy.
    ReplacementsHealthy,
    /// The grace ran out first.
    GraceElapsed,
    /// The agent itself can no longer run the stack (deleted, paused, stale).
    NotActive,
    /// None of its replacements is chosen any more: nobody to wait for.
    NoReplacement,
}

impl Release {
    /// The stable name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ReplacementsHealthy => "replacements_healthy",
            Self::GraceElapsed => "grace_elapsed",
            Self::NotActive => "not_active",
            Self::NoReplacement => "no_replacement",
        }
    }
}

impl fmt::Display for Release {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A leaving agent released by [`next_leaving`], with why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Released {
    /// The agent, which now loses the stack.
    pub agent_id: AgentId,
    /// Why now.
    pub reason: Release,
}

/// What a decision's eviction step is judged with.
pub struct EvictionInput<'a> {
    /// The stored decision (chosen and leaving); `None` for a stack never decided.
    pub before: Option<&'a PlacementDecision>,
    /// The new chosen set, ordered by id.
    pub chosen: &'a [AgentId],
    /// The policy's grace ([`crate::PlacementPolicy::eviction_grace`]).
    pub grace: Duration,
    /// Now.
    pub now: DateTime<Utc>,
    /// Whether this agent may keep the stack at all: live, not paused, its heartbeat
    /// fresh (and within `evict_after_secs` when the policy sets it).
    pub keepable: &'a dyn Fn(AgentId) -> bool,
    /// Whether this agent reported the stack healthy, for the object its target state
    /// names, at or after the given time.
    pub healthy_since: &'a dyn Fn(AgentId, DateTime<Utc>) -> bool,
}

/// The agents leaving after a decision choosing `input.chosen`, ordered by id, and the
/// ones released now.
///
/// - A leaving agent chosen again simply has the stack again (neither leaving nor
///   released).
/// - Any other leaving agent waits for its replacements still chosen; it is released
///   when it is not keepable, when none is left, when all reported healthy since it
///   started leaving, or at its deadline (checked in that order).
/// - An agent the decision drops starts leaving, with every agent the decision adds as
///   its replacements, if the grace is positive, something is added and it is
///   keepable; otherwise it loses the stack at once (not a release: it never left
///   gracefully).
pub fn next_leaving(input: &EvictionInput<'_>) -> (Vec<Leaving>, Vec<Released>) {
    let chosen: BTreeSet<AgentId> = input.chosen.iter().copied().collect();
    let empty = PlacementDecision::default();
    let before = input.before.unwrap_or(&empty);
    let mut leaving = Vec::new();
    let mut released = Vec::new();
    for old in &before.leaving {
        if chosen.contains(&old.agent_id) {
            continue;
        }
        let replacements: Vec<AgentId> = old
            .replacements
            .iter()
            .copied()
            .filter(|r| chosen.contains(r))
            .collect();
        let reason = if !(input.keepable)(old.agent_id) {
            Some(Release::NotActive)
        } else if replacements.is_empty() {
            Some(Release::NoReplacement)
        } else if replacements
            .iter()
            .all(|&r| (input.healthy_since)(r, old.since))
        {
            Some(Release::ReplacementsHealthy)
        } else if input.now >= old.until {
            Some(Release::GraceElapsed)
        } else {
            None
        };
        match reason {
            Some(reason) => released.push(Released {
                agent_id: old.agent_id,
                reason,
            }),
            None => leaving.push(Leaving {
                replacements,
                ..old.clone()
            }),
        }
    }
    let had: BTreeSet<AgentId> = before.chosen.iter().copied().collect();
    let added: Vec<AgentId> = chosen.difference(&had).copied().collect();
    if input.grace > Duration::zero() && !added.is_empty() {
        let until = input
            .now
            .checked_add_signed(input.grace)
            .unwrap_or(DateTime::<Utc>::MAX_UTC);
        let already: BTreeSet<AgentId> = leaving.iter().map(|l| l.agent_id).collect();
        for &dropped in had.difference(&chosen) {
            if already.contains(&dropped) || !(input.keepable)(dropped) {
                continue;
            }
            leaving.push(Leaving {
                agent_id: dropped,
                replacements: added.clone(),
                since: input.now,
                until,
            });
        }
    }
    leaving.sort_by_key(|l| l.agent_id);
    released.sort_by_key(|r| r.agent_id);
    (leaving, released)
}

#[cfg(test)]
mod tests;
