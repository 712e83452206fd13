//! Rows to domain types and back. Stored enums are their stable snake_case names;
//! label-like maps are JSON objects.

use brokkr_core::store::Result;
use brokkr_core::{
    ActorKind, Agent, AgentEvent, AgentStatus, AgentTarget, ApiKey, AuditAction, AuditRecord,
    Capabilities, DeploymentObject, EventStatus, EventType, HealthReport, HealthStatus, KeyHash,
    KeyOwner, Labels, Provenance, ResourceKind, Stack, StackPlacement, TargetSource, Template,
    TemplateVersion, model::Generator,
};
use brokkr_core::{
    Delivery, DeliveryStatus, Subscription, SubscriptionOwner, WebhookEvent, WebhookEventType,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use uuid::Uuid;

use crate::entity::{
    agent_events, agent_targets, agents, api_keys, audit_records, deployment_objects, generators,
    health_reports, stack_placements, stacks, template_versions, templates, webhook_deliveries,
    webhook_outbox, webhook_subscriptions,
};
use crate::errors::corrupt;

pub(crate) fn to_json<T: Serialize>(value: &T) -> serde_json::Value {
    serde_json::to_value(value).expect("labels, capabilities and provenance serialize to JSON")
}

pub(crate) fn from_json<T: DeserializeOwned>(what: &str, value: serde_json::Value) -> Result<T> {
    serde_json::from_value(value).map_err(|e| corrupt(what, e))
}

fn parse<T>(what: &str, text: &str, parse: impl Fn(&str) -> Option<T>) -> Result<T> {
    parse(text).ok_or_else(|| corrupt(what, text))
}

/// An agent's admin status as stored.
pub(crate) fn agent_status(text: &str) -> Result<AgentStatus> {
    parse("agent status", text, AgentStatus::parse)
}

pub(crate) fn stack(m: stacks::Model) -> Result<Stack> {
    Ok(Stack {
        id: m.id.into(),
        name: m.name,
        description: m.description,
        generator_id: m.generator_id.map(Into::into),
        labels: from_json("labels", m.labels)?,
        annotations: from_json("annotations", m.annotations)?,
        created_at: m.created_at,
        updated_at: m.updated_at,
        deleted_at: m.deleted_at,
    })
}

pub(crate) fn deployment_object(m: deployment_objects::Model) -> Result<DeploymentObject> {
    Ok(DeploymentObject {
        id: m.id.into(),
        stack_id: m.stack_id.into(),
        sequence: m.sequence,
        yaml_content: m.yaml_content,
        yaml_checksum: m.yaml_checksum,
        is_deletion_marker: m.is_deletion_marker,
        provenance: m
            .provenance
            .map(|p| from_json::<Provenance>("provenance", p))
            .transpose()?,
        created_at: m.created_at,
    })
}

pub(crate) fn agent(m: agents::Model) -> Result<Agent> {
    Ok(Agent {
        id: m.id.into(),
        name: m.name,
        cluster_name: m.cluster_name,
        labels: from_json("labels", m.labels)?,
        annotations: from_json("annotations", m.annotations)?,
        status: agent_status(&m.status)?,
        last_heartbeat: m.last_heartbeat,
        capabilities: from_json::<Capabilities>("capabilities", m.capabilities)?,
        created_at: m.created_at,
        updated_at: m.updated_at,
        deleted_at: m.deleted_at,
    })
}

pub(crate) fn target(m: agent_targets::Model) -> Result<AgentTarget> {
    Ok(AgentTarget {
        agent_id: m.agent_id.into(),
        stack_id: m.stack_id.into(),
        source: parse("target source", &m.source, TargetSource::parse)?,
        created_at: m.created_at,
        removed_at: m.removed_at,
    })
}

pub(crate) fn placement(m: stack_placements::Model) -> Result<StackPlacement> {
    Ok(StackPlacement {
        stack_id: m.stack_id.into(),
        policy: from_json("placement policy", m.policy)?,
        decision: m
            .decision
            .map(|d| from_json("placement decision", d))
            .transpose()?,
        updated_at: m.updated_at,
        decided_at: m.decided_at,
    })
}

pub(crate) fn event(m: agent_events::Model) -> Result<AgentEvent> {
    Ok(AgentEvent {
        id: m.id.into(),
        agent_id: m.agent_id.into(),
        deployment_object_id: m.deployment_object_id.into(),
        stack_id: m.stack_id.into(),
        event_type: parse("event type", &m.event_type, EventType::parse)?,
        status: parse("event status", &m.status, EventStatus::parse)?,
        message: m.message,
        created_at: m.created_at,
    })
}

/// A health status as stored.
pub(crate) fn health_status(text: &str) -> Result<HealthStatus> {
    parse("health status", text, HealthStatus::parse)
}

pub(crate) fn health_report(m: health_reports::Model) -> Result<HealthReport> {
    Ok(HealthReport {
        agent_id: m.agent_id.into(),
        stack_id: m.stack_id.into(),
        deployment_object_id: m.deployment_object_id.into(),
        status: health_status(&m.status)?,
        summary: m.summary,
        resources: from_json("health resources", m.resources)?,
        reported_at: m.reported_at,
    })
}

pub(crate) fn generator(m: generators::Model) -> Generator {
    Generator {
        id: m.id.into(),
        name: m.name,
        description: m.description,
        created_at: m.created_at,
        updated_at: m.updated_at,
        deleted_at: m.deleted_at,
    }
}

pub(crate) fn template_version(m: template_versions::Model) -> TemplateVersion {
    TemplateVersion {
        template_id: m.template_id.into(),
        version: m.version,
        content: m.content,
        parameters_schema: m.parameters_schema,
        created_at: m.created_at,
    }
}

pub(crate) fn template(m: templates::Model, latest: template_versions::Model) -> Result<Template> {
    Ok(Template {
        id: m.id.into(),
        name: m.name,
        description: m.description,
        generator_id: m.generator_id.map(Into::into),
        labels: from_json::<Labels>("labels", m.labels)?,
        annotations: from_json("annotations", m.annotations)?,
        latest: template_version(latest),
        created_at: m.created_at,
        updated_at: m.updated_at,
        deleted_at: m.deleted_at,
    })
}

/// The stored (kind, id) of a key owner.
pub(crate) fn owner_parts(owner: KeyOwner) -> (&'static str, Option<Uuid>) {
    match owner {
        KeyOwner::Admin => ("admin", None),
        KeyOwner::Agent(id) => ("agent", Some(id.0)),
        KeyOwner::Generator(id) => ("generator", Some(id.0)),
    }
}

pub(crate) fn api_key(m: api_keys::Model) -> Result<ApiKey> {
    let owner = match (m.owner_kind.as_str(), m.owner_id) {
        ("admin", None) => KeyOwner::Admin,
        ("agent", Some(id)) => KeyOwner::Agent(id.into()),
        ("generator", Some(id)) => KeyOwner::Generator(id.into()),
        (kind, _) => return Err(corrupt("key owner", kind)),
    };
    Ok(ApiKey {
        id: m.id.into(),
        short_id: m.short_id,
        hash: KeyHash::from_hex(&m.hash).ok_or_else(|| corrupt("key hash", "not 64 hex digits"))?,
        owner,
        created_at: m.created_at,
        revoked_at: m.revoked_at,
    })
}

pub(crate) fn audit_record(m: audit_records::Model) -> Result<AuditRecord> {
    let kind = parse("actor kind", &m.actor_kind, ActorKind::parse)?;
    Ok(AuditRecord {
        id: m.id.into(),
        actor: brokkr_core::Actor::from_parts(kind, m.actor_id)
            .ok_or_else(|| corrupt("actor", &m.actor_kind))?,
        action: parse("audit action", &m.action, AuditAction::parse)?,
        resource_kind: parse("resource kind", &m.resource_kind, ResourceKind::parse)?,
        resource_id: m.resource_id,
        summary: m.summary,
        created_at: m.created_at,
    })
}

/// How a subscription's owner is stored: a kind and, for a generator, its id.
pub(crate) fn subscription_owner_parts(owner: SubscriptionOwner) -> (&'static str, Option<Uuid>) {
    match owner {
        SubscriptionOwner::Admin => ("admin", None),
        SubscriptionOwner::Generator(id) => ("generator", Some(id.0)),
    }
}

pub(crate) fn subscription(m: webhook_subscriptions::Model) -> Result<Subscription> {
    let owner = match (m.owner_kind.as_str(), m.owner_id) {
        ("admin", None) => SubscriptionOwner::Admin,
        ("generator", Some(id)) => SubscriptionOwner::Generator(id.into()),
        (kind, _) => return Err(corrupt("subscription owner", kind)),
    };
    Ok(Subscription {
        id: m.id.into(),
        owner,
        url: m.url,
        description: m.description,
        event_types: from_json("event types", m.event_types)?,
        stack_id: m.stack_id.map(Into::into),
        labels: m
            .labels
            .map(|l| from_json("label selector", l))
            .transpose()?,
        sealed_secret: m.sealed_secret,
        enabled: m.enabled,
        created_at: m.created_at,
        updated_at: m.updated_at,
    })
}

fn webhook_event_type(text: &str) -> Result<WebhookEventType> {
    parse("webhook event type", text, WebhookEventType::parse)
}

pub(crate) fn outbox_event(m: webhook_outbox::Model) -> Result<WebhookEvent> {
    Ok(WebhookEvent {
        id: m.id.into(),
        event_type: webhook_event_type(&m.event_type)?,
        stack_id: m.stack_id.map(Into::into),
        agent_id: m.agent_id.map(Into::into),
        occurred_at: m.occurred_at,
        data: m.data,
    })
}

pub(crate) fn delivery(m: webhook_deliveries::Model) -> Result<Delivery> {
    Ok(Delivery {
        id: m.id.into(),
        subscription_id: m.subscription_id.into(),
        event: WebhookEvent {
            id: m.event_id.into(),
            event_type: webhook_event_type(&m.event_type)?,
            stack_id: m.stack_id.map(Into::into),
            agent_id: m.agent_id.map(Into::into),
            occurred_at: m.occurred_at,
            data: m.data,
        },
        status: parse("delivery status", &m.status, DeliveryStatus::parse)?,
        attempts: u32::try_from(m.attempts).map_err(|e| corrupt("attempts", e))?,
        next_attempt_at: m.next_attempt_at,
        last_attempt_at: m.last_attempt_at,
        last_status: m
            .last_status
            .map(|s| u16::try_from(s).map_err(|e| corrupt("HTTP status", e)))
            .transpose()?,
        last_error: m.last_error,
        created_at: m.created_at,
        delivered_at: m.delivered_at,
    })
}
