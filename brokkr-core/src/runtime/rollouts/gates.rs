//! Running the gate evaluations a step started: each webhook or custom evaluation
//! without an outcome is asked, bounded by its gate's timeout, and its outcome
//! recorded. Approvals are never run: an operator's approval records them.

use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::id::DeploymentObjectId;
use crate::model::{GateEvaluation, GateOutcome};
use crate::rollout::{
    AgentOutcome, DeploymentObjectRef, Gate, GateContext, GateKind, GateSpec, GateVerdict,
    RolloutSnapshot, StackRef, WaveRef, webhook_gate,
};
use crate::store::GateOutcomeRecord;

use super::super::ControlPlane;
use super::super::error::{ErrorChain, Result};

impl ControlPlane {
    /// Runs every evaluation of `snapshot` that has no outcome and that a gate
    /// answers (webhook, custom), concurrently, and records each outcome. Answers how
    /// many it recorded.
    pub(super) async fn run_pending_gates(&self, snapshot: &RolloutSnapshot) -> Result<usize> {
        let pending: Vec<(&GateEvaluation, &GateSpec)> = snapshot
            .gate_evaluations
            .iter()
            .filter(|evaluation| evaluation.outcome.is_none())
            .filter_map(|evaluation| {
                let spec = snapshot
                    .rollout
                    .policy
                    .gates
                    .iter()
                    .find(|gate| gate.name == evaluation.gate)?;
                (spec.kind != GateKind::Approval).then_some((evaluation, spec))
            })
            .collect();
        if pending.is_empty() {
            return Ok(0);
        }
        let refs = self.gate_refs(snapshot).await?;
        let runs = pending.iter().map(|(evaluation, spec)| {
            let cx = gate_context(snapshot, &refs, evaluation, spec);
            self.run_gate(cx)
        });
        let records = futures::future::join_all(runs).await;
        let mut recorded = 0;
        for ((evaluation, _), record) in pending.iter().zip(records) {
            self.store()
                .record_gate_outcome(evaluation.id, record)
                .await?;
            recorded += 1;
        }
        Ok(recorded)
    }

    /// Asks the gate `cx.spec` names, within its timeout; an error, a timeout or a
    /// missing gate is an `Error` outcome, never a failure.
    async fn run_gate(&self, cx: GateContext) -> GateOutcomeRecord {
        // Every gate by the webhook gate's rule: 10 s unless the spec says, at most 60 s.
        let timeout = webhook_gate::timeout(&cx.spec);
        let verdict = match self.gate_for(&cx.spec) {
            Err(message) => Err(message),
            Ok(gate) => match tokio::time::timeout(timeout, gate.evaluate(&cx)).await {
                Ok(Ok(verdict)) => Ok(verdict),
                Ok(Err(err)) => Err(err.0),
                Err(_) => Err(format!("no answer within {}s", timeout.as_secs_f64())),
            },
        };
        let at = Utc::now();
        match verdict {
            Ok(verdict) => {
                tracing::info!(rollout = %cx.rollout_id, gate = %cx.spec.name, wave = cx.wave.index, attempt = cx.attempt, ?verdict, "gate answered");
                verdict_record(verdict, at)
            }
            Err(reason) => {
                tracing::warn!(rollout = %cx.rollout_id, gate = %cx.spec.name, wave = cx.wave.index, attempt = cx.attempt, %reason, "gate could not answer");
                record(GateOutcome::Error, Some(reason), None, at)
            }
        }
    }

    fn gate_for(&self, spec: &GateSpec) -> std::result::Result<Arc<dyn Gate>, String> {
        match spec.kind {
            GateKind::Webhook => self
                .inner
                .webhook_gate
                .clone()
                .ok_or_else(|| "this control plane has no webhook gate".to_owned()),
            GateKind::Custom => {
                let name = spec.custom.as_deref().unwrap_or_default();
                self.inner
                    .gates
                    .get(name)
                    .cloned()
                    .ok_or_else(|| format!("no gate named {name:?} is registered"))
            }
            GateKind::Approval => Err("approvals are given, not asked".to_owned()),
        }
    }

    /// The stack and objects every gate of the rollout is told about, read once.
    async fn gate_refs(&self, snapshot: &RolloutSnapshot) -> Result<GateRefs> {
        let rollout = &snapshot.rollout;
        let stack = self.store().get_stack(rollout.stack_id).await?;
        let candidate = self.object_ref(rollout.candidate).await?;
        let baseline = match rollout.baseline {
            Some(id) => match self.object_ref(id).await {
                Ok(found) => Some(found),
                Err(err) => {
                    tracing::warn!(error = %ErrorChain(&err), baseline = %id, "baseline unreadable for a gate");
                    None
                }
            },
            None => None,
        };
        Ok(GateRefs {
            stack: StackRef {
                id: stack.id,
                name: stack.name,
            },
            candidate,
            baseline,
        })
    }

    async fn object_ref(&self, id: DeploymentObjectId) -> Result<DeploymentObjectRef> {
        let object = self.store().get_deployment_object(id).await?;
        Ok(DeploymentObjectRef {
            id: object.id,
            sequence_id: object.sequence,
            checksum: object.yaml_checksum,
        })
    }
}

/// What every gate of one rollout is told about the stack and the objects.
struct GateRefs {
    stack: StackRef,
    candidate: DeploymentObjectRef,
    baseline: Option<DeploymentObjectRef>,
}

/// The context of one evaluation: its wave's agents with their state and their
/// health on the candidate.
fn gate_context(
    snapshot: &RolloutSnapshot,
    refs: &GateRefs,
    evaluation: &GateEvaluation,
    spec: &GateSpec,
) -> GateContext {
    let rollout = &snapshot.rollout;
    let wave_name = snapshot
        .waves
        .iter()
        .find(|wave| wave.index == evaluation.wave)
        .map_or_else(
            || format!("wave-{}", evaluation.wave),
            |wave| wave.name.clone(),
        );
    let agents = snapshot
        .agents
        .iter()
        .filter(|agent| agent.wave == evaluation.wave)
        .map(|agent| {
            let view = snapshot
                .fleet
                .binary_search_by_key(&agent.agent_id, |view| view.agent_id)
                .ok()
                .map(|at| &snapshot.fleet[at]);
            AgentOutcome {
                id: agent.agent_id,
                name: view.map(|view| view.name.clone()).unwrap_or_default(),
                labels: view.map(|view| view.labels.clone()).unwrap_or_default(),
                state: agent.state,
                health: view
                    .and_then(|view| view.health)
                    .filter(|health| health.deployment_object_id == rollout.candidate)
                    .map(|health| health.status),
                reason: agent.reason.clone(),
            }
        })
        .collect();
    GateContext {
        evaluation_id: evaluation.id,
        rollout_id: rollout.id,
        stack: refs.stack.clone(),
        candidate: refs.candidate.clone(),
        baseline: refs.baseline.clone(),
        wave: WaveRef {
            index: evaluation.wave,
            name: wave_name,
        },
        phase: evaluation.phase,
        attempt: evaluation.attempt,
        agents,
        spec: spec.clone(),
        now: Utc::now(),
    }
}

fn verdict_record(verdict: GateVerdict, at: DateTime<Utc>) -> GateOutcomeRecord {
    match verdict {
        GateVerdict::Pass => record(GateOutcome::Pass, None, None, at),
        GateVerdict::Fail { reason } => record(GateOutcome::Fail, Some(reason), None, at),
        GateVerdict::Wait {
            reason,
            recheck_after,
        } => {
            let recheck = chrono::Duration::from_std(recheck_after)
                .unwrap_or(chrono::Duration::MAX)
                .min(chrono::Duration::hours(1));
            record(GateOutcome::Wait, Some(reason), Some(at + recheck), at)
        }
        GateVerdict::Pause { reason } => record(GateOutcome::Pause, Some(reason), None, at),
    }
}

fn record(
    outcome: GateOutcome,
    reason: Option<String>,
    recheck_at: Option<DateTime<Utc>>,
    at: DateTime<Utc>,
) -> GateOutcomeRecord {
    GateOutcomeRecord {
        outcome,
        reason,
        recheck_at,
        decided_by: None,
        at,
    }
}
