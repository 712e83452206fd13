//! The plan itself: what each agent gains, changes or loses, and per distinct move which
//! objects are created, updated or pruned.

use std::collections::{BTreeMap, HashMap};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::guard::{GuardOutcome, GuardPolicy, Removals};
use super::item::ItemDigest;
use crate::id::{AgentId, DeploymentObjectId};
use crate::manifest::ObjectKey;

/// A version of the stack an agent can be moved to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Version {
    /// A stored deployment object.
    Stored(DeploymentObjectId),
    /// The deployment object the change would append (not stored yet).
    Proposed,
}

/// One agent's move: where it stands for the stack and where the change takes it.
/// `None` means without the stack (never had it, removed, or a deletion marker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentMove {
    /// The agent.
    pub agent_id: AgentId,
    /// Its name, for people reading the plan.
    pub agent_name: String,
    /// The deployment object it last reported applying.
    pub from: Option<DeploymentObjectId>,
    /// What it would be sent.
    pub to: Option<Version>,
}

/// What a move does to an agent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AgentAction {
    /// Receives the stack.
    Gain,
    /// Moves to another version.
    Change,
    /// Loses the stack: every object it applied is removed.
    Lose,
    /// Stays on the version it has.
    Keep,
}

/// The objects one move creates, updates and prunes, by identity.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectChanges {
    /// In the new version only.
    pub create: Vec<ObjectKey>,
    /// In both, with different content.
    pub update: Vec<ObjectKey>,
    /// In the old version only: removed from the cluster.
    pub prune: Vec<ObjectKey>,
}

/// The agents that make the same move, and what that move does.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MoveGroup {
    /// What the move does to them.
    pub action: AgentAction,
    /// The version they have.
    pub from: Option<DeploymentObjectId>,
    /// The version they would get.
    pub to: Option<Version>,
    /// The agents, ordered by id.
    pub agents: Vec<PlannedAgent>,
    /// The objects, once for the whole group.
    pub objects: ObjectChanges,
}

/// An agent named in a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedAgent {
    /// Its id.
    pub id: AgentId,
    /// Its name.
    pub name: String,
}

/// Objects counted per agent over the whole plan.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectCounts {
    /// Created.
    pub create: u64,
    /// Updated.
    pub update: u64,
    /// Pruned.
    pub prune: u64,
}

/// The plan in numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanSummary {
    /// Agents that have the stack now.
    pub agents_current: u64,
    /// Agents that would receive it.
    pub agents_gaining: u64,
    /// Agents that would move to another version.
    pub agents_changing: u64,
    /// Agents that would lose it.
    pub agents_removed: u64,
    /// Agents that would stay as they are.
    pub agents_unchanged: u64,
    /// `agents_removed / agents_current` (0 with no current agent).
    pub removed_fraction: f64,
    /// Objects, counted per agent.
    pub objects: ObjectCounts,
}

/// A computed plan: summary, the guard's verdict and the moves.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// `sha256:` and the hex hash of the change and every agent's move: equal digests
    /// mean the same change from the same world.
    pub digest: String,
    /// The numbers.
    pub summary: PlanSummary,
    /// The guard's verdict.
    pub guard: GuardOutcome,
    /// One group per distinct (from, to), agents that keep their version left out
    /// (they are counted in the summary).
    pub groups: Vec<MoveGroup>,
}

/// Why a plan cannot be computed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanError {
    /// A version the moves name has no items given.
    #[error("no items for {0:?}")]
    MissingItems(Version),
}

/// Computes the plan of `moves` for a change described by `change` (any JSON: it enters
/// the digest, so two different changes never share a plan), judged by `guard`.
/// `items` holds the items of every version the moves name. Costs O(agents + pairs ×
/// items): the items are compared once per distinct (from, to).
pub fn compute(
    change: &serde_json::Value,
    moves: &[AgentMove],
    items: &HashMap<Version, Vec<ItemDigest>>,
    guard: &GuardPolicy,
) -> Result<Plan, PlanError> {
    let mut pairs: BTreeMap<(Option<DeploymentObjectId>, Option<Version>), Vec<&AgentMove>> =
        BTreeMap::new();
    for agent_move in moves {
        if agent_move.from.is_none() && agent_move.to.is_none() {
            continue;
        }
        pairs
            .entry((agent_move.from, agent_move.to))
            .or_default()
            .push(agent_move);
    }
    let mut removals = Removals::default();
    let mut summary = PlanSummary {
        agents_current: 0,
        agents_gaining: 0,
        agents_changing: 0,
        agents_removed: 0,
        agents_unchanged: 0,
        removed_fraction: 0.0,
        objects: ObjectCounts::default(),
    };
    let mut groups = Vec::new();
    for ((from, to), mut agents) in pairs {
        let count = agents.len() as u64;
        let action = action(from, to);
        if from.is_some() {
            summary.agents_current += count;
        }
        match action {
            AgentAction::Gain => summary.agents_gaining += count,
            AgentAction::Change => summary.agents_changing += count,
            AgentAction::Lose => summary.agents_removed += count,
            AgentAction::Keep => {
                summary.agents_unchanged += count;
                continue;
            }
        }
        let objects = diff(
            versioned_items(from.map(Version::Stored), items)?,
            versioned_items(to, items)?,
        );
        summary.objects.create += count * objects.create.len() as u64;
        summary.objects.update += count * objects.update.len() as u64;
        summary.objects.prune += count * objects.prune.len() as u64;
        for key in &objects.prune {
            *removals.pruned_by_kind.entry(key.kind.clone()).or_default() += count;
        }
        agents.sort_by_key(|a| a.agent_id);
        groups.push(MoveGroup {
            action,
            from,
            to,
            agents: agents
                .into_iter()
                .map(|a| PlannedAgent {
                    id: a.agent_id,
                    name: a.agent_name.clone(),
                })
                .collect(),
            objects,
        });
    }
    removals.agents_current = summary.agents_current;
    removals.agents_removed = summary.agents_removed;
    removals.pruned = summary.objects.prune;
    summary.removed_fraction = removals.removed_fraction();
    Ok(Plan {
        digest: digest(change, moves),
        summary,
        guard: guard.judge(&removals),
        groups,
    })
}

fn action(from: Option<DeploymentObjectId>, to: Option<Version>) -> AgentAction {
    match (from, to) {
        (None, _) => AgentAction::Gain,
        (Some(_), None) => AgentAction::Lose,
        (Some(from), Some(to)) if to == Version::Stored(from) => AgentAction::Keep,
        (Some(_), Some(_)) => AgentAction::Change,
    }
}

fn versioned_items(
    version: Option<Version>,
    items: &HashMap<Version, Vec<ItemDigest>>,
) -> Result<&[ItemDigest], PlanError> {
    match version {
        None => Ok(&[]),
        Some(version) => items
            .get(&version)
            .map(Vec::as_slice)
            .ok_or(PlanError::MissingItems(version)),
    }
}

/// Compares two versions' items by identity.
pub fn diff(from: &[ItemDigest], to: &[ItemDigest]) -> ObjectChanges {
    let old: HashMap<&ObjectKey, &str> = from.iter().map(|i| (&i.key, &*i.sha256)).collect();
    let new: HashMap<&ObjectKey, &str> = to.iter().map(|i| (&i.key, &*i.sha256)).collect();
    let mut changes = ObjectChanges::default();
    for item in to {
        match old.get(&item.key) {
            None => changes.create.push(item.key.clone()),
            Some(&sha) if sha != item.sha256 => changes.update.push(item.key.clone()),
            Some(_) => {}
        }
    }
    for item in from {
        if !new.contains_key(&item.key) {
            changes.prune.push(item.key.clone());
        }
    }
    changes.create.sort();
    changes.update.sort();
    changes.prune.sort();
    changes
}

/// `sha256:` and the hex hash of the change and the moves in agent order: what
/// [`Plan::digest`] holds, without the items (a store recomputes it from the world it
/// reads inside a confirmed change's transaction).
pub fn digest(change: &serde_json::Value, moves: &[AgentMove]) -> String {
    let mut sorted: Vec<&AgentMove> = moves.iter().collect();
    sorted.sort_by_key(|m| m.agent_id);
    let mut hasher = Sha256::new();
    hasher.update(
        crate::schema::canonical(change.clone())
            .to_string()
            .as_bytes(),
    );
    for m in sorted {
        let line = serde_json::json!([m.agent_id, m.from, m.to]).to_string();
        hasher.update(b"\n");
        hasher.update(line.as_bytes());
    }
    format!("sha256:{}", crate::model::hex(&hasher.finalize()))
}
