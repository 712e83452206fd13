//! Webhooks: subscriptions, the outbox every change writes to, fan-out, claims and
//! deliveries.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::state::{now, paginate, parse_uuid};
use super::{MemoryStore, State};
use crate::id::{AgentId, DeliveryId, SubscriptionId};
use crate::model::{
    Actor, AuditAction, ClaimedDelivery, Delivery, DeliveryOutcome, DeliveryStatus, EventSubject,
    NewSubscription, ResourceKind, Subscription, SubscriptionOwner, SubscriptionUpdate,
    WebhookEvent, WebhookQueueStats,
};
use crate::page::{Page, PageRequest};
use crate::store::{DeliveryFilter, Error, Result, SubscriptionFilter};

/// A subscription and its lease. A finished delivery frees the lease but keeps its
/// end, so that claims serve the least recently leased subscriptions first.
#[derive(Debug, Clone)]
pub(super) struct SubscriptionRow {
    subscription: Subscription,
    lease_owner: Option<String>,
    lease_until: Option<DateTime<Utc>>,
}

/// A delivery and its place in its subscription's order.
#[derive(Debug, Clone)]
pub(super) struct DeliveryRow {
    delivery: Delivery,
    order: u64,
}

/// The webhook part of the state.
#[derive(Debug, Default)]
pub(super) struct Webhooks {
    subscriptions: BTreeMap<SubscriptionId, SubscriptionRow>,
    /// Committed events not fanned out yet, oldest first.
    outbox: Vec<WebhookEvent>,
    deliveries: BTreeMap<DeliveryId, DeliveryRow>,
    /// The order the next delivery gets.
    next_order: u64,
}

impl State {
    /// Writes an event to the outbox, as part of the change being made.
    pub(super) fn emit(&mut self, event: WebhookEvent) {
        self.webhooks.outbox.push(event);
    }

    fn subscription(&self, id: SubscriptionId) -> Result<&SubscriptionRow> {
        self.webhooks
            .subscriptions
            .get(&id)
            .ok_or_else(|| Error::not_found("subscription", id))
    }

    fn queue(&mut self, subscription_id: SubscriptionId, event: WebhookEvent, at: DateTime<Utc>) {
        let hooks = &mut self.webhooks;
        let delivery = Delivery {
            id: DeliveryId::new(),
            subscription_id,
            event,
            status: DeliveryStatus::Pending,
            attempts: 0,
            next_attempt_at: at,
            last_attempt_at: None,
            last_status: None,
            last_error: None,
            created_at: at,
            delivered_at: None,
        };
        let order = hooks.next_order;
        hooks.next_order += 1;
        hooks
            .deliveries
            .insert(delivery.id, DeliveryRow { delivery, order });
    }

    /// What fan-out matches an event's subscriptions against: its stack, or for an
    /// agent event its agent, deleted or not.
    fn subject(&self, event: &WebhookEvent) -> EventSubject {
        if event.event_type.is_about_an_agent() {
            let labels = event.agent_id.and_then(|id| self.agents.get(&id));
            return EventSubject {
                generator_id: None,
                labels: labels.map(|a| a.labels.clone()).unwrap_or_default(),
            };
        }
        match event.stack_id.and_then(|id| self.stacks.get(&id)) {
            Some(stack) => EventSubject {
                generator_id: stack.generator_id,
                labels: stack.labels.clone(),
            },
            None => EventSubject::default(),
        }
    }

    /// The head (first pending) delivery of a subscription.
    fn head(&self, id: SubscriptionId) -> Option<&DeliveryRow> {
        self.webhooks
            .deliveries
            .values()
            .filter(|d| d.delivery.subscription_id == id)
            .filter(|d| d.delivery.status == DeliveryStatus::Pending)
            .min_by_key(|d| d.order)
    }
}

pub(super) fn create_subscription(
    store: &MemoryStore,
    actor: &Actor,
    new: NewSubscription,
) -> Result<Subscription> {
    let mut state = store.state();
    if let SubscriptionOwner::Generator(generator) = new.owner {
        state.live_generator(generator)?;
    }
    let at = now();
    let subscription = Subscription {
        id: SubscriptionId::new(),
        owner: new.owner,
        url: new.url,
        description: new.description,
        event_types: new.event_types,
        stack_id: new.stack_id,
        labels: new.labels,
        sealed_secret: new.sealed_secret,
        enabled: true,
        created_at: at,
        updated_at: at,
    };
    let row = SubscriptionRow {
        subscription: subscription.clone(),
        lease_owner: None,
        lease_until: None,
    };
    state.webhooks.subscriptions.insert(subscription.id, row);
    let summary = format!("created webhook subscription to {}", subscription.url);
    state.audit(
        actor,
        AuditAction::Create,
        ResourceKind::Subscription,
        subscription.id,
        summary,
        at,
    );
    Ok(subscription)
}

pub(super) fn get_subscription(store: &MemoryStore, id: SubscriptionId) -> Result<Subscription> {
    Ok(store.state().subscription(id)?.subscription.clone())
}

pub(super) fn list_subscriptions(
    store: &MemoryStore,
    filter: &SubscriptionFilter,
    page: &PageRequest,
) -> Result<Page<Subscription>> {
    let state = store.state();
    let rows = state
        .webhooks
        .subscriptions
        .values()
        .map(|row| &row.subscription)
        .filter(|s| filter.owner.is_none_or(|owner| s.owner == owner))
        .cloned()
        .collect();
    paginate(rows, page, |s| s.id, parse_uuid, |s| s.id.to_string())
}

pub(super) fn update_subscription(
    store: &MemoryStore,
    actor: &Actor,
    id: SubscriptionId,
    update: SubscriptionUpdate,
) -> Result<Subscription> {
    let mut state = store.state();
    state.subscription(id)?;
    let at = now();
    let row = state
        .webhooks
        .subscriptions
        .get_mut(&id)
        .expect("checked above, under the same lock");
    let s = &mut row.subscription;
    if let Some(url) = update.url {
        s.url = url;
    }
    if let Some(description) = update.description {
        s.description = description;
    }
    if let Some(event_types) = update.event_types {
        s.event_types = event_types;
    }
    if let Some(stack_id) = update.stack_id {
        s.stack_id = stack_id;
    }
    if let Some(labels) = update.labels {
        s.labels = labels;
    }
    if let Some(enabled) = update.enabled {
        s.enabled = enabled;
    }
    if let Some(secret) = update.sealed_secret {
        s.sealed_secret = secret;
    }
    s.updated_at = at;
    let subscription = s.clone();
    let summary = format!("updated webhook subscription to {}", subscription.url);
    state.audit(
        actor,
        AuditAction::Update,
        ResourceKind::Subscription,
        id,
        summary,
        at,
    );
    Ok(subscription)
}

pub(super) fn delete_subscription(
    store: &MemoryStore,
    actor: &Actor,
    id: SubscriptionId,
) -> Result<()> {
    let mut state = store.state();
    let url = state.subscription(id)?.subscription.url.clone();
    state.webhooks.subscriptions.remove(&id);
    state
        .webhooks
        .deliveries
        .retain(|_, d| d.delivery.subscription_id != id);
    let summary = format!("deleted webhook subscription to {url}");
    state.audit(
        actor,
        AuditAction::Delete,
        ResourceKind::Subscription,
        id,
        summary,
        now(),
    );
    Ok(())
}

pub(super) fn queue_test_delivery(
    store: &MemoryStore,
    actor: &Actor,
    id: SubscriptionId,
) -> Result<Delivery> {
    let mut state = store.state();
    state.subscription(id)?;
    let at = now();
    state.queue(id, WebhookEvent::test(id, at), at);
    let delivery = state
        .webhooks
        .deliveries
        .values()
        .max_by_key(|d| d.order)
        .expect("just queued")
        .delivery
        .clone();
    let summary = format!("queued a test delivery for webhook subscription {id}");
    state.audit(
        actor,
        AuditAction::Create,
        ResourceKind::Delivery,
        delivery.id,
        summary,
        at,
    );
    Ok(delivery)
}

pub(super) fn fan_out(store: &MemoryStore, limit: usize) -> Result<usize> {
    let mut state = store.state();
    let take = limit.min(state.webhooks.outbox.len());
    let events: Vec<WebhookEvent> = state.webhooks.outbox.drain(..take).collect();
    let at = now();
    for event in events {
        let subject = state.subject(&event);
        let wanted: Vec<SubscriptionId> = state
            .webhooks
            .subscriptions
            .values()
            .filter(|row| row.subscription.wants(&event, &subject))
            .map(|row| row.subscription.id)
            .collect();
        for subscription in wanted {
            state.queue(subscription, event.clone(), at);
        }
    }
    Ok(take)
}

pub(super) fn claim(
    store: &MemoryStore,
    claimant: &str,
    now: DateTime<Utc>,
    lease_until: DateTime<Utc>,
    limit: usize,
) -> Result<Vec<ClaimedDelivery>> {
    let mut state = store.state();
    let mut free: Vec<(Option<DateTime<Utc>>, SubscriptionId)> = state
        .webhooks
        .subscriptions
        .values()
        .filter(|row| row.subscription.enabled)
        .filter(|row| row.lease_owner.is_none() || row.lease_until.is_some_and(|u| u <= now))
        .map(|row| (row.lease_until, row.subscription.id))
        .collect();
    // Never leased first (`None` sorts first), then the least recently leased.
    free.sort_unstable();
    let mut claimed = Vec::new();
    for (_, id) in free {
        if claimed.len() >= limit {
            break;
        }
        let Some(head) = state.head(id) else { continue };
        if head.delivery.next_attempt_at > now {
            continue;
        }
        let delivery = head.delivery.clone();
        let row = state
            .webhooks
            .subscriptions
            .get_mut(&id)
            .expect("listed above, under the same lock");
        row.lease_owner = Some(claimant.to_owned());
        row.lease_until = Some(lease_until);
        claimed.push(ClaimedDelivery {
            delivery,
            subscription: row.subscription.clone(),
        });
    }
    Ok(claimed)
}

pub(super) fn finish(
    store: &MemoryStore,
    claimant: &str,
    id: DeliveryId,
    at: DateTime<Utc>,
    outcome: DeliveryOutcome,
) -> Result<()> {
    let mut state = store.state();
    let row = state
        .webhooks
        .deliveries
        .get_mut(&id)
        .ok_or_else(|| Error::not_found("delivery", id))?;
    let d = &mut row.delivery;
    let subscription = d.subscription_id;
    // A delivery no longer pending records no attempt, but its claimant is done
    // with the subscription either way.
    if d.status == DeliveryStatus::Pending {
        record_attempt(d, at, outcome);
    }
    if let Some(row) = state.webhooks.subscriptions.get_mut(&subscription)
        && row.lease_owner.as_deref() == Some(claimant)
    {
        row.lease_owner = None;
    }
    Ok(())
}

/// One attempt of a pending delivery: counted, its answer kept, its status moved.
fn record_attempt(d: &mut Delivery, at: DateTime<Utc>, outcome: DeliveryOutcome) {
    d.attempts += 1;
    d.last_attempt_at = Some(at);
    match outcome {
        DeliveryOutcome::Delivered { status } => {
            d.status = DeliveryStatus::Delivered;
            d.last_status = Some(status);
            d.last_error = None;
            d.delivered_at = Some(at);
        }
        DeliveryOutcome::Failed {
            status,
            error,
            retry_at,
        } => {
            d.last_status = status;
            d.last_error = Some(error);
            match retry_at {
                Some(retry_at) => d.next_attempt_at = retry_at,
                None => d.status = DeliveryStatus::Dead,
            }
        }
    }
}

pub(super) fn get_delivery(store: &MemoryStore, id: DeliveryId) -> Result<Delivery> {
    store
        .state()
        .webhooks
        .deliveries
        .get(&id)
        .map(|row| row.delivery.clone())
        .ok_or_else(|| Error::not_found("delivery", id))
}

pub(super) fn list_deliveries(
    store: &MemoryStore,
    filter: &DeliveryFilter,
    page: &PageRequest,
) -> Result<Page<Delivery>> {
    let state = store.state();
    let rows = state
        .webhooks
        .deliveries
        .values()
        .map(|row| &row.delivery)
        .filter(|d| {
            filter
                .subscription_id
                .is_none_or(|s| d.subscription_id == s)
        })
        .filter(|d| filter.status.is_none_or(|s| d.status == s))
        .cloned()
        .collect();
    paginate(rows, page, |d| d.id, parse_uuid, |d| d.id.to_string())
}

pub(super) fn redeliver(store: &MemoryStore, actor: &Actor, id: DeliveryId) -> Result<Delivery> {
    let mut state = store.state();
    let at = now();
    let row = state
        .webhooks
        .deliveries
        .get_mut(&id)
        .ok_or_else(|| Error::not_found("delivery", id))?;
    let d = &mut row.delivery;
    if d.status == DeliveryStatus::Pending {
        return Ok(d.clone());
    }
    d.status = DeliveryStatus::Pending;
    d.attempts = 0;
    d.next_attempt_at = at;
    d.delivered_at = None;
    let delivery = d.clone();
    let summary = format!(
        "queued delivery {id} again for webhook subscription {}",
        delivery.subscription_id
    );
    state.audit(
        actor,
        AuditAction::Update,
        ResourceKind::Delivery,
        id,
        summary,
        at,
    );
    Ok(delivery)
}

pub(super) fn queue_stats(store: &MemoryStore) -> Result<WebhookQueueStats> {
    let state = store.state();
    let hooks = &state.webhooks;
    let count = |status| {
        hooks
            .deliveries
            .values()
            .filter(|d| d.delivery.status == status)
            .count() as u64
    };
    let pending = hooks
        .deliveries
        .values()
        .filter(|d| d.delivery.status == DeliveryStatus::Pending)
        .map(|d| d.delivery.event.occurred_at);
    let oldest = hooks
        .outbox
        .iter()
        .map(|e| e.occurred_at)
        .chain(pending)
        .min();
    Ok(WebhookQueueStats {
        outbox: hooks.outbox.len() as u64,
        pending: count(DeliveryStatus::Pending),
        dead: count(DeliveryStatus::Dead),
        oldest_undelivered_at: oldest,
    })
}

pub(super) fn prune(store: &MemoryStore, before: DateTime<Utc>, limit: usize) -> Result<u64> {
    let mut state = store.state();
    let mut old: Vec<(DateTime<Utc>, DeliveryId)> = state
        .webhooks
        .deliveries
        .values()
        .filter_map(|row| {
            let d = &row.delivery;
            let delivered = d
                .delivered_at
                .filter(|_| d.status == DeliveryStatus::Delivered);
            delivered.filter(|at| *at < before).map(|at| (at, d.id))
        })
        .collect();
    old.sort_unstable();
    old.truncate(limit);
    for (_, id) in &old {
        state.webhooks.deliveries.remove(id);
    }
    Ok(old.len() as u64)
}

pub(super) fn mark_stale_agents(
    store: &MemoryStore,
    stale_before: DateTime<Utc>,
) -> Result<Vec<AgentId>> {
    let mut state = store.state();
    let at = now();
    let stale: Vec<(AgentId, Option<DateTime<Utc>>)> = state
        .agents
        .values()
        .filter(|a| a.deleted_at.is_none() && !state.stale_agents.contains_key(&a.id))
        .filter(|a| a.last_heartbeat.is_some_and(|beat| beat < stale_before))
        .map(|a| (a.id, a.last_heartbeat))
        .collect();
    for (agent, last_heartbeat) in &stale {
        state.stale_agents.insert(*agent, at);
        state.emit(WebhookEvent::agent_stale(*agent, *last_heartbeat, at));
    }
    Ok(stale.into_iter().map(|(agent, _)| agent).collect())
}
