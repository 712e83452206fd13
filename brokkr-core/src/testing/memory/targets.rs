//! Agent targets and the target state derived from them.

use super::state::{now, paginate, parse_uuid};
use super::{MemoryStore, State};
use crate::id::{AgentId, StackId};
use crate::model::{Actor, AgentTarget, AuditAction, ResourceKind, TargetSource};
use crate::page::{Page, PageRequest};
use crate::store::{Error, Result, TargetFilter};
use crate::target_state::{TargetAction, TargetState, TargetStateEntry};

pub(super) fn assign_stack(
    store: &MemoryStore,
    actor: &Actor,
    agent_id: AgentId,
    stack_id: StackId,
) -> Result<AgentTarget> {
    let target = {
        let mut state = store.state();
        let agent_name = state.live_agent(agent_id)?.name.clone();
        let stack_name = state.live_stack(stack_id)?.name.clone();
        let at = now();
        let target = match state.targets.get_mut(&(agent_id, stack_id)) {
            // Placed there: an admin's assignment makes it direct, so a later
            // decision that drops the agent leaves it alone.
            Some(target)
                if target.removed_at.is_none() && target.source == TargetSource::Placement =>
            {
                target.source = TargetSource::Direct;
                target.clone()
            }
            Some(target) if target.removed_at.is_none() => {
                return Err(Error::Conflict(format!(
                    "stack {stack_name:?} is already assigned to agent {agent_name:?}"
                )));
            }
            // Awaiting removal: revive it rather than make a second row.
            Some(target) => {
                target.removed_at = None;
                target.source = TargetSource::Direct;
                target.clone()
            }
            None => {
                let target = AgentTarget {
                    agent_id,
                    stack_id,
                    source: TargetSource::Direct,
                    created_at: at,
                    removed_at: None,
                };
                state.targets.insert((agent_id, stack_id), target.clone());
                target
            }
        };
        state.poke_rollouts([stack_id], at);
        let summary = format!("assigned stack {stack_name:?} to agent {agent_name:?}");
        state.audit(
            actor,
            AuditAction::Assign,
            ResourceKind::AgentTarget,
            stack_id,
            summary,
            at,
        );
        target
    };
    store.publish(vec![agent_id]);
    Ok(target)
}

pub(super) fn unassign_stack(
    store: &MemoryStore,
    actor: &Actor,
    agent_id: AgentId,
    stack_id: StackId,
) -> Result<()> {
    store.state().unassign(actor, agent_id, stack_id)?;
    store.publish(vec![agent_id]);
    Ok(())
}

impl State {
    /// Unassigns a live target and audits; the caller wakes the agent.
    pub(super) fn unassign(
        &mut self,
        actor: &Actor,
        agent_id: AgentId,
        stack_id: StackId,
    ) -> Result<()> {
        let agent_name = self.live_agent(agent_id)?.name.clone();
        let at = now();
        let target = self
            .targets
            .get_mut(&(agent_id, stack_id))
            .filter(|t| t.removed_at.is_none())
            .ok_or_else(|| Error::not_found("agent target", format!("{agent_id}/{stack_id}")))?;
        target.removed_at = Some(at);
        // Never sent anything of the stack (no release, no pin), the agent has nothing
        // to remove and no removal to wait for.
        if !self.rollouts.ever_sent(agent_id, stack_id) {
            self.targets.remove(&(agent_id, stack_id));
        }
        self.poke_rollouts([stack_id], at);
        let summary = format!("unassigned stack {stack_id} from agent {agent_name:?}");
        self.audit(
            actor,
            AuditAction::Unassign,
            ResourceKind::AgentTarget,
            stack_id,
            summary,
            at,
        );
        Ok(())
    }
}

pub(super) fn list_agent_targets(
    store: &MemoryStore,
    filter: &TargetFilter,
    page: &PageRequest,
) -> Result<Page<AgentTarget>> {
    let state = store.state();
    let rows = state
        .targets
        .values()
        .filter(|t| filter.agent_id.is_none_or(|a| t.agent_id == a))
        .filter(|t| filter.stack_id.is_none_or(|s| t.stack_id == s))
        .cloned()
        .collect();
    paginate(
        rows,
        page,
        |t| (t.agent_id, t.stack_id),
        |c| {
            let (agent, stack) = c.split_once(':')?;
            Some((parse_uuid(agent)?, parse_uuid(stack)?))
        },
        |t| format!("{}:{}", t.agent_id, t.stack_id),
    )
}

pub(super) fn target_state(store: &MemoryStore, agent_id: AgentId) -> Result<TargetState> {
    let state = store.state();
    state.live_agent(agent_id)?;
    let entries = state
        .targets
        .range((agent_id, StackId(uuid::Uuid::nil()))..=(agent_id, StackId(uuid::Uuid::max())))
        .filter_map(|(_, target)| {
            let object = state
                .rollouts
                .object_for(agent_id, target.stack_id)
                .and_then(|id| state.object(id).ok())?;
            let stack = state.stacks.get(&target.stack_id)?;
            let action = if target.removed_at.is_some() || object.is_deletion_marker {
                TargetAction::Remove
            } else {
                TargetAction::Apply
            };
            Some(TargetStateEntry {
                stack_id: stack.id,
                stack_name: stack.name.clone(),
                action,
                deployment_object: object.clone(),
            })
        })
        .collect();
    Ok(TargetState::new(agent_id, entries))
}
