//! Failure, revert and halt (ROLLOUTS.md sections 5 and 8).
//!
//! A revert removes every pin of the rollout at once: each agent that had the
//! candidate falls back to the baseline, and later waves never notice. The rollout
//! then waits until each of those agents reports the baseline again (`reverted_ok`),
//! has gone silent, or is no longer placed. A stack's first deployment object has no
//! baseline: reverting it would leave its agents with nothing, so it halts instead.

use crate::model::{EventStatus, RolloutAgentState, RolloutState, WaveState};
use crate::rollout::OnFailure;

use super::work::{Work, has_pin, later};

/// The reason of a reverted agent the revert still waits for.
pub(super) const PIN_REMOVED: &str = "pin removed by the revert";

/// Wave `w` failed: the wave records why, the rollout follows `on_failure`.
pub(super) fn fail_wave(work: &mut Work<'_>, w: usize, reason: String) {
    work.set_wave(w, WaveState::Failed, Some(reason.clone()));
    let wave = &work.waves[w];
    let why = format!("wave {} ({}) failed: {reason}", wave.index, wave.name);
    let default = if work.snap.rollout.baseline.is_some() {
        OnFailure::Revert
    } else {
        OnFailure::Halt
    };
    match work.policy.on_failure.unwrap_or(default) {
        OnFailure::Revert => revert(work, why),
        OnFailure::Halt => halt(work, why),
    }
}

/// Fails the wave in progress, if any, when the rollout stops for another reason
/// (an abort, a deadline, a continuous gate).
fn stop_current_wave(work: &mut Work<'_>, reason: &str) {
    if let Some(w) = work.current_wave()
        && matches!(
            work.waves[w].state,
            WaveState::Gating | WaveState::Running | WaveState::Baking | WaveState::Verifying
        )
    {
        work.set_wave(w, WaveState::Failed, Some(reason.to_owned()));
    }
}

/// Removes every pin and waits for the agents to be back on the baseline; without a
/// baseline, halts.
pub(super) fn revert(work: &mut Work<'_>, reason: String) {
    if work.snap.rollout.baseline.is_none() {
        halt(
            work,
            format!("{reason}; no earlier deployment object to revert to, so halted"),
        );
        return;
    }
    stop_current_wave(work, &reason);
    work.set_rollout(RolloutState::Reverting, Some(reason));
    work.unpin_all = true;
    for i in 0..work.agents.len() {
        if has_pin(&work.agents[i]) {
            work.set_agent(i, RolloutAgentState::Reverted, Some(PIN_REMOVED.into()));
        }
    }
    follow_revert(work);
}

/// Stops with every pin kept, for an operator's `retry_wave` or `abort`.
pub(super) fn halt(work: &mut Work<'_>, reason: String) {
    stop_current_wave(work, &reason);
    work.set_rollout(RolloutState::Halted, Some(reason));
}

/// Follows the reverted agents back to the baseline and ends the revert once none
/// is left to wait for.
pub(super) fn follow_revert(work: &mut Work<'_>) {
    let Some(baseline) = work.snap.rollout.baseline else {
        // Bad data: nothing could have been reverted.
        work.set_rollout(RolloutState::Reverted, work.reason.clone());
        return;
    };
    let deadline = work.progress_deadline();
    let mut waiting = 0;
    let mut failed = 0;
    for i in 0..work.agents.len() {
        let agent = &work.agents[i];
        if agent.state != RolloutAgentState::Reverted {
            continue;
        }
        // `updated_at` of a reverted agent is the time of the revert.
        let since = agent.updated_at;
        let view = work.view(agent.agent_id);
        let event = view.and_then(|v| v.baseline_event).filter(|e| e.at > since);
        // The agent derives its event ids from what it reports, so applying the
        // baseline again may repeat an old event; its health report about the
        // baseline, made after the revert, shows it is back as well.
        let back = event.is_some_and(|e| e.status == EventStatus::Success)
            || view
                .and_then(|v| v.health)
                .is_some_and(|h| h.deployment_object_id == baseline && h.at > since);
        if event.is_some_and(|e| e.status == EventStatus::Failure) {
            failed += 1;
            work.set_agent(
                i,
                RolloutAgentState::Reverted,
                Some("the baseline failed to apply after the revert".into()),
            );
        } else if back {
            work.set_agent(i, RolloutAgentState::RevertedOk, None);
        } else if work.is_stale(view) {
            work.set_agent(
                i,
                RolloutAgentState::Reverted,
                Some("offline; it gets the baseline when it returns".into()),
            );
        } else if work.now >= later(since, deadline) {
            failed += 1;
            work.set_agent(
                i,
                RolloutAgentState::Reverted,
                Some("did not report the baseline within progress_deadline of the revert".into()),
            );
        } else {
            waiting += 1;
        }
    }
    if waiting > 0 {
        return;
    }
    let reason = work.reason.clone();
    if failed > 0 {
        let why = format!(
            "{failed} agents did not go back to the baseline{}",
            reason
                .map(|r| format!(" (reverting because {r})"))
                .unwrap_or_default()
        );
        work.set_rollout(RolloutState::RevertFailed, Some(why));
    } else {
        work.set_rollout(RolloutState::Reverted, reason);
    }
}
