//! PostgreSQL specifics: change notification across store instances (replicas) and
//! deployment-object sequences in commit order under concurrency.

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use brokkr_core::page::PageRequest;
use brokkr_core::testing::conformance::{config_map_yaml, mk_agent, mk_stack};
use brokkr_core::{Actor, ContentListing, NewDeploymentObject, Store};
use brokkr_store::{Backend, SqlStore};

const WAKE: Duration = Duration::from_secs(2);

fn object(stack: brokkr_core::StackId, version: &str) -> NewDeploymentObject {
    NewDeploymentObject::from_yaml(stack, config_map_yaml("cm", version)).expect("valid yaml")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_through_one_store_wakes_a_watch_on_another() {
    let Some(pg) = common::PgDatabase::create().await else {
        return;
    };
    let writer = SqlStore::connect_with(common::pg_config(&pg.url))
        .await
        .expect("first replica");
    let reader = SqlStore::connect_with(common::pg_config(&pg.url))
        .await
        .expect("second replica");
    assert_eq!(reader.backend(), Backend::Postgres);

    let agent = mk_agent(&writer, "a").await;
    let stack = mk_stack(&writer, "s").await;

    let mut watch = reader.watch_target_state(agent.id);
    writer
        .assign_stack(&Actor::Admin, agent.id, stack.id)
        .await
        .expect("assign");
    tokio::time::timeout(WAKE, watch.changed())
        .await
        .expect("assigning through one replica wakes the other");

    let mut watch = reader.watch_target_state(agent.id);
    let appended = writer
        .append_deployment_object(&Actor::Admin, object(stack.id, "1"))
        .await
        .expect("append");
    tokio::time::timeout(WAKE, watch.changed())
        .await
        .expect("appending through one replica wakes the other");
    let state = reader.target_state(agent.id).await.expect("target state");
    assert_eq!(state.entries[0].deployment_object, appended);

    let mut watch = reader.watch_target_state(agent.id);
    writer
        .delete_stack(&Actor::Admin, stack.id)
        .await
        .expect("delete");
    tokio::time::timeout(WAKE, watch.changed())
        .await
        .expect("deleting through one replica wakes the other");

    drop(writer);
    drop(reader);
    pg.drop_database().await;
}

/// Eight writers append to one stack while a reader keeps listing it: every object a
/// reader sees for the first time has a greater sequence than everything it saw
/// before, i.e. sequences become visible in increasing order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sequences_commit_in_order_under_concurrency() {
    let Some(pg) = common::PgDatabase::create().await else {
        return;
    };
    let store = Arc::new(
        SqlStore::connect_with(brokkr_store::StoreConfig {
            max_connections: 10,
            ..common::pg_config(&pg.url)
        })
        .await
        .expect("store"),
    );
    let stack = mk_stack(store.as_ref(), "s").await;
    const WRITERS: usize = 8;
    const APPENDS: usize = 15;

    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                for i in 0..APPENDS {
                    store
                        .append_deployment_object(
                            &Actor::Admin,
                            object(stack.id, &format!("{w}-{i}")),
                        )
                        .await
                        .expect("append");
                }
            })
        })
        .collect();
    let reader = {
        let store = Arc::clone(&store);
        tokio::spawn(async move {
            let mut seen = BTreeSet::new();
            loop {
                let page = store
                    .list_deployment_objects(
                        stack.id,
                        ContentListing::Omit,
                        &PageRequest::first(1000),
                    )
                    .await
                    .expect("list");
                let now: BTreeSet<i64> = page.items.iter().map(|o| o.sequence).collect();
                let max_seen = seen.last().copied().unwrap_or(0);
                for new in now.difference(&seen) {
                    assert!(
                        *new > max_seen,
                        "sequence {new} became visible after {max_seen}"
                    );
                }
                seen = now;
                if seen.len() == WRITERS * APPENDS {
                    return seen;
                }
                tokio::task::yield_now().await;
            }
        })
    };
    for writer in writers {
        writer.await.expect("writer");
    }
    let seen = reader.await.expect("reader");
    assert_eq!(seen.len(), WRITERS * APPENDS);
    let state_latest = store
        .list_deployment_objects(stack.id, ContentListing::Omit, &PageRequest::first(1000))
        .await
        .expect("list")
        .items
        .last()
        .expect("objects")
        .sequence;
    assert_eq!(Some(&state_latest), seen.last());

    drop(store);
    pg.drop_database().await;
}

/// Dropping the store stops its `LISTEN` task, which releases its connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropping_the_store_ends_its_listener() {
    use sea_orm::{ConnectionTrait, Database};

    let Some(pg) = common::PgDatabase::create().await else {
        return;
    };
    let observer = Database::connect(pg.url.as_str()).await.expect("observer");
    let listening = || async {
        let row = observer
            .query_one_raw(sea_orm::Statement::from_string(
                observer.get_database_backend(),
                format!(
                    "SELECT count(*) AS n FROM pg_stat_activity \
                     WHERE datname = '{}' AND query LIKE 'LISTEN%'",
                    pg.name
                ),
            ))
            .await
            .expect("query pg_stat_activity")
            .expect("one row");
        row.try_get::<i64>("", "n").expect("count")
    };
    let store = SqlStore::connect_with(common::pg_config(&pg.url))
        .await
        .expect("store");
    assert_eq!(listening().await, 1, "the store listens");
    drop(store);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while listening().await > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the listener connection outlived its store"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    observer.close().await.expect("close");
    pg.drop_database().await;
}
