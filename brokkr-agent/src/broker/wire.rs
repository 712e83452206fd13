//! What the broker's API sends and takes, as the agent reads and writes it.

use brokkr_core::{AgentId, DeploymentObjectId, EventStatus, EventType, StackId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// One stack of the target state, as the broker sends it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TargetEntry {
    /// The stack.
    pub stack_id: StackId,
    /// Its name, for logs.
    pub stack_name: String,
    /// `apply` or `remove`.
    pub action: Action,
    /// The deployment object to apply, or whose stack to remove.
    pub deployment_object: DeploymentObjectWire,
}

/// What to do with a stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// Make the cluster match the deployment object.
    Apply,
    /// Remove every object of the stack.
    Remove,
}

/// A deployment object as the broker sends it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct DeploymentObjectWire {
    /// Its id.
    pub id: DeploymentObjectId,
    /// Store-wide sequence.
    pub sequence_id: i64,
    /// Multi-document YAML.
    pub yaml_content: String,
    /// Hex SHA-256 of the YAML.
    pub yaml_checksum: String,
    /// Whether it says "remove this stack".
    pub is_deletion_marker: bool,
    /// When the broker stored it (absent from brokers that do not send it).
    #[serde(default)]
    pub created_at: Option<DateTime<Utc>>,
}

/// The whole target state.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct TargetStateWire {
    /// The agent.
    pub agent_id: AgentId,
    /// Its ETag.
    pub etag: String,
    /// One entry per stack.
    pub entries: Vec<TargetEntry>,
}

/// The answer of a target-state poll.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll {
    /// A state other than the one the agent named.
    Changed(TargetStateWire),
    /// Still the state the agent named (304).
    Unchanged,
}

/// An agent event to report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EventReport {
    /// Chosen by the agent, so a retried report is recognised and never duplicated.
    pub id: Uuid,
    /// The deployment object acted on.
    pub deployment_object_id: DeploymentObjectId,
    /// What was tried.
    pub event_type: EventType,
    /// How it went.
    pub status: EventStatus,
    /// Details (the Kubernetes reason and message of a failure). Left out when there
    /// are none: the API refuses `null` where a string belongs.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A health report to send.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthWire {
    /// The deployment object the health is about.
    pub deployment_object_id: DeploymentObjectId,
    /// One line for people; left out when there is none.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    /// Each workload.
    pub resources: Vec<ResourceHealthWire>,
}

/// One workload's health on the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ResourceHealthWire {
    /// `v1` or `group/version`.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Namespace, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// `healthy`, `progressing`, `degraded` or `failed`.
    pub status: &'static str,
    /// Short reason.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// Sentence for people.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl From<&brokkr_core::ObjectHealth> for ResourceHealthWire {
    fn from(h: &brokkr_core::ObjectHealth) -> Self {
        Self {
            api_version: h.object.api_version.clone(),
            kind: h.object.kind.clone(),
            namespace: h.object.namespace.clone(),
            name: h.object.name.clone(),
            status: h.status.as_str(),
            reason: h.reason.clone(),
            message: h.message.clone(),
        }
    }
}
