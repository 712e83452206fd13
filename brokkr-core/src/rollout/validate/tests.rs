use serde_json::{Value, json};

use super::*;

/// A valid policy in JSON, to break one field at a time.
fn mk_policy() -> Value {
    json!({
        "waves": [
            {"name": "canary", "select": {"agents": ["edge-7"]}},
            {"name": "eu", "select": {"match_labels": {"region": "eu"}}, "split": "50%"},
            {"name": "rest", "select": {"remaining": true}, "group_by": "zone"}
        ],
        "max_concurrency": 5, "max_unavailable": "10%", "max_failures": 0,
        "bake_time": "10m", "progress_deadline": "15m", "rollout_deadline": "6h",
        "gates": [
            {"name": "slo", "type": "webhook", "phase": "after_wave",
             "url": "https://slo.example/gate", "secret_ref": "slo-hmac",
             "timeout": "10s", "error_limit": 3},
            {"name": "prod-ok", "type": "approval", "phase": "before_wave", "waves": ["rest"]}
        ]
    })
}

/// Validates `policy` and compares the (path, code) of every violation.
fn check(policy: Value, expected: &[(&str, &str)]) {
    let policy: RolloutPolicy = serde_json::from_value(policy).expect("the policy parses");
    let found: Vec<(String, &str)> = match policy.validate() {
        Ok(()) => Vec::new(),
        Err(violations) => {
            for v in &violations {
                assert!(!v.message.is_empty(), "{v:?} explains itself");
            }
            violations.into_iter().map(|v| (v.path, v.code)).collect()
        }
    };
    let expected: Vec<(String, &str)> = expected
        .iter()
        .map(|(path, code)| (path.to_string(), *code))
        .collect();
    assert_eq!(found, expected);
}

fn with(mut policy: Value, pointer: &str, value: Value) -> Value {
    *policy.pointer_mut(pointer).expect("the field exists") = value;
    policy
}

#[test]
fn the_design_example_is_valid() {
    check(mk_policy(), &[]);
}

#[test]
fn a_policy_has_one_to_a_hundred_waves() {
    let mut policy = with(mk_policy(), "/waves", json!([]));
    policy["gates"] = json!([]);
    check(policy, &[("/waves", "required")]);
    let waves: Vec<Value> = (0..101)
        .map(|i| json!({"name": format!("w{i}"), "select": {"match_labels": {"n": i.to_string()}}}))
        .collect();
    let mut policy = with(mk_policy(), "/waves", json!(waves));
    policy["gates"] = json!([]);
    check(policy, &[("/waves", "too_many")]);
}

#[test]
fn wave_names_are_unique_dns_labels_and_not_reserved() {
    check(
        with(mk_policy(), "/waves/1/name", json!("canary")),
        &[("/waves/1/name", "duplicate")],
    );
    check(
        with(mk_policy(), "/waves/1/name", json!("")),
        &[("/waves/1/name", "required")],
    );
    let long = "x".repeat(64);
    for bad in ["EU", "eu_west", "-eu", "eu-", "eu/1", long.as_str()] {
        check(
            with(mk_policy(), "/waves/1/name", json!(bad)),
            &[("/waves/1/name", "invalid_name")],
        );
    }
    check(
        with(mk_policy(), "/waves/1/name", json!("late")),
        &[("/waves/1/name", "reserved_name")],
    );
}

#[test]
fn a_wave_selects_exactly_one_way() {
    check(
        with(mk_policy(), "/waves/1/select", json!({})),
        &[("/waves/1/select", "invalid_select")],
    );
    check(
        with(
            mk_policy(),
            "/waves/1/select",
            json!({"agents": ["a"], "match_labels": {"region": "eu"}}),
        ),
        &[("/waves/1/select", "invalid_select")],
    );
}

#[test]
fn only_the_last_wave_takes_the_remaining_agents() {
    check(
        with(mk_policy(), "/waves/1/select", json!({"remaining": true})),
        &[("/waves/1/select/remaining", "remaining_not_last")],
    );
}

#[test]
fn labels_and_group_by_follow_the_label_syntax() {
    check(
        with(
            mk_policy(),
            "/waves/1/select/match_labels",
            json!({"bad key!": "eu", "example.com/ok": "not ok!"}),
        ),
        &[
            ("/waves/1/select/match_labels/bad key!", "invalid_label"),
            (
                "/waves/1/select/match_labels/example.com~1ok",
                "invalid_label",
            ),
        ],
    );
    check(
        with(mk_policy(), "/waves/2/group_by", json!("Not/A/Key")),
        &[("/waves/2/group_by", "invalid_label_key")],
    );
}

#[test]
fn listed_agents_are_bounded_named_and_listed_once() {
    let many: Vec<String> = (0..1001).map(|i| format!("a{i}")).collect();
    check(
        with(mk_policy(), "/waves/0/select/agents", json!(many)),
        &[("/waves/0/select/agents", "too_many")],
    );
    check(
        with(
            mk_policy(),
            "/waves/0/select/agents",
            json!(["a", " ", "a"]),
        ),
        &[
            ("/waves/0/select/agents/1", "invalid_agent"),
            ("/waves/0/select/agents/2", "duplicate"),
        ],
    );
    check(
        with(
            mk_policy(),
            "/waves/1/select",
            json!({"agents": ["edge-7"]}),
        ),
        &[("/waves/1/select/agents/0", "duplicate")],
    );
}

#[test]
fn zero_budgets_and_splits_are_refused() {
    check(
        with(mk_policy(), "/waves/1/split", json!(0)),
        &[("/waves/1/split", "zero")],
    );
    check(
        with(mk_policy(), "/waves/1/split", json!("0%")),
        &[("/waves/1/split", "zero")],
    );
    check(
        with(mk_policy(), "/max_concurrency", json!(0)),
        &[("/max_concurrency", "zero")],
    );
    check(
        with(mk_policy(), "/max_unavailable", json!(0)),
        &[("/max_unavailable", "zero")],
    );
    check(
        with(mk_policy(), "/max_unavailable", json!("0%")),
        &[("/max_unavailable", "zero")],
    );
    // No failures tolerated is a sound choice, not a mistake.
    check(with(mk_policy(), "/max_failures", json!("0%")), &[]);
}

#[test]
fn timers_are_positive_and_bounded() {
    check(
        with(mk_policy(), "/progress_deadline", json!("0s")),
        &[("/progress_deadline", "zero")],
    );
    check(
        with(mk_policy(), "/rollout_deadline", json!(0)),
        &[("/rollout_deadline", "zero")],
    );
    check(
        with(mk_policy(), "/bake_time", json!("400d")),
        &[("/bake_time", "too_long")],
    );
    // No bake is allowed: the wave succeeds once every agent is healthy.
    check(with(mk_policy(), "/bake_time", json!("0s")), &[]);
}

#[test]
fn gate_names_are_unique_and_gates_bounded() {
    check(
        with(mk_policy(), "/gates/1/name", json!("slo")),
        &[("/gates/1/name", "duplicate")],
    );
    check(
        with(mk_policy(), "/gates/1/name", json!("Prod OK")),
        &[("/gates/1/name", "invalid_name")],
    );
    let gates: Vec<Value> = (0..21)
        .map(|i| json!({"name": format!("g{i}"), "type": "approval", "phase": "before_wave"}))
        .collect();
    check(
        with(mk_policy(), "/gates", json!(gates)),
        &[("/gates", "too_many")],
    );
}

#[test]
fn a_webhook_gate_needs_a_url_and_a_secret() {
    let mut policy = mk_policy();
    policy["gates"][0]
        .as_object_mut()
        .expect("an object")
        .retain(|k, _| !matches!(k.as_str(), "url" | "secret_ref"));
    check(
        policy,
        &[
            ("/gates/0/url", "required"),
            ("/gates/0/secret_ref", "required"),
        ],
    );
    check(
        with(mk_policy(), "/gates/0/url", json!("ftp://slo.example/gate")),
        &[("/gates/0/url", "invalid_url")],
    );
    check(
        with(
            mk_policy(),
            "/gates/0/url",
            json!("https://user:pw@slo.example/"),
        ),
        &[("/gates/0/url", "invalid_url")],
    );
    check(
        with(mk_policy(), "/gates/0/secret_ref", json!("")),
        &[("/gates/0/secret_ref", "invalid_name")],
    );
    let mut policy = mk_policy();
    policy["gates"][0]["custom"] = json!("mine");
    check(policy, &[("/gates/0/custom", "not_allowed")]);
}

#[test]
fn a_custom_gate_names_its_registered_gate_and_nothing_else() {
    let gate = json!({"name": "mine", "type": "custom", "phase": "continuous"});
    check(
        with(mk_policy(), "/gates/0", gate.clone()),
        &[("/gates/0/custom", "required")],
    );
    let mut gate = gate;
    gate["custom"] = json!("error-budget");
    gate["url"] = json!("https://x.example/");
    gate["secret_ref"] = json!("s");
    check(
        with(mk_policy(), "/gates/0", gate),
        &[
            ("/gates/0/url", "not_allowed"),
            ("/gates/0/secret_ref", "not_allowed"),
        ],
    );
}

#[test]
fn an_approval_takes_no_webhook_fields_and_never_runs_continuously() {
    let gate = json!({"name": "ok", "type": "approval", "phase": "continuous",
                      "url": "https://x.example/", "secret_ref": "s", "custom": "c",
                      "timeout": "5s", "error_limit": 2});
    check(
        with(mk_policy(), "/gates/1", gate),
        &[
            ("/gates/1/url", "not_allowed"),
            ("/gates/1/secret_ref", "not_allowed"),
            ("/gates/1/custom", "not_allowed"),
            ("/gates/1/timeout", "not_allowed"),
            ("/gates/1/error_limit", "not_allowed"),
            ("/gates/1/phase", "not_allowed"),
        ],
    );
}

#[test]
fn gates_name_existing_waves_and_bound_their_timeout_and_errors() {
    check(
        with(mk_policy(), "/gates/1/waves", json!(["rest", "us"])),
        &[("/gates/1/waves/1", "unknown_wave")],
    );
    for bad in ["0s", "61s", "2m"] {
        check(
            with(mk_policy(), "/gates/0/timeout", json!(bad)),
            &[("/gates/0/timeout", "out_of_range")],
        );
    }
    check(with(mk_policy(), "/gates/0/timeout", json!("60s")), &[]);
    check(
        with(mk_policy(), "/gates/0/error_limit", json!(0)),
        &[("/gates/0/error_limit", "out_of_range")],
    );
}

#[test]
fn every_violation_is_reported_not_just_the_first() {
    let mut policy = mk_policy();
    policy["max_concurrency"] = json!(0);
    policy["progress_deadline"] = json!("0s");
    policy["waves"][0]["name"] = json!("Canary");
    policy["gates"][1]["waves"] = json!(["nowhere"]);
    check(
        policy,
        &[
            ("/waves/0/name", "invalid_name"),
            ("/max_concurrency", "zero"),
            ("/progress_deadline", "zero"),
            ("/gates/1/waves/0", "unknown_wave"),
        ],
    );
}
