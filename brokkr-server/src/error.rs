//! The one place where failures become HTTP.
//!
//! Handlers return [`ApiError`]: its variants are the status codes, so the OpenAPI
//! document lists what every operation can answer. Every error body is
//! `{"code": "<stable_snake_case>", "message": "...", "details": ...}`. A 500 body says
//! nothing about its cause; the cause goes to the log.

use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object};
use serde_json::Value;

/// The JSON body of every error response.
#[derive(Debug, Clone, PartialEq, Object, serde::Serialize, serde::Deserialize)]
pub struct ErrorBody {
    /// Stable machine-readable code, e.g. `not_found`, `invalid_manifest`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// Structured details when there are any (the bad document, every violation, ...).
    #[oai(skip_serializing_if_is_none)]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<Value>,
}

/// An error answer of the API, by status. Converting it into a `poem::Error` (as the
/// key checker does with `?`) keeps its JSON body.
#[derive(Debug, ApiResponse)]
pub enum ApiError {
    /// The request is malformed (syntax, types, parameters).
    #[oai(status = 400)]
    BadRequest(Json<ErrorBody>),
    /// No key, a malformed key, or a key that is unknown or revoked.
    #[oai(status = 401)]
    Unauthorized(Json<ErrorBody>),
    /// The key's role may not do this.
    #[oai(status = 403)]
    Forbidden(Json<ErrorBody>),
    /// No such resource, or not one the caller may see.
    #[oai(status = 404)]
    NotFound(Json<ErrorBody>),
    /// A uniqueness rule or the resource's state forbids the change.
    #[oai(status = 409)]
    Conflict(Json<ErrorBody>),
    /// The body is larger than the configured limit.
    #[oai(status = 413)]
    PayloadTooLarge(Json<ErrorBody>),
    /// A body without `Content-Type: application/json` (the HTTP layer answers it,
    /// code `unsupported_media_type`).
    #[oai(status = 415)]
    UnsupportedMediaType(Json<ErrorBody>),
    /// Well-formed but invalid: validation failed; nothing was stored.
    #[oai(status = 422)]
    Unprocessable(Json<ErrorBody>),
    /// Brokkr failed; the log has the cause.
    #[oai(status = 500)]
    Internal(Json<ErrorBody>),
    /// The database cannot be reached right now (code `unavailable`); nothing was
    /// changed. Retry after the seconds `Retry-After` names.
    #[oai(status = 503)]
    Unavailable(Json<ErrorBody>, #[oai(header = "Retry-After")] u64),
}

/// Seconds a client is asked to wait before retrying while the database is away.
pub const RETRY_AFTER_UNAVAILABLE_SECS: u64 = 5;

/// Result of a handler.
pub type ApiResult<T> = Result<T, ApiError>;

fn body(code: &str, message: impl Into<String>, details: Option<Value>) -> Json<ErrorBody> {
    Json(ErrorBody {
        code: code.to_owned(),
        message: message.into(),
        details,
    })
}

impl ApiError {
    /// 400 with a code.
    pub fn bad_request(code: &str, message: impl Into<String>) -> Self {
        Self::BadRequest(body(code, message, None))
    }

    /// 401 `unauthorized`.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::Unauthorized(body("unauthorized", message, None))
    }

    /// 403 `forbidden`.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(body("forbidden", message, None))
    }

    /// 404 `not_found` for a kind of resource and an id.
    pub fn not_found(kind: &str, id: impl std::fmt::Display) -> Self {
        Self::NotFound(body("not_found", format!("{kind} {id} not found"), None))
    }

    /// 409 `conflict`.
    pub fn conflict(message: impl Into<String>) -> Self {
        let message = message.into();
        // A conflict a client branches on names its code first (`rollout_in_progress:
        // ...`, as the store writes it); any other is a plain `conflict`.
        let code = CONFLICT_CODES
            .iter()
            .find(|code| {
                message
                    .strip_prefix(**code)
                    .is_some_and(|rest| rest.starts_with(':'))
            })
            .copied()
            .unwrap_or("conflict");
        Self::Conflict(body(code, message, None))
    }

    /// 422 with a code and structured details.
    pub fn unprocessable(code: &str, message: impl Into<String>, details: Option<Value>) -> Self {
        Self::Unprocessable(body(code, message, details))
    }

    /// 500 `internal`: logs `cause`, tells the client nothing about it.
    pub fn internal(cause: &(dyn std::error::Error + 'static)) -> Self {
        tracing::error!(error = %ErrorChain(cause), "request failed");
        Self::internal_logged_elsewhere()
    }

    /// 503 `unavailable` with `Retry-After`: the database cannot be reached. During an
    /// outage every request would log the same cause, so it is logged at most once
    /// every few seconds.
    pub fn unavailable(cause: &(dyn std::error::Error + 'static)) -> Self {
        if outage_log_due() {
            tracing::warn!(error = %ErrorChain(cause), "database unavailable; answering 503");
        }
        Self::Unavailable(
            body(
                "unavailable",
                "the database cannot be reached; retry later",
                None,
            ),
            RETRY_AFTER_UNAVAILABLE_SECS,
        )
    }

    /// 500 `internal` whose cause the caller has logged (a panic, say).
    pub fn internal_logged_elsewhere() -> Self {
        Self::Internal(body("internal", "internal error; see the server log", None))
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        match self {
            Self::BadRequest(_) => 400,
            Self::Unauthorized(_) => 401,
            Self::Forbidden(_) => 403,
            Self::NotFound(_) => 404,
            Self::Conflict(_) => 409,
            Self::PayloadTooLarge(_) => 413,
            Self::UnsupportedMediaType(_) => 415,
            Self::Unprocessable(_) => 422,
            Self::Internal(_) => 500,
            Self::Unavailable(..) => 503,
        }
    }

    /// The body.
    pub fn body(&self) -> &ErrorBody {
        match self {
            Self::BadRequest(b)
            | Self::Unauthorized(b)
            | Self::Forbidden(b)
            | Self::NotFound(b)
            | Self::Conflict(b)
            | Self::PayloadTooLarge(b)
            | Self::UnsupportedMediaType(b)
            | Self::Unprocessable(b)
            | Self::Internal(b)
            | Self::Unavailable(b, _) => b,
        }
    }
}

/// Conflicts with a code of their own, written by the store or the control plane as
/// `"<code>: <message>"`.
const CONFLICT_CODES: [&str; 2] = ["rollout_in_progress", "no_approval_pending"];

/// Whether an outage warning may be logged now: at most one every 10 seconds.
fn outage_log_due() -> bool {
    use std::sync::atomic::{AtomicU64, Ordering};
    static LAST_LOGGED_SECS: AtomicU64 = AtomicU64::new(0);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let last = LAST_LOGGED_SECS.load(Ordering::Relaxed);
    now >= last + 10
        && LAST_LOGGED_SECS
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

impl From<brokkr_core::store::Error> for ApiError {
    fn from(err: brokkr_core::store::Error) -> Self {
        use brokkr_core::store::Error;
        match err {
            Error::NotFound { kind, id } => Self::not_found(kind, id),
            Error::Conflict(message) => Self::conflict(message),
            Error::Invalid(message) => Self::unprocessable("validation_failed", message, None),
            Error::InvalidCursor(_) => Self::bad_request(
                "invalid_parameter",
                "cursor is not one this listing handed out",
            ),
            Error::Unavailable(ref source) => Self::unavailable(source.as_ref()),
            Error::Backend(ref source) => Self::internal(source.as_ref()),
        }
    }
}

impl From<brokkr_core::manifest::Error> for ApiError {
    fn from(err: brokkr_core::manifest::Error) -> Self {
        use brokkr_core::manifest::Error;
        if let Error::TooLarge { size, limit } = err {
            return Self::PayloadTooLarge(body(
                "payload_too_large",
                format!("YAML is {size} bytes, more than the limit of {limit}"),
                None,
            ));
        }
        let details = serde_json::json!({ "document": err.document(), "reason": err.to_string() });
        Self::unprocessable("invalid_manifest", err.to_string(), Some(details))
    }
}

impl From<brokkr_core::template::TemplateError> for ApiError {
    fn from(err: brokkr_core::template::TemplateError) -> Self {
        Self::unprocessable("invalid_template", err.to_string(), None)
    }
}

impl From<brokkr_core::generator::Error> for ApiError {
    fn from(err: brokkr_core::generator::Error) -> Self {
        use brokkr_core::generator::Error;
        match err {
            Error::InvalidParameters(ref violations) => Self::unprocessable(
                "invalid_parameters",
                err.to_string(),
                Some(serde_json::json!({ "violations": violations })),
            ),
            Error::RenderFailed(message) => Self::unprocessable("render_failed", message, None),
            // Generated output over the size limit is the template's fault, not a large
            // request: a 422 like any other bad output, naming the document.
            Error::InvalidOutput(manifest) => {
                let details = serde_json::json!({
                    "document": manifest.document(),
                    "reason": manifest.to_string(),
                });
                Self::unprocessable(
                    "invalid_manifest",
                    format!("generated output is invalid: {manifest}"),
                    Some(details),
                )
            }
        }
    }
}

impl From<brokkr_core::runtime::placement::controller::Error> for ApiError {
    fn from(err: brokkr_core::runtime::placement::controller::Error) -> Self {
        match err {
            brokkr_core::runtime::placement::controller::Error::Store(err) => err.into(),
            brokkr_core::runtime::placement::controller::Error::Compute(_) => Self::internal(&err),
        }
    }
}

impl From<brokkr_core::runtime::Error> for ApiError {
    fn from(err: brokkr_core::runtime::Error) -> Self {
        use brokkr_core::runtime::Error;
        match err {
            Error::Unauthenticated(message) => Self::unauthorized(message),
            Error::Forbidden(message) => Self::forbidden(message),
            Error::AgentInactive => {
                Self::Forbidden(body("agent_inactive", "an admin disabled this agent", None))
            }
            Error::Store(err) => err.into(),
            Error::Manifest(err) => err.into(),
            Error::Template(err) => err.into(),
            Error::Generate(err) => err.into(),
            Error::InvalidPolicy(message) => Self::unprocessable("invalid_policy", message, None),
            Error::Invalid { code, message } => Self::unprocessable(code, message, None),
            Error::InvalidRolloutPolicy(ref violations) => {
                let listed: Vec<serde_json::Value> = violations
                    .iter()
                    .map(|v| {
                        serde_json::json!({ "path": v.path, "code": v.code, "message": v.message })
                    })
                    .collect();
                Self::unprocessable(
                    "invalid_rollout_policy",
                    err.to_string(),
                    Some(serde_json::json!({ "violations": listed })),
                )
            }
            Error::BlastRadiusExceeded(plan) => Self::blast_radius_exceeded(&plan),
            Error::PlanStale { plan_id, reason } => Self::Conflict(body(
                "plan_stale",
                format!("plan {plan_id} no longer applies: {reason}"),
                Some(serde_json::json!({ "plan_id": plan_id, "reason": reason })),
            )),
            Error::PlanConsumed { plan_id } => Self::Conflict(body(
                "plan_consumed",
                format!("plan {plan_id} was used already; a plan confirms one change"),
                Some(serde_json::json!({ "plan_id": plan_id })),
            )),
            Error::Task(ref source) => Self::internal(source),
        }
    }
}

impl ApiError {
    /// 409 `blast_radius_exceeded`: the change is over the guard's limits and only its
    /// plan was stored; the details carry what a client needs to show and confirm it.
    fn blast_radius_exceeded(plan: &brokkr_core::runtime::plan::PlanView) -> Self {
        let id = plan.id;
        let rejected = plan.plan.guard.violations.iter().find_map(|v| match v {
            brokkr_core::plan::Violation::RejectedByRollout { rollout_id, .. } => Some(rollout_id),
            _ => None,
        });
        let why = match rejected {
            Some(rollout) => format!("rollout {rollout} reverted this content"),
            None => "the change is over the blast-radius guard's limits".to_owned(),
        };
        Self::Conflict(body(
            "blast_radius_exceeded",
            format!(
                "{why}; nothing changed. An admin may confirm it by repeating the request \
                 with confirm_plan_id={id}"
            ),
            Some(serde_json::json!({
                "plan_id": id,
                "violations": plan.plan.guard.violations,
                "summary": plan.plan.summary,
            })),
        ))
    }
}

/// Displays an error with its chain of sources, for logs (the runtime's, re-exported).
pub use brokkr_core::runtime::ErrorChain;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_conflict_that_names_its_code_keeps_it() {
        let err = ApiError::from(brokkr_core::store::Error::Conflict(
            "rollout_in_progress: stack s has a rollout queued or running".into(),
        ));
        assert_eq!(err.status(), 409);
        assert_eq!(err.body().code, "rollout_in_progress");
        let plain = ApiError::conflict("name taken");
        assert_eq!(plain.body().code, "conflict");
        // A code only counts as one before its colon.
        let lookalike = ApiError::conflict("rollout_in_progressive rollouts are fun");
        assert_eq!(lookalike.body().code, "conflict");
    }
}
