//! What one agent should run: the latest deployment object of every stack it is
//! responsible for, and removals for stacks deleted or unassigned.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::id::{AgentId, StackId};
use crate::model::{AgentStatus, DeploymentObject, hex};

/// What the agent should do with one stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TargetAction {
    /// Make the cluster match the deployment object.
    Apply,
    /// Remove every object of the stack: it was deleted (the deployment object is its
    /// deletion marker) or unassigned from this agent (the deployment object is the
    /// stack's latest).
    Remove,
}

/// One stack in an agent's target state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetStateEntry {
    /// The stack.
    pub stack_id: StackId,
    /// Its name, for logs.
    pub stack_name: String,
    /// Apply or remove.
    pub action: TargetAction,
    /// The deployment object to apply, or whose stack to remove.
    pub deployment_object: DeploymentObject,
}

/// An agent's whole target state. It is a state, not a queue: an agent that was
/// offline applies it as it is now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TargetState {
    /// The agent.
    pub agent_id: AgentId,
    /// One entry per stack, ordered by stack id.
    pub entries: Vec<TargetStateEntry>,
}

/// An agent's target state with the agent's admin status, as a cache serving polls
/// needs them: an inactive agent may not fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentTargetState {
    /// The agent's admin status when the state was read.
    pub agent_status: AgentStatus,
    /// The state (it names the agent).
    pub state: TargetState,
}

impl TargetState {
    /// Builds a target state, sorting entries by stack id so equal states compare and
    /// hash equal whatever order a query returned them in.
    pub fn new(agent_id: AgentId, mut entries: Vec<TargetStateEntry>) -> Self {
        entries.sort_by_key(|entry| entry.stack_id);
        Self { agent_id, entries }
    }

    /// A strong ETag (without quotes): it changes exactly when an entry's stack,
    /// deployment object or action changes.
    pub fn etag(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(self.agent_id.0.as_bytes());
        for entry in &self.entries {
            hasher.update(entry.stack_id.0.as_bytes());
            hasher.update(entry.deployment_object.id.0.as_bytes());
            hasher.update([match entry.action {
                TargetAction::Apply => 1u8,
                TargetAction::Remove => 2u8,
            }]);
        }
        hex(&hasher.finalize()[..16])
    }
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::id::DeploymentObjectId;

    fn mk_entry(action: TargetAction) -> TargetStateEntry {
        let stack_id = StackId::new();
        TargetStateEntry {
            stack_id,
            stack_name: "s".into(),
            action,
            deployment_object: DeploymentObject {
                id: DeploymentObjectId::new(),
                stack_id,
                sequence: 1,
                yaml_content: String::new(),
                yaml_checksum: String::new(),
                is_deletion_marker: false,
                provenance: None,
                created_at: Utc::now(),
            },
        }
    }

    #[test]
    fn etag_ignores_query_order_and_tracks_content() {
        let agent = AgentId::new();
        let (a, b) = (mk_entry(TargetAction::Apply), mk_entry(TargetAction::Apply));
        let one = TargetState::new(agent, vec![a.clone(), b.clone()]);
        let two = TargetState::new(agent, vec![b.clone(), a.clone()]);
        assert_eq!(one.etag(), two.etag());

        let mut removed = b.clone();
        removed.action = TargetAction::Remove;
        assert_ne!(
            one.etag(),
            TargetState::new(agent, vec![a.clone(), removed]).etag()
        );

        let mut newer = b;
        newer.deployment_object.id = DeploymentObjectId::new();
        assert_ne!(one.etag(), TargetState::new(agent, vec![a, newer]).etag());
        assert_ne!(one.etag(), TargetState::new(AgentId::new(), vec![]).etag());
    }
}
