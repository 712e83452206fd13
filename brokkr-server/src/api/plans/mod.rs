//! Plans and the blast-radius guard: `/stacks/{id}/plan`, `/plans/{id}`,
//! `/plans/{id}/confirm`, `/stacks/{id}/guard-policy` and `/stacks/{id}/rollback`, a
//! thin mapping over the `ControlPlane`'s plan operations (access, the guard's rules,
//! digests and confirmation live there).
//!
//! The mutations that can remove or prune take `?dry_run=true` (answer the plan, change
//! nothing) and `?confirm_plan_id=` (go ahead past the guard on a plan an admin
//! confirms); [`guard_options`] reads both for every one of them.

pub mod dto;
pub mod request;

use brokkr_core::StackId;
use brokkr_core::id::PlanId;
use brokkr_core::runtime::plan::{GuardOptions, Outcome};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, OpenApi};
use uuid::Uuid;

use crate::api::Tag;
use crate::api::dto::DeploymentObjectDto;
use crate::api::unchecked::Unchecked;
use crate::auth::BearerAuth;
use crate::error::ApiResult;
use crate::state::AppState;
use dto::PlanDto;
use request::{GuardOverridesDto, GuardPolicyViewDto, PlanRequestBody, RollbackRequest};

/// The guard's options from a mutation's `?dry_run=` and `?confirm_plan_id=`.
pub(crate) fn guard_options(
    dry_run: Query<Option<bool>>,
    confirm_plan_id: Query<Option<Uuid>>,
) -> GuardOptions {
    GuardOptions {
        dry_run: dry_run.0.unwrap_or(false),
        confirm_plan_id: confirm_plan_id.0.map(PlanId::from),
    }
}

// ---------------------------------------------------------------------------------------
// Responses

/// Answer of `POST /stacks/{id}/plan`.
#[derive(Debug, ApiResponse)]
pub enum PlanCreated {
    /// The plan, stored so it can be read back and confirmed.
    #[oai(status = 201)]
    Created(Json<PlanDto>),
}

/// A plan.
#[derive(Debug, ApiResponse)]
pub enum PlanResponse {
    /// The plan.
    #[oai(status = 200)]
    Ok(Json<PlanDto>),
}

/// A stack's guard limits.
#[derive(Debug, ApiResponse)]
pub enum GuardPolicyResponse {
    /// The defaults, the stack's overrides and what applies.
    #[oai(status = 200)]
    Ok(Json<GuardPolicyViewDto>),
}

/// Answer of `POST /stacks/{id}/rollback`.
#[derive(Debug, ApiResponse)]
pub enum RolledBack {
    /// The new deployment object, with the older one's content and provenance.
    #[oai(status = 201)]
    Created(Json<DeploymentObjectDto>),
    /// Dry run: the plan; nothing changed.
    #[oai(status = 200)]
    Planned(Json<PlanDto>),
}

// ---------------------------------------------------------------------------------------
// Operations

/// Plan and guard operations.
pub struct PlansApi;

#[OpenApi]
impl PlansApi {
    /// Plan a change to a stack, without making it.
    ///
    /// The body names the change by `change`: `deployment_object` (with `yaml_content`,
    /// or `template_id` with an optional `template_version`, or `generator`, and
    /// `parameters`), `placement` (with `policy`), `remove_placement`, `delete`,
    /// `deletion_marker`, `rollback` (with `to_deployment_object_id`) or `unassign`
    /// (with `agent_id`). An unknown change or a missing field is a 422. The answer
    /// lists, per group of agents making the same move, whether they gain, change or
    /// lose the stack and which objects are created, updated or pruned, with a summary
    /// and the guard's verdict. The plan is kept (`server.plan_ttl_secs`, 15 minutes
    /// by default) to be read back and confirmed. Admin, or the generator owning the
    /// stack.
    #[oai(
        path = "/stacks/:id/plan",
        method = "post",
        operation_id = "planStackChange",
        tag = "Tag::Plans"
    )]
    async fn plan_stack_change(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        /// The change to plan.
        body: Json<Unchecked<PlanRequestBody>>,
    ) -> ApiResult<PlanCreated> {
        let request = body.0.parse("invalid_change", "change")?.into_request()?;
        let plan = state
            .control_plane
            .plan(&auth.0, StackId::from(id.0), request)
            .await?;
        Ok(PlanCreated::Created(Json(plan.into())))
    }

    /// Get a plan.
    ///
    /// Admin, or the generator owning its stack (also once the stack is deleted);
    /// another generator's plan is a 404.
    #[oai(
        path = "/plans/:id",
        method = "get",
        operation_id = "getPlan",
        tag = "Tag::Plans"
    )]
    async fn get_plan(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<PlanResponse> {
        let plan = state
            .control_plane
            .get_plan(&auth.0, PlanId::from(id.0))
            .await?;
        Ok(PlanResponse::Ok(Json(plan.into())))
    }

    /// Release a placement decision the guard held.
    ///
    /// The decision of a `held` plan (see `GET /stacks/{id}/placement`) is recorded if
    /// the fleet is still as planned: 409 `plan_stale` otherwise (the placement
    /// controller decides again), 409 `plan_consumed` when it was released already.
    /// A plan a caller asked for is confirmed by repeating its change with
    /// `?confirm_plan_id=` instead (422 `not_held`). Admin only (403 for generators).
    #[oai(
        path = "/plans/:id/confirm",
        method = "post",
        operation_id = "confirmPlan",
        tag = "Tag::Plans"
    )]
    async fn confirm_plan(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<PlanResponse> {
        let plan = state
            .control_plane
            .confirm_plan(&auth.0, PlanId::from(id.0))
            .await?;
        Ok(PlanResponse::Ok(Json(plan.into())))
    }

    /// Get a stack's guard limits.
    ///
    /// The server's defaults, the stack's overrides and the effective limits. Admin,
    /// or the generator owning the stack.
    #[oai(
        path = "/stacks/:id/guard-policy",
        method = "get",
        operation_id = "getGuardPolicy",
        tag = "Tag::Plans"
    )]
    async fn get_guard_policy(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<GuardPolicyResponse> {
        let view = state
            .control_plane
            .guard_policy(&auth.0, StackId::from(id.0))
            .await?;
        Ok(GuardPolicyResponse::Ok(Json(view.into())))
    }

    /// Replace a stack's guard overrides.
    ///
    /// The body replaces every override (`{}` returns the stack to the defaults). A
    /// value out of range is a 422 `invalid_guard`; a generator may tighten its
    /// stack's limits, but loosening one (a larger fraction, minimum or prune count,
    /// or a protected kind left out) is admin-only (403). Admin, or the generator
    /// owning the stack.
    #[oai(
        path = "/stacks/:id/guard-policy",
        method = "put",
        operation_id = "setGuardPolicy",
        tag = "Tag::Plans"
    )]
    async fn set_guard_policy(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        /// The stack's overrides.
        body: Json<GuardOverridesDto>,
    ) -> ApiResult<GuardPolicyResponse> {
        let view = state
            .control_plane
            .set_guard_policy(&auth.0, StackId::from(id.0), body.0.into())
            .await?;
        Ok(GuardPolicyResponse::Ok(Json(view.into())))
    }

    /// Roll a stack back to an older deployment object.
    ///
    /// Appends a new deployment object with the older one's content and provenance, so
    /// history stays append-only, after the guard: a rollback over its limits is a
    /// 409 `blast_radius_exceeded` until an admin repeats it with `?confirm_plan_id=`;
    /// `?dry_run=true` answers the plan (200) and changes nothing. 422
    /// `deletion_marker` for a deletion marker, `already_latest` for the latest
    /// object. Admin, or the generator owning the stack.
    #[oai(
        path = "/stacks/:id/rollback",
        method = "post",
        operation_id = "rollbackStack",
        tag = "Tag::DeploymentObjects"
    )]
    async fn rollback_stack(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        /// `true`: answer the plan and change nothing.
        dry_run: Query<Option<bool>>,
        /// Go ahead past the guard on this plan (admin only, once, while the world is
        /// as planned).
        confirm_plan_id: Query<Option<Uuid>>,
        /// The object to go back to.
        body: Json<RollbackRequest>,
    ) -> ApiResult<RolledBack> {
        let options = guard_options(dry_run, confirm_plan_id);
        let outcome = state
            .control_plane
            .guarded(options)
            .rollback(
                &auth.0,
                StackId::from(id.0),
                body.0.to_deployment_object_id.into(),
            )
            .await?;
        Ok(match outcome {
            Outcome::Done(object) => RolledBack::Created(Json(object.into())),
            Outcome::Planned(plan) => RolledBack::Planned(Json((*plan).into())),
        })
    }
}
