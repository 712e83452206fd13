//! An object's annotations, keys and values together, hold at most 256 KiB: a create
//! or an annotation write that would pass it is `422 validation_failed` with a message
//! that says so, and changes nothing. Stacks, agents and templates, on every backend.

mod common;

use common::{Backend, Req, TestApp};
use serde_json::{Value, json};

const KIB: usize = 1024;

/// Checks a refusal: 422 `validation_failed`, naming the cap.
#[track_caller]
fn assert_over_the_cap(resp: &common::Resp, what: &str) {
    assert_eq!(resp.status, 422, "{what}: {}", resp.text);
    let body = resp.json();
    assert_eq!(body["code"], "validation_failed", "{what}: {body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(
        message.contains("annotations") && message.contains("256 KiB"),
        "{what}: {message}"
    );
}

async fn annotations_are_capped_per_object(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let w = &app.world;
    let big = |n: usize| "x".repeat(n * KIB);

    let crowded: Value = ["a", "b", "c"]
        .into_iter()
        .map(|k| (k.to_owned(), json!(big(90))))
        .collect::<serde_json::Map<_, _>>()
        .into();
    let resp = app
        .admin_post(
            "/api/v1/stacks",
            &json!({"name": "crowded", "annotations": crowded}),
        )
        .await;
    assert_over_the_cap(&resp, "create stack");
    let body = json!({
        "name": "crowded", "content": "kind: X\n",
        "parameters_schema": {"type": "object"}, "annotations": crowded,
    });
    let resp = app.admin_post("/api/v1/templates", &body).await;
    assert_over_the_cap(&resp, "create template");

    for (kind, id) in [
        ("stacks", w.stack.to_string()),
        ("agents", w.agent.to_string()),
        ("templates", w.template.to_string()),
    ] {
        let path = format!("/api/v1/{kind}/{id}/annotations");
        let put = |key: &str, kib: usize| {
            Req::new("POST", path.clone())
                .key(&w.admin_key)
                .json(&json!({"key": key, "value": big(kib)}))
        };
        for key in ["a", "b"] {
            let resp = app.send(put(key, 100)).await;
            assert_eq!(resp.status, 200, "{kind} {key}: {}", resp.text);
        }
        let before = app.admin_get(&format!("/api/v1/{kind}/{id}")).await.json();
        let resp = app.send(put("c", 60)).await;
        assert_over_the_cap(&resp, kind);
        let after = app.admin_get(&format!("/api/v1/{kind}/{id}")).await.json();
        assert_eq!(
            before["annotations"], after["annotations"],
            "{kind}: unchanged"
        );
        // A smaller value for a key already set makes room.
        let resp = app.send(put("a", 10)).await;
        assert_eq!(resp.status, 200, "{kind}: {}", resp.text);
        let resp = app.send(put("c", 60)).await;
        assert_eq!(resp.status, 200, "{kind}: {}", resp.text);
    }
    app.teardown().await;
}

#[tokio::test]
async fn annotations_are_capped_per_object_memory() {
    annotations_are_capped_per_object(Backend::Memory).await;
}

#[tokio::test]
async fn annotations_are_capped_per_object_sqlite() {
    annotations_are_capped_per_object(Backend::Sqlite).await;
}

#[tokio::test]
async fn annotations_are_capped_per_object_postgres() {
    annotations_are_capped_per_object(Backend::Postgres).await;
}
