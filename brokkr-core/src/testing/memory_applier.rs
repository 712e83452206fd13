//! [`MemoryApplier`]: a simulated cluster behind the [`Applier`] trait, for tests,
//! examples and fleet simulations where no Kubernetes API is at hand.
//!
//! It keeps the contract of the [`Applier`] trait (see [`crate::applier`]):
//! objects are identified by group, kind, namespace and name and stamped with the
//! stack's label and annotations; an existing object is applied only when it carries
//! the stack's label or may be adopted, never when another stack's label is on it;
//! namespaced objects need their namespace (pre-existing: the cluster's own `default`,
//! `kube-system`, `kube-public` and `kube-node-lease`);
//! kinds must be served (built-in kinds, plus kinds that an applied
//! CustomResourceDefinition registers); an inventory per stack drives pruning and
//! removal, which delete what Brokkr created and only release (unlabel) what it
//! adopted; a change to a field a test made immutable
//! ([`MemoryApplier::make_immutable`]) fails or, when allowed, recreates the object.
//! Deleting a Namespace takes its objects along, deleting a CRD its custom objects.
//! An apply owns the fields it sets, as a forced server-side apply does: a hand edit
//! of one of them is put back and reported as changed, a field only someone else set
//! stays (see `fields`). Workloads are healthy unless a test says otherwise with
//! [`MemoryApplier::set_health`].
//!
//! It is not a Kubernetes model: no defaulting, no validation beyond what tests ask
//! for, no finalizers, no controllers.
//!
//! It passes the applier conformance suite
//! ([`applier_conformance`](super::applier_conformance)), like the real `KubeApplier`.

mod cluster;
mod fields;
mod kinds;

use std::collections::BTreeSet;
use std::sync::{Mutex, MutexGuard};

use async_trait::async_trait;
use serde_json::{Value, json};

use self::cluster::{Cluster, crd_kind, namespace_key, stamped};
use crate::applier::{self, Applier, ApplyReport, Claim, Inventory, StackRef, removal_order};
use crate::health::{self, HealthStatus, ObjectHealth};
use crate::id::{DeploymentObjectId, StackId};
use crate::manifest::{Manifest, ObjectKey};

/// The namespaces a new cluster has, as a real one does.
const CLUSTER_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

/// A simulated cluster. Cheap to share behind an `Arc`.
#[derive(Debug, Default)]
pub struct MemoryApplier {
    cluster: Mutex<Cluster>,
}

impl MemoryApplier {
    /// An empty cluster with its own namespaces: `default`, `kube-system`,
    /// `kube-public` and `kube-node-lease`.
    pub fn new() -> Self {
        let applier = Self::default();
        {
            let mut cluster = applier.lock();
            for name in CLUSTER_NAMESPACES {
                let value =
                    json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
                cluster.put_by_hand(namespace_key(name), value);
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
            cluster.put_by_hand(key.clone(), value);
        }
    }

    /// Deletes an object as a person with `kubectl delete` would, with the cascades of
    /// a Namespace or a CRD; no-op if absent.
    pub fn delete_by_hand(&self, key: &ObjectKey) {
        self.lock().delete(key);
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
        cluster.put_by_hand(key, value);
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
            if cluster.apply_fields(key.clone(), stamped(&step.manifest, stack, key)) {
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
