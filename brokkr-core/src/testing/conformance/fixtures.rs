//! Fixture builders: `mk_*` stores a resource with defaults, `new_*` builds the input
//! of a `Store` method.

use serde_json::json;

use crate::health::{HealthStatus, ObjectHealth};
use crate::id::{AgentEventId, AgentId, DeploymentObjectId, StackId};
use crate::manifest::ObjectKey;
use crate::metadata::Labels;
use crate::model::{
    Actor, Agent, AgentEvent, DeploymentObject, EventStatus, EventType, Generator, HealthReport,
    NewAgent, NewAgentEvent, NewDeploymentObject, NewGenerator, NewHealthReport, NewStack,
    NewTemplate, Stack, Template,
};
use crate::pak::Pak;
use crate::store::Store;

/// `Actor::Admin`, the actor of most fixtures.
pub const ADMIN: Actor = Actor::Admin;

/// Labels from pairs.
pub fn labels(pairs: &[(&str, &str)]) -> Labels {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

/// A one-object deployment: a ConfigMap named `name` whose `version` key is `version`.
pub fn config_map_yaml(name: &str, version: &str) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\ndata:\n  version: \"{version}\"\n"
    )
}

/// A stack named `name` created by the admin, without metadata.
pub async fn mk_stack(store: &dyn Store, name: &str) -> Stack {
    store
        .create_stack(
            &ADMIN,
            NewStack {
                name: name.into(),
                ..Default::default()
            },
        )
        .await
        .expect("create fixture stack")
}

/// An agent named `name` in cluster `cluster-1`, with a fresh key.
pub async fn mk_agent(store: &dyn Store, name: &str) -> Agent {
    mk_agent_in(store, name, "cluster-1").await
}

/// An agent named `name` in `cluster`, with a fresh key.
pub async fn mk_agent_in(store: &dyn Store, name: &str, cluster: &str) -> Agent {
    store
        .create_agent(&ADMIN, new_agent(name, cluster, &Pak::generate()))
        .await
        .expect("create fixture agent")
}

/// What `create_agent` needs for an agent with `key`.
pub fn new_agent(name: &str, cluster: &str, key: &Pak) -> NewAgent {
    NewAgent {
        name: name.into(),
        cluster_name: cluster.into(),
        labels: Labels::new(),
        annotations: Labels::new(),
        key: key.stored(),
    }
}

/// A generator named `name`, with a fresh key.
pub async fn mk_generator(store: &dyn Store, name: &str) -> Generator {
    store
        .create_generator(&ADMIN, new_generator(name, &Pak::generate()))
        .await
        .expect("create fixture generator")
}

/// What `create_generator` needs for a generator with `key`.
pub fn new_generator(name: &str, key: &Pak) -> NewGenerator {
    NewGenerator {
        name: name.into(),
        description: None,
        key: key.stored(),
    }
}

/// A global template named `name` at version 1.
pub async fn mk_template(store: &dyn Store, name: &str) -> Template {
    store
        .create_template(&ADMIN, new_template(name))
        .await
        .expect("create fixture template")
}

/// What `create_template` needs for a small global template.
pub fn new_template(name: &str) -> NewTemplate {
    NewTemplate {
        name: name.into(),
        content: config_map_yaml("{{ name }}", "{{ version }}"),
        parameters_schema: json!({
            "type": "object",
            "properties": {"name": {"type": "string"}, "version": {"type": "string"}},
            "required": ["name"],
        }),
        ..Default::default()
    }
}

/// Appends a ConfigMap deployment object with `version` to a stack.
pub async fn mk_object(store: &dyn Store, stack: StackId, version: &str) -> DeploymentObject {
    let new = NewDeploymentObject::from_yaml(stack, config_map_yaml("app-config", version))
        .expect("fixture YAML is valid");
    store
        .append_deployment_object(&ADMIN, new)
        .await
        .expect("append fixture deployment object")
}

/// Assigns `stack` to `agent` as the admin.
pub async fn mk_target(store: &dyn Store, agent: AgentId, stack: StackId) {
    store
        .assign_stack(&ADMIN, agent, stack)
        .await
        .expect("assign fixture target");
}

/// Records an event of `agent` about `object`, reported by the agent itself.
pub async fn mk_event(
    store: &dyn Store,
    agent: AgentId,
    object: DeploymentObjectId,
    event_type: EventType,
    status: EventStatus,
) -> AgentEvent {
    store
        .record_agent_event(
            &Actor::Agent(agent),
            new_event(agent, object, event_type, status),
        )
        .await
        .expect("record fixture event")
}

/// A new event with a fresh id.
pub fn new_event(
    agent: AgentId,
    object: DeploymentObjectId,
    event_type: EventType,
    status: EventStatus,
) -> NewAgentEvent {
    NewAgentEvent {
        id: AgentEventId::new(),
        agent_id: agent,
        deployment_object_id: object,
        event_type,
        status,
        message: None,
    }
}

/// A Deployment `name` in `default` with `status`, as an agent would report it.
pub fn workload(name: &str, status: HealthStatus) -> ObjectHealth {
    ObjectHealth {
        object: ObjectKey {
            api_version: "apps/v1".into(),
            kind: "Deployment".into(),
            namespace: Some("default".into()),
            name: name.into(),
        },
        status,
        reason: (status != HealthStatus::Healthy).then(|| "UnavailableReplicas".to_owned()),
        message: None,
    }
}

/// A health report of `agent` about `object`, without a summary.
pub fn new_health(
    agent: AgentId,
    object: DeploymentObjectId,
    resources: Vec<ObjectHealth>,
) -> NewHealthReport {
    NewHealthReport {
        agent_id: agent,
        deployment_object_id: object,
        resources,
        summary: None,
    }
}

/// Records the health of `object` as `agent` reports it.
pub async fn mk_health(
    store: &dyn Store,
    agent: AgentId,
    object: DeploymentObjectId,
    resources: Vec<ObjectHealth>,
) -> HealthReport {
    store
        .record_health(&Actor::Agent(agent), new_health(agent, object, resources))
        .await
        .expect("record fixture health report")
}
