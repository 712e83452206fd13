//! The contract the OpenAPI document states beyond JSON types, held by the server:
//!
//! - `null` is never a value of a request field (400 `invalid_body`, nothing
//!   stored), except an event's `message` and a health report's `summary`, which
//!   older agents send and which count as absent until API v2; the document declares
//!   exactly those two nullable.
//! - `""` clears a description (and creates none).
//! - `wait` states its range; names, label and annotation keys and label values state
//!   their rules, and values that break them are still 422 `validation_failed`.

mod common;

use common::{Backend, Req, TestApp};
use serde_json::{Value, json};

async fn document(app: &TestApp) -> Value {
    let resp = app.send(Req::new("GET", "/openapi.json")).await;
    resp.expect(200);
    resp.json()
}

/// A request body that is valid but for one field set to `null`.
struct NullCase {
    method: &'static str,
    path: String,
    body: Value,
    key: String,
}

fn null_cases(app: &TestApp) -> Vec<NullCase> {
    let w = &app.world;
    let admin = w.admin_key.clone();
    let agent = w.agent_key.clone();
    let case = |method, path: String, body, key: &String| NullCase {
        method,
        path,
        body,
        key: key.clone(),
    };
    let object = w.deployment_object.to_string();
    vec![
        case(
            "POST",
            "/api/v1/stacks".into(),
            json!({"name": "n1", "description": null}),
            &admin,
        ),
        case(
            "POST",
            "/api/v1/stacks".into(),
            json!({"name": "n2", "generator_id": null}),
            &admin,
        ),
        case(
            "POST",
            "/api/v1/stacks".into(),
            json!({"name": null}),
            &admin,
        ),
        case(
            "PATCH",
            format!("/api/v1/stacks/{}", w.stack),
            json!({"description": null}),
            &admin,
        ),
        case(
            "PATCH",
            format!("/api/v1/stacks/{}", w.stack),
            json!({"name": null}),
            &admin,
        ),
        case(
            "POST",
            "/api/v1/generators".into(),
            json!({"name": "g1", "description": null}),
            &admin,
        ),
        case(
            "PATCH",
            format!("/api/v1/generators/{}", w.generator),
            json!({"description": null}),
            &admin,
        ),
        case(
            "PATCH",
            format!("/api/v1/generators/{}", w.generator),
            json!({"name": null}),
            &admin,
        ),
        case(
            "POST",
            "/api/v1/agents".into(),
            json!({"name": "a1", "cluster_name": null}),
            &admin,
        ),
        case(
            "PATCH",
            format!("/api/v1/agents/{}", w.agent),
            json!({"cluster_name": null}),
            &admin,
        ),
        case(
            "PATCH",
            format!("/api/v1/agents/{}", w.agent),
            json!({"enabled": null}),
            &admin,
        ),
        case(
            "POST",
            "/api/v1/templates".into(),
            json!({"name": "t1", "description": null, "content": "x", "parameters_schema": {"type": "object"}}),
            &admin,
        ),
        case(
            "POST",
            "/api/v1/templates".into(),
            json!({"name": "t2", "generator_id": null, "content": "x", "parameters_schema": {"type": "object"}}),
            &admin,
        ),
        case(
            "POST",
            format!(
                "/api/v1/stacks/{}/deployment-objects/from-template",
                w.stack
            ),
            json!({"template_id": w.template.to_string(), "version": null, "dry_run": true}),
            &admin,
        ),
        case(
            "POST",
            format!("/api/v1/agents/{}/heartbeat", w.agent),
            json!({"capabilities": null}),
            &agent,
        ),
        case(
            "POST",
            format!("/api/v1/agents/{}/heartbeat", w.agent),
            json!({"capabilities": {"kubernetes_version": null}}),
            &agent,
        ),
        case(
            "POST",
            format!("/api/v1/agents/{}/events", w.agent),
            json!({"id": null, "deployment_object_id": object, "event_type": "apply", "status": "success"}),
            &agent,
        ),
        case(
            "POST",
            format!("/api/v1/agents/{}/health", w.agent),
            json!({"deployment_object_id": object, "resources": [
                {"api_version": "apps/v1", "kind": "Deployment", "namespace": null, "name": "web", "status": "healthy"}
            ]}),
            &agent,
        ),
    ]
}

#[tokio::test]
async fn null_is_refused_wherever_a_field_is_optional() {
    let app = TestApp::start(Backend::Memory).await.expect("memory");
    let audit_before = app.audit_count().await;
    let stack_before = app
        .admin_get(&format!("/api/v1/stacks/{}", app.world.stack))
        .await
        .json();
    let mut problems = Vec::new();
    for case in null_cases(&app) {
        let resp = app
            .send(
                Req::new(case.method, &case.path)
                    .key(&case.key)
                    .json(&case.body),
            )
            .await;
        if resp.status != 400 || resp.json()["code"] != "invalid_body" {
            problems.push(format!(
                "{} {} {}: {} {}",
                case.method, case.path, case.body, resp.status, resp.text
            ));
        }
    }
    assert!(
        problems.is_empty(),
        "null accepted:\n{}",
        problems.join("\n")
    );
    assert_eq!(
        app.audit_count().await,
        audit_before,
        "a refused body stored something"
    );
    let stack_after = app
        .admin_get(&format!("/api/v1/stacks/{}", app.world.stack))
        .await
        .json();
    assert_eq!(stack_after, stack_before);
    app.teardown().await;
}

/// Older agents send `"message": null` and `"summary": null`; until API v2 they count
/// as absent.
#[tokio::test]
async fn older_agents_null_message_and_summary_are_still_accepted() {
    let app = TestApp::start(Backend::Memory).await.expect("memory");
    let w = app.world.clone();
    let object = w.deployment_object.to_string();
    let event = app
        .post(
            &format!("/api/v1/agents/{}/events", w.agent),
            &w.agent_key,
            &json!({"deployment_object_id": object, "event_type": "apply", "status": "success", "message": null}),
        )
        .await;
    event.expect(201);
    assert!(event.json().get("message").is_none(), "{}", event.text);

    let health_path = format!("/api/v1/agents/{}/health", w.agent);
    let report = json!({"deployment_object_id": object, "summary": null, "resources": []});
    app.post(&health_path, &w.agent_key, &report)
        .await
        .expect(204);
    let health = app
        .admin_get(&format!("/api/v1/stacks/{}/health", w.stack))
        .await;
    health.expect(200);
    assert!(
        health.json()["items"][0].get("summary").is_none(),
        "{}",
        health.text
    );
    app.teardown().await;
}

#[tokio::test]
async fn only_the_two_deprecated_fields_are_nullable_in_the_document() {
    let app = TestApp::start(Backend::Memory).await.expect("memory");
    let doc = document(&app).await;
    let mut nullable = Vec::new();
    for (name, schema) in doc["components"]["schemas"].as_object().expect("schemas") {
        if schema["nullable"] == true {
            nullable.push(name.clone());
        }
        for (property, field) in schema["properties"].as_object().into_iter().flatten() {
            if field["nullable"] == true {
                nullable.push(format!("{name}.{property}"));
                let text = field["description"].as_str().unwrap_or_default();
                assert!(text.contains("until API v2"), "{name}.{property}: {text}");
            }
        }
    }
    nullable.sort();
    assert_eq!(
        nullable,
        [
            "CreateAgentEventRequest.message",
            "HealthReportRequest.summary"
        ]
    );
    app.teardown().await;
}

async fn an_empty_description_clears_it(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    for (collection, extra) in [("stacks", json!({})), ("generators", json!({}))] {
        let mut body = json!({"name": format!("described-{collection}"), "description": "words"});
        body.as_object_mut()
            .expect("object")
            .extend(extra.as_object().expect("object").clone());
        let created = app
            .admin_post(&format!("/api/v1/{collection}"), &body)
            .await;
        created.expect(201);
        let created = created.json();
        let resource = created.get("generator").unwrap_or(&created);
        assert_eq!(resource["description"], "words", "{collection}");
        let id = resource["id"].as_str().expect("id").to_owned();

        let path = format!("/api/v1/{collection}/{id}");
        let cleared = app
            .send(
                Req::new("PATCH", &path)
                    .key(&app.world.admin_key)
                    .json(&json!({"description": ""})),
            )
            .await;
        cleared.expect(200);
        assert!(
            cleared.json().get("description").is_none(),
            "{}",
            cleared.text
        );
        let read = app.admin_get(&path).await;
        read.expect(200);
        assert!(read.json().get("description").is_none(), "{}", read.text);

        // Leaving it out changes nothing.
        let renamed = app
            .send(
                Req::new("PATCH", &path)
                    .key(&app.world.admin_key)
                    .json(&json!({"name": format!("renamed-{collection}")})),
            )
            .await;
        renamed.expect(200);
        assert!(
            renamed.json().get("description").is_none(),
            "{}",
            renamed.text
        );
    }

    let empty = app
        .admin_post(
            "/api/v1/templates",
            &json!({"name": "undescribed", "description": "", "content": "x", "parameters_schema": {"type": "object"}}),
        )
        .await;
    empty.expect(201);
    assert!(empty.json().get("description").is_none(), "{}", empty.text);
    app.teardown().await;
}

#[tokio::test]
async fn an_empty_description_clears_it_memory() {
    an_empty_description_clears_it(Backend::Memory).await;
}

#[tokio::test]
async fn an_empty_description_clears_it_sqlite() {
    an_empty_description_clears_it(Backend::Sqlite).await;
}

#[tokio::test]
async fn an_empty_description_clears_it_postgres() {
    an_empty_description_clears_it(Backend::Postgres).await;
}

/// The parameter's schema in the document, by path, method and name.
fn parameter<'a>(doc: &'a Value, path: &str, method: &str, name: &str) -> &'a Value {
    doc["paths"][path][method]["parameters"]
        .as_array()
        .and_then(|params| params.iter().find(|p| p["name"] == name))
        .map(|p| &p["schema"])
        .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"))
}

#[tokio::test]
async fn wait_states_its_range_and_the_server_holds_its_own_bound() {
    let app = TestApp::start(Backend::Memory).await.expect("memory");
    let doc = document(&app).await;
    let wait = parameter(&doc, "/agents/{id}/target-state", "get", "wait");
    assert_eq!(wait["minimum"], 0.0, "{wait}");
    assert_eq!(
        wait["maximum"].as_f64(),
        Some(brokkr_server::config::MAX_LONG_POLL_SECS as f64),
        "{wait}"
    );

    let w = &app.world;
    let path = format!("/api/v1/agents/{}/target-state", w.agent);
    let configured = app.state.config.agents.long_poll_max_secs;
    for wait in [
        "-1".to_owned(),
        "soon".to_owned(),
        (configured + 1).to_string(),
        (brokkr_server::config::MAX_LONG_POLL_SECS + 1).to_string(),
    ] {
        let resp = app.get(&format!("{path}?wait={wait}"), &w.agent_key).await;
        resp.expect(400);
        assert_eq!(resp.json()["code"], "invalid_parameter", "wait={wait}");
    }
    app.get(&format!("{path}?wait=0"), &w.agent_key)
        .await
        .expect(200);
    app.teardown().await;
}

#[tokio::test]
async fn names_and_label_rules_are_in_the_document_and_still_answered_422() {
    let app = TestApp::start(Backend::Memory).await.expect("memory");
    let doc = document(&app).await;
    let schemas = &doc["components"]["schemas"];
    for (schema, field) in [
        ("CreateStackRequest", "name"),
        ("UpdateStackRequest", "name"),
        ("CreateAgentRequest", "name"),
        ("CreateAgentRequest", "cluster_name"),
        ("UpdateAgentRequest", "cluster_name"),
        ("CreateGeneratorRequest", "name"),
        ("UpdateGeneratorRequest", "name"),
        ("CreateTemplateRequest", "name"),
    ] {
        let rule = &schemas[schema]["properties"][field];
        assert_eq!(rule["minLength"], 1, "{schema}.{field}: {rule}");
        assert_eq!(rule["maxLength"], 253, "{schema}.{field}: {rule}");
        assert!(rule["pattern"].is_string(), "{schema}.{field}: {rule}");
    }
    for schema in [
        "CreateStackRequest",
        "UpdateStackRequest",
        "CreateTemplateRequest",
    ] {
        let rule = &schemas[schema]["properties"]["description"];
        assert_eq!(rule["maxLength"], 4096, "{schema}.description: {rule}");
    }
    for schema in [
        "CreateStackRequest",
        "CreateAgentRequest",
        "CreateTemplateRequest",
    ] {
        let labels = &schemas[schema]["properties"]["labels"];
        assert_eq!(labels["additionalProperties"]["maxLength"], 63, "{labels}");
        assert!(
            labels["additionalProperties"]["pattern"].is_string(),
            "{labels}"
        );
        // OpenAPI 3.0 has no rule for map keys: the description states it.
        let text = labels["description"].as_str().unwrap_or_default();
        assert!(text.contains("1-63"), "{schema}.labels: {text}");
    }
    let key = &schemas["MetadataEntry"]["properties"]["key"];
    assert!(key["pattern"].is_string(), "{key}");

    let w = &app.world;
    for (path, body) in [
        ("/api/v1/stacks".to_owned(), json!({"name": " padded"})),
        (
            "/api/v1/stacks".to_owned(),
            json!({"name": "x", "labels": {"-bad": "v"}}),
        ),
        (
            "/api/v1/stacks".to_owned(),
            json!({"name": "y", "labels": {"k": "not valid"}}),
        ),
        (
            "/api/v1/agents".to_owned(),
            json!({"name": "a", "cluster_name": ""}),
        ),
        (
            "/api/v1/generators".to_owned(),
            json!({"name": "g", "description": "d".repeat(4097)}),
        ),
        (
            format!("/api/v1/stacks/{}/labels", w.stack),
            json!({"key": "Bad.Prefix/x", "value": "v"}),
        ),
    ] {
        let resp = app.admin_post(&path, &body).await;
        resp.expect(422);
        assert_eq!(resp.json()["code"], "validation_failed", "{path} {body}");
    }
    app.teardown().await;
}
