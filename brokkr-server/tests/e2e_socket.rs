//! End to end over a real loopback socket, through the serve code path the binary
//! runs: an admin creates a stack, an agent (receiving its key once) and a deployment
//! object with `reqwest`; the agent fetches its target state with its own key; the
//! probes answer. On SQLite, then on PostgreSQL.

mod common;

use common::{Backend, Mode, Req, TestApp, test_config};
use serde_json::json;

async fn walk_through(backend: Backend) {
    let Some(app) = TestApp::start_with(backend, Mode::Socket, test_config()).await else {
        return;
    };
    let admin = app.world.admin_key.clone();

    let stack = app
        .admin_post(
            "/api/v1/stacks",
            &json!({"name": "e2e", "description": "over the socket"}),
        )
        .await;
    stack.expect(201);
    let stack = stack.json();
    assert_eq!(stack["name"], "e2e");
    let stack_id = stack["id"].as_str().expect("stack id").to_owned();

    let created = app
        .admin_post(
            "/api/v1/agents",
            &json!({"name": "e2e-agent", "cluster_name": "kind-e2e"}),
        )
        .await;
    created.expect(201);
    let created = created.json();
    let agent_id = created["agent"]["id"]
        .as_str()
        .expect("agent id")
        .to_owned();
    let agent_key = created["initial_pak"]
        .as_str()
        .expect("initial_pak, shown once")
        .to_owned();
    assert!(agent_key.starts_with("brokkr_"));
    let again = app.admin_get(&format!("/api/v1/agents/{agent_id}")).await;
    again.expect(200);
    assert!(
        !again.text.contains(&agent_key),
        "the key is shown only once"
    );

    let object = app
        .admin_post(
            &format!("/api/v1/stacks/{stack_id}/deployment-objects"),
            &json!({"yaml_content": common::CONFIGMAP_YAML}),
        )
        .await;
    object.expect(201);
    let object = object.json();
    assert_eq!(object["stack_id"], stack_id.as_str());
    assert_eq!(object["is_deletion_marker"], false);
    assert_eq!(object["yaml_checksum"].as_str().map(str::len), Some(64));
    let object_id = object["id"].as_str().expect("object id").to_owned();

    app.admin_post(
        &format!("/api/v1/agents/{agent_id}/targets"),
        &json!({"stack_id": stack_id}),
    )
    .await
    .expect(201);

    let target_state = app
        .get(
            &format!("/api/v1/agents/{agent_id}/target-state"),
            &agent_key,
        )
        .await;
    target_state.expect(200);
    assert!(
        target_state.text.contains(&object_id),
        "the target state carries the object: {}",
        target_state.text
    );
    let etag = target_state.header("etag").expect("etag").to_owned();
    app.send(
        Req::new("GET", format!("/api/v1/agents/{agent_id}/target-state"))
            .key(&agent_key)
            .header("if-none-match", &etag),
    )
    .await
    .expect(304);

    // The agent may not read another agent's target state, nor list stacks.
    app.get(
        &format!("/api/v1/agents/{}/target-state", app.world.agent),
        &agent_key,
    )
    .await
    .expect(403);
    app.get("/api/v1/stacks", &agent_key).await.expect(403);

    let beat = app
        .post(
            &format!("/api/v1/agents/{agent_id}/heartbeat"),
            &agent_key,
            &json!({}),
        )
        .await;
    assert!(beat.status == 204 || beat.status == 200, "{}", beat.text);

    app.send(Req::new("GET", "/healthz")).await.expect(200);
    app.send(Req::new("GET", "/readyz")).await.expect(200);
    let metrics = app.send(Req::new("GET", "/metrics")).await;
    metrics.expect(200);
    assert!(
        metrics
            .header("content-type")
            .is_some_and(|c| c.starts_with("text/plain")),
        "Prometheus text format: {:?}",
        metrics.header("content-type")
    );
    assert!(
        metrics.text.contains("# TYPE"),
        "metrics in Prometheus text format:\n{}",
        metrics.text
    );
    assert!(
        metrics.text.contains("/api/v1/agents/:id/target-state")
            || metrics.text.contains("/api/v1/agents/{id}/target-state"),
        "requests are counted by route template, not by concrete path:\n{}",
        metrics.text
    );
    assert!(
        !metrics.text.contains(&agent_id),
        "no concrete ids in metric labels"
    );
    assert!(!metrics.text.contains(&admin), "no keys in metrics");

    let doc = app.send(Req::new("GET", "/openapi.json")).await;
    doc.expect(200);
    app.teardown().await;
}

#[tokio::test]
async fn over_a_socket_on_sqlite() {
    walk_through(Backend::Sqlite).await;
}

#[tokio::test]
async fn over_a_socket_on_postgres() {
    walk_through(Backend::Postgres).await;
}

/// SIGINT/SIGTERM (here: the shutdown future) lets in-flight requests finish: a long
/// poll running when shutdown starts still gets its answer, and new connections are
/// refused afterwards.
#[tokio::test]
async fn graceful_shutdown_lets_a_long_poll_finish() {
    let (store, guard) = common::store(Backend::Sqlite).await.expect("sqlite");
    let world = common::seed(store.as_ref()).await;
    let replica = common::Replica::start(store, test_config(), Mode::Socket).await;
    let common::Transport::Socket { base, .. } = &replica.transport else {
        unreachable!("a socket replica");
    };
    let base = base.clone();
    let path = format!("/api/v1/agents/{}/target-state", world.agent);
    let first = replica
        .send(Req::new("GET", path.clone()).key(&world.agent_key))
        .await;
    first.expect(200);
    let etag = first.header("etag").expect("etag").to_owned();

    let poll = reqwest::Client::new()
        // Longer than the 30 s shutdown grace: only draining can answer it in time.
        .get(format!("{base}{path}?wait=60"))
        .header("authorization", format!("Bearer {}", world.agent_key))
        .header("if-none-match", &etag)
        .send();
    let stop = async {
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        replica.stop().await;
    };
    let started = std::time::Instant::now();
    let (answer, ()) = tokio::time::timeout(std::time::Duration::from_secs(15), async {
        tokio::join!(poll, stop)
    })
    .await
    .expect("shutdown is bounded");
    let answer = answer.expect("the in-flight long poll gets its answer");
    assert_eq!(answer.status(), 304);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "the long poll was answered when shutdown began, not when the grace ran out"
    );

    let refused = reqwest::Client::new()
        .get(format!("{base}/healthz"))
        .timeout(std::time::Duration::from_secs(2))
        .send()
        .await;
    assert!(refused.is_err(), "the server still answers after shutdown");
    common::teardown_guard(guard).await;
}

/// A long poll answered after its request was let go (`brokkr_server::deferred`)
/// is still counted under its route, with the status it was finally answered with.
#[tokio::test]
async fn a_deferred_long_poll_is_counted_under_its_route() {
    let Some(app) = TestApp::start_with(Backend::Sqlite, Mode::Socket, test_config()).await else {
        return;
    };
    let path = format!("/api/v1/agents/{}/target-state", app.world.agent);
    let first = app.get(&path, &app.world.agent_key).await;
    first.expect(200);
    let etag = first.header("etag").expect("etag").to_owned();
    let poll = Req::new("GET", format!("{path}?wait=1"))
        .key(&app.world.agent_key)
        .header("if-none-match", &etag);
    app.send(poll).await.expect(304);

    let metrics = app.send(Req::new("GET", "/metrics")).await;
    let counted = "brokkr_http_requests_total{method=\"GET\",route=\"/api/v1/agents/{id}/target-state\",status=\"304\"} 1";
    assert!(
        metrics.text.contains(counted),
        "expected `{counted}` in:\n{}",
        metrics.text
    );
    app.teardown().await;
}

/// HTTP/1 connections allow half-closed reads: an agent that closes its sending side
/// after a long poll (as some proxies do) still gets its answer. This is also what
/// keeps hyper from reading, and buffering, while a long poll waits.
#[tokio::test]
async fn a_long_poll_sent_on_a_half_closed_connection_is_answered() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let Some(app) = TestApp::start_with(Backend::Sqlite, Mode::Socket, test_config()).await else {
        return;
    };
    let common::Transport::Socket { base, .. } = &app.replica.transport else {
        unreachable!("a socket replica");
    };
    let addr = base.trim_start_matches("http://").to_owned();
    let path = format!("/api/v1/agents/{}/target-state", app.world.agent);
    let first = app.get(&path, &app.world.agent_key).await;
    let etag = first.header("etag").expect("etag").to_owned();

    let mut stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let request = format!(
        "GET {path}?wait=1 HTTP/1.1\r\nhost: {addr}\r\nauthorization: Bearer {}\r\nif-none-match: {etag}\r\nconnection: close\r\n\r\n",
        app.world.agent_key
    );
    stream.write_all(request.as_bytes()).await.expect("send");
    stream.shutdown().await.expect("close the sending side");
    let mut answer = String::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_string(&mut answer),
    )
    .await
    .expect("answered in time")
    .expect("read the answer");
    assert!(
        answer.starts_with("HTTP/1.1 304"),
        "expected a 304 after the wait, got:\n{answer}"
    );
    app.teardown().await;
}
