//! `impl WebhookStore for MemoryStore`: the trait's surface, delegating to
//! `webhooks.rs`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::MemoryStore;
use crate::id::{AgentId, DeliveryId, SubscriptionId};
use crate::model::{
    Actor, ClaimedDelivery, Delivery, DeliveryOutcome, NewSubscription, Subscription,
    SubscriptionUpdate, WebhookQueueStats,
};
use crate::page::{Page, PageRequest};
use crate::store::{DeliveryFilter, Result, SubscriptionFilter, WebhookStore};

#[async_trait]
impl WebhookStore for MemoryStore {
    async fn create_subscription(
        &self,
        actor: &Actor,
        new: NewSubscription,
    ) -> Result<Subscription> {
        super::webhooks::create_subscription(self, actor, new)
    }

    async fn get_subscription(&self, id: SubscriptionId) -> Result<Subscription> {
        super::webhooks::get_subscription(self, id)
    }

    async fn list_subscriptions(
        &self,
        filter: &SubscriptionFilter,
        page: &PageRequest,
    ) -> Result<Page<Subscription>> {
        super::webhooks::list_subscriptions(self, filter, page)
    }

    async fn update_subscription(
        &self,
        actor: &Actor,
        id: SubscriptionId,
        update: SubscriptionUpdate,
    ) -> Result<Subscription> {
        super::webhooks::update_subscription(self, actor, id, update)
    }

    async fn delete_subscription(&self, actor: &Actor, id: SubscriptionId) -> Result<()> {
        super::webhooks::delete_subscription(self, actor, id)
    }

    async fn queue_test_delivery(&self, actor: &Actor, id: SubscriptionId) -> Result<Delivery> {
        super::webhooks::queue_test_delivery(self, actor, id)
    }

    async fn fan_out_webhook_events(&self, limit: usize) -> Result<usize> {
        super::webhooks::fan_out(self, limit)
    }

    async fn claim_webhook_deliveries(
        &self,
        claimant: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<ClaimedDelivery>> {
        super::webhooks::claim(self, claimant, now, lease_until, limit)
    }

    async fn finish_webhook_delivery(
        &self,
        claimant: &str,
        id: DeliveryId,
        at: DateTime<Utc>,
        outcome: DeliveryOutcome,
    ) -> Result<()> {
        super::webhooks::finish(self, claimant, id, at, outcome)
    }

    async fn get_delivery(&self, id: DeliveryId) -> Result<Delivery> {
        super::webhooks::get_delivery(self, id)
    }

    async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> Result<Page<Delivery>> {
        super::webhooks::list_deliveries(self, filter, page)
    }

    async fn redeliver(&self, actor: &Actor, id: DeliveryId) -> Result<Delivery> {
        super::webhooks::redeliver(self, actor, id)
    }

    async fn webhook_queue_stats(&self) -> Result<WebhookQueueStats> {
        super::webhooks::queue_stats(self)
    }

    async fn prune_webhook_deliveries(&self, before: DateTime<Utc>, limit: usize) -> Result<u64> {
        super::webhooks::prune(self, before, limit)
    }

    async fn mark_stale_agents(&self, stale_before: DateTime<Utc>) -> Result<Vec<AgentId>> {
        super::webhooks::mark_stale_agents(self, stale_before)
    }
}
