//! Where every agent stands for a stack, and where a change would take it.
//!
//! `from` is what the agent last reported applying (its latest successful event for the
//! stack), never what the server last sent it: an agent that never applied the latest
//! version still runs the one before. `to` follows from the stack's targets and the
//! change.

use std::collections::{BTreeMap, BTreeSet};

use crate::id::{AgentId, DeploymentObjectId, StackId};
use crate::model::{AgentTarget, AppliedState, TargetSource};
use crate::page::{Order, PageRequest};
use crate::placement::Inventory;
use crate::plan::{AgentMove, Version};
use crate::runtime::placement::all_pages;
use crate::runtime::{ControlPlane, Result};
use crate::store::TargetFilter;

/// What a change does to the stack's targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Effect {
    /// Every agent responsible for the stack is sent this (`None`: a removal).
    Everyone(Option<Version>),
    /// Placement targets follow `chosen`; direct targets stay.
    Chosen(BTreeSet<AgentId>),
    /// This agent loses the stack; the others stay.
    Unassign(AgentId),
}

/// The stack's targets, what its agents applied and its latest version, read once.
#[derive(Debug, Clone)]
pub(crate) struct World {
    targets: Vec<AgentTarget>,
    applied: Vec<AppliedState>,
    /// The latest deployment object, unless it is a deletion marker.
    latest: Option<DeploymentObjectId>,
}

impl World {
    /// Every agent's move under `effect`, named by id (a stored plan names them, see
    /// `store_plan`). Agents with neither a version nor a target are left out.
    pub(crate) fn moves(&self, effect: &Effect) -> Vec<AgentMove> {
        let latest = self.latest.map(Version::Stored);
        let mut to: BTreeMap<AgentId, Option<Version>> = BTreeMap::new();
        for target in &self.targets {
            let live = target.removed_at.is_none();
            let gets = match effect {
                _ if !live => None,
                Effect::Everyone(version) => *version,
                Effect::Chosen(chosen) => match target.source {
                    TargetSource::Direct => latest,
                    TargetSource::Placement => latest.filter(|_| chosen.contains(&target.agent_id)),
                },
                Effect::Unassign(agent) if *agent == target.agent_id => None,
                Effect::Unassign(_) => latest,
            };
            to.insert(target.agent_id, gets);
        }
        if let Effect::Chosen(chosen) = effect {
            // A chosen agent without a live target gets one (a removed one revives).
            for &agent in chosen {
                let entry = to.entry(agent).or_insert(None);
                if entry.is_none() {
                    *entry = latest;
                }
            }
        }
        let from: BTreeMap<AgentId, Option<DeploymentObjectId>> = self
            .applied
            .iter()
            .map(|state| (state.agent_id, state.deployment_object_id))
            .collect();
        let agents: BTreeSet<AgentId> = to.keys().chain(from.keys()).copied().collect();
        agents
            .into_iter()
            .map(|agent_id| AgentMove {
                agent_id,
                agent_name: agent_id.to_string(),
                from: from.get(&agent_id).copied().flatten(),
                to: to.get(&agent_id).copied().flatten(),
            })
            .filter(|m| m.from.is_some() || m.to.is_some())
            .collect()
    }
}

/// Whether any agent runs a version of the stack: without one, no change can remove or
/// prune anything.
pub(crate) fn anyone_applied(applied: &[AppliedState]) -> bool {
    applied
        .iter()
        .any(|state| state.deployment_object_id.is_some())
}

impl ControlPlane {
    /// Reads the stack's world: its targets (all pages), its agents' applied states
    /// and its latest deployment object. Three reads, none growing with history.
    pub(crate) async fn plan_world(&self, stack: StackId) -> Result<World> {
        let applied = self.store().applied_states(stack).await?;
        self.plan_world_with(stack, applied).await
    }

    /// [`ControlPlane::plan_world`] with the applied states already read.
    pub(crate) async fn plan_world_with(
        &self,
        stack: StackId,
        applied: Vec<AppliedState>,
    ) -> Result<World> {
        let store = self.store().as_ref();
        let filter = TargetFilter {
            stack_id: Some(stack),
            ..TargetFilter::default()
        };
        let filter = &filter;
        let targets =
            all_pages(|page| async move { store.list_agent_targets(filter, &page).await }).await?;
        let latest = self.latest_live_object(stack).await?;
        Ok(World {
            targets,
            applied,
            latest,
        })
    }

    /// The stack's latest deployment object, unless it is a deletion marker.
    pub(crate) async fn latest_live_object(
        &self,
        stack: StackId,
    ) -> Result<Option<DeploymentObjectId>> {
        let newest = PageRequest {
            limit: 1,
            cursor: None,
            order: Order::Descending,
        };
        Ok(self
            .store()
            .list_deployment_objects(stack, crate::page::ContentListing::Omit, &newest)
            .await?
            .items
            .into_iter()
            .next()
            .filter(|object| !object.is_deletion_marker)
            .map(|object| object.id))
    }

    /// The names of `agents` that the placement index knows (live agents).
    pub(crate) async fn agent_names(
        &self,
        agents: BTreeSet<AgentId>,
    ) -> Result<BTreeMap<AgentId, String>> {
        self.with_index(move |index, _| {
            agents
                .into_iter()
                .filter_map(|id| index.agents.get(&id).map(|a| (id, a.name.clone())))
                .collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;

    fn target(agent: AgentId, source: TargetSource, removed: bool) -> AgentTarget {
        AgentTarget {
            agent_id: agent,
            stack_id: StackId::new(),
            source,
            created_at: Utc::now(),
            removed_at: removed.then(Utc::now),
        }
    }

    fn applied(agent: AgentId, object: Option<DeploymentObjectId>) -> AppliedState {
        AppliedState {
            agent_id: agent,
            deployment_object_id: object,
            recorded_at: Utc::now(),
        }
    }

    #[test]
    fn moves_follow_targets_and_the_effect() {
        let [direct, placed, removed, gone] = [(); 4].map(|()| AgentId::new());
        let (old, latest) = (DeploymentObjectId::new(), DeploymentObjectId::new());
        let world = World {
            targets: vec![
                target(direct, TargetSource::Direct, false),
                target(placed, TargetSource::Placement, false),
                target(removed, TargetSource::Placement, true),
            ],
            applied: vec![
                applied(direct, Some(latest)),
                applied(placed, Some(old)),
                applied(removed, Some(old)),
                applied(gone, None),
            ],
            latest: Some(latest),
        };
        let of = |moves: &[AgentMove], agent| {
            let m = moves.iter().find(|m| m.agent_id == agent).expect("a move");
            (m.from, m.to)
        };

        let moves = world.moves(&Effect::Everyone(Some(Version::Proposed)));
        assert_eq!(moves.len(), 3, "the agent with nothing is left out");
        assert_eq!(of(&moves, direct), (Some(latest), Some(Version::Proposed)));
        assert_eq!(
            of(&moves, removed),
            (Some(old), None),
            "a removal stays one"
        );

        let newcomer = AgentId::new();
        let moves = world.moves(&Effect::Chosen([newcomer].into()));
        assert_eq!(
            of(&moves, direct).1,
            Some(Version::Stored(latest)),
            "direct stays"
        );
        assert_eq!(of(&moves, placed).1, None, "not chosen: removed");
        assert_eq!(of(&moves, newcomer), (None, Some(Version::Stored(latest))));

        let moves = world.moves(&Effect::Unassign(direct));
        assert_eq!(of(&moves, direct).1, None);
        assert_eq!(of(&moves, placed).1, Some(Version::Stored(latest)));
    }
}
