//! The [`Store`] trait: persistence of the whole model.
//!
//! # Contract shared by every method
//!
//! - Each method is one transaction: it either happens completely or not at all.
//! - Every method that changes the model (takes an [`Actor`]) writes exactly one
//!   [`AuditRecord`] in that same transaction. Heartbeats are the one exception: they
//!   record liveness, not a change, and may be written in coalesced batches.
//! - Inputs are validated before anything is written (names, labels, annotations;
//!   deployment objects arrive already parsed as [`NewDeploymentObject`]); a rejected
//!   input leaves the store unchanged and returns [`Error::Invalid`].
//! - Soft-deleted stacks, agents, generators and templates are `NotFound` to `get_*`
//!   and changes, and appear in listings only when a filter asks for deleted rows.
//!   Their names become free for reuse.
//! - Deployment objects, agent events and audit records are append-only: no method
//!   updates or deletes them. Nor the audit chain: sealing only appends links.
//! - Listings order by a unique key (ids are time-ordered; deployment objects order by
//!   `sequence`) and page with [`PageRequest`] cursors.
//! - After a commit that may change an agent's target state the store wakes that
//!   agent's [`TargetStateWatch`]es.

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::audit_chain::{ChainCheck, ChainHead, ChainLink};
use crate::change::{ChangeFeed, TargetStateWatch};
use crate::id::{
    AgentEventId, AgentId, DeploymentObjectId, GeneratorId, PlanId, StackId, TemplateId,
};
use crate::metadata::Labels;
use crate::model::{
    Actor, Agent, AgentEvent, AgentTarget, AgentUpdate, ApiKey, AppliedState, AppliedVersions,
    AuditRecord, DeploymentObject, Generator, GeneratorUpdate, HealthReport, Heartbeat, KeyOwner,
    ListedDeploymentObject, ListedTemplate, MetadataField, MetadataTarget, NewAgent, NewAgentEvent,
    NewDeploymentObject, NewGenerator, NewHealthReport, NewPlan, NewStack, NewTemplate,
    NewTemplateVersion, PlacementChange, Stack, StackPlacement, StackUpdate, StackWorld, StoredKey,
    StoredPlan, Template, TemplateVersion,
};
use crate::page::{ContentListing, Page, PageRequest};
use crate::placement::{PlacementDecision, PlacementPolicy};
use crate::plan::{GuardOverrides, ItemDigest};
use crate::target_state::{AgentTargetState, TargetState};

mod confirm;
mod error;
mod filter;
mod rollouts;
mod webhooks;

pub use confirm::{Confirmation, Confirmed, ConfirmedChange, ConfirmedWrite, HarmlessAppend};
pub use error::Error;
pub use filter::{
    AgentEventFilter, AgentFilter, AuditFilter, DeliveryFilter, GeneratorFilter, StackFilter,
    SubscriptionFilter, TargetFilter, TemplateFilter,
};
pub use rollouts::{
    AppendEffect, GateOutcomeRecord, RolloutDetails, RolloutFilter, RolloutStore, ended_by_append,
    needs_signal, next_eval_after, rollout_final, rollout_in_progress, rollout_version_conflict,
};
pub use webhooks::WebhookStore;

/// Result of a store operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Persistence of Brokkr's model. Implemented by `brokkr-store` on PostgreSQL and
/// SQLite and, behind the `testing` feature, by an in-memory store; every
/// implementation passes the conformance suite in `brokkr_core::testing::conformance`.
///
/// See the [module documentation](self) for the contract every method shares.
#[async_trait]
pub trait Store: WebhookStore + RolloutStore + Send + Sync + 'static {
    /// Succeeds when the database answers (for readiness probes).
    async fn ping(&self) -> Result<()>;

    // --- stacks ---------------------------------------------------------------------

    /// Creates a stack. `Conflict` if a live stack has the name; `NotFound` if
    /// `generator_id` names no live generator.
    async fn create_stack(&self, actor: &Actor, new: NewStack) -> Result<Stack>;

    /// A live stack.
    async fn get_stack(&self, id: StackId) -> Result<Stack>;

    /// Stacks by filter, ordered by id.
    async fn list_stacks(&self, filter: &StackFilter, page: &PageRequest) -> Result<Page<Stack>>;

    /// Renames or re-describes a live stack. `Conflict` on a duplicate name.
    async fn update_stack(&self, actor: &Actor, id: StackId, update: StackUpdate) -> Result<Stack>;

    /// Soft-deletes a live stack and appends its deletion marker in the same
    /// transaction, so every agent responsible for it receives a removal. Returns the
    /// marker.
    async fn delete_stack(&self, actor: &Actor, id: StackId) -> Result<DeploymentObject>;

    // --- deployment objects -----------------------------------------------------------

    /// Appends a deployment object to a live stack, assigning a `sequence` unique in
    /// the store and strictly greater than every sequence of the stack committed
    /// before it, also under concurrent appends (so a reader paging a stack by
    /// sequence never skips an object that commits late). Appends to different stacks
    /// must not wait for each other. It becomes the stack's latest and reaches every agent
    /// responsible for the stack. `NotFound` for a missing or deleted stack.
    async fn append_deployment_object(
        &self,
        actor: &Actor,
        new: NewDeploymentObject,
    ) -> Result<DeploymentObject>;

    /// [`Store::append_deployment_object`], only when the guard's shortcut clears it,
    /// judged in the append's own transaction: no reverted rollout of the stack had the
    /// same content ([`RolloutStore::rejecting_rollout`]), and it keeps every object of
    /// every version the stack's agents run, each with a live target
    /// ([`crate::plan::append_keeps_everything`] over [`Store::applied_versions`]).
    /// Otherwise nothing is written and the append comes back for the full guard. The
    /// default hands every append back: correct, only slower.
    async fn append_if_harmless(
        &self,
        actor: &Actor,
        new: NewDeploymentObject,
    ) -> Result<HarmlessAppend> {
        let _ = actor;
        Ok(HarmlessAppend::NeedsPlan(new))
    }

    /// One deployment object, also of a deleted stack (history stays readable).
    async fn get_deployment_object(&self, id: DeploymentObjectId) -> Result<DeploymentObject>;

    /// A stack's deployment objects ordered by `sequence`. Works for deleted stacks;
    /// `NotFound` only for a stack that never existed.
    ///
    /// With [`ContentListing::Omit`] no entry carries its YAML and the store does not read
    /// it, so a page's memory does not depend on the objects' sizes. With
    /// [`ContentListing::Include`] the page also ends before its YAML passes the budget
    /// (at least one object per page), and the store reads the YAML of no object
    /// beyond the page's end. `yaml_bytes` is filled either way.
    async fn list_deployment_objects(
        &self,
        stack_id: StackId,
        yaml: ContentListing,
        page: &PageRequest,
    ) -> Result<Page<ListedDeploymentObject>>;

    // --- agents -------------------------------------------------------------------

    /// Registers an agent with its first key. `Conflict` if a live agent has the same
    /// (name, cluster_name) or the key's short id is taken.
    async fn create_agent(&self, actor: &Actor, new: NewAgent) -> Result<Agent>;

    /// A live agent.
    async fn get_agent(&self, id: AgentId) -> Result<Agent>;

    /// Agents by filter, ordered by id.
    async fn list_agents(&self, filter: &AgentFilter, page: &PageRequest) -> Result<Page<Agent>>;

    /// Changes a live agent's registration.
    async fn update_agent(&self, actor: &Actor, id: AgentId, update: AgentUpdate) -> Result<Agent>;

    /// Soft-deletes a live agent and revokes its keys in the same transaction. Its
    /// targets stay, so re-registering does not silently drop workloads.
    async fn delete_agent(&self, actor: &Actor, id: AgentId) -> Result<()>;

    /// Records a batch of heartbeats: per agent the latest `at` wins (an older beat
    /// never moves `last_heartbeat` back) and capabilities, when given, replace the
    /// stored ones. Unknown or deleted agents are skipped. Not audited.
    async fn record_heartbeats(&self, beats: &[Heartbeat]) -> Result<()>;

    // --- labels and annotations ---------------------------------------------------------

    /// Sets one label or annotation of a live stack, agent or template, validating key
    /// and value. Returns the whole map after the change.
    async fn put_metadata(
        &self,
        actor: &Actor,
        target: MetadataTarget,
        field: MetadataField,
        key: &str,
        value: &str,
    ) -> Result<Labels>;

    /// Removes one label or annotation. `NotFound` if the key is not set. Returns the
    /// whole map after the change.
    async fn remove_metadata(
        &self,
        actor: &Actor,
        target: MetadataTarget,
        field: MetadataField,
        key: &str,
    ) -> Result<Labels>;

    // --- agent targets ------------------------------------------------------------------

    /// Makes `agent_id` responsible for `stack_id` (both live). Re-assigning a target
    /// that is awaiting removal revives it. `Conflict` if it is already assigned.
    async fn assign_stack(
        &self,
        actor: &Actor,
        agent_id: AgentId,
        stack_id: StackId,
    ) -> Result<AgentTarget>;

    /// Unassigns a stack: the target stays, marked removed, and the agent's target
    /// state carries a removal for the stack until the agent reports a successful
    /// `Delete` event for it. `NotFound` if it is not assigned.
    async fn unassign_stack(
        &self,
        actor: &Actor,
        agent_id: AgentId,
        stack_id: StackId,
    ) -> Result<()>;

    /// Targets by filter, ordered by (agent id, stack id).
    async fn list_agent_targets(
        &self,
        filter: &TargetFilter,
        page: &PageRequest,
    ) -> Result<Page<AgentTarget>>;

    /// The agent's target state: per target, the stack's latest deployment object with
    /// `Apply`, or `Remove` when the stack was deleted (its latest object is the
    /// deletion marker) or the target was unassigned. Stacks with no deployment object
    /// yet are left out. Runs a constant number of indexed queries whose cost grows only
    /// with the agent's own targets, never with events, old versions or other agents.
    /// `NotFound` for a missing or deleted agent.
    async fn target_state(&self, agent_id: AgentId) -> Result<TargetState>;

    /// The target states of several agents, each with the agent's admin status, for a
    /// cache refilling many entries at once (a change that reaches a whole fleet wakes
    /// every agent's poll together). Missing and deleted agents are left out; the order
    /// is unspecified. The default asks [`Store::get_agent`] and [`Store::target_state`]
    /// for each agent; a database store should answer with a constant number of
    /// queries per call.
    async fn target_states(&self, agents: &[AgentId]) -> Result<Vec<AgentTargetState>> {
        let mut out = Vec::with_capacity(agents.len());
        for &agent in agents {
            let found = async {
                let agent_status = self.get_agent(agent).await?.status;
                let state = self.target_state(agent).await?;
                Ok(AgentTargetState {
                    agent_status,
                    state,
                })
            };
            match found.await {
                Ok(found) => out.push(found),
                Err(Error::NotFound { .. }) => {}
                Err(err) => return Err(err),
            }
        }
        Ok(out)
    }

    /// A watch that wakes when the agent's target state may have changed, including by
    /// a write through another store instance on the same database where the backend
    /// supports it. Make it before reading the target state.
    fn watch_target_state(&self, agent_id: AgentId) -> TargetStateWatch;

    /// Every target-state change from now on, for caches holding many agents' target
    /// states (same sources and guarantees as [`Store::watch_target_state`]).
    fn change_feed(&self) -> ChangeFeed;

    // --- agent events ----------------------------------------------------------------

    /// Records the outcome of an agent's attempt. Idempotent on `new.id`: reporting the
    /// same id again returns the stored event unchanged (and writes no audit record),
    /// though what it says still counts: the agent's applied state, and a removal it
    /// confirms again retires its target;
    /// `Conflict` if that id belongs to another agent. `NotFound` for an unknown agent
    /// or deployment object. A successful `Delete` for a target awaiting removal, or for
    /// a deleted stack, retires that target in the same transaction, so it leaves the
    /// agent's target state.
    async fn record_agent_event(&self, actor: &Actor, new: NewAgentEvent) -> Result<AgentEvent>;

    /// One event.
    async fn get_agent_event(&self, id: AgentEventId) -> Result<AgentEvent>;

    /// Events by filter, ordered by id (time-ordered).
    async fn list_agent_events(
        &self,
        filter: &AgentEventFilter,
        page: &PageRequest,
    ) -> Result<Page<AgentEvent>>;

    // --- placement ---------------------------------------------------------------------

    /// Sets a live stack's placement policy (validated with
    /// [`PlacementPolicy::validate`](crate::PlacementPolicy::validate); `Invalid`
    /// otherwise), or removes it with `None` (its placement targets are then unassigned,
    /// as by a decision that chooses nobody). Audited. Computing the decision is the
    /// caller's job ([`Store::record_placement`]).
    async fn set_placement_policy(
        &self,
        actor: &Actor,
        stack_id: StackId,
        policy: Option<PlacementPolicy>,
    ) -> Result<Option<StackPlacement>>;

    /// A stack's policy and stored decision; `None` without a policy. `NotFound` for an
    /// unknown or deleted stack.
    async fn get_placement(&self, stack_id: StackId) -> Result<Option<StackPlacement>>;

    /// Every live stack with a policy, ordered by stack id, for the placement
    /// controller.
    async fn list_placements(&self, page: &PageRequest) -> Result<Page<StackPlacement>>;

    /// Stores `decision` for a stack with a policy and makes its placement targets
    /// follow it, in one transaction: every chosen or leaving agent
    /// ([`PlacementDecision::keeps`]) without a live target gets one (source
    /// `placement`); every placement target whose agent is neither chosen nor leaving
    /// is unassigned (it stays in the agent's target state as a removal until the
    /// agent confirms). Direct targets are never touched, and a direct target counts
    /// as "has the stack". Writes one audit record when the chosen set changes, none
    /// otherwise, and wakes the agents whose target state changed. `NotFound` for an
    /// unknown or deleted stack, or one without a policy.
    async fn record_placement(
        &self,
        actor: &Actor,
        stack_id: StackId,
        decision: PlacementDecision,
    ) -> Result<PlacementChange>;

    /// Sets a live stack's policy and records `decision` for it at once, provided the
    /// stored decision still chooses `expected` (`None`: the stack has no policy or no
    /// decision yet): the path of a new policy decided by a caller that knows the
    /// stored decision. Answers the stored placement and what the decision changed,
    /// with the audit records and wake-ups of both writes; or `Ok(None)`, writing
    /// nothing, when the stored decision differs: the caller decided from a stale view
    /// and decides again from [`Store::get_placement`]. `NotFound` for an unknown or
    /// deleted stack, `Invalid` for an invalid policy.
    ///
    /// The default runs [`Store::set_placement_policy`] and [`Store::record_placement`]
    /// one after the other, which is not atomic; a store with transactions writes both
    /// in one.
    async fn place_stack(
        &self,
        actor: &Actor,
        stack_id: StackId,
        policy: PlacementPolicy,
        decision: PlacementDecision,
        expected: Option<Vec<AgentId>>,
    ) -> Result<Option<(StackPlacement, PlacementChange)>> {
        let stored = self.get_placement(stack_id).await?;
        let stored = stored.and_then(|p| p.decision).map(|d| d.chosen);
        if !same_agents(stored.as_deref(), expected.as_deref()) {
            return Ok(None);
        }
        self.set_placement_policy(actor, stack_id, Some(policy))
            .await?;
        let change = self.record_placement(actor, stack_id, decision).await?;
        let placement = self
            .get_placement(stack_id)
            .await?
            .ok_or_else(|| Error::not_found("placement", stack_id))?;
        Ok(Some((placement, change)))
    }

    // --- health ------------------------------------------------------------------------

    /// Stores an agent's latest health for the stack of `new.deployment_object_id`,
    /// replacing its previous report for that stack (one row per agent and stack, so
    /// the cost never grows with history). `NotFound` for an unknown agent or
    /// deployment object. Like heartbeats, health is observed state, not a change
    /// anyone made, so it writes no audit record.
    async fn record_health(&self, actor: &Actor, new: NewHealthReport) -> Result<HealthReport>;

    /// The latest report of every agent for a stack (also a deleted one), ordered by
    /// agent id. An unknown stack is `NotFound`.
    async fn stack_health(&self, stack_id: StackId) -> Result<Vec<HealthReport>>;

    // --- generators --------------------------------------------------------------------

    /// Creates a generator with its first key. `Conflict` on a duplicate live name or
    /// short id.
    async fn create_generator(&self, actor: &Actor, new: NewGenerator) -> Result<Generator>;

    /// A live generator.
    async fn get_generator(&self, id: GeneratorId) -> Result<Generator>;

    /// Generators by filter, ordered by id.
    async fn list_generators(
        &self,
        filter: &GeneratorFilter,
        page: &PageRequest,
    ) -> Result<Page<Generator>>;

    /// Renames or re-describes a live generator.
    async fn update_generator(
        &self,
        actor: &Actor,
        id: GeneratorId,
        update: GeneratorUpdate,
    ) -> Result<Generator>;

    /// Soft-deletes a generator and revokes its keys. Its stacks stay.
    async fn delete_generator(&self, actor: &Actor, id: GeneratorId) -> Result<()>;

    // --- templates -----------------------------------------------------------------

    /// Creates a template at version 1. `Conflict` on a duplicate live name;
    /// `NotFound` if `generator_id` names no live generator.
    async fn create_template(&self, actor: &Actor, new: NewTemplate) -> Result<Template>;

    /// A live template with its latest version.
    async fn get_template(&self, id: TemplateId) -> Result<Template>;

    /// One version of a template, also of a deleted template.
    async fn get_template_version(&self, id: TemplateId, version: i32) -> Result<TemplateVersion>;

    /// Templates by filter, ordered by id, each with its latest version.
    ///
    /// With [`ContentListing::Omit`] no entry carries its latest version's source or
    /// parameter schema and the store does not read them; with
    /// [`ContentListing::Include`] the page also ends before their sizes together pass
    /// the budget (at least one template per page), and the store reads the content of
    /// no template beyond the page's end. The sizes are filled either way.
    async fn list_templates(
        &self,
        filter: &TemplateFilter,
        content: ContentListing,
        page: &PageRequest,
    ) -> Result<Page<ListedTemplate>>;

    /// A template's versions, ordered by version number.
    async fn list_template_versions(
        &self,
        id: TemplateId,
        page: &PageRequest,
    ) -> Result<Page<TemplateVersion>>;

    /// Appends version `latest + 1` to a live template; older versions stay readable.
    async fn add_template_version(
        &self,
        actor: &Actor,
        id: TemplateId,
        version: NewTemplateVersion,
    ) -> Result<Template>;

    /// Soft-deletes a template.
    async fn delete_template(&self, actor: &Actor, id: TemplateId) -> Result<()>;

    // --- keys ----------------------------------------------------------------------

    /// The unrevoked key with this short id, if any. Callers verify the presented key
    /// against its hash in constant time (and against a dummy hash on a miss).
    async fn find_api_key(&self, short_id: &str) -> Result<Option<ApiKey>>;

    /// The owner's unrevoked keys.
    async fn active_api_keys(&self, owner: KeyOwner) -> Result<Vec<ApiKey>>;

    /// Issues `key` to `owner` and revokes the owner's previous keys in the same
    /// transaction. `NotFound` for a missing or deleted agent or generator; `Conflict`
    /// if the short id is taken.
    async fn rotate_api_key(
        &self,
        actor: &Actor,
        owner: KeyOwner,
        key: StoredKey,
    ) -> Result<ApiKey>;

    /// A counter that moves whenever keys are revoked (a rotation, an agent or
    /// generator deleted), by any process writing this store: control planes poll it
    /// to forget cached keys, so that a revocation made elsewhere (another replica,
    /// the command line) takes effect everywhere within a poll period. Only changes of
    /// the value mean anything.
    async fn key_revocations(&self) -> Result<u64>;

    // --- plans and guard ------------------------------------------------------------

    /// The items of deployment objects (written with each object by
    /// [`Store::append_deployment_object`] from [`NewDeploymentObject::items`]), in any
    /// order; ids that name no object are left out. One query whatever the count; an
    /// object stored before items were kept is parsed once and its items written then.
    async fn deployment_object_items(
        &self,
        ids: &[DeploymentObjectId],
    ) -> Result<Vec<(DeploymentObjectId, Vec<ItemDigest>)>>;

    /// Per agent that ever reported a successful event for the stack, the deployment
    /// object of its latest one (`None` when that was a `Delete`), ordered by agent id.
    /// Kept current by [`Store::record_agent_event`] in its transaction (one row per
    /// agent and stack), so the cost grows with the stack's agents, never with history.
    /// A successful report repeated with a stored id counts again (ids are derived from
    /// what they report, so an agent re-applying an object after the stack came back
    /// repeats one).
    /// `NotFound` for a stack that never existed.
    async fn applied_states(&self, stack_id: StackId) -> Result<Vec<AppliedState>>;

    /// The stack's world for a plan ([`StackWorld`]): targets, applied states and latest
    /// live object, read together (one snapshot where the database gives one). Grows
    /// with the stack's agents, never with history. `NotFound` for a stack that never
    /// existed.
    async fn stack_world(&self, stack_id: StackId) -> Result<StackWorld>;

    /// The distinct versions the stack's agents run and whether one runs it untargeted
    /// ([`AppliedVersions`]), as [`AppliedVersions::of`] the stack's world; the guard
    /// asks it of appends [`Store::append_if_harmless`] hands back. The default reads
    /// the world: answer it with aggregates. `NotFound` for a stack that never existed.
    async fn applied_versions(&self, stack_id: StackId) -> Result<AppliedVersions> {
        Ok(AppliedVersions::of(&self.stack_world(stack_id).await?))
    }

    /// Makes a confirmed change in one transaction: reads the plan and the stack's
    /// world, recomputes the digest with `confirmation.digest`, and only when the plan is
    /// unused, unexpired, of this stack and its digest still matches, marks it used
    /// (audited as `confirm` of a `plan`) and writes `change` (audited and announced
    /// as the store method it stands for). The world cannot move between the check and
    /// the write: the transaction holds the stack's lock and the rows it read (a
    /// store with one writer holds everything).
    async fn write_confirmed(
        &self,
        actor: &Actor,
        confirmation: &Confirmation<'_>,
        change: ConfirmedChange,
    ) -> Result<Confirmed>;

    /// A stack's guard overrides (empty when none were set). `NotFound` for a missing
    /// or deleted stack.
    async fn guard_overrides(&self, stack_id: StackId) -> Result<GuardOverrides>;

    /// Replaces a live stack's guard overrides (empty clears them). Audited as an
    /// update of the stack. Who may loosen them is the caller's rule.
    async fn set_guard_overrides(
        &self,
        actor: &Actor,
        stack_id: StackId,
        overrides: GuardOverrides,
    ) -> Result<GuardOverrides>;

    /// Stores a plan for a live stack. Audited (`create` of a `plan`).
    async fn create_plan(&self, actor: &Actor, new: NewPlan) -> Result<StoredPlan>;

    /// A plan, consumed or not, expired or not. `NotFound` for an unknown id.
    async fn get_plan(&self, id: PlanId) -> Result<StoredPlan>;

    /// The stack's newest held plan (the placement decision the guard holds), unless it
    /// is consumed or expired at `now`: a newer held plan supersedes older ones, so a
    /// release or an expiry leaves no older one showing.
    async fn held_plan(&self, stack_id: StackId, now: DateTime<Utc>) -> Result<Option<StoredPlan>>;

    // --- audit -----------------------------------------------------------------------

    /// Audit records by filter, ordered by id (time-ordered).
    async fn list_audit_records(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditRecord>>;

    // --- audit chain (see `crate::audit_chain`) ---------------------------------------

    /// Links up to `limit` audit records that are not in the audit chain yet after its
    /// head, by id within the call, in one transaction; returns how many it linked (a
    /// store may link fewer per call than asked: call again until it returns 0).
    /// Finding them never scans history (each record is queued as it is written). One
    /// call links at a time, across every replica on the database; writers never wait
    /// for it. Each record is linked exactly once, with the content hash it was written
    /// with (see [`LinkedRecord::sealed_hash`](crate::audit_chain::LinkedRecord::sealed_hash));
    /// with nothing pending it changes nothing.
    async fn seal_audit_chain(&self, limit: usize) -> Result<usize>;

    /// Checks up to `limit` links of the audit chain in position order after `after`
    /// (the `last` of the previous page; `None`: from the start), recomputing each
    /// record's content hash from its stored fields and each chain hash from the
    /// previous one ([`check_page`](crate::audit_chain::check_page)). Reads a bounded
    /// page whatever the chain's length (a store may read fewer links than asked, and
    /// says so with `more`); stops at the first link that does not match.
    async fn verify_audit_chain(
        &self,
        after: Option<ChainHead>,
        limit: usize,
    ) -> Result<ChainCheck>;

    /// How many audit records wait to be sealed into the chain.
    async fn unsealed_audit_records(&self) -> Result<u64>;

    /// Up to `limit` links of the audit chain as stored, in position order after
    /// position `after` (0: from the start), so anyone can recompute the chain. A
    /// shorter list than `limit` ends the chain.
    async fn list_audit_chain(&self, after: u64, limit: usize) -> Result<Vec<ChainLink>>;

    // --- fleet overview --------------------------------------------------------------

    /// Live agents by status, an enabled agent counting as active when its written
    /// heartbeat is at or after `active_since`; live stacks by the worst status of the
    /// latest reports on them. Counted by the database, whatever the fleet's size.
    async fn fleet_counts(&self, active_since: DateTime<Utc>) -> Result<crate::model::FleetCounts>;
}

/// Whether two sets of chosen agents are the same, whatever their order; `None` (no
/// decision) equals only `None`.
pub fn same_agents(a: Option<&[AgentId]>, b: Option<&[AgentId]>) -> bool {
    match (a, b) {
        (Some(a), Some(b)) => {
            let (mut a, mut b) = (a.to_vec(), b.to_vec());
            a.sort_unstable();
            b.sort_unstable();
            a == b
        }
        (a, b) => a.is_none() && b.is_none(),
    }
}
