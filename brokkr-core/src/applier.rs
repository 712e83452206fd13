//! The [`Applier`] trait: making one cluster match a stack's deployment object.
//!
//! `brokkr-agent` implements it twice: `KubeApplier` (kube-rs, server-side apply) for
//! real clusters and `MemoryApplier` (a simulated cluster) for tests and simulations.
//! The agent's pull loop drives any implementation the same way.
//!
//! The contract every implementation keeps:
//! - every object it applies is stamped with [`STACK_LABEL`] (the stack id) and the
//!   [`DEPLOYMENT_OBJECT_ANNOTATION`] and [`CHECKSUM_ANNOTATION`] annotations;
//! - it keeps an inventory per stack of what it applied, and prunes and removes only
//!   objects in that inventory that still carry the stack's label, so it never deletes
//!   an object Brokkr did not create and never has to list every kind in the cluster;
//! - operations are idempotent: repeating one with the same input changes nothing.

use async_trait::async_trait;

use crate::health::ObjectHealth;
use crate::id::{DeploymentObjectId, StackId};
use crate::manifest::{Manifest, ObjectKey};

/// Label naming the stack on every object Brokkr applies.
pub const STACK_LABEL: &str = "brokkr.io/stack-id";
/// Annotation naming the deployment object an object was last applied from.
pub const DEPLOYMENT_OBJECT_ANNOTATION: &str = "brokkr.io/deployment-object-id";
/// Annotation holding that deployment object's checksum.
pub const CHECKSUM_ANNOTATION: &str = "brokkr.io/checksum";
/// The field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "brokkr";

/// Which stack and deployment object an apply belongs to; stamped on every object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackRef {
    /// The stack.
    pub stack_id: StackId,
    /// The deployment object being applied.
    pub deployment_object_id: DeploymentObjectId,
    /// Its checksum.
    pub checksum: String,
}

/// What an apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Every object applied, in apply order.
    pub applied: Vec<ObjectKey>,
    /// Objects the apply created or changed. When the same deployment object is applied
    /// again, these are objects someone changed in the cluster: drift.
    pub changed: Vec<ObjectKey>,
    /// Objects of the stack removed because the new deployment object no longer has them.
    pub pruned: Vec<ObjectKey>,
}

/// What the inventory says a stack has in the cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inventory {
    /// The stack.
    pub stack_id: StackId,
    /// The deployment object last applied completely.
    pub deployment_object_id: Option<DeploymentObjectId>,
    /// Its checksum.
    pub checksum: Option<String>,
    /// The objects applied for the stack and not yet removed.
    pub objects: Vec<ObjectKey>,
}

/// Why an applier operation failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cluster rejected an object: it is invalid, forbidden, or its namespace is
    /// missing. `reason` is the Kubernetes reason (`Invalid`, `Forbidden`, `NotFound`).
    #[error("{object}: {reason}: {message}")]
    Rejected {
        /// Which object.
        object: ObjectKey,
        /// The Kubernetes reason.
        reason: String,
        /// The cluster's message.
        message: String,
    },
    /// The cluster does not serve the object's kind (even after refreshing discovery).
    #[error("{object}: the cluster does not serve kind {} in {}", .object.kind, .object.api_version)]
    UnknownKind {
        /// Which object.
        object: ObjectKey,
    },
    /// A CustomResourceDefinition did not become established in time.
    #[error("{object}: not established after {seconds}s")]
    NotEstablished {
        /// The CRD.
        object: ObjectKey,
        /// How long it was waited for.
        seconds: u64,
    },
    /// The cluster could not be reached or failed; worth retrying.
    #[error("cluster unavailable: {0}")]
    Unavailable(String),
}

impl Error {
    /// Whether trying again later may succeed without a new deployment object.
    pub fn is_transient(&self) -> bool {
        matches!(self, Self::Unavailable(_) | Self::NotEstablished { .. })
    }
}

/// Result of an applier operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Applies, validates, prunes and removes the objects of one stack in one cluster, and
/// reports their health.
#[async_trait]
pub trait Applier: Send + Sync {
    /// Validates every object with a server-side dry run, changing nothing. Objects
    /// that depend on something the same deployment object creates (a namespace, a
    /// CRD's kind) and that does not exist yet are checked when applied instead.
    async fn dry_run(&self, stack: &StackRef, manifests: &[Manifest]) -> Result<()>;

    /// Applies every object (Namespaces, then CRDs once established, then the rest),
    /// then prunes what the stack's inventory had and `manifests` no longer contains,
    /// and records the new inventory.
    async fn apply(&self, stack: &StackRef, manifests: &[Manifest]) -> Result<ApplyReport>;

    /// Removes every object in the stack's inventory, then the inventory. Removing a
    /// stack that has none succeeds and removes nothing.
    async fn remove(&self, stack_id: StackId) -> Result<Vec<ObjectKey>>;

    /// The stack's inventory, if it has one.
    async fn inventory(&self, stack_id: StackId) -> Result<Option<Inventory>>;

    /// The health of the stack's workloads (see [`crate::health`]), from their live
    /// state.
    async fn health(&self, stack_id: StackId) -> Result<Vec<ObjectHealth>>;
}

/// Orders manifests for applying: Namespaces, then CustomResourceDefinitions, then the
/// rest in their given order.
pub fn apply_order(manifests: &[Manifest]) -> Vec<&Manifest> {
    let rank = |m: &Manifest| match (m.group(), m.kind()) {
        ("", "Namespace") => 0,
        ("apiextensions.k8s.io", "CustomResourceDefinition") => 1,
        _ => 2,
    };
    let mut ordered: Vec<&Manifest> = manifests.iter().collect();
    ordered.sort_by_key(|m| rank(m));
    ordered
}

/// Orders object keys for removal: the reverse of [`apply_order`], so namespaced
/// objects go before the CRDs and Namespaces they live in.
pub fn removal_order(objects: &[ObjectKey]) -> Vec<&ObjectKey> {
    let rank = |k: &ObjectKey| match (k.api_version.as_str(), k.kind.as_str()) {
        ("v1", "Namespace") => 2,
        (v, "CustomResourceDefinition") if v.starts_with("apiextensions.k8s.io/") => 1,
        _ => 0,
    };
    let mut ordered: Vec<&ObjectKey> = objects.iter().collect();
    ordered.sort_by_key(|k| rank(k));
    ordered
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn manifest(api_version: &str, kind: &str, name: &str) -> Manifest {
        Manifest::from_value(
            json!({"apiVersion": api_version, "kind": kind, "metadata": {"name": name}}),
        )
        .unwrap()
    }

    #[test]
    fn namespaces_then_crds_then_the_rest_and_back() {
        let manifests = [
            manifest("apps/v1", "Deployment", "web"),
            manifest(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                "widgets.example.com",
            ),
            manifest("v1", "ConfigMap", "cfg"),
            manifest("v1", "Namespace", "team"),
        ];
        let order: Vec<&str> = apply_order(&manifests).iter().map(|m| m.name()).collect();
        assert_eq!(order, ["team", "widgets.example.com", "web", "cfg"]);

        let keys: Vec<ObjectKey> = manifests.iter().map(Manifest::key).collect();
        let order: Vec<&str> = removal_order(&keys)
            .iter()
            .map(|k| k.name.as_str())
            .collect();
        assert_eq!(order, ["web", "cfg", "widgets.example.com", "team"]);
    }
}
