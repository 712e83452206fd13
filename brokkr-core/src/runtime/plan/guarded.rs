//! The mutations that can remove or prune, behind the guard: each computes its plan
//! first, then answers it (dry run), refuses (`BlastRadiusExceeded`), or goes ahead
//! (within the limits, or confirmed).
//!
//! The plain `ControlPlane` methods of the same names run these without options, so an
//! embedder calling them is guarded too.

use serde_json::Value;

use super::check::{Checked, Confirming};
use super::{GuardOptions, PlanView, PlannedChange};
use crate::id::{AgentId, DeploymentObjectId, StackId};
use crate::model::{Actor, DeploymentObject, NewDeploymentObject};
use crate::placement::{PlacementPolicy, RejectionPage};
use crate::plan::ItemDigest;
use crate::runtime::placement::PlacementView;
use crate::runtime::{ControlPlane, Error, GenerateSource, Result, access};
use crate::store::{ConfirmedChange, ConfirmedWrite, HarmlessAppend};

/// The guarded mutations with a dry run or a confirmation; see
/// [`ControlPlane::guarded`].
#[derive(Debug, Clone, Copy)]
pub struct Guarded<'a> {
    control_plane: &'a ControlPlane,
    options: GuardOptions,
    /// Appends go out at once, past the stack's rollout policy (admin only).
    immediate: bool,
}

/// What a guarded mutation did.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome<T> {
    /// The change was made.
    Done(T),
    /// A dry run: the plan (stored, so it can be confirmed); nothing changed.
    Planned(Box<PlanView>),
}

impl<T> Outcome<T> {
    /// The change's result; a dry run's plan is an error here (callers that asked for
    /// no dry run never see one).
    pub fn done(self) -> Result<T> {
        match self {
            Self::Done(value) => Ok(value),
            Self::Planned(plan) => Err(Error::invalid(
                "dry_run",
                format!("plan {} was made, nothing changed", plan.id),
            )),
        }
    }
}

impl ControlPlane {
    /// The mutations that can remove or prune, with `options`: a dry run, or a
    /// confirmation of a plan the guard stopped.
    pub fn guarded(&self, options: GuardOptions) -> Guarded<'_> {
        Guarded {
            control_plane: self,
            options,
            immediate: false,
        }
    }
}

impl Guarded<'_> {
    /// Appends made through this release their object at once, past the stack's
    /// rollout policy: every agent gets it, and the stack's rollouts are cancelled. An
    /// admin's hotfix: other callers get `Forbidden` when they append.
    pub fn immediate(mut self) -> Self {
        self.immediate = true;
        self
    }

    async fn check(
        &self,
        caller: &Actor,
        stack: StackId,
        change: PlannedChange,
        proposed: &[ItemDigest],
    ) -> Result<Checked> {
        self.control_plane
            .check_guard(caller, stack, &change, proposed, &self.options)
            .await
    }

    /// Writes a confirmed change that answers a deployment object.
    async fn confirmed_object(
        &self,
        caller: &Actor,
        confirming: &Confirming,
        change: ConfirmedChange,
    ) -> Result<Outcome<DeploymentObject>> {
        match self
            .control_plane
            .write_confirmed(caller, confirming, change)
            .await?
        {
            (ConfirmedWrite::Object(object), _) => Ok(Outcome::Done(object)),
            (other, _) => Err(unexpected(&other)),
        }
    }

    /// A plain append of new content goes to the store's shortcut first
    /// ([`Store::append_if_harmless`]): judged inside the append's transaction, for a
    /// whole batch of appends at once, where the guard's reads would cost two
    /// statements per append before it. `Err` hands back what the full guard must judge.
    ///
    /// [`Store::append_if_harmless`]: crate::store::Store::append_if_harmless
    async fn harmless_first(
        &self,
        caller: &Actor,
        change: &PlannedChange,
        new: NewDeploymentObject,
    ) -> Result<Result<DeploymentObject, NewDeploymentObject>> {
        let plain = self.options == GuardOptions::default();
        if !plain || !matches!(change, PlannedChange::DeploymentObject { .. }) {
            return Ok(Err(new));
        }
        let store = self.control_plane.store();
        Ok(match store.append_if_harmless(caller, new).await? {
            HarmlessAppend::Appended(object) => Ok(object),
            HarmlessAppend::NeedsPlan(new) => Err(new),
        })
    }

    /// Appends `new` (already parsed for `stack`) once the guard lets it.
    async fn append(
        &self,
        caller: &Actor,
        stack: StackId,
        change: PlannedChange,
        new: NewDeploymentObject,
    ) -> Result<Outcome<DeploymentObject>> {
        let new = if self.immediate {
            access::require_admin(caller)?;
            new.immediate()
        } else {
            new
        };
        let new = match self.harmless_first(caller, &change, new).await? {
            Ok(object) => return Ok(Outcome::Done(object)),
            Err(new) => new,
        };
        match self.check(caller, stack, change, new.items()).await? {
            Checked::Proceed => {
                let store = self.control_plane.store();
                Ok(Outcome::Done(
                    store.append_deployment_object(caller, new).await?,
                ))
            }
            Checked::DryRun(plan) => Ok(Outcome::Planned(plan)),
            Checked::Confirm(confirming) => {
                self.confirmed_object(caller, &confirming, ConfirmedChange::Append(new))
                    .await
            }
        }
    }

    /// [`ControlPlane::append_deployment_object`], guarded.
    pub async fn append_deployment_object(
        &self,
        caller: &Actor,
        stack: StackId,
        yaml: String,
    ) -> Result<Outcome<DeploymentObject>> {
        // Access first: a caller who may not write here costs no parsing.
        self.control_plane.check_stack_owner(caller, stack).await?;
        let new = self
            .control_plane
            .parse_deployment_object(stack, yaml)
            .await?;
        let change = PlannedChange::DeploymentObject {
            yaml_checksum: new.yaml_checksum().to_owned(),
        };
        self.append(caller, stack, change, new).await
    }

    /// [`ControlPlane::generate_deployment_object`], guarded.
    pub async fn generate_deployment_object(
        &self,
        caller: &Actor,
        stack: StackId,
        source: &GenerateSource,
        parameters: Value,
    ) -> Result<Outcome<DeploymentObject>> {
        let rendered = self
            .control_plane
            .render(caller, stack, source, parameters)
            .await?;
        let new = rendered.into_object();
        let change = PlannedChange::DeploymentObject {
            yaml_checksum: new.yaml_checksum().to_owned(),
        };
        self.append(caller, stack, change, new).await
    }

    /// [`ControlPlane::append_deletion_marker`], guarded.
    pub async fn append_deletion_marker(
        &self,
        caller: &Actor,
        stack: StackId,
    ) -> Result<Outcome<DeploymentObject>> {
        self.control_plane.check_stack_owner(caller, stack).await?;
        let marker = NewDeploymentObject::deletion_marker(stack);
        self.append(caller, stack, PlannedChange::DeletionMarker, marker)
            .await
    }

    /// Sends every agent of the stack an older deployment object again: appends a new
    /// object with its content and provenance, so history stays append-only.
    pub async fn rollback(
        &self,
        caller: &Actor,
        stack: StackId,
        to: DeploymentObjectId,
    ) -> Result<Outcome<DeploymentObject>> {
        let cp = self.control_plane;
        let stack = cp.visible_stack(caller, stack).await?.id;
        let old = cp.rollback_target(stack, to).await?;
        let mut new = cp.parse_deployment_object(stack, old.yaml_content).await?;
        if let Some(provenance) = old.provenance {
            new = new.with_provenance(provenance);
        }
        let change = PlannedChange::Rollback {
            to_deployment_object_id: to,
        };
        // The plan's `to` is the old object itself (same content, same items); the new
        // object's items go unused.
        self.append(caller, stack, change, new).await
    }

    /// [`ControlPlane::delete_stack`], guarded.
    pub async fn delete_stack(
        &self,
        caller: &Actor,
        stack: StackId,
    ) -> Result<Outcome<DeploymentObject>> {
        let cp = self.control_plane;
        let stack = cp.visible_stack(caller, stack).await?.id;
        match self
            .check(caller, stack, PlannedChange::Delete, &[])
            .await?
        {
            Checked::Proceed => Ok(Outcome::Done(cp.store().delete_stack(caller, stack).await?)),
            Checked::DryRun(plan) => Ok(Outcome::Planned(plan)),
            Checked::Confirm(confirming) => {
                self.confirmed_object(caller, &confirming, ConfirmedChange::DeleteStack)
                    .await
            }
        }
    }

    /// [`ControlPlane::set_placement_policy`], guarded.
    pub async fn set_placement_policy(
        &self,
        caller: &Actor,
        stack: StackId,
        policy: PlacementPolicy,
        page: RejectionPage,
    ) -> Result<Outcome<PlacementView>> {
        let cp = self.control_plane;
        cp.check_stack_owner(caller, stack).await?;
        cp.check_policy(&policy)?;
        let change = PlannedChange::Placement {
            policy: Some(policy.clone()),
        };
        match self.check(caller, stack, change, &[]).await? {
            Checked::Proceed => Ok(Outcome::Done(
                cp.place_policy(caller, stack, policy, page).await?,
            )),
            Checked::DryRun(plan) => Ok(Outcome::Planned(plan)),
            Checked::Confirm(confirming) => Ok(Outcome::Done(
                cp.place_confirmed(caller, &confirming, policy, page)
                    .await?,
            )),
        }
    }

    /// [`ControlPlane::remove_placement_policy`], guarded.
    pub async fn remove_placement_policy(
        &self,
        caller: &Actor,
        stack: StackId,
    ) -> Result<Outcome<()>> {
        let cp = self.control_plane;
        cp.placeable_stack(caller, stack).await?;
        let change = PlannedChange::Placement { policy: None };
        match self.check(caller, stack, change, &[]).await? {
            Checked::Proceed => cp.unplace_policy(caller, stack).await?,
            Checked::DryRun(plan) => return Ok(Outcome::Planned(plan)),
            Checked::Confirm(confirming) => {
                let _turn = cp.stack_turn(stack).await;
                cp.write_confirmed(caller, &confirming, ConfirmedChange::RemovePolicy)
                    .await?;
                cp.with_index(move |index, _| index.remove_stack(stack))
                    .await?;
            }
        }
        Ok(Outcome::Done(()))
    }

    /// [`ControlPlane::unassign_target`], guarded.
    pub async fn unassign_target(
        &self,
        caller: &Actor,
        agent: AgentId,
        stack: StackId,
    ) -> Result<Outcome<()>> {
        let cp = self.control_plane;
        let stack = cp.visible_stack(caller, stack).await?.id;
        let change = PlannedChange::Unassign { agent_id: agent };
        match self.check(caller, stack, change, &[]).await? {
            Checked::Proceed => cp.store().unassign_stack(caller, agent, stack).await?,
            Checked::DryRun(plan) => return Ok(Outcome::Planned(plan)),
            Checked::Confirm(confirming) => {
                cp.write_confirmed(caller, &confirming, ConfirmedChange::Unassign(agent))
                    .await?;
            }
        }
        cp.target_states().invalidate(agent);
        Ok(Outcome::Done(()))
    }
}

/// A store that answered a confirmed change with another kind of write broke its
/// contract.
pub(crate) fn unexpected(written: &ConfirmedWrite) -> Error {
    super::check::backend(std::io::Error::other(format!(
        "the store answered a confirmed change with {written:?}"
    )))
}
