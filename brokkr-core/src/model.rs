//! The entities of Brokkr's model, as the store hands them out, and the inputs that
//! create or change them.
//!
//! Inputs whose validity matters to the store are built through constructors that
//! validate ([`NewDeploymentObject::from_yaml`], [`validate_name`]), so a `Store` can
//! trust what it is given and never stores a half-checked value.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::health::{HealthStatus, ObjectHealth};
use crate::id::{
    AgentEventId, AgentId, ApiKeyId, AuditRecordId, DeploymentObjectId, GeneratorId, StackId,
    TemplateId,
};
use crate::manifest;
use crate::metadata::{Annotations, Labels};
use crate::pak::KeyHash;

/// Longest accepted name of a stack, agent, cluster, generator or template.
pub const MAX_NAME_LEN: usize = 253;

/// Longest accepted description.
pub const MAX_DESCRIPTION_LEN: usize = 4096;

/// Why a name or description was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// Empty, too long, padded with white space or containing control characters.
    #[error("invalid {field}: {reason}")]
    Invalid {
        /// Which field (`name`, `cluster_name`, ...).
        field: &'static str,
        /// What rule it breaks.
        reason: &'static str,
    },
}

/// Checks a human-chosen name: 1-253 characters, no control characters, no leading or
/// trailing white space (so two names that look the same are the same).
pub fn validate_name(field: &'static str, name: &str) -> Result<(), NameError> {
    let invalid = |reason| NameError::Invalid { field, reason };
    if name.is_empty() {
        return Err(invalid("must not be empty"));
    }
    if name.chars().count() > MAX_NAME_LEN {
        return Err(invalid("must be at most 253 characters"));
    }
    if name.trim() != name {
        return Err(invalid("must not start or end with white space"));
    }
    if name.chars().any(char::is_control) {
        return Err(invalid("must not contain control characters"));
    }
    Ok(())
}

/// Checks a free-text description: at most 4096 characters.
pub fn validate_description(description: &str) -> Result<(), NameError> {
    if description.chars().count() > MAX_DESCRIPTION_LEN {
        return Err(NameError::Invalid {
            field: "description",
            reason: "must be at most 4096 characters",
        });
    }
    Ok(())
}

/// Lower-case hex SHA-256 of a deployment object's YAML, as stored in `yaml_checksum`.
pub fn checksum(yaml: &str) -> String {
    hex(&Sha256::digest(yaml.as_bytes()))
}

pub(crate) fn hex(bytes: &[u8]) -> String {
    use fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

// ---------------------------------------------------------------------------------------
// Stacks

/// A named group of Kubernetes resources managed as one unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stack {
    /// Its id.
    pub id: StackId,
    /// Unique among stacks that are not deleted.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// The generator that created it; `None` when an admin did.
    pub generator_id: Option<GeneratorId>,
    /// Labels, for selection.
    pub labels: Labels,
    /// Annotations.
    pub annotations: Annotations,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its name, description, labels or annotations last changed.
    pub updated_at: DateTime<Utc>,
    /// When it was deleted (soft deletion); `None` while it lives.
    pub deleted_at: Option<DateTime<Utc>>,
}

/// What [`Store::create_stack`](crate::Store::create_stack) needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewStack {
    /// Unique among stacks that are not deleted.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// The generator creating it, `None` for an admin.
    pub generator_id: Option<GeneratorId>,
    /// Initial labels.
    pub labels: Labels,
    /// Initial annotations.
    pub annotations: Annotations,
}

/// A change to a stack's name or description; `None` fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackUpdate {
    /// New name.
    pub name: Option<String>,
    /// New description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
}

// ---------------------------------------------------------------------------------------
// Deployment objects

/// An immutable snapshot of every resource of one stack.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeploymentObject {
    /// Its id.
    pub id: DeploymentObjectId,
    /// The stack it belongs to.
    pub stack_id: StackId,
    /// Strictly increasing across the whole store, in commit order.
    pub sequence: i64,
    /// Multi-document YAML; empty for a deletion marker.
    pub yaml_content: String,
    /// Lower-case hex SHA-256 of `yaml_content`.
    pub yaml_checksum: String,
    /// `true` when this object says "remove this stack".
    pub is_deletion_marker: bool,
    /// What produced it, when a template or generator did.
    pub provenance: Option<Provenance>,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

/// Which template version or generator, with which parameters, produced a deployment object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Provenance {
    /// The template, when one was instantiated.
    pub template_id: Option<TemplateId>,
    /// The template version used.
    pub template_version: Option<i32>,
    /// The registered generator's name, when a Rust generator produced it.
    pub generator: Option<String>,
    /// The parameters, after schema defaults were applied.
    pub parameters: serde_json::Value,
}

impl Provenance {
    /// Produced by version `version` of template `template_id`.
    pub fn template(template_id: TemplateId, version: i32, parameters: serde_json::Value) -> Self {
        Self {
            template_id: Some(template_id),
            template_version: Some(version),
            generator: None,
            parameters,
        }
    }

    /// Produced by the registered generator `name`.
    pub fn generator(name: impl Into<String>, parameters: serde_json::Value) -> Self {
        Self {
            template_id: None,
            template_version: None,
            generator: Some(name.into()),
            parameters,
        }
    }
}

/// A deployment object ready to be appended: its YAML has been parsed and validated and
/// its checksum computed. Build it with [`NewDeploymentObject::from_yaml`] or
/// [`NewDeploymentObject::deletion_marker`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDeploymentObject {
    stack_id: StackId,
    yaml_content: String,
    yaml_checksum: String,
    is_deletion_marker: bool,
    provenance: Option<Provenance>,
}

impl NewDeploymentObject {
    /// Parses and validates `yaml` with the default limits of [`manifest::parse`].
    pub fn from_yaml(stack_id: StackId, yaml: impl Into<String>) -> Result<Self, manifest::Error> {
        Self::from_yaml_with(stack_id, yaml, &manifest::ParseOptions::default())
    }

    /// Parses and validates `yaml` with the given limits.
    pub fn from_yaml_with(
        stack_id: StackId,
        yaml: impl Into<String>,
        options: &manifest::ParseOptions,
    ) -> Result<Self, manifest::Error> {
        let yaml_content = yaml.into();
        manifest::parse_with(&yaml_content, options)?;
        Ok(Self {
            stack_id,
            yaml_checksum: checksum(&yaml_content),
            yaml_content,
            is_deletion_marker: false,
            provenance: None,
        })
    }

    /// A generator's output with its provenance. The output was validated when it was
    /// built (see [`Generated`](crate::Generated)), so it is not parsed again. The
    /// provenance takes the output's parameters.
    pub fn from_generated(
        stack_id: StackId,
        generated: crate::generator::Generated,
        mut provenance: Provenance,
    ) -> Self {
        let (yaml_content, parameters) = generated.into_parts();
        provenance.parameters = parameters;
        Self {
            stack_id,
            yaml_checksum: checksum(&yaml_content),
            yaml_content,
            is_deletion_marker: false,
            provenance: Some(provenance),
        }
    }

    /// A marker that tells agents to remove every object of the stack.
    pub fn deletion_marker(stack_id: StackId) -> Self {
        Self {
            stack_id,
            yaml_checksum: checksum(""),
            yaml_content: String::new(),
            is_deletion_marker: true,
            provenance: None,
        }
    }

    /// Records what produced this object.
    pub fn with_provenance(mut self, provenance: Provenance) -> Self {
        self.provenance = Some(provenance);
        self
    }

    /// The stack it will belong to.
    pub fn stack_id(&self) -> StackId {
        self.stack_id
    }

    /// The validated YAML.
    pub fn yaml_content(&self) -> &str {
        &self.yaml_content
    }

    /// Hex SHA-256 of the YAML.
    pub fn yaml_checksum(&self) -> &str {
        &self.yaml_checksum
    }

    /// Whether this is a deletion marker.
    pub fn is_deletion_marker(&self) -> bool {
        self.is_deletion_marker
    }

    /// What produced it.
    pub fn provenance(&self) -> Option<&Provenance> {
        self.provenance.as_ref()
    }
}

// ---------------------------------------------------------------------------------------
// Agents

/// One agent process in one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agent {
    /// Its id.
    pub id: AgentId,
    /// Unique together with `cluster_name` among agents that are not deleted.
    pub name: String,
    /// The cluster (environment) it runs in.
    pub cluster_name: String,
    /// Labels, for placement.
    pub labels: Labels,
    /// Annotations.
    pub annotations: Annotations,
    /// Whether an admin allows it to work.
    pub status: AgentStatus,
    /// The time of its latest heartbeat.
    pub last_heartbeat: Option<DateTime<Utc>>,
    /// What it reported in its latest heartbeat that carried capabilities.
    pub capabilities: Capabilities,
    /// When it was registered.
    pub created_at: DateTime<Utc>,
    /// When its registration last changed (heartbeats do not count).
    pub updated_at: DateTime<Utc>,
    /// When it was deleted (soft deletion).
    pub deleted_at: Option<DateTime<Utc>>,
}

impl Agent {
    /// Whether the agent has sent a heartbeat within `stale_after` of `now`.
    pub fn liveness(&self, now: DateTime<Utc>, stale_after: Duration) -> Liveness {
        match self.last_heartbeat {
            None => Liveness::NeverSeen,
            Some(at) if now - at <= stale_after => Liveness::Active,
            Some(_) => Liveness::Stale,
        }
    }
}

/// An admin's switch on an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentStatus {
    /// The agent may fetch its target state and report.
    Active,
    /// Paused by an admin.
    Inactive,
}

impl AgentStatus {
    /// The stable name stored and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Inactive => "inactive",
        }
    }
}

/// Derived from heartbeat age; never stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Liveness {
    /// Heartbeat within the staleness bound.
    Active,
    /// Heartbeat older than the bound.
    Stale,
    /// No heartbeat yet.
    NeverSeen,
}

/// What an agent reports about its cluster.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// The API server's `gitVersion`, e.g. `v1.33.2`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kubernetes_version: Option<String>,
    /// Number of nodes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_count: Option<u32>,
    /// Allocatable CPU summed over nodes, in millicores.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocatable_cpu_millis: Option<u64>,
    /// Allocatable memory summed over nodes, in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allocatable_memory_bytes: Option<u64>,
    /// Named capabilities, e.g. `gpu`.
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub features: BTreeSet<String>,
    /// Anything else the agent reports (region, zone, provider, ...).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub extra: BTreeMap<String, serde_json::Value>,
}

/// What [`Store::create_agent`](crate::Store::create_agent) needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAgent {
    /// Unique together with `cluster_name`.
    pub name: String,
    /// The cluster it runs in.
    pub cluster_name: String,
    /// Initial labels.
    pub labels: Labels,
    /// Initial annotations.
    pub annotations: Annotations,
    /// Its first key, stored in the same transaction.
    pub key: StoredKey,
}

/// A change to an agent's registration; `None` fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentUpdate {
    /// New name.
    pub name: Option<String>,
    /// New cluster name.
    pub cluster_name: Option<String>,
    /// New admin status.
    pub status: Option<AgentStatus>,
}

/// One heartbeat; the server may coalesce many and write them in one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heartbeat {
    /// Who beat.
    pub agent_id: AgentId,
    /// When.
    pub at: DateTime<Utc>,
    /// Reported capabilities; `None` keeps what was stored.
    pub capabilities: Option<Capabilities>,
}

// ---------------------------------------------------------------------------------------
// Agent targets

/// "Agent A is responsible for stack S".
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentTarget {
    /// The agent.
    pub agent_id: AgentId,
    /// The stack.
    pub stack_id: StackId,
    /// Why the agent has it.
    pub source: TargetSource,
    /// When it was assigned.
    pub created_at: DateTime<Utc>,
    /// When it was unassigned; the agent still gets a removal for it until it reports
    /// that the stack's objects are gone.
    pub removed_at: Option<DateTime<Utc>>,
}

/// How an agent came to be responsible for a stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetSource {
    /// An admin or generator assigned it.
    Direct,
    /// A placement decision chose it.
    Placement,
}

impl TargetSource {
    /// The stable name stored and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Direct => "direct",
            Self::Placement => "placement",
        }
    }
}

// ---------------------------------------------------------------------------------------
// Agent events

/// The outcome of one attempt by one agent to apply or remove one deployment object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentEvent {
    /// Its id (chosen by the agent, so a retried report is recognised).
    pub id: AgentEventId,
    /// The reporting agent.
    pub agent_id: AgentId,
    /// The deployment object it acted on.
    pub deployment_object_id: DeploymentObjectId,
    /// That object's stack.
    pub stack_id: StackId,
    /// What it tried.
    pub event_type: EventType,
    /// How it went.
    pub status: EventStatus,
    /// Details, e.g. the Kubernetes reason of a failure.
    pub message: Option<String>,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

/// What an agent tried to do with a deployment object.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventType {
    /// Apply its objects.
    Apply,
    /// Remove the stack's objects (deletion marker or unassignment).
    Delete,
    /// A periodic re-apply of an unchanged deployment object found objects changed in
    /// the cluster by someone else, and put them back.
    Drift,
}

impl EventType {
    /// The stable name stored and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Apply => "apply",
            Self::Delete => "delete",
            Self::Drift => "drift",
        }
    }
}

/// How an attempt went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventStatus {
    /// Everything was applied or removed.
    Success,
    /// Something failed; see the message.
    Failure,
}

impl EventStatus {
    /// The stable name stored and shown in the API.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Success => "success",
            Self::Failure => "failure",
        }
    }
}

/// What [`Store::record_agent_event`](crate::Store::record_agent_event) needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAgentEvent {
    /// Chosen by the agent; a second report with the same id is the same event.
    pub id: AgentEventId,
    /// The reporting agent.
    pub agent_id: AgentId,
    /// The deployment object it acted on.
    pub deployment_object_id: DeploymentObjectId,
    /// What it tried.
    pub event_type: EventType,
    /// How it went.
    pub status: EventStatus,
    /// Details.
    pub message: Option<String>,
}

// ---------------------------------------------------------------------------------------
// Placement

/// A stack's placement policy and its stored decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackPlacement {
    /// The stack.
    pub stack_id: StackId,
    /// Its policy.
    pub policy: crate::placement::PlacementPolicy,
    /// The latest decision; `None` until one was computed.
    pub decision: Option<crate::placement::PlacementDecision>,
    /// When the policy was last set.
    pub updated_at: DateTime<Utc>,
    /// When the decision was last stored.
    pub decided_at: Option<DateTime<Utc>>,
}

/// What storing a decision changed in the stack's targets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlacementChange {
    /// Agents that received the stack (a new placement target).
    pub added: Vec<AgentId>,
    /// Agents whose placement target was unassigned (they receive a removal).
    pub removed: Vec<AgentId>,
    /// Whether the stored decision (chosen or reasons) changed at all.
    pub decision_changed: bool,
}

// ---------------------------------------------------------------------------------------
// Health

/// The latest health an agent reported for a stack's deployment object.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthReport {
    /// The reporting agent.
    pub agent_id: AgentId,
    /// The stack.
    pub stack_id: StackId,
    /// The deployment object the agent had applied.
    pub deployment_object_id: DeploymentObjectId,
    /// The worst status among `resources` (healthy when none).
    pub status: HealthStatus,
    /// One line for people, e.g. "1 of 3 workloads degraded".
    pub summary: Option<String>,
    /// Each workload's health.
    pub resources: Vec<ObjectHealth>,
    /// When the agent reported it.
    pub reported_at: DateTime<Utc>,
}

/// What [`Store::record_health`](crate::Store::record_health) needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewHealthReport {
    /// The reporting agent.
    pub agent_id: AgentId,
    /// The deployment object it had applied.
    pub deployment_object_id: DeploymentObjectId,
    /// Each workload's health; the report's status is their worst.
    pub resources: Vec<ObjectHealth>,
    /// One line for people.
    pub summary: Option<String>,
}

impl NewHealthReport {
    /// Most resources one report may carry.
    pub const MAX_RESOURCES: usize = 10_000;

    /// Checks sizes: at most [`Self::MAX_RESOURCES`] resources, short reasons and
    /// messages.
    pub fn validate(&self) -> crate::store::Result<()> {
        if self.resources.len() > Self::MAX_RESOURCES {
            return Err(crate::store::Error::Invalid(format!(
                "a health report holds at most {} resources",
                Self::MAX_RESOURCES
            )));
        }
        let too_long = |field: &'static str, text: Option<&str>| {
            text.is_some_and(|t| t.chars().count() > MAX_DESCRIPTION_LEN)
                .then_some(NameError::Invalid {
                    field,
                    reason: "must be at most 4096 characters",
                })
        };
        let mut fields = vec![("summary", self.summary.as_deref())];
        for resource in &self.resources {
            fields.push(("reason", resource.reason.as_deref()));
            fields.push(("message", resource.message.as_deref()));
        }
        match fields
            .into_iter()
            .find_map(|(field, text)| too_long(field, text))
        {
            Some(err) => Err(err.into()),
            None => Ok(()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Generators

/// An external system that creates stacks through the API with its own key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Generator {
    /// Its id.
    pub id: GeneratorId,
    /// Unique among generators that are not deleted.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it was deleted (soft deletion).
    pub deleted_at: Option<DateTime<Utc>>,
}

/// What [`Store::create_generator`](crate::Store::create_generator) needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGenerator {
    /// Unique among generators that are not deleted.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Its first key, stored in the same transaction.
    pub key: StoredKey,
}

/// A change to a generator; `None` fields stay as they are.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GeneratorUpdate {
    /// New name.
    pub name: Option<String>,
    /// New description (`Some(None)` clears it).
    pub description: Option<Option<String>>,
}

// ---------------------------------------------------------------------------------------
// Templates

/// A versioned minijinja template with a JSON Schema for its parameters. The fields of
/// its latest version are in `latest`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Template {
    /// Its id, shared by all its versions.
    pub id: TemplateId,
    /// Unique among templates that are not deleted.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// The owning generator; `None` for a global (admin) template.
    pub generator_id: Option<GeneratorId>,
    /// Labels.
    pub labels: Labels,
    /// Annotations.
    pub annotations: Annotations,
    /// The newest version.
    pub latest: TemplateVersion,
    /// When the template was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed (a new version counts).
    pub updated_at: DateTime<Utc>,
    /// When it was deleted (soft deletion).
    pub deleted_at: Option<DateTime<Utc>>,
}

/// One immutable version of a template.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TemplateVersion {
    /// The template.
    pub template_id: TemplateId,
    /// 1 for the first, then +1 per update.
    pub version: i32,
    /// minijinja source.
    pub content: String,
    /// JSON Schema of the parameters.
    pub parameters_schema: serde_json::Value,
    /// When this version was stored.
    pub created_at: DateTime<Utc>,
}

/// What [`Store::create_template`](crate::Store::create_template) needs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewTemplate {
    /// Unique among templates that are not deleted.
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// The owning generator; `None` for a global template.
    pub generator_id: Option<GeneratorId>,
    /// Initial labels.
    pub labels: Labels,
    /// Initial annotations.
    pub annotations: Annotations,
    /// minijinja source of version 1.
    pub content: String,
    /// JSON Schema of version 1's parameters.
    pub parameters_schema: serde_json::Value,
}

/// The body of a new template version.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NewTemplateVersion {
    /// minijinja source.
    pub content: String,
    /// JSON Schema of the parameters.
    pub parameters_schema: serde_json::Value,
}

// ---------------------------------------------------------------------------------------
// Keys

/// Who a key belongs to, and so which role it grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum KeyOwner {
    /// The administrator.
    Admin,
    /// An agent: only its own resources.
    Agent(AgentId),
    /// A generator: only what it created.
    Generator(GeneratorId),
}

/// A key as the store keeps it: its public short id and the hash of the whole key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredKey {
    /// The `<short id>` part of `brokkr_<short id>_<secret>`, unique.
    pub short_id: String,
    /// SHA-256 of the whole key.
    pub hash: KeyHash,
}

/// A stored API key record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiKey {
    /// Its id.
    pub id: ApiKeyId,
    /// The public short id.
    pub short_id: String,
    /// SHA-256 of the whole key.
    pub hash: KeyHash,
    /// Who it belongs to.
    pub owner: KeyOwner,
    /// When it was issued.
    pub created_at: DateTime<Utc>,
    /// When it was revoked (by rotation or by deleting its owner).
    pub revoked_at: Option<DateTime<Utc>>,
}

// ---------------------------------------------------------------------------------------
// Audit

/// Who made a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "type", content = "id", rename_all = "snake_case")]
pub enum Actor {
    /// An admin key.
    Admin,
    /// An agent's key.
    Agent(AgentId),
    /// A generator's key.
    Generator(GeneratorId),
    /// Brokkr itself (bootstrap, placement, command line).
    System,
}

impl Actor {
    /// The stable actor type name stored in audit records.
    pub fn kind(&self) -> ActorKind {
        match self {
            Self::Admin => ActorKind::Admin,
            Self::Agent(_) => ActorKind::Agent,
            Self::Generator(_) => ActorKind::Generator,
            Self::System => ActorKind::System,
        }
    }

    /// The actor's id, for agents and generators.
    pub fn id(&self) -> Option<Uuid> {
        match self {
            Self::Agent(id) => Some(id.0),
            Self::Generator(id) => Some(id.0),
            Self::Admin | Self::System => None,
        }
    }

    /// Rebuilds an actor from its stored kind and id.
    pub fn from_parts(kind: ActorKind, id: Option<Uuid>) -> Option<Self> {
        match (kind, id) {
            (ActorKind::Admin, None) => Some(Self::Admin),
            (ActorKind::System, None) => Some(Self::System),
            (ActorKind::Agent, Some(id)) => Some(Self::Agent(id.into())),
            (ActorKind::Generator, Some(id)) => Some(Self::Generator(id.into())),
            _ => None,
        }
    }
}

/// The type of an [`Actor`], without its id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActorKind {
    /// See [`Actor::Admin`].
    Admin,
    /// See [`Actor::Agent`].
    Agent,
    /// See [`Actor::Generator`].
    Generator,
    /// See [`Actor::System`].
    System,
}

/// Kinds of resource that audit records, labels and annotations refer to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ResourceKind {
    /// A stack.
    Stack,
    /// A deployment object.
    DeploymentObject,
    /// An agent.
    Agent,
    /// An agent target (the resource id is the stack's).
    AgentTarget,
    /// An agent event.
    AgentEvent,
    /// A generator.
    Generator,
    /// A template.
    Template,
    /// An API key (the resource id is the key record's).
    ApiKey,
    /// A stack's placement policy and decision (the resource id is the stack's).
    Placement,
}

/// What was done, in an audit record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditAction {
    /// A resource was created (or a deployment object appended, an event recorded).
    Create,
    /// A resource was changed.
    Update,
    /// A resource was (soft-)deleted.
    Delete,
    /// A stack was assigned to an agent.
    Assign,
    /// A stack was unassigned from an agent.
    Unassign,
    /// A key was issued in place of the owner's previous keys.
    RotateKey,
    /// A label or annotation was set.
    SetMetadata,
    /// A label or annotation was removed.
    RemoveMetadata,
    /// A placement decision changed which agents have a stack.
    Place,
}

macro_rules! stable_names {
    ($ty:ident { $($variant:ident => $name:literal),* $(,)? }) => {
        impl $ty {
            /// The stable snake_case name stored and shown in the API.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $name),* }
            }

            /// Parses the stable name.
            pub fn parse(name: &str) -> Option<Self> {
                match name { $($name => Some(Self::$variant),)* _ => None }
            }
        }
    };
}

stable_names!(ActorKind { Admin => "admin", Agent => "agent", Generator => "generator", System => "system" });
stable_names!(ResourceKind {
    Stack => "stack",
    DeploymentObject => "deployment_object",
    Agent => "agent",
    AgentTarget => "agent_target",
    AgentEvent => "agent_event",
    Generator => "generator",
    Template => "template",
    ApiKey => "api_key",
    Placement => "placement",
});
stable_names!(AuditAction {
    Create => "create",
    Update => "update",
    Delete => "delete",
    Assign => "assign",
    Unassign => "unassign",
    RotateKey => "rotate_key",
    SetMetadata => "set_metadata",
    RemoveMetadata => "remove_metadata",
    Place => "place",
});

/// Parses the stable names of the simple enums stored as text.
macro_rules! parse_names {
    ($($ty:ident { $($variant:ident),* }),* $(,)?) => {$(
        impl $ty {
            /// Parses the stable name returned by `as_str`.
            pub fn parse(name: &str) -> Option<Self> {
                [$(Self::$variant),*].into_iter().find(|v| v.as_str() == name)
            }
        }
    )*};
}

parse_names!(
    AgentStatus { Active, Inactive },
    TargetSource { Direct, Placement },
    EventType {
        Apply,
        Delete,
        Drift
    },
    EventStatus { Success, Failure },
);

/// Who did what to which resource, when. Written in the same transaction as the change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Its id.
    pub id: AuditRecordId,
    /// Who.
    pub actor: Actor,
    /// What.
    pub action: AuditAction,
    /// To which kind of resource.
    pub resource_kind: ResourceKind,
    /// To which resource.
    pub resource_id: Uuid,
    /// A one-line human summary, never containing a key.
    pub summary: String,
    /// When.
    pub created_at: DateTime<Utc>,
}

// ---------------------------------------------------------------------------------------
// Validation of inputs: one rule set for every Store implementation

fn validate_optional_description(description: Option<&str>) -> Result<(), NameError> {
    description.map_or(Ok(()), validate_description)
}

impl NewStack {
    /// Checks name, description, labels and annotations.
    pub fn validate(&self) -> crate::store::Result<()> {
        validate_name("name", &self.name)?;
        validate_optional_description(self.description.as_deref())?;
        crate::metadata::validate_labels(&self.labels)?;
        crate::metadata::validate_annotations(&self.annotations)?;
        Ok(())
    }
}

impl StackUpdate {
    /// Checks the fields that are set.
    pub fn validate(&self) -> crate::store::Result<()> {
        if let Some(name) = &self.name {
            validate_name("name", name)?;
        }
        validate_optional_description(self.description.as_ref().and_then(Option::as_deref))?;
        Ok(())
    }
}

impl NewAgent {
    /// Checks names, labels and annotations.
    pub fn validate(&self) -> crate::store::Result<()> {
        validate_name("name", &self.name)?;
        validate_name("cluster_name", &self.cluster_name)?;
        crate::metadata::validate_labels(&self.labels)?;
        crate::metadata::validate_annotations(&self.annotations)?;
        Ok(())
    }
}

impl AgentUpdate {
    /// Checks the fields that are set.
    pub fn validate(&self) -> crate::store::Result<()> {
        if let Some(name) = &self.name {
            validate_name("name", name)?;
        }
        if let Some(cluster_name) = &self.cluster_name {
            validate_name("cluster_name", cluster_name)?;
        }
        Ok(())
    }
}

impl NewGenerator {
    /// Checks name and description.
    pub fn validate(&self) -> crate::store::Result<()> {
        validate_name("name", &self.name)?;
        validate_optional_description(self.description.as_deref())?;
        Ok(())
    }
}

impl GeneratorUpdate {
    /// Checks the fields that are set.
    pub fn validate(&self) -> crate::store::Result<()> {
        if let Some(name) = &self.name {
            validate_name("name", name)?;
        }
        validate_optional_description(self.description.as_ref().and_then(Option::as_deref))?;
        Ok(())
    }
}

impl NewTemplate {
    /// Checks name, description, labels and annotations.
    pub fn validate(&self) -> crate::store::Result<()> {
        validate_name("name", &self.name)?;
        validate_optional_description(self.description.as_deref())?;
        crate::metadata::validate_labels(&self.labels)?;
        crate::metadata::validate_annotations(&self.annotations)?;
        Ok(())
    }
}

impl MetadataField {
    /// Checks one key and value for this map (label values are strict, annotation
    /// values free text).
    pub fn validate_entry(self, key: &str, value: &str) -> crate::store::Result<()> {
        crate::metadata::validate_key(key)?;
        match self {
            Self::Labels => crate::metadata::validate_label_value(key, value)?,
            Self::Annotations => crate::metadata::validate_annotation_value(key, value)?,
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------
// Labels and annotations as subresources

/// The resource whose labels or annotations are being changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetadataTarget {
    /// A stack's.
    Stack(StackId),
    /// An agent's.
    Agent(AgentId),
    /// A template's.
    Template(TemplateId),
}

/// Which of the two maps.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MetadataField {
    /// Labels (strict value syntax).
    Labels,
    /// Annotations (free-text values).
    Annotations,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_name("name", "tenant-a prod").is_ok());
        for bad in ["", " x", "x ", "a\nb", &"n".repeat(254)] {
            assert!(validate_name("name", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn checksum_is_hex_sha256() {
        assert_eq!(
            checksum(""),
            "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
    }

    #[test]
    fn actor_round_trips_through_parts() {
        for actor in [
            Actor::Admin,
            Actor::System,
            Actor::Agent(AgentId::new()),
            Actor::Generator(GeneratorId::new()),
        ] {
            assert_eq!(Actor::from_parts(actor.kind(), actor.id()), Some(actor));
        }
        assert_eq!(Actor::from_parts(ActorKind::Agent, None), None);
    }

    #[test]
    fn stable_names_round_trip() {
        for a in [
            AuditAction::Create,
            AuditAction::RotateKey,
            AuditAction::RemoveMetadata,
            AuditAction::Place,
        ] {
            assert_eq!(AuditAction::parse(a.as_str()), Some(a));
        }
        assert_eq!(
            ResourceKind::parse("placement"),
            Some(ResourceKind::Placement)
        );
        assert_eq!(EventStatus::parse("failure"), Some(EventStatus::Failure));
        assert_eq!(AgentStatus::parse("nope"), None);
    }

    #[test]
    fn liveness_follows_heartbeat_age() {
        let now = Utc::now();
        let mut agent = Agent {
            id: AgentId::new(),
            name: "a".into(),
            cluster_name: "c".into(),
            labels: Labels::new(),
            annotations: Annotations::new(),
            status: AgentStatus::Active,
            last_heartbeat: None,
            capabilities: Capabilities::default(),
            created_at: now,
            updated_at: now,
            deleted_at: None,
        };
        let bound = Duration::seconds(60);
        assert_eq!(agent.liveness(now, bound), Liveness::NeverSeen);
        agent.last_heartbeat = Some(now - Duration::seconds(10));
        assert_eq!(agent.liveness(now, bound), Liveness::Active);
        agent.last_heartbeat = Some(now - Duration::seconds(61));
        assert_eq!(agent.liveness(now, bound), Liveness::Stale);
    }
}
