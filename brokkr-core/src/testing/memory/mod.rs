//! [`MemoryStore`]: the whole [`Store`] contract in memory.
//!
//! One mutex guards one state struct of ordered maps. Every method takes the lock once,
//! validates everything it needs before touching the state, then applies its change and
//! its audit record together, so each method is atomic exactly as a database
//! transaction would be. The lock is a `std` mutex and is never held across an await:
//! no method awaits at all while it holds it. Change notifications are published after
//! the lock is released, like a database store publishes after commit.
//!
//! Timestamps are truncated to microseconds, the precision PostgreSQL keeps, so that
//! tests written against this store behave the same against the SQL stores.
//!
//! The [`Store`] implementation below only delegates: each method's body lives in the
//! file of its area (`stacks.rs`, `agents.rs`, ...), as a function of the store, next
//! to the state helpers only that area uses; the helpers every area uses are in
//! `state.rs`.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::audit_chain::{ChainCheck, ChainHead, ChainLink};
use crate::change::{ChangeHub, TargetChange, TargetStateWatch};
use crate::id::{
    AgentEventId, AgentId, ApiKeyId, AuditRecordId, DeploymentObjectId, GeneratorId, PlanId,
    StackId, TemplateId,
};
use crate::metadata::{Annotations, Labels};
use crate::model::{
    Actor, Agent, AgentEvent, AgentTarget, AgentUpdate, ApiKey, AppliedState, AuditRecord,
    DeploymentObject, Generator, GeneratorUpdate, HealthReport, Heartbeat, KeyOwner,
    ListedDeploymentObject, ListedTemplate, MetadataField, MetadataTarget, NewAgent, NewAgentEvent,
    NewDeploymentObject, NewGenerator, NewHealthReport, NewPlan, NewStack, NewTemplate,
    NewTemplateVersion, PlacementChange, Stack, StackPlacement, StackUpdate, StackWorld, StoredKey,
    StoredPlan, Template, TemplateVersion,
};
use crate::page::{ContentListing, Page, PageRequest};
use crate::placement::{PlacementDecision, PlacementPolicy};
use crate::plan::{GuardOverrides, ItemDigest};
use crate::store::{
    AgentEventFilter, AgentFilter, AuditFilter, Confirmation, Confirmed, ConfirmedChange,
    GeneratorFilter, HarmlessAppend, Result, StackFilter, Store, TargetFilter, TemplateFilter,
};
use crate::target_state::TargetState;

mod agents;
mod audit_chain;
mod confirm;
mod fleet;
mod generators;
mod keys;
mod metadata;
mod placement;
mod plans;
mod reports;
mod rollout_changes;
mod rollout_reads;
mod rollout_store;
mod rollouts;
mod stacks;
mod state;
mod targets;
mod webhook_store;
mod webhooks;

/// An in-memory [`Store`] for tests, examples and simulations.
///
/// It implements the whole contract of [`Store`] (atomic methods, one audit record per
/// change, soft deletion, keyset pagination, change notification) and passes the
/// conformance suite in [`conformance`](super::conformance). Nothing is persisted: the
/// model lives as long as the value.
///
/// ```
/// # async fn demo() -> brokkr_core::store::Result<()> {
/// use brokkr_core::testing::MemoryStore;
/// use brokkr_core::{Actor, NewStack, Store};
///
/// let store = MemoryStore::new();
/// let stack = store
///     .create_stack(&Actor::Admin, NewStack { name: "tenant-a".into(), ..Default::default() })
///     .await?;
/// assert_eq!(store.get_stack(stack.id).await?.name, "tenant-a");
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    hub: ChangeHub,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    /// The hub this store publishes target-state changes to, e.g. to count watchers.
    pub fn change_hub(&self) -> &ChangeHub {
        &self.hub
    }

    /// Locks the state. A poisoned lock is recovered, the policy of every lock in Brokkr
    /// (see [`crate::sync`]): a method panics only on a broken invariant, never on
    /// input, and one panicking test must not turn every later call on a shared store
    /// into an error.
    fn state(&self) -> MutexGuard<'_, State> {
        crate::sync::lock(&self.state)
    }

    /// Wakes the watches of `agents` (after the change is visible to readers).
    fn publish(&self, agents: Vec<AgentId>) {
        self.hub.publish(TargetChange::Agents(agents));
    }
}

/// Everything the store holds. Maps are ordered by the key each listing pages by.
#[derive(Debug, Default)]
struct State {
    stacks: BTreeMap<StackId, Stack>,
    /// Deployment objects by sequence.
    objects: BTreeMap<i64, DeploymentObject>,
    object_sequences: HashMap<DeploymentObjectId, i64>,
    /// Each stack's latest sequence, so target state never scans history.
    latest_sequence: HashMap<StackId, i64>,
    last_sequence: i64,
    agents: BTreeMap<AgentId, Agent>,
    targets: BTreeMap<(AgentId, StackId), AgentTarget>,
    events: BTreeMap<AgentEventId, AgentEvent>,
    /// The latest health report per stack and agent.
    health: BTreeMap<(StackId, AgentId), HealthReport>,
    generators: BTreeMap<GeneratorId, Generator>,
    templates: BTreeMap<TemplateId, TemplateRow>,
    keys: BTreeMap<ApiKeyId, ApiKey>,
    /// Moves at every revocation ([`Store::key_revocations`]).
    key_revocations: u64,
    audit: BTreeMap<AuditRecordId, AuditRecord>,
    /// Audit records not yet in the chain, queued as they are written.
    unsealed: BTreeSet<AuditRecordId>,
    /// The audit chain: link `p` at index `p - 1`.
    chain: Vec<ChainLink>,
    /// Placement policies and decisions by stack.
    placements: BTreeMap<StackId, StackPlacement>,
    /// Each deployment object's items, written with it.
    items: HashMap<DeploymentObjectId, Vec<ItemDigest>>,
    /// What each agent last reported applying, by stack then agent.
    applied: BTreeMap<(StackId, AgentId), AppliedState>,
    /// Stacks' guard overrides; a stack without any has no entry.
    guard_overrides: HashMap<StackId, GuardOverrides>,
    plans: BTreeMap<PlanId, StoredPlan>,
    /// Subscriptions, the outbox and deliveries.
    webhooks: webhooks::Webhooks,
    /// Agents marked stale, with when.
    stale_agents: HashMap<AgentId, DateTime<Utc>>,
    /// Rollout policies, release heads, rollouts and pins.
    rollouts: rollouts::Rollouts,
}

/// A template's own fields and all its versions (oldest first, never empty).
#[derive(Debug, Clone)]
struct TemplateRow {
    id: TemplateId,
    name: String,
    description: Option<String>,
    generator_id: Option<GeneratorId>,
    labels: Labels,
    annotations: Annotations,
    versions: Vec<TemplateVersion>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    deleted_at: Option<DateTime<Utc>>,
}

impl TemplateRow {
    fn to_template(&self) -> Template {
        Template {
            id: self.id,
            name: self.name.clone(),
            description: self.description.clone(),
            generator_id: self.generator_id,
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            latest: self
                .versions
                .last()
                .expect("a template is created with version 1 and versions are never removed")
                .clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
            deleted_at: self.deleted_at,
        }
    }
}

#[async_trait]
impl Store for MemoryStore {
    async fn ping(&self) -> Result<()> {
        // Nothing in memory can be unreachable.
        Ok(())
    }

    async fn create_stack(&self, actor: &Actor, new: NewStack) -> Result<Stack> {
        stacks::create_stack(self, actor, new)
    }

    async fn get_stack(&self, id: StackId) -> Result<Stack> {
        stacks::get_stack(self, id)
    }

    async fn list_stacks(&self, filter: &StackFilter, page: &PageRequest) -> Result<Page<Stack>> {
        stacks::list_stacks(self, filter, page)
    }

    async fn update_stack(&self, actor: &Actor, id: StackId, update: StackUpdate) -> Result<Stack> {
        stacks::update_stack(self, actor, id, update)
    }

    async fn delete_stack(&self, actor: &Actor, id: StackId) -> Result<DeploymentObject> {
        stacks::delete_stack(self, actor, id)
    }

    async fn append_deployment_object(
        &self,
        actor: &Actor,
        new: NewDeploymentObject,
    ) -> Result<DeploymentObject> {
        stacks::append_deployment_object(self, actor, new)
    }

    async fn append_if_harmless(
        &self,
        actor: &Actor,
        new: NewDeploymentObject,
    ) -> Result<HarmlessAppend> {
        confirm::append_if_harmless(self, actor, new)
    }

    async fn get_deployment_object(&self, id: DeploymentObjectId) -> Result<DeploymentObject> {
        stacks::get_deployment_object(self, id)
    }

    async fn list_deployment_objects(
        &self,
        stack_id: StackId,
        yaml: ContentListing,
        page: &PageRequest,
    ) -> Result<Page<ListedDeploymentObject>> {
        stacks::list_deployment_objects(self, stack_id, yaml, page)
    }

    async fn create_agent(&self, actor: &Actor, new: NewAgent) -> Result<Agent> {
        agents::create_agent(self, actor, new)
    }

    async fn get_agent(&self, id: AgentId) -> Result<Agent> {
        agents::get_agent(self, id)
    }

    async fn list_agents(&self, filter: &AgentFilter, page: &PageRequest) -> Result<Page<Agent>> {
        agents::list_agents(self, filter, page)
    }

    async fn update_agent(&self, actor: &Actor, id: AgentId, update: AgentUpdate) -> Result<Agent> {
        agents::update_agent(self, actor, id, update)
    }

    async fn delete_agent(&self, actor: &Actor, id: AgentId) -> Result<()> {
        agents::delete_agent(self, actor, id)
    }

    async fn record_heartbeats(&self, beats: &[Heartbeat]) -> Result<()> {
        agents::record_heartbeats(self, beats)
    }

    async fn put_metadata(
        &self,
        actor: &Actor,
        target: MetadataTarget,
        field: MetadataField,
        key: &str,
        value: &str,
    ) -> Result<Labels> {
        metadata::put_metadata(self, actor, target, field, key, value)
    }

    async fn remove_metadata(
        &self,
        actor: &Actor,
        target: MetadataTarget,
        field: MetadataField,
        key: &str,
    ) -> Result<Labels> {
        metadata::remove_metadata(self, actor, target, field, key)
    }

    async fn assign_stack(
        &self,
        actor: &Actor,
        agent_id: AgentId,
        stack_id: StackId,
    ) -> Result<AgentTarget> {
        targets::assign_stack(self, actor, agent_id, stack_id)
    }

    async fn unassign_stack(
        &self,
        actor: &Actor,
        agent_id: AgentId,
        stack_id: StackId,
    ) -> Result<()> {
        targets::unassign_stack(self, actor, agent_id, stack_id)
    }

    async fn list_agent_targets(
        &self,
        filter: &TargetFilter,
        page: &PageRequest,
    ) -> Result<Page<AgentTarget>> {
        targets::list_agent_targets(self, filter, page)
    }

    async fn target_state(&self, agent_id: AgentId) -> Result<TargetState> {
        targets::target_state(self, agent_id)
    }

    fn watch_target_state(&self, agent_id: AgentId) -> TargetStateWatch {
        self.hub.watch(agent_id)
    }

    fn change_feed(&self) -> crate::change::ChangeFeed {
        self.hub.feed()
    }

    async fn record_agent_event(&self, actor: &Actor, new: NewAgentEvent) -> Result<AgentEvent> {
        reports::record_agent_event(self, actor, new)
    }

    async fn set_placement_policy(
        &self,
        actor: &Actor,
        stack_id: StackId,
        policy: Option<PlacementPolicy>,
    ) -> Result<Option<StackPlacement>> {
        placement::set_placement_policy(self, actor, stack_id, policy)
    }

    async fn get_placement(&self, stack_id: StackId) -> Result<Option<StackPlacement>> {
        placement::get_placement(self, stack_id)
    }

    async fn list_placements(&self, page: &PageRequest) -> Result<Page<StackPlacement>> {
        placement::list_placements(self, page)
    }

    async fn record_placement(
        &self,
        actor: &Actor,
        stack_id: StackId,
        decision: PlacementDecision,
    ) -> Result<PlacementChange> {
        placement::record_placement(self, actor, stack_id, decision)
    }

    async fn record_health(&self, _actor: &Actor, new: NewHealthReport) -> Result<HealthReport> {
        reports::record_health(self, _actor, new)
    }

    async fn stack_health(&self, stack_id: StackId) -> Result<Vec<HealthReport>> {
        reports::stack_health(self, stack_id)
    }

    async fn get_agent_event(&self, id: AgentEventId) -> Result<AgentEvent> {
        reports::get_agent_event(self, id)
    }

    async fn list_agent_events(
        &self,
        filter: &AgentEventFilter,
        page: &PageRequest,
    ) -> Result<Page<AgentEvent>> {
        reports::list_agent_events(self, filter, page)
    }

    async fn create_generator(&self, actor: &Actor, new: NewGenerator) -> Result<Generator> {
        generators::create_generator(self, actor, new)
    }

    async fn get_generator(&self, id: GeneratorId) -> Result<Generator> {
        generators::get_generator(self, id)
    }

    async fn list_generators(
        &self,
        filter: &GeneratorFilter,
        page: &PageRequest,
    ) -> Result<Page<Generator>> {
        generators::list_generators(self, filter, page)
    }

    async fn update_generator(
        &self,
        actor: &Actor,
        id: GeneratorId,
        update: GeneratorUpdate,
    ) -> Result<Generator> {
        generators::update_generator(self, actor, id, update)
    }

    async fn delete_generator(&self, actor: &Actor, id: GeneratorId) -> Result<()> {
        generators::delete_generator(self, actor, id)
    }

    async fn create_template(&self, actor: &Actor, new: NewTemplate) -> Result<Template> {
        generators::create_template(self, actor, new)
    }

    async fn get_template(&self, id: TemplateId) -> Result<Template> {
        generators::get_template(self, id)
    }

    async fn get_template_version(&self, id: TemplateId, version: i32) -> Result<TemplateVersion> {
        generators::get_template_version(self, id, version)
    }

    async fn list_templates(
        &self,
        filter: &TemplateFilter,
        content: ContentListing,
        page: &PageRequest,
    ) -> Result<Page<ListedTemplate>> {
        generators::list_templates(self, filter, content, page)
    }

    async fn list_template_versions(
        &self,
        id: TemplateId,
        page: &PageRequest,
    ) -> Result<Page<TemplateVersion>> {
        generators::list_template_versions(self, id, page)
    }

    async fn add_template_version(
        &self,
        actor: &Actor,
        id: TemplateId,
        version: NewTemplateVersion,
    ) -> Result<Template> {
        generators::add_template_version(self, actor, id, version)
    }

    async fn delete_template(&self, actor: &Actor, id: TemplateId) -> Result<()> {
        generators::delete_template(self, actor, id)
    }

    async fn find_api_key(&self, short_id: &str) -> Result<Option<ApiKey>> {
        keys::find_api_key(self, short_id)
    }

    async fn active_api_keys(&self, owner: KeyOwner) -> Result<Vec<ApiKey>> {
        keys::active_api_keys(self, owner)
    }

    async fn rotate_api_key(
        &self,
        actor: &Actor,
        owner: KeyOwner,
        key: StoredKey,
    ) -> Result<ApiKey> {
        keys::rotate_api_key(self, actor, owner, key)
    }

    async fn key_revocations(&self) -> Result<u64> {
        keys::key_revocations(self)
    }

    async fn deployment_object_items(
        &self,
        ids: &[DeploymentObjectId],
    ) -> Result<Vec<(DeploymentObjectId, Vec<ItemDigest>)>> {
        plans::deployment_object_items(self, ids)
    }

    async fn applied_states(&self, stack_id: StackId) -> Result<Vec<AppliedState>> {
        plans::applied_states(self, stack_id)
    }

    async fn guard_overrides(&self, stack_id: StackId) -> Result<GuardOverrides> {
        plans::guard_overrides(self, stack_id)
    }

    async fn set_guard_overrides(
        &self,
        actor: &Actor,
        stack_id: StackId,
        overrides: GuardOverrides,
    ) -> Result<GuardOverrides> {
        plans::set_guard_overrides(self, actor, stack_id, overrides)
    }

    async fn create_plan(&self, actor: &Actor, new: NewPlan) -> Result<StoredPlan> {
        plans::create_plan(self, actor, new)
    }

    async fn get_plan(&self, id: PlanId) -> Result<StoredPlan> {
        plans::get_plan(self, id)
    }

    async fn held_plan(&self, stack_id: StackId, now: DateTime<Utc>) -> Result<Option<StoredPlan>> {
        plans::held_plan(self, stack_id, now)
    }

    async fn stack_world(&self, stack_id: StackId) -> Result<StackWorld> {
        confirm::stack_world(self, stack_id)
    }

    async fn write_confirmed(
        &self,
        actor: &Actor,
        confirmation: &Confirmation<'_>,
        change: ConfirmedChange,
    ) -> Result<Confirmed> {
        confirm::write_confirmed(self, actor, confirmation, change)
    }

    async fn list_audit_records(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditRecord>> {
        keys::list_audit_records(self, filter, page)
    }

    async fn seal_audit_chain(&self, limit: usize) -> Result<usize> {
        audit_chain::seal_audit_chain(self, limit)
    }

    async fn verify_audit_chain(
        &self,
        after: Option<ChainHead>,
        limit: usize,
    ) -> Result<ChainCheck> {
        audit_chain::verify_audit_chain(self, after, limit)
    }

    async fn unsealed_audit_records(&self) -> Result<u64> {
        audit_chain::unsealed_audit_records(self)
    }

    async fn list_audit_chain(&self, after: u64, limit: usize) -> Result<Vec<ChainLink>> {
        audit_chain::list_audit_chain(self, after, limit)
    }

    async fn fleet_counts(&self, active_since: DateTime<Utc>) -> Result<crate::model::FleetCounts> {
        fleet::fleet_counts(self, active_since)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_store_poisoned_by_a_panic_still_serves() {
        let store = std::sync::Arc::new(MemoryStore::new());
        let poisoner = std::sync::Arc::clone(&store);
        let _ = std::thread::spawn(move || {
            let _state = poisoner.state.lock();
            panic!("poison the lock");
        })
        .join();
        assert!(store.state.is_poisoned());
        let new = NewStack {
            name: "after".into(),
            ..Default::default()
        };
        let stack = store.create_stack(&Actor::Admin, new).await.unwrap();
        assert_eq!(store.get_stack(stack.id).await.unwrap().name, "after");
    }
}
