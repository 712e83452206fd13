//! The dispatcher: the background task that turns the outbox into HTTP requests.
//!
//! Every poll period it fans committed outbox events out into deliveries, claims the
//! head delivery of subscriptions that are due (one per subscription, leased to this
//! process, so replicas never send the same delivery at once and each subscription's
//! order holds), and sends each through the [`WebhookSender`], signed with the
//! subscription's secret. Each attempt is recorded with its outcome: delivered, due
//! again after a backoff, or dead after `max_attempts`. A crash between the send and
//! the record leaves the lease to expire; the delivery is then sent again with the
//! same id, which is why receivers deduplicate on it.
//!
//! Now and then it also prunes old delivered deliveries and marks agents stale (which
//! writes `agent.stale` events). Without a sender it still fans out, so the outbox
//! never grows without bound, and keeps house; it sends nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use tokio::task::JoinSet;

use crate::model::{ClaimedDelivery, DeliveryOutcome};
use crate::store::Store;
use crate::webhook::{self, envelope, signature};

use super::super::error::ErrorChain;
use super::{SendOutcome, WebhookRequest, WebhookSender, WebhookSettings};

/// Events moved from the outbox per fan-out call; a full batch is followed by another
/// at once.
const FAN_OUT_BATCH: usize = 500;
/// Fan-out calls per poll at most, so sending gets its turn under a flood.
const FAN_OUT_ROUNDS: usize = 8;
/// Delivered deliveries pruned per call.
const PRUNE_BATCH: usize = 1000;
/// How often old deliveries are pruned and agents checked for staleness, at most (a
/// third of `stale_after` when that is shorter, so staleness is noticed in time).
const HOUSEKEEPING_PERIOD: Duration = Duration::from_secs(30);

/// Deliveries by outcome since this control plane started (this replica's attempts).
#[derive(Debug, Default)]
pub struct WebhookCounters {
    delivered: AtomicU64,
    failed: AtomicU64,
    dead: AtomicU64,
}

/// A reading of [`WebhookCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookCounts {
    /// Attempts the receiver answered 2xx.
    pub delivered: u64,
    /// Failed attempts that will be retried.
    pub failed: u64,
    /// Failed attempts that were the last (the delivery is dead).
    pub dead: u64,
}

impl WebhookCounters {
    /// The counts now.
    pub fn read(&self) -> WebhookCounts {
        WebhookCounts {
            delivered: self.delivered.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dead: self.dead.load(Ordering::Relaxed),
        }
    }
}

/// What the dispatcher task holds.
pub(crate) struct Dispatcher {
    pub(crate) store: Arc<dyn Store>,
    pub(crate) sender: Option<Arc<dyn WebhookSender>>,
    pub(crate) settings: WebhookSettings,
    /// Agents without a heartbeat for this long are marked stale.
    pub(crate) stale_after: Duration,
    /// This process's name on leases.
    pub(crate) claimant: Arc<str>,
    pub(crate) counters: Arc<WebhookCounters>,
}

impl Dispatcher {
    /// Runs until aborted; aborting it aborts the attempts in flight too (their
    /// leases expire and they are sent again, with the same ids).
    pub(crate) async fn run(self) {
        let this = Arc::new(self);
        let mut in_flight = JoinSet::new();
        let poll = this.settings.poll;
        let housekeeping_period = HOUSEKEEPING_PERIOD.min((this.stale_after / 3).max(poll));
        let mut last_fan_out: Option<tokio::time::Instant> = None;
        let mut last_housekeeping: Option<tokio::time::Instant> = None;
        loop {
            // Attempts that ended free their slots.
            while in_flight.try_join_next().is_some() {}
            // Fan-out takes the database-wide fan-out lock: once a poll is enough.
            if last_fan_out.is_none_or(|at| at.elapsed() >= poll) {
                this.fan_out().await;
                last_fan_out = Some(tokio::time::Instant::now());
            }
            if let Some(sender) = &this.sender {
                this.claim_and_send(sender, &mut in_flight).await;
            }
            if last_housekeeping.is_none_or(|at| at.elapsed() >= housekeeping_period) {
                this.keep_house().await;
                last_housekeeping = Some(tokio::time::Instant::now());
            }
            // Wait for the next poll, or less when an attempt ends: its subscription's
            // next delivery may be due at once, and waiting a whole poll for it would
            // hold every subscription to one delivery per poll.
            if in_flight.is_empty() {
                tokio::time::sleep(poll).await;
            } else {
                let _ = tokio::time::timeout(poll, in_flight.join_next()).await;
            }
        }
    }

    async fn fan_out(&self) {
        for _ in 0..FAN_OUT_ROUNDS {
            match self.store.fan_out_webhook_events(FAN_OUT_BATCH).await {
                Ok(moved) if moved == FAN_OUT_BATCH => continue,
                Ok(_) => return,
                Err(err) => {
                    tracing::warn!(error = %ErrorChain(&err), "webhook fan-out failed; retrying next poll");
                    return;
                }
            }
        }
    }

    async fn claim_and_send(
        self: &Arc<Self>,
        sender: &Arc<dyn WebhookSender>,
        in_flight: &mut JoinSet<()>,
    ) {
        let free = self.settings.concurrency.saturating_sub(in_flight.len());
        if free == 0 {
            return;
        }
        let now = Utc::now();
        let lease_until = later(now, self.settings.lease);
        let claimed = match self
            .store
            .claim_webhook_deliveries(&self.claimant, now, lease_until, free)
            .await
        {
            Ok(claimed) => claimed,
            Err(err) => {
                tracing::warn!(error = %ErrorChain(&err), "claiming webhook deliveries failed; retrying next poll");
                return;
            }
        };
        for claimed in claimed {
            let this = Arc::clone(self);
            let sender = Arc::clone(sender);
            in_flight.spawn(async move { this.deliver(sender.as_ref(), claimed).await });
        }
    }

    /// One attempt of one claimed delivery, recorded.
    async fn deliver(&self, sender: &dyn WebhookSender, claimed: ClaimedDelivery) {
        let ClaimedDelivery {
            delivery,
            subscription,
        } = claimed;
        let outcome = match self.request(&subscription, &delivery) {
            Ok(request) => sender.send(&request).await,
            Err(reason) => SendOutcome::failed(None, reason),
        };
        let at = Utc::now();
        let attempt = delivery.attempts + 1;
        let outcome = match outcome {
            SendOutcome::Delivered { status } => {
                self.counters.delivered.fetch_add(1, Ordering::Relaxed);
                tracing::info!(
                    delivery = %delivery.id, subscription = %subscription.id,
                    event = %delivery.event.event_type, attempt, status,
                    "webhook delivered"
                );
                DeliveryOutcome::Delivered { status }
            }
            SendOutcome::Failed { status, error } => {
                let retry_at = self
                    .settings
                    .retry_after(attempt, rand::random::<f64>())
                    .map(|delay| later(at, delay));
                match retry_at {
                    Some(retry_at) => {
                        self.counters.failed.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(
                            delivery = %delivery.id, subscription = %subscription.id,
                            event = %delivery.event.event_type, attempt, status, %error, %retry_at,
                            "webhook attempt failed; will retry"
                        );
                    }
                    None => {
                        self.counters.dead.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            delivery = %delivery.id, subscription = %subscription.id,
                            event = %delivery.event.event_type, attempt, status, %error,
                            "webhook attempt failed and was the last; the delivery is dead until redelivered"
                        );
                    }
                }
                DeliveryOutcome::Failed {
                    status,
                    error,
                    retry_at,
                }
            }
        };
        if let Err(err) = self
            .store
            .finish_webhook_delivery(&self.claimant, delivery.id, at, outcome)
            .await
        {
            tracing::warn!(
                delivery = %delivery.id, error = %ErrorChain(&err),
                "recording a webhook attempt failed; the delivery will be sent again, with the same id, once its lease expires"
            );
        }
    }

    /// The signed request for a delivery, or why it cannot be made (its secret does
    /// not open under this keyring; its URL is no longer allowed).
    fn request(
        &self,
        subscription: &crate::model::Subscription,
        delivery: &crate::model::Delivery,
    ) -> Result<WebhookRequest, String> {
        webhook::validate_url(&subscription.url)
            .and_then(|url| self.settings.allowlist.check(&url))
            .map_err(|err| format!("not sent: {err}"))?;
        let keyring = self
            .settings
            .keyring
            .as_ref()
            .ok_or("not sent: no [webhooks] keys are configured to open the secret")?;
        let secret = keyring
            .open(&subscription.sealed_secret)
            .map_err(|err| format!("not sent: cannot open the subscription's secret: {err}"))?;
        let body = envelope(&delivery.event);
        let timestamp = Utc::now().timestamp();
        Ok(WebhookRequest {
            url: subscription.url.clone(),
            headers: vec![
                ("Content-Type", "application/json".to_owned()),
                (
                    webhook::SIGNATURE_HEADER,
                    signature::sign(&secret, timestamp, &body),
                ),
                (webhook::TIMESTAMP_HEADER, timestamp.to_string()),
                (webhook::DELIVERY_HEADER, delivery.id.to_string()),
                (
                    webhook::EVENT_HEADER,
                    delivery.event.event_type.as_str().to_owned(),
                ),
            ],
            body,
        })
    }

    async fn keep_house(&self) {
        let now = Utc::now();
        let before = earlier(now, self.settings.delivered_retention);
        match self
            .store
            .prune_webhook_deliveries(before, PRUNE_BATCH)
            .await
        {
            Ok(0) => {}
            Ok(pruned) => tracing::debug!(pruned, "pruned delivered webhook deliveries"),
            Err(err) => {
                tracing::warn!(error = %ErrorChain(&err), "pruning webhook deliveries failed")
            }
        }
        match self
            .store
            .mark_stale_agents(earlier(now, self.stale_after))
            .await
        {
            Ok(agents) if agents.is_empty() => {}
            Ok(agents) => tracing::info!(count = agents.len(), ?agents, "agents went stale"),
            Err(err) => tracing::warn!(error = %ErrorChain(&err), "marking stale agents failed"),
        }
    }
}

/// `at + duration`, saturating.
fn later(at: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(duration)
        .ok()
        .and_then(|delta| at.checked_add_signed(delta))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `at - duration`, saturating.
fn earlier(at: DateTime<Utc>, duration: Duration) -> DateTime<Utc> {
    TimeDelta::from_std(duration)
        .ok()
        .and_then(|delta| at.checked_sub_signed(delta))
        .unwrap_or(DateTime::<Utc>::MIN_UTC)
}
