//! Deployment objects: append, sequence, history.

use std::collections::BTreeSet;

use serde_json::json;

use super::fixtures::{ADMIN, config_map_yaml, mk_object, mk_stack};
use super::support::{all, expect_not_found, walk};
use crate::id::{StackId, TemplateId};
use crate::model::{NewDeploymentObject, Provenance, checksum};
use crate::page::Order;
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
        let listed = all(async |p| store.list_deployment_objects(stack.id, &p).await).await;
        assert_eq!(listed, vec![first.clone(), second.clone()]);
        let newest_first = walk(10, Order::Descending, async |p| {
            store.list_deployment_objects(stack.id, &p).await
        })
        .await;
        assert_eq!(newest_first, vec![second, first]);
    }

    /// Concurrent appends across several stacks get distinct sequences, increasing within
    /// each stack's listing, and a later append is greater than all of them.
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
            let listed = all(async |p| store.list_deployment_objects(*stack, &p).await).await;
            assert_eq!(listed.len(), 5);
            assert!(listed.windows(2).all(|w| w[0].sequence < w[1].sequence));
            assert!(listed.iter().all(|o| o.stack_id == *stack));
        }
        let later = mk_object(store, stacks[0], "later").await;
        assert!(later.sequence > *sequences.last().expect("20 sequences"));
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
        let listed = all(async |p| store.list_deployment_objects(stack.id, &p).await).await;
        assert_eq!(
            listed.len(),
            2,
            "the object and the deletion marker, nothing more"
        );
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
        let listed = all(async |p| store.list_deployment_objects(stack.id, &p).await).await;
        assert_eq!(listed, vec![first, second, marker]);
    }
);
