//! Cases about what an applier may delete or take over: only its inventory, in reverse
//! order, never an object it did not create unless a manifest explicitly adopts it,
//! and then it lets go of it instead of deleting it.

use super::{
    ApplierFixture, cases, mk_config_map, mk_key, mk_manifests, mk_namespace, mk_stack_ref,
    mk_widget, mk_widget_crd, stack_label, with_annotation,
};
use crate::applier::{ADOPT_ANNOTATION, Error, RECREATE_ANNOTATION, STACK_LABEL};
use crate::id::StackId;
use crate::manifest::ObjectKey;

use serde_json::{Value, json};

/// Asserts that `result` refuses to take `object`, which carries the label of `owner`
/// (another stack) or none.
fn assert_not_owned<T: std::fmt::Debug>(
    result: crate::applier::Result<T>,
    object: &ObjectKey,
    owner: Option<StackId>,
) {
    match result {
        Err(Error::NotOwned {
            object: refused,
            owner: label,
        }) => {
            assert_eq!(&refused, object);
            assert_eq!(label, owner.map(|o| o.to_string()), "the owner is named");
        }
        other => panic!("expected NotOwned for {object}, got {other:?}"),
    }
}

cases! {
    $ __brokkr_applier_cases_ownership, ownership;

    /// Removal deletes what the inventory names and nothing else, returns what it
    /// deleted, then drops the inventory; removing again, or a stack never applied,
    /// removes nothing.
    async fn remove_deletes_the_inventory_and_nothing_else(f: &dyn ApplierFixture) {
        let ns = f.unique("remove");
        f.create_foreign(&mk_manifests(&[mk_namespace(&ns)])[0]).await;
        f.create_foreign(&mk_manifests(&[mk_config_map(&ns, "theirs", "1")])[0]).await;
        let stack_id = StackId::new();
        let ours = mk_manifests(&[mk_config_map(&ns, "ours", "1"), mk_config_map(&ns, "also-ours", "1")]);
        f.applier().apply(&mk_stack_ref(stack_id), &ours).await.expect("apply");

        let mut removed = f.applier().remove(stack_id).await.expect("remove");
        removed.sort();
        let mut expected = vec![
            mk_key("v1", "ConfigMap", Some(&ns), "ours"),
            mk_key("v1", "ConfigMap", Some(&ns), "also-ours"),
        ];
        expected.sort();
        assert_eq!(removed, expected);
        for key in &expected {
            assert!(f.get(key).await.is_none(), "{key} removed");
        }
        assert!(f.get(&mk_key("v1", "ConfigMap", Some(&ns), "theirs")).await.is_some());
        assert!(f.get(&mk_key("v1", "Namespace", None, &ns)).await.is_some());
        assert!(f.applier().inventory(stack_id).await.expect("inventory").is_none());
        assert!(f.applier().remove(stack_id).await.expect("remove again").is_empty());
        assert!(f.applier().remove(StackId::new()).await.expect("remove unknown").is_empty());
    }

    /// Removal goes in the reverse of the apply order: custom resources before their
    /// CRD, everything before its Namespace.
    async fn remove_goes_in_reverse_order(f: &dyn ApplierFixture) {
        let ns = f.unique("reverse");
        let group = format!("{}.example.com", f.unique("reverse"));
        let stack_id = StackId::new();
        let manifests = mk_manifests(&[
            mk_namespace(&ns),
            mk_widget_crd(&group),
            mk_widget(&group, "v1", &ns, "w"),
            mk_config_map(&ns, "settings", "1"),
        ]);
        f.applier().apply(&mk_stack_ref(stack_id), &manifests).await.expect("apply");
        let removed = f.applier().remove(stack_id).await.expect("remove");
        let position = |kind: &str| {
            removed
                .iter()
                .position(|k| k.kind == kind)
                .unwrap_or_else(|| panic!("{kind} removed: {removed:?}"))
        };
        assert_eq!(removed.len(), 4, "{removed:?}");
        assert!(position("Widget") < position("CustomResourceDefinition"), "{removed:?}");
        assert!(position("CustomResourceDefinition") < position("Namespace"), "{removed:?}");
        assert!(position("ConfigMap") < position("Namespace"), "{removed:?}");
        assert!(f.get(&mk_key("v1", "Namespace", None, &ns)).await.is_none());
    }

    /// An object someone took the stack's label off (took over by hand) is neither
    /// pruned nor removed, though the inventory still names it.
    async fn an_object_whose_label_was_taken_off_is_never_deleted(f: &dyn ApplierFixture) {
        let ns = f.unique("unlabelled");
        f.create_foreign(&mk_manifests(&[mk_namespace(&ns)])[0]).await;
        let mut unlabel = json!({"metadata": {"labels": {}}});
        unlabel["metadata"]["labels"][STACK_LABEL] = Value::Null;

        let pruning = StackId::new();
        let v1 = mk_manifests(&[mk_config_map(&ns, "pruned", "1")]);
        f.applier().apply(&mk_stack_ref(pruning), &v1).await.expect("apply v1");
        let pruned = mk_key("v1", "ConfigMap", Some(&ns), "pruned");
        f.edit_by_hand(&pruned, &unlabel).await;
        let v2 = mk_manifests(&[mk_config_map(&ns, "other", "1")]);
        let report = f.applier().apply(&mk_stack_ref(pruning), &v2).await.expect("apply v2");
        assert!(report.pruned.is_empty(), "{report:?}");
        assert!(f.get(&pruned).await.is_some(), "an unlabelled object is not pruned");

        let removing = StackId::new();
        let v1 = mk_manifests(&[mk_config_map(&ns, "removed", "1")]);
        f.applier().apply(&mk_stack_ref(removing), &v1).await.expect("apply");
        let removed = mk_key("v1", "ConfigMap", Some(&ns), "removed");
        f.edit_by_hand(&removed, &unlabel).await;
        let deleted = f.applier().remove(removing).await.expect("remove");
        assert!(deleted.is_empty(), "{deleted:?}");
        assert!(f.get(&removed).await.is_some(), "an unlabelled object is not removed");
    }

    /// An object that exists without the stack's label is not taken over without an
    /// explicit opt-in: the apply fails naming it, the object is left as it was, and
    /// removing the stack leaves it alone.
    async fn a_foreign_object_is_not_taken_over_without_opt_in(f: &dyn ApplierFixture) {
        let ns = f.unique("foreign");
        f.create_foreign(&mk_manifests(&[mk_namespace(&ns)])[0]).await;
        f.create_foreign(&mk_manifests(&[mk_config_map(&ns, "shared", "theirs")])[0]).await;
        let stack = mk_stack_ref(StackId::new());
        let manifests = mk_manifests(&[mk_config_map(&ns, "shared", "ours")]);
        let shared = mk_key("v1", "ConfigMap", Some(&ns), "shared");

        assert_not_owned(f.applier().dry_run(&stack, &manifests).await, &shared, None);
        assert_not_owned(f.applier().apply(&stack, &manifests).await, &shared, None);
        let live = f.get(&shared).await.expect("still there");
        assert_eq!(live["data"]["key"], "theirs", "left as it was");
        assert_eq!(stack_label(&live), None, "not stamped");
        let _ = f.applier().remove(stack.stack_id).await.expect("remove");
        assert!(f.get(&shared).await.is_some(), "never deleted");
        // The same holds for a Namespace that existed before.
        let manifests = mk_manifests(&[mk_namespace(&ns)]);
        let namespace = mk_key("v1", "Namespace", None, &ns);
        assert_not_owned(f.applier().apply(&stack, &manifests).await, &namespace, None);
        let _ = f.applier().remove(stack.stack_id).await.expect("remove");
        assert!(f.get(&namespace).await.is_some(), "never deleted");
    }

    /// An object of another stack is not taken over by a plain apply, and removing the
    /// stack that tried leaves it to its owner.
    async fn another_stacks_object_is_not_taken_over(f: &dyn ApplierFixture) {
        let ns = f.unique("two-stacks");
        let owner = mk_stack_ref(StackId::new());
        let manifests = mk_manifests(&[mk_namespace(&ns), mk_config_map(&ns, "shared", "owner")]);
        f.applier().apply(&owner, &manifests).await.expect("the owner applies");
        let intruder = mk_stack_ref(StackId::new());
        let manifests = mk_manifests(&[mk_config_map(&ns, "shared", "intruder")]);
        let shared = mk_key("v1", "ConfigMap", Some(&ns), "shared");
        assert_not_owned(f.applier().apply(&intruder, &manifests).await, &shared, Some(owner.stack_id));
        // Not even when the intruder allows adoption.
        let mut adopting = intruder.clone();
        adopting.policy.adopt = true;
        let manifests = mk_manifests(&[with_annotation(mk_config_map(&ns, "shared", "intruder"), ADOPT_ANNOTATION)]);
        assert_not_owned(f.applier().apply(&adopting, &manifests).await, &shared, Some(owner.stack_id));
        let _ = f.applier().remove(intruder.stack_id).await.expect("remove the intruder");
        let live = f.get(&shared).await.expect("still there");
        assert_eq!(stack_label(&live), Some(owner.stack_id.to_string().as_str()));
        assert_eq!(live["data"]["key"], "owner");
    }

    /// With the adopt annotation an existing object is taken over and reported as
    /// adopted; when the stack drops it or is removed, the object is let go (Brokkr's
    /// label taken off), never deleted.
    async fn an_adopted_object_is_released_not_deleted(f: &dyn ApplierFixture) {
        let ns = f.unique("adopt");
        f.create_foreign(&mk_manifests(&[mk_namespace(&ns)])[0]).await;
        f.create_foreign(&mk_manifests(&[mk_config_map(&ns, "pruned", "theirs")])[0]).await;
        f.create_foreign(&mk_manifests(&[mk_config_map(&ns, "removed", "theirs")])[0]).await;
        let stack_id = StackId::new();
        let adopt = |name: &str| with_annotation(mk_config_map(&ns, name, "ours"), ADOPT_ANNOTATION);
        let v1 = mk_manifests(&[adopt("pruned"), adopt("removed")]);
        let pruned = mk_key("v1", "ConfigMap", Some(&ns), "pruned");
        let removed = mk_key("v1", "ConfigMap", Some(&ns), "removed");

        f.applier().dry_run(&mk_stack_ref(stack_id), &v1).await.expect("dry run with opt-in");
        let report = f.applier().apply(&mk_stack_ref(stack_id), &v1).await.expect("adopt");
        assert_eq!(report.applied, [pruned.clone(), removed.clone()]);
        assert_eq!(report.adopted, [pruned.clone(), removed.clone()]);
        let inventory = f.applier().inventory(stack_id).await.expect("inventory").expect("some");
        assert_eq!(inventory.adopted, [pruned.clone(), removed.clone()]);
        let again = f.applier().apply(&mk_stack_ref(stack_id), &v1).await.expect("again");
        assert!(again.adopted.is_empty(), "adopted once: {again:?}");
        for key in [&pruned, &removed] {
            let live = f.get(key).await.expect("adopted");
            assert_eq!(stack_label(&live), Some(stack_id.to_string().as_str()), "{key}");
            assert_eq!(live["data"]["key"], "ours", "{key}");
        }

        let v2 = mk_manifests(&[adopt("removed")]);
        let report = f.applier().apply(&mk_stack_ref(stack_id), &v2).await.expect("drop one");
        assert_eq!(report.pruned, std::slice::from_ref(&pruned), "listed as let go");
        let live = f.get(&pruned).await.expect("released, not deleted");
        assert_eq!(stack_label(&live), None, "no longer Brokkr's");
        assert_eq!(live["data"]["key"], "ours", "otherwise left as it is");

        let let_go = f.applier().remove(stack_id).await.expect("remove");
        assert_eq!(let_go, std::slice::from_ref(&removed), "listed as let go");
        let live = f.get(&removed).await.expect("released, not deleted");
        assert_eq!(stack_label(&live), None, "no longer Brokkr's");
        assert!(f.get(&mk_key("v1", "Namespace", None, &ns)).await.is_some());
    }

    /// A Namespace that existed before, adopted by a stack, outlives the stack together
    /// with everything else in it; only what the stack created there goes.
    async fn an_adopted_namespace_outlives_the_stack(f: &dyn ApplierFixture) {
        let ns = f.unique("shared-ns");
        f.create_foreign(&mk_manifests(&[mk_namespace(&ns)])[0]).await;
        f.create_foreign(&mk_manifests(&[mk_config_map(&ns, "theirs", "1")])[0]).await;
        let stack_id = StackId::new();
        let manifests = mk_manifests(&[
            with_annotation(mk_namespace(&ns), ADOPT_ANNOTATION),
            mk_config_map(&ns, "ours", "1"),
        ]);
        f.applier().apply(&mk_stack_ref(stack_id), &manifests).await.expect("apply");
        let removed = f.applier().remove(stack_id).await.expect("remove");
        let ours = mk_key("v1", "ConfigMap", Some(&ns), "ours");
        let namespace_key = mk_key("v1", "Namespace", None, &ns);
        assert_eq!(removed, [ours.clone(), namespace_key], "deleted, then released");
        assert!(f.get(&ours).await.is_none());
        assert!(f.get(&mk_key("v1", "ConfigMap", Some(&ns), "theirs")).await.is_some());
        let namespace = f.get(&mk_key("v1", "Namespace", None, &ns)).await.expect("kept");
        assert_eq!(stack_label(&namespace), None, "released");
    }

    /// A stack whose policy allows adoption adopts every object that exists without a
    /// label, with no annotation on the manifests.
    async fn a_stack_policy_adopts_without_annotations(f: &dyn ApplierFixture) {
        let ns = f.unique("policy");
        f.create_foreign(&mk_manifests(&[mk_namespace(&ns)])[0]).await;
        f.create_foreign(&mk_manifests(&[mk_config_map(&ns, "theirs", "1")])[0]).await;
        let mut stack = mk_stack_ref(StackId::new());
        stack.policy.adopt = true;
        let manifests = mk_manifests(&[mk_config_map(&ns, "theirs", "2")]);
        let key = mk_key("v1", "ConfigMap", Some(&ns), "theirs");
        let report = f.applier().apply(&stack, &manifests).await.expect("adopt");
        assert_eq!(report.adopted, std::slice::from_ref(&key));
        let live = f.get(&key).await.expect("adopted");
        assert_eq!(stack_label(&live), Some(stack.stack_id.to_string().as_str()));
        f.applier().remove(stack.stack_id).await.expect("remove");
        let live = f.get(&key).await.expect("released, not deleted");
        assert_eq!(stack_label(&live), None);
    }

    /// An adopted object is never deleted to be recreated, even with recreation
    /// allowed: the change to its immutable field fails naming the field, at the dry
    /// run and at the apply, and the object stays as it was.
    async fn an_adopted_object_is_never_recreated(f: &dyn ApplierFixture) {
        let ns = f.unique("adopt-immutable");
        let job = |image: &str| json!({"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "theirs", "namespace": ns},
            "spec": {"backoffLimit": 1, "template": {"spec": {"restartPolicy": "Never",
                "containers": [{"name": "once", "image": image}]}}}});
        let image = |live: &Value| live["spec"]["template"]["spec"]["containers"][0]["image"].clone();
        f.create_foreign(&mk_manifests(&[mk_namespace(&ns)])[0]).await;
        f.create_foreign(&mk_manifests(&[job("theirs:1")])[0]).await;
        let key = mk_key("batch/v1", "Job", Some(&ns), "theirs");
        let mut stack = mk_stack_ref(StackId::new());
        stack.policy.adopt = true;
        stack.policy.recreate_on_immutable = true;
        let both = |image: &str| mk_manifests(&[with_annotation(
            with_annotation(job(image), ADOPT_ANNOTATION), RECREATE_ANNOTATION)]);

        // Adopting it and changing its template in the same deployment object.
        for (what, result) in [
            ("dry run", f.applier().dry_run(&stack, &both("ours:2")).await),
            ("apply", f.applier().apply(&stack, &both("ours:2")).await.map(drop)),
        ] {
            match result {
                Err(Error::Immutable { object, .. }) => assert_eq!(object, key, "{what}"),
                other => panic!("{what}: expected Immutable, got {other:?}"),
            }
        }
        assert_eq!(image(&f.get(&key).await.expect("kept")), "theirs:1");

        // Adopted as it is, then changed.
        f.applier().apply(&stack, &both("theirs:1")).await.expect("adopt");
        let uid = f.get(&key).await.expect("adopted")["metadata"]["uid"].clone();
        for (what, result) in [
            ("dry run", f.applier().dry_run(&stack, &both("ours:2")).await),
            ("apply", f.applier().apply(&stack, &both("ours:2")).await.map(drop)),
        ] {
            match result {
                Err(Error::Immutable { object, .. }) => assert_eq!(object, key, "{what}"),
                other => panic!("{what}: expected Immutable, got {other:?}"),
            }
        }
        let live = f.get(&key).await.expect("never deleted");
        assert_eq!(image(&live), "theirs:1");
        assert_eq!(live["metadata"]["uid"], uid, "the same object");
        f.applier().remove(stack.stack_id).await.expect("remove");
        assert!(f.get(&key).await.is_some(), "released, not deleted");
    }
}
