//! The [`Applier`] trait: making one cluster match a stack's deployment object.
//!
//! `brokkr-agent` implements it with kube-rs (server-side apply); the agent's pull loop
//! drives any implementation the same way.

use async_trait::async_trait;

use crate::id::{DeploymentObjectId, StackId};
use crate::manifest::{Manifest, ObjectKey};

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

/// What an apply changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ApplyReport {
    /// Objects applied.
    pub applied: Vec<ObjectKey>,
    /// Objects of the stack removed because the new deployment object no longer has them.
    pub pruned: Vec<ObjectKey>,
}

/// Why an apply failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The cluster rejected an object (validation, unknown kind, ...).
    #[error("{object}: rejected: {reason}")]
    Rejected {
        /// Which object.
        object: ObjectKey,
        /// The cluster's reason.
        reason: String,
    },
    /// The cluster could not be reached or failed.
    #[error("cluster unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
}

/// Result of an applier operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Applies, validates, prunes and removes the objects of one stack in one cluster.
/// Every operation is idempotent: repeating it with the same input changes nothing.
#[async_trait]
pub trait Applier: Send + Sync {
    /// Validates every object with a dry run, changing nothing.
    async fn dry_run(&self, stack: &StackRef, manifests: &[Manifest]) -> Result<()>;

    /// Applies every object (Namespaces and CRDs first), then prunes what the stack had
    /// and `manifests` no longer contains.
    async fn apply(&self, stack: &StackRef, manifests: &[Manifest]) -> Result<ApplyReport>;

    /// Removes every object of the stack. Removing an absent stack succeeds.
    async fn remove(&self, stack_id: StackId) -> Result<Vec<ObjectKey>>;
}
