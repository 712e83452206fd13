//! What each agent last reported applying, per stack: one `agent_applied` row per
//! agent and stack, moved by every newly recorded successful event in the event
//! writer's transaction, so plans read the stack's agents, never the event history.

use std::collections::HashMap;
use std::sync::LazyLock;

use brokkr_core::store::{Error, Result};
use brokkr_core::{
    AppliedState, AppliedVersions, DeploymentObjectId, EventStatus, EventType, StackId,
};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{ConnectionTrait, EntityTrait, FromQueryResult};
use uuid::Uuid;

use crate::entity::agent_applied::{self, Column};
use crate::entity::agent_events;
use crate::errors::db;
use crate::write::Write;
use crate::{Backend, SqlStore, sql};

/// A stack's rows ordered by agent, or one row of nulls when it has none; no row at
/// all means no such stack (deleted stacks answer). One lookup of the stack's primary
/// key, one range of the applied rows' primary key.
const APPLIED_SQL: &str = "\
    SELECT a.stack_id, a.agent_id, a.deployment_object_id, a.recorded_at \
    FROM stacks s LEFT JOIN agent_applied a ON a.stack_id = s.id \
    WHERE s.id = ? \
    ORDER BY a.agent_id";

/// The distinct versions the stack's agents run, folded into one text, and whether an
/// agent runs one without a live target; no row means no such stack. Both are read in
/// the database, whatever the stack's agent count: the guard asks for every append the
/// batch's shortcut (`harmless.rs`) handed back.
/// Only the folding aggregate differs between the backends.
fn versions_sql(backend: Backend) -> &'static str {
    static SQLITE: LazyLock<String> = LazyLock::new(|| versions_query("group_concat(hex(v), ',')"));
    static POSTGRES: LazyLock<String> =
        LazyLock::new(|| versions_query("string_agg(v::text, ',')"));
    match backend {
        Backend::Sqlite => &SQLITE,
        Backend::Postgres => &POSTGRES,
    }
}

fn versions_query(fold: &str) -> String {
    format!(
        "SELECT \
           (SELECT {fold} FROM \
              (SELECT DISTINCT deployment_object_id AS v FROM agent_applied \
                WHERE stack_id = s.id AND deployment_object_id IS NOT NULL) d) AS versions, \
           EXISTS (SELECT 1 FROM agent_applied a \
              WHERE a.stack_id = s.id AND a.deployment_object_id IS NOT NULL \
                AND NOT EXISTS (SELECT 1 FROM agent_targets t WHERE t.agent_id = a.agent_id \
                  AND t.stack_id = a.stack_id AND t.removed_at IS NULL)) AS untargeted \
         FROM stacks s WHERE s.id = ?"
    )
}

/// Moves the applied state of every (agent, stack) with a successful event among
/// `events` (newly stored ones, and repeated ones as of now), with one statement. The
/// last such event of a pair in `events` wins; a row recorded later by a concurrent
/// batch is left alone.
pub(crate) async fn note_applied<'a>(
    write: &Write,
    events: impl Iterator<Item = &'a agent_events::Model>,
) -> Result<()> {
    let mut latest: HashMap<(Uuid, Uuid), agent_applied::Model> = HashMap::new();
    for event in events {
        if event.status != EventStatus::Success.as_str() {
            continue;
        }
        let deployment_object_id =
            (event.event_type != EventType::Delete.as_str()).then_some(event.deployment_object_id);
        latest.insert(
            (event.stack_id, event.agent_id),
            agent_applied::Model {
                stack_id: event.stack_id,
                agent_id: event.agent_id,
                deployment_object_id,
                recorded_at: event.created_at,
            },
        );
    }
    if latest.is_empty() {
        return Ok(());
    }
    let mut rows: Vec<agent_applied::Model> = latest.into_values().collect();
    // A fixed order, so batches upserting the same rows lock them in the same order.
    rows.sort_unstable_by_key(|row| (row.stack_id, row.agent_id));
    agent_applied::Entity::insert_many(rows.into_iter().map(agent_applied::ActiveModel::from))
        .on_conflict(
            OnConflict::columns([Column::StackId, Column::AgentId])
                .update_columns([Column::DeploymentObjectId, Column::RecordedAt])
                .action_and_where(
                    Expr::col((agent_applied::Entity, Column::RecordedAt))
                        .lte(Expr::col(("excluded", Column::RecordedAt))),
                )
                .to_owned(),
        )
        .exec_without_returning(write.tx())
        .await
        .map_err(db)?;
    Ok(())
}

impl SqlStore {
    pub(crate) async fn applied_states_impl(&self, stack_id: StackId) -> Result<Vec<AppliedState>> {
        let rows = self
            .reader
            .query_all_raw(sql::stmt(self.backend, APPLIED_SQL, [stack_id.0.into()]))
            .await
            .map_err(db)?;
        if rows.is_empty() {
            return Err(Error::not_found("stack", stack_id));
        }
        let mut states = Vec::with_capacity(rows.len());
        for row in rows {
            // The null row of a stack nobody applied.
            if row
                .try_get::<Option<Uuid>>("", "agent_id")
                .map_err(db)?
                .is_none()
            {
                continue;
            }
            let model = agent_applied::Model::from_query_result(&row, "").map_err(db)?;
            states.push(AppliedState {
                agent_id: model.agent_id.into(),
                deployment_object_id: model.deployment_object_id.map(Into::into),
                recorded_at: model.recorded_at,
            });
        }
        Ok(states)
    }

    pub(crate) async fn applied_versions_impl(&self, stack_id: StackId) -> Result<AppliedVersions> {
        let row = self
            .reader
            .query_one_raw(sql::stmt(
                self.backend,
                versions_sql(self.backend),
                [stack_id.0.into()],
            ))
            .await
            .map_err(db)?
            .ok_or_else(|| Error::not_found("stack", stack_id))?;
        let folded: Option<String> = row.try_get_by_index(0).map_err(db)?;
        let untargeted: bool = row.try_get_by_index(1).map_err(db)?;
        let mut versions: Vec<DeploymentObjectId> =
            crate::world::parse_ids(folded.as_deref().unwrap_or(""))?
                .into_iter()
                .map(Into::into)
                .collect();
        versions.sort_unstable();
        Ok(AppliedVersions {
            versions,
            untargeted,
        })
    }
}
