//! Placement policies, decisions and the targets they make.

use std::collections::BTreeSet;

use chrono::{DateTime, Utc};

use super::state::{now, paginate, parse_uuid};
use super::{MemoryStore, State};
use crate::id::{AgentId, StackId};
use crate::model::{
    Actor, AgentTarget, AuditAction, PlacementChange, ResourceKind, StackPlacement, TargetSource,
    WebhookEvent,
};
use crate::page::{Page, PageRequest};
use crate::placement::{PlacementDecision, PlacementPolicy};
use crate::store::{Error, Result};

pub(super) fn set_placement_policy(
    store: &MemoryStore,
    actor: &Actor,
    stack_id: StackId,
    policy: Option<PlacementPolicy>,
) -> Result<Option<StackPlacement>> {
    let (placement, agents) = store.state().set_policy(actor, stack_id, policy)?;
    if !agents.is_empty() {
        store.publish(agents);
    }
    Ok(placement)
}

pub(super) fn get_placement(
    store: &MemoryStore,
    stack_id: StackId,
) -> Result<Option<StackPlacement>> {
    let state = store.state();
    state.live_stack(stack_id)?;
    Ok(state.placements.get(&stack_id).cloned())
}

pub(super) fn list_placements(
    store: &MemoryStore,
    page: &PageRequest,
) -> Result<Page<StackPlacement>> {
    let state = store.state();
    let rows = state
        .placements
        .values()
        .filter(|p| state.live_stack(p.stack_id).is_ok())
        .cloned()
        .collect();
    paginate(
        rows,
        page,
        |p| p.stack_id,
        parse_uuid,
        |p| p.stack_id.to_string(),
    )
}

pub(super) fn record_placement(
    store: &MemoryStore,
    actor: &Actor,
    stack_id: StackId,
    decision: PlacementDecision,
) -> Result<PlacementChange> {
    let change = store.state().record_decision(actor, stack_id, decision)?;
    let agents: Vec<AgentId> = change
        .added
        .iter()
        .chain(&change.removed)
        .copied()
        .collect();
    if !agents.is_empty() {
        store.publish(agents);
    }
    Ok(change)
}

impl State {
    /// Makes the stack's placement targets follow `chosen`: chosen live agents without
    /// a live target get one (reviving a target awaiting removal), placement targets of
    /// agents not chosen are unassigned. Direct targets are left alone.
    pub(super) fn sync_placement_targets(
        &mut self,
        stack_id: StackId,
        chosen: &BTreeSet<AgentId>,
        at: DateTime<Utc>,
    ) -> PlacementChange {
        let mut change = PlacementChange::default();
        let current: Vec<AgentTarget> = self
            .targets
            .values()
            .filter(|t| t.stack_id == stack_id)
            .cloned()
            .collect();
        let mut has_row = BTreeSet::new();
        for target in current {
            has_row.insert(target.agent_id);
            let is_chosen = chosen.contains(&target.agent_id);
            match (target.removed_at, target.source) {
                (None, TargetSource::Placement) if !is_chosen => {
                    self.remove_target(target.agent_id, stack_id, at);
                    change.removed.push(target.agent_id);
                }
                (Some(_), _) if is_chosen && self.live_agent(target.agent_id).is_ok() => {
                    let row = self
                        .targets
                        .get_mut(&(target.agent_id, stack_id))
                        .expect("read from the same map under the same lock");
                    row.removed_at = None;
                    row.source = TargetSource::Placement;
                    row.created_at = at;
                    change.added.push(target.agent_id);
                }
                _ => {}
            }
        }
        for &agent_id in chosen {
            if has_row.contains(&agent_id) || self.live_agent(agent_id).is_err() {
                continue;
            }
            self.targets.insert(
                (agent_id, stack_id),
                AgentTarget {
                    agent_id,
                    stack_id,
                    source: TargetSource::Placement,
                    created_at: at,
                    removed_at: None,
                },
            );
            change.added.push(agent_id);
        }
        change.added.sort();
        change.removed.sort();
        if !change.added.is_empty() || !change.removed.is_empty() {
            self.poke_rollouts([stack_id], at);
        }
        change
    }
}

/// The audit summary of a decision: counts, never the agent lists (they can be long).
pub(super) fn placement_summary(stack: &str, chosen: usize, change: &PlacementChange) -> String {
    format!(
        "placed stack {stack:?} on {chosen} agents ({} added, {} removed)",
        change.added.len(),
        change.removed.len()
    )
}

impl State {
    /// Sets or removes a live stack's policy and audits. Answers the placement and the
    /// agents to wake.
    pub(super) fn set_policy(
        &mut self,
        actor: &Actor,
        stack_id: StackId,
        policy: Option<PlacementPolicy>,
    ) -> Result<(Option<StackPlacement>, Vec<AgentId>)> {
        if let Some(policy) = &policy {
            policy
                .validate()
                .map_err(|err| Error::Invalid(err.to_string()))?;
        }
        let name = self.live_stack(stack_id)?.name.clone();
        let at = now();
        let out = match policy {
            Some(policy) => {
                let placement = self
                    .placements
                    .entry(stack_id)
                    .and_modify(|p| {
                        p.policy = policy.clone();
                        p.updated_at = at;
                    })
                    .or_insert_with(|| StackPlacement {
                        stack_id,
                        policy,
                        decision: None,
                        updated_at: at,
                        decided_at: None,
                    })
                    .clone();
                let summary = format!("set the placement policy of stack {name:?}");
                self.audit(
                    actor,
                    AuditAction::Update,
                    ResourceKind::Placement,
                    stack_id,
                    summary,
                    at,
                );
                (Some(placement), Vec::new())
            }
            None => {
                // Removing a policy that is not there changes nothing.
                if self.placements.remove(&stack_id).is_none() {
                    return Ok((None, Vec::new()));
                }
                let change = self.sync_placement_targets(stack_id, &BTreeSet::new(), at);
                let summary = format!(
                    "removed the placement policy of stack {name:?} ({} placement targets unassigned)",
                    change.removed.len()
                );
                self.audit(
                    actor,
                    AuditAction::Delete,
                    ResourceKind::Placement,
                    stack_id,
                    summary,
                    at,
                );
                (None, change.removed)
            }
        };
        Ok(out)
    }

    /// Records a decision for a stack with a policy and makes its placement targets
    /// follow it (its chosen and its leaving agents); audits when the chosen set or
    /// the targets change. The caller wakes the agents
    /// added and removed.
    pub(super) fn record_decision(
        &mut self,
        actor: &Actor,
        stack_id: StackId,
        decision: PlacementDecision,
    ) -> Result<PlacementChange> {
        let name = self.live_stack(stack_id)?.name.clone();
        let stored = self
            .placements
            .get(&stack_id)
            .ok_or_else(|| Error::not_found("placement", stack_id))?;
        let decision_changed = stored.decision.as_ref() != Some(&decision);
        let before: BTreeSet<AgentId> = stored
            .decision
            .iter()
            .flat_map(|d| d.chosen.iter().copied())
            .collect();
        let chosen: BTreeSet<AgentId> = decision.chosen.iter().copied().collect();
        // Leaving agents keep their targets (graceful eviction) until a later decision
        // no longer lists them.
        let keeps = decision.keeps();
        let at = now();
        if before != chosen {
            let from = stored.decision.as_ref().map(|d| d.chosen.as_slice());
            let event = WebhookEvent::placement_changed(stack_id, from, &decision.chosen, at);
            self.emit(event);
        }
        let mut change = self.sync_placement_targets(stack_id, &keeps, at);
        change.decision_changed = decision_changed;
        if decision_changed {
            let stored = self
                .placements
                .get_mut(&stack_id)
                .expect("checked above, under the same lock");
            stored.decision = Some(decision);
            stored.decided_at = Some(at);
        }
        if before != chosen || !change.added.is_empty() || !change.removed.is_empty() {
            let summary = placement_summary(&name, chosen.len(), &change);
            self.audit(
                actor,
                AuditAction::Place,
                ResourceKind::Placement,
                stack_id,
                summary,
                at,
            );
        }
        Ok(change)
    }
}
