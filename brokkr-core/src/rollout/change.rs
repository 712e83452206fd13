//! What one evaluation decided: the rows to write and the transitions to audit,
//! applied by [`RolloutStore::apply_rollout_change`](crate::store::RolloutStore::apply_rollout_change)
//! in one transaction guarded by the rollout's version.

use chrono::{DateTime, Utc};

use crate::id::{AgentId, GateEvaluationId, RolloutCommandId, RolloutId};
use crate::model::{RolloutAgent, RolloutState, RolloutWave, WaveState};

use super::GatePhase;

/// The outcome of one evaluation of a rollout. Applied only if the rollout's version is
/// still `expected_version`; the store then bumps it.
#[derive(Debug, Clone, PartialEq)]
pub struct RolloutChange {
    /// The rollout.
    pub rollout_id: RolloutId,
    /// The version the evaluation read.
    pub expected_version: i64,
    /// The evaluation's time: every timestamp written is this.
    pub at: DateTime<Utc>,
    /// The rollout's state after the change.
    pub state: RolloutState,
    /// Why, or what holds it.
    pub state_reason: Option<String>,
    /// When it started running.
    pub started_at: Option<DateTime<Utc>>,
    /// When it must be reverted at the latest.
    pub deadline_at: Option<DateTime<Utc>>,
    /// When to evaluate again; `None` once final.
    pub next_eval_at: Option<DateTime<Utc>>,
    /// When it reached a final state.
    pub finished_at: Option<DateTime<Utc>>,
    /// Waves written whole: inserted, or replacing the wave with the same index.
    pub waves: Vec<RolloutWave>,
    /// Agents written whole: inserted, or replacing the row of the same agent.
    pub agents: Vec<RolloutAgent>,
    /// Agents to pin to the candidate (their target state names it from this commit).
    pub pin: Vec<AgentId>,
    /// Agents whose pin to remove (back to the release head).
    pub unpin: Vec<AgentId>,
    /// Remove every pin of the rollout (a revert, an end).
    pub unpin_all: bool,
    /// Move the stack's release head to the candidate (success); every pin of the
    /// rollout is removed with it.
    pub release: bool,
    /// Gate evaluations to write, outcome empty; the driver runs them after commit.
    pub start_gates: Vec<NewGateEvaluation>,
    /// Commands taken up, with what each did.
    pub consumed_commands: Vec<ConsumedCommand>,
    /// State changes, each audited once and sent as one webhook event.
    pub transitions: Vec<Transition>,
}

/// A gate evaluation to write before the gate runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewGateEvaluation {
    /// Its id (the webhook gate's delivery id).
    pub id: GateEvaluationId,
    /// The wave's index.
    pub wave: u32,
    /// The gate's name.
    pub gate: String,
    /// The phase it runs in.
    pub phase: GatePhase,
    /// 1, 2, ... per (wave, gate, phase).
    pub attempt: u32,
}

/// A command an evaluation took up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumedCommand {
    /// The command.
    pub id: RolloutCommandId,
    /// What it did, or why it did nothing.
    pub outcome: String,
}

/// One state change of the rollout or of one of its waves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Transition {
    /// The rollout moved.
    Rollout {
        /// From.
        from: RolloutState,
        /// To.
        to: RolloutState,
        /// Why.
        reason: Option<String>,
    },
    /// A wave moved.
    Wave {
        /// The wave's index.
        index: u32,
        /// From.
        from: WaveState,
        /// To.
        to: WaveState,
        /// Why.
        reason: Option<String>,
    },
}

impl Transition {
    /// The summary of its audit record, the same in every store:
    /// `rollout <id>: running -> paused (reason)`, `rollout <id>: wave 1 pending -> running`.
    pub fn summary(&self, rollout: RolloutId) -> String {
        match self {
            Self::Rollout { from, to, reason } => {
                transition_summary(rollout, *from, *to, reason.as_deref())
            }
            Self::Wave {
                index,
                from,
                to,
                reason,
            } => format!(
                "rollout {rollout}: wave {index} {} -> {}{}",
                from.as_str(),
                to.as_str(),
                because(reason.as_deref())
            ),
        }
    }
}

/// The audit summary of a rollout's move from `from` to `to` (see
/// [`Transition::summary`]), for the stores' own transitions (an append that queues,
/// supersedes or cancels).
pub fn transition_summary(
    rollout: RolloutId,
    from: RolloutState,
    to: RolloutState,
    reason: Option<&str>,
) -> String {
    format!(
        "rollout {rollout}: {} -> {}{}",
        from.as_str(),
        to.as_str(),
        because(reason)
    )
}

fn because(reason: Option<&str>) -> String {
    reason.map(|r| format!(" ({r})")).unwrap_or_default()
}
