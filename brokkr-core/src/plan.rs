//! Plan and guard: what a change would do to every agent before it is made, and limits
//! that stop a change removing a stack from many clusters, or pruning what must not be
//! lost, until someone confirms it.
//!
//! Pure: the runtime gathers each agent's move ([`AgentMove`]: the deployment object it
//! last reported applying, and the one the change would send) and the items of those
//! versions ([`ItemDigest`], stored with each deployment object), then [`compute`]
//! groups agents by distinct (from, to), diffs the items once per group by identity
//! (group, kind, namespace, name; different content is an update), counts per agent and
//! asks the [`GuardPolicy`] for a verdict.

mod compute;
mod guard;
mod item;
mod keeps;

pub use compute::{
    AgentAction, AgentMove, MoveGroup, ObjectChanges, ObjectCounts, Plan, PlanError, PlanSummary,
    PlannedAgent, Version, compute, diff, digest,
};
pub use guard::{
    DEFAULT_PROTECTED_KINDS, GuardOutcome, GuardOverrides, GuardPolicy, InvalidGuard, Removals,
    Verdict, Violation,
};
pub use item::ItemDigest;
pub use keeps::append_keeps_everything;
