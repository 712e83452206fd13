//! The webhook gate's rules, pure (ROLLOUTS.md section 7): the body a gate evaluation
//! `POST`s, the headers that sign it, how long it may take, and how the answer becomes
//! a [`GateVerdict`] or a [`GateError`]. The HTTP client that sends it is an edge
//! (`brokkr-server`'s `WebhookGate`); everything it decides is here, so an embedder
//! with its own client gets the same gate.
//!
//! - the body, [`body()`]: `{"kind":"brokkr.gate.v1","rollout_id","phase","attempt","stack":{id,name},
//!   "candidate":{id,sequence_id,checksum},"baseline":{...}|null,"wave":{index,name},
//!   "agents":[{id,name,labels,state,health,reason}]}`;
//! - the headers, [`signed_headers`]: `X-Brokkr-Signature: sha256=HMAC(secret, "{timestamp}.{body}")`
//!   (the outbound webhooks' [`signature::sign`]),
//!   `X-Brokkr-Timestamp`, and `X-Brokkr-Delivery`, the evaluation's id: the same when
//!   an evaluation runs again (a retry, a restart), so a receiver can drop repeats;
//! - the time allowed, [`timeout()`]: the gate's `timeout`, 10 s by default, at most 60 s;
//! - the answer, [`judge_answer`]: a 2xx with `{"verdict":"pass|fail|wait|pause","reason",
//!   "recheck_after_seconds"}` is that verdict; an empty 2xx is a pass (as Flagger's
//!   webhooks); `wait` rechecks after 30 s unless told otherwise, never later than an
//!   hour. Anything else (another status, a redirect, an answer that is not a verdict
//!   or longer than [`MAX_ANSWER_BYTES`]) is a [`GateError`], never a failure: a gate
//!   that cannot answer must not revert a rollout (Flagger's mistake), its errors in a
//!   row apply the policy's `on_gate_error` instead.
//!
//! ```
//! use brokkr_core::rollout::{GateVerdict, webhook_gate};
//!
//! let verdict = webhook_gate::judge_answer(200, None, br#"{"verdict":"fail","reason":"p99 too high"}"#);
//! assert_eq!(verdict, Ok(GateVerdict::Fail { reason: "p99 too high".into() }));
//! assert_eq!(webhook_gate::judge_answer(204, None, b""), Ok(GateVerdict::Pass));
//! assert!(webhook_gate::judge_answer(503, None, b"busy").is_err());
//! ```

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::health::HealthStatus;
use crate::id::{AgentId, GateEvaluationId, RolloutId};
use crate::metadata::Labels;
use crate::model::RolloutAgentState;
use crate::webhook::{self, signature, validate_url};

use super::{
    DeploymentObjectRef, GateContext, GateError, GateKind, GatePhase, GateSpec, GateVerdict,
    StackRef, WaveRef,
};

/// The body's `kind`: what the body is and in which version.
pub const KIND: &str = "brokkr.gate.v1";
/// How long an evaluation may take when its gate names no `timeout`.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest `timeout` a gate may have; a longer one is cut to it.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// When a `wait` without `recheck_after_seconds` is asked again.
pub const DEFAULT_RECHECK: Duration = Duration::from_secs(30);
/// The soonest a `wait` is asked again: a receiver answering 0 must not make the
/// driver ask in a loop.
pub const MIN_RECHECK: Duration = Duration::from_secs(1);
/// The latest a `wait` is asked again, whatever it asked for: a gate cannot park a
/// rollout beyond its deadlines' reach.
pub const MAX_RECHECK: Duration = Duration::from_secs(3600);
/// The longest answer read; a longer one is an error (a verdict is a few bytes).
pub const MAX_ANSWER_BYTES: usize = 64 * 1024;
/// The longest `reason` kept (it is stored with the evaluation and shown by the API),
/// and the longest error text; longer text is cut at a character boundary.
pub const MAX_REASON_BYTES: usize = 512;
/// How much of a refused answer an error quotes.
const EXCERPT_BYTES: usize = 200;

#[derive(Serialize)]
struct Body<'a> {
    kind: &'static str,
    rollout_id: RolloutId,
    phase: GatePhase,
    attempt: u32,
    stack: &'a StackRef,
    candidate: &'a DeploymentObjectRef,
    baseline: &'a Option<DeploymentObjectRef>,
    wave: &'a WaveRef,
    agents: Vec<Agent<'a>>,
}

/// An agent with exactly the body's fields, whatever `AgentOutcome` grows later.
#[derive(Serialize)]
struct Agent<'a> {
    id: AgentId,
    name: &'a str,
    labels: &'a Labels,
    state: RolloutAgentState,
    health: Option<HealthStatus>,
    reason: Option<&'a str>,
}

/// The JSON body of the evaluation `cx`: the same bytes for the same context, so a
/// repeated evaluation sends what the first one did.
pub fn body(cx: &GateContext) -> Vec<u8> {
    let body = Body {
        kind: KIND,
        rollout_id: cx.rollout_id,
        phase: cx.phase,
        attempt: cx.attempt,
        stack: &cx.stack,
        candidate: &cx.candidate,
        baseline: &cx.baseline,
        wave: &cx.wave,
        agents: cx
            .agents
            .iter()
            .map(|agent| Agent {
                id: agent.id,
                name: &agent.name,
                labels: &agent.labels,
                state: agent.state,
                health: agent.health,
                reason: agent.reason.as_deref(),
            })
            .collect(),
    };
    serde_json::to_vec(&body).expect("a body of strings, numbers and ids serialises")
}

/// The headers of an evaluation's `POST`: `Content-Type`, the signature of
/// `"{timestamp}.{body}"` under `secret`, the timestamp (seconds since the Unix epoch,
/// the signing time) and the delivery id, which is the evaluation's.
pub fn signed_headers(
    secret: &[u8],
    evaluation: GateEvaluationId,
    timestamp: i64,
    body: &[u8],
) -> Vec<(&'static str, String)> {
    vec![
        ("Content-Type", "application/json".to_owned()),
        (
            webhook::SIGNATURE_HEADER,
            signature::sign(secret, timestamp, body),
        ),
        (webhook::TIMESTAMP_HEADER, timestamp.to_string()),
        (webhook::DELIVERY_HEADER, evaluation.to_string()),
    ]
}

/// How long one evaluation of `spec` may take: its `timeout`, [`DEFAULT_TIMEOUT`]
/// without one, never more than [`MAX_TIMEOUT`].
pub fn timeout(spec: &GateSpec) -> Duration {
    spec.timeout
        .map_or(DEFAULT_TIMEOUT, |span| span.0)
        .min(MAX_TIMEOUT)
}

/// The name of the secret `spec` signs with, or an error naming the gate.
pub fn secret_ref(spec: &GateSpec) -> Result<&str, GateError> {
    match spec.secret_ref.as_deref() {
        Some(name) if !name.trim().is_empty() => Ok(name),
        _ => Err(gate_error(format!(
            "webhook gate {:?} names no secret_ref",
            spec.name
        ))),
    }
}

/// Checks a webhook gate of a policy: a URL by the outbound webhooks' rules (the
/// allowlist is checked when it is sent to), a `secret_ref`, and a `timeout`, if
/// any, above 0 and at most [`MAX_TIMEOUT`]. The message names the gate.
pub fn validate_spec(spec: &GateSpec) -> Result<(), String> {
    let name = &spec.name;
    if spec.kind != GateKind::Webhook {
        return Err(format!("gate {name:?} is not a webhook gate"));
    }
    match spec.url.as_deref() {
        None => return Err(format!("webhook gate {name:?} needs a url")),
        Some(url) => {
            validate_url(url).map_err(|err| format!("webhook gate {name:?}: {err}"))?;
        }
    }
    secret_ref(spec).map_err(|err| err.0)?;
    if let Some(span) = spec.timeout
        && (span.0.is_zero() || span.0 > MAX_TIMEOUT)
    {
        return Err(format!(
            "webhook gate {name:?}: timeout {span} is not between 0 and {}s",
            MAX_TIMEOUT.as_secs()
        ));
    }
    Ok(())
}

/// One evaluation as an HTTP client sends it: a `POST` of `body` with `headers` to
/// `url`, given at most `timeout`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateRequest {
    /// Where to send it; it passed [`validate_url`], not yet the allowlist.
    pub url: String,
    /// [`signed_headers`].
    pub headers: Vec<(&'static str, String)>,
    /// [`body`].
    pub body: Vec<u8>,
    /// [`timeout`].
    pub timeout: Duration,
}

/// The request for `cx`, signed with `secret` at `timestamp` (seconds since the Unix
/// epoch, the time of sending); an error when the gate names no usable URL.
pub fn request(cx: &GateContext, secret: &[u8], timestamp: i64) -> Result<GateRequest, GateError> {
    let name = &cx.spec.name;
    let url = cx
        .spec
        .url
        .as_deref()
        .ok_or_else(|| gate_error(format!("webhook gate {name:?} has no url")))?;
    validate_url(url).map_err(|err| gate_error(format!("webhook gate {name:?}: {err}")))?;
    let body = body(cx);
    Ok(GateRequest {
        url: url.to_owned(),
        headers: signed_headers(secret, cx.evaluation_id, timestamp, &body),
        body,
        timeout: timeout(&cx.spec),
    })
}

/// What a receiver answers on a 2xx.
#[derive(Deserialize)]
struct Reply {
    verdict: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    recheck_after_seconds: Option<f64>,
}

/// The verdict of an answer with `status`, `Location` header `location` and `body`
/// (read up to at least [`MAX_ANSWER_BYTES`] + 1 bytes, so that a longer one shows),
/// by the rules of the [module documentation](self).
pub fn judge_answer(
    status: u16,
    location: Option<&str>,
    body: &[u8],
) -> Result<GateVerdict, GateError> {
    if (300..400).contains(&status) {
        return Err(gate_error(match location {
            Some(location) => {
                format!("answered {status}, a redirect to {location} (redirects are not followed)")
            }
            None => format!("answered {status}, a redirect (redirects are not followed)"),
        }));
    }
    if !(200..300).contains(&status) {
        let quoted = excerpt(body);
        return Err(gate_error(if quoted.is_empty() {
            format!("answered {status}")
        } else {
            format!("answered {status}: {quoted}")
        }));
    }
    if body.len() > MAX_ANSWER_BYTES {
        return Err(gate_error(format!(
            "answered {status} with more than {MAX_ANSWER_BYTES} bytes; a verdict is a small JSON object"
        )));
    }
    if body.iter().all(u8::is_ascii_whitespace) {
        return Ok(GateVerdict::Pass);
    }
    let reply: Reply = serde_json::from_slice(body).map_err(|err| {
        gate_error(format!(
            "answered {status} with no verdict ({err}): {}",
            excerpt(body)
        ))
    })?;
    let reason = |verdict: &str| {
        let given = one_line(reply.reason.as_deref().unwrap_or_default());
        if given.is_empty() {
            format!("the webhook answered {verdict} without a reason")
        } else {
            cut(given, MAX_REASON_BYTES)
        }
    };
    match reply.verdict.as_str() {
        "pass" => Ok(GateVerdict::Pass),
        "fail" => Ok(GateVerdict::Fail {
            reason: reason("fail"),
        }),
        "pause" => Ok(GateVerdict::Pause {
            reason: reason("pause"),
        }),
        "wait" => Ok(GateVerdict::Wait {
            reason: reason("wait"),
            recheck_after: recheck_after(reply.recheck_after_seconds)?,
        }),
        other => Err(gate_error(format!(
            "answered an unknown verdict {:?} (expected pass, fail, wait or pause)",
            cut(one_line(other), EXCERPT_BYTES)
        ))),
    }
}

/// When a `wait` is asked again: [`DEFAULT_RECHECK`] when not said, otherwise the
/// seconds asked for (rounded up) within [`MIN_RECHECK`] and [`MAX_RECHECK`].
fn recheck_after(seconds: Option<f64>) -> Result<Duration, GateError> {
    let Some(seconds) = seconds else {
        return Ok(DEFAULT_RECHECK);
    };
    if seconds.is_nan() || seconds < 0.0 {
        return Err(gate_error(format!(
            "answered wait with recheck_after_seconds {seconds}, which is not a number of seconds"
        )));
    }
    let asked = seconds.ceil().min(MAX_RECHECK.as_secs_f64());
    Ok(Duration::from_secs_f64(asked).clamp(MIN_RECHECK, MAX_RECHECK))
}

/// A [`GateError`] with `text` cut to [`MAX_REASON_BYTES`]: what a client adds (a
/// refused host, a timeout) stays as bounded as what the rules say.
pub fn gate_error(text: impl Into<String>) -> GateError {
    GateError(cut(text.into(), MAX_REASON_BYTES))
}

/// The start of `body` on one line, for an error.
fn excerpt(body: &[u8]) -> String {
    let start = &body[..body.len().min(EXCERPT_BYTES)];
    let text = one_line(&String::from_utf8_lossy(start));
    if body.len() > EXCERPT_BYTES {
        format!("{text}…")
    } else {
        text
    }
}

/// `text` trimmed, control characters (line breaks included) replaced by spaces: a
/// receiver's words end up in logs and in a one-line `reason`.
fn one_line(text: &str) -> String {
    text.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}

fn cut(text: String, max: usize) -> String {
    crate::webhook::truncate_at_char(text, max)
}

#[cfg(test)]
mod tests;
