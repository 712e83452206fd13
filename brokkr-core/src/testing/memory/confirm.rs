//! A stack's world in one read, confirmed changes (the plan used, the world checked
//! and the change written under one lock), and appends the guard's shortcut clears
//! under the same lock.

use super::state::now;
use super::{MemoryStore, State};
use crate::id::{AgentId, PlanId, StackId};
use crate::model::{
    Actor, AppliedVersions, AuditAction, NewDeploymentObject, ResourceKind, StackWorld, StoredPlan,
    WebhookEvent, WorldTarget,
};
use crate::plan::append_keeps_everything;
use crate::store::{
    Confirmation, Confirmed, ConfirmedChange, ConfirmedWrite, Error, HarmlessAppend, Result,
};

pub(super) fn stack_world(store: &MemoryStore, stack_id: StackId) -> Result<StackWorld> {
    store.state().stack_world(stack_id)
}

pub(super) fn append_if_harmless(
    store: &MemoryStore,
    actor: &Actor,
    new: NewDeploymentObject,
) -> Result<HarmlessAppend> {
    let (object, agents) = {
        let mut state = store.state();
        if !state.harmless(&new)? {
            return Ok(HarmlessAppend::NeedsPlan(new));
        }
        state.append_audited(actor, new)?
    };
    store.publish(agents);
    Ok(HarmlessAppend::Appended(object))
}

pub(super) fn write_confirmed(
    store: &MemoryStore,
    actor: &Actor,
    confirmation: &Confirmation<'_>,
    change: ConfirmedChange,
) -> Result<Confirmed> {
    let (confirmed, agents) = {
        let mut state = store.state();
        let stack = confirmation.stack_id;
        let at = now();
        let plan = state
            .plans
            .get(&confirmation.plan_id)
            .ok_or_else(|| Error::not_found("plan", confirmation.plan_id))?;
        if plan.consumed_at.is_some() {
            return Ok(Confirmed::Consumed);
        }
        if plan.stack_id != stack || plan.expires_at <= at {
            return Ok(Confirmed::Stale);
        }
        let expected = plan.digest.clone();
        if (confirmation.digest)(&state.stack_world(stack)?) != expected {
            return Ok(Confirmed::Stale);
        }
        // The change first: if it fails, the plan stays unused (nothing was written).
        let (written, agents) = state.write_change(actor, stack, change)?;
        state.consume(actor, confirmation.plan_id, at);
        let event = WebhookEvent::plan_confirmed(confirmation.plan_id, stack, &expected, at);
        state.emit(event);
        (Confirmed::Written { written, at }, agents)
    };
    if !agents.is_empty() {
        store.publish(agents);
    }
    Ok(confirmed)
}

impl State {
    /// Whether the guard's shortcut clears `new`: no reverted rollout had its
    /// content, and it keeps everything the stack's agents run.
    fn harmless(&self, new: &NewDeploymentObject) -> Result<bool> {
        let stack = new.stack_id();
        if self.rejecting_rollout(stack, new.yaml_checksum()).is_some() {
            return Ok(false);
        }
        let applied = AppliedVersions::of(&self.stack_world(stack)?);
        let items: Vec<_> = applied
            .versions
            .iter()
            .filter_map(|id| self.items.get(id).map(|items| (*id, items.clone())))
            .collect();
        Ok(append_keeps_everything(&applied, &items, new.items()))
    }

    pub(super) fn stack_world(&self, stack_id: StackId) -> Result<StackWorld> {
        if !self.stacks.contains_key(&stack_id) {
            return Err(Error::not_found("stack", stack_id));
        }
        // Targets are keyed by (agent, stack): in agent order already.
        let targets = self
            .targets
            .values()
            .filter(|t| t.stack_id == stack_id)
            .map(|t| WorldTarget {
                agent_id: t.agent_id,
                source: t.source,
                live: t.removed_at.is_none(),
            })
            .collect();
        let applied = self
            .applied
            .range((stack_id, AgentId(uuid::Uuid::nil()))..=(stack_id, AgentId(uuid::Uuid::max())))
            .map(|(_, applied)| (applied.agent_id, applied.deployment_object_id))
            .collect();
        let latest_live = self
            .latest_sequence
            .get(&stack_id)
            .and_then(|sequence| self.objects.get(sequence))
            .filter(|object| !object.is_deletion_marker)
            .map(|object| object.id);
        Ok(StackWorld {
            targets,
            applied,
            latest_live,
        })
    }

    /// Writes a confirmed change as the store method it stands for would; answers the
    /// agents to wake.
    fn write_change(
        &mut self,
        actor: &Actor,
        stack: StackId,
        change: ConfirmedChange,
    ) -> Result<(ConfirmedWrite, Vec<AgentId>)> {
        Ok(match change {
            ConfirmedChange::Append(new) => {
                if new.stack_id() != stack {
                    return Err(Error::Invalid(format!(
                        "a confirmation of stack {stack} appends to another stack"
                    )));
                }
                let (object, agents) = self.append_audited(actor, new)?;
                (ConfirmedWrite::Object(object), agents)
            }
            ConfirmedChange::DeleteStack => {
                let (marker, agents) = self.delete_stack(actor, stack)?;
                (ConfirmedWrite::Object(marker), agents)
            }
            ConfirmedChange::Unassign(agent) => {
                self.unassign(actor, agent, stack)?;
                (ConfirmedWrite::Done, vec![agent])
            }
            ConfirmedChange::RemovePolicy => {
                let (_, agents) = self.set_policy(actor, stack, None)?;
                (ConfirmedWrite::Done, agents)
            }
            ConfirmedChange::Place(policy, decision) => {
                let (_, mut agents) = self.set_policy(actor, stack, Some(policy))?;
                let change = self.record_decision(actor, stack, decision)?;
                agents.extend(change.added.iter().chain(&change.removed));
                (ConfirmedWrite::Placed(change), agents)
            }
            ConfirmedChange::Decide(decision) => {
                let change = self.record_decision(actor, stack, decision)?;
                let agents = change
                    .added
                    .iter()
                    .chain(&change.removed)
                    .copied()
                    .collect();
                (ConfirmedWrite::Placed(change), agents)
            }
        })
    }

    /// Marks a plan used and audits; the caller checked it was unused.
    pub(super) fn consume(
        &mut self,
        actor: &Actor,
        id: PlanId,
        at: chrono::DateTime<chrono::Utc>,
    ) -> StoredPlan {
        let plan = self
            .plans
            .get_mut(&id)
            .expect("the caller found the plan under the same lock");
        plan.consumed_at = Some(at);
        plan.consumed_by = Some(*actor);
        let plan = plan.clone();
        self.audit(
            actor,
            AuditAction::Confirm,
            ResourceKind::Plan,
            id,
            format!("confirmed plan {id} of stack {}", plan.stack_id),
            at,
        );
        plan
    }
}
