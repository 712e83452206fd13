//! The [`Placement`] trait: which agents get a stack, from the stack's policy and the
//! live agent inventory.
//!
//! A [`PlacementPolicy`] is stored on a stack. It selects agents by labels
//! (`matchLabels`, `matchExpressions`), annotations and reported capabilities (minimum
//! Kubernetes version, CPU, memory, named features), honours agent taints through
//! tolerations, and caps the number of clusters, optionally spread across a topology
//! label. Placement is a pure function: the same policy, agents, current choice and
//! time give the same [`PlacementDecision`]. [`DefaultPlacement`] implements it.
//!
//! Taints live on agents as the annotation [`TAINTS_ANNOTATION`], in the
//! `kubectl taint` syntax: `key=value:NoSchedule,key2:NoExecute`.

use std::collections::BTreeSet;
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::id::AgentId;
use crate::model::Agent;
use crate::selector::{AnnotationMatch, LabelSelector};

mod default;
mod taint;

pub use default::DefaultPlacement;
pub use taint::{Taint, TaintEffect, TaintError, parse_taints};

/// The agent annotation holding its taints, e.g. `gpu=true:NoSchedule`.
pub const TAINTS_ANNOTATION: &str = "brokkr.io/taints";

/// Where a stack may run, set on the stack. Direct assignments always apply in
/// addition to what a policy chooses.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PlacementPolicy {
    /// Agents whose labels match.
    #[serde(default)]
    pub agent_selector: LabelSelector,
    /// Agents whose annotations carry these exact values.
    #[serde(default)]
    pub annotations: AnnotationMatch,
    /// What the agents' reported capabilities must offer.
    #[serde(default)]
    pub requirements: CapabilityRequirements,
    /// Taints this stack tolerates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// At most this many agents (clusters).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_clusters: Option<u32>,
    /// Spread across the values of an agent label, at most so many per value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spread: Option<Spread>,
    /// A chosen agent whose heartbeat is older than this many seconds loses its place
    /// (the stack is removed from it and placed elsewhere). Without it, a stale agent
    /// keeps what it has forever and only stops receiving new placements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evict_after_secs: Option<u64>,
    /// Re-choose from scratch on every decision, so a better-scoring agent can take
    /// the place of one already chosen. Off by default: decisions do not flap.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rebalance: bool,
}

/// Requirements on what an agent reported in its heartbeats.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapabilityRequirements {
    /// Lowest Kubernetes version, e.g. `1.30` or `v1.30.2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_kubernetes_version: Option<String>,
    /// Least allocatable CPU, in millicores, summed over the cluster's nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_cpu_millis: Option<u64>,
    /// Least allocatable memory, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_memory_bytes: Option<u64>,
    /// Named capabilities every chosen agent must report (e.g. `gpu`).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub features: BTreeSet<String>,
}

/// Tolerates taints with `key` (and `value` with `Equal`), and `effect` if given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Toleration {
    /// The taint key; empty with `Exists` tolerates every taint.
    #[serde(default)]
    pub key: String,
    /// `Equal` (default) or `Exists`.
    #[serde(default)]
    pub operator: TolerationOperator,
    /// The taint value, for `Equal`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<String>,
    /// Only taints with this effect; every effect when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub effect: Option<TaintEffect>,
}

/// How a toleration matches a taint's value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum TolerationOperator {
    /// Key and value must both match.
    #[default]
    Equal,
    /// The key matches whatever the value.
    Exists,
}

/// Spread over the values of an agent label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Spread {
    /// The agent label whose values are the domains, e.g. `region`.
    pub topology_key: String,
    /// At most this many chosen agents per value (at least 1).
    pub max_per_value: u32,
}

/// Why an agent was not chosen: the first reason found, in the order of the checks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reason", content = "detail", rename_all = "snake_case")]
pub enum Rejection {
    /// The agent is deleted or paused by an admin.
    NotActive,
    /// A label requirement failed (which one, in words).
    LabelMismatch(String),
    /// An annotation requirement failed.
    AnnotationMismatch(String),
    /// A capability requirement failed (which one, in words).
    MissingCapability(String),
    /// The agent has a taint the policy does not tolerate (which one).
    Taint(String),
    /// The agent's heartbeat is stale (or it never beat), so it gets no new placement;
    /// or, with `evict_after_secs`, it was stale for too long to keep one.
    StaleHeartbeat,
    /// It fits, but `max_clusters` was reached by agents ranked before it.
    LimitReached,
    /// It fits, but its topology value already has `max_per_value` agents.
    SpreadLimit(String),
}

impl fmt::Display for Rejection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::NotActive => f.write_str("not active"),
            Self::LabelMismatch(d) => write!(f, "label mismatch: {d}"),
            Self::AnnotationMismatch(d) => write!(f, "annotation mismatch: {d}"),
            Self::MissingCapability(d) => write!(f, "missing capability: {d}"),
            Self::Taint(d) => write!(f, "untolerated taint: {d}"),
            Self::StaleHeartbeat => f.write_str("stale heartbeat"),
            Self::LimitReached => f.write_str("limit reached"),
            Self::SpreadLimit(d) => write!(f, "spread limit reached: {d}"),
        }
    }
}

/// The outcome of placing one stack.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlacementDecision {
    /// Chosen agents, ordered by agent id.
    pub chosen: Vec<AgentId>,
    /// Every other agent with the first reason it was not chosen, ordered by agent id.
    pub rejected: Vec<(AgentId, Rejection)>,
}

/// What one decision is made from.
#[derive(Debug, Clone, Copy)]
pub struct PlacementInput<'a> {
    /// The stack's policy.
    pub policy: &'a PlacementPolicy,
    /// Every live agent (deleted ones may be included; they are never chosen).
    pub agents: &'a [Agent],
    /// The agents the stored decision chose, kept while they still fit (stability).
    pub current: &'a [AgentId],
    /// The time to judge heartbeats at.
    pub now: DateTime<Utc>,
    /// A heartbeat older than this is stale.
    pub stale_after: Duration,
}

/// Decides which agents get a stack. Implementations must be deterministic: the same
/// input gives the same decision.
pub trait Placement: Send + Sync {
    /// Places one stack.
    fn place(&self, input: &PlacementInput<'_>) -> PlacementDecision;
}

/// Why a policy cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid placement policy: {0}")]
pub struct PolicyError(pub String);

impl PlacementPolicy {
    /// Checks what deserialisation cannot: selector syntax, versions, spread and
    /// toleration shapes.
    pub fn validate(&self) -> Result<(), PolicyError> {
        let invalid = |m: String| PolicyError(m);
        self.agent_selector
            .validate()
            .map_err(|e| invalid(format!("agent_selector: {e}")))?;
        self.annotations
            .validate()
            .map_err(|e| invalid(format!("annotations: {e}")))?;
        if let Some(version) = &self.requirements.min_kubernetes_version
            && KubernetesVersion::parse(version).is_none()
        {
            return Err(invalid(format!(
                "requirements.min_kubernetes_version: {version:?} is not a version like 1.30 or v1.30.2"
            )));
        }
        for feature in &self.requirements.features {
            if feature.is_empty() || feature.len() > 253 {
                return Err(invalid(
                    "requirements.features: names are 1-253 characters".into(),
                ));
            }
        }
        if let Some(spread) = &self.spread {
            crate::metadata::validate_key(&spread.topology_key)
                .map_err(|e| invalid(format!("spread.topology_key: {e}")))?;
            if spread.max_per_value == 0 {
                return Err(invalid("spread.max_per_value must be at least 1".into()));
            }
        }
        for (i, toleration) in self.tolerations.iter().enumerate() {
            match (toleration.operator, &toleration.value) {
                (TolerationOperator::Exists, Some(_)) => {
                    return Err(invalid(format!(
                        "tolerations[{i}]: operator Exists takes no value"
                    )));
                }
                (TolerationOperator::Equal, _) if toleration.key.is_empty() => {
                    return Err(invalid(format!(
                        "tolerations[{i}]: operator Equal needs a key"
                    )));
                }
                _ => {}
            }
        }
        Ok(())
    }
}

/// A Kubernetes version reduced to what ordering needs: major, minor, patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct KubernetesVersion(pub u32, pub u32, pub u32);

impl KubernetesVersion {
    /// Parses `1.30`, `v1.30.2`, `v1.30.2-gke.1200` or `v1.30.2+k3s1`.
    pub fn parse(text: &str) -> Option<Self> {
        let text = text.trim().strip_prefix('v').unwrap_or(text.trim());
        let core = text.split(['-', '+']).next()?;
        let mut parts = core.split('.');
        let major = parts.next()?.parse().ok()?;
        let minor = parts.next()?.parse().ok()?;
        let patch = match parts.next() {
            Some(p) => p.parse().ok()?,
            None => 0,
        };
        if parts.next().is_some() {
            return None;
        }
        Some(Self(major, minor, patch))
    }
}
