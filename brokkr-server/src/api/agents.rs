//! Agents: registration (`/agents`, `/agents/{id}`, `/agents/{id}/rotate-pak`), their
//! heartbeats (`/agents/{id}/heartbeat`) and target states (`/agents/{id}/target-state`).
//!
//! Admin manages agents; an agent may read itself, rotate its own key, beat, and fetch
//! its own target state (another agent's is a 403, like every agent-only resource);
//! generators get 403. An agent's `status` is `inactive` when an admin disabled it,
//! else `active` or `stale` by heartbeat age.
//!
//! The two calls every agent makes all the time cost no query in the steady state: a
//! heartbeat lands in the in-memory [`HeartbeatBuffer`](crate::heartbeat::HeartbeatBuffer)
//! (written in batches), and a target-state fetch is answered from the
//! [`TargetStateCache`](crate::target_cache::TargetStateCache), whose JSON body is
//! serialized once per change.

use std::collections::BTreeMap;
use std::marker::PhantomData;

use brokkr_core::{
    Agent, AgentFilter, AgentId, AgentStatus, AgentUpdate, Capabilities, KeyOwner, Liveness,
    NewAgent, Pak, TargetAction, TargetState, TargetStateEntry,
};
use chrono::{DateTime, TimeDelta, Utc};
use poem::web::Data;
use poem_openapi::param::{Header, Path, Query};
use poem_openapi::payload::{Json, Payload};
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use uuid::Uuid;

use crate::api::Tag;
use crate::api::dto::{DeploymentObjectDto, OrderParam, page};
use crate::auth::{BearerAuth, Identity};
use crate::error::{ApiError, ApiResult};
use crate::page_type;
use crate::state::AppState;
use brokkr_core::runtime::{CachedTargetState, Poll};

// ---------------------------------------------------------------------------------------
// DTOs

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

/// What an agent reports about its cluster.
#[derive(Debug, Clone, Default, PartialEq, Object)]
#[oai(rename = "Capabilities")]
pub struct CapabilitiesDto {
    /// The API server's `gitVersion`, e.g. `v1.33.2`.
    #[oai(skip_serializing_if_is_none)]
    pub kubernetes_version: Option<String>,
    /// Number of nodes.
    #[oai(skip_serializing_if_is_none)]
    pub node_count: Option<u32>,
    /// Allocatable CPU summed over nodes, in millicores.
    #[oai(skip_serializing_if_is_none)]
    pub allocatable_cpu_millis: Option<u64>,
    /// Allocatable memory summed over nodes, in bytes.
    #[oai(skip_serializing_if_is_none)]
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

/// An agent with what its displayed status depends on: a heartbeat not yet written,
/// the time and the staleness bound.
struct AgentView {
    agent: Agent,
    pending_beat: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
    stale_after: TimeDelta,
}

impl AgentView {
    fn new(state: &AppState, agent: Agent, now: DateTime<Utc>) -> Self {
        let secs = i64::try_from(state.config.agents.stale_after_secs).unwrap_or(i64::MAX);
        Self {
            pending_beat: state.control_plane.heartbeats().pending_at(agent.id),
            agent,
            now,
            stale_after: TimeDelta::try_seconds(secs).unwrap_or(TimeDelta::MAX),
        }
    }

    /// The status shown: the admin's switch first, then heartbeat age.
    fn status(&self) -> AgentStatusDto {
        if self.agent.status == AgentStatus::Inactive {
            return AgentStatusDto::Inactive;
        }
        match self.agent.liveness(self.now, self.stale_after) {
            Liveness::Active => AgentStatusDto::Active,
            Liveness::Stale | Liveness::NeverSeen => AgentStatusDto::Stale,
        }
    }
}

impl From<AgentView> for AgentDto {
    fn from(mut view: AgentView) -> Self {
        // A beat still in the buffer is newer news than the stored one.
        view.agent.last_heartbeat = view.agent.last_heartbeat.max(view.pending_beat);
        let status = view.status();
        let a = view.agent;
        Self {
            id: a.id.into(),
            name: a.name,
            cluster_name: a.cluster_name,
            status,
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
    pub name: String,
    /// The cluster it runs in.
    pub cluster_name: String,
    /// Initial labels.
    #[oai(default)]
    pub labels: BTreeMap<String, String>,
    /// Initial annotations.
    #[oai(default)]
    pub annotations: BTreeMap<String, String>,
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
    pub name: Option<String>,
    /// New cluster name.
    pub cluster_name: Option<String>,
    /// `false` disables the agent (it may no longer fetch its target state).
    pub enabled: Option<bool>,
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
    pub capabilities: Option<CapabilitiesDto>,
}

/// What the agent should do with one stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "TargetAction", rename_all = "snake_case")]
pub enum TargetActionDto {
    /// Make the cluster match the deployment object.
    Apply,
    /// Remove every object of the stack (deleted, or unassigned from this agent).
    Remove,
}

impl From<TargetAction> for TargetActionDto {
    fn from(action: TargetAction) -> Self {
        match action {
            TargetAction::Apply => Self::Apply,
            TargetAction::Remove => Self::Remove,
        }
    }
}

/// One stack in an agent's target state.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "TargetStateEntry")]
pub struct TargetStateEntryDto {
    /// The stack.
    pub stack_id: Uuid,
    /// Its name, for logs.
    pub stack_name: String,
    /// Apply or remove.
    pub action: TargetActionDto,
    /// The deployment object to apply, or whose stack to remove.
    pub deployment_object: DeploymentObjectDto,
}

impl From<&TargetStateEntry> for TargetStateEntryDto {
    fn from(e: &TargetStateEntry) -> Self {
        Self {
            stack_id: e.stack_id.into(),
            stack_name: e.stack_name.clone(),
            action: e.action.into(),
            deployment_object: e.deployment_object.clone().into(),
        }
    }
}

/// An agent's whole target state: a state, not a queue.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "TargetState")]
pub struct TargetStateDto {
    /// The agent.
    pub agent_id: Uuid,
    /// The strong ETag of this state, without quotes (also in the `ETag` header).
    pub etag: String,
    /// One entry per stack, ordered by stack id.
    pub entries: Vec<TargetStateEntryDto>,
}

impl TargetStateDto {
    fn new(state: &TargetState, etag: &str) -> Self {
        Self {
            agent_id: state.agent_id.into(),
            etag: etag.to_owned(),
            entries: state.entries.iter().map(Into::into).collect(),
        }
    }
}

/// A JSON body serialized once and sent many times, documented as `T`.
pub struct CachedJson<T> {
    bytes: Vec<u8>,
    schema: PhantomData<fn() -> T>,
}

impl<T> CachedJson<T> {
    fn new(bytes: Vec<u8>) -> Self {
        Self {
            bytes,
            schema: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for CachedJson<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CachedJson({} bytes)", self.bytes.len())
    }
}

impl<T: Type> Payload for CachedJson<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T> poem::IntoResponse for CachedJson<T> {
    fn into_response(self) -> poem::Response {
        poem::Response::builder()
            .content_type("application/json; charset=utf-8")
            .body(self.bytes)
    }
}

// ---------------------------------------------------------------------------------------
// Responses

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

/// Answer of `GET /agents/{id}/target-state`.
#[derive(Debug, ApiResponse)]
pub enum TargetStateResponse {
    /// The target state, with its strong ETag.
    #[oai(status = 200)]
    Ok(
        CachedJson<TargetStateDto>,
        /// The state's strong ETag, quoted.
        #[oai(header = "ETag")]
        String,
    ),
    /// The state still has the ETag given in `If-None-Match`.
    #[oai(status = 304)]
    NotModified(
        /// The state's strong ETag, quoted.
        #[oai(header = "ETag")]
        String,
    ),
}

// ---------------------------------------------------------------------------------------
// Helpers

/// 403 unless admin or the agent itself; for admin, 404 for an unknown agent (an
/// agent's valid key already proves that it exists, so it costs no query).
pub(crate) async fn require_known_agent(
    state: &AppState,
    identity: &Identity,
    agent: AgentId,
) -> ApiResult<()> {
    identity.require_agent_or_admin(agent)?;
    if *identity == Identity::Admin {
        state.store.get_agent(agent).await?;
    }
    Ok(())
}

/// Whether an `If-None-Match` value names `etag` (weak comparison, as RFC 9110 asks
/// for this header; `*` matches any state). Lenient about missing quotes.
fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match.split(',').map(str::trim).any(|tag| {
        if tag == "*" {
            return true;
        }
        let tag = tag.strip_prefix("W/").unwrap_or(tag);
        let tag = tag
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(tag);
        tag == etag
    })
}

fn quoted(etag: &str) -> String {
    format!("\"{etag}\"")
}

fn full_answer(entry: &CachedTargetState) -> TargetStateResponse {
    let json = entry.json.get_or_init(|| {
        serde_json::to_vec(&TargetStateDto::new(&entry.state, &entry.etag).to_json())
            .expect("a serde_json::Value always serializes")
    });
    TargetStateResponse::Ok(CachedJson::new(json.clone()), quoted(&entry.etag))
}

// ---------------------------------------------------------------------------------------
// Operations

/// Agent operations.
pub struct AgentsApi;

#[OpenApi]
impl AgentsApi {
    /// Register an agent and issue its first key (admin).
    ///
    /// The key is in this answer only.
    #[oai(path = "/agents", method = "post", tag = "Tag::Agents")]
    async fn create_agent(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        body: Json<CreateAgentRequest>,
    ) -> ApiResult<AgentCreated> {
        auth.0.require_admin()?;
        let body = body.0;
        let key = Pak::generate();
        let agent = state
            .store
            .create_agent(
                &auth.0.actor(),
                NewAgent {
                    name: body.name,
                    cluster_name: body.cluster_name,
                    labels: body.labels,
                    annotations: body.annotations,
                    key: key.stored(),
                },
            )
            .await?;
        // Forget a cached "unknown key" answer for the new short id.
        state
            .control_plane
            .forget_keys(KeyOwner::Agent(agent.id), Some(key.short_id()));
        state
            .control_plane
            .placement_signals()
            .agent_changed(agent.id);
        let agent = AgentView::new(&state, agent, Utc::now()).into();
        Ok(AgentCreated::Created(Json(AgentWithKey {
            agent,
            initial_pak: key.expose().to_owned(),
        })))
    }

    /// List agents, ordered by id (admin).
    ///
    /// `status=inactive` selects disabled agents; `active` and `stale` select enabled
    /// agents by heartbeat age, judged after paging, so such a page may hold fewer rows
    /// than `limit` (even none) and still have a `next_cursor`.
    #[oai(path = "/agents", method = "get", tag = "Tag::Agents")]
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
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// `asc` (default) or `desc`.
        order: Query<Option<OrderParam>>,
    ) -> ApiResult<AgentPageResponse> {
        auth.0.require_admin()?;
        let page = page(limit, cursor, order)?;
        let filter = AgentFilter {
            cluster_name: cluster_name.0,
            status: status.0.map(|s| match s {
                AgentStatusDto::Inactive => AgentStatus::Inactive,
                AgentStatusDto::Active | AgentStatusDto::Stale => AgentStatus::Active,
            }),
            include_deleted: false,
        };
        let agents = state.store.list_agents(&filter, &page).await?;
        let now = Utc::now();
        let mut page: AgentPage = agents.map(|a| AgentView::new(&state, a, now)).into();
        if let Some(wanted) = status.0 {
            page.items.retain(|agent| agent.status == wanted);
        }
        Ok(AgentPageResponse::Ok(Json(page)))
    }

    /// Get an agent (admin, or the agent itself).
    #[oai(path = "/agents/:id", method = "get", tag = "Tag::Agents")]
    async fn get_agent(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<AgentResponse> {
        let id = AgentId::from(id.0);
        auth.0.require_agent_or_admin(id)?;
        let agent = state.store.get_agent(id).await?;
        Ok(AgentResponse::Ok(Json(
            AgentView::new(&state, agent, Utc::now()).into(),
        )))
    }

    /// Rename, move or enable/disable an agent (admin).
    ///
    /// A disabled agent gets 403 `agent_inactive` from its target state.
    #[oai(path = "/agents/:id", method = "patch", tag = "Tag::Agents")]
    async fn update_agent(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        body: Json<UpdateAgentRequest>,
    ) -> ApiResult<AgentResponse> {
        auth.0.require_admin()?;
        let id = AgentId::from(id.0);
        let body = body.0;
        let update = AgentUpdate {
            name: body.name,
            cluster_name: body.cluster_name,
            status: body.enabled.map(|enabled| {
                if enabled {
                    AgentStatus::Active
                } else {
                    AgentStatus::Inactive
                }
            }),
        };
        let agent = state
            .store
            .update_agent(&auth.0.actor(), id, update)
            .await?;
        // The change notification does this too; doing it now makes it immediate here.
        state.control_plane.target_states().invalidate(id);
        state.control_plane.placement_signals().agent_changed(id);
        Ok(AgentResponse::Ok(Json(
            AgentView::new(&state, agent, Utc::now()).into(),
        )))
    }

    /// Delete an agent and revoke its keys (admin).
    ///
    /// Its targets stay, so re-registering does not silently drop workloads. The
    /// revocation takes effect at once on this replica, and within the key cache TTL on
    /// others.
    #[oai(path = "/agents/:id", method = "delete", tag = "Tag::Agents")]
    async fn delete_agent(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<AgentDeleted> {
        auth.0.require_admin()?;
        let id = AgentId::from(id.0);
        state.store.delete_agent(&auth.0.actor(), id).await?;
        state.control_plane.forget_keys(KeyOwner::Agent(id), None);
        state.control_plane.target_states().invalidate(id);
        // Its placements go to other agents.
        state.control_plane.placement_signals().agent_changed(id);
        Ok(AgentDeleted::NoContent)
    }

    /// Issue a new key for an agent, revoking its previous keys.
    ///
    /// Admin, or the agent itself (whose current key stops working at once on this
    /// replica). The new key is in this answer only.
    #[oai(path = "/agents/:id/rotate-pak", method = "post", tag = "Tag::Agents")]
    async fn rotate_agent_key(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<AgentKeyRotated> {
        let id = AgentId::from(id.0);
        auth.0.require_agent_or_admin(id)?;
        let key = Pak::generate();
        let owner = KeyOwner::Agent(id);
        state
            .store
            .rotate_api_key(&auth.0.actor(), owner, key.stored())
            .await?;
        state.control_plane.forget_keys(owner, Some(key.short_id()));
        Ok(AgentKeyRotated::Ok(Json(RotatedAgentKey {
            agent_id: id.into(),
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
    #[oai(path = "/agents/:id/heartbeat", method = "post", tag = "Tag::Agents")]
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
            .record_heartbeat(&auth.0.actor(), agent_id, capabilities)?;
        state.metrics.observe_heartbeat(agent_id.0);
        Ok(HeartbeatRecorded::NoContent)
    }

    /// The agent's target state (the agent itself, or admin).
    ///
    /// Answers with a strong `ETag`. With `If-None-Match` naming the current ETag the
    /// answer is 304 without a body; adding `?wait=N` holds the request until the
    /// target state changes (200) or N seconds pass (304). A disabled agent gets 403
    /// `agent_inactive`.
    #[oai(path = "/agents/:id/target-state", method = "get", tag = "Tag::Agents")]
    async fn target_state(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        /// Seconds to wait for a change when `If-None-Match` names the current state,
        /// 0 to `agents.long_poll_max_secs` (60 by default).
        wait: Query<Option<u64>>,
        /// The ETag of the state the caller has.
        #[oai(name = "If-None-Match")]
        if_none_match: Header<Option<String>>,
    ) -> ApiResult<TargetStateResponse> {
        let agent = AgentId::from(id.0);
        let caller = auth.0.actor();
        let max_wait = state.control_plane.settings().long_poll_max.as_secs();
        let wait = match wait.0 {
            None => 0,
            Some(secs) if secs <= max_wait => secs,
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
            return Ok(full_answer(&held));
        }
        if wait == 0 {
            return Ok(TargetStateResponse::NotModified(quoted(&held.etag)));
        }
        let _waiting = state.metrics.watcher();
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(wait);
        match state
            .control_plane
            .wait_for_change(&caller, agent, &held.etag, deadline)
            .await?
        {
            Poll::Changed(current) => Ok(full_answer(&current)),
            Poll::Unchanged(current) => Ok(TargetStateResponse::NotModified(quoted(&current.etag))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_forms() {
        let etag = "0123abcd";
        for header in [
            "\"0123abcd\"",
            "W/\"0123abcd\"",
            "\"x\", \"0123abcd\"",
            "*",
            "0123abcd",
        ] {
            assert!(etag_matches(header, etag), "{header}");
        }
        for header in ["\"x\"", "", "\"0123abc\"", "W/\"0123abcde\""] {
            assert!(!etag_matches(header, etag), "{header}");
        }
    }

    #[test]
    fn only_the_agent_itself_beats() {
        let (me, other) = (AgentId::new(), AgentId::new());
        assert!(Identity::Agent(me).require_agent(me).is_ok());
        for who in [
            Identity::Admin,
            Identity::Agent(other),
            Identity::Generator(brokkr_core::GeneratorId::new()),
        ] {
            assert_eq!(who.require_agent(me).unwrap_err().status(), 403);
        }
    }

    #[test]
    fn the_spec_declares_etag_304_and_if_none_match() {
        let spec: serde_json::Value =
            serde_json::from_str(&crate::app::openapi_json()).expect("the spec is JSON");
        let op = &spec["paths"]["/agents/{id}/target-state"]["get"];
        // poem-openapi writes header names upper-cased; HTTP ignores their case.
        for status in ["200", "304"] {
            assert!(
                op["responses"][status]["headers"]["ETAG"].is_object(),
                "{op}"
            );
        }
        let params = op["parameters"].as_array().expect("parameters");
        assert!(
            params
                .iter()
                .any(|p| p["name"] == "If-None-Match" && p["in"] == "header")
        );
        let schema = &op["responses"]["200"]["content"]["application/json; charset=utf-8"];
        assert_eq!(
            schema["schema"]["$ref"], "#/components/schemas/TargetState",
            "{op}"
        );
    }

    mod http {
        use std::sync::Arc;
        use std::time::Duration;

        use brokkr_core::testing::MemoryStore;
        use brokkr_core::testing::conformance::config_map_yaml;
        use brokkr_core::{Actor, NewDeploymentObject, NewStack, Store};
        use poem::http::StatusCode;
        use poem::test::{TestClient, TestResponse};
        use serde_json::{Value, json};

        use crate::config::Config;
        use crate::state::AppState;

        async fn body(resp: TestResponse) -> Value {
            resp.0.into_body().into_json().await.unwrap()
        }

        fn etag_of(resp: &TestResponse) -> String {
            resp.0.headers()["etag"].to_str().unwrap().to_owned()
        }

        #[tokio::test]
        async fn registration_heartbeat_and_target_state() {
            let store = Arc::new(MemoryStore::new());
            let admin = crate::serve::ensure_admin_key(store.as_ref())
                .await
                .unwrap()
                .unwrap();
            let state = AppState::new(store.clone(), Config::default(), Default::default());
            let _background = state.start_background();
            let cli = TestClient::new(crate::app::app(state.clone()));
            let admin = format!("Bearer {}", admin.expose());

            let resp = cli
                .post("/api/v1/agents")
                .header("authorization", &admin)
                .body_json(&json!({"name": "a", "cluster_name": "c", "labels": {"env": "prod"}}))
                .send()
                .await;
            resp.assert_status(StatusCode::CREATED);
            let created = body(resp).await;
            assert_eq!(created["agent"]["status"], "stale");
            assert_eq!(created["agent"]["enabled"], true);
            let id = created["agent"]["id"].as_str().unwrap().to_owned();
            let agent_key = format!("Bearer {}", created["initial_pak"].as_str().unwrap());

            let who = cli
                .post("/api/v1/auth/pak")
                .header("authorization", &agent_key)
                .send()
                .await;
            who.assert_status_is_ok();
            assert_eq!(body(who).await, json!({"role": "agent", "id": id}));

            // A beat shows at once, before it is written.
            let resp = cli
                .post(format!("/api/v1/agents/{id}/heartbeat"))
                .header("authorization", &agent_key)
                .body_json(&json!({"capabilities": {"kubernetes_version": "v1.33.2", "features": ["gpu"]}}))
                .send()
                .await;
            resp.assert_status(StatusCode::NO_CONTENT);
            let resp = cli
                .get(format!("/api/v1/agents/{id}"))
                .header("authorization", &agent_key)
                .send()
                .await;
            resp.assert_status_is_ok();
            assert_eq!(body(resp).await["status"], "active");
            let resp = cli
                .post(format!("/api/v1/agents/{id}/heartbeat"))
                .header("authorization", &admin)
                .body_json(&json!({}))
                .send()
                .await;
            resp.assert_status(StatusCode::FORBIDDEN);

            // Target state: 200 with an ETag, then 304 for it.
            let url = format!("/api/v1/agents/{id}/target-state");
            let resp = cli
                .get(&url)
                .header("authorization", &agent_key)
                .send()
                .await;
            resp.assert_status_is_ok();
            let etag = etag_of(&resp);
            let first = body(resp).await;
            assert_eq!(format!("\"{}\"", first["etag"].as_str().unwrap()), etag);
            assert_eq!(first["entries"], json!([]));
            let resp = cli
                .get(&url)
                .header("authorization", &agent_key)
                .header("if-none-match", &etag)
                .send()
                .await;
            resp.assert_status(StatusCode::NOT_MODIFIED);
            assert_eq!(etag_of(&resp), etag);
            let resp = cli
                .get(format!("{url}?wait=61"))
                .header("authorization", &agent_key)
                .send()
                .await;
            resp.assert_status(StatusCode::BAD_REQUEST);

            // A long poll is woken by a new deployment object.
            let stack = store
                .create_stack(
                    &Actor::Admin,
                    NewStack {
                        name: "s".into(),
                        ..Default::default()
                    },
                )
                .await
                .unwrap();
            let poll = {
                let (cli, url, key, etag) = (&cli, &url, &agent_key, &etag);
                async move {
                    cli.get(format!("{url}?wait=30"))
                        .header("authorization", key)
                        .header("if-none-match", etag)
                        .send()
                        .await
                }
            };
            let change = async {
                tokio::time::sleep(Duration::from_millis(100)).await;
                let object =
                    NewDeploymentObject::from_yaml(stack.id, config_map_yaml("s", "1")).unwrap();
                store
                    .append_deployment_object(&Actor::Admin, object)
                    .await
                    .unwrap();
                store
                    .assign_stack(
                        &Actor::Admin,
                        id.parse::<uuid::Uuid>().unwrap().into(),
                        stack.id,
                    )
                    .await
                    .unwrap();
            };
            let (resp, ()) = tokio::time::timeout(Duration::from_secs(10), async {
                tokio::join!(poll, change)
            })
            .await
            .expect("the long poll answers when the state changes");
            resp.assert_status_is_ok();
            assert_ne!(etag_of(&resp), etag);
            let changed = body(resp).await;
            assert_eq!(changed["entries"][0]["action"], "apply");
            assert_eq!(changed["entries"][0]["deployment_object"]["sequence_id"], 1);

            // A short wait with nothing changing answers 304.
            let resp = cli
                .get(format!("{url}?wait=1"))
                .header("authorization", &agent_key)
                .header(
                    "if-none-match",
                    format!("\"{}\"", changed["etag"].as_str().unwrap()),
                )
                .send()
                .await;
            resp.assert_status(StatusCode::NOT_MODIFIED);

            // Disabled: the agent may not fetch, admin still may.
            let resp = cli
                .patch(format!("/api/v1/agents/{id}"))
                .header("authorization", &admin)
                .body_json(&json!({"enabled": false}))
                .send()
                .await;
            resp.assert_status_is_ok();
            assert_eq!(body(resp).await["status"], "inactive");
            let resp = cli
                .get(&url)
                .header("authorization", &agent_key)
                .send()
                .await;
            resp.assert_status(StatusCode::FORBIDDEN);
            assert_eq!(body(resp).await["code"], "agent_inactive");
            cli.get(&url)
                .header("authorization", &admin)
                .send()
                .await
                .assert_status_is_ok();

            let resp = cli
                .get("/api/v1/agents?status=inactive")
                .header("authorization", &admin)
                .send()
                .await;
            resp.assert_status_is_ok();
            assert_eq!(body(resp).await["items"].as_array().unwrap().len(), 1);
            let resp = cli
                .get("/api/v1/agents?status=bogus")
                .header("authorization", &admin)
                .send()
                .await;
            resp.assert_status(StatusCode::BAD_REQUEST);

            // Rotation by the agent itself: the old key stops working at once.
            let resp = cli
                .post(format!("/api/v1/agents/{id}/rotate-pak"))
                .header("authorization", &agent_key)
                .send()
                .await;
            resp.assert_status_is_ok();
            let new_key = format!("Bearer {}", body(resp).await["pak"].as_str().unwrap());
            let resp = cli
                .post("/api/v1/auth/pak")
                .header("authorization", &agent_key)
                .send()
                .await;
            resp.assert_status(StatusCode::UNAUTHORIZED);
            let resp = cli
                .post("/api/v1/auth/pak")
                .header("authorization", &new_key)
                .send()
                .await;
            resp.assert_status_is_ok();

            // Deletion revokes the keys.
            let resp = cli
                .delete(format!("/api/v1/agents/{id}"))
                .header("authorization", &admin)
                .send()
                .await;
            resp.assert_status(StatusCode::NO_CONTENT);
            let resp = cli
                .post("/api/v1/auth/pak")
                .header("authorization", &new_key)
                .send()
                .await;
            resp.assert_status(StatusCode::UNAUTHORIZED);
            cli.get(&url)
                .header("authorization", &admin)
                .send()
                .await
                .assert_status(StatusCode::NOT_FOUND);
        }
    }
}
