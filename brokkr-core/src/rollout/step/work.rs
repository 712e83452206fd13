//! One evaluation's working copy of a rollout: the rows as they change, the
//! transitions they went through, the timers they set, and how the result becomes a
//! [`RolloutChange`] holding only what changed.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::id::AgentId;
use crate::model::{RolloutAgent, RolloutAgentState, RolloutState, RolloutWave, WaveState};
use crate::rollout::{
    AgentView, ConsumedCommand, NewGateEvaluation, RolloutChange, RolloutPolicy, RolloutSnapshot,
    Transition,
};

use super::gates::GateBook;

/// A rollout being evaluated.
pub(super) struct Work<'s> {
    pub(super) snap: &'s RolloutSnapshot,
    pub(super) policy: &'s RolloutPolicy,
    pub(super) now: DateTime<Utc>,
    stale_after: chrono::Duration,
    pub(super) state: RolloutState,
    pub(super) reason: Option<String>,
    /// While running: what holds it back this evaluation (a cap, a gate), which
    /// becomes its `state_reason`.
    pub(super) hold: Option<String>,
    pub(super) started_at: Option<DateTime<Utc>>,
    pub(super) deadline_at: Option<DateTime<Utc>>,
    pub(super) finished_at: Option<DateTime<Utc>>,
    pub(super) waves: Vec<RolloutWave>,
    pub(super) agents: Vec<RolloutAgent>,
    /// Per wave, its agents' positions in `agents`, by agent id.
    pub(super) members: Vec<Vec<usize>>,
    agent_index: HashMap<AgentId, usize>,
    fleet_index: HashMap<AgentId, usize>,
    pub(super) gates: GateBook<'s>,
    pub(super) unpin_all: bool,
    pub(super) release: bool,
    pub(super) start_gates: Vec<NewGateEvaluation>,
    pub(super) consumed: Vec<ConsumedCommand>,
    pub(super) transitions: Vec<Transition>,
}

impl<'s> Work<'s> {
    pub(super) fn new(
        snap: &'s RolloutSnapshot,
        now: DateTime<Utc>,
        stale_after: chrono::Duration,
    ) -> Self {
        let rollout = &snap.rollout;
        let fleet_index = snap
            .fleet
            .iter()
            .enumerate()
            .map(|(i, view)| (view.agent_id, i))
            .collect();
        let mut work = Self {
            snap,
            policy: &rollout.policy,
            now,
            stale_after,
            state: rollout.state,
            reason: rollout.state_reason.clone(),
            hold: None,
            started_at: rollout.started_at,
            deadline_at: rollout.deadline_at,
            finished_at: rollout.finished_at,
            waves: snap.waves.clone(),
            agents: snap.agents.clone(),
            members: Vec::new(),
            agent_index: HashMap::new(),
            fleet_index,
            gates: GateBook::new(&snap.gate_evaluations),
            unpin_all: false,
            release: false,
            start_gates: Vec::new(),
            consumed: Vec::new(),
            transitions: Vec::new(),
        };
        work.index_agents();
        work
    }

    /// Rebuilds the agent index and the wave membership from `agents`.
    pub(super) fn index_agents(&mut self) {
        self.agent_index = self
            .agents
            .iter()
            .enumerate()
            .map(|(i, a)| (a.agent_id, i))
            .collect();
        self.members = vec![Vec::new(); self.waves.len()];
        for (i, agent) in self.agents.iter().enumerate() {
            // A row naming a wave that does not exist is bad data; it is left out
            // of every wave rather than trusted.
            if let Some(members) = self.members.get_mut(agent.wave as usize) {
                members.push(i);
            }
        }
        self.sort_members();
    }

    pub(super) fn sort_members(&mut self) {
        for members in &mut self.members {
            members.sort_by_key(|&i| self.agents[i].agent_id);
        }
    }

    /// The agent as the snapshot saw it: placement, reports, heartbeat.
    pub(super) fn view(&self, agent_id: AgentId) -> Option<&'s AgentView> {
        let snap: &'s RolloutSnapshot = self.snap;
        self.fleet_index.get(&agent_id).map(|&i| &snap.fleet[i])
    }

    pub(super) fn agent_position(&self, agent_id: AgentId) -> Option<usize> {
        self.agent_index.get(&agent_id).copied()
    }

    /// Adds an agent row (a late joiner) and returns its position.
    pub(super) fn push_agent(&mut self, row: RolloutAgent) -> usize {
        let i = self.agents.len();
        self.agent_index.insert(row.agent_id, i);
        if let Some(members) = self.members.get_mut(row.wave as usize) {
            members.push(i);
        }
        self.agents.push(row);
        i
    }

    pub(super) fn push_wave(&mut self, row: RolloutWave) -> usize {
        self.waves.push(row);
        self.members.push(Vec::new());
        self.waves.len() - 1
    }

    /// Stale: no heartbeat within `stale_after` of now, or never one.
    pub(super) fn is_stale(&self, view: Option<&AgentView>) -> bool {
        self.stale_at(view).is_none_or(|at| at <= self.now)
    }

    /// When an agent's silence makes it stale, if it has heartbeated at all.
    pub(super) fn stale_at(&self, view: Option<&AgentView>) -> Option<DateTime<Utc>> {
        let heartbeat = view?.last_heartbeat?;
        // One millisecond past the window: a heartbeat exactly `stale_after` ago is
        // still within it.
        Some(later(
            later(heartbeat, self.stale_after),
            chrono::Duration::milliseconds(1),
        ))
    }

    pub(super) fn progress_deadline(&self) -> chrono::Duration {
        self.policy.progress_deadline.as_chrono()
    }

    /// The first wave that has not succeeded.
    pub(super) fn current_wave(&self) -> Option<usize> {
        self.waves
            .iter()
            .position(|w| w.state != WaveState::Succeeded)
    }

    /// Moves the rollout, recording the transition once.
    pub(super) fn set_rollout(&mut self, to: RolloutState, reason: Option<String>) {
        if self.state != to {
            self.transitions.push(Transition::Rollout {
                from: self.state,
                to,
                reason: reason.clone(),
            });
        }
        self.state = to;
        self.reason = reason;
        if to.is_final() {
            self.finished_at = Some(self.now);
        }
    }

    /// Moves wave `w`, recording the transition once.
    pub(super) fn set_wave(&mut self, w: usize, to: WaveState, reason: Option<String>) {
        let now = self.now;
        let wave = &mut self.waves[w];
        if wave.state == to {
            wave.reason = reason;
            return;
        }
        self.transitions.push(Transition::Wave {
            index: wave.index,
            from: wave.state,
            to,
            reason: reason.clone(),
        });
        if wave.state == WaveState::Pending {
            wave.started_at = Some(now);
        }
        if matches!(to, WaveState::Succeeded | WaveState::Failed) {
            wave.finished_at = Some(now);
        }
        if !matches!(
            to,
            WaveState::Baking | WaveState::Verifying | WaveState::Succeeded
        ) {
            wave.all_healthy_since = None;
        }
        wave.state = to;
        wave.reason = reason;
    }

    /// Moves agent `i`; `updated_at` is when its state last changed.
    pub(super) fn set_agent(&mut self, i: usize, to: RolloutAgentState, reason: Option<String>) {
        let agent = &mut self.agents[i];
        if agent.state != to {
            agent.state = to;
            agent.updated_at = self.now;
        }
        agent.reason = reason;
    }

    /// Writes the evaluation's result: only changed rows, pins by comparing each
    /// agent's state before and after.
    pub(super) fn finish(self) -> RolloutChange {
        let snap = self.snap;
        let next_eval_at = super::timers::next_eval(&self);
        let waves = self
            .waves
            .iter()
            .enumerate()
            .filter(|(i, wave)| snap.waves.get(*i) != Some(*wave))
            .map(|(_, wave)| wave.clone())
            .collect();
        let changed_agents: Vec<(usize, &RolloutAgent)> = self
            .agents
            .iter()
            .enumerate()
            .filter(|(i, agent)| snap.agents.get(*i) != Some(*agent))
            .collect();
        let mut pin = Vec::new();
        let mut unpin = Vec::new();
        if !self.unpin_all && !self.release {
            for (i, agent) in &changed_agents {
                let before = snap.agents.get(*i).is_some_and(has_pin);
                match (before, has_pin(agent)) {
                    (false, true) => pin.push(agent.agent_id),
                    (true, false) => unpin.push(agent.agent_id),
                    _ => {}
                }
            }
        }
        pin.sort_unstable();
        unpin.sort_unstable();
        let mut agents: Vec<RolloutAgent> =
            changed_agents.into_iter().map(|(_, a)| a.clone()).collect();
        agents.sort_by_key(|a| a.agent_id);
        let state_reason = match self.state {
            RolloutState::Running => self.hold,
            _ => self.reason,
        };
        RolloutChange {
            rollout_id: snap.rollout.id,
            expected_version: snap.rollout.version,
            at: self.now,
            state: self.state,
            state_reason,
            started_at: self.started_at,
            deadline_at: self.deadline_at,
            next_eval_at,
            finished_at: self.finished_at,
            waves,
            agents,
            pin,
            unpin,
            unpin_all: self.unpin_all,
            release: self.release,
            start_gates: self.start_gates,
            consumed_commands: self.consumed,
            transitions: self.transitions,
        }
    }
}

/// Whether an agent has a pin (its target state names the candidate): pinned and
/// not since unpinned. An agent failed or timed out while offline before its turn
/// never had one.
pub(super) fn has_pin(agent: &RolloutAgent) -> bool {
    use RolloutAgentState::*;
    agent.pinned_at.is_some()
        && matches!(agent.state, Pinned | Applied | Healthy | Failed | TimedOut)
}

/// `at + span`, or the latest representable time: a huge span from an unchecked
/// policy must not panic.
pub(super) fn later(at: DateTime<Utc>, span: chrono::Duration) -> DateTime<Utc> {
    at.checked_add_signed(span)
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}
