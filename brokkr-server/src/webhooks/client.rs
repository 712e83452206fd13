//! [`OutboundClient`]: the one way the server `POST`s to a URL someone configured
//! (webhook deliveries, webhook gates). One request per call, no redirect followed, no
//! proxy, the allowlist checked before sending and on every resolved address, a
//! timeout over the whole exchange, and the answer read only up to a bound.

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use brokkr_core::webhook::{HostAllowlist, validate_url};
use reqwest::header::LOCATION;

use super::resolver::AllowlistResolver;

/// A receiver's answer, as far as it was read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    /// Its status.
    pub status: u16,
    /// Its `Location` header (a redirect's target), if any.
    pub location: Option<String>,
    /// Its body, at most the client's bound.
    pub body: Vec<u8>,
    /// Why the body stopped before its end, when it broke off (a timeout, a closed
    /// connection); `None` when it was read to its end or to the bound.
    pub broken: Option<String>,
}

/// Why nothing was answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum PostError {
    /// The URL is not allowed: nothing was sent, no connection was opened.
    #[error("not sent: {0}")]
    NotSent(String),
    /// Sent, or tried to, without an answer: a timeout, a refused connection, an
    /// address the allowlist does not permit, a connection closed early.
    #[error("{0}")]
    NoAnswer(String),
}

/// An HTTP client for URLs operators allow (`[webhooks] allowed_hosts`), on reqwest
/// with rustls (ring). Proxies from the environment are not used, so the allowlist
/// judges the host actually connected to. Cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct OutboundClient {
    client: reqwest::Client,
    allowlist: HostAllowlist,
    max_answer_bytes: usize,
}

impl OutboundClient {
    /// A client to the hosts `allowlist` allows, naming itself `user_agent`, reading at
    /// most `max_answer_bytes` of each answer.
    pub(crate) fn new(
        allowlist: HostAllowlist,
        user_agent: &str,
        max_answer_bytes: usize,
    ) -> Result<Self, reqwest::Error> {
        // reqwest is built without a TLS provider; ring is the workspace's one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .dns_resolver(Arc::new(AllowlistResolver {
                allowlist: allowlist.clone(),
            }))
            .user_agent(user_agent)
            .build()?;
        Ok(Self {
            client,
            allowlist,
            max_answer_bytes,
        })
    }

    /// One `POST` of `body` with `headers` to `url`, connecting, sending and reading
    /// the answer within `timeout`. The URL is checked against the URL rules and the
    /// allowlist first: the allowlist may have changed since the URL was written (a
    /// restart with a new configuration).
    pub(crate) async fn post(
        &self,
        url: &str,
        headers: &[(&'static str, String)],
        body: Vec<u8>,
        timeout: Duration,
    ) -> Result<Answer, PostError> {
        let url = validate_url(url)
            .and_then(|url| {
                self.allowlist.check(&url)?;
                Ok(url)
            })
            .map_err(|err| PostError::NotSent(err.to_string()))?;
        let mut builder = self.client.post(url).timeout(timeout).body(body);
        for (name, value) in headers {
            builder = builder.header(*name, value);
        }
        let mut response = builder
            .send()
            .await
            .map_err(|err| PostError::NoAnswer(describe(err, timeout)))?;
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(LOCATION)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
        let (body, broken) = self.read_bounded(&mut response, timeout).await;
        Ok(Answer {
            status,
            location,
            body,
            broken,
        })
    }

    /// The start of `response`'s body, at most `max_answer_bytes`, and why it broke
    /// off if it did (what arrived is kept).
    async fn read_bounded(
        &self,
        response: &mut reqwest::Response,
        timeout: Duration,
    ) -> (Vec<u8>, Option<String>) {
        let mut body = Vec::new();
        while body.len() < self.max_answer_bytes {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = self.max_answer_bytes - body.len();
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) => break,
                Err(err) => return (body, Some(describe(err, timeout))),
            }
        }
        (body, None)
    }
}

/// `err` for people, without its URL: a URL may carry a token in its query.
fn describe(err: reqwest::Error, timeout: Duration) -> String {
    let err = err.without_url();
    if err.is_timeout() {
        return format!("no answer within {} ms", timeout.as_millis());
    }
    let mut text = if err.is_connect() {
        "cannot connect".to_owned()
    } else {
        "request failed".to_owned()
    };
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
