//! Agent events: append-only reports of what agents did, idempotent on their id.

use brokkr_core::page::{Page, PageRequest};
use brokkr_core::store::{AgentEventFilter, Error, Result};
use brokkr_core::{
    Actor, AgentEvent, AgentEventId, AuditAction, EventStatus, EventType, NewAgentEvent,
    ResourceKind,
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QuerySelect};
use uuid::Uuid;

use crate::audit::Audit;
use crate::convert;
use crate::entity::agent_events::{self, Column};
use crate::entity::{agent_targets, deployment_objects, stacks};
use crate::errors::db;
use crate::paging::{keyset, page_of, uuid_cursor};
use crate::{SqlStore, agents};

impl SqlStore {
    pub(crate) async fn record_agent_event_impl(
        &self,
        actor: &Actor,
        new: NewAgentEvent,
    ) -> Result<AgentEvent> {
        let mut write = self.begin().await?;
        let existing = agent_events::Entity::find_by_id(new.id.0)
            .one(write.tx())
            .await
            .map_err(db)?;
        if let Some(existing) = existing {
            if existing.agent_id != new.agent_id.0 {
                return Err(Error::Conflict(format!(
                    "event {} belongs to another agent",
                    new.id
                )));
            }
            // A retried report: nothing changes, so nothing is written or audited.
            return convert::event(existing);
        }
        agents::live_agent(write.tx(), new.agent_id, false).await?;
        // Only the stack id: the object's YAML may be megabytes and is not needed.
        let stack_id: Uuid = deployment_objects::Entity::find_by_id(new.deployment_object_id.0)
            .select_only()
            .column(deployment_objects::Column::StackId)
            .into_tuple()
            .one(write.tx())
            .await
            .map_err(db)?
            .ok_or_else(|| Error::not_found("deployment object", new.deployment_object_id))?;
        let row = agent_events::Model {
            id: new.id.0,
            agent_id: new.agent_id.0,
            deployment_object_id: new.deployment_object_id.0,
            stack_id,
            event_type: new.event_type.as_str().to_owned(),
            status: new.status.as_str().to_owned(),
            message: new.message,
            created_at: write.now,
        };
        agent_events::Entity::insert(agent_events::ActiveModel::from(row.clone()))
            .exec_without_returning(write.tx())
            .await
            .map_err(db)?;

        if new.event_type == EventType::Delete && new.status == EventStatus::Success {
            // Retire the target if it awaits removal or its stack is deleted: the agent
            // confirmed the stack's objects are gone.
            let target = agent_targets::Entity::find_by_id((new.agent_id.0, stack_id))
                .one(write.tx())
                .await
                .map_err(db)?;
            if let Some(target) = target {
                let retire = target.removed_at.is_some()
                    || stacks::Entity::find_by_id(stack_id)
                        .one(write.tx())
                        .await
                        .map_err(db)?
                        .is_some_and(|stack| stack.deleted_at.is_some());
                if retire {
                    agent_targets::Entity::delete_many()
                        .filter(agent_targets::Column::AgentId.eq(target.agent_id))
                        .filter(agent_targets::Column::StackId.eq(target.stack_id))
                        .exec(write.tx())
                        .await
                        .map_err(db)?;
                    write.affect([new.agent_id]);
                }
            }
        }

        let summary = format!(
            "agent {} reported {} {} of deployment object {}",
            new.agent_id,
            new.event_type.as_str(),
            new.status.as_str(),
            new.deployment_object_id
        );
        write
            .audit(
                actor,
                Audit::new(
                    AuditAction::Create,
                    ResourceKind::AgentEvent,
                    row.id,
                    summary,
                ),
            )
            .await?;
        self.commit(write).await?;
        convert::event(row)
    }

    pub(crate) async fn get_agent_event_impl(&self, id: AgentEventId) -> Result<AgentEvent> {
        let row = agent_events::Entity::find_by_id(id.0)
            .one(&self.reader)
            .await
            .map_err(db)?
            .ok_or_else(|| Error::not_found("agent event", id))?;
        convert::event(row)
    }

    pub(crate) async fn list_agent_events_impl(
        &self,
        filter: &AgentEventFilter,
        page: &PageRequest,
    ) -> Result<Page<AgentEvent>> {
        let mut query = agent_events::Entity::find();
        if let Some(agent) = filter.agent_id {
            query = query.filter(Column::AgentId.eq(agent.0));
        }
        if let Some(stack) = filter.stack_id {
            query = query.filter(Column::StackId.eq(stack.0));
        }
        if let Some(object) = filter.deployment_object_id {
            query = query.filter(Column::DeploymentObjectId.eq(object.0));
        }
        if let Some(event_type) = filter.event_type {
            query = query.filter(Column::EventType.eq(event_type.as_str()));
        }
        if let Some(status) = filter.status {
            query = query.filter(Column::Status.eq(status.as_str()));
        }
        if let Some(since) = filter.since {
            query = query.filter(Column::CreatedAt.gte(since));
        }
        if let Some(until) = filter.until {
            query = query.filter(Column::CreatedAt.lt(until));
        }
        let rows = keyset(query, Column::Id, uuid_cursor(page)?, page)
            .all(&self.reader)
            .await
            .map_err(db)?;
        page_of(rows, page, convert::event, |e| e.id.to_string())
    }
}
