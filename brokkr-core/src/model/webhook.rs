//! Webhooks: subscriptions, the events the store writes in each change's transaction,
//! and their deliveries.
//!
//! An event is written to the store's outbox by the transaction of the change that
//! causes it, so it exists exactly when the change committed. Fan-out
//! ([`Store::fan_out_webhook_events`](crate::Store::fan_out_webhook_events)) turns each
//! event into one [`Delivery`] per subscription that wants it ([`Subscription::wants`]);
//! a dispatcher claims and sends them in order per subscription.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::{AgentId, DeliveryId, GeneratorId, StackId, SubscriptionId, WebhookEventId};
use crate::metadata::Labels;
use crate::selector::LabelSelector;

/// What happened, as a webhook receiver sees it. Serialised (and stored) by its dotted
/// name, e.g. `deployment_object.created`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum WebhookEventType {
    /// A deployment object was appended to a stack (also a deletion marker or a
    /// rollback).
    DeploymentObjectCreated,
    /// An agent reported a successful attempt.
    AgentApplied,
    /// An agent reported a failed attempt.
    AgentFailed,
    /// An agent's health for a stack changed status.
    StackHealthChanged,
    /// A placement decision changed which agents a stack is placed on.
    PlacementChanged,
    /// A stack was deleted.
    StackDeleted,
    /// An agent stopped sending heartbeats.
    AgentStale,
    /// A stale agent sent a heartbeat again.
    AgentRecovered,
    /// A change or an automatic placement decision was stopped by the guard; its plan
    /// is stored for an admin to confirm.
    PlanHeld,
    /// An admin confirmed a plan and its change was made.
    PlanConfirmed,
    /// A test delivery, queued on request for one subscription.
    WebhookTest,
    /// A rollout was queued or moved from one state to another.
    RolloutStateChanged,
    /// A wave of a rollout moved from one state to another.
    RolloutWaveChanged,
}

stable_names!(WebhookEventType {
    DeploymentObjectCreated => "deployment_object.created",
    AgentApplied => "agent.applied",
    AgentFailed => "agent.failed",
    StackHealthChanged => "stack.health_changed",
    PlacementChanged => "placement.changed",
    StackDeleted => "stack.deleted",
    AgentStale => "agent.stale",
    AgentRecovered => "agent.recovered",
    PlanHeld => "plan.held",
    PlanConfirmed => "plan.confirmed",
    WebhookTest => "webhook.test",
    RolloutStateChanged => "rollout.state_changed",
    RolloutWaveChanged => "rollout.wave_changed",
});

impl WebhookEventType {
    /// Every event type.
    pub const ALL: [Self; 13] = [
        Self::DeploymentObjectCreated,
        Self::AgentApplied,
        Self::AgentFailed,
        Self::StackHealthChanged,
        Self::PlacementChanged,
        Self::StackDeleted,
        Self::AgentStale,
        Self::AgentRecovered,
        Self::PlanHeld,
        Self::PlanConfirmed,
        Self::WebhookTest,
        Self::RolloutStateChanged,
        Self::RolloutWaveChanged,
    ];

    /// Whether the event is about an agent rather than a stack, so that a label
    /// selector is matched against the agent's labels.
    pub fn is_about_an_agent(self) -> bool {
        matches!(self, Self::AgentStale | Self::AgentRecovered)
    }
}

/// A name that is no [`WebhookEventType`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown webhook event type {0:?}")]
pub struct UnknownEventType(pub String);

impl FromStr for WebhookEventType {
    type Err = UnknownEventType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or_else(|| UnknownEventType(s.to_owned()))
    }
}

impl fmt::Display for WebhookEventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for WebhookEventType {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for WebhookEventType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// Who a subscription belongs to, and so which events it may receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum SubscriptionOwner {
    /// The administrator: every event its filters select.
    Admin,
    /// A generator: only events about the stacks it created.
    Generator(GeneratorId),
}

/// A webhook subscription: where to send which events.
#[derive(Clone, PartialEq, Eq)]
pub struct Subscription {
    /// Its id.
    pub id: SubscriptionId,
    /// Who created it.
    pub owner: SubscriptionOwner,
    /// Where deliveries are sent (validated by the runtime).
    pub url: String,
    /// Free text.
    pub description: Option<String>,
    /// The event types it receives.
    pub event_types: Vec<WebhookEventType>,
    /// Only events about this stack.
    pub stack_id: Option<StackId>,
    /// Only events whose stack's labels (an agent's, for agent events without a stack)
    /// match.
    pub labels: Option<LabelSelector>,
    /// The signing secret, sealed by the runtime's keyring; never printed.
    pub sealed_secret: Vec<u8>,
    /// A disabled subscription gets no new deliveries and sends none.
    pub enabled: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("id", &self.id)
            .field("owner", &self.owner)
            .field("url", &self.url)
            .field("description", &self.description)
            .field("event_types", &self.event_types)
            .field("stack_id", &self.stack_id)
            .field("labels", &self.labels)
            .field("sealed_secret", &"<redacted>")
            .field("enabled", &self.enabled)
            .field("created_at", &self.created_at)
            .field("updated_at", &self.updated_at)
            .finish()
    }
}

/// What an event is about, as fan-out reads it: the generator that owns the event's
/// stack and the labels a selector is matched against.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EventSubject {
    /// The generator that created the event's stack; `None` for an admin's stack or an
    /// event without a stack.
    pub generator_id: Option<GeneratorId>,
    /// The stack's labels, or the agent's for an agent event.
    pub labels: Labels,
}

impl Subscription {
    /// Whether fan-out gives this subscription a delivery of `event`: it is enabled,
    /// existed when the event happened, asks for the event's type, its stack filter names the event's stack, its label
    /// selector matches the subject's labels, and a generator's subscription only gets
    /// events about its own stacks. `webhook.test` events are never fanned out.
    pub fn wants(&self, event: &WebhookEvent, subject: &EventSubject) -> bool {
        // An event that happened before the subscription existed is not its business,
        // even when fan-out runs after the subscription was made.
        if !self.enabled
            || event.occurred_at < self.created_at
            || event.event_type == WebhookEventType::WebhookTest
            || !self.event_types.contains(&event.event_type)
        {
            return false;
        }
        if self.stack_id.is_some() && self.stack_id != event.stack_id {
            return false;
        }
        if let SubscriptionOwner::Generator(generator) = self.owner
            && (event.stack_id.is_none() || subject.generator_id != Some(generator))
        {
            return false;
        }
        self.labels
            .as_ref()
            .is_none_or(|selector| selector.matches(&subject.labels))
    }
}

/// What [`Store::create_subscription`](crate::Store::create_subscription) needs.
#[derive(Clone, PartialEq, Eq)]
pub struct NewSubscription {
    /// Who creates it.
    pub owner: SubscriptionOwner,
    /// Where deliveries go.
    pub url: String,
    /// Free text.
    pub description: Option<String>,
    /// The event types it receives.
    pub event_types: Vec<WebhookEventType>,
    /// Only events about this stack.
    pub stack_id: Option<StackId>,
    /// Only events whose labels match.
    pub labels: Option<LabelSelector>,
    /// The sealed signing secret.
    pub sealed_secret: Vec<u8>,
}

impl fmt::Debug for NewSubscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NewSubscription")
            .field("owner", &self.owner)
            .field("url", &self.url)
            .field("event_types", &self.event_types)
            .field("stack_id", &self.stack_id)
            .field("labels", &self.labels)
            .finish_non_exhaustive()
    }
}

/// What [`Store::update_subscription`](crate::Store::update_subscription) changes;
/// `None` leaves a field as it is.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct SubscriptionUpdate {
    /// New URL.
    pub url: Option<String>,
    /// New description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
    /// New event types.
    pub event_types: Option<Vec<WebhookEventType>>,
    /// New stack filter (`Some(None)` clears it).
    pub stack_id: Option<Option<StackId>>,
    /// New label selector (`Some(None)` clears it).
    pub labels: Option<Option<LabelSelector>>,
    /// Enables or disables it.
    pub enabled: Option<bool>,
    /// A new sealed secret (rotation).
    pub sealed_secret: Option<Vec<u8>>,
}

impl fmt::Debug for SubscriptionUpdate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriptionUpdate")
            .field("url", &self.url)
            .field("description", &self.description)
            .field("event_types", &self.event_types)
            .field("stack_id", &self.stack_id)
            .field("labels", &self.labels)
            .field("enabled", &self.enabled)
            .field("rotates_secret", &self.sealed_secret.is_some())
            .finish()
    }
}

/// An event as written in the outbox by the transaction of its change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEvent {
    /// Its id, the same in every delivery of it.
    pub id: WebhookEventId,
    /// What happened.
    pub event_type: WebhookEventType,
    /// The stack it is about, if any.
    pub stack_id: Option<StackId>,
    /// The agent it is about, if any.
    pub agent_id: Option<AgentId>,
    /// When the change committed (its transaction's clock).
    pub occurred_at: DateTime<Utc>,
    /// What a receiver needs without calling back (see [`WebhookEvent`]'s
    /// constructors for each type's fields).
    pub data: serde_json::Value,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    /// Waiting to be sent, or to be sent again.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up after its attempts; only a redelivery sends it again.
    Dead,
}

stable_names!(DeliveryStatus {
    Pending => "pending",
    Delivered => "delivered",
    Dead => "dead",
});

/// One event for one subscription. Its id never changes across retries and
/// redeliveries: it is the receiver's idempotency key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// Its id.
    pub id: DeliveryId,
    /// The subscription it is for.
    pub subscription_id: SubscriptionId,
    /// The event it carries.
    pub event: WebhookEvent,
    /// Where it stands.
    pub status: DeliveryStatus,
    /// Attempts made since it was queued (or redelivered).
    pub attempts: u32,
    /// When it may be sent (again).
    pub next_attempt_at: DateTime<Utc>,
    /// When it was last tried.
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The HTTP status of its last attempt, if the receiver answered.
    pub last_status: Option<u16>,
    /// Why its last attempt failed.
    pub last_error: Option<String>,
    /// When fan-out (or a test request) queued it.
    pub created_at: DateTime<Utc>,
    /// When the receiver accepted it.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// How one attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeliveryOutcome {
    /// The receiver answered 2xx.
    Delivered {
        /// Its HTTP status.
        status: u16,
    },
    /// The attempt failed.
    Failed {
        /// The HTTP status, if the receiver answered.
        status: Option<u16>,
        /// What went wrong.
        error: String,
        /// When to try again; `None` gives up (dead letter).
        retry_at: Option<DateTime<Utc>>,
    },
}

/// A delivery handed to one claimant, with its subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimedDelivery {
    /// The head pending delivery of the subscription.
    pub delivery: Delivery,
    /// Its subscription, leased to the claimant.
    pub subscription: Subscription,
}

/// How much is waiting, for metrics.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WebhookQueueStats {
    /// Events not yet fanned out.
    pub outbox: u64,
    /// Deliveries waiting to be sent.
    pub pending: u64,
    /// Deliveries given up on.
    pub dead: u64,
    /// When the oldest event not yet delivered occurred (outbox or pending).
    pub oldest_undelivered_at: Option<DateTime<Utc>>,
}
