//! Progressive rollouts: `/stacks/{id}/rollout-policy`, `/stacks/{id}/rollouts`,
//! `/rollouts/{id}` and its commands (`pause`, `resume`, `abort`, `promote`,
//! `retry-wave`, `approve`).
//!
//! Admin may do everything; a generator everything but `promote`, for its own stacks
//! (another generator's are a 404 to it); agents get 403. The rules live in the
//! control plane (`brokkr_core::runtime::rollouts`).

mod dto;
mod policy_dto;

use brokkr_core::model::RolloutCommandKind;
use brokkr_core::{RolloutId, StackId};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use uuid::Uuid;

use crate::api::Tag;
use crate::api::dto::{OrderParam, page};
use crate::api::unchecked::Unchecked;
use crate::auth::BearerAuth;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

use dto::{ApproveRequest, GateEvaluationDto, RolloutCommandDto, RolloutDetailsDto, RolloutPage};
pub use policy_dto::RolloutPolicyDto;

/// A stack's rollout policy.
#[derive(Debug, ApiResponse)]
pub enum RolloutPolicyResponse {
    /// The policy.
    #[oai(status = 200)]
    Ok(Json<RolloutPolicyDto>),
}

/// Answer of `DELETE /stacks/{id}/rollout-policy`.
#[derive(Debug, ApiResponse)]
pub enum RolloutPolicyRemoved {
    /// The stack has no policy now: new objects reach every agent at once.
    #[oai(status = 204)]
    NoContent,
}

/// A page of rollouts.
#[derive(Debug, ApiResponse)]
pub enum RolloutPageResponse {
    /// The page.
    #[oai(status = 200)]
    Ok(Json<RolloutPage>),
}

/// A rollout with everything it is made of.
#[derive(Debug, ApiResponse)]
pub enum RolloutResponse {
    /// The rollout.
    #[oai(status = 200)]
    Ok(Json<RolloutDetailsDto>),
}

/// Answer of a rollout command.
#[derive(Debug, ApiResponse)]
pub enum CommandAccepted {
    /// The command is recorded; the rollout's next evaluation (within the driver's
    /// poll) takes it up, and `GET /rollouts/{id}` then shows what it did.
    #[oai(status = 202)]
    Accepted(Json<RolloutCommandDto>),
}

/// Answer of `POST /rollouts/{id}/approve`.
#[derive(Debug, ApiResponse)]
pub enum Approved {
    /// The approval evaluations that passed.
    #[oai(status = 200)]
    Ok(Json<Vec<GateEvaluationDto>>),
}

/// Rollout operations.
pub struct RolloutsApi;

#[OpenApi]
impl RolloutsApi {
    /// Set a stack's rollout policy (admin, or the generator owning the stack).
    ///
    /// Applies to deployment objects appended afterwards; a running rollout keeps the
    /// policy it started with. Every broken rule is listed in a 422
    /// `invalid_rollout_policy` (`details.violations`, each with a JSON pointer).
    #[oai(
        path = "/stacks/:id/rollout-policy",
        method = "put",
        operation_id = "setRolloutPolicy",
        tag = "Tag::Rollouts"
    )]
    async fn set_rollout_policy(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        body: Json<Unchecked<RolloutPolicyDto>>,
    ) -> ApiResult<RolloutPolicyResponse> {
        let policy = body
            .0
            .parse("invalid_rollout_policy", "rollout policy")?
            .into_policy()?;
        let stored = state
            .control_plane
            .set_rollout_policy(&auth.0, StackId::from(id.0), Some(policy))
            .await?
            .expect("a policy that was set");
        Ok(RolloutPolicyResponse::Ok(Json(stored.into())))
    }

    /// Get a stack's rollout policy; 404 when it has none.
    #[oai(
        path = "/stacks/:id/rollout-policy",
        method = "get",
        operation_id = "getRolloutPolicy",
        tag = "Tag::Rollouts"
    )]
    async fn get_rollout_policy(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<RolloutPolicyResponse> {
        let stack = StackId::from(id.0);
        match state.control_plane.rollout_policy(&auth.0, stack).await? {
            Some(policy) => Ok(RolloutPolicyResponse::Ok(Json(policy.into()))),
            None => Err(ApiError::not_found("rollout policy of stack", stack)),
        }
    }

    /// Remove a stack's rollout policy: new objects reach every agent at once again.
    /// A running rollout goes on with the policy it started with.
    #[oai(
        path = "/stacks/:id/rollout-policy",
        method = "delete",
        operation_id = "deleteRolloutPolicy",
        tag = "Tag::Rollouts"
    )]
    async fn delete_rollout_policy(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<RolloutPolicyRemoved> {
        state
            .control_plane
            .set_rollout_policy(&auth.0, StackId::from(id.0), None)
            .await?;
        Ok(RolloutPolicyRemoved::NoContent)
    }

    /// List a stack's rollouts, newest first (`?order=asc`: oldest first).
    #[oai(
        path = "/stacks/:id/rollouts",
        method = "get",
        operation_id = "listRollouts",
        tag = "Tag::Rollouts"
    )]
    async fn list_rollouts(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        /// Rows per page, 1-1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// `desc` (default: newest first) or `asc`.
        order: Query<Option<OrderParam>>,
    ) -> ApiResult<RolloutPageResponse> {
        let newest_first = Query(Some(order.0.unwrap_or(OrderParam::Desc)));
        let page = page(limit, cursor, newest_first)?;
        let rollouts = state
            .control_plane
            .list_rollouts(&auth.0, StackId::from(id.0), &page)
            .await?;
        Ok(RolloutPageResponse::Ok(Json(rollouts.into())))
    }

    /// Get a rollout with its waves, agents, gate evaluations and commands.
    #[oai(
        path = "/rollouts/:id",
        method = "get",
        operation_id = "getRollout",
        tag = "Tag::Rollouts"
    )]
    async fn get_rollout(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<RolloutResponse> {
        let details = state
            .control_plane
            .get_rollout(&auth.0, RolloutId::from(id.0))
            .await?;
        Ok(RolloutResponse::Ok(Json(details.into())))
    }

    /// Pause a rollout: nothing new is pinned; pins stay.
    #[oai(
        path = "/rollouts/:id/pause",
        method = "post",
        operation_id = "pauseRollout",
        tag = "Tag::Rollouts"
    )]
    async fn pause(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<CommandAccepted> {
        command(&state, &auth, id.0, RolloutCommandKind::Pause).await
    }

    /// Resume a paused rollout.
    #[oai(
        path = "/rollouts/:id/resume",
        method = "post",
        operation_id = "resumeRollout",
        tag = "Tag::Rollouts"
    )]
    async fn resume(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<CommandAccepted> {
        command(&state, &auth, id.0, RolloutCommandKind::Resume).await
    }

    /// Abort a rollout: every agent goes back to the baseline at once.
    #[oai(
        path = "/rollouts/:id/abort",
        method = "post",
        operation_id = "abortRollout",
        tag = "Tag::Rollouts"
    )]
    async fn abort(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<CommandAccepted> {
        command(&state, &auth, id.0, RolloutCommandKind::Abort).await
    }

    /// Promote the current wave: skip its bake and after-wave gates (admin only).
    #[oai(
        path = "/rollouts/:id/promote",
        method = "post",
        operation_id = "promoteRollout",
        tag = "Tag::Rollouts"
    )]
    async fn promote(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<CommandAccepted> {
        command(&state, &auth, id.0, RolloutCommandKind::Promote).await
    }

    /// Run a halted rollout's failed wave again; its failed agents wait again.
    #[oai(
        path = "/rollouts/:id/retry-wave",
        method = "post",
        operation_id = "retryRolloutWave",
        tag = "Tag::Rollouts"
    )]
    async fn retry_wave(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<CommandAccepted> {
        command(&state, &auth, id.0, RolloutCommandKind::RetryWave).await
    }

    /// Approve a wave: its waiting approval gates pass. 409 `no_approval_pending`
    /// when the wave waits for no approval.
    #[oai(
        path = "/rollouts/:id/approve",
        method = "post",
        operation_id = "approveRolloutWave",
        tag = "Tag::Rollouts"
    )]
    async fn approve(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        body: Json<ApproveRequest>,
    ) -> ApiResult<Approved> {
        let approved = state
            .control_plane
            .approve_rollout_wave(&auth.0, RolloutId::from(id.0), body.0.wave)
            .await?;
        Ok(Approved::Ok(Json(
            approved.into_iter().map(Into::into).collect(),
        )))
    }
}

async fn command(
    state: &AppState,
    auth: &BearerAuth,
    id: Uuid,
    kind: RolloutCommandKind,
) -> ApiResult<CommandAccepted> {
    let command = state
        .control_plane
        .command_rollout(&auth.0, RolloutId::from(id), kind)
        .await?;
    Ok(CommandAccepted::Accepted(Json(command.into())))
}
