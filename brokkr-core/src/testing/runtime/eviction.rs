//! Graceful eviction through the control plane: a stack moved from agent A to agent B
//! stays on A until B reports it healthy, or until the policy's grace runs out; a
//! grace of zero moves at once; a leaving agent that goes inactive loses it at once.
//! (That another replica, or a restart, releases what this one left leaving is shown
//! in `runtime/placement/eviction.rs`, on two control planes that run no background
//! task.)

use std::time::Duration as StdDuration;

use chrono::{Duration, Utc};
use serde_json::json;

use super::placement::agent;
use crate::placement::{Leaving, PlacementPolicy, RejectionPage};
use crate::runtime::ControlPlane;
use crate::runtime::placement::Trigger;
use crate::testing::conformance::{mk_object, mk_stack, new_health, workload};
use crate::{
    Actor, AgentId, AgentStatus, AgentUpdate, DeploymentObjectId, HealthStatus, MetadataField,
    MetadataTarget, ObjectHealth, StackId, TargetAction,
};

/// At most this long for the controller to act on its own (its period is 200 ms here).
const PATIENCE: StdDuration = StdDuration::from_secs(10);

fn policy(value: serde_json::Value) -> PlacementPolicy {
    serde_json::from_value(value).expect("a policy")
}

pub(crate) async fn label(cp: &ControlPlane, agent: AgentId, key: &str, value: &str) {
    let target = MetadataTarget::Agent(agent);
    cp.store()
        .put_metadata(&Actor::Admin, target, MetadataField::Labels, key, value)
        .await
        .expect("label the agent");
    cp.agent_changed(agent).await.expect("apply the change");
}

/// What the agent's target state says of the stack.
pub(crate) async fn action(
    cp: &ControlPlane,
    agent: AgentId,
    stack: StackId,
) -> Option<TargetAction> {
    cp.store()
        .target_state(agent)
        .await
        .expect("target state")
        .entries
        .iter()
        .find(|e| e.stack_id == stack)
        .map(|e| e.action)
}

/// The stored decision's leaving agents, as the API reads them.
pub(crate) async fn leaving(cp: &ControlPlane, stack: StackId) -> Vec<Leaving> {
    let view = cp
        .stack_placement(&Actor::Admin, stack, RejectionPage::default())
        .await
        .expect("read the placement");
    view.placement.decision.expect("decided").leaving
}

/// Polls until the agent's target state gives it a removal of the stack.
async fn until_removed(cp: &ControlPlane, agent: AgentId, stack: StackId) -> StdDuration {
    let started = std::time::Instant::now();
    while action(cp, agent, stack).await != Some(TargetAction::Remove) {
        assert!(
            started.elapsed() < PATIENCE,
            "the leaving agent was never released"
        );
        tokio::time::sleep(StdDuration::from_millis(20)).await;
    }
    started.elapsed()
}

async fn report(cp: &ControlPlane, agent: AgentId, object: DeploymentObjectId, ok: bool) {
    let resources: Vec<ObjectHealth> = if ok {
        Vec::new()
    } else {
        vec![workload("web", HealthStatus::Degraded)]
    };
    cp.record_health(&Actor::Agent(agent), new_health(agent, object, resources))
        .await
        .expect("record health");
}

/// Two agents, the stack on `a` only (`tier=web` selects it, one cluster at most), an
/// object to run; then `a` is relabelled out of the selector and `b` in, so the
/// decision moves the stack from `a` to `b`.
pub(crate) async fn moved(
    cp: &ControlPlane,
    grace: Option<u64>,
) -> (AgentId, AgentId, StackId, DeploymentObjectId) {
    let a = agent(cp, "a", "eu", 0).await;
    let b = agent(cp, "b", "us", 0).await;
    label(cp, a, "tier", "web").await;
    let stack = mk_stack(cp.store().as_ref(), "web").await.id;
    let object = mk_object(cp.store().as_ref(), stack, "1").await.id;
    let mut chosen = json!({"agent_selector": {"matchLabels": {"tier": "web"}}, "max_clusters": 1});
    if let Some(secs) = grace {
        chosen["eviction_grace_secs"] = json!(secs);
    }
    cp.set_placement_policy(
        &Actor::Admin,
        stack,
        policy(chosen),
        RejectionPage::default(),
    )
    .await
    .expect("set the policy");
    assert_eq!(action(cp, a, stack).await, Some(TargetAction::Apply));
    // `b` fits too now, but `a` keeps its place (one cluster, incumbents first).
    label(cp, b, "tier", "web").await;
    assert_eq!(action(cp, b, stack).await, None);
    label(cp, a, "tier", "batch").await;
    (a, b, stack, object)
}

crate::runtime_cases! {
    async fn a_moved_stack_stays_on_the_old_agent_until_the_new_one_is_healthy(cp: ControlPlane) {
        let before = Utc::now();
        let (a, b, stack, object) = moved(&cp, None).await;
        // Both run it: `a` is leaving, waiting for `b`, for at most the default 10 min.
        assert_eq!(action(&cp, a, stack).await, Some(TargetAction::Apply));
        assert_eq!(action(&cp, b, stack).await, Some(TargetAction::Apply));
        let left = leaving(&cp, stack).await;
        assert_eq!(left.len(), 1);
        assert_eq!((left[0].agent_id, left[0].replacements.clone()), (a, vec![b]));
        assert!(left[0].since >= before);
        assert_eq!(left[0].until - left[0].since, Duration::minutes(10));
        let view = cp.stack_placement(&Actor::Admin, stack, RejectionPage::default()).await.unwrap();
        assert_eq!(view.placement.decision.unwrap().chosen, vec![b]);

        // The old agent's reports and a degraded replacement release nothing.
        report(&cp, a, object, true).await;
        report(&cp, b, object, false).await;
        cp.placement_controller().run(&Trigger::Recompute).await.unwrap();
        assert_eq!(action(&cp, a, stack).await, Some(TargetAction::Apply));
        assert_eq!(leaving(&cp, stack).await.len(), 1);

        // Healthy: released at once (the report signals the controller).
        report(&cp, b, object, true).await;
        until_removed(&cp, a, stack).await;
        assert!(leaving(&cp, stack).await.is_empty());
        assert_eq!(action(&cp, b, stack).await, Some(TargetAction::Apply));
    }

    async fn a_replacement_never_healthy_releases_the_old_agent_when_the_grace_ends(cp: ControlPlane) {
        let (a, b, stack, _) = moved(&cp, Some(1)).await;
        let left = leaving(&cp, stack).await;
        assert_eq!(left.len(), 1, "a keeps the stack during its grace");
        assert_eq!(left[0].until - left[0].since, Duration::seconds(1));
        assert_eq!(action(&cp, a, stack).await, Some(TargetAction::Apply));
        // `b` never reports; the periodic run releases `a` past its deadline.
        let waited = until_removed(&cp, a, stack).await;
        assert!(Utc::now() >= left[0].until, "released before its deadline");
        assert!(waited < StdDuration::from_secs(3), "released {waited:?} after the move");
        assert!(leaving(&cp, stack).await.is_empty());
        assert_eq!(action(&cp, b, stack).await, Some(TargetAction::Apply));
    }

    async fn a_zero_grace_moves_at_once_as_before(cp: ControlPlane) {
        let (a, b, stack, _) = moved(&cp, Some(0)).await;
        assert_eq!(action(&cp, a, stack).await, Some(TargetAction::Remove));
        assert_eq!(action(&cp, b, stack).await, Some(TargetAction::Apply));
        assert!(leaving(&cp, stack).await.is_empty());
    }

    async fn a_paused_leaving_agent_loses_the_stack_at_once(cp: ControlPlane) {
        let (a, _, stack, _) = moved(&cp, None).await;
        assert_eq!(leaving(&cp, stack).await.len(), 1);
        let paused = AgentUpdate {
            status: Some(AgentStatus::Inactive),
            ..Default::default()
        };
        cp.store().update_agent(&Actor::Admin, a, paused).await.unwrap();
        cp.agent_changed(a).await.unwrap();
        cp.placement_controller().run(&Trigger::Recompute).await.unwrap();
        until_removed(&cp, a, stack).await;
        assert!(leaving(&cp, stack).await.is_empty());
    }
}
