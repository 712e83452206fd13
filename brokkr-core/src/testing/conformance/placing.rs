//! A new policy and its decision stored at once ([`Store::place_stack`]).

use super::fixtures::{ADMIN, mk_agent, mk_object, mk_stack};
use super::placement::{decision, policy};
use super::support::{all, all_audit, expect_not_found, target_state};
use crate::id::StackId;
use crate::model::{AuditAction, ResourceKind};
use crate::store::{AuditFilter, Store};
use crate::target_state::TargetAction;

cases!(
    /// Placing a stack stores its policy and decision, gives the chosen agents the
    /// stack and audits both; a write decided from a decision that is no longer the
    /// stored one writes nothing and answers `None`; a decided stack moves on with the
    /// stored decision as `expected`.
    pub async fn place_stack_sets_policy_and_decision_when_expected(store: &dyn Store) {
        let stack = mk_stack(store, "s").await;
        mk_object(store, stack.id, "1").await;
        let a = mk_agent(store, "a").await.id;
        let b = mk_agent(store, "b").await.id;

        let (placement, change) = store
            .place_stack(&ADMIN, stack.id, policy(1), decision(&[a], &[]), None)
            .await
            .expect("place")
            .expect("an undecided stack expects no decision");
        assert_eq!(placement.stack_id, stack.id);
        assert_eq!(placement.policy, policy(1));
        assert_eq!(
            placement.decision.as_ref().map(|d| d.chosen.clone()),
            Some(vec![a])
        );
        assert!(placement.decided_at.is_some());
        assert_eq!((change.added, change.removed), (vec![a], vec![]));
        assert!(change.decision_changed);
        assert_eq!(
            store.get_placement(stack.id).await.expect("get"),
            Some(placement.clone())
        );
        let state = target_state(store, a).await;
        assert_eq!(state.entries.len(), 1);
        assert_eq!(state.entries[0].action, TargetAction::Apply);
        let filter = AuditFilter {
            resource_kind: Some(ResourceKind::Placement),
            resource_id: Some(stack.id.0),
            ..Default::default()
        };
        let audit = all(async |p| store.list_audit_records(&filter, &p).await).await;
        let actions: Vec<AuditAction> = audit.iter().map(|r| r.action).collect();
        assert!(actions.contains(&AuditAction::Update), "{actions:?}");
        assert!(actions.contains(&AuditAction::Place), "{actions:?}");

        // Decided from a stale view: nothing is written.
        let before = all_audit(store).await;
        let stale = store
            .place_stack(&ADMIN, stack.id, policy(2), decision(&[b], &[]), None)
            .await
            .expect("place");
        assert!(stale.is_none(), "the stored decision chooses a");
        let stale = store
            .place_stack(
                &ADMIN,
                stack.id,
                policy(2),
                decision(&[b], &[]),
                Some(vec![b]),
            )
            .await
            .expect("place");
        assert!(stale.is_none(), "the stored decision chooses a, not b");
        assert_eq!(all_audit(store).await, before);
        assert_eq!(
            store.get_placement(stack.id).await.expect("get"),
            Some(placement)
        );

        let (moved, change) = store
            .place_stack(
                &ADMIN,
                stack.id,
                policy(1),
                decision(&[b], &[]),
                Some(vec![a]),
            )
            .await
            .expect("place")
            .expect("expected the stored decision");
        assert_eq!(moved.decision.map(|d| d.chosen), Some(vec![b]));
        assert_eq!((change.added, change.removed), (vec![b], vec![a]));
        assert_eq!(
            target_state(store, a).await.entries[0].action,
            TargetAction::Remove
        );
    }

    /// Placing a missing or deleted stack is `NotFound`; many stacks placed at once
    /// (a store may write them together) are each placed, and a missing one among
    /// them fails alone.
    pub async fn place_stack_many_at_once_fail_alone(store: &dyn Store) {
        let agent = mk_agent(store, "a").await.id;
        let gone = mk_stack(store, "gone").await.id;
        store.delete_stack(&ADMIN, gone).await.expect("delete");
        expect_not_found(
            store
                .place_stack(&ADMIN, gone, policy(1), decision(&[agent], &[]), None)
                .await,
            "stack",
        );
        let mut stacks = Vec::new();
        for i in 0..12 {
            stacks.push(mk_stack(store, &format!("s{i}")).await.id);
        }
        let mut asked: Vec<StackId> = stacks.clone();
        asked.push(StackId::new());
        let answers = futures::future::join_all(asked.iter().map(|&stack| async move {
            let placed = store
                .place_stack(&ADMIN, stack, policy(1), decision(&[agent], &[]), None)
                .await;
            (stack, placed)
        }))
        .await;
        for (stack, placed) in answers {
            if stacks.contains(&stack) {
                let (placement, change) = placed.expect("place").expect("undecided");
                assert_eq!(placement.stack_id, stack);
                assert_eq!(change.added, vec![agent]);
            } else {
                expect_not_found(placed, "stack");
            }
        }
        for stack in stacks {
            let stored = store
                .get_placement(stack)
                .await
                .expect("get")
                .expect("policy");
            assert_eq!(stored.decision.map(|d| d.chosen), Some(vec![agent]));
        }
    }
);
