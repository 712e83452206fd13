//! The [`Applier`] trait: making one cluster match a stack's deployment object.
//!
//! `brokkr-agent` implements it with `KubeApplier` (kube-rs, server-side apply);
//! `testing::MemoryApplier` (feature `testing`) is a simulated cluster for tests, and
//! `testing::applier_conformance` is the suite both pass. The agent's pull loop drives
//! any implementation the same way.
//!
//! # The contract every implementation keeps
//!
//! **Identity.** An object is identified by group, kind, namespace and name
//! ([`ObjectKey`]); the version only addresses it. Moving a manifest from
//! `example.com/v1beta1` to `example.com/v1` changes how the object is read and
//! written, never which object it is, so it is neither pruned nor adopted again.
//!
//! **Stamps.** Every object applied carries [`STACK_LABEL`] (the stack id) and the
//! [`DEPLOYMENT_OBJECT_ANNOTATION`] and [`CHECKSUM_ANNOTATION`] annotations.
//!
//! **Ownership.** Before applying, the live object is read:
//! - absent: it is created, and recorded in the inventory as created by Brokkr;
//! - labelled with this stack: it is applied;
//! - labelled with another stack: the apply fails with [`Error::NotOwned`] naming that
//!   stack, whatever the policy says: a stack never takes an object from another;
//! - unlabelled: it is adopted only when allowed ([`ApplyPolicy::adopt`] for the whole
//!   stack, or the annotation [`ADOPT_ANNOTATION`]` = "true"` on that object's
//!   manifest), and recorded in the inventory as adopted ([`Inventory::adopted`]);
//!   otherwise the apply fails with [`Error::NotOwned`] before anything is written.
//!
//! **What is deleted.** Prune and removal read the stack's inventory, never a listing
//! of the cluster, and touch only objects that still carry the stack's label (see
//! [`disposal`]):
//! - an object Brokkr created is deleted;
//! - an adopted object is released, never deleted: Brokkr's label and annotations are
//!   removed and everything else is left as it is;
//! - the cluster's own namespaces (`default`, `kube-system`, `kube-public`,
//!   `kube-node-lease`) are never deleted, and Namespaces and CustomResourceDefinitions
//!   only when Brokkr created them (deleting either cascades to everything in it).
//!
//! Deletion goes tier by tier ([`removal_tiers`]): custom resources, then the other
//! namespaced and cluster objects (the operators that finalize those resources among
//! them), then CustomResourceDefinitions, then Namespaces; each tier is waited for,
//! within a bound, until its objects are gone. What is still terminating after the
//! bound fails the operation with [`Error::StillTerminating`]; a deletion the cluster
//! refuses fails it too. A removal reports success only when everything it deleted is
//! gone and the inventory with it.
//!
//! **Immutable fields.** A change the cluster refuses because a field is immutable
//! fails with [`Error::Immutable`] naming the field, unless recreation is allowed
//! ([`ApplyPolicy::recreate_on_immutable`], or [`RECREATE_ANNOTATION`]` = "true"` on
//! the manifest): then the object is deleted, waited for, applied again and listed in
//! [`ApplyReport::recreated`].
//!
//! **Drift.** [`ApplyReport::changed`] lists objects the apply created, recreated or
//! whose fields set by the manifest (owned by [`FIELD_MANAGER`]) it changed back; a
//! status write or a `resourceVersion` bump that changes none of them is not a change.
//!
//! **Idempotence.** Repeating an operation with the same input changes nothing.

mod ownership;

use async_trait::async_trait;

use crate::health::ObjectHealth;
use crate::id::{DeploymentObjectId, StackId};
use crate::manifest::{Manifest, ObjectKey};

pub use self::ownership::{
    Claim, Disposal, POLICY_API_VERSION, POLICY_KIND, apply_order, claim, disposal,
    is_cluster_namespace, is_custom_resource, removal_order, removal_tiers, split_policy,
};

/// Label naming the stack on every object Brokkr applies.
pub const STACK_LABEL: &str = "brokkr.io/stack-id";
/// Annotation naming the deployment object an object was last applied from.
pub const DEPLOYMENT_OBJECT_ANNOTATION: &str = "brokkr.io/deployment-object-id";
/// Annotation holding that deployment object's checksum.
pub const CHECKSUM_ANNOTATION: &str = "brokkr.io/checksum";
/// Annotation on a manifest: `"true"` lets Brokkr adopt the object when it exists
/// without the stack's label.
pub const ADOPT_ANNOTATION: &str = "brokkr.io/adopt";
/// Annotation on a manifest: `"true"` lets Brokkr delete and recreate the object when
/// a change touches an immutable field.
pub const RECREATE_ANNOTATION: &str = "brokkr.io/recreate-on-immutable";
/// The field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "brokkr";

/// What a stack allows for all of its objects, beyond what each manifest's own
/// annotations allow. The agent reads it from the deployment object's `ApplyPolicy`
/// document (see [`split_policy`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ApplyPolicy {
    /// Adopt every object of the stack that exists without the stack's label (never
    /// one labelled with another stack).
    pub adopt: bool,
    /// Delete and recreate any object of the stack whose change touches an immutable
    /// field.
    pub recreate_on_immutable: bool,
}

impl ApplyPolicy {
    /// Whether `manifest`'s object may be adopted.
    pub fn allows_adoption(&self, manifest: &Manifest) -> bool {
        self.adopt || annotation_is_true(manifest, ADOPT_ANNOTATION)
    }

    /// Whether `manifest`'s object may be deleted and recreated to change an
    /// immutable field.
    pub fn allows_recreation(&self, manifest: &Manifest) -> bool {
        self.recreate_on_immutable || annotation_is_true(manifest, RECREATE_ANNOTATION)
    }
}

fn annotation_is_true(manifest: &Manifest, annotation: &str) -> bool {
    manifest
        .as_value()
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(annotation))
        .and_then(serde_json::Value::as_str)
        == Some("true")
}

/// Which stack and deployment object an apply belongs to; stamped on every object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StackRef {
    /// The stack.
    pub stack_id: StackId,
    /// The deployment object being applied.
    pub deployment_object_id: DeploymentObjectId,
    /// Its checksum.
    pub checksum: String,
    /// What the stack allows (adoption, recreation).
    pub policy: ApplyPolicy,
}

/// What an apply did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Every object applied, in apply order.
    pub applied: Vec<ObjectKey>,
    /// Objects the apply created, recreated, or whose fields set by the manifest it
    /// changed back. When the same deployment object is applied again, these are
    /// objects someone changed in the cluster: drift.
    pub changed: Vec<ObjectKey>,
    /// Objects that existed without the stack's label and were adopted by this apply.
    pub adopted: Vec<ObjectKey>,
    /// Objects deleted and created again because a change touched an immutable field.
    pub recreated: Vec<ObjectKey>,
    /// Objects of the stack removed (or, adopted ones, released) because the new
    /// deployment object no longer has them.
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
    /// Those of `objects` that existed before Brokkr applied them (adopted): prune and
    /// removal release them instead of deleting them.
    pub adopted: Vec<ObjectKey>,
}

impl Inventory {
    /// Whether `object` was adopted rather than created by Brokkr.
    pub fn is_adopted(&self, object: &ObjectKey) -> bool {
        self.adopted.contains(object)
    }
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
    /// The object exists and Brokkr may not take it: it carries another stack's label
    /// (`owner`), or none and adoption is not allowed.
    #[error("{object}: {}", not_owned(.owner.as_deref()))]
    NotOwned {
        /// Which object.
        object: ObjectKey,
        /// The stack whose label it carries, if any.
        owner: Option<String>,
    },
    /// A change touches immutable fields and recreation is not allowed.
    #[error(
        "{object}: cannot change immutable field(s) {}: {message}; set the annotation {RECREATE_ANNOTATION}: \"true\" (or the stack's ApplyPolicy recreateOnImmutable) to delete and recreate it",
        .fields.join(", ")
    )]
    Immutable {
        /// Which object.
        object: ObjectKey,
        /// The immutable fields named by the cluster (`spec.selector`); empty when it
        /// named none.
        fields: Vec<String>,
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
    /// Deleted objects are still there (finalizers not cleared) after the wait.
    #[error("still terminating after {seconds}s: {}", list(.objects))]
    StillTerminating {
        /// The objects still present.
        objects: Vec<ObjectKey>,
        /// How long they were waited for.
        seconds: u64,
    },
    /// The object's namespace is being deleted; creating in it is refused until it is
    /// gone (and, if the deployment object has it, created again).
    #[error("{object}: namespace {namespace} is being terminated; will retry")]
    NamespaceTerminating {
        /// Which object.
        object: ObjectKey,
        /// The terminating namespace.
        namespace: String,
    },
    /// The stack's inventory does not fit in one ConfigMap.
    #[error(
        "the inventory of stack {stack_id} needs {bytes} bytes, more than a ConfigMap holds ({limit}); split the stack into smaller ones"
    )]
    InventoryTooLarge {
        /// The stack.
        stack_id: StackId,
        /// The inventory's encoded size.
        bytes: usize,
        /// The limit.
        limit: usize,
    },
    /// The cluster could not be reached or failed; worth retrying.
    #[error("cluster unavailable: {0}")]
    Unavailable(String),
}

fn not_owned(owner: Option<&str>) -> String {
    match owner {
        Some(owner) => {
            format!("belongs to stack {owner}; an object is never taken from another stack")
        }
        None => format!(
            "exists and was not created by Brokkr; set the annotation {ADOPT_ANNOTATION}: \"true\" on its manifest (or the stack's ApplyPolicy adopt) to adopt it"
        ),
    }
}

fn list(objects: &[ObjectKey]) -> String {
    let shown: Vec<String> = objects.iter().take(10).map(ToString::to_string).collect();
    let more = objects.len().saturating_sub(shown.len());
    if more > 0 {
        format!("{} (and {more} more)", shown.join(", "))
    } else {
        shown.join(", ")
    }
}

impl Error {
    /// Whether trying again later may succeed without a new deployment object.
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            Self::Unavailable(_)
                | Self::NotEstablished { .. }
                | Self::StillTerminating { .. }
                | Self::NamespaceTerminating { .. }
        )
    }
}

/// Result of an applier operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Applies, validates, prunes and removes the objects of one stack in one cluster, and
/// reports their health. See the [module documentation](self) for the contract.
#[async_trait]
pub trait Applier: Send + Sync {
    /// Validates every object with a server-side dry run, changing nothing. Objects
    /// that depend on something the same deployment object creates (a namespace, a
    /// CRD's kind) and that does not exist yet are checked when applied instead. An
    /// object Brokkr may not take fails here with [`Error::NotOwned`]; an immutable
    /// change fails with [`Error::Immutable`] unless recreation is allowed.
    async fn dry_run(&self, stack: &StackRef, manifests: &[Manifest]) -> Result<()>;

    /// Applies every object (Namespaces, then CRDs once established, then the rest),
    /// then prunes what the stack's inventory had and `manifests` no longer contains,
    /// and records the new inventory. An object that may not be taken fails the whole
    /// apply before anything is written.
    async fn apply(&self, stack: &StackRef, manifests: &[Manifest]) -> Result<ApplyReport>;

    /// Removes the stack: deletes what Brokkr created, releases what it adopted, tier
    /// by tier, waits until it is gone, then deletes the inventory. Returns the objects
    /// deleted or released. Removing a stack that has no inventory succeeds and removes
    /// nothing; one that cannot complete fails and keeps its inventory to retry from.
    async fn remove(&self, stack_id: StackId) -> Result<Vec<ObjectKey>>;

    /// The stack's inventory, if it has one.
    async fn inventory(&self, stack_id: StackId) -> Result<Option<Inventory>>;

    /// The health of the stack's workloads (see [`crate::health`]), from their live
    /// state.
    async fn health(&self, stack_id: StackId) -> Result<Vec<ObjectHealth>>;
}
