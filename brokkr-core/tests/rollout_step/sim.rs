//! A simulated fleet around `step`: agents that pull their target state from the
//! pins and the release head and report events and health as scripted, gates that
//! answer, operators that resume and retry, a fake clock. It applies each change as
//! the store does and keeps the pins the store would hold.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use brokkr_core::HealthStatus;
use brokkr_core::id::{AgentId, DeploymentObjectId, RolloutCommandId, RolloutId, StackId};
use brokkr_core::metadata::Labels;
use brokkr_core::model::{
    Actor, EventStatus, GateEvaluation, GateOutcome, Rollout, RolloutCommand, RolloutCommandKind,
    RolloutState,
};
use brokkr_core::rollout::{
    AgentView, GateKind, ObservedEvent, ObservedHealth, RolloutChange, RolloutPolicy,
    RolloutSnapshot, step,
};
use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

pub const STALE_AFTER: Duration = Duration::seconds(90);

/// How a simulated agent behaves once pinned to the candidate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Applies it `apply` ticks after its pin, healthy `healthy` ticks later.
    Good { apply: u32, healthy: u32 },
    /// Reports a failed apply `after` ticks after its pin.
    FailsApply { after: u32 },
    /// Applies it, never gets healthy (progressing forever).
    NeverHealthy,
    /// Healthy at once, degraded for `flap` ticks from `at` ticks after its pin.
    Flaps { at: u32, flap: u32 },
    /// Never applies the candidate: keeps reporting that the baseline is healthy.
    BaselineOnly,
    /// Never heartbeats, never reports.
    Offline,
    /// Stops heartbeating and reporting from tick `after` of the simulation on.
    GoesSilent { after: u32 },
}

/// One agent of the fleet.
#[derive(Debug, Clone)]
pub struct SimAgent {
    pub behaviour: Behaviour,
    /// Its baseline health before the rollout is degraded (counts as unavailable).
    pub unhealthy_before: bool,
    /// What it runs: `Some(object)`, from `since` (a tick).
    pub target: Option<DeploymentObjectId>,
    pub since: u32,
    /// Whether it was ever pinned (so a return to the baseline is a revert).
    pub was_pinned: bool,
}

pub fn agent_id(n: u128) -> AgentId {
    AgentId(Uuid::from_u128(n))
}

pub fn candidate() -> DeploymentObjectId {
    DeploymentObjectId(Uuid::from_u128(0xC))
}

pub fn baseline_object() -> DeploymentObjectId {
    DeploymentObjectId(Uuid::from_u128(0xB))
}

/// A fleet agent's description for a scenario.
#[derive(Debug, Clone)]
pub struct AgentSpec {
    pub zone: Option<u8>,
    pub region: u8,
    pub behaviour: Behaviour,
    pub unhealthy_before: bool,
}

/// A placement change at a tick.
#[derive(Debug, Clone)]
pub enum PlacementChange {
    /// The stack leaves agent `n` (by position in the fleet, wrapped).
    Remove(usize),
    /// A new, well-behaved agent is placed.
    Add(AgentSpec),
}

/// A whole run's inputs.
#[derive(Debug, Clone)]
pub struct Scenario {
    pub policy: RolloutPolicy,
    pub has_baseline: bool,
    pub fleet: Vec<AgentSpec>,
    /// Seconds per tick, cycled.
    pub ticks: Vec<i64>,
    /// Webhook answers, cycled.
    pub gate_answers: Vec<GateOutcome>,
    /// Commands an operator gives at ticks.
    pub commands: Vec<(u32, RolloutCommandKind)>,
    pub placement: Vec<(u32, PlacementChange)>,
}

pub struct Sim {
    pub snap: RolloutSnapshot,
    pub now: DateTime<Utc>,
    pub tick: u32,
    /// The pins the store holds.
    pub pins: BTreeSet<AgentId>,
    pub released: bool,
    pub agents: BTreeMap<AgentId, SimAgent>,
    pub scenario: Scenario,
    gate_cursor: usize,
    paused_ticks: u32,
    halts: u32,
    next_agent: u128,
}

fn labels(spec: &AgentSpec) -> Labels {
    let mut labels = Labels::from([("region".to_owned(), format!("r{}", spec.region))]);
    if let Some(zone) = spec.zone {
        labels.insert("zone".to_owned(), format!("z{zone}"));
    }
    labels
}

impl Sim {
    pub fn new(scenario: Scenario) -> Self {
        let start = DateTime::from_timestamp(1_750_000_000, 0).expect("a valid time");
        let rollout = Rollout {
            id: RolloutId(Uuid::from_u128(0xA)),
            stack_id: StackId(Uuid::from_u128(0x5)),
            candidate: candidate(),
            baseline: scenario.has_baseline.then(baseline_object),
            policy: scenario.policy.clone(),
            created_by: Actor::Admin,
            created_at: start,
            state: RolloutState::Queued,
            state_reason: None,
            version: 1,
            started_at: None,
            deadline_at: None,
            next_eval_at: Some(start),
            finished_at: None,
            updated_at: start,
        };
        let mut sim = Self {
            snap: RolloutSnapshot {
                rollout,
                waves: Vec::new(),
                agents: Vec::new(),
                fleet: Vec::new(),
                gate_evaluations: Vec::new(),
                commands: Vec::new(),
                slot_free: true,
            },
            now: start,
            tick: 0,
            pins: BTreeSet::new(),
            released: false,
            agents: BTreeMap::new(),
            scenario: scenario.clone(),
            gate_cursor: 0,
            paused_ticks: 0,
            halts: 0,
            next_agent: 1,
        };
        for spec in &scenario.fleet {
            sim.add_agent(spec);
        }
        sim.act(start);
        sim
    }

    fn add_agent(&mut self, spec: &AgentSpec) {
        let n = self.next_agent;
        self.next_agent += 1;
        let id = agent_id(n);
        self.snap.fleet.push(AgentView {
            agent_id: id,
            name: format!("a{n}"),
            labels: labels(spec),
            placed: true,
            last_heartbeat: None,
            candidate_event: None,
            baseline_event: None,
            health: None,
        });
        self.agents.insert(
            id,
            SimAgent {
                behaviour: spec.behaviour,
                unhealthy_before: spec.unhealthy_before,
                target: None,
                since: self.tick,
                was_pinned: false,
            },
        );
    }

    /// What agent `id`'s target state names now.
    fn target(&self, id: AgentId) -> Option<DeploymentObjectId> {
        if self.released || self.pins.contains(&id) {
            Some(candidate())
        } else {
            self.snap.rollout.baseline
        }
    }

    fn online(&self, agent: &SimAgent) -> bool {
        match agent.behaviour {
            Behaviour::Offline => false,
            Behaviour::GoesSilent { after } => self.tick < after,
            _ => true,
        }
    }

    /// Every online agent heartbeats, follows its target state and reports, at `at`.
    fn act(&mut self, at: DateTime<Utc>) {
        let ids: Vec<AgentId> = self.agents.keys().copied().collect();
        for id in ids {
            let target = self.target(id);
            let tick = self.tick;
            let agent = self.agents.get_mut(&id).expect("a sim agent");
            if agent.target != target {
                agent.was_pinned |= target == Some(candidate());
                agent.target = target;
                agent.since = tick;
            }
            let agent = agent.clone();
            if !self.online(&agent) {
                continue;
            }
            let Some(view) = self.snap.fleet.iter_mut().find(|v| v.agent_id == id) else {
                continue;
            };
            view.last_heartbeat = Some(at);
            let elapsed = tick - agent.since;
            let health = |object, status| {
                Some(ObservedHealth {
                    deployment_object_id: object,
                    status,
                    at,
                })
            };
            let event = |status| Some(ObservedEvent { status, at });
            match agent.target {
                None => {}
                Some(object) if object != candidate() => {
                    let status = if agent.unhealthy_before && !agent.was_pinned {
                        HealthStatus::Degraded
                    } else {
                        HealthStatus::Healthy
                    };
                    view.health = health(object, status);
                    if agent.was_pinned && elapsed == 1 {
                        view.baseline_event = event(EventStatus::Success);
                    }
                }
                Some(object) => match agent.behaviour {
                    Behaviour::Good { apply, healthy } => {
                        if elapsed == apply {
                            view.candidate_event = event(EventStatus::Success);
                        }
                        if elapsed >= apply + healthy {
                            view.health = health(object, HealthStatus::Healthy);
                        } else if elapsed >= apply {
                            view.health = health(object, HealthStatus::Progressing);
                        }
                    }
                    Behaviour::FailsApply { after } => {
                        if elapsed == after {
                            view.candidate_event = event(EventStatus::Failure);
                        }
                    }
                    Behaviour::NeverHealthy => {
                        if elapsed == 0 {
                            view.candidate_event = event(EventStatus::Success);
                        }
                        view.health = health(object, HealthStatus::Progressing);
                    }
                    Behaviour::Flaps { at: from, flap } => {
                        if elapsed == 0 {
                            view.candidate_event = event(EventStatus::Success);
                        }
                        let status = if (from..from + flap).contains(&elapsed) {
                            HealthStatus::Degraded
                        } else {
                            HealthStatus::Healthy
                        };
                        view.health = health(object, status);
                    }
                    Behaviour::BaselineOnly => {
                        if let Some(baseline) = self.snap.rollout.baseline {
                            view.health = health(baseline, HealthStatus::Healthy);
                        }
                    }
                    Behaviour::Offline | Behaviour::GoesSilent { .. } => {}
                },
            }
        }
    }

    /// Gates answer the evaluations waiting for them, at `at`.
    fn answer_gates(&mut self, at: DateTime<Utc>) {
        let policy = &self.snap.rollout.policy;
        for evaluation in self
            .snap
            .gate_evaluations
            .iter_mut()
            .filter(|e| e.outcome.is_none())
        {
            let kind = policy
                .gates
                .iter()
                .find(|g| g.name == evaluation.gate)
                .map(|g| g.kind);
            let outcome = match kind {
                Some(GateKind::Approval) => GateOutcome::Pass,
                _ => {
                    let answers = &self.scenario.gate_answers;
                    let outcome = answers
                        .get(self.gate_cursor % answers.len().max(1))
                        .copied()
                        .unwrap_or(GateOutcome::Pass);
                    self.gate_cursor += 1;
                    outcome
                }
            };
            evaluation.outcome = Some(outcome);
            evaluation.reason = Some(format!("scripted {}", outcome.as_str()));
            evaluation.finished_at = Some(at);
            if outcome == GateOutcome::Wait {
                evaluation.recheck_at = Some(at + Duration::seconds(20));
            }
        }
    }

    fn give(&mut self, kind: RolloutCommandKind) {
        self.snap.commands.push(RolloutCommand {
            id: RolloutCommandId::new(),
            rollout_id: self.snap.rollout.id,
            kind,
            actor: Actor::Admin,
            created_at: self.now,
            consumed_at: None,
            outcome: None,
        });
    }

    /// What operators and placement do at this tick.
    fn outside_world(&mut self) {
        let tick = self.tick;
        let scripted: Vec<RolloutCommandKind> = self
            .scenario
            .commands
            .iter()
            .filter(|(at, _)| *at == tick)
            .map(|(_, kind)| *kind)
            .collect();
        for kind in scripted {
            self.give(kind);
        }
        // An operator resumes a long pause, retries a halt once, then aborts.
        match self.snap.rollout.state {
            RolloutState::Paused => {
                self.paused_ticks += 1;
                if self.paused_ticks >= 8 {
                    self.paused_ticks = 0;
                    self.give(RolloutCommandKind::Resume);
                }
            }
            RolloutState::Halted => {
                self.halts += 1;
                let kind = if self.halts == 1 {
                    RolloutCommandKind::RetryWave
                } else {
                    RolloutCommandKind::Abort
                };
                self.give(kind);
            }
            _ => self.paused_ticks = 0,
        }
        let changes: Vec<PlacementChange> = self
            .scenario
            .placement
            .iter()
            .filter(|(at, _)| *at == tick)
            .map(|(_, c)| c.clone())
            .collect();
        for change in changes {
            match change {
                PlacementChange::Remove(n) if !self.snap.fleet.is_empty() => {
                    let i = n % self.snap.fleet.len();
                    self.snap.fleet[i].placed = false;
                }
                PlacementChange::Remove(_) => {}
                PlacementChange::Add(spec) => self.add_agent(&spec),
            }
        }
    }

    /// One tick: the world acts half-way, then the clock reaches the next
    /// evaluation. Answers the change and the snapshot it was computed from.
    pub fn advance(&mut self) -> (RolloutSnapshot, RolloutChange) {
        let ticks = &self.scenario.ticks;
        let secs = ticks[self.tick as usize % ticks.len()].max(2);
        let halfway = self.now + Duration::seconds(secs / 2);
        self.tick += 1;
        self.outside_world();
        self.act(halfway);
        self.answer_gates(halfway);
        self.now += Duration::seconds(secs);
        let before = self.snap.clone();
        let change = step(&self.snap, self.now, STALE_AFTER);
        (before, change)
    }

    /// Whether the operator has retried a halt and then aborted it.
    pub fn operator_gave_up(&self) -> bool {
        self.halts >= 3
    }

    /// Applies a change as the store does, pins included.
    pub fn apply(&mut self, change: &RolloutChange) {
        let rollout = &mut self.snap.rollout;
        assert_eq!(change.expected_version, rollout.version, "the version read");
        rollout.version += 1;
        rollout.state = change.state;
        rollout.state_reason = change.state_reason.clone();
        rollout.started_at = change.started_at;
        rollout.deadline_at = change.deadline_at;
        rollout.next_eval_at = change.next_eval_at;
        rollout.finished_at = change.finished_at;
        for wave in &change.waves {
            let index = wave.index as usize;
            if index < self.snap.waves.len() {
                self.snap.waves[index] = wave.clone();
            } else {
                assert_eq!(index, self.snap.waves.len(), "waves are appended in order");
                self.snap.waves.push(wave.clone());
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
        for id in &change.pin {
            assert!(self.pins.insert(*id), "{id:?} pinned twice");
        }
        for id in &change.unpin {
            assert!(self.pins.remove(id), "{id:?} unpinned without a pin");
        }
        if change.unpin_all || change.release {
            self.pins.clear();
        }
        if change.release {
            self.released = true;
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
    }
}
