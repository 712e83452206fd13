//! Rollout policies and reads of rollouts: a rollout, a listing, its details, and the
//! snapshot an evaluation steps from.

use std::collections::{BTreeSet, HashMap};

use super::state::{now, paginate, parse_uuid};
use super::{MemoryStore, State};
use crate::id::{AgentId, DeploymentObjectId, RolloutId, StackId};
use crate::model::{Actor, AuditAction, EventType, ResourceKind, Rollout, RolloutState};
use crate::page::{Page, PageRequest};
use crate::rollout::{AgentView, ObservedEvent, ObservedHealth, RolloutPolicy, RolloutSnapshot};
use crate::store::{Error, Result, RolloutDetails, RolloutFilter};

pub(super) fn set_rollout_policy(
    store: &MemoryStore,
    actor: &Actor,
    stack_id: StackId,
    policy: Option<RolloutPolicy>,
) -> Result<()> {
    let mut state = store.state();
    let name = state.live_stack(stack_id)?.name.clone();
    let summary = match policy {
        Some(policy) => {
            state.rollouts.policies.insert(stack_id, policy);
            format!("set the rollout policy of stack {name:?}")
        }
        None => {
            state.rollouts.policies.remove(&stack_id);
            format!("removed the rollout policy of stack {name:?}")
        }
    };
    state.audit(
        actor,
        AuditAction::Update,
        ResourceKind::Stack,
        stack_id,
        summary,
        now(),
    );
    Ok(())
}

pub(super) fn rollout_policy(
    store: &MemoryStore,
    stack_id: StackId,
) -> Result<Option<RolloutPolicy>> {
    let state = store.state();
    state.live_stack(stack_id)?;
    Ok(state.rollouts.policies.get(&stack_id).cloned())
}

pub(super) fn release_head(
    store: &MemoryStore,
    stack_id: StackId,
) -> Result<Option<DeploymentObjectId>> {
    let state = store.state();
    if !state.stacks.contains_key(&stack_id) {
        return Err(Error::not_found("stack", stack_id));
    }
    Ok(state.rollouts.release.get(&stack_id).copied())
}

pub(super) fn rejecting_rollout(
    store: &MemoryStore,
    stack_id: StackId,
    yaml_checksum: &str,
) -> Result<Option<(RolloutId, DeploymentObjectId)>> {
    Ok(store.state().rejecting_rollout(stack_id, yaml_checksum))
}

impl State {
    /// The newest reverted rollout of the stack whose candidate had this content.
    pub(super) fn rejecting_rollout(
        &self,
        stack_id: StackId,
        yaml_checksum: &str,
    ) -> Option<(RolloutId, DeploymentObjectId)> {
        self.rollouts
            .rows
            .values()
            .rev()
            .map(|row| &row.rollout)
            .filter(|r| {
                r.stack_id == stack_id
                    && matches!(r.state, RolloutState::Reverted | RolloutState::RevertFailed)
            })
            .find(|r| {
                self.object(r.candidate)
                    .is_ok_and(|object| object.yaml_checksum == yaml_checksum)
            })
            .map(|r| (r.id, r.candidate))
    }
}

pub(super) fn get_rollout(store: &MemoryStore, id: RolloutId) -> Result<Rollout> {
    store
        .state()
        .rollouts
        .rows
        .get(&id)
        .map(|row| row.rollout.clone())
        .ok_or_else(|| Error::not_found("rollout", id))
}

pub(super) fn list_rollouts(
    store: &MemoryStore,
    filter: &RolloutFilter,
    page: &PageRequest,
) -> Result<Page<Rollout>> {
    let state = store.state();
    let rows = state
        .rollouts
        .rows
        .values()
        .map(|row| &row.rollout)
        .filter(|r| filter.stack_id.is_none_or(|s| r.stack_id == s))
        .filter(|r| filter.state.is_none_or(|s| r.state == s))
        .cloned()
        .collect();
    paginate(rows, page, |r| r.id, parse_uuid, |r| r.id.to_string())
}

pub(super) fn rollout_details(store: &MemoryStore, id: RolloutId) -> Result<RolloutDetails> {
    let mut details = store.state().rollout_details(id)?;
    details.agents.sort_by_key(|a| (a.wave, a.agent_id));
    Ok(details)
}

impl State {
    fn rollout_details(&self, id: RolloutId) -> Result<RolloutDetails> {
        let rollouts = &self.rollouts;
        let rollout = rollouts
            .rows
            .get(&id)
            .map(|row| row.rollout.clone())
            .ok_or_else(|| Error::not_found("rollout", id))?;
        let waves = rollouts
            .waves
            .range((id, 0)..=(id, u32::MAX))
            .map(|(_, wave)| wave.clone())
            .collect();
        // By agent id, as the snapshot wants them; details sort by wave after.
        let agents = rollouts
            .agents
            .range((id, AgentId(uuid::Uuid::nil()))..=(id, AgentId(uuid::Uuid::max())))
            .map(|(_, agent)| agent.clone())
            .collect();
        let gate_evaluations = rollouts
            .gates
            .values()
            .filter(|g| g.rollout_id == id)
            .cloned()
            .collect();
        let commands = rollouts
            .commands
            .values()
            .filter(|c| c.rollout_id == id)
            .cloned()
            .collect();
        Ok(RolloutDetails {
            rollout,
            waves,
            agents,
            gate_evaluations,
            commands,
        })
    }

    /// Per agent, its latest event (not a deletion) about each of `objects`: latest by
    /// when it was first recorded, then by id (event ids may be derived from what they
    /// report, so they need not be time-ordered).
    fn latest_events(
        &self,
        objects: &[DeploymentObjectId],
    ) -> HashMap<(AgentId, DeploymentObjectId), ObservedEvent> {
        let mut latest: HashMap<(AgentId, DeploymentObjectId), &crate::model::AgentEvent> =
            HashMap::new();
        for event in self.events.values() {
            if !objects.contains(&event.deployment_object_id)
                || event.event_type == EventType::Delete
            {
                continue;
            }
            let key = (event.agent_id, event.deployment_object_id);
            let newer = latest
                .get(&key)
                .is_none_or(|seen| (event.created_at, event.id) > (seen.created_at, seen.id));
            if newer {
                latest.insert(key, event);
            }
        }
        latest
            .into_iter()
            .map(|(key, event)| {
                let observed = ObservedEvent {
                    status: event.status,
                    at: event.created_at,
                };
                (key, observed)
            })
            .collect()
    }
}

pub(super) fn rollout_snapshot(store: &MemoryStore, id: RolloutId) -> Result<RolloutSnapshot> {
    let state = store.state();
    let details = state.rollout_details(id)?;
    let rollout = details.rollout;
    let stack = rollout.stack_id;
    let in_rollout: BTreeSet<AgentId> = details.agents.iter().map(|a| a.agent_id).collect();
    let placed: BTreeSet<AgentId> = state
        .targets
        .values()
        .filter(|t| t.stack_id == stack && t.removed_at.is_none())
        .filter(|t| state.live_agent(t.agent_id).is_ok())
        .map(|t| t.agent_id)
        .collect();
    let objects: Vec<DeploymentObjectId> = std::iter::once(rollout.candidate)
        .chain(rollout.baseline)
        .collect();
    let events = state.latest_events(&objects);
    let event_of = |agent: AgentId, object: Option<DeploymentObjectId>| {
        object.and_then(|object| events.get(&(agent, object)).copied())
    };
    let fleet = placed
        .union(&in_rollout)
        .filter_map(|agent_id| {
            let agent = state.agents.get(agent_id)?;
            Some(AgentView {
                agent_id: *agent_id,
                name: agent.name.clone(),
                labels: agent.labels.clone(),
                placed: placed.contains(agent_id),
                last_heartbeat: agent.last_heartbeat,
                candidate_event: event_of(*agent_id, Some(rollout.candidate)),
                baseline_event: event_of(*agent_id, rollout.baseline),
                health: state
                    .health
                    .get(&(stack, *agent_id))
                    .map(|h| ObservedHealth {
                        deployment_object_id: h.deployment_object_id,
                        status: h.status,
                        at: h.reported_at,
                    }),
            })
        })
        .collect();
    let slot_free = state
        .rollouts
        .active_of(stack)
        .is_none_or(|active| active == id);
    Ok(RolloutSnapshot {
        rollout,
        waves: details.waves,
        agents: details.agents,
        fleet,
        gate_evaluations: details.gate_evaluations,
        commands: details
            .commands
            .into_iter()
            .filter(|c| c.consumed_at.is_none())
            .collect(),
        slot_free,
    })
}
