//! A starter control plane that embeds Brokkr's store: the whole life of one stack,
//! from creation to removal, as a program would drive it through `brokkr_core::Store`.
//!
//! Run it with `cargo run -p brokkr-example-quickstart` (an in-memory SQLite database)
//! or point it at a database with `DATABASE_URL`. Copy it as the start of your own
//! control plane: everything here goes through the `Store` trait, so the same code runs
//! on SQLite, PostgreSQL or the in-memory store of the tests.

use std::time::Duration;

use brokkr_core::store::Result;
use brokkr_core::{
    Actor, AgentEventId, AuditFilter, EventStatus, EventType, NewAgent, NewAgentEvent,
    NewDeploymentObject, NewStack, PageRequest, Pak, Store, TargetAction,
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

/// Creates a stack and an agent, ships two versions, lets the "agent" report, then
/// deletes the stack and confirms the removal, the way a control plane and an agent
/// would drive a store.
pub async fn walkthrough(store: &dyn Store) -> Result<Walkthrough> {
    let admin = Actor::Admin;
    let mut out = Walkthrough::default();

    let stack = store
        .create_stack(
            &admin,
            NewStack {
                name: "tenant-a".into(),
                ..Default::default()
            },
        )
        .await?;
    out.step(format!("created stack {} ({})", stack.name, stack.id));

    // The agent's key is shown once; only its hash is stored.
    let key = Pak::generate();
    let agent = store
        .create_agent(
            &admin,
            NewAgent {
                name: "agent-1".into(),
                cluster_name: "eu-west-prod".into(),
                labels: [("region".to_owned(), "eu-west".to_owned())].into(),
                annotations: Default::default(),
                key: key.stored(),
            },
        )
        .await?;
    out.step(format!(
        "registered agent {} in {}",
        agent.name, agent.cluster_name
    ));
    store.assign_stack(&admin, agent.id, stack.id).await?;

    // A long poll makes its watch first, then reads, then waits.
    let mut watch = store.watch_target_state(agent.id);
    let invalid = NewDeploymentObject::from_yaml(stack.id, "kind: ConfigMap");
    out.step(format!(
        "rejected invalid YAML before storing anything: {}",
        invalid.expect_err("YAML without apiVersion is rejected")
    ));
    let v1 = NewDeploymentObject::from_yaml(stack.id, TENANT_V1)?;
    let v1 = store.append_deployment_object(&admin, v1).await?;
    let woke = tokio::time::timeout(Duration::from_secs(2), watch.changed())
        .await
        .is_ok();
    out.step(format!(
        "appended version 1 (sequence {}); agent's watch woke: {woke}",
        v1.sequence
    ));

    let v2 = NewDeploymentObject::from_yaml(stack.id, TENANT_V2)?;
    let v2 = store.append_deployment_object(&admin, v2).await?;

    // The agent pulls a state, not a queue: only the newest version.
    let state = store.target_state(agent.id).await?;
    let entry = &state.entries[0];
    out.step(format!(
        "target state: {:?} sequence {} (etag {})",
        entry.action,
        entry.deployment_object.sequence,
        state.etag()
    ));
    assert_eq!(entry.deployment_object.id, v2.id, "the latest version wins");

    let as_agent = Actor::Agent(agent.id);
    store
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

    let marker = store.delete_stack(&admin, stack.id).await?;
    let state = store.target_state(agent.id).await?;
    out.step(format!(
        "deleted the stack; target state now says {:?} (deletion marker {})",
        state.entries[0].action, marker.sequence
    ));
    assert_eq!(state.entries[0].action, TargetAction::Remove);

    store
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
    let remaining = store.target_state(agent.id).await?.entries.len();
    out.step(format!(
        "agent confirmed the removal; entries left in its target state: {remaining}"
    ));

    out.audit_records = store
        .list_audit_records(&AuditFilter::default(), &PageRequest::first(1000))
        .await?
        .items
        .len();
    Ok(out)
}
