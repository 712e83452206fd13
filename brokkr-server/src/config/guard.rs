//! `[guard]`: the blast-radius guard's server defaults, which stacks may override.

use std::collections::BTreeSet;

use brokkr_core::plan::GuardPolicy;
use serde::{Deserialize, Serialize};

/// `[guard]`: the limits every change that can remove or prune is checked against
/// unless its stack overrides them (see `docs/configuration.md`). A change over a
/// limit answers 409 `blast_radius_exceeded` until an admin confirms its plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GuardSection {
    /// The largest share (0 to 1) of the agents that have a stack now that one change
    /// may remove it from.
    pub max_removed_fraction: f64,
    /// Removing at most this many agents passes whatever their share.
    pub min_removed_agents: u64,
    /// The most objects one change may prune, counted per agent.
    pub max_pruned_objects: u64,
    /// Kinds never pruned without confirmation.
    pub protected_kinds: Vec<String>,
}

impl Default for GuardSection {
    fn default() -> Self {
        let policy = GuardPolicy::default();
        Self {
            max_removed_fraction: policy.max_removed_fraction,
            min_removed_agents: policy.min_removed_agents,
            max_pruned_objects: policy.max_pruned_objects,
            protected_kinds: policy.protected_kinds.into_iter().collect(),
        }
    }
}

impl GuardSection {
    /// The limits as the control plane takes them.
    pub fn policy(&self) -> GuardPolicy {
        GuardPolicy {
            max_removed_fraction: self.max_removed_fraction,
            min_removed_agents: self.min_removed_agents,
            max_pruned_objects: self.max_pruned_objects,
            protected_kinds: self
                .protected_kinds
                .iter()
                .cloned()
                .collect::<BTreeSet<_>>(),
        }
    }

    /// Checks the limits by the core's own rules (a fraction between 0 and 1, kinds
    /// that are Kubernetes kind names), so a bad value fails the start, not a request.
    pub fn validate(&self) -> Result<(), String> {
        self.policy().validate().map_err(|err| err.0)
    }
}
