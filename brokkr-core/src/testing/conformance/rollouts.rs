//! Rollouts as the existing writes see them: policies, release heads, what an append
//! does under each `on_new_version`, target states that follow pins, and the reports
//! and placement changes that make a rollout due.

use super::fixtures::{
    ADMIN, config_map_yaml, mk_agent, mk_event, mk_health, mk_object, mk_stack, mk_target, workload,
};
use super::rollout_support::{
    DRIVER, apply, keep, later, now, object_in, released, revert, rollout_policy, rollouts_of,
    running, start, succeed, the_rollout,
};
use super::support::{all_audit, all_objects, expect_not_found, expect_wake, target_state};
use crate::health::HealthStatus;
use crate::id::StackId;
use crate::model::{
    AuditAction, DeploymentObject, EventStatus, EventType, NewDeploymentObject, ResourceKind,
    RolloutState,
};
use crate::rollout::{OnNewVersion, RolloutChange};
use crate::store::{Error, Result, Store};
use crate::target_state::TargetAction;

/// Appends `version` to `stack` without expecting it to succeed.
async fn try_append(store: &dyn Store, stack: StackId, version: &str) -> Result<DeploymentObject> {
    let yaml = config_map_yaml("app-config", version);
    let new = NewDeploymentObject::from_yaml(stack, yaml).expect("fixture YAML is valid");
    store.append_deployment_object(&ADMIN, new).await
}

/// Claims the rollout and applies a change that sets its timer an hour away, as an
/// evaluation that saw everything would: it is not due after.
async fn quiet(store: &dyn Store, id: crate::id::RolloutId) -> crate::model::Rollout {
    store
        .claim_due_rollouts(DRIVER, now(), later(), 100)
        .await
        .expect("claim");
    let rollout = store.get_rollout(id).await.expect("the rollout");
    let rollout = apply(store, keep(&rollout)).await;
    assert!(!is_due(store, id).await, "its timer is an hour away");
    rollout
}

/// Whether the rollout is due now (its next evaluation at or before now).
async fn is_due(store: &dyn Store, id: crate::id::RolloutId) -> bool {
    let rollout = store.get_rollout(id).await.expect("the rollout");
    rollout.next_eval_at.is_some_and(|next| next <= now())
}

cases!(
    /// A policy is set, read back and removed, each change audited as an update of the
    /// stack; a missing or deleted stack has none to read or set.
    pub async fn rollouts_policy_is_set_read_and_audited(store: &dyn Store) {
        let stack = mk_stack(store, "s").await.id;
        assert_eq!(store.rollout_policy(stack).await.unwrap(), None);
        let policy = rollout_policy(OnNewVersion::Supersede);
        store
            .set_rollout_policy(&ADMIN, stack, Some(policy.clone()))
            .await
            .unwrap();
        assert_eq!(store.rollout_policy(stack).await.unwrap(), Some(policy));
        store.set_rollout_policy(&ADMIN, stack, None).await.unwrap();
        assert_eq!(store.rollout_policy(stack).await.unwrap(), None);
        let updates: Vec<_> = all_audit(store)
            .await
            .into_iter()
            .filter(|r| r.action == AuditAction::Update && r.resource_kind == ResourceKind::Stack)
            .collect();
        assert_eq!(updates.len(), 2, "one record per change");
        assert!(updates.iter().all(|r| r.resource_id == stack.0));

        let missing = StackId::new();
        expect_not_found(store.rollout_policy(missing).await, "stack");
        let set = store.set_rollout_policy(&ADMIN, missing, None).await;
        expect_not_found(set, "stack");
        store.delete_stack(&ADMIN, stack).await.unwrap();
        expect_not_found(store.rollout_policy(stack).await, "stack");
    }

    /// Without a policy every append is released at once: the release head follows
    /// the latest object, agents get it, and no rollout is made.
    pub async fn rollouts_append_without_policy_moves_the_release_head(store: &dyn Store) {
        let stack = mk_stack(store, "s").await.id;
        let agent = mk_agent(store, "a").await.id;
        mk_target(store, agent, stack).await;
        assert_eq!(store.release_head(stack).await.unwrap(), None);
        let v1 = mk_object(store, stack, "1").await.id;
        assert_eq!(store.release_head(stack).await.unwrap(), Some(v1));
        let v2 = mk_object(store, stack, "2").await.id;
        assert_eq!(store.release_head(stack).await.unwrap(), Some(v2));
        assert_eq!(
            object_in(&target_state(store, agent).await, stack),
            Some(v2)
        );
        assert!(rollouts_of(store, stack).await.is_empty());
        expect_not_found(store.release_head(StackId::new()).await, "stack");
    }

    /// With a policy an append queues a rollout of the new object, due now, with the
    /// release head as its baseline, and leaves the head (and every agent) where it
    /// was; a stack's first object has no baseline and reaches no agent until released.
    pub async fn rollouts_append_with_policy_queues_and_keeps_the_head(store: &dyn Store) {
        let fixture = released(store, "s", OnNewVersion::Queue).await;
        let before = now();
        let v2 = mk_object(store, fixture.stack, "2").await.id;
        assert_eq!(
            store.release_head(fixture.stack).await.unwrap(),
            Some(fixture.v1)
        );
        let queued = the_rollout(store, fixture.stack, RolloutState::Queued).await;
        assert_eq!(queued.candidate, v2);
        assert_eq!(queued.baseline, Some(fixture.v1));
        assert_eq!(queued.policy, rollout_policy(OnNewVersion::Queue));
        assert_eq!(queued.created_by, ADMIN);
        assert!(
            queued
                .next_eval_at
                .is_some_and(|at| at >= before && at <= now())
        );
        for agent in [fixture.a, fixture.b] {
            let state = target_state(store, agent).await;
            assert_eq!(object_in(&state, fixture.stack), Some(fixture.v1));
        }
        assert!(all_audit(store).await.iter().any(|r| {
            r.action == AuditAction::Create
                && r.resource_kind == ResourceKind::Rollout
                && r.resource_id == queued.id.0
        }));

        let fresh = mk_stack(store, "fresh").await.id;
        let agent = mk_agent(store, "c").await.id;
        mk_target(store, agent, fresh).await;
        store
            .set_rollout_policy(&ADMIN, fresh, Some(rollout_policy(OnNewVersion::Queue)))
            .await
            .unwrap();
        let first = mk_object(store, fresh, "1").await.id;
        let queued = the_rollout(store, fresh, RolloutState::Queued).await;
        assert_eq!((queued.candidate, queued.baseline), (first, None));
        assert_eq!(store.release_head(fresh).await.unwrap(), None);
        assert_eq!(object_in(&target_state(store, agent).await, fresh), None);
    }

    /// A pinned agent's target state names the candidate, the others keep the release
    /// head; unpinning sends it back; a release gives every agent the candidate and
    /// leaves no pin. Each move wakes the agents it concerns.
    pub async fn rollouts_target_state_follows_pins_and_wakes_agents(store: &dyn Store) {
        let fixture = released(store, "s", OnNewVersion::Queue).await;
        let v2 = mk_object(store, fixture.stack, "2").await.id;
        let queued = the_rollout(store, fixture.stack, RolloutState::Queued).await;
        let (a, b) = (fixture.a, fixture.b);
        let mut watch_a = store.watch_target_state(a);
        let rollout = apply(store, start(&queued, &[a, b], &[a])).await;
        expect_wake(&mut watch_a, "a pin").await;
        assert_eq!(
            object_in(&target_state(store, a).await, fixture.stack),
            Some(v2)
        );
        assert_eq!(
            object_in(&target_state(store, b).await, fixture.stack),
            Some(fixture.v1)
        );

        let mut watch_a = store.watch_target_state(a);
        let unpin = RolloutChange {
            unpin: vec![a],
            ..keep(&rollout)
        };
        let rollout = apply(store, unpin).await;
        expect_wake(&mut watch_a, "an unpin").await;
        assert_eq!(
            object_in(&target_state(store, a).await, fixture.stack),
            Some(fixture.v1)
        );

        let pin = RolloutChange {
            pin: vec![a],
            ..keep(&rollout)
        };
        let rollout = apply(store, pin).await;
        let mut watch_a = store.watch_target_state(a);
        let mut watch_b = store.watch_target_state(b);
        let done = apply(store, succeed(&rollout)).await;
        assert_eq!(done.state, RolloutState::Succeeded);
        expect_wake(&mut watch_a, "a release").await;
        expect_wake(&mut watch_b, "a release").await;
        assert_eq!(store.release_head(fixture.stack).await.unwrap(), Some(v2));
        for agent in [a, b] {
            let state = target_state(store, agent).await;
            assert_eq!(object_in(&state, fixture.stack), Some(v2));
        }
        // The release removed the pin: a later head reaches `a` too.
        store
            .set_rollout_policy(&ADMIN, fixture.stack, None)
            .await
            .unwrap();
        let v3 = mk_object(store, fixture.stack, "3").await.id;
        assert_eq!(
            object_in(&target_state(store, a).await, fixture.stack),
            Some(v3)
        );
    }

    /// `queue`: the active rollout runs on and only the newest waiting object stays
    /// queued; older queued rollouts become `superseded`.
    pub async fn rollouts_queue_keeps_only_the_newest_waiting(store: &dyn Store) {
        let (fixture, active) = running(store, "s", OnNewVersion::Queue, true).await;
        let v3 = mk_object(store, fixture.stack, "3").await.id;
        let v4 = mk_object(store, fixture.stack, "4").await.id;
        let all = rollouts_of(store, fixture.stack).await;
        let state_of = |candidate| {
            all.iter()
                .find(|r| r.candidate == candidate)
                .map(|r| r.state)
        };
        assert_eq!(state_of(active.candidate), Some(RolloutState::Running));
        assert_eq!(state_of(v3), Some(RolloutState::Superseded));
        assert_eq!(state_of(v4), Some(RolloutState::Queued));
        let superseded = all.iter().find(|r| r.candidate == v3).unwrap();
        assert_eq!(superseded.next_eval_at, None);
        assert!(superseded.finished_at.is_some());
        let state = target_state(store, fixture.a).await;
        assert_eq!(
            object_in(&state, fixture.stack),
            Some(active.candidate),
            "pin kept"
        );
    }

    /// `supersede`: a new object ends the active rollout (`superseded`), removes its
    /// pins (the pinned agents, woken, get the release head again) and queues itself.
    pub async fn rollouts_supersede_removes_the_pins(store: &dyn Store) {
        let (fixture, active) = running(store, "s", OnNewVersion::Supersede, true).await;
        let mut watch = store.watch_target_state(fixture.a);
        let v3 = mk_object(store, fixture.stack, "3").await.id;
        expect_wake(&mut watch, "a pin removed by supersede").await;
        let ended = store.get_rollout(active.id).await.unwrap();
        assert_eq!(ended.state, RolloutState::Superseded);
        assert_eq!(ended.version, active.version + 1);
        let queued = the_rollout(store, fixture.stack, RolloutState::Queued).await;
        assert_eq!((queued.candidate, queued.baseline), (v3, Some(fixture.v1)));
        let state = target_state(store, fixture.a).await;
        assert_eq!(object_in(&state, fixture.stack), Some(fixture.v1));
        assert!(
            all_audit(store)
                .await
                .iter()
                .any(|r| { r.action == AuditAction::Unassign && r.resource_id == active.id.0 })
        );
    }

    /// `reject`: while a rollout is queued or active an append is refused with
    /// `Conflict("rollout_in_progress: ...")` and writes nothing; once it ended,
    /// appends queue again.
    pub async fn rollouts_reject_refuses_and_writes_nothing(store: &dyn Store) {
        let fixture = released(store, "s", OnNewVersion::Reject).await;
        mk_object(store, fixture.stack, "2").await;
        let queued = the_rollout(store, fixture.stack, RolloutState::Queued).await;
        let objects = all_objects(store, fixture.stack).await.len();
        let audit = all_audit(store).await.len();
        match try_append(store, fixture.stack, "3").await {
            Err(Error::Conflict(message)) => {
                assert!(message.starts_with("rollout_in_progress"), "{message}");
            }
            other => panic!("expected rollout_in_progress, got {other:?}"),
        }
        assert_eq!(all_objects(store, fixture.stack).await.len(), objects);
        assert_eq!(all_audit(store).await.len(), audit);
        assert_eq!(
            rollouts_of(store, fixture.stack).await,
            vec![queued.clone()]
        );

        let rollout = apply(store, start(&queued, &[fixture.a], &[])).await;
        apply(store, succeed(&rollout)).await;
        try_append(store, fixture.stack, "3")
            .await
            .expect("queued once the slot is free");
        the_rollout(store, fixture.stack, RolloutState::Queued).await;
    }

    /// Appends arriving together (committed in one batch or several) leave, under
    /// `queue`, only the newest object queued; under `reject`, one is taken and every
    /// other is refused with `rollout_in_progress`.
    pub async fn rollouts_a_burst_of_appends_keeps_the_rules(store: &dyn Store) {
        let queue = released(store, "queue", OnNewVersion::Queue).await;
        let versions: Vec<String> = (0..8).map(|n| format!("q{n}")).collect();
        let appends = versions.iter().map(|v| try_append(store, queue.stack, v));
        let objects: Vec<DeploymentObject> = futures::future::join_all(appends)
            .await
            .into_iter()
            .map(|r| r.expect("queue takes every append"))
            .collect();
        let newest = objects.iter().max_by_key(|o| o.sequence).unwrap().id;
        let all = rollouts_of(store, queue.stack).await;
        assert_eq!(all.len(), 8);
        let queued: Vec<_> = all
            .iter()
            .filter(|r| r.state == RolloutState::Queued)
            .collect();
        assert_eq!(queued.len(), 1, "only one waits");
        assert_eq!(queued[0].candidate, newest, "the newest");
        assert!(
            all.iter()
                .all(|r| r.state == RolloutState::Queued || r.state == RolloutState::Superseded)
        );

        let reject = released(store, "reject", OnNewVersion::Reject).await;
        let versions: Vec<String> = (0..8).map(|n| format!("r{n}")).collect();
        let appends = versions.iter().map(|v| try_append(store, reject.stack, v));
        let results = futures::future::join_all(appends).await;
        let taken = results.iter().filter(|r| r.is_ok()).count();
        assert_eq!(taken, 1, "one taken: {results:?}");
        assert!(results.iter().all(|r| match r {
            Ok(_) => true,
            Err(Error::Conflict(message)) => message.starts_with("rollout_in_progress"),
            Err(_) => false,
        }));
        assert_eq!(rollouts_of(store, reject.stack).await.len(), 1);
        assert_eq!(
            all_objects(store, reject.stack).await.len(),
            2,
            "v1 and the one taken"
        );
    }

    /// An immediate append (an admin's hotfix) and a deletion cancel the stack's
    /// queued and active rollouts, remove their pins and release at once.
    pub async fn rollouts_deletion_and_immediate_cancel(store: &dyn Store) {
        let (fixture, active) = running(store, "s", OnNewVersion::Queue, true).await;
        mk_object(store, fixture.stack, "3").await;
        let queued = the_rollout(store, fixture.stack, RolloutState::Queued).await;
        let yaml = config_map_yaml("app-config", "hotfix");
        let hotfix = NewDeploymentObject::from_yaml(fixture.stack, yaml)
            .unwrap()
            .immediate();
        let mut watch = store.watch_target_state(fixture.a);
        let hotfix = store
            .append_deployment_object(&ADMIN, hotfix)
            .await
            .unwrap()
            .id;
        expect_wake(&mut watch, "a hotfix").await;
        for id in [active.id, queued.id] {
            let rollout = store.get_rollout(id).await.unwrap();
            assert_eq!(rollout.state, RolloutState::Cancelled);
            assert_eq!(rollout.next_eval_at, None);
        }
        assert_eq!(
            store.release_head(fixture.stack).await.unwrap(),
            Some(hotfix)
        );
        for agent in [fixture.a, fixture.b] {
            let state = target_state(store, agent).await;
            assert_eq!(object_in(&state, fixture.stack), Some(hotfix));
        }

        mk_object(store, fixture.stack, "4").await;
        let queued = the_rollout(store, fixture.stack, RolloutState::Queued).await;
        let marker = store.delete_stack(&ADMIN, fixture.stack).await.unwrap();
        let cancelled = store.get_rollout(queued.id).await.unwrap();
        assert_eq!(cancelled.state, RolloutState::Cancelled);
        assert_eq!(
            store.release_head(fixture.stack).await.unwrap(),
            Some(marker.id)
        );
        let state = target_state(store, fixture.a).await;
        let entry = state
            .entries
            .iter()
            .find(|e| e.stack_id == fixture.stack)
            .unwrap();
        assert_eq!(entry.action, TargetAction::Remove);
        assert_eq!(entry.deployment_object.id, marker.id);
    }

    /// An agent's event and health report for the stack, and a change of where the
    /// stack is placed, make its active rollout due now; one made due while an
    /// evaluation ran stays due after that evaluation's change.
    pub async fn rollouts_reports_and_placement_make_it_due(store: &dyn Store) {
        let (fixture, rollout) = running(store, "s", OnNewVersion::Queue, true).await;
        let candidate = rollout.candidate;
        quiet(store, rollout.id).await;
        mk_event(
            store,
            fixture.a,
            candidate,
            EventType::Apply,
            EventStatus::Success,
        )
        .await;
        assert!(is_due(store, rollout.id).await, "an event");
        quiet(store, rollout.id).await;
        let healthy = vec![workload("web", HealthStatus::Healthy)];
        mk_health(store, fixture.a, candidate, healthy).await;
        assert!(is_due(store, rollout.id).await, "a health report");
        quiet(store, rollout.id).await;
        let c = mk_agent(store, "c").await.id;
        mk_target(store, c, fixture.stack).await;
        assert!(is_due(store, rollout.id).await, "an assignment");
        quiet(store, rollout.id).await;
        store
            .unassign_stack(&ADMIN, c, fixture.stack)
            .await
            .unwrap();
        assert!(is_due(store, rollout.id).await, "an unassignment");
        quiet(store, rollout.id).await;
        store.delete_agent(&ADMIN, fixture.b).await.unwrap();
        assert!(is_due(store, rollout.id).await, "a deleted agent");

        // Claimed, then an event arrives before the evaluation's change commits.
        let seen = quiet(store, rollout.id).await;
        let later_on = later() + chrono::Duration::minutes(1);
        let claimed = store
            .claim_due_rollouts(DRIVER, later_on, later_on, 10)
            .await
            .unwrap();
        assert_eq!(claimed, vec![rollout.id]);
        mk_event(
            store,
            fixture.a,
            candidate,
            EventType::Drift,
            EventStatus::Success,
        )
        .await;
        apply(store, keep(&seen)).await;
        assert!(
            is_due(store, rollout.id).await,
            "what the evaluation did not see"
        );
    }
    /// A reverted rollout's candidate is found by its checksum, newest rollout first;
    /// a succeeded or running one's is not, nor another stack's.
    pub async fn rollouts_rejecting_rollout_finds_reverted_content(store: &dyn Store) {
        let (fixture, rollout) = running(store, "rejects", OnNewVersion::Queue, true).await;
        let candidate = store
            .get_deployment_object(rollout.candidate)
            .await
            .unwrap();
        let checksum = candidate.yaml_checksum.clone();
        let found = store
            .rejecting_rollout(fixture.stack, &checksum)
            .await
            .unwrap();
        assert_eq!(found, None, "a running rollout rejected nothing yet");

        apply(store, revert(&rollout)).await;
        let found = store
            .rejecting_rollout(fixture.stack, &checksum)
            .await
            .unwrap();
        assert_eq!(found, Some((rollout.id, rollout.candidate)));
        let v1 = store.get_deployment_object(fixture.v1).await.unwrap();
        let released = store
            .rejecting_rollout(fixture.stack, &v1.yaml_checksum)
            .await
            .unwrap();
        assert_eq!(released, None, "the released baseline was never rejected");

        let other = mk_stack(store, "rejects-other").await.id;
        let same = mk_object(store, other, "2").await;
        assert_eq!(same.yaml_checksum, checksum, "the same content");
        let elsewhere = store.rejecting_rollout(other, &checksum).await.unwrap();
        assert_eq!(elsewhere, None, "another stack rejected nothing");
    }
);
