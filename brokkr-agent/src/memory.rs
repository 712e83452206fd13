//! [`MemoryApplier`]: a simulated cluster behind the [`Applier`] trait, for tests,
//! examples and fleet simulations where no Kubernetes API is at hand.
//!
//! It keeps the contract of the real applier: objects are stamped with the stack's
//! label and annotations; namespaced objects need their namespace (pre-existing:
//! `default`, `kube-system`); kinds must be served (built-in kinds, plus kinds that an
//! applied CustomResourceDefinition registers); an inventory per stack drives pruning
//! and removal, and only labelled objects are ever deleted. Workloads are healthy
//! unless a test says otherwise with [`MemoryApplier::set_health`].
//!
//! It is not a Kubernetes model: no defaulting, no field ownership, no controllers.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use brokkr_core::applier::{
    self, ApplyReport, CHECKSUM_ANNOTATION, DEPLOYMENT_OBJECT_ANNOTATION, Inventory, STACK_LABEL,
    StackRef, apply_order, removal_order,
};
use brokkr_core::health::{self, HealthStatus, ObjectHealth};
use brokkr_core::manifest::{Manifest, ObjectKey};
use brokkr_core::{Applier, DeploymentObjectId, StackId};
use serde_json::{Value, json};

/// Built-in kinds without a namespace.
const CLUSTER_SCOPED: [&str; 11] = [
    "Namespace",
    "Node",
    "PersistentVolume",
    "StorageClass",
    "ClusterRole",
    "ClusterRoleBinding",
    "CustomResourceDefinition",
    "PriorityClass",
    "IngressClass",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
];

/// Built-in kinds that live in a namespace.
const NAMESPACED: [&str; 21] = [
    "ConfigMap",
    "Secret",
    "Service",
    "ServiceAccount",
    "Pod",
    "PersistentVolumeClaim",
    "Deployment",
    "StatefulSet",
    "DaemonSet",
    "ReplicaSet",
    "Job",
    "CronJob",
    "Role",
    "RoleBinding",
    "Ingress",
    "NetworkPolicy",
    "ResourceQuota",
    "LimitRange",
    "HorizontalPodAutoscaler",
    "PodDisruptionBudget",
    "Endpoints",
];

#[derive(Debug, Clone)]
struct Stored {
    value: Value,
}

#[derive(Debug, Default)]
struct Cluster {
    objects: BTreeMap<ObjectKey, Stored>,
    inventories: BTreeMap<StackId, Inventory>,
    /// Kinds registered by CRDs: kind -> namespaced.
    custom_kinds: HashMap<String, bool>,
    health: HashMap<ObjectKey, (HealthStatus, String)>,
    rejected_kinds: HashMap<String, String>,
    unavailable: bool,
    applies: Vec<(StackId, DeploymentObjectId)>,
}

/// A simulated cluster. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct MemoryApplier {
    cluster: Mutex<Cluster>,
}

impl MemoryApplier {
    /// An empty cluster with the `default` and `kube-system` namespaces.
    pub fn new() -> Self {
        let applier = Self::default();
        {
            let mut cluster = applier.lock();
            for name in ["default", "kube-system"] {
                let value =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
                cluster.store(namespace_key(name), value);
            }
        }
        applier
    }

    fn lock(&self) -> MutexGuard<'_, Cluster> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.cluster.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Every object in the cluster.
    pub fn objects(&self) -> Vec<(ObjectKey, Value)> {
        self.lock()
            .objects
            .iter()
            .map(|(k, s)| (k.clone(), s.value.clone()))
            .collect()
    }

    /// One object.
    pub fn get(&self, key: &ObjectKey) -> Option<Value> {
        self.lock().objects.get(key).map(|s| s.value.clone())
    }

    /// Changes an object as a person with `kubectl edit` would; no-op if absent.
    pub fn edit(&self, key: &ObjectKey, change: impl FnOnce(&mut Value)) {
        let mut cluster = self.lock();
        if let Some(mut value) = cluster.objects.get(key).map(|s| s.value.clone()) {
            change(&mut value);
            cluster.store(key.clone(), value);
        }
    }

    /// Creates an object outside Brokkr (no stack label), e.g. to check that pruning
    /// leaves it alone.
    pub fn create_unmanaged(&self, manifest: &Manifest) {
        let key = self.lock().resolve(manifest.key());
        self.lock().store(key, manifest.as_value().clone());
    }

    /// Makes a workload report `status` with `reason` until changed again.
    pub fn set_health(&self, key: &ObjectKey, status: HealthStatus, reason: &str) {
        self.lock()
            .health
            .insert(key.clone(), (status, reason.to_owned()));
    }

    /// Makes the cluster reject every object of `kind` (as an admission webhook would).
    pub fn reject_kind(&self, kind: &str, message: &str) {
        self.lock()
            .rejected_kinds
            .insert(kind.to_owned(), message.to_owned());
    }

    /// Makes every call fail as if the API server were down.
    pub fn set_unavailable(&self, unavailable: bool) {
        self.lock().unavailable = unavailable;
    }

    /// Every successful apply, in order: which stack, which deployment object.
    pub fn applies(&self) -> Vec<(StackId, DeploymentObjectId)> {
        self.lock().applies.clone()
    }
}

fn namespace_key(name: &str) -> ObjectKey {
    ObjectKey {
        api_version: "v1".into(),
        kind: "Namespace".into(),
        namespace: None,
        name: name.into(),
    }
}

// Failures are rare and carry the object they are about; boxing them would only make
// the many matches on `applier::Error` harder to read.
#[allow(clippy::result_large_err)]
impl Cluster {
    fn available(&self) -> applier::Result<()> {
        if self.unavailable {
            Err(applier::Error::Unavailable(
                "the simulated API server is down".into(),
            ))
        } else {
            Ok(())
        }
    }

    /// Whether `kind` is served, and if so whether it is namespaced.
    fn scope(&self, kind: &str, pending_crds: &HashMap<String, bool>) -> Option<bool> {
        if CLUSTER_SCOPED.contains(&kind) {
            Some(false)
        } else if NAMESPACED.contains(&kind) {
            Some(true)
        } else {
            self.custom_kinds
                .get(kind)
                .or_else(|| pending_crds.get(kind))
                .copied()
        }
    }

    /// The key with the default namespace filled in for namespaced kinds.
    fn resolve(&self, mut key: ObjectKey) -> ObjectKey {
        if key.namespace.is_none() && self.scope(&key.kind, &HashMap::new()) == Some(true) {
            key.namespace = Some("default".into());
        }
        key
    }

    fn store(&mut self, key: ObjectKey, value: Value) -> bool {
        if self.objects.get(&key).is_some_and(|s| s.value == value) {
            return false;
        }
        self.objects.insert(key, Stored { value });
        true
    }

    /// Checks one object against the cluster as it would be after `created` namespaces
    /// and `pending_crds` exist.
    fn check(
        &self,
        manifest: &Manifest,
        created: &BTreeSet<String>,
        pending_crds: &HashMap<String, bool>,
    ) -> applier::Result<ObjectKey> {
        let key = manifest.key();
        let Some(namespaced) = self.scope(manifest.kind(), pending_crds) else {
            return Err(applier::Error::UnknownKind { object: key });
        };
        if let Some(message) = self.rejected_kinds.get(manifest.kind()) {
            return Err(rejected(key, "Forbidden", message));
        }
        if !namespaced && key.namespace.is_some() {
            return Err(rejected(
                key,
                "Invalid",
                "a cluster-scoped object cannot have a namespace",
            ));
        }
        let key = if namespaced && key.namespace.is_none() {
            ObjectKey {
                namespace: Some("default".into()),
                ..key
            }
        } else {
            key
        };
        if let Some(namespace) = &key.namespace
            && !created.contains(namespace)
            && !self.objects.contains_key(&namespace_key(namespace))
        {
            let message = format!("namespaces \"{namespace}\" not found");
            return Err(rejected(key, "NotFound", &message));
        }
        Ok(key)
    }

    /// Checks every object in apply order; returns their resolved keys.
    fn check_all(&self, manifests: &[Manifest]) -> applier::Result<Vec<(ObjectKey, Manifest)>> {
        let mut created = BTreeSet::new();
        let mut pending_crds = HashMap::new();
        let mut checked = Vec::with_capacity(manifests.len());
        for manifest in apply_order(manifests) {
            let key = self.check(manifest, &created, &pending_crds)?;
            match manifest.kind() {
                "Namespace" => {
                    created.insert(key.name.clone());
                }
                "CustomResourceDefinition" => {
                    if let Some((kind, namespaced)) = crd_kind(manifest.as_value()) {
                        pending_crds.insert(kind, namespaced);
                    }
                }
                _ => {}
            }
            checked.push((key, manifest.clone()));
        }
        Ok(checked)
    }

    /// Deletes `key` only if it carries `stack`'s label.
    fn delete_owned(&mut self, key: &ObjectKey, stack: StackId) -> bool {
        let owned = self.objects.get(key).is_some_and(|s| {
            s.value.pointer(&format!(
                "/metadata/labels/{}",
                STACK_LABEL.replace('/', "~1")
            )) == Some(&Value::String(stack.to_string()))
        });
        if owned {
            self.objects.remove(key);
            self.health.remove(key);
        }
        owned
    }
}

fn rejected(object: ObjectKey, reason: &str, message: &str) -> applier::Error {
    applier::Error::Rejected {
        object,
        reason: reason.to_owned(),
        message: message.to_owned(),
    }
}

/// The kind a CRD defines and whether it is namespaced.
fn crd_kind(crd: &Value) -> Option<(String, bool)> {
    let kind = crd.pointer("/spec/names/kind")?.as_str()?.to_owned();
    let namespaced = crd.pointer("/spec/scope").and_then(Value::as_str) != Some("Cluster");
    Some((kind, namespaced))
}

/// The manifest with the stack's label and annotations added.
fn stamped(manifest: &Manifest, stack: &StackRef, key: &ObjectKey) -> Value {
    let mut value = manifest.as_value().clone();
    let metadata = &mut value["metadata"];
    metadata["labels"][STACK_LABEL] = json!(stack.stack_id.to_string());
    metadata["annotations"][DEPLOYMENT_OBJECT_ANNOTATION] =
        json!(stack.deployment_object_id.to_string());
    metadata["annotations"][CHECKSUM_ANNOTATION] = json!(stack.checksum);
    if let Some(namespace) = &key.namespace {
        metadata["namespace"] = json!(namespace);
    }
    value
}

#[async_trait]
impl Applier for MemoryApplier {
    async fn dry_run(&self, _stack: &StackRef, manifests: &[Manifest]) -> applier::Result<()> {
        let cluster = self.lock();
        cluster.available()?;
        cluster.check_all(manifests).map(drop)
    }

    async fn apply(
        &self,
        stack: &StackRef,
        manifests: &[Manifest],
    ) -> applier::Result<ApplyReport> {
        let mut cluster = self.lock();
        cluster.available()?;
        let checked = cluster.check_all(manifests)?;
        let old = cluster
            .inventories
            .get(&stack.stack_id)
            .map(|i| i.objects.clone())
            .unwrap_or_default();
        let mut report = ApplyReport::default();
        for (key, manifest) in &checked {
            if manifest.kind() == "CustomResourceDefinition"
                && let Some((kind, namespaced)) = crd_kind(manifest.as_value())
            {
                cluster.custom_kinds.insert(kind, namespaced);
            }
            if cluster.store(key.clone(), stamped(manifest, stack, key)) {
                report.changed.push(key.clone());
            }
            report.applied.push(key.clone());
        }
        let keep: BTreeSet<&ObjectKey> = report.applied.iter().collect();
        for key in removal_order(&old) {
            if !keep.contains(key) && cluster.delete_owned(key, stack.stack_id) {
                report.pruned.push(key.clone());
            }
        }
        cluster.inventories.insert(
            stack.stack_id,
            Inventory {
                stack_id: stack.stack_id,
                deployment_object_id: Some(stack.deployment_object_id),
                checksum: Some(stack.checksum.clone()),
                objects: report.applied.clone(),
            },
        );
        cluster
            .applies
            .push((stack.stack_id, stack.deployment_object_id));
        Ok(report)
    }

    async fn remove(&self, stack_id: StackId) -> applier::Result<Vec<ObjectKey>> {
        let mut cluster = self.lock();
        cluster.available()?;
        let Some(inventory) = cluster.inventories.get(&stack_id).cloned() else {
            return Ok(Vec::new());
        };
        let mut removed = Vec::new();
        for key in removal_order(&inventory.objects) {
            if cluster.delete_owned(key, stack_id) {
                removed.push(key.clone());
            }
        }
        cluster.inventories.remove(&stack_id);
        Ok(removed)
    }

    async fn inventory(&self, stack_id: StackId) -> applier::Result<Option<Inventory>> {
        let cluster = self.lock();
        cluster.available()?;
        Ok(cluster.inventories.get(&stack_id).cloned())
    }

    async fn health(&self, stack_id: StackId) -> applier::Result<Vec<ObjectHealth>> {
        let cluster = self.lock();
        cluster.available()?;
        let Some(inventory) = cluster.inventories.get(&stack_id) else {
            return Ok(Vec::new());
        };
        Ok(inventory
            .objects
            .iter()
            .filter(|key| health::is_workload(&key.kind))
            .map(|key| {
                let (status, reason) =
                    match (cluster.objects.contains_key(key), cluster.health.get(key)) {
                        (false, _) => (HealthStatus::Failed, Some("Missing".to_owned())),
                        (true, Some((status, reason))) => (*status, Some(reason.clone())),
                        (true, None) => (HealthStatus::Healthy, None),
                    };
                ObjectHealth {
                    object: key.clone(),
                    status,
                    message: reason.as_ref().map(|r| format!("simulated: {r}")),
                    reason,
                }
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use brokkr_core::manifest;

    use super::*;

    const V1: &str = "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: shop\nspec:\n  replicas: 2\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: shop\n";

    fn stack_ref(stack: StackId) -> StackRef {
        StackRef {
            stack_id: stack,
            deployment_object_id: DeploymentObjectId::new(),
            checksum: "abc".into(),
        }
    }

    fn key(kind: &str, namespace: Option<&str>, name: &str) -> ObjectKey {
        let api_version = if kind == "Deployment" {
            "apps/v1"
        } else {
            "v1"
        };
        ObjectKey {
            api_version: api_version.into(),
            kind: kind.into(),
            namespace: namespace.map(Into::into),
            name: name.into(),
        }
    }

    #[tokio::test]
    async fn apply_stamps_prunes_and_detects_changes() {
        let cluster = MemoryApplier::new();
        let stack = StackId::new();
        let first = stack_ref(stack);
        let report = cluster
            .apply(&first, &manifest::parse(V1).unwrap())
            .await
            .unwrap();
        assert_eq!(report.applied.len(), 3);
        assert_eq!(report.changed.len(), 3);
        let web = cluster
            .get(&key("Deployment", Some("shop"), "web"))
            .unwrap();
        assert_eq!(web["metadata"]["labels"][STACK_LABEL], stack.to_string());
        assert_eq!(web["metadata"]["annotations"][CHECKSUM_ANNOTATION], "abc");

        // The same again changes nothing; a hand edit is put back and reported.
        let again = cluster
            .apply(&first, &manifest::parse(V1).unwrap())
            .await
            .unwrap();
        assert!(again.changed.is_empty());
        cluster.edit(&key("Deployment", Some("shop"), "web"), |v| {
            v["spec"]["replicas"] = json!(9)
        });
        let again = cluster
            .apply(&first, &manifest::parse(V1).unwrap())
            .await
            .unwrap();
        assert_eq!(again.changed, [key("Deployment", Some("shop"), "web")]);

        // Dropping the ConfigMap prunes it; an unlabelled object of the same name that
        // someone else made would not be touched.
        let v2 = V1.rsplit_once("---").unwrap().0;
        let report = cluster
            .apply(&stack_ref(stack), &manifest::parse(v2).unwrap())
            .await
            .unwrap();
        assert_eq!(report.pruned, [key("ConfigMap", Some("shop"), "cfg")]);
        assert!(
            cluster
                .get(&key("ConfigMap", Some("shop"), "cfg"))
                .is_none()
        );
    }

    #[tokio::test]
    async fn unlabelled_objects_survive_pruning_and_removal() {
        let cluster = MemoryApplier::new();
        let stack = StackId::new();
        cluster
            .apply(&stack_ref(stack), &manifest::parse(V1).unwrap())
            .await
            .unwrap();
        // Someone replaces the ConfigMap with their own, without Brokkr's label.
        let theirs = manifest::parse(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cfg\n  namespace: shop\n",
        )
        .unwrap();
        cluster.create_unmanaged(&theirs[0]);
        let removed = cluster.remove(stack).await.unwrap();
        assert_eq!(removed.len(), 2, "{removed:?}");
        assert!(
            cluster
                .get(&key("ConfigMap", Some("shop"), "cfg"))
                .is_some()
        );
        assert!(cluster.inventory(stack).await.unwrap().is_none());
        assert!(cluster.remove(stack).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn bad_objects_are_refused_before_anything_changes() {
        let cluster = MemoryApplier::new();
        let stack = stack_ref(StackId::new());
        let missing_ns = manifest::parse(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: nowhere\n",
        )
        .unwrap();
        let err = cluster.dry_run(&stack, &missing_ns).await.unwrap_err();
        assert!(
            matches!(err, applier::Error::Rejected { ref reason, .. } if reason == "NotFound"),
            "{err}"
        );
        let unknown =
            manifest::parse("apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n")
                .unwrap();
        assert!(matches!(
            cluster.apply(&stack, &unknown).await.unwrap_err(),
            applier::Error::UnknownKind { .. }
        ));
        assert_eq!(
            cluster.objects().len(),
            2,
            "only the two initial namespaces"
        );

        // A CRD in the same deployment object makes its kind usable.
        let with_crd = manifest::parse("apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  scope: Namespaced\n  names:\n    kind: Widget\n    plural: widgets\n---\napiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: w\n").unwrap();
        cluster.dry_run(&stack, &with_crd).await.unwrap();
        let report = cluster.apply(&stack, &with_crd).await.unwrap();
        assert_eq!(report.applied[1].namespace.as_deref(), Some("default"));
    }

    #[tokio::test]
    async fn health_follows_what_tests_set() {
        let cluster = MemoryApplier::new();
        let stack = StackId::new();
        cluster
            .apply(&stack_ref(stack), &manifest::parse(V1).unwrap())
            .await
            .unwrap();
        let health = cluster.health(stack).await.unwrap();
        assert_eq!(health.len(), 1);
        assert_eq!(health[0].status, HealthStatus::Healthy);
        cluster.set_health(
            &key("Deployment", Some("shop"), "web"),
            HealthStatus::Failed,
            "CrashLoopBackOff",
        );
        let health = cluster.health(stack).await.unwrap();
        assert_eq!(health[0].reason.as_deref(), Some("CrashLoopBackOff"));
        cluster.set_unavailable(true);
        assert!(cluster.health(stack).await.unwrap_err().is_transient());
    }
}
