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

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use chrono::{DateTime, SubsecRound, Utc};

use crate::change::{ChangeHub, TargetChange, TargetStateWatch};
use crate::id::{
    AgentEventId, AgentId, ApiKeyId, AuditRecordId, DeploymentObjectId, GeneratorId, StackId,
    TemplateId,
};
use crate::metadata::{Annotations, Labels, validate_key};
use crate::model::{
    Actor, Agent, AgentEvent, AgentStatus, AgentTarget, AgentUpdate, ApiKey, AuditAction,
    AuditRecord, Capabilities, DeploymentObject, EventStatus, EventType, Generator,
    GeneratorUpdate, HealthReport, Heartbeat, KeyOwner, MetadataField, MetadataTarget, NewAgent,
    NewAgentEvent, NewDeploymentObject, NewGenerator, NewHealthReport, NewStack, NewTemplate,
    NewTemplateVersion, PlacementChange, ResourceKind, Stack, StackPlacement, StackUpdate,
    StoredKey, TargetSource, Template, TemplateVersion,
};
use crate::page::{Order, Page, PageRequest};
use crate::placement::{PlacementDecision, PlacementPolicy};
use crate::store::{
    AgentEventFilter, AgentFilter, AuditFilter, Error, GeneratorFilter, Result, StackFilter, Store,
    TargetFilter, TemplateFilter,
};
use crate::target_state::{TargetAction, TargetState, TargetStateEntry};

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

    fn state(&self) -> Result<MutexGuard<'_, State>> {
        // A poisoned lock means a method panicked half-way; refuse to serve a state
        // that may break the contract rather than pretend it is consistent.
        self.state
            .lock()
            .map_err(|_| Error::Backend("memory store lock poisoned by a panic".into()))
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
    audit: BTreeMap<AuditRecordId, AuditRecord>,
    /// Placement policies and decisions by stack.
    placements: BTreeMap<StackId, StackPlacement>,
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

/// The current time at the precision PostgreSQL stores.
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

impl State {
    fn audit(
        &mut self,
        actor: &Actor,
        action: AuditAction,
        resource_kind: ResourceKind,
        resource_id: impl Into<uuid::Uuid>,
        summary: String,
        at: DateTime<Utc>,
    ) {
        let id = AuditRecordId::new();
        self.audit.insert(
            id,
            AuditRecord {
                id,
                actor: *actor,
                action,
                resource_kind,
                resource_id: resource_id.into(),
                summary,
                created_at: at,
            },
        );
    }

    fn live_stack(&self, id: StackId) -> Result<&Stack> {
        self.stacks
            .get(&id)
            .filter(|s| s.deleted_at.is_none())
            .ok_or_else(|| Error::not_found("stack", id))
    }

    fn live_agent(&self, id: AgentId) -> Result<&Agent> {
        self.agents
            .get(&id)
            .filter(|a| a.deleted_at.is_none())
            .ok_or_else(|| Error::not_found("agent", id))
    }

    fn live_generator(&self, id: GeneratorId) -> Result<&Generator> {
        self.generators
            .get(&id)
            .filter(|g| g.deleted_at.is_none())
            .ok_or_else(|| Error::not_found("generator", id))
    }

    fn live_template(&self, id: TemplateId) -> Result<&TemplateRow> {
        self.templates
            .get(&id)
            .filter(|t| t.deleted_at.is_none())
            .ok_or_else(|| Error::not_found("template", id))
    }

    fn check_stack_name_free(&self, name: &str, except: Option<StackId>) -> Result<()> {
        let taken = self
            .stacks
            .values()
            .any(|s| s.deleted_at.is_none() && s.name == name && Some(s.id) != except);
        if taken {
            return Err(Error::Conflict(format!("a stack named {name:?} exists")));
        }
        Ok(())
    }

    fn check_agent_name_free(
        &self,
        name: &str,
        cluster: &str,
        except: Option<AgentId>,
    ) -> Result<()> {
        let taken = self.agents.values().any(|a| {
            a.deleted_at.is_none()
                && a.name == name
                && a.cluster_name == cluster
                && Some(a.id) != except
        });
        if taken {
            return Err(Error::Conflict(format!(
                "an agent named {name:?} exists in cluster {cluster:?}"
            )));
        }
        Ok(())
    }

    fn check_generator_name_free(&self, name: &str, except: Option<GeneratorId>) -> Result<()> {
        let taken = self
            .generators
            .values()
            .any(|g| g.deleted_at.is_none() && g.name == name && Some(g.id) != except);
        if taken {
            return Err(Error::Conflict(format!(
                "a generator named {name:?} exists"
            )));
        }
        Ok(())
    }

    fn check_template_name_free(&self, name: &str) -> Result<()> {
        let taken = self
            .templates
            .values()
            .any(|t| t.deleted_at.is_none() && t.name == name);
        if taken {
            return Err(Error::Conflict(format!("a template named {name:?} exists")));
        }
        Ok(())
    }

    /// Short ids are unique across every key record ever issued, revoked or not.
    fn check_short_id_free(&self, key: &StoredKey) -> Result<()> {
        if self.keys.values().any(|k| k.short_id == key.short_id) {
            return Err(Error::Conflict(format!(
                "key short id {:?} is taken",
                key.short_id
            )));
        }
        Ok(())
    }

    fn insert_key(&mut self, owner: KeyOwner, key: StoredKey, at: DateTime<Utc>) -> ApiKey {
        let record = ApiKey {
            id: ApiKeyId::new(),
            short_id: key.short_id,
            hash: key.hash,
            owner,
            created_at: at,
            revoked_at: None,
        };
        self.keys.insert(record.id, record.clone());
        record
    }

    fn revoke_keys(&mut self, owner: KeyOwner, at: DateTime<Utc>) {
        for key in self.keys.values_mut() {
            if key.owner == owner && key.revoked_at.is_none() {
                key.revoked_at = Some(at);
            }
        }
    }

    /// Every agent with a target (active or awaiting removal) on `stack`.
    fn agents_targeting(&self, stack: StackId) -> Vec<AgentId> {
        self.targets
            .values()
            .filter(|t| t.stack_id == stack)
            .map(|t| t.agent_id)
            .collect()
    }

    /// Marks a live target removed, as `unassign_stack` does: with no deployment object
    /// yet the agent never had anything of the stack, so the target goes at once.
    fn remove_target(&mut self, agent_id: AgentId, stack_id: StackId, at: DateTime<Utc>) {
        if !self.latest_sequence.contains_key(&stack_id) {
            self.targets.remove(&(agent_id, stack_id));
        } else if let Some(target) = self.targets.get_mut(&(agent_id, stack_id)) {
            target.removed_at = Some(at);
        }
    }

    /// Makes the stack's placement targets follow `chosen`: chosen live agents without
    /// a live target get one (reviving a target awaiting removal), placement targets of
    /// agents not chosen are unassigned. Direct targets are left alone.
    fn sync_placement_targets(
        &mut self,
        stack_id: StackId,
        chosen: &BTreeSet<AgentId>,
        at: DateTime<Utc>,
    ) -> PlacementChange {
        let mut change = PlacementChange::default();
        let current: Vec<AgentTarget> = self
            .targets
            .values()
            .filter(|t| t.stack_id == stack_id)
            .cloned()
            .collect();
        let mut has_row = BTreeSet::new();
        for target in current {
            has_row.insert(target.agent_id);
            let is_chosen = chosen.contains(&target.agent_id);
            match (target.removed_at, target.source) {
                (None, TargetSource::Placement) if !is_chosen => {
                    self.remove_target(target.agent_id, stack_id, at);
                    change.removed.push(target.agent_id);
                }
                (Some(_), _) if is_chosen && self.live_agent(target.agent_id).is_ok() => {
                    let row = self
                        .targets
                        .get_mut(&(target.agent_id, stack_id))
                        .expect("read from the same map under the same lock");
                    row.removed_at = None;
                    row.source = TargetSource::Placement;
                    row.created_at = at;
                    change.added.push(target.agent_id);
                }
                _ => {}
            }
        }
        for &agent_id in chosen {
            if has_row.contains(&agent_id) || self.live_agent(agent_id).is_err() {
                continue;
            }
            self.targets.insert(
                (agent_id, stack_id),
                AgentTarget {
                    agent_id,
                    stack_id,
                    source: TargetSource::Placement,
                    created_at: at,
                    removed_at: None,
                },
            );
            change.added.push(agent_id);
        }
        change.added.sort();
        change.removed.sort();
        change
    }

    fn append(&mut self, new: NewDeploymentObject, at: DateTime<Utc>) -> DeploymentObject {
        self.last_sequence += 1;
        let object = DeploymentObject {
            id: DeploymentObjectId::new(),
            stack_id: new.stack_id(),
            sequence: self.last_sequence,
            yaml_content: new.yaml_content().to_owned(),
            yaml_checksum: new.yaml_checksum().to_owned(),
            is_deletion_marker: new.is_deletion_marker(),
            provenance: new.provenance().cloned(),
            created_at: at,
        };
        self.objects.insert(object.sequence, object.clone());
        self.object_sequences.insert(object.id, object.sequence);
        self.latest_sequence
            .insert(object.stack_id, object.sequence);
        object
    }

    fn object(&self, id: DeploymentObjectId) -> Result<&DeploymentObject> {
        self.object_sequences
            .get(&id)
            .and_then(|seq| self.objects.get(seq))
            .ok_or_else(|| Error::not_found("deployment object", id))
    }

    fn metadata_map(
        &mut self,
        target: MetadataTarget,
        field: MetadataField,
    ) -> Result<MetadataSlot<'_>> {
        let (maps, updated_at) = match target {
            MetadataTarget::Stack(id) => {
                let s = self
                    .stacks
                    .get_mut(&id)
                    .filter(|s| s.deleted_at.is_none())
                    .ok_or_else(|| Error::not_found("stack", id))?;
                ((&mut s.labels, &mut s.annotations), &mut s.updated_at)
            }
            MetadataTarget::Agent(id) => {
                let a = self
                    .agents
                    .get_mut(&id)
                    .filter(|a| a.deleted_at.is_none())
                    .ok_or_else(|| Error::not_found("agent", id))?;
                ((&mut a.labels, &mut a.annotations), &mut a.updated_at)
            }
            MetadataTarget::Template(id) => {
                let t = self
                    .templates
                    .get_mut(&id)
                    .filter(|t| t.deleted_at.is_none())
                    .ok_or_else(|| Error::not_found("template", id))?;
                ((&mut t.labels, &mut t.annotations), &mut t.updated_at)
            }
        };
        let map = match field {
            MetadataField::Labels => maps.0,
            MetadataField::Annotations => maps.1,
        };
        Ok(MetadataSlot { map, updated_at })
    }
}

/// One label or annotation map of a live resource, and the resource's `updated_at`.
struct MetadataSlot<'a> {
    map: &'a mut Labels,
    updated_at: &'a mut DateTime<Utc>,
}

fn metadata_resource(target: MetadataTarget) -> (ResourceKind, uuid::Uuid, &'static str) {
    match target {
        MetadataTarget::Stack(id) => (ResourceKind::Stack, id.0, "stack"),
        MetadataTarget::Agent(id) => (ResourceKind::Agent, id.0, "agent"),
        MetadataTarget::Template(id) => (ResourceKind::Template, id.0, "template"),
    }
}

fn field_name(field: MetadataField) -> &'static str {
    match field {
        MetadataField::Labels => "label",
        MetadataField::Annotations => "annotation",
    }
}

/// Keyset pagination over `rows` sorted ascending by `key`: honours the cursor and the
/// order, and overfetches one row to know whether a next page exists.
fn paginate<T, K: Ord>(
    mut rows: Vec<T>,
    page: &PageRequest,
    key: impl Fn(&T) -> K,
    parse: impl Fn(&str) -> Option<K>,
    format: impl Fn(&T) -> String,
) -> Result<Page<T>> {
    let limit = page.effective_limit();
    let after = match &page.cursor {
        Some(cursor) => {
            Some(parse(&cursor.0).ok_or_else(|| Error::InvalidCursor(cursor.0.clone()))?)
        }
        None => None,
    };
    rows.sort_by_key(|row| key(row));
    if page.order == Order::Descending {
        rows.reverse();
    }
    let rows: Vec<T> = rows
        .into_iter()
        .filter(|row| match (&after, page.order) {
            (None, _) => true,
            (Some(after), Order::Ascending) => key(row) > *after,
            (Some(after), Order::Descending) => key(row) < *after,
        })
        .take(limit as usize + 1)
        .collect();
    Ok(Page::from_overfetch(rows, limit, format))
}

/// The audit summary of a decision: counts, never the agent lists (they can be long).
fn placement_summary(stack: &str, chosen: usize, change: &PlacementChange) -> String {
    format!(
        "placed stack {stack:?} on {chosen} agents ({} added, {} removed)",
        change.added.len(),
        change.removed.len()
    )
}

fn parse_uuid<I: From<uuid::Uuid>>(text: &str) -> Option<I> {
    uuid::Uuid::from_str(text).ok().map(I::from)
}

#[async_trait]
impl Store for MemoryStore {
    async fn ping(&self) -> Result<()> {
        self.state().map(drop)
    }

    // --- stacks ---------------------------------------------------------------------

    async fn create_stack(&self, actor: &Actor, new: NewStack) -> Result<Stack> {
        new.validate()?;
        let mut state = self.state()?;
        if let Some(generator) = new.generator_id {
            state.live_generator(generator)?;
        }
        state.check_stack_name_free(&new.name, None)?;
        let at = now();
        let stack = Stack {
            id: StackId::new(),
            name: new.name,
            description: new.description,
            generator_id: new.generator_id,
            labels: new.labels,
            annotations: new.annotations,
            created_at: at,
            updated_at: at,
            deleted_at: None,
        };
        state.stacks.insert(stack.id, stack.clone());
        let summary = format!("created stack {:?}", stack.name);
        state.audit(
            actor,
            AuditAction::Create,
            ResourceKind::Stack,
            stack.id,
            summary,
            at,
        );
        Ok(stack)
    }

    async fn get_stack(&self, id: StackId) -> Result<Stack> {
        self.state()?.live_stack(id).cloned()
    }

    async fn list_stacks(&self, filter: &StackFilter, page: &PageRequest) -> Result<Page<Stack>> {
        let state = self.state()?;
        let rows = state
            .stacks
            .values()
            .filter(|s| filter.include_deleted || s.deleted_at.is_none())
            .filter(|s| {
                filter
                    .generator_id
                    .is_none_or(|g| s.generator_id == Some(g))
            })
            .filter(|s| filter.name.as_ref().is_none_or(|n| &s.name == n))
            .filter(|s| filter.id.is_none_or(|id| s.id == id))
            .cloned()
            .collect();
        paginate(rows, page, |s| s.id, parse_uuid, |s| s.id.to_string())
    }

    async fn update_stack(&self, actor: &Actor, id: StackId, update: StackUpdate) -> Result<Stack> {
        update.validate()?;
        let mut state = self.state()?;
        state.live_stack(id)?;
        if let Some(name) = &update.name {
            state.check_stack_name_free(name, Some(id))?;
        }
        let at = now();
        let stack = state
            .stacks
            .get_mut(&id)
            .expect("checked to be live above, under the same lock");
        if let Some(name) = update.name {
            stack.name = name;
        }
        if let Some(description) = update.description {
            stack.description = description;
        }
        stack.updated_at = at;
        let stack = stack.clone();
        let summary = format!("updated stack {:?}", stack.name);
        state.audit(
            actor,
            AuditAction::Update,
            ResourceKind::Stack,
            id,
            summary,
            at,
        );
        Ok(stack)
    }

    async fn delete_stack(&self, actor: &Actor, id: StackId) -> Result<DeploymentObject> {
        let (marker, agents) = {
            let mut state = self.state()?;
            let name = state.live_stack(id)?.name.clone();
            let at = now();
            let stack = state
                .stacks
                .get_mut(&id)
                .expect("checked to be live above, under the same lock");
            stack.deleted_at = Some(at);
            stack.updated_at = at;
            let marker = state.append(NewDeploymentObject::deletion_marker(id), at);
            let summary = format!(
                "deleted stack {name:?} (deletion marker {})",
                marker.sequence
            );
            state.audit(
                actor,
                AuditAction::Delete,
                ResourceKind::Stack,
                id,
                summary,
                at,
            );
            (marker, state.agents_targeting(id))
        };
        self.publish(agents);
        Ok(marker)
    }

    // --- deployment objects -----------------------------------------------------------

    async fn append_deployment_object(
        &self,
        actor: &Actor,
        new: NewDeploymentObject,
    ) -> Result<DeploymentObject> {
        let (object, agents) = {
            let mut state = self.state()?;
            let stack_id = new.stack_id();
            let name = state.live_stack(stack_id)?.name.clone();
            let at = now();
            let object = state.append(new, at);
            let what = if object.is_deletion_marker {
                "deletion marker"
            } else {
                "deployment object"
            };
            let summary = format!("appended {what} {} to stack {name:?}", object.sequence);
            state.audit(
                actor,
                AuditAction::Create,
                ResourceKind::DeploymentObject,
                object.id,
                summary,
                at,
            );
            (object, state.agents_targeting(stack_id))
        };
        self.publish(agents);
        Ok(object)
    }

    async fn get_deployment_object(&self, id: DeploymentObjectId) -> Result<DeploymentObject> {
        self.state()?.object(id).cloned()
    }

    async fn list_deployment_objects(
        &self,
        stack_id: StackId,
        page: &PageRequest,
    ) -> Result<Page<DeploymentObject>> {
        let state = self.state()?;
        if !state.stacks.contains_key(&stack_id) {
            return Err(Error::not_found("stack", stack_id));
        }
        let rows = state
            .objects
            .values()
            .filter(|o| o.stack_id == stack_id)
            .cloned()
            .collect();
        paginate(
            rows,
            page,
            |o| o.sequence,
            |c| c.parse().ok(),
            |o| o.sequence.to_string(),
        )
    }

    // --- agents -------------------------------------------------------------------

    async fn create_agent(&self, actor: &Actor, new: NewAgent) -> Result<Agent> {
        new.validate()?;
        let mut state = self.state()?;
        state.check_agent_name_free(&new.name, &new.cluster_name, None)?;
        state.check_short_id_free(&new.key)?;
        let at = now();
        let agent = Agent {
            id: AgentId::new(),
            name: new.name,
            cluster_name: new.cluster_name,
            labels: new.labels,
            annotations: new.annotations,
            status: AgentStatus::Active,
            last_heartbeat: None,
            capabilities: Capabilities::default(),
            created_at: at,
            updated_at: at,
            deleted_at: None,
        };
        state.agents.insert(agent.id, agent.clone());
        state.insert_key(KeyOwner::Agent(agent.id), new.key, at);
        let summary = format!(
            "registered agent {:?} in cluster {:?}",
            agent.name, agent.cluster_name
        );
        state.audit(
            actor,
            AuditAction::Create,
            ResourceKind::Agent,
            agent.id,
            summary,
            at,
        );
        Ok(agent)
    }

    async fn get_agent(&self, id: AgentId) -> Result<Agent> {
        self.state()?.live_agent(id).cloned()
    }

    async fn list_agents(&self, filter: &AgentFilter, page: &PageRequest) -> Result<Page<Agent>> {
        let state = self.state()?;
        let rows = state
            .agents
            .values()
            .filter(|a| filter.include_deleted || a.deleted_at.is_none())
            .filter(|a| {
                filter
                    .cluster_name
                    .as_ref()
                    .is_none_or(|c| &a.cluster_name == c)
            })
            .filter(|a| filter.status.is_none_or(|s| a.status == s))
            .cloned()
            .collect();
        paginate(rows, page, |a| a.id, parse_uuid, |a| a.id.to_string())
    }

    async fn update_agent(&self, actor: &Actor, id: AgentId, update: AgentUpdate) -> Result<Agent> {
        update.validate()?;
        let agent = {
            let mut state = self.state()?;
            let current = state.live_agent(id)?;
            let name = update.name.clone().unwrap_or_else(|| current.name.clone());
            let cluster = update
                .cluster_name
                .clone()
                .unwrap_or_else(|| current.cluster_name.clone());
            state.check_agent_name_free(&name, &cluster, Some(id))?;
            let at = now();
            let agent = state
                .agents
                .get_mut(&id)
                .expect("checked to be live above, under the same lock");
            agent.name = name;
            agent.cluster_name = cluster;
            if let Some(status) = update.status {
                agent.status = status;
            }
            agent.updated_at = at;
            let agent = agent.clone();
            let summary = format!(
                "updated agent {:?} in cluster {:?} (status {})",
                agent.name,
                agent.cluster_name,
                agent.status.as_str()
            );
            state.audit(
                actor,
                AuditAction::Update,
                ResourceKind::Agent,
                id,
                summary,
                at,
            );
            agent
        };
        self.publish(vec![id]);
        Ok(agent)
    }

    async fn delete_agent(&self, actor: &Actor, id: AgentId) -> Result<()> {
        {
            let mut state = self.state()?;
            let name = state.live_agent(id)?.name.clone();
            let at = now();
            let agent = state
                .agents
                .get_mut(&id)
                .expect("checked to be live above, under the same lock");
            agent.deleted_at = Some(at);
            agent.updated_at = at;
            state.revoke_keys(KeyOwner::Agent(id), at);
            let summary = format!("deleted agent {name:?} and revoked its keys");
            state.audit(
                actor,
                AuditAction::Delete,
                ResourceKind::Agent,
                id,
                summary,
                at,
            );
        }
        self.publish(vec![id]);
        Ok(())
    }

    async fn record_heartbeats(&self, beats: &[Heartbeat]) -> Result<()> {
        let mut state = self.state()?;
        for beat in beats {
            let Some(agent) = state
                .agents
                .get_mut(&beat.agent_id)
                .filter(|a| a.deleted_at.is_none())
            else {
                continue;
            };
            // A beat older than the stored one arrived late: it changes nothing, so
            // neither the time nor the capabilities move back.
            if agent.last_heartbeat.is_some_and(|last| beat.at < last) {
                continue;
            }
            agent.last_heartbeat = Some(beat.at);
            if let Some(capabilities) = &beat.capabilities {
                agent.capabilities = capabilities.clone();
            }
        }
        Ok(())
    }

    // --- labels and annotations ---------------------------------------------------------

    async fn put_metadata(
        &self,
        actor: &Actor,
        target: MetadataTarget,
        field: MetadataField,
        key: &str,
        value: &str,
    ) -> Result<Labels> {
        field.validate_entry(key, value)?;
        let mut state = self.state()?;
        let at = now();
        let slot = state.metadata_map(target, field)?;
        slot.map.insert(key.to_owned(), value.to_owned());
        *slot.updated_at = at;
        let map = slot.map.clone();
        let (kind, id, what) = metadata_resource(target);
        let summary = format!("set {} {key:?} on {what} {id}", field_name(field));
        state.audit(actor, AuditAction::SetMetadata, kind, id, summary, at);
        Ok(map)
    }

    async fn remove_metadata(
        &self,
        actor: &Actor,
        target: MetadataTarget,
        field: MetadataField,
        key: &str,
    ) -> Result<Labels> {
        validate_key(key)?;
        let mut state = self.state()?;
        let at = now();
        let slot = state.metadata_map(target, field)?;
        if slot.map.remove(key).is_none() {
            return Err(Error::not_found(field_name(field), key));
        }
        *slot.updated_at = at;
        let map = slot.map.clone();
        let (kind, id, what) = metadata_resource(target);
        let summary = format!("removed {} {key:?} from {what} {id}", field_name(field));
        state.audit(actor, AuditAction::RemoveMetadata, kind, id, summary, at);
        Ok(map)
    }

    // --- agent targets ------------------------------------------------------------------

    async fn assign_stack(
        &self,
        actor: &Actor,
        agent_id: AgentId,
        stack_id: StackId,
    ) -> Result<AgentTarget> {
        let target = {
            let mut state = self.state()?;
            let agent_name = state.live_agent(agent_id)?.name.clone();
            let stack_name = state.live_stack(stack_id)?.name.clone();
            let at = now();
            let target = match state.targets.get_mut(&(agent_id, stack_id)) {
                // Placed there: an admin's assignment makes it direct, so a later
                // decision that drops the agent leaves it alone.
                Some(target)
                    if target.removed_at.is_none() && target.source == TargetSource::Placement =>
                {
                    target.source = TargetSource::Direct;
                    target.clone()
                }
                Some(target) if target.removed_at.is_none() => {
                    return Err(Error::Conflict(format!(
                        "stack {stack_name:?} is already assigned to agent {agent_name:?}"
                    )));
                }
                // Awaiting removal: revive it rather than make a second row.
                Some(target) => {
                    target.removed_at = None;
                    target.source = TargetSource::Direct;
                    target.clone()
                }
                None => {
                    let target = AgentTarget {
                        agent_id,
                        stack_id,
                        source: TargetSource::Direct,
                        created_at: at,
                        removed_at: None,
                    };
                    state.targets.insert((agent_id, stack_id), target.clone());
                    target
                }
            };
            let summary = format!("assigned stack {stack_name:?} to agent {agent_name:?}");
            state.audit(
                actor,
                AuditAction::Assign,
                ResourceKind::AgentTarget,
                stack_id,
                summary,
                at,
            );
            target
        };
        self.publish(vec![agent_id]);
        Ok(target)
    }

    async fn unassign_stack(
        &self,
        actor: &Actor,
        agent_id: AgentId,
        stack_id: StackId,
    ) -> Result<()> {
        {
            let mut state = self.state()?;
            let agent_name = state.live_agent(agent_id)?.name.clone();
            let at = now();
            let target = state
                .targets
                .get_mut(&(agent_id, stack_id))
                .filter(|t| t.removed_at.is_none())
                .ok_or_else(|| {
                    Error::not_found("agent target", format!("{agent_id}/{stack_id}"))
                })?;
            target.removed_at = Some(at);
            // With no deployment object the agent never had anything of the stack, so
            // there is nothing to remove and no removal to wait for.
            if !state.latest_sequence.contains_key(&stack_id) {
                state.targets.remove(&(agent_id, stack_id));
            }
            let summary = format!("unassigned stack {stack_id} from agent {agent_name:?}");
            state.audit(
                actor,
                AuditAction::Unassign,
                ResourceKind::AgentTarget,
                stack_id,
                summary,
                at,
            );
        }
        self.publish(vec![agent_id]);
        Ok(())
    }

    async fn list_agent_targets(
        &self,
        filter: &TargetFilter,
        page: &PageRequest,
    ) -> Result<Page<AgentTarget>> {
        let state = self.state()?;
        let rows = state
            .targets
            .values()
            .filter(|t| filter.agent_id.is_none_or(|a| t.agent_id == a))
            .filter(|t| filter.stack_id.is_none_or(|s| t.stack_id == s))
            .cloned()
            .collect();
        paginate(
            rows,
            page,
            |t| (t.agent_id, t.stack_id),
            |c| {
                let (agent, stack) = c.split_once(':')?;
                Some((parse_uuid(agent)?, parse_uuid(stack)?))
            },
            |t| format!("{}:{}", t.agent_id, t.stack_id),
        )
    }

    async fn target_state(&self, agent_id: AgentId) -> Result<TargetState> {
        let state = self.state()?;
        state.live_agent(agent_id)?;
        let entries = state
            .targets
            .range((agent_id, StackId(uuid::Uuid::nil()))..=(agent_id, StackId(uuid::Uuid::max())))
            .filter_map(|(_, target)| {
                let sequence = state.latest_sequence.get(&target.stack_id)?;
                let object = state.objects.get(sequence)?;
                let stack = state.stacks.get(&target.stack_id)?;
                let action = if target.removed_at.is_some() || object.is_deletion_marker {
                    TargetAction::Remove
                } else {
                    TargetAction::Apply
                };
                Some(TargetStateEntry {
                    stack_id: stack.id,
                    stack_name: stack.name.clone(),
                    action,
                    deployment_object: object.clone(),
                })
            })
            .collect();
        Ok(TargetState::new(agent_id, entries))
    }

    fn watch_target_state(&self, agent_id: AgentId) -> TargetStateWatch {
        self.hub.watch(agent_id)
    }

    fn change_feed(&self) -> crate::change::ChangeFeed {
        self.hub.feed()
    }

    // --- agent events ----------------------------------------------------------------

    async fn record_agent_event(&self, actor: &Actor, new: NewAgentEvent) -> Result<AgentEvent> {
        let (event, retired) = {
            let mut state = self.state()?;
            if let Some(stored) = state.events.get(&new.id) {
                if stored.agent_id != new.agent_id {
                    return Err(Error::Conflict(format!(
                        "agent event {} belongs to another agent",
                        new.id
                    )));
                }
                return Ok(stored.clone());
            }
            let agent_name = state.live_agent(new.agent_id)?.name.clone();
            let stack_id = state.object(new.deployment_object_id)?.stack_id;
            let stack_deleted = state
                .stacks
                .get(&stack_id)
                .is_none_or(|s| s.deleted_at.is_some());
            let at = now();
            let event = AgentEvent {
                id: new.id,
                agent_id: new.agent_id,
                deployment_object_id: new.deployment_object_id,
                stack_id,
                event_type: new.event_type,
                status: new.status,
                message: new.message,
                created_at: at,
            };
            state.events.insert(event.id, event.clone());
            // A confirmed removal retires the target, so it leaves the target state.
            let retired = event.event_type == EventType::Delete
                && event.status == EventStatus::Success
                && state
                    .targets
                    .get(&(event.agent_id, stack_id))
                    .is_some_and(|t| t.removed_at.is_some() || stack_deleted);
            if retired {
                state.targets.remove(&(event.agent_id, stack_id));
            }
            let summary = format!(
                "agent {agent_name:?} reported {} {} of deployment object {}{}",
                event.event_type.as_str(),
                event.status.as_str(),
                event.deployment_object_id,
                if retired { " (target retired)" } else { "" }
            );
            state.audit(
                actor,
                AuditAction::Create,
                ResourceKind::AgentEvent,
                event.id,
                summary,
                at,
            );
            (event, retired)
        };
        if retired {
            self.publish(vec![event.agent_id]);
        }
        Ok(event)
    }

    // --- placement ---------------------------------------------------------------------

    async fn set_placement_policy(
        &self,
        actor: &Actor,
        stack_id: StackId,
        policy: Option<PlacementPolicy>,
    ) -> Result<Option<StackPlacement>> {
        if let Some(policy) = &policy {
            policy
                .validate()
                .map_err(|err| Error::Invalid(err.to_string()))?;
        }
        let (placement, agents) = {
            let mut state = self.state()?;
            let name = state.live_stack(stack_id)?.name.clone();
            let at = now();
            match policy {
                Some(policy) => {
                    let placement = state
                        .placements
                        .entry(stack_id)
                        .and_modify(|p| {
                            p.policy = policy.clone();
                            p.updated_at = at;
                        })
                        .or_insert_with(|| StackPlacement {
                            stack_id,
                            policy,
                            decision: None,
                            updated_at: at,
                            decided_at: None,
                        })
                        .clone();
                    let summary = format!("set the placement policy of stack {name:?}");
                    state.audit(
                        actor,
                        AuditAction::Update,
                        ResourceKind::Placement,
                        stack_id,
                        summary,
                        at,
                    );
                    (Some(placement), Vec::new())
                }
                None => {
                    // Removing a policy that is not there changes nothing.
                    if state.placements.remove(&stack_id).is_none() {
                        return Ok(None);
                    }
                    let change = state.sync_placement_targets(stack_id, &BTreeSet::new(), at);
                    let summary = format!(
                        "removed the placement policy of stack {name:?} ({} placement targets unassigned)",
                        change.removed.len()
                    );
                    state.audit(
                        actor,
                        AuditAction::Delete,
                        ResourceKind::Placement,
                        stack_id,
                        summary,
                        at,
                    );
                    (None, change.removed)
                }
            }
        };
        if !agents.is_empty() {
            self.publish(agents);
        }
        Ok(placement)
    }

    async fn get_placement(&self, stack_id: StackId) -> Result<Option<StackPlacement>> {
        let state = self.state()?;
        state.live_stack(stack_id)?;
        Ok(state.placements.get(&stack_id).cloned())
    }

    async fn list_placements(&self, page: &PageRequest) -> Result<Page<StackPlacement>> {
        let state = self.state()?;
        let rows = state
            .placements
            .values()
            .filter(|p| state.live_stack(p.stack_id).is_ok())
            .cloned()
            .collect();
        paginate(
            rows,
            page,
            |p| p.stack_id,
            parse_uuid,
            |p| p.stack_id.to_string(),
        )
    }

    async fn record_placement(
        &self,
        actor: &Actor,
        stack_id: StackId,
        decision: PlacementDecision,
    ) -> Result<PlacementChange> {
        let change = {
            let mut state = self.state()?;
            let name = state.live_stack(stack_id)?.name.clone();
            let stored = state
                .placements
                .get(&stack_id)
                .ok_or_else(|| Error::not_found("placement", stack_id))?;
            let decision_changed = stored.decision.as_ref() != Some(&decision);
            let before: BTreeSet<AgentId> = stored
                .decision
                .iter()
                .flat_map(|d| d.chosen.iter().copied())
                .collect();
            let chosen: BTreeSet<AgentId> = decision.chosen.iter().copied().collect();
            let at = now();
            let mut change = state.sync_placement_targets(stack_id, &chosen, at);
            change.decision_changed = decision_changed;
            if decision_changed {
                let stored = state
                    .placements
                    .get_mut(&stack_id)
                    .expect("checked above, under the same lock");
                stored.decision = Some(decision);
                stored.decided_at = Some(at);
            }
            if before != chosen || !change.added.is_empty() || !change.removed.is_empty() {
                let summary = placement_summary(&name, chosen.len(), &change);
                state.audit(
                    actor,
                    AuditAction::Place,
                    ResourceKind::Placement,
                    stack_id,
                    summary,
                    at,
                );
            }
            change
        };
        let agents: Vec<AgentId> = change
            .added
            .iter()
            .chain(&change.removed)
            .copied()
            .collect();
        if !agents.is_empty() {
            self.publish(agents);
        }
        Ok(change)
    }

    async fn record_health(&self, _actor: &Actor, new: NewHealthReport) -> Result<HealthReport> {
        new.validate()?;
        let mut state = self.state()?;
        state.live_agent(new.agent_id)?;
        let stack_id = state.object(new.deployment_object_id)?.stack_id;
        let report = HealthReport {
            agent_id: new.agent_id,
            stack_id,
            deployment_object_id: new.deployment_object_id,
            status: crate::health::summarize(&new.resources),
            summary: new.summary,
            resources: new.resources,
            reported_at: now(),
        };
        state
            .health
            .insert((stack_id, new.agent_id), report.clone());
        Ok(report)
    }

    async fn stack_health(&self, stack_id: StackId) -> Result<Vec<HealthReport>> {
        let state = self.state()?;
        if !state.stacks.contains_key(&stack_id) {
            return Err(Error::not_found("stack", stack_id));
        }
        Ok(state
            .health
            .range((stack_id, AgentId(uuid::Uuid::nil()))..=(stack_id, AgentId(uuid::Uuid::max())))
            .map(|(_, report)| report.clone())
            .collect())
    }

    async fn get_agent_event(&self, id: AgentEventId) -> Result<AgentEvent> {
        self.state()?
            .events
            .get(&id)
            .cloned()
            .ok_or_else(|| Error::not_found("agent event", id))
    }

    async fn list_agent_events(
        &self,
        filter: &AgentEventFilter,
        page: &PageRequest,
    ) -> Result<Page<AgentEvent>> {
        let state = self.state()?;
        let rows = state
            .events
            .values()
            .filter(|e| filter.agent_id.is_none_or(|a| e.agent_id == a))
            .filter(|e| filter.stack_id.is_none_or(|s| e.stack_id == s))
            .filter(|e| {
                filter
                    .deployment_object_id
                    .is_none_or(|d| e.deployment_object_id == d)
            })
            .filter(|e| filter.event_type.is_none_or(|t| e.event_type == t))
            .filter(|e| filter.status.is_none_or(|s| e.status == s))
            .filter(|e| filter.since.is_none_or(|since| e.created_at >= since))
            .filter(|e| filter.until.is_none_or(|until| e.created_at < until))
            .cloned()
            .collect();
        paginate(rows, page, |e| e.id, parse_uuid, |e| e.id.to_string())
    }

    // --- generators --------------------------------------------------------------------

    async fn create_generator(&self, actor: &Actor, new: NewGenerator) -> Result<Generator> {
        new.validate()?;
        let mut state = self.state()?;
        state.check_generator_name_free(&new.name, None)?;
        state.check_short_id_free(&new.key)?;
        let at = now();
        let generator = Generator {
            id: GeneratorId::new(),
            name: new.name,
            description: new.description,
            created_at: at,
            updated_at: at,
            deleted_at: None,
        };
        state.generators.insert(generator.id, generator.clone());
        state.insert_key(KeyOwner::Generator(generator.id), new.key, at);
        let summary = format!("created generator {:?}", generator.name);
        state.audit(
            actor,
            AuditAction::Create,
            ResourceKind::Generator,
            generator.id,
            summary,
            at,
        );
        Ok(generator)
    }

    async fn get_generator(&self, id: GeneratorId) -> Result<Generator> {
        self.state()?.live_generator(id).cloned()
    }

    async fn list_generators(
        &self,
        filter: &GeneratorFilter,
        page: &PageRequest,
    ) -> Result<Page<Generator>> {
        let state = self.state()?;
        let rows = state
            .generators
            .values()
            .filter(|g| filter.include_deleted || g.deleted_at.is_none())
            .cloned()
            .collect();
        paginate(rows, page, |g| g.id, parse_uuid, |g| g.id.to_string())
    }

    async fn update_generator(
        &self,
        actor: &Actor,
        id: GeneratorId,
        update: GeneratorUpdate,
    ) -> Result<Generator> {
        update.validate()?;
        let mut state = self.state()?;
        state.live_generator(id)?;
        if let Some(name) = &update.name {
            state.check_generator_name_free(name, Some(id))?;
        }
        let at = now();
        let generator = state
            .generators
            .get_mut(&id)
            .expect("checked to be live above, under the same lock");
        if let Some(name) = update.name {
            generator.name = name;
        }
        if let Some(description) = update.description {
            generator.description = description;
        }
        generator.updated_at = at;
        let generator = generator.clone();
        let summary = format!("updated generator {:?}", generator.name);
        state.audit(
            actor,
            AuditAction::Update,
            ResourceKind::Generator,
            id,
            summary,
            at,
        );
        Ok(generator)
    }

    async fn delete_generator(&self, actor: &Actor, id: GeneratorId) -> Result<()> {
        let mut state = self.state()?;
        let name = state.live_generator(id)?.name.clone();
        let at = now();
        let generator = state
            .generators
            .get_mut(&id)
            .expect("checked to be live above, under the same lock");
        generator.deleted_at = Some(at);
        generator.updated_at = at;
        state.revoke_keys(KeyOwner::Generator(id), at);
        let summary = format!("deleted generator {name:?} and revoked its keys");
        state.audit(
            actor,
            AuditAction::Delete,
            ResourceKind::Generator,
            id,
            summary,
            at,
        );
        Ok(())
    }

    // --- templates -----------------------------------------------------------------

    async fn create_template(&self, actor: &Actor, new: NewTemplate) -> Result<Template> {
        new.validate()?;
        let mut state = self.state()?;
        if let Some(generator) = new.generator_id {
            state.live_generator(generator)?;
        }
        state.check_template_name_free(&new.name)?;
        let at = now();
        let id = TemplateId::new();
        let row = TemplateRow {
            id,
            name: new.name,
            description: new.description,
            generator_id: new.generator_id,
            labels: new.labels,
            annotations: new.annotations,
            versions: vec![TemplateVersion {
                template_id: id,
                version: 1,
                content: new.content,
                parameters_schema: new.parameters_schema,
                created_at: at,
            }],
            created_at: at,
            updated_at: at,
            deleted_at: None,
        };
        let template = row.to_template();
        let summary = format!("created template {:?} at version 1", row.name);
        state.templates.insert(id, row);
        state.audit(
            actor,
            AuditAction::Create,
            ResourceKind::Template,
            id,
            summary,
            at,
        );
        Ok(template)
    }

    async fn get_template(&self, id: TemplateId) -> Result<Template> {
        Ok(self.state()?.live_template(id)?.to_template())
    }

    async fn get_template_version(&self, id: TemplateId, version: i32) -> Result<TemplateVersion> {
        let state = self.state()?;
        let row = state
            .templates
            .get(&id)
            .ok_or_else(|| Error::not_found("template", id))?;
        row.versions
            .iter()
            .find(|v| v.version == version)
            .cloned()
            .ok_or_else(|| Error::not_found("template version", format!("{id}@{version}")))
    }

    async fn list_templates(
        &self,
        filter: &TemplateFilter,
        page: &PageRequest,
    ) -> Result<Page<Template>> {
        let state = self.state()?;
        let rows = state
            .templates
            .values()
            .filter(|t| filter.include_deleted || t.deleted_at.is_none())
            .filter(|t| {
                filter
                    .generator_id
                    .is_none_or(|g| t.generator_id == Some(g))
            })
            .map(TemplateRow::to_template)
            .collect();
        paginate(rows, page, |t| t.id, parse_uuid, |t| t.id.to_string())
    }

    async fn list_template_versions(
        &self,
        id: TemplateId,
        page: &PageRequest,
    ) -> Result<Page<TemplateVersion>> {
        let state = self.state()?;
        let row = state
            .templates
            .get(&id)
            .ok_or_else(|| Error::not_found("template", id))?;
        paginate(
            row.versions.clone(),
            page,
            |v| v.version,
            |c| c.parse().ok(),
            |v| v.version.to_string(),
        )
    }

    async fn add_template_version(
        &self,
        actor: &Actor,
        id: TemplateId,
        version: NewTemplateVersion,
    ) -> Result<Template> {
        let mut state = self.state()?;
        state.live_template(id)?;
        let at = now();
        let row = state
            .templates
            .get_mut(&id)
            .expect("checked to be live above, under the same lock");
        let number = row.versions.last().map_or(1, |v| v.version + 1);
        row.versions.push(TemplateVersion {
            template_id: id,
            version: number,
            content: version.content,
            parameters_schema: version.parameters_schema,
            created_at: at,
        });
        row.updated_at = at;
        let template = row.to_template();
        let summary = format!("added version {number} to template {:?}", template.name);
        state.audit(
            actor,
            AuditAction::Update,
            ResourceKind::Template,
            id,
            summary,
            at,
        );
        Ok(template)
    }

    async fn delete_template(&self, actor: &Actor, id: TemplateId) -> Result<()> {
        let mut state = self.state()?;
        let name = state.live_template(id)?.name.clone();
        let at = now();
        let row = state
            .templates
            .get_mut(&id)
            .expect("checked to be live above, under the same lock");
        row.deleted_at = Some(at);
        row.updated_at = at;
        let summary = format!("deleted template {name:?}");
        state.audit(
            actor,
            AuditAction::Delete,
            ResourceKind::Template,
            id,
            summary,
            at,
        );
        Ok(())
    }

    // --- keys ----------------------------------------------------------------------

    async fn find_api_key(&self, short_id: &str) -> Result<Option<ApiKey>> {
        let state = self.state()?;
        Ok(state
            .keys
            .values()
            .find(|k| k.short_id == short_id && k.revoked_at.is_none())
            .cloned())
    }

    async fn active_api_keys(&self, owner: KeyOwner) -> Result<Vec<ApiKey>> {
        let state = self.state()?;
        Ok(state
            .keys
            .values()
            .filter(|k| k.owner == owner && k.revoked_at.is_none())
            .cloned()
            .collect())
    }

    async fn rotate_api_key(
        &self,
        actor: &Actor,
        owner: KeyOwner,
        key: StoredKey,
    ) -> Result<ApiKey> {
        let mut state = self.state()?;
        let whose = match owner {
            KeyOwner::Admin => "the admin".to_owned(),
            KeyOwner::Agent(id) => format!("agent {:?}", state.live_agent(id)?.name),
            KeyOwner::Generator(id) => format!("generator {:?}", state.live_generator(id)?.name),
        };
        state.check_short_id_free(&key)?;
        let at = now();
        state.revoke_keys(owner, at);
        let record = state.insert_key(owner, key, at);
        let summary = format!("issued a new key to {whose} and revoked its previous keys");
        state.audit(
            actor,
            AuditAction::RotateKey,
            ResourceKind::ApiKey,
            record.id,
            summary,
            at,
        );
        Ok(record)
    }

    // --- audit -----------------------------------------------------------------------

    async fn list_audit_records(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditRecord>> {
        let state = self.state()?;
        let rows = state
            .audit
            .values()
            .filter(|r| filter.actor_kind.is_none_or(|k| r.actor.kind() == k))
            .filter(|r| filter.actor_id.is_none_or(|id| r.actor.id() == Some(id)))
            .filter(|r| filter.action.is_none_or(|a| r.action == a))
            .filter(|r| filter.resource_kind.is_none_or(|k| r.resource_kind == k))
            .filter(|r| filter.resource_id.is_none_or(|id| r.resource_id == id))
            .filter(|r| filter.since.is_none_or(|since| r.created_at >= since))
            .filter(|r| filter.until.is_none_or(|until| r.created_at < until))
            .cloned()
            .collect();
        paginate(rows, page, |r| r.id, parse_uuid, |r| r.id.to_string())
    }
}
