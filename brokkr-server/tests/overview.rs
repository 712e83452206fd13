//! The fleet overview over HTTP (`GET /admin/overview`, the dashboard's first page):
//! admin only; agents counted by status, stacks by their worst health, on every
//! backend.

mod common;

use common::{Backend, TestApp};
use serde_json::{Value, json};

const OVERVIEW: &str = "/api/v1/admin/overview";

fn counts(v: &Value, group: &str) -> Vec<u64> {
    let keys: &[&str] = match group {
        "agents" => &["total", "active", "stale", "inactive"],
        _ => &[
            "total",
            "healthy",
            "progressing",
            "degraded",
            "failed",
            "unreported",
        ],
    };
    keys.iter()
        .map(|k| {
            v[group][k]
                .as_u64()
                .unwrap_or_else(|| panic!("{group}.{k} in {v}"))
        })
        .collect()
}

async fn overview_follows_heartbeats_health_and_switches(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let w = app.world.clone();
    for key in [&w.generator_key, &w.agent_key] {
        app.get(OVERVIEW, key).await.expect(403);
    }
    let before = app.admin_get(OVERVIEW).await.expect(200).json();
    let agents = counts(&before, "agents");
    let stacks = counts(&before, "stacks");
    assert_eq!(agents[0], agents[1] + agents[2] + agents[3], "{before}");
    assert_eq!(agents[1], 0, "nobody beat yet: {before}");
    assert_eq!(stacks[0], stacks[1..].iter().sum::<u64>(), "{before}");

    // The agent beats, reports a failed workload on its stack; another is disabled.
    let beat = format!("/api/v1/agents/{}/heartbeat", w.agent);
    app.post(&beat, &w.agent_key, &json!({})).await.expect(204);
    app.state
        .control_plane
        .flush_heartbeats()
        .await
        .expect("flush");
    let report = json!({"deployment_object_id": w.deployment_object.to_string(), "resources": [{
        "api_version": "apps/v1", "kind": "Deployment", "namespace": "default", "name": "web",
        "status": "failed", "reason": "CrashLoopBackOff"}]});
    let health = format!("/api/v1/agents/{}/health", w.agent);
    app.post(&health, &w.agent_key, &report).await.expect(204);
    let disable = common::Req::new("PATCH", format!("/api/v1/agents/{}", w.other_agent))
        .key(&w.admin_key)
        .json(&json!({"enabled": false}));
    app.send(disable).await.expect(200);

    let after = app.admin_get(OVERVIEW).await.expect(200).json();
    let now_agents = counts(&after, "agents");
    let now_stacks = counts(&after, "stacks");
    assert_eq!(now_agents[0], agents[0], "{after}");
    assert_eq!(now_agents[1], 1, "one agent active: {after}");
    assert_eq!(
        now_agents[2],
        agents[2] - 2,
        "two agents no longer stale: {after}"
    );
    assert_eq!(now_agents[3], agents[3] + 1, "one agent disabled: {after}");
    assert_eq!(now_stacks[0], stacks[0], "{after}");
    assert_eq!(now_stacks[4], stacks[4] + 1, "one stack failed: {after}");
    assert_eq!(
        now_stacks[5],
        stacks[5] - 1,
        "one stack fewer unreported: {after}"
    );
    app.teardown().await;
}

#[tokio::test]
async fn overview_on_memory() {
    overview_follows_heartbeats_health_and_switches(Backend::Memory).await;
}

#[tokio::test]
async fn overview_on_sqlite() {
    overview_follows_heartbeats_health_and_switches(Backend::Sqlite).await;
}

#[tokio::test]
async fn overview_on_postgres() {
    overview_follows_heartbeats_health_and_switches(Backend::Postgres).await;
}
