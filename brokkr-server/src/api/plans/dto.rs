//! A plan as the API answers it: what a change would do to every agent of a stack, the
//! guard's verdict, and the change itself, converted from the core's `PlanView`.
//!
//! Violations and changes are unions discriminated by `rule` and `change`, so each
//! kind has its own schema with only its own fields required; their JSON is the core
//! types' (the same as a 409 `blast_radius_exceeded`'s `details.violations`).

use brokkr_core::ObjectKey;
use brokkr_core::model::PlanOrigin;
use brokkr_core::plan::{
    AgentAction, GuardOutcome, MoveGroup, ObjectChanges, PlanSummary, PlannedAgent, Verdict,
    Version, Violation,
};
use brokkr_core::runtime::plan::{PlanView, PlannedChange};
use chrono::{DateTime, Utc};
use poem_openapi::{Enum, Object, Union};
use serde_json::Value;
use uuid::Uuid;

use crate::api::dto::ObjectKeyDto;

/// A stored plan: a change computed before it is made. Confirm it by repeating the
/// change with `?confirm_plan_id=` (or, for a held placement decision, with
/// `POST /plans/{id}/confirm`) before `expires_at`.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "Plan")]
pub struct PlanDto {
    /// Its id: what `confirm_plan_id` names.
    pub plan_id: Uuid,
    /// The stack.
    pub stack_id: Uuid,
    /// `requested` (asked for, a dry run, or a change the guard stopped) or `held` (an
    /// automatic placement decision the guard holds).
    pub origin: PlanOriginDto,
    /// The change planned.
    pub change: PlanChange,
    /// `sha256:` and the hash of the change and every agent's move: a confirmation is
    /// refused (`plan_stale`) once the same change would give another digest.
    pub digest: String,
    /// When it was made.
    pub created_at: DateTime<Utc>,
    /// When it can no longer be confirmed (`server.plan_ttl_secs` after it was made).
    pub expires_at: DateTime<Utc>,
    /// When a confirmation used it; a plan confirms one change.
    #[oai(skip_serializing_if_is_none)]
    pub consumed_at: Option<DateTime<Utc>>,
    /// The plan in numbers.
    pub summary: PlanSummaryDto,
    /// The guard's verdict.
    pub guard: GuardOutcomeDto,
    /// One group per distinct move (version had, version sent); agents that keep their
    /// version are only counted in the summary.
    pub groups: Vec<MoveGroupDto>,
}

/// Who made a plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "PlanOrigin", rename_all = "snake_case")]
pub enum PlanOriginDto {
    /// A caller: a plan, a dry run, or a change the guard stopped.
    Requested,
    /// The placement controller: an automatic decision the guard held.
    Held,
}

/// Objects counted per agent over the whole plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Object)]
#[oai(rename = "PlanObjectCounts")]
pub struct ObjectCountsDto {
    /// Created.
    pub create: u64,
    /// Updated (same identity, other content).
    pub update: u64,
    /// Pruned: removed from clusters.
    pub prune: u64,
}

/// The plan in numbers.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "PlanSummary")]
pub struct PlanSummaryDto {
    /// Agents that have the stack now (they reported applying a live version).
    pub agents_current: u64,
    /// Agents that would receive it.
    pub agents_gaining: u64,
    /// Agents that would move to another version.
    pub agents_changing: u64,
    /// Agents that would lose it: every object they applied is removed.
    pub agents_removed: u64,
    /// Agents that would stay as they are.
    pub agents_unchanged: u64,
    /// `agents_removed / agents_current` (0 with no current agent).
    pub removed_fraction: f64,
    /// Objects created, updated and pruned, counted per agent.
    pub objects: ObjectCountsDto,
}

/// The guard's answer.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "GuardOutcome")]
pub struct GuardOutcomeDto {
    /// `allowed`, or `confirmation_required` when a limit is exceeded.
    pub verdict: VerdictDto,
    /// Every limit exceeded.
    pub violations: Vec<GuardViolation>,
}

/// Whether a change may go ahead.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "GuardVerdict", rename_all = "snake_case")]
pub enum VerdictDto {
    /// Within every limit.
    Allowed,
    /// Over a limit: an admin must confirm the plan.
    ConfirmationRequired,
}

/// Too large a share of the stack's agents would lose it.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct RemovedFractionViolation {
    /// The limit (`max_removed_fraction`).
    pub limit: f64,
    /// The share that would lose it.
    pub actual: f64,
    /// How many agents that is.
    pub removed: u64,
}

/// Too many objects would be pruned, counted per agent.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct PrunedObjectsViolation {
    /// The limit (`max_pruned_objects`).
    pub limit: u64,
    /// How many would be pruned.
    pub actual: u64,
}

/// Objects of a protected kind would be pruned.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct ProtectedKindViolation {
    /// The kind, e.g. `PersistentVolumeClaim`.
    pub kind: String,
    /// How many, counted per agent.
    pub count: u64,
}

/// The appended content is a candidate a rollout of the stack reverted: appending it
/// again needs an admin's confirmation.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct RejectedByRolloutViolation {
    /// The rollout that reverted it.
    pub rollout_id: Uuid,
    /// The deployment object it rejected, with the same checksum.
    pub deployment_object_id: Uuid,
}

/// One limit a change exceeds, by `rule`.
#[derive(Debug, Clone, PartialEq, Union)]
#[oai(discriminator_name = "rule", one_of)]
pub enum GuardViolation {
    /// `max_removed_fraction`.
    #[oai(mapping = "max_removed_fraction")]
    MaxRemovedFraction(RemovedFractionViolation),
    /// `max_pruned_objects`.
    #[oai(mapping = "max_pruned_objects")]
    MaxPrunedObjects(PrunedObjectsViolation),
    /// `protected_kinds`.
    #[oai(mapping = "protected_kinds")]
    ProtectedKinds(ProtectedKindViolation),
    /// `rejected_by_rollout`.
    #[oai(mapping = "rejected_by_rollout")]
    RejectedByRollout(RejectedByRolloutViolation),
}

/// What a move does to its agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "PlanAction", rename_all = "snake_case")]
pub enum ActionDto {
    /// They receive the stack.
    Gain,
    /// They move to another version.
    Change,
    /// They lose the stack: every object they applied is removed.
    Lose,
    /// They stay on their version.
    Keep,
}

/// An agent named in a plan.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
#[oai(rename = "PlannedAgent")]
pub struct PlannedAgentDto {
    /// Its id.
    pub id: Uuid,
    /// Its name.
    pub name: String,
}

/// The objects one move creates, updates and prunes.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
#[oai(rename = "PlannedObjectChanges")]
pub struct ObjectChangesDto {
    /// In the new version only.
    pub create: Vec<ObjectKeyDto>,
    /// In both, with different content.
    pub update: Vec<ObjectKeyDto>,
    /// In the old version only: removed from the cluster.
    pub prune: Vec<ObjectKeyDto>,
}

/// The agents that make the same move, and what it does to each of them.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "PlanGroup")]
pub struct MoveGroupDto {
    /// `gain`, `change` or `lose`.
    pub action: ActionDto,
    /// The deployment object they last reported applying; absent when they have none.
    #[oai(skip_serializing_if_is_none)]
    pub from: Option<Uuid>,
    /// The stored deployment object they would be sent; absent when they would lose
    /// the stack or receive the one the change appends (`to_proposed`).
    #[oai(skip_serializing_if_is_none)]
    pub to: Option<Uuid>,
    /// Whether they would receive the deployment object the change appends (not
    /// stored yet, so it has no id).
    pub to_proposed: bool,
    /// The agents, ordered by id.
    pub agents: Vec<PlannedAgentDto>,
    /// The objects, once for the whole group.
    pub objects: ObjectChangesDto,
}

/// Appending a deployment object.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
pub struct DeploymentObjectChange {
    /// Hex SHA-256 of its YAML (sent, or rendered).
    pub yaml_checksum: String,
}

/// Declares the empty object of a change that names nothing but its kind. Each kind
/// needs a type of its own: a union names a variant's schema after its type.
macro_rules! bare_change {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, Object)]
        pub struct $name {}
    )*};
}

bare_change!(
    /// Appending a deletion marker: every agent removes the stack's objects.
    DeletionMarkerChange,
    /// Deleting the stack (its deletion marker is appended).
    DeleteChange,
    /// Removing the placement policy: agents it placed the stack on lose it.
    RemovePlacementChange,
);

/// Setting the placement policy.
#[derive(Debug, Clone, PartialEq, Object)]
pub struct PlacementChange {
    /// The policy (see `docs/placement.md`).
    pub policy: Value,
}

/// Going back to an older deployment object.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
pub struct RollbackChange {
    /// The object whose content every agent would be sent again.
    pub to_deployment_object_id: Uuid,
}

/// Unassigning the stack from one agent.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
pub struct UnassignChange {
    /// The agent.
    pub agent_id: Uuid,
}

/// An automatic placement decision.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
pub struct PlacementDecisionChange {
    /// The agents it chooses, ordered by id.
    pub chosen: Vec<Uuid>,
}

/// The change a plan is about, by `change`.
#[derive(Debug, Clone, PartialEq, Union)]
#[oai(discriminator_name = "change", one_of)]
pub enum PlanChange {
    /// `deployment_object`: append a deployment object.
    #[oai(mapping = "deployment_object")]
    DeploymentObject(DeploymentObjectChange),
    /// `deletion_marker`: append a deletion marker.
    #[oai(mapping = "deletion_marker")]
    DeletionMarker(DeletionMarkerChange),
    /// `delete`: delete the stack.
    #[oai(mapping = "delete")]
    Delete(DeleteChange),
    /// `rollback`: send an older deployment object again.
    #[oai(mapping = "rollback")]
    Rollback(RollbackChange),
    /// `placement`: set the placement policy.
    #[oai(mapping = "placement")]
    Placement(PlacementChange),
    /// `remove_placement`: remove the placement policy.
    #[oai(mapping = "remove_placement")]
    RemovePlacement(RemovePlacementChange),
    /// `unassign`: unassign the stack from one agent.
    #[oai(mapping = "unassign")]
    Unassign(UnassignChange),
    /// `placement_decision`: an automatic placement decision (held plans only).
    #[oai(mapping = "placement_decision")]
    PlacementDecision(PlacementDecisionChange),
}

// ---------------------------------------------------------------------------------------
// Conversions

impl From<PlanView> for PlanDto {
    fn from(view: PlanView) -> Self {
        let plan = view.plan;
        Self {
            plan_id: view.id.into(),
            stack_id: view.stack_id.into(),
            origin: match view.origin {
                PlanOrigin::Requested => PlanOriginDto::Requested,
                PlanOrigin::Held => PlanOriginDto::Held,
            },
            change: view.change.into(),
            digest: plan.digest,
            created_at: view.created_at,
            expires_at: view.expires_at,
            consumed_at: view.consumed_at,
            summary: plan.summary.into(),
            guard: plan.guard.into(),
            groups: plan.groups.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<PlanSummary> for PlanSummaryDto {
    fn from(s: PlanSummary) -> Self {
        Self {
            agents_current: s.agents_current,
            agents_gaining: s.agents_gaining,
            agents_changing: s.agents_changing,
            agents_removed: s.agents_removed,
            agents_unchanged: s.agents_unchanged,
            removed_fraction: s.removed_fraction,
            objects: ObjectCountsDto {
                create: s.objects.create,
                update: s.objects.update,
                prune: s.objects.prune,
            },
        }
    }
}

impl From<GuardOutcome> for GuardOutcomeDto {
    fn from(outcome: GuardOutcome) -> Self {
        Self {
            verdict: match outcome.verdict {
                Verdict::Allowed => VerdictDto::Allowed,
                Verdict::ConfirmationRequired => VerdictDto::ConfirmationRequired,
            },
            violations: outcome.violations.into_iter().map(Into::into).collect(),
        }
    }
}

impl From<Violation> for GuardViolation {
    fn from(violation: Violation) -> Self {
        match violation {
            Violation::MaxRemovedFraction {
                limit,
                actual,
                removed,
            } => Self::MaxRemovedFraction(RemovedFractionViolation {
                limit,
                actual,
                removed,
            }),
            Violation::MaxPrunedObjects { limit, actual } => {
                Self::MaxPrunedObjects(PrunedObjectsViolation { limit, actual })
            }
            Violation::ProtectedKinds { kind, count } => {
                Self::ProtectedKinds(ProtectedKindViolation { kind, count })
            }
            Violation::RejectedByRollout {
                rollout_id,
                deployment_object_id,
            } => Self::RejectedByRollout(RejectedByRolloutViolation {
                rollout_id: rollout_id.into(),
                deployment_object_id: deployment_object_id.into(),
            }),
        }
    }
}

impl From<MoveGroup> for MoveGroupDto {
    fn from(group: MoveGroup) -> Self {
        let (to, to_proposed) = match group.to {
            Some(Version::Stored(id)) => (Some(id.into()), false),
            Some(Version::Proposed) => (None, true),
            None => (None, false),
        };
        Self {
            action: match group.action {
                AgentAction::Gain => ActionDto::Gain,
                AgentAction::Change => ActionDto::Change,
                AgentAction::Lose => ActionDto::Lose,
                AgentAction::Keep => ActionDto::Keep,
            },
            from: group.from.map(Into::into),
            to,
            to_proposed,
            agents: group.agents.into_iter().map(Into::into).collect(),
            objects: group.objects.into(),
        }
    }
}

impl From<PlannedAgent> for PlannedAgentDto {
    fn from(agent: PlannedAgent) -> Self {
        Self {
            id: agent.id.into(),
            name: agent.name,
        }
    }
}

impl From<ObjectChanges> for ObjectChangesDto {
    fn from(changes: ObjectChanges) -> Self {
        let keys = |keys: Vec<ObjectKey>| keys.into_iter().map(Into::into).collect();
        Self {
            create: keys(changes.create),
            update: keys(changes.update),
            prune: keys(changes.prune),
        }
    }
}

impl From<PlannedChange> for PlanChange {
    fn from(change: PlannedChange) -> Self {
        match change {
            PlannedChange::DeploymentObject { yaml_checksum } => {
                Self::DeploymentObject(DeploymentObjectChange { yaml_checksum })
            }
            PlannedChange::DeletionMarker => Self::DeletionMarker(DeletionMarkerChange {}),
            PlannedChange::Delete => Self::Delete(DeleteChange {}),
            PlannedChange::Rollback {
                to_deployment_object_id,
            } => Self::Rollback(RollbackChange {
                to_deployment_object_id: to_deployment_object_id.into(),
            }),
            PlannedChange::Placement {
                policy: Some(policy),
            } => Self::Placement(PlacementChange {
                policy: crate::api::placement::policy_json(&policy),
            }),
            PlannedChange::Placement { policy: None } => {
                Self::RemovePlacement(RemovePlacementChange {})
            }
            PlannedChange::Unassign { agent_id } => Self::Unassign(UnassignChange {
                agent_id: agent_id.into(),
            }),
            PlannedChange::PlacementDecision { chosen } => {
                Self::PlacementDecision(PlacementDecisionChange {
                    chosen: chosen.into_iter().map(Into::into).collect(),
                })
            }
        }
    }
}
