//! Agent events: only the agent reports its own, idempotently; it and admin read them.

use super::callers::{Answer, World, assert_no_mismatches, matrix};
use crate::runtime::{ControlPlane, Error, MAX_EVENT_MESSAGE_BYTES};
use crate::store::AgentEventFilter;
use crate::testing::conformance::new_event;
use crate::{Actor, EventStatus, EventType, PageRequest, store};

const OK: Answer = Answer::Ok;
const NO: Answer = Answer::Forbidden;
const NF: Answer = Answer::NotFound;

crate::runtime_cases! {
    async fn event_operations_answer_every_caller_as_specified(cp: ControlPlane) {
        let w = World::new(&cp).await;
        let page = &PageRequest::first(10);
        let event = new_event(w.agent, w.object, EventType::Apply, EventStatus::Success);
        let stored = cp
            .record_agent_event(&Actor::Agent(w.agent), event)
            .await
            .expect("the agent reports");
        let mut bad = Vec::new();
        // An agent's report is its own word: not even admin may speak for it.
        bad.extend(matrix("record_agent_event", [NO, NO, OK, NO, NO, NO], |who| {
            let cp = cp.clone();
            async move {
                let event = new_event(w.agent, w.object, EventType::Apply, EventStatus::Failure);
                cp.record_agent_event(&w.actor(who, w.agent), event).await
            }
        }).await);
        bad.extend(matrix("list_agent_events", [OK, OK, OK, NO, NO, NO], |who| {
            let cp = cp.clone();
            async move {
                cp.list_agent_events(&w.actor(who, w.agent), w.agent, AgentEventFilter::default(), page)
                    .await
            }
        }).await);
        bad.extend(matrix("list_all_agent_events", [OK, OK, NO, NO, NO, NO], |who| {
            let cp = cp.clone();
            async move {
                cp.list_all_agent_events(&w.actor(who, w.agent), &AgentEventFilter::default(), page)
                    .await
            }
        }).await);
        // Another agent does not learn the event exists.
        bad.extend(matrix("get_agent_event", [OK, OK, OK, NF, NO, NO], |who| {
            let cp = cp.clone();
            async move { cp.get_agent_event(&w.actor(who, w.agent), stored.id).await }
        }).await);
        assert_no_mismatches(bad);
    }

    async fn reports_are_idempotent_bounded_and_listed_per_agent(cp: ControlPlane) {
        let w = World::new(&cp).await;
        let me = Actor::Agent(w.agent);
        let page = PageRequest::first(10);
        let event = new_event(w.agent, w.object, EventType::Apply, EventStatus::Failure);
        let first = cp.record_agent_event(&me, event.clone()).await.unwrap();
        let again = cp.record_agent_event(&me, event.clone()).await.unwrap();
        assert_eq!(first, again, "a retried report stores nothing new");
        assert_eq!(first.stack_id, w.stack);

        let too_long = crate::NewAgentEvent {
            message: Some("x".repeat(MAX_EVENT_MESSAGE_BYTES + 1)),
            ..new_event(w.agent, w.object, EventType::Apply, EventStatus::Success)
        };
        let err = cp.record_agent_event(&me, too_long).await.unwrap_err();
        assert!(matches!(err, Error::Invalid { code: "validation_failed", .. }), "{err:?}");

        // The listing is the agent's, whatever agent the filter names.
        let filter = AgentEventFilter {
            agent_id: Some(w.other_agent),
            ..Default::default()
        };
        let listed = cp.list_agent_events(&me, w.agent, filter, &page).await.unwrap();
        assert_eq!(listed.items, vec![first.clone()]);
        let failures = AgentEventFilter {
            status: Some(EventStatus::Success),
            ..Default::default()
        };
        let listed = cp.list_all_agent_events(&Actor::Admin, &failures, &page).await.unwrap();
        assert!(listed.items.is_empty(), "the oversized report stored nothing");

        let missing = crate::AgentId::new();
        let err = cp
            .list_agent_events(&Actor::Admin, missing, AgentEventFilter::default(), &page)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Store(store::Error::NotFound { .. })), "{err:?}");
    }

    async fn an_agent_reports_only_on_its_own_stacks_and_retries_stay_idempotent(cp: ControlPlane) {
        let w = World::new(&cp).await;
        let me = Actor::Agent(w.agent);
        // Another agent's stack: refused, and nothing tells which stack it is.
        let elsewhere = crate::testing::conformance::mk_stack(cp.store().as_ref(), "elsewhere").await;
        let theirs = cp
            .store()
            .append_deployment_object(
                &Actor::Admin,
                crate::NewDeploymentObject::from_yaml(
                    elsewhere.id,
                    crate::testing::conformance::config_map_yaml("cm", "1"),
                )
                .unwrap(),
            )
            .await
            .unwrap();
        cp.store().assign_stack(&Actor::Admin, w.other_agent, elsewhere.id).await.unwrap();
        let foreign = new_event(w.agent, theirs.id, EventType::Apply, EventStatus::Success);
        let err = cp.record_agent_event(&me, foreign).await.unwrap_err();
        assert!(matches!(err, Error::Store(store::Error::NotFound { .. })), "{err:?}");
        let page = PageRequest::first(10);
        let theirs_listed = cp
            .list_all_agent_events(&Actor::Admin, &AgentEventFilter::default(), &page)
            .await
            .unwrap();
        assert!(theirs_listed.items.is_empty(), "the refused report stored nothing");

        // Its own stack deleted: the removal is confirmed, the stack retired from its
        // target state, and a retry of that confirmation still answers the stored event.
        let marker = cp.store().delete_stack(&Actor::Admin, w.stack).await.unwrap();
        let confirm = new_event(w.agent, marker.id, EventType::Delete, EventStatus::Success);
        let stored = cp.record_agent_event(&me, confirm.clone()).await.expect("confirmed");
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(5);
        while !cp.target_state(&me, w.agent).await.unwrap().state.entries.is_empty() {
            assert!(tokio::time::Instant::now() < deadline, "the stack was never retired");
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let again = cp.record_agent_event(&me, confirm).await.expect("a retry is answered");
        assert_eq!(again, stored);
    }
}
