//! Graceful eviction in the control plane: what the pure rules of
//! [`crate::placement::eviction`] are asked with, and when.
//!
//! The leaving agents of every stack live with its stored decision
//! ([`PlacementDecision::leaving`]): the store keeps their targets, so they still
//! receive the stack's target state and prune nothing, and a restart or another
//! replica reads them back. This replica's index holds a copy, to know cheaply which
//! stacks have leaving agents and whom they wait for.
//!
//! A leaving agent is looked at again whenever its stack is recorded (every decision
//! goes through [`ControlPlane::eviction`]), when one of its replacements reports the
//! stack healthy on this replica ([`ControlPlane::note_health`] signals the stack), and
//! on every periodic run (deadlines, and reports that reached other replicas), so it
//! is released within `agents.placement_interval_millis` of its deadline. Each release
//! is logged with its reason. Releasing changes only the leaving list: the guard
//! judged the removal when the decision that dropped the agent was made.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::index::{Clock, Index};
use crate::placement::eviction::{EvictionInput, Leaving, Released, next_leaving};
use crate::runtime::{ControlPlane, Result};
use crate::{
    AgentId, HealthReport, HealthStatus, Liveness, PlacementDecision, PlacementPolicy, StackId,
    TargetAction,
};

impl Index {
    /// Replaces a stack's leaving agents, as stored with its decision.
    pub fn set_leaving(&mut self, stack: StackId, leaving: Vec<Leaving>) {
        if leaving.is_empty() {
            self.leaving.remove(&stack);
        } else {
            self.leaving.insert(stack, leaving);
        }
    }

    /// A stack's leaving agents, as this index knows them.
    pub fn leaving_of(&self, stack: StackId) -> Vec<Leaving> {
        self.leaving.get(&stack).cloned().unwrap_or_default()
    }

    /// The stacks with leaving agents, ordered by id.
    pub fn stacks_leaving(&self) -> Vec<StackId> {
        let mut stacks: Vec<StackId> = self.leaving.keys().copied().collect();
        stacks.sort_unstable();
        stacks
    }

    /// Whether a leaving agent of `stack` waits for `agent` to report it healthy.
    pub fn awaits(&self, stack: StackId, agent: AgentId) -> bool {
        self.leaving
            .get(&stack)
            .is_some_and(|leaving| leaving.iter().any(|l| l.replacements.contains(&agent)))
    }

    /// Whether `agent` could keep a stack placed by `policy` now: live, not paused,
    /// its heartbeat fresh, and within `evict_after_secs` when the policy sets it.
    pub fn keepable(&self, agent: AgentId, policy: &PlacementPolicy, clock: Clock) -> bool {
        use crate::placement::Inventory;
        let Some(agent) = self.agents.get(&agent) else {
            return false;
        };
        let within_evict = match (policy.evict_after_secs, agent.last_heartbeat) {
            (None, _) => true,
            (Some(secs), Some(at)) => {
                let secs = i64::try_from(secs).unwrap_or(i64::MAX);
                (clock.now - at).num_seconds() <= secs
            }
            (Some(_), None) => false,
        };
        agent.deleted_at.is_none()
            && agent.status == crate::AgentStatus::Active
            && agent.liveness(clock.now, clock.stale_after) == Liveness::Active
            && within_evict
    }
}

/// The leaving agents after a decision, and those it released.
pub(crate) type Eviction = (Vec<Leaving>, Vec<Released>);

impl ControlPlane {
    /// The leaving agents after recording `chosen` for a stack whose stored decision
    /// is `before`, under `policy`'s grace, with the replacements' health read from
    /// the store when anyone already leaving waits for them.
    pub(crate) async fn eviction(
        &self,
        stack: StackId,
        policy: &PlacementPolicy,
        before: Option<&PlacementDecision>,
        chosen: &[AgentId],
    ) -> Result<Eviction> {
        let mut waited: Vec<AgentId> = before
            .into_iter()
            .flat_map(|d| {
                d.leaving
                    .iter()
                    .flat_map(|l| l.replacements.iter().copied())
            })
            .filter(|agent| chosen.contains(agent))
            .collect();
        waited.sort_unstable();
        waited.dedup();
        let healthy = self.healthy_since(stack, &waited).await?;
        let candidates: Vec<AgentId> = before
            .into_iter()
            .flat_map(|d| d.chosen.iter().chain(d.leaving.iter().map(|l| &l.agent_id)))
            .copied()
            .collect();
        let policy_for_index = policy.clone();
        let keepable: HashMap<AgentId, bool> = self
            .with_index(move |index, clock| {
                candidates
                    .into_iter()
                    .map(|agent| (agent, index.keepable(agent, &policy_for_index, clock)))
                    .collect()
            })
            .await?;
        let keepable = |agent: AgentId| keepable.get(&agent).copied().unwrap_or(false);
        let healthy_since = |agent: AgentId, since: DateTime<Utc>| {
            healthy.get(&agent).is_some_and(|&at| at >= since)
        };
        Ok(next_leaving(&EvictionInput {
            before,
            chosen,
            grace: policy.eviction_grace(),
            now: Utc::now(),
            keepable: &keepable,
            healthy_since: &healthy_since,
        }))
    }

    /// For each of `agents` that reported `stack` healthy for the object its target
    /// state names now, when; an agent whose target state names no object of the
    /// stack (nothing to run yet) counts as healthy (at the end of time, so after any move).
    async fn healthy_since(
        &self,
        stack: StackId,
        agents: &[AgentId],
    ) -> Result<HashMap<AgentId, DateTime<Utc>>> {
        let mut healthy = HashMap::new();
        if agents.is_empty() {
            return Ok(healthy);
        }
        let reports: HashMap<AgentId, HealthReport> = self
            .store()
            .stack_health(stack)
            .await?
            .into_iter()
            .map(|r| (r.agent_id, r))
            .collect();
        for &agent in agents {
            let state = match self.read_target_state(agent).await {
                Ok(state) => state,
                Err(crate::runtime::Error::Store(crate::store::Error::NotFound { .. })) => {
                    continue;
                }
                Err(err) => return Err(err),
            };
            let current = state
                .state
                .entries
                .iter()
                .find(|e| e.stack_id == stack && e.action == TargetAction::Apply)
                .map(|e| e.deployment_object.id);
            match (current, reports.get(&agent)) {
                (None, _) => {
                    healthy.insert(agent, DateTime::<Utc>::MAX_UTC);
                }
                (Some(object), Some(report))
                    if report.deployment_object_id == object
                        && report.status == HealthStatus::Healthy =>
                {
                    healthy.insert(agent, report.reported_at);
                }
                _ => {}
            }
        }
        Ok(healthy)
    }

    /// A health report was stored: when it says healthy and a leaving agent of its
    /// stack waits for its agent, the stack is looked at again by the placement
    /// controller. Never waits for a busy index (a report is answered on an async
    /// worker): then the stack is signalled anyway, which costs one read.
    pub(crate) fn note_health(&self, report: &HealthReport) {
        if report.status != HealthStatus::Healthy {
            return;
        }
        let awaited = match self.placement_state().try_lock() {
            Some(guard) => guard
                .as_ref()
                .is_some_and(|index| index.awaits(report.stack_id, report.agent_id)),
            None => true,
        };
        if awaited {
            self.placement_signals().stack_changed(report.stack_id);
        }
    }
}

/// Logs each release with its reason.
pub(crate) fn log_released(stack: StackId, released: &[Released]) {
    for release in released {
        tracing::info!(
            %stack,
            agent = %release.agent_id,
            reason = %release.reason,
            "leaving agent released: it loses the stack now"
        );
    }
}

#[cfg(all(test, feature = "testing"))]
mod tests {
    use std::sync::Arc;

    use crate::runtime::placement::Trigger;
    use crate::testing::MemoryStore;
    use crate::testing::conformance::new_health;
    use crate::testing::runtime::eviction::{action, leaving, moved};
    use crate::{Actor, Store, TargetAction};

    use super::*;

    /// The leaving agents live in the stored decision: a second control plane on the
    /// same store (another replica, or this one after a restart), which never saw the
    /// move, releases the old agent once the new one's healthy report is stored.
    #[tokio::test]
    async fn another_replica_releases_what_one_left_leaving() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let one = ControlPlane::builder(Arc::clone(&store)).build();
        let (a, b, stack, object) = moved(&one, None).await;
        assert_eq!(leaving(&one, stack).await.len(), 1);

        let other = ControlPlane::builder(Arc::clone(&store)).build();
        let controller = other.placement_controller();
        controller.run(&Trigger::Everything).await.unwrap();
        assert_eq!(action(&other, a, stack).await, Some(TargetAction::Apply));
        assert_eq!(
            leaving(&other, stack).await.len(),
            1,
            "nothing to release yet"
        );

        // The report reaches the store through neither control plane's signals.
        store
            .record_health(&Actor::Agent(b), new_health(b, object, Vec::new()))
            .await
            .unwrap();
        let report = controller.run(&Trigger::Recompute).await.unwrap();
        assert_eq!((report.recorded, report.moved), (1, 1));
        assert_eq!(action(&other, a, stack).await, Some(TargetAction::Remove));
        assert!(leaving(&other, stack).await.is_empty());
        assert_eq!(action(&one, b, stack).await, Some(TargetAction::Apply));
    }

    /// Only the replacement's healthy report for the object its target state names
    /// counts: not the old agent's, and not one about an older object.
    #[tokio::test]
    async fn only_a_healthy_report_for_the_current_object_counts() {
        let store: Arc<dyn Store> = Arc::new(MemoryStore::new());
        let cp = ControlPlane::builder(Arc::clone(&store)).build();
        // Started, so its target-state cache follows the store's changes.
        let background = cp.start();
        let (a, b, stack, object) = moved(&cp, None).await;
        let healthy =
            |cp: ControlPlane| async move { cp.healthy_since(stack, &[a, b]).await.unwrap() };
        assert!(healthy(cp.clone()).await.is_empty());
        store
            .record_health(&Actor::Agent(a), new_health(a, object, Vec::new()))
            .await
            .unwrap();
        assert!(!healthy(cp.clone()).await.contains_key(&b));
        store
            .record_health(&Actor::Agent(b), new_health(b, object, Vec::new()))
            .await
            .unwrap();
        assert!(healthy(cp.clone()).await.contains_key(&b));
        // A newer object: `b`'s report about the old one no longer counts.
        crate::testing::conformance::mk_object(store.as_ref(), stack, "2").await;
        assert!(!healthy(cp.clone()).await.contains_key(&b));
        background.shutdown().await;
    }
}
