//! Who may do what: role and row access, decided here once for every transport.
//!
//! The caller is an [`Actor`]: admin (everything), a generator (only the stacks and
//! templates it created; another generator's rows are `NotFound`, so it never learns
//! they exist), an agent (only its own agent, target state, heartbeats, events and
//! health), or the system (Brokkr itself and trusted embedder code: everything, like
//! admin, recorded as `system` in the audit log).

use crate::model::Actor;
use crate::{AgentId, GeneratorId};

use super::error::{Error, Result};

/// The role name used in messages.
pub fn role(actor: &Actor) -> &'static str {
    match actor {
        Actor::Admin => "admin",
        Actor::Agent(_) => "agent",
        Actor::Generator(_) => "generator",
        Actor::System => "system",
    }
}

fn forbidden_role(actor: &Actor) -> Error {
    Error::forbidden(format!("the {} role may not do this", role(actor)))
}

/// Admin or system, else `Forbidden`.
pub fn require_admin(actor: &Actor) -> Result<()> {
    match actor {
        Actor::Admin | Actor::System => Ok(()),
        other => Err(forbidden_role(other)),
    }
}

/// Admin, system or this very agent.
pub fn require_agent_or_admin(actor: &Actor, agent: AgentId) -> Result<()> {
    match actor {
        Actor::Admin | Actor::System => Ok(()),
        Actor::Agent(id) if *id == agent => Ok(()),
        other => Err(forbidden_role(other)),
    }
}

/// Only this very agent: its heartbeats, events and health are its own word; not even
/// admin may speak for it.
pub fn require_agent(actor: &Actor, agent: AgentId) -> Result<()> {
    match actor {
        Actor::Agent(id) if *id == agent => Ok(()),
        other => Err(Error::forbidden(format!(
            "only agent {agent} may do this, not the {} role",
            role(other)
        ))),
    }
}

/// Anyone but agents (generators then see only their own rows).
pub fn require_admin_or_generator(actor: &Actor) -> Result<()> {
    match actor {
        Actor::Agent(_) => Err(forbidden_role(actor)),
        _ => Ok(()),
    }
}

/// The generator whose rows a request creates or lists: admin and system may name any
/// generator (or none); a generator always gets its own, and naming another one is
/// `Forbidden`; agents are refused.
pub fn owner_scope(actor: &Actor, requested: Option<GeneratorId>) -> Result<Option<GeneratorId>> {
    match *actor {
        Actor::Admin | Actor::System => Ok(requested),
        Actor::Generator(me) => match requested {
            Some(other) if other != me => {
                Err(Error::forbidden("a generator may only act on its own rows"))
            }
            _ => Ok(Some(me)),
        },
        Actor::Agent(_) => Err(Error::forbidden("the agent role may not do this")),
    }
}

/// Whether a row owned by `owner` is visible to `actor` (admin and system see every
/// row; a generator only its own). Agents never see stacks or templates.
pub fn sees_owned_by(actor: &Actor, owner: Option<GeneratorId>) -> bool {
    match actor {
        Actor::Admin | Actor::System => true,
        Actor::Generator(me) => owner == Some(*me),
        Actor::Agent(_) => false,
    }
}
