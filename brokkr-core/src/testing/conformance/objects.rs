//! Deployment objects: append, sequence, history.

use std::collections::BTreeSet;

use serde_json::json;

use super::fixtures::{ADMIN, config_map_yaml, mk_agent, mk_object, mk_stack, mk_target};
use super::support::{ALL_CONTENT, all_objects, expect_not_found, target_state, walk_objects};
use crate::id::{DeploymentObjectId, StackId, TemplateId};
use crate::model::{DeploymentObject, NewDeploymentObject, Provenance, checksum};
use crate::page::{Cursor, Order, PageRequest};
use crate::store::Store;

cases!(
    /// Appended objects keep their YAML, checksum and provenance, get increasing sequences
    /// and list per stack in sequence order, both ways.
    pub async fn deployment_objects_append_get_list(store: &dyn Store) {
        let stack = mk_stack(store, "objects").await;
        let other = mk_stack(store, "other").await;
        let first = mk_object(store, stack.id, "1").await;
        let yaml = config_map_yaml("app-config", "1");
        assert_eq!(first.stack_id, stack.id);
        assert_eq!(first.yaml_content, yaml);
        assert_eq!(first.yaml_checksum, checksum(&yaml));
        assert!(!first.is_deletion_marker);
        assert_eq!(first.provenance, None);

        let _elsewhere = mk_object(store, other.id, "x").await;
        let provenance = Provenance {
            template_id: Some(TemplateId::new()),
            template_version: Some(3),
            generator: Some("tenant".into()),
            parameters: json!({"name": "app-config", "replicas": 2, "nested": {"on": true}}),
        };
        let new = NewDeploymentObject::from_yaml(stack.id, config_map_yaml("app-config", "2"))
            .expect("valid YAML")
            .with_provenance(provenance.clone());
        let second = store
            .append_deployment_object(&ADMIN, new)
            .await
            .expect("append");
        assert!(second.sequence > first.sequence);
        assert_eq!(second.provenance, Some(provenance));

        assert_eq!(
            store.get_deployment_object(first.id).await.expect("get"),
            first
        );
        assert_eq!(
            store.get_deployment_object(second.id).await.expect("get"),
            second
        );
        let listed = all_objects(store, stack.id).await;
        assert_eq!(listed, vec![first.clone(), second.clone()]);
        let newest_first = walk_objects(store, stack.id, 10, Order::Descending).await;
        assert_eq!(newest_first, vec![second, first]);
    }

    /// Concurrent appends across several stacks get distinct sequences, increasing within
    /// each stack's listing, and a later append to a stack is greater than all of its
    /// earlier ones.
    pub async fn deployment_object_sequences_increase_under_concurrency(store: &dyn Store) {
        let mut stacks = Vec::new();
        for i in 0..4 {
            stacks.push(mk_stack(store, &format!("concurrent-{i}")).await.id);
        }
        let appends = (0..20).map(|i| {
            let stack = stacks[i % stacks.len()];
            async move { mk_object(store, stack, &i.to_string()).await }
        });
        let objects = futures::future::join_all(appends).await;
        let sequences: BTreeSet<i64> = objects.iter().map(|o| o.sequence).collect();
        assert_eq!(
            sequences.len(),
            20,
            "sequences are not unique: {sequences:?}"
        );
        for stack in &stacks {
            let listed = all_objects(store, *stack).await;
            assert_eq!(listed.len(), 5);
            assert!(listed.windows(2).all(|w| w[0].sequence < w[1].sequence));
            assert!(listed.iter().all(|o| o.stack_id == *stack));
        }
        let later = mk_object(store, stacks[0], "later").await;
        assert!(
            objects
                .iter()
                .filter(|o| o.stack_id == stacks[0])
                .all(|o| later.sequence > o.sequence)
        );
    }

    /// Many writers appending to a few stacks at once, while a reader tails each stack's
    /// listing with a cursor (the change order agents and feeds rely on): within each
    /// stack sequences increase in commit order, so the reader, which never looks
    /// behind its cursor, sees every acknowledged object exactly once and in order; and
    /// each stack's latest is its highest sequence.
    pub async fn per_stack_order_holds_under_concurrent_writers(store: &dyn Store) {
        const STACKS: usize = 3;
        const WRITERS: usize = 12;
        const APPENDS: usize = 8;
        let agent = mk_agent(store, "tailed").await;
        let mut stacks = Vec::new();
        for i in 0..STACKS {
            let stack = mk_stack(store, &format!("tailed-{i}")).await.id;
            mk_target(store, agent.id, stack).await;
            stacks.push(stack);
        }
        let writing = std::sync::atomic::AtomicUsize::new(WRITERS);
        let writers = (0..WRITERS).map(|w| {
            let (stacks, writing) = (&stacks, &writing);
            async move {
                let mut acknowledged = Vec::new();
                for i in 0..APPENDS {
                    let stack = stacks[(w + i) % STACKS];
                    acknowledged.push(mk_object(store, stack, &format!("{w}-{i}")).await);
                }
                writing.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
                acknowledged
            }
        });
        let reader = async {
            let mut seen: Vec<Vec<DeploymentObject>> = vec![Vec::new(); STACKS];
            // One more pass after the last writer finished catches the final commits.
            let mut last_pass = false;
            for _ in 0..100_000 {
                last_pass = writing.load(std::sync::atomic::Ordering::SeqCst) == 0;
                for (stack, seen) in stacks.iter().zip(seen.iter_mut()) {
                    tail(store, *stack, seen).await;
                }
                if last_pass {
                    break;
                }
                tokio::task::yield_now().await;
            }
            assert!(last_pass, "the writers did not finish");
            seen
        };
        let (acknowledged, seen) = futures::join!(futures::future::join_all(writers), reader);
        let acknowledged: Vec<DeploymentObject> = acknowledged.into_iter().flatten().collect();
        assert_eq!(acknowledged.len(), WRITERS * APPENDS);
        let target = target_state(store, agent.id).await;
        for (stack, seen) in stacks.iter().zip(&seen) {
            let listed = all_objects(store, *stack).await;
            assert_eq!(
                seen, &listed,
                "the tailing reader skipped or repeated objects of a stack"
            );
            let mut mine: Vec<DeploymentObjectId> = acknowledged
                .iter()
                .filter(|o| o.stack_id == *stack)
                .map(|o| o.id)
                .collect();
            let mut listed_ids: Vec<DeploymentObjectId> = listed.iter().map(|o| o.id).collect();
            mine.sort_unstable();
            listed_ids.sort_unstable();
            assert_eq!(
                mine, listed_ids,
                "acknowledged objects are exactly the listed ones"
            );
            let entry = target
                .entries
                .iter()
                .find(|e| e.stack_id == *stack)
                .expect("the stack is in the agent's target state");
            assert_eq!(
                Some(&entry.deployment_object),
                listed.last(),
                "the latest object is the one with the highest sequence"
            );
        }
    }

    /// Appending to a missing or deleted stack is `NotFound` and adds nothing.
    pub async fn append_needs_a_live_stack(store: &dyn Store) {
        let missing = NewDeploymentObject::from_yaml(StackId::new(), config_map_yaml("c", "1"))
            .expect("valid YAML");
        expect_not_found(
            store.append_deployment_object(&ADMIN, missing).await,
            "stack",
        );

        let stack = mk_stack(store, "deleted").await;
        mk_object(store, stack.id, "1").await;
        store.delete_stack(&ADMIN, stack.id).await.expect("delete");
        let late = NewDeploymentObject::from_yaml(stack.id, config_map_yaml("c", "2"))
            .expect("valid YAML");
        expect_not_found(store.append_deployment_object(&ADMIN, late).await, "stack");
        let listed = all_objects(store, stack.id).await;
        assert_eq!(
            listed.len(),
            2,
            "the object and the deletion marker, nothing more"
        );
    }

    /// Appends to a deleted stack fail with `NotFound` without failing appends to live
    /// stacks made at the same moment (a store may commit concurrent appends together).
    pub async fn appends_to_a_deleted_stack_fail_alone(store: &dyn Store) {
        let live = mk_stack(store, "live").await.id;
        let gone = mk_stack(store, "gone").await.id;
        store.delete_stack(&ADMIN, gone).await.expect("delete");
        let appends = (0..20).map(|i| {
            let stack = if i % 2 == 0 { live } else { gone };
            let yaml = config_map_yaml("c", &i.to_string());
            async move {
                let new = NewDeploymentObject::from_yaml(stack, yaml).expect("valid YAML");
                (stack, store.append_deployment_object(&ADMIN, new).await)
            }
        });
        for (stack, result) in futures::future::join_all(appends).await {
            if stack == live {
                result.expect("an append to a live stack succeeds");
            } else {
                expect_not_found(result, "stack");
            }
        }
        let listed = all_objects(store, live).await;
        assert_eq!(listed.len(), 10);
    }

    /// Deleting a stack appends its deletion marker; its history stays readable.
    pub async fn delete_stack_appends_a_marker_and_keeps_history(store: &dyn Store) {
        let stack = mk_stack(store, "history").await;
        let first = mk_object(store, stack.id, "1").await;
        let second = mk_object(store, stack.id, "2").await;
        let marker = store.delete_stack(&ADMIN, stack.id).await.expect("delete");
        assert!(marker.is_deletion_marker);
        assert_eq!(marker.stack_id, stack.id);
        assert_eq!(marker.yaml_content, "");
        assert_eq!(marker.yaml_checksum, checksum(""));
        assert!(marker.sequence > second.sequence);

        assert_eq!(
            store.get_deployment_object(first.id).await.expect("get"),
            first
        );
        assert_eq!(
            store.get_deployment_object(marker.id).await.expect("get"),
            marker
        );
        let listed = all_objects(store, stack.id).await;
        assert_eq!(listed, vec![first, second, marker]);
    }
);

/// Reads what a stack appended after the last object in `seen`, the way a tailing
/// reader does: it never looks behind its cursor.
async fn tail(store: &dyn Store, stack: StackId, seen: &mut Vec<DeploymentObject>) {
    loop {
        let mut request = PageRequest::first(7);
        if let Some(last) = seen.last() {
            request = request.after(Cursor(last.sequence.to_string()));
        }
        let page = store
            .list_deployment_objects(stack, ALL_CONTENT, &request)
            .await
            .expect("listing succeeds");
        if let (Some(last), Some(first)) = (seen.last(), page.items.first()) {
            assert!(first.sequence > last.sequence, "a page went backwards");
        }
        let more = page.next_cursor.is_some();
        seen.extend(
            page.items
                .into_iter()
                .map(|listed| listed.into_object().expect("the listing includes the YAML")),
        );
        if !more {
            return;
        }
    }
}
