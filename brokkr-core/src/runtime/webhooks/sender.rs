//! The seam between the dispatcher and an HTTP client.

use async_trait::async_trait;

/// The longest error text an outcome carries (it is stored with the delivery and
/// shown by the API); longer text is cut at a character boundary.
pub const MAX_ERROR_BYTES: usize = 512;

/// How much of a receiver's answer an error quotes.
const BODY_EXCERPT_BYTES: usize = 200;

/// One attempt to deliver: a `POST` of `body` to `url` with `headers` (content type,
/// signature, timestamp, delivery id, event type), all made by the dispatcher, so a
/// sender only sends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookRequest {
    /// Where to send it; it passed the URL rules when its subscription was written.
    pub url: String,
    /// Header names and values to send.
    pub headers: Vec<(&'static str, String)>,
    /// The JSON envelope.
    pub body: Vec<u8>,
}

/// What became of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SendOutcome {
    /// The receiver answered 2xx.
    Delivered {
        /// The status it answered.
        status: u16,
    },
    /// Anything else: another status, a redirect (never followed), a refused host, a
    /// timeout, a connection that failed or closed.
    Failed {
        /// The status, when the receiver answered.
        status: Option<u16>,
        /// What happened, for the delivery's `last_error` (at most
        /// [`MAX_ERROR_BYTES`]; never a secret).
        error: String,
    },
}

impl SendOutcome {
    /// How an answer is judged, the same for every sender: 2xx is delivered; a 3xx is
    /// a failure naming its `Location`, which is not followed (a receiver that moved
    /// must have its subscription changed, where the allowlist judges the new URL);
    /// any other status is a failure quoting the start of the body.
    pub fn from_answer(status: u16, location: Option<&str>, body: &[u8]) -> Self {
        if (200..300).contains(&status) {
            return Self::Delivered { status };
        }
        let error = if (300..400).contains(&status) {
            match location {
                Some(location) => format!(
                    "answered {status}, a redirect to {location} (redirects are not followed)"
                ),
                None => format!("answered {status}, a redirect (redirects are not followed)"),
            }
        } else {
            let excerpt = excerpt(body);
            if excerpt.is_empty() {
                format!("answered {status}")
            } else {
                format!("answered {status}: {excerpt}")
            }
        };
        Self::failed(Some(status), error)
    }

    /// A failure, its text cut to [`MAX_ERROR_BYTES`].
    pub fn failed(status: Option<u16>, error: impl Into<String>) -> Self {
        Self::Failed {
            status,
            error: crate::webhook::truncate_at_char(error.into(), MAX_ERROR_BYTES),
        }
    }
}

/// The start of an answer's body on one line, control characters replaced.
fn excerpt(body: &[u8]) -> String {
    let cut = &body[..body.len().min(BODY_EXCERPT_BYTES)];
    let text: String = String::from_utf8_lossy(cut)
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let text = text.trim().to_owned();
    if body.len() > BODY_EXCERPT_BYTES {
        format!("{text}…")
    } else {
        text
    }
}

/// Sends webhook deliveries over HTTP; the dispatcher calls it once per attempt.
///
/// Contract: one `POST` of the request as given, no retry (the dispatcher retries, with
/// the same delivery id), no redirect followed, within the configured timeout; the host
/// checked against the allowlist before connecting (and the addresses it resolves to,
/// so a listed name cannot lead to this machine); the answer's body read only as far
/// as a small bound. It never fails: every failure is a [`SendOutcome::Failed`], judged
/// with [`SendOutcome::from_answer`] when the receiver answered.
#[async_trait]
pub trait WebhookSender: Send + Sync {
    /// Makes one attempt.
    async fn send(&self, request: &WebhookRequest) -> SendOutcome;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn two_hundreds_are_delivered_and_everything_else_fails() {
        for status in [200, 201, 202, 204, 299] {
            assert_eq!(
                SendOutcome::from_answer(status, None, b"ok"),
                SendOutcome::Delivered { status }
            );
        }
        assert_eq!(
            SendOutcome::from_answer(500, None, b"  boom\n"),
            SendOutcome::Failed {
                status: Some(500),
                error: "answered 500: boom".into()
            }
        );
        assert_eq!(
            SendOutcome::from_answer(404, None, b""),
            SendOutcome::Failed {
                status: Some(404),
                error: "answered 404".into()
            }
        );
        assert_eq!(
            SendOutcome::from_answer(100, None, b""),
            SendOutcome::Failed {
                status: Some(100),
                error: "answered 100".into()
            }
        );
    }

    #[test]
    fn a_redirect_fails_naming_where_it_pointed() {
        assert_eq!(
            SendOutcome::from_answer(302, Some("http://elsewhere.example/"), b"moved"),
            SendOutcome::Failed {
                status: Some(302),
                error: "answered 302, a redirect to http://elsewhere.example/ (redirects are not followed)".into()
            }
        );
        assert!(matches!(
            SendOutcome::from_answer(308, None, b""),
            SendOutcome::Failed { status: Some(308), error } if error.contains("not followed")
        ));
    }

    #[test]
    fn errors_are_bounded_and_on_one_line() {
        let body = format!("line one\r\nline\ttwo {}", "é".repeat(300));
        let SendOutcome::Failed { error, .. } =
            SendOutcome::from_answer(503, None, body.as_bytes())
        else {
            panic!("a 503 is a failure");
        };
        assert!(
            error.starts_with("answered 503: line one  line two é"),
            "{error}"
        );
        assert!(error.ends_with('…'), "{error}");
        assert!(error.len() < 260, "{}", error.len());
        let SendOutcome::Failed { error, .. } = SendOutcome::failed(None, "x".repeat(2000) + "é")
        else {
            panic!("a failure");
        };
        assert_eq!(error.len(), MAX_ERROR_BYTES);
        let SendOutcome::Failed { error, .. } =
            SendOutcome::failed(None, "é".repeat(MAX_ERROR_BYTES))
        else {
            panic!("a failure");
        };
        assert_eq!(error.len(), MAX_ERROR_BYTES, "cut at a character boundary");
    }
}
