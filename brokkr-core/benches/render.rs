//! Template rendering cost: compile a version, then prepare parameters, render and
//! parse, as one `from-template` request does. Prints percentiles.
//!
//! `cargo bench -p brokkr-core --bench render`

use std::time::{Duration, Instant};

use brokkr_core::generator::{GenerateRequest, Generator};
use brokkr_core::manifest::ParseOptions;
use brokkr_core::{
    Actor, Stack, StackId, TemplateGenerator, TemplateId, TemplateLimits, TemplateVersion,
};
use chrono::Utc;
use serde_json::json;

const TEMPLATE: &str = r#"apiVersion: v1
kind: Namespace
metadata:
  name: {{ params.name }}
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: {{ params.name }}
  labels:
{% for key, value in params.labels | items %}
    {{ key }}: {{ value | tojson }}
{% endfor %}
spec:
  replicas: {{ params.replicas }}
  template:
    spec:
      containers:
{% for c in params.containers %}
        - name: {{ c.name }}
          image: {{ c.image | tojson }}
{% endfor %}
---
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: {{ params.name }}
spec:
  ports:
{% for port in params.ports %}
    - port: {{ port }}
{% endfor %}
"#;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn report(what: &str, mut samples: Vec<Duration>) {
    samples.sort_unstable();
    println!(
        "{what:<34} n={:<6} p50 {:>8.1} µs   p99 {:>8.1} µs",
        samples.len(),
        percentile(&samples, 0.50).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6,
    );
}

fn main() {
    let version = TemplateVersion {
        template_id: TemplateId::new(),
        version: 1,
        content: TEMPLATE.to_owned(),
        parameters_schema: json!({
            "type": "object",
            "required": ["name"],
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z][a-z0-9-]*$"},
                "replicas": {"type": "integer", "minimum": 1, "default": 2},
                "labels": {"type": "object", "additionalProperties": {"type": "string"}, "default": {}},
                "containers": {"type": "array", "items": {"type": "object", "required": ["name", "image"]},
                    "default": [{"name": "web", "image": "nginx:1.27"}]},
                "ports": {"type": "array", "items": {"type": "integer"}, "default": [80]}
            }
        }),
        created_at: Utc::now(),
    };
    let stack = Stack {
        id: StackId::new(),
        name: "bench".into(),
        description: None,
        generator_id: None,
        labels: Default::default(),
        annotations: Default::default(),
        created_at: Utc::now(),
        updated_at: Utc::now(),
        deleted_at: None,
    };
    let limits = ParseOptions::default();
    let params = json!({
        "name": "shop",
        "replicas": 3,
        "labels": {"team": "payments", "tier": "frontend"},
        "containers": [{"name": "web", "image": "nginx:1.27"}, {"name": "sidecar", "image": "envoy:1.31"}],
        "ports": [80, 443]
    });
    const N: usize = 5_000;

    let mut compile = Vec::with_capacity(N);
    for _ in 0..N {
        let started = Instant::now();
        let generator = TemplateGenerator::new("web", &version, TemplateLimits::default()).unwrap();
        compile.push(started.elapsed());
        std::hint::black_box(generator);
    }
    let generator = TemplateGenerator::new("web", &version, TemplateLimits::default()).unwrap();
    let request = GenerateRequest {
        parameters: &params,
        stack: &stack,
        requested_by: Actor::Admin,
        limits: &limits,
    };
    let mut generate = Vec::with_capacity(N);
    for _ in 0..N {
        let started = Instant::now();
        let output = generator.generate(&request).unwrap();
        generate.push(started.elapsed());
        assert_eq!(output.manifests().len(), 3);
    }
    report("compile template + schema", compile);
    report("prepare + render + parse (3 objs)", generate);
}
