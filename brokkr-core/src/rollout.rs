//! Progressive rollouts, pure: a stack's [`RolloutPolicy`], what one evaluation of a
//! rollout sees ([`RolloutSnapshot`]) and decides ([`RolloutChange`]), and the
//! [`Gate`]s it asks; [`webhook_gate`] holds the webhook gate's rules (body, signature,
//! verdicts). No I/O: the store loads snapshots and applies changes; the
//! runtime's driver claims due rollouts, steps them and runs their gates.
//!
//! Agents stay pull-based: a rollout only changes which deployment object each
//! agent's target state names, by pinning agents to the candidate wave by wave while
//! the rest keep the stack's release head (the baseline).

mod change;
mod gate;
mod policy;
mod snapshot;
mod step;
mod validate;
mod waves;
pub mod webhook_gate;

pub use change::{
    ConsumedCommand, NewGateEvaluation, RolloutChange, Transition, transition_summary,
};
pub use gate::{
    AgentOutcome, DeploymentObjectRef, Gate, GateContext, GateError, GateFuture, GateRegistry,
    GateVerdict, StackRef, WaveRef,
};
pub use policy::{
    BadQuantity, BadSpan, GateKind, GatePhase, GateSpec, OfflineAgents, OnFailure, OnGateError,
    OnNewVersion, Quantity, RolloutPolicy, Span, WaveSelect, WaveSpec,
};
pub use snapshot::{AgentView, ObservedEvent, ObservedHealth, RolloutSnapshot};
pub use step::{
    CONTINUOUS_GATE_INTERVAL, DEFAULT_ERROR_LIMIT, GATE_ERROR_RETRY, GATE_PAUSE_RECHECK,
    GATE_WAIT_DEFAULT, IDLE_RECHECK, OFFLINE_RECHECK, QUEUED_RECHECK, step,
};
pub use validate::{
    MAX_GATE_TIMEOUT, MAX_GATES, MAX_LISTED_AGENTS, MAX_SPAN, MAX_WAVES, PolicyViolation,
    RESERVED_WAVE_NAMES,
};
pub use waves::{IMPLICIT_WAVE, LATE_WAVE, WavePlan, plan_waves};
