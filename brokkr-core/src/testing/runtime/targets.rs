//! Agent targets assigned by hand: who may assign, unassign and list them, and how
//! soon the agent's target state shows it.

use super::callers::{Answer, World, assert_no_mismatches, matrix, mk_owned_stack};
use crate::runtime::{ControlPlane, Error};
use crate::testing::conformance::{mk_object, mk_target};
use crate::{Actor, PageRequest, TargetAction, store};

const OK: Answer = Answer::Ok;
const NO: Answer = Answer::Forbidden;
const NF: Answer = Answer::NotFound;

crate::runtime_cases! {
    async fn target_operations_answer_every_caller_as_specified(cp: ControlPlane) {
        let w = World::new(&cp).await;
        let page = &PageRequest::first(10);
        let mut bad = Vec::new();
        // Admin and the owning generator reach the stack; another generator does not
        // learn it exists; agents are refused.
        let row_owner = [OK, OK, NO, NO, OK, NF];
        bad.extend(matrix("list_stack_targets", row_owner, |who| {
            let cp = cp.clone();
            async move { cp.list_stack_targets(&w.actor(who, w.agent), w.stack, page).await }
        }).await);
        bad.extend(matrix("assign_target", row_owner, |who| {
            let cp = cp.clone();
            async move {
                let stack = mk_owned_stack(&cp, w.generator, &format!("assign-{who:?}")).await;
                cp.assign_target(&w.actor(who, w.agent), w.agent, stack).await
            }
        }).await);
        bad.extend(matrix("unassign_target", row_owner, |who| {
            let cp = cp.clone();
            async move {
                let stack = mk_owned_stack(&cp, w.generator, &format!("unassign-{who:?}")).await;
                mk_target(cp.store().as_ref(), w.agent, stack).await;
                cp.unassign_target(&w.actor(who, w.agent), w.agent, stack).await
            }
        }).await);
        assert_no_mismatches(bad);

        // An admin's stack is as invisible to a generator as another generator's.
        let admins = crate::testing::conformance::mk_stack(cp.store().as_ref(), "admins").await;
        let err = cp
            .assign_target(&Actor::Generator(w.generator), w.agent, admins.id)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Store(store::Error::NotFound { .. })), "{err:?}");
    }

    async fn assignments_show_in_the_target_state_at_once(cp: ControlPlane) {
        let w = World::new(&cp).await;
        let me = Actor::Agent(w.agent);
        let owner = Actor::Generator(w.generator);
        // Cached now: the assignment must not wait for the change feed to drop it.
        let before = cp.target_state(&me, w.agent).await.unwrap();
        assert_eq!(before.state.entries.len(), 1);

        let second = mk_owned_stack(&cp, w.generator, "second").await;
        mk_object(cp.store().as_ref(), second, "1").await;
        let target = cp.assign_target(&owner, w.agent, second).await.expect("owner assigns");
        assert_eq!((target.agent_id, target.stack_id), (w.agent, second));
        let after = cp.target_state(&me, w.agent).await.unwrap();
        assert_eq!(after.state.entries.len(), 2);

        cp.unassign_target(&owner, w.agent, second).await.expect("owner unassigns");
        let removed = cp.target_state(&me, w.agent).await.unwrap();
        let entry = removed
            .state
            .entries
            .iter()
            .find(|e| e.stack_id == second)
            .expect("a removal until the agent confirms it");
        assert_eq!(entry.action, TargetAction::Remove);

        // The agent lists its targets, the one awaiting removal included.
        let page = PageRequest::first(10);
        let listed = cp.list_agent_targets(&me, w.agent, &page).await.unwrap();
        assert_eq!(listed.items.len(), 2);
        assert!(listed.items.iter().any(|t| t.stack_id == second && t.removed_at.is_some()));
        let listed = cp.list_stack_targets(&owner, w.stack, &page).await.unwrap();
        assert_eq!(listed.items.iter().map(|t| t.agent_id).collect::<Vec<_>>(), vec![w.agent]);
    }
}
