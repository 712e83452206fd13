//! Webhooks: subscriptions, the events each change writes, and fan-out.

use serde_json::json;

use super::fixtures::{ADMIN, config_map_yaml, labels, mk_generator, mk_object, mk_stack};
use super::support::{all_audit, expect_not_found};
use crate::id::{StackId, SubscriptionId};
use crate::model::{
    Actor, AuditAction, Delivery, DeliveryStatus, NewDeploymentObject, NewStack, NewSubscription,
    ResourceKind, Subscription, SubscriptionOwner, SubscriptionUpdate, WebhookEvent,
    WebhookEventType,
};
use crate::page::{Order, PageRequest};
use crate::selector::LabelSelector;
use crate::store::{DeliveryFilter, Store, SubscriptionFilter};

use super::support::walk;

/// What `create_subscription` needs for an admin's subscription to `types`.
pub(super) fn new_subscription(types: &[WebhookEventType]) -> NewSubscription {
    NewSubscription {
        owner: SubscriptionOwner::Admin,
        url: "http://127.0.0.1:9/hook".into(),
        description: None,
        event_types: types.to_vec(),
        stack_id: None,
        labels: None,
        sealed_secret: b"sealed secret".to_vec(),
    }
}

/// Stores `new`.
pub(super) async fn mk_subscription(store: &dyn Store, new: NewSubscription) -> Subscription {
    store
        .create_subscription(&ADMIN, new)
        .await
        .expect("create fixture subscription")
}

/// An admin's subscription to every event type, without filters.
pub(super) async fn catch_all(store: &dyn Store) -> Subscription {
    mk_subscription(store, new_subscription(&WebhookEventType::ALL)).await
}

/// Fans out until the outbox is empty; answers how many events moved.
pub(super) async fn fan_out_all(store: &dyn Store) -> usize {
    let mut moved = 0;
    loop {
        match store.fan_out_webhook_events(100).await.expect("fan out") {
            0 => return moved,
            n => moved += n,
        }
    }
}

/// Every delivery of a subscription, in id order.
pub(super) async fn deliveries_of(store: &dyn Store, id: SubscriptionId) -> Vec<Delivery> {
    let filter = DeliveryFilter {
        subscription_id: Some(id),
        ..Default::default()
    };
    walk(7, Order::Ascending, async |page: PageRequest| {
        store.list_deliveries(&filter, &page).await
    })
    .await
}

/// Fans out, then answers the events of a subscription's deliveries not seen before
/// (those beyond the first `seen`).
pub(super) async fn new_events(
    store: &dyn Store,
    id: SubscriptionId,
    seen: &mut usize,
) -> Vec<WebhookEvent> {
    fan_out_all(store).await;
    let all = deliveries_of(store, id).await;
    let fresh = all[*seen..].iter().map(|d| d.event.clone()).collect();
    *seen = all.len();
    fresh
}

/// The types and stacks of events, for comparing what fan-out delivered.
fn kinds(events: &[WebhookEvent]) -> Vec<(WebhookEventType, Option<StackId>)> {
    let mut kinds: Vec<_> = events.iter().map(|e| (e.event_type, e.stack_id)).collect();
    kinds.sort();
    kinds
}

cases!(
    /// Subscriptions are created enabled, read, listed by owner, changed field by field
    /// and deleted with their deliveries; each change writes its audit record.
    pub async fn webhooks_subscriptions_crud_is_audited(store: &dyn Store) {
        let generator = mk_generator(store, "g").await;
        let stack = mk_stack(store, "s").await;
        let mut new = new_subscription(&[WebhookEventType::DeploymentObjectCreated]);
        new.description = Some("audit sink".into());
        new.labels = Some(LabelSelector {
            match_labels: [("tier".to_owned(), "prod".to_owned())].into(),
            ..Default::default()
        });
        let admin = mk_subscription(store, new.clone()).await;
        assert!(admin.enabled);
        assert_eq!(admin.url, new.url);
        assert_eq!(admin.description, new.description);
        assert_eq!(admin.event_types, new.event_types);
        assert_eq!(admin.labels, new.labels);
        assert_eq!(admin.sealed_secret, new.sealed_secret);
        assert_eq!(admin.created_at, admin.updated_at);
        assert!(
            !format!("{admin:?}").contains("sealed secret"),
            "Debug hides the secret"
        );
        assert_eq!(store.get_subscription(admin.id).await.unwrap(), admin);

        let mut owned = new_subscription(&[WebhookEventType::StackDeleted]);
        owned.owner = SubscriptionOwner::Generator(generator.id);
        let owned = mk_subscription(store, owned).await;
        let mut missing = new_subscription(&[WebhookEventType::StackDeleted]);
        missing.owner = SubscriptionOwner::Generator(crate::id::GeneratorId::new());
        expect_not_found(
            store.create_subscription(&ADMIN, missing).await,
            "generator",
        );

        let list = async |owner| {
            let filter = SubscriptionFilter { owner };
            walk(1, Order::Ascending, async |page: PageRequest| {
                store.list_subscriptions(&filter, &page).await
            })
            .await
        };
        assert_eq!(list(None).await, vec![admin.clone(), owned.clone()]);
        assert_eq!(
            list(Some(SubscriptionOwner::Admin)).await,
            vec![admin.clone()]
        );
        let by_generator = Some(SubscriptionOwner::Generator(generator.id));
        assert_eq!(list(by_generator).await, vec![owned.clone()]);

        let update = SubscriptionUpdate {
            url: Some("https://example.com/hook".into()),
            description: Some(None),
            event_types: Some(vec![WebhookEventType::AgentFailed]),
            stack_id: Some(Some(stack.id)),
            labels: Some(None),
            enabled: Some(false),
            sealed_secret: Some(b"rotated".to_vec()),
        };
        let updated = store
            .update_subscription(&ADMIN, admin.id, update)
            .await
            .expect("update");
        assert_eq!(updated.url, "https://example.com/hook");
        assert_eq!(updated.description, None);
        assert_eq!(updated.event_types, vec![WebhookEventType::AgentFailed]);
        assert_eq!(updated.stack_id, Some(stack.id));
        assert_eq!(updated.labels, None);
        assert!(!updated.enabled);
        assert_eq!(updated.sealed_secret, b"rotated");
        assert_eq!(updated.created_at, admin.created_at);
        assert!(updated.updated_at >= admin.updated_at);
        assert_eq!(store.get_subscription(admin.id).await.unwrap(), updated);
        let unchanged = store
            .update_subscription(&ADMIN, owned.id, SubscriptionUpdate::default())
            .await
            .expect("an empty update");
        assert_eq!(unchanged.event_types, owned.event_types);

        let test = store.queue_test_delivery(&ADMIN, owned.id).await.unwrap();
        store.delete_subscription(&ADMIN, owned.id).await.unwrap();
        expect_not_found(store.get_subscription(owned.id).await, "subscription");
        expect_not_found(store.get_delivery(test.id).await, "delivery");
        expect_not_found(
            store.delete_subscription(&ADMIN, owned.id).await,
            "subscription",
        );
        let unknown = SubscriptionId::new();
        expect_not_found(
            store
                .update_subscription(&ADMIN, unknown, SubscriptionUpdate::default())
                .await,
            "subscription",
        );
        expect_not_found(
            store.queue_test_delivery(&ADMIN, unknown).await,
            "subscription",
        );

        let audit: Vec<_> = all_audit(store)
            .await
            .into_iter()
            .filter(|r| {
                matches!(
                    r.resource_kind,
                    ResourceKind::Subscription | ResourceKind::Delivery
                )
            })
            .map(|r| (r.action, r.resource_kind, r.resource_id))
            .collect();
        use AuditAction::{Create, Delete, Update};
        use ResourceKind::{Delivery, Subscription};
        assert_eq!(
            audit,
            vec![
                (Create, Subscription, admin.id.0),
                (Create, Subscription, owned.id.0),
                (Update, Subscription, admin.id.0),
                (Update, Subscription, owned.id.0),
                (Create, Delivery, test.id.0),
                (Delete, Subscription, owned.id.0),
            ]
        );
    }

    /// Every append writes exactly one `deployment_object.created`, with the object's
    /// stack, time and data; appends committed together in a batch each write theirs,
    /// and an append the store refuses (missing or deleted stack) writes none.
    pub async fn webhooks_every_append_writes_its_created_event(store: &dyn Store) {
        let hook = catch_all(store).await;
        let stack = mk_stack(store, "s").await;
        let mut seen = 0;
        assert!(
            new_events(store, hook.id, &mut seen).await.is_empty(),
            "creating a stack sends nothing"
        );

        let object = mk_object(store, stack.id, "1").await;
        let events = new_events(store, hook.id, &mut seen).await;
        assert_eq!(events.len(), 1, "{events:?}");
        let event = &events[0];
        assert_eq!(event.event_type, WebhookEventType::DeploymentObjectCreated);
        assert_eq!(event.stack_id, Some(stack.id));
        assert_eq!(event.agent_id, None);
        assert_eq!(event.occurred_at, object.created_at);
        assert_eq!(
            event.data,
            json!({
                "deployment_object_id": object.id,
                "sequence": object.sequence,
                "yaml_checksum": object.yaml_checksum,
                "is_deletion_marker": false,
            })
        );

        // Concurrent appends, committed in batches where the store batches.
        let other = mk_stack(store, "other").await;
        let appends = (0..12).map(|i| {
            let stack = if i % 2 == 0 { stack.id } else { other.id };
            mk_object(store, stack, if i % 3 == 0 { "a" } else { "b" })
        });
        let objects = futures::future::join_all(appends).await;
        let events = new_events(store, hook.id, &mut seen).await;
        let mut got: Vec<_> = events
            .iter()
            .map(|e| (e.data["deployment_object_id"].clone(), e.stack_id))
            .collect();
        let mut want: Vec<_> = objects
            .iter()
            .map(|o| (json!(o.id), Some(o.stack_id)))
            .collect();
        got.sort_by_key(|(id, _)| id.to_string());
        want.sort_by_key(|(id, _)| id.to_string());
        assert_eq!(got, want, "one event per append, none twice");

        // Refused appends, alone and alongside accepted ones.
        let missing = NewDeploymentObject::from_yaml(StackId::new(), config_map_yaml("x", "1"));
        let missing = missing.expect("valid YAML");
        let (refused, accepted) = tokio::join!(
            store.append_deployment_object(&ADMIN, missing),
            mk_object(store, stack.id, "c"),
        );
        expect_not_found(refused, "stack");
        let events = new_events(store, hook.id, &mut seen).await;
        assert_eq!(
            kinds(&events),
            vec![(WebhookEventType::DeploymentObjectCreated, Some(stack.id))]
        );
        assert_eq!(events[0].data["deployment_object_id"], json!(accepted.id));
    }

    /// Fan-out gives each event to every enabled subscription that wants it: by event
    /// type, stack, label selector on the stack's labels, and only a generator's own
    /// stacks to a generator's subscription; events before a subscription existed or
    /// while it was disabled are not delivered to it later.
    pub async fn webhooks_fan_out_honours_every_filter(store: &dyn Store) {
        use WebhookEventType::DeploymentObjectCreated as Created;
        let generator = mk_generator(store, "g").await;
        let prod = store
            .create_stack(
                &ADMIN,
                NewStack {
                    name: "prod".into(),
                    labels: labels(&[("tier", "prod")]),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let owned = store
            .create_stack(
                &Actor::Generator(generator.id),
                NewStack {
                    name: "owned".into(),
                    generator_id: Some(generator.id),
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let early = mk_object(store, prod.id, "0").await;
        assert_eq!(
            fan_out_all(store).await,
            1,
            "an event no one wants leaves the outbox"
        );
        let all = catch_all(store).await;
        let other_type =
            mk_subscription(store, new_subscription(&[WebhookEventType::AgentFailed])).await;
        let mut only_prod_stack = new_subscription(&[Created]);
        only_prod_stack.stack_id = Some(prod.id);
        let only_prod_stack = mk_subscription(store, only_prod_stack).await;
        let mut by_label = new_subscription(&[Created]);
        by_label.labels = Some(LabelSelector {
            match_labels: [("tier".to_owned(), "prod".to_owned())].into(),
            ..Default::default()
        });
        let by_label = mk_subscription(store, by_label).await;
        let mut generators = new_subscription(&[Created]);
        generators.owner = SubscriptionOwner::Generator(generator.id);
        let generators = mk_subscription(store, generators).await;
        let disabled = mk_subscription(store, new_subscription(&[Created])).await;
        let off = SubscriptionUpdate {
            enabled: Some(false),
            ..Default::default()
        };
        store
            .update_subscription(&ADMIN, disabled.id, off)
            .await
            .unwrap();

        mk_object(store, prod.id, "1").await;
        mk_object(store, owned.id, "1").await;
        let moved = fan_out_all(store).await;
        assert_eq!(moved, 2);
        assert_eq!(store.fan_out_webhook_events(10).await.unwrap(), 0);

        let stacks_of = async |id| {
            let events: Vec<_> = deliveries_of(store, id)
                .await
                .into_iter()
                .map(|d| d.event)
                .collect();
            kinds(&events)
                .into_iter()
                .map(|(_, stack)| stack.expect("about a stack"))
                .collect::<Vec<_>>()
        };
        let mut both = vec![prod.id, owned.id];
        both.sort();
        let early_events = deliveries_of(store, all.id).await;
        assert!(
            early_events
                .iter()
                .all(|d| d.event.data["deployment_object_id"] != json!(early.id)),
            "an event fanned out before the subscription existed is not delivered to it"
        );
        assert_eq!(stacks_of(all.id).await, both);
        assert_eq!(stacks_of(other_type.id).await, Vec::<StackId>::new());
        assert_eq!(stacks_of(only_prod_stack.id).await, vec![prod.id]);
        assert_eq!(stacks_of(by_label.id).await, vec![prod.id]);
        assert_eq!(stacks_of(generators.id).await, vec![owned.id]);
        assert_eq!(stacks_of(disabled.id).await, Vec::<StackId>::new());

        // Each delivery starts pending, due at once, untried.
        for delivery in deliveries_of(store, all.id).await {
            assert_eq!(delivery.status, DeliveryStatus::Pending);
            assert_eq!(delivery.attempts, 0);
            assert_eq!(delivery.subscription_id, all.id);
            assert!(delivery.next_attempt_at <= delivery.created_at);
            assert_eq!(delivery.last_attempt_at, None);
            assert_eq!(delivery.delivered_at, None);
            assert_eq!(store.get_delivery(delivery.id).await.unwrap(), delivery);
        }
    }
    /// Fan-outs running at once (replicas on one database) move each event once: no
    /// subscription gets an event twice, none is lost.
    pub async fn webhooks_concurrent_fan_outs_move_each_event_once(store: &dyn Store) {
        let hooks = [catch_all(store).await.id, catch_all(store).await.id];
        let stack = mk_stack(store, "s").await;
        let mut objects = Vec::new();
        for i in 0..20 {
            objects.push(mk_object(store, stack.id, &i.to_string()).await.id);
        }
        let fan_outs = (0..6).map(|_| async {
            let mut moved = 0;
            loop {
                match store.fan_out_webhook_events(3).await.expect("fan out") {
                    0 => return moved,
                    n => moved += n,
                }
            }
        });
        let moved: usize = futures::future::join_all(fan_outs).await.into_iter().sum();
        assert_eq!(
            moved,
            objects.len(),
            "each event moved by exactly one fan-out"
        );
        let mut want: Vec<String> = objects.iter().map(|id| json!(id).to_string()).collect();
        want.sort();
        for hook in hooks {
            let mut got: Vec<String> = deliveries_of(store, hook)
                .await
                .iter()
                .map(|d| d.event.data["deployment_object_id"].to_string())
                .collect();
            got.sort();
            assert_eq!(got, want);
        }
    }
    /// An event that happened before a subscription existed is not delivered to it,
    /// even when fan-out runs after the subscription was made.
    pub async fn webhooks_a_new_subscription_gets_only_later_events(store: &dyn Store) {
        let stack = mk_stack(store, "s").await;
        mk_object(store, stack.id, "before").await;
        // Timestamps have microsecond precision: keep the three apart.
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        let hook = catch_all(store).await.id;
        tokio::time::sleep(std::time::Duration::from_millis(2)).await;
        let after = mk_object(store, stack.id, "after").await;
        fan_out_all(store).await;
        let got: Vec<_> = deliveries_of(store, hook)
            .await
            .iter()
            .map(|d| d.event.data["deployment_object_id"].clone())
            .collect();
        assert_eq!(got, vec![json!(after.id)]);
    }
);
