//! `GET /admin/audit-logs/verify` finds a change made directly in the database, on
//! SQLite and PostgreSQL, and names the record: changes go through the server over a
//! socket, the chain verifies, then one audit row is changed behind the server's back
//! (its summary; its summary with a content hash recomputed to match; the row
//! deleted) and the check must name exactly that record. Undoing the change makes the
//! chain match again, so each finding is that change's. A chain rewritten
//! consistently from a record on verifies, but not against a head kept from before.

mod common;

use brokkr_core::audit_chain;
use brokkr_core::{AuditFilter, AuditRecord, PageRequest};
use common::{Backend, Mode, TestApp, test_config};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement, Value};
use serde_json::{Value as Json, json};

/// Runs one statement written with `?` parameters; it must change one row.
async fn exec(db: &DatabaseConnection, sql: &str, values: Vec<Value>) {
    let backend = db.get_database_backend();
    let sql = match backend {
        DbBackend::Postgres => {
            let mut n = 0;
            sql.chars()
                .map(|c| {
                    if c == '?' {
                        n += 1;
                        format!("${n}")
                    } else {
                        c.to_string()
                    }
                })
                .collect()
        }
        _ => sql.to_owned(),
    };
    let done = db
        .execute_raw(Statement::from_sql_and_values(backend, &sql, values))
        .await
        .expect("run the statement");
    assert_eq!(done.rows_affected(), 1, "{sql} changes one row");
}

async fn verify(app: &TestApp) -> Json {
    let resp = app.admin_get("/api/v1/admin/audit-logs/verify").await;
    resp.expect(200);
    resp.json()
}

/// Asserts the check names `record` at some position, for `reason`, and that every
/// link before it matched.
fn expect_mismatch(check: &Json, record: &AuditRecord, reason: &str) {
    assert_eq!(check["ok"], json!(false), "{check}");
    let mismatch = &check["mismatch"];
    assert_eq!(
        mismatch["record_id"],
        json!(record.id.to_string()),
        "{check}"
    );
    assert_eq!(mismatch["reason"], json!(reason), "{check}");
    let position = mismatch["position"].as_u64().expect("a position");
    assert!(position >= 1);
    assert_eq!(check["records_checked"], json!(position - 1), "{check}");
    if position > 1 {
        assert_eq!(check["head"]["position"], json!(position - 1), "{check}");
    }
}

async fn an_update_in_the_database_is_found(backend: Backend) {
    let Some(app) = TestApp::start_with(backend, Mode::Socket, test_config()).await else {
        return;
    };
    // Changes through the API.
    let stack = app
        .admin_post("/api/v1/stacks", &json!({"name": "chained"}))
        .await;
    stack.expect(201);
    let stack_id = stack.json()["id"].as_str().expect("id").to_owned();
    app.admin_post(
        &format!("/api/v1/stacks/{stack_id}/labels"),
        &json!({"key": "env", "value": "prod"}),
    )
    .await
    .expect(200);
    app.admin_post("/api/v1/generators", &json!({"name": "chained-gen"}))
        .await
        .expect(201);

    let total = app.audit_count().await as u64;
    let check = verify(&app).await;
    assert_eq!(check["ok"], json!(true), "{check}");
    assert_eq!(check["records_checked"], json!(total), "{check}");
    assert_eq!(check["head"]["position"], json!(total), "{check}");
    assert_eq!(check["head"]["hash"].as_str().map(str::len), Some(64));
    assert_eq!(check["unsealed"], json!(0));
    assert!(check.get("mismatch").is_none(), "{check}");

    // The record of the stack's creation, as the API and the store show it.
    let listed = app
        .admin_get(&format!(
            "/api/v1/admin/audit-logs?resource_id={stack_id}&action=create"
        ))
        .await;
    listed.expect(200);
    let listed = listed.json()["items"][0].clone();
    let filter = AuditFilter {
        resource_id: Some(stack_id.parse().expect("a uuid")),
        ..AuditFilter::default()
    };
    let record = app
        .store()
        .list_audit_records(&filter, &PageRequest::default())
        .await
        .expect("list")
        .items
        .remove(0);
    assert_eq!(listed["id"], json!(record.id.to_string()));
    let hash = record.content_hash.expect("hashed when written");
    assert_eq!(listed["content_hash"], json!(hash.to_hex()));
    assert_eq!(hash, audit_chain::content_hash(&record));

    let url = app.database_url().expect("a database");
    let db = Database::connect(url.as_str()).await.expect("connect");
    let id = Value::from(record.id.0);
    let text = |s: &str| Value::from(s.to_owned());

    // An UPDATE of the summary alone.
    let set_summary = "UPDATE audit_records SET summary = ? WHERE id = ?";
    exec(&db, set_summary, vec![text("nothing happened"), id.clone()]).await;
    expect_mismatch(&verify(&app).await, &record, "content_changed");
    exec(&db, set_summary, vec![text(&record.summary), id.clone()]).await;
    assert_eq!(verify(&app).await["ok"], json!(true), "undone, it matches");

    // An UPDATE that also recomputes the content hash to match the new summary.
    let mut forged = record.clone();
    forged.summary = "nothing happened".into();
    let forged_hash = audit_chain::content_hash(&forged).to_hex();
    let set_both = "UPDATE audit_records SET summary = ?, content_hash = ? WHERE id = ?";
    let values = vec![text(&forged.summary), text(&forged_hash), id.clone()];
    exec(&db, set_both, values).await;
    expect_mismatch(&verify(&app).await, &record, "chain_hash_changed");
    let values = vec![text(&record.summary), text(&hash.to_hex()), id.clone()];
    exec(&db, set_both, values).await;
    assert_eq!(verify(&app).await["ok"], json!(true), "undone, it matches");

    // The row deleted.
    exec(&db, "DELETE FROM audit_records WHERE id = ?", vec![id]).await;
    expect_mismatch(&verify(&app).await, &record, "record_missing");

    db.close().await.expect("close");
    app.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_an_update_in_the_database_is_found() {
    an_update_in_the_database_is_found(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_an_update_in_the_database_is_found() {
    an_update_in_the_database_is_found(Backend::Postgres).await;
}

/// Only admin checks the chain; a change is covered by the very next check; a kept
/// head is compared when given, and must be given whole.
#[tokio::test]
async fn a_fresh_change_is_covered_and_only_admin_checks() {
    let app = TestApp::start(Backend::Memory).await.expect("memory");
    let before = verify(&app).await;
    let checked = before["records_checked"].as_u64().expect("a count");
    app.admin_post("/api/v1/stacks", &json!({"name": "fresh"}))
        .await
        .expect(201);
    let after = verify(&app).await;
    assert_eq!(after["records_checked"], json!(checked + 1), "{after}");
    assert!(after.get("anchor_matches").is_none(), "{after}");

    let (position, hash) = (&before["head"]["position"], &before["head"]["hash"]);
    let anchored = |position: &Json, hash: &str| {
        format!("/api/v1/admin/audit-logs/verify?anchor_position={position}&anchor_hash={hash}")
    };
    let kept = app
        .admin_get(&anchored(position, hash.as_str().unwrap()))
        .await;
    kept.expect(200);
    assert_eq!(kept.json()["anchor_matches"], json!(true));
    assert_eq!(kept.json()["ok"], json!(true));
    let other = app.admin_get(&anchored(position, &"0".repeat(64))).await;
    assert_eq!(other.json()["anchor_matches"], json!(false));
    assert_eq!(other.json()["ok"], json!(false));
    app.admin_get("/api/v1/admin/audit-logs/verify?anchor_position=1")
        .await
        .expect(422);

    let generator = app.world.generator_key.clone();
    app.get("/api/v1/admin/audit-logs/verify", &generator)
        .await
        .expect(403);
    app.teardown().await;
}

/// Someone who can write every table can rewrite the chain from a record on so that
/// it verifies; a head kept from before shows it.
async fn a_rewritten_chain_breaks_a_kept_head(backend: Backend) {
    let Some(app) = TestApp::start_with(backend, Mode::Socket, test_config()).await else {
        return;
    };
    let kept = verify(&app).await["head"].clone();
    let kept_position = kept["position"].as_u64().expect("a position");
    let records = app
        .store()
        .list_audit_records(&AuditFilter::default(), &PageRequest::default())
        .await
        .expect("list")
        .items;
    let links = app.store().list_audit_chain(0, 1_000).await.expect("links");
    assert_eq!(links.len() as u64, kept_position);

    // Forge the record at position 2 and every link from there, consistently.
    let url = app.database_url().expect("a database");
    let db = Database::connect(url.as_str()).await.expect("connect");
    let target = links[1].record_id;
    let mut forged = records
        .iter()
        .find(|r| r.id == target)
        .expect("the record")
        .clone();
    forged.summary = "nothing happened".into();
    let forged_hash = audit_chain::content_hash(&forged);
    exec(
        &db,
        "UPDATE audit_records SET summary = ?, content_hash = ? WHERE id = ?",
        vec![
            Value::from(forged.summary.clone()),
            Value::from(forged_hash.to_hex()),
            Value::from(target.0),
        ],
    )
    .await;
    let mut previous = links[0].chain_hash;
    for link in &links[1..] {
        let content = if link.record_id == target {
            forged_hash
        } else {
            let record = records.iter().find(|r| r.id == link.record_id).unwrap();
            record.content_hash.expect("hashed")
        };
        previous = audit_chain::chain_hash(&previous, &content);
        let position = i64::try_from(link.position).expect("small");
        exec(
            &db,
            "UPDATE audit_chain SET chain_hash = ? WHERE position = ?",
            vec![Value::from(previous.to_hex()), Value::from(position)],
        )
        .await;
    }

    let check = verify(&app).await;
    assert_eq!(check["ok"], json!(true), "the links alone match: {check}");
    let anchored = format!(
        "/api/v1/admin/audit-logs/verify?anchor_position={kept_position}&anchor_hash={}",
        kept["hash"].as_str().expect("a hash")
    );
    let check = app.admin_get(&anchored).await;
    check.expect(200);
    let check = check.json();
    assert_eq!(check["anchor_matches"], json!(false), "{check}");
    assert_eq!(check["ok"], json!(false), "{check}");
    db.close().await.expect("close");
    app.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_a_rewritten_chain_breaks_a_kept_head() {
    a_rewritten_chain_breaks_a_kept_head(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_a_rewritten_chain_breaks_a_kept_head() {
    a_rewritten_chain_breaks_a_kept_head(Backend::Postgres).await;
}
