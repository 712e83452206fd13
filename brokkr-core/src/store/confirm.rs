//! The guard's writes: a confirmed change, the plan used, the world checked and the
//! change written in one transaction
//! ([`Store::write_confirmed`](super::Store::write_confirmed)); and an append the
//! guard's shortcut clears in its own transaction
//! ([`Store::append_if_harmless`](super::Store::append_if_harmless)).

use chrono::{DateTime, Utc};

use crate::id::{AgentId, PlanId, StackId};
use crate::model::{DeploymentObject, NewDeploymentObject, PlacementChange, StackWorld};
use crate::placement::{PlacementDecision, PlacementPolicy};

/// Which plan a change confirms, and how to recompute its digest.
pub struct Confirmation<'a> {
    /// The plan: unused, unexpired and of `stack_id`, or the change is not written.
    pub plan_id: PlanId,
    /// The stack the change is made to.
    pub stack_id: StackId,
    /// The plan's digest from the stack's world as read inside the transaction; the
    /// change is written only when it equals the stored plan's. Pure and cheap (a hash
    /// of every agent's move), since a store runs it while holding its locks.
    pub digest: &'a (dyn Fn(&StackWorld) -> String + Send + Sync),
}

impl std::fmt::Debug for Confirmation<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Confirmation")
            .field("plan_id", &self.plan_id)
            .field("stack_id", &self.stack_id)
            .finish_non_exhaustive()
    }
}

/// The change a confirmation makes; each is the write of the store method named.
// One per confirmation: boxing the large variants would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum ConfirmedChange {
    /// [`Store::append_deployment_object`](super::Store::append_deployment_object).
    Append(NewDeploymentObject),
    /// [`Store::delete_stack`](super::Store::delete_stack).
    DeleteStack,
    /// [`Store::unassign_stack`](super::Store::unassign_stack) of this agent.
    Unassign(AgentId),
    /// [`Store::place_stack`](super::Store::place_stack) without an expected decision:
    /// the policy and its decision.
    Place(PlacementPolicy, PlacementDecision),
    /// [`Store::set_placement_policy`](super::Store::set_placement_policy) with `None`.
    RemovePolicy,
    /// [`Store::record_placement`](super::Store::record_placement): a held decision
    /// released.
    Decide(PlacementDecision),
}

/// What a confirmed change wrote.
#[derive(Debug, Clone, PartialEq)]
pub enum ConfirmedWrite {
    /// The appended object (or the deletion marker of a deleted stack).
    Object(DeploymentObject),
    /// What a placement write did to the targets.
    Placed(PlacementChange),
    /// An unassignment or a removed policy.
    Done,
}

/// How [`Store::write_confirmed`](super::Store::write_confirmed) ended.
// One per confirmation: boxing the written change would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Confirmed {
    /// The plan is used and the change written, in one transaction.
    Written {
        /// What was written.
        written: ConfirmedWrite,
        /// When: the plan's `consumed_at`.
        at: DateTime<Utc>,
    },
    /// Nothing written: the plan was used already (also by a concurrent confirmation).
    Consumed,
    /// Nothing written, the plan still unused: it expired, is another stack's, or the
    /// digest recomputed from the world differs from the plan's.
    Stale,
}

/// How [`Store::append_if_harmless`](super::Store::append_if_harmless) ended.
// One per append: boxing the handed-back append would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum HarmlessAppend {
    /// The shortcut cleared it, and it was appended.
    Appended(DeploymentObject),
    /// Nothing written: the shortcut could not clear it, so the full guard must judge
    /// it. The append comes back unchanged.
    NeedsPlan(NewDeploymentObject),
}
