//! Stored plans, and what agents last reported applying: the store's side of plan and
//! guard (the computation is [`crate::plan`]).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::Actor;
use crate::id::{AgentId, DeploymentObjectId, PlanId, StackId};

/// What an agent last reported applying for a stack: the deployment object of its
/// latest successful event (`None` after a successful delete).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedState {
    /// The agent.
    pub agent_id: AgentId,
    /// The deployment object it applied; `None` when it last removed the stack.
    pub deployment_object_id: Option<DeploymentObjectId>,
    /// When the server recorded that event.
    pub recorded_at: DateTime<Utc>,
}

/// Who asked for a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PlanOrigin {
    /// A caller: `POST /plan`, a dry run, or a mutation the guard stopped.
    Requested,
    /// The placement controller: an automatic decision the guard held.
    Held,
}

stable_names!(PlanOrigin { Requested => "requested", Held => "held" });

/// A plan to store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewPlan {
    /// The stack it changes.
    pub stack_id: StackId,
    /// Who asked.
    pub origin: PlanOrigin,
    /// The change, as the plan's caller described it (confirmation replays it).
    pub change: serde_json::Value,
    /// The plan's digest ([`crate::plan::Plan::digest`]).
    pub digest: String,
    /// The computed plan, as answered.
    pub body: serde_json::Value,
    /// When it stops being confirmable.
    pub expires_at: DateTime<Utc>,
    /// Whether the plan holds a change the guard stopped (a dry run or a plan asked
    /// for does not); with a [`PlanOrigin::Held`] decision, always so. A held plan's
    /// store writes a `plan.held` webhook event with it.
    pub holds_change: bool,
}

/// A stored plan. Immutable but for its consumption.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPlan {
    /// Its id.
    pub id: PlanId,
    /// The stack it changes.
    pub stack_id: StackId,
    /// Who asked.
    pub origin: PlanOrigin,
    /// The change.
    pub change: serde_json::Value,
    /// Its digest.
    pub digest: String,
    /// The computed plan.
    pub body: serde_json::Value,
    /// Who made it.
    pub created_by: Actor,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When it stops being confirmable.
    pub expires_at: DateTime<Utc>,
    /// When a confirmation used it; a plan is used at most once.
    pub consumed_at: Option<DateTime<Utc>>,
    /// Who confirmed it.
    pub consumed_by: Option<Actor>,
}

/// A stack's world as the guard sees it, read at once: its targets (removals
/// included), what its agents last applied, and its latest deployment object unless
/// that is a deletion marker. A plan's moves, and so its digest, follow from this and
/// the change alone. Only what a plan needs: read over 10,000 agents, every column
/// costs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StackWorld {
    /// Every target of the stack, live or awaiting removal, in agent order.
    pub targets: Vec<WorldTarget>,
    /// Per agent that ever reported for the stack, in agent order, the deployment object
    /// it last applied (`None` after a successful delete), as in [`AppliedState`].
    pub applied: Vec<(AgentId, Option<DeploymentObjectId>)>,
    /// The latest deployment object, unless it is a deletion marker.
    pub latest_live: Option<DeploymentObjectId>,
}

/// A target in a [`StackWorld`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WorldTarget {
    /// The agent.
    pub agent_id: AgentId,
    /// Why the agent has the stack.
    pub source: super::TargetSource,
    /// Not unassigned (an unassigned target awaits the agent's removal).
    pub live: bool,
}

/// What a stack's agents run, in short: the distinct deployment objects they last
/// applied, and whether one of them runs the stack without a live target. An append
/// that keeps every object of those versions can neither remove nor prune, so the
/// guard lets it through without reading a row per agent.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AppliedVersions {
    /// The deployment objects some agent last applied, in id order, each once.
    pub versions: Vec<DeploymentObjectId>,
    /// Some agent runs a version of the stack but has no live target for it (an
    /// unassigned or never-targeted agent): a change of the stack removes it.
    pub untargeted: bool,
}

impl AppliedVersions {
    /// The summary of `world`: what a store answers when it has no cheaper way.
    pub fn of(world: &StackWorld) -> Self {
        let live: std::collections::BTreeSet<AgentId> = world
            .targets
            .iter()
            .filter(|t| t.live)
            .map(|t| t.agent_id)
            .collect();
        let mut versions: Vec<DeploymentObjectId> =
            world.applied.iter().filter_map(|(_, v)| *v).collect();
        versions.sort_unstable();
        versions.dedup();
        let untargeted = world
            .applied
            .iter()
            .any(|(agent, v)| v.is_some() && !live.contains(agent));
        Self {
            versions,
            untargeted,
        }
    }
}
