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
//!
//! The trait is open: a control plane registers its own placements by name in a
//! [`PlacementRegistry`]. A stack names the one that decides it in
//! [`PlacementPolicy::placement`] and gives it its own JSON in
//! [`PlacementPolicy::custom`]; the placement validates that JSON
//! ([`Placement::validate`]) and explains its refusals with its own stable codes
//! ([`Rejection::Custom`]).

use std::collections::BTreeSet;
use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::id::AgentId;
use crate::model::Agent;
use crate::selector::{AnnotationMatch, LabelSelector};

mod default;
pub mod eviction;
mod registry;
mod summary;
mod taint;

pub use default::DefaultPlacement;
pub use eviction::{DEFAULT_EVICTION_GRACE_SECS, Leaving, Release, Released};
pub use registry::{PlacementRegistry, UnknownPlacement};
pub use summary::{RejectionPage, Rejections};
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
    /// How long an agent a decision drops while adding others keeps the stack, at
    /// most, waiting for the added agents to report it healthy (graceful eviction,
    /// see [`eviction`]); `0`: it loses the stack at once. Absent:
    /// [`DEFAULT_EVICTION_GRACE_SECS`]. Read by the control plane, whatever placement
    /// decides the stack.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eviction_grace_secs: Option<u64>,
    /// Re-choose from scratch on every decision, so a better-scoring agent can take
    /// the place of one already chosen. Off by default: decisions do not flap.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub rebalance: bool,
    /// The registered placement that decides this stack, by name; absent: the control
    /// plane's default placement.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<String>,
    /// A custom placement's own policy, any JSON: only that placement reads and
    /// validates it (see [`PlacementPolicy::custom_as`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub custom: Option<serde_json::Value>,
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
    /// A custom placement's own reason.
    Custom {
        /// A stable snake_case code (`name_prefix_mismatch`), for machines.
        code: String,
        /// What failed, for people.
        message: String,
    },
}

impl Rejection {
    /// A custom placement's reason: a stable `code` and a `message`.
    pub fn custom(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self::Custom {
            code: code.into(),
            message: message.into(),
        }
    }

    /// The stable code: `not_active`, `label_mismatch`, ... or a custom code.
    pub fn code(&self) -> &str {
        match self {
            Self::NotActive => "not_active",
            Self::LabelMismatch(_) => "label_mismatch",
            Self::AnnotationMismatch(_) => "annotation_mismatch",
            Self::MissingCapability(_) => "missing_capability",
            Self::Taint(_) => "taint",
            Self::StaleHeartbeat => "stale_heartbeat",
            Self::LimitReached => "limit_reached",
            Self::SpreadLimit(_) => "spread_limit",
            Self::Custom { code, .. } => code,
        }
    }

    /// Which requirement, label, capability or taint failed, when the reason says.
    pub fn detail(&self) -> Option<&str> {
        match self {
            Self::NotActive | Self::StaleHeartbeat | Self::LimitReached => None,
            Self::LabelMismatch(d)
            | Self::AnnotationMismatch(d)
            | Self::MissingCapability(d)
            | Self::Taint(d)
            | Self::SpreadLimit(d)
            | Self::Custom { message: d, .. } => Some(d),
        }
    }
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
            Self::Custom { code, message } => write!(f, "{code}: {message}"),
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
    /// Agents an earlier decision chose that keep the stack until the agents that
    /// replaced them report it healthy, or their grace runs out (graceful eviction,
    /// see [`eviction`]), ordered by agent id. The control plane keeps this list with
    /// the stored decision; a [`Placement`] leaves it empty (what it sets is ignored).
    /// Stored decisions without it read as empty.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub leaving: Vec<Leaving>,
}

impl PlacementDecision {
    /// A decision choosing `chosen`, with no reasons and no agent leaving.
    pub fn choosing(chosen: Vec<AgentId>) -> Self {
        Self {
            chosen,
            ..Self::default()
        }
    }

    /// The agents that have the stack by this decision: the chosen and the leaving,
    /// what placement targets follow.
    pub fn keeps(&self) -> BTreeSet<AgentId> {
        self.chosen
            .iter()
            .copied()
            .chain(self.leaving.iter().map(|l| l.agent_id))
            .collect()
    }
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

/// One agent's change, as [`Placement::affects`] and [`Placement::update`] see it.
#[derive(Clone, Copy)]
pub struct AgentChange<'a> {
    /// The stack's policy.
    pub policy: &'a PlacementPolicy,
    /// The agents the stack's current decision chose, ordered by id.
    pub chosen: &'a [AgentId],
    /// The agent before the change; `None` for a new agent.
    pub before: Option<&'a Agent>,
    /// The agent now (a deleted agent has `deleted_at` set).
    pub after: &'a Agent,
    /// The time to judge heartbeats at.
    pub now: DateTime<Utc>,
    /// A heartbeat older than this is stale.
    pub stale_after: Duration,
    /// The agent inventory after the change.
    pub inventory: &'a dyn Inventory,
}

/// The live agents a runtime keeps in memory, as placements may query them while
/// handling one agent's change.
pub trait Inventory {
    /// The agent with this id, if live.
    fn get(&self, id: &AgentId) -> Option<&Agent>;

    /// Visits the live agents in the built-in ranking order (most allocatable CPU,
    /// then most memory, a missing figure counting as 0, then ascending id) until
    /// `visit` returns `false`.
    fn visit_by_capacity(&self, visit: &mut dyn FnMut(&Agent) -> bool);
}

/// Decides which agents get a stack. Implementations must be deterministic: the same
/// input gives the same decision.
///
/// Only [`place`](Placement::place) is required. The other methods have conservative
/// defaults (accept every policy, recompute on every agent change, never update
/// incrementally) that a placement overrides to be strict or cheap.
pub trait Placement: Send + Sync {
    /// Places one stack: the chosen agents and, for every other agent of
    /// `input.agents`, why not (its own reasons with [`Rejection::custom`]).
    fn place(&self, input: &PlacementInput<'_>) -> PlacementDecision;

    /// Checks a policy before it is stored: a refusal is `422 invalid_policy` and
    /// nothing is stored. A custom placement reads its own JSON with
    /// [`PlacementPolicy::custom_as`]. Default: every policy is accepted.
    fn validate(&self, policy: &PlacementPolicy) -> Result<(), PolicyError> {
        let _ = policy;
        Ok(())
    }

    /// The chosen agents, ordered by id, and the others counted per reason code with
    /// one `page` of them explained; agents in `exclude` (ordered by id) are left out
    /// of the rejections. Default: from [`place`](Placement::place); a placement that
    /// can count reasons without explaining every one overrides it.
    fn summarize(
        &self,
        input: &PlacementInput<'_>,
        exclude: &[AgentId],
        page: RejectionPage,
    ) -> (Vec<AgentId>, Rejections) {
        let PlacementDecision {
            mut chosen,
            rejected,
            ..
        } = self.place(input);
        chosen.sort_unstable();
        (chosen, Rejections::summarize(rejected, exclude, page))
    }

    /// The chosen agents alone, ordered by id (the controller stores nothing else).
    /// Default: [`place`](Placement::place)'s `chosen`.
    fn choose(&self, input: &PlacementInput<'_>) -> Vec<AgentId> {
        self.place(input).chosen
    }

    /// Whether `change` can change which agents the stack's decision chooses: `false`
    /// promises that placing again (with `current = change.chosen`) chooses
    /// `change.chosen`. Default: `true` (always recompute).
    fn affects(&self, change: &AgentChange<'_>) -> bool {
        let _ = change;
        true
    }

    /// The new chosen set after `change`, computed without looking at every agent, or
    /// `None` when only a full decision can tell. Must equal what
    /// [`choose`](Placement::choose) would give. Default: `None`.
    fn update(&self, change: &AgentChange<'_>) -> Option<Vec<AgentId>> {
        let _ = change;
        None
    }

    /// The agent label and annotation keys whose values this policy reads, or `None`
    /// when it may read any. An agent whose other keys change is passed over for this
    /// stack (unless the stack chose it). Default: `None`.
    fn watched_keys(&self, policy: &PlacementPolicy) -> Option<BTreeSet<String>> {
        let _ = policy;
        None
    }
}

impl<P: Placement + ?Sized> Placement for Arc<P> {
    fn place(&self, input: &PlacementInput<'_>) -> PlacementDecision {
        (**self).place(input)
    }
    fn validate(&self, policy: &PlacementPolicy) -> Result<(), PolicyError> {
        (**self).validate(policy)
    }
    fn choose(&self, input: &PlacementInput<'_>) -> Vec<AgentId> {
        (**self).choose(input)
    }
    fn summarize(
        &self,
        input: &PlacementInput<'_>,
        exclude: &[AgentId],
        page: RejectionPage,
    ) -> (Vec<AgentId>, Rejections) {
        (**self).summarize(input, exclude, page)
    }
    fn affects(&self, change: &AgentChange<'_>) -> bool {
        (**self).affects(change)
    }
    fn update(&self, change: &AgentChange<'_>) -> Option<Vec<AgentId>> {
        (**self).update(change)
    }
    fn watched_keys(&self, policy: &PlacementPolicy) -> Option<BTreeSet<String>> {
        (**self).watched_keys(policy)
    }
}

/// Why a policy cannot be stored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid placement policy: {0}")]
pub struct PolicyError(pub String);

impl PolicyError {
    /// A refusal with this message.
    pub fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}

impl PlacementPolicy {
    /// How long a dropped agent may keep the stack while its replacements start
    /// ([`PlacementPolicy::eviction_grace_secs`], by default 10 minutes); zero: not at
    /// all.
    pub fn eviction_grace(&self) -> Duration {
        let secs = self
            .eviction_grace_secs
            .unwrap_or(DEFAULT_EVICTION_GRACE_SECS);
        Duration::try_seconds(i64::try_from(secs).unwrap_or(i64::MAX)).unwrap_or(Duration::MAX)
    }

    /// A policy for the placement registered as `name`, with its own JSON.
    pub fn named(name: impl Into<String>, custom: serde_json::Value) -> Self {
        Self {
            placement: Some(name.into()),
            custom: Some(custom),
            ..Self::default()
        }
    }

    /// Reads [`custom`](Self::custom) (JSON `null` when absent) as a custom placement's
    /// own policy type; serde's message is the refusal.
    pub fn custom_as<T: serde::de::DeserializeOwned>(&self) -> Result<T, PolicyError> {
        let value = self.custom.clone().unwrap_or(serde_json::Value::Null);
        serde_json::from_value(value).map_err(|err| PolicyError(format!("custom: {err}")))
    }

    /// Whether any built-in field (everything but `placement`, `custom` and the control
    /// plane's `eviction_grace_secs`) is set.
    pub fn has_builtin_fields(&self) -> bool {
        let builtin = Self {
            placement: None,
            custom: None,
            eviction_grace_secs: None,
            ..self.clone()
        };
        builtin != Self::default()
    }

    /// Checks what deserialisation cannot: selector syntax, versions, spread and
    /// toleration shapes, and the shape of a placement name. What `custom` holds is
    /// the named placement's to check ([`Placement::validate`]).
    pub fn validate(&self) -> Result<(), PolicyError> {
        let invalid = |m: String| PolicyError(m);
        if let Some(name) = &self.placement
            && !registry::valid_name(name)
        {
            return Err(invalid(format!(
                "placement: {name:?} is not a name (1-63 characters: a-z, 0-9, '-', '_', '.')"
            )));
        }
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
