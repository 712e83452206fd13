//! Rollouts in memory: the rows, and what the existing writes do to them (appends,
//! deletions, reports and placement changes; see `RolloutStore`'s doc). The
//! `RolloutStore` methods themselves are in `rollout_reads.rs` and
//! `rollout_changes.rs`.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};

use super::State;
use crate::id::{
    AgentId, DeploymentObjectId, GateEvaluationId, RolloutCommandId, RolloutId, StackId,
};
use crate::model::{
    Actor, AuditAction, DeploymentObject, GateEvaluation, NewDeploymentObject, ResourceKind,
    Rollout, RolloutAgent, RolloutCommand, RolloutState, RolloutSubject, RolloutWave, WebhookEvent,
};
use crate::rollout::RolloutPolicy;
use crate::store::{AppendEffect, Result, ended_by_append, needs_signal, rollout_in_progress};

/// Every rollout row, and what stacks and agents hold of rollouts.
#[derive(Debug, Default)]
pub(super) struct Rollouts {
    /// Stacks' rollout policies; a stack without one has no entry.
    pub(super) policies: HashMap<StackId, RolloutPolicy>,
    /// Stacks' release heads: what agents without a pin get.
    pub(super) release: HashMap<StackId, DeploymentObjectId>,
    pub(super) rows: BTreeMap<RolloutId, RolloutRow>,
    pub(super) waves: BTreeMap<(RolloutId, u32), RolloutWave>,
    pub(super) agents: BTreeMap<(RolloutId, AgentId), RolloutAgent>,
    /// Agents pinned to a rollout's candidate, by (agent, stack).
    pub(super) pins: BTreeMap<(AgentId, StackId), Pin>,
    pub(super) gates: BTreeMap<GateEvaluationId, GateEvaluation>,
    pub(super) commands: BTreeMap<RolloutCommandId, RolloutCommand>,
}

/// A rollout and what only the store keeps of it.
#[derive(Debug, Clone)]
pub(super) struct RolloutRow {
    pub(super) rollout: Rollout,
    pub(super) lease_owner: Option<String>,
    pub(super) lease_until: Option<DateTime<Utc>>,
    /// Made due (by a report, a placement change, a command or a gate outcome) since
    /// its last claim: the evaluation in flight may not have seen why.
    pub(super) signalled: bool,
}

/// One agent's pin to a rollout's candidate.
#[derive(Debug, Clone, Copy)]
pub(super) struct Pin {
    pub(super) object: DeploymentObjectId,
    pub(super) rollout: RolloutId,
}

impl Rollouts {
    /// The stack's rollouts that are queued or active, oldest first.
    pub(super) fn open_of(&self, stack: StackId) -> Vec<RolloutId> {
        self.rows
            .values()
            .filter(|row| row.rollout.stack_id == stack && !row.rollout.state.is_final())
            .map(|row| row.rollout.id)
            .collect()
    }

    /// The stack's active rollout, if any.
    pub(super) fn active_of(&self, stack: StackId) -> Option<RolloutId> {
        self.rows
            .values()
            .find(|row| row.rollout.stack_id == stack && row.rollout.state.is_active())
            .map(|row| row.rollout.id)
    }

    /// Removes the pins of `rollout` (all of them when `agents` is `None`); answers
    /// the agents unpinned.
    pub(super) fn unpin(&mut self, rollout: RolloutId, agents: Option<&[AgentId]>) -> Vec<AgentId> {
        let mut removed = Vec::new();
        self.pins.retain(|(agent, _), pin| {
            let drop = pin.rollout == rollout && agents.is_none_or(|only| only.contains(agent));
            if drop {
                removed.push(*agent);
            }
            !drop
        });
        removed
    }

    /// The object agent `agent` gets for `stack`: its pin's, else the release head.
    pub(super) fn object_for(&self, agent: AgentId, stack: StackId) -> Option<DeploymentObjectId> {
        self.pins
            .get(&(agent, stack))
            .map(|pin| pin.object)
            .or_else(|| self.release.get(&stack).copied())
    }

    /// Whether the agent has ever been sent anything of the stack: a release, or its
    /// pin. Without either a removed target has nothing to remove.
    pub(super) fn ever_sent(&self, agent: AgentId, stack: StackId) -> bool {
        self.object_for(agent, stack).is_some()
    }
}

impl State {
    /// What appending `new` does to its stack's rollouts, refused (writing nothing)
    /// when the policy rejects it.
    pub(super) fn append_effect(&self, new: &NewDeploymentObject) -> Result<AppendEffect> {
        let stack = new.stack_id();
        let open = !self.rollouts.open_of(stack).is_empty();
        match AppendEffect::of(new, self.rollouts.policies.get(&stack), open) {
            AppendEffect::Reject => Err(rollout_in_progress(stack)),
            effect => Ok(effect),
        }
    }

    /// Writes what an append did to its stack's rollouts: the release head moved, or a
    /// rollout queued; the open rollouts it ends ended, their pins removed; each
    /// transition and unpin audited by `actor`, each transition sent. Answers the
    /// agents whose target state changed.
    pub(super) fn apply_append_effect(
        &mut self,
        actor: &Actor,
        effect: AppendEffect,
        object: &DeploymentObject,
        at: DateTime<Utc>,
    ) -> Vec<AgentId> {
        let stack = object.stack_id;
        let mut woken = Vec::new();
        let reason = |end| ended_by_append(end, object.id);
        for id in self.rollouts.open_of(stack) {
            let state = self.rollouts.rows[&id].rollout.state;
            let Some(end) = effect.ends(state) else {
                continue;
            };
            self.end_rollout(actor, id, end, &reason(end), at);
            let unpinned = self.rollouts.unpin(id, None);
            self.audit_pins(actor, id, &[], &unpinned, at);
            woken.extend(unpinned);
        }
        match effect {
            AppendEffect::Release { .. } => {
                self.rollouts.release.insert(stack, object.id);
                woken.extend(self.agents_targeting(stack));
            }
            AppendEffect::Queue { .. } => self.queue_rollout(actor, object, at),
            AppendEffect::Reject => {}
        }
        woken
    }

    /// Queues a rollout of `object` under its stack's policy, due now.
    fn queue_rollout(&mut self, actor: &Actor, object: &DeploymentObject, at: DateTime<Utc>) {
        let stack = object.stack_id;
        let policy = self.rollouts.policies[&stack].clone();
        let baseline = self.rollouts.release.get(&stack).copied();
        let rollout = Rollout::queued(stack, object.id, baseline, policy, *actor, at);
        let summary = format!(
            "queued rollout {} of deployment object {} on stack {stack}",
            rollout.id, object.id
        );
        self.audit(
            actor,
            AuditAction::Create,
            ResourceKind::Rollout,
            rollout.id,
            summary,
            at,
        );
        self.emit(WebhookEvent::rollout_state_changed(
            (&rollout).into(),
            None,
            RolloutState::Queued,
            None,
            at,
        ));
        let row = RolloutRow {
            rollout,
            lease_owner: None,
            lease_until: None,
            signalled: false,
        };
        self.rollouts.rows.insert(row.rollout.id, row);
    }

    /// Ends an open rollout outside an evaluation (an append or a deletion), audited
    /// and sent as a transition.
    fn end_rollout(
        &mut self,
        actor: &Actor,
        id: RolloutId,
        end: RolloutState,
        reason: &str,
        at: DateTime<Utc>,
    ) {
        let row = self
            .rollouts
            .rows
            .get_mut(&id)
            .expect("an open rollout listed under the same lock");
        let from = row.rollout.state;
        let rollout = &mut row.rollout;
        rollout.state = end;
        rollout.state_reason = Some(reason.to_owned());
        rollout.next_eval_at = None;
        rollout.finished_at = Some(at);
        rollout.updated_at = at;
        rollout.version += 1;
        row.lease_owner = None;
        row.lease_until = None;
        let subject = RolloutSubject::from(&*rollout);
        self.record_transition(actor, subject, from, end, Some(reason), at);
    }

    /// Audits and sends one transition of a rollout.
    pub(super) fn record_transition(
        &mut self,
        actor: &Actor,
        rollout: RolloutSubject,
        from: RolloutState,
        to: RolloutState,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) {
        let summary = crate::rollout::transition_summary(rollout.id, from, to, reason);
        self.audit(
            actor,
            AuditAction::Update,
            ResourceKind::Rollout,
            rollout.id,
            summary,
            at,
        );
        self.emit(WebhookEvent::rollout_state_changed(
            rollout,
            Some(from),
            to,
            reason,
            at,
        ));
    }

    /// One audit record per agent pinned (`assign`) and unpinned (`unassign`).
    pub(super) fn audit_pins(
        &mut self,
        actor: &Actor,
        rollout: RolloutId,
        pinned: &[AgentId],
        unpinned: &[AgentId],
        at: DateTime<Utc>,
    ) {
        for agent in pinned {
            let summary = format!("pinned agent {agent} to the candidate of rollout {rollout}");
            self.audit(
                actor,
                AuditAction::Assign,
                ResourceKind::Rollout,
                rollout,
                summary,
                at,
            );
        }
        for agent in unpinned {
            let summary = format!("unpinned agent {agent} from rollout {rollout}");
            self.audit(
                actor,
                AuditAction::Unassign,
                ResourceKind::Rollout,
                rollout,
                summary,
                at,
            );
        }
    }

    /// Makes the active rollouts of `stacks` due at `at`: a report or a placement
    /// change they have not seen. Skipped for one already due and not claimed, which
    /// its next evaluation sees anyway.
    pub(super) fn poke_rollouts(
        &mut self,
        stacks: impl IntoIterator<Item = StackId>,
        at: DateTime<Utc>,
    ) {
        for stack in stacks {
            let Some(id) = self.rollouts.active_of(stack) else {
                continue;
            };
            self.rollouts
                .rows
                .get_mut(&id)
                .expect("found under the same lock")
                .signal(at);
        }
    }
}

impl RolloutRow {
    /// Makes the rollout due at `at`, remembering it for an evaluation in flight.
    pub(super) fn signal(&mut self, at: DateTime<Utc>) {
        let claimed = self.lease_owner.is_some();
        if !needs_signal(self.rollout.state, self.rollout.next_eval_at, claimed, at) {
            return;
        }
        self.rollout.next_eval_at = Some(at);
        self.signalled = true;
    }
}
