//! Direct assignments of stacks to agents, in batches.
//!
//! Onboarding a tenant by assignment gives its new stack to an agent, and many tenants
//! sign up at once. One transaction per assignment cost half a dozen round trips and a
//! commit each, and held a pooled connection throughout; here the assignments made at
//! the same moment commit together ([`crate::batch`]): the agents, the stacks and the
//! existing targets read with one query each (the targets locked on PostgreSQL, in key
//! order, as `assign_stack` locked its one row), the new targets inserted with one
//! statement, the audit records written with one. Each assignment gets the answer it
//! would have got alone, in order: a later one of the same pair in the batch sees the
//! earlier one.

use std::collections::HashMap;
use std::future::Future;

use brokkr_core::store::{Error, Result};
use brokkr_core::{Actor, AgentId, AgentTarget, AuditAction, ResourceKind, StackId, TargetSource};
use sea_orm::sea_query::Expr;
use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Value};
use uuid::Uuid;

use crate::audit::Audit;
use crate::batch::{self, Batched, distinct};
use crate::entity::agent_targets::{self, Column};
use crate::entity::stacks as stack_rows;
use crate::errors::db;
use crate::sql::{DeletedAt, uuid_in};
use crate::write::{Write, Writer};
use crate::{Backend, SqlStore, agents, convert};

/// Committers on PostgreSQL.
pub(crate) const POSTGRES_COMMITTERS: usize = 2;

/// One assignment, waiting for its batch.
pub(crate) struct Assignment {
    pub(crate) actor: Actor,
    pub(crate) agent: AgentId,
    pub(crate) stack: StackId,
}

impl Batched for Assignment {
    type Output = AgentTarget;
    const WHAT: &'static str = "assignments";

    fn bytes(&self) -> usize {
        32
    }

    fn write_batch(
        writer: &Writer,
        batch: &[Self],
    ) -> impl Future<Output = Result<Vec<Result<AgentTarget>>>> + Send {
        assign_batch(writer, batch)
    }
}

/// What an assignment does to its pair's target row.
enum Change {
    Insert,
    /// A live placement target becomes direct: a later decision leaves it alone.
    MakeDirect,
    /// A target awaiting removal is live again, and direct.
    Revive,
}

async fn assign_batch(writer: &Writer, batch: &[Assignment]) -> Result<Vec<Result<AgentTarget>>> {
    let mut write = writer.begin().await?;
    let agent_ids = distinct(batch.iter().map(|one| one.agent.0));
    let stack_ids = distinct(batch.iter().map(|one| one.stack.0));
    let live_agents = agents::live_agent_ids(write.tx(), &agent_ids).await?;
    let stack_names = live_stack_names(&write, &stack_ids).await?;
    let mut targets = locked_targets(&write, &agent_ids, &stack_ids).await?;

    let mut results = Vec::with_capacity(batch.len());
    let mut changes: Vec<(agent_targets::Model, Change)> = Vec::new();
    let mut audits = Vec::new();
    for one in batch {
        let (agent, stack) = (one.agent.0, one.stack.0);
        if !live_agents.contains(&agent) {
            results.push(Err(Error::not_found("agent", one.agent)));
            continue;
        }
        let Some(name) = stack_names.get(&stack) else {
            results.push(Err(Error::not_found("stack", one.stack)));
            continue;
        };
        let (row, change) = match targets.get(&(agent, stack)) {
            Some(row)
                if row.removed_at.is_none() && row.source == TargetSource::Placement.as_str() =>
            {
                (direct(row.clone()), Change::MakeDirect)
            }
            Some(live) if live.removed_at.is_none() => {
                results.push(Err(Error::Conflict(format!(
                    "stack {} is already assigned to agent {}",
                    one.stack, one.agent
                ))));
                continue;
            }
            Some(row) => {
                let mut row = direct(row.clone());
                row.removed_at = None;
                (row, Change::Revive)
            }
            None => (
                agent_targets::Model {
                    agent_id: agent,
                    stack_id: stack,
                    source: TargetSource::Direct.as_str().to_owned(),
                    created_at: write.now,
                    removed_at: None,
                },
                Change::Insert,
            ),
        };
        targets.insert((agent, stack), row.clone());
        results.push(convert::target(row.clone()));
        let summary = format!("assigned stack {name:?} to agent {}", one.agent);
        let audit = Audit::new(
            AuditAction::Assign,
            ResourceKind::AgentTarget,
            stack,
            summary,
        );
        audits.push((&one.actor, audit));
        changes.push((row, change));
    }
    if changes.is_empty() {
        return Ok(results);
    }
    write_changes(&write, &changes).await?;
    let assigned = distinct(changes.iter().map(|(row, _)| row.stack_id));
    crate::rollout_due::stacks(&write, &assigned).await?;
    write.affect(changes.iter().map(|(row, _)| AgentId::from(row.agent_id)));
    write.audit_many(audits).await?;
    Ok(batch::commit(writer, write, Assignment::WHAT, results).await)
}

fn direct(mut row: agent_targets::Model) -> agent_targets::Model {
    row.source = TargetSource::Direct.as_str().to_owned();
    row
}

/// The names of the live ones among `ids`, matched on the primary key alone (see
/// `sql::live_ids`).
async fn live_stack_names(write: &Write, ids: &[Uuid]) -> Result<HashMap<Uuid, String>> {
    type Row = (Uuid, String, DeletedAt);
    let rows: Vec<Row> = stack_rows::Entity::find()
        .select_only()
        .columns([
            stack_rows::Column::Id,
            stack_rows::Column::Name,
            stack_rows::Column::DeletedAt,
        ])
        .filter(uuid_in(
            write.backend(),
            stack_rows::Column::Id,
            ids.iter().copied(),
        ))
        .into_tuple()
        .all(write.tx())
        .await
        .map_err(db)?;
    Ok(rows
        .into_iter()
        .filter(|(_, _, deleted_at)| deleted_at.is_none())
        .map(|(id, name, _)| (id, name))
        .collect())
}

/// The existing targets of the batch's agents on the batch's stacks (the pairs asked
/// for and perhaps a few more), by primary key, locked on PostgreSQL in key order so
/// that concurrent batches take them in turn.
async fn locked_targets(
    write: &Write,
    agents: &[Uuid],
    stacks: &[Uuid],
) -> Result<HashMap<(Uuid, Uuid), agent_targets::Model>> {
    let mut query = agent_targets::Entity::find()
        .filter(uuid_in(
            write.backend(),
            Column::AgentId,
            agents.iter().copied(),
        ))
        .filter(uuid_in(
            write.backend(),
            Column::StackId,
            stacks.iter().copied(),
        ))
        .order_by_asc(Column::AgentId)
        .order_by_asc(Column::StackId);
    if write.backend() == Backend::Postgres {
        query = query.lock_exclusive();
    }
    let rows = query.all(write.tx()).await.map_err(db)?;
    Ok(rows
        .into_iter()
        .map(|row| ((row.agent_id, row.stack_id), row))
        .collect())
}

/// Inserts the new targets with one statement; makes the others direct (and live) with
/// one statement each, which only an assignment over a placement or a removal needs.
async fn write_changes(write: &Write, changes: &[(agent_targets::Model, Change)]) -> Result<()> {
    // Each pair is in `changes` at most once: a later assignment of it in the batch
    // found it live and got a conflict.
    let inserts: Vec<agent_targets::ActiveModel> = changes
        .iter()
        .filter(|(_, change)| matches!(change, Change::Insert))
        .map(|(row, _)| agent_targets::ActiveModel::from(row.clone()))
        .collect();
    if !inserts.is_empty() {
        agent_targets::Entity::insert_many(inserts)
            .exec_without_returning(write.tx())
            .await
            .map_err(db)?;
    }
    for (row, change) in changes {
        let revive = match change {
            Change::Insert => continue,
            Change::MakeDirect => false,
            Change::Revive => true,
        };
        let mut update = agent_targets::Entity::update_many()
            .col_expr(Column::Source, Expr::value(row.source.clone()))
            .filter(Column::AgentId.eq(row.agent_id))
            .filter(Column::StackId.eq(row.stack_id));
        if revive {
            update = update.col_expr(
                Column::RemovedAt,
                Expr::value(Value::ChronoDateTimeUtc(None)),
            );
        }
        update.exec(write.tx()).await.map_err(db)?;
    }
    Ok(())
}

impl SqlStore {
    pub(crate) async fn assign_stack_impl(
        &self,
        actor: &Actor,
        agent_id: AgentId,
        stack_id: StackId,
    ) -> Result<AgentTarget> {
        let assignment = Assignment {
            actor: *actor,
            agent: agent_id,
            stack: stack_id,
        };
        self.assigning.submit(assignment).await
    }
}
