//! The audit trail: one record per mutation, filters.

use std::collections::BTreeSet;

use chrono::Utc;

use super::fixtures::{
    ADMIN, config_map_yaml, mk_agent, mk_event, mk_generator, mk_object, new_agent, new_event,
    new_generator, new_template,
};
use super::support::{all, all_audit, expect_conflict, instant_between_writes};
use crate::model::{
    Actor, ActorKind, AgentStatus, AgentUpdate, AuditAction, AuditRecord, EventStatus, EventType,
    GeneratorUpdate, Heartbeat, KeyOwner, MetadataField, MetadataTarget, NewDeploymentObject,
    NewStack, NewTemplateVersion, ResourceKind, StackUpdate,
};
use crate::pak::Pak;
use crate::store::{AuditFilter, Store};

/// Tracks which audit records a case has already seen.
struct AuditTrail<'a> {
    store: &'a dyn Store,
    seen: BTreeSet<crate::id::AuditRecordId>,
    secrets: Vec<String>,
}

impl AuditTrail<'_> {
    /// Asserts that exactly one record was written since the last call, and what it says.
    async fn expect(
        &mut self,
        actor: Actor,
        action: AuditAction,
        kind: ResourceKind,
        id: uuid::Uuid,
    ) {
        let fresh: Vec<AuditRecord> = all_audit(self.store)
            .await
            .into_iter()
            .filter(|r| !self.seen.contains(&r.id))
            .collect();
        assert_eq!(
            fresh.len(),
            1,
            "expected one audit record for {action:?} {kind:?}, got {fresh:?}"
        );
        let record = &fresh[0];
        assert_eq!(
            (
                record.actor,
                record.action,
                record.resource_kind,
                record.resource_id
            ),
            (actor, action, kind, id),
            "{record:?}"
        );
        assert!(
            !record.summary.trim().is_empty(),
            "empty summary: {record:?}"
        );
        assert!(
            !record.summary.contains('\n'),
            "multi-line summary: {record:?}"
        );
        for secret in &self.secrets {
            assert!(
                !record.summary.contains(secret.as_str()),
                "key material in {record:?}"
            );
        }
        self.seen.insert(record.id);
    }

    /// Asserts that nothing was written since the last call.
    async fn expect_none(&self, what: &str) {
        let fresh = all_audit(self.store)
            .await
            .into_iter()
            .filter(|r| !self.seen.contains(&r.id))
            .count();
        assert_eq!(fresh, 0, "{what} wrote an audit record");
    }
}

cases!(
    /// Every mutating method writes exactly one audit record naming the actor, action and
    /// resource; failed calls, retried events and heartbeats write none.
    pub async fn audit_one_record_per_mutation(store: &dyn Store) {
        use AuditAction::*;
        let keys: Vec<Pak> = (0..3).map(|_| Pak::generate()).collect();
        let mut trail = AuditTrail {
            store,
            seen: BTreeSet::new(),
            secrets: keys
                .iter()
                .flat_map(|k| [k.expose().to_owned(), k.hash().to_hex()])
                .collect(),
        };
        let kinds = ResourceKind::Generator;

        let generator = store
            .create_generator(&ADMIN, new_generator("g", &keys[0]))
            .await
            .expect("create generator");
        trail.expect(ADMIN, Create, kinds, generator.id.0).await;
        store
            .update_generator(
                &ADMIN,
                generator.id,
                GeneratorUpdate {
                    name: Some("g2".into()),
                    description: None,
                },
            )
            .await
            .expect("update generator");
        trail.expect(ADMIN, Update, kinds, generator.id.0).await;

        let gen_actor = Actor::Generator(generator.id);
        let stack = store
            .create_stack(
                &gen_actor,
                NewStack {
                    name: "s".into(),
                    generator_id: Some(generator.id),
                    ..Default::default()
                },
            )
            .await
            .expect("create stack");
        trail
            .expect(gen_actor, Create, ResourceKind::Stack, stack.id.0)
            .await;
        expect_conflict(
            store
                .create_stack(
                    &gen_actor,
                    NewStack {
                        name: "s".into(),
                        ..Default::default()
                    },
                )
                .await,
        );
        trail.expect_none("a failed create_stack").await;
        store
            .update_stack(
                &gen_actor,
                stack.id,
                StackUpdate {
                    name: None,
                    description: Some(Some("d".into())),
                },
            )
            .await
            .expect("update stack");
        trail
            .expect(gen_actor, Update, ResourceKind::Stack, stack.id.0)
            .await;
        let object = store
            .append_deployment_object(
                &gen_actor,
                NewDeploymentObject::from_yaml(stack.id, config_map_yaml("c", "1")).expect("YAML"),
            )
            .await
            .expect("append");
        trail
            .expect(
                gen_actor,
                Create,
                ResourceKind::DeploymentObject,
                object.id.0,
            )
            .await;

        let agent = store
            .create_agent(&ADMIN, new_agent("a", "c", &keys[1]))
            .await
            .expect("create agent");
        trail
            .expect(ADMIN, Create, ResourceKind::Agent, agent.id.0)
            .await;
        store
            .update_agent(
                &ADMIN,
                agent.id,
                AgentUpdate {
                    status: Some(AgentStatus::Inactive),
                    ..Default::default()
                },
            )
            .await
            .expect("update agent");
        trail
            .expect(ADMIN, Update, ResourceKind::Agent, agent.id.0)
            .await;

        let stack_target = MetadataTarget::Stack(stack.id);
        store
            .put_metadata(
                &gen_actor,
                stack_target,
                MetadataField::Labels,
                "app",
                "web",
            )
            .await
            .expect("put label");
        trail
            .expect(gen_actor, SetMetadata, ResourceKind::Stack, stack.id.0)
            .await;
        store
            .remove_metadata(&gen_actor, stack_target, MetadataField::Labels, "app")
            .await
            .expect("remove label");
        trail
            .expect(gen_actor, RemoveMetadata, ResourceKind::Stack, stack.id.0)
            .await;
        store
            .put_metadata(
                &ADMIN,
                MetadataTarget::Agent(agent.id),
                MetadataField::Annotations,
                "note",
                "text",
            )
            .await
            .expect("put annotation");
        trail
            .expect(ADMIN, SetMetadata, ResourceKind::Agent, agent.id.0)
            .await;

        store
            .assign_stack(&Actor::System, agent.id, stack.id)
            .await
            .expect("assign");
        trail
            .expect(Actor::System, Assign, ResourceKind::AgentTarget, stack.id.0)
            .await;
        let agent_actor = Actor::Agent(agent.id);
        let new = new_event(agent.id, object.id, EventType::Apply, EventStatus::Success);
        let event = store
            .record_agent_event(&agent_actor, new.clone())
            .await
            .expect("record event");
        trail
            .expect(agent_actor, Create, ResourceKind::AgentEvent, event.id.0)
            .await;
        store
            .record_agent_event(&agent_actor, new)
            .await
            .expect("retry event");
        trail.expect_none("a retried event").await;
        store
            .record_heartbeats(&[Heartbeat {
                agent_id: agent.id,
                at: Utc::now(),
                capabilities: None,
            }])
            .await
            .expect("heartbeat");
        trail.expect_none("a heartbeat").await;
        store
            .unassign_stack(&ADMIN, agent.id, stack.id)
            .await
            .expect("unassign");
        trail
            .expect(ADMIN, Unassign, ResourceKind::AgentTarget, stack.id.0)
            .await;

        let template = store
            .create_template(&gen_actor, new_template("t"))
            .await
            .expect("create template");
        let tk = ResourceKind::Template;
        trail.expect(gen_actor, Create, tk, template.id.0).await;
        store
            .add_template_version(&gen_actor, template.id, NewTemplateVersion::default())
            .await
            .expect("add version");
        trail.expect(gen_actor, Update, tk, template.id.0).await;
        store
            .put_metadata(
                &ADMIN,
                MetadataTarget::Template(template.id),
                MetadataField::Labels,
                "kind",
                "config",
            )
            .await
            .expect("put template label");
        trail.expect(ADMIN, SetMetadata, tk, template.id.0).await;
        store
            .delete_template(&ADMIN, template.id)
            .await
            .expect("delete template");
        trail.expect(ADMIN, Delete, tk, template.id.0).await;

        let key = store
            .rotate_api_key(&agent_actor, KeyOwner::Agent(agent.id), keys[2].stored())
            .await
            .expect("rotate");
        trail
            .expect(agent_actor, RotateKey, ResourceKind::ApiKey, key.id.0)
            .await;

        store
            .delete_stack(&ADMIN, stack.id)
            .await
            .expect("delete stack");
        trail
            .expect(ADMIN, Delete, ResourceKind::Stack, stack.id.0)
            .await;
        store
            .delete_agent(&ADMIN, agent.id)
            .await
            .expect("delete agent");
        trail
            .expect(ADMIN, Delete, ResourceKind::Agent, agent.id.0)
            .await;
        store
            .delete_generator(&ADMIN, generator.id)
            .await
            .expect("delete generator");
        trail.expect(ADMIN, Delete, kinds, generator.id.0).await;
    }

    /// Audit records filter by actor kind and id, action, resource kind and id, and time.
    pub async fn audit_filters(store: &dyn Store) {
        let generator = mk_generator(store, "g").await;
        let gen_actor = Actor::Generator(generator.id);
        let stack = store
            .create_stack(
                &gen_actor,
                NewStack {
                    name: "s".into(),
                    generator_id: Some(generator.id),
                    ..Default::default()
                },
            )
            .await
            .expect("create stack");
        let mid = instant_between_writes().await;
        let agent = mk_agent(store, "a").await;
        store
            .assign_stack(&Actor::System, agent.id, stack.id)
            .await
            .expect("assign");
        let object = mk_object(store, stack.id, "1").await;
        mk_event(
            store,
            agent.id,
            object.id,
            EventType::Apply,
            EventStatus::Success,
        )
        .await;

        let records = async |filter: AuditFilter| {
            all(async |p| store.list_audit_records(&filter, &p).await)
                .await
                .into_iter()
                .map(|r| (r.action, r.resource_kind, r.resource_id))
                .collect::<Vec<_>>()
        };
        let f = AuditFilter::default;
        use AuditAction::{Assign, Create};
        assert_eq!(records(f()).await.len(), 6);
        assert_eq!(
            records(AuditFilter {
                actor_kind: Some(ActorKind::Generator),
                ..f()
            })
            .await,
            vec![(Create, ResourceKind::Stack, stack.id.0)]
        );
        assert_eq!(
            records(AuditFilter {
                actor_id: Some(generator.id.0),
                ..f()
            })
            .await,
            vec![(Create, ResourceKind::Stack, stack.id.0)]
        );
        assert_eq!(
            records(AuditFilter {
                actor_kind: Some(ActorKind::Agent),
                actor_id: Some(agent.id.0),
                ..f()
            })
            .await
            .len(),
            1
        );
        assert_eq!(
            records(AuditFilter {
                actor_kind: Some(ActorKind::System),
                ..f()
            })
            .await,
            vec![(Assign, ResourceKind::AgentTarget, stack.id.0)]
        );
        assert_eq!(
            records(AuditFilter {
                action: Some(Assign),
                ..f()
            })
            .await
            .len(),
            1
        );
        assert_eq!(
            records(AuditFilter {
                resource_kind: Some(ResourceKind::Agent),
                ..f()
            })
            .await,
            vec![(Create, ResourceKind::Agent, agent.id.0)]
        );
        assert_eq!(
            records(AuditFilter {
                resource_id: Some(stack.id.0),
                ..f()
            })
            .await,
            vec![
                (Create, ResourceKind::Stack, stack.id.0),
                (Assign, ResourceKind::AgentTarget, stack.id.0)
            ]
        );
        let until = records(AuditFilter {
            until: Some(mid),
            ..f()
        })
        .await;
        assert_eq!(
            until,
            vec![
                (Create, ResourceKind::Generator, generator.id.0),
                (Create, ResourceKind::Stack, stack.id.0)
            ]
        );
        assert_eq!(
            records(AuditFilter {
                since: Some(mid),
                ..f()
            })
            .await
            .len(),
            4
        );
        assert_eq!(
            records(AuditFilter {
                since: Some(mid),
                actor_kind: Some(ActorKind::Admin),
                action: Some(Create),
                ..f()
            })
            .await,
            vec![
                (Create, ResourceKind::Agent, agent.id.0),
                (Create, ResourceKind::DeploymentObject, object.id.0)
            ]
        );
    }
);
