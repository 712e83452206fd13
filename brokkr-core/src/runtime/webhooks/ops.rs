//! Webhook subscriptions and their deliveries as control-plane operations.
//!
//! Admin and system manage every subscription (owned by the admin); a generator
//! manages only its own, which may name one of its own stacks or none and then
//! receive only its stacks' events; another generator's subscriptions and deliveries
//! are `NotFound` to it; agents are `Forbidden`. Input is checked before anything is
//! stored (`Invalid`, a 422): the URL by the rules of [`crate::webhook::destination`]
//! and against the allowlist, at least one event type (`webhook.test` is sent only on
//! request), a valid label selector. A subscription's secret is generated here, sealed
//! with the keyring, and shown once, in the answer that made it.

use std::fmt;

use crate::id::{DeliveryId, StackId, SubscriptionId};
use crate::model::{
    Actor, Delivery, DeliveryStatus, NewSubscription, Subscription, SubscriptionOwner,
    SubscriptionUpdate, WebhookEventType, description_or_none, validate_description,
};
use crate::page::{Page, PageRequest};
use crate::selector::LabelSelector;
use crate::store::{DeliveryFilter, SubscriptionFilter};
use crate::webhook::{self, Keyring, UrlError, generate_secret};

use super::super::ControlPlane;
use super::super::access;
use super::super::error::{Error, Result};

/// What [`ControlPlane::create_subscription`] needs; the owner follows from the
/// caller and the secret is made by the control plane.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionSpec {
    /// Where deliveries go: `http` or `https`, a host on the allowlist.
    pub url: String,
    /// Free text.
    pub description: Option<String>,
    /// The event types to receive (at least one).
    pub event_types: Vec<WebhookEventType>,
    /// Only events about this stack (for a generator, one of its own).
    pub stack_id: Option<StackId>,
    /// Only events whose stack's labels (an agent's, for agent events) match.
    pub labels: Option<LabelSelector>,
}

/// What [`ControlPlane::update_subscription`] changes; `None` leaves a field as it is.
/// The secret changes only through [`ControlPlane::rotate_subscription_secret`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionChange {
    /// New URL.
    pub url: Option<String>,
    /// New description (`Some(None)` or an empty one clears it).
    pub description: Option<Option<String>>,
    /// New event types.
    pub event_types: Option<Vec<WebhookEventType>>,
    /// New stack filter (`Some(None)` clears it).
    pub stack_id: Option<Option<StackId>>,
    /// New label selector (`Some(None)` clears it).
    pub labels: Option<Option<LabelSelector>>,
    /// Enables or disables it.
    pub enabled: Option<bool>,
}

/// A subscription with its secret in clear text, only in the answer that created or
/// rotated it. `Debug` redacts the secret.
#[derive(Clone)]
pub struct SubscriptionWithSecret {
    /// The subscription.
    pub subscription: Subscription,
    /// Its signing secret (`whsec_...`): give it to the receiver now, it cannot be
    /// read back.
    pub secret: String,
}

impl fmt::Debug for SubscriptionWithSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SubscriptionWithSecret")
            .field("subscription", &self.subscription)
            .field("secret", &"<redacted>")
            .finish()
    }
}

impl ControlPlane {
    /// Creates a subscription owned by the caller (admin or system: the admin) and
    /// returns it with its new secret.
    pub async fn create_subscription(
        &self,
        caller: &Actor,
        spec: SubscriptionSpec,
    ) -> Result<SubscriptionWithSecret> {
        let owner = owner_of(caller)?;
        let keyring = self.keyring()?;
        self.check_url(&spec.url)?;
        let event_types = check_event_types(spec.event_types)?;
        check_selector(spec.labels.as_ref())?;
        let description = check_description(spec.description)?;
        if let Some(stack) = spec.stack_id {
            self.visible_stack(caller, stack).await?;
        }
        let secret = generate_secret();
        let new = NewSubscription {
            owner,
            url: spec.url,
            description,
            event_types,
            stack_id: spec.stack_id,
            labels: spec.labels,
            sealed_secret: keyring.seal(secret.as_bytes()),
        };
        let subscription = self.store().create_subscription(caller, new).await?;
        Ok(SubscriptionWithSecret {
            subscription,
            secret,
        })
    }

    /// A subscription the caller may see.
    pub async fn get_subscription(
        &self,
        caller: &Actor,
        id: SubscriptionId,
    ) -> Result<Subscription> {
        self.visible_subscription(caller, id).await
    }

    /// Subscriptions ordered by id: every one for admin and system, its own for a
    /// generator.
    pub async fn list_subscriptions(
        &self,
        caller: &Actor,
        page: &PageRequest,
    ) -> Result<Page<Subscription>> {
        let filter = SubscriptionFilter {
            owner: match owner_of(caller)? {
                SubscriptionOwner::Admin => None,
                generator => Some(generator),
            },
        };
        Ok(self.store().list_subscriptions(&filter, page).await?)
    }

    /// Changes a subscription, checking what changes as on creation.
    pub async fn update_subscription(
        &self,
        caller: &Actor,
        id: SubscriptionId,
        change: SubscriptionChange,
    ) -> Result<Subscription> {
        self.visible_subscription(caller, id).await?;
        if let Some(url) = &change.url {
            self.check_url(url)?;
        }
        let event_types = change.event_types.map(check_event_types).transpose()?;
        if let Some(labels) = &change.labels {
            check_selector(labels.as_ref())?;
        }
        let description = change.description.map(check_description).transpose()?;
        if let Some(Some(stack)) = change.stack_id {
            self.visible_stack(caller, stack).await?;
        }
        let update = SubscriptionUpdate {
            url: change.url,
            description,
            event_types,
            stack_id: change.stack_id,
            labels: change.labels,
            enabled: change.enabled,
            sealed_secret: None,
        };
        Ok(self.store().update_subscription(caller, id, update).await?)
    }

    /// Deletes a subscription and its deliveries.
    pub async fn delete_subscription(&self, caller: &Actor, id: SubscriptionId) -> Result<()> {
        self.visible_subscription(caller, id).await?;
        Ok(self.store().delete_subscription(caller, id).await?)
    }

    /// Gives a subscription a new secret, returned once; the old one stops signing at
    /// once (deliveries from now on, retries included, carry the new signature).
    pub async fn rotate_subscription_secret(
        &self,
        caller: &Actor,
        id: SubscriptionId,
    ) -> Result<SubscriptionWithSecret> {
        self.visible_subscription(caller, id).await?;
        let keyring = self.keyring()?;
        let secret = generate_secret();
        let update = SubscriptionUpdate {
            sealed_secret: Some(keyring.seal(secret.as_bytes())),
            ..SubscriptionUpdate::default()
        };
        let subscription = self.store().update_subscription(caller, id, update).await?;
        Ok(SubscriptionWithSecret {
            subscription,
            secret,
        })
    }

    /// Queues a `webhook.test` delivery for a subscription, behind its other
    /// deliveries (a disabled subscription keeps it until enabled).
    pub async fn test_subscription(&self, caller: &Actor, id: SubscriptionId) -> Result<Delivery> {
        self.visible_subscription(caller, id).await?;
        Ok(self.store().queue_test_delivery(caller, id).await?)
    }

    /// A subscription's deliveries, newest last (ordered by id), optionally only those
    /// with `status`.
    pub async fn list_deliveries(
        &self,
        caller: &Actor,
        subscription_id: SubscriptionId,
        status: Option<DeliveryStatus>,
        page: &PageRequest,
    ) -> Result<Page<Delivery>> {
        self.visible_subscription(caller, subscription_id).await?;
        let filter = DeliveryFilter {
            subscription_id: Some(subscription_id),
            status,
        };
        Ok(self.store().list_deliveries(&filter, page).await?)
    }

    /// A delivery of a subscription the caller may see.
    pub async fn get_delivery(&self, caller: &Actor, id: DeliveryId) -> Result<Delivery> {
        access::require_admin_or_generator(caller)?;
        let delivery = self.store().get_delivery(id).await?;
        if let Actor::Generator(_) = caller {
            let owner = self
                .store()
                .get_subscription(delivery.subscription_id)
                .await;
            if !owner.is_ok_and(|subscription| sees(caller, subscription.owner)) {
                return Err(Error::not_found("delivery", id));
            }
        }
        Ok(delivery)
    }

    /// Sends a delivered or dead delivery again, due now, its attempts reset and its
    /// id the same (so a receiver that has it can tell).
    pub async fn redeliver(&self, caller: &Actor, id: DeliveryId) -> Result<Delivery> {
        self.get_delivery(caller, id).await?;
        Ok(self.store().redeliver(caller, id).await?)
    }

    /// Loads a subscription the caller may see: any for admin and system, its own for
    /// a generator (another's is `NotFound`), none for an agent.
    async fn visible_subscription(
        &self,
        caller: &Actor,
        id: SubscriptionId,
    ) -> Result<Subscription> {
        access::require_admin_or_generator(caller)?;
        let subscription = self.store().get_subscription(id).await?;
        if sees(caller, subscription.owner) {
            Ok(subscription)
        } else {
            Err(Error::not_found("subscription", id))
        }
    }

    fn keyring(&self) -> Result<&Keyring> {
        self.settings().webhooks.keyring.as_ref().ok_or_else(|| {
            Error::invalid(
                "webhooks_not_configured",
                "webhooks are not configured on this server: it has no key to seal secrets with ([webhooks] keys)",
            )
        })
    }

    pub(crate) fn check_url(&self, url: &str) -> Result<()> {
        let parsed = webhook::validate_url(url)
            .map_err(|err| Error::invalid("invalid_url", err.to_string()))?;
        self.settings()
            .webhooks
            .allowlist
            .check(&parsed)
            .map_err(|err| match err {
                UrlError::NotAllowed(_) => Error::invalid("url_not_allowed", err.to_string()),
                other => Error::invalid("invalid_url", other.to_string()),
            })
    }
}

/// The owner of what `caller` creates: the admin for admin and system, the generator
/// itself; agents are `Forbidden`.
fn owner_of(caller: &Actor) -> Result<SubscriptionOwner> {
    match *caller {
        Actor::Admin | Actor::System => Ok(SubscriptionOwner::Admin),
        Actor::Generator(me) => Ok(SubscriptionOwner::Generator(me)),
        Actor::Agent(_) => Err(Error::forbidden("the agent role may not do this")),
    }
}

/// Whether `caller` sees a subscription of `owner`.
fn sees(caller: &Actor, owner: SubscriptionOwner) -> bool {
    match (caller, owner) {
        (Actor::Admin | Actor::System, _) => true,
        (Actor::Generator(me), SubscriptionOwner::Generator(owner)) => *me == owner,
        _ => false,
    }
}

/// At least one type, without `webhook.test`; sorted, each once.
fn check_event_types(mut types: Vec<WebhookEventType>) -> Result<Vec<WebhookEventType>> {
    if types.is_empty() {
        return Err(Error::invalid(
            "invalid_event_types",
            "name at least one event type",
        ));
    }
    if types.contains(&WebhookEventType::WebhookTest) {
        return Err(Error::invalid(
            "invalid_event_types",
            "webhook.test is sent only on request (POST .../test); it cannot be subscribed to",
        ));
    }
    types.sort_unstable();
    types.dedup();
    Ok(types)
}

fn check_selector(selector: Option<&LabelSelector>) -> Result<()> {
    selector
        .map_or(Ok(()), LabelSelector::validate)
        .map_err(|err| Error::invalid("invalid_selector", err.to_string()))
}

fn check_description(description: Option<String>) -> Result<Option<String>> {
    let description = description_or_none(description);
    if let Some(text) = &description {
        validate_description(text)
            .map_err(|err| Error::invalid("invalid_description", err.to_string()))?;
    }
    Ok(description)
}
