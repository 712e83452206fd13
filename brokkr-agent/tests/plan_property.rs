//! Plan equals what agents do (ROLLOUTS.md §12 item 13): for random stacks, fleets and
//! changes, what `ControlPlane::plan` says each agent creates, updates and prunes is
//! exactly what that agent's real `Reconciler` then does to its simulated cluster.
//!
//! Each case builds a control plane on the memory store, a fleet of agents (each with
//! its own `MemoryApplier` and `Reconciler`), a stack with 1-4 versions of ConfigMaps,
//! Secrets and Namespaces, and brings every agent to its own starting point (some on
//! older versions, some assigned but never reconciled, some not assigned at all) by
//! reconciling its target state right after the version it should stop at and
//! reporting the events it produced, as the agent loop does. Then it plans one change
//! (a new deployment object, a rollback, an unassignment, the stack's deletion or a
//! placement policy by labels), makes it with the stack's guard loosened, reconciles
//! every agent once more and compares each cluster before and after with the plan's
//! group for that agent. Identity is group, kind, namespace and name; an update is a
//! change of content (Brokkr's own stamps, which name the deployment object, left out).
//!
//! ConfigMaps and Secrets live in the cluster's own `default` namespace and the
//! stack's Namespaces hold nothing: the plan is about the stack's items, and a
//! Namespace's cascade (its objects deleted along with it) is the applier's business,
//! tested with the appliers.
//!
//! `PROPTEST_CASES` raises the number of cases (24 by default).

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use brokkr_agent::broker::{Action, DeploymentObjectWire, TargetEntry};
use brokkr_agent::metrics::Metrics;
use brokkr_agent::reconcile::Reconciler;
use brokkr_core::applier::{CHECKSUM_ANNOTATION, DEPLOYMENT_OBJECT_ANNOTATION, STACK_LABEL};
use brokkr_core::placement::{PlacementPolicy, RejectionPage};
use brokkr_core::plan::{GuardOverrides, MoveGroup, Verdict};
use brokkr_core::runtime::ControlPlane;
use brokkr_core::runtime::plan::PlanRequest;
use brokkr_core::testing::{MemoryApplier, MemoryStore};
use brokkr_core::{
    Actor, AgentEventId, AgentId, Applier, DeploymentObjectId, EventStatus, Heartbeat, NewAgent,
    NewAgentEvent, NewStack, ObjectKey, Pak, StackId, TargetAction,
};
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;
use serde_json::Value;

/// The kinds a version is made of.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Kind {
    ConfigMap,
    Secret,
    Namespace,
}

/// One version of the stack: (kind, name) → a content value. A map, so identities are
/// unique, and small value ranges, so two versions often share an object's content.
type VersionSpec = BTreeMap<(Kind, u8), u8>;

/// One agent of the fleet.
#[derive(Debug, Clone)]
struct AgentSpec {
    /// Assigned to the stack directly.
    assigned: bool,
    /// The version it applied (1-based; 0: never reconciled). Only for assigned agents.
    stage: usize,
    /// Its `region` label is `a` (a placement policy picks `region=a`), else `b`.
    region_a: bool,
}

/// The change the case plans and then makes.
#[derive(Debug, Clone)]
enum Change {
    /// Append a new version.
    NewObject(VersionSpec),
    /// Roll back to version `n % (versions - 1)` (the latest is not a rollback).
    Rollback(usize),
    /// Unassign the `n % assigned`th assigned agent.
    Unassign(usize),
    /// Delete the stack.
    Delete,
    /// Place the stack on `region=a` agents (direct targets stay).
    Placement,
}

#[derive(Debug, Clone)]
struct Case {
    versions: Vec<VersionSpec>,
    agents: Vec<AgentSpec>,
    change: Change,
}

fn version() -> impl Strategy<Value = VersionSpec> {
    let kind = prop_oneof![
        Just(Kind::ConfigMap),
        Just(Kind::Secret),
        Just(Kind::Namespace)
    ];
    // At least one object: the store refuses an empty deployment object.
    proptest::collection::btree_map((kind, 0u8..4), 0u8..3, 1..=6)
}

fn case() -> impl Strategy<Value = Case> {
    let versions = proptest::collection::vec(version(), 1..=4);
    let agent =
        (any::<bool>(), 0usize..=4, any::<bool>()).prop_map(|(assigned, stage, region_a)| {
            AgentSpec {
                assigned,
                stage,
                region_a,
            }
        });
    let agents = proptest::collection::vec(agent, 1..=6);
    let change = prop_oneof![
        version().prop_map(Change::NewObject),
        (0usize..4).prop_map(Change::Rollback),
        (0usize..6).prop_map(Change::Unassign),
        Just(Change::Delete),
        Just(Change::Placement),
    ];
    (versions, agents, change).prop_map(|(mut versions, mut agents, change)| {
        if matches!(change, Change::Rollback(_)) && versions.len() == 1 {
            // A rollback needs an older version: the same content again will do.
            versions.push(versions[0].clone());
        }
        // Stages past the last version mean "the latest".
        for agent in &mut agents {
            agent.stage = agent.stage.min(versions.len());
        }
        Case {
            versions,
            agents,
            change,
        }
    })
}

fn yaml(version: &VersionSpec) -> String {
    let mut out = String::new();
    for (&(kind, name), &value) in version {
        let doc = match kind {
            Kind::ConfigMap => format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{name}, namespace: default}}\ndata: {{v: '{value}'}}\n"
            ),
            Kind::Secret => format!(
                "apiVersion: v1\nkind: Secret\nmetadata: {{name: secret-{name}, namespace: default}}\nstringData: {{v: '{value}'}}\n"
            ),
            Kind::Namespace => format!(
                "apiVersion: v1\nkind: Namespace\nmetadata: {{name: ns-{name}, labels: {{v: '{value}'}}}}\n"
            ),
        };
        out.push_str("---\n");
        out.push_str(&doc);
    }
    out
}

/// One agent: its id, its cluster and its reconciler.
struct Member {
    id: AgentId,
    cluster: Arc<MemoryApplier>,
    reconciler: Reconciler,
}

/// What a change did to one cluster, by identity.
#[derive(Debug, Default, PartialEq, Eq)]
struct Observed {
    create: BTreeSet<ObjectKey>,
    update: BTreeSet<ObjectKey>,
    prune: BTreeSet<ObjectKey>,
}

async fn member(cp: &ControlPlane, index: usize, spec: &AgentSpec) -> Member {
    let region = if spec.region_a { "a" } else { "b" };
    let agent = cp
        .store()
        .create_agent(
            &Actor::Admin,
            NewAgent {
                name: format!("agent-{index}"),
                cluster_name: format!("cluster-{index}"),
                labels: [("region".to_owned(), region.to_owned())].into(),
                annotations: Default::default(),
                key: Pak::generate().stored(),
            },
        )
        .await
        .expect("create agent");
    // Live, so a placement policy may choose it.
    let beat = Heartbeat {
        agent_id: agent.id,
        at: chrono::Utc::now(),
        capabilities: None,
    };
    cp.store()
        .record_heartbeats(&[beat])
        .await
        .expect("a heartbeat");
    cp.agent_changed(agent.id).await.expect("index the agent");
    let cluster = Arc::new(MemoryApplier::new());
    let applier: Arc<dyn Applier> = Arc::clone(&cluster) as Arc<dyn Applier>;
    Member {
        id: agent.id,
        cluster,
        reconciler: Reconciler::new(
            applier,
            agent.id,
            4,
            Duration::from_secs(60),
            Arc::new(Metrics::default()),
        ),
    }
}

/// One pass of the agent loop: read the target state, reconcile it, report every
/// event (as `agent.rs` sends them: the reconciler's id becomes the event's id).
async fn reconcile(cp: &ControlPlane, member: &mut Member) -> Result<(), TestCaseError> {
    let state = cp
        .store()
        .target_state(member.id)
        .await
        .expect("target state");
    let entries: Vec<TargetEntry> = state
        .entries
        .into_iter()
        .map(|entry| TargetEntry {
            stack_id: entry.stack_id,
            stack_name: entry.stack_name,
            action: match entry.action {
                TargetAction::Apply => Action::Apply,
                TargetAction::Remove => Action::Remove,
            },
            deployment_object: DeploymentObjectWire {
                id: entry.deployment_object.id,
                sequence_id: entry.deployment_object.sequence,
                yaml_content: entry.deployment_object.yaml_content,
                yaml_checksum: entry.deployment_object.yaml_checksum,
                is_deletion_marker: entry.deployment_object.is_deletion_marker,
                created_at: Some(entry.deployment_object.created_at),
            },
        })
        .collect();
    for report in member.reconciler.reconcile(&entries, false).await {
        prop_assert_eq!(
            report.status,
            EventStatus::Success,
            "every version applies: {:?}",
            report.message
        );
        let event = NewAgentEvent {
            id: AgentEventId(report.id),
            agent_id: member.id,
            deployment_object_id: report.deployment_object_id,
            event_type: report.event_type,
            status: report.status,
            message: report.message,
        };
        cp.record_agent_event(&Actor::Agent(member.id), event)
            .await
            .expect("record the event");
    }
    Ok(())
}

/// The cluster's objects with Brokkr's stamps removed: they name the deployment object,
/// which changes on every append even when the content does not.
fn snapshot(cluster: &MemoryApplier) -> BTreeMap<ObjectKey, Value> {
    cluster
        .objects()
        .into_iter()
        .map(|(key, mut value)| {
            let metadata = &mut value["metadata"];
            if let Some(labels) = metadata.get_mut("labels").and_then(Value::as_object_mut) {
                labels.remove(STACK_LABEL);
            }
            if let Some(annotations) = metadata
                .get_mut("annotations")
                .and_then(Value::as_object_mut)
            {
                annotations.remove(DEPLOYMENT_OBJECT_ANNOTATION);
                annotations.remove(CHECKSUM_ANNOTATION);
            }
            (key, value)
        })
        .collect()
}

fn observed(before: &BTreeMap<ObjectKey, Value>, after: &BTreeMap<ObjectKey, Value>) -> Observed {
    let mut seen = Observed::default();
    for (key, value) in after {
        match before.get(key) {
            None => {
                seen.create.insert(key.clone());
            }
            Some(old) if old != value => {
                seen.update.insert(key.clone());
            }
            Some(_) => {}
        }
    }
    for key in before.keys() {
        if !after.contains_key(key) {
            seen.prune.insert(key.clone());
        }
    }
    seen
}

fn planned(groups: &[MoveGroup], agent: AgentId) -> Observed {
    let Some(group) = groups
        .iter()
        .find(|g| g.agents.iter().any(|a| a.id == agent))
    else {
        return Observed::default();
    };
    let set = |keys: &[ObjectKey]| keys.iter().cloned().collect::<BTreeSet<_>>();
    Observed {
        create: set(&group.objects.create),
        update: set(&group.objects.update),
        prune: set(&group.objects.prune),
    }
}

/// The change as a plan request ([`make`] makes it).
fn request(
    change: &Change,
    objects: &[DeploymentObjectId],
    members: &[Member],
    specs: &[AgentSpec],
) -> PlanRequest {
    match change {
        Change::NewObject(version) => PlanRequest::Yaml(yaml(version)),
        Change::Rollback(n) => PlanRequest::Rollback(objects[n % (objects.len() - 1)]),
        Change::Unassign(n) => {
            let assigned: Vec<AgentId> = members
                .iter()
                .zip(specs)
                .filter(|(_, spec)| spec.assigned)
                .map(|(m, _)| m.id)
                .collect();
            PlanRequest::Unassign(assigned[n % assigned.len()])
        }
        Change::Delete => PlanRequest::Delete,
        Change::Placement => PlanRequest::Placement(Some(policy())),
    }
}

fn policy() -> PlacementPolicy {
    serde_json::from_value(serde_json::json!({"agent_selector": {"matchLabels": {"region": "a"}}}))
        .expect("a policy")
}

async fn make(cp: &ControlPlane, stack: StackId, request: PlanRequest) {
    match request {
        PlanRequest::Yaml(yaml) => {
            cp.append_deployment_object(&Actor::Admin, stack, yaml)
                .await
                .expect("append");
        }
        PlanRequest::Rollback(to) => {
            cp.rollback(&Actor::Admin, stack, to)
                .await
                .expect("roll back");
        }
        PlanRequest::Unassign(agent) => {
            cp.unassign_target(&Actor::Admin, agent, stack)
                .await
                .expect("unassign");
        }
        PlanRequest::Delete => {
            cp.delete_stack(&Actor::Admin, stack).await.expect("delete");
        }
        PlanRequest::Placement(Some(policy)) => {
            cp.set_placement_policy(&Actor::Admin, stack, policy, RejectionPage::default())
                .await
                .expect("place");
        }
        other => panic!("not generated: {other:?}"),
    }
}

async fn run(mut case: Case) -> Result<(), TestCaseError> {
    let cp = ControlPlane::builder(Arc::new(MemoryStore::new())).build();
    let _background = cp.start();
    if matches!(case.change, Change::Unassign(_)) && !case.agents.iter().any(|a| a.assigned) {
        // An unassignment needs an assigned agent.
        case.agents[0].assigned = true;
    }
    let mut members = Vec::new();
    for (index, spec) in case.agents.iter().enumerate() {
        members.push(member(&cp, index, spec).await);
    }
    let stack = cp
        .create_stack(
            &Actor::Admin,
            NewStack {
                name: "shop".into(),
                ..Default::default()
            },
        )
        .await
        .expect("a stack")
        .id;
    // Loosened, so every change goes ahead: the property is about what the plan says,
    // not whether the guard lets it through.
    let loose = GuardOverrides::off();
    cp.set_guard_policy(&Actor::Admin, stack, loose)
        .await
        .expect("loosen the guard");
    for (member, spec) in members.iter().zip(&case.agents) {
        if spec.assigned {
            cp.assign_target(&Actor::Admin, member.id, stack)
                .await
                .expect("assign");
        }
    }
    let mut objects = Vec::new();
    for (index, version) in case.versions.iter().enumerate() {
        let object = cp
            .append_deployment_object(&Actor::Admin, stack, yaml(version))
            .await
            .expect("append a version");
        objects.push(object.id);
        for (member, spec) in members.iter_mut().zip(&case.agents) {
            if spec.assigned && spec.stage == index + 1 {
                reconcile(&cp, member).await?;
            }
        }
    }

    let before: Vec<_> = members.iter().map(|m| snapshot(&m.cluster)).collect();
    let request = request(&case.change, &objects, &members, &case.agents);
    let plan = cp
        .plan(&Actor::Admin, stack, request.clone())
        .await
        .expect("a plan");
    prop_assert_eq!(plan.plan.guard.verdict, Verdict::Allowed);
    make(&cp, stack, request).await;
    for member in &mut members {
        reconcile(&cp, member).await?;
    }

    for (index, member) in members.iter().enumerate() {
        let did = observed(&before[index], &snapshot(&member.cluster));
        let said = planned(&plan.plan.groups, member.id);
        prop_assert_eq!(
            &did,
            &said,
            "agent {} ({:?}): what it did vs what the plan said; groups {:#?}",
            index,
            case.agents[index],
            plan.plan.groups
        );
    }
    Ok(())
}

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(24)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn the_plan_is_what_every_agent_then_does(case in case()) {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(run(case))?;
    }
}
