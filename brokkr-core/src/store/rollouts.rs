//! The rollout part of the [`Store`](super::Store) contract: a stack's rollout policy
//! and release head, rollouts with their waves, agents, gate evaluations and
//! commands, the claims of the driver and the changes it applies. A supertrait of
//! `Store`; bring it into scope (`use brokkr_core::store::RolloutStore`) to call it.
//!
//! What the existing writes do for rollouts (every store):
//! - an append to a stack without a policy, a deletion marker, or an append with
//!   [`NewDeploymentObject::immediate`](crate::NewDeploymentObject) moves the release
//!   head to the new object in its transaction, as before rollouts; the last two
//!   cancel the stack's queued and active rollouts and remove their pins;
//! - an append to a stack with a policy leaves the release head and, by the policy's
//!   `on_new_version`, queues a rollout (`queued`, due now; earlier queued ones become
//!   `superseded`), supersedes the active one (pins removed) and queues, or is refused
//!   with `Conflict("rollout_in_progress: ...")` and writes nothing;
//! - an agent's target state names, per stack, its pin's object if it has one, else the
//!   release head; each pin change and release move wakes the agents it concerns;
//! - agent events, health reports and placement changes for a stack make its active
//!   rollout due now (`next_eval_at`), in their transaction.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::id::{DeploymentObjectId, GateEvaluationId, RolloutId, StackId};
use crate::model::{
    Actor, GateEvaluation, GateOutcome, Rollout, RolloutAgent, RolloutCommand, RolloutCommandKind,
    RolloutState, RolloutWave,
};
use crate::page::{Page, PageRequest};
use crate::rollout::{RolloutChange, RolloutPolicy, RolloutSnapshot};

use super::Result;

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

    /// A rollout.
    async fn get_rollout(&self, id: RolloutId) -> Result<Rollout>;

    /// Rollouts by filter, newest first (by id, descending).
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
    /// `claimant` until `lease_until`; oldest due first. Not audited.
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
    /// added and removed, the release head moved, gate evaluations written, commands
    /// marked taken up; one audit record per transition and per agent pinned or
    /// unpinned, one outbox event per transition; the agents whose pin changed (all
    /// the stack's agents when the release head moved) woken. Bumps the version,
    /// frees `claimant`'s lease, and when the rollout becomes final makes the stack's
    /// queued rollout due now. Answers the rollout as written.
    async fn apply_rollout_change(&self, claimant: &str, change: RolloutChange) -> Result<Rollout>;

    /// Frees `claimant`'s lease on a rollout without changing it (an evaluation that
    /// failed). Not audited.
    async fn release_rollout_lease(&self, claimant: &str, id: RolloutId) -> Result<()>;

    /// Records an operator's command for the rollout's next evaluation and makes it
    /// due now. Audited (`update` of the `rollout`, the command in the details).
    /// `NotFound` for an unknown rollout; `Conflict` for a final one.
    async fn give_rollout_command(
        &self,
        actor: &Actor,
        id: RolloutId,
        kind: RolloutCommandKind,
    ) -> Result<RolloutCommand>;

    /// Writes the outcome of a gate evaluation that has none yet and makes its rollout
    /// due now; an evaluation that has one already is answered unchanged. Audited when
    /// `decided_by` is set (an approval). `NotFound` for an unknown evaluation.
    async fn record_gate_outcome(
        &self,
        id: GateEvaluationId,
        record: GateOutcomeRecord,
    ) -> Result<GateEvaluation>;
}
