//! Gates: checks a rollout passes before a wave starts, after it baked, or all along
//! (ROLLOUTS.md section 7). The health gate is built into [`step`](super::step);
//! approvals are operator commands; webhook gates and a control plane's own gates
//! implement [`Gate`] and run outside any transaction.

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::health::HealthStatus;
use crate::id::{AgentId, DeploymentObjectId, GateEvaluationId, RolloutId, StackId};
use crate::metadata::Labels;
use crate::model::RolloutAgentState;

use super::{GatePhase, GateSpec};

/// A gate's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum GateVerdict {
    /// Go on.
    Pass,
    /// The wave fails (and with `on_failure: revert`, the rollout reverts).
    Fail {
        /// Why, for people.
        reason: String,
    },
    /// Not yet: ask again after `recheck_after`.
    Wait {
        /// Why, for people.
        reason: String,
        /// When to ask again.
        recheck_after: Duration,
    },
    /// Pause the rollout until this gate passes or an operator resumes it.
    Pause {
        /// Why, for people.
        reason: String,
    },
}

/// A gate that could not answer: a timeout, a refused connection, a non-2xx answer,
/// a reply that is not a verdict. Never a failure by itself: `error_limit` errors in a
/// row apply the policy's `on_gate_error`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct GateError(pub String);

/// A stack as a gate sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StackRef {
    /// Its id.
    pub id: StackId,
    /// Its name.
    pub name: String,
}

/// A deployment object as a gate sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeploymentObjectRef {
    /// Its id.
    pub id: DeploymentObjectId,
    /// Its sequence in the stack.
    pub sequence_id: i64,
    /// The SHA-256 of its YAML.
    pub checksum: String,
}

/// A wave as a gate sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WaveRef {
    /// Its index.
    pub index: u32,
    /// Its name.
    pub name: String,
}

/// One agent of the wave as a gate sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AgentOutcome {
    /// Its id.
    pub id: AgentId,
    /// Its name.
    pub name: String,
    /// Its labels.
    pub labels: Labels,
    /// Where it stands in the rollout.
    pub state: RolloutAgentState,
    /// Its latest health on the candidate, if any.
    pub health: Option<HealthStatus>,
    /// Why it is in its state.
    pub reason: Option<String>,
}

/// Everything one gate evaluation is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GateContext {
    /// The evaluation (a webhook gate's delivery id; the same when it runs again).
    pub evaluation_id: GateEvaluationId,
    /// The rollout.
    pub rollout_id: RolloutId,
    /// The stack.
    pub stack: StackRef,
    /// What is being rolled out.
    pub candidate: DeploymentObjectRef,
    /// What agents go back to on revert.
    pub baseline: Option<DeploymentObjectRef>,
    /// The wave.
    pub wave: WaveRef,
    /// When it runs.
    pub phase: GatePhase,
    /// 1, 2, ... for this gate, wave and phase.
    pub attempt: u32,
    /// The wave's agents.
    pub agents: Vec<AgentOutcome>,
    /// The gate as the rollout's policy states it (URL, secret name, timeout).
    pub spec: GateSpec,
    /// The evaluation's time.
    pub now: DateTime<Utc>,
}

/// What [`Gate::evaluate`] returns.
pub type GateFuture<'a> = Pin<Box<dyn Future<Output = Result<GateVerdict, GateError>> + Send + 'a>>;

/// A gate a control plane brings: registered by name in a [`GateRegistry`], used by
/// policies as `{"type": "custom", "custom": "<name>"}`. The webhook gate implements it
/// too. An evaluation must end within the gate's timeout; the driver cuts it off there
/// and records an error.
pub trait Gate: Send + Sync + 'static {
    /// The name policies use.
    fn name(&self) -> &str;

    /// Judges the wave.
    fn evaluate<'a>(&'a self, cx: &'a GateContext) -> GateFuture<'a>;
}

/// The gates a control plane offers, by name.
#[derive(Clone, Default)]
pub struct GateRegistry {
    gates: BTreeMap<String, Arc<dyn Gate>>,
}

impl GateRegistry {
    /// No gates.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `gate` under its name, replacing a gate of the same name.
    pub fn register(&mut self, gate: Arc<dyn Gate>) -> &mut Self {
        self.gates.insert(gate.name().to_owned(), gate);
        self
    }

    /// The gate registered as `name`.
    pub fn get(&self, name: &str) -> Option<&Arc<dyn Gate>> {
        self.gates.get(name)
    }

    /// Every registered name, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.gates.keys().map(String::as_str)
    }
}

impl std::fmt::Debug for GateRegistry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.gates.keys()).finish()
    }
}
