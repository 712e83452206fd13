//! Operators' commands (ROLLOUTS.md section 10): each one is taken up by the next
//! evaluation, oldest first, and consumed with what it did, or why it did nothing,
//! so an operator is never left guessing.

use crate::model::{
    RolloutAgentState, RolloutCommand, RolloutCommandKind, RolloutState, WaveState,
};
use crate::rollout::GatePhase;

use super::gates::{ask_again_on_resume, gates_for};
use super::revert::{halt, revert};
use super::work::Work;

/// Takes up every command of the snapshot.
pub(super) fn take_commands(work: &mut Work<'_>) {
    let snap = work.snap;
    for command in &snap.commands {
        let outcome = apply(work, command);
        work.consumed.push(crate::rollout::ConsumedCommand {
            id: command.id,
            outcome,
        });
    }
}

fn apply(work: &mut Work<'_>, command: &RolloutCommand) -> String {
    use RolloutState::*;
    let state = work.state;
    if state.is_final() {
        return format!(
            "nothing to do: the rollout already ended ({})",
            state.as_str()
        );
    }
    match command.kind {
        RolloutCommandKind::Pause => match state {
            Running => {
                work.set_rollout(Paused, Some("paused by an operator".into()));
                "paused".into()
            }
            Paused if work.reason.as_deref() != Some("paused by an operator") => {
                // A gate's pause would end by itself; the operator's holds.
                work.set_rollout(Paused, Some("paused by an operator".into()));
                "already paused; now held until an operator resumes it".into()
            }
            Paused => "already paused".into(),
            _ => format!("not running ({})", state.as_str()),
        },
        RolloutCommandKind::Resume => match state {
            Paused => {
                work.set_rollout(Running, Some("resumed by an operator".into()));
                if let Some(w) = work.current_wave() {
                    ask_again_on_resume(work, w);
                }
                "resumed".into()
            }
            _ => format!("not paused ({})", state.as_str()),
        },
        RolloutCommandKind::Abort => match state {
            Queued => {
                // Nothing was pinned: the candidate is rejected as it stands.
                work.set_rollout(
                    Reverted,
                    Some("aborted by an operator before it started".into()),
                );
                "aborted before it started".into()
            }
            Running | Paused | Halted if work.snap.rollout.baseline.is_some() => {
                revert(work, "aborted by an operator".into());
                "reverting".into()
            }
            Running | Paused => {
                halt(
                    work,
                    "aborted by an operator; the stack has no earlier deployment object to revert to"
                        .into(),
                );
                "halted: there is no earlier deployment object to revert to".into()
            }
            Halted => {
                "cannot revert: the stack has no earlier deployment object to revert to".into()
            }
            Reverting => "already reverting".into(),
            _ => format!("nothing to abort ({})", state.as_str()),
        },
        RolloutCommandKind::Promote => match state {
            Running | Paused => match work.current_wave() {
                Some(w) => {
                    let wave = &mut work.waves[w];
                    wave.promoted = true;
                    format!(
                        "wave {} ({}) promoted: its bake and after_wave gates are skipped",
                        wave.index, wave.name
                    )
                }
                None => "nothing to promote: every wave succeeded".into(),
            },
            Halted => "the wave failed: retry_wave or abort it first".into(),
            _ => format!("not running ({})", state.as_str()),
        },
        RolloutCommandKind::RetryWave => match state {
            Halted => retry_wave(work),
            _ => format!("not halted ({})", state.as_str()),
        },
    }
}

/// Runs the failed wave again: its failed and timed-out agents wait again (their
/// pins removed until the wave pins them anew, so their old reports do not count),
/// and the wave runs from where it failed: its `before_wave` gates again if they
/// had not passed, else pinning.
fn retry_wave(work: &mut Work<'_>) -> String {
    let Some(w) = work
        .waves
        .iter()
        .position(|wave| wave.state == WaveState::Failed)
    else {
        work.set_rollout(RolloutState::Running, Some("retried by an operator".into()));
        return "no failed wave; running again".into();
    };
    let gated = !gates_for(work, w, GatePhase::BeforeWave).is_empty();
    let pinned_any = work.members[w].iter().any(|&i| {
        work.agents[i].pinned_at.is_some() || work.agents[i].state != RolloutAgentState::Waiting
    });
    let mut retried = 0;
    for m in 0..work.members[w].len() {
        let i = work.members[w][m];
        if work.agents[i].state.is_failure() {
            let agent = &mut work.agents[i];
            agent.pinned_at = None;
            agent.healthy_since = None;
            agent.unhealthy_since = None;
            work.set_agent(i, RolloutAgentState::Waiting, Some("retried".into()));
            retried += 1;
        }
    }
    let to = if gated && !pinned_any {
        WaveState::Gating
    } else {
        WaveState::Running
    };
    work.set_wave(w, to, Some("retried by an operator".into()));
    // Evaluations from before the retry no longer count (see `gates::cutoff`).
    work.waves[w].started_at = Some(work.now);
    work.waves[w].finished_at = None;
    work.set_rollout(
        RolloutState::Running,
        Some("wave retried by an operator".into()),
    );
    let wave = &work.waves[w];
    format!(
        "wave {} ({}) runs again; {retried} failed agents wait again",
        wave.index, wave.name
    )
}
