//! Agent events: append-only reports of what agents did, idempotent on their id.
//!
//! Every agent reports an event for every object it applies, so a change to many
//! agents' stacks brings as many events at once: they commit in batches
//! ([`crate::batch`]), each batch with one statement per step whatever its size.

use std::collections::HashMap;
use std::future::Future;

use brokkr_core::page::{Page, PageRequest};
use brokkr_core::store::{AgentEventFilter, Error, Result};
use brokkr_core::{
    Actor, AgentEvent, AgentEventId, AgentId, AuditAction, EventStatus, EventType, NewAgentEvent,
    ResourceKind,
};
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::audit::Audit;
use crate::batch::{self, Batched, distinct};
use crate::convert;
use crate::entity::agent_events::{self, Column};
use crate::entity::{agent_targets, stacks as stack_rows};
use crate::errors::db;
use crate::paging::{keyset, page_of, uuid_cursor};
use crate::write::{Write, Writer};
use crate::{SqlStore, agents, stacks};

/// Committers on PostgreSQL.
pub(crate) const POSTGRES_COMMITTERS: usize = 2;

/// One agent event waiting for its batch.
pub(crate) struct EventReport {
    pub(crate) actor: Actor,
    pub(crate) new: NewAgentEvent,
}

impl Batched for EventReport {
    type Output = AgentEvent;
    const WHAT: &'static str = "agent events";

    fn bytes(&self) -> usize {
        self.new.message.as_ref().map_or(0, String::len)
    }

    fn write_batch(
        writer: &Writer,
        batch: &[Self],
    ) -> impl Future<Output = Result<Vec<Result<AgentEvent>>>> + Send {
        record_events(writer, batch)
    }
}

/// Stores a batch of events in one transaction: the events already stored (a retried
/// report stores nothing new), the live agents and the objects' stacks are read with
/// one query each, the new events and their audit records written with one statement
/// each. Only a successful deletion, which may retire a target, costs more.
async fn record_events(writer: &Writer, batch: &[EventReport]) -> Result<Vec<Result<AgentEvent>>> {
    let mut write = writer.begin().await?;
    let event_ids = distinct(batch.iter().map(|r| r.new.id.0));
    let mut known: HashMap<Uuid, agent_events::Model> = agent_events::Entity::find()
        .filter(Column::Id.is_in(event_ids))
        .all(write.tx())
        .await
        .map_err(db)?
        .into_iter()
        .map(|row| (row.id, row))
        .collect();
    let agent_ids = distinct(batch.iter().map(|r| r.new.agent_id.0));
    let live = agents::live_agent_ids(write.tx(), &agent_ids).await?;
    let object_ids = distinct(batch.iter().map(|r| r.new.deployment_object_id.0));
    let stack_of = stacks::stacks_of_objects(write.tx(), &object_ids).await?;

    let mut rows = Vec::new();
    let mut results = Vec::with_capacity(batch.len());
    for report in batch {
        let new = &report.new;
        if let Some(row) = known.get(&new.id.0) {
            results.push(if row.agent_id == new.agent_id.0 {
                // A retried report: nothing changes, so nothing is written or audited.
                convert::event(row.clone())
            } else {
                Err(Error::Conflict(format!(
                    "event {} belongs to another agent",
                    new.id
                )))
            });
            continue;
        }
        if !live.contains(&new.agent_id.0) {
            results.push(Err(Error::not_found("agent", new.agent_id)));
            continue;
        }
        let Some(&stack_id) = stack_of.get(&new.deployment_object_id.0) else {
            results.push(Err(Error::not_found(
                "deployment object",
                new.deployment_object_id,
            )));
            continue;
        };
        let row = agent_events::Model {
            id: new.id.0,
            agent_id: new.agent_id.0,
            deployment_object_id: new.deployment_object_id.0,
            stack_id,
            event_type: new.event_type.as_str().to_owned(),
            status: new.status.as_str().to_owned(),
            message: new.message.clone(),
            created_at: write.now,
        };
        known.insert(row.id, row.clone());
        results.push(convert::event(row.clone()));
        rows.push((&report.actor, row));
    }
    if rows.is_empty() {
        return Ok(results);
    }
    agent_events::Entity::insert_many(
        rows.iter()
            .map(|(_, row)| agent_events::ActiveModel::from(row.clone())),
    )
    .exec_without_returning(write.tx())
    .await
    .map_err(db)?;
    for (_, row) in &rows {
        if row.event_type == EventType::Delete.as_str()
            && row.status == EventStatus::Success.as_str()
        {
            retire_target(&mut write, AgentId(row.agent_id), row.stack_id).await?;
        }
    }
    write
        .audit_many(rows.iter().map(|(actor, row)| (*actor, event_audit(row))))
        .await?;
    Ok(batch::commit(writer, write, EventReport::WHAT, results).await)
}

/// A successful deletion: the agent confirmed the stack's objects are gone, so its
/// target is retired if it awaits removal or its stack is deleted.
async fn retire_target(write: &mut Write, agent: AgentId, stack_id: Uuid) -> Result<()> {
    let target = agent_targets::Entity::find_by_id((agent.0, stack_id))
        .one(write.tx())
        .await
        .map_err(db)?;
    let Some(target) = target else {
        return Ok(());
    };
    let retire = target.removed_at.is_some()
        || stack_rows::Entity::find_by_id(stack_id)
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
        write.affect([agent]);
    }
    Ok(())
}

fn event_audit(row: &agent_events::Model) -> Audit {
    let summary = format!(
        "agent {} reported {} {} of deployment object {}",
        row.agent_id, row.event_type, row.status, row.deployment_object_id
    );
    Audit::new(
        AuditAction::Create,
        ResourceKind::AgentEvent,
        row.id,
        summary,
    )
}

impl SqlStore {
    pub(crate) async fn record_agent_event_impl(
        &self,
        actor: &Actor,
        new: NewAgentEvent,
    ) -> Result<AgentEvent> {
        let report = EventReport { actor: *actor, new };
        self.events.submit(report).await
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
