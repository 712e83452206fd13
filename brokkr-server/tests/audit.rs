//! Every mutating operation of the OpenAPI document leaves exactly one audit record.
//!
//! The operations come from the server's own `/openapi.json`: every POST, PUT, PATCH
//! and DELETE. Each is performed once, successfully, on a freshly seeded SQLite store,
//! by the caller the access table says it succeeds for; the audit log must then hold
//! exactly one more record, attributed to that caller. The test fails when the
//! document has a mutation the table cannot perform.
//!
//! Four POSTs are exceptions and must leave none: heartbeats are coalesced liveness
//! (written in batches by a background task), not a change to the model, and the
//! `Store` contract documents that `record_heartbeats` is not audited; health reports
//! are observed state replacing the previous report, and `Store::record_health` is not
//! audited either; `POST /auth/pak` only tells the caller whom its key belongs to; a
//! placement preview decides without storing anything.
//!
//! `PUT /stacks/{id}/placement` writes the policy's record and, only when the decision
//! it makes at once moves the stack (the chosen agents change), a second, `place`
//! record: two changes, each audited as the `Store` contract says. In the seeded world
//! no agent has ever sent a heartbeat, so no agent can be chosen and the table's `PUT`
//! leaves exactly one record; `tests/placement.rs` checks the `place` records.

mod common;

use common::ops::{fill, fill_value, openapi_operations, table, table_template};
use common::{Backend, Caller, Mode, Req, TestApp, test_config};

/// Mutations that write no audit record, with the reason.
const NOT_AUDITED: &[(&str, &str, &str)] = &[
    (
        "POST",
        "/agents/{}/heartbeat",
        "heartbeats are coalesced liveness, not a change (Store::record_heartbeats is not audited)",
    ),
    (
        "POST",
        "/agents/{}/health",
        "health is observed state that replaces the previous report (Store::record_health is not audited)",
    ),
    (
        "POST",
        "/auth/pak",
        "verifies the presented key and answers its role; changes nothing",
    ),
    (
        "POST",
        "/stacks/{}/placement/preview",
        "computes a decision and stores nothing",
    ),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_mutation_writes_exactly_one_audit_record() {
    let probe = TestApp::start(Backend::Memory).await.expect("memory");
    let resp = probe.send(Req::new("GET", "/openapi.json")).await;
    resp.expect(200);
    let documented = openapi_operations(&resp.json());
    probe.teardown().await;

    let table = table();
    let mut failures = Vec::new();
    let mut performed = 0;
    for (method, template) in documented
        .iter()
        .filter(|(m, _)| matches!(m.as_str(), "POST" | "PUT" | "PATCH" | "DELETE"))
    {
        let Some(op) = table
            .iter()
            .find(|op| op.method == method && table_template(op.path) == *template)
        else {
            failures.push(format!(
                "{method} {template}: documented but this test cannot perform it"
            ));
            continue;
        };
        let app = TestApp::start_with(Backend::Sqlite, Mode::InProcess, test_config())
            .await
            .expect("sqlite");
        let (caller, status) = op.succeeding_caller();
        let before = app.audit_count().await;
        let mut req = Req::new(op.method, format!("/api/v1{}", fill(op.path, &app.world)))
            .caller(caller, &app.world);
        if let Some(body) = &op.body {
            req = req.json(&fill_value(body, &app.world));
        }
        let resp = app.send(req).await;
        performed += 1;
        if resp.status != status {
            failures.push(format!(
                "{method} {template} as {caller:?}: expected {status}, got {} {}",
                resp.status, resp.text
            ));
            app.teardown().await;
            continue;
        }
        let after = app.audit_count().await;
        let exempt = NOT_AUDITED
            .iter()
            .any(|(m, t, _)| m == method && t == template);
        let expected = if exempt { 0 } else { 1 };
        if after - before != expected {
            failures.push(format!(
                "{method} {template}: {} new audit records, expected {expected}",
                after - before
            ));
        } else if !exempt {
            // The newest record names the caller.
            let newest = app
                .admin_get("/api/v1/admin/audit-logs?order=desc&limit=1")
                .await;
            let record = &newest.json()["items"][0];
            let actor = record["actor_type"].as_str().unwrap_or_default();
            let want = match caller {
                Caller::Admin => "admin",
                Caller::Agent | Caller::OtherAgent => "agent",
                _ => "generator",
            };
            if actor != want {
                failures.push(format!(
                    "{method} {template}: audit actor_type {actor:?}, expected {want:?}: {record}"
                ));
            }
        }
        app.teardown().await;
    }
    assert!(performed > 0, "the document lists no mutation");
    assert!(
        failures.is_empty(),
        "{} of the documented mutations fail the audit rule:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// The audit log filters by actor, resource, action and time range, and pages.
#[tokio::test]
async fn audit_logs_filter_and_page() {
    let app = TestApp::start(Backend::Sqlite).await.expect("sqlite");
    let w = app.world.clone();
    let since = chrono::Utc::now();
    // Two changes by the generator, one by admin.
    let gen_key = w.generator_key.clone();
    let label = app
        .post(
            &format!("/api/v1/stacks/{}/labels", w.stack),
            &gen_key,
            &serde_json::json!({"key": "env", "value": "prod"}),
        )
        .await;
    label.expect(200);
    app.post(
        "/api/v1/stacks",
        &gen_key,
        &serde_json::json!({"name": "by-generator"}),
    )
    .await
    .expect(201);
    app.admin_post(
        "/api/v1/generators",
        &serde_json::json!({"name": "by-admin"}),
    )
    .await
    .expect(201);

    let since_q = since.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
    let since_q = since_q.replace('+', "%2B");
    let count = |query: String| {
        let app = &app;
        async move {
            app.count_all(&format!("/api/v1/admin/audit-logs?{query}"))
                .await
        }
    };
    assert_eq!(count(format!("since={since_q}")).await, 3);
    assert_eq!(
        count(format!(
            "since={since_q}&actor_type=generator&actor_id={}",
            w.generator
        ))
        .await,
        2
    );
    assert_eq!(count(format!("since={since_q}&actor_type=admin")).await, 1);
    assert_eq!(
        count(format!(
            "resource_type=stack&resource_id={}&action=set_metadata",
            w.stack
        ))
        .await,
        1
    );
    assert_eq!(count(format!("until={since_q}&actor_type=admin")).await, 0);
    // The seed's own records predate `since`.
    let all = app.audit_count().await;
    assert!(all > 3);

    // Pages of 2 cover every record once, in order.
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..100 {
        let url = match &cursor {
            Some(c) => format!("/api/v1/admin/audit-logs?limit=2&cursor={c}"),
            None => "/api/v1/admin/audit-logs?limit=2".to_owned(),
        };
        let page = app.admin_get(&url).await;
        page.expect(200);
        let page = page.json();
        for item in page["items"].as_array().expect("items") {
            seen.push(item["id"].as_str().expect("id").to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => break,
        }
    }
    assert_eq!(seen.len(), all);
    let mut sorted = seen.clone();
    sorted.sort();
    sorted.dedup();
    assert_eq!(sorted, seen, "ascending, no duplicates");

    // Only admin reads the audit log.
    app.get("/api/v1/admin/audit-logs", &gen_key)
        .await
        .expect(403);
    app.teardown().await;
}
