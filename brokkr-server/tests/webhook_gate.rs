//! `WebhookGate` against the loopback receiver: every way a gate's receiver can answer
//! (or not) becomes a verdict or a gate error, every request it gets is signed over
//! the exact body and timestamp with the shared secret, and a host outside the
//! allowlist is never connected to.

mod common;

use std::time::{Duration, Instant};

use brokkr_core::rollout::{
    AgentOutcome, DeploymentObjectRef, Gate, GateContext, GateError, GateKind, GatePhase,
    GateRegistry, GateSpec, GateVerdict, StackRef, WaveRef, webhook_gate,
};
use brokkr_core::webhook::{HostAllowlist, signature};
use brokkr_core::{
    AgentId, DeploymentObjectId, GateEvaluationId, HealthStatus, RolloutAgentState, RolloutId,
    StackId,
};
use brokkr_server::webhooks::{GateSecrets, WebhookGate};
use common::receiver::{Answer, Received, Receiver};
use serde_json::json;

const SECRET: &str = "gate-secret-shared-with-the-receiver";
const SECRET_REF: &str = "slo-hmac";

fn mk_gate(allowed: &[&str]) -> WebhookGate {
    WebhookGate::new(
        HostAllowlist::parse(allowed).unwrap(),
        GateSecrets::new([(SECRET_REF, SECRET), ("other", "another secret, unused")]).unwrap(),
    )
    .unwrap()
}

/// A gate for `receiver` alone.
fn mk_gate_for(receiver: &Receiver) -> WebhookGate {
    mk_gate(&[&receiver.host_port()])
}

fn mk_spec(url: String) -> GateSpec {
    GateSpec {
        name: "slo".into(),
        kind: GateKind::Webhook,
        phase: GatePhase::AfterWave,
        waves: Vec::new(),
        url: Some(url),
        secret_ref: Some(SECRET_REF.into()),
        custom: None,
        timeout: Some("5s".parse().unwrap()),
        error_limit: None,
    }
}

fn mk_context(spec: GateSpec) -> GateContext {
    GateContext {
        evaluation_id: GateEvaluationId::new(),
        rollout_id: RolloutId::new(),
        stack: StackRef {
            id: StackId::new(),
            name: "billing".into(),
        },
        candidate: DeploymentObjectRef {
            id: DeploymentObjectId::new(),
            sequence_id: 8,
            checksum: "c8".into(),
        },
        baseline: Some(DeploymentObjectRef {
            id: DeploymentObjectId::new(),
            sequence_id: 7,
            checksum: "c7".into(),
        }),
        wave: WaveRef {
            index: 0,
            name: "canary".into(),
        },
        phase: GatePhase::AfterWave,
        attempt: 1,
        agents: vec![AgentOutcome {
            id: AgentId::new(),
            name: "edge-7".into(),
            labels: [("region".to_owned(), "eu".to_owned())].into(),
            state: RolloutAgentState::Healthy,
            health: Some(HealthStatus::Healthy),
            reason: None,
        }],
        spec,
        now: chrono::Utc::now(),
    }
}

/// A context for a gate at `receiver`'s `/gate?team=a`.
fn mk_context_for(receiver: &Receiver) -> GateContext {
    mk_context(mk_spec(receiver.url("/gate?team=a")))
}

/// What a receiver holding the secret checks: a `POST` of exactly the evaluation's
/// body, delivered as the evaluation's id, signed over that body and the timestamp
/// sent, the timestamp within the tolerance of the receiver's clock.
fn assert_signed(request: &Received, cx: &GateContext) {
    assert_eq!(request.method, "POST");
    assert_eq!(request.path, "/gate?team=a");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(
        request.header("x-brokkr-delivery"),
        Some(cx.evaluation_id.to_string().as_str())
    );
    assert_eq!(request.body, webhook_gate::body(cx), "the exact body");
    let timestamp: i64 = request
        .header("x-brokkr-timestamp")
        .expect("a timestamp")
        .parse()
        .expect("seconds since the epoch");
    signature::verify(
        SECRET.as_bytes(),
        timestamp,
        &request.body,
        request.header("x-brokkr-signature").expect("a signature"),
        chrono::Utc::now().timestamp(),
        signature::DEFAULT_TOLERANCE,
    )
    .expect("the receiver verifies the signature with the shared secret");
}

/// Evaluates `cx` once with `answer` scripted; checks the one request it made.
async fn ask_with(
    receiver: &Receiver,
    cx: &GateContext,
    answer: Answer,
) -> Result<GateVerdict, GateError> {
    let before = receiver.received().len();
    receiver.script([answer]);
    let verdict = mk_gate_for(receiver).evaluate(cx).await;
    let received = receiver.received();
    assert_eq!(received.len(), before + 1, "one request per evaluation");
    assert_signed(&received[before], cx);
    verdict
}

/// A fresh evaluation answered with `answer`.
async fn ask(receiver: &Receiver, answer: Answer) -> Result<GateVerdict, GateError> {
    ask_with(receiver, &mk_context_for(receiver), answer).await
}

fn verdict(value: serde_json::Value) -> Answer {
    Answer::Json(200, value.to_string())
}

fn error_of(result: Result<GateVerdict, GateError>) -> String {
    match result {
        Err(GateError(text)) => text,
        Ok(verdict) => panic!("expected a gate error, got {verdict:?}"),
    }
}

#[tokio::test]
async fn a_pass_answers_a_signed_request_that_carries_the_evaluation() {
    let receiver = Receiver::start().await;
    let cx = mk_context_for(&receiver);
    let answered = ask_with(&receiver, &cx, verdict(json!({"verdict": "pass"}))).await;
    assert_eq!(answered, Ok(GateVerdict::Pass));
    let request = &receiver.received()[0];
    assert!(
        request
            .header("user-agent")
            .is_some_and(|agent| agent.starts_with("brokkr-gates/")),
        "{:?}",
        request.headers
    );
    let body = request.json();
    assert_eq!(body["kind"], "brokkr.gate.v1");
    assert_eq!(body["rollout_id"], cx.rollout_id.to_string());
    assert_eq!(body["phase"], "after_wave");
    assert_eq!(body["attempt"], 1);
    assert_eq!(body["stack"]["name"], "billing");
    assert_eq!(body["candidate"]["sequence_id"], 8);
    assert_eq!(body["baseline"]["checksum"], "c7");
    assert_eq!(body["wave"], json!({"index": 0, "name": "canary"}));
    assert_eq!(body["agents"][0]["name"], "edge-7");
    assert_eq!(body["agents"][0]["labels"], json!({"region": "eu"}));
    assert_eq!(body["agents"][0]["state"], "healthy");
    assert_eq!(body["agents"][0]["health"], "healthy");

    let mut registry = GateRegistry::new();
    registry.register(std::sync::Arc::new(mk_gate_for(&receiver)));
    assert!(registry.get("webhook").is_some(), "registered as webhook");
}

#[tokio::test]
async fn fail_wait_and_pause_are_read_with_their_reasons() {
    let receiver = Receiver::start().await;
    let cases = [
        (
            json!({"verdict": "fail", "reason": "error rate 4%"}),
            GateVerdict::Fail {
                reason: "error rate 4%".into(),
            },
        ),
        (
            json!({"verdict": "wait", "reason": "warming up", "recheck_after_seconds": 120}),
            GateVerdict::Wait {
                reason: "warming up".into(),
                recheck_after: Duration::from_secs(120),
            },
        ),
        (
            json!({"verdict": "wait", "reason": "no window yet"}),
            GateVerdict::Wait {
                reason: "no window yet".into(),
                recheck_after: Duration::from_secs(30),
            },
        ),
        (
            json!({"verdict": "pause", "reason": "change freeze"}),
            GateVerdict::Pause {
                reason: "change freeze".into(),
            },
        ),
    ];
    for (answer, expected) in cases {
        assert_eq!(
            ask(&receiver, verdict(answer.clone())).await,
            Ok(expected),
            "{answer}"
        );
    }
}

#[tokio::test]
async fn an_empty_2xx_is_a_pass() {
    let receiver = Receiver::start().await;
    for status in [200, 202, 204] {
        assert_eq!(
            ask(&receiver, Answer::Json(status, String::new())).await,
            Ok(GateVerdict::Pass),
            "{status}"
        );
    }
}

#[tokio::test]
async fn a_500_is_a_gate_error_not_a_failure() {
    let receiver = Receiver::start().await;
    assert_eq!(
        ask(&receiver, Answer::Status(500)).await,
        Err(GateError("answered 500: scripted 500".into()))
    );
    // Even when its body reads like a verdict: only a 2xx speaks for the gate.
    let err = error_of(
        ask(
            &receiver,
            Answer::Json(503, json!({"verdict": "fail"}).to_string()),
        )
        .await,
    );
    assert!(err.starts_with("answered 503"), "{err}");
}

#[tokio::test]
async fn an_answer_that_is_not_a_verdict_is_a_gate_error() {
    let receiver = Receiver::start().await;
    for (answer, named) in [
        (Answer::Json(200, "{\"verdict\": ".into()), "no verdict"),
        (Answer::Status(200), "no verdict"),
        (
            verdict(json!({"verdict": "maybe"})),
            "unknown verdict \"maybe\"",
        ),
        (
            verdict(json!({"verdict": "wait", "recheck_after_seconds": -1})),
            "recheck_after_seconds -1",
        ),
    ] {
        let err = error_of(ask(&receiver, answer.clone()).await);
        assert!(err.contains(named), "{answer:?}: {err}");
    }
}

#[tokio::test]
async fn a_redirect_is_not_followed() {
    let receiver = Receiver::start().await;
    let elsewhere = receiver.url("/elsewhere");
    let err = error_of(ask(&receiver, Answer::Redirect(elsewhere.clone())).await);
    assert_eq!(
        err,
        format!("answered 302, a redirect to {elsewhere} (redirects are not followed)")
    );
    // Give a follower time to show itself: still only the one request.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let received = receiver.received();
    assert_eq!(received.len(), 1, "{received:#?}");
    assert_eq!(received[0].path, "/gate?team=a");
}

#[tokio::test]
async fn an_answer_slower_than_the_gates_timeout_is_a_gate_error_in_time() {
    let receiver = Receiver::start().await;
    let spec = GateSpec {
        timeout: Some("300ms".parse().unwrap()),
        ..mk_spec(receiver.url("/gate?team=a"))
    };
    let cx = mk_context(spec);
    let started = Instant::now();
    let answered = ask_with(&receiver, &cx, Answer::Sleep(Duration::from_secs(5))).await;
    let took = started.elapsed();
    assert_eq!(answered, Err(GateError("no answer within 300 ms".into())));
    assert!(
        took >= Duration::from_millis(300) && took < Duration::from_millis(1500),
        "took {took:?}"
    );
}

#[tokio::test]
async fn an_endless_answer_is_read_only_up_to_the_bound() {
    let receiver = Receiver::start().await;
    let started = Instant::now();
    let err = error_of(ask(&receiver, Answer::Endless(200)).await);
    assert!(
        err.contains(&format!(
            "more than {} bytes",
            webhook_gate::MAX_ANSWER_BYTES
        )),
        "{err}"
    );
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stopped at the bound, not at the timeout: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_host_outside_the_allowlist_is_refused_before_any_connection() {
    let receiver = Receiver::start().await;
    let cx = mk_context_for(&receiver);
    for allowed in [
        &[][..],
        &["127.0.0.1:1"],
        &["*.example.com"],
        &["localhost"],
    ] {
        let err = error_of(mk_gate(allowed).evaluate(&cx).await);
        assert!(
            err.starts_with("not sent:") && err.contains("allowlist"),
            "{allowed:?}: {err}"
        );
    }
    assert_eq!(receiver.connections(), 0, "no connection was opened");
    assert!(receiver.received().is_empty());
}

#[tokio::test]
async fn an_unknown_secret_ref_is_a_gate_error_naming_it_and_nothing_is_sent() {
    let receiver = Receiver::start().await;
    let spec = GateSpec {
        secret_ref: Some("missing-secret".into()),
        ..mk_spec(receiver.url("/gate?team=a"))
    };
    let err = error_of(mk_gate_for(&receiver).evaluate(&mk_context(spec)).await);
    assert!(
        err.contains("\"missing-secret\"") && err.contains("gate_secrets"),
        "{err}"
    );
    assert_eq!(receiver.connections(), 0);
}

#[tokio::test]
async fn a_repeated_evaluation_is_delivered_with_the_same_id() {
    let receiver = Receiver::start().await;
    let cx = mk_context_for(&receiver);
    // A first try that errs, then the evaluation run again (a retry, a restart).
    let first = ask_with(&receiver, &cx, Answer::Status(500)).await;
    assert!(first.is_err(), "{first:?}");
    let again = ask_with(&receiver, &cx, verdict(json!({"verdict": "pass"}))).await;
    assert_eq!(again, Ok(GateVerdict::Pass));
    let received = receiver.received();
    let delivery = cx.evaluation_id.to_string();
    assert_eq!(
        received[0].header("x-brokkr-delivery"),
        Some(delivery.as_str())
    );
    assert_eq!(
        received[1].header("x-brokkr-delivery"),
        Some(delivery.as_str())
    );
    assert_eq!(received[0].body, received[1].body);

    // Another evaluation is another delivery.
    let other = mk_context_for(&receiver);
    ask_with(&receiver, &other, verdict(json!({"verdict": "pass"})))
        .await
        .unwrap();
    assert_ne!(
        receiver.received()[2].header("x-brokkr-delivery"),
        Some(delivery.as_str())
    );
}

#[tokio::test]
async fn localhost_named_in_the_allowlist_is_reached_by_name() {
    let receiver = Receiver::start().await;
    let port = receiver.host_port().rsplit_once(':').unwrap().1.to_owned();
    let cx = mk_context(mk_spec(format!("http://localhost:{port}/gate?team=a")));
    receiver.script([verdict(json!({"verdict": "pass"}))]);
    // Resolved through the allowlist's resolver; `localhost` may resolve to ::1 first,
    // where nothing listens, and the client tries every address.
    let answered = mk_gate(&[&format!("localhost:{port}")]).evaluate(&cx).await;
    assert_eq!(answered, Ok(GateVerdict::Pass));
    assert_signed(&receiver.received()[0], &cx);
}
