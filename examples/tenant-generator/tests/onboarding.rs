//! Onboarding and offboarding end to end, on a fresh SQLite file per test, checked
//! through the Brokkr runtime the tenant control plane runs on.

use std::sync::Arc;
use std::time::Duration;

use brokkr_core::runtime::{self, AgentRegistration, Poll, RegisteredAgent};
use brokkr_core::selector::LabelSelector;
use brokkr_core::{
    Actor, AgentId, ContentListing, PageRequest, Provenance, StackFilter, Store, TargetAction,
    TargetFilter,
};
use brokkr_example_tenant_generator::{
    Agents, ControlPlane, DEFAULT_IMAGE, Error, Plan, TENANT_LABEL, TenantSpec,
};
use serde_json::json;

/// A control plane over a new SQLite file; the directory lives as long as the guard.
async fn fresh() -> (ControlPlane, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("create a temporary directory");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("tenants.db").display()
    );
    let control_plane = ControlPlane::open(&url).await.expect("open the store");
    (control_plane, dir)
}

/// Registers an agent through the runtime; the answer holds its key.
async fn register(
    control_plane: &ControlPlane,
    name: &str,
    cluster: &str,
    labels: &[(&str, &str)],
) -> RegisteredAgent {
    control_plane
        .runtime()
        .create_agent(
            &Actor::System,
            AgentRegistration {
                name: name.into(),
                cluster_name: cluster.into(),
                labels: labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
                annotations: Default::default(),
            },
        )
        .await
        .expect("register an agent")
}

async fn mk_agent(
    control_plane: &ControlPlane,
    name: &str,
    cluster: &str,
    labels: &[(&str, &str)],
) -> AgentId {
    register(control_plane, name, cluster, labels)
        .await
        .agent
        .agent
        .id
}

/// What the agent would pull now, read through the runtime's target-state cache.
async fn target_state(control_plane: &ControlPlane, agent: AgentId) -> brokkr_core::TargetState {
    control_plane
        .runtime()
        .target_state(&Actor::System, agent)
        .await
        .expect("read the target state")
        .state
        .clone()
}

fn pro(name: &str, replicas: u32) -> TenantSpec {
    TenantSpec {
        plan: Some(Plan::Pro),
        replicas: Some(replicas),
        ..TenantSpec::new(name)
    }
}

fn named(names: &[&str]) -> Agents {
    Agents::Named(names.iter().map(|n| (*n).to_owned()).collect())
}

async fn targets_of(store: &dyn Store, stack: brokkr_core::StackId) -> Vec<AgentId> {
    let filter = TargetFilter {
        stack_id: Some(stack),
        ..TargetFilter::default()
    };
    let mut agents: Vec<AgentId> = store
        .list_agent_targets(&filter, &PageRequest::first(100))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|t| t.removed_at.is_none())
        .map(|t| t.agent_id)
        .collect();
    agents.sort();
    agents
}

async fn live_stacks(store: &dyn Store) -> usize {
    store
        .list_stacks(&StackFilter::default(), &PageRequest::first(100))
        .await
        .unwrap()
        .items
        .len()
}

fn sorted(mut ids: Vec<AgentId>) -> Vec<AgentId> {
    ids.sort();
    ids
}

#[tokio::test]
async fn onboarding_creates_the_stack_its_object_and_its_targets() {
    let (control_plane, _dir) = fresh().await;
    let store = control_plane.store().as_ref();
    let edge1 = mk_agent(&control_plane, "edge-1", "eu-west", &[]).await;
    let edge2 = mk_agent(&control_plane, "edge-2", "us-east", &[]).await;
    mk_agent(&control_plane, "edge-3", "us-east", &[]).await;

    let onboarded = control_plane
        .onboard(&pro("acme", 3), &named(&["edge-1", "edge-2"]))
        .await
        .unwrap();

    assert!(onboarded.stack_created);
    assert_eq!(onboarded.stack.name, "tenant-acme");
    assert_eq!(onboarded.stack.labels[TENANT_LABEL], "acme");
    let object = &onboarded.deployment_object;
    assert_eq!(object.stack_id, onboarded.stack.id);
    assert_eq!(
        object.provenance,
        Some(Provenance {
            template_id: None,
            template_version: None,
            generator: Some("tenant".into()),
            parameters: json!({"name": "acme", "plan": "pro", "replicas": 3, "image": DEFAULT_IMAGE}),
        })
    );
    assert_eq!(
        object.yaml_checksum,
        brokkr_core::model::checksum(&object.yaml_content)
    );
    let kinds: Vec<String> = brokkr_core::manifest::parse(&object.yaml_content)
        .unwrap()
        .iter()
        .map(|m| m.kind().to_owned())
        .collect();
    assert_eq!(kinds, ["Namespace", "ResourceQuota", "Deployment"]);

    assert_eq!(
        sorted(onboarded.newly_assigned.clone()),
        sorted(vec![edge1, edge2])
    );
    assert!(onboarded.already_assigned.is_empty());
    assert_eq!(
        targets_of(store, onboarded.stack.id).await,
        sorted(vec![edge1, edge2])
    );

    // What the agent will pull: the tenant's object, to apply.
    let state = target_state(&control_plane, edge1).await;
    assert_eq!(state.entries.len(), 1);
    assert_eq!(state.entries[0].action, TargetAction::Apply);
    assert_eq!(state.entries[0].deployment_object.id, object.id);
    // And what was written, by whom.
    let stored = store.get_deployment_object(object.id).await.unwrap();
    assert_eq!(&stored, object);
}

#[tokio::test]
async fn re_onboarding_appends_a_new_version_and_adds_agents() {
    let (control_plane, _dir) = fresh().await;
    let store = control_plane.store().as_ref();
    let edge1 = mk_agent(&control_plane, "edge-1", "eu-west", &[]).await;
    let edge2 = mk_agent(&control_plane, "edge-2", "eu-west", &[]).await;

    let first = control_plane
        .onboard(&TenantSpec::new("acme"), &named(&["edge-1"]))
        .await
        .unwrap();
    assert_eq!(first.tenant.replicas, 1);
    let second = control_plane
        .onboard(&pro("acme", 5), &named(&["edge-1", "edge-2", "edge-2"]))
        .await
        .unwrap();

    assert!(!second.stack_created);
    assert_eq!(second.stack.id, first.stack.id);
    assert!(second.deployment_object.sequence > first.deployment_object.sequence);
    assert_ne!(
        second.deployment_object.yaml_checksum,
        first.deployment_object.yaml_checksum
    );
    assert_eq!(second.newly_assigned, [edge2]);
    assert_eq!(second.already_assigned, [edge1]);
    assert_eq!(
        second
            .deployment_object
            .provenance
            .as_ref()
            .unwrap()
            .parameters["replicas"],
        5
    );

    let versions = store
        .list_deployment_objects(
            first.stack.id,
            ContentListing::Omit,
            &PageRequest::first(10),
        )
        .await
        .unwrap()
        .items;
    assert_eq!(versions.len(), 2);
    assert_eq!(live_stacks(store).await, 1);
    // Both agents now pull the new version only.
    for agent in [edge1, edge2] {
        let state = target_state(&control_plane, agent).await;
        assert_eq!(state.entries.len(), 1);
        assert_eq!(
            state.entries[0].deployment_object.id,
            second.deployment_object.id
        );
    }
}

#[tokio::test]
async fn a_selector_picks_the_matching_active_agents() {
    let (control_plane, _dir) = fresh().await;
    let store = control_plane.store().as_ref();
    let eu1 = mk_agent(&control_plane, "a", "eu-1", &[("region", "eu")]).await;
    let eu2 = mk_agent(&control_plane, "b", "eu-2", &[("region", "eu")]).await;
    mk_agent(&control_plane, "c", "us-1", &[("region", "us")]).await;
    let paused = mk_agent(&control_plane, "d", "eu-3", &[("region", "eu")]).await;
    control_plane
        .runtime()
        .update_agent(
            &Actor::System,
            paused,
            brokkr_core::AgentUpdate {
                status: Some(brokkr_core::AgentStatus::Inactive),
                ..Default::default()
            },
        )
        .await
        .unwrap();

    let selector = LabelSelector {
        match_labels: [("region".to_owned(), "eu".to_owned())].into(),
        ..LabelSelector::default()
    };
    let onboarded = control_plane
        .onboard(&TenantSpec::new("acme"), &Agents::Matching(selector))
        .await
        .unwrap();
    assert_eq!(sorted(onboarded.newly_assigned), sorted(vec![eu1, eu2]));
    assert_eq!(
        targets_of(store, onboarded.stack.id).await,
        sorted(vec![eu1, eu2])
    );
}

#[tokio::test]
async fn refused_onboardings_write_nothing() {
    let (control_plane, _dir) = fresh().await;
    let store = control_plane.store().as_ref();
    mk_agent(&control_plane, "edge", "eu-west", &[]).await;
    mk_agent(&control_plane, "edge", "us-east", &[]).await;

    let err = control_plane
        .onboard(&pro("acme", 0), &Agents::none())
        .await
        .unwrap_err();
    assert!(matches!(err, Error::InvalidSpec(_)), "{err:?}");
    let pointers: Vec<&str> = err
        .violations()
        .iter()
        .map(|v| v.pointer.as_str())
        .collect();
    assert_eq!(pointers, ["/replicas"]);

    let err = control_plane
        .onboard(&TenantSpec::new("Not A DNS Label"), &Agents::none())
        .await
        .unwrap_err();
    assert_eq!(err.violations()[0].pointer, "/name");

    let err = control_plane
        .onboard(&TenantSpec::new("acme"), &named(&["nobody"]))
        .await
        .unwrap_err();
    assert!(
        matches!(&err, Error::UnknownAgent(name) if name == "nobody"),
        "{err:?}"
    );

    let err = control_plane
        .onboard(&TenantSpec::new("acme"), &named(&["edge"]))
        .await
        .unwrap_err();
    let Error::AmbiguousAgent { name, mut clusters } = err else {
        panic!("{err:?}");
    };
    clusters.sort();
    assert_eq!(
        (name.as_str(), clusters),
        ("edge", vec!["eu-west".to_owned(), "us-east".to_owned()])
    );

    let err = control_plane
        .onboard(&TenantSpec::new("acme"), &Agents::Ids(vec![AgentId::new()]))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::UnknownAgent(_)), "{err:?}");

    assert_eq!(
        live_stacks(store).await,
        0,
        "a refused onboarding created a stack"
    );
}

#[tokio::test]
async fn offboarding_sends_a_deletion_marker() {
    let (control_plane, _dir) = fresh().await;
    let edge = mk_agent(&control_plane, "edge-1", "eu-west", &[]).await;
    let onboarded = control_plane
        .onboard(&TenantSpec::new("acme"), &named(&["edge-1"]))
        .await
        .unwrap();

    let marker = control_plane.offboard("acme").await.unwrap();
    assert!(marker.is_deletion_marker);
    assert_eq!(marker.stack_id, onboarded.stack.id);
    assert!(marker.sequence > onboarded.deployment_object.sequence);
    assert!(control_plane.tenant_stack("acme").await.unwrap().is_none());

    // The agent is told to remove the tenant's objects.
    let state = target_state(&control_plane, edge).await;
    assert_eq!(state.entries.len(), 1);
    assert_eq!(state.entries[0].action, TargetAction::Remove);
    assert_eq!(state.entries[0].deployment_object.id, marker.id);

    let err = control_plane.offboard("acme").await.unwrap_err();
    assert!(
        matches!(&err, Error::UnknownTenant(name) if name == "acme"),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "no tenant named \"acme\"");

    // The name is free again: onboarding starts a new stack.
    let again = control_plane
        .onboard(&TenantSpec::new("acme"), &Agents::none())
        .await
        .unwrap();
    assert!(again.stack_created);
    assert_ne!(again.stack.id, onboarded.stack.id);
}

/// Waits up to 10 s for the agent's target state to differ from `etag`, as the agent's
/// long poll does; the task is spawned so the caller can change things meanwhile.
fn long_poll(
    runtime: &runtime::ControlPlane,
    agent: Actor,
    id: AgentId,
    etag: String,
) -> tokio::task::JoinHandle<runtime::Result<Poll>> {
    let runtime = runtime.clone();
    tokio::spawn(async move {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        runtime.wait_for_change(&agent, id, &etag, deadline).await
    })
}

/// Lets the spawned poll reach its wait, and checks it is waiting: the wake-up below is
/// then the change's doing, not a state read after the change.
async fn assert_waiting(poll: &tokio::task::JoinHandle<runtime::Result<Poll>>) {
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(!poll.is_finished(), "the poll answered before any change");
}

async fn woken(
    poll: tokio::task::JoinHandle<runtime::Result<Poll>>,
) -> Arc<runtime::CachedTargetState> {
    match poll.await.expect("the poll task").expect("the poll") {
        Poll::Changed(state) => state,
        Poll::Unchanged(state) => panic!("the poll timed out with {:?}", state.state),
    }
}

#[tokio::test]
async fn an_agents_long_poll_is_woken_by_onboarding_and_offboarding() {
    let (control_plane, _dir) = fresh().await;
    let registered = register(&control_plane, "edge-1", "eu-west", &[]).await;
    let id = registered.agent.agent.id;
    let runtime = control_plane.runtime();
    // The agent's side: it authenticates with its key and holds its (empty) state.
    let agent = runtime.authenticate(registered.key.expose()).await.unwrap();
    let held = runtime.target_state(&agent, id).await.unwrap();
    assert!(held.state.entries.is_empty());

    let poll = long_poll(runtime, agent, id, held.etag.clone());
    assert_waiting(&poll).await;
    let onboarded = control_plane
        .onboard(&TenantSpec::new("acme"), &named(&["edge-1"]))
        .await
        .unwrap();
    let applied = woken(poll).await;
    assert_ne!(applied.etag, held.etag);
    assert_eq!(applied.state.entries.len(), 1);
    assert_eq!(applied.state.entries[0].action, TargetAction::Apply);
    assert_eq!(
        applied.state.entries[0].deployment_object.id,
        onboarded.deployment_object.id
    );

    let poll = long_poll(runtime, agent, id, applied.etag.clone());
    assert_waiting(&poll).await;
    let marker = control_plane.offboard("acme").await.unwrap();
    let removed = woken(poll).await;
    assert_eq!(removed.state.entries.len(), 1);
    assert_eq!(removed.state.entries[0].action, TargetAction::Remove);
    assert_eq!(removed.state.entries[0].deployment_object.id, marker.id);

    control_plane.shutdown().await;
}
