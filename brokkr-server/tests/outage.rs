//! The database goes away under a running server and comes back: requests that need it
//! are answered 503 with `Retry-After` within a bounded time, what memory can answer
//! still answers (a cached target state, heartbeats), and everything recovers without
//! a restart. The database is a PostgreSQL cluster of the test's own
//! ([`common::pg_cluster`]), never the shared one.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use brokkr_core::Store;
use brokkr_store::{SqlStore, StoreConfig};
use common::pg_cluster::PgCluster;
use common::{Mode, Replica, Req, Resp, World, seed, test_config};
use serde_json::json;

/// The pool's acquire timeout in this test: the longest a request may wait for a
/// database that is down.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(2);

/// A request that needs the database is answered within this while it is down: the
/// acquire timeout, a key lookup's patience (1 s) and slack for a slow machine.
const UNAVAILABLE_WITHIN: Duration = Duration::from_secs(5);

async fn timed(replica: &Replica, req: Req) -> (Resp, Duration) {
    let started = Instant::now();
    let resp = replica.send(req).await;
    (resp, started.elapsed())
}

fn target_state(world: &World) -> Req {
    Req::new(
        "GET",
        format!("/api/v1/agents/{}/target-state", world.agent),
    )
    .key(&world.agent_key)
}

fn heartbeat(world: &World) -> Req {
    Req::new("POST", format!("/api/v1/agents/{}/heartbeat", world.agent))
        .key(&world.agent_key)
        .json(&json!({}))
}

fn list_stacks(world: &World) -> Req {
    Req::new("GET", "/api/v1/stacks").key(&world.admin_key)
}

#[track_caller]
fn assert_unavailable(resp: &Resp, took: Duration, what: &str) {
    assert_eq!(resp.status, 503, "{what}: {}", resp.text);
    assert_eq!(resp.json()["code"], "unavailable", "{what}");
    assert_eq!(resp.header("retry-after"), Some("5"), "{what}");
    assert!(took < UNAVAILABLE_WITHIN, "{what} took {took:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_answers_503_fast_serves_what_is_cached_and_recovers() {
    let Some(cluster) = PgCluster::init() else {
        return;
    };
    cluster.start();
    let store = SqlStore::connect_with(StoreConfig {
        url: cluster.url.clone(),
        max_connections: 5,
        min_connections: 0,
        acquire_timeout: ACQUIRE_TIMEOUT,
        ..StoreConfig::default()
    })
    .await
    .expect("open the store");
    let store: Arc<dyn Store> = Arc::new(store);
    let world = seed(store.as_ref()).await;
    let mut config = test_config();
    // Cached keys expire during the outage: they must keep authenticating.
    config.auth.key_cache_ttl_secs = 1;
    let replica = Replica::start(Arc::clone(&store), config, Mode::Socket).await;

    // Before: the agent's state is cached, the admin's key too.
    let before = replica.send(target_state(&world)).await;
    before.expect(200);
    let etag = before.header("etag").expect("an etag").to_owned();
    replica.send(list_stacks(&world)).await.expect(200);

    cluster.stop();
    let stopped_at = chrono::Utc::now();
    // Every cached key entry has expired (TTL 1 s).
    tokio::time::sleep(Duration::from_millis(1_200)).await;

    // A request that needs the database: 503 within the bound, twice (the second
    // knows the database is away).
    for attempt in ["first", "second"] {
        let (resp, took) = timed(&replica, list_stacks(&world)).await;
        assert_unavailable(&resp, took, &format!("{attempt} listing during the outage"));
    }

    // What memory holds still answers, at once.
    let (resp, took) = timed(&replica, target_state(&world)).await;
    resp.expect(200);
    assert_eq!(resp.header("etag"), Some(etag.as_str()));
    assert!(
        took < Duration::from_secs(2),
        "cached target state took {took:?}"
    );
    let (resp, _) = timed(
        &replica,
        target_state(&world).header("if-none-match", &etag),
    )
    .await;
    resp.expect(304);
    let (resp, took) = timed(&replica, heartbeat(&world)).await;
    resp.expect(204);
    assert!(took < Duration::from_secs(2), "heartbeat took {took:?}");
    // A long poll waits out its time and answers 304, not an error.
    let (resp, took) = timed(
        &replica,
        Req::new(
            "GET",
            format!("/api/v1/agents/{}/target-state?wait=1", world.agent),
        )
        .key(&world.agent_key)
        .header("if-none-match", &etag),
    )
    .await;
    resp.expect(304);
    assert!(took < Duration::from_secs(3), "long poll took {took:?}");
    // A write is refused, not lost silently or hung.
    let (resp, took) = timed(
        &replica,
        Req::new(
            "POST",
            format!("/api/v1/stacks/{}/deployment-objects", world.stack),
        )
        .key(&world.generator_key)
        .json(&json!({"yaml_content": common::CONFIGMAP_YAML})),
    )
    .await;
    assert_unavailable(&resp, took, "append during the outage");

    cluster.start();

    // Recovery without a restart.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let resp = replica.send(list_stacks(&world)).await;
        if resp.status == 200 {
            break;
        }
        assert_eq!(resp.status, 503, "while recovering: {}", resp.text);
        assert!(Instant::now() < deadline, "not recovered within 20 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The heartbeat received during the outage reaches the database.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let agent = store.get_agent(world.agent).await.expect("read the agent");
        if agent.last_heartbeat.is_some_and(|at| at > stopped_at) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the outage's heartbeat was not written within 10 s of recovery"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Writes work again, and reach the agent's long poll through the change feed.
    let poll = {
        let req = Req::new(
            "GET",
            format!("/api/v1/agents/{}/target-state?wait=20", world.agent),
        )
        .key(&world.agent_key)
        .header("if-none-match", &etag);
        let transport = &replica;
        async move { transport.send(req).await }
    };
    let append = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        replica
            .send(
                Req::new(
                    "POST",
                    format!("/api/v1/stacks/{}/deployment-objects", world.stack),
                )
                .key(&world.generator_key)
                .json(&json!({"yaml_content": common::CONFIGMAP_YAML.replace("demo", "after")})),
            )
            .await
    };
    let (polled, appended) = tokio::join!(poll, append);
    appended.expect(201);
    polled.expect(200);
    assert!(polled.text.contains("after"), "{}", polled.text);

    replica.stop().await;
}
