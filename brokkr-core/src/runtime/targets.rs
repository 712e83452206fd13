//! Agent targets ("agent A is responsible for stack S"), assigned by hand.
//!
//! Admin (or the system) assigns any stack to any agent; a generator assigns and
//! unassigns only its own stacks (another generator's stack is `NotFound`); an agent may
//! list its own targets and nothing else. Placement assigns through its own path.

use crate::model::{Actor, AgentTarget};
use crate::store::TargetFilter;
use crate::{AgentId, Page, PageRequest, StackId};

use super::ControlPlane;
use super::error::Result;

impl ControlPlane {
    /// An agent's targets, including those awaiting removal (admin, system, or the agent
    /// itself). An unknown agent is `NotFound`, not an empty page.
    pub async fn list_agent_targets(
        &self,
        caller: &Actor,
        agent: AgentId,
        page: &PageRequest,
    ) -> Result<Page<AgentTarget>> {
        self.require_known_agent(caller, agent).await?;
        let filter = TargetFilter {
            agent_id: Some(agent),
            stack_id: None,
        };
        Ok(self.store().list_agent_targets(&filter, page).await?)
    }

    /// The agents responsible for a live stack (admin, system, or the generator owning
    /// the stack).
    pub async fn list_stack_targets(
        &self,
        caller: &Actor,
        stack: StackId,
        page: &PageRequest,
    ) -> Result<Page<AgentTarget>> {
        let stack = self.visible_stack(caller, stack).await?;
        let filter = TargetFilter {
            agent_id: None,
            stack_id: Some(stack.id),
        };
        Ok(self.store().list_agent_targets(&filter, page).await?)
    }

    /// Makes `agent` responsible for `stack` (admin, system, or the generator owning
    /// the stack). The agent's next target-state read on this replica includes it.
    pub async fn assign_target(
        &self,
        caller: &Actor,
        agent: AgentId,
        stack: StackId,
    ) -> Result<AgentTarget> {
        let stack = self.visible_stack(caller, stack).await?;
        let target = self.store().assign_stack(caller, agent, stack.id).await?;
        // The change notification drops the cached state too, a moment later.
        self.target_states().invalidate(agent);
        Ok(target)
    }

    /// Unassigns `stack` from `agent` (admin, system, or the generator owning the
    /// stack). The agent keeps receiving a removal for the stack until it reports that
    /// the stack's objects are gone.
    pub async fn unassign_target(
        &self,
        caller: &Actor,
        agent: AgentId,
        stack: StackId,
    ) -> Result<()> {
        self.guarded(super::plan::GuardOptions::default())
            .unassign_target(caller, agent, stack)
            .await?
            .done()
    }
}
