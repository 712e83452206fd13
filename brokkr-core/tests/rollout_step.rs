//! Property tests of the rollout step: random policies and fleets, agents that
//! behave well, fail, flap, stay on the baseline or go silent, gates that answer
//! anything, operators and placement changing things mid-way; `step` is driven
//! through a simulated store and fleet (`rollout_step/sim.rs`) with a fake clock, and
//! every change is checked against the invariants of ROLLOUTS.md.

#[path = "rollout_step/sim.rs"]
mod sim;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::time::Duration as StdDuration;

use brokkr_core::HealthStatus;
use brokkr_core::id::AgentId;
use brokkr_core::metadata::Labels;
use brokkr_core::model::{
    GateOutcome, RolloutAgent, RolloutAgentState, RolloutCommandKind, RolloutState, WaveState,
};
use brokkr_core::rollout::{
    AgentView, GateKind, GatePhase, GateSpec, OfflineAgents, OnFailure, OnGateError, Quantity,
    RolloutChange, RolloutPolicy, Span, Transition, WaveSelect, WaveSpec, plan_waves, step,
};
use chrono::DateTime;
use proptest::option;
use proptest::prelude::*;

use sim::{AgentSpec, Behaviour, PlacementChange, STALE_AFTER, Scenario, Sim, candidate};

/// Enough ticks for the longest rollout deadline at the shortest tick, plus a revert.
const MAX_TICKS: u32 = 400;

fn behaviour() -> impl Strategy<Value = Behaviour> {
    prop_oneof![
        8 => (0u32..3, 0u32..3).prop_map(|(apply, healthy)| Behaviour::Good { apply, healthy }),
        1 => (0u32..3).prop_map(|after| Behaviour::FailsApply { after }),
        1 => Just(Behaviour::NeverHealthy),
        1 => (0u32..4, 1u32..8).prop_map(|(at, flap)| Behaviour::Flaps { at, flap }),
        1 => Just(Behaviour::BaselineOnly),
        1 => Just(Behaviour::Offline),
        1 => (1u32..60).prop_map(|after| Behaviour::GoesSilent { after }),
    ]
}

/// Agents that get there: at once, late, or after a short flap.
fn good_behaviour() -> impl Strategy<Value = Behaviour> {
    prop_oneof![
        4 => (0u32..3, 0u32..3).prop_map(|(apply, healthy)| Behaviour::Good { apply, healthy }),
        1 => (0u32..4, 1u32..3).prop_map(|(at, flap)| Behaviour::Flaps { at, flap }),
    ]
}

fn agent_spec() -> impl Strategy<Value = AgentSpec> {
    agent_spec_with(behaviour())
}

fn agent_spec_with(
    behaviour: impl Strategy<Value = Behaviour>,
) -> impl Strategy<Value = AgentSpec> {
    (
        option::of(0u8..3),
        0u8..2,
        behaviour,
        prop::bool::weighted(0.1),
    )
        .prop_map(|(zone, region, behaviour, unhealthy_before)| AgentSpec {
            zone,
            region,
            behaviour,
            unhealthy_before,
        })
}

fn quantity(max_count: u32, max_percent: u8) -> impl Strategy<Value = Quantity> {
    prop_oneof![
        (0..=max_count).prop_map(Quantity::Count),
        (0..=max_percent).prop_map(Quantity::Percent),
    ]
}

fn secs(n: u64) -> Span {
    Span(StdDuration::from_secs(n))
}

/// How one policy wave selects: 0 lists agents, 1 a region, 2 the rest (last only).
type WaveShape = (u8, u8, bool, Option<Quantity>);

fn wave_shape() -> impl Strategy<Value = WaveShape> {
    (
        0u8..3,
        0u8..2,
        prop::bool::ANY,
        option::of(quantity(3, 100).prop_filter("not zero", |q| q.of(100) > 0)),
    )
}

fn waves(shapes: Vec<WaveShape>) -> Vec<WaveSpec> {
    let last = shapes.len() - 1;
    shapes
        .into_iter()
        .enumerate()
        .map(|(i, (kind, region, group, split))| {
            let mut select = WaveSelect::default();
            match kind {
                2 if i == last => select.remaining = true,
                // Each wave lists its own agents: a later wave would never get one an
                // earlier wave lists.
                0 => {
                    select.agents = (0..3).map(|k| format!("a{}", i + 1 + 5 * k)).collect();
                }
                _ => {
                    select.match_labels =
                        Labels::from([("region".to_owned(), format!("r{region}"))]);
                }
            }
            WaveSpec {
                name: format!("w{i}"),
                select,
                group_by: group.then(|| "zone".to_owned()),
                split,
            }
        })
        .collect()
}

fn gate(kind: u8, i: usize, error_limit: u32, only_first: bool) -> GateSpec {
    let (gate_kind, phase) = match kind {
        0 => (GateKind::Approval, GatePhase::BeforeWave),
        1 => (GateKind::Webhook, GatePhase::BeforeWave),
        2 => (GateKind::Webhook, GatePhase::AfterWave),
        _ => (GateKind::Webhook, GatePhase::Continuous),
    };
    let webhook = gate_kind == GateKind::Webhook;
    GateSpec {
        name: format!("g{i}"),
        kind: gate_kind,
        phase,
        waves: if only_first {
            vec!["w0".to_owned()]
        } else {
            Vec::new()
        },
        url: webhook.then(|| "https://gate.example/".to_owned()),
        secret_ref: webhook.then(|| "hmac".to_owned()),
        custom: None,
        timeout: None,
        error_limit: webhook.then_some(error_limit),
    }
}

prop_compose! {
    fn policy()(
        shapes in prop::collection::vec(wave_shape(), 1..=4),
        max_concurrency in option::of(1u32..4),
        max_unavailable in option::of(quantity(3, 60).prop_filter("not zero", |q| q.of(100) > 0)),
        max_failures in quantity(2, 50),
        bake in 0u64..=120,
        progress in 60u64..=300,
        deadline in 1800u64..=3600,
        offline in prop_oneof![Just(OfflineAgents::Skip), Just(OfflineAgents::Wait),
                               Just(OfflineAgents::Fail)],
        on_failure in option::of(prop_oneof![Just(OnFailure::Revert), Just(OnFailure::Halt)]),
        on_gate_error in prop_oneof![Just(OnGateError::Pause), Just(OnGateError::Fail)],
        gates in prop::collection::vec((0u8..4, 1u32..=3, prop::bool::weighted(0.3)), 0..=2),
    ) -> RolloutPolicy {
        RolloutPolicy {
            waves: waves(shapes),
            max_concurrency,
            max_unavailable,
            max_failures,
            bake_time: secs(bake),
            progress_deadline: secs(progress),
            rollout_deadline: Some(secs(deadline)),
            offline_agents: offline,
            on_failure,
            on_gate_error,
            on_new_version: Default::default(),
            gates: gates
                .into_iter()
                .enumerate()
                .map(|(i, (kind, limit, only_first))| gate(kind, i, limit, only_first))
                .collect(),
        }
    }
}

fn gate_answer() -> impl Strategy<Value = GateOutcome> {
    prop_oneof![
        6 => Just(GateOutcome::Pass),
        1 => Just(GateOutcome::Fail),
        1 => Just(GateOutcome::Wait),
        1 => Just(GateOutcome::Pause),
        2 => Just(GateOutcome::Error),
    ]
}

fn command() -> impl Strategy<Value = RolloutCommandKind> {
    prop_oneof![
        Just(RolloutCommandKind::Pause),
        Just(RolloutCommandKind::Resume),
        Just(RolloutCommandKind::Abort),
        Just(RolloutCommandKind::Promote),
        Just(RolloutCommandKind::RetryWave),
    ]
}

fn placement_change() -> impl Strategy<Value = PlacementChange> {
    prop_oneof![
        (0usize..32).prop_map(PlacementChange::Remove),
        agent_spec().prop_map(PlacementChange::Add),
    ]
}

prop_compose! {
    fn scenario()(
        policy in policy(),
        has_baseline in prop::bool::weighted(0.9),
        // Half the fleets behave, so rollouts get through many waves; half have
        // agents that fail, stall, flap, stay on the baseline or go silent.
        fleet in prop_oneof![
            prop::collection::vec(agent_spec_with(good_behaviour()), 0..=24),
            prop::collection::vec(agent_spec(), 0..=24),
        ],
        ticks in prop::collection::vec(15i64..=90, 1..=4),
        gate_answers in prop::collection::vec(gate_answer(), 1..=6),
        commands in prop::collection::vec((1u32..40, command()), 0..=2),
        placement in prop::collection::vec((1u32..40, placement_change()), 0..=3),
    ) -> Scenario {
        Scenario { policy, has_baseline, fleet, ticks, gate_answers, commands, placement }
    }
}

/// What the checker remembers between changes.
struct Checker {
    state: RolloutState,
    waves: Vec<WaveState>,
    released: bool,
}

fn has_pin(agent: &RolloutAgent) -> bool {
    use RolloutAgentState::*;
    agent.pinned_at.is_some()
        && matches!(agent.state, Pinned | Applied | Healthy | Failed | TimedOut)
}

impl Checker {
    /// Transitions start where the last change left each state, so each one is
    /// reported exactly once, and every state change is reported.
    fn transitions(&mut self, change: &RolloutChange) -> Result<(), TestCaseError> {
        for transition in &change.transitions {
            match *transition {
                Transition::Rollout { from, to, .. } => {
                    prop_assert_eq!(from, self.state, "rollout transition {:?}", transition);
                    prop_assert_ne!(from, to);
                    self.state = to;
                }
                Transition::Wave {
                    index, from, to, ..
                } => {
                    let index = index as usize;
                    if index >= self.waves.len() {
                        self.waves.resize(index + 1, WaveState::Pending);
                    }
                    prop_assert_eq!(from, self.waves[index], "wave transition {:?}", transition);
                    prop_assert_ne!(from, to);
                    self.waves[index] = to;
                }
            }
        }
        prop_assert_eq!(
            self.state,
            change.state,
            "every rollout move is a transition"
        );
        Ok(())
    }

    fn after_apply(&mut self, sim: &Sim, change: &RolloutChange) -> Result<(), TestCaseError> {
        let snap = &sim.snap;
        let policy = &snap.rollout.policy;
        self.waves.resize(snap.waves.len(), WaveState::Pending);
        for (i, wave) in snap.waves.iter().enumerate() {
            prop_assert_eq!(wave.index as usize, i);
            prop_assert_eq!(wave.state, self.waves[i], "every wave move is a transition");
        }
        // Every agent once, in a wave that exists.
        let ids: HashSet<AgentId> = snap.agents.iter().map(|a| a.agent_id).collect();
        prop_assert_eq!(ids.len(), snap.agents.len(), "an agent in two rows");
        let by_id: BTreeMap<AgentId, &RolloutAgent> =
            snap.agents.iter().map(|a| (a.agent_id, a)).collect();
        for agent in &snap.agents {
            prop_assert!((agent.wave as usize) < snap.waves.len());
        }
        let state = change.state;
        let planned = matches!(
            state,
            RolloutState::Running | RolloutState::Paused | RolloutState::Halted
        );
        for view in &snap.fleet {
            let row = by_id.get(&view.agent_id);
            if planned && view.placed {
                prop_assert!(
                    row.is_some_and(|a| a.state != RolloutAgentState::Removed),
                    "placed agent {:?} is in no wave",
                    view.agent_id
                );
            }
            if !view.placed && state != RolloutState::Queued && !state.is_final() {
                prop_assert!(row.is_none_or(|a| matches!(
                    a.state,
                    RolloutAgentState::Removed | RolloutAgentState::RevertedOk
                )));
            }
        }
        // The store's pins are exactly the agents the rows say are pinned.
        let pinned_rows: BTreeSet<AgentId> = snap
            .agents
            .iter()
            .filter(|a| has_pin(a))
            .map(|a| a.agent_id)
            .collect();
        if sim.released
            || matches!(
                state,
                RolloutState::Reverting | RolloutState::Reverted | RolloutState::RevertFailed
            )
        {
            prop_assert!(sim.pins.is_empty(), "pins left after a release or revert");
        } else {
            prop_assert_eq!(&sim.pins, &pinned_rows);
        }
        // In flight never above max_concurrency when something was pinned.
        let in_flight = snap
            .agents
            .iter()
            .filter(|a| a.state.is_in_flight())
            .count();
        if !change.pin.is_empty()
            && let Some(cap) = policy.max_concurrency
        {
            prop_assert!(in_flight <= cap.max(1) as usize, "{in_flight} in flight");
        }
        // A wave pins only after every wave before it succeeded.
        for id in &change.pin {
            let wave = by_id[id].wave as usize;
            prop_assert!(
                snap.waves[..wave]
                    .iter()
                    .all(|w| w.state == WaveState::Succeeded)
            );
            prop_assert_eq!(snap.waves[wave].state, WaveState::Running);
        }
        // Health counts only when it is about the candidate: an agent that only ever
        // reported the baseline is never applied or healthy.
        for agent in &snap.agents {
            let only_baseline = sim
                .agents
                .get(&agent.agent_id)
                .is_some_and(|a| a.behaviour == Behaviour::BaselineOnly);
            if only_baseline {
                prop_assert!(!matches!(
                    agent.state,
                    RolloutAgentState::Applied | RolloutAgentState::Healthy
                ));
            }
            if agent.state == RolloutAgentState::Healthy && !state.is_final() {
                let view = snap.fleet.iter().find(|v| v.agent_id == agent.agent_id);
                let health = view.and_then(|v| v.health);
                prop_assert!(health.is_some_and(|h| h.deployment_object_id == candidate()));
            }
        }
        if change.release {
            prop_assert_eq!(state, RolloutState::Succeeded);
            self.released = true;
        }
        if state == RolloutState::Succeeded {
            prop_assert!(self.released, "success releases the candidate");
            prop_assert!(snap.waves.iter().all(|w| w.state == WaveState::Succeeded));
        }
        match change.next_eval_at {
            None => prop_assert!(state.is_final()),
            Some(at) => {
                prop_assert!(!state.is_final());
                prop_assert!(at > change.at, "evaluating again at once would spin");
            }
        }
        Ok(())
    }
}

/// Nothing new happened: the same evaluation again changes nothing.
fn quiet(again: &RolloutChange, change: &RolloutChange) -> Result<(), TestCaseError> {
    prop_assert!(again.transitions.is_empty(), "{:?}", again.transitions);
    prop_assert!(again.waves.is_empty(), "{:?}", again.waves);
    prop_assert!(again.agents.is_empty(), "{:?}", again.agents);
    prop_assert!(again.pin.is_empty() && again.unpin.is_empty());
    prop_assert!(!again.unpin_all && !again.release);
    prop_assert!(again.start_gates.is_empty(), "{:?}", again.start_gates);
    prop_assert_eq!(again.state, change.state);
    prop_assert_eq!(&again.state_reason, &change.state_reason);
    prop_assert_eq!(again.next_eval_at, change.next_eval_at);
    Ok(())
}

fn run(scenario: Scenario) -> Result<(), TestCaseError> {
    prop_assert_eq!(scenario.policy.validate(), Ok(()));
    let has_baseline = scenario.has_baseline;
    let mut sim = Sim::new(scenario);
    let mut checker = Checker {
        state: RolloutState::Queued,
        waves: Vec::new(),
        released: false,
    };
    for _ in 0..MAX_TICKS {
        let (_, change) = sim.advance();
        if std::env::var_os("ROLLOUT_STEP_TRACE").is_some() {
            eprintln!(
                "tick {} {:?} {:?} pin {:?} unpin {:?} all {} {:?} {:?}",
                sim.tick,
                change.state,
                change.state_reason,
                change.pin,
                change.unpin,
                change.unpin_all,
                change.transitions,
                change.consumed_commands
            );
        }
        checker.transitions(&change)?;
        sim.apply(&change);
        checker.after_apply(&sim, &change)?;
        let again = step(&sim.snap, sim.now, STALE_AFTER);
        quiet(&again, &change)?;
        let state = sim.snap.rollout.state;
        // A halt with nothing to revert to waits for a person, after the simulated
        // operator's retry and abort.
        let stuck = state == RolloutState::Halted && !has_baseline && sim.operator_gave_up();
        if state.is_final() || stuck {
            return Ok(());
        }
    }
    prop_assert!(
        false,
        "still {:?} after {MAX_TICKS} ticks",
        sim.snap.rollout.state
    );
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn step_keeps_the_rollout_invariants(scenario in scenario()) {
        run(scenario)?;
    }
}

fn view(n: u128, zone: Option<u8>, region: u8, placed: bool) -> AgentView {
    let mut labels = Labels::from([("region".to_owned(), format!("r{region}"))]);
    if let Some(zone) = zone {
        labels.insert("zone".to_owned(), format!("z{zone}"));
    }
    AgentView {
        agent_id: sim::agent_id(n),
        name: format!("a{n}"),
        labels,
        placed,
        last_heartbeat: None,
        candidate_event: None,
        baseline_event: None,
        health: Some(brokkr_core::rollout::ObservedHealth {
            deployment_object_id: sim::baseline_object(),
            status: HealthStatus::Healthy,
            at: DateTime::from_timestamp(0, 0).expect("a time"),
        }),
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every placed agent lands in exactly one wave, unplaced ones in none, no wave
    /// is empty, and the plan does not depend on the order of the fleet.
    #[test]
    fn every_placed_agent_is_planned_into_exactly_one_wave(
        policy in policy(),
        agents in prop::collection::vec((option::of(0u8..3), 0u8..2, prop::bool::weighted(0.9)), 0..=60),
        seed in any::<u64>(),
    ) {
        let fleet: Vec<AgentView> = agents
            .iter()
            .enumerate()
            .map(|(i, (zone, region, placed))| view(i as u128 + 1, *zone, *region, *placed))
            .collect();
        let now = DateTime::from_timestamp(1_750_000_000, 0).expect("a time");
        let plan = plan_waves(&policy, &fleet, now);
        let planned: Vec<AgentId> = plan.agents.iter().map(|a| a.agent_id).collect();
        let placed: Vec<AgentId> = fleet.iter().filter(|v| v.placed).map(|v| v.agent_id).collect();
        let mut sorted_placed = placed.clone();
        sorted_placed.sort();
        prop_assert_eq!(planned, sorted_placed);
        for (i, wave) in plan.waves.iter().enumerate() {
            prop_assert_eq!(wave.index as usize, i);
            prop_assert!(plan.agents.iter().any(|a| a.wave == wave.index), "empty wave {}", wave.name);
        }
        let mut shuffled = fleet.clone();
        let len = shuffled.len();
        if len > 1 {
            for i in 0..len {
                let j = (seed.wrapping_mul(i as u64 + 7) % len as u64) as usize;
                shuffled.swap(i, j);
            }
        }
        prop_assert_eq!(plan_waves(&policy, &shuffled, now), plan);
    }
}
