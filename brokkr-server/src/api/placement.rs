//! A stack's placement policy and decision: `/stacks/{id}/placement` and
//! `/stacks/{id}/placement/preview`.
//!
//! The placement of a stack exists exactly while the stack has a policy: `GET` and
//! `DELETE` answer 404 `not_found` for a stack without one. `PUT` stores a policy and
//! decides at once (the decision is in the answer and its targets are in place when it
//! returns); afterwards the placement controller (`crate::placement`) keeps the
//! decision current. `preview` decides without storing anything.
//!
//! The policy is parsed here with serde rather than by poem-openapi, so that the
//! policy's own rules (unknown fields, unknown operators, bad selectors, versions,
//! tolerations) all answer the same 422 `invalid_policy` with serde's or the core's
//! message. Its JSON shape is documented in `docs/placement.md`.
//!
//! Access: admin, and the generator owning the stack (another generator's stack is a
//! 404); agents get 403.

use brokkr_core::placement::Rejection;
use brokkr_core::{PlacementDecision, PlacementPolicy, StackPlacement};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use serde_json::Value;
use uuid::Uuid;

use crate::api::Tag;
use crate::api::stacks::visible_stack;
use crate::auth::BearerAuth;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use brokkr_core::runtime::placement::controller::{
    chrono_duration, current_choice, decide, live_agents, stored_form,
};

// ---------------------------------------------------------------------------------------
// DTOs

/// Why an agent was not chosen (the first failed check).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "RejectionReason", rename_all = "snake_case")]
pub enum RejectionReasonDto {
    /// Deleted or disabled by an admin.
    NotActive,
    /// A label requirement of `agent_selector` failed.
    LabelMismatch,
    /// An `annotations` requirement failed.
    AnnotationMismatch,
    /// A `requirements` entry is not met by the reported capabilities.
    MissingCapability,
    /// The agent has a taint the policy does not tolerate.
    Taint,
    /// The heartbeat is stale: no new placement (or, past `evict_after_secs`, none).
    StaleHeartbeat,
    /// It fits, but `max_clusters` agents ranked before it.
    LimitReached,
    /// It fits, but its `spread` domain is full.
    SpreadLimit,
}

/// One agent that was not chosen, and why.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "PlacementRejection")]
pub struct RejectionDto {
    /// The agent.
    pub agent_id: Uuid,
    /// The first reason found.
    pub reason: RejectionReasonDto,
    /// Which requirement, label, capability or taint, when the reason has one.
    #[oai(skip_serializing_if_is_none)]
    pub detail: Option<String>,
}

impl RejectionDto {
    fn new(agent_id: Uuid, rejection: Rejection) -> Self {
        use RejectionReasonDto as R;
        let (reason, detail) = match rejection {
            Rejection::NotActive => (R::NotActive, None),
            Rejection::LabelMismatch(d) => (R::LabelMismatch, Some(d)),
            Rejection::AnnotationMismatch(d) => (R::AnnotationMismatch, Some(d)),
            Rejection::MissingCapability(d) => (R::MissingCapability, Some(d)),
            Rejection::Taint(d) => (R::Taint, Some(d)),
            Rejection::StaleHeartbeat => (R::StaleHeartbeat, None),
            Rejection::LimitReached => (R::LimitReached, None),
            Rejection::SpreadLimit(d) => (R::SpreadLimit, Some(d)),
        };
        Self {
            agent_id,
            reason,
            detail,
        }
    }
}

/// Which agents get the stack, and why every other agent does not.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "PlacementDecision")]
pub struct DecisionDto {
    /// Chosen agents, ordered by id.
    pub chosen: Vec<Uuid>,
    /// Every other live agent with the first reason it was not chosen, ordered by id.
    pub rejected: Vec<RejectionDto>,
}

impl From<PlacementDecision> for DecisionDto {
    fn from(d: PlacementDecision) -> Self {
        Self {
            chosen: d.chosen.into_iter().map(Into::into).collect(),
            rejected: d
                .rejected
                .into_iter()
                .map(|(agent, why)| RejectionDto::new(agent.into(), why))
                .collect(),
        }
    }
}

fn policy_json(policy: &PlacementPolicy) -> Value {
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
}

impl From<StackPlacement> for StackPlacementDto {
    fn from(p: StackPlacement) -> Self {
        Self {
            stack_id: p.stack_id.into(),
            policy: policy_json(&p.policy),
            decision: p.decision.map(Into::into),
            updated_at: p.updated_at,
            decided_at: p.decided_at,
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

// ---------------------------------------------------------------------------------------
// Responses

/// A stack's placement.
#[derive(Debug, ApiResponse)]
pub enum PlacementResponse {
    /// The policy and its decision.
    #[oai(status = 200)]
    Ok(Json<StackPlacementDto>),
}

/// Answer of `DELETE /stacks/{id}/placement`.
#[derive(Debug, ApiResponse)]
pub enum PlacementDeleted {
    /// The policy was removed; agents it had chosen receive a removal for the stack
    /// (direct targets stay).
    #[oai(status = 204)]
    NoContent,
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

/// Parses and validates a policy body: 422 `invalid_policy` with the reason.
fn parse_policy(body: Value) -> ApiResult<PlacementPolicy> {
    let invalid = |message: String| ApiError::unprocessable("invalid_policy", message, None);
    // serde would also read a struct from an array; a policy is an object.
    if !body.is_object() {
        return Err(invalid(
            "invalid placement policy: expected a JSON object".into(),
        ));
    }
    let policy: PlacementPolicy = serde_json::from_value(body)
        .map_err(|err| invalid(format!("invalid placement policy: {err}")))?;
    policy.validate().map_err(|err| invalid(err.to_string()))?;
    Ok(policy)
}

fn no_policy(stack: impl std::fmt::Display) -> ApiError {
    ApiError::not_found("placement policy of stack", stack)
}

/// Decides `policy` over every live agent now, keeping `stored`'s agents while they fit.
async fn decide_now(
    state: &AppState,
    policy: &PlacementPolicy,
    stored: Option<&StackPlacement>,
) -> ApiResult<PlacementDecision> {
    let agents = live_agents(state.store.as_ref(), state.control_plane.heartbeats()).await?;
    Ok(decide(
        policy,
        &agents,
        current_choice(stored),
        Utc::now(),
        chrono_duration(state.config.agents.stale_after()),
    ))
}

/// The stored placement with the reason of every agent not chosen, taken from `live`
/// (a decision computed now): the store keeps only the chosen set (see `stored_form`).
fn explained(placement: StackPlacement, live: PlacementDecision) -> StackPlacementDto {
    let chosen = current_choice(Some(&placement)).to_vec();
    let decided = placement.decision.is_some();
    let mut dto = StackPlacementDto::from(placement);
    if decided {
        let chosen_set: std::collections::HashSet<_> = chosen.iter().copied().collect();
        let decision = PlacementDecision {
            rejected: live
                .rejected
                .into_iter()
                .filter(|(agent, _)| !chosen_set.contains(agent))
                .collect(),
            chosen,
        };
        dto.decision = Some(decision.into());
    }
    dto
}

// ---------------------------------------------------------------------------------------
// Operations

/// Placement operations.
pub struct PlacementApi;

#[OpenApi]
impl PlacementApi {
    /// Get a stack's placement policy and decision.
    ///
    /// 404 `not_found` when the stack has no policy. Admin, or the generator owning
    /// the stack.
    #[oai(path = "/stacks/:id/placement", method = "get", tag = "Tag::Placement")]
    async fn get_placement(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<PlacementResponse> {
        let stack = visible_stack(&state, &auth.0, id.0).await?;
        let placement = state
            .store
            .get_placement(stack.id)
            .await?
            .ok_or_else(|| no_policy(stack.id))?;
        let live = decide_now(&state, &placement.policy, Some(&placement)).await?;
        Ok(PlacementResponse::Ok(Json(explained(placement, live))))
    }

    /// Set a stack's placement policy and decide at once.
    ///
    /// The body is a placement policy (see `docs/placement.md`); an unknown field or
    /// operator, a bad selector, version, spread or toleration is a 422
    /// `invalid_policy` and nothing is stored. The answer holds the decision, already
    /// in effect: chosen agents have the stack, agents that no longer fit receive a
    /// removal. Admin, or the generator owning the stack.
    #[oai(path = "/stacks/:id/placement", method = "put", tag = "Tag::Placement")]
    async fn set_placement(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        /// The placement policy.
        body: Json<Value>,
    ) -> ApiResult<PlacementResponse> {
        let stack = visible_stack(&state, &auth.0, id.0).await?;
        let policy = parse_policy(body.0)?;
        let actor = auth.0.actor();
        let stored = state
            .store
            .set_placement_policy(&actor, stack.id, Some(policy))
            .await?
            .ok_or_else(|| no_policy(stack.id))?;
        let decision = decide_now(&state, &stored.policy, Some(&stored)).await?;
        state
            .store
            .record_placement(&actor, stack.id, stored_form(decision.clone()))
            .await?;
        // A controller run that read the previous policy may record after us: one
        // more run, after it, has the last word.
        state
            .control_plane
            .placement_signals()
            .stack_changed(stack.id);
        let placement = state
            .store
            .get_placement(stack.id)
            .await?
            .ok_or_else(|| no_policy(stack.id))?;
        // The decision just recorded explains itself: no second pass over the agents.
        Ok(PlacementResponse::Ok(Json(explained(placement, decision))))
    }

    /// Remove a stack's placement policy.
    ///
    /// The agents it had placed the stack on receive a removal for it; direct
    /// assignments stay. 404 `not_found` when the stack has no policy. Admin, or the
    /// generator owning the stack.
    #[oai(
        path = "/stacks/:id/placement",
        method = "delete",
        tag = "Tag::Placement"
    )]
    async fn delete_placement(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<PlacementDeleted> {
        let stack = visible_stack(&state, &auth.0, id.0).await?;
        if state.store.get_placement(stack.id).await?.is_none() {
            return Err(no_policy(stack.id));
        }
        state
            .store
            .set_placement_policy(&auth.0.actor(), stack.id, None)
            .await?;
        Ok(PlacementDeleted::NoContent)
    }

    /// What a policy would decide for a stack now, without storing anything.
    ///
    /// Agents of the stored decision (if the stack has a policy) keep their place
    /// while they fit, as they would if the policy were set. 422 `invalid_policy` as
    /// for `PUT`. Admin, or the generator owning the stack.
    #[oai(
        path = "/stacks/:id/placement/preview",
        method = "post",
        tag = "Tag::Placement"
    )]
    async fn preview_placement(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        /// The placement policy to try.
        body: Json<Value>,
    ) -> ApiResult<PlacementPreviewResponse> {
        let stack = visible_stack(&state, &auth.0, id.0).await?;
        let policy = parse_policy(body.0)?;
        let stored = state.store.get_placement(stack.id).await?;
        let decision = decide_now(&state, &policy, stored.as_ref()).await?;
        Ok(PlacementPreviewResponse::Ok(Json(PlacementPreviewDto {
            stack_id: stack.id.into(),
            policy: policy_json(&policy),
            decision: decision.into(),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_are_parsed_strictly() {
        let ok = serde_json::json!({
            "agent_selector": {"matchExpressions": [{"key": "region", "operator": "In", "values": ["eu"]}]},
            "max_clusters": 2
        });
        assert_eq!(parse_policy(ok).unwrap().max_clusters, Some(2));
        for bad in [
            serde_json::json!({"max_cluster": 2}),
            serde_json::json!({"agent_selector": {"matchExpressions": [{"key": "region", "operator": "Near", "values": ["eu"]}]}}),
            serde_json::json!({"spread": {"topology_key": "region", "max_per_value": 0}}),
            serde_json::json!({"requirements": {"min_kubernetes_version": "latest"}}),
            serde_json::json!([]),
        ] {
            let err = parse_policy(bad.clone()).unwrap_err();
            assert_eq!(err.status(), 422, "{bad}");
            assert_eq!(err.body().code, "invalid_policy", "{bad}");
        }
    }

    #[test]
    fn rejections_keep_their_reason_and_detail() {
        let agent = Uuid::new_v4();
        let dto = RejectionDto::new(agent, Rejection::Taint("gpu=true:NoSchedule".into()));
        assert_eq!(dto.reason, RejectionReasonDto::Taint);
        assert_eq!(dto.detail.as_deref(), Some("gpu=true:NoSchedule"));
        assert_eq!(
            RejectionDto::new(agent, Rejection::StaleHeartbeat).detail,
            None
        );
    }
}
