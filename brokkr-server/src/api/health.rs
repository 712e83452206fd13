//! Workload health: agents report it (`POST /agents/{id}/health`), admin and the
//! stack's owner read it (`GET /stacks/{id}/health`).
//!
//! A report replaces the agent's previous one for the stack, so the store holds one row
//! per agent and stack and reading a stack's health costs one query whatever its
//! history. Only the agent itself reports, and only about a deployment object of a
//! stack in its target state (to apply or to remove): another stack's object is a 404,
//! as if it did not exist. Like heartbeats, reports are observed state and write no
//! audit record. The rules are the [`ControlPlane`](brokkr_core::runtime::ControlPlane)'s;
//! each handler parses, calls it and maps the answer.

use brokkr_core::runtime::StackHealth;
use brokkr_core::{HealthReport, HealthStatus, NewHealthReport, ObjectHealth, ObjectKey};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use uuid::Uuid;

use crate::api::Tag;
use crate::api::fields::no_null;
use crate::auth::BearerAuth;
use crate::error::ApiResult;
use crate::state::AppState;

// ---------------------------------------------------------------------------------------
// DTOs

/// How a workload is doing, best to worst.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "HealthStatus", rename_all = "snake_case")]
pub enum HealthStatusDto {
    /// Running as asked.
    Healthy,
    /// Rolling out or starting; nothing wrong seen yet.
    Progressing,
    /// Running, but not as asked (unavailable replicas, restarts).
    Degraded,
    /// Not running and not going to without a change (crash loop, image pull failure,
    /// failed Job).
    Failed,
}

impl From<HealthStatus> for HealthStatusDto {
    fn from(s: HealthStatus) -> Self {
        match s {
            HealthStatus::Healthy => Self::Healthy,
            HealthStatus::Progressing => Self::Progressing,
            HealthStatus::Degraded => Self::Degraded,
            HealthStatus::Failed => Self::Failed,
        }
    }
}

impl From<HealthStatusDto> for HealthStatus {
    fn from(s: HealthStatusDto) -> Self {
        match s {
            HealthStatusDto::Healthy => Self::Healthy,
            HealthStatusDto::Progressing => Self::Progressing,
            HealthStatusDto::Degraded => Self::Degraded,
            HealthStatusDto::Failed => Self::Failed,
        }
    }
}

/// The health of one Kubernetes object.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "ObjectHealth")]
pub struct ObjectHealthDto {
    /// `v1` or `group/version`.
    pub api_version: String,
    /// The object's kind, such as `Deployment`.
    pub kind: String,
    /// Its namespace; absent for cluster-scoped objects.
    #[oai(skip_serializing_if_is_none, deserialize_with = "no_null")]
    pub namespace: Option<String>,
    /// Its name.
    pub name: String,
    /// How it is doing.
    pub status: HealthStatusDto,
    /// A short machine-friendly reason, e.g. `CrashLoopBackOff`.
    #[oai(skip_serializing_if_is_none, deserialize_with = "no_null")]
    pub reason: Option<String>,
    /// A sentence for people.
    #[oai(skip_serializing_if_is_none, deserialize_with = "no_null")]
    pub message: Option<String>,
}

impl From<ObjectHealth> for ObjectHealthDto {
    fn from(h: ObjectHealth) -> Self {
        Self {
            api_version: h.object.api_version,
            kind: h.object.kind,
            namespace: h.object.namespace,
            name: h.object.name,
            status: h.status.into(),
            reason: h.reason,
            message: h.message,
        }
    }
}

impl From<ObjectHealthDto> for ObjectHealth {
    fn from(h: ObjectHealthDto) -> Self {
        Self {
            object: ObjectKey {
                api_version: h.api_version,
                kind: h.kind,
                namespace: h.namespace,
                name: h.name,
            },
            status: h.status.into(),
            reason: h.reason,
            message: h.message,
        }
    }
}

/// Body of `POST /agents/{id}/health`.
#[derive(Debug, Clone, Object)]
pub struct HealthReportRequest {
    /// The deployment object the agent has applied (the stack's latest, or an older one
    /// while it catches up).
    pub deployment_object_id: Uuid,
    /// One line for people, e.g. `1 of 3 workloads degraded`. Leave it out when there
    /// is none: `null` is taken as absent only for older agents, until API v2
    /// (deprecated).
    #[oai(nullable)]
    pub summary: Option<String>,
    /// Each workload's health (at most 10 000); the report's status is their worst.
    pub resources: Vec<ObjectHealthDto>,
}

/// One agent's latest report on a stack.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "AgentHealth")]
pub struct AgentHealthDto {
    /// The reporting agent.
    pub agent_id: Uuid,
    /// The deployment object it had applied.
    pub deployment_object_id: Uuid,
    /// The worst status of `resources` (`healthy` when there are none).
    pub status: HealthStatusDto,
    /// One line for people.
    #[oai(skip_serializing_if_is_none)]
    pub summary: Option<String>,
    /// Each workload's health.
    pub resources: Vec<ObjectHealthDto>,
    /// When the server received the report.
    pub reported_at: DateTime<Utc>,
}

impl From<HealthReport> for AgentHealthDto {
    fn from(r: HealthReport) -> Self {
        Self {
            agent_id: r.agent_id.into(),
            deployment_object_id: r.deployment_object_id.into(),
            status: r.status.into(),
            summary: r.summary,
            resources: r.resources.into_iter().map(Into::into).collect(),
            reported_at: r.reported_at,
        }
    }
}

/// A stack's health: the latest report of every agent that reported on it.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "StackHealth")]
pub struct StackHealthDto {
    /// The stack.
    pub stack_id: Uuid,
    /// The worst status over the agents' reports; absent when no agent reported.
    #[oai(skip_serializing_if_is_none)]
    pub status: Option<HealthStatusDto>,
    /// One report per agent, ordered by agent id.
    pub items: Vec<AgentHealthDto>,
}

impl From<StackHealth> for StackHealthDto {
    fn from(health: StackHealth) -> Self {
        Self {
            stack_id: health.stack_id.into(),
            status: health.status.map(Into::into),
            items: health.reports.into_iter().map(Into::into).collect(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Responses

/// Answer of `POST /agents/{id}/health`.
#[derive(Debug, ApiResponse)]
pub enum HealthRecorded {
    /// The report replaced the agent's previous report for the stack.
    #[oai(status = 204)]
    NoContent,
}

/// Answer of `GET /stacks/{id}/health`.
#[derive(Debug, ApiResponse)]
pub enum StackHealthResponse {
    /// The stack's health.
    #[oai(status = 200)]
    Ok(Json<StackHealthDto>),
}

// ---------------------------------------------------------------------------------------
// Operations

/// Health operations.
pub struct HealthApi;

#[OpenApi]
impl HealthApi {
    /// Report the health of a stack's workloads (only the agent itself).
    ///
    /// Replaces the agent's previous report for the stack. `deployment_object_id` must
    /// be an object of a stack in the agent's target state (404 otherwise); an older
    /// object of such a stack is accepted. At most 10 000 resources; summaries, reasons
    /// and messages at most 4096 characters (422 otherwise). Writes no audit record.
    #[oai(
        path = "/agents/:id/health",
        method = "post",
        operation_id = "reportHealth",
        tag = "Tag::Health"
    )]
    async fn report_health(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        body: Json<HealthReportRequest>,
    ) -> ApiResult<HealthRecorded> {
        let body = body.0;
        let report = NewHealthReport {
            agent_id: id.0.into(),
            deployment_object_id: body.deployment_object_id.into(),
            resources: body.resources.into_iter().map(Into::into).collect(),
            summary: body.summary,
        };
        state.control_plane.record_health(&auth.0, report).await?;
        Ok(HealthRecorded::NoContent)
    }

    /// The latest health report of every agent on a stack (admin, or the generator
    /// owning the stack).
    ///
    /// `status` is the worst over the agents, absent when none reported. Works for
    /// deleted stacks too.
    #[oai(
        path = "/stacks/:id/health",
        method = "get",
        operation_id = "getStackHealth",
        tag = "Tag::Health"
    )]
    async fn stack_health(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<StackHealthResponse> {
        let health = state
            .control_plane
            .stack_health(&auth.0, id.0.into())
            .await?;
        Ok(StackHealthResponse::Ok(Json(health.into())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_match_the_core() {
        for s in [
            HealthStatus::Healthy,
            HealthStatus::Progressing,
            HealthStatus::Degraded,
            HealthStatus::Failed,
        ] {
            assert_eq!(HealthStatus::from(HealthStatusDto::from(s)), s);
        }
    }

    #[test]
    fn resources_convert_both_ways() {
        let dto = ObjectHealthDto {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: Some("default".into()),
            name: "web".into(),
            status: HealthStatusDto::Degraded,
            reason: Some("UnavailableReplicas".into()),
            message: None,
        };
        assert_eq!(ObjectHealthDto::from(ObjectHealth::from(dto.clone())), dto);
    }
}
