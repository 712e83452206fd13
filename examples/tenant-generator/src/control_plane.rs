//! Onboarding and offboarding tenants through `brokkr_core::Store`.
//!
//! A tenant is one stack, `tenant-<name>`. Onboarding validates the spec before it
//! writes anything, then creates the stack (or reuses the live one), appends the
//! generated deployment object with its provenance, and makes the chosen agents
//! responsible for the stack. Offboarding deletes the stack: its deletion marker tells
//! every responsible agent to remove the tenant's objects.

use std::collections::BTreeSet;
use std::sync::Arc;

use brokkr_core::generator::{self, Generator as _, ParameterViolation};
use brokkr_core::manifest::ParseOptions;
use brokkr_core::selector::{self, LabelSelector};
use brokkr_core::{
    Actor, Agent, AgentFilter, AgentId, AgentStatus, DeploymentObject, NewDeploymentObject,
    NewStack, PageRequest, Provenance, Stack, StackFilter, Store, TargetFilter,
};
use brokkr_store::SqlStore;

use crate::tenant::{TENANT_LABEL, Tenant, TenantGenerator, TenantSpec, namespace_of};

/// Why onboarding or offboarding failed. `Store` is the platform's failure; every
/// other variant is the caller's.
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
    /// A store operation failed.
    #[error("cannot {action}")]
    Store {
        /// What was being done, e.g. `append the deployment object`.
        action: &'static str,
        /// Why.
        #[source]
        source: brokkr_core::store::Error,
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

fn store_error(action: &'static str) -> impl FnOnce(brokkr_core::store::Error) -> Error {
    move |source| Error::Store { action, source }
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

/// A tenant control plane over any [`Store`].
pub struct ControlPlane {
    store: Arc<dyn Store>,
    generator: TenantGenerator,
    limits: ParseOptions,
}

impl ControlPlane {
    /// Connects to `database_url` (`sqlite://tenants.db?mode=rwc`, `sqlite::memory:` or
    /// `postgres://...`) and runs the migrations.
    pub async fn open(database_url: &str) -> Result<Self> {
        let store = SqlStore::connect(database_url).await.map_err(Error::Open)?;
        Ok(Self::with_store(Arc::new(store)))
    }

    /// A control plane over a store of your own (shared with a server, or in memory).
    pub fn with_store(store: Arc<dyn Store>) -> Self {
        Self {
            store,
            generator: TenantGenerator::new(),
            limits: ParseOptions::default(),
        }
    }

    /// The store, to share it or to read what onboarding wrote.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// Onboards a tenant, or ships a new version of a live one.
    ///
    /// The spec and the agents are checked before anything is written. Assignment is
    /// additive: onboarding never takes a tenant away from an agent. Writes are made by
    /// [`Actor::System`], as the server's command line does.
    pub async fn onboard(&self, spec: &TenantSpec, agents: &Agents) -> Result<Onboarded> {
        let generated = self
            .generator
            .render(&spec.to_parameters(), &self.limits)
            .map_err(Error::InvalidSpec)?;
        let tenant: Tenant = serde_json::from_value(generated.parameters().clone())
            .map_err(|e| Error::InvalidSpec(generator::Error::RenderFailed(e.to_string())))?;
        let agent_ids = self.resolve_agents(agents).await?;

        let (stack, stack_created) = self.find_or_create_stack(&tenant).await?;
        // The output was validated when it was generated; the provenance takes its
        // parameters (after defaults).
        let provenance = Provenance::generator(self.generator.name(), serde_json::Value::Null);
        let object = NewDeploymentObject::from_generated(stack.id, generated, provenance);
        let deployment_object = self
            .store
            .append_deployment_object(&Actor::System, object)
            .await
            .map_err(store_error("append the deployment object"))?;

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
        match self.store.delete_stack(&Actor::System, stack.id).await {
            Ok(marker) => Ok(marker),
            // Deleted by someone else since the lookup.
            Err(brokkr_core::store::Error::NotFound { .. }) => {
                Err(Error::UnknownTenant(name.to_owned()))
            }
            Err(source) => Err(store_error("delete the stack")(source)),
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
            .store
            .list_stacks(&filter, &PageRequest::first(1))
            .await
            .map_err(store_error("look up the stack"))?;
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
        match self.store.create_stack(&Actor::System, new).await {
            Ok(stack) => Ok((stack, true)),
            // Another onboarding of the same tenant created it since the lookup.
            Err(brokkr_core::store::Error::Conflict(reason)) => {
                match self.live_stack(&name).await? {
                    Some(stack) => Ok((stack, false)),
                    None => Err(store_error("create the stack")(
                        brokkr_core::store::Error::Conflict(reason),
                    )),
                }
            }
            Err(source) => Err(store_error("create the stack")(source)),
        }
    }

    async fn resolve_agents(&self, agents: &Agents) -> Result<Vec<AgentId>> {
        match agents {
            Agents::Ids(ids) => {
                for id in ids {
                    match self.store.get_agent(*id).await {
                        Ok(_) => {}
                        Err(brokkr_core::store::Error::NotFound { .. }) => {
                            return Err(Error::UnknownAgent(id.to_string()));
                        }
                        Err(source) => return Err(store_error("look up an agent")(source)),
                    }
                }
                Ok(dedup(ids.iter().copied()))
            }
            Agents::Named(names) => {
                let all = self.all_agents().await?;
                let mut ids = Vec::with_capacity(names.len());
                for name in names {
                    let found: Vec<&Agent> = all.iter().filter(|a| &a.name == name).collect();
                    match found.as_slice() {
                        [] => return Err(Error::UnknownAgent(name.clone())),
                        [agent] => ids.push(agent.id),
                        several => {
                            return Err(Error::AmbiguousAgent {
                                name: name.clone(),
                                clusters: several.iter().map(|a| a.cluster_name.clone()).collect(),
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
                // instead (docs/placement.md).
                let all = self.all_agents().await?;
                Ok(all
                    .into_iter()
                    .filter(|a| a.deleted_at.is_none() && a.status == AgentStatus::Active)
                    .filter(|a| selector.first_mismatch(&a.labels).is_none())
                    .map(|a| a.id)
                    .collect())
            }
        }
    }

    async fn all_agents(&self) -> Result<Vec<Agent>> {
        let mut agents = Vec::new();
        let mut page = PageRequest::first(500);
        loop {
            let found = self
                .store
                .list_agents(&AgentFilter::default(), &page)
                .await
                .map_err(store_error("list agents"))?;
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
        let filter = TargetFilter {
            stack_id: Some(stack.id),
            ..TargetFilter::default()
        };
        let mut responsible = BTreeSet::new();
        let mut page = PageRequest::first(500);
        loop {
            let found = self
                .store
                .list_agent_targets(&filter, &page)
                .await
                .map_err(store_error("list the stack's targets"))?;
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
            self.store
                .assign_stack(&Actor::System, *agent, stack.id)
                .await
                .map_err(store_error("assign the stack"))?;
        }
        Ok((new, already))
    }
}

/// `ids` without repeats, in first-seen order.
fn dedup(ids: impl IntoIterator<Item = AgentId>) -> Vec<AgentId> {
    let mut seen = BTreeSet::new();
    ids.into_iter().filter(|id| seen.insert(*id)).collect()
}
