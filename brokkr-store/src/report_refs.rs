//! What a batch of agents' reports refers to: which reporting agents are live, and the
//! stack of each reported deployment object. Agent events and health reports check
//! both, one query each per batch.

use std::collections::{HashMap, HashSet};

use brokkr_core::store::{Error, Result};
use brokkr_core::{AgentId, DeploymentObjectId};
use uuid::Uuid;

use crate::batch::distinct;
use crate::write::Write;
use crate::{agents, stacks};

/// The live agents and the objects' stacks of one batch of reports.
pub(crate) struct ReportRefs {
    live: HashSet<Uuid>,
    stack_of: HashMap<Uuid, Uuid>,
}

impl ReportRefs {
    /// Reads them for reports by `agents` on `objects`.
    pub(crate) async fn load(
        write: &Write,
        agents: impl Iterator<Item = AgentId>,
        objects: impl Iterator<Item = DeploymentObjectId>,
    ) -> Result<Self> {
        let agent_ids = distinct(agents.map(|a| a.0));
        let object_ids = distinct(objects.map(|o| o.0));
        Ok(Self {
            live: agents::live_agent_ids(write.tx(), &agent_ids).await?,
            stack_of: stacks::stacks_of_objects(write.tx(), &object_ids).await?,
        })
    }

    /// The stack of `object`, reported by `agent`: `NotFound` for a missing or deleted
    /// agent, then for a missing object.
    pub(crate) fn stack(&self, agent: AgentId, object: DeploymentObjectId) -> Result<Uuid> {
        if !self.live.contains(&agent.0) {
            return Err(Error::not_found("agent", agent));
        }
        self.stack_of
            .get(&object.0)
            .copied()
            .ok_or_else(|| Error::not_found("deployment object", object))
    }
}
