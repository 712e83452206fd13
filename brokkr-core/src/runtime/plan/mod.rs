//! Plan and guard in the control plane: what a change would do to every agent before it
//! is made, and a guard that stops changes removing a stack from many clusters, or
//! pruning protected kinds, until an admin confirms their plan.
//!
//! - [`ControlPlane::plan`] computes and stores a plan (kept `Settings::plan_ttl`,
//!   15 minutes by default) for a new deployment object, a placement policy, the
//!   stack's deletion, a rollback or an unassignment.
//! - Every mutation that can remove or prune passes the guard ([`ControlPlane::guarded`]
//!   for dry runs and confirmations; the plain methods check without confirming). Over
//!   a limit without confirmation it is `BlastRadiusExceeded` with its stored plan;
//!   confirming is admin-only, single use (`PlanConsumed`) and refused when the world
//!   changed since the plan (`PlanStale`, the plan recomputed and its digest compared).
//! - Automatic placement decisions pass the same guard: a violating one is held
//!   ([`PlanOrigin::Held`]), shown with the stack's placement, and released by
//!   [`ControlPlane::confirm_plan`].
//!
//! The computation itself is pure: [`crate::plan`].

pub(crate) mod check;
pub(crate) mod guarded;
mod held;
mod ops;
pub(crate) mod world;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::{AgentId, DeploymentObjectId, PlanId, StackId};
use crate::model::{PlanOrigin, StoredPlan};
use crate::placement::PlacementPolicy;
use crate::plan::Plan;

pub use guarded::{Guarded, Outcome};
pub use ops::{GuardView, PlanRequest};

use super::Result;

/// A change a plan is about, as stored with it (confirmation recomputes it).
// One per request: a large policy variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "change", rename_all = "snake_case")]
pub enum PlannedChange {
    /// Append a deployment object with this checksum (sent, or rendered).
    DeploymentObject {
        /// Hex SHA-256 of its YAML.
        yaml_checksum: String,
    },
    /// Append a deletion marker: every agent removes the stack's objects.
    DeletionMarker,
    /// Delete the stack.
    Delete,
    /// Send every agent an older deployment object of the stack again.
    Rollback {
        /// The object to go back to.
        to_deployment_object_id: DeploymentObjectId,
    },
    /// Set the stack's placement policy, or remove it (`None`).
    Placement {
        /// The policy.
        policy: Option<PlacementPolicy>,
    },
    /// Unassign the stack from one agent.
    Unassign {
        /// The agent.
        agent_id: AgentId,
    },
    /// Record an automatic placement decision choosing these agents.
    PlacementDecision {
        /// The agents chosen.
        chosen: Vec<AgentId>,
    },
}

/// How a guarded mutation treats the guard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct GuardOptions {
    /// Answer the plan, change nothing (the plan is stored, so it can be confirmed).
    pub dry_run: bool,
    /// Go ahead past the guard on this plan (admin only, once, while the world is as
    /// it was planned).
    pub confirm_plan_id: Option<PlanId>,
}

/// A stored plan as callers see it.
#[derive(Debug, Clone, PartialEq)]
pub struct PlanView {
    /// Its id: what `confirm_plan_id` names.
    pub id: PlanId,
    /// The stack.
    pub stack_id: StackId,
    /// Asked for, or held by the placement controller.
    pub origin: PlanOrigin,
    /// The change.
    pub change: PlannedChange,
    /// The computed plan: digest, summary, verdict, moves.
    pub plan: Plan,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it can no longer be confirmed.
    pub expires_at: DateTime<Utc>,
    /// When a confirmation used it.
    pub consumed_at: Option<DateTime<Utc>>,
}

impl PlanView {
    fn from_stored(stored: StoredPlan) -> Result<Self> {
        Ok(Self {
            id: stored.id,
            stack_id: stored.stack_id,
            origin: stored.origin,
            change: serde_json::from_value(stored.change).map_err(check::backend)?,
            plan: serde_json::from_value(stored.body).map_err(check::backend)?,
            created_at: stored.created_at,
            expires_at: stored.expires_at,
            consumed_at: stored.consumed_at,
        })
    }
}
