//! API keys, actors and the audit trail of who changed what.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::audit_chain::AuditHash;
use crate::id::{AgentId, ApiKeyId, AuditRecordId, GeneratorId};
use crate::pak::KeyHash;

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

impl From<KeyOwner> for Actor {
    /// The actor a key's owner acts as.
    fn from(owner: KeyOwner) -> Self {
        match owner {
            KeyOwner::Admin => Self::Admin,
            KeyOwner::Agent(id) => Self::Agent(id),
            KeyOwner::Generator(id) => Self::Generator(id),
        }
    }
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
    /// A plan (a change computed before it is made).
    Plan,
    /// A webhook subscription.
    Subscription,
    /// A webhook delivery (a test delivery queued, a delivery sent again).
    Delivery,
    /// A progressive rollout: its transitions, the agents it pins and unpins, the
    /// commands operators give it, approvals.
    Rollout,
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
    /// An admin confirmed a plan the guard stopped.
    Confirm,
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
    Plan => "plan",
    Subscription => "subscription",
    Delivery => "delivery",
    Rollout => "rollout",
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
    Confirm => "confirm",
});

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
    /// The SHA-256 of the fields above ([`crate::audit_chain::content_hash`]), computed
    /// when the record was written; `None` for a record written before records carried
    /// one (the audit chain hashes its fields when it seals it).
    pub content_hash: Option<AuditHash>,
}

impl AuditRecord {
    /// A record written now by `actor`, with its content hash.
    pub fn new(
        actor: Actor,
        action: AuditAction,
        resource_kind: ResourceKind,
        resource_id: Uuid,
        summary: String,
        created_at: DateTime<Utc>,
    ) -> Self {
        let mut record = Self {
            id: AuditRecordId::new(),
            actor,
            action,
            resource_kind,
            resource_id,
            summary,
            created_at,
            content_hash: None,
        };
        record.content_hash = Some(crate::audit_chain::content_hash(&record));
        record
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }
}
