//! What one evaluation of a rollout sees: the rollout's rows and, for every agent of
//! the stack or of the rollout, what it last reported. Loaded by
//! [`RolloutStore::rollout_snapshot`](crate::store::RolloutStore::rollout_snapshot) in
//! one read; [`step`](super::step) decides from it alone.

use chrono::{DateTime, Utc};

use crate::health::HealthStatus;
use crate::id::{AgentId, DeploymentObjectId};
use crate::metadata::Labels;
use crate::model::{
    EventStatus, GateEvaluation, Rollout, RolloutAgent, RolloutCommand, RolloutWave,
};

/// One rollout as of one read.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutSnapshot {
    /// The rollout (its `version` is what a change must name).
    pub rollout: Rollout,
    /// Its waves by index; empty until it starts.
    pub waves: Vec<RolloutWave>,
    /// Its agents by agent id; empty until it starts.
    pub agents: Vec<RolloutAgent>,
    /// Every agent the stack is placed on now, and every agent of the rollout, by
    /// agent id, with what it reported.
    pub fleet: Vec<AgentView>,
    /// Every gate evaluation of the rollout, oldest first.
    pub gate_evaluations: Vec<GateEvaluation>,
    /// Commands not yet taken up, oldest first.
    pub commands: Vec<RolloutCommand>,
    /// For a queued rollout: whether no other rollout of the stack is active, so it
    /// may start.
    pub slot_free: bool,
}

/// One agent as an evaluation sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentView {
    /// The agent.
    pub agent_id: AgentId,
    /// Its name, for waves that list agents by name.
    pub name: String,
    /// Its labels, for `match_labels` and `group_by`.
    pub labels: Labels,
    /// Whether the stack is placed on it now (an assigned target, not removed, the
    /// agent not deleted).
    pub placed: bool,
    /// Its latest heartbeat; staleness is judged against the evaluation's time.
    pub last_heartbeat: Option<DateTime<Utc>>,
    /// Its latest event for the candidate.
    pub candidate_event: Option<ObservedEvent>,
    /// Its latest event for the baseline.
    pub baseline_event: Option<ObservedEvent>,
    /// Its latest health report for the stack, whichever object it was about.
    pub health: Option<ObservedHealth>,
}

/// An agent event as an evaluation sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObservedEvent {
    /// Success or failure.
    pub status: EventStatus,
    /// When the store recorded it (server time).
    pub at: DateTime<Utc>,
}

/// A health report as an evaluation sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ObservedHealth {
    /// The object the agent had applied.
    pub deployment_object_id: DeploymentObjectId,
    /// Its status.
    pub status: HealthStatus,
    /// When it was reported.
    pub at: DateTime<Utc>,
}
