//! Plan and guard: deployment objects' items, what agents last applied, guard
//! overrides, stored plans.

use std::collections::BTreeSet;

use chrono::{Duration, Utc};
use serde_json::json;

use super::fixtures::{ADMIN, mk_agent, mk_event, mk_generator, mk_object, mk_stack, new_event};
use super::support::{all_audit, expect_not_found};
use crate::id::{AgentId, DeploymentObjectId, PlanId, StackId};
use crate::model::{
    Actor, AppliedState, AuditAction, AuditRecord, EventStatus, EventType, NewDeploymentObject,
    NewPlan, PlanOrigin, ResourceKind,
};
use crate::plan::{GuardOverrides, ItemDigest};
use crate::store::Store;

/// Two objects whose YAML lists them out of identity order.
const TWO_OBJECTS: &str = "apiVersion: v1\nkind: Secret\nmetadata: {name: z, namespace: default}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: a, namespace: default}\ndata: {x: '1'}\n";

/// A plan of `origin` for `stack` that expires `expires_in` from now.
pub fn new_plan(stack: StackId, origin: PlanOrigin, expires_in: Duration) -> NewPlan {
    NewPlan {
        stack_id: stack,
        origin,
        change: json!({"change": "delete"}),
        digest: format!("sha256:{}", "ab".repeat(32)),
        body: json!({"summary": {"agents_current": 2, "agents_removed": 2}}),
        expires_at: Utc::now() + expires_in,
        holds_change: false,
    }
}

/// Every audit record about `kind`, oldest first.
async fn audit_of(store: &dyn Store, kind: ResourceKind) -> Vec<AuditRecord> {
    all_audit(store)
        .await
        .into_iter()
        .filter(|r| r.resource_kind == kind)
        .collect()
}

/// The stack's applied states as (agent, object) pairs.
async fn applied(store: &dyn Store, stack: StackId) -> Vec<(AgentId, Option<DeploymentObjectId>)> {
    store
        .applied_states(stack)
        .await
        .expect("applied states")
        .into_iter()
        .map(|s| (s.agent_id, s.deployment_object_id))
        .collect()
}

/// `pairs` ordered by agent id, as `applied_states` answers.
fn by_agent(
    mut pairs: Vec<(AgentId, Option<DeploymentObjectId>)>,
) -> Vec<(AgentId, Option<DeploymentObjectId>)> {
    pairs.sort_by_key(|(agent, _)| *agent);
    pairs
}

cases!(
    /// Items are written with their object (ordered by identity, none for a deletion
    /// marker) and read back for many ids at once; unknown ids are left out.
    pub async fn plan_items_are_written_with_the_object(store: &dyn Store) {
        let stack = mk_stack(store, "s").await;
        let new = NewDeploymentObject::from_yaml(stack.id, TWO_OBJECTS).expect("valid YAML");
        let expected_two = new.items().to_vec();
        let kinds: Vec<&str> = expected_two.iter().map(|i| i.key.kind.as_str()).collect();
        assert_eq!(kinds, ["ConfigMap", "Secret"], "ordered by identity");
        let two = store
            .append_deployment_object(&ADMIN, new)
            .await
            .expect("append");
        let one = mk_object(store, stack.id, "1").await;
        let marker = store.delete_stack(&ADMIN, stack.id).await.expect("delete");
        let unknown = DeploymentObjectId::new();

        let mut answered = store
            .deployment_object_items(&[marker.id, unknown, one.id, two.id])
            .await
            .expect("items");
        answered.sort_by_key(|(id, _)| *id);
        let expected_one = NewDeploymentObject::from_yaml(
            stack.id,
            super::fixtures::config_map_yaml("app-config", "1"),
        )
        .expect("valid YAML")
        .items()
        .to_vec();
        assert_eq!(expected_one.len(), 1);
        let mut expected = vec![
            (two.id, expected_two),
            (one.id, expected_one),
            (marker.id, Vec::<ItemDigest>::new()),
        ];
        expected.sort_by_key(|(id, _)| *id);
        assert_eq!(answered, expected);

        assert_eq!(
            store.deployment_object_items(&[]).await.expect("none"),
            Vec::new()
        );
        assert_eq!(
            store
                .deployment_object_items(&[unknown])
                .await
                .expect("unknown"),
            Vec::new()
        );
    }

    /// An agent's applied state is its latest successful event per stack: an apply (or a
    /// drift repair) names its object, a delete none; failures change nothing; a replayed
    /// report counts again; other agents and stacks keep their own.
    pub async fn plan_applied_states_follow_successful_events(store: &dyn Store) {
        use EventStatus::{Failure, Success};
        use EventType::{Apply, Delete, Drift};
        let a = mk_agent(store, "a").await.id;
        let b = mk_agent(store, "b").await.id;
        let stack = mk_stack(store, "s").await.id;
        let other = mk_stack(store, "other").await.id;
        let v1 = mk_object(store, stack, "1").await.id;
        let v2 = mk_object(store, stack, "2").await.id;
        let o1 = mk_object(store, other, "1").await.id;
        assert_eq!(applied(store, stack).await, Vec::new());

        let first = new_event(a, v1, Apply, Success);
        let event = store
            .record_agent_event(&Actor::Agent(a), first.clone())
            .await
            .expect("record");
        assert_eq!(
            store.applied_states(stack).await.expect("applied"),
            vec![AppliedState {
                agent_id: a,
                deployment_object_id: Some(v1),
                recorded_at: event.created_at,
            }]
        );

        mk_event(store, a, v2, Apply, Failure).await;
        assert_eq!(
            applied(store, stack).await,
            vec![(a, Some(v1))],
            "a failure"
        );

        mk_event(store, b, v2, Apply, Success).await;
        mk_event(store, b, o1, Apply, Success).await;
        assert_eq!(
            applied(store, stack).await,
            by_agent(vec![(a, Some(v1)), (b, Some(v2))])
        );
        assert_eq!(applied(store, other).await, vec![(b, Some(o1))]);

        mk_event(store, a, v2, Drift, Success).await;
        assert_eq!(
            applied(store, stack).await,
            by_agent(vec![(a, Some(v2)), (b, Some(v2))])
        );

        mk_event(store, a, v2, Delete, Success).await;
        assert_eq!(
            applied(store, stack).await,
            by_agent(vec![(a, None), (b, Some(v2))])
        );
        mk_event(store, b, v2, Delete, Failure).await;

        // The first report again (event ids are derived from what they report: an agent
        // applying v1 again after the stack came back repeats it): it runs v1 again.
        let replayed = store
            .record_agent_event(&Actor::Agent(a), first)
            .await
            .expect("replay");
        assert_eq!(replayed, event, "the stored event, unchanged");
        assert_eq!(
            applied(store, stack).await,
            by_agent(vec![(a, Some(v1)), (b, Some(v2))])
        );
        assert_eq!(applied(store, other).await, vec![(b, Some(o1))]);

        // A deleted stack still answers; one that never existed is NotFound.
        store.delete_stack(&ADMIN, stack).await.expect("delete");
        assert_eq!(
            applied(store, stack).await,
            by_agent(vec![(a, Some(v1)), (b, Some(v2))])
        );
        expect_not_found(store.applied_states(StackId::new()).await, "stack");
    }

    /// Guard overrides start empty, are replaced whole (empty clears them), each set is
    /// one audit record of the stack, and a deleted stack has none.
    pub async fn plan_guard_overrides_are_replaced_and_audited(store: &dyn Store) {
        let stack = mk_stack(store, "s").await.id;
        let other = mk_stack(store, "other").await.id;
        assert_eq!(
            store.guard_overrides(stack).await.expect("default"),
            GuardOverrides::default()
        );
        let before = all_audit(store).await.len();

        let first = GuardOverrides {
            max_removed_fraction: Some(0.5),
            min_removed_agents: Some(3),
            max_pruned_objects: Some(10),
            protected_kinds: Some(BTreeSet::from(["Namespace".to_owned()])),
        };
        let answered = store
            .set_guard_overrides(&ADMIN, stack, first.clone())
            .await
            .expect("set");
        assert_eq!(answered, first);
        assert_eq!(store.guard_overrides(stack).await.expect("get"), first);
        assert_eq!(
            store.guard_overrides(other).await.expect("other"),
            GuardOverrides::default()
        );

        let second = GuardOverrides {
            max_pruned_objects: Some(0),
            ..Default::default()
        };
        store
            .set_guard_overrides(&ADMIN, stack, second.clone())
            .await
            .expect("replace");
        assert_eq!(store.guard_overrides(stack).await.expect("get"), second);
        store
            .set_guard_overrides(&ADMIN, stack, GuardOverrides::default())
            .await
            .expect("clear");
        assert_eq!(
            store.guard_overrides(stack).await.expect("cleared"),
            GuardOverrides::default()
        );

        let audit = all_audit(store).await;
        assert_eq!(audit.len(), before + 3);
        for record in &audit[before..] {
            assert_eq!(record.actor, ADMIN);
            assert_eq!(record.action, AuditAction::Update);
            assert_eq!(record.resource_kind, ResourceKind::Stack);
            assert_eq!(record.resource_id, stack.0);
        }

        store.delete_stack(&ADMIN, stack).await.expect("delete");
        let before = all_audit(store).await.len();
        expect_not_found(store.guard_overrides(stack).await, "stack");
        expect_not_found(
            store.set_guard_overrides(&ADMIN, stack, first).await,
            "stack",
        );
        expect_not_found(store.guard_overrides(StackId::new()).await, "stack");
        assert_eq!(all_audit(store).await.len(), before);
    }

    /// A plan reads back as stored, with who made it; one audit record per plan; a
    /// missing or deleted stack is `NotFound` and stores nothing.
    pub async fn plan_round_trips_with_its_creator(store: &dyn Store) {
        let generator = mk_generator(store, "g").await;
        let stack = mk_stack(store, "s").await.id;
        let new = new_plan(stack, PlanOrigin::Requested, Duration::minutes(15));
        let actor = Actor::Generator(generator.id);
        let started = Utc::now() - Duration::seconds(1);
        let plan = store
            .create_plan(&actor, new.clone())
            .await
            .expect("create");
        assert_eq!(plan.stack_id, stack);
        assert_eq!(plan.origin, PlanOrigin::Requested);
        assert_eq!(plan.change, new.change);
        assert_eq!(plan.digest, new.digest);
        assert_eq!(plan.body, new.body);
        assert_eq!(plan.created_by, actor);
        assert!(plan.created_at >= started && plan.created_at <= Utc::now());
        assert!((plan.expires_at - new.expires_at).abs() < Duration::milliseconds(1));
        assert_eq!(plan.consumed_at, None);
        assert_eq!(plan.consumed_by, None);
        assert_eq!(store.get_plan(plan.id).await.expect("get"), plan);

        let held = store
            .create_plan(
                &Actor::System,
                new_plan(stack, PlanOrigin::Held, Duration::minutes(5)),
            )
            .await
            .expect("create held");
        assert_eq!(held.origin, PlanOrigin::Held);
        assert_eq!(held.created_by, Actor::System);
        assert_eq!(store.get_plan(held.id).await.expect("get held"), held);

        let audit = audit_of(store, ResourceKind::Plan).await;
        let seen: Vec<_> = audit
            .iter()
            .map(|r| (r.actor, r.action, r.resource_id))
            .collect();
        assert_eq!(
            seen,
            vec![
                (actor, AuditAction::Create, plan.id.0),
                (Actor::System, AuditAction::Create, held.id.0),
            ]
        );

        expect_not_found(store.get_plan(PlanId::new()).await, "plan");
        let missing = new_plan(StackId::new(), PlanOrigin::Requested, Duration::minutes(1));
        expect_not_found(store.create_plan(&ADMIN, missing).await, "stack");
        store.delete_stack(&ADMIN, stack).await.expect("delete");
        let before = all_audit(store).await.len();
        let deleted = new_plan(stack, PlanOrigin::Requested, Duration::minutes(1));
        expect_not_found(store.create_plan(&ADMIN, deleted).await, "stack");
        assert_eq!(all_audit(store).await.len(), before);
        assert_eq!(
            store
                .get_plan(plan.id)
                .await
                .expect("kept after the deletion"),
            plan
        );
    }

    /// The held plan is the stack's newest held plan while it is neither consumed nor
    /// expired (a newer hold supersedes older ones); requested plans and other stacks'
    /// plans never count.
    pub async fn plan_held_is_the_newest_held_plan_while_open(store: &dyn Store) {
        let stack = mk_stack(store, "s").await.id;
        let other = mk_stack(store, "other").await.id;
        let create = async |stack, origin, expires_in| {
            store
                .create_plan(&Actor::System, new_plan(stack, origin, expires_in))
                .await
                .expect("create")
        };
        let now = Utc::now;
        assert_eq!(store.held_plan(stack, now()).await.expect("none"), None);

        let older = create(stack, PlanOrigin::Held, Duration::minutes(15)).await;
        create(stack, PlanOrigin::Requested, Duration::minutes(15)).await;
        create(other, PlanOrigin::Held, Duration::minutes(15)).await;
        assert_eq!(
            store.held_plan(stack, now()).await.expect("held"),
            Some(older.clone()),
            "a requested plan is not held"
        );

        let newer = create(stack, PlanOrigin::Held, Duration::minutes(15)).await;
        assert_eq!(
            store.held_plan(stack, now()).await.expect("held"),
            Some(newer.clone())
        );
        // Expiry is judged at the time asked for.
        assert_eq!(
            store
                .held_plan(stack, newer.expires_at)
                .await
                .expect("at expiry"),
            None
        );
        // A newer hold supersedes the older one: once it is released, none is held.
        assert!(matches!(
            super::confirm::confirm_append(store, &newer).await,
            crate::store::Confirmed::Written { .. }
        ));
        assert_eq!(
            store.held_plan(stack, now()).await.expect("held"),
            None,
            "a consumed plan is released, and the older one with it"
        );
        let again = create(stack, PlanOrigin::Held, Duration::minutes(15)).await;
        assert_eq!(
            store.held_plan(stack, now()).await.expect("held"),
            Some(again)
        );
        // The newest expired: nothing is held (the controller holds again if it must).
        create(stack, PlanOrigin::Held, Duration::minutes(-1)).await;
        assert_eq!(store.held_plan(stack, now()).await.expect("none"), None);
        assert_eq!(
            store
                .held_plan(other, now())
                .await
                .expect("other")
                .map(|p| p.stack_id),
            Some(other)
        );
    }
);
