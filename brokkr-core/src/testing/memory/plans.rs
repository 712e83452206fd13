//! Plans and the guard's inputs: deployment objects' items, what agents last applied,
//! per-stack guard overrides, stored plans.

use std::collections::HashSet;

use chrono::{DateTime, SubsecRound, Utc};

use super::state::now;
use super::{MemoryStore, State};
use crate::id::{AgentId, DeploymentObjectId, PlanId, StackId};
use crate::model::{
    Actor, AgentEvent, AppliedState, AuditAction, EventStatus, EventType, NewPlan, PlanOrigin,
    ResourceKind, StoredPlan, WebhookEvent,
};
use crate::plan::{GuardOverrides, ItemDigest};
use crate::store::{Error, Result};

pub(super) fn deployment_object_items(
    store: &MemoryStore,
    ids: &[DeploymentObjectId],
) -> Result<Vec<(DeploymentObjectId, Vec<ItemDigest>)>> {
    let state = store.state();
    let mut seen = HashSet::new();
    Ok(ids
        .iter()
        .filter(|id| state.object_sequences.contains_key(id) && seen.insert(**id))
        .map(|id| (*id, state.items.get(id).cloned().unwrap_or_default()))
        .collect())
}

pub(super) fn applied_states(store: &MemoryStore, stack_id: StackId) -> Result<Vec<AppliedState>> {
    let state = store.state();
    if !state.stacks.contains_key(&stack_id) {
        return Err(Error::not_found("stack", stack_id));
    }
    Ok(state
        .applied
        .range((stack_id, AgentId(uuid::Uuid::nil()))..=(stack_id, AgentId(uuid::Uuid::max())))
        .map(|(_, applied)| applied.clone())
        .collect())
}

pub(super) fn guard_overrides(store: &MemoryStore, stack_id: StackId) -> Result<GuardOverrides> {
    let state = store.state();
    state.live_stack(stack_id)?;
    Ok(state
        .guard_overrides
        .get(&stack_id)
        .cloned()
        .unwrap_or_default())
}

pub(super) fn set_guard_overrides(
    store: &MemoryStore,
    actor: &Actor,
    stack_id: StackId,
    overrides: GuardOverrides,
) -> Result<GuardOverrides> {
    let mut state = store.state();
    let name = state.live_stack(stack_id)?.name.clone();
    let at = now();
    if overrides == GuardOverrides::default() {
        state.guard_overrides.remove(&stack_id);
    } else {
        state.guard_overrides.insert(stack_id, overrides.clone());
    }
    state.audit(
        actor,
        AuditAction::Update,
        ResourceKind::Stack,
        stack_id,
        format!("set the guard overrides of stack {name:?}"),
        at,
    );
    Ok(overrides)
}

pub(super) fn create_plan(store: &MemoryStore, actor: &Actor, new: NewPlan) -> Result<StoredPlan> {
    let mut state = store.state();
    let name = state.live_stack(new.stack_id)?.name.clone();
    let at = now();
    let holds_change = new.holds_change || new.origin == PlanOrigin::Held;
    let plan = StoredPlan {
        id: PlanId::new(),
        stack_id: new.stack_id,
        origin: new.origin,
        change: new.change,
        digest: new.digest,
        body: new.body,
        created_by: *actor,
        created_at: at,
        // The precision a database keeps, so a plan reads back alike everywhere.
        expires_at: new.expires_at.trunc_subsecs(6),
        consumed_at: None,
        consumed_by: None,
    };
    state.plans.insert(plan.id, plan.clone());
    let summary = format!("created {} plan for stack {name:?}", plan.origin.as_str());
    state.audit(
        actor,
        AuditAction::Create,
        ResourceKind::Plan,
        plan.id,
        summary,
        at,
    );
    if holds_change {
        state.emit(WebhookEvent::plan_held(&plan, at));
    }
    Ok(plan)
}

pub(super) fn get_plan(store: &MemoryStore, id: PlanId) -> Result<StoredPlan> {
    store
        .state()
        .plans
        .get(&id)
        .cloned()
        .ok_or_else(|| Error::not_found("plan", id))
}

pub(super) fn held_plan(
    store: &MemoryStore,
    stack_id: StackId,
    at: DateTime<Utc>,
) -> Result<Option<StoredPlan>> {
    let state = store.state();
    Ok(state
        .plans
        .values()
        .filter(|p| p.stack_id == stack_id && p.origin == PlanOrigin::Held)
        .max_by_key(|p| (p.created_at, p.id))
        .filter(|p| p.consumed_at.is_none() && p.expires_at > at)
        .cloned())
}

impl State {
    /// Keeps what the agent last applied of the event's stack current, for a newly
    /// recorded successful event (failures say nothing about what runs; a drift repair
    /// re-applied its object).
    pub(super) fn note_applied(&mut self, event: &AgentEvent) {
        if event.status != EventStatus::Success {
            return;
        }
        let deployment_object_id = match event.event_type {
            EventType::Apply | EventType::Drift => Some(event.deployment_object_id),
            EventType::Delete => None,
        };
        self.applied.insert(
            (event.stack_id, event.agent_id),
            AppliedState {
                agent_id: event.agent_id,
                deployment_object_id,
                recorded_at: event.created_at,
            },
        );
    }
}
