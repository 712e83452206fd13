//! Rollout policies, release heads, and reads of rollouts: one, a listing, details.

use brokkr_core::page::{Page, PageRequest};
use brokkr_core::rollout::RolloutPolicy;
use brokkr_core::store::{Error, Result, RolloutDetails, RolloutFilter};
use brokkr_core::{
    Actor, AuditAction, DeploymentObjectId, ResourceKind, Rollout, RolloutId, StackId,
};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, Value};
use uuid::Uuid;

use crate::audit::Audit;
use crate::convert::{from_json, to_json};
use crate::entity::{gate_evaluations, rollout_agents, rollout_commands, rollout_waves, rollouts};
use crate::errors::db;
use crate::paging::{keyset, page_of, uuid_cursor};
use crate::rollout_rows as rows;
use crate::{SqlStore, sql, stacks};

/// A rollout's row, `NotFound("rollout")` when there is none.
pub(crate) async fn rollout_row(conn: &impl ConnectionTrait, id: Uuid) -> Result<rollouts::Model> {
    rollouts::Entity::find_by_id(id)
        .one(conn)
        .await
        .map_err(db)?
        .ok_or_else(|| Error::not_found("rollout", id))
}

/// A rollout's waves by index, agents (by agent id), gate evaluations (oldest first)
/// and commands (oldest first; only those not taken up when `waiting_only`), with
/// one query each.
pub(crate) async fn parts_of(
    conn: &impl ConnectionTrait,
    id: Uuid,
    waiting_only: bool,
) -> Result<RolloutParts> {
    let waves = rollout_waves::Entity::find()
        .filter(rollout_waves::Column::RolloutId.eq(id))
        .order_by_asc(rollout_waves::Column::Idx)
        .all(conn)
        .await
        .map_err(db)?;
    let agents = rollout_agents::Entity::find()
        .filter(rollout_agents::Column::RolloutId.eq(id))
        .order_by_asc(rollout_agents::Column::AgentId)
        .all(conn)
        .await
        .map_err(db)?;
    let gates = gate_evaluations::Entity::find()
        .filter(gate_evaluations::Column::RolloutId.eq(id))
        .order_by_asc(gate_evaluations::Column::StartedAt)
        .order_by_asc(gate_evaluations::Column::Id)
        .all(conn)
        .await
        .map_err(db)?;
    let mut commands = rollout_commands::Entity::find()
        .filter(rollout_commands::Column::RolloutId.eq(id))
        .order_by_asc(rollout_commands::Column::Id);
    if waiting_only {
        commands = commands.filter(rollout_commands::Column::ConsumedAt.is_null());
    }
    let commands = commands.all(conn).await.map_err(db)?;
    Ok(RolloutParts {
        waves: waves.into_iter().map(rows::wave).collect::<Result<_>>()?,
        agents: agents
            .into_iter()
            .map(rows::rollout_agent)
            .collect::<Result<_>>()?,
        gate_evaluations: gates
            .into_iter()
            .map(rows::gate_evaluation)
            .collect::<Result<_>>()?,
        commands: commands
            .into_iter()
            .map(rows::command)
            .collect::<Result<_>>()?,
    })
}

/// What a rollout is made of, as read.
pub(crate) struct RolloutParts {
    pub(crate) waves: Vec<brokkr_core::RolloutWave>,
    pub(crate) agents: Vec<brokkr_core::RolloutAgent>,
    pub(crate) gate_evaluations: Vec<brokkr_core::GateEvaluation>,
    pub(crate) commands: Vec<brokkr_core::RolloutCommand>,
}

impl SqlStore {
    pub(crate) async fn set_rollout_policy_impl(
        &self,
        actor: &Actor,
        stack_id: StackId,
        policy: Option<RolloutPolicy>,
    ) -> Result<()> {
        let write = self.begin().await?;
        let stack = stacks::live_stack(write.tx(), stack_id, true).await?;
        let summary = match &policy {
            Some(_) => format!("set the rollout policy of stack {:?}", stack.name),
            None => format!("removed the rollout policy of stack {:?}", stack.name),
        };
        write
            .tx()
            .execute_raw(sql::stmt(
                write.backend(),
                "UPDATE stacks SET rollout_policy = ? WHERE id = ?",
                [
                    Value::Json(policy.as_ref().map(|p| Box::new(to_json(p)))),
                    Value::from(stack_id.0),
                ],
            ))
            .await
            .map_err(db)?;
        let audit = Audit::new(AuditAction::Update, ResourceKind::Stack, stack_id, summary);
        write.audit(actor, audit).await?;
        self.commit(write).await
    }

    pub(crate) async fn rollout_policy_impl(
        &self,
        stack_id: StackId,
    ) -> Result<Option<RolloutPolicy>> {
        let row = self
            .reader
            .query_one_raw(sql::stmt(
                self.backend,
                "SELECT rollout_policy FROM stacks WHERE id = ? AND deleted_at IS NULL",
                [stack_id.0.into()],
            ))
            .await
            .map_err(db)?
            .ok_or_else(|| Error::not_found("stack", stack_id))?;
        row.try_get::<Option<serde_json::Value>>("", "rollout_policy")
            .map_err(db)?
            .map(|policy| from_json("rollout policy", policy))
            .transpose()
    }

    pub(crate) async fn release_head_impl(
        &self,
        stack_id: StackId,
    ) -> Result<Option<DeploymentObjectId>> {
        let row = self
            .reader
            .query_one_raw(sql::stmt(
                self.backend,
                "SELECT release_deployment_object_id FROM stacks WHERE id = ?",
                [stack_id.0.into()],
            ))
            .await
            .map_err(db)?
            .ok_or_else(|| Error::not_found("stack", stack_id))?;
        let head: Option<Uuid> = row
            .try_get("", "release_deployment_object_id")
            .map_err(db)?;
        Ok(head.map(Into::into))
    }

    pub(crate) async fn rejecting_rollout_impl(
        &self,
        stack_id: StackId,
        yaml_checksum: &str,
    ) -> Result<Option<(RolloutId, DeploymentObjectId)>> {
        // The stack's rollouts by (stack_id, id), newest first; only reverted ones
        // join their candidate.
        let row = self
            .reader
            .query_one_raw(sql::stmt(
                self.backend,
                "SELECT r.id, r.candidate_deployment_object_id FROM rollouts r \
                 JOIN deployment_objects d ON d.id = r.candidate_deployment_object_id \
                 WHERE r.stack_id = ? AND r.state IN ('reverted', 'revert_failed') \
                 AND d.yaml_checksum = ? ORDER BY r.id DESC LIMIT 1",
                [stack_id.0.into(), yaml_checksum.into()],
            ))
            .await
            .map_err(db)?;
        let Some(row) = row else {
            return Ok(None);
        };
        let rollout: Uuid = row.try_get("", "id").map_err(db)?;
        let candidate: Uuid = row
            .try_get("", "candidate_deployment_object_id")
            .map_err(db)?;
        Ok(Some((rollout.into(), candidate.into())))
    }

    pub(crate) async fn get_rollout_impl(&self, id: RolloutId) -> Result<Rollout> {
        rows::rollout(rollout_row(&self.reader, id.0).await?)
    }

    pub(crate) async fn list_rollouts_impl(
        &self,
        filter: &RolloutFilter,
        page: &PageRequest,
    ) -> Result<Page<Rollout>> {
        let mut query = rollouts::Entity::find();
        if let Some(stack) = filter.stack_id {
            query = query.filter(rollouts::Column::StackId.eq(stack.0));
        }
        if let Some(state) = filter.state {
            query = query.filter(rollouts::Column::State.eq(state.as_str()));
        }
        let found = keyset(query, rollouts::Column::Id, uuid_cursor(page)?, page)
            .all(&self.reader)
            .await
            .map_err(db)?;
        page_of(found, page, rows::rollout, |r| r.id.to_string())
    }

    pub(crate) async fn rollout_details_impl(&self, id: RolloutId) -> Result<RolloutDetails> {
        // One snapshot, so the parts belong to the rollout as read.
        let read = crate::rollout_snapshot::read_transaction(self).await?;
        let rollout = rows::rollout(rollout_row(&read, id.0).await?)?;
        let mut parts = parts_of(&read, id.0, false).await?;
        read.commit().await.map_err(db)?;
        parts.agents.sort_by_key(|a| (a.wave, a.agent_id));
        Ok(RolloutDetails {
            rollout,
            waves: parts.waves,
            agents: parts.agents,
            gate_evaluations: parts.gate_evaluations,
            commands: parts.commands,
        })
    }
}
