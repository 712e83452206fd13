//! Plan operations: plan a change, read a plan back, release a held decision, and the
//! stack's guard limits.
//!
//! Access: admin and system on any stack, the generator owning the stack on its own
//! (another generator's stack or plan is `NotFound`); agents are refused. Confirming is
//! admin-only, and so is loosening a limit.

use serde_json::Value;

use super::{PlanView, PlannedChange};
use crate::id::{AgentId, DeploymentObjectId, PlanId, StackId};
use crate::model::{Actor, PlanOrigin};
use crate::placement::{PlacementDecision, PlacementPolicy};
use crate::plan::{GuardOverrides, GuardPolicy, ItemDigest};
use crate::runtime::{ControlPlane, Error, GenerateSource, Result, access};
use crate::store::{self, ConfirmedChange, ConfirmedWrite};

/// A change to plan.
// One per request: a large policy variant costs nothing worth a box.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum PlanRequest {
    /// Append this YAML.
    Yaml(String),
    /// Append what this template or registered generator renders.
    Generate {
        /// The template or generator.
        source: GenerateSource,
        /// Its parameters.
        parameters: Value,
    },
    /// Append a deletion marker.
    DeletionMarker,
    /// Delete the stack.
    Delete,
    /// Go back to an older deployment object of the stack.
    Rollback(DeploymentObjectId),
    /// Set (or, with `None`, remove) the placement policy.
    Placement(Option<PlacementPolicy>),
    /// Unassign the stack from this agent.
    Unassign(AgentId),
}

/// A stack's guard limits.
#[derive(Debug, Clone, PartialEq)]
pub struct GuardView {
    /// The control plane's defaults.
    pub defaults: GuardPolicy,
    /// The stack's own.
    pub overrides: GuardOverrides,
    /// What applies: the defaults with the overrides.
    pub effective: GuardPolicy,
}

impl ControlPlane {
    /// Computes what `request` would do to every agent of the stack and stores the
    /// plan, so it can be read back and confirmed; changes nothing else.
    pub async fn plan(
        &self,
        caller: &Actor,
        stack: StackId,
        request: PlanRequest,
    ) -> Result<PlanView> {
        let stack = self.visible_stack(caller, stack).await?.id;
        let (change, proposed) = self.planned_change(caller, stack, request).await?;
        let plan = self.compute_plan(stack, &change, &proposed).await?;
        self.store_plan(caller, stack, PlanOrigin::Requested, &change, plan, false)
            .await
    }

    /// Turns a request into the change it plans, with the items of an object it would
    /// append; checks it the way its mutation would (YAML parsed, policy validated,
    /// rollback target of this stack).
    pub(crate) async fn planned_change(
        &self,
        caller: &Actor,
        stack: StackId,
        request: PlanRequest,
    ) -> Result<(PlannedChange, Vec<ItemDigest>)> {
        Ok(match request {
            PlanRequest::Yaml(yaml) => {
                let object = self.parse_deployment_object(stack, yaml).await?;
                appended(object.yaml_checksum(), object.items())
            }
            PlanRequest::Generate { source, parameters } => {
                let rendered = self.render(caller, stack, &source, parameters).await?;
                appended(rendered.object().yaml_checksum(), rendered.object().items())
            }
            PlanRequest::DeletionMarker => (PlannedChange::DeletionMarker, Vec::new()),
            PlanRequest::Delete => (PlannedChange::Delete, Vec::new()),
            PlanRequest::Rollback(to) => {
                self.rollback_target(stack, to).await?;
                let change = PlannedChange::Rollback {
                    to_deployment_object_id: to,
                };
                (change, Vec::new())
            }
            PlanRequest::Placement(policy) => {
                if let Some(policy) = &policy {
                    self.check_policy(policy)?;
                }
                (PlannedChange::Placement { policy }, Vec::new())
            }
            PlanRequest::Unassign(agent_id) => (PlannedChange::Unassign { agent_id }, Vec::new()),
        })
    }

    /// Checks that `to` is a live (not deletion-marker) object of `stack` and not its
    /// latest: a rollback appends a copy of an older one.
    pub(crate) async fn rollback_target(
        &self,
        stack: StackId,
        to: DeploymentObjectId,
    ) -> Result<crate::model::DeploymentObject> {
        let object = match self.store().get_deployment_object(to).await {
            Ok(object) if object.stack_id == stack => object,
            Ok(_) | Err(store::Error::NotFound { .. }) => {
                return Err(Error::not_found("deployment object of stack", to));
            }
            Err(err) => return Err(err.into()),
        };
        if object.is_deletion_marker {
            return Err(Error::invalid(
                "deletion_marker",
                format!("deployment object {to} is a deletion marker; delete the stack instead"),
            ));
        }
        if self.latest_live_object(stack).await? == Some(to) {
            return Err(Error::invalid(
                "already_latest",
                format!("deployment object {to} is the stack's latest already"),
            ));
        }
        Ok(object)
    }

    /// A plan, for the admin or the generator owning its stack (also once the stack is
    /// deleted); another generator's plan is `NotFound`.
    pub async fn get_plan(&self, caller: &Actor, id: PlanId) -> Result<PlanView> {
        access::require_admin_or_generator(caller)?;
        let stored = self.store().get_plan(id).await?;
        match self.check_stack_history(caller, stored.stack_id).await {
            Ok(()) => PlanView::from_stored(stored),
            Err(Error::Store(store::Error::NotFound { .. })) => Err(Error::not_found("plan", id)),
            Err(other) => Err(other),
        }
    }

    /// Releases a placement decision the guard held (admin only): the decision is
    /// recorded if the plan has not expired and the world is still as planned
    /// (`PlanStale` otherwise), once (`PlanConsumed`). A plan a caller asked for is confirmed by repeating its
    /// change with `confirm_plan_id` instead (`Invalid { code: "not_held" }`).
    pub async fn confirm_plan(&self, caller: &Actor, id: PlanId) -> Result<PlanView> {
        access::require_admin(caller)
            .map_err(|_| Error::forbidden("only an admin may confirm a plan"))?;
        let stored = self.get_plan(caller, id).await?;
        let PlannedChange::PlacementDecision { chosen } = stored.change.clone() else {
            return Err(Error::invalid(
                "not_held",
                "this plan was asked for, not held: repeat its change with confirm_plan_id",
            ));
        };
        let stack = stored.stack_id;
        let _turn = self.stack_turn(stack).await;
        let confirming = self.confirming(caller, id, stack, &stored.change).await?;
        let decision = PlacementDecision::choosing(chosen.clone());
        let (written, at) = self
            .write_confirmed(caller, &confirming, ConfirmedChange::Decide(decision))
            .await?;
        let ConfirmedWrite::Placed(change) = written else {
            return Err(super::guarded::unexpected(&written));
        };
        self.with_index(move |index, _| index.set_chosen(stack, chosen))
            .await?;
        tracing::info!(
            %stack,
            plan = %id,
            added = change.added.len(),
            removed = change.removed.len(),
            "held placement decision released"
        );
        Ok(PlanView {
            consumed_at: Some(at),
            ..stored
        })
    }

    /// The stack's guard limits.
    pub async fn guard_policy(&self, caller: &Actor, stack: StackId) -> Result<GuardView> {
        let stack = self.visible_stack(caller, stack).await?.id;
        let overrides = self.store().guard_overrides(stack).await?;
        Ok(self.guard_view(overrides))
    }

    /// Replaces the stack's guard overrides (empty: the defaults apply). Values out of
    /// range are `Invalid { code: "invalid_guard" }`; a generator may tighten its
    /// stack's limits but only an admin may loosen them (`Forbidden`, naming them).
    pub async fn set_guard_policy(
        &self,
        caller: &Actor,
        stack: StackId,
        overrides: GuardOverrides,
    ) -> Result<GuardView> {
        let stack = self.visible_stack(caller, stack).await?.id;
        let wanted = self.guard_view(overrides.clone());
        wanted
            .effective
            .validate()
            .map_err(|err| Error::invalid("invalid_guard", err.0))?;
        if access::require_admin(caller).is_err() {
            let current = self.effective_guard(stack).await?;
            let loosened = current.loosened_by(&wanted.effective);
            if !loosened.is_empty() {
                return Err(Error::forbidden(format!(
                    "only an admin may loosen the guard ({})",
                    loosened.join(", ")
                )));
            }
        }
        let stored = self
            .store()
            .set_guard_overrides(caller, stack, overrides)
            .await?;
        Ok(self.guard_view(stored))
    }

    fn guard_view(&self, overrides: GuardOverrides) -> GuardView {
        let defaults = self.settings().guard.clone();
        GuardView {
            effective: defaults.with(&overrides),
            defaults,
            overrides,
        }
    }
}

fn appended(checksum: &str, items: &[ItemDigest]) -> (PlannedChange, Vec<ItemDigest>) {
    let change = PlannedChange::DeploymentObject {
        yaml_checksum: checksum.to_owned(),
    };
    (change, items.to_vec())
}
