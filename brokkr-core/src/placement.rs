//! The [`Placement`] trait: which agents get a stack.
//!
//! Placement is a pure function of a stack's policy and the agent inventory; time comes
//! in as a parameter. [`SelectorPlacement`] is the default: live, active agents whose
//! labels and annotations match, capped at `max_clusters` by a stable order.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::AgentId;
use crate::model::{Agent, AgentStatus};
use crate::selector::{AnnotationMatch, LabelSelector};

/// Where a stack may run, set on the stack. Direct assignments always apply in
/// addition to what a policy chooses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementPolicy {
    /// Agents whose labels match.
    #[serde(default)]
    pub agent_selector: LabelSelector,
    /// Agents whose annotations carry these exact values.
    #[serde(default)]
    pub annotations: AnnotationMatch,
    /// At most this many agents (clusters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_clusters: Option<u32>,
}

/// Why an agent was not chosen; the first reason found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", content = "detail", rename_all = "snake_case")]
pub enum Rejection {
    /// The agent is deleted or paused by an admin.
    NotActive,
    /// A label requirement failed (which one, in words).
    LabelMismatch(String),
    /// An annotation requirement failed.
    AnnotationMismatch(String),
    /// It fits, but the policy's limit was reached by agents ranked before it.
    LimitReached,
}

/// The outcome of placing one stack.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementDecision {
    /// Chosen agents, in a stable order.
    pub chosen: Vec<AgentId>,
    /// Every other agent with the first reason it was not chosen.
    pub rejected: Vec<(AgentId, Rejection)>,
}

/// Decides which agents get a stack. Implementations must be deterministic: the same
/// policy, agents and `now` give the same decision.
pub trait Placement: Send + Sync {
    /// Places one stack over `agents` at time `now`.
    fn place(
        &self,
        policy: &PlacementPolicy,
        agents: &[Agent],
        now: DateTime<Utc>,
    ) -> PlacementDecision;
}

/// The default placement: selectors, then a cap by ascending agent id.
#[derive(Debug, Clone, Copy, Default)]
pub struct SelectorPlacement;

impl Placement for SelectorPlacement {
    fn place(
        &self,
        policy: &PlacementPolicy,
        agents: &[Agent],
        _now: DateTime<Utc>,
    ) -> PlacementDecision {
        let mut sorted: Vec<&Agent> = agents.iter().collect();
        sorted.sort_by_key(|agent| agent.id);
        let limit = policy.max_clusters.map_or(usize::MAX, |n| n as usize);
        let mut decision = PlacementDecision::default();
        for agent in sorted {
            let rejection = if agent.deleted_at.is_some() || agent.status != AgentStatus::Active {
                Some(Rejection::NotActive)
            } else if let Some(miss) = policy.agent_selector.first_mismatch(&agent.labels) {
                Some(Rejection::LabelMismatch(miss.to_string()))
            } else if let Some(miss) = policy.annotations.first_mismatch(&agent.annotations) {
                Some(Rejection::AnnotationMismatch(miss.to_string()))
            } else if decision.chosen.len() >= limit {
                Some(Rejection::LimitReached)
            } else {
                None
            };
            match rejection {
                Some(reason) => decision.rejected.push((agent.id, reason)),
                None => decision.chosen.push(agent.id),
            }
        }
        decision
    }
}
