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

/// A failed client command.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The server answered with an error body (`{code, message, details}`).
    #[error("{code}: {message}{}", details_suffix(details.as_ref()))]
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

fn details_suffix(details: Option<&Value>) -> String {
    match details {
        Some(details) if !details.is_null() => format!(" (details: {details})"),
        _ => String::new(),
    }
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
