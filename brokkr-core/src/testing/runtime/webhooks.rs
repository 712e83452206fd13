//! Webhooks: who may manage which subscriptions and deliveries, input checked before
//! anything is stored, secrets shown once and sealed at rest, and the dispatcher
//! signing, retrying and dead-lettering through a scripted [`WebhookSender`].
//!
//! The cases build a second control plane over the case's store with webhook settings
//! (a keyring, an allowlist, fast retries) and, for the dispatcher, a sender.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;

use super::callers::{Answer, World, assert_no_mismatches, matrix};
use super::fast_settings;
use crate::model::{Actor, DeliveryStatus, WebhookEventType};
use crate::runtime::{
    ControlPlane, Error, SendOutcome, Settings, SubscriptionChange, SubscriptionSpec,
    WebhookRequest, WebhookSender, WebhookSettings,
};
use crate::webhook::{self, HostAllowlist, Keyring, signature};
use crate::{DeliveryId, PageRequest, SubscriptionId};

const OK: Answer = Answer::Ok;
const NO: Answer = Answer::Forbidden;
const NF: Answer = Answer::NotFound;

/// The base64 of bytes 0..32.
const KEY: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

fn keyring() -> Keyring {
    Keyring::parse([KEY]).expect("a valid test key")
}

fn settings() -> Settings {
    Settings {
        webhooks: WebhookSettings {
            keyring: Some(keyring()),
            allowlist: HostAllowlist::parse(["hooks.example.com"]).expect("valid entries"),
            timeout: Duration::from_secs(1),
            max_attempts: 2,
            backoff_base: Duration::from_millis(10),
            backoff_max: Duration::from_millis(20),
            lease: Duration::from_secs(5),
            poll: Duration::from_millis(20),
            ..WebhookSettings::default()
        },
        ..fast_settings()
    }
}

/// A control plane over `cp`'s store with webhook [`settings`], and `sender` if given.
fn with_webhooks(cp: &ControlPlane, sender: Option<Arc<dyn WebhookSender>>) -> ControlPlane {
    let builder = ControlPlane::builder(Arc::clone(cp.store())).settings(settings());
    match sender {
        Some(sender) => builder.webhook_sender(sender).build(),
        None => builder.build(),
    }
}

fn spec(url: &str) -> SubscriptionSpec {
    SubscriptionSpec {
        url: url.into(),
        event_types: vec![WebhookEventType::StackDeleted],
        ..SubscriptionSpec::default()
    }
}

/// A subscription made by `owner` (the admin's for admin and system).
async fn mk_subscription(cp: &ControlPlane, owner: &Actor) -> SubscriptionId {
    cp.create_subscription(owner, spec("https://hooks.example.com/a"))
        .await
        .expect("create a subscription")
        .subscription
        .id
}

/// Answers from a script, then 200; keeps every request.
#[derive(Default)]
struct ScriptedSender {
    script: Mutex<VecDeque<SendOutcome>>,
    sent: Mutex<Vec<WebhookRequest>>,
}

#[async_trait]
impl WebhookSender for ScriptedSender {
    async fn send(&self, request: &WebhookRequest) -> SendOutcome {
        self.sent.lock().unwrap().push(request.clone());
        let next = self.script.lock().unwrap().pop_front();
        next.unwrap_or(SendOutcome::Delivered { status: 200 })
    }
}

impl ScriptedSender {
    fn header<'a>(request: &'a WebhookRequest, name: &str) -> &'a str {
        request
            .headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("no {name} header"))
    }
}

/// Waits until delivery `id` has `status`.
async fn until_status(
    cp: &ControlPlane,
    id: DeliveryId,
    status: DeliveryStatus,
) -> crate::Delivery {
    for _ in 0..250 {
        let delivery = cp
            .get_delivery(&Actor::Admin, id)
            .await
            .expect("the delivery");
        if delivery.status == status {
            return delivery;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("delivery {id} never became {status:?}");
}

#[track_caller]
fn assert_invalid<T: std::fmt::Debug>(result: crate::runtime::Result<T>, code: &str) {
    match result {
        Err(Error::Invalid { code: got, .. }) if got == code => {}
        other => panic!("expected Invalid({code}), got {other:?}"),
    }
}

crate::runtime_cases! {
    async fn webhook_operations_answer_every_caller_as_specified(cp: ControlPlane) {
        let w = World::new(&cp).await;
        let cp = with_webhooks(&cp, None);
        let owned = mk_subscription(&cp, &Actor::Generator(w.generator)).await;
        let delivery = cp.test_subscription(&Actor::Admin, owned).await.expect("a test delivery").id;
        let page = &PageRequest::first(10);
        let anyone_but_agents = [OK, OK, NO, NO, OK, OK];
        let row_owner = [OK, OK, NO, NO, OK, NF];
        let mut bad = Vec::new();
        bad.extend(matrix("create_subscription", anyone_but_agents, |who| {
            let cp = cp.clone();
            async move { cp.create_subscription(&w.actor(who, w.agent), spec("https://hooks.example.com/m")).await }
        }).await);
        bad.extend(matrix("create_subscription for the generator's stack", [OK, OK, NO, NO, OK, NF], |who| {
            let cp = cp.clone();
            let spec = SubscriptionSpec { stack_id: Some(w.stack), ..spec("https://hooks.example.com/s") };
            async move { cp.create_subscription(&w.actor(who, w.agent), spec).await }
        }).await);
        bad.extend(matrix("list_subscriptions", anyone_but_agents, |who| {
            let cp = cp.clone();
            async move { cp.list_subscriptions(&w.actor(who, w.agent), page).await }
        }).await);
        bad.extend(matrix("get_subscription", row_owner, |who| {
            let cp = cp.clone();
            async move { cp.get_subscription(&w.actor(who, w.agent), owned).await }
        }).await);
        bad.extend(matrix("update_subscription", row_owner, |who| {
            let cp = cp.clone();
            let change = SubscriptionChange { description: Some(Some("changed".into())), ..SubscriptionChange::default() };
            async move { cp.update_subscription(&w.actor(who, w.agent), owned, change).await }
        }).await);
        bad.extend(matrix("rotate_subscription_secret", row_owner, |who| {
            let cp = cp.clone();
            async move { cp.rotate_subscription_secret(&w.actor(who, w.agent), owned).await }
        }).await);
        bad.extend(matrix("test_subscription", row_owner, |who| {
            let cp = cp.clone();
            async move { cp.test_subscription(&w.actor(who, w.agent), owned).await }
        }).await);
        bad.extend(matrix("list_deliveries", row_owner, |who| {
            let cp = cp.clone();
            async move { cp.list_deliveries(&w.actor(who, w.agent), owned, None, page).await }
        }).await);
        bad.extend(matrix("get_delivery", row_owner, |who| {
            let cp = cp.clone();
            async move { cp.get_delivery(&w.actor(who, w.agent), delivery).await }
        }).await);
        bad.extend(matrix("delete_subscription", row_owner, |who| {
            let cp = cp.clone();
            async move {
                let fresh = mk_subscription(&cp, &Actor::Generator(w.generator)).await;
                cp.delete_subscription(&w.actor(who, w.agent), fresh).await
            }
        }).await);
        // A generator sees only its own subscriptions in a listing; admin sees all.
        let theirs = cp.list_subscriptions(&Actor::Generator(w.other_generator), page).await.unwrap();
        assert!(theirs.items.iter().all(|s| s.id != owned), "another generator lists it");
        assert_no_mismatches(bad);
    }

    async fn webhook_input_is_checked_before_anything_is_stored(cp: ControlPlane) {
        let unconfigured = cp.clone();
        let cp = with_webhooks(&cp, None);
        let admin = &Actor::Admin;
        assert_invalid(cp.create_subscription(admin, spec("ftp://hooks.example.com/")).await, "invalid_url");
        assert_invalid(cp.create_subscription(admin, spec("https://u:p@hooks.example.com/")).await, "invalid_url");
        assert_invalid(cp.create_subscription(admin, spec("https://other.example.com/")).await, "url_not_allowed");
        let none = SubscriptionSpec { event_types: vec![], ..spec("https://hooks.example.com/") };
        assert_invalid(cp.create_subscription(admin, none).await, "invalid_event_types");
        let test = SubscriptionSpec { event_types: vec![WebhookEventType::WebhookTest], ..spec("https://hooks.example.com/") };
        assert_invalid(cp.create_subscription(admin, test).await, "invalid_event_types");
        let selector = serde_json::from_value(serde_json::json!({"matchLabels": {"bad key!": "x"}})).unwrap();
        let labels = SubscriptionSpec { labels: Some(selector), ..spec("https://hooks.example.com/") };
        assert_invalid(cp.create_subscription(admin, labels).await, "invalid_selector");
        assert_invalid(
            unconfigured.create_subscription(admin, spec("https://hooks.example.com/")).await,
            "webhooks_not_configured",
        );
        let page = &PageRequest::first(10);
        assert!(cp.list_subscriptions(admin, page).await.unwrap().items.is_empty(), "nothing stored");
        // An update is checked the same way, and a refused one changes nothing.
        let id = mk_subscription(&cp, admin).await;
        let moved = SubscriptionChange { url: Some("https://other.example.com/".into()), ..SubscriptionChange::default() };
        assert_invalid(cp.update_subscription(admin, id, moved).await, "url_not_allowed");
        let kept = cp.get_subscription(admin, id).await.unwrap();
        assert_eq!(kept.url, "https://hooks.example.com/a");
        // Event types are kept sorted and once each.
        let twice = SubscriptionChange {
            event_types: Some(vec![WebhookEventType::StackDeleted, WebhookEventType::AgentFailed, WebhookEventType::StackDeleted]),
            ..SubscriptionChange::default()
        };
        let changed = cp.update_subscription(admin, id, twice).await.unwrap();
        assert_eq!(changed.event_types, vec![WebhookEventType::AgentFailed, WebhookEventType::StackDeleted]);
    }

    async fn webhook_secrets_are_shown_once_and_sealed_at_rest(cp: ControlPlane) {
        let cp = with_webhooks(&cp, None);
        let created = cp.create_subscription(&Actor::Admin, spec("https://hooks.example.com/a")).await.unwrap();
        assert!(created.secret.starts_with(webhook::secret::SECRET_PREFIX));
        assert!(!format!("{created:?}").contains(&created.secret), "Debug shows the secret");
        let stored = cp.store().get_subscription(created.subscription.id).await.unwrap();
        assert!(
            !stored.sealed_secret.windows(created.secret.len()).any(|w| w == created.secret.as_bytes()),
            "the secret is stored in clear"
        );
        assert_eq!(keyring().open(&stored.sealed_secret).unwrap(), created.secret.as_bytes());
        let rotated = cp.rotate_subscription_secret(&Actor::Admin, created.subscription.id).await.unwrap();
        assert_ne!(rotated.secret, created.secret);
        let stored = cp.store().get_subscription(created.subscription.id).await.unwrap();
        assert_eq!(keyring().open(&stored.sealed_secret).unwrap(), rotated.secret.as_bytes());
    }

    async fn the_dispatcher_signs_retries_and_dead_letters(cp: ControlPlane) {
        let sender = Arc::new(ScriptedSender::default());
        sender.script.lock().unwrap().extend([
            SendOutcome::failed(Some(500), "answered 500"),
            SendOutcome::failed(None, "no answer within 1000 ms"),
        ]);
        let cp = with_webhooks(&cp, Some(sender.clone()));
        assert!(cp.sends_webhooks());
        let background = cp.start();
        let created = cp.create_subscription(&Actor::Admin, spec("https://hooks.example.com/a")).await.unwrap();
        let id = cp.test_subscription(&Actor::Admin, created.subscription.id).await.unwrap().id;

        // Two failed attempts (max_attempts = 2): dead, the last failure kept.
        let dead = until_status(&cp, id, DeliveryStatus::Dead).await;
        assert_eq!(dead.attempts, 2);
        assert_eq!(dead.last_status, None);
        assert_eq!(dead.last_error.as_deref(), Some("no answer within 1000 ms"));
        let counts = cp.webhook_counts();
        assert_eq!((counts.delivered, counts.failed, counts.dead), (0, 1, 1));

        // A redelivery goes out with the same id and is delivered.
        cp.redeliver(&Actor::Admin, id).await.unwrap();
        let delivered = until_status(&cp, id, DeliveryStatus::Delivered).await;
        assert_eq!((delivered.attempts, delivered.last_status), (1, Some(200)));
        assert_eq!(cp.webhook_counts().delivered, 1);
        background.shutdown().await;

        let sent = sender.sent.lock().unwrap().clone();
        assert_eq!(sent.len(), 3);
        for request in &sent {
            assert_eq!(request.url, "https://hooks.example.com/a");
            assert_eq!(ScriptedSender::header(request, webhook::DELIVERY_HEADER), id.to_string());
            assert_eq!(ScriptedSender::header(request, webhook::EVENT_HEADER), "webhook.test");
            assert_eq!(ScriptedSender::header(request, "Content-Type"), "application/json");
            let timestamp: i64 = ScriptedSender::header(request, webhook::TIMESTAMP_HEADER).parse().unwrap();
            signature::verify(
                created.secret.as_bytes(),
                timestamp,
                &request.body,
                ScriptedSender::header(request, webhook::SIGNATURE_HEADER),
                chrono::Utc::now().timestamp(),
                signature::DEFAULT_TOLERANCE,
            )
            .expect("every attempt is signed with the subscription's secret");
        }
        let body: serde_json::Value = serde_json::from_slice(&sent[0].body).unwrap();
        assert_eq!(body["type"], "webhook.test");
        assert_eq!(body["data"]["subscription_id"], created.subscription.id.to_string());
    }
}
