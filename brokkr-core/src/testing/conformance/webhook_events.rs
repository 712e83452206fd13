//! The webhook events of every other kind of change: agent reports, health, placement,
//! stack deletion, silent agents, held and confirmed plans.

use chrono::{Duration, SubsecRound, Utc};
use serde_json::json;

use super::confirm::confirm_append;
use super::fixtures::{
    ADMIN, mk_agent, mk_event, mk_generator, mk_health, mk_object, mk_stack, new_agent, new_event,
    workload,
};
use super::placement::{decision, mk_policy, policy};
use super::plans::new_plan;
use super::support::expect_not_found;
use super::webhooks::{catch_all, mk_subscription, new_events, new_subscription};
use crate::health::HealthStatus;
use crate::id::{AgentId, DeploymentObjectId};
use crate::model::{
    Actor, EventStatus, EventType, Heartbeat, PlanOrigin, SubscriptionOwner, WebhookEvent,
    WebhookEventType,
};
use crate::pak::Pak;
use crate::selector::LabelSelector;
use crate::store::{Confirmed, Store};

/// The event types of `events`, in order.
fn types(events: &[WebhookEvent]) -> Vec<WebhookEventType> {
    events.iter().map(|e| e.event_type).collect()
}

/// A heartbeat of `agent` `secs_ago` seconds ago.
fn beat(agent: AgentId, secs_ago: i64) -> Heartbeat {
    Heartbeat {
        agent_id: agent,
        at: (Utc::now() - Duration::seconds(secs_ago)).trunc_subsecs(6),
        capabilities: None,
    }
}

cases!(
    /// A first report writes `agent.applied` (success) or `agent.failed` (failure)
    /// with the report's fields; a report repeated with its id, or refused, writes
    /// none; reports committed together each write theirs.
    pub async fn webhooks_agent_reports_write_applied_or_failed(store: &dyn Store) {
        let hook = catch_all(store).await;
        let agent = mk_agent(store, "a").await.id;
        let stack = mk_stack(store, "s").await.id;
        let object = mk_object(store, stack, "1").await.id;
        let mut seen = 0;
        new_events(store, hook.id, &mut seen).await;

        let applied = mk_event(store, agent, object, EventType::Apply, EventStatus::Success).await;
        let events = new_events(store, hook.id, &mut seen).await;
        assert_eq!(types(&events), vec![WebhookEventType::AgentApplied]);
        assert_eq!(events[0].stack_id, Some(stack));
        assert_eq!(events[0].agent_id, Some(agent));
        assert_eq!(events[0].occurred_at, applied.created_at);
        assert_eq!(
            events[0].data,
            json!({
                "agent_event_id": applied.id,
                "deployment_object_id": object,
                "event_type": "apply",
                "status": "success",
                "message": null,
            })
        );

        let mut failed = new_event(agent, object, EventType::Apply, EventStatus::Failure);
        failed.message = Some("forbidden".into());
        store
            .record_agent_event(&Actor::Agent(agent), failed.clone())
            .await
            .unwrap();
        store
            .record_agent_event(&Actor::Agent(agent), failed.clone())
            .await
            .expect("a repeated report");
        let unknown = new_event(
            agent,
            DeploymentObjectId::new(),
            EventType::Apply,
            EventStatus::Success,
        );
        expect_not_found(
            store
                .record_agent_event(&Actor::Agent(agent), unknown)
                .await,
            "deployment object",
        );
        let events = new_events(store, hook.id, &mut seen).await;
        assert_eq!(types(&events), vec![WebhookEventType::AgentFailed]);
        assert_eq!(events[0].data["message"], json!("forbidden"));
        assert_eq!(events[0].data["status"], json!("failure"));

        let reports = (0..6).map(|_| {
            let new = new_event(agent, object, EventType::Drift, EventStatus::Success);
            async move {
                store
                    .record_agent_event(&Actor::Agent(agent), new)
                    .await
                    .unwrap()
            }
        });
        let stored = futures::future::join_all(reports).await;
        let events = new_events(store, hook.id, &mut seen).await;
        let mut got: Vec<_> = events
            .iter()
            .map(|e| e.data["agent_event_id"].to_string())
            .collect();
        let mut want: Vec<_> = stored.iter().map(|e| json!(e.id).to_string()).collect();
        got.sort();
        want.sort();
        assert_eq!(got, want, "one event per report of the batch");
    }

    /// A health report whose status differs from the agent's previous one for the
    /// stack (or that is its first) writes `stack.health_changed` from → to; the same
    /// status again writes nothing.
    pub async fn webhooks_health_changes_write_one_event_per_change(store: &dyn Store) {
        use HealthStatus::{Degraded, Healthy};
        let hook = catch_all(store).await;
        let [a, b] = [mk_agent(store, "a").await.id, mk_agent(store, "b").await.id];
        let stack = mk_stack(store, "s").await.id;
        let object = mk_object(store, stack, "1").await.id;
        let mut seen = 0;
        new_events(store, hook.id, &mut seen).await;

        let first = mk_health(store, a, object, vec![workload("web", Healthy)]).await;
        let events = new_events(store, hook.id, &mut seen).await;
        assert_eq!(types(&events), vec![WebhookEventType::StackHealthChanged]);
        assert_eq!(
            (events[0].stack_id, events[0].agent_id),
            (Some(stack), Some(a))
        );
        assert_eq!(events[0].occurred_at, first.reported_at);
        assert_eq!(
            events[0].data,
            json!({"deployment_object_id": object, "from": null, "to": "healthy", "summary": null})
        );

        mk_health(store, a, object, vec![workload("web", Healthy)]).await;
        assert!(
            new_events(store, hook.id, &mut seen).await.is_empty(),
            "unchanged"
        );
        mk_health(store, a, object, vec![workload("web", Degraded)]).await;
        let events = new_events(store, hook.id, &mut seen).await;
        assert_eq!(types(&events), vec![WebhookEventType::StackHealthChanged]);
        assert_eq!(
            (events[0].data["from"].clone(), events[0].data["to"].clone()),
            (json!("healthy"), json!("degraded"))
        );

        // Two agents at once: each its own change.
        tokio::join!(
            mk_health(store, a, object, vec![workload("web", Healthy)]),
            mk_health(store, b, object, vec![workload("web", Degraded)]),
        );
        let mut got: Vec<_> = new_events(store, hook.id, &mut seen)
            .await
            .iter()
            .map(|e| (e.agent_id, e.data["from"].clone(), e.data["to"].clone()))
            .collect();
        got.sort_by_key(|(agent, _, _)| *agent);
        let mut want = vec![
            (Some(a), json!("degraded"), json!("healthy")),
            (Some(b), json!(null), json!("degraded")),
        ];
        want.sort_by_key(|(agent, _, _)| *agent);
        assert_eq!(got, want);
    }

    /// A recorded decision (alone or with its policy) whose chosen agents differ from
    /// the stored decision's writes `placement.changed` with both sets; the same
    /// chosen set again writes nothing.
    pub async fn webhooks_placement_changes_write_placement_changed(store: &dyn Store) {
        let hook = catch_all(store).await;
        let [a, b] = [mk_agent(store, "a").await.id, mk_agent(store, "b").await.id];
        let stack = mk_stack(store, "s").await.id;
        mk_policy(store, stack, 2).await;
        let mut seen = 0;
        store
            .record_placement(&ADMIN, stack, decision(&[a], &[]))
            .await
            .unwrap();
        let events = new_events(store, hook.id, &mut seen).await;
        assert_eq!(types(&events), vec![WebhookEventType::PlacementChanged]);
        assert_eq!(events[0].stack_id, Some(stack));
        assert_eq!(events[0].data, json!({"from": null, "to": [a]}));

        store
            .record_placement(&ADMIN, stack, decision(&[a], &[b]))
            .await
            .unwrap();
        assert!(
            new_events(store, hook.id, &mut seen).await.is_empty(),
            "same agents"
        );
        store
            .record_placement(&ADMIN, stack, decision(&[a, b], &[]))
            .await
            .unwrap();
        let events = new_events(store, hook.id, &mut seen).await;
        let mut both = vec![a, b];
        both.sort();
        assert_eq!(events[0].data, json!({"from": [a], "to": both}));

        let placed = store
            .place_stack(
                &ADMIN,
                stack,
                policy(1),
                decision(&[b], &[a]),
                Some(both.clone()),
            )
            .await
            .unwrap();
        assert!(placed.is_some());
        let events = new_events(store, hook.id, &mut seen).await;
        assert_eq!(types(&events), vec![WebhookEventType::PlacementChanged]);
        assert_eq!(events[0].data, json!({"from": both, "to": [b]}));
        let stale = store
            .place_stack(&ADMIN, stack, policy(1), decision(&[a], &[]), Some(vec![a]))
            .await
            .unwrap();
        assert!(stale.is_none());
        assert!(
            new_events(store, hook.id, &mut seen).await.is_empty(),
            "a refused write"
        );
    }

    /// Deleting a stack writes its deletion marker's `deployment_object.created` and
    /// `stack.deleted`; deleting it again writes nothing.
    pub async fn webhooks_stack_deletion_writes_deleted(store: &dyn Store) {
        let hook = catch_all(store).await;
        let stack = mk_stack(store, "gone").await.id;
        let mut seen = 0;
        let marker = store.delete_stack(&ADMIN, stack).await.unwrap();
        let mut events = new_events(store, hook.id, &mut seen).await;
        events.sort_by_key(|e| e.event_type);
        assert_eq!(
            types(&events),
            vec![
                WebhookEventType::DeploymentObjectCreated,
                WebhookEventType::StackDeleted
            ]
        );
        assert_eq!(events[0].data["is_deletion_marker"], json!(true));
        assert_eq!(events[1].stack_id, Some(stack));
        assert_eq!(
            events[1].data,
            json!({"name": "gone", "deployment_object_id": marker.id, "sequence": marker.sequence})
        );
        expect_not_found(store.delete_stack(&ADMIN, stack).await, "stack");
        assert!(new_events(store, hook.id, &mut seen).await.is_empty());
    }

    /// An agent silent since before the bound is marked once (`agent.stale`); its next
    /// heartbeat writes `agent.recovered` once; an agent that never beat is not stale.
    /// Agent events match a label selector on the agent's labels, and reach neither a
    /// stack-filtered nor a generator's subscription.
    pub async fn webhooks_stale_and_recovered_happen_once_each(store: &dyn Store) {
        let hook = catch_all(store).await;
        let mut new = new_agent("quiet", "c", &Pak::generate());
        new.labels = super::fixtures::labels(&[("zone", "eu")]);
        let quiet = store.create_agent(&ADMIN, new).await.unwrap().id;
        let lively = mk_agent(store, "lively").await.id;
        let _never = mk_agent(store, "never").await.id;
        let mut by_label = new_subscription(&[WebhookEventType::AgentStale]);
        by_label.labels = Some(LabelSelector {
            match_labels: [("zone".to_owned(), "eu".to_owned())].into(),
            ..Default::default()
        });
        let by_label = mk_subscription(store, by_label).await;
        let mut filtered = new_subscription(&[WebhookEventType::AgentStale]);
        filtered.stack_id = Some(mk_stack(store, "s").await.id);
        let filtered = mk_subscription(store, filtered).await;
        let generator = mk_generator(store, "g").await.id;
        let mut owned = new_subscription(&[WebhookEventType::AgentStale]);
        owned.owner = SubscriptionOwner::Generator(generator);
        let owned = mk_subscription(store, owned).await;

        let old = beat(quiet, 600);
        store
            .record_heartbeats(&[old.clone(), beat(lively, 1)])
            .await
            .unwrap();
        let bound = Utc::now() - Duration::seconds(300);
        assert_eq!(store.mark_stale_agents(bound).await.unwrap(), vec![quiet]);
        assert!(
            store.mark_stale_agents(bound).await.unwrap().is_empty(),
            "once"
        );
        let mut seen = 0;
        let events = new_events(store, hook.id, &mut seen).await;
        assert_eq!(types(&events), vec![WebhookEventType::AgentStale]);
        assert_eq!(
            (events[0].agent_id, events[0].stack_id),
            (Some(quiet), None)
        );
        assert_eq!(events[0].data, json!({"last_heartbeat": old.at}));
        let mut by_label_seen = 0;
        assert_eq!(
            new_events(store, by_label.id, &mut by_label_seen)
                .await
                .len(),
            1
        );
        assert!(new_events(store, filtered.id, &mut 0).await.is_empty());
        assert!(new_events(store, owned.id, &mut 0).await.is_empty());

        let back = beat(quiet, 0);
        store
            .record_heartbeats(std::slice::from_ref(&back))
            .await
            .unwrap();
        store.record_heartbeats(&[beat(quiet, 0)]).await.unwrap();
        let events = new_events(store, hook.id, &mut seen).await;
        assert_eq!(types(&events), vec![WebhookEventType::AgentRecovered]);
        assert_eq!(events[0].agent_id, Some(quiet));
        assert_eq!(events[0].data["heartbeat_at"], json!(back.at));
        assert!(store.mark_stale_agents(bound).await.unwrap().is_empty());
        assert!(new_events(store, hook.id, &mut seen).await.is_empty());
    }

    /// A stored plan that holds a change the guard stopped, or a held placement
    /// decision, writes `plan.held`; a plan asked for or a dry run writes none; a
    /// confirmation writes `plan.confirmed` with its change's events.
    pub async fn webhooks_plans_write_held_and_confirmed(store: &dyn Store) {
        let hook = catch_all(store).await;
        let stack = mk_stack(store, "s").await.id;
        let mut seen = 0;
        let ttl = Duration::minutes(10);
        let asked = store
            .create_plan(&ADMIN, new_plan(stack, PlanOrigin::Requested, ttl))
            .await
            .unwrap();
        assert!(
            new_events(store, hook.id, &mut seen).await.is_empty(),
            "a plan asked for"
        );
        let mut stopped = new_plan(stack, PlanOrigin::Requested, ttl);
        stopped.holds_change = true;
        let stopped = store.create_plan(&ADMIN, stopped).await.unwrap();
        let held = store
            .create_plan(&Actor::System, new_plan(stack, PlanOrigin::Held, ttl))
            .await
            .unwrap();
        let events = new_events(store, hook.id, &mut seen).await;
        assert_eq!(
            types(&events),
            vec![WebhookEventType::PlanHeld, WebhookEventType::PlanHeld]
        );
        let mut got: Vec<_> = events.iter().map(|e| e.data.clone()).collect();
        got.sort_by_key(|d| d["plan_id"].to_string());
        let mut want: Vec<_> = [&stopped, &held]
            .iter()
            .map(|p| {
                json!({
                    "plan_id": p.id,
                    "origin": p.origin.as_str(),
                    "digest": p.digest,
                    "expires_at": p.expires_at,
                })
            })
            .collect();
        want.sort_by_key(|d| d["plan_id"].to_string());
        assert_eq!(got, want);

        let Confirmed::Written { .. } = confirm_append(store, &asked).await else {
            panic!("the confirmation is written");
        };
        let mut events = new_events(store, hook.id, &mut seen).await;
        events.sort_by_key(|e| e.event_type);
        assert_eq!(
            types(&events),
            vec![
                WebhookEventType::DeploymentObjectCreated,
                WebhookEventType::PlanConfirmed
            ]
        );
        assert_eq!(events[1].stack_id, Some(stack));
        assert_eq!(
            events[1].data,
            json!({"plan_id": asked.id, "digest": asked.digest})
        );
        assert!(matches!(
            confirm_append(store, &asked).await,
            Confirmed::Consumed
        ));
        assert!(
            new_events(store, hook.id, &mut seen).await.is_empty(),
            "a refused confirmation"
        );
    }
);
