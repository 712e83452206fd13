use chrono::TimeZone;
use serde_json::json;
use uuid::Uuid;

use super::*;
use crate::id::{DeploymentObjectId, StackId};
use crate::rollout::{AgentOutcome, Span};

const SECRET: &[u8] = b"gate-secret-0123456789";
const AT: i64 = 1_700_000_000;

fn id<T: From<Uuid>>(n: u128) -> T {
    T::from(Uuid::from_u128(n))
}

fn mk_spec() -> GateSpec {
    GateSpec {
        name: "slo".into(),
        kind: GateKind::Webhook,
        phase: GatePhase::AfterWave,
        waves: Vec::new(),
        url: Some("https://slo.example/gate?team=a".into()),
        secret_ref: Some("slo-hmac".into()),
        custom: None,
        timeout: None,
        error_limit: None,
    }
}

fn mk_context() -> GateContext {
    GateContext {
        evaluation_id: id(0xe1),
        rollout_id: id(0x01),
        stack: StackRef {
            id: id::<StackId>(0x02),
            name: "billing".into(),
        },
        candidate: DeploymentObjectRef {
            id: id::<DeploymentObjectId>(0x03),
            sequence_id: 7,
            checksum: "c7".into(),
        },
        baseline: Some(DeploymentObjectRef {
            id: id::<DeploymentObjectId>(0x04),
            sequence_id: 6,
            checksum: "c6".into(),
        }),
        wave: WaveRef {
            index: 1,
            name: "eu".into(),
        },
        phase: GatePhase::AfterWave,
        attempt: 2,
        agents: vec![
            AgentOutcome {
                id: id(0x05),
                name: "eu-1".into(),
                labels: [("region".to_owned(), "eu".to_owned())].into(),
                state: RolloutAgentState::Healthy,
                health: Some(HealthStatus::Healthy),
                reason: None,
            },
            AgentOutcome {
                id: id(0x06),
                name: "eu-2".into(),
                labels: Labels::new(),
                state: RolloutAgentState::TimedOut,
                health: None,
                reason: Some("not healthy within 15m".into()),
            },
        ],
        spec: mk_spec(),
        now: chrono::Utc.timestamp_opt(AT, 0).unwrap(),
    }
}

/// `judge_answer` of a 200 with `body`.
fn judge(body: &str) -> Result<GateVerdict, GateError> {
    judge_answer(200, None, body.as_bytes())
}

fn wait(reason: &str, secs: u64) -> Result<GateVerdict, GateError> {
    Ok(GateVerdict::Wait {
        reason: reason.into(),
        recheck_after: Duration::from_secs(secs),
    })
}

/// The error text, or a panic naming what came instead.
fn error_of(result: Result<GateVerdict, GateError>) -> String {
    match result {
        Err(GateError(text)) => text,
        Ok(verdict) => panic!("expected a gate error, got {verdict:?}"),
    }
}

#[test]
fn the_body_has_exactly_the_designed_fields_in_order() {
    let cx = mk_context();
    let sent = body(&cx);
    let value: serde_json::Value = serde_json::from_slice(&sent).unwrap();
    assert_eq!(
        value,
        json!({
            "kind": "brokkr.gate.v1",
            "rollout_id": Uuid::from_u128(1).to_string(),
            "phase": "after_wave",
            "attempt": 2,
            "stack": {"id": Uuid::from_u128(2).to_string(), "name": "billing"},
            "candidate": {"id": Uuid::from_u128(3).to_string(), "sequence_id": 7, "checksum": "c7"},
            "baseline": {"id": Uuid::from_u128(4).to_string(), "sequence_id": 6, "checksum": "c6"},
            "wave": {"index": 1, "name": "eu"},
            "agents": [
                {"id": Uuid::from_u128(5).to_string(), "name": "eu-1", "labels": {"region": "eu"},
                 "state": "healthy", "health": "healthy", "reason": null},
                {"id": Uuid::from_u128(6).to_string(), "name": "eu-2", "labels": {},
                 "state": "timed_out", "health": null, "reason": "not healthy within 15m"},
            ],
        })
    );
    let text = String::from_utf8(sent.clone()).unwrap();
    assert!(
        text.starts_with(r#"{"kind":"brokkr.gate.v1","rollout_id":"#),
        "{text}"
    );
    assert_eq!(body(&cx), sent, "the same context gives the same bytes");
}

#[test]
fn a_first_deployment_object_has_a_null_baseline_and_the_phase_is_named() {
    let cx = GateContext {
        baseline: None,
        phase: GatePhase::BeforeWave,
        agents: Vec::new(),
        ..mk_context()
    };
    let value: serde_json::Value = serde_json::from_slice(&body(&cx)).unwrap();
    assert_eq!(value["baseline"], serde_json::Value::Null);
    assert_eq!(value["phase"], "before_wave");
    assert_eq!(value["agents"], json!([]));
    let continuous = GateContext {
        phase: GatePhase::Continuous,
        ..mk_context()
    };
    let value: serde_json::Value = serde_json::from_slice(&body(&continuous)).unwrap();
    assert_eq!(value["phase"], "continuous");
}

#[test]
fn the_headers_sign_timestamp_and_body_and_carry_the_evaluation_id() {
    let cx = mk_context();
    let sent = body(&cx);
    let headers = signed_headers(SECRET, cx.evaluation_id, AT, &sent);
    let header = |name: &str| {
        headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} in {headers:?}"))
    };
    assert_eq!(header("Content-Type"), "application/json");
    assert_eq!(header("X-Brokkr-Timestamp"), "1700000000");
    assert_eq!(
        header("X-Brokkr-Delivery"),
        Uuid::from_u128(0xe1).to_string()
    );
    let signature = header("X-Brokkr-Signature");
    assert_eq!(signature, signature::sign(SECRET, AT, &sent));
    signature::verify(
        SECRET,
        AT,
        &sent,
        signature,
        AT,
        signature::DEFAULT_TOLERANCE,
    )
    .expect("a receiver with the secret verifies it");
    assert_eq!(
        signature::verify(
            b"another-secret-0123",
            AT,
            &sent,
            signature,
            AT,
            signature::DEFAULT_TOLERANCE
        ),
        Err(signature::SignatureError::Mismatch)
    );
}

#[test]
fn a_repeated_evaluation_sends_the_same_delivery_id_and_body() {
    let cx = mk_context();
    let first = request(&cx, SECRET, AT).unwrap();
    let again = request(&cx, SECRET, AT + 90).unwrap();
    let delivery = |r: &GateRequest| {
        r.headers
            .iter()
            .find(|(n, _)| *n == webhook::DELIVERY_HEADER)
            .map(|(_, v)| v.clone())
    };
    assert_eq!(delivery(&first), delivery(&again));
    assert_eq!(delivery(&first), Some(cx.evaluation_id.to_string()));
    assert_eq!(first.body, again.body);
    assert_ne!(first.headers, again.headers, "signed at another time");
    let other = GateContext {
        evaluation_id: id(0xe2),
        ..mk_context()
    };
    assert_ne!(
        delivery(&request(&other, SECRET, AT).unwrap()),
        delivery(&first)
    );
}

#[test]
fn a_request_goes_to_the_gate_url_within_its_timeout() {
    let cx = mk_context();
    let sent = request(&cx, SECRET, AT).unwrap();
    assert_eq!(sent.url, "https://slo.example/gate?team=a");
    assert_eq!(sent.timeout, DEFAULT_TIMEOUT);
    assert_eq!(sent.body, body(&cx));
    for (url, named) in [
        (None, "has no url"),
        (Some("ftp://slo.example/"), "scheme"),
        (Some("https://user:pw@slo.example/"), "user name"),
    ] {
        let cx = GateContext {
            spec: GateSpec {
                url: url.map(str::to_owned),
                ..mk_spec()
            },
            ..mk_context()
        };
        let err = request(&cx, SECRET, AT).unwrap_err().0;
        assert!(err.contains("\"slo\"") && err.contains(named), "{err}");
    }
}

#[test]
fn the_timeout_defaults_to_10s_and_is_at_most_60s() {
    let with = |given: Option<&str>| {
        timeout(&GateSpec {
            timeout: given.map(|t| t.parse::<Span>().unwrap()),
            ..mk_spec()
        })
    };
    assert_eq!(with(None), Duration::from_secs(10));
    assert_eq!(with(Some("3s")), Duration::from_secs(3));
    assert_eq!(with(Some("250ms")), Duration::from_millis(250));
    assert_eq!(with(Some("60s")), Duration::from_secs(60));
    assert_eq!(
        with(Some("5m")),
        Duration::from_secs(60),
        "cut to the maximum"
    );
}

#[test]
fn the_secret_ref_is_required() {
    assert_eq!(secret_ref(&mk_spec()), Ok("slo-hmac"));
    for missing in [None, Some(""), Some("  ")] {
        let spec = GateSpec {
            secret_ref: missing.map(str::to_owned),
            ..mk_spec()
        };
        let err = secret_ref(&spec).unwrap_err().0;
        assert_eq!(err, "webhook gate \"slo\" names no secret_ref");
    }
}

#[test]
fn a_policy_gate_is_checked_naming_what_is_wrong() {
    assert_eq!(validate_spec(&mk_spec()), Ok(()));
    let check = |spec: GateSpec, named: &str| {
        let err = validate_spec(&spec).unwrap_err();
        assert!(err.contains("\"slo\"") && err.contains(named), "{err}");
    };
    check(
        GateSpec {
            kind: GateKind::Approval,
            ..mk_spec()
        },
        "not a webhook gate",
    );
    check(
        GateSpec {
            url: None,
            ..mk_spec()
        },
        "needs a url",
    );
    check(
        GateSpec {
            url: Some("https://slo.example/#x".into()),
            ..mk_spec()
        },
        "fragment",
    );
    check(
        GateSpec {
            secret_ref: None,
            ..mk_spec()
        },
        "secret_ref",
    );
    for bad in ["0s", "61s"] {
        check(
            GateSpec {
                timeout: Some(bad.parse().unwrap()),
                ..mk_spec()
            },
            "timeout",
        );
    }
}

#[test]
fn each_verdict_is_read_with_its_reason() {
    assert_eq!(judge(r#"{"verdict":"pass"}"#), Ok(GateVerdict::Pass));
    assert_eq!(
        judge(r#"{"verdict":"pass","reason":"fine","recheck_after_seconds":5}"#),
        Ok(GateVerdict::Pass)
    );
    assert_eq!(
        judge(r#"{"verdict":"fail","reason":"error rate 4%"}"#),
        Ok(GateVerdict::Fail {
            reason: "error rate 4%".into()
        })
    );
    assert_eq!(
        judge(r#"{"verdict":"pause","reason":"change freeze"}"#),
        Ok(GateVerdict::Pause {
            reason: "change freeze".into()
        })
    );
    assert_eq!(
        judge(r#"{"verdict":"wait","reason":"warming","recheck_after_seconds":120}"#),
        wait("warming", 120)
    );
    assert_eq!(
        judge_answer(
            201,
            None,
            br#"{"verdict":"fail","reason":"no","extra":{"x":1}}"#
        ),
        Ok(GateVerdict::Fail {
            reason: "no".into()
        }),
        "any 2xx; fields beyond the three are ignored"
    );
}

#[test]
fn an_empty_2xx_is_a_pass() {
    for (status, body) in [(200, ""), (204, ""), (200, "  \r\n\t"), (202, "\n")] {
        assert_eq!(
            judge_answer(status, None, body.as_bytes()),
            Ok(GateVerdict::Pass),
            "{status} {body:?}"
        );
    }
}

#[test]
fn a_wait_rechecks_after_30s_by_default_and_within_a_second_and_an_hour() {
    assert_eq!(judge(r#"{"verdict":"wait","reason":"w"}"#), wait("w", 30));
    assert_eq!(
        judge(r#"{"verdict":"wait","reason":"w","recheck_after_seconds":null}"#),
        wait("w", 30)
    );
    assert_eq!(
        judge(r#"{"verdict":"wait","reason":"w","recheck_after_seconds":3600}"#),
        wait("w", 3600)
    );
    assert_eq!(
        judge(r#"{"verdict":"wait","reason":"w","recheck_after_seconds":86400}"#),
        wait("w", 3600),
        "at most an hour"
    );
    assert_eq!(
        judge(r#"{"verdict":"wait","reason":"w","recheck_after_seconds":1e300}"#),
        wait("w", 3600)
    );
    assert_eq!(
        judge(r#"{"verdict":"wait","reason":"w","recheck_after_seconds":0}"#),
        wait("w", 1),
        "never a busy loop"
    );
    assert_eq!(
        judge(r#"{"verdict":"wait","reason":"w","recheck_after_seconds":2.1}"#),
        wait("w", 3),
        "rounded up"
    );
    let err = error_of(judge(
        r#"{"verdict":"wait","reason":"w","recheck_after_seconds":-5}"#,
    ));
    assert!(err.contains("recheck_after_seconds -5"), "{err}");
    let err = error_of(judge(
        r#"{"verdict":"wait","recheck_after_seconds":"soon"}"#,
    ));
    assert!(err.contains("no verdict"), "{err}");
}

#[test]
fn a_missing_reason_is_said_and_a_long_one_is_cut_to_one_line() {
    assert_eq!(
        judge(r#"{"verdict":"fail"}"#),
        Ok(GateVerdict::Fail {
            reason: "the webhook answered fail without a reason".into()
        })
    );
    assert_eq!(
        judge(r#"{"verdict":"pause","reason":"  "}"#),
        Ok(GateVerdict::Pause {
            reason: "the webhook answered pause without a reason".into()
        })
    );
    assert_eq!(
        judge(r#"{"verdict":"wait","reason":null}"#),
        wait("the webhook answered wait without a reason", 30)
    );
    assert_eq!(
        judge(r#"{"verdict":"fail","reason":"line one\nline\ttwo "}"#),
        Ok(GateVerdict::Fail {
            reason: "line one line two".into()
        })
    );
    let long = "é".repeat(MAX_REASON_BYTES);
    let Ok(GateVerdict::Fail { reason }) =
        judge(&json!({"verdict":"fail","reason":long}).to_string())
    else {
        panic!("a fail");
    };
    assert_eq!(
        reason.len(),
        MAX_REASON_BYTES,
        "cut at a character boundary"
    );
    assert!(long.starts_with(&reason));
}

#[test]
fn a_non_2xx_is_an_error_quoting_the_answer_never_a_failure() {
    assert_eq!(
        judge_answer(500, None, b"  boom\n"),
        Err(GateError("answered 500: boom".into()))
    );
    assert_eq!(
        judge_answer(404, None, b""),
        Err(GateError("answered 404".into()))
    );
    // A 4xx or 5xx whose body looks like a verdict is still an error: only a 2xx
    // speaks for the gate.
    assert_eq!(
        judge_answer(503, None, br#"{"verdict":"fail"}"#),
        Err(GateError(r#"answered 503: {"verdict":"fail"}"#.into()))
    );
    let err = error_of(judge_answer(500, None, "x".repeat(5000).as_bytes()));
    assert!(err.ends_with('…') && err.len() < 260, "{err}");
}

#[test]
fn a_redirect_is_an_error_naming_where_it_pointed() {
    assert_eq!(
        judge_answer(302, Some("http://elsewhere.example/"), b""),
        Err(GateError(
            "answered 302, a redirect to http://elsewhere.example/ (redirects are not followed)"
                .into()
        ))
    );
    let err = error_of(judge_answer(307, None, br#"{"verdict":"pass"}"#));
    assert!(err.contains("not followed"), "{err}");
}

#[test]
fn an_answer_that_is_not_a_verdict_is_an_error() {
    for (body, named) in [
        ("ok", "no verdict"),
        ("{\"verdict\":", "no verdict"),
        ("[]", "no verdict"),
        ("null", "no verdict"),
        (
            r#"{"reason":"no verdict field"}"#,
            "missing field `verdict`",
        ),
        (r#"{"verdict":true}"#, "no verdict"),
        (r#"{"verdict":"fail","reason":42}"#, "no verdict"),
        (r#"{"verdict":"maybe"}"#, "unknown verdict \"maybe\""),
        (r#"{"verdict":"PASS"}"#, "unknown verdict \"PASS\""),
        (r#"{"verdict":""}"#, "unknown verdict \"\""),
    ] {
        let err = error_of(judge(body));
        assert!(err.contains(named), "{body}: {err}");
    }
}

#[test]
fn an_answer_longer_than_the_bound_is_an_error() {
    let padded = format!(
        r#"{{"verdict":"pass","reason":"{}"}}"#,
        "x".repeat(MAX_ANSWER_BYTES)
    );
    let err = error_of(judge(&padded));
    assert!(err.contains("more than 65536 bytes"), "{err}");
    let fits = format!(
        r#"{{"verdict":"pass","pad":"{}"}}"#,
        "x".repeat(MAX_ANSWER_BYTES - 40)
    );
    assert!(fits.len() <= MAX_ANSWER_BYTES);
    assert_eq!(judge(&fits), Ok(GateVerdict::Pass));
}

#[test]
fn errors_are_bounded() {
    let err = error_of(judge(&format!(r#"{{"verdict":"{}"}}"#, "v".repeat(4000))));
    assert!(err.len() <= MAX_REASON_BYTES, "{}", err.len());
    let err = error_of(judge_answer(
        302,
        Some(&format!("http://x.example/{}", "p".repeat(4000))),
        b"",
    ));
    assert_eq!(err.len(), MAX_REASON_BYTES);
    let GateError(text) = gate_error("é".repeat(MAX_REASON_BYTES));
    assert_eq!(text.len(), MAX_REASON_BYTES, "cut at a character boundary");
    assert_eq!(gate_error("short").0, "short");
}
