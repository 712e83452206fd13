//! `impl RolloutStore for MemoryStore`: the trait's surface, delegating to
//! `rollout_reads.rs` and `rollout_changes.rs`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{MemoryStore, rollout_changes, rollout_reads};
use crate::id::{DeploymentObjectId, GateEvaluationId, RolloutId, StackId};
use crate::model::{Actor, GateEvaluation, Rollout, RolloutCommand, RolloutCommandKind};
use crate::page::{Page, PageRequest};
use crate::rollout::{RolloutChange, RolloutPolicy, RolloutSnapshot};
use crate::store::{GateOutcomeRecord, Result, RolloutDetails, RolloutFilter, RolloutStore};

#[async_trait]
impl RolloutStore for MemoryStore {
    async fn set_rollout_policy(
        &self,
        actor: &Actor,
        stack_id: StackId,
        policy: Option<RolloutPolicy>,
    ) -> Result<()> {
        rollout_reads::set_rollout_policy(self, actor, stack_id, policy)
    }

    async fn rollout_policy(&self, stack_id: StackId) -> Result<Option<RolloutPolicy>> {
        rollout_reads::rollout_policy(self, stack_id)
    }

    async fn release_head(&self, stack_id: StackId) -> Result<Option<DeploymentObjectId>> {
        rollout_reads::release_head(self, stack_id)
    }

    async fn rejecting_rollout(
        &self,
        stack_id: StackId,
        yaml_checksum: &str,
    ) -> Result<Option<(RolloutId, DeploymentObjectId)>> {
        rollout_reads::rejecting_rollout(self, stack_id, yaml_checksum)
    }

    async fn get_rollout(&self, id: RolloutId) -> Result<Rollout> {
        rollout_reads::get_rollout(self, id)
    }

    async fn list_rollouts(
        &self,
        filter: &RolloutFilter,
        page: &PageRequest,
    ) -> Result<Page<Rollout>> {
        rollout_reads::list_rollouts(self, filter, page)
    }

    async fn rollout_details(&self, id: RolloutId) -> Result<RolloutDetails> {
        rollout_reads::rollout_details(self, id)
    }

    async fn rollout_snapshot(&self, id: RolloutId) -> Result<RolloutSnapshot> {
        rollout_reads::rollout_snapshot(self, id)
    }

    async fn claim_due_rollouts(
        &self,
        claimant: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<RolloutId>> {
        rollout_changes::claim_due_rollouts(self, claimant, now, lease_until, limit)
    }

    async fn apply_rollout_change(&self, claimant: &str, change: RolloutChange) -> Result<Rollout> {
        rollout_changes::apply_rollout_change(self, claimant, change)
    }

    async fn release_rollout_lease(&self, claimant: &str, id: RolloutId) -> Result<()> {
        rollout_changes::release_rollout_lease(self, claimant, id)
    }

    async fn give_rollout_command(
        &self,
        actor: &Actor,
        id: RolloutId,
        kind: RolloutCommandKind,
    ) -> Result<RolloutCommand> {
        rollout_changes::give_rollout_command(self, actor, id, kind)
    }

    async fn record_gate_outcome(
        &self,
        id: GateEvaluationId,
        record: GateOutcomeRecord,
    ) -> Result<GateEvaluation> {
        rollout_changes::record_gate_outcome(self, id, record)
    }
}
