//! Placement policies, decisions and the targets they make.

use super::fixtures::{ADMIN, mk_agent, mk_object, mk_stack, mk_target};
use super::support::{
    all, all_audit, check_walks, expect_conflict, expect_invalid, expect_not_found, expect_wake,
    target_state,
};
use crate::id::{AgentId, StackId};
use crate::model::{
    Actor, AuditAction, AuditRecord, PlacementChange, ResourceKind, StackPlacement, TargetSource,
};
use crate::placement::{PlacementDecision, PlacementPolicy, Rejection, Spread};
use crate::store::{AuditFilter, Store, TargetFilter};
use crate::target_state::TargetAction;

/// A valid policy: at most `max` clusters, anything else open.
pub fn policy(max: u32) -> PlacementPolicy {
    PlacementPolicy {
        max_clusters: Some(max),
        ..Default::default()
    }
}

/// A decision choosing `chosen`; every agent in `rejected` hit the cluster limit.
pub fn decision(chosen: &[AgentId], rejected: &[AgentId]) -> PlacementDecision {
    let mut chosen = chosen.to_vec();
    chosen.sort();
    let mut rejected: Vec<(AgentId, Rejection)> = rejected
        .iter()
        .map(|a| (*a, Rejection::LimitReached))
        .collect();
    rejected.sort_by_key(|(a, _)| *a);
    PlacementDecision {
        chosen,
        rejected,
        leaving: Vec::new(),
    }
}

/// Sets `policy(max)` on a stack as the admin.
pub async fn mk_policy(store: &dyn Store, stack: StackId, max: u32) {
    store
        .set_placement_policy(&ADMIN, stack, Some(policy(max)))
        .await
        .expect("set fixture placement policy");
}

async fn record(store: &dyn Store, stack: StackId, decision: PlacementDecision) -> PlacementChange {
    store
        .record_placement(&Actor::System, stack, decision)
        .await
        .expect("record placement")
}

fn sorted(mut ids: Vec<AgentId>) -> Vec<AgentId> {
    ids.sort();
    ids
}

/// The agent's target state entry for `stack`: `None` without one.
async fn action_of(store: &dyn Store, agent: AgentId, stack: StackId) -> Option<TargetAction> {
    target_state(store, agent)
        .await
        .entries
        .iter()
        .find(|e| e.stack_id == stack)
        .map(|e| e.action)
}

async fn targets_of_stack(store: &dyn Store, stack: StackId) -> Vec<crate::model::AgentTarget> {
    let filter = TargetFilter {
        stack_id: Some(stack),
        ..Default::default()
    };
    all(async |p| store.list_agent_targets(&filter, &p).await).await
}

async fn placement_audit(store: &dyn Store, stack: StackId) -> Vec<AuditRecord> {
    let filter = AuditFilter {
        resource_kind: Some(ResourceKind::Placement),
        resource_id: Some(stack.0),
        ..Default::default()
    };
    all(async |p| store.list_audit_records(&filter, &p).await).await
}

cases!(
    /// A policy is stored, read back, replaced (keeping the decision) and removed; removing
    /// it unassigns its placement targets. Setting and removing are audited.
    pub async fn placement_policy_set_get_clear(store: &dyn Store) {
        let stack = mk_stack(store, "s").await;
        mk_object(store, stack.id, "1").await;
        let agent = mk_agent(store, "a").await;
        assert_eq!(store.get_placement(stack.id).await.expect("get"), None);

        let set = store
            .set_placement_policy(&ADMIN, stack.id, Some(policy(2)))
            .await
            .expect("set")
            .expect("a set policy is returned");
        assert_eq!(set.stack_id, stack.id);
        assert_eq!(set.policy, policy(2));
        assert_eq!(set.decision, None);
        assert_eq!(set.decided_at, None);
        assert_eq!(store.get_placement(stack.id).await.expect("get"), Some(set));

        record(store, stack.id, decision(&[agent.id], &[])).await;
        let replaced = store
            .set_placement_policy(&ADMIN, stack.id, Some(policy(3)))
            .await
            .expect("replace")
            .expect("a set policy is returned");
        assert_eq!(replaced.policy, policy(3));
        assert_eq!(
            replaced.decision,
            Some(decision(&[agent.id], &[])),
            "the decision stays until the next one is recorded"
        );
        assert!(replaced.decided_at.is_some());
        assert_eq!(
            store.get_placement(stack.id).await.expect("get"),
            Some(replaced)
        );

        let mut watch = store.watch_target_state(agent.id);
        let cleared = store
            .set_placement_policy(&ADMIN, stack.id, None)
            .await
            .expect("clear");
        assert_eq!(cleared, None);
        assert_eq!(store.get_placement(stack.id).await.expect("get"), None);
        expect_wake(&mut watch, "removing the policy").await;
        assert_eq!(
            action_of(store, agent.id, stack.id).await,
            Some(TargetAction::Remove),
            "the placement target is unassigned and awaits the agent's removal"
        );

        let actions: Vec<AuditAction> = placement_audit(store, stack.id)
            .await
            .iter()
            .map(|r| r.action)
            .collect();
        assert_eq!(
            actions,
            vec![
                AuditAction::Update,
                AuditAction::Place,
                AuditAction::Update,
                AuditAction::Delete
            ]
        );
        // Removing a policy that is not there changes nothing.
        let before = all_audit(store).await.len();
        assert_eq!(
            store
                .set_placement_policy(&ADMIN, stack.id, None)
                .await
                .expect("clear again"),
            None
        );
        assert_eq!(all_audit(store).await.len(), before);
    }

    /// An invalid policy is `Invalid` and changes nothing, also when one is already set.
    pub async fn placement_invalid_policy_writes_nothing(store: &dyn Store) {
        let stack = mk_stack(store, "s").await;
        let bad = PlacementPolicy {
            spread: Some(Spread {
                topology_key: "region".into(),
                max_per_value: 0,
            }),
            ..Default::default()
        };
        let before = all_audit(store).await;
        expect_invalid(
            store
                .set_placement_policy(&ADMIN, stack.id, Some(bad.clone()))
                .await,
        );
        assert_eq!(store.get_placement(stack.id).await.expect("get"), None);
        assert_eq!(all_audit(store).await, before);

        mk_policy(store, stack.id, 1).await;
        let stored = store.get_placement(stack.id).await.expect("get");
        let before = all_audit(store).await;
        expect_invalid(
            store
                .set_placement_policy(&ADMIN, stack.id, Some(bad))
                .await,
        );
        assert_eq!(store.get_placement(stack.id).await.expect("get"), stored);
        assert_eq!(all_audit(store).await, before);
    }

    /// Recording a decision gives the chosen agents placement targets that the target
    /// state serves; recording the same decision again changes and audits nothing.
    pub async fn placement_record_adds_targets_and_repeats_are_no_ops(store: &dyn Store) {
        let stack = mk_stack(store, "s").await;
        let object = mk_object(store, stack.id, "1").await;
        let a = mk_agent(store, "a").await;
        let b = mk_agent(store, "b").await;
        let c = mk_agent(store, "c").await;
        mk_policy(store, stack.id, 2).await;

        let mut watch = store.watch_target_state(a.id);
        let first = decision(&[a.id, b.id], &[c.id]);
        let change = record(store, stack.id, first.clone()).await;
        assert_eq!(change.added, sorted(vec![a.id, b.id]));
        assert!(change.removed.is_empty());
        assert!(change.decision_changed);
        expect_wake(&mut watch, "a placement").await;

        let targets = targets_of_stack(store, stack.id).await;
        assert_eq!(targets.len(), 2);
        assert!(
            targets
                .iter()
                .all(|t| t.source == TargetSource::Placement && t.removed_at.is_none()),
            "{targets:?}"
        );
        for agent in [a.id, b.id] {
            let state = target_state(store, agent).await;
            assert_eq!(state.entries.len(), 1);
            assert_eq!(state.entries[0].action, TargetAction::Apply);
            assert_eq!(state.entries[0].deployment_object, object);
        }
        assert!(target_state(store, c.id).await.entries.is_empty());

        let stored = store
            .get_placement(stack.id)
            .await
            .expect("get")
            .expect("a policy is set");
        assert_eq!(stored.decision, Some(first.clone()));
        assert!(stored.decided_at.is_some());

        let audit = placement_audit(store, stack.id).await;
        let places: Vec<&AuditRecord> = audit
            .iter()
            .filter(|r| r.action == AuditAction::Place)
            .collect();
        assert_eq!(places.len(), 1, "one audit record per changed decision");
        assert_eq!(places[0].actor, Actor::System);
        assert_eq!(places[0].resource_kind, ResourceKind::Placement);
        assert_eq!(places[0].resource_id, stack.id.0);

        let before = all_audit(store).await;
        let again = record(store, stack.id, first.clone()).await;
        assert_eq!(
            again,
            PlacementChange::default(),
            "the same decision is a no-op"
        );
        assert_eq!(all_audit(store).await, before);
        assert_eq!(
            store.get_placement(stack.id).await.expect("get"),
            Some(stored.clone())
        );

        // Other reasons, the same chosen set: stored, but no target changes and no audit.
        let reasons = PlacementDecision {
            chosen: first.chosen.clone(),
            rejected: vec![(c.id, Rejection::StaleHeartbeat)],
            leaving: Vec::new(),
        };
        let change = record(store, stack.id, reasons.clone()).await;
        assert!(change.decision_changed);
        assert!(change.added.is_empty() && change.removed.is_empty());
        assert_eq!(all_audit(store).await, before);
        let stored = store
            .get_placement(stack.id)
            .await
            .expect("get")
            .expect("a policy is set");
        assert_eq!(stored.decision, Some(reasons));
    }

    /// A changed decision unassigns the agents no longer chosen (they receive a removal)
    /// and adds the new ones, waking both, with exactly one audit record.
    pub async fn placement_changed_decision_removes_and_adds(store: &dyn Store) {
        let stack = mk_stack(store, "s").await;
        mk_object(store, stack.id, "1").await;
        let a = mk_agent(store, "a").await;
        let b = mk_agent(store, "b").await;
        let c = mk_agent(store, "c").await;
        mk_policy(store, stack.id, 2).await;
        record(store, stack.id, decision(&[a.id, b.id], &[c.id])).await;

        let mut watch_a = store.watch_target_state(a.id);
        let mut watch_c = store.watch_target_state(c.id);
        let before = all_audit(store).await.len();
        let change = record(store, stack.id, decision(&[b.id, c.id], &[a.id])).await;
        assert_eq!(change.added, vec![c.id]);
        assert_eq!(change.removed, vec![a.id]);
        assert!(change.decision_changed);
        expect_wake(&mut watch_a, "losing a placement").await;
        expect_wake(&mut watch_c, "gaining a placement").await;
        assert_eq!(all_audit(store).await.len(), before + 1);

        assert_eq!(
            action_of(store, a.id, stack.id).await,
            Some(TargetAction::Remove)
        );
        assert_eq!(
            action_of(store, b.id, stack.id).await,
            Some(TargetAction::Apply)
        );
        assert_eq!(
            action_of(store, c.id, stack.id).await,
            Some(TargetAction::Apply)
        );

        // Choosing nobody unassigns everyone it placed.
        let change = record(store, stack.id, decision(&[], &[a.id, b.id, c.id])).await;
        assert!(change.added.is_empty());
        assert_eq!(change.removed, sorted(vec![b.id, c.id]));
        for agent in [a.id, b.id, c.id] {
            assert_eq!(
                action_of(store, agent, stack.id).await,
                Some(TargetAction::Remove)
            );
        }
    }

    /// Direct targets are never touched by a decision and count as having the stack.
    pub async fn placement_leaves_direct_targets_alone(store: &dyn Store) {
        let stack = mk_stack(store, "s").await;
        mk_object(store, stack.id, "1").await;
        let direct = mk_agent(store, "direct").await;
        let placed = mk_agent(store, "placed").await;
        mk_target(store, direct.id, stack.id).await;
        mk_policy(store, stack.id, 2).await;

        let change = record(store, stack.id, decision(&[direct.id, placed.id], &[])).await;
        assert_eq!(change.added, vec![placed.id], "the direct target counts");
        let change = record(store, stack.id, decision(&[placed.id], &[direct.id])).await;
        assert!(change.removed.is_empty(), "{change:?}");
        assert_eq!(
            action_of(store, direct.id, stack.id).await,
            Some(TargetAction::Apply)
        );
        let targets = targets_of_stack(store, stack.id).await;
        let direct_target = targets
            .iter()
            .find(|t| t.agent_id == direct.id)
            .expect("the direct target stays");
        assert_eq!(direct_target.source, TargetSource::Direct);
        assert_eq!(direct_target.removed_at, None);

        store
            .set_placement_policy(&ADMIN, stack.id, None)
            .await
            .expect("clear");
        assert_eq!(
            action_of(store, direct.id, stack.id).await,
            Some(TargetAction::Apply),
            "removing the policy leaves direct targets too"
        );
        assert_eq!(
            action_of(store, placed.id, stack.id).await,
            Some(TargetAction::Remove)
        );
    }

    /// Assigning a stack to an agent that has it by placement makes the target direct
    /// (no conflict), so later decisions leave it alone.
    pub async fn placement_assign_turns_a_placement_target_direct(store: &dyn Store) {
        let stack = mk_stack(store, "s").await;
        mk_object(store, stack.id, "1").await;
        let agent = mk_agent(store, "a").await;
        mk_policy(store, stack.id, 1).await;
        record(store, stack.id, decision(&[agent.id], &[])).await;

        let target = store
            .assign_stack(&ADMIN, agent.id, stack.id)
            .await
            .expect("assigning a placed stack succeeds");
        assert_eq!(target.source, TargetSource::Direct);
        assert_eq!(target.removed_at, None);
        expect_conflict(store.assign_stack(&ADMIN, agent.id, stack.id).await);

        let change = record(store, stack.id, decision(&[], &[agent.id])).await;
        assert!(change.removed.is_empty(), "{change:?}");
        assert_eq!(
            action_of(store, agent.id, stack.id).await,
            Some(TargetAction::Apply)
        );
    }

    /// A target awaiting removal is revived as a placement target when its agent is
    /// chosen again; a never-deployed stack's dropped target goes at once; deleted agents
    /// among the chosen get nothing.
    pub async fn placement_revives_a_target_awaiting_removal(store: &dyn Store) {
        let stack = mk_stack(store, "s").await;
        mk_object(store, stack.id, "1").await;
        let agent = mk_agent(store, "a").await;
        let gone = mk_agent(store, "gone").await;
        store
            .delete_agent(&ADMIN, gone.id)
            .await
            .expect("delete agent");
        mk_policy(store, stack.id, 2).await;

        let change = record(store, stack.id, decision(&[agent.id, gone.id], &[])).await;
        assert_eq!(change.added, vec![agent.id], "a deleted agent gets nothing");
        record(store, stack.id, decision(&[], &[agent.id])).await;
        assert_eq!(
            action_of(store, agent.id, stack.id).await,
            Some(TargetAction::Remove)
        );
        let change = record(store, stack.id, decision(&[agent.id], &[])).await;
        assert_eq!(change.added, vec![agent.id]);
        assert_eq!(
            action_of(store, agent.id, stack.id).await,
            Some(TargetAction::Apply)
        );
        let targets = targets_of_stack(store, stack.id).await;
        assert_eq!(targets.len(), 1);
        assert_eq!(targets[0].source, TargetSource::Placement);

        // Never deployed: nothing to remove, so the dropped target leaves at once.
        let fresh = mk_stack(store, "fresh").await;
        mk_policy(store, fresh.id, 1).await;
        record(store, fresh.id, decision(&[agent.id], &[])).await;
        assert_eq!(targets_of_stack(store, fresh.id).await.len(), 1);
        let change = record(store, fresh.id, decision(&[], &[agent.id])).await;
        assert_eq!(change.removed, vec![agent.id]);
        assert!(targets_of_stack(store, fresh.id).await.is_empty());
    }

    /// `list_placements` pages through live stacks with a policy, ordered by stack id.
    pub async fn placement_list_pages_by_stack_and_skips_deleted(store: &dyn Store) {
        let mut expected = Vec::new();
        for i in 0..5 {
            let stack = mk_stack(store, &format!("s{i}")).await;
            mk_policy(store, stack.id, 1).await;
            expected.push(stack.id);
        }
        mk_stack(store, "no-policy").await;
        let deleted = mk_stack(store, "deleted").await;
        mk_policy(store, deleted.id, 1).await;
        store
            .delete_stack(&ADMIN, deleted.id)
            .await
            .expect("delete stack");
        check_walks(
            "placements",
            expected,
            |p: &StackPlacement| p.stack_id,
            async |p| store.list_placements(&p).await,
        )
        .await;
    }

    /// Placement needs a live stack; recording needs a policy.
    pub async fn placement_needs_a_live_stack_with_a_policy(store: &dyn Store) {
        let agent = mk_agent(store, "a").await;
        let missing = StackId::new();
        expect_not_found(store.get_placement(missing).await, "stack");
        expect_not_found(
            store
                .set_placement_policy(&ADMIN, missing, Some(policy(1)))
                .await,
            "stack",
        );
        expect_not_found(
            store
                .record_placement(&ADMIN, missing, decision(&[agent.id], &[]))
                .await,
            "stack",
        );

        let stack = mk_stack(store, "s").await;
        expect_not_found(
            store
                .record_placement(&ADMIN, stack.id, decision(&[agent.id], &[]))
                .await,
            "placement",
        );
        assert!(targets_of_stack(store, stack.id).await.is_empty());

        mk_policy(store, stack.id, 1).await;
        store
            .delete_stack(&ADMIN, stack.id)
            .await
            .expect("delete stack");
        let before = all_audit(store).await;
        expect_not_found(store.get_placement(stack.id).await, "stack");
        expect_not_found(
            store
                .set_placement_policy(&ADMIN, stack.id, Some(policy(2)))
                .await,
            "stack",
        );
        expect_not_found(
            store.set_placement_policy(&ADMIN, stack.id, None).await,
            "stack",
        );
        expect_not_found(
            store
                .record_placement(&ADMIN, stack.id, decision(&[agent.id], &[]))
                .await,
            "stack",
        );
        assert_eq!(all_audit(store).await, before);
        assert!(targets_of_stack(store, stack.id).await.is_empty());
    }

    /// Decisions recorded concurrently for one stack (as by two replicas) apply one after
    /// the other: the live placement targets end up exactly the stored decision's choice.
    pub async fn placement_concurrent_records_serialize(store: &dyn Store) {
        let stack = mk_stack(store, "s").await;
        mk_object(store, stack.id, "1").await;
        let mut agents = Vec::new();
        for i in 0..4 {
            agents.push(mk_agent(store, &format!("a{i}")).await.id);
        }
        mk_policy(store, stack.id, 2).await;
        let records = (0..12).map(|i| {
            let chosen = [agents[i % 4], agents[(i + 1) % 4]];
            async move {
                store
                    .record_placement(&Actor::System, stack.id, decision(&chosen, &[]))
                    .await
            }
        });
        for result in futures::future::join_all(records).await {
            result.expect("every concurrent record succeeds");
        }
        let stored = store
            .get_placement(stack.id)
            .await
            .expect("get")
            .and_then(|p| p.decision)
            .expect("a decision is stored");
        let live: Vec<AgentId> = targets_of_stack(store, stack.id)
            .await
            .iter()
            .filter(|t| t.removed_at.is_none())
            .map(|t| t.agent_id)
            .collect();
        assert_eq!(live, stored.chosen);
    }
);
