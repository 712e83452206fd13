//! A deployment object's YAML as the raw request body (`Content-Type:
//! application/yaml` and its older aliases), on SQLite and PostgreSQL: stored exactly
//! as sent, validated like JSON's `yaml_content`, bounded by the body limit, and
//! documented beside the JSON body in the OpenAPI document.

mod common;

use common::{Backend, Mode, Req, TestApp, test_config};

const CONFIG_MAP: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: from-yaml\n  \
                          namespace: default\ndata:\n  greeting: hello\n";

async fn yaml_bodies_append_deployment_objects(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    let w = &app.world;
    let objects = format!("/api/v1/stacks/{}/deployment-objects", w.stack);

    for content_type in [
        "application/yaml",
        "application/x-yaml",
        "text/yaml; charset=utf-8",
    ] {
        let resp = app
            .send(
                Req::new("POST", objects.as_str())
                    .key(&w.generator_key)
                    .raw(CONFIG_MAP, content_type),
            )
            .await;
        resp.expect(201);
        let created = resp.json();
        assert_eq!(created["yaml_content"], CONFIG_MAP, "{content_type}");
        assert_eq!(created["is_deletion_marker"], false);
        let read = app
            .admin_get(&format!(
                "/api/v1/deployment-objects/{}",
                created["id"].as_str().expect("id")
            ))
            .await;
        read.expect(200);
        assert_eq!(read.json()["yaml_content"], CONFIG_MAP, "{content_type}");
    }

    // Validated like `yaml_content`: nothing stored, the document named.
    let before = app.count_all(&objects).await;
    let resp = app
        .send(
            Req::new("POST", objects.as_str())
                .key(&w.generator_key)
                .raw("kind: ConfigMap\n", "application/yaml"),
        )
        .await;
    resp.expect(422);
    assert_eq!(resp.json()["code"], "invalid_manifest");
    assert_eq!(app.count_all(&objects).await, before);

    // Another media type is still 415.
    let resp = app
        .send(
            Req::new("POST", objects.as_str())
                .key(&w.generator_key)
                .raw(CONFIG_MAP, "text/plain"),
        )
        .await;
    resp.expect(415);
    assert_eq!(resp.json()["code"], "unsupported_media_type");
    app.teardown().await;
}

#[tokio::test]
async fn yaml_bodies_append_deployment_objects_sqlite() {
    yaml_bodies_append_deployment_objects(Backend::Sqlite).await;
}

#[tokio::test]
async fn yaml_bodies_append_deployment_objects_postgres() {
    yaml_bodies_append_deployment_objects(Backend::Postgres).await;
}

/// The body limit holds for YAML as for JSON, over a real socket.
#[tokio::test]
async fn a_yaml_body_over_the_limit_is_413() {
    let mut config = test_config();
    config.server.body_limit_bytes = 1024;
    let app = TestApp::start_with(Backend::Sqlite, Mode::Socket, config)
        .await
        .expect("sqlite");
    let w = &app.world;
    let objects = format!("/api/v1/stacks/{}/deployment-objects", w.stack);
    let large = format!("{CONFIG_MAP}  padding: \"{}\"\n", "x".repeat(2048));
    let resp = app
        .send(
            Req::new("POST", objects.as_str())
                .key(&w.admin_key)
                .raw(large, "application/yaml"),
        )
        .await;
    resp.expect(413);
    assert_eq!(resp.json()["code"], "payload_too_large");
    app.teardown().await;
}

/// The OpenAPI document offers both bodies.
#[tokio::test]
async fn the_document_offers_json_and_yaml_bodies() {
    let app = TestApp::start(Backend::Memory).await.expect("memory");
    let resp = app.send(Req::new("GET", "/openapi.json")).await;
    resp.expect(200);
    let doc: serde_json::Value = serde_json::from_str(&resp.text).expect("JSON");
    let content =
        &doc["paths"]["/stacks/{id}/deployment-objects"]["post"]["requestBody"]["content"];
    assert!(
        content["application/json; charset=utf-8"].is_object(),
        "{content}"
    );
    assert_eq!(
        content["application/yaml"]["schema"]["type"], "string",
        "{content}"
    );
    app.teardown().await;
}
