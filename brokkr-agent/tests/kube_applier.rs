//! The real `KubeApplier` and capabilities probe, through the real kube-rs client,
//! against the Kubernetes API emulator — or against a real cluster when
//! `BROKKR_TEST_KUBECONFIG` names a kubeconfig. Checks that only the emulator can make
//! (its record of applies, hand-set statuses, nodes, forbidden verbs) are then skipped
//! with a printed notice.
//!
//! Every test uses its own namespaces, inventory namespace and CRD group (suffixed with
//! a random id), so the tests run in parallel and, on a real cluster, leave nothing
//! behind that another run could trip over; they delete what they created at the end.

mod emulator;

use std::collections::BTreeSet;
use std::time::Duration;

use brokkr_agent::capabilities;
use brokkr_agent::kube_applier::{KubeApplier, KubeApplierOptions};
use brokkr_core::applier::{
    ADOPT_ANNOTATION, Applier, ApplyPolicy, CHECKSUM_ANNOTATION, DEPLOYMENT_OBJECT_ANNOTATION,
    Error, FIELD_MANAGER, RECREATE_ANNOTATION, STACK_LABEL, StackRef,
};
use brokkr_core::{DeploymentObjectId, HealthStatus, Manifest, ObjectKey, StackId};
use emulator::Emulator;
use kube::api::{Api, DeleteParams, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

/// The cluster under test: the emulator, or the one `BROKKR_TEST_KUBECONFIG` names.
struct TestCluster {
    emulator: Option<Emulator>,
    client: kube::Client,
    /// Makes this test's names unique.
    suffix: String,
}

impl TestCluster {
    async fn start() -> TestCluster {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let suffix = uuid::Uuid::new_v4().simple().to_string()[..8].to_owned();
        match std::env::var_os("BROKKR_TEST_KUBECONFIG") {
            Some(path) => {
                let kubeconfig = kube::config::Kubeconfig::read_from(path)
                    .expect("BROKKR_TEST_KUBECONFIG names a readable kubeconfig");
                let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                    .await
                    .expect("a usable kubeconfig");
                let client = kube::Client::try_from(config).expect("a kube client");
                TestCluster {
                    emulator: None,
                    client,
                    suffix,
                }
            }
            None => {
                let emulator = Emulator::start().await;
                let client = emulator.client();
                TestCluster {
                    emulator: Some(emulator),
                    client,
                    suffix,
                }
            }
        }
    }

    /// The emulator, for a check only it can make; `None` (and a notice) on a real
    /// cluster.
    fn emulator(&self, check: &str) -> Option<&Emulator> {
        if self.emulator.is_none() {
            eprintln!("note: real cluster; skipping the emulator-only check: {check}");
        }
        self.emulator.as_ref()
    }

    /// `base` made unique to this test.
    fn name(&self, base: &str) -> String {
        format!("{base}-{}", self.suffix)
    }

    fn options(&self) -> KubeApplierOptions {
        KubeApplierOptions {
            inventory_namespace: self.name("brokkr-inv"),
            crd_established_timeout: Duration::from_secs(30),
            ..KubeApplierOptions::default()
        }
    }

    async fn applier(&self) -> KubeApplier {
        self.applier_with(self.options()).await
    }

    async fn applier_with(&self, options: KubeApplierOptions) -> KubeApplier {
        KubeApplier::new(self.client.clone(), options)
            .await
            .expect("the applier starts")
    }

    /// The live object, through kube (works on both kinds of cluster).
    async fn get(&self, key: &ObjectKey) -> Option<Value> {
        dynamic_api(
            &self.client,
            &key.api_version,
            &key.kind,
            key.namespace.as_deref(),
        )
        .get_opt(&key.name)
        .await
        .expect("GET through kube")
        .map(|o| serde_json::to_value(o).expect("an object is JSON"))
    }

    /// Whether the object is gone, or going (a real cluster deletes Namespaces and
    /// their contents asynchronously).
    async fn is_gone(&self, key: &ObjectKey) -> bool {
        match self.get(key).await {
            None => true,
            Some(live) => {
                self.emulator.is_none() && !live["metadata"]["deletionTimestamp"].is_null()
            }
        }
    }

    /// Server-side applies `object` as someone other than Brokkr would.
    async fn apply_by_hand(&self, object: Value) {
        let manifest = manifest(object);
        dynamic_api(
            &self.client,
            manifest.api_version(),
            manifest.kind(),
            manifest.namespace(),
        )
        .patch(
            manifest.name(),
            &PatchParams::apply("someone-else").force(),
            &Patch::Apply(manifest.as_value()),
        )
        .await
        .expect("a hand-made apply");
    }

    async fn delete_by_hand(&self, key: &ObjectKey) {
        dynamic_api(
            &self.client,
            &key.api_version,
            &key.kind,
            key.namespace.as_deref(),
        )
        .delete(&key.name, &DeleteParams::default())
        .await
        .expect("a hand-made delete");
    }

    /// On a real cluster, deletes what the test created (best effort). The emulator
    /// just goes away.
    async fn cleanup(self, namespaces: &[&str], crds: &[&str]) {
        if self.emulator.is_some() {
            return;
        }
        let inventory = self.name("brokkr-inv");
        for namespace in namespaces.iter().copied().chain([inventory.as_str()]) {
            let _ = dynamic_api(&self.client, "v1", "Namespace", None)
                .delete(namespace, &DeleteParams::default())
                .await;
        }
        for crd in crds {
            let _ = dynamic_api(
                &self.client,
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                None,
            )
            .delete(crd, &DeleteParams::default())
            .await;
        }
    }
}

fn dynamic_api(
    client: &kube::Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    match namespace {
        Some(namespace) => Api::namespaced_with(client.clone(), namespace, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

// --- Fixtures. ---

fn manifest(value: Value) -> Manifest {
    Manifest::from_value(value).expect("a valid manifest")
}

fn stack(stack_id: StackId, checksum: &str) -> StackRef {
    StackRef {
        stack_id,
        deployment_object_id: DeploymentObjectId::new(),
        checksum: checksum.to_owned(),
        policy: ApplyPolicy::default(),
    }
}

fn namespace(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}})
}

fn config_map(namespace: Option<&str>, name: &str, value: &str) -> Value {
    let mut object = json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "labels": {"app": "demo"}}, "data": {"key": value}});
    if let Some(namespace) = namespace {
        object["metadata"]["namespace"] = json!(namespace);
    }
    object
}

fn deployment(namespace: &str, name: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"replicas": 1, "selector": {"matchLabels": {"app": name}},
            "template": {"metadata": {"labels": {"app": name}},
                "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}}}})
}

/// A CRD for `widgets.<group>` (namespaced) and the group.
fn widget_crd(group: &str) -> Value {
    json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": {"name": format!("widgets.{group}")},
        "spec": {"group": group, "scope": "Namespaced",
            "names": {"kind": "Widget", "plural": "widgets", "singular": "widget", "listKind": "WidgetList"},
            "versions": [{"name": "v1", "served": true, "storage": true,
                "schema": {"openAPIV3Schema": {"type": "object",
                    "x-kubernetes-preserve-unknown-fields": true}}}]}})
}

fn widget(group: &str, namespace: &str, name: &str) -> Value {
    json!({"apiVersion": format!("{group}/v1"), "kind": "Widget",
        "metadata": {"name": name, "namespace": namespace}, "spec": {"size": 3}})
}

fn key(api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> ObjectKey {
    ObjectKey {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        namespace: namespace.map(str::to_owned),
        name: name.to_owned(),
    }
}

fn keys(manifests: &[Manifest]) -> BTreeSet<ObjectKey> {
    manifests.iter().map(Manifest::key).collect()
}

// --- Tests. ---

#[tokio::test]
async fn apply_creates_stamped_objects_namespaces_first() {
    let cluster = TestCluster::start().await;
    let ns = cluster.name("shop");
    // The ConfigMap names no namespace: it gets the default one.
    let options = KubeApplierOptions {
        default_namespace: ns.clone(),
        ..cluster.options()
    };
    let applier = cluster.applier_with(options).await;
    let manifests = [
        manifest(deployment(&ns, "web")),
        manifest(config_map(None, "settings", "v1")),
        manifest(namespace(&ns)),
    ];
    let stack = stack(StackId::new(), "sum-1");

    let report = applier.apply(&stack, &manifests).await.expect("apply");

    let namespace_key = key("v1", "Namespace", None, &ns);
    let deployment_key = key("apps/v1", "Deployment", Some(&ns), "web");
    let config_map_key = key("v1", "ConfigMap", Some(&ns), "settings");
    let expected = vec![
        namespace_key.clone(),
        deployment_key.clone(),
        config_map_key.clone(),
    ];
    assert_eq!(report.applied, expected);
    assert_eq!(report.changed, expected, "everything was created");
    assert!(report.pruned.is_empty());

    for object in &expected {
        let live = cluster.get(object).await.expect("applied object exists");
        let metadata = &live["metadata"];
        assert_eq!(metadata["labels"][STACK_LABEL], stack.stack_id.to_string());
        assert_eq!(
            metadata["annotations"][DEPLOYMENT_OBJECT_ANNOTATION],
            stack.deployment_object_id.to_string()
        );
        assert_eq!(metadata["annotations"][CHECKSUM_ANNOTATION], "sum-1");
    }
    let live = cluster.get(&config_map_key).await.unwrap();
    assert_eq!(
        live["metadata"]["labels"]["app"], "demo",
        "the manifest's own labels are kept"
    );

    let inventory = applier
        .inventory(stack.stack_id)
        .await
        .expect("read inventory")
        .expect("an inventory");
    assert_eq!(inventory.objects, expected);
    assert_eq!(
        inventory.deployment_object_id,
        Some(stack.deployment_object_id)
    );
    assert_eq!(inventory.checksum.as_deref(), Some("sum-1"));

    if let Some(emulator) = cluster.emulator("apply requests in order, forced, by brokkr") {
        let inventory_namespace = cluster.name("brokkr-inv");
        let applies: Vec<_> = emulator
            .applies()
            .into_iter()
            .filter(|a| {
                a.kind != "ConfigMap" || a.namespace.as_deref() != Some(&inventory_namespace)
            })
            .filter(|a| a.name != inventory_namespace)
            .collect();
        let order: Vec<(&str, &str)> = applies
            .iter()
            .map(|a| (a.kind.as_str(), a.name.as_str()))
            .collect();
        assert_eq!(
            order,
            [
                ("Namespace", ns.as_str()),
                ("Deployment", "web"),
                ("ConfigMap", "settings")
            ]
        );
        for apply in &applies {
            assert_eq!(apply.field_manager, FIELD_MANAGER);
            assert!(apply.force);
            assert_eq!(apply.annotations[CHECKSUM_ANNOTATION], "sum-1");
        }
        let inventory_config_map = emulator
            .get(
                "v1",
                "ConfigMap",
                Some(&inventory_namespace),
                &format!("brokkr-inventory-{}", stack.stack_id),
            )
            .expect("the inventory ConfigMap");
        assert_eq!(
            inventory_config_map["metadata"]["labels"]["app.kubernetes.io/managed-by"],
            "brokkr"
        );
    }
    cluster.cleanup(&[&ns], &[]).await;
}

#[tokio::test]
async fn reapply_is_idempotent_and_corrects_hand_edits() {
    let cluster = TestCluster::start().await;
    let applier = cluster.applier().await;
    let ns = cluster.name("drift");
    let manifests = [
        manifest(namespace(&ns)),
        manifest(config_map(Some(&ns), "settings", "wanted")),
    ];
    let stack = stack(StackId::new(), "sum-1");
    applier
        .apply(&stack, &manifests)
        .await
        .expect("first apply");

    let again = applier.apply(&stack, &manifests).await.expect("re-apply");
    assert_eq!(again.applied.len(), 2);
    assert!(again.changed.is_empty(), "a no-op: {:?}", again.changed);
    assert!(again.pruned.is_empty());

    let settings = key("v1", "ConfigMap", Some(&ns), "settings");
    match cluster.emulator("a hand edit through Emulator::edit") {
        Some(emulator) => emulator.edit("v1", "ConfigMap", Some(&ns), "settings", |object| {
            object["data"]["key"] = json!("edited by hand");
        }),
        None => {
            cluster
                .apply_by_hand(config_map(Some(&ns), "settings", "edited by hand"))
                .await
        }
    }
    assert_eq!(
        cluster.get(&settings).await.unwrap()["data"]["key"],
        "edited by hand"
    );

    let corrected = applier.apply(&stack, &manifests).await.expect("re-apply");
    assert_eq!(
        corrected.changed,
        std::slice::from_ref(&settings),
        "drift is reported"
    );
    assert_eq!(
        cluster.get(&settings).await.unwrap()["data"]["key"],
        "wanted"
    );
    cluster.cleanup(&[&ns], &[]).await;
}

#[tokio::test]
async fn prune_deletes_dropped_objects_but_not_ones_without_the_label() {
    let cluster = TestCluster::start().await;
    let applier = cluster.applier().await;
    let ns = cluster.name("prune");
    let stack_id = StackId::new();
    let first = [
        manifest(namespace(&ns)),
        manifest(config_map(Some(&ns), "kept", "1")),
        manifest(config_map(Some(&ns), "dropped", "1")),
        manifest(config_map(Some(&ns), "taken-over", "1")),
    ];
    applier
        .apply(&stack(stack_id, "sum-1"), &first)
        .await
        .expect("first apply");

    // Someone replaces "taken-over" with an object of their own, without the label.
    let taken_over = key("v1", "ConfigMap", Some(&ns), "taken-over");
    cluster.delete_by_hand(&taken_over).await;
    cluster
        .apply_by_hand(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "taken-over", "namespace": ns}, "data": {"owner": "someone else"}}))
        .await;

    let second = [
        manifest(namespace(&ns)),
        manifest(config_map(Some(&ns), "kept", "1")),
    ];
    let report = applier
        .apply(&stack(stack_id, "sum-2"), &second)
        .await
        .expect("second apply");

    let dropped = key("v1", "ConfigMap", Some(&ns), "dropped");
    assert_eq!(report.pruned, std::slice::from_ref(&dropped));
    assert!(cluster.is_gone(&dropped).await);
    let survivor = cluster
        .get(&taken_over)
        .await
        .expect("an object without the stack's label is never deleted");
    assert_eq!(survivor["data"]["owner"], "someone else");
    assert!(
        cluster
            .get(&key("v1", "ConfigMap", Some(&ns), "kept"))
            .await
            .is_some()
    );

    let inventory = applier.inventory(stack_id).await.unwrap().unwrap();
    assert_eq!(
        inventory.objects.into_iter().collect::<BTreeSet<_>>(),
        keys(&second)
    );
    assert_eq!(inventory.checksum.as_deref(), Some("sum-2"));
    cluster.cleanup(&[&ns], &[]).await;
}

#[tokio::test]
async fn an_unknown_kind_fails_before_anything_is_applied() {
    let cluster = TestCluster::start().await;
    let applier = cluster.applier().await;
    let ns = cluster.name("unknown");
    let group = format!("{}.nowhere.brokkr.io", cluster.name("g"));
    let gadget = json!({"apiVersion": format!("{group}/v1"), "kind": "Gadget",
        "metadata": {"name": "g", "namespace": ns}});
    let manifests = [
        manifest(namespace(&ns)),
        manifest(config_map(Some(&ns), "settings", "1")),
        manifest(gadget),
    ];
    let stack = stack(StackId::new(), "sum-1");
    let before = cluster
        .emulator("no apply request")
        .map(|e| e.applies().len());

    match applier.apply(&stack, &manifests).await {
        Err(Error::UnknownKind { object }) => {
            assert_eq!(object.kind, "Gadget");
            assert_eq!(object.api_version, format!("{group}/v1"));
        }
        other => panic!("expected UnknownKind, got {other:?}"),
    }
    assert!(
        cluster
            .get(&key("v1", "Namespace", None, &ns))
            .await
            .is_none()
    );
    assert_eq!(applier.inventory(stack.stack_id).await.unwrap(), None);
    if let (Some(emulator), Some(before)) = (cluster.emulator.as_ref(), before) {
        assert_eq!(emulator.applies().len(), before, "nothing was applied");
    }
    assert!(matches!(
        applier.dry_run(&stack, &manifests).await,
        Err(Error::UnknownKind { .. })
    ));
    cluster.cleanup(&[&ns], &[]).await;
}

#[tokio::test]
async fn a_crd_and_its_custom_resources_apply_together() {
    let cluster = TestCluster::start().await;
    let applier = cluster.applier().await;
    let ns = cluster.name("crd");
    let group = format!("{}.test.brokkr.io", cluster.name("w"));
    let crd_name = format!("widgets.{group}");
    let manifests = [
        manifest(widget(&group, &ns, "gizmo")),
        manifest(namespace(&ns)),
        manifest(widget_crd(&group)),
    ];
    let stack = stack(StackId::new(), "sum-1");

    // The widget's kind and namespace do not exist yet: the dry run checks the rest.
    applier
        .dry_run(&stack, &manifests)
        .await
        .expect("dry run before the CRD exists");
    assert!(
        cluster
            .get(&key("v1", "Namespace", None, &ns))
            .await
            .is_none(),
        "a dry run creates nothing"
    );

    let report = applier.apply(&stack, &manifests).await.expect("apply");
    let crd_key = key(
        "apiextensions.k8s.io/v1",
        "CustomResourceDefinition",
        None,
        &crd_name,
    );
    let widget_key = key(&format!("{group}/v1"), "Widget", Some(&ns), "gizmo");
    assert_eq!(
        report.applied,
        [
            key("v1", "Namespace", None, &ns),
            crd_key.clone(),
            widget_key.clone()
        ]
    );
    let crd = cluster.get(&crd_key).await.expect("the CRD");
    let established = crd["status"]["conditions"]
        .as_array()
        .into_iter()
        .flatten()
        .any(|c| c["type"] == "Established" && c["status"] == "True");
    assert!(established);
    let live = cluster.get(&widget_key).await.expect("the widget");
    assert_eq!(live["spec"]["size"], 3);
    assert_eq!(
        live["metadata"]["labels"][STACK_LABEL],
        stack.stack_id.to_string()
    );

    // Now everything exists, so the dry run checks every object.
    applier
        .dry_run(&stack, &manifests)
        .await
        .expect("dry run after");
    let again = applier.apply(&stack, &manifests).await.expect("re-apply");
    assert!(again.changed.is_empty(), "{:?}", again.changed);

    let removed = applier.remove(stack.stack_id).await.expect("remove");
    assert_eq!(
        removed,
        [widget_key, crd_key, key("v1", "Namespace", None, &ns)]
    );
    cluster.cleanup(&[&ns], &[&crd_name]).await;
}

/// A kind installed after the applier started (by someone else) is found by
/// refreshing the discovery cache.
#[tokio::test]
async fn a_kind_served_after_start_is_discovered() {
    let cluster = TestCluster::start().await;
    let Some(emulator) = cluster.emulator("a kind installed behind the applier's back") else {
        return;
    };
    let applier = cluster.applier().await;
    emulator.register_kind("late.example.com/v1", "Gizmo", "gizmos", true);
    let gizmo = json!({"apiVersion": "late.example.com/v1", "kind": "Gizmo",
        "metadata": {"name": "g", "namespace": "default"}, "spec": {}});
    let report = applier
        .apply(&stack(StackId::new(), "sum-1"), &[manifest(gizmo)])
        .await
        .expect("apply after a discovery refresh");
    assert_eq!(
        report.applied,
        [key("late.example.com/v1", "Gizmo", Some("default"), "g")]
    );
}

#[tokio::test]
async fn a_crd_that_never_becomes_established_times_out() {
    let cluster = TestCluster::start().await;
    let Some(emulator) = cluster.emulator("holding a CRD back") else {
        return;
    };
    emulator.hold_crd_establishment(true);
    let options = KubeApplierOptions {
        crd_established_timeout: Duration::from_millis(300),
        ..cluster.options()
    };
    let applier = cluster.applier_with(options).await;
    let group = "held.test.brokkr.io";
    let stack = stack(StackId::new(), "sum-1");
    match applier.apply(&stack, &[manifest(widget_crd(group))]).await {
        Err(error @ Error::NotEstablished { .. }) => assert!(error.is_transient()),
        other => panic!("expected NotEstablished, got {other:?}"),
    }
    // The inventory already names the CRD, so nothing is orphaned.
    let inventory = applier.inventory(stack.stack_id).await.unwrap().unwrap();
    assert_eq!(inventory.objects.len(), 1);
    assert_eq!(
        inventory.deployment_object_id, None,
        "not applied completely"
    );
}

#[tokio::test]
async fn dry_run_catches_invalid_objects_and_stores_nothing() {
    let cluster = TestCluster::start().await;
    let applier = cluster.applier().await;
    let stack = stack(StackId::new(), "sum-1");
    let role_name = cluster.name("reader");

    // A cluster-scoped kind with a namespace.
    let cluster_role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
        "metadata": {"name": role_name, "namespace": "default"}, "rules": []});
    match applier.dry_run(&stack, &[manifest(cluster_role)]).await {
        Err(Error::Rejected { object, reason, .. }) => {
            assert_eq!(object.kind, "ClusterRole");
            assert_eq!(reason, "Invalid");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }

    // A namespaced object in a namespace that does not exist and that the deployment
    // object does not create.
    let missing = cluster.name("missing");
    let ns = cluster.name("made");
    let manifests = [
        manifest(namespace(&ns)),
        manifest(config_map(Some(&ns), "fine", "1")),
        manifest(config_map(Some(&missing), "lost", "1")),
    ];
    match applier.dry_run(&stack, &manifests).await {
        Err(Error::Rejected { object, reason, .. }) => {
            assert_eq!(object, key("v1", "ConfigMap", Some(&missing), "lost"));
            assert_eq!(reason, "NotFound");
        }
        other => panic!("expected Rejected, got {other:?}"),
    }

    // Without the stray object it passes, and still creates nothing.
    applier
        .dry_run(&stack, &manifests[..2])
        .await
        .expect("a valid deployment object");
    assert!(
        cluster
            .get(&key("v1", "Namespace", None, &ns))
            .await
            .is_none()
    );
    assert_eq!(applier.inventory(stack.stack_id).await.unwrap(), None);
    if let Some(emulator) = cluster.emulator("no apply request recorded") {
        assert!(
            emulator
                .applies()
                .iter()
                .all(|a| a.kind == "Namespace" && a.name == cluster.name("brokkr-inv")),
            "only the inventory namespace was applied"
        );
    }
    cluster.cleanup(&[], &[]).await;
}

#[tokio::test]
async fn remove_deletes_everything_then_the_inventory() {
    let cluster = TestCluster::start().await;
    let applier = cluster.applier().await;
    let ns = cluster.name("gone");
    let manifests = [
        manifest(namespace(&ns)),
        manifest(deployment(&ns, "web")),
        manifest(config_map(Some(&ns), "settings", "1")),
    ];
    let stack = stack(StackId::new(), "sum-1");
    applier.apply(&stack, &manifests).await.expect("apply");

    let removed = applier.remove(stack.stack_id).await.expect("remove");
    let namespace_key = key("v1", "Namespace", None, &ns);
    assert_eq!(
        removed.last(),
        Some(&namespace_key),
        "the namespace goes last"
    );
    assert_eq!(
        removed.iter().cloned().collect::<BTreeSet<_>>(),
        keys(&manifests)
    );
    for object in &removed {
        assert!(cluster.is_gone(object).await, "{object} is gone");
    }
    assert_eq!(applier.inventory(stack.stack_id).await.unwrap(), None);
    assert_eq!(
        applier.remove(stack.stack_id).await.expect("remove again"),
        []
    );
    assert_eq!(
        applier
            .remove(StackId::new())
            .await
            .expect("remove unknown"),
        []
    );
    cluster.cleanup(&[&ns], &[]).await;
}

#[tokio::test]
async fn health_follows_the_live_status() {
    let cluster = TestCluster::start().await;
    let Some(emulator) = cluster.emulator("hand-set workload status") else {
        return;
    };
    let applier = cluster.applier().await;
    let ns = cluster.name("health");
    let manifests = [
        manifest(namespace(&ns)),
        manifest(deployment(&ns, "web")),
        manifest(config_map(Some(&ns), "settings", "1")),
    ];
    let stack = stack(StackId::new(), "sum-1");
    applier.apply(&stack, &manifests).await.expect("apply");
    let web = key("apps/v1", "Deployment", Some(&ns), "web");

    let health = applier.health(stack.stack_id).await.expect("health");
    assert_eq!(health.len(), 1, "only workloads have health: {health:?}");
    assert_eq!(health[0].object, web);
    assert_eq!(health[0].status, HealthStatus::Healthy);

    let live = emulator
        .get("apps/v1", "Deployment", Some(&ns), "web")
        .unwrap();
    emulator.set_status(
        "apps/v1",
        "Deployment",
        Some(&ns),
        "web",
        // A pod lost after the rollout completed (the controller keeps the reason
        // `NewReplicaSetAvailable` until the next rollout).
        json!({"observedGeneration": live["metadata"]["generation"], "replicas": 1,
            "updatedReplicas": 1, "readyReplicas": 0, "availableReplicas": 0,
            "conditions": [{"type": "Progressing", "status": "True",
                "reason": "NewReplicaSetAvailable"}]}),
    );
    let health = applier.health(stack.stack_id).await.expect("health");
    assert_eq!(health[0].status, HealthStatus::Degraded);
    assert_eq!(health[0].reason.as_deref(), Some("UnavailableReplicas"));

    cluster.delete_by_hand(&web).await;
    let health = applier.health(stack.stack_id).await.expect("health");
    assert_eq!(health[0].status, HealthStatus::Failed);
    assert_eq!(health[0].reason.as_deref(), Some("Missing"));

    assert_eq!(applier.health(StackId::new()).await.unwrap(), []);
}

/// A rolling update with surge: the new pods are all up and available, but an old one
/// still runs. `kubectl rollout status` keeps waiting ("old replicas are pending
/// termination"), and so does health, until the old pod is gone. Counting available
/// replicas against the desired number alone would call it healthy too early.
#[tokio::test]
async fn a_surge_rollout_is_not_healthy_until_it_is() {
    let cluster = TestCluster::start().await;
    let Some(emulator) = cluster.emulator("hand-set workload status") else {
        return;
    };
    let applier = cluster.applier().await;
    let ns = cluster.name("surge");
    let mut web = deployment(&ns, "web");
    web["spec"]["replicas"] = json!(3);
    let manifests = [manifest(namespace(&ns)), manifest(web)];
    let stack = stack(StackId::new(), "surge-1");
    applier.apply(&stack, &manifests).await.expect("apply");
    let live = emulator
        .get("apps/v1", "Deployment", Some(&ns), "web")
        .unwrap();
    let generation = live["metadata"]["generation"].clone();
    let status = |replicas: u32| {
        json!({"observedGeneration": generation, "replicas": replicas,
            "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3,
            "conditions": [{"type": "Progressing", "status": "True",
                "reason": "ReplicaSetUpdated"}]})
    };

    // Three new pods available, one old pod still terminating.
    emulator.set_status("apps/v1", "Deployment", Some(&ns), "web", status(4));
    let health = applier.health(stack.stack_id).await.expect("health");
    assert_eq!(health[0].status, HealthStatus::Progressing, "{health:?}");
    assert_eq!(health[0].reason.as_deref(), Some("OldReplicasPending"));

    // The old pod is gone: done.
    emulator.set_status("apps/v1", "Deployment", Some(&ns), "web", status(3));
    let health = applier.health(stack.stack_id).await.expect("health");
    assert_eq!(health[0].status, HealthStatus::Healthy, "{health:?}");
    cluster.cleanup(&[&ns], &[]).await;
}

#[tokio::test]
async fn capabilities_report_version_and_nodes() {
    let cluster = TestCluster::start().await;
    let Some(emulator) = cluster.emulator("nodes added by hand") else {
        let capabilities = capabilities::probe(&cluster.client).await;
        assert!(capabilities.kubernetes_version.is_some());
        return;
    };
    emulator.add_node("n1", "4", "16Gi");
    emulator.add_node("n2", "3500m", "1000Mi");
    let capabilities = capabilities::probe(&cluster.client).await;
    assert!(
        capabilities
            .kubernetes_version
            .as_deref()
            .is_some_and(|v| v.starts_with('v')),
        "{capabilities:?}"
    );
    assert_eq!(capabilities.node_count, Some(2));
    assert_eq!(capabilities.allocatable_cpu_millis, Some(7500));
    assert_eq!(
        capabilities.allocatable_memory_bytes,
        Some(16 * 1024 * 1024 * 1024 + 1000 * 1024 * 1024)
    );

    emulator.forbid("list", "nodes");
    let capabilities = capabilities::probe(&cluster.client).await;
    assert!(capabilities.kubernetes_version.is_some());
    assert_eq!(capabilities.node_count, None);
    assert_eq!(capabilities.allocatable_cpu_millis, None);
    assert_eq!(capabilities.allocatable_memory_bytes, None);
}

/// What the namespace-scoped RBAC of docs/agent-rbac.md allows: no Namespaces, no
/// CRDs, no nodes. The applier still starts, and applies into namespaces it may use.
#[tokio::test]
async fn namespace_scoped_rbac_is_enough_for_namespaced_objects() {
    let cluster = TestCluster::start().await;
    let Some(emulator) = cluster.emulator("forbidden verbs") else {
        return;
    };
    for verb in ["get", "list", "patch", "delete"] {
        for resource in ["namespaces", "customresourcedefinitions", "nodes"] {
            emulator.forbid(verb, resource);
        }
    }
    // The inventory namespace exists (an admin created it), and the agent may not
    // even check that.
    let options = KubeApplierOptions {
        inventory_namespace: "kube-public".to_owned(),
        ..cluster.options()
    };
    let applier = cluster.applier_with(options).await;
    let manifests = [
        manifest(config_map(Some("default"), "settings", "1")),
        manifest(deployment("default", "web")),
    ];
    let stack = stack(StackId::new(), "sum-1");
    applier.dry_run(&stack, &manifests).await.expect("dry run");
    let report = applier.apply(&stack, &manifests).await.expect("apply");
    assert_eq!(report.applied.len(), 2);
    assert_eq!(applier.health(stack.stack_id).await.unwrap().len(), 1);
    assert_eq!(applier.remove(stack.stack_id).await.unwrap().len(), 2);

    // A Namespace in the deployment object is refused, clearly.
    let with_namespace = [manifest(namespace("team"))];
    match applier.apply(&stack, &with_namespace).await {
        Err(Error::Rejected { reason, .. }) => assert_eq!(reason, "Forbidden"),
        other => panic!("expected Rejected, got {other:?}"),
    }
    let capabilities = capabilities::probe(&cluster.client).await;
    assert!(capabilities.kubernetes_version.is_some());
    assert_eq!(capabilities.node_count, None);

    // An inventory namespace nobody created: the agent starts, and applies fail as
    // retryable (an admin's fix, not a new deployment object, is needed).
    let options = KubeApplierOptions {
        inventory_namespace: cluster.name("nowhere"),
        ..cluster.options()
    };
    let applier = cluster.applier_with(options).await;
    match applier.apply(&stack, &manifests).await {
        Err(error @ Error::Unavailable(_)) => {
            assert!(error.is_transient());
            assert!(error.to_string().contains("brokkr-inventory-"), "{error}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(
        cluster
            .get(&key("v1", "ConfigMap", Some("default"), "settings"))
            .await
            .is_none(),
        "nothing is applied without an inventory"
    );
}

// --- Issue 11: ownership, identity, removal order, immutable fields, drift. ---

/// `value` with `annotations` set on its metadata.
fn annotated(mut value: Value, annotations: &[(&str, &str)]) -> Value {
    for (key, annotation) in annotations {
        value["metadata"]["annotations"][*key] = json!(*annotation);
    }
    value
}

fn job(namespace: &str, name: &str, image: &str) -> Value {
    json!({"apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {"template": {"spec": {"restartPolicy": "Never",
            "containers": [{"name": "once", "image": image}]}}}})
}

/// A CRD for `widgets.<group>` served at both `v1beta1` and `v1` (storage `v1`).
fn two_version_crd(group: &str) -> Value {
    let mut crd = widget_crd(group);
    crd["spec"]["versions"] = json!([
        {"name": "v1beta1", "served": true, "storage": false,
            "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
        {"name": "v1", "served": true, "storage": true,
            "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]);
    crd
}

/// A pre-existing Namespace with someone else's workload in it: the stack may not take
/// it without an adoption; adopted, its removal leaves the Namespace and the workload.
#[tokio::test]
async fn a_pre_existing_namespace_with_other_workloads_survives_the_stacks_removal() {
    let cluster = TestCluster::start().await;
    let applier = cluster.applier().await;
    let ns = cluster.name("shared");
    cluster.apply_by_hand(namespace(&ns)).await;
    cluster
        .apply_by_hand(config_map(Some(&ns), "theirs", "keep me"))
        .await;
    let stack = stack(StackId::new(), "sum-1");
    let ours = config_map(Some(&ns), "ours", "1");
    let namespace_key = key("v1", "Namespace", None, &ns);

    // Not allowed: refused at the dry run and at the apply, naming the Namespace,
    // before anything is written.
    let plain = [manifest(namespace(&ns)), manifest(ours.clone())];
    for result in [
        applier.dry_run(&stack, &plain).await,
        applier.apply(&stack, &plain).await.map(drop),
    ] {
        match result {
            Err(error @ Error::NotOwned { owner: None, .. }) => {
                assert!(
                    error.to_string().contains(&namespace_key.to_string()),
                    "{error}"
                );
                assert!(!error.is_transient());
            }
            other => panic!("expected NotOwned, got {other:?}"),
        }
    }
    assert!(
        cluster
            .get(&key("v1", "ConfigMap", Some(&ns), "ours"))
            .await
            .is_none()
    );
    assert_eq!(applier.inventory(stack.stack_id).await.unwrap(), None);

    // Allowed on the Namespace's manifest: adopted.
    let adopting = [
        manifest(annotated(namespace(&ns), &[(ADOPT_ANNOTATION, "true")])),
        manifest(ours),
    ];
    let report = applier.apply(&stack, &adopting).await.expect("apply");
    assert_eq!(report.adopted, std::slice::from_ref(&namespace_key));
    let inventory = applier.inventory(stack.stack_id).await.unwrap().unwrap();
    assert_eq!(inventory.adopted, std::slice::from_ref(&namespace_key));

    // Removal deletes what Brokkr created and releases the Namespace.
    let removed = applier.remove(stack.stack_id).await.expect("remove");
    assert_eq!(removed.len(), 2, "{removed:?}");
    assert!(
        cluster
            .is_gone(&key("v1", "ConfigMap", Some(&ns), "ours"))
            .await
    );
    let live = cluster
        .get(&namespace_key)
        .await
        .expect("the namespace is kept");
    assert!(live["metadata"]["deletionTimestamp"].is_null());
    assert!(
        live["metadata"]["labels"].get(STACK_LABEL).is_none(),
        "{live}"
    );
    assert!(
        live["metadata"]["annotations"]
            .get(CHECKSUM_ANNOTATION)
            .is_none(),
        "{live}"
    );
    let theirs = cluster
        .get(&key("v1", "ConfigMap", Some(&ns), "theirs"))
        .await
        .expect("their workload is untouched");
    assert_eq!(theirs["data"]["key"], "keep me");
    assert_eq!(applier.inventory(stack.stack_id).await.unwrap(), None);
    cluster.cleanup(&[&ns], &[]).await;
}

/// A stack never takes another stack's object, adoption or not; and the cluster's own
/// namespaces, even adopted, are never deleted.
#[tokio::test]
async fn another_stacks_object_is_refused_and_default_is_never_deleted() {
    let cluster = TestCluster::start().await;
    let applier = cluster.applier().await;
    let first = stack(StackId::new(), "sum-1");
    let shared = [manifest(config_map(
        Some("default"),
        &cluster.name("shared"),
        "1",
    ))];
    applier.apply(&first, &shared).await.expect("first stack");
    let mut second = stack(StackId::new(), "sum-2");
    second.policy.adopt = true;
    match applier.apply(&second, &shared).await {
        Err(Error::NotOwned { owner, .. }) => {
            assert_eq!(owner, Some(first.stack_id.to_string()))
        }
        other => panic!("expected NotOwned, got {other:?}"),
    }

    // `default` adopted by a stack-wide policy, then the stack removed: released, and
    // the removal succeeds (the API server would refuse the deletion with 403).
    let with_default = [manifest(namespace("default"))];
    applier
        .apply(&second, &with_default)
        .await
        .expect("adopt default");
    assert_eq!(applier.remove(second.stack_id).await.unwrap().len(), 1);
    let live = cluster
        .get(&key("v1", "Namespace", None, "default"))
        .await
        .expect("default stays");
    assert!(live["metadata"]["deletionTimestamp"].is_null());
    assert!(
        live["metadata"]["labels"].get(STACK_LABEL).is_none(),
        "{live}"
    );
    applier.remove(first.stack_id).await.expect("remove");
    cluster.cleanup(&[], &[]).await;
}

/// Moving a custom resource from `v1beta1` to `v1` while both are served keeps it: it
/// is the same object, so it is not pruned.
#[tokio::test]
async fn an_api_version_move_keeps_the_object() {
    let cluster = TestCluster::start().await;
    let applier = cluster.applier().await;
    let ns = cluster.name("move");
    let group = format!("{}.test.brokkr.io", cluster.name("m"));
    let crd_name = format!("widgets.{group}");
    let stack_id = StackId::new();
    let at = |version: &str| {
        let mut widget = widget(&group, &ns, "gizmo");
        widget["apiVersion"] = json!(format!("{group}/{version}"));
        [
            manifest(namespace(&ns)),
            manifest(two_version_crd(&group)),
            manifest(widget),
        ]
    };
    applier
        .apply(&stack(stack_id, "sum-1"), &at("v1beta1"))
        .await
        .expect("apply at v1beta1");
    let report = applier
        .apply(&stack(stack_id, "sum-2"), &at("v1"))
        .await
        .expect("apply at v1");
    assert!(report.pruned.is_empty(), "{:?}", report.pruned);
    let widget_key = key(&format!("{group}/v1"), "Widget", Some(&ns), "gizmo");
    let live = cluster.get(&widget_key).await.expect("the widget survives");
    assert_eq!(
        live["metadata"]["labels"][STACK_LABEL],
        stack_id.to_string()
    );
    let inventory = applier.inventory(stack_id).await.unwrap().unwrap();
    assert_eq!(inventory.objects.len(), 3);
    assert!(
        inventory
            .objects
            .iter()
            .any(|k| k.same_version(&widget_key)),
        "the inventory addresses it at v1: {:?}",
        inventory.objects
    );
    applier.remove(stack_id).await.expect("remove");
    cluster.cleanup(&[&ns], &[&crd_name]).await;
}

/// An object adopted at a version its CRD starts to serve in the same deployment
/// object (so it could not be read before the apply) is recorded as adopted all the
/// same: dropped from the stack, it is released, not deleted.
#[tokio::test]
async fn an_object_adopted_at_a_version_served_only_after_its_crd_is_released() {
    let cluster = TestCluster::start().await;
    let applier = cluster.applier().await;
    let ns = cluster.name("late");
    let group = format!("{}.test.brokkr.io", cluster.name("l"));
    let crd_name = format!("widgets.{group}");
    let stack_id = StackId::new();
    let first = [manifest(namespace(&ns)), manifest(widget_crd(&group))];
    applier
        .apply(&stack(stack_id, "sum-1"), &first)
        .await
        .expect("the CRD at v1 only");
    // Someone else's widget, at v1.
    cluster.apply_by_hand(widget(&group, &ns, "theirs")).await;

    // The CRD now serves v2 too, and the stack adopts the widget at v2.
    let mut crd = widget_crd(&group);
    crd["spec"]["versions"] = json!([
        {"name": "v1", "served": true, "storage": true,
            "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}},
        {"name": "v2", "served": true, "storage": false,
            "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}]);
    let mut theirs = annotated(widget(&group, &ns, "theirs"), &[(ADOPT_ANNOTATION, "true")]);
    theirs["apiVersion"] = json!(format!("{group}/v2"));
    let second = [
        manifest(namespace(&ns)),
        manifest(crd.clone()),
        manifest(theirs),
    ];
    let widget_key = key(&format!("{group}/v1"), "Widget", Some(&ns), "theirs");
    let report = applier
        .apply(&stack(stack_id, "sum-2"), &second)
        .await
        .expect("adopt at v2");
    assert_eq!(report.adopted, std::slice::from_ref(&widget_key));
    let inventory = applier.inventory(stack_id).await.unwrap().unwrap();
    assert!(inventory.is_adopted(&widget_key), "{inventory:?}");

    let third = [manifest(namespace(&ns)), manifest(crd)];
    let report = applier
        .apply(&stack(stack_id, "sum-3"), &third)
        .await
        .expect("drop the widget");
    assert_eq!(report.pruned, std::slice::from_ref(&widget_key));
    let live = cluster
        .get(&widget_key)
        .await
        .expect("released, not deleted");
    assert!(
        live["metadata"]["labels"].get(STACK_LABEL).is_none(),
        "{live}"
    );
    applier.remove(stack_id).await.expect("remove");
    cluster.cleanup(&[&ns], &[&crd_name]).await;
}

/// A removal whose inventory addresses an object at a version its CRD stopped serving
/// (while the applier's discovery cache still had it) deletes the object at a version
/// still served, instead of taking the 404 for "gone" and reporting success.
#[tokio::test]
async fn a_removal_finds_an_object_whose_version_stopped_being_served() {
    let cluster = TestCluster::start().await;
    let ns = cluster.name("unserved");
    let group = format!("{}.test.brokkr.io", cluster.name("u"));
    let crd_name = format!("widgets.{group}");
    cluster.apply_by_hand(namespace(&ns)).await;
    cluster.apply_by_hand(two_version_crd(&group)).await;
    let applier = cluster.applier().await;
    let stack_id = StackId::new();
    let mut beta = widget(&group, &ns, "gizmo");
    beta["apiVersion"] = json!(format!("{group}/v1beta1"));
    applier
        .apply(&stack(stack_id, "sum-1"), &[manifest(beta)])
        .await
        .expect("apply at v1beta1");

    let mut crd = two_version_crd(&group);
    crd["spec"]["versions"][0]["served"] = json!(false);
    cluster.apply_by_hand(crd).await;
    let widget_key = key(&format!("{group}/v1"), "Widget", Some(&ns), "gizmo");
    let removed = applier.remove(stack_id).await.expect("remove");
    assert_eq!(removed, std::slice::from_ref(&widget_key));
    assert!(cluster.is_gone(&widget_key).await, "deleted at v1");
    cluster.cleanup(&[&ns], &[&crd_name]).await;
}

/// A change to an immutable field fails naming the field; with recreation allowed the
/// object is deleted and created again, and reported.
#[tokio::test]
async fn an_immutable_change_fails_with_the_field_then_recreates_when_allowed() {
    let cluster = TestCluster::start().await;
    let applier = cluster.applier().await;
    let ns = cluster.name("jobs");
    let stack_id = StackId::new();
    let first = [
        manifest(namespace(&ns)),
        manifest(job(&ns, "migrate", "tool:1")),
    ];
    applier
        .apply(&stack(stack_id, "sum-1"), &first)
        .await
        .expect("first apply");
    let job_key = key("batch/v1", "Job", Some(&ns), "migrate");
    let uid = cluster.get(&job_key).await.unwrap()["metadata"]["uid"].clone();

    let changed = [
        manifest(namespace(&ns)),
        manifest(job(&ns, "migrate", "tool:2")),
    ];
    let refused = stack(stack_id, "sum-2");
    for result in [
        applier.dry_run(&refused, &changed).await,
        applier.apply(&refused, &changed).await.map(drop),
    ] {
        match result {
            Err(error @ Error::Immutable { .. }) => {
                let Error::Immutable { object, fields, .. } = &error else {
                    unreachable!()
                };
                assert_eq!(object, &job_key);
                assert!(
                    fields.iter().any(|f| f.starts_with("spec.template")),
                    "{fields:?}"
                );
                assert!(error.to_string().contains(RECREATE_ANNOTATION), "{error}");
                assert!(!error.is_transient());
            }
            other => panic!("expected Immutable, got {other:?}"),
        }
    }
    assert_eq!(cluster.get(&job_key).await.unwrap()["metadata"]["uid"], uid);

    let allowed = [
        manifest(namespace(&ns)),
        manifest(annotated(
            job(&ns, "migrate", "tool:2"),
            &[(RECREATE_ANNOTATION, "true")],
        )),
    ];
    let stack = stack(stack_id, "sum-3");
    applier.dry_run(&stack, &allowed).await.expect("dry run");
    let report = applier.apply(&stack, &allowed).await.expect("recreated");
    assert_eq!(report.recreated, std::slice::from_ref(&job_key));
    assert!(report.changed.contains(&job_key));
    let live = cluster.get(&job_key).await.unwrap();
    assert_ne!(live["metadata"]["uid"], uid, "a new object");
    assert_eq!(
        live["spec"]["template"]["spec"]["containers"][0]["image"],
        "tool:2"
    );
    applier.remove(stack_id).await.expect("remove");
    cluster.cleanup(&[&ns], &[]).await;
}

/// A StatefulSet's fixed fields (its `serviceName`, selector, claim templates) are
/// refused without the word "immutable" ("updates to statefulset spec for fields other
/// than ... are forbidden", `ValidateStatefulSetUpdate`): still an immutable change,
/// failing as one, and recreated when allowed.
#[tokio::test]
async fn a_statefulsets_fixed_fields_are_an_immutable_change() {
    let cluster = TestCluster::start().await;
    let applier = cluster.applier().await;
    let ns = cluster.name("sts");
    let stack_id = StackId::new();
    let sts = |service: &str| {
        json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
            "metadata": {"name": "db", "namespace": ns},
            "spec": {"serviceName": service, "replicas": 1,
                "selector": {"matchLabels": {"app": "db"}},
                "template": {"metadata": {"labels": {"app": "db"}},
                    "spec": {"containers": [{"name": "db", "image": "registry.k8s.io/pause:3.10"}]}}}})
    };
    applier
        .apply(
            &stack(stack_id, "sum-1"),
            &[manifest(namespace(&ns)), manifest(sts("db-a"))],
        )
        .await
        .expect("first apply");
    let sts_key = key("apps/v1", "StatefulSet", Some(&ns), "db");
    let uid = cluster.get(&sts_key).await.unwrap()["metadata"]["uid"].clone();

    let changed = [manifest(namespace(&ns)), manifest(sts("db-b"))];
    match applier.dry_run(&stack(stack_id, "sum-2"), &changed).await {
        Err(Error::Immutable { object, fields, .. }) => {
            assert_eq!(object, sts_key);
            assert_eq!(fields, ["spec"]);
        }
        other => panic!("expected Immutable, got {other:?}"),
    }
    let allowed = [
        manifest(namespace(&ns)),
        manifest(annotated(sts("db-b"), &[(RECREATE_ANNOTATION, "true")])),
    ];
    let report = applier
        .apply(&stack(stack_id, "sum-3"), &allowed)
        .await
        .expect("recreated");
    assert_eq!(report.recreated, std::slice::from_ref(&sts_key));
    let live = cluster.get(&sts_key).await.unwrap();
    assert_ne!(live["metadata"]["uid"], uid, "a new object");
    assert_eq!(live["spec"]["serviceName"], "db-b");
    applier.remove(stack_id).await.expect("remove");
    cluster.cleanup(&[&ns], &[]).await;
}

/// An operator and its custom resources: removal deletes the resources first, waits
/// for the operator to clear their finalizers, then the operator, the CRD and the
/// Namespace, and succeeds only once they are gone.
#[tokio::test]
async fn removal_with_an_operator_and_its_custom_resources_completes_in_order() {
    let cluster = TestCluster::start().await;
    let Some(emulator) = cluster.emulator("an operator that clears finalizers") else {
        return;
    };
    let applier = cluster.applier().await;
    let ns = cluster.name("op");
    let group = format!("{}.test.brokkr.io", cluster.name("o"));
    let finalizer = format!("{group}/cleanup");
    emulator.run_operator(&finalizer, &ns, "operator");
    let mut gizmo = widget(&group, &ns, "gizmo");
    gizmo["metadata"]["finalizers"] = json!([finalizer]);
    let manifests = [
        manifest(namespace(&ns)),
        manifest(widget_crd(&group)),
        manifest(deployment(&ns, "operator")),
        manifest(gizmo),
    ];
    let stack = stack(StackId::new(), "sum-1");
    applier.apply(&stack, &manifests).await.expect("apply");

    let removed = applier
        .remove(stack.stack_id)
        .await
        .expect("remove completes");
    let order: Vec<&str> = removed.iter().map(|k| k.kind.as_str()).collect();
    assert_eq!(
        order,
        [
            "Widget",
            "Deployment",
            "CustomResourceDefinition",
            "Namespace"
        ]
    );
    for object in &removed {
        assert!(cluster.get(object).await.is_none(), "{object} is gone");
    }
    assert_eq!(applier.inventory(stack.stack_id).await.unwrap(), None);
}

/// A finalizer nobody clears: the removal reports what is still terminating, keeps
/// the inventory, and completes once the finalizer is gone.
#[tokio::test]
async fn a_removal_that_cannot_complete_fails_naming_what_is_terminating() {
    let cluster = TestCluster::start().await;
    let Some(emulator) = cluster.emulator("a finalizer nobody clears") else {
        return;
    };
    let options = KubeApplierOptions {
        deletion_timeout: Duration::from_millis(300),
        ..cluster.options()
    };
    let applier = cluster.applier_with(options).await;
    let ns = cluster.name("stuck");
    let mut held = config_map(Some(&ns), "held", "1");
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    let manifests = [manifest(namespace(&ns)), manifest(held)];
    let stack = stack(StackId::new(), "sum-1");
    applier.apply(&stack, &manifests).await.expect("apply");

    let held_key = key("v1", "ConfigMap", Some(&ns), "held");
    match applier.remove(stack.stack_id).await {
        Err(error @ Error::StillTerminating { .. }) => {
            assert!(error.is_transient());
            assert!(error.to_string().contains(&held_key.to_string()), "{error}");
        }
        other => panic!("expected StillTerminating, got {other:?}"),
    }
    assert!(applier.inventory(stack.stack_id).await.unwrap().is_some());
    assert!(
        cluster
            .get(&key("v1", "Namespace", None, &ns))
            .await
            .is_some(),
        "the Namespace waits for its contents"
    );

    emulator.remove_finalizer("v1", "ConfigMap", Some(&ns), "held", "example.com/hold");
    let removed = applier
        .remove(stack.stack_id)
        .await
        .expect("remove completes");
    assert_eq!(removed.last(), Some(&key("v1", "Namespace", None, &ns)));
    assert!(
        cluster
            .get(&key("v1", "Namespace", None, &ns))
            .await
            .is_none()
    );
}

/// A controller writing status between the agent's read and its apply, and a Secret
/// whose `stringData` bumps the resourceVersion on every apply, raise no drift.
#[tokio::test]
async fn status_writes_and_no_op_bumps_are_not_drift() {
    let cluster = TestCluster::start().await;
    let applier = cluster.applier().await;
    let ns = cluster.name("quiet");
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
        "metadata": {"name": "creds", "namespace": ns}, "stringData": {"password": "s3cret"}});
    let manifests = [
        manifest(namespace(&ns)),
        manifest(deployment(&ns, "web")),
        manifest(secret),
    ];
    let stack = stack(StackId::new(), "sum-1");
    applier.apply(&stack, &manifests).await.expect("apply");
    if let Some(emulator) = cluster.emulator("a controller writing status") {
        emulator.churn_status(true);
    }
    for _ in 0..3 {
        let again = applier.apply(&stack, &manifests).await.expect("re-apply");
        assert!(again.changed.is_empty(), "no drift: {:?}", again.changed);
    }
    cluster.cleanup(&[&ns], &[]).await;
}

/// A hand edit of a field the manifest sets is put back and reported; a field someone
/// else added is theirs and stays.
#[tokio::test]
async fn a_hand_edit_is_put_back_and_a_foreign_field_is_left_alone() {
    let cluster = TestCluster::start().await;
    let Some(emulator) = cluster.emulator("edits by other field managers") else {
        return;
    };
    let applier = cluster.applier().await;
    let ns = cluster.name("edits");
    let manifests = [
        manifest(namespace(&ns)),
        manifest(config_map(Some(&ns), "settings", "wanted")),
    ];
    let stack = stack(StackId::new(), "sum-1");
    applier.apply(&stack, &manifests).await.expect("apply");
    let settings = key("v1", "ConfigMap", Some(&ns), "settings");

    emulator.update_as(
        "a-controller",
        "v1",
        "ConfigMap",
        Some(&ns),
        "settings",
        |object| {
            object["metadata"]["annotations"]["owner.example.com/note"] = json!("mine");
        },
    );
    let again = applier.apply(&stack, &manifests).await.expect("re-apply");
    assert!(again.changed.is_empty(), "{:?}", again.changed);
    let live = cluster.get(&settings).await.unwrap();
    assert_eq!(
        live["metadata"]["annotations"]["owner.example.com/note"],
        "mine"
    );

    emulator.edit("v1", "ConfigMap", Some(&ns), "settings", |object| {
        object["data"]["key"] = json!("edited by hand");
    });
    let corrected = applier.apply(&stack, &manifests).await.expect("re-apply");
    assert_eq!(corrected.changed, std::slice::from_ref(&settings));
    let live = cluster.get(&settings).await.unwrap();
    assert_eq!(live["data"]["key"], "wanted");
    assert_eq!(
        live["metadata"]["annotations"]["owner.example.com/note"],
        "mine"
    );
}

/// A kind the server stopped serving is an unknown kind (fix the deployment object),
/// not a rejection, even though the discovery cache still had it.
#[tokio::test]
async fn a_kind_no_longer_served_is_dropped_from_discovery() {
    let cluster = TestCluster::start().await;
    let Some(emulator) = cluster.emulator("a kind withdrawn behind the applier's back") else {
        return;
    };
    emulator.register_kind("gone.example.com/v1", "Gizmo", "gizmos", true);
    let applier = cluster.applier().await;
    let gizmo = [manifest(
        json!({"apiVersion": "gone.example.com/v1", "kind": "Gizmo",
        "metadata": {"name": "g", "namespace": "default"}, "spec": {}}),
    )];
    applier
        .apply(&stack(StackId::new(), "sum-1"), &gizmo)
        .await
        .expect("served");
    emulator.unregister_kind("gone.example.com/v1", "Gizmo");
    match applier.apply(&stack(StackId::new(), "sum-2"), &gizmo).await {
        Err(Error::UnknownKind { object }) => assert_eq!(object.kind, "Gizmo"),
        other => panic!("expected UnknownKind, got {other:?}"),
    }
}

/// Creating in a namespace being deleted is refused for now, and retried: transient.
#[tokio::test]
async fn a_terminating_namespace_is_transient() {
    let cluster = TestCluster::start().await;
    let Some(emulator) = cluster.emulator("a namespace held Terminating") else {
        return;
    };
    let applier = cluster.applier().await;
    let ns = cluster.name("ending");
    cluster.apply_by_hand(namespace(&ns)).await;
    let mut held = config_map(Some(&ns), "held", "1");
    held["metadata"]["finalizers"] = json!(["example.com/hold"]);
    cluster.apply_by_hand(held).await;
    cluster
        .delete_by_hand(&key("v1", "Namespace", None, &ns))
        .await;

    let manifests = [manifest(config_map(Some(&ns), "late", "1"))];
    match applier
        .apply(&stack(StackId::new(), "sum-1"), &manifests)
        .await
    {
        Err(error @ Error::NamespaceTerminating { .. }) => {
            assert!(error.is_transient());
            assert!(error.to_string().contains(&ns), "{error}");
        }
        other => panic!("expected NamespaceTerminating, got {other:?}"),
    }
    emulator.remove_finalizer("v1", "ConfigMap", Some(&ns), "held", "example.com/hold");
}

/// An inventory that does not fit in a ConfigMap is a permanent failure that says so,
/// not "cluster unavailable"; nothing is applied.
#[tokio::test]
async fn an_inventory_over_the_configmap_limit_is_reported_as_such() {
    let cluster = TestCluster::start().await;
    let applier = cluster.applier().await;
    let long = "x".repeat(240);
    let manifests: Vec<Manifest> = (0..3_500)
        .map(|n| manifest(config_map(Some("default"), &format!("{long}-{n}"), "1")))
        .collect();
    let stack = stack(StackId::new(), "sum-1");
    match applier.apply(&stack, &manifests).await {
        Err(error @ Error::InventoryTooLarge { .. }) => {
            assert!(!error.is_transient());
            assert!(error.to_string().contains("split the stack"), "{error}");
        }
        other => panic!("expected InventoryTooLarge, got {other:?}"),
    }
    assert!(
        cluster
            .get(&key(
                "v1",
                "ConfigMap",
                Some("default"),
                &format!("{long}-0")
            ))
            .await
            .is_none()
    );
}

/// A deletion the cluster refuses fails the removal, which keeps the inventory to
/// retry from, instead of reporting success.
#[tokio::test]
async fn a_refused_deletion_fails_the_removal() {
    let cluster = TestCluster::start().await;
    let Some(emulator) = cluster.emulator("a forbidden delete") else {
        return;
    };
    let applier = cluster.applier().await;
    let manifests = [manifest(config_map(
        Some("default"),
        &cluster.name("kept"),
        "1",
    ))];
    let stack = stack(StackId::new(), "sum-1");
    applier.apply(&stack, &manifests).await.expect("apply");
    emulator.forbid("delete", "configmaps");
    match applier.remove(stack.stack_id).await {
        Err(Error::Rejected { reason, .. }) => assert_eq!(reason, "Forbidden"),
        other => panic!("expected Rejected, got {other:?}"),
    }
    assert!(applier.inventory(stack.stack_id).await.unwrap().is_some());
    emulator.allow("delete", "configmaps");
    assert_eq!(applier.remove(stack.stack_id).await.unwrap().len(), 1);
}

/// An inventory written by an agent before issue 11 (apiVersion in the identity, no
/// record of adoption) keeps loading: its duplicate entries collapse, and its objects,
/// any of which that agent may have taken over silently, are released, not deleted.
#[tokio::test]
async fn an_old_inventory_is_migrated_safely() {
    let cluster = TestCluster::start().await;
    let applier = cluster.applier().await;
    let stack_id = StackId::new();
    let ns = cluster.name("legacy");
    let labelled = |mut object: Value| {
        object["metadata"]["labels"][STACK_LABEL] = json!(stack_id.to_string());
        object
    };
    cluster.apply_by_hand(labelled(namespace(&ns))).await;
    cluster
        .apply_by_hand(labelled(config_map(Some(&ns), "settings", "1")))
        .await;
    cluster
        .apply_by_hand(config_map(Some(&ns), "theirs", "keep me"))
        .await;
    let objects = json!([
        {"api_version": "v1", "kind": "Namespace", "namespace": null, "name": ns},
        {"api_version": "v1", "kind": "ConfigMap", "namespace": ns, "name": "settings"},
        {"api_version": "v1", "kind": "ConfigMap", "namespace": ns, "name": "settings"}
    ]);
    cluster
        .apply_by_hand(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": format!("brokkr-inventory-{stack_id}"),
                "namespace": cluster.name("brokkr-inv"),
                "labels": {STACK_LABEL: stack_id.to_string()}},
            "data": {"objects": objects.to_string()}}))
        .await;

    let inventory = applier.inventory(stack_id).await.unwrap().unwrap();
    assert_eq!(inventory.objects.len(), 2, "{:?}", inventory.objects);
    // The old agent took existing objects over silently: any of them may be one
    // Brokkr did not create, so none is deleted.
    assert_eq!(inventory.adopted, inventory.objects);

    let removed = applier.remove(stack_id).await.expect("remove");
    assert_eq!(removed.len(), 2, "{removed:?}");
    let settings = cluster
        .get(&key("v1", "ConfigMap", Some(&ns), "settings"))
        .await
        .expect("released, not deleted");
    assert!(
        settings["metadata"]["labels"].get(STACK_LABEL).is_none(),
        "{settings}"
    );
    let live = cluster
        .get(&key("v1", "Namespace", None, &ns))
        .await
        .expect("the namespace is released, not deleted");
    assert!(live["metadata"]["deletionTimestamp"].is_null());
    assert!(
        live["metadata"]["labels"].get(STACK_LABEL).is_none(),
        "{live}"
    );
    assert!(
        cluster
            .get(&key("v1", "ConfigMap", Some(&ns), "theirs"))
            .await
            .is_some()
    );
    cluster.cleanup(&[&ns], &[]).await;
}

/// An aggregated API whose backend is down (503, which kube's client retries for
/// minutes) neither holds up the applier nor the other kinds: its own kinds are
/// unavailable (retry), the rest applies.
#[tokio::test]
async fn a_group_version_that_does_not_answer_is_unavailable_not_a_stall() {
    let cluster = TestCluster::start().await;
    let Some(emulator) = cluster.emulator("a broken aggregated API") else {
        return;
    };
    emulator.register_kind("flaky.example.com/v1", "Gizmo", "gizmos", true);
    emulator.set_unavailable("flaky.example.com/v1", true);
    let options = KubeApplierOptions {
        discovery_timeout: Duration::from_millis(500),
        ..cluster.options()
    };
    let started = std::time::Instant::now();
    let applier = tokio::time::timeout(Duration::from_secs(20), cluster.applier_with(options))
        .await
        .expect("the applier starts despite the broken group version");
    let stack = stack(StackId::new(), "sum-1");
    let fine = [manifest(config_map(
        Some("default"),
        &cluster.name("fine"),
        "1",
    ))];
    applier
        .apply(&stack, &fine)
        .await
        .expect("other kinds apply");
    let gizmo = [manifest(
        json!({"apiVersion": "flaky.example.com/v1", "kind": "Gizmo",
        "metadata": {"name": "g", "namespace": "default"}}),
    )];
    match applier.apply(&stack, &gizmo).await {
        Err(error @ Error::Unavailable(_)) => {
            assert!(error.is_transient());
            assert!(
                error.to_string().contains("flaky.example.com/v1"),
                "{error}"
            );
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "{:?}",
        started.elapsed()
    );
}

/// A rollout waiting on a pod that will never start is failed, naming the pod, as
/// `kubectl rollout status` warns; without RBAC to list pods it stays progressing.
#[tokio::test]
async fn a_crashlooping_pod_fails_a_rollout_in_progress() {
    let cluster = TestCluster::start().await;
    let Some(emulator) = cluster.emulator("hand-set pod and rollout status") else {
        return;
    };
    let applier = cluster.applier().await;
    let ns = cluster.name("crash");
    let manifests = [manifest(namespace(&ns)), manifest(deployment(&ns, "web"))];
    let stack = stack(StackId::new(), "sum-1");
    applier.apply(&stack, &manifests).await.expect("apply");
    let live = emulator
        .get("apps/v1", "Deployment", Some(&ns), "web")
        .unwrap();
    emulator.set_status(
        "apps/v1",
        "Deployment",
        Some(&ns),
        "web",
        json!({"observedGeneration": live["metadata"]["generation"], "replicas": 1,
            "updatedReplicas": 1, "readyReplicas": 0, "availableReplicas": 0}),
    );
    cluster
        .apply_by_hand(json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web-1", "namespace": ns, "labels": {"app": "web"}},
            "spec": {"containers": [{"name": "app", "image": "registry.k8s.io/pause:3.10"}]}}))
        .await;
    emulator.set_status(
        "v1",
        "Pod",
        Some(&ns),
        "web-1",
        json!({"phase": "Running", "containerStatuses": [{"name": "app", "ready": false,
            "restartCount": 4, "image": "pause", "imageID": "", "started": false,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 40s"}}}]}),
    );

    let health = applier.health(stack.stack_id).await.expect("health");
    assert_eq!(health[0].status, HealthStatus::Failed, "{health:?}");
    assert_eq!(health[0].reason.as_deref(), Some("CrashLoopBackOff"));
    assert!(
        health[0]
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("web-1"),
        "{health:?}"
    );

    emulator.forbid("list", "pods");
    let health = applier.health(stack.stack_id).await.expect("health");
    assert_eq!(health[0].status, HealthStatus::Progressing, "{health:?}");
}
