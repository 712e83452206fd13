//! Workload health over HTTP: an agent reports, admin and the stack's generator read;
//! a report replaces the agent's previous one; an older object of a targeted stack is
//! accepted, another stack's object is a 404; reports write no audit record.

mod common;

use brokkr_core::{Actor, NewDeploymentObject, StackId, Store};
use common::{Backend, TestApp};
use serde_json::{Value, json};

fn health_path(stack: impl std::fmt::Display) -> String {
    format!("/api/v1/stacks/{stack}/health")
}

/// A report about `object` with one Deployment `web` in `status`.
fn report(object: impl std::fmt::Display, status: &str, summary: Option<&str>) -> Value {
    let mut body = json!({
        "deployment_object_id": object.to_string(),
        "resources": [{
            "api_version": "apps/v1",
            "kind": "Deployment",
            "namespace": "default",
            "name": "web",
            "status": status,
            "reason": "UnavailableReplicas",
            "message": "1 of 3 replicas available",
        }],
    });
    if let Some(summary) = summary {
        body["summary"] = json!(summary);
    }
    body
}

async fn append(store: &dyn Store, stack: StackId, version: &str) -> uuid::Uuid {
    let yaml = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: v\n  namespace: default\ndata:\n  v: \"{version}\"\n"
    );
    store
        .append_deployment_object(
            &Actor::Admin,
            NewDeploymentObject::from_yaml(stack, yaml).expect("valid yaml"),
        )
        .await
        .expect("append")
        .id
        .into()
}

async fn reports_replace_and_are_read_by_admin_and_owner(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let w = app.world.clone();
    let post_path = format!("/api/v1/agents/{}/health", w.agent);
    let audit_before = app.audit_count().await;

    // Nobody reported yet: no status, no items.
    let resp = app.admin_get(&health_path(w.stack)).await;
    resp.expect(200);
    assert_eq!(
        resp.json(),
        json!({"stack_id": w.stack.to_string(), "items": []})
    );

    // The agent reports; admin reads it.
    let first = report(w.deployment_object, "degraded", Some("1 of 1 degraded"));
    app.post(&post_path, &w.agent_key, &first).await.expect(204);
    let resp = app.admin_get(&health_path(w.stack)).await;
    resp.expect(200);
    let body = resp.json();
    assert_eq!(body["status"], "degraded", "{body}");
    let items = body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{body}");
    assert_eq!(items[0]["agent_id"], w.agent.to_string());
    assert_eq!(
        items[0]["deployment_object_id"],
        w.deployment_object.to_string()
    );
    assert_eq!(items[0]["status"], "degraded");
    assert_eq!(items[0]["summary"], "1 of 1 degraded");
    assert_eq!(items[0]["resources"], first["resources"]);
    assert!(items[0]["reported_at"].is_string());

    // A second report replaces the first, whole.
    let second = report(w.deployment_object, "healthy", None);
    app.post(&post_path, &w.agent_key, &second)
        .await
        .expect(204);
    let body = app.admin_get(&health_path(w.stack)).await.json();
    assert_eq!(body["status"], "healthy", "{body}");
    assert_eq!(body["items"].as_array().map(Vec::len), Some(1), "{body}");
    assert!(body["items"][0].get("summary").is_none(), "{body}");

    // A newer object exists, the agent still runs the older one: accepted, shown with
    // the id the agent named.
    let newer = append(app.store(), w.stack, "2").await;
    let stale = report(w.deployment_object, "progressing", None);
    app.post(&post_path, &w.agent_key, &stale).await.expect(204);
    let body = app.admin_get(&health_path(w.stack)).await.json();
    assert_eq!(
        body["items"][0]["deployment_object_id"],
        w.deployment_object.to_string()
    );
    assert_eq!(body["status"], "progressing");
    let current = report(newer, "healthy", None);
    app.post(&post_path, &w.agent_key, &current)
        .await
        .expect(204);

    // The generator owning the stack reads it; another generator does not learn it
    // exists; agents and admin may not report for an agent.
    let resp = app.get(&health_path(w.stack), &w.generator_key).await;
    resp.expect(200);
    assert_eq!(
        resp.json()["items"][0]["deployment_object_id"],
        newer.to_string()
    );
    app.get(&health_path(w.stack), &w.other_generator_key)
        .await
        .expect(404);
    app.get(&health_path(w.stack), &w.agent_key)
        .await
        .expect(403);
    app.post(&post_path, &w.admin_key, &current)
        .await
        .expect(403);
    app.post(&post_path, &w.other_agent_key, &current)
        .await
        .expect(403);

    // Health is observed state: the append above is the only audited change.
    assert_eq!(app.audit_count().await, audit_before + 1);
    app.teardown().await;
}

#[tokio::test]
async fn reports_memory() {
    reports_replace_and_are_read_by_admin_and_owner(Backend::Memory).await;
}

#[tokio::test]
async fn reports_sqlite() {
    reports_replace_and_are_read_by_admin_and_owner(Backend::Sqlite).await;
}

#[tokio::test]
async fn reports_postgres() {
    reports_replace_and_are_read_by_admin_and_owner(Backend::Postgres).await;
}

/// An agent reports only about stacks in its own target state: another agent's stack,
/// or an untargeted one, is a 404 and stores nothing. A stack awaiting removal (or
/// deleted) still takes reports, and a deleted stack's health still answers.
#[tokio::test]
async fn only_the_agents_own_stacks() {
    let app = TestApp::start(Backend::Sqlite).await.expect("sqlite");
    let w = app.world.clone();
    let post_path = format!("/api/v1/agents/{}/health", w.agent);

    // The spare stack belongs to the other agent.
    let foreign = append(app.store(), w.spare_stack, "1").await;
    app.store()
        .assign_stack(&Actor::Admin, w.other_agent, w.spare_stack)
        .await
        .expect("assign");
    let resp = app
        .post(&post_path, &w.agent_key, &report(foreign, "healthy", None))
        .await;
    resp.expect(404);
    assert_eq!(resp.json()["code"], "not_found");
    // The other agent may report it, and it shows under the other agent.
    app.post(
        &format!("/api/v1/agents/{}/health", w.other_agent),
        &w.other_agent_key,
        &report(foreign, "failed", None),
    )
    .await
    .expect(204);
    let body = app.admin_get(&health_path(w.spare_stack)).await.json();
    assert_eq!(body["status"], "failed");
    assert_eq!(body["items"][0]["agent_id"], w.other_agent.to_string());
    assert_eq!(body["items"].as_array().map(Vec::len), Some(1), "{body}");

    // A stack nobody targets.
    let untargeted = append(app.store(), w.other_stack, "1").await;
    app.post(
        &post_path,
        &w.agent_key,
        &report(untargeted, "healthy", None),
    )
    .await
    .expect(404);
    let body = app.admin_get(&health_path(w.other_stack)).await.json();
    assert_eq!(body["items"], json!([]));

    // Deleted: the stack awaits removal by the agent, which may still report on it.
    let resp = app
        .send(common::Req::new("DELETE", format!("/api/v1/stacks/{}", w.stack)).key(&w.admin_key))
        .await;
    resp.expect(200);
    let marker = resp.json()["id"].as_str().expect("marker id").to_owned();
    app.post(&post_path, &w.agent_key, &report(&marker, "healthy", None))
        .await
        .expect(204);
    let body = app.admin_get(&health_path(w.stack)).await.json();
    assert_eq!(body["items"][0]["deployment_object_id"], marker);
    app.get(&health_path(w.stack), &w.generator_key)
        .await
        .expect(200);
    app.admin_get(&health_path(uuid::Uuid::now_v7()))
        .await
        .expect(404);
    app.teardown().await;
}
