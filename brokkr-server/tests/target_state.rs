//! Target-state fetches: ETags and 304s, long polls woken by writes (also through
//! another replica on the same PostgreSQL), and liveness from heartbeats.

mod common;

use std::time::{Duration, Instant};

use brokkr_core::{Actor, NewDeploymentObject, Store};
use common::{Backend, Mode, PgDatabase, Replica, Req, TestApp, pg_store, seed, test_config};
use serde_json::json;

fn target_state_path(app: &TestApp) -> String {
    format!("/api/v1/agents/{}/target-state", app.world.agent)
}

async fn fetch(app: &TestApp, query: &str, etag: Option<&str>) -> common::Resp {
    let mut req =
        Req::new("GET", format!("{}{query}", target_state_path(app))).key(&app.world.agent_key);
    if let Some(etag) = etag {
        req = req.header("if-none-match", etag);
    }
    app.send(req).await
}

/// Appends a deployment object to the world's stack (which the agent targets).
async fn append(store: &dyn Store, stack: brokkr_core::StackId, n: usize) {
    let yaml =
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: v{n}\n  namespace: default\n");
    store
        .append_deployment_object(
            &Actor::Admin,
            NewDeploymentObject::from_yaml(stack, yaml).expect("valid yaml"),
        )
        .await
        .expect("append");
}

/// Polls (bounded) until the state differs from `etag` and contains `expected`;
/// returns the new ETag.
async fn changed_within_a_second(app: &TestApp, etag: &str, expected: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(1);
    loop {
        let resp = fetch(app, "", Some(etag)).await;
        if resp.status == 200 {
            assert!(resp.text.contains(expected), "{expected} in {}", resp.text);
            let new = resp.header("etag").expect("etag").to_owned();
            assert_ne!(new, etag);
            return new;
        }
        resp.expect(304);
        assert!(
            Instant::now() < deadline,
            "the change was not visible within 1 s"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn etag_and_304(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let first = fetch(&app, "", None).await;
    first.expect(200);
    let etag = first.header("etag").expect("an ETag header").to_owned();
    let body = first.json();
    assert!(
        first
            .text
            .contains(&app.world.deployment_object.to_string()),
        "the target state carries the stack's deployment object: {body}"
    );

    let again = fetch(&app, "", Some(&etag)).await;
    again.expect(304);
    assert!(again.text.is_empty(), "a 304 has no body");
    assert_eq!(again.header("etag"), Some(etag.as_str()));

    // A stale ETag gets the new state once the change notification has reached the
    // cache: after a write through the API and after one straight into the store
    // (another process or replica). The cache is invalidated by the change feed, so
    // this is bounded staleness (checked: under 1 s), not read-your-writes.
    let object = app
        .admin_post(
            &format!("/api/v1/stacks/{}/deployment-objects", app.world.stack),
            &json!({"yaml_content": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: v2\n  namespace: default\n"}),
        )
        .await;
    object.expect(201);
    let object_id = object.json()["id"].as_str().expect("id").to_owned();
    let new_etag = changed_within_a_second(&app, &etag, &object_id).await;

    append(app.store(), app.world.stack, 3).await;
    changed_within_a_second(&app, &new_etag, "name: v3").await;
    app.teardown().await;
}

#[tokio::test]
async fn etag_and_304_memory() {
    etag_and_304(Backend::Memory).await;
}

#[tokio::test]
async fn etag_and_304_sqlite() {
    etag_and_304(Backend::Sqlite).await;
}

#[tokio::test]
async fn etag_and_304_postgres() {
    etag_and_304(Backend::Postgres).await;
}

async fn long_poll_wakes_on_append(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let etag = fetch(&app, "", None)
        .await
        .header("etag")
        .expect("etag")
        .to_owned();
    let store = app.state.control_plane.store().clone();
    let stack = app.world.stack;
    let writer = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        append(store.as_ref(), stack, 3).await;
    });
    let started = Instant::now();
    let resp = tokio::time::timeout(Duration::from_secs(10), fetch(&app, "?wait=2", Some(&etag)))
        .await
        .expect("the long poll ends");
    let took = started.elapsed();
    writer.await.expect("writer");
    resp.expect(200);
    assert_ne!(resp.header("etag"), Some(etag.as_str()));
    assert!(
        took < Duration::from_millis(1500),
        "{backend:?}: woke after {took:?}, not promptly after the append at ~300 ms"
    );
    app.teardown().await;
}

#[tokio::test]
async fn long_poll_wakes_on_append_memory() {
    long_poll_wakes_on_append(Backend::Memory).await;
}

#[tokio::test]
async fn long_poll_wakes_on_append_sqlite() {
    long_poll_wakes_on_append(Backend::Sqlite).await;
}

#[tokio::test]
async fn long_poll_wakes_on_append_postgres() {
    long_poll_wakes_on_append(Backend::Postgres).await;
}

#[tokio::test]
async fn long_poll_times_out_with_304() {
    let app = TestApp::start(Backend::Sqlite).await.expect("sqlite");
    let etag = fetch(&app, "", None)
        .await
        .header("etag")
        .expect("etag")
        .to_owned();
    let started = Instant::now();
    let resp = tokio::time::timeout(Duration::from_secs(10), fetch(&app, "?wait=1", Some(&etag)))
        .await
        .expect("the long poll ends");
    let took = started.elapsed();
    resp.expect(304);
    assert!(
        took >= Duration::from_millis(900) && took < Duration::from_millis(3000),
        "wait=1 held the request {took:?}"
    );
    // Without If-None-Match there is nothing to wait for: an immediate 200.
    let started = Instant::now();
    fetch(&app, "?wait=5", None).await.expect(200);
    assert!(started.elapsed() < Duration::from_secs(2));
    app.teardown().await;
}

/// Two server replicas (two AppStates over two SqlStores) on one PostgreSQL database:
/// a long poll on replica B wakes when a deployment object is appended through
/// replica A's API.
#[tokio::test]
async fn a_write_on_one_replica_wakes_a_long_poll_on_another() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    let store_a = std::sync::Arc::new(pg_store(&db.url).await);
    let world = seed(store_a.as_ref()).await;
    let store_b = std::sync::Arc::new(pg_store(&db.url).await);
    let replica_a = Replica::start(store_a, test_config(), Mode::InProcess).await;
    let replica_b = Replica::start(store_b, test_config(), Mode::InProcess).await;

    let path = format!("/api/v1/agents/{}/target-state", world.agent);
    let first = replica_b
        .send(Req::new("GET", path.clone()).key(&world.agent_key))
        .await;
    first.expect(200);
    let etag = first.header("etag").expect("etag").to_owned();

    let poll = {
        let req = Req::new("GET", format!("{path}?wait=5"))
            .key(&world.agent_key)
            .header("if-none-match", &etag);
        replica_b.send(req)
    };
    let write = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        replica_a
            .send(Req::new("POST", format!("/api/v1/stacks/{}/deployment-objects", world.stack))
                .key(&world.admin_key)
                .json(&json!({"yaml_content": "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-a\n  namespace: default\n"})))
            .await
    };
    let started = Instant::now();
    let (polled, written) =
        tokio::time::timeout(Duration::from_secs(15), async { tokio::join!(poll, write) })
            .await
            .expect("both requests end");
    let took = started.elapsed();
    written.expect(201);
    polled.expect(200);
    assert_ne!(polled.header("etag"), Some(etag.as_str()));
    assert!(
        polled.text.contains("from-a"),
        "replica B serves the object written through A: {}",
        polled.text
    );
    assert!(
        took < Duration::from_secs(3),
        "replica B woke after {took:?}, not promptly after the write"
    );
    replica_a.stop().await;
    replica_b.stop().await;
    common::teardown_guard(common::StoreGuard::Postgres(db)).await;
}

/// The agent's `status`/`liveness` as shown by the API: active right after a beat,
/// stale once the configured bound passes.
fn liveness(agent: &serde_json::Value) -> String {
    agent["liveness"]
        .as_str()
        .or_else(|| agent["status"].as_str())
        .unwrap_or_default()
        .to_owned()
}

async fn heartbeats_make_an_agent_active_then_stale(backend: Backend) {
    let mut config = test_config();
    config.agents.stale_after_secs = 1;
    let Some(app) = TestApp::start_with(backend, Mode::InProcess, config).await else {
        return;
    };
    let agent_path = format!("/api/v1/agents/{}", app.world.agent);
    let before = app.admin_get(&agent_path).await;
    before.expect(200);
    assert_ne!(liveness(&before.json()), "active", "{}", before.text);

    let beat = app
        .post(
            &format!("{agent_path}/heartbeat"),
            &app.world.agent_key.clone(),
            &json!({"capabilities": {"kubernetes_version": "v1.33.2", "node_count": 3}}),
        )
        .await;
    assert!(
        beat.status == 204 || beat.status == 200,
        "heartbeat: {} {}",
        beat.status,
        beat.text
    );
    // Active at once, before any batch flush.
    let now = app.admin_get(&agent_path).await.json();
    assert_eq!(liveness(&now), "active", "{now}");
    assert!(now["last_heartbeat"].is_string(), "{now}");

    // Stale after the bound (1 s), bounded wait.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        tokio::time::sleep(Duration::from_millis(250)).await;
        let agent = app.admin_get(&agent_path).await.json();
        if liveness(&agent) == "stale" {
            assert_eq!(
                agent["capabilities"]["kubernetes_version"], "v1.33.2",
                "capabilities were recorded: {agent}"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still not stale after 5 s: {agent}"
        );
    }
    app.teardown().await;
}

#[tokio::test]
async fn heartbeat_liveness_memory() {
    heartbeats_make_an_agent_active_then_stale(Backend::Memory).await;
}

#[tokio::test]
async fn heartbeat_liveness_sqlite() {
    heartbeats_make_an_agent_active_then_stale(Backend::Sqlite).await;
}

#[tokio::test]
async fn heartbeat_liveness_postgres() {
    heartbeats_make_an_agent_active_then_stale(Backend::Postgres).await;
}
