//! The events each change writes to the outbox, built in one place so that every store
//! writes the same type, subject and data for the same change.
//!
//! `data` carries what a receiver needs without calling back; ids are strings, times
//! RFC 3339, statuses their stable names.

use chrono::{DateTime, Utc};
use serde_json::json;

use super::webhook::{WebhookEvent, WebhookEventType};
use super::{
    AgentEvent, DeploymentObject, EventStatus, HealthReport, Rollout, RolloutState, StoredPlan,
    WaveState,
};
use crate::health::HealthStatus;
use crate::id::{
    AgentId, DeploymentObjectId, PlanId, RolloutId, StackId, SubscriptionId, WebhookEventId,
};

/// The fields of an appended deployment object that its event carries, so a store can
/// build the event from its row without building the whole object.
#[derive(Debug, Clone, Copy)]
pub struct AppendedObject<'a> {
    /// The object.
    pub id: DeploymentObjectId,
    /// Its stack.
    pub stack_id: StackId,
    /// Its sequence.
    pub sequence: i64,
    /// Its YAML's checksum.
    pub yaml_checksum: &'a str,
    /// Whether it is a deletion marker.
    pub is_deletion_marker: bool,
}

impl<'a> From<&'a DeploymentObject> for AppendedObject<'a> {
    fn from(object: &'a DeploymentObject) -> Self {
        Self {
            id: object.id,
            stack_id: object.stack_id,
            sequence: object.sequence,
            yaml_checksum: &object.yaml_checksum,
            is_deletion_marker: object.is_deletion_marker,
        }
    }
}

/// The fields of a rollout that its events carry, so a store can build them from what
/// it holds (a row, or a rollout it is creating) without a whole [`Rollout`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RolloutSubject {
    /// The rollout.
    pub id: RolloutId,
    /// Its stack.
    pub stack_id: StackId,
    /// The deployment object it rolls out.
    pub candidate: DeploymentObjectId,
    /// What agents go back to on revert; `None` for a stack's first object.
    pub baseline: Option<DeploymentObjectId>,
}

impl From<&Rollout> for RolloutSubject {
    fn from(rollout: &Rollout) -> Self {
        Self {
            id: rollout.id,
            stack_id: rollout.stack_id,
            candidate: rollout.candidate,
            baseline: rollout.baseline,
        }
    }
}

impl WebhookEvent {
    fn new(
        event_type: WebhookEventType,
        stack_id: Option<StackId>,
        agent_id: Option<AgentId>,
        at: DateTime<Utc>,
        data: serde_json::Value,
    ) -> Self {
        Self {
            id: WebhookEventId::new(),
            event_type,
            stack_id,
            agent_id,
            occurred_at: at,
            data,
        }
    }

    /// `deployment_object.created`: `{deployment_object_id, sequence, yaml_checksum,
    /// is_deletion_marker}`, for every append (plain, confirmed, rollback, deletion
    /// marker).
    pub fn deployment_object_created(object: AppendedObject<'_>, at: DateTime<Utc>) -> Self {
        Self::new(
            WebhookEventType::DeploymentObjectCreated,
            Some(object.stack_id),
            None,
            at,
            json!({
                "deployment_object_id": object.id,
                "sequence": object.sequence,
                "yaml_checksum": object.yaml_checksum,
                "is_deletion_marker": object.is_deletion_marker,
            }),
        )
    }

    /// `stack.deleted`: `{name, deployment_object_id, sequence}` (the deletion marker).
    pub fn stack_deleted(name: &str, marker: AppendedObject<'_>, at: DateTime<Utc>) -> Self {
        Self::new(
            WebhookEventType::StackDeleted,
            Some(marker.stack_id),
            None,
            at,
            json!({
                "name": name,
                "deployment_object_id": marker.id,
                "sequence": marker.sequence,
            }),
        )
    }

    /// `agent.applied` for a successful report, `agent.failed` for a failed one:
    /// `{agent_event_id, deployment_object_id, event_type, status, message}`.
    pub fn agent_reported(event: &AgentEvent, at: DateTime<Utc>) -> Self {
        let event_type = match event.status {
            EventStatus::Success => WebhookEventType::AgentApplied,
            EventStatus::Failure => WebhookEventType::AgentFailed,
        };
        Self::new(
            event_type,
            Some(event.stack_id),
            Some(event.agent_id),
            at,
            json!({
                "agent_event_id": event.id,
                "deployment_object_id": event.deployment_object_id,
                "event_type": event.event_type.as_str(),
                "status": event.status.as_str(),
                "message": event.message,
            }),
        )
    }

    /// `stack.health_changed`: `{deployment_object_id, from, to, summary}`, `from` null
    /// for an agent's first report on the stack.
    pub fn health_changed(
        report: &HealthReport,
        from: Option<HealthStatus>,
        at: DateTime<Utc>,
    ) -> Self {
        Self::new(
            WebhookEventType::StackHealthChanged,
            Some(report.stack_id),
            Some(report.agent_id),
            at,
            json!({
                "deployment_object_id": report.deployment_object_id,
                "from": from.map(HealthStatus::as_str),
                "to": report.status.as_str(),
                "summary": report.summary,
            }),
        )
    }

    /// `placement.changed`: `{from, to}`, the chosen agents before and after (sorted;
    /// `from` null when the stack had no decision).
    pub fn placement_changed(
        stack_id: StackId,
        from: Option<&[AgentId]>,
        to: &[AgentId],
        at: DateTime<Utc>,
    ) -> Self {
        let sorted = |agents: &[AgentId]| {
            let mut agents = agents.to_vec();
            agents.sort_unstable();
            agents
        };
        Self::new(
            WebhookEventType::PlacementChanged,
            Some(stack_id),
            None,
            at,
            json!({ "from": from.map(sorted), "to": sorted(to) }),
        )
    }

    /// `agent.stale`: `{last_heartbeat}`.
    pub fn agent_stale(
        agent_id: AgentId,
        last_heartbeat: Option<DateTime<Utc>>,
        at: DateTime<Utc>,
    ) -> Self {
        Self::new(
            WebhookEventType::AgentStale,
            None,
            Some(agent_id),
            at,
            json!({ "last_heartbeat": last_heartbeat }),
        )
    }

    /// `agent.recovered`: `{stale_since, heartbeat_at}`.
    pub fn agent_recovered(
        agent_id: AgentId,
        stale_since: DateTime<Utc>,
        heartbeat_at: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Self {
        Self::new(
            WebhookEventType::AgentRecovered,
            None,
            Some(agent_id),
            at,
            json!({ "stale_since": stale_since, "heartbeat_at": heartbeat_at }),
        )
    }

    /// `plan.held`, the plan of a change or decision the guard stopped:
    /// `{plan_id, origin, digest, expires_at}`.
    pub fn plan_held(plan: &StoredPlan, at: DateTime<Utc>) -> Self {
        Self::new(
            WebhookEventType::PlanHeld,
            Some(plan.stack_id),
            None,
            at,
            json!({
                "plan_id": plan.id,
                "origin": plan.origin.as_str(),
                "digest": plan.digest,
                "expires_at": plan.expires_at,
            }),
        )
    }

    /// `plan.confirmed`, written with the confirmed change: `{plan_id, digest}`.
    pub fn plan_confirmed(
        plan_id: PlanId,
        stack_id: StackId,
        digest: &str,
        at: DateTime<Utc>,
    ) -> Self {
        Self::new(
            WebhookEventType::PlanConfirmed,
            Some(stack_id),
            None,
            at,
            json!({ "plan_id": plan_id, "digest": digest }),
        )
    }

    /// `rollout.state_changed`: `{rollout_id, candidate_deployment_object_id,
    /// baseline_deployment_object_id, from, to, reason}`, for every transition of a
    /// rollout: `from` null when an append queued it, `to` `superseded` or `cancelled`
    /// when an append or a deletion ended it.
    pub fn rollout_state_changed(
        rollout: RolloutSubject,
        from: Option<RolloutState>,
        to: RolloutState,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> Self {
        Self::new(
            WebhookEventType::RolloutStateChanged,
            Some(rollout.stack_id),
            None,
            at,
            json!({
                "rollout_id": rollout.id,
                "candidate_deployment_object_id": rollout.candidate,
                "baseline_deployment_object_id": rollout.baseline,
                "from": from.map(RolloutState::as_str),
                "to": to.as_str(),
                "reason": reason,
            }),
        )
    }

    /// `rollout.wave_changed`: `{rollout_id, candidate_deployment_object_id, wave,
    /// wave_name, from, to, reason}`, for every transition of a wave (`wave` its index,
    /// `wave_name` null when the change that moved it did not write the wave).
    pub fn rollout_wave_changed(
        rollout: RolloutSubject,
        wave: u32,
        wave_name: Option<&str>,
        from: WaveState,
        to: WaveState,
        reason: Option<&str>,
        at: DateTime<Utc>,
    ) -> Self {
        Self::new(
            WebhookEventType::RolloutWaveChanged,
            Some(rollout.stack_id),
            None,
            at,
            json!({
                "rollout_id": rollout.id,
                "candidate_deployment_object_id": rollout.candidate,
                "wave": wave,
                "wave_name": wave_name,
                "from": from.as_str(),
                "to": to.as_str(),
                "reason": reason,
            }),
        )
    }

    /// `webhook.test`: `{subscription_id}`, only ever queued for that subscription.
    pub fn test(subscription_id: SubscriptionId, at: DateTime<Utc>) -> Self {
        Self::new(
            WebhookEventType::WebhookTest,
            None,
            None,
            at,
            json!({ "subscription_id": subscription_id }),
        )
    }
}
