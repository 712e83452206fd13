//! What a listing selects.

use chrono::{DateTime, Utc};

use crate::id::{AgentId, DeploymentObjectId, GeneratorId, StackId};
use crate::model::{ActorKind, AgentStatus, AuditAction, EventStatus, EventType, ResourceKind};

/// Which stacks to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackFilter {
    /// Only this stack (with `include_deleted`, a lookup that also finds it deleted).
    pub id: Option<StackId>,
    /// Only stacks this generator created.
    pub generator_id: Option<GeneratorId>,
    /// Only the stack with this exact name.
    pub name: Option<String>,
    /// Include soft-deleted stacks.
    pub include_deleted: bool,
}

/// Which agents to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentFilter {
    /// Only agents in this cluster.
    pub cluster_name: Option<String>,
    /// Only agents with this admin status.
    pub status: Option<AgentStatus>,
    /// Include soft-deleted agents.
    pub include_deleted: bool,
}

/// Which agent targets to list. Removed targets awaiting the agent's confirmation are
/// included (their `removed_at` is set).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TargetFilter {
    /// Only this agent's targets.
    pub agent_id: Option<AgentId>,
    /// Only targets of this stack.
    pub stack_id: Option<StackId>,
}

/// Which agent events to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AgentEventFilter {
    /// Only events of this agent.
    pub agent_id: Option<AgentId>,
    /// Only events about this stack.
    pub stack_id: Option<StackId>,
    /// Only events about this deployment object.
    pub deployment_object_id: Option<DeploymentObjectId>,
    /// Only apply or only delete events.
    pub event_type: Option<EventType>,
    /// Only successes or only failures.
    pub status: Option<EventStatus>,
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// Created before.
    pub until: Option<DateTime<Utc>>,
}

/// Which generators to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GeneratorFilter {
    /// Include soft-deleted generators.
    pub include_deleted: bool,
}

/// Which templates to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TemplateFilter {
    /// Only templates owned by this generator.
    pub generator_id: Option<GeneratorId>,
    /// Include soft-deleted templates.
    pub include_deleted: bool,
}

/// Which audit records to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuditFilter {
    /// Only records of this actor type.
    pub actor_kind: Option<ActorKind>,
    /// Only records of this actor id (agents and generators).
    pub actor_id: Option<uuid::Uuid>,
    /// Only this action.
    pub action: Option<AuditAction>,
    /// Only this kind of resource.
    pub resource_kind: Option<ResourceKind>,
    /// Only this resource.
    pub resource_id: Option<uuid::Uuid>,
    /// Created at or after.
    pub since: Option<DateTime<Utc>>,
    /// Created before.
    pub until: Option<DateTime<Utc>>,
}

/// Which webhook subscriptions to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscriptionFilter {
    /// Only subscriptions of this owner.
    pub owner: Option<crate::model::SubscriptionOwner>,
}

/// Which webhook deliveries to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeliveryFilter {
    /// Only deliveries for this subscription.
    pub subscription_id: Option<crate::id::SubscriptionId>,
    /// Only deliveries with this status.
    pub status: Option<crate::model::DeliveryStatus>,
}
