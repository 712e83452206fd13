//! Gates in an evaluation (ROLLOUTS.md section 7): which gates a wave has in a
//! phase, where each stands from its evaluations, and what to do about it.
//!
//! The step never runs a gate. It writes an evaluation row (outcome empty) for the
//! driver to run, or, for an approval, for an operator to decide; while a row has no
//! outcome it waits for it, and never starts a second one for the same gate, wave
//! and phase. The outcome comes back through the store and makes the rollout due.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::id::GateEvaluationId;
use crate::model::{GateEvaluation, GateOutcome, WaveState};
use crate::rollout::{GateKind, GatePhase, GateSpec, NewGateEvaluation, OnGateError};

use super::work::{Work, later};
use super::{
    CONTINUOUS_GATE_INTERVAL, DEFAULT_ERROR_LIMIT, GATE_ERROR_RETRY, GATE_PAUSE_RECHECK,
    GATE_WAIT_DEFAULT,
};

/// The snapshot's gate evaluations by gate, then (wave, phase), by attempt.
pub(super) struct GateBook<'s> {
    by_gate: HashMap<&'s str, HashMap<(u32, GatePhase), Vec<&'s GateEvaluation>>>,
}

impl<'s> GateBook<'s> {
    pub(super) fn new(evaluations: &'s [GateEvaluation]) -> Self {
        let mut by_gate: HashMap<&str, HashMap<_, Vec<&GateEvaluation>>> = HashMap::new();
        for evaluation in evaluations {
            by_gate
                .entry(evaluation.gate.as_str())
                .or_default()
                .entry((evaluation.wave, evaluation.phase))
                .or_default()
                .push(evaluation);
        }
        for list in by_gate.values_mut().flat_map(|m| m.values_mut()) {
            list.sort_by_key(|e| e.attempt);
        }
        Self { by_gate }
    }

    fn list(&self, wave: u32, gate: &str, phase: GatePhase) -> &[&'s GateEvaluation] {
        self.by_gate
            .get(gate)
            .and_then(|m| m.get(&(wave, phase)))
            .map_or(&[], Vec::as_slice)
    }
}

/// Where one gate stands for one wave and phase.
#[derive(Debug, Clone, PartialEq, Eq)]
enum GateStatus {
    /// No evaluation since the cutoff.
    NotAsked,
    /// An evaluation without an outcome.
    Pending,
    Passed {
        at: DateTime<Utc>,
    },
    Failed {
        reason: String,
    },
    Wait {
        until: DateTime<Utc>,
    },
    Paused {
        at: DateTime<Utc>,
        reason: String,
    },
    Errored {
        streak: u32,
        at: DateTime<Utc>,
        reason: String,
    },
}

/// What one gate means for the rollout now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum GateStep {
    Pass,
    Waiting,
    Fail(String),
    /// The gate asked to pause.
    Pause(String),
    /// The gate could not answer `error_limit` times in a row.
    ErrorLimit(String),
}

/// What a phase's gates together mean for the wave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum PhaseVerdict {
    Passed,
    Waiting,
    Failed(String),
    /// Pause the rollout with this reason.
    Paused(String),
}

/// The `state_reason` prefix of a rollout paused by a gate's `pause` verdict; such a
/// pause ends by itself when the gate passes.
const PAUSED_BY_GATE: &str = "gate ";
const PAUSED_BY_GATE_SUFFIX: &str = " paused the rollout: ";

/// The gate whose `pause` verdict paused the rollout, from its `state_reason`.
pub(super) fn paused_by_gate(reason: Option<&str>) -> Option<&str> {
    let rest = reason?.strip_prefix(PAUSED_BY_GATE)?;
    rest.split_once(PAUSED_BY_GATE_SUFFIX).map(|(name, _)| name)
}

fn gate_pause_reason(gate: &str, reason: &str) -> String {
    format!("{PAUSED_BY_GATE}{gate}{PAUSED_BY_GATE_SUFFIX}{reason}")
}

/// Whether `gate` runs for wave `w` (all waves, or the policy wave it came from).
fn applies(work: &Work<'_>, gate: &GateSpec, w: usize) -> bool {
    gate.waves.is_empty()
        || work.waves[w]
            .spec
            .as_ref()
            .is_some_and(|spec| gate.waves.contains(spec))
}

/// The policy's gates of `phase` for wave `w`.
pub(super) fn gates_for<'p>(work: &Work<'p>, w: usize, phase: GatePhase) -> Vec<&'p GateSpec> {
    let policy = work.policy;
    policy
        .gates
        .iter()
        .filter(|g| g.phase == phase && applies(work, g, w))
        .collect()
}

/// Evaluations before this time belong to an earlier pass of the wave (before a
/// retry, or before a flap restarted its bake) and do not count.
fn cutoff(work: &Work<'_>, w: usize, phase: GatePhase) -> Option<DateTime<Utc>> {
    let wave = &work.waves[w];
    match phase {
        GatePhase::BeforeWave | GatePhase::Continuous => wave.started_at,
        GatePhase::AfterWave => wave.all_healthy_since,
    }
}

fn status(work: &Work<'_>, w: usize, gate: &GateSpec, phase: GatePhase) -> GateStatus {
    let index = work.waves[w].index;
    let started_now = work
        .start_gates
        .iter()
        .any(|g| g.wave == index && g.gate == gate.name && g.phase == phase);
    if started_now {
        return GateStatus::Pending;
    }
    let since = cutoff(work, w, phase);
    let list: Vec<&GateEvaluation> = work
        .gates
        .list(index, &gate.name, phase)
        .iter()
        .copied()
        .filter(|e| since.is_none_or(|t| e.started_at >= t))
        .collect();
    let Some(latest) = list.last() else {
        return GateStatus::NotAsked;
    };
    let at = latest.finished_at.unwrap_or(latest.started_at);
    let reason = || latest.reason.clone().unwrap_or_default();
    match latest.outcome {
        None => GateStatus::Pending,
        Some(GateOutcome::Pass) => GateStatus::Passed { at },
        Some(GateOutcome::Fail) => GateStatus::Failed { reason: reason() },
        Some(GateOutcome::Wait) => GateStatus::Wait {
            until: latest
                .recheck_at
                .unwrap_or_else(|| later(at, GATE_WAIT_DEFAULT)),
        },
        Some(GateOutcome::Pause) => GateStatus::Paused {
            at,
            reason: reason(),
        },
        Some(GateOutcome::Error) => {
            let streak = list
                .iter()
                .rev()
                .take_while(|e| e.outcome == Some(GateOutcome::Error))
                .count();
            GateStatus::Errored {
                streak: u32::try_from(streak).unwrap_or(u32::MAX),
                at,
                reason: reason(),
            }
        }
    }
}

/// Writes a new evaluation of `gate` for wave `w`: the next attempt.
fn start(work: &mut Work<'_>, w: usize, gate: &GateSpec, phase: GatePhase) {
    let index = work.waves[w].index;
    let attempt = work
        .gates
        .list(index, &gate.name, phase)
        .iter()
        .map(|e| e.attempt)
        .max()
        .unwrap_or(0)
        + 1;
    work.start_gates.push(NewGateEvaluation {
        id: GateEvaluationId::new(),
        wave: index,
        gate: gate.name.clone(),
        phase,
        attempt,
    });
}

fn error_limit(gate: &GateSpec) -> u32 {
    gate.error_limit.unwrap_or(DEFAULT_ERROR_LIMIT).max(1)
}

/// When a gate in `status` is to be asked again: now for one never asked, later
/// after a pass (continuous gates only), a wait, a pause or an error under the
/// limit; never while an evaluation runs or after a failure.
fn ask_again_at(
    work: &Work<'_>,
    gate: &GateSpec,
    phase: GatePhase,
    status: &GateStatus,
) -> Option<DateTime<Utc>> {
    match *status {
        GateStatus::NotAsked => Some(work.now),
        GateStatus::Pending | GateStatus::Failed { .. } => None,
        GateStatus::Passed { at } => {
            (phase == GatePhase::Continuous).then(|| later(at, CONTINUOUS_GATE_INTERVAL))
        }
        GateStatus::Wait { until } => Some(until),
        GateStatus::Paused { at, .. } => Some(later(at, GATE_PAUSE_RECHECK)),
        GateStatus::Errored { streak, at, .. } => {
            (streak < error_limit(gate)).then(|| later(at, GATE_ERROR_RETRY))
        }
    }
}

/// When `gate` is next to be asked for wave `w`, if later than now: a timer for
/// the evaluation after this one.
pub(super) fn next_ask(
    work: &Work<'_>,
    w: usize,
    gate: &GateSpec,
    phase: GatePhase,
) -> Option<DateTime<Utc>> {
    let status = status(work, w, gate, phase);
    ask_again_at(work, gate, phase, &status).filter(|at| *at > work.now)
}

/// Judges one gate for wave `w`, starting an attempt when one is due.
pub(super) fn judge(work: &mut Work<'_>, w: usize, gate: &GateSpec, phase: GatePhase) -> GateStep {
    let status = status(work, w, gate, phase);
    if ask_again_at(work, gate, phase, &status).is_some_and(|at| at <= work.now) {
        start(work, w, gate, phase);
    }
    match status {
        GateStatus::NotAsked | GateStatus::Pending | GateStatus::Wait { .. } => GateStep::Waiting,
        GateStatus::Passed { .. } => GateStep::Pass,
        GateStatus::Failed { reason } => {
            GateStep::Fail(format!("gate {} failed: {reason}", gate.name))
        }
        // The pause ends when the gate passes: it is asked again meanwhile.
        GateStatus::Paused { reason, .. } => {
            GateStep::Pause(gate_pause_reason(&gate.name, &reason))
        }
        GateStatus::Errored { streak, reason, .. } => {
            if streak >= error_limit(gate) {
                GateStep::ErrorLimit(format!(
                    "gate {} could not answer {streak} times in a row ({reason})",
                    gate.name
                ))
            } else {
                GateStep::Waiting
            }
        }
    }
}

/// What too many errors of a gate do, by the policy's `on_gate_error`.
fn on_error_limit(work: &Work<'_>, reason: String) -> PhaseVerdict {
    match work.policy.on_gate_error {
        OnGateError::Pause => PhaseVerdict::Paused(format!("{reason}; resume to ask it again")),
        OnGateError::Fail => PhaseVerdict::Failed(reason),
    }
}

/// Judges every gate of `phase` for wave `w`. Continuous gates never hold a wave:
/// only their failure or pause counts.
pub(super) fn judge_phase(work: &mut Work<'_>, w: usize, phase: GatePhase) -> PhaseVerdict {
    let mut waiting = Vec::new();
    for gate in gates_for(work, w, phase) {
        match judge(work, w, gate, phase) {
            GateStep::Pass => {}
            GateStep::Waiting => waiting.push(gate),
            GateStep::Fail(reason) => return PhaseVerdict::Failed(reason),
            GateStep::Pause(reason) => return PhaseVerdict::Paused(reason),
            GateStep::ErrorLimit(reason) => return on_error_limit(work, reason),
        }
    }
    if waiting.is_empty() || phase == GatePhase::Continuous {
        return PhaseVerdict::Passed;
    }
    let wave = &work.waves[w];
    let names: Vec<String> = waiting
        .iter()
        .map(|g| match g.kind {
            GateKind::Approval => format!("{} (approval)", g.name),
            _ => g.name.clone(),
        })
        .collect();
    work.hold = Some(format!(
        "wave {} ({}) waits for gate {}",
        wave.index,
        wave.name,
        names.join(", ")
    ));
    PhaseVerdict::Waiting
}

/// Whether a gate of `phase` is being asked for a wave in `state`.
pub(super) fn phase_active(phase: GatePhase, state: WaveState) -> bool {
    match phase {
        GatePhase::BeforeWave => state == WaveState::Gating,
        GatePhase::AfterWave => state == WaveState::Verifying,
        GatePhase::Continuous => true,
    }
}

/// For a rollout paused by a gate's verdict: asks that gate again. `Some(verdict)`
/// when the pause ends (`Passed`) or turns into something else; `None` while it
/// holds.
pub(super) fn recheck_pausing_gate(work: &mut Work<'_>, w: usize) -> Option<PhaseVerdict> {
    let name = paused_by_gate(work.reason.as_deref())?.to_owned();
    let policy = work.policy;
    let Some(gate) = policy.gates.iter().find(|g| g.name == name) else {
        return Some(PhaseVerdict::Passed);
    };
    if !phase_active(gate.phase, work.waves[w].state) || !applies(work, gate, w) {
        // The wave moved on (a flap restarted its bake): the gate is asked again
        // when its phase comes back.
        return Some(PhaseVerdict::Passed);
    }
    match judge(work, w, gate, gate.phase) {
        GateStep::Pass => Some(PhaseVerdict::Passed),
        GateStep::Waiting => None,
        GateStep::Pause(reason) => {
            work.reason = Some(reason);
            None
        }
        GateStep::Fail(reason) => Some(PhaseVerdict::Failed(reason)),
        GateStep::ErrorLimit(reason) => Some(on_error_limit(work, reason)),
    }
}

/// On an operator's resume: a gate whose pause verdict or errors paused the rollout
/// is asked again at once, so its old verdict does not pause it again.
pub(super) fn ask_again_on_resume(work: &mut Work<'_>, w: usize) {
    let policy = work.policy;
    for gate in &policy.gates {
        if !applies(work, gate, w) || !phase_active(gate.phase, work.waves[w].state) {
            continue;
        }
        let stuck = match status(work, w, gate, gate.phase) {
            GateStatus::Paused { .. } => true,
            GateStatus::Errored { streak, .. } => streak >= error_limit(gate),
            _ => false,
        };
        if stuck {
            start(work, w, gate, gate.phase);
        }
    }
}
