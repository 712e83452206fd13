//! [`MemoryApplier`]: a simulated cluster behind the [`Applier`] trait, for tests,
//! examples and fleet simulations where no Kubernetes API is at hand.
//!
//! It keeps the contract of the [`Applier`] trait (see [`brokkr_core::applier`]):
//! objects are identified by group, kind, namespace and name and stamped with the
//! stack's label and annotations; an existing object is applied only when it carries
//! the stack's label or may be adopted, never when another stack's label is on it;
//! namespaced objects need their namespace (pre-existing: `default`, `kube-system`);
//! kinds must be served (built-in kinds, plus kinds that an applied
//! CustomResourceDefinition registers); an inventory per stack drives pruning and
//! removal, which delete what Brokkr created and only release (unlabel) what it
//! adopted; a change to a field a test made immutable
//! ([`MemoryApplier::make_immutable`]) fails or, when allowed, recreates the object.
//! Deleting a Namespace takes its objects along, deleting a CRD its custom objects.
//! Workloads are healthy unless a test says otherwise with
//! [`MemoryApplier::set_health`].
//!
//! It is not a Kubernetes model: no defaulting, no field ownership (an apply replaces
//! the whole object), no finalizers, no controllers.

mod kinds;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use brokkr_core::applier::{
    self, ApplyReport, CHECKSUM_ANNOTATION, Claim, DEPLOYMENT_OBJECT_ANNOTATION, Disposal,
    Inventory, STACK_LABEL, StackRef, apply_order, claim, disposal, removal_order,
};
use brokkr_core::health::{self, HealthStatus, ObjectHealth};
use brokkr_core::manifest::{Manifest, ObjectKey};
use brokkr_core::{Applier, DeploymentObjectId, StackId};
use serde_json::{Value, json};

use self::kinds::{CLUSTER_SCOPED, NAMESPACED};

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
    /// (kind, dotted field path) pairs that may not change once set.
    immutable: Vec<(String, String)>,
    /// Objects whose deletion is refused (403), as for a cluster's own namespaces.
    undeletable: BTreeSet<ObjectKey>,
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

    /// One object, addressed at any version of its group.
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

    /// Creates an object outside Brokkr (no stack label unless the manifest has one),
    /// e.g. to check that pruning leaves it alone or that adoption is refused.
    pub fn create_unmanaged(&self, manifest: &Manifest) {
        let mut cluster = self.lock();
        let key = cluster.resolve(manifest.key());
        let mut value = manifest.as_value().clone();
        if let Some(namespace) = &key.namespace {
            value["metadata"]["namespace"] = json!(namespace);
        }
        cluster.store(key, value);
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

    /// Makes `field` (a dotted path such as `spec.selector`) of every object of `kind`
    /// immutable once set, as the API server does for a Job's template or a
    /// Deployment's selector.
    pub fn make_immutable(&self, kind: &str, field: &str) {
        self.lock()
            .immutable
            .push((kind.to_owned(), field.to_owned()));
    }

    /// Makes every deletion of `key` fail with 403, as the API server refuses to
    /// delete its own namespaces.
    pub fn refuse_deletion(&self, key: &ObjectKey) {
        self.lock().undeletable.insert(key.clone());
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

/// One object of an apply, checked and claimed.
struct Planned {
    key: ObjectKey,
    manifest: Manifest,
    claim: Claim,
    /// Whether it must be deleted and created again (an allowed immutable change).
    recreate: bool,
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

    /// Stores `value` at `key`; tells whether anything changed. The key is replaced
    /// too, so the object is addressed at the version last applied.
    fn store(&mut self, key: ObjectKey, value: Value) -> bool {
        if let Some(stored) = self.objects.get(&key)
            && stored.value == value
        {
            return false;
        }
        self.objects.remove(&key);
        self.objects.insert(key, Stored { value });
        true
    }

    /// The stack label of the live object at `key`: `None` if absent.
    fn owner(&self, key: &ObjectKey) -> Option<Option<&str>> {
        self.objects
            .get(key)
            .map(|s| s.value.pointer(&label_pointer()).and_then(Value::as_str))
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

    /// Checks and claims every object in apply order, finding every refusal before
    /// anything is written.
    fn plan(&self, stack: &StackRef, manifests: &[Manifest]) -> applier::Result<Vec<Planned>> {
        let mut created = BTreeSet::new();
        let mut pending_crds = HashMap::new();
        let mut planned = Vec::with_capacity(manifests.len());
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
            let may_adopt = stack.policy.allows_adoption(manifest);
            let claim = claim(&key, stack.stack_id, self.owner(&key), may_adopt)?;
            let changed = self.immutable_changes(&key, manifest);
            let recreate = !changed.is_empty();
            if recreate && !stack.policy.allows_recreation(manifest) {
                let message = format!("field is immutable: {}", changed.join(", "));
                return Err(applier::Error::Immutable {
                    object: key,
                    fields: changed,
                    message,
                });
            }
            planned.push(Planned {
                key,
                manifest: manifest.clone(),
                claim,
                recreate,
            });
        }
        Ok(planned)
    }

    /// The immutable fields of the live object at `key` that `manifest` changes.
    fn immutable_changes(&self, key: &ObjectKey, manifest: &Manifest) -> Vec<String> {
        let Some(live) = self.objects.get(key) else {
            return Vec::new();
        };
        self.immutable
            .iter()
            .filter(|(kind, _)| *kind == key.kind)
            .filter(|(_, field)| {
                let pointer = format!("/{}", field.replace('.', "/"));
                let before = live.value.pointer(&pointer);
                before.is_some() && before != manifest.as_value().pointer(&pointer)
            })
            .map(|(_, field)| field.clone())
            .collect()
    }

    /// Lets go of `key` for `stack`: deletes it or releases it (see [`disposal`]).
    /// Tells whether anything was done: not when the object is gone or no longer
    /// carries the stack's label.
    fn dispose(&mut self, key: &ObjectKey, stack: StackId, adopted: bool) -> applier::Result<bool> {
        let stack = stack.to_string();
        if self.owner(key) != Some(Some(stack.as_str())) {
            return Ok(false);
        }
        match disposal(key, adopted) {
            Disposal::Release => {
                if let Some(stored) = self.objects.get_mut(key)
                    && let Some(metadata) = stored.value.get_mut("metadata")
                {
                    strip(metadata, "labels", &[STACK_LABEL]);
                    strip(
                        metadata,
                        "annotations",
                        &[DEPLOYMENT_OBJECT_ANNOTATION, CHECKSUM_ANNOTATION],
                    );
                }
            }
            Disposal::Delete => {
                if self.undeletable.contains(key) {
                    return Err(rejected(
                        key.clone(),
                        "Forbidden",
                        "the simulated cluster refuses to delete this object",
                    ));
                }
                self.delete(key);
            }
        }
        Ok(true)
    }

    /// Deletes `key`, with the cascades of a Namespace (its objects) and a CRD (its
    /// custom objects).
    fn delete(&mut self, key: &ObjectKey) {
        let Some(stored) = self.objects.remove(key) else {
            return;
        };
        self.health.remove(key);
        let gone: Vec<ObjectKey> = match (key.group(), key.kind.as_str()) {
            ("", "Namespace") => self
                .objects
                .keys()
                .filter(|k| k.namespace.as_deref() == Some(key.name.as_str()))
                .cloned()
                .collect(),
            ("apiextensions.k8s.io", "CustomResourceDefinition") => match crd_kind(&stored.value) {
                Some((kind, _)) => {
                    self.custom_kinds.remove(&kind);
                    self.objects
                        .keys()
                        .filter(|k| k.kind == kind)
                        .cloned()
                        .collect()
                }
                None => Vec::new(),
            },
            _ => Vec::new(),
        };
        for key in gone {
            self.objects.remove(&key);
            self.health.remove(&key);
        }
    }
}

fn label_pointer() -> String {
    format!("/metadata/labels/{}", STACK_LABEL.replace('/', "~1"))
}

/// Removes `keys` from the string map `metadata[field]`.
fn strip(metadata: &mut Value, field: &str, keys: &[&str]) {
    if let Some(map) = metadata.get_mut(field).and_then(Value::as_object_mut) {
        for key in keys {
            map.remove(*key);
        }
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
    async fn dry_run(&self, stack: &StackRef, manifests: &[Manifest]) -> applier::Result<()> {
        let cluster = self.lock();
        cluster.available()?;
        cluster.plan(stack, manifests).map(drop)
    }

    async fn apply(
        &self,
        stack: &StackRef,
        manifests: &[Manifest],
    ) -> applier::Result<ApplyReport> {
        let mut cluster = self.lock();
        cluster.available()?;
        let planned = cluster.plan(stack, manifests)?;
        let old = cluster
            .inventories
            .get(&stack.stack_id)
            .cloned()
            .unwrap_or_else(|| empty_inventory(stack.stack_id));
        let mut report = ApplyReport::default();
        for step in &planned {
            let key = &step.key;
            if step.manifest.kind() == "CustomResourceDefinition"
                && let Some((kind, namespaced)) = crd_kind(step.manifest.as_value())
            {
                cluster.custom_kinds.insert(kind, namespaced);
            }
            if step.recreate {
                cluster.delete(key);
                report.recreated.push(key.clone());
            }
            if cluster.store(key.clone(), stamped(&step.manifest, stack, key)) {
                report.changed.push(key.clone());
            }
            if step.claim == Claim::Adopt {
                report.adopted.push(key.clone());
            }
            report.applied.push(key.clone());
        }
        let keep: BTreeSet<&ObjectKey> = report.applied.iter().collect();
        for key in removal_order(&old.objects) {
            if !keep.contains(key) && cluster.dispose(key, stack.stack_id, old.is_adopted(key))? {
                report.pruned.push(key.clone());
            }
        }
        // Adopted before and still applied, or adopted now.
        let adopted: Vec<ObjectKey> = old
            .adopted
            .iter()
            .filter(|k| keep.contains(k))
            .chain(&report.adopted)
            .cloned()
            .collect();
        cluster.inventories.insert(
            stack.stack_id,
            Inventory {
                stack_id: stack.stack_id,
                deployment_object_id: Some(stack.deployment_object_id),
                checksum: Some(stack.checksum.clone()),
                objects: report.applied.clone(),
                adopted,
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
            // A refusal keeps the inventory, so the removal is tried again.
            if cluster.dispose(key, stack_id, inventory.is_adopted(key))? {
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

fn empty_inventory(stack_id: StackId) -> Inventory {
    Inventory {
        stack_id,
        deployment_object_id: None,
        checksum: None,
        objects: Vec::new(),
        adopted: Vec::new(),
    }
}

#[cfg(test)]
mod tests;
