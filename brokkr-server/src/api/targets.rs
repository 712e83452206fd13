//! Agent targets ("agent A is responsible for stack S"): `/agents/{id}/targets` and
//! `/stacks/{id}/targets`.
//!
//! Admin assigns any stack to any agent; a generator assigns and unassigns only its
//! own stacks (another generator's stack is a 404); an agent may list its own targets.
//! The rules are the [`ControlPlane`](brokkr_core::runtime::ControlPlane)'s; each
//! handler parses, calls it and maps the answer.

use brokkr_core::runtime::plan::Outcome;
use brokkr_core::{AgentTarget, TargetSource};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use uuid::Uuid;

use crate::api::Tag;
use crate::api::dto::{OrderParam, page};
use crate::api::plans::dto::PlanDto;
use crate::api::plans::guard_options;
use crate::auth::BearerAuth;
use crate::error::ApiResult;
use crate::page_type;
use crate::state::AppState;

/// How an agent came to be responsible for a stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "TargetSource", rename_all = "snake_case")]
pub enum TargetSourceDto {
    /// An admin or generator assigned it.
    Direct,
    /// A placement decision chose it.
    Placement,
}

impl From<TargetSource> for TargetSourceDto {
    fn from(source: TargetSource) -> Self {
        match source {
            TargetSource::Direct => Self::Direct,
            TargetSource::Placement => Self::Placement,
        }
    }
}

/// "Agent A is responsible for stack S".
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "AgentTarget")]
pub struct AgentTargetDto {
    /// The agent.
    pub agent_id: Uuid,
    /// The stack.
    pub stack_id: Uuid,
    /// Why the agent has it.
    pub source: TargetSourceDto,
    /// When it was assigned.
    pub created_at: DateTime<Utc>,
    /// When it was unassigned; the agent keeps receiving a removal for the stack until
    /// it reports that the stack's objects are gone.
    #[oai(skip_serializing_if_is_none)]
    pub removed_at: Option<DateTime<Utc>>,
}

impl From<AgentTarget> for AgentTargetDto {
    fn from(t: AgentTarget) -> Self {
        Self {
            agent_id: t.agent_id.into(),
            stack_id: t.stack_id.into(),
            source: t.source.into(),
            created_at: t.created_at,
            removed_at: t.removed_at,
        }
    }
}

page_type!(
    /// A page of agent targets, ordered by (agent id, stack id).
    AgentTargetPage,
    AgentTargetDto
);

/// Body of `POST /agents/{id}/targets`.
#[derive(Debug, Clone, Object)]
pub struct AssignTargetRequest {
    /// The stack the agent becomes responsible for.
    pub stack_id: Uuid,
}

/// Answer of `POST /agents/{id}/targets`.
#[derive(Debug, ApiResponse)]
pub enum TargetCreated {
    /// The stack was assigned.
    #[oai(status = 201)]
    Created(Json<AgentTargetDto>),
}

/// Answer of `DELETE /agents/{id}/targets/{stack_id}`.
#[derive(Debug, ApiResponse)]
pub enum TargetDeleted {
    /// The stack was unassigned; the agent receives a removal for it.
    #[oai(status = 204)]
    NoContent,
    /// Dry run: the plan; nothing changed.
    #[oai(status = 200)]
    Planned(Json<Box<PlanDto>>),
}

/// A page of agent targets.
#[derive(Debug, ApiResponse)]
pub enum TargetPageResponse {
    /// The page.
    #[oai(status = 200)]
    Ok(Json<AgentTargetPage>),
}

/// Agent-target operations.
pub struct TargetsApi;

#[OpenApi]
impl TargetsApi {
    /// List an agent's targets (including those awaiting removal).
    ///
    /// Admin, or the agent itself.
    #[oai(
        path = "/agents/:id/targets",
        method = "get",
        operation_id = "listAgentTargets",
        tag = "Tag::AgentTargets"
    )]
    async fn list_agent_targets(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        /// Rows per page, 1-1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// `asc` (default) or `desc`.
        order: Query<Option<OrderParam>>,
    ) -> ApiResult<TargetPageResponse> {
        let page = page(limit, cursor, order)?;
        let targets = state
            .control_plane
            .list_agent_targets(&auth.0, id.0.into(), &page)
            .await?;
        Ok(TargetPageResponse::Ok(Json(targets.into())))
    }

    /// Make an agent responsible for a stack.
    ///
    /// Admin, or the generator owning the stack.
    #[oai(
        path = "/agents/:id/targets",
        method = "post",
        operation_id = "assignTarget",
        tag = "Tag::AgentTargets"
    )]
    async fn assign_target(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        body: Json<AssignTargetRequest>,
    ) -> ApiResult<TargetCreated> {
        let target = state
            .control_plane
            .assign_target(&auth.0, id.0.into(), body.0.stack_id.into())
            .await?;
        Ok(TargetCreated::Created(Json(target.into())))
    }

    /// Unassign a stack from an agent.
    ///
    /// The agent keeps receiving a removal for the stack until it reports that the
    /// stack's objects are gone. The blast-radius guard checks it first: over its
    /// limits (a protected kind pruned, say) it is a 409 `blast_radius_exceeded` until
    /// an admin repeats it with `?confirm_plan_id=` (403 for a generator); with
    /// `?dry_run=true` the answer is the plan (200) and nothing changes. Admin, or the
    /// generator owning the stack.
    #[oai(
        path = "/agents/:id/targets/:stack_id",
        method = "delete",
        operation_id = "unassignTarget",
        tag = "Tag::AgentTargets"
    )]
    async fn unassign_target(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        stack_id: Path<Uuid>,
        /// `true`: answer the plan and change nothing.
        dry_run: Query<Option<bool>>,
        /// Go ahead past the guard on this plan (admin only, once, while the world is
        /// as planned).
        confirm_plan_id: Query<Option<Uuid>>,
    ) -> ApiResult<TargetDeleted> {
        let outcome = state
            .control_plane
            .guarded(guard_options(dry_run, confirm_plan_id))
            .unassign_target(&auth.0, id.0.into(), stack_id.0.into())
            .await?;
        Ok(match outcome {
            Outcome::Done(()) => TargetDeleted::NoContent,
            Outcome::Planned(plan) => TargetDeleted::Planned(Json(Box::new((*plan).into()))),
        })
    }

    /// List the agents responsible for a stack.
    ///
    /// Admin, or the generator owning the stack.
    #[oai(
        path = "/stacks/:id/targets",
        method = "get",
        operation_id = "listStackTargets",
        tag = "Tag::AgentTargets"
    )]
    async fn list_stack_targets(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        /// Rows per page, 1-1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// `asc` (default) or `desc`.
        order: Query<Option<OrderParam>>,
    ) -> ApiResult<TargetPageResponse> {
        let page = page(limit, cursor, order)?;
        let targets = state
            .control_plane
            .list_stack_targets(&auth.0, id.0.into(), &page)
            .await?;
        Ok(TargetPageResponse::Ok(Json(targets.into())))
    }
}
