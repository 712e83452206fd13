//! A starter control plane that embeds Brokkr: the whole life of one stack, from
//! creation to removal, driven through `brokkr_core::runtime::ControlPlane` — the same
//! object the reference REST server maps to HTTP, with its access rules, target-state
//! cache, long poll and heartbeats, and no transport.
//!
//! Run it with `cargo run -p brokkr-example-quickstart` (an in-memory SQLite database)
//! or point it at a database with `DATABASE_URL`. Copy it as the start of your own
//! control plane: put your own API (axum, gRPC, a queue consumer) in front of the same
//! calls.

use std::sync::Arc;
use std::time::Duration;

use brokkr_core::runtime::plan::GuardOptions;
use brokkr_core::runtime::{AgentRegistration, ControlPlane, Error, Poll, Result};
use brokkr_core::{
    Actor, AgentEventId, AuditFilter, EventStatus, EventType, NewAgentEvent, NewStack, PageRequest,
    Store, TargetAction,
};

/// Version 1 of the tenant's resources.
pub const TENANT_V1: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: tenant-a
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: tenant-a
data:
  plan: starter
";

/// Version 2: the tenant upgraded its plan.
pub const TENANT_V2: &str = "\
apiVersion: v1
kind: Namespace
metadata:
  name: tenant-a
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: settings
  namespace: tenant-a
data:
  plan: business
";

/// What happened, step by step, for the caller to print or check.
#[derive(Debug, Default)]
pub struct Walkthrough {
    /// One line per step.
    pub steps: Vec<String>,
    /// Audit records written along the way.
    pub audit_records: usize,
}

impl Walkthrough {
    fn step(&mut self, line: String) {
        self.steps.push(line);
    }
}

/// Creates a stack and an agent, ships two versions while the agent long-polls, lets
/// the agent report, then deletes the stack and confirms the removal: the control
/// plane's side and the agent's side of the same calls, over `store`.
pub async fn walkthrough(store: Arc<dyn Store>) -> Result<Walkthrough> {
    let control_plane = ControlPlane::builder(store).build();
    // Heartbeat writes, cache invalidation and placement run while `background` lives.
    let background = control_plane.start();
    let result = drive(&control_plane).await;
    background.shutdown().await;
    result
}

async fn drive(control_plane: &ControlPlane) -> Result<Walkthrough> {
    let admin = Actor::Admin;
    let mut out = Walkthrough::default();

    let stack = control_plane
        .create_stack(
            &admin,
            NewStack {
                name: "tenant-a".into(),
                ..Default::default()
            },
        )
        .await?;
    out.step(format!("created stack {} ({})", stack.name, stack.id));

    // The agent's key is in this answer only; only its hash is stored.
    let registered = control_plane
        .create_agent(
            &admin,
            AgentRegistration {
                name: "agent-1".into(),
                cluster_name: "eu-west-prod".into(),
                labels: [("region".to_owned(), "eu-west".to_owned())].into(),
                annotations: Default::default(),
            },
        )
        .await?;
    let agent = registered.agent.agent;
    out.step(format!(
        "registered agent {} in {}",
        agent.name, agent.cluster_name
    ));
    control_plane
        .assign_target(&admin, agent.id, stack.id)
        .await?;

    // The agent authenticates with its key, then long-polls its target state.
    let as_agent = control_plane.authenticate(registered.key.expose()).await?;
    let held = control_plane.target_state(&as_agent, agent.id).await?;
    let poll = {
        let control_plane = control_plane.clone();
        let etag = held.etag.clone();
        tokio::spawn(async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
            control_plane
                .wait_for_change(&as_agent, agent.id, &etag, deadline)
                .await
        })
    };

    let invalid = control_plane
        .append_deployment_object(&admin, stack.id, "kind: ConfigMap".into())
        .await;
    out.step(format!(
        "rejected invalid YAML before storing anything: {}",
        invalid.expect_err("YAML without apiVersion is rejected")
    ));
    let v1 = control_plane
        .append_deployment_object(&admin, stack.id, TENANT_V1.into())
        .await?;
    let woke = matches!(poll.await, Ok(Ok(Poll::Changed(_))));
    out.step(format!(
        "appended version 1 (sequence {}); agent's long poll woke: {woke}",
        v1.sequence
    ));

    let v2 = control_plane
        .append_deployment_object(&admin, stack.id, TENANT_V2.into())
        .await?;

    // The agent pulls a state, not a queue: only the newest version.
    let state = control_plane.target_state(&as_agent, agent.id).await?;
    let entry = &state.state.entries[0];
    out.step(format!(
        "target state: {:?} sequence {} (etag {})",
        entry.action, entry.deployment_object.sequence, state.etag
    ));
    assert_eq!(entry.deployment_object.id, v2.id, "the latest version wins");

    control_plane
        .record_agent_event(
            &as_agent,
            NewAgentEvent {
                id: AgentEventId::new(),
                agent_id: agent.id,
                deployment_object_id: v2.id,
                event_type: EventType::Apply,
                status: EventStatus::Success,
                message: Some("2 objects applied".into()),
            },
        )
        .await?;
    out.step("agent reported: apply succeeded".into());

    // Deleting would prune the tenant's Namespace, a protected kind: the blast-radius
    // guard stops it and keeps its plan, which an admin confirms once, while the
    // world is as planned.
    let plan = match control_plane.delete_stack(&admin, stack.id).await {
        Err(Error::BlastRadiusExceeded(plan)) => plan,
        other => panic!("the guard should stop this deletion: {other:?}"),
    };
    out.step(format!(
        "the guard stopped the deletion: {} agent(s) would lose the stack, {} object(s) pruned; plan {}",
        plan.plan.summary.agents_removed, plan.plan.summary.objects.prune, plan.id
    ));
    let confirmed = GuardOptions {
        dry_run: false,
        confirm_plan_id: Some(plan.id),
    };
    let marker = control_plane
        .guarded(confirmed)
        .delete_stack(&admin, stack.id)
        .await?
        .done()?;
    let state = wait_for_etag_change(control_plane, &as_agent, agent.id, &state.etag).await?;
    out.step(format!(
        "deleted the stack, plan confirmed; target state now says {:?} (deletion marker {})",
        state.state.entries[0].action, marker.sequence
    ));
    assert_eq!(state.state.entries[0].action, TargetAction::Remove);

    control_plane
        .record_agent_event(
            &as_agent,
            NewAgentEvent {
                id: AgentEventId::new(),
                agent_id: agent.id,
                deployment_object_id: marker.id,
                event_type: EventType::Delete,
                status: EventStatus::Success,
                message: None,
            },
        )
        .await?;
    let state = wait_for_etag_change(control_plane, &as_agent, agent.id, &state.etag).await?;
    out.step(format!(
        "agent confirmed the removal; entries left in its target state: {}",
        state.state.entries.len()
    ));

    out.audit_records = control_plane
        .list_audit_records(&admin, AuditFilter::default(), &PageRequest::first(1000))
        .await?
        .items
        .len();
    Ok(out)
}

/// The agent's target state once it differs from `etag` (a change committed a moment
/// ago reaches the cache through the store's change feed).
async fn wait_for_etag_change(
    control_plane: &ControlPlane,
    agent_actor: &Actor,
    agent: brokkr_core::AgentId,
    etag: &str,
) -> Result<Arc<brokkr_core::runtime::CachedTargetState>> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    match control_plane
        .wait_for_change(agent_actor, agent, etag, deadline)
        .await?
    {
        Poll::Changed(state) | Poll::Unchanged(state) => Ok(state),
    }
}
