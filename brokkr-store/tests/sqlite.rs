//! SQLite specifics: concurrent writers never see "database is locked", and an
//! in-memory database works.

mod common;

use std::sync::Arc;

use brokkr_core::testing::conformance::{config_map_yaml, mk_agent, mk_stack};
use brokkr_core::{Actor, NewDeploymentObject, NewStack, Store, TargetAction};
use brokkr_store::{Backend, SqlStore, StoreConfig};

const WRITERS: usize = 8;
const WRITES_PER_WRITER: usize = 25;

/// Eight tasks on two store instances (as two processes would) write to one file at
/// once; every write succeeds and sequences stay unique.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_writers_never_fail() {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = common::sqlite_url(&dir);
    let stores = [
        Arc::new(SqlStore::connect(&url).await.expect("first store")),
        Arc::new(SqlStore::connect(&url).await.expect("second store")),
    ];
    let mut tasks = Vec::new();
    for writer in 0..WRITERS {
        let store = Arc::clone(&stores[writer % 2]);
        tasks.push(tokio::spawn(async move {
            let stack = store
                .create_stack(
                    &Actor::Admin,
                    NewStack {
                        name: format!("writer-{writer}"),
                        ..Default::default()
                    },
                )
                .await
                .expect("create stack");
            let mut sequences = Vec::new();
            for i in 0..WRITES_PER_WRITER {
                let yaml = config_map_yaml("cm", &i.to_string());
                let new = NewDeploymentObject::from_yaml(stack.id, yaml).expect("valid yaml");
                let object = store
                    .append_deployment_object(&Actor::Admin, new)
                    .await
                    .expect("append never fails");
                sequences.push(object.sequence);
                store
                    .record_heartbeats(&[])
                    .await
                    .expect("an empty heartbeat batch");
            }
            sequences
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        let sequences = task.await.expect("writer task");
        assert!(sequences.windows(2).all(|w| w[0] < w[1]), "{sequences:?}");
        all.extend(sequences);
    }
    all.sort_unstable();
    all.dedup();
    assert_eq!(
        all.len(),
        WRITERS * WRITES_PER_WRITER,
        "sequences are unique"
    );
}

#[tokio::test]
async fn in_memory_database_works() {
    let store = SqlStore::connect("sqlite::memory:")
        .await
        .expect("memory store");
    assert_eq!(store.backend(), Backend::Sqlite);
    store.ping().await.expect("ping");
    let agent = mk_agent(&store, "a").await;
    let stack = mk_stack(&store, "s").await;
    store
        .assign_stack(&Actor::Admin, agent.id, stack.id)
        .await
        .expect("assign");
    let mut watch = store.watch_target_state(agent.id);
    let object = store
        .append_deployment_object(
            &Actor::Admin,
            NewDeploymentObject::from_yaml(stack.id, config_map_yaml("cm", "1")).expect("yaml"),
        )
        .await
        .expect("append");
    tokio::time::timeout(std::time::Duration::from_secs(2), watch.changed())
        .await
        .expect("the append wakes the watch");
    // Reads and writes see the same database.
    let state = store.target_state(agent.id).await.expect("target state");
    assert_eq!(state.entries.len(), 1);
    assert_eq!(state.entries[0].deployment_object, object);
    assert_eq!(state.entries[0].action, TargetAction::Apply);

    // Concurrent use of the single connection queues rather than fails.
    let store = Arc::new(store);
    let tasks: Vec<_> = (0..8)
        .map(|i| {
            let store = Arc::clone(&store);
            tokio::spawn(async move { mk_stack(store.as_ref(), &format!("m-{i}")).await })
        })
        .collect();
    for task in tasks {
        task.await.expect("task");
    }
}

#[tokio::test]
async fn default_config_is_a_sqlite_file_with_migrations() {
    let config = StoreConfig::default();
    assert!(config.url.starts_with("sqlite://brokkr.db"));
    assert!(config.run_migrations);
    assert_eq!(
        config.sqlite_busy_timeout,
        std::time::Duration::from_secs(5)
    );
}

#[tokio::test]
async fn without_migrations_the_schema_is_left_alone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqlStore::connect_with(StoreConfig {
        url: common::sqlite_url(&dir),
        run_migrations: false,
        ..StoreConfig::default()
    })
    .await
    .expect("connect");
    store.ping().await.expect("the database answers");
    assert!(
        mk_stack_fails(&store).await,
        "no tables exist without migrations"
    );
}

async fn mk_stack_fails(store: &SqlStore) -> bool {
    store
        .create_stack(
            &Actor::Admin,
            NewStack {
                name: "x".into(),
                ..Default::default()
            },
        )
        .await
        .is_err()
}

/// A flush dropped while its write is in flight (the flusher aborted at shutdown)
/// loses no beat: the final flush writes it.
#[tokio::test]
async fn a_heartbeat_flush_dropped_mid_write_loses_no_beat() {
    use brokkr_core::Heartbeat;
    use brokkr_core::runtime::heartbeat::HeartbeatBuffer;

    let dir = tempfile::tempdir().expect("tempdir");
    let store = SqlStore::connect(&common::sqlite_url(&dir))
        .await
        .expect("store");
    let agent = mk_agent(&store, "a").await;
    let buffer = HeartbeatBuffer::default();
    let at = chrono::Utc::now();
    buffer.record(Heartbeat {
        agent_id: agent.id,
        at,
        capabilities: None,
    });
    // Polled once, the write waits for SQLite's worker thread; then it is dropped.
    let finished = tokio::select! {
        biased;
        flushed = buffer.flush(&store) => Some(flushed),
        () = std::future::ready(()) => None,
    };
    assert!(finished.is_none(), "the write finished at its first poll");

    assert_eq!(buffer.flush(&store).await.expect("flush"), 1);
    let stored = store.get_agent(agent.id).await.expect("agent");
    assert_eq!(
        stored.last_heartbeat.map(|t| t.timestamp_micros()),
        Some(at.timestamp_micros())
    );
}
