//! The audit chain against changes made directly in the database, on SQLite and
//! PostgreSQL: each is reported at the record it touched, and undoing it makes the
//! chain match again. Records stored before the chain existed are sealed by their
//! fields, and records queued before their queue rows carried a hash by the hash in
//! the record.

mod common;

use brokkr_core::audit_chain::{self, ChainFault, ChainMismatch};
use brokkr_core::testing::conformance::{mk_agent, mk_object, mk_stack};
use brokkr_core::{AuditFilter, AuditRecord, PageRequest, Store};
use brokkr_store::{Migrator, MigratorTrait, SqlStore, StoreConfig};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement, Value};

/// A few changes, sealed; returns the records in chain order (id order: all were
/// written before the first seal).
async fn sealed_history(store: &dyn Store) -> Vec<AuditRecord> {
    let stack = mk_stack(store, "s").await;
    mk_object(store, stack.id, "1").await;
    mk_object(store, stack.id, "2").await;
    mk_agent(store, "a").await;
    mk_stack(store, "t").await;
    while store.seal_audit_chain(1_000).await.expect("seal") > 0 {}
    let page = PageRequest {
        limit: 1_000,
        ..PageRequest::default()
    };
    let records = store
        .list_audit_records(&AuditFilter::default(), &page)
        .await
        .expect("list")
        .items;
    assert_eq!(records.len(), 5);
    records
}

/// The first mismatch of the whole chain, checked in pages of 2.
async fn first_mismatch(store: &dyn Store) -> Option<ChainMismatch> {
    let mut after = None;
    loop {
        let check = store.verify_audit_chain(after, 2).await.expect("verify");
        if check.mismatch.is_some() || !check.more {
            return check.mismatch;
        }
        after = check.last;
    }
}

/// Runs one statement with `?` parameters.
async fn exec(db: &DatabaseConnection, sql: &str, values: Vec<Value>) {
    let statement = match db.get_database_backend() {
        DbBackend::Postgres => {
            let mut n = 0;
            let numbered: String = sql
                .chars()
                .map(|c| {
                    if c == '?' {
                        n += 1;
                        format!("${n}")
                    } else {
                        c.to_string()
                    }
                })
                .collect();
            Statement::from_sql_and_values(DbBackend::Postgres, numbered, values)
        }
        backend => Statement::from_sql_and_values(backend, sql, values),
    };
    let result = db.execute_raw(statement).await.expect(sql);
    assert_eq!(result.rows_affected(), 1, "{sql} changes one row");
}

fn expect(mismatch: Option<ChainMismatch>, position: u64, record: &AuditRecord, fault: ChainFault) {
    assert_eq!(
        mismatch,
        Some(ChainMismatch {
            position,
            record_id: record.id,
            fault,
        })
    );
}

async fn tampering_is_reported(config: StoreConfig) {
    let store = SqlStore::connect_with(config.clone())
        .await
        .expect("open the store");
    let db = Database::connect(config.url.as_str())
        .await
        .expect("connect");
    let records = sealed_history(&store).await;
    assert_eq!(first_mismatch(&store).await, None);
    let third = &records[2];
    let id = Value::from(third.id.0);
    let summary = |s: &str| Value::from(s.to_owned());

    // A summary changed, its content hash left alone.
    let set_summary = "UPDATE audit_records SET summary = ? WHERE id = ?";
    exec(&db, set_summary, vec![summary("nothing"), id.clone()]).await;
    expect(
        first_mismatch(&store).await,
        3,
        third,
        ChainFault::ContentChanged,
    );
    exec(&db, set_summary, vec![summary(&third.summary), id.clone()]).await;
    assert_eq!(first_mismatch(&store).await, None, "undone, it matches");

    // A summary changed with a content hash recomputed to match it.
    let mut forged = third.clone();
    forged.summary = "nothing".into();
    let forged_hash = audit_chain::content_hash(&forged).to_hex();
    let set_both = "UPDATE audit_records SET summary = ?, content_hash = ? WHERE id = ?";
    exec(
        &db,
        set_both,
        vec![summary("nothing"), forged_hash.into(), id.clone()],
    )
    .await;
    expect(
        first_mismatch(&store).await,
        3,
        third,
        ChainFault::ChainHashChanged,
    );
    let original_hash = third.content_hash.expect("hashed").to_hex();
    exec(
        &db,
        set_both,
        vec![summary(&third.summary), original_hash.into(), id.clone()],
    )
    .await;
    assert_eq!(first_mismatch(&store).await, None);

    // A link's chain hash changed.
    let links = store.list_audit_chain(0, 10).await.expect("links");
    let set_link = "UPDATE audit_chain SET chain_hash = ? WHERE position = ?";
    exec(&db, set_link, vec!["00".repeat(32).into(), 4i64.into()]).await;
    expect(
        first_mismatch(&store).await,
        4,
        &records[3],
        ChainFault::ChainHashChanged,
    );
    exec(
        &db,
        set_link,
        vec![links[3].chain_hash.to_hex().into(), 4i64.into()],
    )
    .await;
    assert_eq!(first_mismatch(&store).await, None);

    // A field edited into a value that is not one.
    let set_kind = "UPDATE audit_records SET actor_kind = ? WHERE id = ?";
    exec(&db, set_kind, vec![summary("nobody"), id.clone()]).await;
    expect(
        first_mismatch(&store).await,
        3,
        third,
        ChainFault::ContentChanged,
    );
    exec(&db, set_kind, vec![summary("admin"), id.clone()]).await;
    assert_eq!(first_mismatch(&store).await, None);

    // A record deleted.
    exec(
        &db,
        "DELETE FROM audit_records WHERE id = ?",
        vec![id.clone()],
    )
    .await;
    expect(
        first_mismatch(&store).await,
        3,
        third,
        ChainFault::RecordMissing,
    );

    drop(store);
    db.close().await.expect("close");
}

/// A record changed before it was sealed is sealed with the hash it was written with,
/// so the change is still found.
async fn a_change_before_sealing_is_found(config: StoreConfig) {
    let store = SqlStore::connect_with(config.clone())
        .await
        .expect("open the store");
    let db = Database::connect(config.url.as_str())
        .await
        .expect("connect");
    mk_stack(&store, "s").await;
    let page = PageRequest::default();
    let record = store
        .list_audit_records(&AuditFilter::default(), &page)
        .await
        .expect("list")
        .items
        .remove(0);
    exec(
        &db,
        "UPDATE audit_records SET summary = ? WHERE id = ?",
        vec!["nothing".to_owned().into(), record.id.0.into()],
    )
    .await;
    assert_eq!(store.seal_audit_chain(10).await.expect("seal"), 1);
    expect(
        first_mismatch(&store).await,
        1,
        &record,
        ChainFault::ContentChanged,
    );
    drop(store);
    db.close().await.expect("close");
}

/// Writes two records (a stack and an agent) with the store, then undoes and redoes
/// `migration` and those after it; returns a connection to the database.
async fn two_records_then_migrate_again(
    config: &StoreConfig,
    migration: &str,
) -> DatabaseConnection {
    let store = SqlStore::connect_with(config.clone())
        .await
        .expect("open the store");
    mk_stack(&store, "s").await;
    mk_agent(&store, "a").await;
    drop(store);
    let db = Database::connect(config.url.as_str())
        .await
        .expect("connect");
    Migrator::down(&db, Some(common::migrations_from(migration)))
        .await
        .unwrap_or_else(|err| panic!("down {migration}: {err}"));
    Migrator::up(&db, None)
        .await
        .unwrap_or_else(|err| panic!("up {migration}: {err}"));
    db
}

/// Records stored before m0008 carry no content hash: the migration queues them and
/// the sealer links the hash of their fields, which the check then holds them to.
async fn records_before_the_chain_are_sealed(config: StoreConfig) {
    let db = two_records_then_migrate_again(&config, "m0008_audit_chain").await;

    let store = SqlStore::connect_with(config).await.expect("reopen");
    assert_eq!(store.unsealed_audit_records().await.expect("unsealed"), 2);
    let records = store
        .list_audit_records(&AuditFilter::default(), &PageRequest::default())
        .await
        .expect("list")
        .items;
    assert!(records.iter().all(|r| r.content_hash.is_none()));
    assert_eq!(store.seal_audit_chain(10).await.expect("seal"), 2);
    assert_eq!(first_mismatch(&store).await, None);

    exec(
        &db,
        "UPDATE audit_records SET summary = ? WHERE id = ?",
        vec!["nothing".to_owned().into(), records[1].id.0.into()],
    )
    .await;
    expect(
        first_mismatch(&store).await,
        2,
        &records[1],
        ChainFault::ChainHashChanged,
    );
    drop(store);
    db.close().await.expect("close");
}

/// A record rewritten before it was sealed, its stored content hash made to match the
/// new fields, is still found: the sealer links the hash its queue row was written
/// with, not the one in the record.
async fn a_consistent_rewrite_before_sealing_is_found(config: StoreConfig) {
    let store = SqlStore::connect_with(config.clone())
        .await
        .expect("open the store");
    let db = Database::connect(config.url.as_str())
        .await
        .expect("connect");
    mk_stack(&store, "s").await;
    let mut record = store
        .list_audit_records(&AuditFilter::default(), &PageRequest::default())
        .await
        .expect("list")
        .items
        .remove(0);
    record.summary = "nothing".to_owned();
    let rewritten = audit_chain::content_hash(&record).to_hex();
    exec(
        &db,
        "UPDATE audit_records SET summary = ?, content_hash = ? WHERE id = ?",
        vec![
            record.summary.clone().into(),
            rewritten.into(),
            record.id.0.into(),
        ],
    )
    .await;
    assert_eq!(store.seal_audit_chain(10).await.expect("seal"), 1);
    expect(
        first_mismatch(&store).await,
        1,
        &record,
        ChainFault::ChainHashChanged,
    );
    drop(store);
    db.close().await.expect("close");
}

/// Rows queued before m0010 carry no hash: the sealer reads their records and links the
/// hash each was written with, which the check then holds them to.
async fn rows_queued_before_m0010_are_sealed_from_their_records(config: StoreConfig) {
    let db = two_records_then_migrate_again(&config, "m0010_audit_queue_hash").await;
    let unhashed = db
        .query_one_raw(Statement::from_string(
            db.get_database_backend(),
            "SELECT COUNT(*) AS n FROM audit_chain_queue WHERE content_hash IS NULL",
        ))
        .await
        .expect("count")
        .expect("a row")
        .try_get::<i64>("", "n")
        .expect("n");
    assert_eq!(unhashed, 2);

    let store = SqlStore::connect_with(config).await.expect("reopen");
    assert_eq!(store.seal_audit_chain(10).await.expect("seal"), 2);
    assert_eq!(first_mismatch(&store).await, None);
    // A record written since is queued with its hash and sealed after them.
    mk_stack(&store, "t").await;
    assert_eq!(store.seal_audit_chain(10).await.expect("seal"), 1);
    assert_eq!(first_mismatch(&store).await, None);
    drop(store);
    db.close().await.expect("close");
}

fn sqlite_config(dir: &tempfile::TempDir) -> StoreConfig {
    StoreConfig {
        url: common::sqlite_url(dir),
        ..StoreConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_tampering_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    tampering_is_reported(sqlite_config(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_tampering_is_reported() {
    let Some(pg) = common::PgDatabase::create().await else {
        return;
    };
    tampering_is_reported(common::pg_config(&pg.url)).await;
    pg.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_change_before_sealing_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    a_change_before_sealing_is_found(sqlite_config(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_change_before_sealing_is_found() {
    let Some(pg) = common::PgDatabase::create().await else {
        return;
    };
    a_change_before_sealing_is_found(common::pg_config(&pg.url)).await;
    pg.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_records_before_the_chain_are_sealed() {
    let dir = tempfile::tempdir().expect("tempdir");
    records_before_the_chain_are_sealed(sqlite_config(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_records_before_the_chain_are_sealed() {
    let Some(pg) = common::PgDatabase::create().await else {
        return;
    };
    records_before_the_chain_are_sealed(common::pg_config(&pg.url)).await;
    pg.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_consistent_rewrite_before_sealing_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    a_consistent_rewrite_before_sealing_is_found(sqlite_config(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_consistent_rewrite_before_sealing_is_found() {
    let Some(pg) = common::PgDatabase::create().await else {
        return;
    };
    a_consistent_rewrite_before_sealing_is_found(common::pg_config(&pg.url)).await;
    pg.drop_database().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_rows_queued_before_m0010_are_sealed_from_their_records() {
    let dir = tempfile::tempdir().expect("tempdir");
    rows_queued_before_m0010_are_sealed_from_their_records(sqlite_config(&dir)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_rows_queued_before_m0010_are_sealed_from_their_records() {
    let Some(pg) = common::PgDatabase::create().await else {
        return;
    };
    rows_queued_before_m0010_are_sealed_from_their_records(common::pg_config(&pg.url)).await;
    pg.drop_database().await;
}
