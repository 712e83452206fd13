//! The rollout part of the [`Store`](super::Store) contract: a stack's rollout policy
//! and release head, rollouts with their waves, agents, gate evaluations and
//! commands, the claims of the driver and the changes it applies. A supertrait of
//! `Store`; bring it into scope (`use brokkr_core::store::RolloutStore`) to call it.
//! The rules the existing writes follow for rollouts are on [`RolloutStore`].

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::id::{DeploymentObjectId, GateEvaluationId, RolloutId, StackId};
use crate::model::{
    Actor, GateEvaluation, GateOutcome, NewDeploymentObject, Rollout, RolloutAgent, RolloutCommand,
    RolloutCommandKind, RolloutState, RolloutWave,
};
use crate::page::{Page, PageRequest};
use crate::rollout::{RolloutChange, RolloutPolicy, RolloutSnapshot};

use super::{Error, Result};

/// Which rollouts to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RolloutFilter {
    /// Only this stack's.
    pub stack_id: Option<StackId>,
    /// Only rollouts in this state.
    pub state: Option<RolloutState>,
}

/// One rollout with everything it is made of, for reading.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutDetails {
    /// The rollout.
    pub rollout: Rollout,
    /// Its waves by index.
    pub waves: Vec<RolloutWave>,
    /// Its agents by (wave, agent id).
    pub agents: Vec<RolloutAgent>,
    /// Its gate evaluations, oldest first.
    pub gate_evaluations: Vec<GateEvaluation>,
    /// Its commands, oldest first, taken up or not.
    pub commands: Vec<RolloutCommand>,
}

/// A gate's outcome to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateOutcomeRecord {
    /// The outcome.
    pub outcome: GateOutcome,
    /// What the gate said, or the error.
    pub reason: Option<String>,
    /// `Wait`: when to ask again.
    pub recheck_at: Option<DateTime<Utc>>,
    /// An approval's approver (audited).
    pub decided_by: Option<Actor>,
    /// When.
    pub at: DateTime<Utc>,
}

/// Rollout policies, release heads and rollouts; see each method for its transaction
/// and audit.
///
/// What the existing writes do for rollouts (every store; [`AppendEffect`] decides
/// for an append):
/// - an append to a stack without a policy, a deletion marker, or an append with
///   [`NewDeploymentObject::immediate`](crate::NewDeploymentObject::immediate) moves
///   the release head to the new object in its transaction, as before rollouts; the
///   last two cancel the stack's queued and active rollouts (`cancelled`) and remove
///   their pins, and the first ends those a policy removed since left behind
///   (`superseded`), so an older candidate can never move the head back;
/// - an append to a stack with a policy leaves the release head and, by the policy's
///   `on_new_version`, queues a rollout (`queued`, due now; earlier queued ones become
///   `superseded`), supersedes the active one (pins removed) and queues, or, while a
///   rollout of the stack is queued or active, is refused with
///   `Conflict("rollout_in_progress: ...")` and writes nothing;
/// - each rollout an append queues or ends is a transition: audited (`create` or
///   `update` of the `rollout`, by the append's actor) and sent as
///   `rollout.state_changed`, each pin it removes audited (`unassign` of the
///   `rollout`);
/// - an agent's target state names, per stack, its pin's object if it has one, else the
///   release head (a stack with no release yet is left out); each pin change and
///   release move wakes the agents it concerns, and an append that moves no release
///   head and no pin wakes none;
/// - agent events, health reports and placement changes for a stack (a decision, an
///   assignment or unassignment, a deleted agent) make its active rollout due now
///   (`next_eval_at`), in their transaction.
///
/// Due-now survives an evaluation in flight: an event, command or gate outcome that
/// makes a claimed rollout due is remembered until its next claim, and the change that
/// evaluation applies keeps the rollout due instead of setting its own `next_eval_at`,
/// so nothing it did not see waits for a timer.
#[async_trait]
pub trait RolloutStore: Send + Sync + 'static {
    /// Sets (`Some`, validated by the caller) or removes a stack's rollout policy.
    /// Applies to rollouts created afterwards. Audited (`update` of the `stack`).
    /// `NotFound` for a missing or deleted stack.
    async fn set_rollout_policy(
        &self,
        actor: &Actor,
        stack_id: StackId,
        policy: Option<RolloutPolicy>,
    ) -> Result<()>;

    /// A stack's rollout policy. `NotFound` for a missing or deleted stack.
    async fn rollout_policy(&self, stack_id: StackId) -> Result<Option<RolloutPolicy>>;

    /// The object agents without a pin get for the stack; `None` before its first
    /// release. `NotFound` for a missing stack.
    async fn release_head(&self, stack_id: StackId) -> Result<Option<DeploymentObjectId>>;

    /// The newest rollout of the stack that reverted a candidate whose YAML has this
    /// checksum (state `reverted` or `revert_failed`), with that candidate: the guard
    /// holds an append of rejected content for an admin's confirmation.
    async fn rejecting_rollout(
        &self,
        stack_id: StackId,
        yaml_checksum: &str,
    ) -> Result<Option<(RolloutId, DeploymentObjectId)>>;

    /// A rollout.
    async fn get_rollout(&self, id: RolloutId) -> Result<Rollout>;

    /// Rollouts by filter, ordered by id (time-ordered) in the page's order:
    /// [`Order::Descending`](crate::Order::Descending) lists the newest first.
    async fn list_rollouts(
        &self,
        filter: &RolloutFilter,
        page: &PageRequest,
    ) -> Result<Page<Rollout>>;

    /// A rollout with its waves, agents, gate evaluations and commands.
    async fn rollout_details(&self, id: RolloutId) -> Result<RolloutDetails>;

    /// What an evaluation of the rollout needs, in one consistent read: see
    /// [`RolloutSnapshot`].
    async fn rollout_snapshot(&self, id: RolloutId) -> Result<RolloutSnapshot>;

    /// Leases up to `limit` rollouts that are queued or active, due at `now`
    /// (`next_eval_at <= now`) and not leased by another claimant at `now`, to
    /// `claimant` until `lease_until`; oldest due first. Concurrent claimants never
    /// get the same rollout while its lease holds. Not audited.
    async fn claim_due_rollouts(
        &self,
        claimant: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<RolloutId>>;

    /// Applies one evaluation's change in one transaction, if the rollout's version is
    /// still `change.expected_version` (else `Conflict("rollout_version: ...")` and
    /// nothing written): the rollout's fields, waves and agents written whole, pins
    /// added and removed, the release head moved, gate evaluations written (one whose
    /// id is stored already is left as it is), commands marked taken up; one audit
    /// record per transition and per agent pinned or unpinned, one outbox event per
    /// transition; the agents whose pin changed (all the stack's agents when the
    /// release head moved) woken. Bumps the version,
    /// frees `claimant`'s lease, and when the rollout becomes final makes the stack's
    /// queued rollout due now. Answers the rollout as written.
    ///
    /// Transitions are audited as `update` of the `rollout` and pins as `assign` /
    /// `unassign` of the `rollout`, by [`Actor::System`]. A change that starts a
    /// queued rollout (to an active state) takes the stack's current release head as
    /// its baseline, and `Conflict` when another rollout of the stack is active; a
    /// release also makes the new head the baseline of the stack's queued rollout. A
    /// final state removes whatever pins the rollout still holds.
    /// `NotFound("rollout")` for an unknown rollout.
    async fn apply_rollout_change(&self, claimant: &str, change: RolloutChange) -> Result<Rollout>;

    /// Frees `claimant`'s lease on a rollout without changing it (an evaluation that
    /// failed). Not audited.
    async fn release_rollout_lease(&self, claimant: &str, id: RolloutId) -> Result<()>;

    /// Records an operator's command for the rollout's next evaluation and makes it
    /// due now. Audited (`update` of the `rollout`, the command in the summary).
    /// `NotFound` for an unknown rollout; `Conflict("rollout_final: ...")` for a final
    /// one.
    async fn give_rollout_command(
        &self,
        actor: &Actor,
        id: RolloutId,
        kind: RolloutCommandKind,
    ) -> Result<RolloutCommand>;

    /// Writes the outcome of a gate evaluation that has none yet and makes its rollout
    /// due now (unless it is final); an evaluation that has one already is answered
    /// unchanged. Audited when `decided_by` is set (an approval: `update` of the
    /// `rollout`, by the approver). `NotFound("gate evaluation")` for an unknown
    /// evaluation.
    async fn record_gate_outcome(
        &self,
        id: GateEvaluationId,
        record: GateOutcomeRecord,
    ) -> Result<GateEvaluation>;
}

/// What appending one deployment object does to its stack's rollouts: the rules on
/// [`RolloutStore`], decided in one place for every store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendEffect {
    /// The release head moves to the new object in the append's transaction; the
    /// stack's open (queued and active) rollouts end in `open_end_as`, their pins
    /// removed.
    Release {
        /// `Cancelled` for a deletion marker or an immediate object, `Superseded` for
        /// an append to a stack without a policy.
        open_end_as: RolloutState,
    },
    /// A rollout of the new object is queued, due now, with the release head as its
    /// baseline; the stack's queued rollouts become `superseded`, and its active one
    /// too when `supersede_active` (pins removed).
    Queue {
        /// The policy says `supersede`.
        supersede_active: bool,
    },
    /// Refused with [`rollout_in_progress`]: the policy says `reject` and a rollout of
    /// the stack is queued or active. Nothing is written.
    Reject,
}

impl AppendEffect {
    /// The effect of appending `new` to a stack with `policy` whose rollouts include
    /// an open (queued or active) one when `open` is set.
    pub fn of(new: &NewDeploymentObject, policy: Option<&RolloutPolicy>, open: bool) -> Self {
        use crate::rollout::OnNewVersion;
        if new.is_immediate() {
            return Self::Release {
                open_end_as: RolloutState::Cancelled,
            };
        }
        let Some(policy) = policy else {
            return Self::Release {
                open_end_as: RolloutState::Superseded,
            };
        };
        match policy.on_new_version {
            OnNewVersion::Queue => Self::Queue {
                supersede_active: false,
            },
            OnNewVersion::Supersede => Self::Queue {
                supersede_active: true,
            },
            OnNewVersion::Reject if open => Self::Reject,
            OnNewVersion::Reject => Self::Queue {
                supersede_active: false,
            },
        }
    }

    /// Whether it ends a rollout in `state` (open, i.e. queued or active), and how.
    pub fn ends(self, state: RolloutState) -> Option<RolloutState> {
        match self {
            Self::Release { open_end_as } => Some(open_end_as),
            Self::Queue { .. } if state == RolloutState::Queued => Some(RolloutState::Superseded),
            Self::Queue {
                supersede_active: true,
            } => Some(RolloutState::Superseded),
            Self::Queue { .. } | Self::Reject => None,
        }
    }
}

/// The refusal of an append to a stack whose policy rejects new versions while one of
/// its rollouts is queued or active.
pub fn rollout_in_progress(stack: StackId) -> Error {
    Error::Conflict(format!(
        "rollout_in_progress: stack {stack} has a rollout queued or running and its rollout \
         policy rejects new versions until it ends"
    ))
}

/// The refusal of a change computed from a version of the rollout that is no longer
/// the stored one.
pub fn rollout_version_conflict(id: RolloutId, expected: i64, stored: i64) -> Error {
    Error::Conflict(format!(
        "rollout_version: rollout {id} is at version {stored}, the change was computed from \
         version {expected}"
    ))
}

/// The refusal of a command to a rollout that has ended.
pub fn rollout_final(id: RolloutId, state: RolloutState) -> Error {
    Error::Conflict(format!(
        "rollout_final: rollout {id} is {}; it takes no more commands",
        state.as_str()
    ))
}

/// The `next_eval_at` a change leaves on a rollout whose stored one is `stored`: none
/// once final; else the change's, unless something made the rollout due while the
/// evaluation ran (`signalled` since its claim), which keeps it due (the earlier of
/// the two), so the next evaluation sees what this one did not.
pub fn next_eval_after(
    change: &RolloutChange,
    signalled: bool,
    stored: Option<DateTime<Utc>>,
) -> Option<DateTime<Utc>> {
    if change.state.is_final() {
        return None;
    }
    match (signalled, stored, change.next_eval_at) {
        (true, Some(due), Some(next)) => Some(due.min(next)),
        (true, Some(due), None) => Some(due),
        (_, _, next) => next,
    }
}

/// Whether a rollout that something makes due at `at` must be written: not when it is
/// final, nor when it is due already and not claimed (its next evaluation will see
/// the cause anyway).
pub fn needs_signal(
    state: RolloutState,
    next_eval_at: Option<DateTime<Utc>>,
    claimed: bool,
    at: DateTime<Utc>,
) -> bool {
    !state.is_final() && (claimed || next_eval_at.is_none_or(|next| next > at))
}

/// The reason a rollout ended because of an append, for its transition.
pub fn ended_by_append(end: RolloutState, object: DeploymentObjectId) -> String {
    match end {
        RolloutState::Cancelled => format!("cancelled by deployment object {object}"),
        _ => format!("superseded by deployment object {object}"),
    }
}
