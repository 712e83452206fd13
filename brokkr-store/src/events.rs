//! Agent events: append-only reports of what agents did, idempotent on their id.
//!
//! Every agent reports an event for every object it applies, so a change to many
//! agents' stacks brings as many events at once: they commit in batches
//! ([`crate::batch`]), each batch with one statement per step whatever its size.

use std::collections::{HashMap, HashSet};
use std::future::Future;

use brokkr_core::page::{Page, PageRequest};
use brokkr_core::store::{AgentEventFilter, Error, Result};
use brokkr_core::{
    Actor, AgentEvent, AgentEventId, AgentId, AuditAction, EventStatus, EventType, NewAgentEvent,
    ResourceKind, WebhookEvent,
};
use sea_orm::sea_query::{OnConflict, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::SqlStore;
use crate::applied;
use crate::audit::Audit;
use crate::batch::{self, Batched, distinct};
use crate::convert;
use crate::entity::agent_events::{self, Column};
use crate::entity::{agent_targets, stacks as stack_rows};
use crate::errors::db;
use crate::paging::{keyset, page_of, uuid_cursor};
use crate::report_refs::ReportRefs;
use crate::write::{Write, Writer};

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
/// each, with the agents' applied states moved by one more. Only a successful
/// deletion, which may retire a target, costs more.
async fn record_events(writer: &Writer, batch: &[EventReport]) -> Result<Vec<Result<AgentEvent>>> {
    let mut write = writer.begin().await?;
    let mut known = stored_events(&write, batch.iter().map(|r| r.new.id.0)).await?;
    let refs = ReportRefs::load(
        &write,
        batch.iter().map(|r| r.new.agent_id),
        batch.iter().map(|r| r.new.deployment_object_id),
    )
    .await?;

    // New rows, with the index of their answer in `results`.
    let mut rows: Vec<(usize, &Actor, agent_events::Model)> = Vec::new();
    // Successful reports repeated with a stored id, as of now: the agent did it again
    // (ids are derived from what they report), so what it runs and a removal it
    // confirms count, though the event and its audit record are not written again.
    let mut repeated: Vec<agent_events::Model> = Vec::new();
    let mut results = Vec::with_capacity(batch.len());
    for report in batch {
        let new = &report.new;
        if let Some(row) = known.get(&new.id.0) {
            let answer = answer_retry(row, new);
            if answer.is_ok() && row.status == EventStatus::Success.as_str() {
                repeated.push(agent_events::Model {
                    created_at: write.now,
                    ..row.clone()
                });
            }
            results.push(answer);
            continue;
        }
        let stack_id = match refs.stack(new.agent_id, new.deployment_object_id) {
            Ok(stack_id) => stack_id,
            Err(err) => {
                results.push(Err(err));
                continue;
            }
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
        rows.push((results.len(), &report.actor, row.clone()));
        results.push(convert::event(row));
    }
    if rows.is_empty() && repeated.is_empty() {
        return Ok(results);
    }
    let inserted = if rows.is_empty() {
        HashSet::new()
    } else {
        insert_new(&write, rows.iter().map(|(_, _, row)| row)).await?
    };
    // The same report sent twice at once may reach two batches (PostgreSQL commits
    // several side by side): the one that lost the race answers what the other stored.
    let (rows, raced): (Vec<_>, Vec<_>) = rows
        .into_iter()
        .partition(|(_, _, row)| inserted.contains(&row.id));
    if !raced.is_empty() {
        let stored = stored_events(&write, raced.iter().map(|(_, _, row)| row.id)).await?;
        for (at, _, row) in &raced {
            results[*at] = match stored.get(&row.id) {
                Some(stored) => answer_retry(stored, &batch[*at].new),
                None => Err(Error::Backend(
                    format!("event {} neither inserted nor stored", row.id).into(),
                )),
            };
        }
    }
    let settled: Vec<&agent_events::Model> = rows
        .iter()
        .map(|(_, _, row)| row)
        .chain(&repeated)
        .collect();
    applied::note_applied(&write, settled.iter().copied()).await?;
    let stacks = distinct(settled.iter().map(|row| row.stack_id));
    crate::rollout_due::stacks(&write, &stacks).await?;
    for row in settled {
        if row.event_type == EventType::Delete.as_str()
            && row.status == EventStatus::Success.as_str()
        {
            retire_target(&mut write, AgentId(row.agent_id), row.stack_id).await?;
        }
    }
    write
        .audit_many(
            rows.iter()
                .map(|(_, actor, row)| (*actor, event_audit(row))),
        )
        .await?;
    // Like the audit record, only a first report is news to a webhook.
    for (_, _, row) in &rows {
        let event = convert::event(row.clone())?;
        write.emit(WebhookEvent::agent_reported(&event, write.now));
    }
    Ok(batch::commit(writer, write, EventReport::WHAT, results).await)
}

/// The answer to a report whose id is stored already: the stored event when the same
/// agent reported it (a retry stores and audits nothing), else `Conflict`.
fn answer_retry(stored: &agent_events::Model, new: &NewAgentEvent) -> Result<AgentEvent> {
    if stored.agent_id == new.agent_id.0 {
        convert::event(stored.clone())
    } else {
        Err(Error::Conflict(format!(
            "event {} belongs to another agent",
            new.id
        )))
    }
}

/// The stored events among `ids`, with one query.
async fn stored_events(
    write: &Write,
    ids: impl Iterator<Item = Uuid>,
) -> Result<HashMap<Uuid, agent_events::Model>> {
    Ok(agent_events::Entity::find()
        .filter(Column::Id.is_in(distinct(ids)))
        .all(write.tx())
        .await
        .map_err(db)?
        .into_iter()
        .map(|row| (row.id, row))
        .collect())
}

/// Inserts the rows with one statement, leaving alone any whose id another
/// transaction stored meanwhile; answers the ids inserted.
async fn insert_new<'a>(
    write: &Write,
    rows: impl Iterator<Item = &'a agent_events::Model>,
) -> Result<HashSet<Uuid>> {
    let mut stmt = Query::insert();
    stmt.into_table(agent_events::Entity)
        .columns([
            Column::Id,
            Column::AgentId,
            Column::DeploymentObjectId,
            Column::StackId,
            Column::EventType,
            Column::Status,
            Column::Message,
            Column::CreatedAt,
        ])
        .on_conflict(OnConflict::column(Column::Id).do_nothing().to_owned())
        .returning_col(Column::Id);
    for row in rows {
        stmt.values_panic([
            row.id.into(),
            row.agent_id.into(),
            row.deployment_object_id.into(),
            row.stack_id.into(),
            row.event_type.clone().into(),
            row.status.clone().into(),
            row.message.clone().into(),
            row.created_at.into(),
        ]);
    }
    let inserted = write.tx().query_all(&stmt).await.map_err(db)?;
    inserted
        .iter()
        .map(|row| row.try_get::<Uuid>("", "id").map_err(db))
        .collect()
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
