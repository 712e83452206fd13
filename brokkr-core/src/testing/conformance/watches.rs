//! Target-state watches wake on every change that concerns the agent.

use super::fixtures::{ADMIN, mk_agent, mk_event, mk_object, mk_stack, mk_target};
use super::support::expect_wake;
use crate::model::{EventStatus, EventType};
use crate::store::Store;

cases!(
    /// Appending to an assigned stack wakes the agent's watch.
    pub async fn watch_wakes_on_append(store: &dyn Store) {
        let agent = mk_agent(store, "a").await;
        let stack = mk_stack(store, "s").await;
        mk_target(store, agent.id, stack.id).await;
        let mut watch = store.watch_target_state(agent.id);
        assert_eq!(watch.agent(), agent.id);
        mk_object(store, stack.id, "1").await;
        expect_wake(&mut watch, "an append").await;
    }

    /// Assigning and unassigning wake the agent's watch.
    pub async fn watch_wakes_on_assign_and_unassign(store: &dyn Store) {
        let agent = mk_agent(store, "a").await;
        let stack = mk_stack(store, "s").await;
        mk_object(store, stack.id, "1").await;
        let mut watch = store.watch_target_state(agent.id);
        mk_target(store, agent.id, stack.id).await;
        expect_wake(&mut watch, "an assignment").await;
        store
            .unassign_stack(&ADMIN, agent.id, stack.id)
            .await
            .expect("unassign");
        expect_wake(&mut watch, "an unassignment").await;
    }

    /// Deleting an assigned stack wakes the agent's watch.
    pub async fn watch_wakes_on_stack_delete(store: &dyn Store) {
        let agent = mk_agent(store, "a").await;
        let stack = mk_stack(store, "s").await;
        mk_target(store, agent.id, stack.id).await;
        mk_object(store, stack.id, "1").await;
        let mut watch = store.watch_target_state(agent.id);
        store.delete_stack(&ADMIN, stack.id).await.expect("delete");
        expect_wake(&mut watch, "a stack deletion").await;
    }

    /// A successful `Delete` event that retires a target wakes the agent's watch.
    pub async fn watch_wakes_when_a_target_retires(store: &dyn Store) {
        let agent = mk_agent(store, "a").await;
        let stack = mk_stack(store, "s").await;
        mk_target(store, agent.id, stack.id).await;
        let object = mk_object(store, stack.id, "1").await;
        store
            .unassign_stack(&ADMIN, agent.id, stack.id)
            .await
            .expect("unassign");
        let mut watch = store.watch_target_state(agent.id);
        mk_event(
            store,
            agent.id,
            object.id,
            EventType::Delete,
            EventStatus::Success,
        )
        .await;
        expect_wake(&mut watch, "a retirement").await;
    }
);
