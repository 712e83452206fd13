//! `impl Store for SqlStore`: the trait's surface, delegating to one module per
//! resource.

use async_trait::async_trait;
use brokkr_core::page::{Page, PageRequest};
use brokkr_core::store::{
    AgentEventFilter, AgentFilter, AuditFilter, GeneratorFilter, Result, StackFilter, Store,
    TargetFilter, TemplateFilter,
};
use brokkr_core::{
    Actor, Agent, AgentEvent, AgentEventId, AgentId, AgentTarget, AgentTargetState, AgentUpdate,
    ApiKey, AuditRecord, ContentListing, DeploymentObject, DeploymentObjectId, GeneratorId,
    GeneratorUpdate, HealthReport, Heartbeat, KeyOwner, Labels, ListedDeploymentObject,
    ListedTemplate, MetadataField, MetadataTarget, NewAgent, NewAgentEvent, NewDeploymentObject,
    NewGenerator, NewHealthReport, NewStack, NewTemplate, NewTemplateVersion, PlacementChange,
    PlacementDecision, PlacementPolicy, Stack, StackId, StackPlacement, StackUpdate, StoredKey,
    TargetState, TargetStateWatch, Template, TemplateId, TemplateVersion, model::Generator,
};

use brokkr_core::audit_chain::{ChainCheck, ChainHead, ChainLink};
use brokkr_core::id::PlanId;
use brokkr_core::plan::{GuardOverrides, ItemDigest};
use brokkr_core::store::{Confirmation, Confirmed, ConfirmedChange, HarmlessAppend};
use brokkr_core::{AppliedState, AppliedVersions, NewPlan, StackWorld, StoredPlan};
use chrono::{DateTime, Utc};

use brokkr_core::store::{DeliveryFilter, SubscriptionFilter};
use brokkr_core::{
    ClaimedDelivery, Delivery, DeliveryId, DeliveryOutcome, NewSubscription, Subscription,
    SubscriptionId, SubscriptionUpdate, WebhookQueueStats,
};

use crate::SqlStore;
use crate::errors::db;

#[async_trait]
impl Store for SqlStore {
    async fn ping(&self) -> Result<()> {
        self.reader.ping().await.map_err(db)?;
        if self.backend == crate::Backend::Sqlite {
            self.writer.pool.ping().await.map_err(db)?;
        }
        Ok(())
    }

    async fn create_stack(&self, actor: &Actor, new: NewStack) -> Result<Stack> {
        self.create_stack_impl(actor, new).await
    }

    async fn get_stack(&self, id: StackId) -> Result<Stack> {
        self.get_stack_impl(id).await
    }

    async fn list_stacks(&self, filter: &StackFilter, page: &PageRequest) -> Result<Page<Stack>> {
        self.list_stacks_impl(filter, page).await
    }

    async fn update_stack(&self, actor: &Actor, id: StackId, update: StackUpdate) -> Result<Stack> {
        self.update_stack_impl(actor, id, update).await
    }

    async fn delete_stack(&self, actor: &Actor, id: StackId) -> Result<DeploymentObject> {
        self.delete_stack_impl(actor, id).await
    }

    async fn append_deployment_object(
        &self,
        actor: &Actor,
        new: NewDeploymentObject,
    ) -> Result<DeploymentObject> {
        self.append_impl(actor, new).await
    }

    async fn append_if_harmless(
        &self,
        actor: &Actor,
        new: NewDeploymentObject,
    ) -> Result<HarmlessAppend> {
        self.append_if_harmless_impl(actor, new).await
    }

    async fn get_deployment_object(&self, id: DeploymentObjectId) -> Result<DeploymentObject> {
        self.get_deployment_object_impl(id).await
    }

    async fn list_deployment_objects(
        &self,
        stack_id: StackId,
        yaml: ContentListing,
        page: &PageRequest,
    ) -> Result<Page<ListedDeploymentObject>> {
        self.list_deployment_objects_impl(stack_id, yaml, page)
            .await
    }

    async fn create_agent(&self, actor: &Actor, new: NewAgent) -> Result<Agent> {
        self.create_agent_impl(actor, new).await
    }

    async fn get_agent(&self, id: AgentId) -> Result<Agent> {
        self.get_agent_impl(id).await
    }

    async fn list_agents(&self, filter: &AgentFilter, page: &PageRequest) -> Result<Page<Agent>> {
        self.list_agents_impl(filter, page).await
    }

    async fn update_agent(&self, actor: &Actor, id: AgentId, update: AgentUpdate) -> Result<Agent> {
        self.update_agent_impl(actor, id, update).await
    }

    async fn delete_agent(&self, actor: &Actor, id: AgentId) -> Result<()> {
        self.delete_agent_impl(actor, id).await
    }

    async fn record_heartbeats(&self, beats: &[Heartbeat]) -> Result<()> {
        self.record_heartbeats_impl(beats).await
    }

    async fn put_metadata(
        &self,
        actor: &Actor,
        target: MetadataTarget,
        field: MetadataField,
        key: &str,
        value: &str,
    ) -> Result<Labels> {
        self.put_metadata_impl(actor, target, field, key, value)
            .await
    }

    async fn remove_metadata(
        &self,
        actor: &Actor,
        target: MetadataTarget,
        field: MetadataField,
        key: &str,
    ) -> Result<Labels> {
        self.remove_metadata_impl(actor, target, field, key).await
    }

    async fn assign_stack(
        &self,
        actor: &Actor,
        agent_id: AgentId,
        stack_id: StackId,
    ) -> Result<AgentTarget> {
        self.assign_stack_impl(actor, agent_id, stack_id).await
    }

    async fn unassign_stack(
        &self,
        actor: &Actor,
        agent_id: AgentId,
        stack_id: StackId,
    ) -> Result<()> {
        self.unassign_stack_impl(actor, agent_id, stack_id).await
    }

    async fn list_agent_targets(
        &self,
        filter: &TargetFilter,
        page: &PageRequest,
    ) -> Result<Page<AgentTarget>> {
        self.list_agent_targets_impl(filter, page).await
    }

    async fn target_state(&self, agent_id: AgentId) -> Result<TargetState> {
        self.target_state_impl(agent_id).await
    }

    async fn target_states(&self, agents: &[AgentId]) -> Result<Vec<AgentTargetState>> {
        self.target_states_impl(agents).await
    }

    fn watch_target_state(&self, agent_id: AgentId) -> TargetStateWatch {
        self.writer.hub.watch(agent_id)
    }

    fn change_feed(&self) -> brokkr_core::ChangeFeed {
        self.writer.hub.feed()
    }

    async fn record_agent_event(&self, actor: &Actor, new: NewAgentEvent) -> Result<AgentEvent> {
        self.record_agent_event_impl(actor, new).await
    }

    async fn get_agent_event(&self, id: AgentEventId) -> Result<AgentEvent> {
        self.get_agent_event_impl(id).await
    }

    async fn list_agent_events(
        &self,
        filter: &AgentEventFilter,
        page: &PageRequest,
    ) -> Result<Page<AgentEvent>> {
        self.list_agent_events_impl(filter, page).await
    }

    async fn set_placement_policy(
        &self,
        actor: &Actor,
        stack_id: StackId,
        policy: Option<PlacementPolicy>,
    ) -> Result<Option<StackPlacement>> {
        self.set_placement_policy_impl(actor, stack_id, policy)
            .await
    }

    async fn get_placement(&self, stack_id: StackId) -> Result<Option<StackPlacement>> {
        self.get_placement_impl(stack_id).await
    }

    async fn list_placements(&self, page: &PageRequest) -> Result<Page<StackPlacement>> {
        self.list_placements_impl(page).await
    }

    async fn place_stack(
        &self,
        actor: &Actor,
        stack_id: StackId,
        policy: PlacementPolicy,
        decision: PlacementDecision,
        expected: Option<Vec<AgentId>>,
    ) -> Result<Option<(StackPlacement, PlacementChange)>> {
        self.place_stack_impl(actor, stack_id, policy, decision, expected)
            .await
    }

    async fn record_placement(
        &self,
        actor: &Actor,
        stack_id: StackId,
        decision: PlacementDecision,
    ) -> Result<PlacementChange> {
        self.record_placement_impl(actor, stack_id, decision).await
    }

    async fn record_health(&self, actor: &Actor, new: NewHealthReport) -> Result<HealthReport> {
        self.record_health_impl(actor, new).await
    }

    async fn stack_health(&self, stack_id: StackId) -> Result<Vec<HealthReport>> {
        self.stack_health_impl(stack_id).await
    }

    async fn create_generator(&self, actor: &Actor, new: NewGenerator) -> Result<Generator> {
        self.create_generator_impl(actor, new).await
    }

    async fn get_generator(&self, id: GeneratorId) -> Result<Generator> {
        self.get_generator_impl(id).await
    }

    async fn list_generators(
        &self,
        filter: &GeneratorFilter,
        page: &PageRequest,
    ) -> Result<Page<Generator>> {
        self.list_generators_impl(filter, page).await
    }

    async fn update_generator(
        &self,
        actor: &Actor,
        id: GeneratorId,
        update: GeneratorUpdate,
    ) -> Result<Generator> {
        self.update_generator_impl(actor, id, update).await
    }

    async fn delete_generator(&self, actor: &Actor, id: GeneratorId) -> Result<()> {
        self.delete_generator_impl(actor, id).await
    }

    async fn create_template(&self, actor: &Actor, new: NewTemplate) -> Result<Template> {
        self.create_template_impl(actor, new).await
    }

    async fn get_template(&self, id: TemplateId) -> Result<Template> {
        self.get_template_impl(id).await
    }

    async fn get_template_version(&self, id: TemplateId, version: i32) -> Result<TemplateVersion> {
        self.get_template_version_impl(id, version).await
    }

    async fn list_templates(
        &self,
        filter: &TemplateFilter,
        content: ContentListing,
        page: &PageRequest,
    ) -> Result<Page<ListedTemplate>> {
        self.list_templates_impl(filter, content, page).await
    }

    async fn list_template_versions(
        &self,
        id: TemplateId,
        page: &PageRequest,
    ) -> Result<Page<TemplateVersion>> {
        self.list_template_versions_impl(id, page).await
    }

    async fn add_template_version(
        &self,
        actor: &Actor,
        id: TemplateId,
        version: NewTemplateVersion,
    ) -> Result<Template> {
        self.add_template_version_impl(actor, id, version).await
    }

    async fn delete_template(&self, actor: &Actor, id: TemplateId) -> Result<()> {
        self.delete_template_impl(actor, id).await
    }

    async fn find_api_key(&self, short_id: &str) -> Result<Option<ApiKey>> {
        self.find_api_key_impl(short_id).await
    }

    async fn active_api_keys(&self, owner: KeyOwner) -> Result<Vec<ApiKey>> {
        self.active_api_keys_impl(owner).await
    }

    async fn rotate_api_key(
        &self,
        actor: &Actor,
        owner: KeyOwner,
        key: StoredKey,
    ) -> Result<ApiKey> {
        self.rotate_api_key_impl(actor, owner, key).await
    }

    async fn key_revocations(&self) -> Result<u64> {
        self.key_revocations_impl().await
    }

    async fn deployment_object_items(
        &self,
        ids: &[DeploymentObjectId],
    ) -> Result<Vec<(DeploymentObjectId, Vec<ItemDigest>)>> {
        self.deployment_object_items_impl(ids).await
    }

    async fn applied_states(&self, stack_id: StackId) -> Result<Vec<AppliedState>> {
        self.applied_states_impl(stack_id).await
    }

    async fn guard_overrides(&self, stack_id: StackId) -> Result<GuardOverrides> {
        self.guard_overrides_impl(stack_id).await
    }

    async fn set_guard_overrides(
        &self,
        actor: &Actor,
        stack_id: StackId,
        overrides: GuardOverrides,
    ) -> Result<GuardOverrides> {
        self.set_guard_overrides_impl(actor, stack_id, overrides)
            .await
    }

    async fn create_plan(&self, actor: &Actor, new: NewPlan) -> Result<StoredPlan> {
        self.create_plan_impl(actor, new).await
    }

    async fn get_plan(&self, id: PlanId) -> Result<StoredPlan> {
        self.get_plan_impl(id).await
    }

    async fn held_plan(&self, stack_id: StackId, now: DateTime<Utc>) -> Result<Option<StoredPlan>> {
        self.held_plan_impl(stack_id, now).await
    }

    async fn stack_world(&self, stack_id: StackId) -> Result<StackWorld> {
        self.stack_world_impl(stack_id).await
    }

    async fn applied_versions(&self, stack_id: StackId) -> Result<AppliedVersions> {
        self.applied_versions_impl(stack_id).await
    }

    async fn write_confirmed(
        &self,
        actor: &Actor,
        confirmation: &Confirmation<'_>,
        change: ConfirmedChange,
    ) -> Result<Confirmed> {
        self.write_confirmed_impl(actor, confirmation, change).await
    }

    async fn list_audit_records(
        &self,
        filter: &AuditFilter,
        page: &PageRequest,
    ) -> Result<Page<AuditRecord>> {
        self.list_audit(filter, page).await
    }

    async fn seal_audit_chain(&self, limit: usize) -> Result<usize> {
        self.seal_audit_chain_impl(limit).await
    }

    async fn verify_audit_chain(
        &self,
        after: Option<ChainHead>,
        limit: usize,
    ) -> Result<ChainCheck> {
        self.verify_audit_chain_impl(after, limit).await
    }

    async fn unsealed_audit_records(&self) -> Result<u64> {
        self.unsealed_audit_records_impl().await
    }

    async fn list_audit_chain(&self, after: u64, limit: usize) -> Result<Vec<ChainLink>> {
        self.list_audit_chain_impl(after, limit).await
    }

    async fn fleet_counts(&self, active_since: DateTime<Utc>) -> Result<brokkr_core::FleetCounts> {
        self.fleet_counts_impl(active_since).await
    }
}

#[async_trait]
impl brokkr_core::store::WebhookStore for SqlStore {
    async fn create_subscription(
        &self,
        actor: &Actor,
        new: NewSubscription,
    ) -> Result<Subscription> {
        self.create_subscription_impl(actor, new).await
    }

    async fn get_subscription(&self, id: SubscriptionId) -> Result<Subscription> {
        self.get_subscription_impl(id).await
    }

    async fn list_subscriptions(
        &self,
        filter: &SubscriptionFilter,
        page: &PageRequest,
    ) -> Result<Page<Subscription>> {
        self.list_subscriptions_impl(filter, page).await
    }

    async fn update_subscription(
        &self,
        actor: &Actor,
        id: SubscriptionId,
        update: SubscriptionUpdate,
    ) -> Result<Subscription> {
        self.update_subscription_impl(actor, id, update).await
    }

    async fn delete_subscription(&self, actor: &Actor, id: SubscriptionId) -> Result<()> {
        self.delete_subscription_impl(actor, id).await
    }

    async fn queue_test_delivery(&self, actor: &Actor, id: SubscriptionId) -> Result<Delivery> {
        self.queue_test_delivery_impl(actor, id).await
    }

    async fn fan_out_webhook_events(&self, limit: usize) -> Result<usize> {
        self.fan_out_impl(limit).await
    }

    async fn claim_webhook_deliveries(
        &self,
        claimant: &str,
        now: DateTime<Utc>,
        lease_until: DateTime<Utc>,
        limit: usize,
    ) -> Result<Vec<ClaimedDelivery>> {
        self.claim_impl(claimant, now, lease_until, limit).await
    }

    async fn finish_webhook_delivery(
        &self,
        claimant: &str,
        id: DeliveryId,
        at: DateTime<Utc>,
        outcome: DeliveryOutcome,
    ) -> Result<()> {
        self.finish_impl(claimant, id, at, outcome).await
    }

    async fn get_delivery(&self, id: DeliveryId) -> Result<Delivery> {
        self.get_delivery_impl(id).await
    }

    async fn list_deliveries(
        &self,
        filter: &DeliveryFilter,
        page: &PageRequest,
    ) -> Result<Page<Delivery>> {
        self.list_deliveries_impl(filter, page).await
    }

    async fn redeliver(&self, actor: &Actor, id: DeliveryId) -> Result<Delivery> {
        self.redeliver_impl(actor, id).await
    }

    async fn webhook_queue_stats(&self) -> Result<WebhookQueueStats> {
        self.queue_stats_impl().await
    }

    async fn prune_webhook_deliveries(&self, before: DateTime<Utc>, limit: usize) -> Result<u64> {
        self.prune_impl(before, limit).await
    }

    async fn mark_stale_agents(&self, stale_before: DateTime<Utc>) -> Result<Vec<AgentId>> {
        self.mark_stale_agents_impl(stale_before).await
    }
}
