//! The wave state machine (ROLLOUTS.md section 5): `pending → gating → running →
//! baking → verifying → succeeded`, or `failed`; one wave at a time, the next only
//! after the one before succeeded. Pinning happens here, within the budgets.
//!
//! While the rollout is paused, waves only follow the facts (a wave whose agents are
//! all healthy starts baking; a flap ends the bake; too many failures fail it); no
//! agent is pinned and no wave starts, passes a gate or succeeds.

use crate::model::{RolloutAgent, RolloutAgentState, RolloutState, WaveState};
use crate::rollout::{GatePhase, OfflineAgents};

use super::agents::{WaveCounts, in_flight, is_unavailable, unavailable, wave_counts};
use super::gates::{PhaseVerdict, gates_for, judge_phase};
use super::revert::{fail_wave, revert};
use super::work::{Work, later};

/// The reason of a waiting agent that is offline while its wave waits for it
/// (`offline_agents: wait`); its `updated_at` is when the wait began.
pub(super) const OFFLINE_WAIT: &str = "offline; its wave waits for it";

/// Moves the waves as far as they can go in this evaluation.
pub(super) fn advance(work: &mut Work<'_>) {
    loop {
        if !matches!(work.state, RolloutState::Running | RolloutState::Paused) {
            return;
        }
        let running = work.state == RolloutState::Running;
        let Some(w) = work.current_wave() else {
            if running {
                work.set_rollout(RolloutState::Succeeded, Some("every wave succeeded".into()));
                work.release = true;
            }
            return;
        };
        let moved = match work.waves[w].state {
            WaveState::Pending => running && start(work, w),
            WaveState::Gating => running && gate(work, w),
            WaveState::Running => run(work, w, running),
            WaveState::Baking => bake(work, w, running),
            WaveState::Verifying => verify(work, w, running),
            // A failed wave under a running rollout is bad data; treat it as the
            // failure it records.
            WaveState::Failed => {
                let reason = work.waves[w].reason.clone().unwrap_or_default();
                fail_wave(work, w, reason);
                false
            }
            WaveState::Succeeded => false,
        };
        if !moved {
            return;
        }
    }
}

/// Leaves `pending`: to its `before_wave` gates, or straight to pinning.
fn start(work: &mut Work<'_>, w: usize) -> bool {
    let gates = gates_for(work, w, GatePhase::BeforeWave);
    if gates.is_empty() {
        work.set_wave(w, WaveState::Running, None);
    } else {
        work.set_wave(w, WaveState::Gating, Some("before_wave gates".into()));
    }
    true
}

fn gate(work: &mut Work<'_>, w: usize) -> bool {
    match judge_phase(work, w, GatePhase::BeforeWave) {
        PhaseVerdict::Passed => {
            work.set_wave(
                w,
                WaveState::Running,
                Some("before_wave gates passed".into()),
            );
            true
        }
        PhaseVerdict::Waiting => false,
        PhaseVerdict::Failed(reason) => {
            fail_wave(work, w, reason);
            false
        }
        PhaseVerdict::Paused(reason) => {
            work.set_rollout(RolloutState::Paused, Some(reason));
            false
        }
    }
}

/// Fails the wave when more agents failed than it tolerates.
fn too_many_failures(work: &mut Work<'_>, w: usize, counts: WaveCounts) -> bool {
    let tolerated = work.waves[w].max_failures as usize;
    if counts.failures > tolerated {
        let reason = format!(
            "{} agents failed ({}); it tolerates {tolerated}",
            counts.failures,
            failed_agents(work, w)
        );
        fail_wave(work, w, reason);
        return true;
    }
    false
}

/// The first few failed agents of wave `w` and why, for the wave's reason: a revert
/// moves them on to `reverted`, so this is where their failure stays on record.
fn failed_agents(work: &Work<'_>, w: usize) -> String {
    const NAMED: usize = 3;
    let failed: Vec<&RolloutAgent> = work.members[w]
        .iter()
        .map(|&i| &work.agents[i])
        .filter(|a| {
            matches!(
                a.state,
                RolloutAgentState::Failed | RolloutAgentState::TimedOut
            )
        })
        .collect();
    let mut named: Vec<String> = failed
        .iter()
        .take(NAMED)
        .map(|a| match &a.reason {
            Some(reason) => format!("agent {} {}: {reason}", a.agent_id, a.state.as_str()),
            None => format!("agent {} {}", a.agent_id, a.state.as_str()),
        })
        .collect();
    if failed.len() > NAMED {
        named.push(format!("{} more", failed.len() - NAMED));
    }
    named.join("; ")
}

fn run(work: &mut Work<'_>, w: usize, running: bool) -> bool {
    // Failures are counted before anything is pinned, so a failed wave pins nobody
    // more.
    if too_many_failures(work, w, wave_counts(work, w)) {
        return false;
    }
    if running {
        settle_offline(work, w);
        if too_many_failures(work, w, wave_counts(work, w)) {
            return false;
        }
        pin(work, w);
    }
    if wave_counts(work, w).open > 0 {
        return false;
    }
    if work.waves[w].promoted && running {
        work.set_wave(
            w,
            WaveState::Succeeded,
            Some("promoted by an operator".into()),
        );
    } else {
        work.set_wave(w, WaveState::Baking, None);
        work.waves[w].all_healthy_since = Some(work.now);
    }
    true
}

/// Whether the wave's agents are no longer all settled (a flap, or an agent that
/// joined by a retry): back to running, and the bake starts over.
fn flapped(work: &mut Work<'_>, w: usize) -> Option<bool> {
    let counts = wave_counts(work, w);
    if too_many_failures(work, w, counts) {
        return Some(false);
    }
    if counts.open > 0 {
        work.set_wave(
            w,
            WaveState::Running,
            Some("an agent is no longer healthy; the bake starts over".into()),
        );
        return Some(true);
    }
    None
}

fn bake(work: &mut Work<'_>, w: usize, running: bool) -> bool {
    if let Some(moved) = flapped(work, w) {
        return moved;
    }
    if !running {
        return false;
    }
    let wave = &work.waves[w];
    let since = wave.all_healthy_since.unwrap_or(work.now);
    let done = later(since, work.policy.bake_time.as_chrono());
    if !wave.promoted && work.now < done {
        return false;
    }
    if wave.promoted {
        work.set_wave(
            w,
            WaveState::Succeeded,
            Some("promoted by an operator".into()),
        );
    } else if gates_for(work, w, GatePhase::AfterWave).is_empty() {
        work.set_wave(w, WaveState::Succeeded, Some("baked".into()));
    } else {
        work.set_wave(
            w,
            WaveState::Verifying,
            Some("baked; after_wave gates".into()),
        );
    }
    true
}

fn verify(work: &mut Work<'_>, w: usize, running: bool) -> bool {
    if let Some(moved) = flapped(work, w) {
        return moved;
    }
    if !running {
        return false;
    }
    if work.waves[w].promoted {
        work.set_wave(
            w,
            WaveState::Succeeded,
            Some("promoted by an operator".into()),
        );
        return true;
    }
    match judge_phase(work, w, GatePhase::AfterWave) {
        PhaseVerdict::Passed => {
            work.set_wave(
                w,
                WaveState::Succeeded,
                Some("after_wave gates passed".into()),
            );
            true
        }
        PhaseVerdict::Waiting => false,
        PhaseVerdict::Failed(reason) => {
            fail_wave(work, w, reason);
            false
        }
        PhaseVerdict::Paused(reason) => {
            work.set_rollout(RolloutState::Paused, Some(reason));
            false
        }
    }
}

/// The wave's waiting agents that are offline now are skipped, failed, or waited
/// for, by `offline_agents`; an agent that is back is no longer waited for.
fn settle_offline(work: &mut Work<'_>, w: usize) {
    let deadline = work.progress_deadline();
    for m in 0..work.members[w].len() {
        let i = work.members[w][m];
        let agent = &work.agents[i];
        if agent.state != RolloutAgentState::Waiting {
            continue;
        }
        if work.is_stale(work.view(agent.agent_id)) {
            offline(work, i, deadline);
        } else if agent.reason.as_deref() == Some(OFFLINE_WAIT) {
            work.agents[i].reason = None;
        }
    }
}

/// Pins the wave's waiting agents that are online, by agent id, as far as
/// `max_concurrency` and `max_unavailable` allow (both at least 1).
fn pin(work: &mut Work<'_>, w: usize) {
    let policy = work.policy;
    let concurrency_cap = policy.max_concurrency.map(|n| (n as usize).max(1));
    let (mut unavailable_now, placed) = unavailable(work);
    let unavailable_cap = policy.max_unavailable.map(|q| q.of(placed).max(1));
    let mut flying = in_flight(work);
    let mut blocked = false;
    for m in 0..work.members[w].len() {
        let i = work.members[w][m];
        let agent = &work.agents[i];
        if agent.state != RolloutAgentState::Waiting {
            continue;
        }
        let view = work.view(agent.agent_id);
        let Some(view) = view.filter(|_| !work.is_stale(view)) else {
            continue;
        };
        if concurrency_cap.is_some_and(|cap| flying >= cap) {
            blocked = true;
            continue;
        }
        let counted = is_unavailable(work, view);
        if !counted && unavailable_cap.is_some_and(|cap| unavailable_now >= cap) {
            blocked = true;
            continue;
        }
        let agent = &mut work.agents[i];
        agent.pinned_at = Some(work.now);
        agent.healthy_since = None;
        agent.unhealthy_since = None;
        work.set_agent(i, RolloutAgentState::Pinned, None);
        flying += 1;
        if !counted {
            unavailable_now += 1;
        }
    }
    if !blocked {
        return;
    }
    // Said from the counts the pins ended with, so the same state always gives
    // the same reason.
    let reason = match (concurrency_cap, unavailable_cap) {
        (Some(cap), _) if flying >= cap => {
            format!("max_concurrency reached: {flying} agents in flight (at most {cap})")
        }
        (_, Some(cap)) => format!(
            "max_unavailable reached: {unavailable_now} of {placed} agents unavailable (at most {cap})"
        ),
        (Some(cap), None) => {
            format!("max_concurrency reached: {flying} agents in flight (at most {cap})")
        }
        (None, None) => return,
    };
    let wave = &work.waves[w];
    work.hold = Some(format!("wave {} ({}): {reason}", wave.index, wave.name));
}

/// An agent that is stale when its wave would pin it.
fn offline(work: &mut Work<'_>, i: usize, deadline: chrono::Duration) {
    let reason = "offline when its wave pinned it";
    match work.policy.offline_agents {
        OfflineAgents::Skip => work.set_agent(i, RolloutAgentState::Skipped, Some(reason.into())),
        OfflineAgents::Fail => work.set_agent(i, RolloutAgentState::Failed, Some(reason.into())),
        OfflineAgents::Wait => {
            let agent = &mut work.agents[i];
            if agent.reason.as_deref() != Some(OFFLINE_WAIT) {
                agent.reason = Some(OFFLINE_WAIT.into());
                agent.updated_at = work.now;
            }
            let due = later(agent.updated_at, deadline);
            if work.now >= due {
                work.set_agent(
                    i,
                    RolloutAgentState::TimedOut,
                    Some("offline for progress_deadline while its wave waited".into()),
                );
            }
        }
    }
}

/// Reverts when the rollout's deadline has passed.
pub(super) fn check_deadline(work: &mut Work<'_>) {
    use RolloutState::*;
    if !matches!(work.state, Running | Paused | Halted) {
        return;
    }
    let Some(deadline) = work.deadline_at else {
        return;
    };
    if work.now >= deadline {
        if work.state == Halted && work.snap.rollout.baseline.is_none() {
            // Already halted, and there is nothing to revert to.
            return;
        }
        revert(work, "the rollout deadline passed".into());
    }
}
