use chrono::Utc;
use proptest::prelude::*;
use serde_json::json;

use super::*;
use crate::manifest::{self, ParseOptions};
use crate::model::{Actor, Stack};

const DEPLOYMENT: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: {{ params.name | dns_label }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {{ params.name | dns_label }}
  labels:
    brokkr.io/stack: {{ stack.name }}
spec:
  replicas: {{ params.replicas }}
  template:
    spec:
      containers:
{% for c in params.containers %}
        - name: {{ c.name }}
          image: {{ c.image | tojson }}
{% endfor %}
"#;

fn schema() -> Value {
    json!({
        "type": "object",
        "required": ["name"],
        "properties": {
            "name": {"type": "string", "minLength": 1},
            "replicas": {"type": "integer", "minimum": 1, "default": 2},
            "containers": {
                "type": "array",
                "default": [{"name": "app", "image": "nginx:1.27"}],
                "items": {
                    "type": "object",
                    "required": ["name", "image"],
                    "properties": {"name": {"type": "string"}, "image": {"type": "string"}}
                }
            }
        }
    })
}

fn version(content: &str, schema: Value) -> TemplateVersion {
    TemplateVersion {
        template_id: TemplateId::new(),
        version: 3,
        content: content.to_owned(),
        parameters_schema: schema,
        created_at: Utc::now(),
    }
}

fn stack() -> Stack {
    Stack {
        id: crate::id::StackId::new(),
        name: "tenant-acme".into(),
        description: None,
        generator_id: None,
        labels: Default::default(),
        annotations: Default::default(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
        deleted_at: None,
    }
}

fn generate_with(
    generator: &TemplateGenerator,
    parameters: &Value,
    limits: &ParseOptions,
) -> generator::Result<Generated> {
    let stack = stack();
    generator.generate(&GenerateRequest {
        parameters,
        stack: &stack,
        requested_by: Actor::Admin,
        limits,
    })
}

fn generate(content: &str, schema: Value, parameters: Value) -> generator::Result<Generated> {
    let generator =
        TemplateGenerator::new("t", &version(content, schema), TemplateLimits::default()).unwrap();
    generate_with(&generator, &parameters, &ParseOptions::default())
}

fn render_failure(content: &str) -> String {
    match generate(content, json!({}), json!({})) {
        Err(generator::Error::RenderFailed(message)) => message,
        other => panic!("expected a render failure, got {other:?}"),
    }
}

#[test]
fn renders_with_defaults_and_records_them() {
    let generated = generate(DEPLOYMENT, schema(), json!({"name": "Acme Corp"})).unwrap();
    let kinds: Vec<&str> = generated.manifests().iter().map(|m| m.kind()).collect();
    assert_eq!(kinds, ["Namespace", "Deployment"]);
    let deployment = generated.manifests()[1].as_value();
    assert_eq!(deployment["metadata"]["namespace"], "acme-corp");
    assert_eq!(deployment["spec"]["replicas"], 2);
    assert_eq!(
        deployment["metadata"]["labels"]["brokkr.io/stack"],
        "tenant-acme"
    );
    assert_eq!(
        deployment["spec"]["template"]["spec"]["containers"][0]["image"],
        "nginx:1.27"
    );
    assert_eq!(generated.parameters()["replicas"], 2);
    assert_eq!(generated.parameters()["containers"][0]["name"], "app");
}

#[test]
fn invalid_parameters_list_every_violation_and_render_nothing() {
    let err = generate(
        "{{ fail('must not render') }}",
        schema(),
        json!({"replicas": 0, "containers": [{"name": 1}]}),
    )
    .unwrap_err();
    let generator::Error::InvalidParameters(violations) = err else {
        panic!("expected invalid parameters, got {err:?}");
    };
    let mut pointers: Vec<&str> = violations.iter().map(|v| v.pointer.as_str()).collect();
    pointers.sort_unstable();
    assert_eq!(
        pointers,
        ["", "/containers/0", "/containers/0/name", "/replicas"]
    );
}

#[test]
fn undefined_variables_fail_with_their_line() {
    let message =
        render_failure("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ params.nope }}\n");
    assert!(message.contains("undefined"), "{message}");
    assert!(message.contains("line 4"), "{message}");
}

/// Renders `content` with `parameters` (no schema) and expects a render failure whose
/// message is exactly `expected`.
#[track_caller]
fn check_undefined(content: &str, parameters: Value, expected: &str) {
    match generate(content, json!({}), parameters) {
        Err(generator::Error::RenderFailed(message)) => assert_eq!(message, expected),
        other => panic!("expected a render failure, got {other:?}"),
    }
}

#[test]
fn an_undefined_top_level_name_is_named() {
    check_undefined(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ missing }}\n",
        json!({}),
        "undefined value: `missing` is undefined (line 4)",
    );
}

#[test]
fn an_undefined_nested_name_is_named_with_its_path() {
    let yaml = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata:\n";
    check_undefined(
        &format!("{yaml}  a: {{{{ params.missing }}}}\n"),
        json!({}),
        "undefined value: `params.missing` is undefined (line 6)",
    );
    check_undefined(
        &format!("{yaml}  a: {{{{ params.db.port }}}}\n"),
        json!({"db": {"host": "h"}}),
        "undefined value: `params.db.port` is undefined (line 6)",
    );
    // The first missing step is named, not the whole chain.
    check_undefined(
        &format!("{yaml}  a: {{{{ params.db.tls.ca }}}}\n"),
        json!({"db": {}}),
        "undefined value: `params.db.tls` is undefined (line 6)",
    );
    check_undefined(
        &format!("{yaml}{{% if stack.labels.team %}}\n  team: x\n{{% endif %}}\n"),
        json!({}),
        "undefined value: `stack.labels.team` is undefined (line 6)",
    );
}

#[test]
fn an_expression_is_read_from_the_source_at_the_error_range() {
    let source = "a: {{ params.db.port }} é";
    let at = |text: &str| {
        let start = source.find(text).unwrap();
        start..start + text.len()
    };
    assert_eq!(
        expression_at(source, at(".db.port")),
        Some("params.db.port")
    );
    assert_eq!(expression_at(source, at("params.db")), Some("params.db"));
    assert_eq!(expression_at(source, 2..3), None, "only white space");
    assert_eq!(
        expression_at(source, 24..25),
        None,
        "not on a character boundary"
    );
    assert_eq!(expression_at(source, 90..95), None, "out of the source");
}

#[test]
fn endless_loops_run_out_of_fuel() {
    let message = render_failure(
        "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}",
    );
    assert!(message.contains("ran out of fuel"), "{message}");
}

#[test]
fn unbounded_recursion_stops_at_the_limit() {
    let message = render_failure("{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}");
    assert!(message.contains("recursion limit"), "{message}");
}

#[test]
fn output_beyond_the_size_limit_stops_rendering() {
    let generator = TemplateGenerator::new(
        "t",
        &version(
            "{% for i in range(10000) %}0123456789{% endfor %}",
            json!({}),
        ),
        TemplateLimits::default(),
    )
    .unwrap();
    let limits = ParseOptions {
        max_bytes: 4096,
        ..ParseOptions::default()
    };
    let err = generate_with(&generator, &json!({}), &limits).unwrap_err();
    assert!(
        err.to_string().contains("exceeds the limit of 4096 bytes"),
        "{err}"
    );
}

#[test]
fn invalid_output_names_the_document() {
    let err = generate(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ok\n---\nkind: Secret\n",
        json!({}),
        json!({}),
    )
    .unwrap_err();
    match err {
        generator::Error::InvalidOutput(e) => assert_eq!(e.document(), Some(1), "{e}"),
        other => panic!("expected invalid output, got {other:?}"),
    }
}

#[test]
fn templates_can_fail_on_purpose() {
    let message = render_failure("{{ fail('replicas must be even') }}");
    assert!(message.contains("replicas must be even"), "{message}");
}

#[test]
fn filters_for_kubernetes_values() {
    let content = r#"apiVersion: v1
kind: Secret
metadata:
  name: {{ "My_App.v2" | dns_label }}
  annotations:
    checksum: {{ "abc" | sha256 }}
data:
  token: {{ "hunter2" | b64encode }}
stringData:
  back: {{ "aHVudGVyMg==" | b64decode }}
"#;
    let generated = generate(content, json!({}), json!({})).unwrap();
    let secret = generated.manifests()[0].as_value();
    assert_eq!(secret["metadata"]["name"], "my-app-v2");
    assert_eq!(
        secret["metadata"]["annotations"]["checksum"],
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    assert_eq!(secret["data"]["token"], "aHVudGVyMg==");
    assert_eq!(secret["stringData"]["back"], "hunter2");
}

#[test]
fn dns_labels_are_valid_for_any_input() {
    assert_eq!(dns_label("--Hello  World--"), "hello--world");
    assert_eq!(dns_label(&"a".repeat(100)).len(), 63);
    assert_eq!(dns_label(&format!("{}-b", "a".repeat(62))), "a".repeat(62));
}

#[test]
fn stored_versions_are_checked() {
    assert!(matches!(
        check("{% for x in %}", &json!({})),
        Err(TemplateError::Syntax(_))
    ));
    assert!(matches!(
        check("ok", &json!({"type": 7})),
        Err(TemplateError::Schema(_))
    ));
    assert!(check(DEPLOYMENT, &schema()).is_ok());
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// The same version and parameters give the same YAML and checksum, whatever
    /// order the parameters' keys arrive in and however often it is rendered.
    #[test]
    fn rendering_is_deterministic(
        name in "[a-z][a-z0-9]{0,20}",
        replicas in 1i64..50,
        images in proptest::collection::vec("[a-z]{1,8}:[0-9]{1,3}", 1..4),
        reversed in any::<bool>(),
    ) {
        let containers: Vec<Value> = images
            .iter()
            .enumerate()
            .map(|(i, image)| json!({"name": format!("c{i}"), "image": image}))
            .collect();
        let forward = json!({"name": name, "replicas": replicas, "containers": containers});
        let mut entries: Vec<(String, Value)> =
            forward.as_object().unwrap().clone().into_iter().collect();
        if reversed {
            entries.reverse();
        }
        let shuffled = Value::Object(entries.into_iter().collect());

        let v = version(DEPLOYMENT, schema());
        let first = TemplateGenerator::new("t", &v, TemplateLimits::default()).unwrap();
        let second = TemplateGenerator::new("t", &v, TemplateLimits::default()).unwrap();
        let a = generate_with(&first, &forward, &ParseOptions::default()).unwrap();
        let b = generate_with(&second, &shuffled, &ParseOptions::default()).unwrap();
        prop_assert_eq!(a.yaml(), b.yaml());
        prop_assert_eq!(
            crate::model::checksum(a.yaml()),
            crate::model::checksum(b.yaml())
        );
        prop_assert_eq!(a.parameters().to_string(), b.parameters().to_string());
        prop_assert!(manifest::parse(a.yaml()).is_ok());
    }
}
