//! `impl RolloutStore for SqlStore`: the trait's surface, delegating to one module
//! per job (`rollout_reads`, `rollout_snapshot`, `rollout_claims`, `rollout_changes`,
//! `rollout_operator`).

use async_trait::async_trait;
use brokkr_core::page::{Page, PageRequest};
use brokkr_core::rollout::{RolloutChange, RolloutPolicy, RolloutSnapshot};
use brokkr_core::store::{GateOutcomeRecord, Result, RolloutDetails, RolloutFilter, RolloutStore};
use brokkr_core::{
    Actor, DeploymentObjectId, GateEvaluation, GateEvaluationId, Rollout, RolloutCommand,
    RolloutCommandKind, RolloutId, StackId,
};
use chrono::{DateTime, Utc};

use crate::SqlStore;

#[async_trait]
impl RolloutStore for SqlStore {
    async fn set_rollout_policy(
        &self,
        actor: &Actor,
        stack_id: StackId,
        policy: Option<RolloutPolicy>,
    ) -> Result<()> {
        self.set_rollout_policy_impl(actor, stack_id, policy).await
    }

    async fn rollout_policy(&self, stack_id: StackId) -> Result<Option<RolloutPolicy>> {
        self.rollout_policy_impl(stack_id).await
    }

    async fn release_head(&self, stack_id: StackId) -> Result<Option<DeploymentObjectId>> {
        self.release_head_impl(stack_id).await
    }

    async fn rejecting_rollout(
        &self,
        stack_id: StackId,
        yaml_checksum: &str,
    ) -> Result<Option<(RolloutId, DeploymentObjectId)>> {
        self.rejecting_rollout_impl(stack_id, yaml_checksum).await
    }

    async fn get_rollout(&self, id: RolloutId) -> Result<Rollout> {
        self.get_rollout_impl(id).await
    }

    async fn list_rollouts(
        &self,
        filter: &RolloutFilter,
        page: &PageRequest,
    ) -> Result<Page<Rollout>> {
        self.list_rollouts_impl(filter, page).await
    }

    async fn rollout_details(&self, id: RolloutId) -> Result<RolloutDetails> {
        self.rollout_details_impl(id).await
    }

    async fn rollout_snapshot(&self, id: RolloutId) -> Result<RolloutSnapshot> {
        self.rollout_snapshot_impl(id).await
    }

    async fn claim_due_rollouts(
        &self,
        claimant: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<RolloutId>> {
        self.claim_due_rollouts_impl(claimant, now, lease_until, limit)
            .await
    }

    async fn apply_rollout_change(&self, claimant: &str, change: RolloutChange) -> Result<Rollout> {
        self.apply_rollout_change_impl(claimant, change).await
    }

    async fn release_rollout_lease(&self, claimant: &str, id: RolloutId) -> Result<()> {
        self.release_rollout_lease_impl(claimant, id).await
    }

    async fn give_rollout_command(
        &self,
        actor: &Actor,
        id: RolloutId,
        kind: RolloutCommandKind,
    ) -> Result<RolloutCommand> {
        self.give_rollout_command_impl(actor, id, kind).await
    }

    async fn record_gate_outcome(
        &self,
        id: GateEvaluationId,
        record: GateOutcomeRecord,
    ) -> Result<GateEvaluation> {
        self.record_gate_outcome_impl(id, record).await
    }
}
