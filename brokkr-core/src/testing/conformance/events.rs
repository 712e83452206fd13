//! Agent events: idempotence, references, filters.

use super::fixtures::{ADMIN, mk_agent, mk_event, mk_object, mk_stack, new_event};
use super::support::{
    all_audit, all_events, expect_conflict, expect_not_found, instant_between_writes,
};
use crate::id::{AgentEventId, AgentId, DeploymentObjectId};
use crate::model::{Actor, EventStatus, EventType};
use crate::store::{AgentEventFilter, Store};

cases!(
    /// An event is stored once: reporting its id again returns it unchanged and writes no
    /// audit record; another agent reusing the id is a `Conflict`.
    pub async fn events_are_idempotent_by_id(store: &dyn Store) {
        let agent = mk_agent(store, "a").await;
        let other = mk_agent(store, "b").await;
        let stack = mk_stack(store, "s").await;
        let object = mk_object(store, stack.id, "1").await;
        let mut new = new_event(agent.id, object.id, EventType::Apply, EventStatus::Failure);
        new.message = Some("admission webhook denied the request".into());
        let actor = Actor::Agent(agent.id);
        let event = store
            .record_agent_event(&actor, new.clone())
            .await
            .expect("record");
        assert_eq!(event.id, new.id);
        assert_eq!(event.agent_id, agent.id);
        assert_eq!(event.deployment_object_id, object.id);
        assert_eq!(event.stack_id, stack.id);
        assert_eq!(event.event_type, EventType::Apply);
        assert_eq!(event.status, EventStatus::Failure);
        assert_eq!(event.message, new.message);
        assert_eq!(store.get_agent_event(event.id).await.expect("get"), event);

        let audit = all_audit(store).await.len();
        let mut retry = new.clone();
        retry.status = EventStatus::Success;
        retry.message = None;
        let again = store
            .record_agent_event(&actor, retry)
            .await
            .expect("retry");
        assert_eq!(again, event, "a retried report returns the stored event");
        assert_eq!(
            all_audit(store).await.len(),
            audit,
            "a retry writes no audit record"
        );

        let mut stolen = new;
        stolen.agent_id = other.id;
        expect_conflict(
            store
                .record_agent_event(&Actor::Agent(other.id), stolen)
                .await,
        );
        assert_eq!(
            all_events(store, AgentEventFilter::default()).await,
            vec![event.id]
        );
    }

    /// Events need a live agent and an existing deployment object.
    pub async fn events_need_a_known_agent_and_object(store: &dyn Store) {
        let agent = mk_agent(store, "a").await;
        let stack = mk_stack(store, "s").await;
        let object = mk_object(store, stack.id, "1").await;
        let (apply, ok) = (EventType::Apply, EventStatus::Success);
        let unknown_agent = new_event(AgentId::new(), object.id, apply, ok);
        expect_not_found(
            store.record_agent_event(&ADMIN, unknown_agent).await,
            "agent",
        );
        let unknown_object = new_event(agent.id, DeploymentObjectId::new(), apply, ok);
        expect_not_found(
            store.record_agent_event(&ADMIN, unknown_object).await,
            "deployment object",
        );
        // Events about a deleted stack's history are still accepted.
        let marker = store.delete_stack(&ADMIN, stack.id).await.expect("delete");
        mk_event(store, agent.id, marker.id, EventType::Delete, ok).await;
        mk_event(store, agent.id, object.id, apply, ok).await;
        assert_eq!(
            all_events(store, AgentEventFilter::default()).await.len(),
            2
        );
    }

    /// Events filter by agent, stack, object, type, status and time, combined.
    pub async fn events_filters(store: &dyn Store) {
        let a = mk_agent(store, "a").await.id;
        let b = mk_agent(store, "b").await.id;
        let s1 = mk_stack(store, "s1").await.id;
        let s2 = mk_stack(store, "s2").await.id;
        let o1 = mk_object(store, s1, "1").await.id;
        let o2 = mk_object(store, s2, "1").await.id;
        use EventStatus::{Failure, Success};
        use EventType::{Apply, Delete};
        let e1 = mk_event(store, a, o1, Apply, Success).await.id;
        let e2 = mk_event(store, a, o2, Apply, Failure).await.id;
        let mid = instant_between_writes().await;
        let e3 = mk_event(store, b, o1, Delete, Success).await.id;
        let e4 = mk_event(store, a, o1, Delete, Failure).await.id;

        let check = async |filter: AgentEventFilter, expected: Vec<AgentEventId>| {
            assert_eq!(
                all_events(store, filter.clone()).await,
                expected,
                "{filter:?}"
            );
        };
        let f = AgentEventFilter::default;
        check(f(), vec![e1, e2, e3, e4]).await;
        check(
            AgentEventFilter {
                agent_id: Some(a),
                ..f()
            },
            vec![e1, e2, e4],
        )
        .await;
        check(
            AgentEventFilter {
                stack_id: Some(s1),
                ..f()
            },
            vec![e1, e3, e4],
        )
        .await;
        check(
            AgentEventFilter {
                deployment_object_id: Some(o2),
                ..f()
            },
            vec![e2],
        )
        .await;
        check(
            AgentEventFilter {
                event_type: Some(Delete),
                ..f()
            },
            vec![e3, e4],
        )
        .await;
        check(
            AgentEventFilter {
                status: Some(Failure),
                ..f()
            },
            vec![e2, e4],
        )
        .await;
        check(
            AgentEventFilter {
                since: Some(mid),
                ..f()
            },
            vec![e3, e4],
        )
        .await;
        check(
            AgentEventFilter {
                until: Some(mid),
                ..f()
            },
            vec![e1, e2],
        )
        .await;
        check(
            AgentEventFilter {
                agent_id: Some(a),
                status: Some(Failure),
                since: Some(mid),
                ..f()
            },
            vec![e4],
        )
        .await;
        check(
            AgentEventFilter {
                agent_id: Some(b),
                event_type: Some(Apply),
                ..f()
            },
            vec![],
        )
        .await;
    }

    /// Many agents reporting at once (a store may commit their reports together): each
    /// report gets its own answer. Reports on a missing object or from a deleted agent
    /// fail alone, a report sent twice at once is stored once, and every stored event
    /// has one audit record.
    pub async fn concurrent_events_are_answered_one_by_one(store: &dyn Store) {
        let stack = mk_stack(store, "s").await;
        let object = mk_object(store, stack.id, "1").await;
        let mut agents = Vec::new();
        for i in 0..8 {
            agents.push(mk_agent(store, &format!("a{i}")).await.id);
        }
        let gone = mk_agent(store, "gone").await.id;
        store
            .delete_agent(&ADMIN, gone)
            .await
            .expect("delete agent");
        let audit_before = all_audit(store).await.len();

        let twice = new_event(agents[0], object.id, EventType::Apply, EventStatus::Success);
        let mut reports = vec![twice.clone(), twice.clone()];
        for &agent in &agents {
            reports.push(new_event(
                agent,
                object.id,
                EventType::Apply,
                EventStatus::Success,
            ));
            let missing = DeploymentObjectId::new();
            reports.push(new_event(
                agent,
                missing,
                EventType::Apply,
                EventStatus::Failure,
            ));
        }
        reports.push(new_event(
            gone,
            object.id,
            EventType::Apply,
            EventStatus::Success,
        ));
        let answers = futures::future::join_all(reports.iter().map(|new| async move {
            let answer = store
                .record_agent_event(&Actor::Agent(new.agent_id), new.clone())
                .await;
            (new, answer)
        }))
        .await;

        let mut stored = std::collections::BTreeSet::new();
        for (new, answer) in answers {
            if new.agent_id == gone {
                expect_not_found(answer, "agent");
            } else if new.deployment_object_id != object.id {
                expect_not_found(answer, "deployment object");
            } else {
                let event = answer.expect("a good report is stored");
                assert_eq!((event.id, event.agent_id), (new.id, new.agent_id));
                assert_eq!(event.stack_id, stack.id);
                stored.insert(event.id);
            }
        }
        assert_eq!(stored.len(), agents.len() + 1, "the twice-sent report once");
        let listed = all_events(store, AgentEventFilter::default()).await;
        assert_eq!(
            listed
                .into_iter()
                .collect::<std::collections::BTreeSet<_>>(),
            stored
        );
        assert_eq!(all_audit(store).await.len(), audit_before + stored.len());
    }
);
