//! The schema migrates up, down and up again on both databases.

mod common;

use brokkr_store::{Migrator, MigratorTrait};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection};

const TABLES: &[&str] = &[
    "stacks",
    "deployment_objects",
    "counters",
    "agents",
    "agent_targets",
    "agent_events",
    "generators",
    "templates",
    "template_versions",
    "api_keys",
    "audit_records",
    "health_reports",
    "stack_placements",
    "agent_applied",
    "plans",
    "webhook_subscriptions",
    "webhook_outbox",
    "webhook_deliveries",
    "audit_chain",
    "audit_chain_queue",
    "rollouts",
    "rollout_waves",
    "rollout_agents",
    "agent_stack_pins",
    "gate_evaluations",
    "rollout_commands",
];

async fn tables_exist(db: &DatabaseConnection) -> Vec<bool> {
    let mut out = Vec::new();
    for table in TABLES {
        let found = db
            .execute_unprepared(&format!("SELECT 1 FROM {table} WHERE 1 = 0"))
            .await
            .is_ok();
        out.push(found);
    }
    out
}

async fn counter(db: &DatabaseConnection) -> i64 {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            "SELECT value FROM counters WHERE name = 'deployment_object_sequence'",
        ))
        .await
        .expect("read the counter")
        .expect("the counter row is seeded");
    row.try_get("", "value").expect("value")
}

async fn up_down_up(db: &DatabaseConnection) {
    Migrator::up(db, None).await.expect("up");
    assert!(
        tables_exist(db).await.iter().all(|t| *t),
        "every table after up"
    );
    assert_eq!(counter(db).await, 0);
    assert!(
        Migrator::get_pending_migrations(db)
            .await
            .expect("status")
            .is_empty()
    );

    Migrator::down(db, None).await.expect("down");
    assert!(
        tables_exist(db).await.iter().all(|t| !*t),
        "no table after down"
    );

    Migrator::up(db, None).await.expect("up again");
    assert!(
        tables_exist(db).await.iter().all(|t| *t),
        "every table after up again"
    );
    assert_eq!(counter(db).await, 0);
    // Partial unique indexes came back too: a second live name conflicts.
    let insert = "INSERT INTO generators (id, name, created_at, updated_at) VALUES";
    let backend = db.get_database_backend();
    let (a, b) = (uuid::Uuid::now_v7(), uuid::Uuid::now_v7());
    let now = chrono::Utc::now();
    let stmt = |id: uuid::Uuid| {
        sea_orm::Statement::from_sql_and_values(
            backend,
            match backend {
                sea_orm::DbBackend::Postgres => format!("{insert} ($1, 'g', $2, $2)"),
                _ => format!("{insert} (?, 'g', ?, ?)"),
            },
            match backend {
                sea_orm::DbBackend::Postgres => vec![id.into(), now.into()],
                _ => vec![id.into(), now.into(), now.into()],
            },
        )
    };
    db.execute_raw(stmt(a)).await.expect("first live name");
    let err = db
        .execute_raw(stmt(b))
        .await
        .expect_err("duplicate live name");
    assert!(
        matches!(
            err.sql_err(),
            Some(sea_orm::SqlErr::UniqueConstraintViolation(_))
        ),
        "{err}"
    );
}

#[tokio::test]
async fn sqlite_up_down_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = Database::connect(common::sqlite_url(&dir).as_str())
        .await
        .expect("connect");
    up_down_up(&db).await;
}

#[tokio::test]
async fn postgres_up_down_up() {
    let Some(pg) = common::PgDatabase::create().await else {
        return;
    };
    let db = Database::connect(pg.url.as_str()).await.expect("connect");
    up_down_up(&db).await;
    db.close().await.expect("close");
    pg.drop_database().await;
}

/// On PostgreSQL, sequences move from the `counters` row to a database sequence that
/// continues where the counter stopped, and go back to the counter on the way down.
#[tokio::test]
async fn postgres_sequence_continues_from_the_counter() {
    let Some(pg) = common::PgDatabase::create().await else {
        return;
    };
    let db = Database::connect(pg.url.as_str()).await.expect("connect");
    let query = |sql: &str| sea_orm::Statement::from_string(sea_orm::DbBackend::Postgres, sql);
    Migrator::up(&db, Some(3)).await.expect("up to the counter");
    db.execute_raw(query(
        "UPDATE counters SET value = 41 WHERE name = 'deployment_object_sequence'",
    ))
    .await
    .expect("advance the counter");
    Migrator::up(&db, None).await.expect("up");
    let next = db
        .query_one_raw(query(
            "SELECT nextval('deployment_object_sequence') AS value",
        ))
        .await
        .expect("nextval")
        .expect("a row");
    assert_eq!(next.try_get::<i64>("", "value").expect("value"), 42);

    // Down past every migration after m0003, m0004 (the sequence) included.
    let after_m0003 = common::migrations_from("m0004_sequence");
    Migrator::down(&db, Some(after_m0003))
        .await
        .expect("down to m0003");
    assert_eq!(
        counter(&db).await,
        0,
        "no deployment object was written, so the counter restarts from the objects' maximum"
    );
    db.close().await.expect("close");
    pg.drop_database().await;
}
