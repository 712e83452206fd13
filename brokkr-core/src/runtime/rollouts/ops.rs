//! Rollouts as control-plane operations.
//!
//! Admin and system may do everything; a generator may do everything but `promote` for
//! the stacks it created, and another generator's stacks and rollouts are `NotFound`
//! to it; agents are `Forbidden`. A policy is checked before it is stored: its own
//! rules ([`RolloutPolicy::validate`]), webhook gates' URLs against the allowlist, and
//! custom gates against the registered ones.

use crate::id::{RolloutId, StackId};
use crate::model::{
    Actor, GateEvaluation, GateOutcome, Rollout, RolloutCommand, RolloutCommandKind,
};
use crate::page::{Page, PageRequest};
use crate::rollout::{GateKind, PolicyViolation, RolloutPolicy};
use crate::store::{GateOutcomeRecord, RolloutDetails, RolloutFilter};

use super::super::ControlPlane;
use super::super::access;
use super::super::error::{Error, Result};

impl ControlPlane {
    /// Sets (`Some`) or removes a stack's rollout policy; it applies to deployment
    /// objects appended afterwards. `Invalid` (`invalid_rollout_policy`) lists every
    /// rule the policy breaks.
    pub async fn set_rollout_policy(
        &self,
        caller: &Actor,
        stack: StackId,
        policy: Option<RolloutPolicy>,
    ) -> Result<Option<RolloutPolicy>> {
        self.visible_stack(caller, stack).await?;
        if let Some(policy) = &policy {
            self.check_rollout_policy(policy)?;
        }
        self.store()
            .set_rollout_policy(caller, stack, policy.clone())
            .await?;
        Ok(policy)
    }

    /// A stack's rollout policy (`None`: new objects reach every agent at once).
    pub async fn rollout_policy(
        &self,
        caller: &Actor,
        stack: StackId,
    ) -> Result<Option<RolloutPolicy>> {
        self.visible_stack(caller, stack).await?;
        Ok(self.store().rollout_policy(stack).await?)
    }

    /// A stack's rollouts, in the page's order (descending: newest first).
    pub async fn list_rollouts(
        &self,
        caller: &Actor,
        stack: StackId,
        page: &PageRequest,
    ) -> Result<Page<Rollout>> {
        self.check_stack_history(caller, stack).await?;
        let filter = RolloutFilter {
            stack_id: Some(stack),
            state: None,
        };
        Ok(self.store().list_rollouts(&filter, page).await?)
    }

    /// A rollout with its waves, agents, gate evaluations and commands.
    pub async fn get_rollout(&self, caller: &Actor, id: RolloutId) -> Result<RolloutDetails> {
        access::require_admin_or_generator(caller)?;
        let details = self.store().rollout_details(id).await?;
        self.check_rollout_access(caller, &details.rollout).await?;
        Ok(details)
    }

    /// Gives a rollout a command for its next evaluation (within the driver's poll):
    /// pause, resume, abort, promote (admin only), retry the failed wave. What it did
    /// shows in the rollout's commands. `Conflict` for a finished rollout.
    pub async fn command_rollout(
        &self,
        caller: &Actor,
        id: RolloutId,
        kind: RolloutCommandKind,
    ) -> Result<RolloutCommand> {
        if kind == RolloutCommandKind::Promote {
            access::require_admin(caller)?;
        }
        access::require_admin_or_generator(caller)?;
        let rollout = self.store().get_rollout(id).await?;
        self.check_rollout_access(caller, &rollout).await?;
        Ok(self.store().give_rollout_command(caller, id, kind).await?)
    }

    /// Approves a wave: passes the approval gates the wave waits for. `Conflict`
    /// (`no_approval_pending`) when the wave waits for no approval now.
    pub async fn approve_rollout_wave(
        &self,
        caller: &Actor,
        id: RolloutId,
        wave: u32,
    ) -> Result<Vec<GateEvaluation>> {
        access::require_admin_or_generator(caller)?;
        let details = self.store().rollout_details(id).await?;
        self.check_rollout_access(caller, &details.rollout).await?;
        let approvals: Vec<&GateEvaluation> = details
            .gate_evaluations
            .iter()
            .filter(|evaluation| evaluation.wave == wave && evaluation.outcome.is_none())
            .filter(|evaluation| {
                details
                    .rollout
                    .policy
                    .gates
                    .iter()
                    .any(|gate| gate.name == evaluation.gate && gate.kind == GateKind::Approval)
            })
            .collect();
        if approvals.is_empty() {
            return Err(Error::Store(crate::store::Error::Conflict(format!(
                "no_approval_pending: wave {wave} of rollout {id} waits for no approval"
            ))));
        }
        let mut approved = Vec::with_capacity(approvals.len());
        for evaluation in approvals {
            let record = GateOutcomeRecord {
                outcome: GateOutcome::Pass,
                reason: Some(format!("approved by {}", access::role(caller))),
                recheck_at: None,
                decided_by: Some(*caller),
                at: chrono::Utc::now(),
            };
            approved.push(
                self.store()
                    .record_gate_outcome(evaluation.id, record)
                    .await?,
            );
        }
        Ok(approved)
    }

    /// A generator sees the rollouts of its own stacks only; another's are
    /// `NotFound` to it.
    async fn check_rollout_access(&self, caller: &Actor, rollout: &Rollout) -> Result<()> {
        match self.check_stack_history(caller, rollout.stack_id).await {
            Err(Error::Store(crate::store::Error::NotFound { .. })) => {
                Err(Error::not_found("rollout", rollout.id))
            }
            other => other,
        }
    }

    /// The policy's own rules, then what only the control plane knows: the webhook
    /// allowlist and the registered custom gates.
    fn check_rollout_policy(&self, policy: &RolloutPolicy) -> Result<()> {
        let mut violations = policy.validate().err().unwrap_or_default();
        for (index, gate) in policy.gates.iter().enumerate() {
            match gate.kind {
                GateKind::Webhook => {
                    if self.inner.webhook_gate.is_none() {
                        violations.push(PolicyViolation {
                            path: format!("/gates/{index}/type"),
                            code: "webhook_gates_not_configured",
                            message: "this control plane has no webhook gate".into(),
                        });
                    } else if let Some(url) = &gate.url
                        && let Err(err) = self.check_url(url)
                    {
                        violations.push(PolicyViolation {
                            path: format!("/gates/{index}/url"),
                            code: "url_not_allowed",
                            message: err.to_string(),
                        });
                    }
                }
                GateKind::Custom => {
                    if let Some(name) = &gate.custom
                        && self.inner.gates.get(name).is_none()
                    {
                        violations.push(PolicyViolation {
                            path: format!("/gates/{index}/custom"),
                            code: "unknown_gate",
                            message: format!("no gate named {name:?} is registered"),
                        });
                    }
                }
                GateKind::Approval => {}
            }
        }
        if violations.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidRolloutPolicy(violations))
        }
    }
}
