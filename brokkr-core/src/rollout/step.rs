//! [`step`]: one evaluation of a rollout, pure (ROLLOUTS.md sections 4 to 8 and
//! 11). It reads a [`RolloutSnapshot`] and the time, and answers the
//! [`RolloutChange`] to apply: rows to write, pins to add and remove, gate
//! evaluations to start, commands taken up, transitions to audit, and when to look
//! again. Nothing here reads a clock, a store or the network, so the driver can run
//! it again on a lost compare-and-swap and tests can drive it with a fake clock.
//!
//! One evaluation, in order:
//! 1. a queued rollout starts when the stack's slot is free: its waves are planned
//!    ([`plan_waves`]) and it runs;
//! 2. placement changes: agents no longer placed leave, new ones join a wave
//!    (`membership`);
//! 3. operators' commands, oldest first (`commands`);
//! 4. every pinned agent follows its reports about the candidate (`agents`);
//! 5. the rollout deadline; continuous gates; a gate's pause;
//! 6. the waves advance as far as they can, pinning within the budgets (`progress`);
//! 7. a revert follows its agents back to the baseline (`revert`).
//!
//! Cost: linear in agents and gate evaluations, plus sorting when waves are
//! planned; no agent is compared with every other.

mod agents;
mod commands;
mod gates;
mod membership;
mod progress;
mod revert;
mod timers;
mod work;

use chrono::{DateTime, Utc};

use crate::model::RolloutState;
use crate::rollout::{GatePhase, RolloutChange, RolloutSnapshot};

use self::gates::{PhaseVerdict, judge_phase, recheck_pausing_gate};
use self::revert::{fail_wave, follow_revert, revert};
use self::work::{Work, later};
use super::waves::plan_waves;

/// How long a queued rollout waits before looking at the stack's slot again (the
/// store also makes it due when the active rollout ends).
pub const QUEUED_RECHECK: chrono::Duration = chrono::Duration::seconds(60);
/// The longest an active rollout goes without an evaluation, when nothing it waits
/// for has a time (events, commands and gate outcomes make it due at once).
pub const IDLE_RECHECK: chrono::Duration = chrono::Duration::minutes(10);
/// How often a continuous gate is asked while it passes.
pub const CONTINUOUS_GATE_INTERVAL: chrono::Duration = chrono::Duration::seconds(30);
/// How long after a gate's `pause` it is asked again (the pause ends when it passes).
pub const GATE_PAUSE_RECHECK: chrono::Duration = chrono::Duration::seconds(30);
/// How long after a gate's error it is asked again, while under its `error_limit`.
pub const GATE_ERROR_RETRY: chrono::Duration = chrono::Duration::seconds(10);
/// When a gate said `wait` without saying how long.
pub const GATE_WAIT_DEFAULT: chrono::Duration = chrono::Duration::seconds(30);
/// How often a wave waiting for an offline agent (`offline_agents: wait`) looks
/// again: heartbeats do not make a rollout due.
pub const OFFLINE_RECHECK: chrono::Duration = chrono::Duration::seconds(30);
/// A gate's `error_limit` when the policy gives none.
pub const DEFAULT_ERROR_LIMIT: u32 = 3;

/// Evaluates a rollout at `now`. An agent is stale when its last heartbeat is more
/// than `stale_after` before `now`, or it never sent one.
pub fn step(
    snapshot: &RolloutSnapshot,
    now: DateTime<Utc>,
    stale_after: chrono::Duration,
) -> RolloutChange {
    let mut work = Work::new(snapshot, now, stale_after);
    if work.state.is_final() {
        commands::take_commands(&mut work);
        return work.finish();
    }
    if work.state == RolloutState::Queued {
        commands::take_commands(&mut work);
        if work.state != RolloutState::Queued {
            return work.finish();
        }
        if !snapshot.slot_free {
            return work.finish();
        }
        start(&mut work);
    } else {
        membership::follow_placement(&mut work);
        commands::take_commands(&mut work);
    }
    if matches!(
        work.state,
        RolloutState::Running | RolloutState::Paused | RolloutState::Halted
    ) {
        agents::track(&mut work);
        progress::check_deadline(&mut work);
    }
    // Twice at most: a wave that moved while the rollout was paused by a gate (a
    // flap sent it back from verifying) can release that pause.
    for _ in 0..2 {
        if work.state == RolloutState::Paused {
            resume_when_gate_passes(&mut work);
        }
        if work.state != RolloutState::Running && work.state != RolloutState::Paused {
            break;
        }
        let was_paused = work.state == RolloutState::Paused;
        if work.state == RolloutState::Running {
            continuous_gates(&mut work);
        }
        progress::advance(&mut work);
        if work.state == RolloutState::Running {
            // A wave that started in this evaluation has its continuous gates asked
            // now.
            continuous_gates(&mut work);
        }
        if !was_paused || work.state != RolloutState::Paused {
            break;
        }
    }
    if work.state == RolloutState::Reverting {
        follow_revert(&mut work);
    }
    work.finish()
}

/// A queued rollout takes the stack's slot: its waves are planned from the agents
/// placed now, and its deadline counts from now.
fn start(work: &mut Work<'_>) {
    let plan = plan_waves(work.policy, &work.snap.fleet, work.now);
    work.waves = plan.waves;
    work.agents = plan.agents;
    work.index_agents();
    work.started_at = Some(work.now);
    work.deadline_at = work
        .policy
        .rollout_deadline
        .map(|span| later(work.now, span.as_chrono()));
    work.set_rollout(RolloutState::Running, None);
}

/// Continuous gates are asked on every evaluation while the rollout runs; a failure
/// reverts the whole rollout (or halts it, without a baseline).
fn continuous_gates(work: &mut Work<'_>) {
    let Some(w) = work.current_wave() else {
        return;
    };
    match judge_phase(work, w, GatePhase::Continuous) {
        PhaseVerdict::Passed | PhaseVerdict::Waiting => {}
        PhaseVerdict::Failed(reason) => revert(work, reason),
        PhaseVerdict::Paused(reason) => work.set_rollout(RolloutState::Paused, Some(reason)),
    }
}

/// A rollout paused by a gate's verdict asks that gate again, and runs on once it
/// passes.
fn resume_when_gate_passes(work: &mut Work<'_>) {
    let Some(w) = work.current_wave() else {
        return;
    };
    let pausing_gate_phase = gates::paused_by_gate(work.reason.as_deref())
        .and_then(|name| work.policy.gates.iter().find(|g| g.name == name))
        .map(|g| g.phase);
    match recheck_pausing_gate(work, w) {
        None => {}
        Some(PhaseVerdict::Passed) => {
            let reason = work
                .reason
                .as_deref()
                .and_then(|r| gates::paused_by_gate(Some(r)))
                .map(|gate| format!("gate {gate} no longer holds the rollout"));
            work.set_rollout(RolloutState::Running, reason);
        }
        Some(PhaseVerdict::Waiting) => {}
        Some(PhaseVerdict::Paused(reason)) => work.reason = Some(reason),
        Some(PhaseVerdict::Failed(reason)) => {
            if pausing_gate_phase == Some(GatePhase::Continuous) {
                revert(work, reason);
            } else {
                fail_wave(work, w, reason);
            }
        }
    }
}

#[cfg(test)]
mod tests;
