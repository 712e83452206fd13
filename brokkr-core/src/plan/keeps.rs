//! The guard's shortcut for appends: an append that keeps every object of every
//! version the stack's agents run, while each of them has a live target, can neither
//! remove nor prune, so its plan need not be computed over every agent.
//!
//! The shortcut only ever says "proceed" where the full plan would allow the change
//! under any limits (the property test below holds it to that); anything else goes to
//! the full plan. Public, because a store judges appends with it inside their
//! transaction (`Store::append_if_harmless`).

use std::collections::HashSet;

use crate::id::DeploymentObjectId;
use crate::manifest::ObjectKey;
use crate::model::AppliedVersions;
use crate::plan::ItemDigest;

/// Whether an append of `proposed` can neither remove nor prune, given what the agents
/// run (`applied`) and the items of those versions (`items`, as
/// `Store::deployment_object_items` answers). A version whose items are missing is not
/// known to be kept.
pub fn append_keeps_everything(
    applied: &AppliedVersions,
    items: &[(DeploymentObjectId, Vec<ItemDigest>)],
    proposed: &[ItemDigest],
) -> bool {
    if applied.untargeted {
        return false;
    }
    let kept: HashSet<&ObjectKey> = proposed.iter().map(|item| &item.key).collect();
    applied.versions.iter().all(|version| {
        items
            .iter()
            .find(|(id, _)| id == version)
            .is_some_and(|(_, items)| items.iter().all(|item| kept.contains(&item.key)))
    })
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use proptest::prelude::*;

    use super::*;
    use crate::id::AgentId;
    use crate::model::{StackWorld, TargetSource, WorldTarget};
    use crate::plan::{self, GuardPolicy, Version};
    use crate::runtime::plan::world::{Effect, moves};

    /// Objects are named by a small number, so versions overlap often.
    fn item(name: u8) -> ItemDigest {
        ItemDigest {
            key: ObjectKey {
                api_version: "v1".into(),
                kind: "ConfigMap".into(),
                namespace: Some("default".into()),
                name: format!("o{name}"),
            },
            sha256: format!("{name:064}"),
        }
    }

    /// Limits that any removal or prune breaks.
    fn strictest() -> GuardPolicy {
        GuardPolicy {
            max_removed_fraction: 0.0,
            min_removed_agents: 0,
            max_pruned_objects: 0,
            protected_kinds: ["ConfigMap".to_owned()].into(),
        }
    }

    /// Per agent: a target (none, live, removed) and what it applied (nothing, a
    /// delete, or one of three versions).
    fn agents() -> impl Strategy<Value = Vec<(u8, u8)>> {
        proptest::collection::vec((0u8..3, 0u8..5), 0..12)
    }

    /// Each version's objects, and the proposed ones: subsets of five names.
    fn contents() -> impl Strategy<Value = Vec<Vec<u8>>> {
        proptest::collection::vec(proptest::collection::vec(0u8..5, 0..4), 4)
    }

    proptest! {
        #[test]
        fn the_shortcut_proceeds_only_where_the_plan_allows_everything(
            agents in agents(),
            contents in contents(),
        ) {
            let versions = [(); 3].map(|()| DeploymentObjectId::new());
            let mut world = StackWorld::default();
            for (target, applied) in &agents {
                let agent = AgentId::new();
                if *target > 0 {
                    world.targets.push(WorldTarget {
                        agent_id: agent,
                        source: TargetSource::Direct,
                        live: *target == 1,
                    });
                }
                match applied {
                    0 => {}
                    1 => world.applied.push((agent, None)),
                    n => world.applied.push((agent, Some(versions[usize::from(n - 2)]))),
                }
            }
            world.targets.sort_by_key(|t| t.agent_id);
            world.applied.sort_by_key(|(a, _)| *a);
            let items_of = |names: &[u8]| -> Vec<ItemDigest> {
                let mut items: Vec<ItemDigest> = names.iter().map(|&n| item(n)).collect();
                items.sort_by(|a, b| a.key.name.cmp(&b.key.name));
                items.dedup();
                items
            };
            let stored: Vec<(DeploymentObjectId, Vec<ItemDigest>)> = versions
                .iter()
                .zip(&contents)
                .map(|(id, names)| (*id, items_of(names)))
                .collect();
            let proposed = items_of(&contents[3]);

            let applied = AppliedVersions::of(&world);
            let shortcut = applied.versions.is_empty()
                || append_keeps_everything(&applied, &stored, &proposed);

            let mut items: HashMap<Version, Vec<ItemDigest>> = stored
                .iter()
                .map(|(id, items)| (Version::Stored(*id), items.clone()))
                .collect();
            items.insert(Version::Proposed, proposed.clone());
            let planned = moves(&world, &Effect::Everyone(Some(Version::Proposed)));
            let described = serde_json::json!({"change": "deployment_object"});
            let plan = plan::compute(&described, &planned, &items, &strictest())
                .expect("every version has items");
            let untouched = plan.summary.agents_removed == 0 && plan.summary.objects.prune == 0;
            prop_assert!(!shortcut || untouched, "the shortcut let through {:?}", plan.summary);
            // And it is not a shortcut that never fires: with every agent live and
            // nothing dropped, it proceeds.
            let all_live = world.applied.iter().all(|(agent, version)| {
                version.is_none()
                    || world.targets.iter().any(|t| t.agent_id == *agent && t.live)
            });
            if all_live && untouched {
                prop_assert!(shortcut);
            }
        }
    }
}
