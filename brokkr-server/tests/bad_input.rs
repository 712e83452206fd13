//! Bad input gets its documented 4xx with a `{code, message}` body, never a 500, and
//! leaves the store unchanged (counted through the listings and the audit log before
//! and after).

mod common;

use common::{Backend, Mode, Req, TestApp, assert_error_body, test_config};
use serde_json::json;

/// What the store holds, as the admin sees it.
async fn snapshot(app: &TestApp) -> Vec<(String, usize)> {
    let w = &app.world;
    let mut counts = Vec::new();
    for path in [
        "/api/v1/admin/audit-logs".to_owned(),
        "/api/v1/stacks?include_deleted=true".to_owned(),
        "/api/v1/agents".to_owned(),
        "/api/v1/generators".to_owned(),
        "/api/v1/templates".to_owned(),
        format!("/api/v1/stacks/{}/deployment-objects", w.stack),
        format!("/api/v1/agents/{}/targets", w.agent),
        "/api/v1/agent-events".to_owned(),
    ] {
        counts.push((path.clone(), app.count_all(&path).await));
    }
    let health = format!("/api/v1/stacks/{}/health", w.stack);
    let resp = app.admin_get(&health).await;
    resp.expect(200);
    counts.push((health, resp.json()["items"].as_array().map_or(0, Vec::len)));
    for path in [
        format!("/api/v1/stacks/{}/labels", w.stack),
        format!("/api/v1/agents/{}/labels", w.agent),
        format!("/api/v1/templates/{}/labels", w.template),
    ] {
        let resp = app.admin_get(&path).await;
        resp.expect(200);
        counts.push((path, resp.json().as_object().map_or(0, |m| m.len())));
    }
    counts
}

/// A health report about `object` with one Deployment `name` in `status`.
fn health_report(object: impl std::fmt::Display, status: &str, name: &str) -> serde_json::Value {
    json!({
        "deployment_object_id": object.to_string(),
        "resources": [{"api_version": "apps/v1", "kind": "Deployment", "name": name, "status": status}],
    })
}

/// One bad request and the status and code it must get.
struct Case {
    what: &'static str,
    req: Req,
    status: u16,
    /// Expected `code`, when the contract names one.
    code: Option<&'static str>,
}

fn cases(app: &TestApp) -> Vec<Case> {
    let w = &app.world;
    let admin = w.admin_key.as_str();
    let unknown = uuid::Uuid::now_v7();
    let stack_objects = format!("/api/v1/stacks/{}/deployment-objects", w.stack);
    let invalid_yaml =
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\n---\nkind: [unclosed\n";
    let missing_kind = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: ok\n---\napiVersion: v1\nmetadata:\n  name: nokind\n";
    let case = |what, req, status, code| Case {
        what,
        req,
        status,
        code,
    };
    vec![
        case(
            "malformed JSON",
            Req::new("POST", "/api/v1/stacks")
                .key(admin)
                .raw("{\"name\": ", "application/json"),
            400,
            Some("invalid_body"),
        ),
        case(
            "wrong type",
            Req::new("POST", "/api/v1/stacks")
                .key(admin)
                .json(&json!({"name": {"not": "a string"}})),
            400,
            Some("invalid_body"),
        ),
        case(
            "missing required field",
            Req::new("POST", "/api/v1/agents")
                .key(admin)
                .json(&json!({"name": "x"})),
            400,
            None,
        ),
        case(
            "wrong content type",
            Req::new("POST", "/api/v1/stacks")
                .key(admin)
                .raw("name=x", "application/x-www-form-urlencoded"),
            // poem-openapi answers an unsupported media type with 415; 400 is also
            // acceptable. See the assertion below.
            415,
            None,
        ),
        case(
            "path id not a uuid",
            Req::new("GET", "/api/v1/stacks/not-a-uuid").key(admin),
            400,
            None,
        ),
        case(
            "unknown stack",
            Req::new("GET", format!("/api/v1/stacks/{unknown}")).key(admin),
            404,
            Some("not_found"),
        ),
        case(
            "unknown agent's target state",
            Req::new("GET", format!("/api/v1/agents/{unknown}/target-state")).key(admin),
            404,
            Some("not_found"),
        ),
        case(
            "deployment object on unknown stack",
            Req::new("POST", format!("/api/v1/stacks/{unknown}/deployment-objects"))
                .key(admin)
                .json(&json!({"yaml_content": common::CONFIGMAP_YAML})),
            404,
            Some("not_found"),
        ),
        case(
            "assign unknown stack",
            Req::new("POST", format!("/api/v1/agents/{}/targets", w.agent))
                .key(admin)
                .json(&json!({"stack_id": unknown})),
            404,
            Some("not_found"),
        ),
        case(
            "assign to unknown agent",
            Req::new("POST", format!("/api/v1/agents/{unknown}/targets"))
                .key(admin)
                .json(&json!({"stack_id": w.spare_stack})),
            404,
            Some("not_found"),
        ),
        case(
            "duplicate stack name",
            Req::new("POST", "/api/v1/stacks")
                .key(admin)
                .json(&json!({"name": "stack-a"})),
            409,
            Some("conflict"),
        ),
        case(
            "duplicate generator name",
            Req::new("POST", "/api/v1/generators")
                .key(admin)
                .json(&json!({"name": "gen-a"})),
            409,
            Some("conflict"),
        ),
        case(
            "duplicate agent",
            Req::new("POST", "/api/v1/agents")
                .key(admin)
                .json(&json!({"name": "agent-a", "cluster_name": "cluster"})),
            409,
            Some("conflict"),
        ),
        case(
            "target already assigned",
            Req::new("POST", format!("/api/v1/agents/{}/targets", w.agent))
                .key(admin)
                .json(&json!({"stack_id": w.stack})),
            409,
            Some("conflict"),
        ),
        case(
            "invalid YAML",
            Req::new("POST", stack_objects.clone())
                .key(admin)
                .json(&json!({"yaml_content": invalid_yaml})),
            422,
            Some("invalid_manifest"),
        ),
        case(
            "document without kind",
            Req::new("POST", stack_objects.clone())
                .key(admin)
                .json(&json!({"yaml_content": missing_kind})),
            422,
            Some("invalid_manifest"),
        ),
        case(
            "empty YAML",
            Req::new("POST", stack_objects.clone())
                .key(admin)
                .json(&json!({"yaml_content": ""})),
            422,
            None,
        ),
        case(
            "oversized body",
            Req::new("POST", stack_objects.clone()).key(admin).json(&json!({
                "yaml_content": format!("{}# {}\n", common::CONFIGMAP_YAML, "x".repeat(64 * 1024))
            })),
            413,
            None,
        ),
        case(
            "invalid label key",
            Req::new("POST", format!("/api/v1/stacks/{}/labels", w.stack))
                .key(admin)
                .json(&json!({"key": "-bad key!", "value": "x"})),
            422,
            None,
        ),
        case(
            "invalid label value",
            Req::new("POST", format!("/api/v1/agents/{}/labels", w.agent))
                .key(admin)
                .json(&json!({"key": "ok", "value": "spaces are not allowed"})),
            422,
            None,
        ),
        case(
            "invalid stack name",
            Req::new("POST", "/api/v1/stacks")
                .key(admin)
                .json(&json!({"name": ""})),
            422,
            None,
        ),
        case(
            "remove a label that is not set",
            Req::new("DELETE", format!("/api/v1/stacks/{}/labels/absent", w.stack)).key(admin),
            404,
            Some("not_found"),
        ),
        case(
            "limit=0",
            Req::new("GET", "/api/v1/stacks?limit=0").key(admin),
            400,
            Some("invalid_parameter"),
        ),
        case(
            "limit=5000",
            Req::new("GET", "/api/v1/stacks?limit=5000").key(admin),
            400,
            Some("invalid_parameter"),
        ),
        case(
            "limit not a number",
            Req::new("GET", "/api/v1/stacks?limit=many").key(admin),
            400,
            None,
        ),
        case(
            "bad order",
            Req::new("GET", "/api/v1/stacks?order=sideways").key(admin),
            400,
            None,
        ),
        case(
            "bad cursor",
            Req::new("GET", "/api/v1/stacks?cursor=%00garbage%FF").key(admin),
            400,
            None,
        ),
        case(
            "wait=999",
            Req::new(
                "GET",
                format!("/api/v1/agents/{}/target-state?wait=999", w.agent),
            )
            .key(&w.agent_key),
            400,
            Some("invalid_parameter"),
        ),
        case(
            "event about an unknown deployment object",
            Req::new("POST", format!("/api/v1/agents/{}/events", w.agent))
                .key(&w.agent_key)
                .json(&json!({"deployment_object_id": unknown, "event_type": "apply", "status": "success"})),
            404,
            Some("not_found"),
        ),
        case(
            "event with an unknown event_type",
            Req::new("POST", format!("/api/v1/agents/{}/events", w.agent))
                .key(&w.agent_key)
                .json(&json!({"deployment_object_id": w.deployment_object, "event_type": "explode", "status": "success"})),
            400,
            None,
        ),
        case(
            "health of an unknown deployment object",
            Req::new("POST", format!("/api/v1/agents/{}/health", w.agent))
                .key(&w.agent_key)
                .json(&json!({"deployment_object_id": unknown, "resources": []})),
            404,
            Some("not_found"),
        ),
        case(
            "health with an unknown status",
            Req::new("POST", format!("/api/v1/agents/{}/health", w.agent))
                .key(&w.agent_key)
                .json(&health_report(w.deployment_object, "exploded", "web")),
            400,
            Some("invalid_body"),
        ),
        case(
            "health of a resource without a name",
            Req::new("POST", format!("/api/v1/agents/{}/health", w.agent))
                .key(&w.agent_key)
                .json(&health_report(w.deployment_object, "healthy", "")),
            422,
            Some("validation_failed"),
        ),
        case(
            "health of an unknown stack",
            Req::new("GET", format!("/api/v1/stacks/{unknown}/health")).key(admin),
            404,
            Some("not_found"),
        ),
        case(
            "template schema not an object",
            Req::new("POST", "/api/v1/templates")
                .key(admin)
                .json(&json!({"name": "t2", "content": "kind: X\n", "parameters_schema": 5})),
            422,
            None,
        ),
    ]
}

async fn bad_input_is_rejected_without_side_effects(backend: Backend) {
    let mut config = test_config();
    // Small enough that the 64 KiB case is over it.
    config.server.body_limit_bytes = 16 * 1024;
    let Some(app) = TestApp::start_with(backend, Mode::InProcess, config).await else {
        return;
    };
    let before = snapshot(&app).await;
    let mut failures = Vec::new();
    for case in cases(&app) {
        let resp = app.send(case.req).await;
        let body = resp.json();
        let status_ok = resp.status == case.status
            // An unsupported media type may also be answered with a plain 400.
            || (case.status == 415 && resp.status == 400);
        let code_ok = case
            .code
            .is_none_or(|code| body["code"].as_str() == Some(code));
        let shape_ok = body["code"].as_str().is_some_and(|c| !c.is_empty())
            && body["message"].as_str().is_some_and(|m| !m.is_empty());
        if !(status_ok && code_ok && shape_ok) || resp.status >= 500 {
            failures.push(format!(
                "{:<40} expected {} {:?}, got {} {}",
                case.what,
                case.status,
                case.code,
                resp.status,
                resp.text.chars().take(200).collect::<String>()
            ));
        } else if resp.status < 500 {
            assert_error_body(&resp, case.what);
        }
        if case.what == "invalid YAML" || case.what == "document without kind" {
            // The 422 names the bad document (the second one, index 1).
            let details = &body["details"];
            if details["document"] != json!(1) {
                failures.push(format!(
                    "{:<40} details must name document 1: {}",
                    case.what, resp.text
                ));
            }
        }
    }
    let after = snapshot(&app).await;
    assert!(
        failures.is_empty(),
        "{:?}: {} bad requests were answered wrongly:\n{}",
        backend,
        failures.len(),
        failures.join("\n")
    );
    assert_eq!(before, after, "{backend:?}: bad input changed the store");
    app.teardown().await;
}

#[tokio::test]
async fn bad_input_memory() {
    bad_input_is_rejected_without_side_effects(Backend::Memory).await;
}

#[tokio::test]
async fn bad_input_sqlite() {
    bad_input_is_rejected_without_side_effects(Backend::Sqlite).await;
}

#[tokio::test]
async fn bad_input_postgres() {
    bad_input_is_rejected_without_side_effects(Backend::Postgres).await;
}

/// A health report of more resources than a report may hold is a 422 that stores
/// nothing (its own test: the body is larger than the other cases' body limit).
#[tokio::test]
async fn too_many_health_resources_is_422() {
    let app = TestApp::start(Backend::Sqlite).await.expect("sqlite");
    let w = app.world.clone();
    let before = snapshot(&app).await;
    let resource = json!({"api_version": "v1", "kind": "Pod", "name": "p", "status": "healthy"});
    let body = json!({
        "deployment_object_id": w.deployment_object,
        "resources": vec![resource; brokkr_core::NewHealthReport::MAX_RESOURCES + 1],
    });
    let resp = app
        .post(
            &format!("/api/v1/agents/{}/health", w.agent),
            &w.agent_key,
            &body,
        )
        .await;
    resp.expect(422);
    assert_eq!(resp.json()["code"], "validation_failed");
    assert_eq!(snapshot(&app).await, before);
    app.teardown().await;
}

/// The body limit is enforced before the handler parses anything, also over a real
/// socket.
#[tokio::test]
async fn oversized_body_is_413_over_the_socket() {
    let mut config = test_config();
    config.server.body_limit_bytes = 4 * 1024;
    let app = TestApp::start_with(Backend::Sqlite, Mode::Socket, config)
        .await
        .expect("sqlite");
    let before = app.audit_count().await;
    let resp = app
        .send(
            Req::new("POST", "/api/v1/stacks")
                .key(&app.world.admin_key)
                .json(&json!({"name": "big", "description": "x".repeat(8 * 1024)})),
        )
        .await;
    resp.expect(413);
    assert_error_body(&resp, "oversized body");
    assert_eq!(app.audit_count().await, before);
    app.teardown().await;
}

/// No input produces a 500: every documented operation, called by admin and by the
/// agent with garbage bodies, garbage ids and garbage query parameters, answers below
/// 500, and every error has the `{code, message}` body.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_never_yields_a_500() {
    use common::ops::{fill, openapi_operations, table, table_template};

    let app = TestApp::start(Backend::Sqlite).await.expect("sqlite");
    let doc = app.send(Req::new("GET", "/openapi.json")).await.json();
    let documented = openapi_operations(&doc);
    let table = table();
    let bodies: [(&[u8], &str); 8] = [
        (b"null", "application/json"),
        (b"[]", "application/json"),
        (b"\"x\"", "application/json"),
        (b"{}", "application/json"),
        (
            b"{\"name\": 1e999, \"stack_id\": -1, \"key\": null}",
            "application/json",
        ),
        (b"\xff\xfe\x00garbage", "application/json"),
        (b"{\"a\":", "application/json"),
        (b"<xml/>", "application/xml"),
    ];
    let ids = [
        "x",
        "00000000-0000-0000-0000-000000000000",
        "%00",
        "..%2F..",
        &"9".repeat(400),
    ];
    let query = "?limit=-1&order=x&cursor=%FF%FE&wait=-1&since=notadate&include_deleted=maybe&actor_type=alien";
    let mut failures = Vec::new();
    let mut sent = 0;
    for (method, template) in &documented {
        let op = table
            .iter()
            .find(|op| op.method == method && table_template(op.path) == *template)
            .expect("every documented operation is in the table");
        let good_path = format!("/api/v1{}", fill(op.path, &app.world));
        let mut requests = Vec::new();
        for (body, content_type) in bodies {
            requests.push(Req::new(method, good_path.clone()).raw(body.to_vec(), content_type));
        }
        for id in ids {
            let bad: String = op
                .path
                .split('/')
                .map(|s| if s.starts_with('{') { id } else { s })
                .collect::<Vec<_>>()
                .join("/");
            if bad != op.path {
                requests.push(
                    Req::new(method, format!("/api/v1{bad}"))
                        .raw(b"{}".to_vec(), "application/json"),
                );
            }
        }
        requests.push(Req::new(method, format!("{good_path}{query}")));
        for req in requests {
            for key in [&app.world.admin_key, &app.world.agent_key] {
                let req = req.clone().key(key);
                let what = format!("{} {}", req.method, req.path);
                let resp = app.send(req).await;
                sent += 1;
                if resp.status >= 500 {
                    failures.push(format!("{what}: {} {}", resp.status, resp.text));
                } else if resp.status >= 400 {
                    let body = resp.json();
                    if !body["code"].is_string() || !body["message"].is_string() {
                        failures.push(format!(
                            "{what}: {} without a JSON error body: {}",
                            resp.status, resp.text
                        ));
                    }
                }
            }
        }
    }
    assert!(sent > 100);
    assert!(
        failures.is_empty(),
        "{} of {sent} garbage requests went wrong:\n{}",
        failures.len(),
        failures.join("\n")
    );
    app.teardown().await;
}

/// A chain of merge keys: 1.6 KB that cost half a second of CPU to refuse before merges
/// counted toward a tight replay bound.
fn merge_chain() -> String {
    let mut yaml = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, namespace: default}\nx:\n  a0: &a0 {k0: 0, k1: 1, k2: 2, k3: 3}\n",
    );
    for level in 1..40 {
        let prev = level - 1;
        yaml.push_str(&format!(
            "  a{level}: &a{level} {{<<: [*a{prev}, *a{prev}], m{level}: {level}}}\n"
        ));
    }
    yaml
}

/// Eight expensive inputs at once are refused fast and do not hold up the probes: the
/// parse runs off the async workers, one per core at a time, under a tight bound.
async fn expensive_yaml_does_not_stall_the_server(backend: Backend) {
    let Some(app) = TestApp::start_with(backend, Mode::Socket, test_config()).await else {
        return;
    };
    let before = snapshot(&app).await;
    let path = format!("/api/v1/stacks/{}/deployment-objects", app.world.stack);
    let body = json!({"yaml_content": merge_chain()});
    let started = std::time::Instant::now();
    let posts = futures::future::join_all((0..8).map(|_| app.admin_post(&path, &body)));
    let probes = async {
        let mut slowest = std::time::Duration::ZERO;
        for _ in 0..10 {
            let probe = std::time::Instant::now();
            app.send(Req::new("GET", "/healthz")).await.expect(200);
            slowest = slowest.max(probe.elapsed());
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        slowest
    };
    let (answers, slowest_probe) = tokio::join!(posts, probes);
    let took = started.elapsed();
    for answer in &answers {
        answer.expect(422);
        assert_error_body(answer, "a merge-key chain");
        assert_eq!(answer.json()["code"], "invalid_manifest");
        assert!(
            answer.text.contains("alias replay limit"),
            "{}",
            answer.text
        );
    }
    assert!(
        took < std::time::Duration::from_secs(10),
        "eight refusals took {took:?}"
    );
    assert!(
        slowest_probe < std::time::Duration::from_secs(1),
        "/healthz took {slowest_probe:?} while the inputs were parsed"
    );
    assert_eq!(snapshot(&app).await, before, "nothing stored");
    app.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expensive_yaml_does_not_stall_the_server_sqlite() {
    expensive_yaml_does_not_stall_the_server(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expensive_yaml_does_not_stall_the_server_postgres() {
    expensive_yaml_does_not_stall_the_server(Backend::Postgres).await;
}

/// A path parameter that does not parse is named as the OpenAPI document names it
/// (`id`, `stack_id`), not by poem-openapi's internal position (`param0`, `param1`).
#[tokio::test]
async fn a_bad_path_parameter_is_named() {
    let app = TestApp::start(Backend::Memory).await.expect("memory");
    let w = &app.world;
    for (path, name) in [
        ("/api/v1/stacks/not-a-uuid".to_owned(), "id"),
        (
            format!("/api/v1/agents/{}/targets/not-a-uuid", w.agent),
            "stack_id",
        ),
    ] {
        let method = if name == "id" { "GET" } else { "DELETE" };
        let resp = app
            .send(Req::new(method, path.as_str()).key(&w.admin_key))
            .await;
        resp.expect(400);
        let body = resp.json();
        assert_eq!(body["code"], "invalid_parameter", "{path}: {body}");
        let message = body["message"].as_str().unwrap_or_default();
        assert!(
            message.contains(&format!("`{name}`")) && !message.contains("`param"),
            "{path}: {message}"
        );
    }
    app.teardown().await;
}
