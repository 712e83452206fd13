//! A stack's stored placement policy and decision.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::id::{AgentId, StackId};

/// A stack's placement policy and its stored decision.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StackPlacement {
    /// The stack.
    pub stack_id: StackId,
    /// Its policy.
    pub policy: crate::placement::PlacementPolicy,
    /// The latest decision; `None` until one was computed.
    pub decision: Option<crate::placement::PlacementDecision>,
    /// When the policy was last set.
    pub updated_at: DateTime<Utc>,
    /// When the decision was last stored.
    pub decided_at: Option<DateTime<Utc>>,
}

/// What storing a decision changed in the stack's targets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PlacementChange {
    /// Agents that received the stack (a new placement target).
    pub added: Vec<AgentId>,
    /// Agents whose placement target was unassigned (they receive a removal).
    pub removed: Vec<AgentId>,
    /// Whether the stored decision (chosen or reasons) changed at all.
    pub decision_changed: bool,
}
