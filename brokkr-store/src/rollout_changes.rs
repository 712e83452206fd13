//! One evaluation's change of a rollout, in one transaction: the stack locked first
//! (as appends and deletions lock it, so they take turns), the rollout's row locked
//! and its version compared, then a few statements whatever the number of agents:
//! the rollout updated, waves and agents upserted, pins removed and added, the
//! release head moved, gate evaluations inserted, commands marked taken up, each
//! transition and pin audited, each transition sent.

use std::collections::BTreeMap;

use brokkr_core::rollout::{RolloutChange, Transition};
use brokkr_core::store::{Error, Result, next_eval_after, rollout_version_conflict};
use brokkr_core::{
    Actor, AgentId, AuditAction, ResourceKind, Rollout, RolloutState, RolloutSubject, StackId,
    WebhookEvent,
};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveModelTrait, ConnectionTrait, EntityTrait, QuerySelect, Value};
use uuid::Uuid;

use crate::audit::Audit;
use crate::entity::{agent_stack_pins, gate_evaluations, rollout_agents, rollout_waves, rollouts};
use crate::errors::db;
use crate::rollout_appends::unpin_audit;
use crate::rollout_rows::{self as rows, ACTIVE, OPEN, phase_name, stored_u32};
use crate::sql::{self, bind_params};
use crate::write::Write;
use crate::{Backend, SqlStore, append};

/// Rows per statement, far below either database's bind-parameter limit.
const CHUNK: usize = 500;

impl SqlStore {
    pub(crate) async fn apply_rollout_change_impl(
        &self,
        claimant: &str,
        change: RolloutChange,
    ) -> Result<Rollout> {
        let mut write = self.begin().await?;
        let rollout = apply_in(&mut write, claimant, change).await?;
        self.commit(write).await?;
        Ok(rollout)
    }
}

async fn apply_in(write: &mut Write, claimant: &str, change: RolloutChange) -> Result<Rollout> {
    let id = change.rollout_id.0;
    let stack = stack_of(write, id).await?;
    let release_head = lock_stack(write, stack).await?;
    let stored = rollouts::Entity::find_by_id(id)
        .lock_exclusive()
        .one(write.tx())
        .await
        .map_err(db)?
        .ok_or_else(|| Error::not_found("rollout", id))?;
    if stored.version != change.expected_version {
        return Err(rollout_version_conflict(
            change.rollout_id,
            change.expected_version,
            stored.version,
        ));
    }
    let starts = stored.state == RolloutState::Queued.as_str() && change.state.is_active();
    if starts && another_active(write, stack, id).await? {
        return Err(Error::Conflict(format!(
            "rollout {id} cannot start: another rollout of stack {stack} is active"
        )));
    }
    let next_eval_at = next_eval_after(&change, stored.signalled, stored.next_eval_at);
    let updated = rollouts::Model {
        baseline_deployment_object_id: if starts {
            release_head
        } else {
            stored.baseline_deployment_object_id
        },
        state: change.state.as_str().to_owned(),
        state_reason: change.state_reason.clone(),
        version: stored.version + 1,
        started_at: change.started_at,
        deadline_at: change.deadline_at,
        next_eval_at,
        finished_at: change.finished_at,
        updated_at: change.at,
        lease_owner: stored.lease_owner.clone().filter(|owner| owner != claimant),
        lease_until: stored
            .lease_until
            .filter(|_| stored.lease_owner.as_deref() != Some(claimant)),
        signalled: false,
        ..stored
    };
    // Every column set: a model converted as is would count as unchanged.
    rollouts::Entity::update(rollouts::ActiveModel::from(updated.clone()).reset_all())
        .exec(write.tx())
        .await
        .map_err(db)?;
    let rollout = rows::rollout(updated)?;
    write_rows(write, &change).await?;

    let unpin_all = change.unpin_all || change.release || change.state.is_final();
    let unpinned = unpin(write, id, (!unpin_all).then_some(&change.unpin[..])).await?;
    let pinned = if unpin_all {
        Vec::new()
    } else {
        pin(write, &rollout, &change.pin).await?
    };
    write.affect(pinned.iter().chain(&unpinned).copied());
    if change.release {
        release(write, &rollout).await?;
    }
    if rollout.state.is_final() {
        queued_due(write, stack, change.at).await?;
    }
    let mut audits = transitions(write, &rollout, &change);
    audits.extend(pinned.iter().map(|agent| pin_audit(id, *agent)));
    audits.extend(unpinned.iter().map(|agent| unpin_audit(id, *agent)));
    write
        .audit_many(audits.into_iter().map(|audit| (&Actor::System, audit)))
        .await?;
    Ok(rollout)
}

/// The stack of a rollout (never changes), `NotFound` for an unknown rollout.
async fn stack_of(write: &Write, id: Uuid) -> Result<Uuid> {
    rollouts::Entity::find_by_id(id)
        .select_only()
        .column(rollouts::Column::StackId)
        .into_tuple::<Uuid>()
        .one(write.tx())
        .await
        .map_err(db)?
        .ok_or_else(|| Error::not_found("rollout", id))
}

/// Locks the stack's row (PostgreSQL; SQLite's writer holds everything) and reads its
/// release head.
async fn lock_stack(write: &Write, stack: Uuid) -> Result<Option<Uuid>> {
    let lock = match write.backend() {
        Backend::Postgres => " FOR UPDATE",
        Backend::Sqlite => "",
    };
    let query = format!("SELECT release_deployment_object_id FROM stacks WHERE id = ?{lock}");
    let row = write
        .tx()
        .query_one_raw(sql::stmt(write.backend(), &query, [stack.into()]))
        .await
        .map_err(db)?
        .ok_or_else(|| Error::not_found("stack", stack))?;
    row.try_get("", "release_deployment_object_id").map_err(db)
}

/// Whether another rollout of the stack holds its active slot. Under the stack's lock
/// no other change can take it meanwhile.
async fn another_active(write: &Write, stack: Uuid, id: Uuid) -> Result<bool> {
    let query = format!("SELECT id FROM rollouts WHERE stack_id = ? AND {ACTIVE} AND id <> ?");
    let row = write
        .tx()
        .query_one_raw(sql::stmt(
            write.backend(),
            &query,
            [stack.into(), id.into()],
        ))
        .await
        .map_err(db)?;
    Ok(row.is_some())
}

/// Upserts the change's waves and agents, and inserts its gate evaluations and marks
/// its commands taken up: a statement each per chunk.
async fn write_rows(write: &Write, change: &RolloutChange) -> Result<()> {
    let id = change.rollout_id.0;
    // One row per key (the last written wins, as in memory): PostgreSQL refuses an
    // upsert that touches a row twice.
    let waves: BTreeMap<u32, &brokkr_core::RolloutWave> =
        change.waves.iter().map(|w| (w.index, w)).collect();
    let waves = waves
        .into_values()
        .map(|w| rows::wave_row(id, w))
        .collect::<Result<Vec<_>>>()?;
    for chunk in waves.chunks(CHUNK) {
        use rollout_waves::Column;
        rollout_waves::Entity::insert_many(
            chunk.iter().cloned().map(rollout_waves::ActiveModel::from),
        )
        .on_conflict(
            OnConflict::columns([Column::RolloutId, Column::Idx])
                .update_columns([
                    Column::Name,
                    Column::Spec,
                    Column::MaxFailures,
                    Column::State,
                    Column::StartedAt,
                    Column::AllHealthySince,
                    Column::Promoted,
                    Column::Reason,
                    Column::FinishedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(write.tx())
        .await
        .map_err(db)?;
    }
    let agents: BTreeMap<AgentId, &brokkr_core::RolloutAgent> =
        change.agents.iter().map(|a| (a.agent_id, a)).collect();
    let agents = agents
        .into_values()
        .map(|a| rows::agent_row(id, a))
        .collect::<Result<Vec<_>>>()?;
    for chunk in agents.chunks(CHUNK) {
        use rollout_agents::Column;
        rollout_agents::Entity::insert_many(
            chunk.iter().cloned().map(rollout_agents::ActiveModel::from),
        )
        .on_conflict(
            OnConflict::columns([Column::RolloutId, Column::AgentId])
                .update_columns([
                    Column::WaveIdx,
                    Column::State,
                    Column::PinnedAt,
                    Column::HealthySince,
                    Column::UnhealthySince,
                    Column::Reason,
                    Column::UpdatedAt,
                ])
                .to_owned(),
        )
        .exec_without_returning(write.tx())
        .await
        .map_err(db)?;
    }
    let gates = change
        .start_gates
        .iter()
        .map(|g| {
            Ok(gate_evaluations::Model {
                id: g.id.0,
                rollout_id: id,
                wave_idx: stored_u32("wave index", g.wave)?,
                gate: g.gate.clone(),
                phase: phase_name(g.phase).to_owned(),
                attempt: stored_u32("gate attempt", g.attempt)?,
                outcome: None,
                reason: None,
                recheck_at: None,
                decided_by_kind: None,
                decided_by_id: None,
                started_at: change.at,
                finished_at: None,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    for chunk in gates.chunks(CHUNK) {
        // An evaluation written before (one that runs again with its id) keeps its row.
        gate_evaluations::Entity::insert_many(
            chunk
                .iter()
                .cloned()
                .map(gate_evaluations::ActiveModel::from),
        )
        .on_conflict(
            OnConflict::column(gate_evaluations::Column::Id)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(write.tx())
        .await
        .map_err(db)?;
    }
    for chunk in change.consumed_commands.chunks(CHUNK) {
        let mut outcomes = String::new();
        let mut values: Vec<Value> = vec![change.at.into()];
        for command in chunk {
            outcomes.push_str(" WHEN ? THEN ?");
            values.extend([
                Value::from(command.id.0),
                Value::from(command.outcome.clone()),
            ]);
        }
        values.push(id.into());
        values.extend(chunk.iter().map(|c| Value::from(c.id.0)));
        let query = format!(
            "UPDATE rollout_commands SET consumed_at = ?, outcome = CASE id{outcomes} END \
             WHERE rollout_id = ? AND consumed_at IS NULL AND id IN ({})",
            bind_params(chunk.len())
        );
        write
            .tx()
            .execute_raw(sql::stmt(write.backend(), &query, values))
            .await
            .map_err(db)?;
    }
    Ok(())
}

/// Removes the rollout's pins of `agents` (all of them for `None`); answers the agents
/// unpinned.
async fn unpin(write: &Write, rollout: Uuid, agents: Option<&[AgentId]>) -> Result<Vec<AgentId>> {
    let statements: Vec<(String, Vec<Value>)> = match agents {
        None => vec![(String::new(), Vec::new())],
        Some([]) => Vec::new(),
        Some(agents) => agents
            .chunks(CHUNK)
            .map(|chunk| {
                let filter = format!(" AND agent_id IN ({})", bind_params(chunk.len()));
                (filter, chunk.iter().map(|a| Value::from(a.0)).collect())
            })
            .collect(),
    };
    let mut unpinned = Vec::new();
    for (filter, agents) in statements {
        let query =
            format!("DELETE FROM agent_stack_pins WHERE rollout_id = ?{filter} RETURNING agent_id");
        let mut values = vec![Value::from(rollout)];
        values.extend(agents);
        let rows = write
            .tx()
            .query_all_raw(sql::stmt(write.backend(), &query, values))
            .await
            .map_err(db)?;
        for row in rows {
            unpinned.push(row.try_get::<Uuid>("", "agent_id").map_err(db)?.into());
        }
    }
    Ok(unpinned)
}

/// Pins `agents` to the rollout's candidate (replacing a pin they had on the stack);
/// answers them.
async fn pin(write: &Write, rollout: &Rollout, agents: &[AgentId]) -> Result<Vec<AgentId>> {
    use agent_stack_pins::Column;
    let agents = crate::batch::distinct(agents.iter().copied());
    for chunk in agents.chunks(CHUNK) {
        let pins = chunk.iter().map(|agent| {
            agent_stack_pins::ActiveModel::from(agent_stack_pins::Model {
                agent_id: agent.0,
                stack_id: rollout.stack_id.0,
                deployment_object_id: rollout.candidate.0,
                rollout_id: rollout.id.0,
            })
        });
        agent_stack_pins::Entity::insert_many(pins)
            .on_conflict(
                OnConflict::columns([Column::AgentId, Column::StackId])
                    .update_columns([Column::DeploymentObjectId, Column::RolloutId])
                    .to_owned(),
            )
            .exec_without_returning(write.tx())
            .await
            .map_err(db)?;
    }
    Ok(agents)
}

/// Moves the stack's release head to the candidate, makes it the baseline of the
/// stack's queued rollout, and wakes every agent of the stack.
async fn release(write: &mut Write, rollout: &Rollout) -> Result<()> {
    let (stack, candidate) = (rollout.stack_id.0, rollout.candidate.0);
    write
        .tx()
        .execute_raw(sql::stmt(
            write.backend(),
            "UPDATE stacks SET release_deployment_object_id = ? WHERE id = ?",
            [candidate.into(), stack.into()],
        ))
        .await
        .map_err(db)?;
    let query = format!(
        "UPDATE rollouts SET baseline_deployment_object_id = ? \
         WHERE stack_id = ? AND {OPEN} AND state = 'queued'"
    );
    write
        .tx()
        .execute_raw(sql::stmt(
            write.backend(),
            &query,
            [candidate.into(), stack.into()],
        ))
        .await
        .map_err(db)?;
    let agents = append::agents_of(write, &[StackId::from(stack)]).await?;
    write.affect(agents);
    Ok(())
}

/// Makes the stack's queued rollout due at `at`: the active slot is free.
async fn queued_due(write: &Write, stack: Uuid, at: chrono::DateTime<chrono::Utc>) -> Result<()> {
    let query = format!(
        "UPDATE rollouts SET next_eval_at = ? WHERE stack_id = ? AND {OPEN} AND state = 'queued'"
    );
    write
        .tx()
        .execute_raw(sql::stmt(
            write.backend(),
            &query,
            [at.into(), stack.into()],
        ))
        .await
        .map_err(db)?;
    Ok(())
}

/// Sends each transition of the change and answers its audit records.
fn transitions(write: &mut Write, rollout: &Rollout, change: &RolloutChange) -> Vec<Audit> {
    let subject = RolloutSubject::from(rollout);
    let at = change.at;
    let mut audits = Vec::with_capacity(change.transitions.len());
    for transition in &change.transitions {
        let (summary, event) = match transition {
            Transition::Rollout { from, to, reason } => (
                transition.summary(rollout.id),
                WebhookEvent::rollout_state_changed(
                    subject,
                    Some(*from),
                    *to,
                    reason.as_deref(),
                    at,
                ),
            ),
            Transition::Wave {
                index,
                from,
                to,
                reason,
            } => {
                let summary = transition.summary(rollout.id);
                let name = change
                    .waves
                    .iter()
                    .find(|w| w.index == *index)
                    .map(|w| w.name.as_str());
                let event = WebhookEvent::rollout_wave_changed(
                    subject,
                    *index,
                    name,
                    *from,
                    *to,
                    reason.as_deref(),
                    at,
                );
                (summary, event)
            }
        };
        audits.push(Audit::new(
            AuditAction::Update,
            ResourceKind::Rollout,
            rollout.id,
            summary,
        ));
        write.emit(event);
    }
    audits
}

/// The audit record of one agent pinned to a rollout's candidate.
fn pin_audit(rollout: Uuid, agent: AgentId) -> Audit {
    Audit::new(
        AuditAction::Assign,
        ResourceKind::Rollout,
        rollout,
        format!("pinned agent {agent} to the candidate of rollout {rollout}"),
    )
}
