//! Unit tests of `step`, one file per area, over a small simulated fleet: each test
//! drives a rollout through `step` with a fake clock, applying each change to the
//! snapshot as the store would.

mod agents;
mod commands;
mod gates;
mod lifecycle;
mod placement;
mod revert;

use std::collections::HashSet;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::health::HealthStatus;
use crate::id::{AgentId, DeploymentObjectId, RolloutCommandId, RolloutId, StackId};
use crate::metadata::Labels;
use crate::model::{
    Actor, EventStatus, GateEvaluation, GateOutcome, Rollout, RolloutAgent, RolloutAgentState,
    RolloutCommand, RolloutCommandKind, RolloutState, RolloutWave, WaveState,
};
use crate::rollout::{
    AgentView, ObservedEvent, ObservedHealth, RolloutChange, RolloutPolicy, RolloutSnapshot,
    Transition, step,
};

pub(super) const STALE_AFTER: Duration = Duration::seconds(90);

pub(super) fn t0() -> DateTime<Utc> {
    DateTime::from_timestamp(1_750_000_000, 0).expect("a valid time")
}

pub(super) fn agent_id(n: u128) -> AgentId {
    AgentId(Uuid::from_u128(n))
}

pub(super) fn candidate() -> DeploymentObjectId {
    DeploymentObjectId(Uuid::from_u128(0xC))
}

pub(super) fn baseline() -> DeploymentObjectId {
    DeploymentObjectId(Uuid::from_u128(0xB))
}

/// A rollout under test: its snapshot, the fake clock, and the agents that stopped
/// heartbeating.
pub(super) struct Fixture {
    pub(super) snap: RolloutSnapshot,
    pub(super) now: DateTime<Utc>,
    pub(super) offline: HashSet<u128>,
    /// Every change applied, in order.
    pub(super) changes: Vec<RolloutChange>,
}

/// A queued rollout of `policy` (JSON; defaults filled by serde) over agents `1..=n`,
/// named `a<n>`, labelled `zone=z<n % 2>`, all placed and heartbeating.
pub(super) fn mk_fixture(policy: Value, n: u128) -> Fixture {
    let policy: RolloutPolicy = serde_json::from_value(policy).expect("a policy");
    let fleet = (1..=n)
        .map(|i| AgentView {
            agent_id: agent_id(i),
            name: format!("a{i}"),
            labels: Labels::from([("zone".to_owned(), format!("z{}", i % 2))]),
            placed: true,
            last_heartbeat: Some(t0()),
            candidate_event: None,
            baseline_event: None,
            health: None,
        })
        .collect();
    let rollout = Rollout {
        id: RolloutId(Uuid::from_u128(0xA)),
        stack_id: StackId(Uuid::from_u128(0x5)),
        candidate: candidate(),
        baseline: Some(baseline()),
        policy,
        created_by: Actor::Admin,
        created_at: t0(),
        state: RolloutState::Queued,
        state_reason: None,
        version: 1,
        started_at: None,
        deadline_at: None,
        next_eval_at: Some(t0()),
        finished_at: None,
        updated_at: t0(),
    };
    Fixture {
        snap: RolloutSnapshot {
            rollout,
            waves: Vec::new(),
            agents: Vec::new(),
            fleet,
            gate_evaluations: Vec::new(),
            commands: Vec::new(),
            slot_free: true,
        },
        now: t0(),
        offline: HashSet::new(),
        changes: Vec::new(),
    }
}

/// Two waves: agent 1 alone, then the rest; no bake.
pub(super) fn two_waves() -> Value {
    json!({"waves": [
        {"name": "canary", "select": {"agents": ["a1"]}},
        {"name": "rest", "select": {"remaining": true}}
    ]})
}

impl Fixture {
    /// Advances the clock by `secs` (heartbeats of online agents follow), steps and
    /// applies the change.
    pub(super) fn tick(&mut self, secs: i64) -> RolloutChange {
        self.now += Duration::seconds(secs);
        let now = self.now;
        for view in &mut self.snap.fleet {
            if !self.offline.contains(&view.agent_id.0.as_u128()) {
                view.last_heartbeat = Some(now);
            }
        }
        let change = step(&self.snap, now, STALE_AFTER);
        self.apply(&change);
        change
    }

    /// Applies a change as the store does.
    pub(super) fn apply(&mut self, change: &RolloutChange) {
        assert_eq!(change.expected_version, self.snap.rollout.version);
        let rollout = &mut self.snap.rollout;
        rollout.version += 1;
        rollout.state = change.state;
        rollout.state_reason = change.state_reason.clone();
        rollout.started_at = change.started_at;
        rollout.deadline_at = change.deadline_at;
        rollout.next_eval_at = change.next_eval_at;
        rollout.finished_at = change.finished_at;
        for wave in &change.waves {
            match self.snap.waves.get_mut(wave.index as usize) {
                Some(old) => *old = wave.clone(),
                None => {
                    assert_eq!(
                        wave.index as usize,
                        self.snap.waves.len(),
                        "appended in order"
                    );
                    self.snap.waves.push(wave.clone());
                }
            }
        }
        for agent in &change.agents {
            match self
                .snap
                .agents
                .iter_mut()
                .find(|a| a.agent_id == agent.agent_id)
            {
                Some(old) => *old = agent.clone(),
                None => self.snap.agents.push(agent.clone()),
            }
        }
        for gate in &change.start_gates {
            self.snap.gate_evaluations.push(GateEvaluation {
                id: gate.id,
                rollout_id: change.rollout_id,
                wave: gate.wave,
                gate: gate.gate.clone(),
                phase: gate.phase,
                attempt: gate.attempt,
                outcome: None,
                reason: None,
                recheck_at: None,
                decided_by: None,
                started_at: change.at,
                finished_at: None,
            });
        }
        let consumed: HashSet<RolloutCommandId> =
            change.consumed_commands.iter().map(|c| c.id).collect();
        self.snap.commands.retain(|c| !consumed.contains(&c.id));
        self.changes.push(change.clone());
    }

    pub(super) fn view(&mut self, n: u128) -> &mut AgentView {
        self.snap
            .fleet
            .iter_mut()
            .find(|v| v.agent_id == agent_id(n))
            .expect("a fleet agent")
    }

    pub(super) fn agent(&self, n: u128) -> &RolloutAgent {
        self.snap
            .agents
            .iter()
            .find(|a| a.agent_id == agent_id(n))
            .expect("a rollout agent")
    }

    pub(super) fn state_of(&self, n: u128) -> RolloutAgentState {
        self.agent(n).state
    }

    pub(super) fn wave(&self, index: usize) -> &RolloutWave {
        &self.snap.waves[index]
    }

    pub(super) fn wave_states(&self) -> Vec<WaveState> {
        self.snap.waves.iter().map(|w| w.state).collect()
    }

    pub(super) fn state(&self) -> RolloutState {
        self.snap.rollout.state
    }

    /// When a report made now is recorded: just after the evaluation at `now`, as a
    /// report between two evaluations would be.
    pub(super) fn report_time(&self) -> DateTime<Utc> {
        self.now + Duration::milliseconds(1)
    }

    /// Agent `n` reports an event about the candidate, now.
    pub(super) fn event(&mut self, n: u128, status: EventStatus) {
        let at = self.report_time();
        self.view(n).candidate_event = Some(ObservedEvent { status, at });
    }

    /// Agent `n` reports an event about the baseline, now.
    pub(super) fn baseline_event(&mut self, n: u128, status: EventStatus) {
        let at = self.report_time();
        self.view(n).baseline_event = Some(ObservedEvent { status, at });
    }

    /// Agent `n` reports its health on `object`, now.
    pub(super) fn health(&mut self, n: u128, object: DeploymentObjectId, status: HealthStatus) {
        let at = self.report_time();
        self.view(n).health = Some(ObservedHealth {
            deployment_object_id: object,
            status,
            at,
        });
    }

    /// Every agent pinned now applies the candidate and reports healthy.
    pub(super) fn pinned_become_healthy(&mut self) {
        let pinned: Vec<u128> = self
            .snap
            .agents
            .iter()
            .filter(|a| a.state == RolloutAgentState::Pinned)
            .map(|a| a.agent_id.0.as_u128())
            .collect();
        for n in pinned {
            self.event(n, EventStatus::Success);
            self.health(n, candidate(), HealthStatus::Healthy);
        }
    }

    /// Agents pinned (with a pin) now, by number.
    pub(super) fn pinned(&self) -> Vec<u128> {
        let mut out: Vec<u128> = self
            .snap
            .agents
            .iter()
            .filter(|a| a.state.is_in_flight() || a.state == RolloutAgentState::Healthy)
            .map(|a| a.agent_id.0.as_u128())
            .collect();
        out.sort_unstable();
        out
    }

    pub(super) fn command(&mut self, kind: RolloutCommandKind) -> RolloutCommandId {
        let id = RolloutCommandId::new();
        self.snap.commands.push(RolloutCommand {
            id,
            rollout_id: self.snap.rollout.id,
            kind,
            actor: Actor::Admin,
            created_at: self.now,
            consumed_at: None,
            outcome: None,
        });
        id
    }

    /// Records an outcome for the newest evaluation of `gate`, now.
    pub(super) fn gate_outcome(&mut self, gate: &str, outcome: GateOutcome, reason: &str) {
        let now = self.now;
        let evaluation = self
            .snap
            .gate_evaluations
            .iter_mut()
            .rev()
            .find(|e| e.gate == gate)
            .expect("an evaluation of the gate");
        assert!(evaluation.outcome.is_none(), "one outcome per evaluation");
        evaluation.outcome = Some(outcome);
        evaluation.reason = Some(reason.to_owned());
        evaluation.finished_at = Some(now);
    }

    /// Rollout transitions of every change so far, as (from, to).
    pub(super) fn rollout_path(&self) -> Vec<(RolloutState, RolloutState)> {
        self.changes
            .iter()
            .flat_map(|c| &c.transitions)
            .filter_map(|t| match t {
                Transition::Rollout { from, to, .. } => Some((*from, *to)),
                Transition::Wave { .. } => None,
            })
            .collect()
    }

    /// The outcome a change gave command `id`.
    pub(super) fn outcome_of(&self, id: RolloutCommandId) -> String {
        self.changes
            .iter()
            .flat_map(|c| &c.consumed_commands)
            .find(|c| c.id == id)
            .map(|c| c.outcome.clone())
            .expect("the command was consumed")
    }
}

/// The number of the agent, for short assertions.
pub(super) fn numbers(ids: &[AgentId]) -> Vec<u128> {
    ids.iter().map(|id| id.0.as_u128()).collect()
}

pub(super) fn policy_with(mut policy: Value, extra: Value) -> Value {
    for (key, value) in extra.as_object().expect("an object") {
        policy[key] = value.clone();
    }
    policy
}
