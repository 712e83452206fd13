//! [`ReqwestSender`]: one `POST` per attempt through the [`OutboundClient`], judged as
//! every sender's answers are ([`SendOutcome::from_answer`]).

use std::time::Duration;

use async_trait::async_trait;
use brokkr_core::runtime::{SendOutcome, WebhookRequest, WebhookSender, WebhookSettings};

use super::client::OutboundClient;

/// The reference server's [`WebhookSender`]. See the trait for the contract; the
/// safety (no redirect, no proxy, the allowlist before sending and on resolved
/// addresses, bounded answers) is the [`OutboundClient`]'s, shared with the webhook
/// gate.
#[derive(Debug, Clone)]
pub struct ReqwestSender {
    client: OutboundClient,
    timeout: Duration,
}

impl ReqwestSender {
    /// A sender with `settings`' allowlist and timeout, reading at most
    /// `max_response_bytes` of each answer.
    pub fn new(
        settings: &WebhookSettings,
        max_response_bytes: usize,
    ) -> Result<Self, reqwest::Error> {
        let client = OutboundClient::new(
            settings.allowlist.clone(),
            concat!("brokkr-webhooks/", env!("CARGO_PKG_VERSION")),
            max_response_bytes,
        )?;
        Ok(Self {
            client,
            timeout: settings.timeout,
        })
    }
}

#[async_trait]
impl WebhookSender for ReqwestSender {
    async fn send(&self, request: &WebhookRequest) -> SendOutcome {
        let answer = self
            .client
            .post(
                &request.url,
                &request.headers,
                request.body.clone(),
                self.timeout,
            )
            .await;
        match answer {
            // A body that broke off after the status still leaves the status to judge.
            Ok(answer) => {
                SendOutcome::from_answer(answer.status, answer.location.as_deref(), &answer.body)
            }
            Err(err) => SendOutcome::failed(None, err.to_string()),
        }
    }
}
