//! Agent events, the outcomes of agents' attempts: `/agents/{id}/events` and
//! `/agent-events`.
//!
//! Only an agent reports its own events; it and admin read them; `/agent-events`
//! across agents is admin's. Reports are idempotent on the event id, which the agent
//! chooses, so a retried report after a lost answer stores nothing new. The rules are
//! the [`ControlPlane`](brokkr_core::runtime::ControlPlane)'s; each handler parses,
//! calls it and maps the answer.

use brokkr_core::{
    AgentEvent, AgentEventFilter, AgentEventId, AgentId, EventStatus, EventType, NewAgentEvent,
};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use uuid::Uuid;

use crate::api::Tag;
use crate::api::dto::{OrderParam, page};
use crate::api::fields::no_null;
use crate::auth::BearerAuth;
use crate::error::ApiResult;
use crate::page_type;
use crate::state::AppState;

// ---------------------------------------------------------------------------------------
// DTOs

/// What an agent tried to do with a deployment object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "EventType", rename_all = "snake_case")]
pub enum EventTypeDto {
    /// Apply its objects.
    Apply,
    /// Remove the stack's objects.
    Delete,
    /// A periodic re-apply of an unchanged deployment object found objects changed in
    /// the cluster by someone else, and put them back (the message names them).
    Drift,
}

impl From<EventType> for EventTypeDto {
    fn from(t: EventType) -> Self {
        match t {
            EventType::Apply => Self::Apply,
            EventType::Delete => Self::Delete,
            EventType::Drift => Self::Drift,
        }
    }
}

impl From<EventTypeDto> for EventType {
    fn from(t: EventTypeDto) -> Self {
        match t {
            EventTypeDto::Apply => Self::Apply,
            EventTypeDto::Delete => Self::Delete,
            EventTypeDto::Drift => Self::Drift,
        }
    }
}

/// How an attempt went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "EventStatus", rename_all = "snake_case")]
pub enum EventStatusDto {
    /// Everything was applied or removed.
    Success,
    /// Something failed; see the message.
    Failure,
}

impl From<EventStatus> for EventStatusDto {
    fn from(s: EventStatus) -> Self {
        match s {
            EventStatus::Success => Self::Success,
            EventStatus::Failure => Self::Failure,
        }
    }
}

impl From<EventStatusDto> for EventStatus {
    fn from(s: EventStatusDto) -> Self {
        match s {
            EventStatusDto::Success => Self::Success,
            EventStatusDto::Failure => Self::Failure,
        }
    }
}

/// The outcome of one attempt by one agent to apply or remove one deployment object.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "AgentEvent")]
pub struct AgentEventDto {
    /// Its id (chosen by the agent, so a retried report is recognised).
    pub id: Uuid,
    /// The reporting agent.
    pub agent_id: Uuid,
    /// The deployment object it acted on.
    pub deployment_object_id: Uuid,
    /// That object's stack.
    pub stack_id: Uuid,
    /// What it tried.
    pub event_type: EventTypeDto,
    /// How it went.
    pub status: EventStatusDto,
    /// Details, e.g. the Kubernetes reason of a failure.
    #[oai(skip_serializing_if_is_none)]
    pub message: Option<String>,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

impl From<AgentEvent> for AgentEventDto {
    fn from(e: AgentEvent) -> Self {
        Self {
            id: e.id.into(),
            agent_id: e.agent_id.into(),
            deployment_object_id: e.deployment_object_id.into(),
            stack_id: e.stack_id.into(),
            event_type: e.event_type.into(),
            status: e.status.into(),
            message: e.message,
            created_at: e.created_at,
        }
    }
}

page_type!(
    /// A page of agent events, ordered by id (time-ordered).
    AgentEventPage,
    AgentEventDto
);

/// Body of `POST /agents/{id}/events`.
#[derive(Debug, Clone, Object)]
pub struct CreateAgentEventRequest {
    /// A UUID the agent chooses so that a retried report is recognised (UUID v7
    /// recommended); the server generates one when absent.
    #[oai(deserialize_with = "no_null")]
    pub id: Option<Uuid>,
    /// The deployment object acted on.
    pub deployment_object_id: Uuid,
    /// What the agent tried.
    pub event_type: EventTypeDto,
    /// How it went.
    pub status: EventStatusDto,
    /// Details, at most 64 KiB. Leave it out when there are none: `null` is taken as
    /// absent only for older agents, until API v2 (deprecated).
    #[oai(nullable)]
    pub message: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Responses

/// Answer of `POST /agents/{id}/events`.
#[derive(Debug, ApiResponse)]
pub enum AgentEventCreated {
    /// The event as stored. A report repeating the id of a stored event of the same
    /// agent stores nothing and answers 201 with the stored event.
    #[oai(status = 201)]
    Created(Json<AgentEventDto>),
}

/// A page of agent events.
#[derive(Debug, ApiResponse)]
pub enum AgentEventPageResponse {
    /// The page.
    #[oai(status = 200)]
    Ok(Json<AgentEventPage>),
}

// ---------------------------------------------------------------------------------------
// Helpers

/// The filters every event listing takes, as given in the query.
struct EventQuery {
    stack_id: Option<Uuid>,
    deployment_object_id: Option<Uuid>,
    status: Option<EventStatusDto>,
    event_type: Option<EventTypeDto>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
}

impl EventQuery {
    /// The store's filter; `agent_id` is set by the listing that needs it.
    fn filter(self, agent_id: Option<AgentId>) -> AgentEventFilter {
        AgentEventFilter {
            agent_id,
            stack_id: self.stack_id.map(Into::into),
            deployment_object_id: self.deployment_object_id.map(Into::into),
            event_type: self.event_type.map(Into::into),
            status: self.status.map(Into::into),
            since: self.since,
            until: self.until,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Operations

/// Agent-event operations.
pub struct EventsApi;

#[OpenApi]
impl EventsApi {
    /// Report the outcome of an attempt (only the agent itself).
    ///
    /// Idempotent on `id`: repeating a report stores nothing new and answers the stored
    /// event (201 as well); an id of another agent's event is a 409. A successful
    /// `delete` of a stack awaiting removal retires it from the agent's target state.
    #[oai(
        path = "/agents/:id/events",
        method = "post",
        operation_id = "createAgentEvent",
        tag = "Tag::AgentEvents"
    )]
    async fn create_agent_event(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        body: Json<CreateAgentEventRequest>,
    ) -> ApiResult<AgentEventCreated> {
        let body = body.0;
        let event = NewAgentEvent {
            id: body.id.map_or_else(AgentEventId::new, AgentEventId::from),
            agent_id: id.0.into(),
            deployment_object_id: body.deployment_object_id.into(),
            event_type: body.event_type.into(),
            status: body.status.into(),
            message: body.message,
        };
        let event = state
            .control_plane
            .record_agent_event(&auth.0, event)
            .await?;
        Ok(AgentEventCreated::Created(Json(event.into())))
    }

    /// List an agent's events, ordered by id (admin, or the agent itself).
    #[oai(
        path = "/agents/:id/events",
        method = "get",
        operation_id = "listAgentEvents",
        tag = "Tag::AgentEvents"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list_agent_events(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        /// Only events about this stack.
        stack_id: Query<Option<Uuid>>,
        /// Only events about this deployment object.
        deployment_object_id: Query<Option<Uuid>>,
        /// `success` or `failure`.
        status: Query<Option<EventStatusDto>>,
        /// `apply`, `delete` or `drift`.
        event_type: Query<Option<EventTypeDto>>,
        /// Created at or after (RFC 3339).
        since: Query<Option<DateTime<Utc>>>,
        /// Created before (RFC 3339).
        until: Query<Option<DateTime<Utc>>>,
        /// Rows per page, 1-1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// `asc` (default) or `desc`.
        order: Query<Option<OrderParam>>,
    ) -> ApiResult<AgentEventPageResponse> {
        let page = page(limit, cursor, order)?;
        let filter = EventQuery {
            stack_id: stack_id.0,
            deployment_object_id: deployment_object_id.0,
            status: status.0,
            event_type: event_type.0,
            since: since.0,
            until: until.0,
        }
        .filter(None);
        let events = state
            .control_plane
            .list_agent_events(&auth.0, id.0.into(), filter, &page)
            .await?;
        Ok(AgentEventPageResponse::Ok(Json(events.into())))
    }

    /// List every agent's events, ordered by id (admin).
    #[oai(
        path = "/agent-events",
        method = "get",
        operation_id = "listAllAgentEvents",
        tag = "Tag::AgentEvents"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list_all_agent_events(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        /// Only events of this agent.
        agent_id: Query<Option<Uuid>>,
        /// Only events about this stack.
        stack_id: Query<Option<Uuid>>,
        /// Only events about this deployment object.
        deployment_object_id: Query<Option<Uuid>>,
        /// `success` or `failure`.
        status: Query<Option<EventStatusDto>>,
        /// `apply`, `delete` or `drift`.
        event_type: Query<Option<EventTypeDto>>,
        /// Created at or after (RFC 3339).
        since: Query<Option<DateTime<Utc>>>,
        /// Created before (RFC 3339).
        until: Query<Option<DateTime<Utc>>>,
        /// Rows per page, 1-1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// `asc` (default) or `desc`.
        order: Query<Option<OrderParam>>,
    ) -> ApiResult<AgentEventPageResponse> {
        let page = page(limit, cursor, order)?;
        let filter = EventQuery {
            stack_id: stack_id.0,
            deployment_object_id: deployment_object_id.0,
            status: status.0,
            event_type: event_type.0,
            since: since.0,
            until: until.0,
        }
        .filter(agent_id.0.map(Into::into));
        let events = state
            .control_plane
            .list_all_agent_events(&auth.0, &filter, &page)
            .await?;
        Ok(AgentEventPageResponse::Ok(Json(events.into())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reports_are_idempotent_and_listed() {
        use std::sync::Arc;

        use brokkr_core::testing::MemoryStore;
        use brokkr_core::testing::conformance::{config_map_yaml, new_agent};
        use brokkr_core::{Actor, NewDeploymentObject, NewStack, Pak, Store};
        use poem::http::StatusCode;
        use poem::test::TestClient;
        use serde_json::{Value, json};

        let store = Arc::new(MemoryStore::new());
        let admin = crate::serve::ensure_admin_key(store.as_ref())
            .await
            .unwrap()
            .unwrap();
        let admin = format!("Bearer {}", admin.expose());
        let key = Pak::generate();
        let agent = store
            .create_agent(&Actor::Admin, new_agent("a", "c", &key))
            .await
            .unwrap();
        let agent_key = format!("Bearer {}", key.expose());
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
        let object = store
            .append_deployment_object(
                &Actor::Admin,
                NewDeploymentObject::from_yaml(stack.id, config_map_yaml("s", "1")).unwrap(),
            )
            .await
            .unwrap();
        // An agent reports only on its own stacks.
        store
            .assign_stack(&Actor::Admin, agent.id, stack.id)
            .await
            .unwrap();
        let state = crate::state::AppState::new(store, Default::default(), Default::default());
        let cli = TestClient::new(crate::app::app(state));
        let url = format!("/api/v1/agents/{}/events", agent.id);
        let event_id = uuid::Uuid::now_v7();
        let report = json!({
            "id": event_id,
            "deployment_object_id": object.id,
            "event_type": "apply",
            "status": "failure",
            "message": "boom",
        });

        let mut answers = Vec::new();
        for _ in 0..2 {
            let resp = cli
                .post(&url)
                .header("authorization", &agent_key)
                .body_json(&report)
                .send()
                .await;
            resp.assert_status(StatusCode::CREATED);
            answers.push(resp.0.into_body().into_json::<Value>().await.unwrap());
        }
        assert_eq!(answers[0], answers[1]);
        assert_eq!(answers[0]["stack_id"], json!(stack.id));

        let too_long = json!({
            "deployment_object_id": object.id,
            "event_type": "apply",
            "status": "success",
            "message": "x".repeat(brokkr_core::runtime::MAX_EVENT_MESSAGE_BYTES + 1),
        });
        let resp = cli
            .post(&url)
            .header("authorization", &agent_key)
            .body_json(&too_long)
            .send()
            .await;
        resp.assert_status(StatusCode::UNPROCESSABLE_ENTITY);
        let resp = cli
            .post(&url)
            .header("authorization", &admin)
            .body_json(&report)
            .send()
            .await;
        resp.assert_status(StatusCode::FORBIDDEN);

        for (path, who) in [
            (format!("{url}?status=failure"), &agent_key),
            ("/api/v1/agent-events?event_type=apply".to_owned(), &admin),
        ] {
            let resp = cli.get(path).header("authorization", who).send().await;
            resp.assert_status_is_ok();
            let page: Value = resp.0.into_body().into_json().await.unwrap();
            assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
        }
        let resp = cli
            .get("/api/v1/agent-events")
            .header("authorization", &agent_key)
            .send()
            .await;
        resp.assert_status(StatusCode::FORBIDDEN);
        let resp = cli
            .get(format!("{url}?status=meh"))
            .header("authorization", &admin)
            .send()
            .await;
        resp.assert_status(StatusCode::BAD_REQUEST);

        // One audit record for the one event stored; unknown enum values are a 400.
        let resp = cli
            .get("/api/v1/admin/audit-logs?resource_type=agent_event&order=desc")
            .header("authorization", &admin)
            .send()
            .await;
        resp.assert_status_is_ok();
        let page: Value = resp.0.into_body().into_json().await.unwrap();
        assert_eq!(page["items"].as_array().unwrap().len(), 1, "{page}");
        assert_eq!(page["items"][0]["actor_type"], "agent");
        let resp = cli
            .get("/api/v1/admin/audit-logs?action=explode")
            .header("authorization", &admin)
            .send()
            .await;
        resp.assert_status(StatusCode::BAD_REQUEST);
    }

    #[test]
    fn names_match_the_core() {
        for t in [EventType::Apply, EventType::Delete, EventType::Drift] {
            assert_eq!(EventType::from(EventTypeDto::from(t)), t);
        }
        for s in [EventStatus::Success, EventStatus::Failure] {
            assert_eq!(EventStatus::from(EventStatusDto::from(s)), s);
        }
    }
}
