//! A stack's placement policy and decision: `/stacks/{id}/placement` and
//! `/stacks/{id}/placement/preview`, a thin mapping over the `ControlPlane`'s
//! placement operations (access rules, validation, deciding and recording live there).
//!
//! The placement of a stack exists exactly while the stack has a policy: `GET` and
//! `DELETE` answer 404 `not_found` for a stack without one. `PUT` stores a policy and
//! decides at once; `preview` decides without storing anything.
//!
//! The policy is parsed here with serde rather than by poem-openapi, so that the
//! policy's own rules (unknown fields, unknown operators, bad selectors, versions,
//! tolerations) all answer the same 422 `invalid_policy` with serde's or the core's
//! message. A policy naming a placement that is not registered is 422
//! `unknown_placement`. Its JSON shape is documented in `docs/placement.md`.
//!
//! The agents not chosen are counted per reason code and listed a page at a time
//! (`?limit=`, `?cursor=`), so an answer does not grow with the fleet.

use std::collections::BTreeMap;

use brokkr_core::placement::{Leaving, Rejection};
use brokkr_core::runtime::placement::{PlacementPreview, PlacementView, RejectionPage, Rejections};
use brokkr_core::runtime::plan::Outcome;
use brokkr_core::{AgentId, PlacementPolicy, StackId};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi, Union};
use serde_json::Value;
use uuid::Uuid;

use crate::api::Tag;
use crate::api::plans::dto::PlanDto;
use crate::api::plans::guard_options;
use crate::auth::BearerAuth;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

// ---------------------------------------------------------------------------------------
// DTOs

/// One agent that was not chosen, and why.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "PlacementRejection")]
pub struct RejectionDto {
    /// The agent.
    pub agent_id: Uuid,
    /// The first reason found: a stable code, `not_active`, `label_mismatch`,
    /// `annotation_mismatch`, `missing_capability`, `taint`, `stale_heartbeat`,
    /// `limit_reached`, `spread_limit`, or a custom placement's own code.
    pub reason: String,
    /// Which requirement, label, capability or taint, when the reason has one (a
    /// custom placement's message).
    #[oai(skip_serializing_if_is_none)]
    pub detail: Option<String>,
}

impl RejectionDto {
    fn new(agent_id: Uuid, rejection: Rejection) -> Self {
        Self {
            agent_id,
            reason: rejection.code().to_owned(),
            detail: rejection.detail().map(str::to_owned),
        }
    }
}

/// An agent the decision dropped that keeps the stack for now (graceful eviction): it
/// still receives the stack and prunes nothing until every agent in `waiting_for`
/// reported the stack healthy, or `until` passes. Why it was dropped is its entry in
/// `rejected`.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "PlacementLeaving")]
pub struct LeavingDto {
    /// The agent.
    pub agent_id: Uuid,
    /// The agents that replaced it and must report the stack healthy first, ordered
    /// by id.
    pub waiting_for: Vec<Uuid>,
    /// When the decision dropped it.
    pub since: DateTime<Utc>,
    /// When it loses the stack whatever its replacements report.
    pub until: DateTime<Utc>,
}

impl From<Leaving> for LeavingDto {
    fn from(leaving: Leaving) -> Self {
        Self {
            agent_id: leaving.agent_id.into(),
            waiting_for: leaving.replacements.into_iter().map(Into::into).collect(),
            since: leaving.since,
            until: leaving.until,
        }
    }
}

/// Which agents get the stack; the others counted per reason, a page of them listed.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "PlacementDecision")]
pub struct DecisionDto {
    /// Chosen agents, ordered by id.
    pub chosen: Vec<Uuid>,
    /// Agents the decision dropped that keep the stack until their replacements are
    /// healthy or their grace ends, ordered by id; absent when none.
    #[oai(default, skip_serializing_if_is_empty)]
    pub leaving: Vec<LeavingDto>,
    /// One page of the live agents not chosen, with the first reason, ordered by id.
    pub rejected: Vec<RejectionDto>,
    /// How many live agents are not chosen.
    pub rejected_total: u64,
    /// How many per reason code.
    pub rejected_by_reason: BTreeMap<String, u64>,
    /// Pass as `?cursor=` for the next page of `rejected`; absent on the last page.
    #[oai(skip_serializing_if_is_none)]
    pub next_cursor: Option<String>,
}

impl DecisionDto {
    fn new(chosen: Vec<AgentId>, leaving: Vec<Leaving>, rejected: Rejections) -> Self {
        Self {
            chosen: chosen.into_iter().map(Into::into).collect(),
            leaving: leaving.into_iter().map(Into::into).collect(),
            rejected: rejected
                .agents
                .into_iter()
                .map(|(agent, why)| RejectionDto::new(agent.into(), why))
                .collect(),
            rejected_total: rejected.total as u64,
            rejected_by_reason: rejected
                .by_reason
                .into_iter()
                .map(|(code, n)| (code, n as u64))
                .collect(),
            next_cursor: rejected.next.map(|id| id.to_string()),
        }
    }
}

pub(crate) fn policy_json(policy: &PlacementPolicy) -> Value {
    serde_json::to_value(policy).expect("a placement policy always serializes to JSON")
}

/// A stack's placement: its policy and the stored decision.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "StackPlacement")]
pub struct StackPlacementDto {
    /// The stack.
    pub stack_id: Uuid,
    /// The policy, as stored (unset optional fields omitted); see `docs/placement.md`.
    pub policy: Value,
    /// The latest decision; absent until one was computed.
    #[oai(skip_serializing_if_is_none)]
    pub decision: Option<DecisionDto>,
    /// When the policy was last set.
    pub updated_at: DateTime<Utc>,
    /// When the decision last changed.
    #[oai(skip_serializing_if_is_none)]
    pub decided_at: Option<DateTime<Utc>>,
    /// An automatic decision the blast-radius guard holds instead of recording, with
    /// its plan: `decision` stays as it was until an admin releases it
    /// (`POST /plans/{id}/confirm`). Only `GET` answers it.
    #[oai(skip_serializing_if_is_none)]
    pub held: Option<PlanDto>,
}

impl From<PlacementView> for StackPlacementDto {
    fn from(view: PlacementView) -> Self {
        let p = view.placement;
        let rejected = view.rejected.unwrap_or_default();
        Self {
            stack_id: p.stack_id.into(),
            policy: policy_json(&p.policy),
            decision: p
                .decision
                .map(|d| DecisionDto::new(d.chosen, d.leaving, rejected)),
            updated_at: p.updated_at,
            decided_at: p.decided_at,
            held: view.held.map(|plan| (*plan).into()),
        }
    }
}

/// What a policy would decide now; nothing was stored.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "PlacementPreview")]
pub struct PlacementPreviewDto {
    /// The stack.
    pub stack_id: Uuid,
    /// The policy previewed, normalised as it would be stored.
    pub policy: Value,
    /// The decision it would make, keeping the stored decision's agents while they fit.
    pub decision: DecisionDto,
}

impl From<PlacementPreview> for PlacementPreviewDto {
    fn from(preview: PlacementPreview) -> Self {
        Self {
            stack_id: preview.stack_id.into(),
            policy: policy_json(&preview.policy),
            decision: DecisionDto::new(preview.chosen, Vec::new(), preview.rejected),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Responses

/// A stack's placement.
#[derive(Debug, ApiResponse)]
pub enum PlacementResponse {
    /// The policy and its decision.
    #[oai(status = 200)]
    Ok(Json<StackPlacementDto>),
}

/// The body of `PUT /stacks/{id}/placement`: the placement set, or on a dry run the
/// plan (told apart by `plan_id`, which only a plan has).
#[derive(Debug, Clone, PartialEq, Union)]
#[oai(one_of)]
pub enum PlacementOrPlan {
    /// The policy set and the decision made from it.
    Placement(StackPlacementDto),
    /// Dry run: the plan; nothing changed.
    Plan(PlanDto),
}

/// Answer of `PUT /stacks/{id}/placement`.
#[derive(Debug, ApiResponse)]
pub enum PlacementSet {
    /// The policy and its decision, or with `?dry_run=true` the plan.
    #[oai(status = 200)]
    Ok(Json<PlacementOrPlan>),
}

/// Answer of `DELETE /stacks/{id}/placement`.
#[derive(Debug, ApiResponse)]
pub enum PlacementDeleted {
    /// The policy was removed; agents it had chosen receive a removal for the stack
    /// (direct targets stay).
    #[oai(status = 204)]
    NoContent,
    /// Dry run: the plan; nothing changed.
    #[oai(status = 200)]
    Planned(Json<Box<PlanDto>>),
}

/// Answer of `POST /stacks/{id}/placement/preview`.
#[derive(Debug, ApiResponse)]
pub enum PlacementPreviewResponse {
    /// The decision the policy would make now.
    #[oai(status = 200)]
    Ok(Json<PlacementPreviewDto>),
}

// ---------------------------------------------------------------------------------------
// Helpers

/// Parses a policy body: 422 `invalid_policy` when it is not a policy object. What the
/// policy's placement accepts is the control plane's to check.
pub(crate) fn parse_policy(body: Value) -> ApiResult<PlacementPolicy> {
    let invalid = |message: String| ApiError::unprocessable("invalid_policy", message, None);
    // serde would also read a struct from an array; a policy is an object.
    if !body.is_object() {
        return Err(invalid(
            "invalid placement policy: expected a JSON object".into(),
        ));
    }
    serde_json::from_value(body).map_err(|err| invalid(format!("invalid placement policy: {err}")))
}

/// The page of rejected agents from `?limit=` (1-1000, default 100) and `?cursor=`.
fn rejection_page(
    limit: Query<Option<u32>>,
    cursor: Query<Option<String>>,
) -> ApiResult<RejectionPage> {
    let page = crate::api::dto::page(limit, Query(None), Query(None))?;
    let after = cursor
        .0
        .map(|text| {
            text.parse::<Uuid>().map(AgentId::from).map_err(|_| {
                brokkr_core::store::Error::InvalidCursor(format!("{text:?} is not a cursor"))
            })
        })
        .transpose()?;
    Ok(RejectionPage {
        after,
        limit: page.limit as usize,
    })
}

// ---------------------------------------------------------------------------------------
// Operations

/// Placement operations.
pub struct PlacementApi;

#[OpenApi]
impl PlacementApi {
    /// Get a stack's placement policy and decision.
    ///
    /// The agents not chosen are judged now (from the control plane's memory), counted
    /// per reason and listed a page at a time; `held` shows an automatic decision the
    /// blast-radius guard holds. 404 `not_found` when the stack has no policy. Admin,
    /// or the generator owning the stack.
    #[oai(
        path = "/stacks/:id/placement",
        method = "get",
        operation_id = "getPlacement",
        tag = "Tag::Placement"
    )]
    async fn get_placement(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        /// Rejected agents per page, 1-1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
    ) -> ApiResult<PlacementResponse> {
        let page = rejection_page(limit, cursor)?;
        let view = state
            .control_plane
            .stack_placement(&auth.0, StackId::from(id.0), page)
            .await?;
        Ok(PlacementResponse::Ok(Json(view.into())))
    }

    /// Set a stack's placement policy and decide at once.
    ///
    /// The body is a placement policy (see `docs/placement.md`); an unknown field or
    /// operator, a bad selector, version, spread or toleration, or a custom policy its
    /// placement refuses is a 422 `invalid_policy`, a `placement` that is not
    /// registered a 422 `unknown_placement`, and nothing is stored. The answer holds
    /// the decision, already in effect: chosen agents have the stack, agents that no
    /// longer fit receive a removal. The blast-radius guard checks the decision first:
    /// over its limits it is a 409 `blast_radius_exceeded` and nothing is stored but
    /// the plan, until an admin repeats the request with `?confirm_plan_id=` (403 for a
    /// generator); with `?dry_run=true` the answer is the plan (told apart by its
    /// `plan_id`) and nothing changes. Admin, or the generator owning the stack.
    #[allow(clippy::too_many_arguments)]
    #[oai(
        path = "/stacks/:id/placement",
        method = "put",
        operation_id = "setPlacement",
        tag = "Tag::Placement"
    )]
    async fn set_placement(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        /// Rejected agents per page in the answer, 1-1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        /// `true`: answer the plan and change nothing.
        dry_run: Query<Option<bool>>,
        /// Go ahead past the guard on this plan (admin only, once, while the world is
        /// as planned).
        confirm_plan_id: Query<Option<Uuid>>,
        /// The placement policy.
        body: Json<Value>,
    ) -> ApiResult<PlacementSet> {
        let page = rejection_page(limit, Query(None))?;
        let policy = parse_policy(body.0)?;
        let outcome = state
            .control_plane
            .guarded(guard_options(dry_run, confirm_plan_id))
            .set_placement_policy(&auth.0, StackId::from(id.0), policy, page)
            .await?;
        Ok(PlacementSet::Ok(Json(match outcome {
            Outcome::Done(view) => PlacementOrPlan::Placement(view.into()),
            Outcome::Planned(plan) => PlacementOrPlan::Plan((*plan).into()),
        })))
    }

    /// Remove a stack's placement policy.
    ///
    /// The agents it had placed the stack on receive a removal for it; direct
    /// assignments stay. The blast-radius guard checks it first: over its limits it is
    /// a 409 `blast_radius_exceeded` until an admin repeats it with
    /// `?confirm_plan_id=` (403 for a generator); with `?dry_run=true` the answer is
    /// the plan (200) and nothing changes. 404 `not_found` when the stack has no
    /// policy. Admin, or the generator owning the stack.
    #[oai(
        path = "/stacks/:id/placement",
        method = "delete",
        operation_id = "deletePlacement",
        tag = "Tag::Placement"
    )]
    async fn delete_placement(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        /// `true`: answer the plan and change nothing.
        dry_run: Query<Option<bool>>,
        /// Go ahead past the guard on this plan (admin only, once, while the world is
        /// as planned).
        confirm_plan_id: Query<Option<Uuid>>,
    ) -> ApiResult<PlacementDeleted> {
        let outcome = state
            .control_plane
            .guarded(guard_options(dry_run, confirm_plan_id))
            .remove_placement_policy(&auth.0, StackId::from(id.0))
            .await?;
        Ok(match outcome {
            Outcome::Done(()) => PlacementDeleted::NoContent,
            Outcome::Planned(plan) => PlacementDeleted::Planned(Json(Box::new((*plan).into()))),
        })
    }

    /// What a policy would decide for a stack now, without storing anything.
    ///
    /// Agents of the stored decision (if the stack has a policy) keep their place
    /// while they fit, as they would if the policy were set. 422 `invalid_policy` and
    /// `unknown_placement` as for `PUT`. Admin, or the generator owning the stack.
    #[oai(
        path = "/stacks/:id/placement/preview",
        method = "post",
        operation_id = "previewPlacement",
        tag = "Tag::Placement"
    )]
    async fn preview_placement(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        /// Rejected agents per page, 1-1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// The placement policy to try.
        body: Json<Value>,
    ) -> ApiResult<PlacementPreviewResponse> {
        let page = rejection_page(limit, cursor)?;
        let policy = parse_policy(body.0)?;
        let preview = state
            .control_plane
            .preview_placement(&auth.0, StackId::from(id.0), policy, page)
            .await?;
        Ok(PlacementPreviewResponse::Ok(Json(preview.into())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_must_be_objects_of_known_fields() {
        let ok = serde_json::json!({
            "agent_selector": {"matchExpressions": [{"key": "region", "operator": "In", "values": ["eu"]}]},
            "max_clusters": 2
        });
        assert_eq!(parse_policy(ok).unwrap().max_clusters, Some(2));
        let named = serde_json::json!({"placement": "by-prefix", "custom": {"prefix": "edge-"}});
        assert_eq!(
            parse_policy(named).unwrap().placement.as_deref(),
            Some("by-prefix")
        );
        for bad in [
            serde_json::json!({"max_cluster": 2}),
            serde_json::json!({"agent_selector": {"matchExpressions": [{"key": "region", "operator": "Near", "values": ["eu"]}]}}),
            serde_json::json!([]),
        ] {
            let err = parse_policy(bad.clone()).unwrap_err();
            assert_eq!(err.status(), 422, "{bad}");
            assert_eq!(err.body().code, "invalid_policy", "{bad}");
        }
    }

    #[test]
    fn rejections_keep_their_code_and_detail() {
        let agent = Uuid::new_v4();
        let dto = RejectionDto::new(agent, Rejection::Taint("gpu=true:NoSchedule".into()));
        assert_eq!(dto.reason, "taint");
        assert_eq!(dto.detail.as_deref(), Some("gpu=true:NoSchedule"));
        assert_eq!(
            RejectionDto::new(agent, Rejection::StaleHeartbeat).detail,
            None
        );
        let custom = RejectionDto::new(agent, Rejection::custom("name_prefix", "not edge-"));
        assert_eq!(
            (custom.reason.as_str(), custom.detail.as_deref()),
            ("name_prefix", Some("not edge-"))
        );
    }
}
