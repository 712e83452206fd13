//! Plan and guard through the control plane (ROLLOUTS.md §12, items 11 and 12): a mass
//! removal is refused until an admin confirms its plan, once, while the world is as
//! planned; a generator cannot confirm; a protected kind's prune is stopped; a mass
//! relabel is held and no agent receives a removal. Agents "apply" by reporting successful events, as real agents do.

use std::time::{Duration, Instant};

use serde_json::json;

use super::placement::agent;
use crate::placement::{PlacementPolicy, RejectionPage};
use crate::plan::{AgentAction, GuardOverrides, Verdict, Version, Violation};
use crate::runtime::plan::{GuardOptions, Outcome, PlanRequest, PlannedChange};
use crate::runtime::{ControlPlane, Error};
use crate::store::DeliveryFilter;
use crate::target_state::TargetAction;
use crate::testing::conformance::{mk_stack, new_event};
use crate::{
    Actor, AgentId, DeploymentObjectId, EventStatus, EventType, MetadataField, MetadataTarget,
    NewGenerator, NewSubscription, Pak, StackId, SubscriptionOwner, WebhookEventType,
};

/// `n` ConfigMaps, `version` in their data, and a PersistentVolumeClaim with `pvc`.
fn yaml(n: usize, version: u32, pvc: bool) -> String {
    let mut out = String::new();
    for i in 0..n {
        out.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i}, namespace: app}}\ndata: {{v: '{version}'}}\n"
        ));
    }
    if pvc {
        out.push_str("---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {name: data, namespace: app}\nspec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}\n");
    }
    out
}

/// A generator named `name`, as the actor it acts as.
async fn generator(cp: &ControlPlane, name: &str) -> Actor {
    let generator = cp
        .store()
        .create_generator(
            &Actor::Admin,
            NewGenerator {
                name: name.into(),
                description: None,
                key: Pak::generate().stored(),
            },
        )
        .await
        .expect("a generator");
    Actor::Generator(generator.id)
}

/// The agent reports applying `object` successfully.
async fn applied(cp: &ControlPlane, agent: AgentId, object: DeploymentObjectId) {
    let event = new_event(agent, object, EventType::Apply, EventStatus::Success);
    cp.record_agent_event(&Actor::Agent(agent), event)
        .await
        .expect("record the apply");
}

/// A stack assigned directly to `agents`, each of which applied `yaml`.
async fn applied_stack(
    cp: &ControlPlane,
    name: &str,
    agents: &[AgentId],
    yaml: String,
) -> (StackId, DeploymentObjectId) {
    let stack = mk_stack(cp.store().as_ref(), name).await.id;
    for &agent in agents {
        cp.assign_target(&Actor::Admin, agent, stack)
            .await
            .expect("assign");
    }
    let object = cp
        .append_deployment_object(&Actor::Admin, stack, yaml)
        .await
        .expect("append");
    for &agent in agents {
        applied(cp, agent, object.id).await;
    }
    (stack, object.id)
}

async fn fleet(cp: &ControlPlane, n: usize, region: &str) -> Vec<AgentId> {
    let mut agents = Vec::new();
    for i in 0..n {
        agents.push(agent(cp, &format!("{region}-{i}"), region, 0).await);
    }
    agents
}

fn confirm(plan: crate::id::PlanId) -> GuardOptions {
    GuardOptions {
        dry_run: false,
        confirm_plan_id: Some(plan),
    }
}

crate::runtime_cases! {
    async fn a_mass_removal_is_refused_until_an_admin_confirms_once(cp: ControlPlane) {
        let agents = fleet(&cp, 12, "eu").await;
        let (stack, _) = applied_stack(&cp, "shop", &agents, yaml(2, 1, false)).await;

        let Err(Error::BlastRadiusExceeded(plan)) = cp.delete_stack(&Actor::Admin, stack).await
        else {
            panic!("a deletion removing 12 of 12 agents needs a confirmation");
        };
        assert_eq!(plan.plan.guard.verdict, Verdict::ConfirmationRequired);
        assert!(matches!(
            plan.plan.guard.violations[..],
            [Violation::MaxRemovedFraction { removed: 12, .. }]
        ));
        assert_eq!(plan.plan.summary.agents_removed, 12);
        assert_eq!(plan.plan.summary.objects.prune, 24);
        cp.get_stack(&Actor::Admin, stack).await.expect("nothing deleted");
        let read = cp.get_plan(&Actor::Admin, plan.id).await.expect("the plan is kept");
        assert_eq!(read.plan.digest, plan.plan.digest);

        let deleted = cp
            .guarded(confirm(plan.id))
            .delete_stack(&Actor::Admin, stack)
            .await
            .expect("confirmed");
        assert!(matches!(deleted, Outcome::Done(marker) if marker.is_deletion_marker));
        let read = cp.get_plan(&Actor::Admin, plan.id).await.expect("still readable");
        assert!(read.consumed_at.is_some());
        let confirmations = cp
            .list_audit_records(
                &Actor::Admin,
                crate::store::AuditFilter {
                    resource_id: Some(plan.id.as_uuid()),
                    action: Some(crate::AuditAction::Confirm),
                    ..Default::default()
                },
                &crate::PageRequest::default(),
            )
            .await
            .expect("audit");
        assert_eq!(confirmations.items.len(), 1, "the confirmation is audited");
    }

    async fn a_plan_is_used_once_and_refused_when_the_world_moved(cp: ControlPlane) {
        let agents = fleet(&cp, 12, "eu").await;
        // Dropping 9 of 10 ConfigMaps on 12 agents prunes 108 objects (limit 100).
        let (stack, _) = applied_stack(&cp, "shop", &agents, yaml(10, 1, false)).await;
        let Err(Error::BlastRadiusExceeded(plan)) = cp
            .append_deployment_object(&Actor::Admin, stack, yaml(1, 1, false))
            .await
        else {
            panic!("108 prunes need a confirmation");
        };
        assert!(matches!(
            plan.plan.guard.violations[..],
            [Violation::MaxPrunedObjects { actual: 108, .. }]
        ));
        let guarded = cp.guarded(confirm(plan.id));
        let first = guarded
            .append_deployment_object(&Actor::Admin, stack, yaml(1, 1, false))
            .await
            .expect("confirmed")
            .done()
            .expect("appended");
        let again = guarded
            .append_deployment_object(&Actor::Admin, stack, yaml(1, 1, false))
            .await;
        assert!(matches!(again, Err(Error::PlanConsumed { .. })), "{again:?}");

        // A new plan, then one agent applies the new version: the world moved.
        let Err(Error::BlastRadiusExceeded(stale)) = cp.delete_stack(&Actor::Admin, stack).await
        else {
            panic!("deleting needs a confirmation");
        };
        applied(&cp, agents[0], first.id).await;
        let refused = cp
            .guarded(confirm(stale.id))
            .delete_stack(&Actor::Admin, stack)
            .await;
        assert!(matches!(refused, Err(Error::PlanStale { .. })), "{refused:?}");
        cp.get_stack(&Actor::Admin, stack).await.expect("nothing deleted");

        // Confirming a plan with another change is stale too.
        let other = cp
            .guarded(confirm(stale.id))
            .append_deletion_marker(&Actor::Admin, stack)
            .await;
        assert!(matches!(other, Err(Error::PlanStale { .. })), "{other:?}");
    }

    async fn a_generator_cannot_confirm_but_sees_its_plans(cp: ControlPlane) {
        let caller = generator(&cp, "tenants").await;
        let agents = fleet(&cp, 4, "eu").await;
        let stack = cp
            .create_stack(&caller, crate::NewStack { name: "mine".into(), ..Default::default() })
            .await
            .expect("a stack")
            .id;
        for &agent in &agents {
            cp.assign_target(&caller, agent, stack).await.expect("assign");
        }
        let object = cp
            .append_deployment_object(&caller, stack, yaml(1, 1, false))
            .await
            .expect("append");
        for &agent in &agents {
            applied(&cp, agent, object.id).await;
        }
        let Err(Error::BlastRadiusExceeded(plan)) = cp.delete_stack(&caller, stack).await else {
            panic!("4 of 4 removed needs a confirmation");
        };
        cp.get_plan(&caller, plan.id).await.expect("its own plan");
        let refused = cp.guarded(confirm(plan.id)).delete_stack(&caller, stack).await;
        assert!(matches!(refused, Err(Error::Forbidden(_))), "{refused:?}");
        cp.get_stack(&caller, stack).await.expect("nothing deleted");
        let other = generator(&cp, "other").await;
        let hidden = cp.get_plan(&other, plan.id).await;
        assert!(
            matches!(hidden, Err(Error::Store(crate::store::Error::NotFound { .. }))),
            "{hidden:?}"
        );
    }

    async fn a_protected_kind_prune_is_stopped_and_a_dry_run_lists_it(cp: ControlPlane) {
        let agents = fleet(&cp, 1, "eu").await;
        let (stack, v1) = applied_stack(&cp, "db", &agents, yaml(1, 1, true)).await;
        let dry = cp
            .guarded(GuardOptions { dry_run: true, confirm_plan_id: None })
            .append_deployment_object(&Actor::Admin, stack, yaml(1, 2, false))
            .await
            .expect("a dry run");
        let Outcome::Planned(plan) = dry else {
            panic!("a dry run answers a plan");
        };
        let [group] = &plan.plan.groups[..] else {
            panic!("one move: {:?}", plan.plan.groups);
        };
        assert_eq!(group.action, AgentAction::Change);
        assert_eq!((group.from, group.to), (Some(v1), Some(Version::Proposed)));
        assert_eq!(group.objects.update.len(), 1, "the ConfigMap changed");
        assert_eq!(group.objects.prune.len(), 1);
        assert_eq!(group.objects.prune[0].kind, "PersistentVolumeClaim");
        assert!(matches!(
            &plan.plan.guard.violations[..],
            [Violation::ProtectedKinds { kind, count: 1 }] if kind == "PersistentVolumeClaim"
        ));
        let objects = cp
            .list_deployment_objects(&Actor::Admin, stack, Default::default(), &crate::PageRequest::default())
            .await
            .expect("list");
        assert_eq!(objects.items.len(), 1, "a dry run appends nothing");
        let refused = cp
            .append_deployment_object(&Actor::Admin, stack, yaml(1, 2, false))
            .await;
        assert!(matches!(refused, Err(Error::BlastRadiusExceeded(_))), "{refused:?}");
        // Keeping the claim is an update only: allowed.
        cp.append_deployment_object(&Actor::Admin, stack, yaml(1, 2, true))
            .await
            .expect("no prune, no confirmation");
    }

    async fn a_plan_groups_agents_by_move(cp: ControlPlane) {
        let agents = fleet(&cp, 4, "eu").await;
        let (stack, v1) = applied_stack(&cp, "shop", &agents[..2], yaml(2, 1, false)).await;
        for &agent in &agents[2..] {
            cp.assign_target(&Actor::Admin, agent, stack).await.expect("assign");
        }
        let v2 = cp
            .append_deployment_object(&Actor::Admin, stack, yaml(3, 1, false))
            .await
            .expect("v2");
        applied(&cp, agents[2], v2.id).await;
        // agents[3] never applied anything.
        let plan = cp
            .plan(&Actor::Admin, stack, PlanRequest::Yaml(yaml(1, 2, false)))
            .await
            .expect("a plan");
        let summary = &plan.plan.summary;
        assert_eq!(
            (summary.agents_current, summary.agents_changing, summary.agents_gaining),
            (3, 3, 1)
        );
        assert_eq!(plan.plan.groups.len(), 3, "{:?}", plan.plan.groups);
        let of = |from| {
            plan.plan.groups.iter().find(|g| g.from == from).expect("a group")
        };
        let from_v1 = of(Some(v1));
        assert_eq!(from_v1.agents.len(), 2);
        assert_eq!(
            (from_v1.objects.create.len(), from_v1.objects.update.len(), from_v1.objects.prune.len()),
            (0, 1, 1)
        );
        let from_v2 = of(Some(v2.id));
        assert_eq!(from_v2.objects.prune.len(), 2);
        let fresh = of(None);
        assert_eq!(fresh.action, AgentAction::Gain);
        assert_eq!(fresh.agents[0].id, agents[3]);
        assert_eq!(fresh.objects.create.len(), 1);
        assert_eq!(summary.objects.prune, 2 + 2, "counted per agent");
        assert_eq!(plan.plan.guard.verdict, Verdict::Allowed);
        assert!(matches!(plan.change, PlannedChange::DeploymentObject { .. }));
        let again = cp
            .plan(&Actor::Admin, stack, PlanRequest::Yaml(yaml(1, 2, false)))
            .await
            .expect("the same plan again");
        assert_eq!(again.plan.digest, plan.plan.digest, "same change, same world");
        assert_ne!(again.id, plan.id);
    }

    async fn only_an_admin_loosens_the_guard(cp: ControlPlane) {
        let caller = generator(&cp, "tenants").await;
        let stack = cp
            .create_stack(&caller, crate::NewStack { name: "mine".into(), ..Default::default() })
            .await
            .expect("a stack")
            .id;
        let looser = GuardOverrides { max_removed_fraction: Some(1.0), ..Default::default() };
        let refused = cp.set_guard_policy(&caller, stack, looser.clone()).await;
        assert!(matches!(refused, Err(Error::Forbidden(_))), "{refused:?}");
        let tighter = GuardOverrides { max_pruned_objects: Some(5), ..Default::default() };
        let view = cp.set_guard_policy(&caller, stack, tighter).await.expect("tighten");
        assert_eq!(view.effective.max_pruned_objects, 5);
        let bad = GuardOverrides { max_removed_fraction: Some(2.0), ..Default::default() };
        let invalid = cp.set_guard_policy(&Actor::Admin, stack, bad).await;
        assert!(matches!(invalid, Err(Error::Invalid { code: "invalid_guard", .. })), "{invalid:?}");

        let agents = fleet(&cp, 4, "eu").await;
        for &agent in &agents {
            cp.assign_target(&caller, agent, stack).await.expect("assign");
        }
        let object = cp
            .append_deployment_object(&caller, stack, yaml(1, 1, false))
            .await
            .expect("append");
        for &agent in &agents {
            applied(&cp, agent, object.id).await;
        }
        assert!(matches!(
            cp.delete_stack(&caller, stack).await,
            Err(Error::BlastRadiusExceeded(_))
        ));
        cp.set_guard_policy(&Actor::Admin, stack, looser).await.expect("an admin loosens");
        cp.delete_stack(&caller, stack).await.expect("within the stack's limits now");
    }

    async fn a_mass_relabel_is_held_and_no_agent_receives_a_removal(cp: ControlPlane) {
        let agents = fleet(&cp, 12, "eu").await;
        let stack = mk_stack(cp.store().as_ref(), "shop").await.id;
        let policy: PlacementPolicy =
            serde_json::from_value(json!({"agent_selector": {"matchLabels": {"region": "eu"}}})).expect("a policy");
        cp.set_placement_policy(&Actor::Admin, stack, policy, RejectionPage::default())
            .await
            .expect("place");
        let object = cp
            .append_deployment_object(&Actor::Admin, stack, yaml(1, 1, false))
            .await
            .expect("append");
        for &agent in &agents {
            applied(&cp, agent, object.id).await;
        }
        // Each relabel reaches the controller as its own change where the store
        // announces them (PostgreSQL's notifications), and each change is judged on its
        // own: with the default limits the first ones, removing up to 2 agents and a
        // quarter of the fleet, would pass. This stack holds every automatic removal.
        let strict = GuardOverrides {
            max_removed_fraction: Some(0.0),
            min_removed_agents: Some(0),
            ..Default::default()
        };
        cp.set_guard_policy(&Actor::Admin, stack, strict).await.expect("strict limits");
        // Another replica (or a script on the database) relabels ten agents.
        for &agent in &agents[..10] {
            cp.store()
                .put_metadata(&Actor::Admin, MetadataTarget::Agent(agent), MetadataField::Labels, "region", "us")
                .await
                .expect("relabel");
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let held = loop {
            let view = cp
                .stack_placement(&Actor::Admin, stack, RejectionPage::default())
                .await
                .expect("placement");
            // Held, and planned again as the relabels arrive, until all ten are in.
            if let Some(held) = view.held.filter(|h| h.plan.summary.agents_removed == 10) {
                break held;
            }
            assert!(Instant::now() < deadline, "the decision was not held within 10 s");
            tokio::time::sleep(Duration::from_millis(50)).await;
        };
        let view = cp
            .stack_placement(&Actor::Admin, stack, RejectionPage::default())
            .await
            .expect("placement");
        assert_eq!(view.placement.decision.expect("decided").chosen.len(), 12, "not recorded");
        for &agent in &agents {
            let state = cp.store().target_state(agent).await.expect("target state");
            assert!(
                state.entries.iter().all(|s| !matches!(s.action, TargetAction::Remove)),
                "no removal sent while held"
            );
        }
        // A generator or an agent cannot release it; an admin can.
        let released = cp.confirm_plan(&Actor::Admin, held.id).await.expect("released");
        assert!(released.consumed_at.is_some());
        let view = cp
            .stack_placement(&Actor::Admin, stack, RejectionPage::default())
            .await
            .expect("placement");
        assert_eq!(view.placement.decision.expect("decided").chosen.len(), 2);
        assert!(view.held.is_none());
        let removed = cp.store().target_state(agents[0]).await.expect("target state");
        assert!(removed.entries.iter().any(|s| matches!(s.action, TargetAction::Remove)));
    }
    async fn only_a_stopped_change_writes_plan_held(cp: ControlPlane) {
        let store = cp.store();
        let subscription = NewSubscription {
            owner: SubscriptionOwner::Admin,
            url: "http://127.0.0.1:9/hook".into(),
            description: None,
            event_types: vec![WebhookEventType::PlanHeld],
            stack_id: None,
            labels: None,
            sealed_secret: b"sealed".to_vec(),
        };
        let hook = store
            .create_subscription(&Actor::Admin, subscription)
            .await
            .expect("subscribe");
        let agents = fleet(&cp, 1, "eu").await;
        let (stack, _) = applied_stack(&cp, "db", &agents, yaml(1, 1, true)).await;
        let dry = cp
            .guarded(GuardOptions { dry_run: true, confirm_plan_id: None })
            .append_deployment_object(&Actor::Admin, stack, yaml(1, 2, false))
            .await
            .expect("a dry run");
        assert!(matches!(dry, Outcome::Planned(_)));
        let Err(Error::BlastRadiusExceeded(stopped)) = cp
            .append_deployment_object(&Actor::Admin, stack, yaml(1, 2, false))
            .await
        else {
            panic!("the prune of a protected kind is stopped");
        };
        while store.fan_out_webhook_events(100).await.expect("fan out") > 0 {}
        let filter = DeliveryFilter {
            subscription_id: Some(hook.id),
            ..Default::default()
        };
        let held = store
            .list_deliveries(&filter, &crate::PageRequest::default())
            .await
            .expect("deliveries")
            .items;
        let plans: Vec<_> = held.iter().map(|d| d.event.data["plan_id"].clone()).collect();
        assert_eq!(plans, vec![json!(stopped.id)], "the stopped change's plan, not the dry run's");
    }
}
