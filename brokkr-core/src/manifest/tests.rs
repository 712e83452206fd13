use std::time::{Duration, Instant};

use proptest::prelude::*;
use serde_json::json;

use super::*;

/// Parses `input` and compares the outcome, rendered compactly: one
/// `apiVersion kind namespace/name` line per manifest, or the error's message.
#[track_caller]
fn check(input: &str, expected: &str) {
    check_with(input, &ParseOptions::default(), expected);
}

#[track_caller]
fn check_with(input: &str, options: &ParseOptions, expected: &str) {
    let actual = match parse_with(input, options) {
        Ok(manifests) => manifests
            .iter()
            .map(|m| m.key().to_string())
            .collect::<Vec<_>>()
            .join("\n"),
        Err(e) => format!("error: {e}"),
    };
    assert_eq!(actual, expected.trim(), "input:\n{input}");
}

#[track_caller]
fn parse_err(input: &str) -> Error {
    match parse(input) {
        Ok(manifests) => panic!("expected an error, got {manifests:?}"),
        Err(e) => e,
    }
}

#[track_caller]
fn parse_one(input: &str) -> Manifest {
    let mut manifests = parse(input).expect("valid input");
    assert_eq!(manifests.len(), 1);
    manifests.remove(0)
}

fn at(document: usize) -> Position {
    Position {
        document,
        item: None,
    }
}

const DEPLOYMENT: &str = r#"
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: default
  labels:
    app.kubernetes.io/name: web
spec:
  replicas: 3
  selector:
    matchLabels:
      app.kubernetes.io/name: web
  template:
    metadata:
      labels:
        app.kubernetes.io/name: web
    spec:
      containers:
        - name: nginx
          image: nginx:1.27
          ports:
            - containerPort: 80
          env:
            - name: FEATURE
              value: on
          resources:
            limits: {cpu: 500m, memory: 128Mi}
"#;

const SERVICE: &str = r#"
apiVersion: v1
kind: Service
metadata:
  name: web
  namespace: default
spec:
  type: ClusterIP
  selector:
    app.kubernetes.io/name: web
  ports:
    - name: http
      port: 80
      targetPort: 8080
      protocol: TCP
"#;

const CRD: &str = r#"
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: crontabs.stable.example.com
spec:
  group: stable.example.com
  versions:
    - name: v1
      served: true
      storage: true
      schema:
        openAPIV3Schema:
          type: object
          properties:
            spec:
              type: object
              properties:
                cronSpec:
                  type: string
                  pattern: '^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$'
                replicas:
                  type: integer
                  minimum: 1
  scope: Namespaced
  names:
    plural: crontabs
    singular: crontab
    kind: CronTab
    shortNames: [ct]
"#;

const CONFIG_MAP: &str = r#"
apiVersion: v1
kind: ConfigMap
metadata:
  name: game-config
  namespace: games
data:
  enabled: yes
  mode: 0755
  count: "3"
  game.properties: |
    enemies=aliens
    lives=3
  ui.properties: >-
    color.good=purple
    color.bad=yellow
"#;

#[test]
fn deployment() {
    let m = parse_one(DEPLOYMENT);
    assert_eq!(m.api_version(), "apps/v1");
    assert_eq!(m.group(), "apps");
    assert_eq!(m.version(), "v1");
    assert_eq!(m.kind(), "Deployment");
    assert_eq!(m.name(), "web");
    assert_eq!(m.namespace(), Some("default"));
    assert_eq!(m.key().to_string(), "apps/v1 Deployment default/web");
    let container = &m.as_value()["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(container["ports"][0]["containerPort"], json!(80));
    // YAML 1.2: `on` is a string, as an env var value must be.
    assert_eq!(container["env"][0]["value"], json!("on"));
    assert_eq!(container["resources"]["limits"]["cpu"], json!("500m"));
    assert_eq!(m.as_value()["spec"]["replicas"], json!(3));
}

#[test]
fn service() {
    let m = parse_one(SERVICE);
    assert_eq!(m.group(), "");
    assert_eq!(m.version(), "v1");
    assert_eq!(m.key().to_string(), "v1 Service default/web");
    assert_eq!(m.as_value()["spec"]["ports"][0]["targetPort"], json!(8080));
}

#[test]
fn custom_resource_definition() {
    let m = parse_one(CRD);
    assert_eq!(m.group(), "apiextensions.k8s.io");
    assert_eq!(m.namespace(), None);
    assert_eq!(
        m.key().to_string(),
        "apiextensions.k8s.io/v1 CustomResourceDefinition crontabs.stable.example.com"
    );
    let schema = &m.as_value()["spec"]["versions"][0]["schema"]["openAPIV3Schema"];
    assert_eq!(
        schema["properties"]["spec"]["properties"]["cronSpec"]["pattern"],
        json!(r"^(\d+|\*)(/\d+)?(\s+(\d+|\*)(/\d+)?){4}$")
    );
    assert_eq!(m.as_value()["spec"]["names"]["shortNames"], json!(["ct"]));
}

#[test]
fn namespace() {
    check(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: tenant-a\n",
        "v1 Namespace tenant-a",
    );
}

#[test]
fn config_map_keeps_strings_and_multi_line_data() {
    let m = parse_one(CONFIG_MAP);
    let data = &m.as_value()["data"];
    assert_eq!(data["enabled"], json!("yes"));
    // A leading zero keeps the scalar a string rather than guessing octal or decimal.
    assert_eq!(data["mode"], json!("0755"));
    assert_eq!(data["count"], json!("3"));
    assert_eq!(data["game.properties"], json!("enemies=aliens\nlives=3\n"));
    assert_eq!(
        data["ui.properties"],
        json!("color.good=purple color.bad=yellow")
    );
}

#[test]
fn yaml_scalars_follow_yaml_1_2() {
    let m = parse_one(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n\
         data: {a: no, b: off, c: y, d: true, e: False, f: 0o755, g: 1_000, h: 0, i: 0x1F, \
         j: 1.5, k: ~, l: 007, m: '0755', n: !!str 12}\n",
    );
    assert_eq!(
        m.as_value()["data"],
        json!({
            "a": "no", "b": "off", "c": "y", "d": true, "e": false, "f": 493, "g": "1_000",
            "h": 0, "i": 31, "j": 1.5, "k": null, "l": "007", "m": "0755", "n": "12"
        })
    );
}

#[test]
fn yaml_features_that_json_cannot_hold_are_rejected() {
    let head = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\n";
    for tail in [
        "data: {a: .nan}",
        "data: {a: .inf}",
        "data: {a: !custom x}",
        "data: {a: 1, a: 2}",
    ] {
        let e = parse_err(&format!("{head}{tail}\n"));
        assert!(
            matches!(
                e,
                Error::InvalidYaml {
                    document: Some(0),
                    ..
                }
            ),
            "{tail}: {e:?}"
        );
    }
}

#[test]
fn merge_keys_and_small_aliases_are_expanded() {
    let m = parse_one(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c, labels: &l {a: b}}\n\
         data:\n  <<: {x: '1'}\n  y: '2'\nlabels: *l\n",
    );
    assert_eq!(m.as_value()["data"], json!({"x": "1", "y": "2"}));
    assert_eq!(m.as_value()["labels"], json!({"a": "b"}));
}

#[test]
fn multi_document_with_empty_documents_and_comments() {
    let input = format!(
        "# Source: chart/templates/namespace.yaml\n---\n---\n# nothing here\n---\n{}\n---\n\
         {SERVICE}\n...\n---\n# trailing comment\n--- ~\n---\n{DEPLOYMENT}---\n",
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: default"
    );
    check(
        &input,
        "v1 Namespace default\nv1 Service default/web\napps/v1 Deployment default/web",
    );
}

#[test]
fn one_document_without_markers_parses_without_the_scan() {
    // Markers indented inside a block scalar, or in the middle of a line, are content.
    let m = parse_one(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\ndata:\n  script: |\n    \
         --- not a marker\n    ... nor this\n  dots: a ... b\n",
    );
    assert_eq!(
        m.as_value()["data"]["script"],
        json!("--- not a marker\n... nor this\n")
    );
    assert!(!has_document_marker("a: 1\n  ---\nb: '---'\n"));
    // Every line break YAML knows starts a line; a byte order mark may start a document.
    for marked in [
        "---",
        "a: 1\n---\n",
        "a: 1\r---",
        "a: 1\r\n...\r\n",
        "\u{feff}a: 1",
    ] {
        assert!(has_document_marker(marked), "{marked:?}");
    }
    // With no marker to scan for, errors still name the one document.
    check(
        "apiVersion: v1\nkind: ConfigMap\ndata: [1\n",
        "error: invalid yaml in document 0: unclosed bracket '[' at line 3, column 7",
    );
}

#[test]
fn errors_name_documents_as_a_reader_counts_them() {
    // Documents 0 and 1 are empty; document 3 lacks a kind.
    let input = "---\n---\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n\
                 ---\napiVersion: v1\nmetadata: {name: b}\n";
    check(input, "error: document 3: missing field kind");
    assert_eq!(
        parse_err(input),
        Error::MissingField {
            at: at(3),
            field: "kind"
        }
    );
    check(
        "--- # empty\n---\na: [1\n",
        "error: invalid yaml in document 1: unclosed bracket '[' at line 3, column 4",
    );
}

#[test]
fn list_is_expanded() {
    let input = format!(
        "apiVersion: v1\nkind: List\nmetadata: {{resourceVersion: ''}}\nitems:\n{}{}",
        indent_item(SERVICE),
        indent_item(DEPLOYMENT)
    );
    check(
        &input,
        "v1 Service default/web\napps/v1 Deployment default/web",
    );
    // `kubectl get configmaps -o yaml` prints a v1 ConfigMapList.
    check(
        "apiVersion: v1\nkind: ConfigMapList\nitems:\n- {apiVersion: v1, kind: ConfigMap, metadata: {name: a}}\n",
        "v1 ConfigMap a",
    );
    check(
        "apiVersion: v1\nkind: List\nitems: []\n",
        "error: input contains no kubernetes object",
    );
}

#[test]
fn list_errors_name_document_and_item() {
    let input = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n\
                 apiVersion: v1\nkind: List\nitems:\n\
                 - {apiVersion: v1, kind: Namespace, metadata: {name: b}}\n\
                 - {apiVersion: v1, kind: Namespace, metadata: {}}\n";
    assert_eq!(
        parse_err(input),
        Error::MissingField {
            at: Position {
                document: 1,
                item: Some(1)
            },
            field: "metadata.name"
        }
    );
    check(
        input,
        "error: document 1 item 1: missing field metadata.name",
    );
    check(
        "apiVersion: v1\nkind: List\nitems:\n- 3\n",
        "error: document 0 item 0: not a mapping",
    );
    check(
        "apiVersion: v1\nkind: List\n",
        "error: document 0: invalid list: missing field items",
    );
    check(
        "apiVersion: v1\nkind: List\nitems: {a: b}\n",
        "error: document 0: invalid list: items is not a sequence",
    );
    check(
        "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: List, items: []}\n",
        "error: document 0: invalid list: item 0 is itself a list",
    );
    // Duplicates across a list and a plain document.
    check(
        "apiVersion: v1\nkind: List\nitems:\n- {apiVersion: v1, kind: Namespace, metadata: {name: a}}\n\
         ---\napiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n",
        "error: v1 Namespace a appears twice, at document 0 item 0 and document 1",
    );
}

#[test]
fn list_is_rejected_when_expansion_is_off() {
    let options = ParseOptions {
        expand_lists: false,
        ..ParseOptions::default()
    };
    check_with(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nkind: List\nitems: []\n",
        &options,
        "error: document 1: is a list, and lists are not accepted here",
    );
    // A kind from another group that merely ends in `List` is an ordinary object.
    check_with(
        "apiVersion: example.com/v1\nkind: AllowList\nmetadata: {name: a}\nitems: []\n",
        &options,
        "example.com/v1 AllowList a",
    );
}

#[test]
fn duplicates_are_rejected() {
    let input = format!("{SERVICE}---\n{DEPLOYMENT}---\n{SERVICE}");
    assert_eq!(
        parse_err(&input),
        Error::Duplicate {
            first: at(0),
            second: at(2),
            key: Box::new(ObjectKey {
                api_version: "v1".into(),
                kind: "Service".into(),
                namespace: Some("default".into()),
                name: "web".into(),
            })
        }
    );
    // The same object at two versions of its group is still one object.
    check(
        "apiVersion: example.com/v1beta1\nkind: Widget\nmetadata: {name: w}\n---\n\
         apiVersion: example.com/v1\nkind: Widget\nmetadata: {name: w}\n",
        "error: example.com/v1 Widget w appears twice, at document 0 and document 1",
    );
    // Same name, different namespace or kind: distinct objects.
    check(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: x}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: y}\n---\n\
         apiVersion: v1\nkind: Secret\nmetadata: {name: a, namespace: x}\n",
        "v1 ConfigMap x/a\nv1 ConfigMap y/a\nv1 Secret x/a",
    );
}

#[test]
fn missing_fields() {
    let cases = [
        ("kind: Namespace\nmetadata: {name: a}", "apiVersion"),
        (
            "apiVersion: ~\nkind: Namespace\nmetadata: {name: a}",
            "apiVersion",
        ),
        ("apiVersion: v1\nmetadata: {name: a}", "kind"),
        ("apiVersion: v1\nkind: Namespace", "metadata"),
        ("apiVersion: v1\nkind: Namespace\nmetadata:", "metadata"),
        (
            "apiVersion: v1\nkind: Namespace\nmetadata: {labels: {a: b}}",
            "metadata.name",
        ),
        (
            "apiVersion: v1\nkind: Namespace\nmetadata: {generateName: a-}",
            "metadata.name",
        ),
    ];
    for (input, field) in cases {
        assert_eq!(
            parse_err(input),
            Error::MissingField { at: at(0), field },
            "{input}"
        );
    }
    check(
        "apiVersion: v1\nkind: Namespace\n",
        "error: document 0: missing field metadata",
    );
}

#[test]
fn invalid_fields() {
    let cases = [
        (
            "apiVersion: 1\nkind: Namespace\nmetadata: {name: a}",
            "apiVersion",
            "expected a string, found a number",
        ),
        (
            "apiVersion: v2\nkind: Namespace\nmetadata: {name: a}",
            "apiVersion",
            "\"v2\" is neither v1 nor of the form group/version",
        ),
        (
            "apiVersion: apps/\nkind: Deployment\nmetadata: {name: a}",
            "apiVersion",
            "\"apps/\" is not of the form group/version",
        ),
        (
            "apiVersion: a/b/c\nkind: Deployment\nmetadata: {name: a}",
            "apiVersion",
            "\"a/b/c\" is not of the form group/version",
        ),
        (
            "apiVersion: v1\nkind: [Namespace]\nmetadata: {name: a}",
            "kind",
            "expected a string, found a sequence",
        ),
        (
            "apiVersion: v1\nkind: ''\nmetadata: {name: a}",
            "kind",
            "\"\" is not an alphanumeric identifier",
        ),
        (
            "apiVersion: v1\nkind: Name space\nmetadata: {name: a}",
            "kind",
            "\"Name space\" is not an alphanumeric identifier",
        ),
        (
            "apiVersion: v1\nkind: Namespace\nmetadata: [a]",
            "metadata",
            "expected a mapping, found a sequence",
        ),
        (
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: 7}",
            "metadata.name",
            "expected a string, found a number",
        ),
        (
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: ''}",
            "metadata.name",
            "must not be empty",
        ),
        (
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: 'a b'}",
            "metadata.name",
            "\"a b\" contains ' '",
        ),
        (
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: a/b}",
            "metadata.name",
            "\"a/b\" contains '/'",
        ),
        (
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: \"a\\tb\"}",
            "metadata.name",
            "\"a\\tb\" contains '\\t'",
        ),
        (
            "apiVersion: v1\nkind: Namespace\nmetadata: {name: ..}",
            "metadata.name",
            "\"..\" is not a valid name",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: true}",
            "metadata.namespace",
            "expected a string, found a boolean",
        ),
        (
            "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: ''}",
            "metadata.namespace",
            "must not be empty",
        ),
    ];
    for (input, field, reason) in cases {
        assert_eq!(
            parse_err(input),
            Error::InvalidField {
                at: at(0),
                field,
                reason: reason.into()
            },
            "{input}"
        );
    }
    let long = "a".repeat(254);
    check(
        &format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {long}}}\n"),
        "error: document 0: invalid field metadata.name: is 254 bytes long, more than 253",
    );
    // Loose on purpose: RBAC names contain colons; 253 bytes is fine.
    let ok = "a".repeat(253);
    check(
        &format!(
            "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata: {{name: 'system:{}'}}\n",
            &ok[7..]
        ),
        &format!(
            "rbac.authorization.k8s.io/v1 ClusterRole system:{}",
            &ok[7..]
        ),
    );
    // A null namespace is an absent one, as in Kubernetes.
    check(
        "apiVersion: v1\nkind: Pod\nmetadata: {name: a, namespace: ~}\n",
        "v1 Pod a",
    );
}

#[test]
fn non_mapping_documents() {
    for input in ["just a string", "[1, 2]", "42", "true", "--- |\n  text\n"] {
        assert_eq!(
            parse_err(input),
            Error::NotAMapping { at: at(0) },
            "{input}"
        );
    }
    check(
        "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\n- item\n",
        "error: document 1: not a mapping",
    );
}

#[test]
fn empty_inputs() {
    for input in [
        "",
        "\n\n",
        "# only a comment\n",
        "---\n---\n# c\n...\n",
        "--- ~\n--- null\n",
    ] {
        assert_eq!(parse_err(input), Error::Empty, "{input:?}");
    }
}

#[test]
fn size_limit_is_checked_before_parsing() {
    let options = ParseOptions {
        max_bytes: 16,
        ..ParseOptions::default()
    };
    // Not even valid YAML: the size is what gets reported.
    check_with(
        "{{{{{{{{{{{{{{{{{{{{",
        &options,
        "error: input is 20 bytes, more than the limit of 16",
    );
    let options = ParseOptions {
        max_bytes: SERVICE.len(),
        ..ParseOptions::default()
    };
    check_with(SERVICE, &options, "v1 Service default/web");
}

#[test]
fn document_limit() {
    let options = ParseOptions {
        max_documents: 2,
        ..ParseOptions::default()
    };
    let ns = |n: &str| format!("apiVersion: v1\nkind: Namespace\nmetadata: {{name: {n}}}\n");
    check_with(
        &format!("{}---\n{}", ns("a"), ns("b")),
        &options,
        "v1 Namespace a\nv1 Namespace b",
    );
    let e = "error: input has more than 2 documents or objects";
    check_with(
        &format!("{}---\n{}---\n{}", ns("a"), ns("b"), ns("c")),
        &options,
        e,
    );
    // Empty documents count: each costs parsing.
    check_with(&format!("---\n---\n---\n{}", ns("a")), &options, e);
    // So do the items of an expanded list.
    check_with(
        "apiVersion: v1\nkind: List\nitems:\n\
         - {apiVersion: v1, kind: Namespace, metadata: {name: a}}\n\
         - {apiVersion: v1, kind: Namespace, metadata: {name: b}}\n\
         - {apiVersion: v1, kind: Namespace, metadata: {name: c}}\n",
        &options,
        e,
    );
}

#[test]
fn alias_bomb_is_rejected_quickly() {
    // Billion laughs: nine levels of ten aliases each expand to 10^9 strings.
    let mut input =
        String::from("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\nl0: &l0 \"lol\"\n");
    for level in 1..10 {
        let prev = level - 1;
        let refs = vec![format!("*l{prev}"); 10].join(", ");
        input.push_str(&format!("l{level}: &l{level} [{refs}]\n"));
    }
    let started = Instant::now();
    let e = parse_err(&input);
    assert!(
        matches!(
            e,
            Error::InvalidYaml {
                document: Some(0),
                ..
            }
        ),
        "{e:?}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );

    // Few aliases of one large scalar: few events, but a lot of memory.
    let big = "x".repeat(1 << 20);
    let mut input =
        format!("apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\nb: &b \"{big}\"\n");
    for level in 1..5 {
        let prev = if level == 1 {
            "b".to_owned()
        } else {
            format!("l{}", level - 1)
        };
        let refs = vec![format!("*{prev}"); 10].join(", ");
        input.push_str(&format!("l{level}: &l{level} [{refs}]\n"));
    }
    let started = Instant::now();
    let e = parse_err(&input);
    assert!(matches!(e, Error::InvalidYaml { .. }), "{e:?}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn a_chain_of_merge_keys_counts_toward_the_replay_bound() {
    // 1.6 KB: each map merges the one before twice. Before merges were bounded this
    // tightly it cost half a second of CPU to refuse.
    let mut input = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\nx:\n  a0: &a0 {k0: 0, k1: 1, k2: 2, k3: 3}\n",
    );
    for level in 1..40 {
        let prev = level - 1;
        input.push_str(&format!(
            "  a{level}: &a{level} {{<<: [*a{prev}, *a{prev}], m{level}: {level}}}\n"
        ));
    }
    let e = parse_err(&input);
    let Error::InvalidYaml { message, .. } = &e else {
        panic!("{e:?}");
    };
    assert!(
        message.contains(&format!(
            "total_replayed_events={}",
            MAX_REPLAYED_EVENTS + 1
        )),
        "refused by the replay bound: {message}"
    );

    // Ordinary anchors stay well within it: one label block merged into 50 objects.
    let mut input = String::from(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: c}\nx:\n  base: &base {app: web, team: blue, tier: front}\n",
    );
    for i in 0..50 {
        input.push_str(&format!("  o{i}: {{<<: *base, name: o{i}}}\n"));
    }
    assert_eq!(parse(&input).expect("ordinary merges parse").len(), 1);
}

#[test]
fn deep_nesting_is_rejected_without_overflow() {
    let depth = 10_000;
    let input = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: c}}\ndata: {}{}\n",
        "[".repeat(depth),
        "]".repeat(depth)
    );
    assert!(matches!(parse_err(&input), Error::InvalidYaml { .. }));
}

#[test]
fn from_value_validates_like_a_document() {
    let value = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "a"}});
    let m = Manifest::from_value(value.clone()).expect("valid");
    assert_eq!(m.as_value(), &value);
    assert_eq!(serde_json::to_value(&m).expect("serializes"), value);
    assert_eq!(m.clone().into_value(), value);
    assert_eq!(
        Manifest::from_value(json!({"apiVersion": "v1", "kind": "Namespace"})),
        Err(Error::MissingField {
            at: at(0),
            field: "metadata"
        })
    );
    assert_eq!(
        Manifest::from_value(json!([1])),
        Err(Error::NotAMapping { at: at(0) })
    );
    assert_eq!(
        Manifest::from_value(json!({"apiVersion": "v1", "kind": "List", "items": []})),
        Err(Error::ListNotAllowed { document: 0 })
    );
}

#[test]
fn parsed_manifests_round_trip_through_from_value() {
    for manifest in parse(&format!(
        "{DEPLOYMENT}---\n{SERVICE}---\n{CRD}---\n{CONFIG_MAP}"
    ))
    .expect("valid")
    {
        assert_eq!(
            Manifest::from_value(manifest.as_value().clone()).as_ref(),
            Ok(&manifest)
        );
    }
}

/// Indents a manifest as the body of a `- ` sequence item.
fn indent_item(manifest: &str) -> String {
    let mut out = String::new();
    for (i, line) in manifest.trim().lines().enumerate() {
        out.push_str(if i == 0 { "- " } else { "  " });
        out.push_str(line);
        out.push('\n');
    }
    out
}

proptest! {
    #[test]
    fn never_panics_on_arbitrary_text(input in "\\PC{0,200}") {
        let _ = parse(&input);
    }

    #[test]
    fn never_panics_on_yaml_like_text(
        input in "([a-zA-Z:\\-\\[\\]{}&*!|>'\"#~,.0-9 ]{0,12}\n?){0,24}",
    ) {
        let _ = parse(&input);
        let _ = parse(&format!("apiVersion: v1\nkind: List\nitems:\n{input}"));
        let _ = parse(&format!("apiVersion: v1\nkind: Pod\nmetadata:\n  name: {input}"));
    }

    #[test]
    fn valid_names_parse_and_keep_their_identity(
        name in "[a-z0-9][a-z0-9.:-]{0,40}",
        namespace in proptest::option::of("[a-z][a-z0-9-]{0,20}"),
    ) {
        let mut yaml = format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: '{name}'\n");
        if let Some(namespace) = &namespace {
            yaml.push_str(&format!("  namespace: '{namespace}'\n"));
        }
        let manifests = parse(&yaml).expect("valid");
        prop_assert_eq!(manifests[0].name(), name.as_str());
        prop_assert_eq!(manifests[0].namespace(), namespace.as_deref());
    }
}

#[test]
fn errors_say_which_document() {
    let missing_kind = "apiVersion: v1\nkind: Namespace\nmetadata: {name: a}\n---\napiVersion: v1\nmetadata: {name: b}\n";
    assert_eq!(parse(missing_kind).unwrap_err().document(), Some(1));
    assert_eq!(parse("").unwrap_err().document(), None);
}
