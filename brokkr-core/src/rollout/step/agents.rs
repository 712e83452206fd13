//! The agent state machine (ROLLOUTS.md section 5) and the budgets that bound pins.
//!
//! Progress is keyed by (agent, candidate): only an event about the candidate, and
//! only a health report about the candidate, recorded after the agent's pin, moves
//! it. An agent that was healthy on the baseline therefore never counts as healthy
//! on the candidate (OCM #1201), and an old failure of the candidate does not fail a
//! retried agent. Every time written is the evaluation's `now` (the server clock).

use crate::health::HealthStatus;
use crate::model::{EventStatus, RolloutAgentState};
use crate::rollout::{AgentView, ObservedHealth};

use super::work::{Work, later};

/// Follows every pinned agent from what it reported since its pin.
pub(super) fn track(work: &mut Work<'_>) {
    for i in 0..work.agents.len() {
        if matches!(
            work.agents[i].state,
            RolloutAgentState::Pinned | RolloutAgentState::Applied | RolloutAgentState::Healthy
        ) {
            track_one(work, i);
        }
    }
}

fn track_one(work: &mut Work<'_>, i: usize) {
    use RolloutAgentState::*;
    let agent = &work.agents[i];
    let Some(pinned_at) = agent.pinned_at else {
        // A pinned row without its pin time is bad data: count from now.
        work.agents[i].pinned_at = Some(work.now);
        return;
    };
    let candidate = work.snap.rollout.candidate;
    let view = work.view(agent.agent_id);
    let event = view
        .and_then(|v| v.candidate_event)
        .filter(|e| e.at > pinned_at);
    let health: Option<ObservedHealth> = view
        .and_then(|v| v.health)
        .filter(|h| h.deployment_object_id == candidate && h.at > pinned_at);
    if event.is_some_and(|e| e.status == EventStatus::Failure) {
        work.set_agent(i, Failed, Some("the candidate failed to apply".into()));
        return;
    }
    if health.is_some_and(|h| h.status == HealthStatus::Failed) {
        work.set_agent(i, Failed, Some("failed on the candidate".into()));
        return;
    }
    // A health report about the candidate means it was applied, even when the
    // event is not in yet.
    let applied = event.is_some() || health.is_some();
    let deadline = work.progress_deadline();
    if agent.state == Pinned {
        if !applied {
            let due = later(pinned_at, deadline);
            if work.now >= due {
                work.set_agent(
                    i,
                    TimedOut,
                    Some("the candidate was not applied within progress_deadline".into()),
                );
            }
            return;
        }
        work.set_agent(i, Applied, None);
    }
    let status = health.map(|h| h.status);
    let agent = &mut work.agents[i];
    match (agent.state, status) {
        (Healthy, Some(HealthStatus::Healthy)) => {}
        (Applied, Some(HealthStatus::Healthy)) => {
            agent.healthy_since = Some(work.now);
            agent.unhealthy_since = None;
            work.set_agent(i, Healthy, None);
        }
        (Healthy, Some(flap)) => {
            // A flap: the wave's bake starts again once it is healthy again.
            agent.healthy_since = None;
            agent.unhealthy_since = Some(work.now);
            work.set_agent(
                i,
                Applied,
                Some(format!("{} after being healthy", flap.as_str())),
            );
        }
        (Applied, _) => match agent.unhealthy_since {
            Some(since) => {
                let due = later(since, deadline);
                if work.now >= due {
                    work.set_agent(
                        i,
                        Failed,
                        Some("not healthy again within progress_deadline".into()),
                    );
                }
            }
            None => {
                let due = later(pinned_at, deadline);
                if work.now >= due {
                    work.set_agent(
                        i,
                        TimedOut,
                        Some("not healthy on the candidate within progress_deadline".into()),
                    );
                }
            }
        },
        _ => {}
    }
}

/// Counts of one wave's agents.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(super) struct WaveCounts {
    /// Not yet pinned, or pinned and not yet healthy.
    pub(super) open: usize,
    /// Failed or timed out.
    pub(super) failures: usize,
}

pub(super) fn wave_counts(work: &Work<'_>, w: usize) -> WaveCounts {
    use RolloutAgentState::*;
    let mut counts = WaveCounts::default();
    for &i in &work.members[w] {
        match work.agents[i].state {
            Waiting | Pinned | Applied => counts.open += 1,
            Failed | TimedOut => counts.failures += 1,
            _ => {}
        }
    }
    counts
}

/// Pinned and not yet healthy on the candidate, over the whole rollout.
pub(super) fn in_flight(work: &Work<'_>) -> usize {
    work.agents
        .iter()
        .filter(|a| a.state.is_in_flight())
        .count()
}

/// The stack's placed agents that are not healthy now, and how many are placed.
/// An agent with a pin counts by its rollout state; one without, by its latest
/// health report of any deployment object, so agents unhealthy before the rollout
/// count too (as Fleet's `maxUnavailable` does). A silent agent is not counted:
/// offline clusters must not stall a rollout (Fleet #192).
pub(super) fn unavailable(work: &Work<'_>) -> (usize, usize) {
    let mut placed = 0;
    let mut unavailable = 0;
    for view in work.snap.fleet.iter().filter(|v| v.placed) {
        placed += 1;
        if is_unavailable(work, view) {
            unavailable += 1;
        }
    }
    (unavailable, placed)
}

pub(super) fn is_unavailable(work: &Work<'_>, view: &AgentView) -> bool {
    use RolloutAgentState::*;
    let state = work
        .agent_position(view.agent_id)
        .map(|i| work.agents[i].state);
    match state {
        Some(Pinned | Applied | Failed | TimedOut) => true,
        Some(Healthy) => false,
        _ => unhealthy_report(view),
    }
}

fn unhealthy_report(view: &AgentView) -> bool {
    view.health
        .is_some_and(|h| h.status != HealthStatus::Healthy)
}
