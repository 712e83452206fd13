//! Rollouts as stored: the rollout, its waves, its agents, its gate evaluations and
//! the commands operators gave it, with the states of ROLLOUTS.md section 5. What a
//! rollout does next is decided by the pure [`step`](crate::rollout::step) over a
//! [`RolloutSnapshot`](crate::rollout::RolloutSnapshot).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::{
    AgentId, DeploymentObjectId, GateEvaluationId, RolloutCommandId, RolloutId, StackId,
};
use crate::model::Actor;
use crate::rollout::{GatePhase, RolloutPolicy};

/// Where a rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutState {
    /// Waiting for the stack's active rollout to end (`on_new_version: queue`), or
    /// for its first evaluation.
    Queued,
    /// Pinning agents wave by wave.
    Running,
    /// Stopped by an operator or a gate; pins kept, nothing new pinned.
    Paused,
    /// A wave failed with `on_failure: halt`; pins kept until `abort` or `retry-wave`.
    Halted,
    /// Every pin was removed; waiting for the agents to report the baseline.
    Reverting,
    /// Every wave succeeded: the release head is the candidate. Final.
    Succeeded,
    /// Reverted: every agent that had the candidate is back on the baseline (or
    /// offline or removed). Final.
    Reverted,
    /// Reverted, but some agents failed on the baseline. Final; alert.
    RevertFailed,
    /// A newer deployment object took its place (`supersede`, or a newer one queued
    /// behind the same active rollout). Final.
    Superseded,
    /// The stack was deleted, or an admin appended with `immediate`. Final.
    Cancelled,
}

stable_names!(RolloutState {
    Queued => "queued",
    Running => "running",
    Paused => "paused",
    Halted => "halted",
    Reverting => "reverting",
    Succeeded => "succeeded",
    Reverted => "reverted",
    RevertFailed => "revert_failed",
    Superseded => "superseded",
    Cancelled => "cancelled",
});

impl RolloutState {
    /// Whether it holds the stack's one active-rollout slot (the partial unique index
    /// on `rollouts (stack_id)`).
    pub fn is_active(self) -> bool {
        matches!(
            self,
            Self::Running | Self::Paused | Self::Halted | Self::Reverting
        )
    }

    /// Whether it will never change again.
    pub fn is_final(self) -> bool {
        matches!(
            self,
            Self::Succeeded
                | Self::Reverted
                | Self::RevertFailed
                | Self::Superseded
                | Self::Cancelled
        )
    }
}

/// Where a wave stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WaveState {
    /// Not started.
    Pending,
    /// Its `before_wave` gates run.
    Gating,
    /// Its agents are being pinned and watched.
    Running,
    /// Every agent not skipped is healthy on the candidate; the bake timer runs from
    /// `all_healthy_since`.
    Baking,
    /// Baked; its `after_wave` gates run.
    Verifying,
    /// Done; the next wave may start.
    Succeeded,
    /// More failures than `max_failures`, a gate said fail, or a deadline passed.
    Failed,
}

stable_names!(WaveState {
    Pending => "pending",
    Gating => "gating",
    Running => "running",
    Baking => "baking",
    Verifying => "verifying",
    Succeeded => "succeeded",
    Failed => "failed",
});

/// Where one agent of a rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutAgentState {
    /// Its wave has not pinned it yet; it runs the baseline.
    Waiting,
    /// Pinned to the candidate; no successful apply of it reported yet.
    Pinned,
    /// Applied the candidate; not (or no longer) healthy on it.
    Applied,
    /// Healthy on the candidate since `healthy_since`.
    Healthy,
    /// Stale when its wave started (`offline_agents: skip`); never pinned.
    Skipped,
    /// Failed on the candidate (failure event, failed health, degraded too long).
    Failed,
    /// Not healthy on the candidate within `progress_deadline` of its pin.
    TimedOut,
    /// Placement took the stack off it during the rollout; not counted.
    Removed,
    /// Its pin was removed by a revert; the baseline not yet reported applied.
    Reverted,
    /// Reported a successful apply of the baseline after the revert.
    RevertedOk,
}

stable_names!(RolloutAgentState {
    Waiting => "waiting",
    Pinned => "pinned",
    Applied => "applied",
    Healthy => "healthy",
    Skipped => "skipped",
    Failed => "failed",
    TimedOut => "timed_out",
    Removed => "removed",
    Reverted => "reverted",
    RevertedOk => "reverted_ok",
});

impl RolloutAgentState {
    /// Pinned and not yet healthy on the candidate: counts against `max_concurrency`.
    pub fn is_in_flight(self) -> bool {
        matches!(self, Self::Pinned | Self::Applied)
    }

    /// Counts against the wave's `max_failures`.
    pub fn is_failure(self) -> bool {
        matches!(self, Self::Failed | Self::TimedOut)
    }
}

/// One rollout: a candidate deployment object's way through the stack's waves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rollout {
    /// Its id.
    pub id: RolloutId,
    /// The stack.
    pub stack_id: StackId,
    /// The deployment object being rolled out.
    pub candidate: DeploymentObjectId,
    /// The release head when it left the queue (a queued rollout follows the head, so a
    /// release by the rollout before it becomes its baseline): what agents run until
    /// pinned and go back to on revert. `None` for a stack's first deployment object.
    pub baseline: Option<DeploymentObjectId>,
    /// The stack's policy when the rollout was created.
    pub policy: RolloutPolicy,
    /// Who appended the candidate.
    pub created_by: Actor,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// Where it stands.
    pub state: RolloutState,
    /// Why it is in that state, or what holds it ("max_concurrency reached").
    pub state_reason: Option<String>,
    /// Bumped by every change; a change names the version it was computed from.
    pub version: i64,
    /// When it started running (`deadline_at` counts from here).
    pub started_at: Option<DateTime<Utc>>,
    /// `started_at + rollout_deadline`.
    pub deadline_at: Option<DateTime<Utc>>,
    /// When it must be evaluated next; `None` once final.
    pub next_eval_at: Option<DateTime<Utc>>,
    /// When it reached a final state.
    pub finished_at: Option<DateTime<Utc>>,
    /// When its state or waves last changed.
    pub updated_at: DateTime<Utc>,
}

impl Rollout {
    /// A rollout of `candidate` just queued under `policy`, due now: what every store
    /// writes when an append to a stack with a rollout policy queues one.
    pub fn queued(
        stack_id: StackId,
        candidate: DeploymentObjectId,
        baseline: Option<DeploymentObjectId>,
        policy: RolloutPolicy,
        created_by: Actor,
        at: DateTime<Utc>,
    ) -> Self {
        Self {
            id: RolloutId::new(),
            stack_id,
            candidate,
            baseline,
            policy,
            created_by,
            created_at: at,
            state: RolloutState::Queued,
            state_reason: None,
            version: 1,
            started_at: None,
            deadline_at: None,
            next_eval_at: Some(at),
            finished_at: None,
            updated_at: at,
        }
    }
}

/// One wave of a rollout, planned when the rollout starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutWave {
    /// Its position, from 0; waves run in this order.
    pub index: u32,
    /// The policy wave's name, with the sub-wave (`eu/zone=a`, `eu#2`) when
    /// `group_by` or `split` cut it; `late` for a wave appended for agents placed
    /// during the rollout, `implicit` for agents no wave selected.
    pub name: String,
    /// The policy wave it came from (its name), for gates' `waves`.
    pub spec: Option<String>,
    /// Failed agents this wave tolerates (`max_failures` of its agents).
    pub max_failures: u32,
    /// Where it stands.
    pub state: WaveState,
    /// When it started (left `pending`).
    pub started_at: Option<DateTime<Utc>>,
    /// Since when every agent of it not skipped has been healthy on the candidate.
    pub all_healthy_since: Option<DateTime<Utc>>,
    /// An operator's `promote`: bake and `after_wave` gates skipped.
    pub promoted: bool,
    /// Why it is in its state.
    pub reason: Option<String>,
    /// When it reached `succeeded` or `failed`.
    pub finished_at: Option<DateTime<Utc>>,
}

/// One agent of a rollout.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutAgent {
    /// The agent.
    pub agent_id: AgentId,
    /// Its wave's index.
    pub wave: u32,
    /// Where it stands.
    pub state: RolloutAgentState,
    /// When it was pinned to the candidate.
    pub pinned_at: Option<DateTime<Utc>>,
    /// Since when it has been healthy on the candidate.
    pub healthy_since: Option<DateTime<Utc>>,
    /// Since when it has been degraded or progressing after having been healthy.
    pub unhealthy_since: Option<DateTime<Utc>>,
    /// Why it is in its state.
    pub reason: Option<String>,
    /// When its state last changed.
    pub updated_at: DateTime<Utc>,
}

/// A gate's verdict, or its error, as stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GateOutcome {
    /// Go on.
    Pass,
    /// The wave fails.
    Fail,
    /// Ask again at `recheck_at`.
    Wait,
    /// Pause the rollout until the gate passes or an operator resumes it.
    Pause,
    /// The gate could not answer (timeout, non-2xx, bad JSON); not a failure.
    Error,
}

stable_names!(RolloutCommandKind {
    Pause => "pause",
    Resume => "resume",
    Abort => "abort",
    Promote => "promote",
    RetryWave => "retry_wave",
});

stable_names!(GateOutcome {
    Pass => "pass",
    Fail => "fail",
    Wait => "wait",
    Pause => "pause",
    Error => "error",
});

/// One evaluation of one gate for one wave: written before the gate runs, its
/// outcome written after. Append-only apart from that outcome.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GateEvaluation {
    /// Its id: the webhook gate's `X-Brokkr-Delivery`, the same when an evaluation
    /// with no outcome runs again after a restart.
    pub id: GateEvaluationId,
    /// The rollout.
    pub rollout_id: RolloutId,
    /// The wave's index.
    pub wave: u32,
    /// The gate's name in the policy.
    pub gate: String,
    /// When it ran.
    pub phase: GatePhase,
    /// 1 for the first evaluation of this gate for this wave and phase, then 2, ...
    pub attempt: u32,
    /// `None` while it runs.
    pub outcome: Option<GateOutcome>,
    /// What the gate said, or the error.
    pub reason: Option<String>,
    /// `Wait`: when to ask again.
    pub recheck_at: Option<DateTime<Utc>>,
    /// Who decided, for approvals.
    pub decided_by: Option<Actor>,
    /// When it was written.
    pub started_at: DateTime<Utc>,
    /// When its outcome was written.
    pub finished_at: Option<DateTime<Utc>>,
}

/// What an operator asks of a rollout. (An approval is not a command: it is the
/// outcome of the wave's waiting approval evaluation, recorded by
/// [`RolloutStore::record_gate_outcome`](crate::store::RolloutStore::record_gate_outcome).)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RolloutCommandKind {
    /// Stop pinning (running → paused).
    Pause,
    /// Go on (paused → running).
    Resume,
    /// Revert now (or end a halted rollout by reverting).
    Abort,
    /// Skip the current wave's bake and `after_wave` gates (admin only).
    Promote,
    /// Run the failed wave again (halted → running); its failed agents wait again.
    RetryWave,
}

/// A command given to a rollout, applied by its next evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RolloutCommand {
    /// Its id.
    pub id: RolloutCommandId,
    /// The rollout.
    pub rollout_id: RolloutId,
    /// What was asked.
    pub kind: RolloutCommandKind,
    /// Who asked.
    pub actor: Actor,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When an evaluation took it up; `None` until then.
    pub consumed_at: Option<DateTime<Utc>>,
    /// What it did, or why it did nothing ("not paused").
    pub outcome: Option<String>,
}
