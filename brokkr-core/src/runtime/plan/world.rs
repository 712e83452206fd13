//! Where every agent stands for a stack, and where a change would take it.
//!
//! `from` is what the agent last reported applying (its latest successful event for the
//! stack), never what the server last sent it: an agent that never applied the latest
//! version still runs the one before. `to` follows from the stack's targets and the
//! change.

use std::collections::{BTreeMap, BTreeSet};

use crate::id::{AgentId, DeploymentObjectId, StackId};
use crate::model::{StackWorld, TargetSource};
use crate::page::{Order, PageRequest};
use crate::placement::Inventory;
use crate::plan::{AgentMove, Version};
use crate::runtime::{ControlPlane, Result};

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

/// Every agent's move under `effect` in `world`, named by id (a stored plan names
/// them, see `store_plan`). Agents with neither a version nor a target are left out.
/// Pure: a store runs it inside a confirmed change's transaction to recompute the
/// digest.
pub(crate) fn moves(world: &StackWorld, effect: &Effect) -> Vec<AgentMove> {
    let latest = world.latest_live.map(Version::Stored);
    let mut to: BTreeMap<AgentId, Option<Version>> = BTreeMap::new();
    for target in &world.targets {
        let live = target.live;
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
    let from: BTreeMap<AgentId, Option<DeploymentObjectId>> =
        world.applied.iter().copied().collect();
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

impl ControlPlane {
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
    use super::*;
    use crate::model::WorldTarget;

    fn target(agent: AgentId, source: TargetSource, removed: bool) -> WorldTarget {
        WorldTarget {
            agent_id: agent,
            source,
            live: !removed,
        }
    }

    fn applied(
        agent: AgentId,
        object: Option<DeploymentObjectId>,
    ) -> (AgentId, Option<DeploymentObjectId>) {
        (agent, object)
    }

    #[test]
    fn moves_follow_targets_and_the_effect() {
        let [direct, placed, removed, gone] = [(); 4].map(|()| AgentId::new());
        let (old, latest) = (DeploymentObjectId::new(), DeploymentObjectId::new());
        let world = StackWorld {
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
            latest_live: Some(latest),
        };
        let of = |moves: &[AgentMove], agent| {
            let m = moves.iter().find(|m| m.agent_id == agent).expect("a move");
            (m.from, m.to)
        };

        let planned = moves(&world, &Effect::Everyone(Some(Version::Proposed)));
        assert_eq!(planned.len(), 3, "the agent with nothing is left out");
        assert_eq!(
            of(&planned, direct),
            (Some(latest), Some(Version::Proposed))
        );
        assert_eq!(
            of(&planned, removed),
            (Some(old), None),
            "a removal stays one"
        );

        let newcomer = AgentId::new();
        let planned = moves(&world, &Effect::Chosen([newcomer].into()));
        assert_eq!(
            of(&planned, direct).1,
            Some(Version::Stored(latest)),
            "direct stays"
        );
        assert_eq!(of(&planned, placed).1, None, "not chosen: removed");
        assert_eq!(
            of(&planned, newcomer),
            (None, Some(Version::Stored(latest)))
        );

        let planned = moves(&world, &Effect::Unassign(direct));
        assert_eq!(of(&planned, direct).1, None);
        assert_eq!(of(&planned, placed).1, Some(Version::Stored(latest)));
    }
}
