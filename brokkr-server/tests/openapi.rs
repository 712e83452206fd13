//! The OpenAPI document tells the truth.
//!
//! - `/openapi.json` is JSON with `openapi: 3.x`, one server `/api/v1`, every
//!   operation with a bearer security requirement (the public probes live outside the
//!   service, so none is exempt) and its success and 401 responses declared.
//! - Every documented operation is served (it answers neither 405 nor the router's
//!   404), and no undocumented route is served: every method on every documented path
//!   and on every path DESIGN.md names either is documented or answers 404/405.

mod common;

use std::collections::BTreeSet;

use common::ops::{fill, fill_value, openapi_operations, table, table_template};
use common::{Backend, Req, Resp, TestApp};
use serde_json::Value;

async fn document(app: &TestApp) -> Value {
    let resp = app.send(Req::new("GET", "/openapi.json")).await;
    resp.expect(200);
    let content_type = resp.header("content-type").unwrap_or_default().to_owned();
    assert!(
        content_type.starts_with("application/json"),
        "content type {content_type}"
    );
    serde_json::from_str(&resp.text).expect("/openapi.json is JSON")
}

#[tokio::test]
async fn the_document_is_openapi_3_and_every_operation_is_secured() {
    let app = TestApp::start(Backend::Memory).await.expect("memory");
    let doc = document(&app).await;
    let version = doc["openapi"].as_str().unwrap_or_default();
    assert!(version.starts_with("3."), "openapi version {version:?}");
    assert!(doc["info"]["title"].is_string(), "info.title");
    assert!(doc["info"]["version"].is_string(), "info.version");

    let schemes = doc["components"]["securitySchemes"]
        .as_object()
        .expect("components.securitySchemes");
    assert!(
        schemes
            .values()
            .any(|s| s["type"] == "http" && s["scheme"] == "bearer"),
        "a bearer scheme: {schemes:?}"
    );

    // Paths are relative to the one server, `/api/v1`.
    assert_eq!(
        doc["servers"][0]["url"], "/api/v1",
        "servers: {}",
        doc["servers"]
    );
    let mut problems = Vec::new();
    let paths = doc["paths"].as_object().expect("paths");
    assert!(!paths.is_empty(), "no paths");
    for (path, item) in paths {
        if !path.starts_with('/') || path.starts_with("/api/v1") {
            problems.push(format!("{path}: not relative to the /api/v1 server"));
        }
        for (method, operation) in item.as_object().expect("path item") {
            if !["get", "post", "put", "patch", "delete"].contains(&method.as_str()) {
                continue;
            }
            let name = format!("{} {path}", method.to_uppercase());
            let secured = operation["security"].as_array().is_some_and(|reqs| {
                !reqs.is_empty()
                    && reqs.iter().all(|r| {
                        r.as_object().is_some_and(|r| {
                            !r.is_empty() && r.keys().all(|k| schemes.contains_key(k))
                        })
                    })
            });
            if !secured {
                problems.push(format!("{name}: no security requirement"));
            }
            let responses = operation["responses"].as_object();
            let has = |code: &str| responses.is_some_and(|r| r.contains_key(code));
            if !["200", "201", "202", "204"].iter().any(|c| has(c)) {
                problems.push(format!("{name}: no success response declared"));
            }
            if !has("401") {
                problems.push(format!("{name}: 401 not declared"));
            }
            if operation["operationId"].as_str().is_none_or(str::is_empty)
                && operation["summary"].as_str().is_none_or(str::is_empty)
            {
                problems.push(format!("{name}: neither operationId nor summary"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
    app.teardown().await;
}

/// The router's own "no such route" (as opposed to a handler's JSON `not_found`).
fn route_missing(resp: &Resp) -> bool {
    resp.status == 405 || (resp.status == 404 && resp.json()["code"] != "not_found")
}

#[tokio::test]
async fn every_documented_operation_is_served_and_nothing_else() {
    let probe = TestApp::start(Backend::Memory).await.expect("memory");
    let doc = document(&probe).await;
    let documented = openapi_operations(&doc);
    probe.teardown().await;

    let mut problems = Vec::new();
    let table = table();

    // Documented -> served (called as the caller it succeeds for, on a fresh world).
    for (method, template) in &documented {
        let Some(op) = table
            .iter()
            .find(|op| op.method == method && table_template(op.path) == *template)
        else {
            problems.push(format!(
                "{method} {template}: documented, no recipe to call it"
            ));
            continue;
        };
        let app = TestApp::start(Backend::Memory).await.expect("memory");
        let (caller, status) = op.succeeding_caller();
        let mut req = Req::new(method, format!("/api/v1{}", fill(op.path, &app.world)))
            .caller(caller, &app.world);
        if let Some(body) = &op.body {
            req = req.json(&fill_value(body, &app.world));
        }
        let resp = app.send(req).await;
        if route_missing(&resp) || resp.status != status {
            problems.push(format!(
                "{method} {template}: documented but answered {} {}",
                resp.status, resp.text
            ));
        }
        app.teardown().await;
    }

    // Served -> documented: every method on every known path.
    let app = TestApp::start(Backend::Memory).await.expect("memory");
    let mut paths: BTreeSet<String> = table.iter().map(|op| op.path.to_owned()).collect();
    for extra in [
        "/stacks/{stack}/deployment-objects/{deployment_object}",
        "/agents/{agent}/events/{event}",
        "/agent-events/{event}",
        "/auth/pak",
        "/admin/audit-logs",
        "/admin/keys",
        "/agents/{agent}/heartbeat",
        "/generators/{generator}/stacks",
        "/templates/{template}/instantiate",
    ] {
        paths.insert(extra.to_owned());
    }
    for path in &paths {
        for method in ["GET", "POST", "PUT", "PATCH", "DELETE"] {
            let template = table_template(path);
            if documented.contains(&(method.to_owned(), template.clone())) {
                continue;
            }
            let resp = app
                .send(
                    Req::new(method, format!("/api/v1{}", fill(path, &app.world)))
                        .key(&app.world.admin_key)
                        .json(&serde_json::json!({})),
                )
                .await;
            // Not documented, so no handler can answer: anything but the router's
            // 404/405 means an undocumented route.
            if resp.status != 404 && resp.status != 405 {
                problems.push(format!(
                    "{method} {template}: served ({}) but not documented",
                    resp.status
                ));
            }
            if resp.status == 405 && resp.header("allow").is_none() {
                problems.push(format!("{method} {template}: 405 without an Allow header"));
            }
        }
    }
    app.teardown().await;
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

/// The probes and docs live outside the documented service and need no key.
#[tokio::test]
async fn probes_and_docs_are_public_and_outside_the_document() {
    let app = TestApp::start(Backend::Memory).await.expect("memory");
    let doc = document(&app).await;
    for path in ["/healthz", "/readyz", "/metrics", "/docs"] {
        let resp = app.send(Req::new("GET", path)).await;
        assert_eq!(resp.status, 200, "{path}: {}", resp.text);
        assert!(
            doc["paths"].get(path).is_none(),
            "{path} is a probe, not an API operation"
        );
    }
    app.teardown().await;
}

/// Every `limit` parameter states the range the server enforces (1-1000), so clients
/// and fuzzers can know it; a value outside it is `400 invalid_parameter`.
#[tokio::test]
async fn every_limit_parameter_states_its_range() {
    let app = TestApp::start(Backend::Memory).await.expect("memory");
    let doc = document(&app).await;
    let mut limits = 0;
    let mut problems = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let parameters = operation["parameters"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            for parameter in parameters.iter().filter(|p| p["name"] == "limit") {
                limits += 1;
                let schema = &parameter["schema"];
                let bound = |name: &str| schema[name].as_f64();
                if bound("minimum") != Some(1.0) || bound("maximum") != Some(1000.0) {
                    problems.push(format!("{method} {path}: limit schema {schema}"));
                }
            }
        }
    }
    assert!(limits >= 10, "only {limits} listings take a limit");
    assert!(problems.is_empty(), "{problems:#?}");

    for limit in ["0", "1001", "ten"] {
        let resp = app
            .get(
                &format!("/api/v1/stacks?limit={limit}"),
                &app.world.admin_key,
            )
            .await;
        resp.expect(400);
        assert_eq!(resp.json()["code"], "invalid_parameter", "limit={limit}");
    }
    app.get("/api/v1/stacks?limit=1000", &app.world.admin_key)
        .await
        .expect(200);
}

/// The listings that leave out a large field document `?include=` with its one value,
/// and their entries' schema has that field optional and its size required, while the
/// single resource's schema keeps the field required: deployment objects
/// (`yaml_content`) and templates (`content`, with `parameters_schema`).
#[tokio::test]
async fn the_listings_document_their_include_parameter() {
    let app = TestApp::start(Backend::Memory).await.expect("memory");
    let doc = document(&app).await;
    let listings = [
        (
            "/stacks/{id}/deployment-objects",
            "yaml_content",
            ("ListedDeploymentObject", "DeploymentObject"),
            &["yaml_content"][..],
            &["yaml_bytes"][..],
        ),
        (
            "/templates",
            "content",
            ("ListedTemplate", "Template"),
            &["content", "parameters_schema"][..],
            &["content_bytes", "parameters_schema_bytes"][..],
        ),
    ];
    for (path, value, (listed, single), optional, sizes) in listings {
        check_include(&doc, path, value);
        let listed = required(&doc, listed);
        let single = required(&doc, single);
        for field in optional {
            assert!(!listed.contains(&(*field).to_owned()), "{path}: {listed:?}");
            assert!(single.contains(&(*field).to_owned()), "{path}: {single:?}");
        }
        for field in sizes {
            assert!(listed.contains(&(*field).to_owned()), "{path}: {listed:?}");
        }
    }
    let page = &doc["components"]["schemas"]["TemplatePage"]["properties"]["items"]["items"];
    assert_eq!(
        page["$ref"], "#/components/schemas/ListedTemplate",
        "{page}"
    );
    app.teardown().await;
}

/// The GET at `path` takes an optional `include` query parameter whose only value is
/// `value`, named in its description.
fn check_include(doc: &serde_json::Value, path: &str, value: &str) {
    let listing = &doc["paths"][path]["get"];
    let parameters = listing["parameters"].as_array().expect("parameters");
    let include = parameters
        .iter()
        .find(|p| p["name"] == "include")
        .unwrap_or_else(|| panic!("{path}: an include parameter"));
    assert_eq!(include["in"], "query");
    assert_eq!(include["required"], false);
    assert!(
        include["description"]
            .as_str()
            .is_some_and(|d| d.contains(value)),
        "{include}"
    );
    let mut allowed = include["schema"].clone();
    if let Some(reference) = allowed["$ref"].as_str() {
        let name = reference.rsplit('/').next().expect("a schema name");
        allowed = doc["components"]["schemas"][name].clone();
    }
    assert_eq!(allowed["enum"], serde_json::json!([value]), "{allowed}");
}

/// The required fields of a schema of the document.
fn required(doc: &serde_json::Value, schema: &str) -> Vec<String> {
    doc["components"]["schemas"][schema]["required"]
        .as_array()
        .expect("required fields")
        .iter()
        .map(|f| f.as_str().expect("a name").to_owned())
        .collect()
}

/// Every operation that takes a body documents 415, which the HTTP layer answers (with
/// the JSON error body) to a body of another content type.
#[tokio::test]
async fn operations_with_a_body_document_415_and_answer_it() {
    let app = TestApp::start(Backend::Memory).await.expect("memory");
    let doc = document(&app).await;
    let mut bodies = 0;
    let mut problems = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if operation.get("requestBody").is_none() {
                continue;
            }
            bodies += 1;
            if operation["responses"].get("415").is_none() {
                problems.push(format!("{method} {path}"));
            }
        }
    }
    assert!(bodies >= 10, "only {bodies} operations take a body");
    assert!(problems.is_empty(), "no 415 documented: {problems:#?}");

    let resp = app
        .send(
            Req::new("POST", "/api/v1/stacks")
                .key(&app.world.admin_key)
                .raw(b"name=plain".to_vec(), "text/plain"),
        )
        .await;
    resp.expect(415);
    assert_eq!(resp.json()["code"], "unsupported_media_type");
}

/// Words an operation id may start with: the scheme is camelCase verb + noun
/// (`listStacks`, `getTargetState`), listed in docs/api.md.
const OPERATION_VERBS: &[&str] = &[
    "list", "get", "create", "update", "delete", "put", "remove", "set", "assign", "unassign",
    "rotate", "send", "report", "verify", "preview", "plan", "confirm", "rollback", "pause",
    "resume", "abort", "approve", "promote", "retry",
];

/// Every operation has an `operationId` that follows the scheme, and no two share one, so
/// generated clients get one stable, readable method per operation.
#[tokio::test]
async fn every_operation_has_a_unique_camel_case_operation_id() {
    let app = TestApp::start(Backend::Memory).await.expect("memory");
    let doc = document(&app).await;
    let mut seen = std::collections::BTreeMap::new();
    let mut problems = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            let Some(id) = operation["operationId"].as_str() else {
                problems.push(format!("{method} {path}: no operationId"));
                continue;
            };
            let camel = id.chars().all(|c| c.is_ascii_alphanumeric())
                && id.starts_with(|c: char| c.is_ascii_lowercase());
            let verb = OPERATION_VERBS.iter().any(|verb| {
                id.strip_prefix(verb)
                    .is_some_and(|noun| noun.starts_with(|c: char| c.is_ascii_uppercase()))
            });
            if !camel || !verb {
                problems.push(format!("{method} {path}: {id:?} is not camelCase verbNoun"));
            }
            if let Some(other) = seen.insert(id.to_owned(), format!("{method} {path}")) {
                problems.push(format!("{method} {path}: {id:?} is also {other}"));
            }
        }
    }
    assert!(seen.len() >= 50, "only {} operations", seen.len());
    assert!(problems.is_empty(), "{problems:#?}");
    app.teardown().await;
}

/// A field an answer leaves out when it is empty is not required by its schema, or a
/// client validating answers rejects them: the placement decision's `leaving` list.
#[tokio::test]
async fn fields_left_out_when_empty_are_optional() {
    let app = TestApp::start(Backend::Memory).await.expect("memory");
    let doc = document(&app).await;
    let decision = required(&doc, "PlacementDecision");
    assert!(decision.contains(&"chosen".to_owned()), "{decision:?}");
    assert!(!decision.contains(&"leaving".to_owned()), "{decision:?}");
}
