//! Rollout rows to domain types and back, and the state lists the rollout queries
//! repeat (the same text as the partial indexes of migration m0009, so that both
//! planners use them).

use brokkr_core::rollout::GatePhase;
use brokkr_core::store::{Error, Result};
use brokkr_core::{
    Actor, ActorKind, GateEvaluation, GateOutcome, Rollout, RolloutAgent, RolloutAgentState,
    RolloutCommand, RolloutCommandKind, RolloutState, RolloutWave, WaveState,
};
use uuid::Uuid;

use crate::convert::{from_json, to_json};
use crate::entity::{gate_evaluations, rollout_agents, rollout_commands, rollout_waves, rollouts};
use crate::errors::corrupt;

/// `state IN (...)` of the rollouts holding their stack's one active slot
/// (`ux_rollouts_active_stack`).
pub(crate) const ACTIVE: &str = "state IN ('running', 'paused', 'halted', 'reverting')";

/// `state IN (...)` of the rollouts not final yet, queued or active
/// (`ix_rollouts_open_stack`).
pub(crate) const OPEN: &str = "state IN ('queued', 'running', 'paused', 'halted', 'reverting')";

fn parse<T>(what: &str, text: &str, parse: impl Fn(&str) -> Option<T>) -> Result<T> {
    parse(text).ok_or_else(|| corrupt(what, text))
}

/// A wave index or count as stored (a 32-bit integer).
pub(crate) fn stored_u32(what: &str, value: u32) -> Result<i32> {
    i32::try_from(value).map_err(|_| Error::Invalid(format!("{what} {value} is too large")))
}

fn read_u32(what: &str, value: i32) -> Result<u32> {
    u32::try_from(value).map_err(|_| corrupt(what, value))
}

/// An actor from its stored parts.
pub(crate) fn actor(kind: &str, id: Option<Uuid>) -> Result<Actor> {
    let kind = parse("actor kind", kind, ActorKind::parse)?;
    Actor::from_parts(kind, id).ok_or_else(|| corrupt("actor", kind.as_str()))
}

pub(crate) fn rollout_state(text: &str) -> Result<RolloutState> {
    parse("rollout state", text, RolloutState::parse)
}

/// A gate phase's stored name.
pub(crate) fn phase_name(phase: GatePhase) -> &'static str {
    match phase {
        GatePhase::BeforeWave => "before_wave",
        GatePhase::AfterWave => "after_wave",
        GatePhase::Continuous => "continuous",
    }
}

fn phase(text: &str) -> Result<GatePhase> {
    [
        GatePhase::BeforeWave,
        GatePhase::AfterWave,
        GatePhase::Continuous,
    ]
    .into_iter()
    .find(|p| phase_name(*p) == text)
    .ok_or_else(|| corrupt("gate phase", text))
}

pub(crate) fn rollout(m: rollouts::Model) -> Result<Rollout> {
    Ok(Rollout {
        id: m.id.into(),
        stack_id: m.stack_id.into(),
        candidate: m.candidate_deployment_object_id.into(),
        baseline: m.baseline_deployment_object_id.map(Into::into),
        policy: from_json("rollout policy", m.policy)?,
        created_by: actor(&m.created_by_kind, m.created_by_id)?,
        created_at: m.created_at,
        state: rollout_state(&m.state)?,
        state_reason: m.state_reason,
        version: m.version,
        started_at: m.started_at,
        deadline_at: m.deadline_at,
        next_eval_at: m.next_eval_at,
        finished_at: m.finished_at,
        updated_at: m.updated_at,
    })
}

/// The row of a rollout an append queues.
pub(crate) fn rollout_row(r: &Rollout) -> rollouts::Model {
    rollouts::Model {
        id: r.id.0,
        stack_id: r.stack_id.0,
        candidate_deployment_object_id: r.candidate.0,
        baseline_deployment_object_id: r.baseline.map(|b| b.0),
        policy: to_json(&r.policy),
        created_by_kind: r.created_by.kind().as_str().to_owned(),
        created_by_id: r.created_by.id(),
        created_at: r.created_at,
        state: r.state.as_str().to_owned(),
        state_reason: r.state_reason.clone(),
        version: r.version,
        started_at: r.started_at,
        deadline_at: r.deadline_at,
        next_eval_at: r.next_eval_at,
        finished_at: r.finished_at,
        updated_at: r.updated_at,
        lease_owner: None,
        lease_until: None,
        signalled: false,
    }
}

pub(crate) fn wave(m: rollout_waves::Model) -> Result<RolloutWave> {
    Ok(RolloutWave {
        index: read_u32("wave index", m.idx)?,
        name: m.name,
        spec: m.spec,
        max_failures: read_u32("max failures", m.max_failures)?,
        state: parse("wave state", &m.state, WaveState::parse)?,
        started_at: m.started_at,
        all_healthy_since: m.all_healthy_since,
        promoted: m.promoted,
        reason: m.reason,
        finished_at: m.finished_at,
    })
}

pub(crate) fn wave_row(rollout: Uuid, w: &RolloutWave) -> Result<rollout_waves::Model> {
    Ok(rollout_waves::Model {
        rollout_id: rollout,
        idx: stored_u32("wave index", w.index)?,
        name: w.name.clone(),
        spec: w.spec.clone(),
        max_failures: stored_u32("max failures", w.max_failures)?,
        state: w.state.as_str().to_owned(),
        started_at: w.started_at,
        all_healthy_since: w.all_healthy_since,
        promoted: w.promoted,
        reason: w.reason.clone(),
        finished_at: w.finished_at,
    })
}

pub(crate) fn rollout_agent(m: rollout_agents::Model) -> Result<RolloutAgent> {
    Ok(RolloutAgent {
        agent_id: m.agent_id.into(),
        wave: read_u32("wave index", m.wave_idx)?,
        state: parse("rollout agent state", &m.state, RolloutAgentState::parse)?,
        pinned_at: m.pinned_at,
        healthy_since: m.healthy_since,
        unhealthy_since: m.unhealthy_since,
        reason: m.reason,
        updated_at: m.updated_at,
    })
}

pub(crate) fn agent_row(rollout: Uuid, a: &RolloutAgent) -> Result<rollout_agents::Model> {
    Ok(rollout_agents::Model {
        rollout_id: rollout,
        agent_id: a.agent_id.0,
        wave_idx: stored_u32("wave index", a.wave)?,
        state: a.state.as_str().to_owned(),
        pinned_at: a.pinned_at,
        healthy_since: a.healthy_since,
        unhealthy_since: a.unhealthy_since,
        reason: a.reason.clone(),
        updated_at: a.updated_at,
    })
}

pub(crate) fn gate_evaluation(m: gate_evaluations::Model) -> Result<GateEvaluation> {
    let decided_by = match &m.decided_by_kind {
        Some(kind) => Some(actor(kind, m.decided_by_id)?),
        None => None,
    };
    Ok(GateEvaluation {
        id: m.id.into(),
        rollout_id: m.rollout_id.into(),
        wave: read_u32("wave index", m.wave_idx)?,
        gate: m.gate,
        phase: phase(&m.phase)?,
        attempt: read_u32("gate attempt", m.attempt)?,
        outcome: m
            .outcome
            .as_deref()
            .map(|o| parse("gate outcome", o, GateOutcome::parse))
            .transpose()?,
        reason: m.reason,
        recheck_at: m.recheck_at,
        decided_by,
        started_at: m.started_at,
        finished_at: m.finished_at,
    })
}

pub(crate) fn command(m: rollout_commands::Model) -> Result<RolloutCommand> {
    Ok(RolloutCommand {
        id: m.id.into(),
        rollout_id: m.rollout_id.into(),
        kind: parse("rollout command", &m.kind, RolloutCommandKind::parse)?,
        actor: actor(&m.actor_kind, m.actor_id)?,
        created_at: m.created_at,
        consumed_at: m.consumed_at,
        outcome: m.outcome,
    })
}
