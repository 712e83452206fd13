//! A stack's world in one read, and confirmed changes: the plan used, the world checked
//! and the change written in one transaction.

use std::sync::Mutex;

use chrono::Duration;

use super::fixtures::{ADMIN, config_map_yaml, mk_agent, mk_event, mk_object, mk_stack, mk_target};
use super::placement::{decision, policy};
use super::plans::new_plan;
use super::support::{all_audit, all_objects, expect_not_found};
use crate::id::{AgentId, PlanId, StackId};
use crate::model::{
    AppliedVersions, AuditAction, EventStatus, EventType, NewDeploymentObject, PlanOrigin,
    ResourceKind, StackWorld, StoredPlan, TargetSource, WorldTarget,
};
use crate::store::{Confirmation, Confirmed, ConfirmedChange, ConfirmedWrite, Store};

/// A new object for `stack`, as a confirmed append would carry.
fn object(stack: StackId, version: &str) -> NewDeploymentObject {
    NewDeploymentObject::from_yaml(stack, config_map_yaml("app-config", version))
        .expect("fixture YAML is valid")
}

/// A stored plan for `stack` that expires `expires_in` from now.
async fn mk_plan(store: &dyn Store, stack: StackId, expires_in: Duration) -> StoredPlan {
    store
        .create_plan(&ADMIN, new_plan(stack, PlanOrigin::Requested, expires_in))
        .await
        .expect("create plan")
}

/// Confirms `plan` for `stack` with `change`, the digest recomputed as `digest` says.
async fn confirm(
    store: &dyn Store,
    plan: PlanId,
    stack: StackId,
    digest: &(dyn Fn(&StackWorld) -> String + Send + Sync),
    change: ConfirmedChange,
) -> Confirmed {
    let confirmation = Confirmation {
        plan_id: plan,
        stack_id: stack,
        digest,
    };
    store
        .write_confirmed(&ADMIN, &confirmation, change)
        .await
        .expect("write confirmed")
}

/// Confirms `plan` with an append, the world taken to match it.
pub(super) async fn confirm_append(store: &dyn Store, plan: &StoredPlan) -> Confirmed {
    let digest = plan.digest.clone();
    let same = move |_: &StackWorld| digest.clone();
    let append = ConfirmedChange::Append(object(plan.stack_id, "confirmed"));
    confirm(store, plan.id, plan.stack_id, &same, append).await
}

cases!(
    /// The world is the stack's targets (removals included) and applied states in agent
    /// order, and its latest object unless that is a deletion marker; unknown stacks are
    /// `NotFound`.
    pub async fn confirm_stack_world_is_read_at_once(store: &dyn Store) {
        let stack = mk_stack(store, "s").await.id;
        let empty = store.stack_world(stack).await.expect("world");
        assert_eq!(empty, StackWorld::default());
        let [a, b] = [mk_agent(store, "a").await.id, mk_agent(store, "b").await.id];
        mk_target(store, a, stack).await;
        mk_target(store, b, stack).await;
        let v1 = mk_object(store, stack, "1").await.id;
        mk_event(store, b, v1, EventType::Apply, EventStatus::Success).await;
        store
            .unassign_stack(&ADMIN, a, stack)
            .await
            .expect("unassign");

        let world = store.stack_world(stack).await.expect("world");
        let mut agents = [a, b];
        agents.sort();
        let expected: Vec<WorldTarget> = agents
            .iter()
            .map(|&agent| WorldTarget {
                agent_id: agent,
                source: TargetSource::Direct,
                live: agent != a,
            })
            .collect();
        assert_eq!(
            world.targets, expected,
            "the unassigned target awaits removal"
        );
        assert_eq!(world.applied, vec![(b, Some(v1))]);
        assert_eq!(world.latest_live, Some(v1));

        store.delete_stack(&ADMIN, stack).await.expect("delete");
        let deleted = store
            .stack_world(stack)
            .await
            .expect("a deleted stack's world");
        assert_eq!(deleted.latest_live, None, "a deletion marker is not live");
        expect_not_found(store.stack_world(StackId::new()).await, "stack");
    }

    /// `applied_versions` summarizes the world as `AppliedVersions::of` does: each
    /// version some agent runs once, and whether an agent runs one untargeted (never
    /// assigned, or unassigned); a delete runs nothing; unknown stacks are `NotFound`.
    pub async fn confirm_applied_versions_summarize_the_world(store: &dyn Store) {
        let stack = mk_stack(store, "s").await.id;
        let check = async |expected: AppliedVersions| {
            let world = store.stack_world(stack).await.expect("world");
            assert_eq!(
                AppliedVersions::of(&world),
                expected,
                "the world: {world:?}"
            );
            assert_eq!(
                store.applied_versions(stack).await.expect("summary"),
                expected
            );
        };
        check(AppliedVersions::default()).await;
        let [a, b, c] = [
            mk_agent(store, "a").await.id,
            mk_agent(store, "b").await.id,
            mk_agent(store, "c").await.id,
        ];
        mk_target(store, a, stack).await;
        mk_target(store, b, stack).await;
        let v1 = mk_object(store, stack, "1").await.id;
        let v2 = mk_object(store, stack, "2").await.id;
        mk_event(store, a, v1, EventType::Apply, EventStatus::Success).await;
        mk_event(store, b, v1, EventType::Apply, EventStatus::Success).await;
        check(AppliedVersions {
            versions: vec![v1],
            untargeted: false,
        })
        .await;
        mk_event(store, b, v2, EventType::Apply, EventStatus::Success).await;
        let mut both = vec![v1, v2];
        both.sort();
        check(AppliedVersions {
            versions: both.clone(),
            untargeted: false,
        })
        .await;
        // An agent running the stack without ever having had its target.
        mk_event(store, c, v2, EventType::Apply, EventStatus::Success).await;
        check(AppliedVersions {
            versions: both.clone(),
            untargeted: true,
        })
        .await;
        mk_event(store, c, v2, EventType::Delete, EventStatus::Success).await;
        check(AppliedVersions {
            versions: both.clone(),
            untargeted: false,
        })
        .await;
        // Unassigned, still running v1 until it removes the stack.
        store
            .unassign_stack(&ADMIN, a, stack)
            .await
            .expect("unassign");
        check(AppliedVersions {
            versions: both,
            untargeted: true,
        })
        .await;
        mk_event(store, a, v1, EventType::Delete, EventStatus::Success).await;
        check(AppliedVersions {
            versions: vec![v2],
            untargeted: false,
        })
        .await;
        expect_not_found(store.applied_versions(StackId::new()).await, "stack");
    }

    /// A confirmation recomputes the digest from the world it reads in its transaction
    /// (the same world `stack_world` gives), writes the change, uses the plan and
    /// audits both; a second is `Consumed` and writes nothing.
    pub async fn confirm_writes_once_with_the_world_checked(store: &dyn Store) {
        let stack = mk_stack(store, "s").await.id;
        let agent = mk_agent(store, "a").await.id;
        mk_target(store, agent, stack).await;
        let v1 = mk_object(store, stack, "1").await.id;
        mk_event(store, agent, v1, EventType::Apply, EventStatus::Success).await;
        let plan = mk_plan(store, stack, Duration::minutes(15)).await;
        let expected = store.stack_world(stack).await.expect("world");

        let seen = Mutex::new(None);
        let digest = plan.digest.clone();
        let recompute = |world: &StackWorld| {
            *seen.lock().expect("not poisoned") = Some(world.clone());
            digest.clone()
        };
        let change = ConfirmedChange::Append(object(stack, "2"));
        let Confirmed::Written { written, at } =
            confirm(store, plan.id, stack, &recompute, change).await
        else {
            panic!("a matching confirmation writes");
        };
        assert_eq!(seen.into_inner().expect("not poisoned"), Some(expected));
        let ConfirmedWrite::Object(appended) = written else {
            panic!("an append answers its object: {written:?}");
        };
        assert_eq!(
            all_objects(store, stack).await.last().map(|o| o.id),
            Some(appended.id)
        );
        let used = store.get_plan(plan.id).await.expect("plan");
        assert_eq!(used.consumed_at, Some(at));
        assert_eq!(used.consumed_by, Some(ADMIN));
        let audit: Vec<_> = all_audit(store)
            .await
            .into_iter()
            .rev()
            .take(2)
            .map(|r| (r.action, r.resource_kind))
            .collect();
        assert!(
            audit.contains(&(AuditAction::Confirm, ResourceKind::Plan))
                && audit.contains(&(AuditAction::Create, ResourceKind::DeploymentObject)),
            "both writes audited: {audit:?}"
        );

        let before = (
            all_audit(store).await.len(),
            all_objects(store, stack).await.len(),
        );
        assert_eq!(confirm_append(store, &used).await, Confirmed::Consumed);
        let after = (
            all_audit(store).await.len(),
            all_objects(store, stack).await.len(),
        );
        assert_eq!(before, after, "a used plan writes nothing");
    }

    /// A digest that differs, an expired plan or another stack's plan is `Stale`: nothing
    /// written, the plan still unused. An unknown plan is `NotFound`.
    pub async fn confirm_refuses_a_stale_plan(store: &dyn Store) {
        let stack = mk_stack(store, "s").await.id;
        let other = mk_stack(store, "other").await.id;
        let plan = mk_plan(store, stack, Duration::minutes(15)).await;
        let before = all_audit(store).await.len();

        let moved = |_: &StackWorld| "sha256:moved".to_owned();
        let append = || ConfirmedChange::Append(object(stack, "2"));
        assert_eq!(
            confirm(store, plan.id, stack, &moved, append()).await,
            Confirmed::Stale
        );
        let digest = plan.digest.clone();
        let same = move |_: &StackWorld| digest.clone();
        let append_other = ConfirmedChange::Append(object(other, "2"));
        assert_eq!(
            confirm(store, plan.id, other, &same, append_other).await,
            Confirmed::Stale,
            "the plan is another stack's"
        );
        let expired = mk_plan(store, stack, Duration::minutes(-1)).await;
        assert_eq!(confirm_append(store, &expired).await, Confirmed::Stale);

        assert_eq!(
            all_audit(store).await.len(),
            before + 1,
            "only the expired plan's creation"
        );
        assert!(all_objects(store, stack).await.is_empty());
        assert_eq!(
            store.get_plan(plan.id).await.expect("plan").consumed_at,
            None
        );
        let unknown = Confirmation {
            plan_id: PlanId::new(),
            stack_id: stack,
            digest: &same,
        };
        expect_not_found(
            store.write_confirmed(&ADMIN, &unknown, append()).await,
            "plan",
        );
    }

    /// Of concurrent confirmations of one plan exactly one writes; the others are
    /// `Consumed`.
    pub async fn confirm_concurrent_confirmations_write_once(store: &dyn Store) {
        let stack = mk_stack(store, "s").await.id;
        let plan = mk_plan(store, stack, Duration::minutes(15)).await;
        let answers = futures::future::join_all((0..8).map(|_| confirm_append(store, &plan))).await;
        let written = answers
            .iter()
            .filter(|a| matches!(a, Confirmed::Written { .. }))
            .count();
        assert_eq!(written, 1, "exactly one confirmation writes: {answers:?}");
        assert!(
            answers
                .iter()
                .all(|a| matches!(a, Confirmed::Written { .. } | Confirmed::Consumed))
        );
        assert_eq!(all_objects(store, stack).await.len(), 1);
    }

    /// Every kind of confirmed change writes what its store method writes.
    pub async fn confirm_each_change_writes_as_its_method(store: &dyn Store) {
        let stack = mk_stack(store, "s").await.id;
        let [a, b] = [mk_agent(store, "a").await.id, mk_agent(store, "b").await.id];
        mk_object(store, stack, "1").await;
        let digest = |plan: &StoredPlan| {
            let digest = plan.digest.clone();
            move |_: &StackWorld| digest.clone()
        };
        let run = async |change| {
            let plan = mk_plan(store, stack, Duration::minutes(15)).await;
            match confirm(store, plan.id, stack, &digest(&plan), change).await {
                Confirmed::Written { written, .. } => written,
                other => panic!("a matching confirmation writes: {other:?}"),
            }
        };

        let placed = run(ConfirmedChange::Place(policy(2), decision(&[a, b], &[]))).await;
        let ConfirmedWrite::Placed(change) = placed else {
            panic!("a placement answers its change: {placed:?}");
        };
        assert_eq!(change.added.len(), 2);
        let stored = store.get_placement(stack).await.expect("placement");
        assert_eq!(stored.map(|p| p.policy), Some(policy(2)));

        let decided = run(ConfirmedChange::Decide(decision(&[a], &[b]))).await;
        let ConfirmedWrite::Placed(change) = decided else {
            panic!("a decision answers its change: {decided:?}");
        };
        assert_eq!(change.removed, vec![b]);

        assert_eq!(
            run(ConfirmedChange::Unassign(a)).await,
            ConfirmedWrite::Done
        );
        let live = |world: StackWorld| -> Vec<AgentId> {
            world
                .targets
                .into_iter()
                .filter(|t| t.live)
                .map(|t| t.agent_id)
                .collect()
        };
        assert!(live(store.stack_world(stack).await.expect("world")).is_empty());

        let direct = mk_agent(store, "direct").await.id;
        mk_target(store, direct, stack).await;
        assert_eq!(
            run(ConfirmedChange::RemovePolicy).await,
            ConfirmedWrite::Done
        );
        assert_eq!(store.get_placement(stack).await.expect("placement"), None);
        assert_eq!(
            live(store.stack_world(stack).await.expect("world")),
            vec![direct],
            "a direct target stays"
        );

        let deleted = run(ConfirmedChange::DeleteStack).await;
        let ConfirmedWrite::Object(marker) = deleted else {
            panic!("a deletion answers its marker: {deleted:?}");
        };
        assert!(marker.is_deletion_marker);
        expect_not_found(store.get_stack(stack).await, "stack");
    }
);
