//! Deployment objects from templates and registered generators, over HTTP: provenance,
//! defaults, dry runs (with their plan), versions, every violation in one 422, bounded rendering, and who
//! may use which template on which stack. Bad input must store nothing.

mod common;

use common::{Backend, Resp, TestApp, assert_error_body};
use serde_json::{Value, json};

const WEB_TEMPLATE: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: {{ params.name }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {{ params.name }}
spec:
  replicas: {{ params.replicas }}
  template:
    spec:
      containers:
        - name: web
          image: {{ params.image | tojson }}
"#;

fn web_schema() -> Value {
    json!({
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "pattern": "^[a-z][a-z0-9-]*$"},
            "replicas": {"type": "integer", "minimum": 1, "maximum": 10, "default": 2},
            "image": {"type": "string", "default": "nginx:1.27"}
        }
    })
}

fn from_template(stack: impl std::fmt::Display) -> String {
    format!("/api/v1/stacks/{stack}/deployment-objects/from-template")
}

fn hex_sha256(text: &str) -> String {
    brokkr_core::model::checksum(text)
}

/// The standard error body, with this status and code.
#[track_caller]
fn expect_error(resp: &Resp, status: u16, code: &str) {
    assert_eq!(resp.status, status, "{}", resp.text);
    assert_error_body(resp, code);
    assert_eq!(resp.json()["code"], code, "{}", resp.text);
}

/// Creates a template as `key` and returns its id.
async fn create_template(
    app: &TestApp,
    key: &str,
    name: &str,
    content: &str,
    schema: Value,
) -> String {
    let resp = app
        .post(
            "/api/v1/templates",
            key,
            &json!({"name": name, "content": content, "parameters_schema": schema}),
        )
        .await;
    resp.expect(201);
    resp.json()["id"].as_str().expect("id").to_owned()
}

/// What the store holds: deployment objects of the world's stack and audit records.
async fn stored(app: &TestApp) -> (usize, usize) {
    let objects = format!("/api/v1/stacks/{}/deployment-objects", app.world.stack);
    (app.count_all(&objects).await, app.audit_count().await)
}

async fn instantiate_and_read_provenance(app: &TestApp) {
    let admin = app.world.admin_key.clone();
    let template = create_template(app, &admin, "web", WEB_TEMPLATE, web_schema()).await;

    let resp = app
        .post(
            &from_template(app.world.stack),
            &admin,
            &json!({"template_id": template, "parameters": {"name": "shop"}}),
        )
        .await;
    resp.expect(201);
    let created = resp.json();
    let yaml = created["yaml_content"].as_str().expect("yaml");
    assert!(yaml.contains("replicas: 2"), "{yaml}");
    assert_eq!(created["yaml_checksum"], hex_sha256(yaml));

    // GET shows the provenance: template, version, and parameters after defaults.
    let id = created["id"].as_str().expect("id");
    let resp = app
        .admin_get(&format!("/api/v1/deployment-objects/{id}"))
        .await;
    resp.expect(200);
    let object = resp.json();
    assert_eq!(object["provenance"]["template_id"], template.as_str());
    assert_eq!(object["provenance"]["template_version"], 1);
    assert_eq!(
        object["provenance"]["parameters"],
        json!({"image": "nginx:1.27", "name": "shop", "replicas": 2})
    );
    assert_eq!(object["yaml_checksum"], created["yaml_checksum"]);

    // The same version and parameters render the same bytes.
    let again = app
        .post(
            &from_template(app.world.stack),
            &admin,
            &json!({"template_id": template, "parameters": {"replicas": 2, "name": "shop"}}),
        )
        .await;
    again.expect(201);
    assert_eq!(again.json()["yaml_checksum"], created["yaml_checksum"]);
}

async fn dry_run_stores_nothing(app: &TestApp) {
    let admin = app.world.admin_key.clone();
    let template = create_template(app, &admin, "web-dry", WEB_TEMPLATE, web_schema()).await;
    let before = stored(app).await;
    let resp = app
        .post(
            &from_template(app.world.stack),
            &admin,
            &json!({"template_id": template, "parameters": {"name": "preview", "replicas": 3}, "dry_run": true}),
        )
        .await;
    resp.expect(200);
    let body = resp.json();
    let yaml = body["yaml_content"].as_str().expect("yaml");
    assert!(yaml.contains("replicas: 3"), "{yaml}");
    assert_eq!(body["yaml_checksum"], hex_sha256(yaml));
    assert_eq!(
        body["objects"],
        json!([
            {"api_version": "v1", "kind": "Namespace", "name": "preview"},
            {"api_version": "apps/v1", "kind": "Deployment", "namespace": "preview", "name": "web"}
        ])
    );
    assert_eq!(body["provenance"]["template_version"], 1);
    // What appending it would do: the seeded agent applied the stack's object, so it
    // would change version; the plan is the one thing stored (and audited).
    let plan = &body["plan"];
    assert_eq!(
        plan["change"],
        json!({"change": "deployment_object", "yaml_checksum": hex_sha256(yaml)})
    );
    assert_eq!(plan["summary"]["agents_changing"], 1, "{plan}");
    assert_eq!(plan["groups"][0]["to_proposed"], true, "{plan}");
    let (objects, audited) = stored(app).await;
    assert_eq!(
        (objects, audited),
        (before.0, before.1 + 1),
        "a dry run stored something besides its plan"
    );
    let newest = app
        .admin_get("/api/v1/admin/audit-logs?order=desc&limit=1")
        .await
        .json();
    assert_eq!(newest["items"][0]["resource_type"], "plan");
    assert_eq!(newest["items"][0]["resource_id"], plan["plan_id"]);

    // `?dry_run=true` is the same dry run.
    let resp = app
        .post(
            &format!("{}?dry_run=true", from_template(app.world.stack)),
            &admin,
            &json!({"template_id": template, "parameters": {"name": "preview", "replicas": 3}}),
        )
        .await;
    resp.expect(200);
    assert_eq!(resp.json()["yaml_checksum"], hex_sha256(yaml));
    assert_eq!(stored(app).await.0, before.0, "a dry run appended");
}

async fn older_versions_stay_usable(app: &TestApp) {
    let admin = app.world.admin_key.clone();
    let v1 = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  version: \"one\"\n";
    let v2 = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\ndata:\n  version: \"two\"\n";
    let template = create_template(app, &admin, "versioned", v1, json!({})).await;
    let resp = app
        .send(
            common::Req::new("PUT", format!("/api/v1/templates/{template}"))
                .key(&admin)
                .json(&json!({"content": v2, "parameters_schema": {}})),
        )
        .await;
    resp.expect(200);
    assert_eq!(resp.json()["version"], 2);

    for (version, expected) in [(Some(1), "one"), (Some(2), "two"), (None, "two")] {
        let mut body = json!({"template_id": template, "dry_run": true});
        if let Some(v) = version {
            body["version"] = json!(v);
        }
        let resp = app
            .post(&from_template(app.world.stack), &admin, &body)
            .await;
        resp.expect(200);
        let yaml = resp.json()["yaml_content"].as_str().unwrap().to_owned();
        assert!(yaml.contains(expected), "version {version:?}: {yaml}");
    }
    let resp = app
        .post(
            &from_template(app.world.stack),
            &admin,
            &json!({"template_id": template, "version": 3}),
        )
        .await;
    resp.expect(404);
}

async fn bad_requests_store_nothing(app: &TestApp) {
    let admin = app.world.admin_key.clone();
    let web = create_template(app, &admin, "web-bad", WEB_TEMPLATE, web_schema()).await;
    let endless = create_template(
        app,
        &admin,
        "endless",
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
        json!({}),
    )
    .await;
    let broken_output = create_template(
        app,
        &admin,
        "broken-output",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ok\n---\nkind: Secret\n",
        json!({}),
    )
    .await;
    let undefined = create_template(
        app,
        &admin,
        "undefined",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {{ params.missing }}\n",
        json!({}),
    )
    .await;
    let before = stored(app).await;
    let stack = from_template(app.world.stack);

    // Every violation, each with its pointer, in one answer.
    let resp = app
        .post(
            &stack,
            &admin,
            &json!({"template_id": web, "parameters": {"name": "Bad Name", "replicas": 0, "image": 7}}),
        )
        .await;
    expect_error(&resp, 422, "invalid_parameters");
    let mut pointers: Vec<String> = resp.json()["details"]["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .map(|v| v["pointer"].as_str().unwrap().to_owned())
        .collect();
    pointers.sort();
    assert_eq!(pointers, ["/image", "/name", "/replicas"]);

    let cases: Vec<(Value, u16, &str)> = vec![
        (
            json!({"template_id": web, "parameters": {}}),
            422,
            "invalid_parameters",
        ),
        (json!({"template_id": endless}), 422, "render_failed"),
        (json!({"template_id": undefined}), 422, "render_failed"),
        (
            json!({"template_id": broken_output}),
            422,
            "invalid_manifest",
        ),
        (
            json!({"template_id": web, "generator": "configmap", "parameters": {"name": "x"}}),
            422,
            "validation_failed",
        ),
        (
            json!({"parameters": {"name": "x"}}),
            422,
            "validation_failed",
        ),
        (
            json!({"generator": "configmap", "version": 1, "parameters": {"name": "x"}}),
            422,
            "validation_failed",
        ),
        (json!({"generator": "no-such-generator"}), 404, "not_found"),
        (
            json!({"template_id": uuid::Uuid::now_v7()}),
            404,
            "not_found",
        ),
        (
            json!({"generator": "configmap", "parameters": {"name": "x", "data": {"n": 1}}}),
            422,
            "invalid_parameters",
        ),
        (
            json!({"generator": "configmap", "parameters": "not an object"}),
            422,
            "invalid_parameters",
        ),
    ];
    for (body, status, code) in cases {
        let resp = app.post(&stack, &admin, &body).await;
        assert_eq!(resp.status, status, "{body}: {}", resp.json());
        expect_error(&resp, status, code);
    }
    let render = app
        .post(&stack, &admin, &json!({"template_id": endless}))
        .await;
    let message = render.json()["message"].as_str().unwrap().to_owned();
    assert!(message.contains("ran out of fuel"), "{message}");

    // Templates that cannot work are refused when stored.
    for (content, schema) in [
        ("{% for x in %}", json!({})),
        ("ok", json!({"type": "not-a-type"})),
        ("ok", json!({"$ref": "https://example.com/remote.json"})),
    ] {
        let resp = app
            .admin_post(
                "/api/v1/templates",
                &json!({"name": "refused", "content": content, "parameters_schema": schema}),
            )
            .await;
        expect_error(&resp, 422, "invalid_template");
    }
    assert_eq!(stored(app).await, before, "bad input changed the store");
}

async fn registered_generators_are_listed_and_callable(app: &TestApp) {
    let admin = app.world.admin_key.clone();
    let resp = app.admin_get("/api/v1/registered-generators").await;
    resp.expect(200);
    let items = resp.json()["items"].clone();
    assert_eq!(items[0]["name"], "configmap");
    assert_eq!(items[0]["parameters_schema"]["required"], json!(["name"]));

    let resp = app
        .post(
            &from_template(app.world.stack),
            &admin,
            &json!({"generator": "configmap", "parameters": {"name": "settings"}}),
        )
        .await;
    resp.expect(201);
    let created = resp.json();
    assert_eq!(
        created["provenance"],
        json!({"generator": "configmap", "parameters": {"name": "settings", "data": {"from": "generator"}}})
    );
    let yaml = created["yaml_content"].as_str().unwrap();
    assert!(yaml.contains("stack: stack-a"), "{yaml}");

    let resp = app.admin_get("/api/v1/registered-generators/nope").await;
    expect_error(&resp, 404, "not_found");
}

/// A generator uses its own and global templates on its own stacks; another
/// generator's template or stack does not exist for it; admin works everywhere.
async fn generators_stay_in_their_scope(app: &TestApp) {
    let w = &app.world;
    let admin = w.admin_key.clone();
    let global = create_template(app, &admin, "global", WEB_TEMPLATE, web_schema()).await;
    let theirs = create_template(
        app,
        &w.other_generator_key,
        "theirs",
        WEB_TEMPLATE,
        web_schema(),
    )
    .await;
    let params = json!({"name": "scoped"});
    let body =
        |template: &str| json!({"template_id": template, "parameters": params, "dry_run": true});

    let mine = app
        .post(&from_template(w.stack), &w.generator_key, &body(&global))
        .await;
    mine.expect(200);
    let own_template = app
        .post(
            &from_template(w.stack),
            &w.generator_key,
            &json!({"template_id": w.template, "parameters": {"name": "own"}}),
        )
        .await;
    own_template.expect(201);
    let resp = app
        .post(&from_template(w.stack), &w.generator_key, &body(&theirs))
        .await;
    expect_error(&resp, 404, "not_found");
    let resp = app
        .post(
            &from_template(w.other_stack),
            &w.generator_key,
            &body(&global),
        )
        .await;
    expect_error(&resp, 404, "not_found");
    let resp = app
        .post(&from_template(w.stack), &w.agent_key, &body(&global))
        .await;
    expect_error(&resp, 403, "forbidden");
    let resp = app
        .post(&from_template(w.other_stack), &admin, &body(&theirs))
        .await;
    resp.expect(200);

    // A generator's stack created through the API can be filled from a template.
    let resp = app
        .post(
            "/api/v1/stacks",
            &w.generator_key,
            &json!({"name": "generated-stack"}),
        )
        .await;
    resp.expect(201);
    let stack = resp.json()["id"].as_str().unwrap().to_owned();
    let resp = app
        .post(
            &from_template(&stack),
            &w.generator_key,
            &json!({"template_id": global, "parameters": {"name": "fresh"}}),
        )
        .await;
    resp.expect(201);
    assert_eq!(resp.json()["provenance"]["template_id"], global.as_str());
}

async fn scenario(backend: Backend) {
    let Some(app) = TestApp::start(backend).await else {
        return;
    };
    instantiate_and_read_provenance(&app).await;
    dry_run_stores_nothing(&app).await;
    older_versions_stay_usable(&app).await;
    bad_requests_store_nothing(&app).await;
    registered_generators_are_listed_and_callable(&app).await;
    generators_stay_in_their_scope(&app).await;
    app.teardown().await;
}

#[tokio::test]
async fn generate_memory() {
    scenario(Backend::Memory).await;
}

#[tokio::test]
async fn generate_sqlite() {
    scenario(Backend::Sqlite).await;
}

#[tokio::test]
async fn generate_postgres() {
    scenario(Backend::Postgres).await;
}
