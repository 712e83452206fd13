//! Agents: registration, changes, deletion, key rotation, the status each shows, and
//! heartbeats as they show in it.

use std::time::Duration;

use tokio::time::Instant;

use super::callers::{Answer, World, assert_no_mismatches, matrix};
use crate::runtime::{
    AgentQuery, AgentRegistration, ControlPlane, DisplayedStatus, Error, Poll, Settings,
};
use crate::testing::conformance::{labels, mk_agent};
use crate::{Actor, AgentId, AgentUpdate, Capabilities, PageRequest, store};

const OK: Answer = Answer::Ok;
const NO: Answer = Answer::Forbidden;

fn registration(name: &str) -> AgentRegistration {
    AgentRegistration {
        name: name.into(),
        cluster_name: "cluster-1".into(),
        ..Default::default()
    }
}

fn disable() -> AgentUpdate {
    AgentUpdate {
        status: Some(crate::AgentStatus::Inactive),
        ..Default::default()
    }
}

fn is_not_found<T: std::fmt::Debug>(result: &crate::runtime::Result<T>) -> bool {
    matches!(result, Err(Error::Store(store::Error::NotFound { .. })))
}

crate::runtime_cases! {
    async fn agent_operations_answer_every_caller_as_specified(cp: ControlPlane) {
        let w = World::new(&cp).await;
        let page = &PageRequest::first(10);
        let mut bad = Vec::new();
        // Operations that change something act on a fresh agent per cell.
        let fresh = |op: &'static str| {
            let cp = cp.clone();
            move |who: super::callers::Who| {
                let cp = cp.clone();
                async move {
                    let name = format!("{op}-{who:?}");
                    (mk_agent(cp.store().as_ref(), &name).await.id, cp)
                }
            }
        };
        bad.extend(matrix("create_agent", [OK, OK, NO, NO, NO, NO], |who| {
            let cp = cp.clone();
            async move {
                let caller = w.actor(who, w.agent);
                cp.create_agent(&caller, registration(&format!("new-{who:?}"))).await
            }
        }).await);
        bad.extend(matrix("get_agent", [OK, OK, OK, NO, NO, NO], |who| {
            let cp = cp.clone();
            async move { cp.get_agent(&w.actor(who, w.agent), w.agent).await }
        }).await);
        bad.extend(matrix("list_agents", [OK, OK, NO, NO, NO, NO], |who| {
            let cp = cp.clone();
            async move { cp.list_agents(&w.actor(who, w.agent), &AgentQuery::default(), page).await }
        }).await);
        bad.extend(matrix("list_agent_targets", [OK, OK, OK, NO, NO, NO], |who| {
            let cp = cp.clone();
            async move { cp.list_agent_targets(&w.actor(who, w.agent), w.agent, page).await }
        }).await);
        let subject = fresh("update");
        bad.extend(matrix("update_agent", [OK, OK, NO, NO, NO, NO], |who| {
            let subject = subject(who);
            async move {
                let (agent, cp) = subject.await;
                cp.update_agent(&w.actor(who, agent), agent, disable()).await
            }
        }).await);
        let subject = fresh("delete");
        bad.extend(matrix("delete_agent", [OK, OK, NO, NO, NO, NO], |who| {
            let subject = subject(who);
            async move {
                let (agent, cp) = subject.await;
                cp.delete_agent(&w.actor(who, agent), agent).await
            }
        }).await);
        let subject = fresh("rotate");
        bad.extend(matrix("rotate_agent_key", [OK, OK, OK, NO, NO, NO], |who| {
            let subject = subject(who);
            async move {
                let (agent, cp) = subject.await;
                cp.rotate_agent_key(&w.actor(who, agent), agent).await
            }
        }).await);
        assert_no_mismatches(bad);

        // Admin asking about an agent that does not exist learns so; an empty listing
        // would hide a typo.
        let missing = AgentId::new();
        assert!(is_not_found(&cp.get_agent(&Actor::Admin, missing).await));
        assert!(is_not_found(&cp.list_agent_targets(&Actor::Admin, missing, page).await));
        assert!(is_not_found(&cp.update_agent(&Actor::Admin, missing, disable()).await));
        assert!(is_not_found(&cp.rotate_agent_key(&Actor::Admin, missing).await));
    }

    async fn a_registered_key_works_and_rotation_and_deletion_revoke_at_once(cp: ControlPlane) {
        let new = AgentRegistration {
            labels: labels(&[("env", "prod")]),
            ..registration("a")
        };
        let created = cp.create_agent(&Actor::Admin, new).await.expect("admin registers");
        let id = created.agent.agent.id;
        assert_eq!(created.agent.status, DisplayedStatus::Stale, "it never beat");
        assert_eq!(created.agent.agent.labels, labels(&[("env", "prod")]));
        let first = created.key.expose().to_owned();
        assert_eq!(cp.authenticate(&first).await.expect("works at once"), Actor::Agent(id));

        // The agent rotates its own key: the old one, just used and so cached, stops
        // working at once.
        let second = cp.rotate_agent_key(&Actor::Agent(id), id).await.expect("own key");
        assert!(matches!(cp.authenticate(&first).await, Err(Error::Unauthenticated(_))));
        assert_eq!(cp.authenticate(second.expose()).await.unwrap(), Actor::Agent(id));

        cp.delete_agent(&Actor::Admin, id).await.expect("admin deletes");
        assert!(matches!(
            cp.authenticate(second.expose()).await,
            Err(Error::Unauthenticated(_))
        ));
        assert!(is_not_found(&cp.get_agent(&Actor::Admin, id).await));
        assert!(is_not_found(&cp.target_state(&Actor::Admin, id).await));
    }

    async fn disabling_an_agent_takes_effect_at_once(cp: ControlPlane) {
        let agent = mk_agent(cp.store().as_ref(), "a").await.id;
        let me = Actor::Agent(agent);
        // Cached now; the change must not wait for the change feed to drop it.
        cp.target_state(&me, agent).await.expect("own state");
        let view = cp.update_agent(&Actor::Admin, agent, disable()).await.unwrap();
        assert_eq!(view.status, DisplayedStatus::Inactive);
        assert!(matches!(cp.target_state(&me, agent).await, Err(Error::AgentInactive)));
        cp.target_state(&Actor::Admin, agent).await.expect("admin still reads it");

        let enable = AgentUpdate {
            status: Some(crate::AgentStatus::Active),
            ..Default::default()
        };
        cp.update_agent(&Actor::Admin, agent, enable).await.unwrap();
        cp.target_state(&me, agent).await.expect("enabled again at once");
    }

    async fn disabling_an_agent_answers_its_long_poll(cp: ControlPlane) {
        let agent = mk_agent(cp.store().as_ref(), "a").await.id;
        let me = Actor::Agent(agent);
        let held = cp.target_state(&me, agent).await.unwrap();
        let waiting = {
            let cp = cp.clone();
            let etag = held.etag.clone();
            let deadline = Instant::now() + Duration::from_secs(20);
            tokio::spawn(async move { cp.wait_for_change(&me, agent, &etag, deadline).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        cp.update_agent(&Actor::Admin, agent, disable()).await.unwrap();
        let poll = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("the change answers the wait")
            .unwrap();
        assert!(matches!(poll, Err(Error::AgentInactive)), "{poll:?}");
    }

    async fn the_status_filter_selects_what_is_shown(cp: ControlPlane) {
        let store = cp.store().as_ref();
        let beating = mk_agent(store, "beating").await.id;
        let silent = mk_agent(store, "silent").await.id;
        let disabled = mk_agent(store, "disabled").await.id;
        cp.update_agent(&Actor::Admin, disabled, disable()).await.unwrap();
        cp.record_heartbeat(&Actor::Agent(beating), beating, None).unwrap();
        // A disabled agent that beats still shows as disabled: the admin's switch first.
        cp.record_heartbeat(&Actor::Agent(disabled), disabled, None).unwrap();
        let page = PageRequest::first(100);
        for (status, expected) in [
            (DisplayedStatus::Active, beating),
            (DisplayedStatus::Stale, silent),
            (DisplayedStatus::Inactive, disabled),
        ] {
            let query = AgentQuery { status: Some(status), ..Default::default() };
            let listed = cp.list_agents(&Actor::Admin, &query, &page).await.unwrap();
            let ids: Vec<_> = listed.items.iter().map(|v| v.agent.id).collect();
            assert_eq!(ids, vec![expected], "{status:?}");
            assert!(listed.items.iter().all(|v| v.status == status));
        }
        let query = AgentQuery { cluster_name: Some("elsewhere".into()), status: None };
        let listed = cp.list_agents(&Actor::Admin, &query, &page).await.unwrap();
        assert!(listed.items.is_empty());
    }

    async fn heartbeats_show_at_once_and_are_written_in_one_batch(cp: ControlPlane) {
        // A second control plane over the same store with no background tasks, so
        // this case decides when beats are written.
        let manual = ControlPlane::builder(std::sync::Arc::clone(cp.store()))
            .settings(Settings::default())
            .build();
        let store = cp.store().as_ref();
        let a = mk_agent(store, "a").await.id;
        let b = mk_agent(store, "b").await.id;
        let caps = |version: &str| Capabilities {
            kubernetes_version: Some(version.into()),
            ..Default::default()
        };
        assert_eq!(manual.get_agent(&Actor::Admin, a).await.unwrap().status, DisplayedStatus::Stale);

        // A bare beat, one with capabilities, another bare one: capabilities reported
        // in between survive the later beat that carries none.
        manual.record_heartbeat(&Actor::Agent(a), a, None).unwrap();
        manual.record_heartbeat(&Actor::Agent(a), a, Some(caps("v1.33.1"))).unwrap();
        manual.record_heartbeat(&Actor::Agent(a), a, None).unwrap();
        manual.record_heartbeat(&Actor::Agent(b), b, Some(caps("v1.32.0"))).unwrap();

        // Shown as active at once, though nothing is written yet.
        let shown = manual.get_agent(&Actor::Admin, a).await.unwrap();
        assert_eq!(shown.status, DisplayedStatus::Active);
        assert!(shown.agent.last_heartbeat.is_some());
        assert_eq!(store.get_agent(a).await.unwrap().last_heartbeat, None);

        // Four beats of two agents: one batch of two rows.
        assert_eq!(manual.flush_heartbeats().await.unwrap(), 2);
        assert_eq!(manual.flush_heartbeats().await.unwrap(), 0);
        for (agent, version) in [(a, "v1.33.1"), (b, "v1.32.0")] {
            let stored = store.get_agent(agent).await.unwrap();
            assert!(stored.last_heartbeat.is_some());
            assert_eq!(stored.capabilities.kubernetes_version.as_deref(), Some(version));
        }

        // A bare beat after the write keeps what was written.
        manual.record_heartbeat(&Actor::Agent(a), a, None).unwrap();
        assert_eq!(manual.flush_heartbeats().await.unwrap(), 1);
        let stored = store.get_agent(a).await.unwrap();
        assert_eq!(stored.capabilities.kubernetes_version.as_deref(), Some("v1.33.1"));
        assert_eq!(
            cp.get_agent(&Actor::Admin, a).await.unwrap().status,
            DisplayedStatus::Active,
            "another replica sees the written beat"
        );
    }

    async fn a_long_poll_wakes_for_a_change_after_it_began(cp: ControlPlane) {
        let w = World::new(&cp).await;
        let me = Actor::Agent(w.agent);
        let held = cp.target_state(&me, w.agent).await.unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        let waiting = {
            let cp = cp.clone();
            let etag = held.etag.clone();
            tokio::spawn(async move { cp.wait_for_change(&me, w.agent, &etag, deadline).await })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        cp.unassign_target(&Actor::Generator(w.generator), w.agent, w.stack)
            .await
            .expect("the owner unassigns");
        let poll = tokio::time::timeout(Duration::from_secs(10), waiting)
            .await
            .expect("the change answers the wait")
            .unwrap();
        let Ok(Poll::Changed(current)) = poll else {
            panic!("expected a change, got {poll:?}");
        };
        assert_eq!(current.state.entries.len(), 1);
        assert_eq!(current.state.entries[0].action, crate::TargetAction::Remove);

        // Nothing else changes: the deadline answers with the state the agent has.
        let started = Instant::now();
        let poll = cp
            .wait_for_change(&me, w.agent, &current.etag, Instant::now() + Duration::from_millis(300))
            .await
            .unwrap();
        assert!(matches!(&poll, Poll::Unchanged(s) if s.etag == current.etag), "{poll:?}");
        assert!(started.elapsed() >= Duration::from_millis(250));

        // Draining answers at once.
        let waiting = {
            let cp = cp.clone();
            let etag = current.etag.clone();
            tokio::spawn(async move {
                cp.wait_for_change(&me, w.agent, &etag, Instant::now() + Duration::from_secs(30)).await
            })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        cp.begin_draining();
        let poll = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("draining answers the wait")
            .unwrap();
        assert!(matches!(poll, Ok(Poll::Unchanged(_))), "{poll:?}");
    }
}
