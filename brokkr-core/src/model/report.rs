//! What agents report: the outcome of each apply or removal, and the health of what
//! they applied.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{MAX_DESCRIPTION_LEN, NameError};
use crate::health::{HealthStatus, ObjectHealth};
use crate::id::{AgentEventId, AgentId, DeploymentObjectId, StackId};

// ---------------------------------------------------------------------------------------
// Agent events

/// The outcome of one attempt by one agent to apply or remove one deployment object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentEvent {
    /// Its id (chosen by the agent, so a retried report is recognised).
    pub id: AgentEventId,
    /// The reporting agent.
    pub agent_id: AgentId,
    /// The deployment object it acted on.
    pub deployment_object_id: DeploymentObjectId,
    /// That object's stack.
    pub stack_id: StackId,
    /// What it tried.
    pub event_type: EventType,
    /// How it went.
    pub status: EventStatus,
    /// Details, e.g. the Kubernetes reason of a failure.
    pub message: Option<String>,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

/// What an agent tried to do with a deployment object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// Apply its objects.
    Apply,
    /// Remove the stack's objects (deletion marker or unassignment).
    Delete,
    /// A periodic re-apply of an unchanged deployment object found objects changed in
    /// the cluster by someone else, and put them back.
    Drift,
}

stable_names!(EventType { Apply => "apply", Delete => "delete", Drift => "drift" });

/// How an attempt went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// Everything was applied or removed.
    Success,
    /// Something failed; see the message.
    Failure,
}

stable_names!(EventStatus { Success => "success", Failure => "failure" });

/// What [`Store::record_agent_event`](crate::Store::record_agent_event) needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAgentEvent {
    /// Chosen by the agent; a second report with the same id is the same event.
    pub id: AgentEventId,
    /// The reporting agent.
    pub agent_id: AgentId,
    /// The deployment object it acted on.
    pub deployment_object_id: DeploymentObjectId,
    /// What it tried.
    pub event_type: EventType,
    /// How it went.
    pub status: EventStatus,
    /// Details.
    pub message: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Health

/// The latest health an agent reported for a stack's deployment object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// The reporting agent.
    pub agent_id: AgentId,
    /// The stack.
    pub stack_id: StackId,
    /// The deployment object the agent had applied.
    pub deployment_object_id: DeploymentObjectId,
    /// The worst status among `resources` (healthy when none).
    pub status: HealthStatus,
    /// One line for people, e.g. "1 of 3 workloads degraded".
    pub summary: Option<String>,
    /// Each workload's health.
    pub resources: Vec<ObjectHealth>,
    /// When the agent reported it.
    pub reported_at: DateTime<Utc>,
}

/// What [`Store::record_health`](crate::Store::record_health) needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHealthReport {
    /// The reporting agent.
    pub agent_id: AgentId,
    /// The deployment object it had applied.
    pub deployment_object_id: DeploymentObjectId,
    /// Each workload's health; the report's status is their worst.
    pub resources: Vec<ObjectHealth>,
    /// One line for people.
    pub summary: Option<String>,
}

impl NewHealthReport {
    /// Most resources one report may carry.
    pub const MAX_RESOURCES: usize = 10_000;

    /// Checks sizes: at most [`Self::MAX_RESOURCES`] resources, short reasons and
    /// messages.
    pub fn validate(&self) -> crate::store::Result<()> {
        if self.resources.len() > Self::MAX_RESOURCES {
            return Err(crate::store::Error::Invalid(format!(
                "a health report holds at most {} resources",
                Self::MAX_RESOURCES
            )));
        }
        let too_long = |field: &'static str, text: Option<&str>| {
            text.is_some_and(|t| t.chars().count() > MAX_DESCRIPTION_LEN)
                .then_some(NameError::Invalid {
                    field,
                    reason: "must be at most 4096 characters",
                })
        };
        let mut fields = vec![("summary", self.summary.as_deref())];
        for resource in &self.resources {
            fields.push(("reason", resource.reason.as_deref()));
            fields.push(("message", resource.message.as_deref()));
        }
        match fields
            .into_iter()
            .find_map(|(field, text)| too_long(field, text))
        {
            Some(err) => Err(err.into()),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stable_names_round_trip() {
        for event_type in [EventType::Apply, EventType::Delete, EventType::Drift] {
            assert_eq!(EventType::parse(event_type.as_str()), Some(event_type));
        }
        assert_eq!(EventStatus::parse("failure"), Some(EventStatus::Failure));
        assert_eq!(EventStatus::parse("Failure"), None);
    }
}
