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
pub mod webhook_gate;

pub use change::{ConsumedCommand, NewGateEvaluation, RolloutChange, Transition};
pub use gate::{
    AgentOutcome, DeploymentObjectRef, Gate, GateContext, GateError, GateFuture, GateRegistry,
    GateVerdict, StackRef, WaveRef,
};
pub use policy::{
    BadQuantity, BadSpan, GateKind, GatePhase, GateSpec, OfflineAgents, OnFailure, OnGateError,
    OnNewVersion, Quantity, RolloutPolicy, Span, WaveSelect, WaveSpec,
};
pub use snapshot::{AgentView, ObservedEvent, ObservedHealth, RolloutSnapshot};
