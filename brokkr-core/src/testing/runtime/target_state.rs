//! Heartbeats, target state and its long poll ([`ControlPlane::wait_for_change`]).

use std::time::Duration;

use tokio::time::Instant;

use crate::runtime::{ControlPlane, Error, Poll};
use crate::testing::conformance::{config_map_yaml, mk_agent, mk_generator, mk_stack};
use crate::{Actor, AgentStatus, AgentUpdate, Capabilities, NewDeploymentObject};

fn soon(millis: u64) -> Instant {
    Instant::now() + Duration::from_millis(millis)
}

/// Appends a ConfigMap to `stack` and assigns the stack to `agent`, through the store
/// as another replica would: only the change feed tells this control plane.
async fn ship(cp: &ControlPlane, agent: crate::AgentId, stack: crate::StackId, version: &str) {
    let store = cp.store();
    let object = NewDeploymentObject::from_yaml(stack, config_map_yaml("cm", version))
        .expect("valid fixture YAML");
    store
        .append_deployment_object(&Actor::Admin, object)
        .await
        .expect("append");
    let _ = store.assign_stack(&Actor::Admin, agent, stack).await;
}

crate::runtime_cases! {
    async fn a_long_poll_wakes_when_the_target_state_changes(cp: ControlPlane) {
        let agent = mk_agent(cp.store().as_ref(), "a").await;
        let stack = mk_stack(cp.store().as_ref(), "s").await;
        let me = Actor::Agent(agent.id);
        let held = cp.target_state(&me, agent.id).await.expect("own state");
        assert!(held.state.entries.is_empty());

        let waiting = {
            let cp = cp.clone();
            let etag = held.etag.clone();
            tokio::spawn(async move {
                let started = Instant::now();
                let poll = cp.wait_for_change(&me, agent.id, &etag, soon(20_000)).await;
                (poll, started.elapsed())
            })
        };
        tokio::time::sleep(Duration::from_millis(100)).await;
        ship(&cp, agent.id, stack.id, "1").await;
        let (poll, waited) = waiting.await.expect("the wait task ran");
        let Ok(Poll::Changed(current)) = poll else {
            panic!("expected a change, got {poll:?}");
        };
        assert_ne!(current.etag, held.etag);
        assert_eq!(current.state.entries.len(), 1);
        assert!(waited < Duration::from_secs(10), "woken late: {waited:?}");
    }

    async fn a_wait_answers_at_once_when_the_state_already_differs(cp: ControlPlane) {
        let agent = mk_agent(cp.store().as_ref(), "a").await;
        let me = Actor::Agent(agent.id);
        let started = Instant::now();
        let poll = cp
            .wait_for_change(&me, agent.id, "an-old-etag", soon(20_000))
            .await
            .expect("own state");
        assert!(matches!(poll, Poll::Changed(_)));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    async fn a_wait_without_change_answers_unchanged_at_the_deadline(cp: ControlPlane) {
        let agent = mk_agent(cp.store().as_ref(), "a").await;
        let me = Actor::Agent(agent.id);
        let held = cp.target_state(&me, agent.id).await.unwrap();
        let started = Instant::now();
        let poll = cp.wait_for_change(&me, agent.id, &held.etag, soon(300)).await.unwrap();
        let Poll::Unchanged(current) = poll else {
            panic!("nothing changed, yet {poll:?}");
        };
        assert_eq!(current.etag, held.etag);
        assert!(started.elapsed() >= Duration::from_millis(250));
    }

    async fn draining_answers_waits_at_once(cp: ControlPlane) {
        let agent = mk_agent(cp.store().as_ref(), "a").await;
        let me = Actor::Agent(agent.id);
        let held = cp.target_state(&me, agent.id).await.unwrap();
        let waiting = {
            let cp = cp.clone();
            let etag = held.etag.clone();
            tokio::spawn(async move { cp.wait_for_change(&me, agent.id, &etag, soon(30_000)).await })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        let started = Instant::now();
        cp.begin_draining();
        let poll = tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("draining answers the wait")
            .unwrap();
        assert!(matches!(poll, Ok(Poll::Unchanged(_))));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    async fn only_the_agent_or_admin_reads_a_target_state(cp: ControlPlane) {
        let agent = mk_agent(cp.store().as_ref(), "a").await;
        let other = mk_agent(cp.store().as_ref(), "b").await;
        let generator = mk_generator(cp.store().as_ref(), "g").await;
        for allowed in [Actor::Agent(agent.id), Actor::Admin, Actor::System] {
            cp.target_state(&allowed, agent.id).await.expect("allowed");
        }
        for refused in [Actor::Agent(other.id), Actor::Generator(generator.id)] {
            let err = cp.target_state(&refused, agent.id).await.unwrap_err();
            assert!(matches!(err, Error::Forbidden(_)), "{refused:?}: {err:?}");
            let err = cp
                .wait_for_change(&refused, agent.id, "x", soon(100))
                .await
                .unwrap_err();
            assert!(matches!(err, Error::Forbidden(_)), "{refused:?}: {err:?}");
        }
        let missing = crate::AgentId::new();
        let err = cp.target_state(&Actor::Admin, missing).await.unwrap_err();
        assert!(matches!(err, Error::Store(crate::store::Error::NotFound { .. })), "{err:?}");
    }

    async fn a_disabled_agent_may_not_fetch_but_admin_may(cp: ControlPlane) {
        let agent = mk_agent(cp.store().as_ref(), "a").await;
        cp.store()
            .update_agent(
                &Actor::Admin,
                agent.id,
                AgentUpdate {
                    status: Some(AgentStatus::Inactive),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        // The store's notification drops the cached entry; give the feed a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            match cp.target_state(&Actor::Agent(agent.id), agent.id).await {
                Err(Error::AgentInactive) => break,
                other if Instant::now() > deadline => panic!("still served: {other:?}"),
                _ => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
        cp.target_state(&Actor::Admin, agent.id).await.expect("admin reads it");
    }

    async fn heartbeats_are_coalesced_and_written_in_one_batch(cp: ControlPlane) {
        let agents = [
            mk_agent(cp.store().as_ref(), "a").await,
            mk_agent(cp.store().as_ref(), "b").await,
        ];
        for agent in &agents {
            for version in ["v1.32.0", "v1.33.1"] {
                let capabilities = Capabilities {
                    kubernetes_version: Some(version.into()),
                    ..Default::default()
                };
                cp.record_heartbeat(&Actor::Agent(agent.id), agent.id, Some(capabilities))
                    .expect("own beat");
            }
            // A later beat without capabilities keeps the reported ones.
            cp.record_heartbeat(&Actor::Agent(agent.id), agent.id, None).unwrap();
        }
        // The flusher runs every 20 ms in this suite; wait until both are written.
        let deadline = Instant::now() + Duration::from_secs(5);
        for agent in &agents {
            loop {
                let stored = cp.store().get_agent(agent.id).await.unwrap();
                if stored.last_heartbeat.is_some() {
                    assert_eq!(
                        stored.capabilities.kubernetes_version.as_deref(),
                        Some("v1.33.1")
                    );
                    break;
                }
                assert!(Instant::now() < deadline, "heartbeat of {} never written", agent.name);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }

    async fn only_the_agent_itself_beats(cp: ControlPlane) {
        let agent = mk_agent(cp.store().as_ref(), "a").await;
        let other = mk_agent(cp.store().as_ref(), "b").await;
        for refused in [Actor::Admin, Actor::System, Actor::Agent(other.id)] {
            let err = cp.record_heartbeat(&refused, agent.id, None).unwrap_err();
            assert!(matches!(err, Error::Forbidden(_)), "{refused:?}: {err:?}");
        }
        let too_many = Capabilities {
            features: (0..=crate::runtime::MAX_FEATURES).map(|i| format!("f{i}")).collect(),
            ..Default::default()
        };
        let err = cp
            .record_heartbeat(&Actor::Agent(agent.id), agent.id, Some(too_many))
            .unwrap_err();
        assert!(matches!(err, Error::Invalid { .. }), "{err:?}");
    }
}
