//! Cases about applying: stamping, order, idempotency, drift, pruning, identity, dry
//! runs, refusals and health.

use super::{
    ApplierFixture, all_healthy, cases, mk_config_map, mk_deployment, mk_key, mk_manifests,
    mk_namespace, mk_stack_ref, mk_widget, mk_widget_crd, settled_health, stack_label,
    with_annotation,
};
use crate::applier::{
    CHECKSUM_ANNOTATION, DEPLOYMENT_OBJECT_ANNOTATION, Error, RECREATE_ANNOTATION,
};
use crate::health::HealthStatus;
use crate::id::StackId;
use crate::manifest::ObjectKey;

use serde_json::json;

cases! {
    $ __brokkr_applier_cases_apply, apply;

    /// Every applied object carries the stack's label and the deployment object's
    /// annotations; the report lists them all as applied and, on creation, changed;
    /// the inventory records them and the deployment object.
    async fn apply_stamps_every_object_and_records_the_inventory(f: &dyn ApplierFixture) {
        let ns = f.unique("stamp");
        let stack = mk_stack_ref(StackId::new());
        let manifests = mk_manifests(&[
            mk_namespace(&ns),
            mk_config_map(&ns, "settings", "1"),
            mk_deployment(&ns, "web"),
        ]);
        let report = f.applier().apply(&stack, &manifests).await.expect("apply");
        let expected = vec![
            mk_key("v1", "Namespace", None, &ns),
            mk_key("v1", "ConfigMap", Some(&ns), "settings"),
            mk_key("apps/v1", "Deployment", Some(&ns), "web"),
        ];
        assert_eq!(report.applied, expected);
        assert_eq!(report.changed, expected, "everything was created");
        assert!(report.pruned.is_empty(), "{report:?}");
        for key in &expected {
            let live = f.get(key).await.unwrap_or_else(|| panic!("{key} exists"));
            assert_eq!(stack_label(&live), Some(stack.stack_id.to_string().as_str()), "{key}");
            let annotations = &live["metadata"]["annotations"];
            assert_eq!(
                annotations[DEPLOYMENT_OBJECT_ANNOTATION],
                stack.deployment_object_id.to_string(),
                "{key}"
            );
            assert_eq!(annotations[CHECKSUM_ANNOTATION], stack.checksum.as_str(), "{key}");
        }
        let inventory = f
            .applier()
            .inventory(stack.stack_id)
            .await
            .expect("inventory")
            .expect("an inventory after an apply");
        assert_eq!(inventory.stack_id, stack.stack_id);
        assert_eq!(inventory.deployment_object_id, Some(stack.deployment_object_id));
        assert_eq!(inventory.checksum.as_deref(), Some(stack.checksum.as_str()));
        assert_eq!(inventory.objects, expected);
        assert!(f.applier().inventory(StackId::new()).await.expect("inventory").is_none());
    }

    /// Namespaces first, then CRDs, then the rest in the order given, so that objects
    /// can live in a namespace and be of a kind the same deployment object creates.
    async fn apply_orders_namespaces_then_crds_then_the_rest(f: &dyn ApplierFixture) {
        let ns = f.unique("order");
        let group = format!("{}.example.com", f.unique("order"));
        let stack = mk_stack_ref(StackId::new());
        let manifests = mk_manifests(&[
            mk_config_map(&ns, "b", "1"),
            mk_widget(&group, "v1", &ns, "w"),
            mk_widget_crd(&group),
            mk_config_map(&ns, "a", "1"),
            mk_namespace(&ns),
        ]);
        f.applier().dry_run(&stack, &manifests).await.expect("dry run");
        let report = f.applier().apply(&stack, &manifests).await.expect("apply");
        let order: Vec<String> = report.applied.iter().map(|k| format!("{} {}", k.kind, k.name)).collect();
        assert_eq!(
            order,
            [
                format!("Namespace {ns}"),
                format!("CustomResourceDefinition widgets.{group}"),
                "ConfigMap b".to_owned(),
                "Widget w".to_owned(),
                "ConfigMap a".to_owned(),
            ]
        );
    }

    /// Applying the same deployment object again changes nothing and reports no change.
    async fn reapply_changes_nothing(f: &dyn ApplierFixture) {
        let ns = f.unique("again");
        let stack = mk_stack_ref(StackId::new());
        let manifests = mk_manifests(&[mk_namespace(&ns), mk_config_map(&ns, "settings", "1")]);
        f.applier().apply(&stack, &manifests).await.expect("apply");
        let key = mk_key("v1", "ConfigMap", Some(&ns), "settings");
        let before = f.get(&key).await.expect("applied");
        let again = f.applier().apply(&stack, &manifests).await.expect("apply again");
        assert!(again.changed.is_empty(), "{again:?}");
        assert!(again.pruned.is_empty(), "{again:?}");
        assert_eq!(again.applied.len(), 2);
        let after = f.get(&key).await.expect("still there");
        assert_eq!(before["data"], after["data"]);
        assert_eq!(
            before["metadata"]["resourceVersion"], after["metadata"]["resourceVersion"],
            "a no-op apply writes nothing"
        );
    }

    /// A hand edit of a field the manifest sets is put back by the next apply of the same
    /// deployment object and reported as changed (drift); a field the manifest does not
    /// set, added by someone else, is not drift and is left alone.
    async fn reapply_puts_back_a_hand_edit_and_reports_it(f: &dyn ApplierFixture) {
        let ns = f.unique("drift");
        let stack = mk_stack_ref(StackId::new());
        let manifests = mk_manifests(&[mk_namespace(&ns), mk_config_map(&ns, "settings", "1")]);
        f.applier().apply(&stack, &manifests).await.expect("apply");
        let key = mk_key("v1", "ConfigMap", Some(&ns), "settings");

        f.edit_by_hand(&key, &json!({"metadata": {"labels": {"team": "blue"}}})).await;
        let again = f.applier().apply(&stack, &manifests).await.expect("apply again");
        assert!(again.changed.is_empty(), "a label the manifest does not set is not drift: {again:?}");
        let live = f.get(&key).await.expect("still there");
        assert_eq!(live["metadata"]["labels"]["team"], "blue", "someone else's label stays");

        f.edit_by_hand(&key, &json!({"data": {"key": "edited"}})).await;
        let again = f.applier().apply(&stack, &manifests).await.expect("apply again");
        assert_eq!(again.changed, std::slice::from_ref(&key));
        let live = f.get(&key).await.expect("still there");
        assert_eq!(live["data"]["key"], "1", "the manifest's value is back");
    }

    /// A field the new deployment object no longer sets is removed from the object, as
    /// server-side apply removes fields its manager stops applying.
    async fn a_field_dropped_from_the_manifest_is_removed(f: &dyn ApplierFixture) {
        let ns = f.unique("dropped");
        let stack_id = StackId::new();
        let mut with_extra = mk_config_map(&ns, "settings", "1");
        with_extra["data"]["extra"] = json!("x");
        with_extra["metadata"]["labels"] = json!({"tier": "web"});
        let v1 = mk_manifests(&[mk_namespace(&ns), with_extra]);
        f.applier().apply(&mk_stack_ref(stack_id), &v1).await.expect("apply v1");
        let v2 = mk_manifests(&[mk_namespace(&ns), mk_config_map(&ns, "settings", "1")]);
        f.applier().apply(&mk_stack_ref(stack_id), &v2).await.expect("apply v2");
        let live = f.get(&mk_key("v1", "ConfigMap", Some(&ns), "settings")).await.expect("kept");
        assert_eq!(live["data"], json!({"key": "1"}));
        assert!(live["metadata"]["labels"].get("tier").is_none(), "{live}");
        assert!(stack_label(&live).is_some(), "still Brokkr's");
    }

    /// An object the new deployment object no longer has is deleted and reported as
    /// pruned; the inventory follows.
    async fn prune_deletes_objects_dropped_from_the_stack(f: &dyn ApplierFixture) {
        let ns = f.unique("prune");
        let stack_id = StackId::new();
        let v1 = mk_manifests(&[
            mk_namespace(&ns),
            mk_config_map(&ns, "keep", "1"),
            mk_config_map(&ns, "drop", "1"),
        ]);
        f.applier().apply(&mk_stack_ref(stack_id), &v1).await.expect("apply v1");
        let v2 = mk_manifests(&[mk_namespace(&ns), mk_config_map(&ns, "keep", "2")]);
        let report = f.applier().apply(&mk_stack_ref(stack_id), &v2).await.expect("apply v2");
        let dropped = mk_key("v1", "ConfigMap", Some(&ns), "drop");
        let kept = mk_key("v1", "ConfigMap", Some(&ns), "keep");
        assert_eq!(report.pruned, std::slice::from_ref(&dropped));
        assert!(report.changed.contains(&kept), "{report:?}");
        assert!(f.get(&dropped).await.is_none(), "pruned");
        assert_eq!(f.get(&kept).await.expect("kept")["data"]["key"], "2");
        let inventory = f.applier().inventory(stack_id).await.expect("inventory").expect("some");
        assert_eq!(inventory.objects, [mk_key("v1", "Namespace", None, &ns), kept]);
    }

    /// Identity is group, kind, namespace and name: moving an object's manifest from
    /// `v1beta1` to `v1` of the same group keeps the object (it is not pruned as the
    /// old version's object), and the inventory addresses it at the new version.
    async fn identity_ignores_the_api_version(f: &dyn ApplierFixture) {
        let ns = f.unique("moved");
        let group = format!("{}.example.com", f.unique("moved"));
        let stack_id = StackId::new();
        let at = |version: &str| {
            mk_manifests(&[mk_namespace(&ns), mk_widget_crd(&group), mk_widget(&group, version, &ns, "w")])
        };
        f.applier().apply(&mk_stack_ref(stack_id), &at("v1beta1")).await.expect("apply v1beta1");
        let report = f.applier().apply(&mk_stack_ref(stack_id), &at("v1")).await.expect("apply v1");
        assert!(report.pruned.is_empty(), "nothing was dropped: {report:?}");
        let widget = mk_key(&format!("{group}/v1"), "Widget", Some(&ns), "w");
        assert!(f.get(&widget).await.is_some(), "the widget survives its apiVersion move");
        let inventory = f.applier().inventory(stack_id).await.expect("inventory").expect("some");
        assert_eq!(inventory.objects.len(), 3, "{:?}", inventory.objects);
        let recorded = inventory.objects.iter().find(|k| **k == widget).expect("the widget is recorded");
        assert_eq!(recorded.api_version, format!("{group}/v1"), "addressed at the new version");

        let removed = f.applier().remove(stack_id).await.expect("remove");
        assert_eq!(removed.len(), 3, "{removed:?}");
        assert!(f.get(&widget).await.is_none(), "removed once, at whichever version");
    }

    /// Objects of different kinds with the same name are different objects: dropping
    /// one prunes it and leaves the other.
    async fn same_name_different_kind_are_different_objects(f: &dyn ApplierFixture) {
        let ns = f.unique("kinds");
        let stack_id = StackId::new();
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "shared", "namespace": ns}, "stringData": {"k": "v"}});
        let both = mk_manifests(&[mk_namespace(&ns), mk_config_map(&ns, "shared", "1"), secret]);
        f.applier().apply(&mk_stack_ref(stack_id), &both).await.expect("apply both");
        let one = mk_manifests(&[mk_namespace(&ns), mk_config_map(&ns, "shared", "1")]);
        let report = f.applier().apply(&mk_stack_ref(stack_id), &one).await.expect("apply one");
        let secret_key = mk_key("v1", "Secret", Some(&ns), "shared");
        assert_eq!(report.pruned, std::slice::from_ref(&secret_key));
        assert!(f.get(&secret_key).await.is_none());
        assert!(f.get(&mk_key("v1", "ConfigMap", Some(&ns), "shared")).await.is_some());
    }

    /// A change the cluster refuses because a field is immutable (a Job's template)
    /// fails naming the field and leaves the object as it was, unless the manifest or
    /// the stack allows recreation: then the object is deleted, applied again and
    /// reported as recreated.
    async fn an_immutable_change_fails_unless_recreation_is_allowed(f: &dyn ApplierFixture) {
        let ns = f.unique("immutable");
        let stack_id = StackId::new();
        let job = |image: &str| json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "migrate", "namespace": ns},
            "spec": {"backoffLimit": 1, "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "migrate", "image": image}]}}}});
        let image = |live: &serde_json::Value| live["spec"]["template"]["spec"]["containers"][0]["image"].clone();
        let key = mk_key("batch/v1", "Job", Some(&ns), "migrate");
        let v1 = mk_manifests(&[mk_namespace(&ns), job("migrate:1")]);
        f.applier().apply(&mk_stack_ref(stack_id), &v1).await.expect("apply v1");

        let v2 = mk_manifests(&[mk_namespace(&ns), job("migrate:2")]);
        for (what, result) in [
            ("dry run", f.applier().dry_run(&mk_stack_ref(stack_id), &v2).await),
            ("apply", f.applier().apply(&mk_stack_ref(stack_id), &v2).await.map(drop)),
        ] {
            match result {
                Err(Error::Immutable { object, fields, .. }) => {
                    assert_eq!(object, key, "{what}");
                    assert!(fields.iter().any(|field| field.starts_with("spec.template")), "{what}: {fields:?}");
                }
                other => panic!("{what}: expected Immutable, got {other:?}"),
            }
        }
        assert_eq!(image(&f.get(&key).await.expect("kept")), "migrate:1", "left as it was");

        let allowed = mk_manifests(&[mk_namespace(&ns), with_annotation(job("migrate:2"), RECREATE_ANNOTATION)]);
        f.applier().dry_run(&mk_stack_ref(stack_id), &allowed).await.expect("dry run with recreation allowed");
        let report = f.applier().apply(&mk_stack_ref(stack_id), &allowed).await.expect("recreate");
        assert_eq!(report.recreated, std::slice::from_ref(&key));
        assert!(report.changed.contains(&key), "{report:?}");
        let live = f.get(&key).await.expect("recreated");
        assert_eq!(image(&live), "migrate:2");
        assert_eq!(stack_label(&live), Some(stack_id.to_string().as_str()));

        let mut stack = mk_stack_ref(stack_id);
        stack.policy.recreate_on_immutable = true;
        let v3 = mk_manifests(&[mk_namespace(&ns), job("migrate:3")]);
        let report = f.applier().apply(&stack, &v3).await.expect("recreate by policy");
        assert_eq!(report.recreated, std::slice::from_ref(&key));
        assert_eq!(image(&f.get(&key).await.expect("recreated")), "migrate:3");
    }

    /// A dry run validates and changes nothing: no object, no inventory.
    async fn dry_run_changes_nothing(f: &dyn ApplierFixture) {
        let ns = f.unique("dry");
        let stack = mk_stack_ref(StackId::new());
        let manifests = mk_manifests(&[mk_namespace(&ns), mk_config_map(&ns, "settings", "1")]);
        f.applier().dry_run(&stack, &manifests).await.expect("dry run");
        assert!(f.get(&mk_key("v1", "Namespace", None, &ns)).await.is_none());
        assert!(f.get(&mk_key("v1", "ConfigMap", Some(&ns), "settings")).await.is_none());
        assert!(f.applier().inventory(stack.stack_id).await.expect("inventory").is_none());

        // Nor does it change an applied object.
        f.applier().apply(&stack, &manifests).await.expect("apply");
        let changed = mk_manifests(&[mk_namespace(&ns), mk_config_map(&ns, "settings", "2")]);
        f.applier().dry_run(&mk_stack_ref(stack.stack_id), &changed).await.expect("dry run");
        let live = f.get(&mk_key("v1", "ConfigMap", Some(&ns), "settings")).await.expect("applied");
        assert_eq!(live["data"]["key"], "1");
        let inventory = f.applier().inventory(stack.stack_id).await.expect("inventory").expect("some");
        assert_eq!(inventory.deployment_object_id, Some(stack.deployment_object_id));
    }

    /// An object in a namespace that neither exists nor is created by the deployment
    /// object is refused, by the dry run and by the apply, naming the object.
    async fn a_missing_namespace_is_refused_naming_the_object(f: &dyn ApplierFixture) {
        let ns = f.unique("nowhere");
        let stack = mk_stack_ref(StackId::new());
        let manifests = mk_manifests(&[mk_config_map(&ns, "settings", "1")]);
        let key = mk_key("v1", "ConfigMap", Some(&ns), "settings");
        for (what, result) in [
            ("dry run", f.applier().dry_run(&stack, &manifests).await),
            ("apply", f.applier().apply(&stack, &manifests).await.map(drop)),
        ] {
            match result {
                Err(Error::Rejected { object, reason, .. }) => {
                    assert_eq!(object, key, "{what}");
                    assert_eq!(reason, "NotFound", "{what}");
                }
                other => panic!("{what}: expected a NotFound rejection, got {other:?}"),
            }
        }
        assert!(f.get(&key).await.is_none());
    }

    /// A kind the cluster does not serve is refused before anything is applied, naming
    /// the object, and is not worth retrying.
    async fn an_unknown_kind_is_refused_before_anything_changes(f: &dyn ApplierFixture) {
        let ns = f.unique("unknown");
        let group = format!("{}.example.com", f.unique("unknown"));
        let stack = mk_stack_ref(StackId::new());
        let manifests = mk_manifests(&[mk_namespace(&ns), mk_widget(&group, "v1", &ns, "w")]);
        let err = f.applier().apply(&stack, &manifests).await.expect_err("an unknown kind");
        match &err {
            Error::UnknownKind { object } => assert_eq!(object.name, "w"),
            other => panic!("expected UnknownKind, got {other:?}"),
        }
        assert!(!err.is_transient());
        assert!(f.get(&mk_key("v1", "Namespace", None, &ns)).await.is_none(), "nothing applied");
    }

    /// Whatever a failed apply managed to create before it failed is still removed with
    /// the stack: nothing carrying the stack's label is left unknown to its inventory.
    async fn a_failed_apply_leaves_nothing_remove_cannot_find(f: &dyn ApplierFixture) {
        // A namespace the stack does not own, so that removing the stack cannot sweep
        // the objects away with their namespace.
        let ns = f.unique("half");
        f.create_foreign(&mk_manifests(&[mk_namespace(&ns)])[0]).await;
        let stack_id = StackId::new();
        let v1 = mk_stack_ref(stack_id);
        f.applier().apply(&v1, &mk_manifests(&[mk_config_map(&ns, "first", "1")])).await.expect("apply v1");
        let missing = f.unique("missing");
        let v2 = mk_manifests(&[
            mk_config_map(&ns, "first", "1"),
            mk_config_map(&ns, "second", "1"),
            mk_config_map(&missing, "third", "1"),
        ]);
        f.applier().apply(&mk_stack_ref(stack_id), &v2).await.expect_err("a missing namespace");
        let inventory = f.applier().inventory(stack_id).await.expect("inventory").expect("kept");
        assert_eq!(
            inventory.deployment_object_id,
            Some(v1.deployment_object_id),
            "the last deployment object applied completely"
        );
        f.applier().remove(stack_id).await.expect("remove");
        for name in ["first", "second"] {
            let key = mk_key("v1", "ConfigMap", Some(&ns), name);
            assert!(f.get(&key).await.is_none(), "{key} is left behind");
        }
        assert!(f.applier().inventory(stack_id).await.expect("inventory").is_none());
    }

    /// Health covers the stack's workloads only, judged from their live state; a
    /// workload deleted by hand is `Missing`; a stack without inventory has none.
    async fn health_covers_the_stacks_workloads(f: &dyn ApplierFixture) {
        let ns = f.unique("health");
        let stack = mk_stack_ref(StackId::new());
        let manifests = mk_manifests(&[
            mk_namespace(&ns),
            mk_config_map(&ns, "settings", "1"),
            mk_deployment(&ns, "web"),
        ]);
        f.applier().apply(&stack, &manifests).await.expect("apply");
        let web = mk_key("apps/v1", "Deployment", Some(&ns), "web");
        let health = settled_health(f.applier(), stack.stack_id, all_healthy).await;
        let objects: Vec<&ObjectKey> = health.iter().map(|h| &h.object).collect();
        assert_eq!(objects, [&web], "only workloads have health");
        assert_eq!(health[0].status, HealthStatus::Healthy, "{health:?}");

        f.delete_by_hand(&web).await;
        let health = settled_health(f.applier(), stack.stack_id, |h| !all_healthy(h)).await;
        assert_eq!(health.len(), 1, "{health:?}");
        assert_eq!(
            (health[0].status, health[0].reason.as_deref()),
            (HealthStatus::Failed, Some("Missing"))
        );
        assert!(f.applier().health(StackId::new()).await.expect("health").is_empty());
    }
}
