//! The blast-radius guard: limits on what one change may remove or prune before
//! someone confirms it.
//!
//! Server defaults ([`GuardPolicy::default`], configurable) with per-stack overrides
//! ([`GuardOverrides`]). Only an admin may loosen a limit; an owner may tighten.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// The kinds never pruned without confirmation by default: losing one loses data or
/// every object that depends on it.
pub const DEFAULT_PROTECTED_KINDS: [&str; 4] = [
    "CustomResourceDefinition",
    "Namespace",
    "PersistentVolumeClaim",
    "PersistentVolume",
];

/// The limits a change is checked against.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GuardPolicy {
    /// The largest share of the agents that have the stack now that may lose it at once
    /// (0 to 1).
    pub max_removed_fraction: f64,
    /// Removing at most this many agents passes whatever their share.
    pub min_removed_agents: u64,
    /// The most objects one change may prune, counted per agent.
    pub max_pruned_objects: u64,
    /// Kinds never pruned without confirmation.
    pub protected_kinds: BTreeSet<String>,
}

impl Default for GuardPolicy {
    fn default() -> Self {
        Self {
            max_removed_fraction: 0.25,
            min_removed_agents: 2,
            max_pruned_objects: 100,
            protected_kinds: DEFAULT_PROTECTED_KINDS.map(str::to_owned).into(),
        }
    }
}

/// A stack's own limits; what is not set follows the server's defaults.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GuardOverrides {
    /// Replaces [`GuardPolicy::max_removed_fraction`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_removed_fraction: Option<f64>,
    /// Replaces [`GuardPolicy::min_removed_agents`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_removed_agents: Option<u64>,
    /// Replaces [`GuardPolicy::max_pruned_objects`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_pruned_objects: Option<u64>,
    /// Replaces [`GuardPolicy::protected_kinds`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub protected_kinds: Option<BTreeSet<String>>,
}

impl GuardOverrides {
    /// Overrides under which no change needs confirmation: any share and count of
    /// agents may lose the stack, any number of objects be pruned, no kind protected.
    /// For a stack whose removals are known to be safe (a scratch or test stack).
    pub fn off() -> Self {
        Self {
            max_removed_fraction: Some(1.0),
            min_removed_agents: None,
            max_pruned_objects: Some(u64::MAX),
            protected_kinds: Some(BTreeSet::new()),
        }
    }
}

/// Why a guard policy or override is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct InvalidGuard(pub String);

impl GuardPolicy {
    /// Checks the ranges: a fraction between 0 and 1, kinds that are names.
    pub fn validate(&self) -> Result<(), InvalidGuard> {
        if !(0.0..=1.0).contains(&self.max_removed_fraction) {
            return Err(InvalidGuard(format!(
                "max_removed_fraction must be between 0 and 1, not {}",
                self.max_removed_fraction
            )));
        }
        for kind in &self.protected_kinds {
            let valid = !kind.is_empty()
                && kind.len() <= 63
                && kind.starts_with(|c: char| c.is_ascii_alphabetic())
                && kind.chars().all(|c| c.is_ascii_alphanumeric());
            if !valid {
                return Err(InvalidGuard(format!(
                    "protected kind {kind:?} is not a Kubernetes kind (letters and digits, starting with a letter)"
                )));
            }
        }
        Ok(())
    }

    /// These limits with `overrides` applied.
    pub fn with(&self, overrides: &GuardOverrides) -> Self {
        Self {
            max_removed_fraction: overrides
                .max_removed_fraction
                .unwrap_or(self.max_removed_fraction),
            min_removed_agents: overrides
                .min_removed_agents
                .unwrap_or(self.min_removed_agents),
            max_pruned_objects: overrides
                .max_pruned_objects
                .unwrap_or(self.max_pruned_objects),
            protected_kinds: overrides
                .protected_kinds
                .clone()
                .unwrap_or_else(|| self.protected_kinds.clone()),
        }
    }

    /// The limits `other` loosens compared with these, by name: a larger fraction,
    /// minimum or prune count, or a protected kind left out.
    pub fn loosened_by(&self, other: &GuardPolicy) -> Vec<&'static str> {
        let mut loosened = Vec::new();
        if other.max_removed_fraction > self.max_removed_fraction {
            loosened.push("max_removed_fraction");
        }
        if other.min_removed_agents > self.min_removed_agents {
            loosened.push("min_removed_agents");
        }
        if other.max_pruned_objects > self.max_pruned_objects {
            loosened.push("max_pruned_objects");
        }
        if !self.protected_kinds.is_subset(&other.protected_kinds) {
            loosened.push("protected_kinds");
        }
        loosened
    }
}

/// One limit a change exceeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "rule", rename_all = "snake_case")]
pub enum Violation {
    /// Too large a share of the stack's agents would lose it.
    MaxRemovedFraction {
        /// The limit.
        limit: f64,
        /// The share that would lose it.
        actual: f64,
        /// How many agents that is.
        removed: u64,
    },
    /// Too many objects would be pruned (counted per agent).
    MaxPrunedObjects {
        /// The limit.
        limit: u64,
        /// How many would be pruned.
        actual: u64,
    },
    /// Objects of a protected kind would be pruned.
    ProtectedKinds {
        /// The kind.
        kind: String,
        /// How many (counted per agent).
        count: u64,
    },
    /// The appended content is a candidate a rollout of the stack reverted: appending
    /// it again needs an admin's confirmation, so a bad version cannot come back by
    /// accident (argo-rollouts #3039).
    RejectedByRollout {
        /// The rollout that reverted it.
        rollout_id: crate::id::RolloutId,
        /// The deployment object it rejected (same checksum).
        deployment_object_id: crate::id::DeploymentObjectId,
    },
}

/// Whether a change may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Within every limit.
    Allowed,
    /// Over a limit: an admin must confirm the plan.
    ConfirmationRequired,
}

/// The guard's answer for one plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GuardOutcome {
    /// Allowed when `violations` is empty.
    pub verdict: Verdict,
    /// Every limit exceeded.
    pub violations: Vec<Violation>,
}

impl GuardOutcome {
    /// Whether the change needs a confirmation.
    pub fn needs_confirmation(&self) -> bool {
        self.verdict == Verdict::ConfirmationRequired
    }
}

/// What a change removes and prunes, counted the way the guard reads it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Removals {
    /// Agents that have the stack now (they reported applying a live version).
    pub agents_current: u64,
    /// Of those, agents that would lose it.
    pub agents_removed: u64,
    /// Objects pruned, counted per agent.
    pub pruned: u64,
    /// Pruned objects per kind, counted per agent.
    pub pruned_by_kind: std::collections::BTreeMap<String, u64>,
}

impl Removals {
    /// The share of current agents removed (0 with none current).
    pub fn removed_fraction(&self) -> f64 {
        if self.agents_current == 0 {
            0.0
        } else {
            self.agents_removed as f64 / self.agents_current as f64
        }
    }
}

impl GuardPolicy {
    /// Judges `removals` against these limits.
    pub fn judge(&self, removals: &Removals) -> GuardOutcome {
        let mut violations = Vec::new();
        let fraction = removals.removed_fraction();
        if removals.agents_removed > self.min_removed_agents && fraction > self.max_removed_fraction
        {
            violations.push(Violation::MaxRemovedFraction {
                limit: self.max_removed_fraction,
                actual: fraction,
                removed: removals.agents_removed,
            });
        }
        if removals.pruned > self.max_pruned_objects {
            violations.push(Violation::MaxPrunedObjects {
                limit: self.max_pruned_objects,
                actual: removals.pruned,
            });
        }
        for (kind, &count) in &removals.pruned_by_kind {
            if self.protected_kinds.contains(kind) {
                violations.push(Violation::ProtectedKinds {
                    kind: kind.clone(),
                    count,
                });
            }
        }
        GuardOutcome {
            verdict: if violations.is_empty() {
                Verdict::Allowed
            } else {
                Verdict::ConfirmationRequired
            },
            violations,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn removals(current: u64, removed: u64, pruned: &[(&str, u64)]) -> Removals {
        Removals {
            agents_current: current,
            agents_removed: removed,
            pruned: pruned.iter().map(|(_, n)| n).sum(),
            pruned_by_kind: pruned.iter().map(|(k, n)| (k.to_string(), *n)).collect(),
        }
    }

    #[test]
    fn few_removals_pass_whatever_their_share() {
        let guard = GuardPolicy::default();
        assert_eq!(guard.judge(&removals(2, 2, &[])).verdict, Verdict::Allowed);
        assert_eq!(guard.judge(&removals(12, 3, &[])).verdict, Verdict::Allowed);
        let held = guard.judge(&removals(12, 4, &[]));
        assert_eq!(
            held.violations,
            vec![Violation::MaxRemovedFraction {
                limit: 0.25,
                actual: 4.0 / 12.0,
                removed: 4
            }]
        );
    }

    #[test]
    fn prune_counts_and_protected_kinds_are_violations() {
        let guard = GuardPolicy::default();
        let outcome = guard.judge(&removals(1, 0, &[("ConfigMap", 101)]));
        assert!(matches!(
            outcome.violations[..],
            [Violation::MaxPrunedObjects { actual: 101, .. }]
        ));
        let outcome = guard.judge(&removals(1, 0, &[("PersistentVolumeClaim", 1)]));
        assert!(outcome.needs_confirmation());
        assert!(
            !guard
                .judge(&removals(1, 0, &[("ConfigMap", 100)]))
                .needs_confirmation()
        );
    }

    #[test]
    fn overrides_replace_defaults_and_loosening_is_named() {
        let defaults = GuardPolicy::default();
        let looser = defaults.with(&GuardOverrides {
            max_removed_fraction: Some(0.5),
            protected_kinds: Some(["Namespace".to_owned()].into()),
            ..GuardOverrides::default()
        });
        assert_eq!(looser.max_pruned_objects, 100);
        assert_eq!(
            defaults.loosened_by(&looser),
            vec!["max_removed_fraction", "protected_kinds"]
        );
        let stricter = defaults.with(&GuardOverrides {
            max_pruned_objects: Some(10),
            ..GuardOverrides::default()
        });
        assert!(defaults.loosened_by(&stricter).is_empty());
    }

    #[test]
    fn validation_refuses_out_of_range_fractions_and_odd_kinds() {
        let guard = GuardPolicy {
            max_removed_fraction: 1.5,
            ..Default::default()
        };
        assert!(guard.validate().is_err());
        let mut guard = GuardPolicy::default();
        guard.protected_kinds.insert("not a kind".into());
        assert!(guard.validate().is_err());
        assert!(GuardPolicy::default().validate().is_ok());
    }
}
