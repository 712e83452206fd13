//! Computing a plan for a change, and the guard's check in front of every mutation
//! that can remove or prune.

use std::collections::{BTreeSet, HashMap};

use chrono::{DateTime, Utc};

use super::world::{Effect, moves};
use super::{GuardOptions, PlanView, PlannedChange};
use crate::id::{AgentId, DeploymentObjectId, PlanId, StackId};
use crate::model::{Actor, NewPlan, PlanOrigin, StackWorld};
use crate::plan::{self, GuardPolicy, ItemDigest, Plan, Version, append_keeps_everything};
use crate::runtime::placement::RejectionPage;
use crate::runtime::{ControlPlane, Error, Result, access};
use crate::store::{self, Confirmation, Confirmed, ConfirmedChange, ConfirmedWrite};

/// What the guard lets a mutation do.
#[derive(Debug)]
pub(crate) enum Checked {
    /// Go ahead (within the limits, or confirmed).
    Proceed,
    /// A dry run: the plan, stored so it can be confirmed; change nothing.
    DryRun(Box<PlanView>),
    /// A confirmation: write the change with [`ControlPlane::write_confirmed`], which
    /// checks the plan against the world inside the write's transaction.
    Confirm(Confirming),
}

/// A plan being confirmed: what its digest is recomputed from.
#[derive(Debug, Clone)]
pub(crate) struct Confirming {
    plan_id: PlanId,
    pub(crate) stack: StackId,
    /// The change as planned (`PlannedChange` as JSON, as the digest hashes it).
    described: serde_json::Value,
    /// What the change does to the targets, decided before the write.
    pub(crate) effect: Effect,
}

impl ControlPlane {
    /// The stack's limits: the settings' defaults with its overrides.
    pub(crate) async fn effective_guard(&self, stack: StackId) -> Result<GuardPolicy> {
        let overrides = self.store().guard_overrides(stack).await?;
        Ok(self.settings().guard.with(&overrides))
    }

    /// What `change` would do to every agent of `stack` now. `proposed` holds the items
    /// of the object a change would append. Agents are named by id; [`store_plan`]
    /// names them (names are not part of the digest).
    ///
    /// [`store_plan`]: ControlPlane::store_plan
    pub(crate) async fn compute_plan(
        &self,
        stack: StackId,
        change: &PlannedChange,
        proposed: &[ItemDigest],
    ) -> Result<Plan> {
        let world = self.store().stack_world(stack).await?;
        self.plan_in(&world, stack, change, proposed).await
    }

    /// [`ControlPlane::compute_plan`] in a world already read.
    async fn plan_in(
        &self,
        world: &StackWorld,
        stack: StackId,
        change: &PlannedChange,
        proposed: &[ItemDigest],
    ) -> Result<Plan> {
        let effect = self.effect(stack, change).await?;
        let moves = moves(world, &effect);
        let stored: BTreeSet<DeploymentObjectId> = moves
            .iter()
            .flat_map(|m| [m.from, stored_version(m.to)])
            .flatten()
            .collect();
        let ids: Vec<DeploymentObjectId> = stored.into_iter().collect();
        let mut items: HashMap<Version, Vec<ItemDigest>> = self
            .store()
            .deployment_object_items(&ids)
            .await?
            .into_iter()
            .map(|(id, items)| (Version::Stored(id), items))
            .collect();
        items.insert(Version::Proposed, proposed.to_vec());
        let guard = self.effective_guard(stack).await?;
        let described = serde_json::to_value(change).map_err(backend)?;
        plan::compute(&described, &moves, &items, &guard).map_err(backend)
    }

    /// What a change does to the stack's targets.
    async fn effect(&self, stack: StackId, change: &PlannedChange) -> Result<Effect> {
        Ok(match change {
            PlannedChange::DeploymentObject { .. } => Effect::Everyone(Some(Version::Proposed)),
            PlannedChange::DeletionMarker | PlannedChange::Delete => Effect::Everyone(None),
            PlannedChange::Rollback {
                to_deployment_object_id,
            } => Effect::Everyone(Some(Version::Stored(*to_deployment_object_id))),
            PlannedChange::Placement { policy: None } => Effect::Chosen(BTreeSet::new()),
            PlannedChange::Placement {
                policy: Some(policy),
            } => {
                let preview = self
                    .preview_placement(
                        &Actor::System,
                        stack,
                        policy.clone(),
                        RejectionPage {
                            after: None,
                            limit: 1,
                        },
                    )
                    .await?;
                Effect::Chosen(preview.chosen.into_iter().collect())
            }
            PlannedChange::Unassign { agent_id } => Effect::Unassign(*agent_id),
            PlannedChange::PlacementDecision { chosen } => {
                Effect::Chosen(chosen.iter().copied().collect())
            }
        })
    }

    /// Computes and stores a plan; `holds_change` when the guard stopped its change.
    pub(crate) async fn store_plan(
        &self,
        caller: &Actor,
        stack: StackId,
        origin: PlanOrigin,
        change: &PlannedChange,
        plan: Plan,
        holds_change: bool,
    ) -> Result<PlanView> {
        let mut plan = plan;
        let agents: BTreeSet<AgentId> = plan
            .groups
            .iter()
            .flat_map(|g| g.agents.iter().map(|a| a.id))
            .collect();
        let names = self.agent_names(agents).await?;
        for agent in plan.groups.iter_mut().flat_map(|g| g.agents.iter_mut()) {
            if let Some(name) = names.get(&agent.id) {
                agent.name.clone_from(name);
            }
        }
        let new = NewPlan {
            stack_id: stack,
            origin,
            change: serde_json::to_value(change).map_err(backend)?,
            digest: plan.digest.clone(),
            body: serde_json::to_value(&plan).map_err(backend)?,
            expires_at: Utc::now()
                + crate::runtime::placement::controller::chrono_duration(self.settings().plan_ttl),
            holds_change,
        };
        let stored = self.store().create_plan(caller, new).await?;
        // Answered from the plan in hand: decoding the stored body of a 10,000-agent
        // plan again would cost as much as computing it.
        Ok(PlanView {
            id: stored.id,
            stack_id: stored.stack_id,
            origin: stored.origin,
            change: change.clone(),
            plan,
            created_at: stored.created_at,
            expires_at: stored.expires_at,
            consumed_at: stored.consumed_at,
        })
    }

    /// The guard in front of a mutation of `stack` by `caller`: a dry run answers the
    /// plan; a confirmation must name an unused, unexpired plan of this stack and is
    /// admin-only (its digest is checked in the write's transaction); otherwise a
    /// change over the limits is refused with `BlastRadiusExceeded`, its plan stored
    /// for confirming.
    pub(crate) async fn check_guard(
        &self,
        caller: &Actor,
        stack: StackId,
        change: &PlannedChange,
        proposed: &[ItemDigest],
        options: &GuardOptions,
    ) -> Result<Checked> {
        if let Some(id) = options.confirm_plan_id {
            let confirming = self.confirming(caller, id, stack, change).await?;
            return Ok(Checked::Confirm(confirming));
        }
        let rejected = self.rejected_content(stack, change).await?;
        if rejected.is_none()
            && !options.dry_run
            && self.cannot_remove(stack, change, proposed).await?
        {
            return Ok(Checked::Proceed);
        }
        let world = self.store().stack_world(stack).await?;
        let mut plan = self.plan_in(&world, stack, change, proposed).await?;
        if let Some(violation) = rejected {
            plan.guard.violations.push(violation);
            plan.guard.verdict = plan::Verdict::ConfirmationRequired;
        }
        if options.dry_run {
            let view = self
                .store_plan(caller, stack, PlanOrigin::Requested, change, plan, false)
                .await?;
            return Ok(Checked::DryRun(Box::new(view)));
        }
        if plan.guard.needs_confirmation() {
            let view = self
                .store_plan(caller, stack, PlanOrigin::Requested, change, plan, true)
                .await?;
            tracing::info!(
                %stack,
                plan = %view.id,
                removed = view.plan.summary.agents_removed,
                pruned = view.plan.summary.objects.prune,
                "change stopped by the blast-radius guard"
            );
            return Err(Error::BlastRadiusExceeded(Box::new(view)));
        }
        Ok(Checked::Proceed)
    }

    /// Whether `change` can neither remove nor prune, judged without reading a row per
    /// agent: no agent runs anything of the stack, or it is an append that keeps every
    /// object of every version the agents run, each of them with a live target.
    /// `false` only means the full plan must tell.
    async fn cannot_remove(
        &self,
        stack: StackId,
        change: &PlannedChange,
        proposed: &[ItemDigest],
    ) -> Result<bool> {
        let applied = self.store().applied_versions(stack).await?;
        if applied.versions.is_empty() {
            return Ok(true);
        }
        if !matches!(change, PlannedChange::DeploymentObject { .. }) {
            return Ok(false);
        }
        let items = self
            .store()
            .deployment_object_items(&applied.versions)
            .await?;
        Ok(append_keeps_everything(&applied, &items, proposed))
    }

    /// An append of content a rollout of the stack reverted: the violation that holds
    /// it for an admin's confirmation.
    async fn rejected_content(
        &self,
        stack: StackId,
        change: &PlannedChange,
    ) -> Result<Option<plan::Violation>> {
        let PlannedChange::DeploymentObject { yaml_checksum } = change else {
            return Ok(None);
        };
        let rejecting = self.store().rejecting_rollout(stack, yaml_checksum).await?;
        Ok(rejecting.map(|(rollout_id, deployment_object_id)| {
            tracing::info!(%stack, rollout = %rollout_id, object = %deployment_object_id, "append of content a rollout reverted: held for confirmation");
            plan::Violation::RejectedByRollout {
                rollout_id,
                deployment_object_id,
            }
        }))
    }

    /// Checks a confirmation of plan `id` for `change` to `stack` before its write:
    /// admin only, a plan of this stack, unused and unexpired. The digest is compared
    /// by the write itself.
    pub(crate) async fn confirming(
        &self,
        caller: &Actor,
        id: PlanId,
        stack: StackId,
        change: &PlannedChange,
    ) -> Result<Confirming> {
        access::require_admin(caller)
            .map_err(|_| Error::forbidden("only an admin may confirm a plan"))?;
        let stored = self.store().get_plan(id).await?;
        if stored.stack_id != stack {
            return Err(Error::PlanStale {
                plan_id: id,
                reason: "the plan is for another stack".into(),
            });
        }
        confirmable(stored.id, stored.consumed_at, stored.expires_at)?;
        Ok(Confirming {
            plan_id: id,
            stack,
            described: serde_json::to_value(change).map_err(backend)?,
            effect: self.effect(stack, change).await?,
        })
    }

    /// Writes a confirmed change: the store uses the plan, recomputes its digest from
    /// the world it reads in the same transaction, and writes only when it matches.
    pub(crate) async fn write_confirmed(
        &self,
        caller: &Actor,
        confirming: &Confirming,
        change: ConfirmedChange,
    ) -> Result<(ConfirmedWrite, DateTime<Utc>)> {
        let digest = |world: &StackWorld| {
            plan::digest(&confirming.described, &moves(world, &confirming.effect))
        };
        let confirmation = Confirmation {
            plan_id: confirming.plan_id,
            stack_id: confirming.stack,
            digest: &digest,
        };
        let plan_id = confirming.plan_id;
        match self
            .store()
            .write_confirmed(caller, &confirmation, change)
            .await?
        {
            Confirmed::Written { written, at } => {
                tracing::info!(stack = %confirming.stack, plan = %plan_id, "plan confirmed");
                Ok((written, at))
            }
            Confirmed::Consumed => Err(Error::PlanConsumed { plan_id }),
            Confirmed::Stale => Err(Error::PlanStale {
                plan_id,
                reason: "the change or what the agents run changed since the plan; plan again"
                    .into(),
            }),
        }
    }
}

fn stored_version(version: Option<Version>) -> Option<DeploymentObjectId> {
    match version {
        Some(Version::Stored(id)) => Some(id),
        _ => None,
    }
}

/// A plan that cannot be computed or stored as JSON is the platform's failure.
pub(crate) fn backend(err: impl std::error::Error + Send + Sync + 'static) -> Error {
    Error::Store(store::Error::Backend(Box::new(err)))
}

/// Whether a plan may still be confirmed: unused (`PlanConsumed`) and unexpired
/// (`PlanStale`). Both ways of confirming ask this.
pub(crate) fn confirmable(
    id: crate::id::PlanId,
    consumed_at: Option<chrono::DateTime<Utc>>,
    expires_at: chrono::DateTime<Utc>,
) -> Result<()> {
    if consumed_at.is_some() {
        return Err(Error::PlanConsumed { plan_id: id });
    }
    if expires_at <= Utc::now() {
        return Err(Error::PlanStale {
            plan_id: id,
            reason: "the plan expired; plan again".into(),
        });
    }
    Ok(())
}
