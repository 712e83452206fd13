//! Outbound webhooks in the control plane: subscriptions and deliveries as operations
//! with access rules ([`ops`](self::ops)), the dispatcher that delivers them
//! ([`ControlPlane::start`] runs it), the [`WebhookSender`] it sends through (the
//! reference server's is on reqwest) and the [`WebhookSettings`] it runs with.
//! Signatures, secrets, retry delays and URL rules are pure and live in
//! [`crate::webhook`].

mod dispatcher;
mod ops;
mod sender;
mod settings;

use std::sync::Arc;

use tracing::instrument::WithSubscriber;

pub use dispatcher::{WebhookCounters, WebhookCounts};
pub use ops::{SubscriptionChange, SubscriptionSpec, SubscriptionWithSecret};
pub use sender::{MAX_ERROR_BYTES, SendOutcome, WebhookRequest, WebhookSender};
pub use settings::WebhookSettings;

use super::ControlPlane;

impl ControlPlane {
    /// Deliveries by outcome made by this control plane since it was built.
    pub fn webhook_counts(&self) -> WebhookCounts {
        self.inner.webhook_counters.read()
    }

    /// The webhook queue as the store counts it (for metrics; no access rule, as
    /// metrics are public).
    pub async fn webhook_queue_stats(&self) -> super::Result<crate::model::WebhookQueueStats> {
        Ok(self.inner.store.webhook_queue_stats().await?)
    }

    /// Whether a sender is configured, so that this control plane delivers webhooks.
    pub fn sends_webhooks(&self) -> bool {
        self.inner.webhook_sender.is_some()
    }

    /// The dispatcher task (see [`dispatcher`](self::dispatcher)); it fans out and
    /// keeps house even without a sender, and sends only with one.
    pub(super) fn spawn_webhook_dispatcher(&self) -> tokio::task::JoinHandle<()> {
        let inner = &self.inner;
        let dispatcher = dispatcher::Dispatcher {
            store: Arc::clone(&inner.store),
            sender: inner.webhook_sender.clone(),
            settings: inner.settings.webhooks.clone(),
            stale_after: inner.settings.stale_after,
            claimant: Arc::clone(&inner.claimant),
            counters: Arc::clone(&inner.webhook_counters),
        };
        tokio::spawn(dispatcher.run().with_current_subscriber())
    }
}
