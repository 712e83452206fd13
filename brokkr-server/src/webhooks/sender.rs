//! [`ReqwestSender`]: one `POST` per attempt, no redirect, bounded in time and in what
//! it reads, to allowed hosts only.

use std::error::Error as _;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use brokkr_core::runtime::{SendOutcome, WebhookRequest, WebhookSender, WebhookSettings};
use brokkr_core::webhook::{HostAllowlist, validate_url};
use reqwest::header::LOCATION;

use super::resolver::AllowlistResolver;

/// The reference server's [`WebhookSender`], on reqwest with rustls (ring). See the
/// trait for the contract; proxies from the environment are not used, so the
/// allowlist judges the host actually connected to.
#[derive(Debug, Clone)]
pub struct ReqwestSender {
    client: reqwest::Client,
    allowlist: HostAllowlist,
    timeout: Duration,
    max_response_bytes: usize,
}

impl ReqwestSender {
    /// A sender with `settings`' allowlist and timeout, reading at most
    /// `max_response_bytes` of each answer.
    pub fn new(
        settings: &WebhookSettings,
        max_response_bytes: usize,
    ) -> Result<Self, reqwest::Error> {
        // reqwest is built without a TLS provider; ring is the workspace's one.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .no_proxy()
            .dns_resolver(Arc::new(AllowlistResolver {
                allowlist: settings.allowlist.clone(),
            }))
            .user_agent(concat!("brokkr-webhooks/", env!("CARGO_PKG_VERSION")))
            .build()?;
        Ok(Self {
            client,
            allowlist: settings.allowlist.clone(),
            timeout: settings.timeout,
            max_response_bytes,
        })
    }

    /// The start of `response`'s body, at most `max_response_bytes`; a body that
    /// fails part way keeps what arrived.
    async fn read_bounded(&self, response: &mut reqwest::Response) -> Vec<u8> {
        let mut body = Vec::new();
        while body.len() < self.max_response_bytes {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    let room = self.max_response_bytes - body.len();
                    body.extend_from_slice(&chunk[..chunk.len().min(room)]);
                }
                Ok(None) | Err(_) => break,
            }
        }
        body
    }

    fn describe(&self, err: reqwest::Error) -> String {
        // The URL may carry a token in its query: never in an error.
        let err = err.without_url();
        if err.is_timeout() {
            return format!("no answer within {} ms", self.timeout.as_millis());
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
}

#[async_trait]
impl WebhookSender for ReqwestSender {
    async fn send(&self, request: &WebhookRequest) -> SendOutcome {
        // Checked here again: the allowlist may have changed since the subscription
        // was written (a restart with a new configuration).
        let url = match validate_url(&request.url).and_then(|url| {
            self.allowlist.check(&url)?;
            Ok(url)
        }) {
            Ok(url) => url,
            Err(err) => return SendOutcome::failed(None, format!("not sent: {err}")),
        };
        let mut builder = self.client.post(url).body(request.body.clone());
        for (name, value) in &request.headers {
            builder = builder.header(*name, value);
        }
        let mut response = match builder.send().await {
            Ok(response) => response,
            Err(err) => return SendOutcome::failed(None, self.describe(err)),
        };
        let status = response.status().as_u16();
        let location = response
            .headers()
            .get(LOCATION)
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned());
        let body = self.read_bounded(&mut response).await;
        SendOutcome::from_answer(status, location.as_deref(), &body)
    }
}
