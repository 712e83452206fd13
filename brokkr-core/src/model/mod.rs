//! The entities of Brokkr's model, as the store hands them out, and the inputs that
//! create or change them.
//!
//! Inputs whose validity matters to the store are built through constructors that
//! validate ([`NewDeploymentObject::from_yaml`], [`validate_name`]), so a `Store` can
//! trust what it is given and never stores a half-checked value.
//!
//! The types are grouped by area in private submodules and re-exported here, so every
//! type is `brokkr_core::model::X` (and `brokkr_core::X`) whichever file holds it.

use std::fmt;

use sha2::{Digest, Sha256};

/// Implements `as_str` and `parse` for an enum stored and shown by stable names.
macro_rules! stable_names {
    ($ty:ident { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            /// The stable snake_case name stored and shown in the API.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $name),* }
            }

            /// Parses the stable name.
            pub fn parse(name: &str) -> Option<Self> {
                match name { $($name => Some(Self::$variant),)* _ => None }
            }
        }
    };
}

mod agent;
mod audit;
mod fleet;
mod generator;
mod labels;
mod listed_object;
mod listed_template;
mod placement;
mod plan;
mod report;
mod rollout;
mod stack;
mod webhook;
mod webhook_event;

pub use agent::{
    Agent, AgentStatus, AgentTarget, AgentUpdate, Capabilities, Heartbeat, Liveness, NewAgent,
    TargetSource,
};
pub use audit::{
    Actor, ActorKind, ApiKey, AuditAction, AuditRecord, KeyOwner, ResourceKind, StoredKey,
};
pub use fleet::FleetCounts;
pub use generator::{
    Generator, GeneratorUpdate, NewGenerator, NewTemplate, NewTemplateVersion, Template,
    TemplateVersion,
};
pub use labels::{MetadataField, MetadataTarget};
pub use listed_object::ListedDeploymentObject;
pub use listed_template::{ListedTemplate, ListedTemplateVersion};
pub use placement::{PlacementChange, StackPlacement};
pub use plan::{
    AppliedState, AppliedVersions, NewPlan, PlanOrigin, StackWorld, StoredPlan, WorldTarget,
};
pub use report::{
    AgentEvent, EventStatus, EventType, HealthReport, NewAgentEvent, NewHealthReport,
};
pub use rollout::{
    GateEvaluation, GateOutcome, Rollout, RolloutAgent, RolloutAgentState, RolloutCommand,
    RolloutCommandKind, RolloutState, RolloutWave, WaveState,
};
pub use stack::{DeploymentObject, NewDeploymentObject, NewStack, Provenance, Stack, StackUpdate};
pub use webhook::{
    ClaimedDelivery, Delivery, DeliveryOutcome, DeliveryStatus, EventSubject, NewSubscription,
    Subscription, SubscriptionOwner, SubscriptionUpdate, UnknownEventType, WebhookEvent,
    WebhookEventType, WebhookQueueStats,
};
pub use webhook_event::{AppendedObject, RolloutSubject};

/// Longest accepted name of a stack, agent, cluster, generator or template.
pub const MAX_NAME_LEN: usize = 253;

/// Longest accepted description.
pub const MAX_DESCRIPTION_LEN: usize = 4096;

/// Why a name or description was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty, too long, padded with white space or containing control characters.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Which field (`name`, `cluster_name`, ...).
        field: &'static str,
        /// What rule it breaks.
        reason: &'static str,
    },
}

/// Checks a human-chosen name: 1-253 characters, no control characters, no leading or
/// trailing white space (so two names that look the same are the same).
pub fn validate_name(field: &'static str, name: &str) -> Result<(), NameError> {
    let invalid = |reason| NameError::Invalid { field, reason };
    if name.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(invalid("must be at most 253 characters"));
    }
    if name.trim() != name {
        return Err(invalid("must not start or end with white space"));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("must not contain control characters"));
    }
    Ok(())
}

/// Checks a free-text description: at most 4096 characters.
pub fn validate_description(description: &str) -> Result<(), NameError> {
    if description.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(NameError::Invalid {
            field: "description",
            reason: "must be at most 4096 characters",
        });
    }
    Ok(())
}

/// An empty description is no description, so that a caller that cannot send "none"
/// (an API without `null`) clears a description with `""`.
pub fn description_or_none(description: Option<String>) -> Option<String> {
    description.filter(|text| !text.is_empty())
}

/// Lower-case hex SHA-256 of a deployment object's YAML, as stored in `yaml_checksum`.
pub fn checksum(yaml: &str) -> String {
    hex(&Sha256::digest(yaml.as_bytes()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn validate_optional_description(description: Option<&str>) -> Result<(), NameError> {
    description.map_or(Ok(()), validate_description)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("name", "tenant-a prod").is_ok());
        for bad in ["", " x", "x ", "a\nb", &"n".repeat(254)] {
            assert!(validate_name("name", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn an_empty_description_is_none() {
        assert_eq!(description_or_none(Some(String::new())), None);
        assert_eq!(description_or_none(None), None);
        assert_eq!(description_or_none(Some(" ".into())), Some(" ".into()));
    }

    #[test]
    fn checksum_is_hex_sha256() {
        assert_eq!(
            checksum(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }
}
