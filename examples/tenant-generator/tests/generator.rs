//! The tenant generator alone: pure, no store.

use brokkr_core::generator::Error;
use brokkr_core::manifest::{self, ParseOptions};
use brokkr_core::{Generated, Generator};
use brokkr_example_tenant_generator::{DEFAULT_IMAGE, TENANT_LABEL, TenantGenerator};
use serde_json::{Value, json};

fn render(parameters: Value) -> Result<Generated, Error> {
    TenantGenerator::new().render(&parameters, &ParseOptions::default())
}

fn rendered(parameters: Value) -> Generated {
    render(parameters.clone()).unwrap_or_else(|err| panic!("{parameters}: {err}"))
}

/// The pointers of the violations `parameters` cause, in order.
fn violations(parameters: Value) -> Vec<String> {
    match render(parameters.clone()) {
        Err(Error::InvalidParameters(violations)) => {
            violations.into_iter().map(|v| v.pointer).collect()
        }
        other => panic!("{parameters}: expected invalid parameters, got {other:?}"),
    }
}

#[test]
fn a_tenant_is_a_namespace_a_quota_and_a_deployment() {
    let generated = rendered(json!({"name": "acme"}));
    let objects: Vec<(&str, Option<&str>, &str)> = generated
        .manifests()
        .iter()
        .map(|m| (m.kind(), m.namespace(), m.name()))
        .collect();
    assert_eq!(
        objects,
        [
            ("Namespace", None, "tenant-acme"),
            ("ResourceQuota", Some("tenant-acme"), "tenant-quota"),
            ("Deployment", Some("tenant-acme"), "acme"),
        ]
    );
    for manifest in generated.manifests() {
        assert_eq!(
            manifest.as_value()["metadata"]["labels"][TENANT_LABEL],
            "acme",
            "{} is not labelled with the tenant",
            manifest.kind()
        );
    }
    let deployment = generated.manifests()[2].as_value();
    assert_eq!(deployment["apiVersion"], "apps/v1");
    assert_eq!(
        deployment["spec"]["selector"]["matchLabels"],
        deployment["spec"]["template"]["metadata"]["labels"],
        "the selector must select the pod template"
    );
    // The stored YAML is what the manifests say, read back by the core parser.
    assert_eq!(
        manifest::parse(generated.yaml()).unwrap(),
        generated.manifests()
    );
}

#[test]
fn the_quota_follows_the_plan() {
    fn check(plan: &str, expected: Value) {
        let generated = rendered(json!({"name": "acme", "plan": plan}));
        let quota = &generated.manifests()[1];
        assert_eq!(quota.kind(), "ResourceQuota");
        assert_eq!(quota.as_value()["spec"]["hard"], expected, "plan {plan}");
    }
    // Quantities stay strings through YAML, as Kubernetes wants them.
    check(
        "free",
        json!({"requests.cpu": "2", "requests.memory": "4Gi", "pods": "10"}),
    );
    check(
        "pro",
        json!({"requests.cpu": "16", "requests.memory": "32Gi", "pods": "100"}),
    );
}

#[test]
fn defaults_are_applied_and_recorded() {
    fn check(parameters: Value, expected: Value) {
        let generated = rendered(parameters.clone());
        assert_eq!(generated.parameters(), &expected, "{parameters}");
        let deployment = generated.manifests()[2].as_value();
        assert_eq!(deployment["spec"]["replicas"], expected["replicas"]);
        assert_eq!(
            deployment["spec"]["template"]["spec"]["containers"][0]["image"],
            expected["image"]
        );
    }
    check(
        json!({"name": "acme"}),
        json!({"name": "acme", "plan": "free", "replicas": 1, "image": DEFAULT_IMAGE}),
    );
    check(
        json!({"name": "acme", "plan": "pro"}),
        json!({"name": "acme", "plan": "pro", "replicas": 3, "image": DEFAULT_IMAGE}),
    );
    check(
        json!({"name": "acme", "plan": "pro", "replicas": 20, "image": "ghcr.io/acme/web:2"}),
        json!({"name": "acme", "plan": "pro", "replicas": 20, "image": "ghcr.io/acme/web:2"}),
    );
}

#[test]
fn bad_specs_are_refused_with_json_pointers() {
    let cases = [
        (json!({"name": "acme", "replicas": 0}), vec!["/replicas"]),
        (
            json!({"name": "acme", "plan": "pro", "replicas": 21}),
            vec!["/replicas"],
        ),
        (json!({"name": "acme", "replicas": "3"}), vec!["/replicas"]),
        (json!({"name": "acme", "plan": "gold"}), vec!["/plan"]),
        (json!({"name": "Acme!"}), vec!["/name"]),
        (json!({"name": "-acme"}), vec!["/name"]),
        (json!({"name": "a".repeat(57)}), vec!["/name"]),
        (
            json!({"name": "acme", "image": "nginx latest"}),
            vec!["/image"],
        ),
        // Missing or unknown properties are the whole object's fault.
        (json!({}), vec![""]),
        (json!({"name": "acme", "replica": 2}), vec![""]),
        (json!("acme"), vec![""]),
        // Every violation is listed, not just the first.
        (
            json!({"name": "Acme", "plan": "gold", "replicas": 0}),
            vec!["/name", "/plan", "/replicas"],
        ),
    ];
    for (parameters, expected) in cases {
        let mut found = violations(parameters.clone());
        found.sort();
        assert_eq!(found, expected, "{parameters}");
    }
}

#[test]
fn replicas_must_fit_the_plans_pod_quota() {
    let err = render(json!({"name": "acme", "replicas": 11})).unwrap_err();
    let Error::InvalidParameters(violations) = &err else {
        panic!("{err:?}");
    };
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].pointer, "/replicas");
    assert_eq!(
        violations[0].message,
        "11 replicas exceed the free plan's quota of 10 pods"
    );
    // The same count fits the pro plan.
    rendered(json!({"name": "acme", "plan": "pro", "replicas": 11}));
    rendered(json!({"name": "acme", "replicas": 10}));
}

#[test]
fn equal_specs_give_equal_output() {
    let a = rendered(json!({"name": "acme", "plan": "pro", "replicas": 4}));
    let b = rendered(json!({"replicas": 4, "plan": "pro", "name": "acme"}));
    assert_eq!(a, b);
    // Spelling out a default changes nothing either.
    let c = rendered(json!({"name": "acme", "image": DEFAULT_IMAGE}));
    let d = rendered(json!({"name": "acme", "plan": "free", "replicas": 1}));
    assert_eq!(c.yaml(), d.yaml());
    assert_ne!(a.yaml(), c.yaml());
}

#[test]
fn output_limits_are_respected() {
    let limits = ParseOptions {
        max_bytes: 256,
        ..ParseOptions::default()
    };
    let err = TenantGenerator::new()
        .render(&json!({"name": "acme"}), &limits)
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidOutput(manifest::Error::TooLarge { .. })),
        "{err:?}"
    );
}

#[test]
fn the_schema_is_published_with_its_defaults() {
    let generator = TenantGenerator::new();
    assert_eq!(generator.name(), "tenant");
    assert!(!generator.description().is_empty());
    let schema = generator.parameters_schema();
    assert_eq!(schema["required"], json!(["name"]));
    assert_eq!(schema["properties"]["plan"]["enum"], json!(["free", "pro"]));
    assert_eq!(schema["properties"]["plan"]["default"], "free");
    assert_eq!(schema["properties"]["image"]["default"], DEFAULT_IMAGE);
    assert_eq!(schema["properties"]["replicas"]["maximum"], 20);
}
