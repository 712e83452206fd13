use super::*;

use proptest::collection::{btree_map, vec};
use proptest::prelude::*;

fn mk_labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn parse(selector_json: &str) -> LabelSelector {
    serde_json::from_str(selector_json)
        .unwrap_or_else(|e| panic!("selector {selector_json} does not parse: {e}"))
}

/// Parses `selector_json`, checks it is valid, and checks `matches` and
/// `first_mismatch` both give `expected` for `labels`.
#[track_caller]
fn check(selector_json: &str, labels: &[(&str, &str)], expected: bool) {
    let selector = parse(selector_json);
    assert_eq!(selector.validate(), Ok(()), "{selector_json}");
    let labels = mk_labels(labels);
    assert_eq!(
        selector.matches(&labels),
        expected,
        "{selector_json} against {labels:?}"
    );
    assert_eq!(
        selector.first_mismatch(&labels).is_none(),
        expected,
        "first_mismatch of {selector_json} against {labels:?}"
    );
}

#[test]
fn empty_selector_matches_everything() {
    check("{}", &[], true);
    check("{}", &[("a", "1")], true);
    check(
        r#"{"matchLabels": {}, "matchExpressions": []}"#,
        &[("a", "1")],
        true,
    );
    assert!(parse("{}").is_empty());
    assert!(!parse(r#"{"matchLabels": {"a": "1"}}"#).is_empty());
    assert!(!parse(r#"{"matchExpressions": [{"key": "a", "operator": "Exists"}]}"#).is_empty());
}

#[test]
fn match_labels() {
    let sel = r#"{"matchLabels": {"tier": "prod", "region": "us"}}"#;
    check(sel, &[("tier", "prod"), ("region", "us")], true);
    check(sel, &[("tier", "prod"), ("region", "us"), ("x", "y")], true);
    check(sel, &[("tier", "prod")], false);
    check(sel, &[("tier", "prod"), ("region", "eu")], false);
    check(sel, &[], false);
    // An empty value is a value: it must be present and empty.
    check(r#"{"matchLabels": {"flag": ""}}"#, &[("flag", "")], true);
    check(r#"{"matchLabels": {"flag": ""}}"#, &[], false);
}

#[test]
fn operator_in() {
    let sel = r#"{"matchExpressions": [{"key": "region", "operator": "In", "values": ["us-east", "us-west"]}]}"#;
    check(sel, &[("region", "us-east")], true);
    check(sel, &[("region", "us-west")], true);
    check(sel, &[("region", "eu-west")], false);
    check(sel, &[("other", "us-east")], false);
    check(sel, &[], false);
}

#[test]
fn operator_not_in() {
    let sel = r#"{"matchExpressions": [{"key": "region", "operator": "NotIn", "values": ["us-east", "us-west"]}]}"#;
    check(sel, &[("region", "eu-west")], true);
    check(sel, &[("region", "us-east")], false);
    check(sel, &[("region", "us-west")], false);
    // As in Kubernetes, NotIn matches when the key is absent.
    check(sel, &[], true);
    check(sel, &[("other", "us-east")], true);
}

#[test]
fn operator_exists() {
    let sel = r#"{"matchExpressions": [{"key": "gpu", "operator": "Exists"}]}"#;
    check(sel, &[("gpu", "true")], true);
    check(sel, &[("gpu", "")], true);
    check(sel, &[], false);
    check(sel, &[("cpu", "true")], false);
    // `values: []` is the same as no values.
    let sel = r#"{"matchExpressions": [{"key": "gpu", "operator": "Exists", "values": []}]}"#;
    check(sel, &[("gpu", "x")], true);
}

#[test]
fn operator_does_not_exist() {
    let sel = r#"{"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist"}]}"#;
    check(sel, &[], true);
    check(sel, &[("cpu", "true")], true);
    check(sel, &[("gpu", "true")], false);
    check(sel, &[("gpu", "")], false);
}

#[test]
fn requirements_are_anded() {
    let sel = r#"{
        "matchLabels": {"tier": "prod"},
        "matchExpressions": [
            {"key": "region", "operator": "In", "values": ["us-east", "us-west"]},
            {"key": "gpu", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"},
            {"key": "zone", "operator": "NotIn", "values": ["a"]}
        ]
    }"#;
    let good = [("tier", "prod"), ("region", "us-east"), ("gpu", "1")];
    check(sel, &good, true);
    check(sel, &[good[0], good[1], good[2], ("zone", "b")], true);
    check(sel, &[good[0], good[1], good[2], ("zone", "a")], false);
    check(sel, &[good[0], good[1], good[2], ("legacy", "yes")], false);
    check(sel, &[good[0], good[1]], false);
    check(sel, &[good[0], ("region", "eu"), good[2]], false);
    check(sel, &[("tier", "dev"), good[1], good[2]], false);
}

#[test]
fn mismatch_explains_the_first_failed_requirement() {
    let sel = parse(
        r#"{
        "matchLabels": {"tier": "prod"},
        "matchExpressions": [
            {"key": "region", "operator": "In", "values": ["us-east", "us-west"]},
            {"key": "gpu", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"},
            {"key": "zone", "operator": "NotIn", "values": ["a", "b"]}
        ]
    }"#,
    );
    let base = [("tier", "prod"), ("region", "us-east"), ("gpu", "1")];
    // (labels, expected explanation)
    type Case<'a> = (&'a [(&'a str, &'a str)], Option<&'a str>);
    let cases: &[Case<'_>] = &[
        (&base, None),
        (&[], Some("label tier missing (= prod)")),
        (
            &[("tier", "dev"), ("region", "eu-west")],
            Some("label tier=dev not matched (= prod)"),
        ),
        (
            &[("tier", "prod"), ("region", "eu-west")],
            Some("label region=eu-west not matched (In [us-east, us-west])"),
        ),
        (
            &[("tier", "prod")],
            Some("label region missing (In [us-east, us-west])"),
        ),
        (
            &[("tier", "prod"), ("region", "us-west")],
            Some("label gpu missing (Exists)"),
        ),
        (
            &[base[0], base[1], base[2], ("legacy", "true")],
            Some("label legacy=true present (DoesNotExist)"),
        ),
        (
            &[base[0], base[1], base[2], ("zone", "b")],
            Some("label zone=b not matched (NotIn [a, b])"),
        ),
    ];
    for (labels, expected) in cases {
        let labels = mk_labels(labels);
        let got = sel.first_mismatch(&labels).map(|m| m.to_string());
        assert_eq!(got.as_deref(), *expected, "{labels:?}");
    }

    let m = sel
        .first_mismatch(&mk_labels(&[("tier", "prod"), ("region", "eu")]))
        .expect("region is not in the set");
    assert_eq!(
        m,
        Mismatch {
            subject: Subject::Label,
            key: "region".into(),
            found: Some("eu".into()),
            expected: Expected::In(vec!["us-east".into(), "us-west".into()]),
        }
    );
}

#[test]
fn annotation_match() {
    let m: AnnotationMatch =
        serde_json::from_str(r#"{"example.com/owner": "team a", "tier": "gold"}"#).unwrap();
    assert_eq!(m.validate(), Ok(()));
    assert!(!m.is_empty());
    let ann = |pairs: &[(&str, &str)]| -> Annotations { mk_labels(pairs) };

    let full = ann(&[
        ("example.com/owner", "team a"),
        ("tier", "gold"),
        ("x", "y"),
    ]);
    assert!(m.matches(&full));
    assert_eq!(m.first_mismatch(&full), None);

    let wrong = ann(&[("example.com/owner", "team b"), ("tier", "gold")]);
    assert!(!m.matches(&wrong));
    assert_eq!(
        m.first_mismatch(&wrong).unwrap().to_string(),
        "annotation example.com/owner=team b not matched (= team a)"
    );

    let missing = ann(&[("example.com/owner", "team a")]);
    assert!(!m.matches(&missing));
    assert_eq!(
        m.first_mismatch(&missing).unwrap().to_string(),
        "annotation tier missing (= gold)"
    );

    assert!(AnnotationMatch::default().matches(&Annotations::new()));
    assert!(AnnotationMatch::default().is_empty());
    assert_eq!(
        serde_json::to_string(&m).unwrap(),
        r#"{"example.com/owner":"team a","tier":"gold"}"#
    );
}

#[test]
fn mismatch_shortens_long_values() {
    let m = AnnotationMatch(BTreeMap::from([("k".into(), "v".into())]));
    let long = "x".repeat(1000);
    let text = m
        .first_mismatch(&Annotations::from([("k".into(), long)]))
        .unwrap()
        .to_string();
    assert_eq!(
        text,
        format!("annotation k={}... not matched (= v)", "x".repeat(64))
    );
}

#[test]
fn annotation_match_validation() {
    let bad_key = AnnotationMatch(BTreeMap::from([("-bad".into(), "v".into())]));
    assert!(matches!(
        bad_key.validate(),
        Err(Error::InvalidAnnotationMatch { key, source: metadata::Error::InvalidKey { .. } }) if key == "-bad"
    ));
    let huge = "v".repeat(metadata::MAX_ANNOTATION_VALUE_BYTES + 1);
    let bad_value = AnnotationMatch(BTreeMap::from([("k".into(), huge)]));
    assert!(matches!(
        bad_value.validate(),
        Err(Error::InvalidAnnotationMatch {
            source: metadata::Error::InvalidValue { .. },
            ..
        })
    ));
}

/// Parses `selector_json` and checks `validate` rejects it with `expected`.
#[track_caller]
fn check_invalid(selector_json: &str, expected: fn(&Error) -> bool) {
    let err = parse(selector_json)
        .validate()
        .expect_err(&format!("{selector_json} must be rejected"));
    assert!(expected(&err), "{selector_json}: unexpected error {err:?}");
}

#[test]
fn validation_errors() {
    check_invalid(
        r#"{"matchExpressions": [{"key": "a", "operator": "Exists"}, {"key": "region", "operator": "In"}]}"#,
        |e| matches!(e, Error::MissingValues { index: 1, key, operator: SelectorOperator::In } if key == "region"),
    );
    check_invalid(
        r#"{"matchExpressions": [{"key": "region", "operator": "NotIn", "values": []}]}"#,
        |e| {
            matches!(
                e,
                Error::MissingValues {
                    index: 0,
                    operator: SelectorOperator::NotIn,
                    ..
                }
            )
        },
    );
    check_invalid(
        r#"{"matchExpressions": [{"key": "gpu", "operator": "Exists", "values": ["x"]}]}"#,
        |e| matches!(e, Error::UnexpectedValues { index: 0, key, operator: SelectorOperator::Exists, count: 1 } if key == "gpu"),
    );
    check_invalid(
        r#"{"matchExpressions": [{"key": "gpu", "operator": "DoesNotExist", "values": ["x", "y"]}]}"#,
        |e| {
            matches!(
                e,
                Error::UnexpectedValues {
                    operator: SelectorOperator::DoesNotExist,
                    count: 2,
                    ..
                }
            )
        },
    );
    check_invalid(
        r#"{"matchExpressions": [{"key": "ok", "operator": "Exists"}, {"key": "Bad.Prefix/x", "operator": "Exists"}]}"#,
        |e| matches!(e, Error::InvalidRequirement { index: 1, key, source: metadata::Error::InvalidKey { .. } } if key == "Bad.Prefix/x"),
    );
    check_invalid(
        r#"{"matchExpressions": [{"key": "region", "operator": "In", "values": ["us east"]}]}"#,
        |e| {
            matches!(
                e,
                Error::InvalidRequirement {
                    index: 0,
                    source: metadata::Error::InvalidValue { .. },
                    ..
                }
            )
        },
    );
    check_invalid(
        r#"{"matchLabels": {"-tier": "prod"}}"#,
        |e| matches!(e, Error::InvalidMatchLabel { key, source: metadata::Error::InvalidKey { .. } } if key == "-tier"),
    );
    check_invalid(
        r#"{"matchLabels": {"tier": "prod!"}}"#,
        |e| matches!(e, Error::InvalidMatchLabel { key, source: metadata::Error::InvalidValue { .. } } if key == "tier"),
    );
    check_invalid(r#"{"matchLabels": {"": "x"}}"#, |e| {
        matches!(e, Error::InvalidMatchLabel { .. })
    });
}

#[test]
fn error_messages_name_the_requirement_and_keep_the_cause() {
    let err = parse(r#"{"matchExpressions": [{"key": "a", "operator": "Exists"}, {"key": "region", "operator": "In"}]}"#)
        .validate()
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        r#"matchExpressions[1] (key "region"): operator In needs at least one value"#
    );
    let err = parse(r#"{"matchLabels": {"-tier": "prod"}}"#)
        .validate()
        .unwrap_err();
    assert_eq!(err.to_string(), r#"invalid matchLabels entry "-tier""#);
    let source = std::error::Error::source(&err).expect("the syntax error is the source");
    assert!(
        source.to_string().starts_with(r#"invalid key "-tier""#),
        "{source}"
    );
}

#[test]
fn unknown_operator_fails_deserialisation() {
    let err = serde_json::from_str::<LabelSelector>(
        r#"{"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]}"#,
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("Gt"), "{err}");
    assert!(err.contains("In") && err.contains("DoesNotExist"), "{err}");
    // Operators are case sensitive, as in Kubernetes.
    assert!(serde_json::from_str::<SelectorOperator>(r#""in""#).is_err());
}

#[test]
fn misspelt_fields_are_rejected_rather_than_matching_everything() {
    for json in [
        r#"{"matchLabel": {"tier": "prod"}}"#,
        r#"{"match_labels": {"tier": "prod"}}"#,
        r#"{"matchExpressions": [{"key": "a", "operator": "In", "value": ["x"]}]}"#,
    ] {
        assert!(
            serde_json::from_str::<LabelSelector>(json).is_err(),
            "{json}"
        );
    }
    // A requirement needs its key and operator.
    assert!(
        serde_json::from_str::<LabelSelector>(r#"{"matchExpressions": [{"operator": "Exists"}]}"#)
            .is_err()
    );
    assert!(
        serde_json::from_str::<LabelSelector>(r#"{"matchExpressions": [{"key": "a"}]}"#).is_err()
    );
}

#[test]
fn serde_shape_is_kubernetes() {
    let sel = LabelSelector {
        match_labels: BTreeMap::from([("tier".into(), "prod".into())]),
        match_expressions: vec![
            SelectorRequirement {
                key: "region".into(),
                operator: SelectorOperator::NotIn,
                values: vec!["eu".into()],
            },
            SelectorRequirement {
                key: "gpu".into(),
                operator: SelectorOperator::DoesNotExist,
                values: vec![],
            },
        ],
    };
    let json = serde_json::to_value(&sel).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "matchLabels": {"tier": "prod"},
            "matchExpressions": [
                {"key": "region", "operator": "NotIn", "values": ["eu"]},
                {"key": "gpu", "operator": "DoesNotExist"}
            ]
        })
    );
    assert_eq!(serde_json::from_value::<LabelSelector>(json).unwrap(), sel);
    assert_eq!(
        serde_json::to_string(&LabelSelector::default()).unwrap(),
        "{}"
    );
    for op in [
        SelectorOperator::In,
        SelectorOperator::NotIn,
        SelectorOperator::Exists,
        SelectorOperator::DoesNotExist,
    ] {
        assert_eq!(serde_json::to_string(&op).unwrap(), format!("\"{op}\""));
    }
}

// ---- property tests ----

/// Keys requirements may mention; small so that selectors and labels often overlap.
const KEYS: &[&str] = &["a", "b", "c", "example.com/d"];
const VALUES: &[&str] = &["", "1", "2", "x"];

fn key() -> impl Strategy<Value = String> {
    prop::sample::select(KEYS).prop_map(str::to_owned)
}

fn value() -> impl Strategy<Value = String> {
    prop::sample::select(VALUES).prop_map(str::to_owned)
}

fn labels() -> impl Strategy<Value = Labels> {
    btree_map(key(), value(), 0..=KEYS.len())
}

fn operator() -> impl Strategy<Value = SelectorOperator> {
    prop_oneof![
        Just(SelectorOperator::In),
        Just(SelectorOperator::NotIn),
        Just(SelectorOperator::Exists),
        Just(SelectorOperator::DoesNotExist),
    ]
}

/// Any requirement, including ones `validate` rejects (matching must still be total).
fn requirement() -> impl Strategy<Value = SelectorRequirement> {
    (key(), operator(), vec(value(), 0..3)).prop_map(|(key, operator, values)| {
        SelectorRequirement {
            key,
            operator,
            values,
        }
    })
}

fn selector() -> impl Strategy<Value = LabelSelector> {
    (btree_map(key(), value(), 0..3), vec(requirement(), 0..4)).prop_map(
        |(match_labels, match_expressions)| LabelSelector {
            match_labels,
            match_expressions,
        },
    )
}

/// Kubernetes' semantics spelled out as plainly as possible, over a list of
/// (key, value) pairs rather than a map, sharing no code with the implementation.
fn reference_matches(selector: &LabelSelector, labels: &Labels) -> bool {
    let pairs: Vec<(&str, &str)> = labels
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let lookup = |key: &str| -> Option<&str> {
        for (k, v) in &pairs {
            if *k == key {
                return Some(v);
            }
        }
        None
    };
    for (key, want) in &selector.match_labels {
        if lookup(key) != Some(want.as_str()) {
            return false;
        }
    }
    for req in &selector.match_expressions {
        let found = lookup(&req.key);
        let in_set = match found {
            Some(v) => req.values.iter().any(|w| w == v),
            None => false,
        };
        let ok = match (req.operator, found) {
            (SelectorOperator::In, Some(_)) => in_set,
            (SelectorOperator::In, None) => false,
            (SelectorOperator::NotIn, Some(_)) => !in_set,
            (SelectorOperator::NotIn, None) => true,
            (SelectorOperator::Exists, found) => found.is_some(),
            (SelectorOperator::DoesNotExist, found) => found.is_none(),
        };
        if !ok {
            return false;
        }
    }
    true
}

proptest! {
    #[test]
    fn matches_agrees_with_reference(sel in selector(), labels in labels()) {
        prop_assert_eq!(sel.matches(&labels), reference_matches(&sel, &labels));
    }

    #[test]
    fn first_mismatch_is_none_exactly_when_matching(sel in selector(), labels in labels()) {
        let mismatch = sel.first_mismatch(&labels);
        prop_assert_eq!(mismatch.is_none(), sel.matches(&labels));
        if let Some(m) = mismatch {
            // The explanation names a key the selector mentions, and what was found there.
            let mentioned = sel.match_labels.contains_key(&m.key)
                || sel.match_expressions.iter().any(|r| r.key == m.key);
            prop_assert!(mentioned, "{m:?}");
            prop_assert_eq!(m.found.as_ref(), labels.get(&m.key));
        }
    }

    #[test]
    fn unmentioned_labels_never_change_the_result(
        sel in selector(),
        labels in labels(),
        // Not in KEYS, so no requirement can mention it.
        extra_key in "[a-z]{1,8}\\.io/[a-z]{1,8}",
        extra_value in value(),
    ) {
        prop_assume!(!KEYS.contains(&extra_key.as_str()));
        let mut more = labels.clone();
        more.insert(extra_key, extra_value);
        prop_assert_eq!(sel.matches(&more), sel.matches(&labels));
        prop_assert_eq!(sel.first_mismatch(&more), sel.first_mismatch(&labels));
    }

    #[test]
    fn match_labels_selector_matches_its_labels_and_supersets(
        own in labels(),
        extra in btree_map("[a-z]{1,6}", value(), 0..4),
    ) {
        let sel = LabelSelector { match_labels: own.clone(), ..LabelSelector::default() };
        prop_assert!(sel.matches(&own));
        let mut superset = extra;
        superset.extend(own);
        prop_assert!(sel.matches(&superset));
        prop_assert_eq!(sel.first_mismatch(&superset), None);
    }
}
