//! Agent events: the outcomes of agents' attempts to apply or remove deployment objects.
//!
//! Only an agent reports its own events (not even admin may speak for it); it and admin
//! read them; listing across agents is admin's. Reports are idempotent on the event id,
//! which the agent chooses, so a retried report after a lost answer stores nothing new.

use crate::model::{Actor, AgentEvent, NewAgentEvent};
use crate::store::AgentEventFilter;
use crate::{AgentEventId, AgentId, Page, PageRequest};

use super::ControlPlane;
use super::access;
use super::error::{Error, Result};

/// Longest accepted event message, in bytes.
pub const MAX_EVENT_MESSAGE_BYTES: usize = 64 * 1024;

impl ControlPlane {
    /// Records the outcome of an attempt, only from the agent `event.agent_id` itself,
    /// and only about a deployment object of a stack in its target state (another
    /// stack's object is `NotFound`: an agent neither writes into another stack's
    /// history nor learns which stack an object belongs to).
    ///
    /// Idempotent on `event.id`: repeating a report stores nothing new and answers the
    /// stored event, even after the report retired its stack from the target state; an
    /// id of another agent's event is a `Conflict`. The message is at most
    /// [`MAX_EVENT_MESSAGE_BYTES`] (`Invalid` otherwise). A successful `delete` of a
    /// stack awaiting removal retires it from the agent's target state.
    pub async fn record_agent_event(
        &self,
        caller: &Actor,
        event: NewAgentEvent,
    ) -> Result<AgentEvent> {
        access::require_agent(caller, event.agent_id)?;
        check_message(event.message.as_deref())?;
        match self
            .require_own_object(event.agent_id, event.deployment_object_id)
            .await
        {
            Ok(()) => {}
            Err(Error::Store(crate::store::Error::NotFound { .. })) => {
                // A retry of a report that was stored (and may have retired the
                // stack since) answers the stored event, as before.
                return match self.store().get_agent_event(event.id).await {
                    Ok(stored) if stored.agent_id == event.agent_id => Ok(stored),
                    _ => Err(Error::not_found(
                        "deployment object",
                        event.deployment_object_id,
                    )),
                };
            }
            Err(other) => return Err(other),
        }
        Ok(self.store().record_agent_event(caller, event).await?)
    }

    /// One agent's events, ordered by id (admin, system, or the agent itself). The
    /// filter's own `agent_id` is replaced by `agent`. An unknown agent is `NotFound`,
    /// not an empty page.
    pub async fn list_agent_events(
        &self,
        caller: &Actor,
        agent: AgentId,
        filter: AgentEventFilter,
        page: &PageRequest,
    ) -> Result<Page<AgentEvent>> {
        self.require_known_agent(caller, agent).await?;
        let filter = AgentEventFilter {
            agent_id: Some(agent),
            ..filter
        };
        Ok(self.store().list_agent_events(&filter, page).await?)
    }

    /// Every agent's events matching `filter`, ordered by id (admin or system).
    pub async fn list_all_agent_events(
        &self,
        caller: &Actor,
        filter: &AgentEventFilter,
        page: &PageRequest,
    ) -> Result<Page<AgentEvent>> {
        access::require_admin(caller)?;
        Ok(self.store().list_agent_events(filter, page).await?)
    }

    /// One event (admin, system, or the agent that reported it). Another agent's event
    /// is `NotFound`, as if it did not exist.
    pub async fn get_agent_event(&self, caller: &Actor, id: AgentEventId) -> Result<AgentEvent> {
        if matches!(caller, Actor::Generator(_)) {
            return Err(Error::forbidden("the generator role may not do this"));
        }
        let event = self.store().get_agent_event(id).await?;
        match caller {
            Actor::Agent(me) if *me != event.agent_id => Err(Error::not_found("agent event", id)),
            _ => Ok(event),
        }
    }
}

/// `Invalid` for a message over [`MAX_EVENT_MESSAGE_BYTES`].
fn check_message(message: Option<&str>) -> Result<()> {
    if message.is_some_and(|m| m.len() > MAX_EVENT_MESSAGE_BYTES) {
        return Err(Error::invalid(
            "validation_failed",
            format!("message must be at most {MAX_EVENT_MESSAGE_BYTES} bytes"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_bounded_in_bytes() {
        assert!(check_message(None).is_ok());
        assert!(check_message(Some(&"x".repeat(MAX_EVENT_MESSAGE_BYTES))).is_ok());
        // Multi-byte characters count by their bytes.
        let long = "é".repeat(MAX_EVENT_MESSAGE_BYTES / 2 + 1);
        assert!(matches!(
            check_message(Some(&long)),
            Err(Error::Invalid {
                code: "validation_failed",
                ..
            })
        ));
    }
}
