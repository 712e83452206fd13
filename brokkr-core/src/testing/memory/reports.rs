//! What agents report: events and health.

use super::MemoryStore;
use super::state::{now, paginate, parse_uuid};
use crate::id::{AgentEventId, AgentId, StackId};
use crate::model::{
    Actor, AgentEvent, AuditAction, EventStatus, EventType, HealthReport, NewAgentEvent,
    NewHealthReport, ResourceKind, WebhookEvent,
};
use crate::page::{Page, PageRequest};
use crate::store::{AgentEventFilter, Error, Result};

pub(super) fn record_agent_event(
    store: &MemoryStore,
    actor: &Actor,
    new: NewAgentEvent,
) -> Result<AgentEvent> {
    let (event, retired) = {
        let mut state = store.state();
        if let Some(stored) = state.events.get(&new.id).cloned() {
            if stored.agent_id != new.agent_id {
                return Err(Error::Conflict(format!(
                    "agent event {} belongs to another agent",
                    new.id
                )));
            }
            // The same outcome reported again: the agent did it again (event ids are
            // derived from what they report, so re-applying an object after the stack
            // was unassigned and assigned again repeats an id). What it runs now, and
            // a removal it confirms again, count; the event and its audit do not repeat.
            let again = AgentEvent {
                created_at: now(),
                ..stored.clone()
            };
            let retired = state.settle(&again);
            state.poke_rollouts([again.stack_id], again.created_at);
            drop(state);
            if retired {
                store.publish(vec![again.agent_id]);
            }
            return Ok(stored);
        }
        let agent_name = state.live_agent(new.agent_id)?.name.clone();
        let stack_id = state.object(new.deployment_object_id)?.stack_id;
        let at = now();
        let event = AgentEvent {
            id: new.id,
            agent_id: new.agent_id,
            deployment_object_id: new.deployment_object_id,
            stack_id,
            event_type: new.event_type,
            status: new.status,
            message: new.message,
            created_at: at,
        };
        state.events.insert(event.id, event.clone());
        let retired = state.settle(&event);
        state.poke_rollouts([stack_id], at);
        let summary = format!(
            "agent {agent_name:?} reported {} {} of deployment object {}{}",
            event.event_type.as_str(),
            event.status.as_str(),
            event.deployment_object_id,
            if retired { " (target retired)" } else { "" }
        );
        state.audit(
            actor,
            AuditAction::Create,
            ResourceKind::AgentEvent,
            event.id,
            summary,
            at,
        );
        state.emit(WebhookEvent::agent_reported(&event, at));
        (event, retired)
    };
    if retired {
        store.publish(vec![event.agent_id]);
    }
    Ok(event)
}

pub(super) fn record_health(
    store: &MemoryStore,
    _actor: &Actor,
    new: NewHealthReport,
) -> Result<HealthReport> {
    new.validate()?;
    let mut state = store.state();
    state.live_agent(new.agent_id)?;
    let stack_id = state.object(new.deployment_object_id)?.stack_id;
    let at = now();
    let report = HealthReport {
        agent_id: new.agent_id,
        stack_id,
        deployment_object_id: new.deployment_object_id,
        status: crate::health::summarize(&new.resources),
        summary: new.summary,
        resources: new.resources,
        reported_at: at,
    };
    let before = state
        .health
        .insert((stack_id, new.agent_id), report.clone())
        .map(|previous| previous.status);
    if before != Some(report.status) {
        state.emit(WebhookEvent::health_changed(&report, before, at));
    }
    state.poke_rollouts([stack_id], at);
    Ok(report)
}

pub(super) fn stack_health(store: &MemoryStore, stack_id: StackId) -> Result<Vec<HealthReport>> {
    let state = store.state();
    if !state.stacks.contains_key(&stack_id) {
        return Err(Error::not_found("stack", stack_id));
    }
    Ok(state
        .health
        .range((stack_id, AgentId(uuid::Uuid::nil()))..=(stack_id, AgentId(uuid::Uuid::max())))
        .map(|(_, report)| report.clone())
        .collect())
}

pub(super) fn get_agent_event(store: &MemoryStore, id: AgentEventId) -> Result<AgentEvent> {
    store
        .state()
        .events
        .get(&id)
        .cloned()
        .ok_or_else(|| Error::not_found("agent event", id))
}

pub(super) fn list_agent_events(
    store: &MemoryStore,
    filter: &AgentEventFilter,
    page: &PageRequest,
) -> Result<Page<AgentEvent>> {
    let state = store.state();
    let rows = state
        .events
        .values()
        .filter(|e| filter.agent_id.is_none_or(|a| e.agent_id == a))
        .filter(|e| filter.stack_id.is_none_or(|s| e.stack_id == s))
        .filter(|e| {
            filter
                .deployment_object_id
                .is_none_or(|d| e.deployment_object_id == d)
        })
        .filter(|e| filter.event_type.is_none_or(|t| e.event_type == t))
        .filter(|e| filter.status.is_none_or(|s| e.status == s))
        .filter(|e| filter.since.is_none_or(|since| e.created_at >= since))
        .filter(|e| filter.until.is_none_or(|until| e.created_at < until))
        .cloned()
        .collect();
    paginate(rows, page, |e| e.id, parse_uuid, |e| e.id.to_string())
}

impl super::State {
    /// What a successful report changes besides its own row: what the agent runs of
    /// the stack, and a confirmed removal retires the target (so it leaves the target
    /// state). Whether it retired one.
    fn settle(&mut self, event: &AgentEvent) -> bool {
        self.note_applied(event);
        let stack_deleted = self
            .stacks
            .get(&event.stack_id)
            .is_none_or(|s| s.deleted_at.is_some());
        let key = (event.agent_id, event.stack_id);
        let retired = event.event_type == EventType::Delete
            && event.status == EventStatus::Success
            && self
                .targets
                .get(&key)
                .is_some_and(|t| t.removed_at.is_some() || stack_deleted);
        if retired {
            self.targets.remove(&key);
        }
        retired
    }
}
