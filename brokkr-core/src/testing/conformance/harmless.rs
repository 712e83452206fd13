//! Appends the guard's shortcut clears in their own transaction
//! (`Store::append_if_harmless`): written as a plain append when they keep everything
//! the stack's agents run and no reverted rollout had their content; handed back,
//! nothing written, otherwise.

use futures::future::join_all;

use super::fixtures::{ADMIN, config_map_yaml, mk_agent, mk_event, mk_object, mk_stack, mk_target};
use super::rollout_support::{apply, revert, running};
use super::support::{all_audit, all_objects, expect_not_found};
use crate::id::StackId;
use crate::model::{
    AuditAction, DeploymentObject, EventStatus, EventType, NewDeploymentObject, ResourceKind,
};
use crate::rollout::OnNewVersion;
use crate::store::{HarmlessAppend, Store};

/// An append of one ConfigMap named `name` at `version`.
fn config_map(stack: StackId, name: &str, version: &str) -> NewDeploymentObject {
    NewDeploymentObject::from_yaml(stack, config_map_yaml(name, version))
        .expect("fixture YAML is valid")
}

/// Offers `new` to the shortcut; `Ok` the object appended, `Err` the append handed back.
async fn offer(
    store: &dyn Store,
    new: NewDeploymentObject,
) -> Result<DeploymentObject, NewDeploymentObject> {
    match store
        .append_if_harmless(&ADMIN, new)
        .await
        .expect("append if harmless")
    {
        HarmlessAppend::Appended(object) => Ok(object),
        HarmlessAppend::NeedsPlan(new) => Err(new),
    }
}

/// Offers `new`, expecting it handed back unchanged with nothing written.
async fn expect_handed_back(store: &dyn Store, new: NewDeploymentObject, why: &str) {
    let stack = new.stack_id();
    let objects = all_objects(store, stack).await.len();
    let audits = all_audit(store).await.len();
    let back = offer(store, new.clone()).await;
    assert_eq!(back, Err(new), "{why}");
    assert_eq!(all_objects(store, stack).await.len(), objects, "{why}");
    assert_eq!(
        all_audit(store).await.len(),
        audits,
        "{why}: nothing audited"
    );
}

cases!(
    /// With nothing applied, or an append that keeps every object the agents run, the
    /// append is written as `append_deployment_object` writes it (latest, audited); one
    /// that would drop an object an agent runs is handed back; a missing stack is
    /// `NotFound`.
    pub async fn harmless_appends_pass_until_one_drops_an_object(store: &dyn Store) {
        let stack = mk_stack(store, "s").await.id;
        let first = offer(store, config_map(stack, "app", "1"))
            .await
            .expect("nothing applied: harmless");
        let world = store.stack_world(stack).await.expect("world");
        assert_eq!(world.latest_live, Some(first.id), "the stack's latest");
        let audited = all_audit(store).await.into_iter().any(|r| {
            r.action == AuditAction::Create
                && r.resource_kind == ResourceKind::DeploymentObject
                && r.resource_id == first.id.0
        });
        assert!(audited, "the append is audited");

        let [a, b] = [mk_agent(store, "a").await.id, mk_agent(store, "b").await.id];
        mk_target(store, a, stack).await;
        mk_target(store, b, stack).await;
        mk_event(store, a, first.id, EventType::Apply, EventStatus::Success).await;
        let second = offer(store, config_map(stack, "app", "2"))
            .await
            .expect("the same object, new content: harmless");
        assert!(second.sequence > first.sequence);

        let dropping = config_map(stack, "other", "1");
        expect_handed_back(store, dropping, "drops `app`, which agent a runs").await;
        let marker = NewDeploymentObject::deletion_marker(stack);
        expect_handed_back(store, marker, "a deletion marker removes what a runs").await;

        expect_not_found(
            store
                .append_if_harmless(&ADMIN, config_map(StackId::new(), "app", "1"))
                .await,
            "stack",
        );
    }

    /// An agent that runs the stack without a live target would lose it with any
    /// change: every append is handed back until it reports the removal.
    pub async fn harmless_untargeted_agent_needs_a_plan(store: &dyn Store) {
        let stack = mk_stack(store, "s").await.id;
        let v1 = mk_object(store, stack, "1").await.id;
        let stray = mk_agent(store, "stray").await.id;
        mk_event(store, stray, v1, EventType::Apply, EventStatus::Success).await;
        let same = config_map(stack, "app-config", "2");
        expect_handed_back(store, same, "an agent runs v1 untargeted").await;
        mk_event(store, stray, v1, EventType::Delete, EventStatus::Success).await;
        offer(store, config_map(stack, "app-config", "2"))
            .await
            .expect("nobody runs the stack untargeted any more");
    }

    /// Content a reverted rollout of the stack had is handed back; other content is
    /// written, and goes the way the stack's rollout policy sends it.
    pub async fn harmless_reverted_content_needs_a_plan(store: &dyn Store) {
        let (fixture, rollout) = running(store, "harmless", OnNewVersion::Queue, true).await;
        apply(store, revert(&rollout)).await;
        let again = config_map(fixture.stack, "app-config", "2");
        expect_handed_back(store, again, "a rollout reverted this content").await;
        let fresh = offer(store, config_map(fixture.stack, "app-config", "3"))
            .await
            .expect("new content");
        let head = store.release_head(fixture.stack).await.unwrap();
        assert_ne!(
            head,
            Some(fresh.id),
            "the policy queues it, it is not released"
        );
    }

    /// Many appends offered at once (so, on a batching store, judged together) each get
    /// their own answer: a stack's harmless ones are written in order, another stack's
    /// dropping ones all come back.
    pub async fn harmless_concurrent_offers_are_judged_one_by_one(store: &dyn Store) {
        let kept = mk_stack(store, "kept").await.id;
        let dropped = mk_stack(store, "dropped").await.id;
        let agent = mk_agent(store, "a").await.id;
        mk_target(store, agent, dropped).await;
        let v1 = mk_object(store, dropped, "1").await.id;
        mk_event(store, agent, v1, EventType::Apply, EventStatus::Success).await;
        let offers = (0..16).map(|i| {
            let (stack, name) = if i % 2 == 0 {
                (kept, "app-config")
            } else {
                (dropped, "other")
            };
            offer(store, config_map(stack, name, &i.to_string()))
        });
        let answers = join_all(offers).await;
        for (i, answer) in answers.iter().enumerate() {
            assert_eq!(answer.is_ok(), i % 2 == 0, "offer {i}: {answer:?}");
        }
        let written: Vec<i64> = all_objects(store, kept)
            .await
            .iter()
            .map(|o| o.sequence)
            .collect();
        assert_eq!(written.len(), 8);
        assert!(written.is_sorted(), "a stack's appends in sequence order");
        assert_eq!(all_objects(store, dropped).await.len(), 1, "only v1");
    }
);
