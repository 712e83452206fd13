//! When to evaluate a rollout again, read off the state an evaluation ends in: the
//! earliest of its pinned agents' progress deadlines, the bake's end, the rollout's
//! deadline, a gate's next question, a silent agent's wait, a revert's wait. Read
//! from the end state rather than collected along the way, so a timer of something
//! the same evaluation already moved past (a wave that succeeded, an agent that was
//! reverted) never wakes the rollout for nothing.

use chrono::{DateTime, Utc};

use crate::model::{RolloutAgentState, RolloutState, WaveState};
use crate::rollout::GatePhase;

use super::gates::{gates_for, next_ask, paused_by_gate, phase_active};
use super::progress::OFFLINE_WAIT;
use super::revert::PIN_REMOVED;
use super::work::{Work, later};
use super::{IDLE_RECHECK, OFFLINE_RECHECK, QUEUED_RECHECK};

/// The next evaluation's time; `None` once final.
pub(super) fn next_eval(work: &Work<'_>) -> Option<DateTime<Utc>> {
    let now = work.now;
    let mut times: Vec<DateTime<Utc>> = Vec::new();
    match work.state {
        state if state.is_final() => return None,
        RolloutState::Queued => times.push(later(now, QUEUED_RECHECK)),
        RolloutState::Reverting => reverting(work, &mut times),
        _ => {
            times.extend(work.deadline_at);
            pinned_agents(work, &mut times);
            if let Some(w) = work.current_wave() {
                match work.state {
                    RolloutState::Running => current_wave(work, w, &mut times),
                    RolloutState::Paused => pausing_gate(work, w, &mut times),
                    _ => {}
                }
            }
        }
    }
    let next = times.into_iter().filter(|at| *at > now).min();
    Some(next.unwrap_or_else(|| later(now, IDLE_RECHECK)))
}

/// Each agent pinned and not yet healthy times out at its progress deadline.
fn pinned_agents(work: &Work<'_>, times: &mut Vec<DateTime<Utc>>) {
    let deadline = work.progress_deadline();
    for agent in &work.agents {
        if !agent.state.is_in_flight() {
            continue;
        }
        let since = agent.unhealthy_since.or(agent.pinned_at);
        times.extend(since.map(|since| later(since, deadline)));
    }
}

fn current_wave(work: &Work<'_>, w: usize, times: &mut Vec<DateTime<Utc>>) {
    let wave = &work.waves[w];
    let deadline = work.progress_deadline();
    match wave.state {
        WaveState::Running => {
            for &i in &work.members[w] {
                let agent = &work.agents[i];
                if agent.state == RolloutAgentState::Waiting
                    && agent.reason.as_deref() == Some(OFFLINE_WAIT)
                {
                    // Heartbeats do not make a rollout due: look again soon.
                    times.push(later(agent.updated_at, deadline));
                    times.push(later(work.now, OFFLINE_RECHECK));
                }
            }
        }
        WaveState::Baking if !wave.promoted => {
            let since = wave.all_healthy_since.unwrap_or(work.now);
            times.push(later(since, work.policy.bake_time.as_chrono()));
        }
        _ => {}
    }
    for phase in [
        GatePhase::BeforeWave,
        GatePhase::AfterWave,
        GatePhase::Continuous,
    ] {
        if !phase_active(phase, wave.state) {
            continue;
        }
        for gate in gates_for(work, w, phase) {
            times.extend(next_ask(work, w, gate, phase));
        }
    }
}

/// A rollout paused by a gate's verdict asks that gate again.
fn pausing_gate(work: &Work<'_>, w: usize, times: &mut Vec<DateTime<Utc>>) {
    let Some(name) = paused_by_gate(work.reason.as_deref()) else {
        return;
    };
    let policy = work.policy;
    if let Some(gate) = policy.gates.iter().find(|g| g.name == name)
        && phase_active(gate.phase, work.waves[w].state)
    {
        times.extend(next_ask(work, w, gate, gate.phase));
    }
}

/// A reverted agent not yet back is given up on at its progress deadline, and no
/// longer waited for once its silence makes it stale.
fn reverting(work: &Work<'_>, times: &mut Vec<DateTime<Utc>>) {
    let deadline = work.progress_deadline();
    for agent in &work.agents {
        if agent.state == RolloutAgentState::Reverted
            && agent.reason.as_deref() == Some(PIN_REMOVED)
        {
            times.push(later(agent.updated_at, deadline));
            times.extend(work.stale_at(work.view(agent.agent_id)));
        }
    }
}
