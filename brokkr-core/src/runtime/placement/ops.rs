//! Placement operations: a stack's policy (set, read, remove) and previews.
//!
//! Access: admin and system, and the generator owning the stack (another generator's
//! stack is `NotFound`); agents are refused. A policy names the placement that decides
//! it (none: the default); an unknown name is `Invalid { code: "unknown_placement" }`
//! and a policy its placement refuses is `InvalidPolicy`, both before anything is
//! stored.
//!
//! Answers do not grow with the fleet: the agents not chosen are counted per reason
//! code, and listed a page at a time ([`RejectionPage`]).

use crate::placement::{RejectionPage, Rejections};
use crate::runtime::plan::PlanView;
use crate::runtime::plan::check::Confirming;
use crate::runtime::plan::world::Effect;
use crate::runtime::{ControlPlane, Error, Result, access};
use crate::store::ConfirmedChange;
use crate::{Actor, AgentId, PlacementDecision, PlacementPolicy, StackId, StackPlacement};

/// A stack's placement with the reasons of the agents not chosen.
#[derive(Debug, Clone, PartialEq)]
pub struct PlacementView {
    /// The stored placement; its decision holds the chosen agents only.
    pub placement: StackPlacement,
    /// Why the other agents are not chosen, judged now; `None` before a first decision.
    pub rejected: Option<Rejections>,
    /// An automatic decision the blast-radius guard holds instead of recording, with
    /// its plan (released by [`ControlPlane::confirm_plan`]); filled by
    /// [`ControlPlane::stack_placement`] only.
    pub held: Option<Box<PlanView>>,
}

/// What a policy would decide now; nothing stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlacementPreview {
    /// The stack.
    pub stack_id: StackId,
    /// The policy tried.
    pub policy: PlacementPolicy,
    /// The agents it would choose, ordered by id.
    pub chosen: Vec<AgentId>,
    /// The others.
    pub rejected: Rejections,
}

fn no_policy(stack: StackId) -> Error {
    Error::not_found("placement policy of stack", stack)
}

impl ControlPlane {
    /// Checks that `caller` may manage the stack's placement (`NotFound` for another
    /// generator's stack, `Forbidden` for agents).
    pub(crate) async fn placeable_stack(&self, caller: &Actor, stack: StackId) -> Result<()> {
        access::require_admin_or_generator(caller)?;
        let found = self.inner.store.get_stack(stack).await?;
        if !access::sees_owned_by(caller, found.generator_id) {
            return Err(Error::not_found("stack", stack));
        }
        Ok(())
    }

    /// Checks a policy against the registry: its placement exists and accepts it.
    pub fn check_policy(&self, policy: &PlacementPolicy) -> Result<()> {
        let placement = self.inner.placements.for_policy(policy).map_err(|err| {
            Error::invalid(
                "unknown_placement",
                format!("invalid placement policy: {err}"),
            )
        })?;
        policy
            .validate()
            .and_then(|()| placement.validate(policy))
            .map_err(|err| Error::InvalidPolicy(err.0))
    }

    /// The stack's stored placement, explained against the index now.
    async fn stored_view(&self, stack: StackId, page: RejectionPage) -> Result<PlacementView> {
        let placement = self
            .inner
            .store
            .get_placement(stack)
            .await?
            .ok_or_else(|| no_policy(stack))?;
        self.explain(placement, page).await
    }

    /// Explains a stored placement against the index now.
    async fn explain(
        &self,
        placement: StackPlacement,
        page: RejectionPage,
    ) -> Result<PlacementView> {
        let Some(decision) = placement.decision.clone() else {
            return Ok(PlacementView {
                placement,
                rejected: None,
                held: None,
            });
        };
        let Ok(placer) = self.inner.placements.for_policy(&placement.policy).cloned() else {
            // Its placement is no longer registered: the stored choice stands, unexplained.
            return Ok(PlacementView {
                placement,
                rejected: Some(Rejections::default()),
                held: None,
            });
        };
        let policy = placement.policy.clone();
        let rejected = self
            .with_index(move |index, clock| {
                let current = &decision.chosen;
                let placer = placer.as_ref();
                index
                    .summarize(placer, &policy, current, current, clock, page)
                    .1
            })
            .await?;
        Ok(PlacementView {
            placement,
            rejected: Some(rejected),
            held: None,
        })
    }

    /// A stack's placement: the policy, the stored decision and why the other agents
    /// are not chosen (judged now, from memory: no agent is read from the store).
    /// `NotFound` when the stack has no policy.
    pub async fn stack_placement(
        &self,
        caller: &Actor,
        stack: StackId,
        page: RejectionPage,
    ) -> Result<PlacementView> {
        self.placeable_stack(caller, stack).await?;
        let mut view = self.stored_view(stack, page).await?;
        view.held = self.held_plan_view(stack).await?.map(Box::new);
        Ok(view)
    }

    /// Sets a stack's policy and decides at once: when it returns, the decision is
    /// recorded and its placement targets are in place.
    ///
    /// The decision is made from what the placement index knows of the stack and
    /// stored with the policy in one write, checked against the stored decision (no
    /// read first); only when another replica decided the stack meanwhile is the
    /// stack read back and decided again.
    ///
    /// A decision over the guard's limits is `BlastRadiusExceeded` (confirm it through
    /// [`ControlPlane::guarded`]).
    pub async fn set_placement_policy(
        &self,
        caller: &Actor,
        stack: StackId,
        policy: PlacementPolicy,
        page: RejectionPage,
    ) -> Result<PlacementView> {
        self.guarded(crate::runtime::plan::GuardOptions::default())
            .set_placement_policy(caller, stack, policy, page)
            .await?
            .done()
    }

    /// Sets the policy and decides, past the guard (the caller checked it).
    pub(crate) async fn place_policy(
        &self,
        caller: &Actor,
        stack: StackId,
        policy: PlacementPolicy,
        page: RejectionPage,
    ) -> Result<PlacementView> {
        {
            let _turn = self.stack_turn(stack).await;
            if let Some(view) = self.place_at_once(caller, stack, &policy, page).await? {
                return Ok(view);
            }
            self.inner
                .store
                .set_placement_policy(caller, stack, Some(policy))
                .await?
                .ok_or_else(|| no_policy(stack))?;
            self.decide_stack_locked(stack, false).await?;
        }
        self.stored_view(stack, page).await
    }

    /// Decides `policy` for the stack from the index (keeping the indexed decision's
    /// agents while they fit), notes it there, and stores policy and decision together.
    /// `None` when the stored decision is not the indexed one. The caller holds the
    /// stack's turn.
    async fn place_at_once(
        &self,
        caller: &Actor,
        stack: StackId,
        policy: &PlacementPolicy,
        page: RejectionPage,
    ) -> Result<Option<PlacementView>> {
        let registry = self.inner.placements.clone();
        let placer = registry
            .for_policy(policy)
            .cloned()
            .map_err(|err| Error::invalid("unknown_placement", err.to_string()))?;
        let tried = policy.clone();
        let (expected, was_leaving, chosen, rejected) = self
            .with_index(move |index, clock| {
                let expected = index.chosen(stack).map(<[AgentId]>::to_vec);
                let leaving = index.leaving_of(stack);
                let current = expected.as_deref().unwrap_or_default();
                let chosen = index
                    .decide(placer.as_ref(), &tried, current, clock, false)
                    .chosen;
                let (_, rejected) =
                    index.summarize(placer.as_ref(), &tried, &chosen, &chosen, clock, page);
                index.set_stack(stack, tried, chosen.clone(), &registry);
                index.set_leaving(stack, leaving.clone());
                (expected, leaving, chosen, rejected)
            })
            .await?;
        // Agents this decision drops may keep the stack a while (graceful eviction),
        // judged against the stored decision: the one this index knows, or, when it
        // lists leaving agents, as stored now (another replica may have released some).
        let eviction = async {
            let before = match (&expected, was_leaving.is_empty()) {
                (None, _) => None,
                (Some(chosen), true) => Some(PlacementDecision::choosing(chosen.clone())),
                (Some(_), false) => self
                    .inner
                    .store
                    .get_placement(stack)
                    .await?
                    .and_then(|p| p.decision),
            };
            self.eviction(stack, policy, before.as_ref(), &chosen).await
        };
        let (leaving, released) = match eviction.await {
            Ok(eviction) => eviction,
            Err(err) => {
                // The index already holds the new policy, which was not stored.
                *self.placement_state().lock() = None;
                return Err(err);
            }
        };
        let decision = PlacementDecision {
            leaving: leaving.clone(),
            ..PlacementDecision::choosing(chosen)
        };
        let placed = match self
            .inner
            .store
            .place_stack(caller, stack, policy.clone(), decision, expected)
            .await
        {
            Ok(placed) => placed,
            // Deleted meanwhile: only this stack leaves the index.
            Err(err @ crate::store::Error::NotFound { .. }) => {
                self.drop_stack(stack);
                return Err(err.into());
            }
            // The index may now say more than the store: load it again on next use.
            Err(err) => return Err(self.forget_index(err)),
        };
        let Some((placement, change)) = placed else {
            tracing::debug!(%stack, "the stored placement moved on; deciding it again");
            return Ok(None);
        };
        super::eviction::log_released(stack, &released);
        self.with_index(move |index, _| index.set_leaving(stack, leaving))
            .await?;
        if !change.added.is_empty() || !change.removed.is_empty() {
            tracing::info!(
                %stack,
                added = change.added.len(),
                removed = change.removed.len(),
                "placement decision changed"
            );
        }
        Ok(Some(PlacementView {
            placement,
            rejected: Some(rejected),
            held: None,
        }))
    }

    /// Sets a policy by a confirmed plan: the decision written is the one the plan
    /// previewed, then noted in the index.
    pub(crate) async fn place_confirmed(
        &self,
        caller: &Actor,
        confirming: &Confirming,
        policy: PlacementPolicy,
        page: RejectionPage,
    ) -> Result<PlacementView> {
        let Effect::Chosen(chosen) = &confirming.effect else {
            // A placement change always plans a chosen set (see `check::effect`).
            return Err(crate::runtime::plan::check::backend(std::io::Error::other(
                "a confirmed placement policy planned no chosen agents",
            )));
        };
        let chosen: Vec<AgentId> = chosen.iter().copied().collect();
        let stack = confirming.stack;
        {
            let _turn = self.stack_turn(stack).await;
            // A confirmed move is still a move: the agents it drops may keep the stack
            // until their replacements are healthy (the plan counted them as removed).
            let before = self
                .inner
                .store
                .get_placement(stack)
                .await?
                .and_then(|p| p.decision);
            let (leaving, released) = self
                .eviction(stack, &policy, before.as_ref(), &chosen)
                .await?;
            let decision = PlacementDecision {
                leaving: leaving.clone(),
                ..PlacementDecision::choosing(chosen.clone())
            };
            let change = ConfirmedChange::Place(policy.clone(), decision);
            self.write_confirmed(caller, confirming, change).await?;
            super::eviction::log_released(stack, &released);
            let registry = self.inner.placements.clone();
            self.with_index(move |index, _| {
                index.set_stack(stack, policy, chosen, &registry);
                index.set_leaving(stack, leaving);
            })
            .await?;
        }
        self.stored_view(stack, page).await
    }

    /// Removes a stack's policy; the agents it placed the stack on receive a removal
    /// (direct targets stay). `NotFound` when the stack has no policy.
    pub async fn remove_placement_policy(&self, caller: &Actor, stack: StackId) -> Result<()> {
        self.guarded(crate::runtime::plan::GuardOptions::default())
            .remove_placement_policy(caller, stack)
            .await?
            .done()
    }

    /// Removes the policy, past the guard and the access check (the caller made both).
    pub(crate) async fn unplace_policy(&self, caller: &Actor, stack: StackId) -> Result<()> {
        let _turn = self.stack_turn(stack).await;
        if self.inner.store.get_placement(stack).await?.is_none() {
            return Err(no_policy(stack));
        }
        self.inner
            .store
            .set_placement_policy(caller, stack, None)
            .await?;
        self.with_index(move |index, _| index.remove_stack(stack))
            .await?;
        Ok(())
    }

    /// What `policy` would decide for the stack now, keeping the stored decision's
    /// agents while they fit; stores nothing.
    pub async fn preview_placement(
        &self,
        caller: &Actor,
        stack: StackId,
        policy: PlacementPolicy,
        page: RejectionPage,
    ) -> Result<PlacementPreview> {
        self.placeable_stack(caller, stack).await?;
        self.check_policy(&policy)?;
        let current = self
            .inner
            .store
            .get_placement(stack)
            .await?
            .and_then(|p| p.decision)
            .map(|d| d.chosen)
            .unwrap_or_default();
        let placer = self
            .inner
            .placements
            .for_policy(&policy)
            .cloned()
            .map_err(|err| Error::invalid("unknown_placement", err.to_string()))?;
        let tried = policy.clone();
        let (chosen, rejected) = self
            .with_index(move |index, clock| {
                index.summarize(placer.as_ref(), &tried, &current, &[], clock, page)
            })
            .await?;
        Ok(PlacementPreview {
            stack_id: stack,
            policy,
            chosen,
            rejected,
        })
    }
}
