//! Webhook deliveries: claims under a lease, attempts, redelivery, test deliveries,
//! counts and pruning.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, SubsecRound, Utc};
use serde_json::json;

use super::fixtures::{ADMIN, mk_object, mk_stack};
use super::support::{all_audit, expect_not_found};
use super::webhooks::{catch_all, deliveries_of, fan_out_all, mk_subscription, new_subscription};
use crate::id::DeliveryId;
use crate::model::{
    AuditAction, ClaimedDelivery, Delivery, DeliveryOutcome, DeliveryStatus, ResourceKind,
    WebhookEventType, WebhookQueueStats,
};
use crate::store::Store;

/// A time at the precision every store keeps.
fn at(t0: DateTime<Utc>, secs: i64) -> DateTime<Utc> {
    (t0 + Duration::seconds(secs)).trunc_subsecs(6)
}

/// Claims as `claimant` at `now` for 30 seconds.
async fn claim(
    store: &dyn Store,
    claimant: &str,
    now: DateTime<Utc>,
    limit: usize,
) -> Vec<ClaimedDelivery> {
    store
        .claim_webhook_deliveries(claimant, now, now + Duration::seconds(30), limit)
        .await
        .expect("claim")
}

/// The ids of claimed deliveries.
fn ids(claimed: &[ClaimedDelivery]) -> Vec<DeliveryId> {
    claimed.iter().map(|c| c.delivery.id).collect()
}

async fn finish(
    store: &dyn Store,
    claimant: &str,
    delivery: &Delivery,
    at: DateTime<Utc>,
    outcome: DeliveryOutcome,
) {
    store
        .finish_webhook_delivery(claimant, delivery.id, at, outcome)
        .await
        .expect("finish");
}

fn delivered() -> DeliveryOutcome {
    DeliveryOutcome::Delivered { status: 204 }
}

cases!(
    /// A claim leases a subscription and hands out only its head delivery; no other
    /// claim gets that subscription while the lease holds; after the lease expires the
    /// same delivery (same id) is handed out again; a late claimant's attempt still
    /// counts; finishing frees the finisher's lease (also for a delivery another
    /// claimant finished) and the next delivery follows, in fan-out order.
    pub async fn webhooks_claims_lease_the_head_delivery_of_each_subscription(store: &dyn Store) {
        let hook = catch_all(store).await;
        let stack = mk_stack(store, "s").await;
        let objects = [
            mk_object(store, stack.id, "1").await,
            mk_object(store, stack.id, "2").await,
            mk_object(store, stack.id, "3").await,
        ];
        assert_eq!(fan_out_all(store).await, 3);
        let t0 = Utc::now().trunc_subsecs(6);

        let first = claim(store, "a", t0, 10).await;
        assert_eq!(first.len(), 1, "one delivery per subscription in flight");
        assert_eq!(
            first[0].subscription,
            store.get_subscription(hook.id).await.unwrap()
        );
        let head = first[0].delivery.clone();
        assert_eq!(
            head.event.data["deployment_object_id"],
            json!(objects[0].id)
        );
        assert!(
            claim(store, "b", at(t0, 1), 10).await.is_empty(),
            "leased to a"
        );

        let again = claim(store, "b", at(t0, 31), 10).await;
        assert_eq!(
            ids(&again),
            vec![head.id],
            "an expired lease hands out the same delivery"
        );
        // a, whose lease expired, still reports its attempt: it counts.
        finish(
            store,
            "a",
            &head,
            at(t0, 32),
            DeliveryOutcome::Delivered { status: 200 },
        )
        .await;
        let done = store.get_delivery(head.id).await.unwrap();
        assert_eq!(done.status, DeliveryStatus::Delivered);
        assert_eq!(done.attempts, 1);
        assert_eq!(done.last_status, Some(200));
        assert_eq!(done.last_attempt_at, Some(at(t0, 32)));
        assert_eq!(done.delivered_at, Some(at(t0, 32)));
        assert_eq!(done.event, head.event);
        assert!(
            claim(store, "c", at(t0, 33), 10).await.is_empty(),
            "still leased to b"
        );

        // b's report of the same delivery changes nothing but frees b's lease.
        finish(store, "b", &head, at(t0, 33), delivered()).await;
        assert_eq!(store.get_delivery(head.id).await.unwrap(), done);

        let next = claim(store, "a", at(t0, 33), 10).await;
        assert_eq!(next.len(), 1);
        assert_eq!(
            next[0].delivery.event.data["deployment_object_id"],
            json!(objects[1].id)
        );
        finish(store, "a", &next[0].delivery, at(t0, 34), delivered()).await;
        let last = claim(store, "a", at(t0, 34), 10).await;
        assert_eq!(
            last[0].delivery.event.data["deployment_object_id"],
            json!(objects[2].id)
        );
        finish(store, "a", &last[0].delivery, at(t0, 35), delivered()).await;
        assert!(
            claim(store, "a", at(t0, 36), 10).await.is_empty(),
            "nothing left"
        );

        // Several subscriptions: one head each, up to the limit.
        let other = catch_all(store).await;
        let off = crate::model::SubscriptionUpdate {
            enabled: Some(false),
            ..Default::default()
        };
        mk_object(store, stack.id, "4").await;
        fan_out_all(store).await;
        let one = claim(store, "c", at(t0, 40), 1).await;
        assert_eq!(one.len(), 1);
        let rest = claim(store, "d", at(t0, 40), 10).await;
        assert_eq!(rest.len(), 1);
        let mut subscriptions = vec![one[0].subscription.id, rest[0].subscription.id];
        subscriptions.sort();
        let mut want = vec![hook.id, other.id];
        want.sort();
        assert_eq!(subscriptions, want);

        // A disabled subscription's deliveries wait.
        store
            .update_subscription(&ADMIN, other.id, off)
            .await
            .unwrap();
        assert!(
            claim(store, "e", at(t0, 100), 10)
                .await
                .iter()
                .all(|c| c.subscription.id != other.id)
        );
    }

    /// A failed attempt with a retry time keeps the delivery pending until then; one
    /// without makes it dead; attempts and the last answer are recorded; a report for a
    /// delivery no longer pending changes nothing; a dead delivery does not hold up
    /// the next.
    pub async fn webhooks_finish_retries_then_dead_letters(store: &dyn Store) {
        let hook = catch_all(store).await;
        let stack = mk_stack(store, "s").await;
        mk_object(store, stack.id, "1").await;
        fan_out_all(store).await;
        let t0 = Utc::now().trunc_subsecs(6);
        let delivery = claim(store, "a", t0, 10).await.remove(0).delivery;
        let retry = DeliveryOutcome::Failed {
            status: Some(500),
            error: "answered 500".into(),
            retry_at: Some(at(t0, 10)),
        };
        finish(store, "a", &delivery, at(t0, 1), retry).await;
        let waiting = store.get_delivery(delivery.id).await.unwrap();
        assert_eq!(waiting.status, DeliveryStatus::Pending);
        assert_eq!(waiting.attempts, 1);
        assert_eq!(waiting.next_attempt_at, at(t0, 10));
        assert_eq!(waiting.last_attempt_at, Some(at(t0, 1)));
        assert_eq!(waiting.last_status, Some(500));
        assert_eq!(waiting.last_error.as_deref(), Some("answered 500"));
        assert_eq!(waiting.delivered_at, None);

        assert!(
            claim(store, "b", at(t0, 5), 10).await.is_empty(),
            "not due yet"
        );
        let due = claim(store, "b", at(t0, 10), 10).await;
        assert_eq!(ids(&due), vec![delivery.id]);
        let give_up = DeliveryOutcome::Failed {
            status: None,
            error: "timed out".into(),
            retry_at: None,
        };
        finish(store, "b", &delivery, at(t0, 11), give_up).await;
        let dead = store.get_delivery(delivery.id).await.unwrap();
        assert_eq!(dead.status, DeliveryStatus::Dead);
        assert_eq!(dead.attempts, 2);
        assert_eq!(dead.last_status, None);
        assert_eq!(dead.last_error.as_deref(), Some("timed out"));
        assert_eq!(dead.delivered_at, None);

        finish(store, "b", &delivery, at(t0, 12), delivered()).await;
        assert_eq!(
            store.get_delivery(delivery.id).await.unwrap(),
            dead,
            "dead stays dead"
        );
        expect_not_found(
            store
                .finish_webhook_delivery("b", DeliveryId::new(), at(t0, 12), delivered())
                .await,
            "delivery",
        );
        assert!(claim(store, "b", at(t0, 100), 10).await.is_empty());

        let next = mk_object(store, stack.id, "2").await;
        fan_out_all(store).await;
        let claimed = claim(store, "b", at(t0, 100), 10).await;
        assert_eq!(claimed.len(), 1);
        assert_eq!(claimed[0].subscription.id, hook.id);
        assert_eq!(
            claimed[0].delivery.event.data["deployment_object_id"],
            json!(next.id)
        );
    }

    /// Redelivery puts a dead or delivered delivery back to pending, due now, with its
    /// attempts reset and the same id, and is audited; a pending one is answered as it
    /// is, without an audit record.
    pub async fn webhooks_redeliver_keeps_the_id(store: &dyn Store) {
        catch_all(store).await;
        let stack = mk_stack(store, "s").await;
        mk_object(store, stack.id, "1").await;
        fan_out_all(store).await;
        let t0 = Utc::now().trunc_subsecs(6);
        let delivery = claim(store, "a", t0, 10).await.remove(0).delivery;
        let give_up = DeliveryOutcome::Failed {
            status: Some(410),
            error: "gone".into(),
            retry_at: None,
        };
        finish(store, "a", &delivery, at(t0, 1), give_up).await;

        let again = store
            .redeliver(&ADMIN, delivery.id)
            .await
            .expect("redeliver");
        assert_eq!(again.id, delivery.id);
        assert_eq!(again.status, DeliveryStatus::Pending);
        assert_eq!(again.attempts, 0);
        assert_eq!(again.event, delivery.event);
        assert!(again.next_attempt_at <= Utc::now());
        assert_eq!(store.get_delivery(delivery.id).await.unwrap(), again);
        let unchanged = store.redeliver(&ADMIN, delivery.id).await.expect("pending");
        assert_eq!(unchanged, again);

        let claimed = claim(store, "b", Utc::now(), 10).await;
        assert_eq!(ids(&claimed), vec![delivery.id]);
        finish(store, "b", &delivery, Utc::now(), delivered()).await;
        let once_more = store.redeliver(&ADMIN, delivery.id).await.unwrap();
        assert_eq!(once_more.status, DeliveryStatus::Pending);
        assert_eq!(once_more.delivered_at, None);
        expect_not_found(store.redeliver(&ADMIN, DeliveryId::new()).await, "delivery");

        let audit: Vec<_> = all_audit(store)
            .await
            .into_iter()
            .filter(|r| r.resource_kind == ResourceKind::Delivery)
            .map(|r| (r.action, r.resource_id))
            .collect();
        let update = (AuditAction::Update, delivery.id.0);
        assert_eq!(audit, vec![update, update]);
    }

    /// A test delivery carries a `webhook.test` event for its subscription, whatever
    /// types it asks for, and waits behind the subscription's other deliveries.
    pub async fn webhooks_test_delivery_queues_behind_others(store: &dyn Store) {
        let hook = mk_subscription(
            store,
            new_subscription(&[WebhookEventType::DeploymentObjectCreated]),
        )
        .await;
        let stack = mk_stack(store, "s").await;
        let object = mk_object(store, stack.id, "1").await;
        fan_out_all(store).await;
        let test = store
            .queue_test_delivery(&ADMIN, hook.id)
            .await
            .expect("test");
        assert_eq!(test.subscription_id, hook.id);
        assert_eq!(test.status, DeliveryStatus::Pending);
        assert_eq!(test.event.event_type, WebhookEventType::WebhookTest);
        assert_eq!(test.event.data, json!({ "subscription_id": hook.id }));
        assert_eq!((test.event.stack_id, test.event.agent_id), (None, None));
        assert_eq!(store.get_delivery(test.id).await.unwrap(), test);

        let t0 = Utc::now().trunc_subsecs(6);
        let first = claim(store, "a", t0, 10).await.remove(0).delivery;
        assert_eq!(first.event.data["deployment_object_id"], json!(object.id));
        finish(store, "a", &first, t0, delivered()).await;
        let second = claim(store, "a", t0, 10).await.remove(0).delivery;
        assert_eq!(second.id, test.id);
        assert_eq!(deliveries_of(store, hook.id).await.len(), 2);
    }

    /// Queue counts follow events through the outbox and deliveries; pruning removes
    /// only delivered deliveries delivered before the bound, at most `limit`.
    pub async fn webhooks_queue_stats_and_prune(store: &dyn Store) {
        assert_eq!(
            store.webhook_queue_stats().await.unwrap(),
            WebhookQueueStats::default()
        );
        catch_all(store).await;
        let stack = mk_stack(store, "s").await;
        let first = mk_object(store, stack.id, "1").await;
        mk_object(store, stack.id, "2").await;
        mk_object(store, stack.id, "3").await;
        let stats = store.webhook_queue_stats().await.unwrap();
        assert_eq!((stats.outbox, stats.pending, stats.dead), (3, 0, 0));
        assert_eq!(stats.oldest_undelivered_at, Some(first.created_at));
        fan_out_all(store).await;
        let stats = store.webhook_queue_stats().await.unwrap();
        assert_eq!((stats.outbox, stats.pending, stats.dead), (0, 3, 0));
        assert_eq!(stats.oldest_undelivered_at, Some(first.created_at));

        let t0 = Utc::now().trunc_subsecs(6);
        let outcomes = [
            (at(t0, 1), delivered()),
            (at(t0, 2), delivered()),
            (
                at(t0, 3),
                DeliveryOutcome::Failed {
                    status: None,
                    error: "refused".into(),
                    retry_at: None,
                },
            ),
        ];
        for (when, outcome) in outcomes {
            let delivery = claim(store, "a", when, 10).await.remove(0).delivery;
            finish(store, "a", &delivery, when, outcome).await;
        }
        let stats = store.webhook_queue_stats().await.unwrap();
        assert_eq!((stats.outbox, stats.pending, stats.dead), (0, 0, 1));
        assert_eq!(stats.oldest_undelivered_at, None);

        assert_eq!(
            store.prune_webhook_deliveries(at(t0, 1), 10).await.unwrap(),
            0,
            "none before"
        );
        assert_eq!(
            store.prune_webhook_deliveries(at(t0, 60), 1).await.unwrap(),
            1,
            "the limit"
        );
        assert_eq!(
            store
                .prune_webhook_deliveries(at(t0, 60), 10)
                .await
                .unwrap(),
            1
        );
        assert_eq!(
            store
                .prune_webhook_deliveries(at(t0, 60), 10)
                .await
                .unwrap(),
            0
        );
        let left = store
            .list_deliveries(&Default::default(), &Default::default())
            .await
            .unwrap()
            .items;
        assert_eq!(left.len(), 1);
        assert_eq!(left[0].status, DeliveryStatus::Dead, "dead deliveries stay");
    }

    /// Eight claimants claiming at once never get the same subscription (so never the
    /// same delivery) while its lease holds, and between them deliver every delivery
    /// exactly once, in order per subscription.
    pub async fn webhooks_concurrent_claimants_never_share_a_leased_delivery(store: &dyn Store) {
        let hooks = [
            catch_all(store).await.id,
            catch_all(store).await.id,
            catch_all(store).await.id,
            catch_all(store).await.id,
        ];
        let stack = mk_stack(store, "s").await;
        let mut sequences = Vec::new();
        for version in ["1", "2", "3"] {
            sequences.push(mk_object(store, stack.id, version).await.sequence);
        }
        fan_out_all(store).await;
        let now = Utc::now().trunc_subsecs(6);
        let mut sent: BTreeMap<_, Vec<i64>> = BTreeMap::new();
        let mut handed_out = BTreeSet::new();
        for _round in 0..20 {
            let claims = (0..8).map(|i| async move {
                let claimant = format!("replica-{i}");
                let claimed = store
                    .claim_webhook_deliveries(&claimant, now, now + Duration::minutes(5), 2)
                    .await
                    .expect("claim");
                (claimant, claimed)
            });
            let rounds = futures::future::join_all(claims).await;
            let mut this_round = BTreeSet::new();
            for (_, claimed) in &rounds {
                for c in claimed {
                    assert!(
                        this_round.insert(c.subscription.id),
                        "two claimants hold subscription {} at once",
                        c.subscription.id
                    );
                    assert!(
                        handed_out.insert(c.delivery.id),
                        "a leased delivery handed out twice"
                    );
                    let sequence = c.delivery.event.data["sequence"]
                        .as_i64()
                        .expect("a sequence");
                    sent.entry(c.subscription.id).or_default().push(sequence);
                }
            }
            if this_round.is_empty() {
                break;
            }
            let finishes = rounds.iter().flat_map(|(claimant, claimed)| {
                claimed.iter().map(move |c| {
                    store.finish_webhook_delivery(claimant, c.delivery.id, now, delivered())
                })
            });
            for result in futures::future::join_all(finishes).await {
                result.expect("finish");
            }
        }
        assert_eq!(handed_out.len(), 12, "every delivery once");
        for hook in hooks {
            assert_eq!(sent[&hook], sequences, "in order per subscription");
        }
    }
);
