//! The table of every operation of the API: method, path with placeholders, a body
//! that succeeds for the right caller, and the status each caller must get. Shared by
//! the access matrix (every cell) and the audit test (every mutation, once).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::{Caller, World};

/// Statuses for Admin, Agent (itself), OtherAgent, Generator (owner), OtherGenerator.
pub type Columns = [u16; 5];

/// Admin only.
const fn admin_only(ok: u16) -> Columns {
    [ok, 403, 403, 403, 403]
}
/// Admin, or the generator owning the row; another generator does not learn it exists.
const fn row_owner(ok: u16) -> Columns {
    [ok, 403, 403, ok, 404]
}
/// Admin or any generator (a listing of its own rows, or a creation of its own row).
const fn admin_or_generator(ok: u16) -> Columns {
    [ok, 403, 403, ok, ok]
}
/// Admin or the agent itself.
const fn agent_self(ok: u16) -> Columns {
    [ok, ok, 403, 403, 403]
}
/// The agent itself only (admin may not act as an agent).
const fn agent_only(ok: u16) -> Columns {
    [403, ok, 403, 403, 403]
}
/// Any valid key.
const fn anyone(ok: u16) -> Columns {
    [ok, ok, ok, ok, ok]
}

/// One row of the table.
pub struct Op {
    pub method: &'static str,
    /// Path under /api/v1 with `{agent}`, `{stack}`, ... placeholders.
    pub path: &'static str,
    pub body: Option<Value>,
    pub expect: Columns,
}

fn op(method: &'static str, path: &'static str, expect: Columns) -> Op {
    Op {
        method,
        path,
        body: None,
        expect,
    }
}

fn op_with(method: &'static str, path: &'static str, body: Value, expect: Columns) -> Op {
    Op {
        method,
        path,
        body: Some(body),
        expect,
    }
}

/// Fills the placeholders of `path` from `world`.
pub fn fill(path: &str, world: &World) -> String {
    path.replace("{agent}", &world.agent.to_string())
        .replace("{other_agent}", &world.other_agent.to_string())
        .replace("{generator}", &world.generator.to_string())
        .replace("{stack}", &world.stack.to_string())
        .replace("{spare_stack}", &world.spare_stack.to_string())
        .replace("{deployment_object}", &world.deployment_object.to_string())
        .replace("{template}", &world.template.to_string())
        .replace("{event}", &world.event.to_string())
        .replace("{guarded_stack}", &world.guarded_stack.to_string())
        .replace(
            "{old_deployment_object}",
            &world.old_deployment_object.to_string(),
        )
        .replace("{held_plan}", &world.held_plan.to_string())
        .replace("{plan}", &world.plan.to_string())
        .replace("{subscription}", &world.subscription.to_string())
        .replace("{delivery}", &world.delivery.to_string())
        .replace("{rollout_stack}", &world.rollout_stack.to_string())
        .replace("{rollout}", &world.rollout.to_string())
}

pub fn fill_value(body: &Value, world: &World) -> Value {
    match body {
        Value::String(s) => Value::String(fill(s, world)),
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), fill_value(v, world)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| fill_value(v, world)).collect()),
        other => other.clone(),
    }
}

/// The table. `{placeholders}` in bodies are filled too.
pub fn table() -> Vec<Op> {
    let yaml = super::CONFIGMAP_YAML;
    vec![
        // Stacks
        op("GET", "/stacks", admin_or_generator(200)),
        op_with(
            "POST",
            "/stacks",
            json!({"name": "new-stack"}),
            admin_or_generator(201),
        ),
        op("GET", "/stacks/{stack}", row_owner(200)),
        op_with(
            "PATCH",
            "/stacks/{stack}",
            json!({"description": "changed"}),
            row_owner(200),
        ),
        op("DELETE", "/stacks/{stack}", row_owner(200)),
        // Deployment objects
        op_with(
            "POST",
            "/stacks/{stack}/deployment-objects",
            json!({"yaml_content": yaml}),
            row_owner(201),
        ),
        op_with(
            "POST",
            "/stacks/{stack}/deployment-objects/from-template",
            json!({"template_id": "{template}", "parameters": {"name": "from-template"}}),
            row_owner(201),
        ),
        op("GET", "/stacks/{stack}/deployment-objects", row_owner(200)),
        op(
            "GET",
            "/deployment-objects/{deployment_object}",
            row_owner(200),
        ),
        op_with(
            "POST",
            "/stacks/{guarded_stack}/rollback",
            json!({"to_deployment_object_id": "{old_deployment_object}"}),
            row_owner(201),
        ),
        // Plans and the guard
        op_with(
            "POST",
            "/stacks/{stack}/plan",
            json!({"change": "delete"}),
            row_owner(201),
        ),
        op("GET", "/plans/{plan}", row_owner(200)),
        op("POST", "/plans/{held_plan}/confirm", admin_only(200)),
        op("GET", "/stacks/{stack}/guard-policy", row_owner(200)),
        op_with(
            "PUT",
            "/stacks/{stack}/guard-policy",
            json!({"max_pruned_objects": 50}),
            row_owner(200),
        ),
        // Targets
        op("GET", "/stacks/{stack}/targets", row_owner(200)),
        op("GET", "/agents/{agent}/targets", agent_self(200)),
        op_with(
            "POST",
            "/agents/{agent}/targets",
            json!({"stack_id": "{spare_stack}"}),
            row_owner(201),
        ),
        op("DELETE", "/agents/{agent}/targets/{stack}", row_owner(204)),
        // Placement (the seeded stack has a policy that matches no agent)
        op("GET", "/stacks/{stack}/placement", row_owner(200)),
        op_with(
            "PUT",
            "/stacks/{stack}/placement",
            json!({"agent_selector": {"matchLabels": {"tier": "web"}}, "max_clusters": 2}),
            row_owner(200),
        ),
        op("DELETE", "/stacks/{stack}/placement", row_owner(204)),
        op_with(
            "POST",
            "/stacks/{stack}/placement/preview",
            json!({"agent_selector": {"matchLabels": {"tier": "web"}}}),
            row_owner(200),
        ),
        // Stack metadata
        op("GET", "/stacks/{stack}/labels", row_owner(200)),
        op_with(
            "POST",
            "/stacks/{stack}/labels",
            json!({"key": "env", "value": "prod"}),
            row_owner(200),
        ),
        op("DELETE", "/stacks/{stack}/labels/team", row_owner(200)),
        op("GET", "/stacks/{stack}/annotations", row_owner(200)),
        op_with(
            "POST",
            "/stacks/{stack}/annotations",
            json!({"key": "owner", "value": "me"}),
            row_owner(200),
        ),
        op("DELETE", "/stacks/{stack}/annotations/note", row_owner(200)),
        // Agent metadata: the agent reads its own, admin changes it.
        op("GET", "/agents/{agent}/labels", agent_self(200)),
        op_with(
            "POST",
            "/agents/{agent}/labels",
            json!({"key": "env", "value": "prod"}),
            admin_only(200),
        ),
        op("DELETE", "/agents/{agent}/labels/team", admin_only(200)),
        op("GET", "/agents/{agent}/annotations", agent_self(200)),
        op_with(
            "POST",
            "/agents/{agent}/annotations",
            json!({"key": "owner", "value": "me"}),
            admin_only(200),
        ),
        op(
            "DELETE",
            "/agents/{agent}/annotations/note",
            admin_only(200),
        ),
        // Template metadata
        op("GET", "/templates/{template}/labels", row_owner(200)),
        op_with(
            "POST",
            "/templates/{template}/labels",
            json!({"key": "env", "value": "prod"}),
            row_owner(200),
        ),
        op(
            "DELETE",
            "/templates/{template}/labels/team",
            row_owner(200),
        ),
        op("GET", "/templates/{template}/annotations", row_owner(200)),
        op_with(
            "POST",
            "/templates/{template}/annotations",
            json!({"key": "owner", "value": "me"}),
            row_owner(200),
        ),
        op(
            "DELETE",
            "/templates/{template}/annotations/note",
            row_owner(200),
        ),
        // Generators
        op("GET", "/generators", admin_only(200)),
        op_with(
            "POST",
            "/generators",
            json!({"name": "new-generator"}),
            admin_only(201),
        ),
        op("GET", "/generators/{generator}", row_owner(200)),
        op_with(
            "PATCH",
            "/generators/{generator}",
            json!({"description": "changed"}),
            admin_only(200),
        ),
        op("DELETE", "/generators/{generator}", admin_only(204)),
        op("POST", "/generators/{generator}/rotate-pak", row_owner(200)),
        // Registered Rust generators
        op("GET", "/registered-generators", admin_or_generator(200)),
        op(
            "GET",
            "/registered-generators/configmap",
            admin_or_generator(200),
        ),
        // Templates
        op("GET", "/templates", admin_or_generator(200)),
        op_with(
            "POST",
            "/templates",
            json!({"name": "new-template", "content": "kind: ConfigMap\n", "parameters_schema": {"type": "object"}}),
            admin_or_generator(201),
        ),
        op("GET", "/templates/{template}", row_owner(200)),
        op_with(
            "PUT",
            "/templates/{template}",
            json!({"content": "kind: Secret\n", "parameters_schema": {"type": "object"}}),
            row_owner(200),
        ),
        op("DELETE", "/templates/{template}", row_owner(204)),
        op("GET", "/templates/{template}/versions", row_owner(200)),
        op("GET", "/templates/{template}/versions/1", row_owner(200)),
        // Agents
        op("GET", "/agents", admin_only(200)),
        op_with(
            "POST",
            "/agents",
            json!({"name": "new-agent", "cluster_name": "new-cluster"}),
            admin_only(201),
        ),
        op("GET", "/agents/{agent}", agent_self(200)),
        op_with(
            "PATCH",
            "/agents/{agent}",
            json!({"cluster_name": "renamed"}),
            admin_only(200),
        ),
        op("DELETE", "/agents/{agent}", admin_only(204)),
        op("POST", "/agents/{agent}/rotate-pak", agent_self(200)),
        op_with(
            "POST",
            "/agents/{agent}/heartbeat",
            json!({}),
            agent_only(204),
        ),
        op("GET", "/agents/{agent}/target-state", agent_self(200)),
        // Events
        op_with(
            "POST",
            "/agents/{agent}/events",
            json!({"deployment_object_id": "{deployment_object}", "event_type": "apply", "status": "success", "message": "ok"}),
            agent_only(201),
        ),
        op("GET", "/agents/{agent}/events", agent_self(200)),
        op("GET", "/agent-events", admin_only(200)),
        // Health
        op_with(
            "POST",
            "/agents/{agent}/health",
            json!({"deployment_object_id": "{deployment_object}", "summary": "all healthy", "resources": [
                {"api_version": "apps/v1", "kind": "Deployment", "namespace": "default", "name": "web", "status": "healthy"}
            ]}),
            agent_only(204),
        ),
        op("GET", "/stacks/{stack}/health", row_owner(200)),
        // Keys and audit
        op("POST", "/auth/pak", anyone(200)),
        op("GET", "/admin/audit-logs", admin_only(200)),
        op("GET", "/admin/audit-logs/verify", admin_only(200)),
        op("GET", "/admin/overview", admin_only(200)),
        // Webhooks
        op("GET", "/webhooks", admin_or_generator(200)),
        op_with(
            "POST",
            "/webhooks",
            json!({"url": "https://hooks.invalid/new", "event_types": ["stack.deleted"]}),
            admin_or_generator(201),
        ),
        op("GET", "/webhooks/{subscription}", row_owner(200)),
        op_with(
            "PATCH",
            "/webhooks/{subscription}",
            json!({"description": "changed"}),
            row_owner(200),
        ),
        op("DELETE", "/webhooks/{subscription}", row_owner(204)),
        op(
            "POST",
            "/webhooks/{subscription}/rotate-secret",
            row_owner(200),
        ),
        op("POST", "/webhooks/{subscription}/test", row_owner(201)),
        op("GET", "/webhooks/{subscription}/deliveries", row_owner(200)),
        op("GET", "/webhook-deliveries/{delivery}", row_owner(200)),
        op(
            "POST",
            "/webhook-deliveries/{delivery}/redeliver",
            row_owner(200),
        ),
        // Rollouts
        op_with(
            "PUT",
            "/stacks/{stack}/rollout-policy",
            json!({"waves": [{"name": "all", "select": {"remaining": true}}]}),
            row_owner(200),
        ),
        op(
            "GET",
            "/stacks/{rollout_stack}/rollout-policy",
            row_owner(200),
        ),
        op(
            "DELETE",
            "/stacks/{rollout_stack}/rollout-policy",
            row_owner(204),
        ),
        op("GET", "/stacks/{rollout_stack}/rollouts", row_owner(200)),
        op("GET", "/rollouts/{rollout}", row_owner(200)),
        op("POST", "/rollouts/{rollout}/pause", row_owner(202)),
        op("POST", "/rollouts/{rollout}/resume", row_owner(202)),
        op("POST", "/rollouts/{rollout}/abort", row_owner(202)),
        op("POST", "/rollouts/{rollout}/retry-wave", row_owner(202)),
        op("POST", "/rollouts/{rollout}/promote", admin_only(202)),
        op_with(
            "POST",
            "/rollouts/{rollout}/approve",
            json!({"wave": 0}),
            row_owner(200),
        ),
    ]
}

impl Op {
    /// The caller for whom this operation succeeds (admin when admin may, else the
    /// agent itself), with the success status.
    pub fn succeeding_caller(&self) -> (Caller, u16) {
        let callers = [
            Caller::Admin,
            Caller::Agent,
            Caller::OtherAgent,
            Caller::Generator,
            Caller::OtherGenerator,
        ];
        callers
            .into_iter()
            .zip(self.expect)
            .find(|(_, status)| *status < 300)
            .expect("every operation succeeds for someone")
    }

    /// Whether it may change something.
    pub fn is_mutation(&self) -> bool {
        matches!(self.method, "POST" | "PUT" | "PATCH" | "DELETE")
    }
}

/// A table path with its concrete segments turned back into parameters.
pub fn table_template(path: &str) -> String {
    path.split('/')
        .map(|segment| {
            let is_param =
                segment.starts_with('{') || ["team", "note", "1", "configmap"].contains(&segment);
            if is_param { "{}" } else { segment }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// Method and path template (`{param}` for every parameter) of every operation.
pub fn openapi_operations(doc: &Value) -> BTreeSet<(String, String)> {
    let mut ops = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in ["get", "post", "put", "patch", "delete"] {
            if item.get(method).is_some() {
                ops.insert((method.to_uppercase(), normalise(path)));
            }
        }
    }
    ops
}

/// `/api/v1/stacks/{id}/labels/{key}` -> `/stacks/{}/labels/{}`.
pub fn normalise(path: &str) -> String {
    let path = path.strip_prefix("/api/v1").unwrap_or(path);
    path.split('/')
        .map(|segment| {
            if segment.starts_with('{') || segment.starts_with(':') {
                "{}"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}
