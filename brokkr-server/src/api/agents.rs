//! Agents: registration (`/agents`, `/agents/{id}`, `/agents/{id}/rotate-pak`), their
//! heartbeats (`/agents/{id}/heartbeat`) and target states (`/agents/{id}/target-state`).
//!
//! Each handler parses, calls the [`ControlPlane`](brokkr_core::runtime::ControlPlane)
//! and maps the answer; the rules (who may do what, the status an agent shows, cache
//! and key invalidation, telling placement) are the runtime's. The two calls every
//! agent makes all the time cost no query in the steady state: a heartbeat lands in
//! memory (written in batches), and a target-state fetch is answered from the cache,
//! whose JSON body is serialized once per change ([`target_state`]).

mod dto;
mod target_state;
#[cfg(test)]
mod tests;
mod wait;

use brokkr_core::runtime::{AgentQuery, Poll};
use brokkr_core::{AgentId, Capabilities};
use poem::IntoResponse;
use poem::web::Data;
use poem_openapi::OpenApi;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::Json;
use uuid::Uuid;

use crate::api::Tag;
use crate::api::dto::{OrderParam, page};
use crate::auth::BearerAuth;
use crate::deferred::Deferral;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

use dto::{
    AgentCreated, AgentDeleted, AgentKeyRotated, AgentPageResponse, AgentResponse, AgentStatusDto,
    AgentWithKey, CreateAgentRequest, HeartbeatRecorded, HeartbeatRequest, RotatedAgentKey,
    UpdateAgentRequest,
};
use target_state::{TargetStateResponse, etag_matches};
use wait::WaitSecs;

/// Agent operations.
pub struct AgentsApi;

#[OpenApi]
impl AgentsApi {
    /// Register an agent and issue its first key (admin).
    ///
    /// The key is in this answer only.
    #[oai(
        path = "/agents",
        method = "post",
        operation_id = "createAgent",
        tag = "Tag::Agents"
    )]
    async fn create_agent(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        body: Json<CreateAgentRequest>,
    ) -> ApiResult<AgentCreated> {
        let created = state
            .control_plane
            .create_agent(&auth.0, body.0.into())
            .await?;
        Ok(AgentCreated::Created(Json(AgentWithKey {
            agent: created.agent.into(),
            initial_pak: created.key.expose().to_owned(),
        })))
    }

    /// List agents, ordered by id (admin).
    ///
    /// `status=inactive` selects disabled agents; `active` and `stale` select enabled
    /// agents by heartbeat age, judged after paging, so such a page may hold fewer rows
    /// than `limit` (even none) and still have a `next_cursor`.
    #[oai(
        path = "/agents",
        method = "get",
        operation_id = "listAgents",
        tag = "Tag::Agents"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list_agents(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        /// Only agents in this cluster.
        cluster_name: Query<Option<String>>,
        /// Only agents with this status.
        status: Query<Option<AgentStatusDto>>,
        /// Rows per page, 1-1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// `asc` (default) or `desc`.
        order: Query<Option<OrderParam>>,
    ) -> ApiResult<AgentPageResponse> {
        let page = page(limit, cursor, order)?;
        let query = AgentQuery {
            cluster_name: cluster_name.0,
            status: status.0.map(Into::into),
        };
        let agents = state
            .control_plane
            .list_agents(&auth.0, &query, &page)
            .await?;
        Ok(AgentPageResponse::Ok(Json(agents.into())))
    }

    /// Get an agent (admin, or the agent itself).
    #[oai(
        path = "/agents/:id",
        method = "get",
        operation_id = "getAgent",
        tag = "Tag::Agents"
    )]
    async fn get_agent(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<AgentResponse> {
        let agent = state.control_plane.get_agent(&auth.0, id.0.into()).await?;
        Ok(AgentResponse::Ok(Json(agent.into())))
    }

    /// Rename, move or enable/disable an agent (admin).
    ///
    /// A disabled agent gets 403 `agent_inactive` from its target state.
    #[oai(
        path = "/agents/:id",
        method = "patch",
        operation_id = "updateAgent",
        tag = "Tag::Agents"
    )]
    async fn update_agent(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        body: Json<UpdateAgentRequest>,
    ) -> ApiResult<AgentResponse> {
        let agent = state
            .control_plane
            .update_agent(&auth.0, id.0.into(), body.0.into())
            .await?;
        Ok(AgentResponse::Ok(Json(agent.into())))
    }

    /// Delete an agent and revoke its keys (admin).
    ///
    /// Its targets stay, so re-registering does not silently drop workloads. The
    /// revocation takes effect at once on this replica, and within the key cache TTL on
    /// others.
    #[oai(
        path = "/agents/:id",
        method = "delete",
        operation_id = "deleteAgent",
        tag = "Tag::Agents"
    )]
    async fn delete_agent(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<AgentDeleted> {
        state
            .control_plane
            .delete_agent(&auth.0, id.0.into())
            .await?;
        Ok(AgentDeleted::NoContent)
    }

    /// Issue a new key for an agent, revoking its previous keys.
    ///
    /// Admin, or the agent itself (whose current key stops working at once on this
    /// replica). The new key is in this answer only.
    #[oai(
        path = "/agents/:id/rotate-pak",
        method = "post",
        operation_id = "rotateAgentKey",
        tag = "Tag::Agents"
    )]
    async fn rotate_agent_key(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<AgentKeyRotated> {
        let key = state
            .control_plane
            .rotate_agent_key(&auth.0, id.0.into())
            .await?;
        Ok(AgentKeyRotated::Ok(Json(RotatedAgentKey {
            agent_id: id.0,
            pak: key.expose().to_owned(),
        })))
    }

    /// Report that the agent is alive, and optionally its capabilities (only the agent
    /// itself).
    ///
    /// The beat is held in memory and written in a batch within
    /// `agents.heartbeat_flush_millis`; the agent shows as active at once. Capabilities,
    /// when given, replace the stored ones: at most 100 feature names of 1-253
    /// characters, `extra` at most 64 KiB serialized (422 otherwise).
    #[oai(
        path = "/agents/:id/heartbeat",
        method = "post",
        operation_id = "sendHeartbeat",
        tag = "Tag::Agents"
    )]
    async fn heartbeat(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        body: Json<HeartbeatRequest>,
    ) -> ApiResult<HeartbeatRecorded> {
        let agent_id = AgentId::from(id.0);
        let capabilities = body.0.capabilities.map(Capabilities::from);
        state
            .control_plane
            .record_heartbeat(&auth.0, agent_id, capabilities)?;
        state.metrics.observe_heartbeat(agent_id.0);
        Ok(HeartbeatRecorded::NoContent)
    }

    /// The agent's target state (the agent itself, or admin).
    ///
    /// Answers with a strong `ETag`. With `If-None-Match` naming the current ETag the
    /// answer is 304 without a body; adding `?wait=N` holds the request until the
    /// target state changes (200) or N seconds pass (304). A disabled agent gets 403
    /// `agent_inactive`.
    #[oai(
        path = "/agents/:id/target-state",
        method = "get",
        operation_id = "getTargetState",
        tag = "Tag::Agents"
    )]
    async fn target_state(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        /// Seconds to wait for a change when `If-None-Match` names the current state:
        /// 0 to `agents.long_poll_max_secs` (60 by default; a server may be configured
        /// up to 3600, the maximum stated here). Beyond the server's setting: 400
        /// `invalid_parameter`.
        wait: Query<Option<WaitSecs>>,
        /// The ETag of the state the caller has.
        #[oai(name = "If-None-Match")]
        if_none_match: Header<Option<String>>,
        deferral: Data<&Deferral>,
    ) -> ApiResult<TargetStateResponse> {
        let agent = AgentId::from(id.0);
        let caller = auth.0;
        let max_wait = state.control_plane.settings().long_poll_max.as_secs();
        let wait = match wait.0 {
            None => 0,
            Some(WaitSecs(secs)) if secs <= max_wait => secs,
            Some(_) => {
                return Err(ApiError::bad_request(
                    "invalid_parameter",
                    format!("wait must be between 0 and {max_wait} seconds"),
                ));
            }
        };
        let held = state.control_plane.target_state(&caller, agent).await?;
        let known = if_none_match.0.as_deref();
        if !known.is_some_and(|known| etag_matches(known, &held.etag)) {
            return Ok(TargetStateResponse::full(&held));
        }
        if wait == 0 {
            return Ok(TargetStateResponse::not_modified(&held));
        }
        // Everything is checked: the wait runs after the request is dropped, so a
        // parked agent holds only what its answer needs (see `crate::deferred`).
        let waiting = state.metrics.watcher();
        let control_plane = state.control_plane.clone();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(wait);
        // What the handler returns is never sent: `Deferred` answers with the deferred
        // response instead. It is the answer a wait that saw no change would give.
        let unchanged = TargetStateResponse::not_modified(&held);
        deferral.defer(async move {
            let _waiting = waiting;
            match control_plane
                .wait_for_change(&caller, agent, &held.etag, deadline)
                .await
            {
                Ok(Poll::Changed(current)) => TargetStateResponse::full(&current).into_response(),
                Ok(Poll::Unchanged(current)) => {
                    TargetStateResponse::not_modified(&current).into_response()
                }
                Err(err) => ApiError::from(err).into_response(),
            }
        });
        Ok(unchanged)
    }
}
