//! Why a client command failed, and the exit code each failure means.

use serde_json::Value;

/// The command did what was asked.
pub const EXIT_OK: u8 = 0;
/// The server refused the request (a 4xx answer): fix the request, not the server.
pub const EXIT_REFUSED: u8 = 1;
/// The command line or a local input (a file, a `key=value`) is wrong; clap's own
/// usage errors exit 2 too.
pub const EXIT_USAGE: u8 = 2;
/// The server cannot be reached, answered 5xx, or answered something unreadable:
/// retrying later may help.
pub const EXIT_UNAVAILABLE: u8 = 3;
/// The blast-radius guard stopped the change (409 `blast_radius_exceeded`) or refused
/// its confirmation (409 `plan_stale`, `plan_consumed`): nothing changed; an admin may
/// repeat the change with `--confirm-plan <PLAN>` (after planning again when stale).
pub const EXIT_GUARDED: u8 = 4;

/// The error codes of the blast-radius guard, which exit [`EXIT_GUARDED`].
const GUARD_CODES: [&str; 3] = ["blast_radius_exceeded", "plan_stale", "plan_consumed"];

/// A failed client command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error body (`{code, message, details}`).
    #[error("{code}: {message}{}", details_suffix(code, details.as_ref()))]
    Api {
        /// The HTTP status.
        status: u16,
        /// The stable error code, for programs.
        code: String,
        /// The message, for people.
        message: String,
        /// Structured details, when the server gave some.
        details: Option<Value>,
    },
    /// No answer: connection refused, DNS, TLS, timeout.
    #[error("cannot reach {url}")]
    Unreachable {
        /// What was asked.
        url: String,
        /// Why it failed.
        #[source]
        source: reqwest::Error,
    },
    /// An answer that is not the JSON the API documents.
    #[error("unexpected answer from {url}: {reason}")]
    BadAnswer {
        /// What was asked.
        url: String,
        /// Why it could not be read.
        reason: String,
    },
    /// A local input is wrong (an unreadable file, a malformed argument).
    #[error("{0}")]
    Input(String),
    /// A local file could not be read.
    #[error("cannot read {path}")]
    Read {
        /// The file or directory.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The Tokio runtime could not start.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
}

/// `Result` with [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The process exit code for this failure (see the `EXIT_*` constants).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Api { code, .. } if GUARD_CODES.contains(&code.as_str()) => EXIT_GUARDED,
            Self::Api { status, .. } if *status < 500 => EXIT_REFUSED,
            Self::Input(_) | Self::Read { .. } => EXIT_USAGE,
            Self::Api { .. } | Self::Unreachable { .. } | Self::BadAnswer { .. } => {
                EXIT_UNAVAILABLE
            }
            Self::Runtime(_) => EXIT_REFUSED,
        }
    }

    /// A 404 the client decided on its own (a name that matches nothing), shaped like
    /// the server's so scripts see one code.
    pub fn not_found(message: String) -> Self {
        Self::Api {
            status: 404,
            code: "not_found".into(),
            message,
            details: None,
        }
    }
}

fn details_suffix(code: &str, details: Option<&Value>) -> String {
    match details {
        Some(details) if code == "blast_radius_exceeded" => guard_lines(details),
        Some(details) if !details.is_null() => format!(" (details: {details})"),
        _ => String::new(),
    }
}

/// The plan a guard's refusal names, and each limit exceeded, one per line: what a
/// person needs to judge the change and confirm it.
fn guard_lines(details: &Value) -> String {
    let mut out = String::new();
    if let Some(plan) = details.get("plan_id").and_then(Value::as_str) {
        out.push_str(&format!("\n  plan: {plan}"));
    }
    let violations = details.get("violations").and_then(Value::as_array);
    for violation in violations.into_iter().flatten() {
        let Some(fields) = violation.as_object() else {
            continue;
        };
        let rule = fields.get("rule").and_then(Value::as_str).unwrap_or("?");
        let mut rest: Vec<String> = fields
            .iter()
            .filter(|(name, _)| *name != "rule")
            .map(|(name, value)| match value {
                Value::String(text) => format!("{name}={text}"),
                other => format!("{name}={other}"),
            })
            .collect();
        rest.sort();
        out.push_str(&format!("\n  violation: {rule} {}", rest.join(" ")));
    }
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn exit_codes_tell_refusal_from_outage() {
        let api = |status| Error::Api {
            status,
            code: "x".into(),
            message: "y".into(),
            details: None,
        };
        assert_eq!(api(401).exit_code(), EXIT_REFUSED);
        assert_eq!(api(422).exit_code(), EXIT_REFUSED);
        assert_eq!(api(503).exit_code(), EXIT_UNAVAILABLE);
        assert_eq!(Error::Input("bad".into()).exit_code(), EXIT_USAGE);
        let guard = |code: &str| Error::Api {
            status: 409,
            code: code.into(),
            message: "m".into(),
            details: None,
        };
        assert_eq!(guard("blast_radius_exceeded").exit_code(), EXIT_GUARDED);
        assert_eq!(guard("plan_consumed").exit_code(), EXIT_GUARDED);
        assert_eq!(guard("conflict").exit_code(), EXIT_REFUSED);
    }

    #[test]
    fn a_guard_refusal_names_its_plan_and_each_violation() {
        let error = Error::Api {
            status: 409,
            code: "blast_radius_exceeded".into(),
            message: "over the limits".into(),
            details: Some(json!({
                "plan_id": "0190",
                "violations": [
                    {"rule": "max_removed_fraction", "limit": 0.25, "actual": 1.0, "removed": 12},
                    {"rule": "protected_kinds", "kind": "PersistentVolumeClaim", "count": 12},
                ],
                "summary": {"agents_removed": 12},
            })),
        };
        assert_eq!(
            error.to_string(),
            "blast_radius_exceeded: over the limits\n  plan: 0190\n  \
             violation: max_removed_fraction actual=1.0 limit=0.25 removed=12\n  \
             violation: protected_kinds count=12 kind=PersistentVolumeClaim"
        );
    }

    #[test]
    fn the_message_shows_code_message_and_details() {
        let error = Error::Api {
            status: 422,
            code: "invalid_manifest".into(),
            message: "invalid yaml in document 0".into(),
            details: Some(json!({"document": 0})),
        };
        assert_eq!(
            error.to_string(),
            r#"invalid_manifest: invalid yaml in document 0 (details: {"document":0})"#
        );
    }
}
