//! The target state an agent is served.

use super::fixtures::{ADMIN, mk_agent, mk_event, mk_object, mk_stack, mk_target, new_event};
use super::support::{all, expect_not_found, target_state};
use crate::model::{Actor, AgentStatus, AgentUpdate, EventStatus, EventType};
use crate::page::PageRequest;
use crate::store::{Store, TargetFilter};
use crate::target_state::TargetAction;

cases!(
    /// An agent with no targets, or targets whose stacks have no object yet, has an empty
    /// target state.
    pub async fn target_state_is_empty_without_objects(store: &dyn Store) {
        let agent = mk_agent(store, "a").await;
        let state = target_state(store, agent.id).await;
        assert_eq!(state.agent_id, agent.id);
        assert!(state.entries.is_empty());
        let stack = mk_stack(store, "empty").await;
        mk_target(store, agent.id, stack.id).await;
        assert!(target_state(store, agent.id).await.entries.is_empty());
    }

    /// The latest object of each assigned stack is applied; older versions never appear.
    pub async fn target_state_applies_the_latest_object(store: &dyn Store) {
        let agent = mk_agent(store, "a").await;
        let stack = mk_stack(store, "s").await;
        let other = mk_stack(store, "t").await;
        mk_target(store, agent.id, stack.id).await;
        mk_target(store, agent.id, other.id).await;
        let _old = mk_object(store, stack.id, "1").await;
        let v2 = mk_object(store, stack.id, "2").await;
        let t1 = mk_object(store, other.id, "1").await;

        let state = target_state(store, agent.id).await;
        assert_eq!(state.entries.len(), 2);
        for entry in &state.entries {
            assert_eq!(entry.action, TargetAction::Apply);
            let (expected, name) = if entry.stack_id == stack.id {
                (&v2, "s")
            } else {
                (&t1, "t")
            };
            assert_eq!(&entry.deployment_object, expected);
            assert_eq!(entry.stack_name, name);
        }
        assert!(
            state
                .entries
                .windows(2)
                .all(|w| w[0].stack_id < w[1].stack_id)
        );
        assert_eq!(target_state(store, agent.id).await.etag(), state.etag());

        let v3 = mk_object(store, stack.id, "3").await;
        let newer = target_state(store, agent.id).await;
        let entry = newer
            .entries
            .iter()
            .find(|e| e.stack_id == stack.id)
            .expect("stack entry");
        assert_eq!(entry.deployment_object, v3);
        assert_ne!(newer.etag(), state.etag());
    }

    /// A deleted stack stays in the target state as a removal carrying its marker.
    pub async fn target_state_removes_a_deleted_stack_with_its_marker(store: &dyn Store) {
        let agent = mk_agent(store, "a").await;
        let stack = mk_stack(store, "s").await;
        mk_target(store, agent.id, stack.id).await;
        mk_object(store, stack.id, "1").await;
        let marker = store.delete_stack(&ADMIN, stack.id).await.expect("delete");
        let state = target_state(store, agent.id).await;
        assert_eq!(state.entries.len(), 1);
        assert_eq!(state.entries[0].action, TargetAction::Remove);
        assert_eq!(state.entries[0].deployment_object, marker);
        assert_eq!(state.entries[0].stack_name, "s");
    }

    /// An unassigned stack stays in the target state as a removal carrying the stack's
    /// latest object; re-assigning it applies that object again.
    pub async fn target_state_removes_an_unassigned_stack_with_its_latest_object(
        store: &dyn Store,
    ) {
        let agent = mk_agent(store, "a").await;
        let stack = mk_stack(store, "s").await;
        mk_target(store, agent.id, stack.id).await;
        mk_object(store, stack.id, "1").await;
        let v2 = mk_object(store, stack.id, "2").await;
        store
            .unassign_stack(&ADMIN, agent.id, stack.id)
            .await
            .expect("unassign");
        let state = target_state(store, agent.id).await;
        assert_eq!(state.entries.len(), 1);
        assert_eq!(state.entries[0].action, TargetAction::Remove);
        assert_eq!(state.entries[0].deployment_object, v2);

        let v3 = mk_object(store, stack.id, "3").await;
        let state = target_state(store, agent.id).await;
        assert_eq!(state.entries[0].action, TargetAction::Remove);
        assert_eq!(state.entries[0].deployment_object, v3);

        mk_target(store, agent.id, stack.id).await;
        let state = target_state(store, agent.id).await;
        assert_eq!(state.entries[0].action, TargetAction::Apply);
        assert_eq!(state.entries[0].deployment_object, v3);
    }

    /// Unassigning a stack that never had a deployment object retires the target at once:
    /// the agent has nothing of it to remove, so no removal would ever be confirmed.
    pub async fn target_state_unassigning_a_never_deployed_stack_retires_it_at_once(
        store: &dyn Store,
    ) {
        let agent = mk_agent(store, "a").await;
        let stack = mk_stack(store, "s").await;
        mk_target(store, agent.id, stack.id).await;
        store
            .unassign_stack(&ADMIN, agent.id, stack.id)
            .await
            .expect("unassign");
        let targets = store
            .list_agent_targets(
                &TargetFilter {
                    agent_id: Some(agent.id),
                    ..Default::default()
                },
                &PageRequest::default(),
            )
            .await
            .expect("list targets");
        assert!(targets.items.is_empty(), "{:?}", targets.items);

        // A later deployment object does not resurrect it, and it can be assigned again.
        mk_object(store, stack.id, "1").await;
        assert!(target_state(store, agent.id).await.entries.is_empty());
        mk_target(store, agent.id, stack.id).await;
        assert_eq!(
            target_state(store, agent.id).await.entries[0].action,
            TargetAction::Apply
        );
    }

    /// A successful `Delete` event retires an unassigned target or a deleted stack's
    /// target; for an active target of a live stack it changes nothing.
    pub async fn target_state_successful_delete_event_retires_the_target(store: &dyn Store) {
        let agent = mk_agent(store, "a").await;
        let unassigned = mk_stack(store, "unassigned").await;
        let deleted = mk_stack(store, "deleted").await;
        let active = mk_stack(store, "active").await;
        for stack in [&unassigned, &deleted, &active] {
            mk_target(store, agent.id, stack.id).await;
        }
        let u1 = mk_object(store, unassigned.id, "1").await;
        mk_object(store, deleted.id, "1").await;
        let a1 = mk_object(store, active.id, "1").await;
        store
            .unassign_stack(&ADMIN, agent.id, unassigned.id)
            .await
            .expect("unassign");
        let marker = store
            .delete_stack(&ADMIN, deleted.id)
            .await
            .expect("delete");
        assert_eq!(target_state(store, agent.id).await.entries.len(), 3);

        let (delete, success) = (EventType::Delete, EventStatus::Success);
        mk_event(store, agent.id, u1.id, delete, success).await;
        mk_event(store, agent.id, marker.id, delete, success).await;
        mk_event(store, agent.id, a1.id, delete, success).await;

        let state = target_state(store, agent.id).await;
        assert_eq!(state.entries.len(), 1, "{state:?}");
        assert_eq!(state.entries[0].stack_id, active.id);
        assert_eq!(state.entries[0].action, TargetAction::Apply);
        let filter = TargetFilter {
            agent_id: Some(agent.id),
            ..Default::default()
        };
        let targets = all(async |p| store.list_agent_targets(&filter, &p).await).await;
        assert_eq!(targets.len(), 1, "retired targets leave the listing");
        assert_eq!(targets[0].stack_id, active.id);
    }

    /// A removal confirmed with an event id the agent used before (ids are derived from
    /// what they report: the stack was unassigned, assigned again and unassigned again)
    /// still retires the target.
    pub async fn target_state_a_repeated_delete_report_retires_the_target_again(store: &dyn Store) {
        let agent = mk_agent(store, "a").await;
        let stack = mk_stack(store, "s").await;
        mk_target(store, agent.id, stack.id).await;
        let object = mk_object(store, stack.id, "1").await;
        let confirm = new_event(agent.id, object.id, EventType::Delete, EventStatus::Success);
        for round in 0..2 {
            store
                .unassign_stack(&ADMIN, agent.id, stack.id)
                .await
                .expect("unassign");
            assert_eq!(target_state(store, agent.id).await.entries.len(), 1);
            store
                .record_agent_event(&Actor::Agent(agent.id), confirm.clone())
                .await
                .expect("confirm the removal");
            let state = target_state(store, agent.id).await;
            assert!(state.entries.is_empty(), "round {round}: {state:?}");
            if round == 0 {
                mk_target(store, agent.id, stack.id).await;
            }
        }
    }

    /// A failed `Delete` event, or an `Apply` event, leaves a pending removal in place.
    pub async fn target_state_failed_delete_event_keeps_the_target(store: &dyn Store) {
        let agent = mk_agent(store, "a").await;
        let stack = mk_stack(store, "s").await;
        mk_target(store, agent.id, stack.id).await;
        let object = mk_object(store, stack.id, "1").await;
        store
            .unassign_stack(&ADMIN, agent.id, stack.id)
            .await
            .expect("unassign");
        mk_event(
            store,
            agent.id,
            object.id,
            EventType::Delete,
            EventStatus::Failure,
        )
        .await;
        mk_event(
            store,
            agent.id,
            object.id,
            EventType::Apply,
            EventStatus::Success,
        )
        .await;
        let state = target_state(store, agent.id).await;
        assert_eq!(state.entries.len(), 1);
        assert_eq!(state.entries[0].action, TargetAction::Remove);
    }

    /// An agent's target state holds its own stacks only.
    pub async fn target_state_has_only_the_agents_own_stacks(store: &dyn Store) {
        let a1 = mk_agent(store, "a1").await;
        let a2 = mk_agent(store, "a2").await;
        let s1 = mk_stack(store, "s1").await;
        let s2 = mk_stack(store, "s2").await;
        let unassigned = mk_stack(store, "nobody's").await;
        mk_target(store, a1.id, s1.id).await;
        mk_target(store, a2.id, s2.id).await;
        for stack in [&s1, &s2, &unassigned] {
            mk_object(store, stack.id, "1").await;
        }
        let stacks = async |agent| {
            target_state(store, agent)
                .await
                .entries
                .into_iter()
                .map(|e| e.stack_id)
                .collect::<Vec<_>>()
        };
        assert_eq!(stacks(a1.id).await, vec![s1.id]);
        assert_eq!(stacks(a2.id).await, vec![s2.id]);
    }

    /// An inactive agent still has its target state; a deleted agent's is `NotFound`.
    pub async fn target_state_of_inactive_and_deleted_agents(store: &dyn Store) {
        let agent = mk_agent(store, "a").await;
        let stack = mk_stack(store, "s").await;
        mk_target(store, agent.id, stack.id).await;
        mk_object(store, stack.id, "1").await;
        let pause = AgentUpdate {
            status: Some(AgentStatus::Inactive),
            ..Default::default()
        };
        store
            .update_agent(&ADMIN, agent.id, pause)
            .await
            .expect("pause");
        assert_eq!(target_state(store, agent.id).await.entries.len(), 1);
        store.delete_agent(&ADMIN, agent.id).await.expect("delete");
        expect_not_found(store.target_state(agent.id).await, "agent");
    }

    /// Target states of many agents at once equal each agent's own, with its status;
    /// missing and deleted agents are left out, and an agent with nothing to run is
    /// there with an empty state.
    pub async fn target_states_of_many_agents_match_each_agents_own(store: &dyn Store) {
        let shared = mk_stack(store, "shared").await;
        let own = mk_stack(store, "own").await;
        mk_object(store, shared.id, "1").await;
        mk_object(store, own.id, "1").await;
        let mut agents = Vec::new();
        for i in 0..4 {
            let agent = mk_agent(store, &format!("many-{i}")).await;
            mk_target(store, agent.id, shared.id).await;
            agents.push(agent.id);
        }
        mk_target(store, agents[0], own.id).await;
        store
            .unassign_stack(&ADMIN, agents[1], shared.id)
            .await
            .expect("unassign");
        let idle = mk_agent(store, "many-idle").await.id;
        let pause = AgentUpdate {
            status: Some(AgentStatus::Inactive),
            ..Default::default()
        };
        store
            .update_agent(&ADMIN, agents[2], pause)
            .await
            .expect("pause");
        store.delete_agent(&ADMIN, agents[3]).await.expect("delete");

        let mut asked = agents.clone();
        asked.extend([idle, crate::id::AgentId::new()]);
        let mut many = store.target_states(&asked).await.expect("target states");
        many.sort_by_key(|s| s.state.agent_id);
        let mut expected = Vec::new();
        for agent in [agents[0], agents[1], agents[2], idle] {
            let status = store.get_agent(agent).await.expect("agent").status;
            expected.push((agent, status, target_state(store, agent).await));
        }
        expected.sort_by_key(|(agent, ..)| *agent);
        assert_eq!(
            many.len(),
            expected.len(),
            "missing and deleted agents are left out"
        );
        for (got, (agent, status, state)) in many.iter().zip(&expected) {
            assert_eq!(got.state.agent_id, *agent);
            assert_eq!(got.agent_status, *status);
            assert_eq!(&got.state, state);
        }
        let paused = many
            .iter()
            .find(|s| s.state.agent_id == agents[2])
            .expect("paused");
        assert_eq!(paused.agent_status, AgentStatus::Inactive);
        assert!(
            many.iter()
                .any(|s| s.state.agent_id == idle && s.state.entries.is_empty())
        );
        assert!(store.target_states(&[]).await.expect("none").is_empty());
    }
);
