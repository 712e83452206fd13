//! Automatic placement decisions through the guard: one that would remove the stack
//! from too many agents, or prune protected kinds, is held rather than recorded, so a
//! mass relabel or an agent listing that came back wrong never empties a fleet.

use chrono::Utc;

use super::{PlanView, PlannedChange};
use crate::id::{AgentId, StackId};
use crate::model::{Actor, PlanOrigin};
use crate::runtime::{ControlPlane, Error, Result};
use crate::store;

impl ControlPlane {
    /// The decision the guard holds for `stack`, if any.
    pub(crate) async fn held_plan_view(&self, stack: StackId) -> Result<Option<PlanView>> {
        match self.store().held_plan(stack, Utc::now()).await? {
            Some(stored) => Ok(Some(PlanView::from_stored(stored)?)),
            None => Ok(None),
        }
    }

    /// Whether the guard holds the automatic decision choosing `chosen` for `stack`.
    /// A held decision is stored as a held plan (once per distinct plan while it is
    /// confirmable) and the index goes back to `stored`, the recorded choice.
    pub(crate) async fn hold_if_over_guard(
        &self,
        stack: StackId,
        chosen: &[AgentId],
        stored: Vec<AgentId>,
    ) -> Result<bool> {
        let mut sorted = chosen.to_vec();
        sorted.sort_unstable();
        let change = PlannedChange::PlacementDecision { chosen: sorted };
        let plan = match self.compute_plan(stack, &change, &[]).await {
            Ok(plan) => plan,
            // Deleted meanwhile: recording the decision says so and drops it.
            Err(Error::Store(store::Error::NotFound { .. })) => return Ok(false),
            Err(err) => return Err(err),
        };
        if !plan.guard.needs_confirmation() {
            return Ok(false);
        }
        let held = self.store().held_plan(stack, Utc::now()).await?;
        if held.is_none_or(|held| held.digest != plan.digest) {
            let summary = plan.summary.clone();
            let view = self
                .store_plan(&Actor::System, stack, PlanOrigin::Held, &change, plan, true)
                .await?;
            tracing::warn!(
                %stack,
                plan = %view.id,
                agents_current = summary.agents_current,
                agents_removed = summary.agents_removed,
                pruned = summary.objects.prune,
                "placement decision held by the blast-radius guard; an admin releases it \
                 by confirming the plan (POST /api/v1/plans/{{id}}/confirm)"
            );
        }
        self.with_index(move |index, _| index.set_chosen(stack, stored))
            .await?;
        Ok(true)
    }
}
