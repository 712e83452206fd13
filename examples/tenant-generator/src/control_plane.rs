//! Onboarding and offboarding tenants through `brokkr_core::runtime::ControlPlane`.
//!
//! A tenant is one stack, `tenant-<name>`. Onboarding validates the spec and the agents
//! before it writes anything, then creates the stack (or reuses the live one), renders
//! and appends the tenant's deployment object through the runtime's render-then-append
//! with the registered `tenant` generator, and makes the chosen agents responsible for
//! the stack. Offboarding deletes the stack: its deletion marker tells every
//! responsible agent to remove the tenant's objects.
//!
//! This module is a thin layer: every write and read is a method of the runtime, called
//! as [`Actor::System`], so the runtime's validation, cache invalidation, long-poll
//! wake-ups and placement signals happen exactly as they do behind the REST server.

use std::collections::BTreeSet;
use std::sync::Arc;

use brokkr_core::generator::{self, ParameterViolation};
use brokkr_core::runtime::{self, AgentQuery, AgentView, Background, GenerateSource};
use brokkr_core::selector::{self, LabelSelector};
use brokkr_core::{
    Actor, AgentId, AgentStatus, DeploymentObject, NewStack, PageRequest, Stack, StackFilter, Store,
};
use brokkr_store::SqlStore;

use crate::tenant::{TENANT_LABEL, Tenant, TenantGenerator, TenantSpec, namespace_of};

/// The name the tenant generator is registered under in [`crate::generators`].
const GENERATOR: &str = "tenant";

/// Why onboarding or offboarding failed. `Open` and an internal `Store` error
/// ([`runtime::Error::is_internal`]) are the platform's failures; every other variant
/// is the caller's.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The database could not be opened or migrated.
    #[error("cannot open the store")]
    Open(#[source] brokkr_core::store::Error),
    /// The spec breaks the tenant generator's rules; see [`Error::violations`].
    #[error("invalid tenant spec")]
    InvalidSpec(#[source] generator::Error),
    /// No live tenant has this name.
    #[error("no tenant named {0:?}")]
    UnknownTenant(String),
    /// No live agent has this name or id.
    #[error("no agent {0:?}")]
    UnknownAgent(String),
    /// Several clusters have an agent of this name.
    #[error(
        "agent name {name:?} is used in clusters {clusters:?}; choose agents by id or label selector"
    )]
    AmbiguousAgent {
        /// The name.
        name: String,
        /// The clusters that have an agent of that name.
        clusters: Vec<String>,
    },
    /// The label selector is malformed.
    #[error("invalid agent selector")]
    InvalidSelector(#[source] selector::Error),
    /// A runtime operation failed.
    #[error("cannot {action}")]
    Store {
        /// What was being done, e.g. `append the deployment object`.
        action: &'static str,
        /// Why.
        #[source]
        source: runtime::Error,
    },
}

impl Error {
    /// The spec's violations by JSON pointer, when the spec was invalid.
    pub fn violations(&self) -> &[ParameterViolation] {
        match self {
            Self::InvalidSpec(generator::Error::InvalidParameters(violations)) => violations,
            _ => &[],
        }
    }
}

/// Result of the control plane.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn runtime_error(action: &'static str) -> impl FnOnce(runtime::Error) -> Error {
    move |source| Error::Store { action, source }
}

/// Whether the runtime answered `NotFound` (a row that does not exist, or was deleted).
fn is_not_found(err: &runtime::Error) -> bool {
    matches!(
        err,
        runtime::Error::Store(brokkr_core::store::Error::NotFound { .. })
    )
}

/// Which agents become responsible for a tenant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Agents {
    /// These agents.
    Ids(Vec<AgentId>),
    /// The agents with these names. A name used in several clusters is refused as
    /// ambiguous rather than deploying to all of them.
    Named(Vec<String>),
    /// Every active agent whose labels match, chosen as the default placement would.
    Matching(LabelSelector),
}

impl Agents {
    /// No agent: the tenant's stack is created and filled, to be assigned later.
    pub fn none() -> Self {
        Self::Ids(Vec::new())
    }
}

/// What [`ControlPlane::onboard`] did.
#[derive(Debug, Clone)]
pub struct Onboarded {
    /// The spec with every default applied.
    pub tenant: Tenant,
    /// The tenant's stack.
    pub stack: Stack,
    /// Whether the stack was created now (`false`: a live one was reused).
    pub stack_created: bool,
    /// The new version of the tenant's objects.
    pub deployment_object: DeploymentObject,
    /// Agents made responsible now.
    pub newly_assigned: Vec<AgentId>,
    /// Requested agents that were responsible already.
    pub already_assigned: Vec<AgentId>,
}

/// A tenant control plane over a Brokkr runtime with the `tenant` generator registered.
///
/// [`ControlPlane::open`] and [`ControlPlane::with_store`] start the runtime's
/// background tasks (heartbeat writer, target-state cache invalidator, placement
/// controller) and hold them: agents' long polls are woken and their heartbeats written
/// for as long as this value lives. [`ControlPlane::shutdown`] stops them gracefully
/// (writing pending heartbeats); dropping the value aborts them.
pub struct ControlPlane {
    runtime: runtime::ControlPlane,
    background: Background,
    /// The same generator the runtime renders with, kept here to check a spec before
    /// anything is written: rendering needs a stack, the check does not.
    generator: TenantGenerator,
}

impl ControlPlane {
    /// Connects to `database_url` (`sqlite://tenants.db?mode=rwc`, `sqlite::memory:` or
    /// `postgres://...`), runs the migrations and starts the runtime.
    pub async fn open(database_url: &str) -> Result<Self> {
        let store = SqlStore::connect(database_url).await.map_err(Error::Open)?;
        Ok(Self::with_store(Arc::new(store)))
    }

    /// A control plane over a store of your own (shared with a server, or in memory);
    /// starts the runtime's background tasks.
    ///
    /// # Panics
    /// When called outside a Tokio runtime: the background tasks are spawned on it.
    pub fn with_store(store: Arc<dyn Store>) -> Self {
        let runtime = runtime::ControlPlane::builder(store)
            .generators(crate::generators())
            .build();
        let background = runtime.start();
        Self {
            runtime,
            background,
            generator: TenantGenerator::new(),
        }
    }

    /// The Brokkr runtime underneath: for what this layer does not wrap, such as
    /// registering agents, an agent's target state and its long poll, or audit records.
    pub fn runtime(&self) -> &runtime::ControlPlane {
        &self.runtime
    }

    /// The store, to share it (with a server, say) or to read what onboarding wrote.
    pub fn store(&self) -> &Arc<dyn Store> {
        self.runtime.store()
    }

    /// Stops the background tasks: pending long polls are answered at once, heartbeats
    /// still in memory are written.
    pub async fn shutdown(self) {
        self.background.shutdown().await;
    }

    /// Onboards a tenant, or ships a new version of a live one.
    ///
    /// The spec (the generator's schema, then its rule that replicas fit the plan's pod
    /// quota) and the agents are checked before anything is written. Assignment is
    /// additive: onboarding never takes a tenant away from an agent. Every call is made
    /// as [`Actor::System`], as the server's command line does.
    pub async fn onboard(&self, spec: &TenantSpec, agents: &Agents) -> Result<Onboarded> {
        let parameters = spec.to_parameters();
        // Cheap (a schema check and one rule, no rendering), so it runs here; the
        // runtime checks again when it renders, off the async workers.
        let tenant = self.generator.resolve(&parameters).map_err(|violations| {
            Error::InvalidSpec(generator::Error::InvalidParameters(violations))
        })?;
        let agent_ids = self.resolve_agents(agents).await?;

        let (stack, stack_created) = self.find_or_create_stack(&tenant).await?;
        // Render-then-append: the provenance records the generator and the parameters
        // after defaults, and the checksum is that of the rendered YAML.
        let source = GenerateSource::Registered(GENERATOR.to_owned());
        let deployment_object = self
            .runtime
            .generate_deployment_object(&Actor::System, stack.id, &source, parameters)
            .await
            .map_err(|err| match err {
                runtime::Error::Generate(refused) => Error::InvalidSpec(refused),
                other => runtime_error("append the deployment object")(other),
            })?;

        let (newly_assigned, already_assigned) = self.assign(&stack, &agent_ids).await?;
        Ok(Onboarded {
            tenant,
            stack,
            stack_created,
            deployment_object,
            newly_assigned,
            already_assigned,
        })
    }

    /// Deletes the tenant's stack and returns its deletion marker, which tells every
    /// responsible agent to remove the tenant's objects.
    pub async fn offboard(&self, name: &str) -> Result<DeploymentObject> {
        let stack = self
            .live_stack(&namespace_of(name))
            .await?
            .ok_or_else(|| Error::UnknownTenant(name.to_owned()))?;
        match self.runtime.delete_stack(&Actor::System, stack.id).await {
            Ok(marker) => Ok(marker),
            // Deleted by someone else since the lookup.
            Err(err) if is_not_found(&err) => Err(Error::UnknownTenant(name.to_owned())),
            Err(err) => Err(runtime_error("delete the stack")(err)),
        }
    }

    /// The live stack of tenant `name`, if it is onboarded.
    pub async fn tenant_stack(&self, name: &str) -> Result<Option<Stack>> {
        self.live_stack(&namespace_of(name)).await
    }

    async fn live_stack(&self, stack_name: &str) -> Result<Option<Stack>> {
        let filter = StackFilter {
            name: Some(stack_name.to_owned()),
            ..StackFilter::default()
        };
        let page = self
            .runtime
            .list_stacks(&Actor::System, filter, &PageRequest::first(1))
            .await
            .map_err(runtime_error("look up the stack"))?;
        Ok(page.items.into_iter().next())
    }

    async fn find_or_create_stack(&self, tenant: &Tenant) -> Result<(Stack, bool)> {
        let name = tenant.namespace();
        if let Some(stack) = self.live_stack(&name).await? {
            return Ok((stack, false));
        }
        let new = NewStack {
            name: name.clone(),
            description: Some(format!("tenant {}", tenant.name)),
            labels: [(TENANT_LABEL.to_owned(), tenant.name.clone())].into(),
            ..NewStack::default()
        };
        match self.runtime.create_stack(&Actor::System, new).await {
            Ok(stack) => Ok((stack, true)),
            // Another onboarding of the same tenant created it since the lookup.
            Err(runtime::Error::Store(brokkr_core::store::Error::Conflict(reason))) => {
                match self.live_stack(&name).await? {
                    Some(stack) => Ok((stack, false)),
                    None => Err(runtime_error("create the stack")(runtime::Error::Store(
                        brokkr_core::store::Error::Conflict(reason),
                    ))),
                }
            }
            Err(err) => Err(runtime_error("create the stack")(err)),
        }
    }

    async fn resolve_agents(&self, agents: &Agents) -> Result<Vec<AgentId>> {
        match agents {
            Agents::Ids(ids) => {
                for id in ids {
                    match self.runtime.get_agent(&Actor::System, *id).await {
                        Ok(_) => {}
                        Err(err) if is_not_found(&err) => {
                            return Err(Error::UnknownAgent(id.to_string()));
                        }
                        Err(err) => return Err(runtime_error("look up an agent")(err)),
                    }
                }
                Ok(dedup(ids.iter().copied()))
            }
            Agents::Named(names) => {
                let all = self.all_agents().await?;
                let mut ids = Vec::with_capacity(names.len());
                for name in names {
                    let found: Vec<&AgentView> =
                        all.iter().filter(|a| &a.agent.name == name).collect();
                    match found.as_slice() {
                        [] => return Err(Error::UnknownAgent(name.clone())),
                        [view] => ids.push(view.agent.id),
                        several => {
                            return Err(Error::AmbiguousAgent {
                                name: name.clone(),
                                clusters: several
                                    .iter()
                                    .map(|a| a.agent.cluster_name.clone())
                                    .collect(),
                            });
                        }
                    }
                }
                Ok(dedup(ids))
            }
            Agents::Matching(selector) => {
                selector.validate().map_err(Error::InvalidSelector)?;
                // A one-off choice by labels, assigned directly. For placement that
                // follows agents as they change, set a placement policy on the stack
                // instead (docs/placement.md). Enabled agents count whatever their
                // heartbeat age, as the admin's switch is what says "deploy here".
                let all = self.all_agents().await?;
                Ok(all
                    .into_iter()
                    .map(|view| view.agent)
                    .filter(|a| a.deleted_at.is_none() && a.status == AgentStatus::Active)
                    .filter(|a| selector.first_mismatch(&a.labels).is_none())
                    .map(|a| a.id)
                    .collect())
            }
        }
    }

    async fn all_agents(&self) -> Result<Vec<AgentView>> {
        let mut agents = Vec::new();
        let mut page = PageRequest::first(500);
        loop {
            let found = self
                .runtime
                .list_agents(&Actor::System, &AgentQuery::default(), &page)
                .await
                .map_err(runtime_error("list agents"))?;
            agents.extend(found.items);
            match found.next_cursor {
                Some(cursor) => page = page.after(cursor),
                None => return Ok(agents),
            }
        }
    }

    /// Assigns the stack to every agent not yet responsible for it; returns (newly
    /// assigned, already assigned).
    async fn assign(
        &self,
        stack: &Stack,
        agents: &[AgentId],
    ) -> Result<(Vec<AgentId>, Vec<AgentId>)> {
        let mut responsible = BTreeSet::new();
        let mut page = PageRequest::first(500);
        loop {
            let found = self
                .runtime
                .list_stack_targets(&Actor::System, stack.id, &page)
                .await
                .map_err(runtime_error("list the stack's targets"))?;
            // A target awaiting removal is not responsible; assigning revives it.
            responsible.extend(
                found
                    .items
                    .iter()
                    .filter(|t| t.removed_at.is_none())
                    .map(|t| t.agent_id),
            );
            match found.next_cursor {
                Some(cursor) => page = page.after(cursor),
                None => break,
            }
        }
        let (already, new): (Vec<AgentId>, Vec<AgentId>) =
            agents.iter().partition(|id| responsible.contains(*id));
        for agent in &new {
            // The runtime drops the agent's cached target state, which wakes its long
            // poll with the tenant's object to apply.
            self.runtime
                .assign_target(&Actor::System, *agent, stack.id)
                .await
                .map_err(runtime_error("assign the stack"))?;
        }
        Ok((new, already))
    }
}

/// `ids` without repeats, in first-seen order.
fn dedup(ids: impl IntoIterator<Item = AgentId>) -> Vec<AgentId> {
    let mut seen = BTreeSet::new();
    ids.into_iter().filter(|id| seen.insert(*id)).collect()
}
