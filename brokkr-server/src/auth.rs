//! Who is calling: `Authorization: Bearer <key>` resolved to an [`Identity`].
//!
//! The control plane resolves the key ([`ControlPlane::authenticate`]: a bounded
//! cache, constant-time verification); this module only maps the answer to the
//! security scheme the OpenAPI document declares.
//!
//! [`ControlPlane::authenticate`]: brokkr_core::runtime::ControlPlane::authenticate

use brokkr_core::{Actor, AgentId, GeneratorId, KeyOwner};
use poem::Request;
use poem_openapi::SecurityScheme;
use poem_openapi::auth::Bearer;

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;

/// The role and identity behind a valid key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Identity {
    /// Everything.
    Admin,
    /// Only its own agent, target state, heartbeat and events.
    Agent(AgentId),
    /// Only the stacks (and their deployment objects) and templates it created.
    Generator(GeneratorId),
}

impl From<KeyOwner> for Identity {
    fn from(owner: KeyOwner) -> Self {
        match owner {
            KeyOwner::Admin => Self::Admin,
            KeyOwner::Agent(id) => Self::Agent(id),
            KeyOwner::Generator(id) => Self::Generator(id),
        }
    }
}

impl TryFrom<Actor> for Identity {
    type Error = ApiError;

    /// Keys belong to admins, agents and generators; `System` has no key.
    fn try_from(actor: Actor) -> ApiResult<Self> {
        match actor {
            Actor::Admin => Ok(Self::Admin),
            Actor::Agent(id) => Ok(Self::Agent(id)),
            Actor::Generator(id) => Ok(Self::Generator(id)),
            Actor::System => Err(ApiError::unauthorized("no key belongs to the system")),
        }
    }
}

impl Identity {
    /// The actor recorded in audit records.
    pub fn actor(&self) -> Actor {
        match *self {
            Self::Admin => Actor::Admin,
            Self::Agent(id) => Actor::Agent(id),
            Self::Generator(id) => Actor::Generator(id),
        }
    }

    /// `admin`, `agent` or `generator`.
    pub fn role(&self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::Agent(_) => "agent",
            Self::Generator(_) => "generator",
        }
    }

    /// 403 unless admin.
    pub fn require_admin(&self) -> ApiResult<()> {
        match self {
            Self::Admin => Ok(()),
            other => Err(forbidden_role(other)),
        }
    }

    /// 403 unless admin or the agent itself.
    pub fn require_agent_or_admin(&self, agent: AgentId) -> ApiResult<()> {
        match self {
            Self::Admin => Ok(()),
            Self::Agent(id) if *id == agent => Ok(()),
            other => Err(forbidden_role(other)),
        }
    }

    /// 403 unless the caller is this very agent (its heartbeats and events are its own
    /// word; not even admin may speak for it).
    pub fn require_agent(&self, agent: AgentId) -> ApiResult<()> {
        match self {
            Self::Agent(id) if *id == agent => Ok(()),
            other => Err(ApiError::forbidden(format!(
                "only agent {agent} may do this, not the {} role",
                other.role()
            ))),
        }
    }

    /// 403 for agents: admin and generators may pass (generators then only see their
    /// own rows).
    pub fn require_admin_or_generator(&self) -> ApiResult<()> {
        match self {
            Self::Admin | Self::Generator(_) => Ok(()),
            other => Err(forbidden_role(other)),
        }
    }
}

fn forbidden_role(identity: &Identity) -> ApiError {
    ApiError::forbidden(format!("the {} role may not do this", identity.role()))
}

/// `Authorization: Bearer brokkr_<short id>_<secret>`.
#[derive(SecurityScheme)]
#[oai(
    ty = "bearer",
    bearer_format = "brokkr_<short id>_<secret>",
    checker = "authenticate"
)]
pub struct BearerAuth(pub Identity);

async fn authenticate(req: &Request, bearer: Bearer) -> poem::Result<Identity> {
    let state = req
        .data::<AppState>()
        .expect("app() attaches AppState to every request");
    let actor = state.control_plane.authenticate(&bearer.token).await;
    Ok(Identity::try_from(actor.map_err(ApiError::from)?)?)
}
