//! The cost of one rollout evaluation (`brokkr_core::rollout::step`) over 10,000
//! agents in 5 waves, at the points of a rollout that do the most: its start (the
//! waves planned, the first wave pinned), the middle of a wave (half its agents
//! report healthy, the rest are followed), a quiet evaluation mid-wave (nothing new),
//! the breach that reverts 6,000 pinned agents, and the revert's follow-up. Each
//! point is evaluated again and again on the same snapshot. Prints p50 and p99.
//!
//! `cargo bench -p brokkr-core --bench rollout_step`

use std::collections::HashMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use brokkr_core::HealthStatus;
use brokkr_core::id::{AgentId, DeploymentObjectId, RolloutId, StackId};
use brokkr_core::metadata::Labels;
use brokkr_core::model::{Actor, EventStatus, Rollout, RolloutAgentState, RolloutState, WaveState};
use brokkr_core::rollout::{
    AgentView, ObservedEvent, ObservedHealth, RolloutChange, RolloutPolicy, RolloutSnapshot, step,
};
use chrono::{DateTime, TimeDelta, Utc};
use serde_json::json;
use uuid::Uuid;

const AGENTS: u128 = 10_000;
const WAVES: u128 = 5;
const RUNS: usize = 200;
const STALE_AFTER: TimeDelta = TimeDelta::seconds(90);

fn candidate() -> DeploymentObjectId {
    DeploymentObjectId(Uuid::from_u128(0xC))
}

fn baseline() -> DeploymentObjectId {
    DeploymentObjectId(Uuid::from_u128(0xB))
}

fn start_time() -> DateTime<Utc> {
    DateTime::from_timestamp(1_750_000_000, 0).expect("a valid time")
}

/// A rollout queued over 10,000 agents: a wave per region, 2,000 agents each.
fn queued() -> RolloutSnapshot {
    let policy: RolloutPolicy = serde_json::from_value(json!({
        "waves": [
            {"name": "r0", "select": {"match_labels": {"region": "r0"}}},
            {"name": "r1", "select": {"match_labels": {"region": "r1"}}},
            {"name": "r2", "select": {"match_labels": {"region": "r2"}}},
            {"name": "r3", "select": {"match_labels": {"region": "r3"}}},
            {"name": "rest", "select": {"remaining": true}}
        ],
        "max_failures": "1%", "progress_deadline": "15m"
    }))
    .expect("a policy");
    let now = start_time();
    let fleet = (1..=AGENTS)
        .map(|n| AgentView {
            agent_id: AgentId(Uuid::from_u128(n)),
            name: format!("agent-{n}"),
            labels: Labels::from([
                ("region".to_owned(), format!("r{}", n % WAVES)),
                ("zone".to_owned(), format!("z{}", n % 3)),
            ]),
            placed: true,
            last_heartbeat: Some(now),
            candidate_event: None,
            baseline_event: None,
            health: Some(ObservedHealth {
                deployment_object_id: baseline(),
                status: HealthStatus::Healthy,
                at: now,
            }),
        })
        .collect();
    RolloutSnapshot {
        rollout: Rollout {
            id: RolloutId(Uuid::from_u128(0xA)),
            stack_id: StackId(Uuid::from_u128(0x5)),
            candidate: candidate(),
            baseline: Some(baseline()),
            policy,
            created_by: Actor::Admin,
            created_at: now,
            state: RolloutState::Queued,
            state_reason: None,
            version: 1,
            started_at: None,
            deadline_at: None,
            next_eval_at: Some(now),
            finished_at: None,
            updated_at: now,
        },
        waves: Vec::new(),
        agents: Vec::new(),
        fleet,
        gate_evaluations: Vec::new(),
        commands: Vec::new(),
        slot_free: true,
    }
}

/// Applies a change as the store would (rows by key, commands consumed).
fn apply(snap: &mut RolloutSnapshot, change: &RolloutChange) {
    let rollout = &mut snap.rollout;
    rollout.version += 1;
    rollout.state = change.state;
    rollout.state_reason = change.state_reason.clone();
    rollout.started_at = change.started_at;
    rollout.deadline_at = change.deadline_at;
    rollout.next_eval_at = change.next_eval_at;
    rollout.finished_at = change.finished_at;
    for wave in &change.waves {
        match snap.waves.get_mut(wave.index as usize) {
            Some(old) => *old = wave.clone(),
            None => snap.waves.push(wave.clone()),
        }
    }
    let index: HashMap<AgentId, usize> = snap
        .agents
        .iter()
        .enumerate()
        .map(|(i, a)| (a.agent_id, i))
        .collect();
    for agent in &change.agents {
        match index.get(&agent.agent_id) {
            Some(&i) => snap.agents[i] = agent.clone(),
            None => snap.agents.push(agent.clone()),
        }
    }
    snap.agents.sort_by_key(|a| a.agent_id);
}

/// Agents in `state`, by position in the fleet (agent n is at n - 1).
fn agents_in(snap: &RolloutSnapshot, state: RolloutAgentState) -> Vec<usize> {
    snap.agents
        .iter()
        .filter(|a| a.state == state)
        .map(|a| a.agent_id.0.as_u128() as usize - 1)
        .collect()
}

fn report_healthy(snap: &mut RolloutSnapshot, agents: &[usize], at: DateTime<Utc>) {
    for &i in agents {
        let view = &mut snap.fleet[i];
        view.candidate_event = Some(ObservedEvent {
            status: EventStatus::Success,
            at,
        });
        view.health = Some(ObservedHealth {
            deployment_object_id: candidate(),
            status: HealthStatus::Healthy,
            at,
        });
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

/// Evaluates `snap` at `now` again and again; prints the percentiles and what one
/// evaluation wrote.
fn measure(what: &str, snap: &RolloutSnapshot, now: DateTime<Utc>) -> RolloutChange {
    let mut samples = Vec::with_capacity(RUNS);
    let mut change = step(snap, now, STALE_AFTER);
    for _ in 0..RUNS {
        let started = Instant::now();
        change = black_box(step(black_box(snap), now, STALE_AFTER));
        samples.push(started.elapsed());
    }
    samples.sort_unstable();
    println!(
        "{what:<48} p50 {:>7.2} ms   p99 {:>7.2} ms   rows {:>5}, pins +{} -{}{}",
        percentile(&samples, 0.50).as_secs_f64() * 1e3,
        percentile(&samples, 0.99).as_secs_f64() * 1e3,
        change.agents.len() + change.waves.len(),
        change.pin.len(),
        change.unpin.len(),
        if change.unpin_all { ", unpin all" } else { "" },
    );
    change
}

fn main() {
    println!(
        "rollout step: {AGENTS} agents in {WAVES} waves of {}, {RUNS} evaluations per point",
        AGENTS / WAVES
    );
    let mut snap = queued();
    let mut now = start_time() + TimeDelta::seconds(1);
    let change = measure("start: plan 5 waves, pin wave 0", &snap, now);
    apply(&mut snap, &change);
    // Waves 0 and 1 get healthy and succeed; wave 2 is pinned.
    while snap
        .waves
        .iter()
        .take(2)
        .any(|w| w.state != WaveState::Succeeded)
    {
        let pinned = agents_in(&snap, RolloutAgentState::Pinned);
        report_healthy(&mut snap, &pinned, now + TimeDelta::seconds(1));
        now += TimeDelta::seconds(5);
        let change = step(&snap, now, STALE_AFTER);
        apply(&mut snap, &change);
    }
    assert_eq!(snap.waves[2].state, WaveState::Running, "wave 2 runs");
    now += TimeDelta::seconds(5);
    measure("mid-wave: nothing new", &snap, now);
    let pinned = agents_in(&snap, RolloutAgentState::Pinned);
    let (healthy, rest) = pinned.split_at(pinned.len() / 2);
    report_healthy(&mut snap, healthy, now - TimeDelta::seconds(1));
    measure("mid-wave: 1,000 of 2,000 report healthy", &snap, now);
    // 30 of wave 2's agents fail: more than 1% of 2,000.
    for &i in &rest[..30] {
        snap.fleet[i].candidate_event = Some(ObservedEvent {
            status: EventStatus::Failure,
            at: now - TimeDelta::seconds(1),
        });
    }
    let change = measure("breach: wave 2 fails, 6,000 agents reverted", &snap, now);
    assert!(change.unpin_all);
    apply(&mut snap, &change);
    now += TimeDelta::seconds(5);
    let reverted = agents_in(&snap, RolloutAgentState::Reverted);
    for &i in &reverted[..reverted.len() / 2] {
        snap.fleet[i].health = Some(ObservedHealth {
            deployment_object_id: baseline(),
            status: HealthStatus::Healthy,
            at: now - TimeDelta::seconds(1),
        });
    }
    measure("reverting: 3,000 of 6,000 back on the baseline", &snap, now);
}
