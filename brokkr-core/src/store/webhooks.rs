//! The webhook part of the [`Store`](super::Store) contract: subscriptions, the outbox
//! every change writes to, and the deliveries the dispatcher claims, sends and records.
//! A supertrait of `Store`, so every store implements it; bring it into scope
//! (`use brokkr_core::store::WebhookStore`) to call its methods.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::id::{AgentId, DeliveryId, SubscriptionId};
use crate::model::{
    Actor, ClaimedDelivery, Delivery, DeliveryOutcome, NewSubscription, Subscription,
    SubscriptionUpdate, WebhookQueueStats,
};
use crate::page::{Page, PageRequest};

use super::{DeliveryFilter, Result, SubscriptionFilter};

/// Webhook subscriptions and deliveries; see each method for its transaction and audit.
#[async_trait]
pub trait WebhookStore: Send + Sync + 'static {
    /// Creates a subscription (validated by the caller). Audited (`create` of a
    /// `subscription`). `NotFound` if the owner is a missing or deleted generator.
    async fn create_subscription(
        &self,
        actor: &Actor,
        new: NewSubscription,
    ) -> Result<Subscription>;

    /// A subscription.
    async fn get_subscription(&self, id: SubscriptionId) -> Result<Subscription>;

    /// Subscriptions by filter, ordered by id.
    async fn list_subscriptions(
        &self,
        filter: &SubscriptionFilter,
        page: &PageRequest,
    ) -> Result<Page<Subscription>>;

    /// Changes a subscription (validated by the caller). Audited (`update`).
    async fn update_subscription(
        &self,
        actor: &Actor,
        id: SubscriptionId,
        update: SubscriptionUpdate,
    ) -> Result<Subscription>;

    /// Deletes a subscription and all its deliveries. Audited (`delete`).
    async fn delete_subscription(&self, actor: &Actor, id: SubscriptionId) -> Result<()>;

    /// Queues a `webhook.test` delivery for one subscription, behind its other
    /// deliveries. Audited (`create` of a `delivery`).
    async fn queue_test_delivery(&self, actor: &Actor, id: SubscriptionId) -> Result<Delivery>;

    /// Moves up to `limit` committed outbox events, oldest first, into one pending
    /// delivery per subscription that [wants](crate::Subscription::wants) each (matched
    /// against the event's stack, or for `agent.stale`/`agent.recovered` the agent,
    /// read whether deleted or not), due at once, in one transaction. Deliveries of one
    /// subscription are ordered as fan-out creates them. Only one fan-out runs at a time
    /// across every store on the database. Answers how many events it moved. Not
    /// audited: it records no one's change. Every change writes its events whether or
    /// not anyone subscribes, so something must call this periodically (an event no
    /// subscription wants is simply dropped), or the outbox only grows.
    async fn fan_out_webhook_events(&self, limit: usize) -> Result<usize>;

    /// Leases up to `limit` enabled subscriptions whose head pending delivery (the
    /// first in their order) is due at `now` and whose lease is free or expired at
    /// `now`, to `claimant` until `lease_until`, and answers each head delivery with its
    /// subscription. So a subscription has at most one delivery in flight and its
    /// deliveries go out in order; concurrent claimants never get the same
    /// subscription while its lease holds. Not audited.
    async fn claim_webhook_deliveries(
        &self,
        claimant: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<ClaimedDelivery>>;

    /// Records one attempt of a pending delivery (attempts + 1, `last_*` at `at`) and
    /// moves it: `Delivered`, `Pending` again due at `retry_at`, or `Dead` without one;
    /// then frees its subscription's lease if `claimant` holds it. An attempt reported
    /// for a delivery no longer pending changes nothing but that lease (the claimant is
    /// done with it). `NotFound` for an unknown id.
    /// Not audited.
    async fn finish_webhook_delivery(
        &self,
        claimant: &str,
        id: DeliveryId,
        at: DateTime<Utc>,
        outcome: DeliveryOutcome,
    ) -> Result<()>;

    /// A delivery.
    async fn get_delivery(&self, id: DeliveryId) -> Result<Delivery>;

    /// Deliveries by filter, ordered by id (time-ordered).
    async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> Result<Page<Delivery>>;

    /// Puts a delivered or dead delivery back to pending, due now, with its attempts
    /// reset and the same id (a pending one is answered unchanged). Audited (`update`
    /// of a `delivery`).
    async fn redeliver(&self, actor: &Actor, id: DeliveryId) -> Result<Delivery>;

    /// Counts of the outbox and the deliveries, for metrics.
    async fn webhook_queue_stats(&self) -> Result<WebhookQueueStats>;

    /// Removes up to `limit` delivered deliveries delivered before `before`; answers how
    /// many. Not audited (retention).
    async fn prune_webhook_deliveries(&self, before: DateTime<Utc>, limit: usize) -> Result<u64>;

    /// Marks every live agent whose last heartbeat is before `stale_before` (an agent
    /// that never sent one is not stale) and that is not marked yet, writing one
    /// `agent.stale` event each, in one transaction; answers them. A heartbeat of a
    /// marked agent clears the mark and writes `agent.recovered` in the heartbeat's
    /// transaction. Not audited (liveness).
    async fn mark_stale_agents(&self, stale_before: DateTime<Utc>) -> Result<Vec<AgentId>>;
}
