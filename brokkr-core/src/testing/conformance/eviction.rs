//! Graceful eviction in the store: a decision's leaving agents are stored with it and
//! keep their placement targets until a later decision no longer lists them.

use chrono::{Duration, Utc};

use super::fixtures::{ADMIN, mk_agent, mk_object, mk_stack};
use super::placement::mk_policy;
use super::rollout_support::{apply, rollout_policy, start, the_rollout};
use super::support::{expect_wake, target_state};
use crate::id::{AgentId, StackId};
use crate::model::{Actor, RolloutState};
use crate::placement::{Leaving, PlacementDecision};
use crate::rollout::OnNewVersion;
use crate::store::Store;
use crate::target_state::TargetAction;

/// Whether the rollout sees the stack placed on `agent` (what makes it `removed`
/// when false).
async fn placed_in(store: &dyn Store, rollout: crate::id::RolloutId, agent: AgentId) -> bool {
    let snapshot = store.rollout_snapshot(rollout).await.expect("snapshot");
    snapshot
        .fleet
        .iter()
        .any(|view| view.agent_id == agent && view.placed)
}

fn leaving(agent: AgentId, replacement: AgentId) -> Leaving {
    let since = Utc::now();
    Leaving {
        agent_id: agent,
        replacements: vec![replacement],
        since,
        until: since + Duration::minutes(10),
    }
}

async fn action_of(store: &dyn Store, agent: AgentId, stack: StackId) -> Option<TargetAction> {
    target_state(store, agent)
        .await
        .entries
        .iter()
        .find(|e| e.stack_id == stack)
        .map(|e| e.action)
}

cases!(
    /// A decision that moves a stack from A to B while A is leaving keeps A's target:
    /// both get the stack, and the stored decision lists A with its replacements and
    /// deadline. The next decision without A gives A a removal and wakes it.
    pub async fn placement_leaving_agents_keep_their_targets(store: &dyn Store) {
        let stack = mk_stack(store, "s").await;
        mk_object(store, stack.id, "1").await;
        let (a, b) = (mk_agent(store, "a").await, mk_agent(store, "b").await);
        mk_policy(store, stack.id, 1).await;
        let first = store
            .record_placement(
                &Actor::System,
                stack.id,
                PlacementDecision::choosing(vec![a.id]),
            )
            .await
            .expect("record A");
        assert_eq!(first.added, vec![a.id]);

        let since = Utc::now();
        let leaving = Leaving {
            agent_id: a.id,
            replacements: vec![b.id],
            since,
            until: since + Duration::minutes(10),
        };
        let moving = PlacementDecision {
            leaving: vec![leaving.clone()],
            ..PlacementDecision::choosing(vec![b.id])
        };
        let change = store
            .record_placement(&Actor::System, stack.id, moving.clone())
            .await
            .expect("record the move");
        assert_eq!(change.added, vec![b.id]);
        assert!(
            change.removed.is_empty(),
            "the leaving agent keeps its target"
        );
        assert!(change.decision_changed);
        assert_eq!(
            action_of(store, a.id, stack.id).await,
            Some(TargetAction::Apply)
        );
        assert_eq!(
            action_of(store, b.id, stack.id).await,
            Some(TargetAction::Apply)
        );
        let stored = store
            .get_placement(stack.id)
            .await
            .expect("get")
            .expect("a policy is set");
        assert_eq!(stored.decision, Some(moving.clone()), "stored as recorded");

        // The same decision again changes nothing.
        let again = store
            .record_placement(&Actor::System, stack.id, moving)
            .await
            .expect("record again");
        assert!(!again.decision_changed);
        assert!(again.added.is_empty() && again.removed.is_empty());

        // Released: A receives a removal and its poll wakes.
        let mut watch = store.watch_target_state(a.id);
        let released = store
            .record_placement(
                &Actor::System,
                stack.id,
                PlacementDecision::choosing(vec![b.id]),
            )
            .await
            .expect("release A");
        assert_eq!(released.removed, vec![a.id]);
        assert!(released.added.is_empty());
        expect_wake(&mut watch, "releasing a leaving agent").await;
        assert_eq!(
            action_of(store, a.id, stack.id).await,
            Some(TargetAction::Remove)
        );
        assert_eq!(
            action_of(store, b.id, stack.id).await,
            Some(TargetAction::Apply)
        );
        let stored = store.get_placement(stack.id).await.expect("get");
        assert!(
            stored
                .and_then(|p| p.decision)
                .is_some_and(|d| d.leaving.is_empty())
        );
    }

    /// A rollout sees a leaving agent as still placed (it keeps its pin and its state)
    /// and the agent that replaced it as placed too; once released, the leaving agent
    /// is no longer placed, so the rollout's next step marks it `removed`.
    pub async fn placement_leaving_agents_stay_placed_for_a_rollout(store: &dyn Store) {
        let stack = mk_stack(store, "s").await.id;
        mk_object(store, stack, "1").await;
        let (a, b) = (mk_agent(store, "a").await.id, mk_agent(store, "b").await.id);
        mk_policy(store, stack, 1).await;
        let record = async |decision: PlacementDecision| {
            store
                .record_placement(&Actor::System, stack, decision)
                .await
                .expect("record")
        };
        record(PlacementDecision::choosing(vec![a])).await;
        store
            .set_rollout_policy(&ADMIN, stack, Some(rollout_policy(OnNewVersion::Queue)))
            .await
            .expect("set the rollout policy");
        mk_object(store, stack, "2").await;
        let queued = the_rollout(store, stack, RolloutState::Queued).await;
        let rollout = apply(store, start(&queued, &[a], &[a])).await;

        record(PlacementDecision {
            leaving: vec![leaving(a, b)],
            ..PlacementDecision::choosing(vec![b])
        })
        .await;
        assert!(
            placed_in(store, rollout.id, a).await,
            "leaving, still placed"
        );
        assert!(
            placed_in(store, rollout.id, b).await,
            "the replacement joins"
        );
        record(PlacementDecision::choosing(vec![b])).await;
        assert!(
            !placed_in(store, rollout.id, a).await,
            "released: no longer placed"
        );
        assert!(placed_in(store, rollout.id, b).await);
    }
);
