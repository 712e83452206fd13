//! What the webhook operations send and receive.

use brokkr_core::StackId;
use brokkr_core::model::{
    Delivery, DeliveryStatus, Subscription, SubscriptionOwner, WebhookEvent, WebhookEventType,
};
use brokkr_core::runtime::{SubscriptionChange, SubscriptionSpec, SubscriptionWithSecret};
use brokkr_core::selector::LabelSelector;
use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object};
use serde_json::Value;
use uuid::Uuid;

use crate::api::fields::{Description, no_null};
use crate::error::{ApiError, ApiResult};
use crate::page_type;

/// What happened (see `docs/webhooks.md` for each type's `data`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "WebhookEventType")]
pub enum EventTypeDto {
    /// A deployment object was appended to a stack.
    #[oai(rename = "deployment_object.created")]
    DeploymentObjectCreated,
    /// An agent applied a deployment object.
    #[oai(rename = "agent.applied")]
    AgentApplied,
    /// An agent failed to apply a deployment object.
    #[oai(rename = "agent.failed")]
    AgentFailed,
    /// An agent's health for a stack changed.
    #[oai(rename = "stack.health_changed")]
    StackHealthChanged,
    /// A placement decision changed.
    #[oai(rename = "placement.changed")]
    PlacementChanged,
    /// A stack was deleted.
    #[oai(rename = "stack.deleted")]
    StackDeleted,
    /// An agent stopped sending heartbeats.
    #[oai(rename = "agent.stale")]
    AgentStale,
    /// A stale agent is back.
    #[oai(rename = "agent.recovered")]
    AgentRecovered,
    /// The guard stopped a change; its plan awaits confirmation.
    #[oai(rename = "plan.held")]
    PlanHeld,
    /// A plan was confirmed and its change made.
    #[oai(rename = "plan.confirmed")]
    PlanConfirmed,
    /// A test delivery (sent only on request, never subscribed to).
    #[oai(rename = "webhook.test")]
    WebhookTest,
    /// A rollout was queued or moved from one state to another.
    #[oai(rename = "rollout.state_changed")]
    RolloutStateChanged,
    /// A wave of a rollout moved from one state to another.
    #[oai(rename = "rollout.wave_changed")]
    RolloutWaveChanged,
}

macro_rules! event_type_conversions {
    ($($variant:ident),* $(,)?) => {
        impl From<WebhookEventType> for EventTypeDto {
            fn from(t: WebhookEventType) -> Self {
                match t { $(WebhookEventType::$variant => Self::$variant,)* }
            }
        }
        impl From<EventTypeDto> for WebhookEventType {
            fn from(t: EventTypeDto) -> Self {
                match t { $(EventTypeDto::$variant => Self::$variant,)* }
            }
        }
    };
}

event_type_conversions!(
    DeploymentObjectCreated,
    AgentApplied,
    AgentFailed,
    StackHealthChanged,
    PlacementChanged,
    StackDeleted,
    AgentStale,
    AgentRecovered,
    PlanHeld,
    PlanConfirmed,
    WebhookTest,
    RolloutStateChanged,
    RolloutWaveChanged,
);

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "DeliveryStatus", rename_all = "snake_case")]
pub enum DeliveryStatusDto {
    /// Waiting to be sent, or sent again after a failed attempt.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Every attempt failed; only a redelivery sends it again.
    Dead,
}

impl From<DeliveryStatus> for DeliveryStatusDto {
    fn from(s: DeliveryStatus) -> Self {
        match s {
            DeliveryStatus::Pending => Self::Pending,
            DeliveryStatus::Delivered => Self::Delivered,
            DeliveryStatus::Dead => Self::Dead,
        }
    }
}

impl From<DeliveryStatusDto> for DeliveryStatus {
    fn from(s: DeliveryStatusDto) -> Self {
        match s {
            DeliveryStatusDto::Pending => Self::Pending,
            DeliveryStatusDto::Delivered => Self::Delivered,
            DeliveryStatusDto::Dead => Self::Dead,
        }
    }
}

/// A webhook subscription. Its secret is never shown again after the answer that made
/// it.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "Subscription")]
pub struct SubscriptionDto {
    /// Its id.
    pub id: Uuid,
    /// The generator that owns it; absent for the admin's.
    #[oai(skip_serializing_if_is_none)]
    pub generator_id: Option<Uuid>,
    /// Where deliveries are sent.
    pub url: String,
    /// Free text.
    #[oai(skip_serializing_if_is_none)]
    pub description: Option<String>,
    /// The event types it receives.
    pub event_types: Vec<EventTypeDto>,
    /// Only events about this stack.
    #[oai(skip_serializing_if_is_none)]
    pub stack_id: Option<Uuid>,
    /// Only events whose stack's labels (an agent's, for agent events) match this
    /// Kubernetes label selector.
    #[oai(skip_serializing_if_is_none)]
    pub labels: Option<Value>,
    /// A disabled subscription gets no new deliveries and sends none.
    pub enabled: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<Subscription> for SubscriptionDto {
    fn from(s: Subscription) -> Self {
        Self {
            id: s.id.into(),
            generator_id: match s.owner {
                SubscriptionOwner::Admin => None,
                SubscriptionOwner::Generator(id) => Some(id.into()),
            },
            url: s.url,
            description: s.description,
            event_types: s.event_types.into_iter().map(Into::into).collect(),
            stack_id: s.stack_id.map(Into::into),
            labels: s
                .labels
                .map(|selector| serde_json::to_value(selector).expect("a label selector is JSON")),
            enabled: s.enabled,
            created_at: s.created_at,
            updated_at: s.updated_at,
        }
    }
}

page_type!(
    /// A page of subscriptions.
    SubscriptionPage,
    SubscriptionDto
);

/// A subscription with its signing secret: the answer of a creation or a rotation,
/// the only place the secret is shown.
#[derive(Debug, Clone, Object)]
pub struct SubscriptionWithSecretDto {
    /// The subscription.
    pub subscription: SubscriptionDto,
    /// The signing secret (`whsec_...`). Store it now: it is never shown again.
    pub secret: String,
}

impl From<SubscriptionWithSecret> for SubscriptionWithSecretDto {
    fn from(s: SubscriptionWithSecret) -> Self {
        Self {
            subscription: s.subscription.into(),
            secret: s.secret,
        }
    }
}

/// Body of `POST /webhooks`.
#[derive(Debug, Clone, Object)]
pub struct CreateSubscriptionRequest {
    /// `http` or `https`, on a host the server's allowlist names.
    pub url: String,
    /// Free text; `""` is none.
    #[oai(deserialize_with = "no_null")]
    pub description: Option<Description>,
    /// The event types to receive (at least one; not `webhook.test`).
    pub event_types: Vec<EventTypeDto>,
    /// Only events about this stack (for a generator: one of its own).
    #[oai(deserialize_with = "no_null")]
    pub stack_id: Option<Uuid>,
    /// Only events whose stack's labels (an agent's, for agent events) match this
    /// Kubernetes label selector (`matchLabels`, `matchExpressions`).
    #[oai(deserialize_with = "no_null")]
    pub labels: Option<Value>,
}

impl CreateSubscriptionRequest {
    /// The control plane's input; 422 `invalid_selector` for `labels` that are not a
    /// label selector.
    pub fn into_spec(self) -> ApiResult<SubscriptionSpec> {
        Ok(SubscriptionSpec {
            url: self.url,
            description: self.description.map(String::from),
            event_types: self.event_types.into_iter().map(Into::into).collect(),
            stack_id: self.stack_id.map(StackId::from),
            labels: self.labels.map(selector).transpose()?,
        })
    }
}

/// Body of `PATCH /webhooks/{id}`: absent fields stay as they are.
#[derive(Debug, Clone, Object)]
pub struct UpdateSubscriptionRequest {
    /// New URL.
    #[oai(deserialize_with = "no_null")]
    pub url: Option<String>,
    /// New description; `""` clears it.
    #[oai(deserialize_with = "no_null")]
    pub description: Option<Description>,
    /// New event types.
    #[oai(deserialize_with = "no_null")]
    pub event_types: Option<Vec<EventTypeDto>>,
    /// Only events about this stack from now on.
    #[oai(deserialize_with = "no_null")]
    pub stack_id: Option<Uuid>,
    /// `true`: events about any stack (the stack filter is removed); not with
    /// `stack_id`.
    #[oai(deserialize_with = "no_null")]
    pub any_stack: Option<bool>,
    /// New label selector; `{}` removes the filter.
    #[oai(deserialize_with = "no_null")]
    pub labels: Option<Value>,
    /// Enables or disables it.
    #[oai(deserialize_with = "no_null")]
    pub enabled: Option<bool>,
}

impl UpdateSubscriptionRequest {
    /// The control plane's input; 422 for a bad selector or `stack_id` with
    /// `any_stack`.
    pub fn into_change(self) -> ApiResult<SubscriptionChange> {
        let stack_id = match (self.stack_id, self.any_stack) {
            (Some(_), Some(true)) => {
                return Err(ApiError::unprocessable(
                    "invalid_subscription",
                    "give stack_id or any_stack, not both",
                    None,
                ));
            }
            (Some(id), _) => Some(Some(StackId::from(id))),
            (None, Some(true)) => Some(None),
            (None, _) => None,
        };
        let labels = self
            .labels
            .map(selector)
            .transpose()?
            .map(|selector| (selector != LabelSelector::default()).then_some(selector));
        Ok(SubscriptionChange {
            url: self.url,
            description: self.description.map(|d| Some(d.into())),
            event_types: self
                .event_types
                .map(|types| types.into_iter().map(Into::into).collect()),
            stack_id,
            labels,
            enabled: self.enabled,
        })
    }
}

fn selector(value: Value) -> ApiResult<LabelSelector> {
    serde_json::from_value(value).map_err(|err| {
        ApiError::unprocessable(
            "invalid_selector",
            format!("labels is not a label selector: {err}"),
            None,
        )
    })
}

/// An event as a delivery carries it: the body the receiver gets.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "WebhookEvent")]
pub struct WebhookEventDto {
    /// The event's id, the same in each of its deliveries.
    pub id: Uuid,
    /// What happened.
    #[oai(rename = "type")]
    pub event_type: EventTypeDto,
    /// When the change committed.
    pub occurred_at: DateTime<Utc>,
    /// The stack it is about.
    #[oai(skip_serializing_if_is_none)]
    pub stack_id: Option<Uuid>,
    /// The agent it is about.
    #[oai(skip_serializing_if_is_none)]
    pub agent_id: Option<Uuid>,
    /// The type's fields (see `docs/webhooks.md`).
    pub data: Value,
}

impl From<WebhookEvent> for WebhookEventDto {
    fn from(e: WebhookEvent) -> Self {
        Self {
            id: e.id.into(),
            event_type: e.event_type.into(),
            occurred_at: e.occurred_at,
            stack_id: e.stack_id.map(Into::into),
            agent_id: e.agent_id.map(Into::into),
            data: e.data,
        }
    }
}

/// One event for one subscription, and how sending it went.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "Delivery")]
pub struct DeliveryDto {
    /// Its id, sent as `X-Brokkr-Delivery`: the same on every retry and redelivery.
    pub id: Uuid,
    /// The subscription.
    pub subscription_id: Uuid,
    /// The event.
    pub event: WebhookEventDto,
    /// Where it stands.
    pub status: DeliveryStatusDto,
    /// Attempts since it was queued or redelivered.
    pub attempts: u32,
    /// When it is due (again), while pending.
    pub next_attempt_at: DateTime<Utc>,
    /// When it was last tried.
    #[oai(skip_serializing_if_is_none)]
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// The receiver's status at the last attempt, if it answered.
    #[oai(skip_serializing_if_is_none)]
    pub last_status: Option<u16>,
    /// Why the last attempt failed.
    #[oai(skip_serializing_if_is_none)]
    pub last_error: Option<String>,
    /// When it was queued.
    pub created_at: DateTime<Utc>,
    /// When the receiver accepted it.
    #[oai(skip_serializing_if_is_none)]
    pub delivered_at: Option<DateTime<Utc>>,
}

impl From<Delivery> for DeliveryDto {
    fn from(d: Delivery) -> Self {
        Self {
            id: d.id.into(),
            subscription_id: d.subscription_id.into(),
            event: d.event.into(),
            status: d.status.into(),
            attempts: d.attempts,
            next_attempt_at: d.next_attempt_at,
            last_attempt_at: d.last_attempt_at,
            last_status: d.last_status,
            last_error: d.last_error,
            created_at: d.created_at,
            delivered_at: d.delivered_at,
        }
    }
}

page_type!(
    /// A page of deliveries.
    DeliveryPage,
    DeliveryDto
);
