//! Migration m0006 on a store with history: what agents applied is filled from the
//! events already stored, and the items of objects stored before it are parsed once,
//! when a plan first asks, and written then.

mod common;

use brokkr_core::plan::ItemDigest;
use brokkr_core::testing::conformance::{config_map_yaml, mk_agent, mk_event, mk_stack};
use brokkr_core::{
    Actor, AppliedState, DeploymentObjectId, EventStatus, EventType, NewDeploymentObject, Store,
};
use brokkr_store::{Migrator, MigratorTrait, SqlStore, StoreConfig};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Statement};

/// Objects out of identity order, so the parse must sort them as the append does.
const TWO_OBJECTS: &str = "apiVersion: v1\nkind: Secret\nmetadata: {name: z, namespace: default}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: default}\ndata: {x: '1'}\n";

/// What the store answered before the migration was undone and redone.
struct Before {
    stack: brokkr_core::StackId,
    applied: Vec<AppliedState>,
    ids: Vec<DeploymentObjectId>,
    items: Vec<(DeploymentObjectId, Vec<ItemDigest>)>,
}

/// A stack with two objects and a deletion marker; agent `a` applied the first and
/// failed the second, agent `b` applied the second and then removed the stack.
async fn history(store: &dyn Store) -> Before {
    use EventStatus::{Failure, Success};
    use EventType::{Apply, Delete};
    let a = mk_agent(store, "a").await.id;
    let b = mk_agent(store, "b").await.id;
    let stack = mk_stack(store, "s").await.id;
    let append = async |yaml: String| {
        let new = NewDeploymentObject::from_yaml(stack, yaml).expect("valid YAML");
        store
            .append_deployment_object(&Actor::Admin, new)
            .await
            .expect("append")
            .id
    };
    let v1 = append(TWO_OBJECTS.to_owned()).await;
    let v2 = append(config_map_yaml("app", "2")).await;
    mk_event(store, a, v1, Apply, Success).await;
    mk_event(store, a, v2, Apply, Failure).await;
    mk_event(store, b, v2, Apply, Success).await;
    let marker = store
        .delete_stack(&Actor::Admin, stack)
        .await
        .expect("delete")
        .id;
    mk_event(store, b, marker, Delete, Success).await;

    let applied = store.applied_states(stack).await.expect("applied");
    let expected: Vec<_> = applied
        .iter()
        .map(|s| (s.agent_id, s.deployment_object_id))
        .collect();
    let mut want = vec![(a, Some(v1)), (b, None)];
    want.sort_by_key(|(agent, _)| *agent);
    assert_eq!(expected, want);
    let ids = vec![v1, v2, marker];
    let items = sorted(store.deployment_object_items(&ids).await.expect("items"));
    assert_eq!(items.iter().map(|(_, i)| i.len()).sum::<usize>(), 3);
    Before {
        stack,
        applied,
        ids,
        items,
    }
}

fn sorted(
    mut items: Vec<(DeploymentObjectId, Vec<ItemDigest>)>,
) -> Vec<(DeploymentObjectId, Vec<ItemDigest>)> {
    items.sort_by_key(|(id, _)| *id);
    items
}

async fn objects_without_items(db: &DatabaseConnection) -> i64 {
    let row = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM deployment_objects WHERE items IS NULL",
        ))
        .await
        .expect("count")
        .expect("a row");
    row.try_get("", "n").expect("n")
}

/// Undoes and redoes m0006 under a store with history, then checks both backfills.
async fn check_backfills(config: StoreConfig) {
    let store = SqlStore::connect_with(config.clone())
        .await
        .expect("open the store");
    let before = history(&store).await;
    drop(store);

    let db = Database::connect(config.url.as_str())
        .await
        .expect("connect");
    // Down to m0005: m0006 and every migration after it.
    let after_m0005 = u32::try_from(Migrator::migrations().len() - 5).expect("a few migrations");
    Migrator::down(&db, Some(after_m0005))
        .await
        .expect("down m0006");
    Migrator::up(&db, None).await.expect("up m0006");
    assert_eq!(
        objects_without_items(&db).await,
        3,
        "stored before items were kept"
    );

    let store = SqlStore::connect_with(config).await.expect("reopen");
    assert_eq!(
        store.applied_states(before.stack).await.expect("applied"),
        before.applied,
        "filled from the stored events"
    );
    let items = sorted(
        store
            .deployment_object_items(&before.ids)
            .await
            .expect("parsed once"),
    );
    assert_eq!(items, before.items, "parsed as the append computes them");
    assert_eq!(objects_without_items(&db).await, 0, "and written back");
    let again = sorted(
        store
            .deployment_object_items(&before.ids)
            .await
            .expect("read"),
    );
    assert_eq!(again, before.items);
    drop(store);
    db.close().await.expect("close");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_backfills_items_and_applied_states() {
    let dir = tempfile::tempdir().expect("tempdir");
    check_backfills(StoreConfig {
        url: common::sqlite_url(&dir),
        ..StoreConfig::default()
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_backfills_items_and_applied_states() {
    let Some(pg) = common::PgDatabase::create().await else {
        return;
    };
    check_backfills(common::pg_config(&pg.url)).await;
    pg.drop_database().await;
}
