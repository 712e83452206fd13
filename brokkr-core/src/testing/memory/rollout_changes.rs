//! What changes rollouts: the driver's claims and changes, operators' commands, gate
//! outcomes.

use chrono::{DateTime, Utc};

use super::rollouts::Pin;
use super::state::now;
use super::{MemoryStore, State};
use crate::id::{AgentId, GateEvaluationId, RolloutCommandId, RolloutId};
use crate::model::{
    Actor, AuditAction, GateEvaluation, ResourceKind, Rollout, RolloutCommand, RolloutCommandKind,
    RolloutState, RolloutSubject, WebhookEvent,
};
use crate::rollout::{RolloutChange, Transition};
use crate::store::{
    Error, GateOutcomeRecord, Result, next_eval_after, rollout_final, rollout_version_conflict,
};

pub(super) fn apply_rollout_change(
    store: &MemoryStore,
    claimant: &str,
    change: RolloutChange,
) -> Result<Rollout> {
    let (rollout, woken) = store.state().apply_change(claimant, change)?;
    if !woken.is_empty() {
        store.publish(woken);
    }
    Ok(rollout)
}

impl State {
    /// Checks the change against the stored rollout, then writes it whole; answers
    /// the rollout and the agents to wake.
    fn apply_change(
        &mut self,
        claimant: &str,
        change: RolloutChange,
    ) -> Result<(Rollout, Vec<AgentId>)> {
        let id = change.rollout_id;
        let row = self
            .rollouts
            .rows
            .get(&id)
            .ok_or_else(|| Error::not_found("rollout", id))?;
        let stored = row.rollout.clone();
        if stored.version != change.expected_version {
            return Err(rollout_version_conflict(
                id,
                change.expected_version,
                stored.version,
            ));
        }
        let stack = stored.stack_id;
        let starts = stored.state == RolloutState::Queued && change.state.is_active();
        if starts
            && self
                .rollouts
                .active_of(stack)
                .is_some_and(|other| other != id)
        {
            return Err(Error::Conflict(format!(
                "rollout {id} cannot start: another rollout of stack {stack} is active"
            )));
        }
        let at = change.at;
        let release_head = self.rollouts.release.get(&stack).copied();
        let row = self
            .rollouts
            .rows
            .get_mut(&id)
            .expect("found above, under the same lock");
        let next_eval_at = next_eval_after(&change, row.signalled, row.rollout.next_eval_at);
        let rollout = &mut row.rollout;
        if starts {
            rollout.baseline = release_head;
        }
        rollout.state = change.state;
        rollout.state_reason = change.state_reason.clone();
        rollout.started_at = change.started_at;
        rollout.deadline_at = change.deadline_at;
        rollout.next_eval_at = next_eval_at;
        rollout.finished_at = change.finished_at;
        rollout.updated_at = at;
        rollout.version += 1;
        row.signalled = false;
        if row.lease_owner.as_deref() == Some(claimant) {
            row.lease_owner = None;
            row.lease_until = None;
        }
        let rollout = row.rollout.clone();
        let wave_names: Vec<(u32, String)> = change
            .waves
            .iter()
            .map(|w| (w.index, w.name.clone()))
            .collect();
        for wave in change.waves {
            self.rollouts.waves.insert((id, wave.index), wave);
        }
        for agent in change.agents {
            self.rollouts.agents.insert((id, agent.agent_id), agent);
        }
        let mut woken = Vec::new();
        let unpin_all = change.unpin_all || change.release || change.state.is_final();
        let unpinned = if unpin_all {
            self.rollouts.unpin(id, None)
        } else {
            self.rollouts.unpin(id, Some(&change.unpin))
        };
        let mut pinned = Vec::with_capacity(change.pin.len());
        if !unpin_all {
            let mut agents = change.pin;
            agents.sort_unstable();
            agents.dedup();
            for agent in agents {
                let pin = Pin {
                    object: rollout.candidate,
                    rollout: id,
                };
                self.rollouts.pins.insert((agent, stack), pin);
                pinned.push(agent);
            }
        }
        woken.extend(pinned.iter().chain(&unpinned));
        if change.release {
            self.rollouts.release.insert(stack, rollout.candidate);
            for row in self.rollouts.rows.values_mut() {
                if row.rollout.stack_id == stack && row.rollout.state == RolloutState::Queued {
                    row.rollout.baseline = Some(rollout.candidate);
                }
            }
            woken.extend(self.agents_targeting(stack));
        }
        for gate in change.start_gates {
            let evaluation = GateEvaluation {
                id: gate.id,
                rollout_id: id,
                wave: gate.wave,
                gate: gate.gate,
                phase: gate.phase,
                attempt: gate.attempt,
                outcome: None,
                reason: None,
                recheck_at: None,
                decided_by: None,
                started_at: at,
                finished_at: None,
            };
            // An evaluation written before (one that runs again with its id) keeps its row.
            self.rollouts
                .gates
                .entry(evaluation.id)
                .or_insert(evaluation);
        }
        for consumed in change.consumed_commands {
            if let Some(command) = self.rollouts.commands.get_mut(&consumed.id)
                && command.rollout_id == id
                && command.consumed_at.is_none()
            {
                command.consumed_at = Some(at);
                command.outcome = Some(consumed.outcome);
            }
        }
        self.record_transitions(&rollout, &change.transitions, &wave_names);
        self.audit_pins(&Actor::System, id, &pinned, &unpinned, at);
        if rollout.state.is_final() {
            for row in self.rollouts.rows.values_mut() {
                if row.rollout.stack_id == stack && row.rollout.state == RolloutState::Queued {
                    row.rollout.next_eval_at = Some(at);
                }
            }
        }
        Ok((rollout, woken))
    }

    /// Audits and sends each transition of a change; a wave's event names it when the
    /// change wrote the wave.
    fn record_transitions(
        &mut self,
        rollout: &Rollout,
        transitions: &[Transition],
        wave_names: &[(u32, String)],
    ) {
        let at = rollout.updated_at;
        let subject = RolloutSubject::from(rollout);
        for transition in transitions {
            match transition {
                Transition::Rollout { from, to, reason } => {
                    self.record_transition(
                        &Actor::System,
                        subject,
                        *from,
                        *to,
                        reason.as_deref(),
                        at,
                    );
                }
                Transition::Wave {
                    index,
                    from,
                    to,
                    reason,
                } => {
                    let summary = transition.summary(rollout.id);
                    self.audit(
                        &Actor::System,
                        AuditAction::Update,
                        ResourceKind::Rollout,
                        rollout.id,
                        summary,
                        at,
                    );
                    let name = wave_names
                        .iter()
                        .find(|(i, _)| i == index)
                        .map(|(_, name)| name.as_str());
                    self.emit(WebhookEvent::rollout_wave_changed(
                        subject,
                        *index,
                        name,
                        *from,
                        *to,
                        reason.as_deref(),
                        at,
                    ));
                }
            }
        }
    }
}

pub(super) fn claim_due_rollouts(
    store: &MemoryStore,
    claimant: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<RolloutId>> {
    let mut state = store.state();
    let mut due: Vec<(DateTime<Utc>, RolloutId)> = state
        .rollouts
        .rows
        .values()
        .filter(|row| !row.rollout.state.is_final())
        .filter(|row| {
            row.lease_owner.is_none()
                || row.lease_owner.as_deref() == Some(claimant)
                || row.lease_until.is_none_or(|until| until <= now)
        })
        .filter_map(|row| {
            let next = row.rollout.next_eval_at?;
            (next <= now).then_some((next, row.rollout.id))
        })
        .collect();
    due.sort();
    due.truncate(limit);
    let claimed: Vec<RolloutId> = due.into_iter().map(|(_, id)| id).collect();
    for id in &claimed {
        let row = state
            .rollouts
            .rows
            .get_mut(id)
            .expect("listed under the same lock");
        row.lease_owner = Some(claimant.to_owned());
        row.lease_until = Some(lease_until);
        row.signalled = false;
    }
    Ok(claimed)
}

pub(super) fn release_rollout_lease(
    store: &MemoryStore,
    claimant: &str,
    id: RolloutId,
) -> Result<()> {
    let mut state = store.state();
    let row = state
        .rollouts
        .rows
        .get_mut(&id)
        .ok_or_else(|| Error::not_found("rollout", id))?;
    if row.lease_owner.as_deref() == Some(claimant) {
        row.lease_owner = None;
        row.lease_until = None;
    }
    Ok(())
}

pub(super) fn give_rollout_command(
    store: &MemoryStore,
    actor: &Actor,
    id: RolloutId,
    kind: RolloutCommandKind,
) -> Result<RolloutCommand> {
    let mut state = store.state();
    let at = now();
    let row = state
        .rollouts
        .rows
        .get_mut(&id)
        .ok_or_else(|| Error::not_found("rollout", id))?;
    if row.rollout.state.is_final() {
        return Err(rollout_final(id, row.rollout.state));
    }
    row.signal(at);
    let command = RolloutCommand {
        id: RolloutCommandId::new(),
        rollout_id: id,
        kind,
        actor: *actor,
        created_at: at,
        consumed_at: None,
        outcome: None,
    };
    state.rollouts.commands.insert(command.id, command.clone());
    let summary = format!("gave rollout {id} the command {}", kind.as_str());
    state.audit(
        actor,
        AuditAction::Update,
        ResourceKind::Rollout,
        id,
        summary,
        at,
    );
    Ok(command)
}

pub(super) fn record_gate_outcome(
    store: &MemoryStore,
    id: GateEvaluationId,
    record: GateOutcomeRecord,
) -> Result<GateEvaluation> {
    let mut state = store.state();
    let evaluation = state
        .rollouts
        .gates
        .get_mut(&id)
        .ok_or_else(|| Error::not_found("gate evaluation", id))?;
    if evaluation.outcome.is_some() {
        return Ok(evaluation.clone());
    }
    evaluation.outcome = Some(record.outcome);
    evaluation.reason = record.reason;
    evaluation.recheck_at = record.recheck_at;
    evaluation.decided_by = record.decided_by;
    evaluation.finished_at = Some(record.at);
    let evaluation = evaluation.clone();
    let at = now();
    if let Some(row) = state.rollouts.rows.get_mut(&evaluation.rollout_id) {
        row.signal(at);
    }
    if let Some(approver) = &evaluation.decided_by {
        let summary = gate_summary(&evaluation);
        state.audit(
            approver,
            AuditAction::Update,
            ResourceKind::Rollout,
            evaluation.rollout_id,
            summary,
            at,
        );
    }
    Ok(evaluation)
}

/// The audit summary of a gate outcome someone decided.
pub(super) fn gate_summary(evaluation: &GateEvaluation) -> String {
    let outcome = evaluation.outcome.map_or("none", |o| o.as_str());
    format!(
        "gate {:?} of wave {} of rollout {}: {outcome}",
        evaluation.gate, evaluation.wave, evaluation.rollout_id
    )
}
