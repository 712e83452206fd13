//! The dashboard over a large fleet: 10,000 agents and 10,000 stacks on SQLite, one
//! stack on every agent. Measures what the dashboard's pages ask of the API and how
//! long the browser takes to show them, and fails when a page takes longer than a
//! person would wait.
//!
//! Ignored (it needs Chromium, and seeding takes a minute):
//! `cargo test --release -p brokkr-server --test dashboard_scale -- --ignored --nocapture`.

#[path = "dashboard/browser.rs"]
mod browser;
mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use brokkr_core::{
    Actor, AgentEventId, EventStatus, EventType, HealthStatus, Heartbeat, KeyOwner, NewAgentEvent,
    NewDeploymentObject, NewHealthReport, NewStack, Pak,
};
use browser::Browser;
use common::{Backend, Mode, Replica, Transport, new_agent, test_config};
use futures::future::join_all;

const AGENTS: usize = 10_000;
const STACKS: usize = 10_000;
const CHUNK: usize = 500;

/// Runs `make(i)` for every `i` in `0..n`, `CHUNK` at a time, and answers the results.
async fn many<T, F, Fut>(n: usize, make: F) -> Vec<T>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut out = Vec::with_capacity(n);
    for start in (0..n).step_by(CHUNK) {
        out.extend(join_all((start..(start + CHUNK).min(n)).map(&make)).await);
    }
    out
}

fn workload(status: HealthStatus) -> brokkr_core::ObjectHealth {
    brokkr_core::ObjectHealth {
        object: brokkr_core::ObjectKey {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: Some("web".into()),
            name: "api".into(),
        },
        status,
        reason: None,
        message: None,
    }
}

async fn timed(client: &reqwest::Client, url: &str, key: &str) -> (Duration, usize) {
    let started = Instant::now();
    let resp = client
        .get(url)
        .bearer_auth(key)
        .send()
        .await
        .expect("request");
    assert!(resp.status().is_success(), "{url}: {}", resp.status());
    let body = resp.bytes().await.expect("body");
    (started.elapsed(), body.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs chromium + chromedriver and a minute of seeding; run by hand"]
async fn a_large_fleet_stays_fast() {
    let (store, guard) = common::store(Backend::Sqlite).await.expect("SQLite");
    let sys = Actor::System;
    let seeding = Instant::now();
    let admin = Pak::generate();
    store
        .rotate_api_key(&sys, KeyOwner::Admin, admin.stored())
        .await
        .expect("admin key");
    let agents = many(AGENTS, |i| {
        let store = Arc::clone(&store);
        async move {
            let key = Pak::generate();
            store
                .create_agent(&sys, new_agent(&format!("agent-{i:05}"), &key))
                .await
                .expect("agent")
                .id
        }
    })
    .await;
    let now = chrono::Utc::now();
    let beats: Vec<Heartbeat> = agents
        .iter()
        .take(AGENTS * 9 / 10)
        .map(|&agent_id| Heartbeat {
            agent_id,
            at: now,
            capabilities: None,
        })
        .collect();
    for chunk in beats.chunks(1000) {
        store.record_heartbeats(chunk).await.expect("heartbeats");
    }
    let stacks = many(STACKS, |i| {
        let store = Arc::clone(&store);
        async move {
            let new = NewStack {
                name: format!("stack-{i:05}"),
                ..Default::default()
            };
            store.create_stack(&sys, new).await.expect("stack").id
        }
    })
    .await;
    let yaml = common::CONFIGMAP_YAML;
    let objects = many(STACKS, |i| {
        let store = Arc::clone(&store);
        let stack = stacks[i];
        async move {
            let new = NewDeploymentObject::from_yaml(stack, yaml).expect("yaml");
            store
                .append_deployment_object(&sys, new)
                .await
                .expect("object")
                .id
        }
    })
    .await;
    // Stack i runs on agent i; stack 0 runs on every agent.
    many(AGENTS, |i| {
        let store = Arc::clone(&store);
        let (agent, stack) = (agents[i], stacks[i]);
        let big = stacks[0];
        async move {
            store
                .assign_stack(&sys, agent, stack)
                .await
                .expect("assign");
            if i != 0 {
                store
                    .assign_stack(&sys, agent, big)
                    .await
                    .expect("assign the big stack");
            }
        }
    })
    .await;
    let statuses = [
        HealthStatus::Healthy,
        HealthStatus::Healthy,
        HealthStatus::Progressing,
        HealthStatus::Degraded,
        HealthStatus::Failed,
    ];
    many(AGENTS, |i| {
        let store = Arc::clone(&store);
        let (agent, own, big) = (agents[i], objects[i], objects[0]);
        let status = statuses[i % statuses.len()];
        async move {
            let actor = Actor::Agent(agent);
            for object in [own, big] {
                let report = NewHealthReport {
                    agent_id: agent,
                    deployment_object_id: object,
                    resources: vec![workload(status)],
                    summary: None,
                };
                store.record_health(&actor, report).await.expect("health");
            }
            let event = NewAgentEvent {
                id: AgentEventId::new(),
                agent_id: agent,
                deployment_object_id: own,
                event_type: EventType::Apply,
                status: if i % 10 == 0 {
                    EventStatus::Failure
                } else {
                    EventStatus::Success
                },
                message: Some("seeded".into()),
            };
            store
                .record_agent_event(&actor, event)
                .await
                .expect("event");
        }
    })
    .await;
    println!(
        "seeded {AGENTS} agents, {STACKS} stacks (stack-00000 on every agent) in {:.1?}",
        seeding.elapsed()
    );

    let replica = Replica::start(Arc::clone(&store), test_config(), Mode::Socket).await;
    let Transport::Socket { base, client } = &replica.transport else {
        unreachable!()
    };
    let key = admin.expose();
    let big = stacks[0];
    for path in [
        "/api/v1/admin/overview".to_owned(),
        "/api/v1/agent-events?status=failure&order=desc&limit=10".to_owned(),
        "/api/v1/stacks?limit=50".to_owned(),
        "/api/v1/agents?limit=50".to_owned(),
        format!("/api/v1/stacks/{big}/targets?limit=50"),
        format!("/api/v1/stacks/{big}/deployment-objects?order=desc&limit=50"),
        format!("/api/v1/agent-events?stack_id={big}&order=desc&limit=200"),
        format!("/api/v1/stacks/{big}/health"),
        "/api/v1/admin/audit-logs?order=desc&limit=50".to_owned(),
    ] {
        let _ = timed(client, &format!("{base}{path}"), key).await;
        let mut times = Vec::new();
        let mut bytes = 0;
        for _ in 0..5 {
            let (took, size) = timed(client, &format!("{base}{path}"), key).await;
            times.push(took);
            bytes = size;
        }
        times.sort();
        println!(
            "GET {path}: median {:.1?}, max {:.1?}, {bytes} bytes",
            times[2], times[4]
        );
    }

    let b = Browser::start(base).await;
    let started = Instant::now();
    b.sign_in(key).await;
    b.wait_text(
        "#fleet .counter-active .count",
        &(AGENTS * 9 / 10).to_string(),
    )
    .await;
    let overview = started.elapsed();
    let started = Instant::now();
    b.open(&format!("#/stacks/{big}")).await;
    b.wait_text("#stack-agents", "agent-00000").await;
    let stack_page = started.elapsed();
    let started = Instant::now();
    b.open("#/agents").await;
    b.wait_text("main table", "agent-00049").await;
    let agents_page = started.elapsed();
    println!(
        "browser: overview {overview:.1?}, the stack on every agent {stack_page:.1?}, agents {agents_page:.1?}"
    );
    assert!(
        overview < Duration::from_secs(5),
        "overview took {overview:?}"
    );
    assert!(
        stack_page < Duration::from_secs(5),
        "stack page took {stack_page:?}"
    );
    assert!(
        agents_page < Duration::from_secs(5),
        "agents page took {agents_page:?}"
    );
    b.close().await;
    replica.stop().await;
    common::teardown_guard(guard).await;
}
