//! Request and response types of the agent operations, converted from the runtime's
//! domain types with `From`.

use std::collections::BTreeMap;

use brokkr_core::runtime::{AgentView, DisplayedStatus};
use brokkr_core::{AgentStatus, AgentUpdate, Capabilities};
use chrono::{DateTime, Utc};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object};
use uuid::Uuid;

use crate::api::fields::{LabelValue, Name, labels, no_null};
use crate::page_type;

/// What an agent shows as its status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "AgentStatus", rename_all = "snake_case")]
pub enum AgentStatusDto {
    /// Enabled, with a heartbeat within `agents.stale_after_secs`.
    Active,
    /// Enabled, but its latest heartbeat is older than the bound, or it never beat.
    Stale,
    /// Disabled by an admin: it may not fetch its target state.
    Inactive,
}

impl From<DisplayedStatus> for AgentStatusDto {
    fn from(status: DisplayedStatus) -> Self {
        match status {
            DisplayedStatus::Active => Self::Active,
            DisplayedStatus::Stale => Self::Stale,
            DisplayedStatus::Inactive => Self::Inactive,
        }
    }
}

impl From<AgentStatusDto> for DisplayedStatus {
    fn from(status: AgentStatusDto) -> Self {
        match status {
            AgentStatusDto::Active => Self::Active,
            AgentStatusDto::Stale => Self::Stale,
            AgentStatusDto::Inactive => Self::Inactive,
        }
    }
}

/// What an agent reports about its cluster.
#[derive(Debug, Clone, Default, PartialEq, Object)]
#[oai(rename = "Capabilities")]
pub struct CapabilitiesDto {
    /// The API server's `gitVersion`, e.g. `v1.33.2`.
    #[oai(skip_serializing_if_is_none, deserialize_with = "no_null")]
    pub kubernetes_version: Option<String>,
    /// Number of nodes.
    #[oai(skip_serializing_if_is_none, deserialize_with = "no_null")]
    pub node_count: Option<u32>,
    /// Allocatable CPU summed over nodes, in millicores.
    #[oai(skip_serializing_if_is_none, deserialize_with = "no_null")]
    pub allocatable_cpu_millis: Option<u64>,
    /// Allocatable memory summed over nodes, in bytes.
    #[oai(skip_serializing_if_is_none, deserialize_with = "no_null")]
    pub allocatable_memory_bytes: Option<u64>,
    /// Named capabilities, e.g. `gpu` (at most 100, each 1-253 characters).
    #[oai(default)]
    pub features: Vec<String>,
    /// Anything else (region, zone, provider, ...); at most 64 KiB serialized.
    #[oai(default)]
    pub extra: BTreeMap<String, serde_json::Value>,
}

impl From<Capabilities> for CapabilitiesDto {
    fn from(c: Capabilities) -> Self {
        Self {
            kubernetes_version: c.kubernetes_version,
            node_count: c.node_count,
            allocatable_cpu_millis: c.allocatable_cpu_millis,
            allocatable_memory_bytes: c.allocatable_memory_bytes,
            features: c.features.into_iter().collect(),
            extra: c.extra,
        }
    }
}

impl From<CapabilitiesDto> for Capabilities {
    fn from(c: CapabilitiesDto) -> Self {
        Self {
            kubernetes_version: c.kubernetes_version,
            node_count: c.node_count,
            allocatable_cpu_millis: c.allocatable_cpu_millis,
            allocatable_memory_bytes: c.allocatable_memory_bytes,
            features: c.features.into_iter().collect(),
            extra: c.extra,
        }
    }
}

/// One agent process in one cluster.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "Agent")]
pub struct AgentDto {
    /// Its id.
    pub id: Uuid,
    /// Unique together with `cluster_name` among live agents.
    pub name: String,
    /// The cluster it runs in.
    pub cluster_name: String,
    /// `inactive` when an admin disabled it, else `active` or `stale` by heartbeat age.
    pub status: AgentStatusDto,
    /// Whether an admin allows it to work (`false` exactly when `status` is `inactive`).
    pub enabled: bool,
    /// Its latest heartbeat; absent if it never beat.
    #[oai(skip_serializing_if_is_none)]
    pub last_heartbeat: Option<DateTime<Utc>>,
    /// What its latest heartbeat with capabilities reported.
    pub capabilities: CapabilitiesDto,
    /// Labels, for placement.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// When its registration last changed (heartbeats do not count).
    pub updated_at: DateTime<Utc>,
}

impl From<AgentView> for AgentDto {
    fn from(view: AgentView) -> Self {
        let a = view.agent;
        Self {
            id: a.id.into(),
            name: a.name,
            cluster_name: a.cluster_name,
            status: view.status.into(),
            enabled: a.status == AgentStatus::Active,
            last_heartbeat: a.last_heartbeat,
            capabilities: a.capabilities.into(),
            labels: a.labels,
            annotations: a.annotations,
            created_at: a.created_at,
            updated_at: a.updated_at,
        }
    }
}

page_type!(
    /// A page of agents, ordered by id.
    AgentPage,
    AgentDto
);

/// Body of `POST /agents`.
#[derive(Debug, Clone, Object)]
pub struct CreateAgentRequest {
    /// Unique together with `cluster_name` among live agents.
    pub name: Name,
    /// The cluster it runs in.
    pub cluster_name: Name,
    /// Initial labels, for placement. Keys are `[prefix/]name` as in Kubernetes:
    /// an optional prefix of lowercase DNS labels joined by dots (at most 253
    /// characters) and `/`, then a name of 1-63 alphanumerics, `-`, `_` or `.` starting
    /// and ending with an alphanumeric.
    #[oai(default)]
    pub labels: BTreeMap<String, LabelValue>,
    /// Initial annotations: keys as for labels, values free text; keys and values
    /// together at most 256 KiB.
    #[oai(default)]
    pub annotations: BTreeMap<String, String>,
}

impl From<CreateAgentRequest> for brokkr_core::runtime::AgentRegistration {
    fn from(body: CreateAgentRequest) -> Self {
        Self {
            name: body.name.into(),
            cluster_name: body.cluster_name.into(),
            labels: labels(body.labels),
            annotations: body.annotations,
        }
    }
}

/// Answer of `POST /agents`: the agent and its first key, shown only here.
#[derive(Debug, Clone, Object)]
pub struct AgentWithKey {
    /// The new agent.
    pub agent: AgentDto,
    /// Its key, `brokkr_<short id>_<secret>`. Store it now: it is never shown again.
    pub initial_pak: String,
}

/// Body of `PATCH /agents/{id}`: absent fields stay as they are.
#[derive(Debug, Clone, Object)]
pub struct UpdateAgentRequest {
    /// New name.
    #[oai(deserialize_with = "no_null")]
    pub name: Option<Name>,
    /// New cluster name.
    #[oai(deserialize_with = "no_null")]
    pub cluster_name: Option<Name>,
    /// `false` disables the agent (it may no longer fetch its target state).
    #[oai(deserialize_with = "no_null")]
    pub enabled: Option<bool>,
}

impl From<UpdateAgentRequest> for AgentUpdate {
    fn from(body: UpdateAgentRequest) -> Self {
        Self {
            name: body.name.map(String::from),
            cluster_name: body.cluster_name.map(String::from),
            status: body.enabled.map(|enabled| {
                if enabled {
                    AgentStatus::Active
                } else {
                    AgentStatus::Inactive
                }
            }),
        }
    }
}

/// Answer of `POST /agents/{id}/rotate-pak`: the new key, shown only here.
#[derive(Debug, Clone, Object)]
pub struct RotatedAgentKey {
    /// The agent.
    pub agent_id: Uuid,
    /// Its new key; every previous key of the agent is revoked.
    pub pak: String,
}

/// Body of `POST /agents/{id}/heartbeat` (`{}` for a bare beat).
#[derive(Debug, Clone, Object)]
pub struct HeartbeatRequest {
    /// What the agent reports about its cluster; absent keeps what was reported before.
    #[oai(deserialize_with = "no_null")]
    pub capabilities: Option<CapabilitiesDto>,
}

/// Answer of `POST /agents`.
#[derive(Debug, ApiResponse)]
pub enum AgentCreated {
    /// The agent was registered; the body holds its first key, shown once.
    #[oai(status = 201)]
    Created(Json<AgentWithKey>),
}

/// An agent.
#[derive(Debug, ApiResponse)]
pub enum AgentResponse {
    /// The agent.
    #[oai(status = 200)]
    Ok(Json<AgentDto>),
}

/// A page of agents.
#[derive(Debug, ApiResponse)]
pub enum AgentPageResponse {
    /// The page.
    #[oai(status = 200)]
    Ok(Json<AgentPage>),
}

/// Answer of `DELETE /agents/{id}`.
#[derive(Debug, ApiResponse)]
pub enum AgentDeleted {
    /// The agent was soft-deleted and its keys revoked; its targets stay.
    #[oai(status = 204)]
    NoContent,
}

/// Answer of `POST /agents/{id}/rotate-pak`.
#[derive(Debug, ApiResponse)]
pub enum AgentKeyRotated {
    /// A new key was issued; the body shows it once.
    #[oai(status = 200)]
    Ok(Json<RotatedAgentKey>),
}

/// Answer of `POST /agents/{id}/heartbeat`.
#[derive(Debug, ApiResponse)]
pub enum HeartbeatRecorded {
    /// The beat was recorded (written to the store within `agents.heartbeat_flush_millis`).
    #[oai(status = 204)]
    NoContent,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_match_the_runtime() {
        for status in [
            DisplayedStatus::Active,
            DisplayedStatus::Stale,
            DisplayedStatus::Inactive,
        ] {
            assert_eq!(DisplayedStatus::from(AgentStatusDto::from(status)), status);
        }
    }
}
