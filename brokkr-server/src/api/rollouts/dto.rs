//! What the rollout operations send and receive (the policy is in `policy_dto.rs`).

use brokkr_core::model::{
    Actor, GateEvaluation, Rollout, RolloutAgent, RolloutCommand, RolloutWave,
};
use brokkr_core::store::RolloutDetails;
use chrono::{DateTime, Utc};
use poem_openapi::Object;
use uuid::Uuid;

use super::policy_dto::RolloutPolicyDto;
use crate::page_type;

/// One rollout: a candidate deployment object's way through its stack's waves.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "Rollout")]
pub struct RolloutDto {
    /// Its id.
    pub id: Uuid,
    /// The stack.
    pub stack_id: Uuid,
    /// The deployment object being rolled out.
    pub candidate_deployment_object_id: Uuid,
    /// What agents run until pinned and go back to on revert; absent for a stack's
    /// first object.
    #[oai(skip_serializing_if_is_none)]
    pub baseline_deployment_object_id: Option<Uuid>,
    /// `queued`, `running`, `paused`, `halted`, `reverting`, `succeeded`, `reverted`,
    /// `revert_failed`, `superseded` or `cancelled`.
    pub state: String,
    /// Why it is in that state, or what holds it.
    #[oai(skip_serializing_if_is_none)]
    pub state_reason: Option<String>,
    /// The stack's policy when the rollout was created.
    pub policy: RolloutPolicyDto,
    /// Bumped by every change.
    pub version: i64,
    /// Who appended the candidate (`admin`, `generator:<id>`, `system`).
    pub created_by: String,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it started running.
    #[oai(skip_serializing_if_is_none)]
    pub started_at: Option<DateTime<Utc>>,
    /// When it is reverted at the latest.
    #[oai(skip_serializing_if_is_none)]
    pub deadline_at: Option<DateTime<Utc>>,
    /// When it is evaluated next.
    #[oai(skip_serializing_if_is_none)]
    pub next_eval_at: Option<DateTime<Utc>>,
    /// When it reached its final state.
    #[oai(skip_serializing_if_is_none)]
    pub finished_at: Option<DateTime<Utc>>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<Rollout> for RolloutDto {
    fn from(r: Rollout) -> Self {
        Self {
            id: r.id.into(),
            stack_id: r.stack_id.into(),
            candidate_deployment_object_id: r.candidate.into(),
            baseline_deployment_object_id: r.baseline.map(Into::into),
            state: r.state.as_str().to_owned(),
            state_reason: r.state_reason,
            policy: r.policy.into(),
            version: r.version,
            created_by: actor(&r.created_by),
            created_at: r.created_at,
            started_at: r.started_at,
            deadline_at: r.deadline_at,
            next_eval_at: r.next_eval_at,
            finished_at: r.finished_at,
            updated_at: r.updated_at,
        }
    }
}

page_type!(
    /// A page of rollouts.
    RolloutPage,
    RolloutDto
);

/// One wave of a rollout.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "RolloutWave")]
pub struct RolloutWaveDto {
    /// Its position, from 0.
    pub index: u32,
    /// Its name (`eu/zone=a`, `eu#2` for cut waves, `implicit`, `late`).
    pub name: String,
    /// The policy wave it came from.
    #[oai(skip_serializing_if_is_none)]
    pub spec: Option<String>,
    /// Failed agents it tolerates.
    pub max_failures: u32,
    /// `pending`, `gating`, `running`, `baking`, `verifying`, `succeeded` or `failed`.
    pub state: String,
    /// When it started.
    #[oai(skip_serializing_if_is_none)]
    pub started_at: Option<DateTime<Utc>>,
    /// Since when all its agents have been healthy on the candidate.
    #[oai(skip_serializing_if_is_none)]
    pub all_healthy_since: Option<DateTime<Utc>>,
    /// Promoted by an admin: bake and after-wave gates skipped.
    pub promoted: bool,
    /// Why it is in its state.
    #[oai(skip_serializing_if_is_none)]
    pub reason: Option<String>,
    /// When it ended.
    #[oai(skip_serializing_if_is_none)]
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<RolloutWave> for RolloutWaveDto {
    fn from(w: RolloutWave) -> Self {
        Self {
            index: w.index,
            name: w.name,
            spec: w.spec,
            max_failures: w.max_failures,
            state: w.state.as_str().to_owned(),
            started_at: w.started_at,
            all_healthy_since: w.all_healthy_since,
            promoted: w.promoted,
            reason: w.reason,
            finished_at: w.finished_at,
        }
    }
}

/// One agent of a rollout.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "RolloutAgent")]
pub struct RolloutAgentDto {
    /// The agent.
    pub agent_id: Uuid,
    /// Its wave's index.
    pub wave: u32,
    /// `waiting`, `pinned`, `applied`, `healthy`, `skipped`, `failed`, `timed_out`,
    /// `removed`, `reverted` or `reverted_ok`.
    pub state: String,
    /// When it was pinned to the candidate.
    #[oai(skip_serializing_if_is_none)]
    pub pinned_at: Option<DateTime<Utc>>,
    /// Since when it has been healthy on the candidate.
    #[oai(skip_serializing_if_is_none)]
    pub healthy_since: Option<DateTime<Utc>>,
    /// Why it is in its state.
    #[oai(skip_serializing_if_is_none)]
    pub reason: Option<String>,
    /// When its state last changed.
    pub updated_at: DateTime<Utc>,
}

impl From<RolloutAgent> for RolloutAgentDto {
    fn from(a: RolloutAgent) -> Self {
        Self {
            agent_id: a.agent_id.into(),
            wave: a.wave,
            state: a.state.as_str().to_owned(),
            pinned_at: a.pinned_at,
            healthy_since: a.healthy_since,
            reason: a.reason,
            updated_at: a.updated_at,
        }
    }
}

/// One evaluation of one gate.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "GateEvaluation")]
pub struct GateEvaluationDto {
    /// Its id (a webhook gate's `X-Brokkr-Delivery`).
    pub id: Uuid,
    /// The wave's index.
    pub wave: u32,
    /// The gate's name.
    pub gate: String,
    /// `before_wave`, `after_wave` or `continuous`.
    pub phase: String,
    /// 1, 2, ... for this gate, wave and phase.
    pub attempt: u32,
    /// `pass`, `fail`, `wait`, `pause` or `error`; absent while it runs (or, for an
    /// approval, until someone approves).
    #[oai(skip_serializing_if_is_none)]
    pub outcome: Option<String>,
    /// What the gate said, or its error.
    #[oai(skip_serializing_if_is_none)]
    pub reason: Option<String>,
    /// `wait`: when it is asked again.
    #[oai(skip_serializing_if_is_none)]
    pub recheck_at: Option<DateTime<Utc>>,
    /// Who approved.
    #[oai(skip_serializing_if_is_none)]
    pub decided_by: Option<String>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// When its outcome was written.
    #[oai(skip_serializing_if_is_none)]
    pub finished_at: Option<DateTime<Utc>>,
}

impl From<GateEvaluation> for GateEvaluationDto {
    fn from(g: GateEvaluation) -> Self {
        Self {
            id: g.id.into(),
            wave: g.wave,
            gate: g.gate,
            phase: phase_name(g.phase).to_owned(),
            attempt: g.attempt,
            outcome: g.outcome.map(|o| o.as_str().to_owned()),
            reason: g.reason,
            recheck_at: g.recheck_at,
            decided_by: g.decided_by.as_ref().map(actor),
            started_at: g.started_at,
            finished_at: g.finished_at,
        }
    }
}

/// A command given to a rollout.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "RolloutCommand")]
pub struct RolloutCommandDto {
    /// Its id.
    pub id: Uuid,
    /// `pause`, `resume`, `abort`, `promote` or `retry_wave`.
    pub command: String,
    /// Who gave it.
    pub actor: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// When an evaluation took it up; absent until then (within the driver's poll).
    #[oai(skip_serializing_if_is_none)]
    pub consumed_at: Option<DateTime<Utc>>,
    /// What it did, or why it did nothing.
    #[oai(skip_serializing_if_is_none)]
    pub outcome: Option<String>,
}

impl From<RolloutCommand> for RolloutCommandDto {
    fn from(c: RolloutCommand) -> Self {
        Self {
            id: c.id.into(),
            command: c.kind.as_str().to_owned(),
            actor: actor(&c.actor),
            created_at: c.created_at,
            consumed_at: c.consumed_at,
            outcome: c.outcome,
        }
    }
}

/// A rollout with its waves, agents, gate evaluations and commands.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "RolloutDetails")]
pub struct RolloutDetailsDto {
    /// The rollout.
    pub rollout: RolloutDto,
    /// Its waves, in order.
    pub waves: Vec<RolloutWaveDto>,
    /// Its agents.
    pub agents: Vec<RolloutAgentDto>,
    /// Its gate evaluations, oldest first.
    pub gate_evaluations: Vec<GateEvaluationDto>,
    /// Its commands, oldest first.
    pub commands: Vec<RolloutCommandDto>,
}

impl From<RolloutDetails> for RolloutDetailsDto {
    fn from(d: RolloutDetails) -> Self {
        Self {
            rollout: d.rollout.into(),
            waves: d.waves.into_iter().map(Into::into).collect(),
            agents: d.agents.into_iter().map(Into::into).collect(),
            gate_evaluations: d.gate_evaluations.into_iter().map(Into::into).collect(),
            commands: d.commands.into_iter().map(Into::into).collect(),
        }
    }
}

/// Body of `POST /rollouts/{id}/approve`.
#[derive(Debug, Clone, Object)]
pub struct ApproveRequest {
    /// The index of the wave whose approval gates pass.
    pub wave: u32,
}

/// An actor as text: `admin`, `system`, `generator:<id>`, `agent:<id>`.
fn actor(actor: &Actor) -> String {
    match actor {
        Actor::Admin => "admin".into(),
        Actor::System => "system".into(),
        Actor::Generator(id) => format!("generator:{id}"),
        Actor::Agent(id) => format!("agent:{id}"),
    }
}

fn phase_name(phase: brokkr_core::rollout::GatePhase) -> &'static str {
    use brokkr_core::rollout::GatePhase;
    match phase {
        GatePhase::BeforeWave => "before_wave",
        GatePhase::AfterWave => "after_wave",
        GatePhase::Continuous => "continuous",
    }
}
