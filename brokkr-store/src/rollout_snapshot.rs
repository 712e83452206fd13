//! What an evaluation of a rollout sees ([`RolloutSnapshot`]), in one read
//! transaction (PostgreSQL `REPEATABLE READ`, SQLite's snapshot of a read transaction
//! in WAL mode) and a constant number of queries: the rollout with whether its
//! stack's active slot is taken by another, its waves, agents, gate evaluations and
//! waiting commands, the fleet (agents placed on the stack and agents of the
//! rollout), their latest events about the candidate and the baseline, and their
//! health for the stack.

use std::collections::HashMap;

use brokkr_core::rollout::{AgentView, ObservedEvent, ObservedHealth, RolloutSnapshot};
use brokkr_core::store::{Error, Result};
use brokkr_core::{AgentId, DeploymentObjectId, EventStatus, RolloutId};
use chrono::{DateTime, Utc};
use sea_orm::{
    AccessMode, ConnectionTrait, DatabaseTransaction, FromQueryResult, IsolationLevel,
    TransactionTrait, Value,
};
use uuid::Uuid;

use crate::convert::{from_json, health_status};
use crate::entity::rollouts;
use crate::errors::{corrupt, db};
use crate::rollout_reads::parts_of;
use crate::rollout_rows::{self as rows, ACTIVE};
use crate::{Backend, SqlStore, sql};

/// The rollout and how many other rollouts of its stack hold the active slot.
fn rollout_sql() -> String {
    format!(
        "SELECT r.*, (SELECT count(*) FROM rollouts o \
                      WHERE o.stack_id = r.stack_id AND o.{ACTIVE} AND o.id <> r.id) AS others \
         FROM rollouts r WHERE r.id = ?"
    )
}

/// The agents placed on the stack now (a live target of a live agent) and the agents
/// of the rollout, each once, with whether it is placed: one pass over the stack's
/// targets (index on `stack_id`) and the rollout's agents (primary-key prefix).
const FLEET_SQL: &str = "\
    SELECT a.id, a.name, a.labels, a.last_heartbeat, a.deleted_at, t.removed_at, \
           t.agent_id AS target_agent \
    FROM (SELECT agent_id FROM agent_targets WHERE stack_id = ? AND removed_at IS NULL \
          UNION SELECT agent_id FROM rollout_agents WHERE rollout_id = ?) f \
    JOIN agents a ON a.id = f.agent_id \
    LEFT JOIN agent_targets t ON t.agent_id = a.id AND t.stack_id = ? \
    ORDER BY a.id";

/// Per agent and object, its latest event about the candidate or the baseline, a
/// deletion aside (an agent deletes with whatever object its target state named).
/// Latest by when the store first recorded it (an id reported again does not move
/// it). Window functions read the same on both databases; the index on
/// `(deployment_object_id, id)` bounds the scan to these two objects' events.
const EVENTS_SQL: &str = "\
    SELECT agent_id, deployment_object_id, status, created_at FROM ( \
        SELECT agent_id, deployment_object_id, status, created_at, \
               ROW_NUMBER() OVER (PARTITION BY agent_id, deployment_object_id \
                                  ORDER BY created_at DESC, id DESC) AS latest \
        FROM agent_events \
        WHERE deployment_object_id IN (?, ?) AND event_type <> 'delete') e \
    WHERE latest = 1";

/// Every agent's latest health report for the stack (primary-key prefix).
const HEALTH_SQL: &str = "\
    SELECT agent_id, deployment_object_id, status, reported_at \
    FROM health_reports WHERE stack_id = ?";

/// A read transaction that sees one snapshot of the database.
pub(crate) async fn read_transaction(store: &SqlStore) -> Result<DatabaseTransaction> {
    match store.backend {
        Backend::Postgres => store
            .reader
            .begin_with_config(
                Some(IsolationLevel::RepeatableRead),
                Some(AccessMode::ReadOnly),
            )
            .await
            .map_err(db),
        // A read transaction in WAL mode reads one snapshot from its first read on.
        Backend::Sqlite => store.reader.begin().await.map_err(db),
    }
}

impl SqlStore {
    pub(crate) async fn rollout_snapshot_impl(&self, id: RolloutId) -> Result<RolloutSnapshot> {
        let read = read_transaction(self).await?;
        let stmt = |query: &str, values: Vec<Value>| sql::stmt(self.backend, query, values);
        let row = read
            .query_one_raw(stmt(&rollout_sql(), vec![id.0.into()]))
            .await
            .map_err(db)?
            .ok_or_else(|| Error::not_found("rollout", id))?;
        let others: i64 = row.try_get("", "others").map_err(db)?;
        let rollout = rows::rollout(rollouts::Model::from_query_result(&row, "").map_err(db)?)?;
        let parts = parts_of(&read, id.0, true).await?;
        let (stack, candidate) = (rollout.stack_id.0, rollout.candidate.0);
        // Without a baseline the candidate stands in, so the statement keeps its shape.
        let baseline = rollout.baseline.map_or(candidate, |b| b.0);
        let fleet = read
            .query_all_raw(stmt(
                FLEET_SQL,
                vec![stack.into(), id.0.into(), stack.into()],
            ))
            .await
            .map_err(db)?;
        let events = read
            .query_all_raw(stmt(EVENTS_SQL, vec![candidate.into(), baseline.into()]))
            .await
            .map_err(db)?;
        let health = read
            .query_all_raw(stmt(HEALTH_SQL, vec![stack.into()]))
            .await
            .map_err(db)?;
        read.commit().await.map_err(db)?;

        let events = latest_events(&events)?;
        let health = health_by_agent(&health)?;
        let event_of = |agent: Uuid, object: Option<DeploymentObjectId>| {
            object.and_then(|object| events.get(&(agent, object.0)).copied())
        };
        let in_rollout: std::collections::HashSet<AgentId> =
            parts.agents.iter().map(|a| a.agent_id).collect();
        let mut views = Vec::with_capacity(fleet.len());
        for row in &fleet {
            let get = |e| db(e);
            let agent: Uuid = row.try_get("", "id").map_err(get)?;
            let deleted: Option<DateTime<Utc>> = row.try_get("", "deleted_at").map_err(get)?;
            let target: Option<Uuid> = row.try_get("", "target_agent").map_err(get)?;
            let removed: Option<DateTime<Utc>> = row.try_get("", "removed_at").map_err(get)?;
            let placed = deleted.is_none() && target.is_some() && removed.is_none();
            if !placed && !in_rollout.contains(&AgentId::from(agent)) {
                continue;
            }
            views.push(AgentView {
                agent_id: agent.into(),
                name: row.try_get("", "name").map_err(get)?,
                labels: from_json("labels", row.try_get("", "labels").map_err(get)?)?,
                placed,
                last_heartbeat: row.try_get("", "last_heartbeat").map_err(get)?,
                candidate_event: event_of(agent, Some(rollout.candidate)),
                baseline_event: event_of(agent, rollout.baseline),
                health: health.get(&agent).copied(),
            });
        }
        Ok(RolloutSnapshot {
            rollout,
            waves: parts.waves,
            agents: parts.agents,
            fleet: views,
            gate_evaluations: parts.gate_evaluations,
            commands: parts.commands,
            slot_free: others == 0,
        })
    }
}

/// The latest events by (agent, object).
fn latest_events(rows: &[sea_orm::QueryResult]) -> Result<HashMap<(Uuid, Uuid), ObservedEvent>> {
    rows.iter()
        .map(|row| {
            let agent: Uuid = row.try_get("", "agent_id").map_err(db)?;
            let object: Uuid = row.try_get("", "deployment_object_id").map_err(db)?;
            let status: String = row.try_get("", "status").map_err(db)?;
            let status =
                EventStatus::parse(&status).ok_or_else(|| corrupt("event status", &status))?;
            let at = row.try_get("", "created_at").map_err(db)?;
            Ok(((agent, object), ObservedEvent { status, at }))
        })
        .collect()
}

/// The health reports by agent.
fn health_by_agent(rows: &[sea_orm::QueryResult]) -> Result<HashMap<Uuid, ObservedHealth>> {
    rows.iter()
        .map(|row| {
            let agent: Uuid = row.try_get("", "agent_id").map_err(db)?;
            let object: Uuid = row.try_get("", "deployment_object_id").map_err(db)?;
            let status: String = row.try_get("", "status").map_err(db)?;
            let observed = ObservedHealth {
                deployment_object_id: object.into(),
                status: health_status(&status)?,
                at: row.try_get("", "reported_at").map_err(db)?,
            };
            Ok((agent, observed))
        })
        .collect()
}
