//! Every endpoint × every caller: the status each cell must answer.
//!
//! Cells run against freshly seeded worlds (in-memory store): refused requests share
//! one, every successful mutation gets its own, so a delete in one cell cannot change
//! the answer of another. Callers without a valid key
//! (none, malformed, unknown, revoked by rotation) always get 401; the others get the
//! status of their column. All mismatches are printed as one table before failing.
//! A second test checks that the table covers every operation of `/openapi.json`.

mod common;

use std::collections::BTreeSet;

use common::ops::{fill, fill_value, openapi_operations, table, table_template};
use common::{Backend, Caller, Req, TestApp, assert_error_body};

fn column(caller: Caller) -> Option<usize> {
    match caller {
        Caller::NoKey | Caller::Malformed | Caller::Unknown | Caller::Revoked => None,
        Caller::Admin => Some(0),
        Caller::Agent => Some(1),
        Caller::OtherAgent => Some(2),
        Caller::Generator => Some(3),
        Caller::OtherGenerator => Some(4),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_endpoint_answers_every_caller_as_specified() {
    let mut mismatches = Vec::new();
    let mut cells = 0;
    for op in table() {
        // Callers expected to fail go first: a refused request changes nothing, so they
        // share one world. A successful mutation gets a fresh world, so it can neither
        // see nor cause another cell's changes.
        let mut callers = Caller::ALL.to_vec();
        callers.sort_by_key(|c| column(*c).is_some_and(|i| op.expect[i] < 300));
        let mut app = TestApp::start(Backend::Memory).await.expect("memory store");
        let mut changed = false;
        for caller in callers {
            let expected = column(caller).map_or(401, |i| op.expect[i]);
            if changed && op.is_mutation() {
                app.teardown().await;
                app = TestApp::start(Backend::Memory).await.expect("memory store");
                changed = false;
            }
            let path = format!("/api/v1{}", fill(op.path, &app.world));
            let mut req = Req::new(op.method, path.clone()).caller(caller, &app.world);
            if let Some(body) = &op.body {
                req = req.json(&fill_value(body, &app.world));
            }
            let resp = app.send(req).await;
            changed |= resp.status < 300;
            cells += 1;
            if resp.status != expected {
                mismatches.push(format!(
                    "{:<7} {:<45} {:<15} expected {expected} got {}  {}",
                    op.method,
                    op.path,
                    format!("{caller:?}"),
                    resp.status,
                    resp.text.chars().take(160).collect::<String>()
                ));
            } else if resp.status >= 400 {
                assert_error_body(&resp, &format!("{} {} as {caller:?}", op.method, op.path));
            }
        }
        app.teardown().await;
    }
    assert!(
        mismatches.is_empty(),
        "{} of {cells} cells differ:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
}

#[tokio::test]
async fn the_table_covers_every_documented_operation() {
    let app = TestApp::start(Backend::Memory).await.expect("memory store");
    let resp = app.send(Req::new("GET", "/openapi.json")).await;
    resp.expect(200);
    let documented = openapi_operations(&resp.json());
    let tabled: BTreeSet<(String, String)> = table()
        .iter()
        .map(|op| (op.method.to_owned(), table_template(op.path)))
        .collect();
    let missing: Vec<_> = documented.difference(&tabled).collect();
    let extra: Vec<_> = tabled.difference(&documented).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "operations documented but not in the matrix: {missing:?}\n\
         operations in the matrix but not documented: {extra:?}"
    );
    app.teardown().await;
}

/// "A wrong key costs as much as a right one": not timed (that would be flaky) but
/// checked by behaviour. `KeyCache::authenticate` parses the key, looks its short id up
/// (cache, then store) and verifies the SHA-256 in constant time, against
/// `KeyHash::DUMMY` on a miss, so a miss does the same work as a hit. What a client can
/// observe is checked here: an unknown well-formed key, a forged secret for a real
/// short id and a revoked key are indistinguishable (same status, code and message),
/// and authentication happens before the request is otherwise looked at.
#[tokio::test]
async fn unknown_forged_and_revoked_keys_are_indistinguishable() {
    let app = TestApp::start(Backend::Memory).await.expect("memory store");
    let world = app.world.clone();
    let unknown = brokkr_core::Pak::generate().expose().to_owned();
    let real = &world.agent_key;
    let last = real.chars().last().expect("non-empty key");
    let forged = format!(
        "{}{}",
        &real[..real.len() - 1],
        if last == 'A' { 'B' } else { 'A' }
    );
    let mut bodies = Vec::new();
    for key in [&unknown, &forged, &world.revoked_key] {
        // Twice: a cached miss answers like a first miss.
        for _ in 0..2 {
            let resp = app.get("/api/v1/agents/not-a-uuid", key).await;
            resp.expect(401);
            let body = resp.json();
            bodies.push((body["code"].clone(), body["message"].clone()));
        }
    }
    assert!(
        bodies.windows(2).all(|w| w[0] == w[1]),
        "unknown, forged and revoked keys must be indistinguishable: {bodies:?}"
    );
    app.get("/api/v1/agents/not-a-uuid", real).await.expect(400);
    app.teardown().await;
}

/// Rotating or revoking a key through the API takes effect at once on this replica,
/// even when the old key was just used (and so is cached).
#[tokio::test]
async fn rotation_and_deletion_revoke_keys_at_once() {
    let app = TestApp::start(Backend::Sqlite).await.expect("sqlite");
    let w = app.world.clone();
    let agent_path = format!("/api/v1/agents/{}", w.agent);

    // The agent rotates its own key.
    app.get(&agent_path, &w.agent_key).await.expect(200);
    let rotated = app
        .send(Req::new("POST", format!("{agent_path}/rotate-pak")).key(&w.agent_key))
        .await;
    rotated.expect(200);
    let new_key = rotated.json()["pak"].as_str().expect("pak").to_owned();
    app.get(&agent_path, &w.agent_key).await.expect(401);
    app.get(&agent_path, &new_key).await.expect(200);

    // Admin rotates a generator's key.
    let gen_path = format!("/api/v1/generators/{}", w.generator);
    app.get(&gen_path, &w.generator_key).await.expect(200);
    let rotated = app
        .send(Req::new("POST", format!("{gen_path}/rotate-pak")).key(&w.admin_key))
        .await;
    rotated.expect(200);
    let new_gen_key = rotated.json()["api_key"]
        .as_str()
        .expect("api_key")
        .to_owned();
    app.get(&gen_path, &w.generator_key).await.expect(401);
    app.get(&gen_path, &new_gen_key).await.expect(200);

    // Deleting the agent and the generator revokes their keys.
    app.send(Req::new("DELETE", agent_path.clone()).key(&w.admin_key))
        .await
        .expect(204);
    app.get(&agent_path, &new_key).await.expect(401);
    app.send(Req::new("DELETE", gen_path.clone()).key(&w.admin_key))
        .await
        .expect(204);
    app.get("/api/v1/stacks", &new_gen_key).await.expect(401);

    // A key issued at creation works at once, even after a miss for its short id
    // could not have been cached (it did not exist).
    let created = app
        .admin_post(
            "/api/v1/agents",
            &serde_json::json!({"name": "fresh", "cluster_name": "c"}),
        )
        .await;
    created.expect(201);
    let created = created.json();
    let key = created["initial_pak"].as_str().expect("initial_pak");
    let id = created["agent"]["id"].as_str().expect("id");
    app.get(&format!("/api/v1/agents/{id}/target-state"), key)
        .await
        .expect(200);
    app.teardown().await;
}
