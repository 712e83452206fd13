//! What operators and gates tell a rollout between evaluations: commands, recorded
//! for the next evaluation, and gate outcomes, written once. Both make the rollout due
//! now in their transaction (`rollout_due`).

use brokkr_core::store::{Error, GateOutcomeRecord, Result, rollout_final};
use brokkr_core::{
    Actor, AuditAction, GateEvaluation, GateEvaluationId, ResourceKind, RolloutCommand,
    RolloutCommandId, RolloutCommandKind, RolloutId,
};
use sea_orm::{ConnectionTrait, EntityTrait, FromQueryResult, QuerySelect, Value};

use crate::audit::Audit;
use crate::entity::{gate_evaluations, rollout_commands, rollouts};
use crate::errors::db;
use crate::rollout_rows::{self as rows, rollout_state};
use crate::{SqlStore, rollout_due, sql};

impl SqlStore {
    pub(crate) async fn give_rollout_command_impl(
        &self,
        actor: &Actor,
        id: RolloutId,
        kind: RolloutCommandKind,
    ) -> Result<RolloutCommand> {
        let write = self.begin().await?;
        // Locked, so it cannot end between the check and the command.
        let state: String = rollouts::Entity::find_by_id(id.0)
            .select_only()
            .column(rollouts::Column::State)
            .lock_exclusive()
            .into_tuple()
            .one(write.tx())
            .await
            .map_err(db)?
            .ok_or_else(|| Error::not_found("rollout", id))?;
        let state = rollout_state(&state)?;
        if state.is_final() {
            return Err(rollout_final(id, state));
        }
        let row = rollout_commands::Model {
            id: RolloutCommandId::new().0,
            rollout_id: id.0,
            kind: kind.as_str().to_owned(),
            actor_kind: actor.kind().as_str().to_owned(),
            actor_id: actor.id(),
            created_at: write.now,
            consumed_at: None,
            outcome: None,
        };
        rollout_commands::Entity::insert(rollout_commands::ActiveModel::from(row.clone()))
            .exec_without_returning(write.tx())
            .await
            .map_err(db)?;
        rollout_due::rollout(&write, id.0).await?;
        let summary = format!("gave rollout {id} the command {}", kind.as_str());
        let audit = Audit::new(AuditAction::Update, ResourceKind::Rollout, id, summary);
        write.audit(actor, audit).await?;
        self.commit(write).await?;
        rows::command(row)
    }

    pub(crate) async fn record_gate_outcome_impl(
        &self,
        id: GateEvaluationId,
        record: GateOutcomeRecord,
    ) -> Result<GateEvaluation> {
        let write = self.begin().await?;
        let (decided_kind, decided_id) = match &record.decided_by {
            Some(actor) => (Some(actor.kind().as_str()), actor.id()),
            None => (None, None),
        };
        // Only an evaluation without an outcome takes one: a second answer, or one
        // racing the first, changes nothing.
        let written = write
            .tx()
            .query_one_raw(sql::stmt(
                write.backend(),
                "UPDATE gate_evaluations SET outcome = ?, reason = ?, recheck_at = ?, \
                 decided_by_kind = ?, decided_by_id = ?, finished_at = ? \
                 WHERE id = ? AND outcome IS NULL RETURNING *",
                [
                    Value::from(record.outcome.as_str()),
                    Value::from(record.reason.clone()),
                    Value::from(record.recheck_at),
                    Value::from(decided_kind),
                    Value::from(decided_id),
                    Value::from(record.at),
                    Value::from(id.0),
                ],
            ))
            .await
            .map_err(db)?;
        let Some(written) = written else {
            drop(write);
            let stored = gate_evaluations::Entity::find_by_id(id.0)
                .one(&self.reader)
                .await
                .map_err(db)?
                .ok_or_else(|| Error::not_found("gate evaluation", id))?;
            return rows::gate_evaluation(stored);
        };
        let evaluation = rows::gate_evaluation(
            gate_evaluations::Model::from_query_result(&written, "").map_err(db)?,
        )?;
        rollout_due::rollout(&write, evaluation.rollout_id.0).await?;
        if let Some(approver) = &evaluation.decided_by {
            let summary = format!(
                "gate {:?} of wave {} of rollout {}: {}",
                evaluation.gate,
                evaluation.wave,
                evaluation.rollout_id,
                record.outcome.as_str()
            );
            let audit = Audit::new(
                AuditAction::Update,
                ResourceKind::Rollout,
                evaluation.rollout_id,
                summary,
            );
            write.audit(approver, audit).await?;
        }
        self.commit(write).await?;
        Ok(evaluation)
    }
}
