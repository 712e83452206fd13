//! [`KubeApplier`]: the [`Applier`] for real clusters, with kube-rs and server-side
//! apply.
//!
//! How one deployment object is applied ([`Applier::apply`]); the contract it keeps is
//! [`brokkr_core::applier`]'s:
//!
//! 1. Every manifest's kind is resolved against the cached discovery (refreshed when
//!    a kind is unknown or the cache expired), its namespace resolved and the object
//!    stamped with [`STACK_LABEL`](brokkr_core::applier::STACK_LABEL) and the
//!    deployment-object annotations. An unknown kind or an invalid object stops here.
//! 2. Every live object is read and claimed ([`claim`](brokkr_core::applier::claim)):
//!    one labelled with another stack, or unlabelled without an allowed adoption, fails
//!    the apply with `NotOwned` before anything is written.
//! 3. The stack's inventory (a ConfigMap, see [`KubeApplierOptions::inventory_namespace`])
//!    is written as old ∪ new, adoptions included, *before* anything is applied, so a
//!    crash half-way never leaves an applied object that no inventory names, nor an
//!    adopted object that the inventory would take for Brokkr's own.
//! 4. Objects are applied with server-side apply (field manager `brokkr`, forced) in
//!    [`apply_order`](brokkr_core::applier::apply_order): Namespaces, then CRDs, each
//!    waited for until established, then the rest. An object counts as changed when
//!    it was created or a field `brokkr` owns changed (module `drift`). A 422 naming an
//!    immutable field fails the apply, or, when recreation is allowed, the object is
//!    deleted, waited for and applied again.
//! 5. Objects of the old inventory that the new deployment object lacks are let go of
//!    (module `prune`): deleted if Brokkr created them, released if adopted, tier by
//!    tier, each tier waited for until gone.
//! 6. The inventory is written as the new set, with the deployment object's id and
//!    checksum.
//!
//! [`Applier::dry_run`] claims every object as the apply would and sends it with
//! `dryRun=All`, except the ones that cannot be checked before the deployment object
//! is applied: objects in a Namespace the same deployment object creates and that does
//! not exist yet, and custom resources whose CRD the same deployment object defines
//! and the cluster does not serve yet. Those are checked by the API server when
//! applied. An immutable change passes the dry run only when recreation is allowed.
//!
//! RBAC: see `docs/agent-rbac.md`. Discovery needs none beyond what every
//! authenticated client has; with only namespaced Roles, the inventory namespace must
//! exist already (creating it is attempted, and a refusal only logged).
//!
//! ```no_run
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! use brokkr_agent::kube_applier::{KubeApplier, KubeApplierOptions};
//! use brokkr_core::Applier;
//!
//! let client = kube::Client::try_default().await?;
//! let applier = KubeApplier::new(client, KubeApplierOptions::default()).await?;
//! let health = applier.health(brokkr_core::StackId::new()).await?;
//! # Ok(()) }
//! ```

// The error type is the `Applier` trait's, from brokkr-core; errors are rare and off
// the hot path, so their size does not matter here.
#![allow(clippy::result_large_err)]

mod apply;
mod crd;
mod discovery;
mod drift;
mod errors;
mod inventory;
mod objects;
mod plan;
mod prune;
mod workload;

use std::fmt;
use std::time::Duration;

use async_trait::async_trait;
use brokkr_core::applier::{Applier, ApplyReport, Inventory, Result, StackRef};
use brokkr_core::health::{self, ObjectHealth};
use brokkr_core::{Manifest, ObjectKey, StackId};
use kube::Client;
use kube::api::{Api, DynamicObject};

use self::discovery::{Discovery, Found, Kind, Lookup};
use self::errors::object_error;
use self::inventory::Inventories;
use self::plan::not_served;

/// How a [`KubeApplier`] behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeApplierOptions {
    /// Namespace holding the per-stack inventory ConfigMaps. Default `brokkr-system`.
    pub inventory_namespace: String,
    /// Namespace for namespaced objects that name none. Default `default`.
    pub default_namespace: String,
    /// How long a CustomResourceDefinition may take to become established and served.
    /// Default 30 s.
    pub crd_established_timeout: Duration,
    /// Whether [`KubeApplier::new`] creates the inventory namespace when it is
    /// missing. A refusal (no RBAC for Namespaces) is logged, not an error. Default
    /// true.
    pub ensure_inventory_namespace: bool,
    /// How long deleted objects may take to disappear (finalizers, a Namespace's
    /// contents), per removal tier and per recreation, before the operation fails
    /// naming what is still terminating. Default 60 s.
    pub deletion_timeout: Duration,
    /// How long discovery results are trusted before they are read again. Default 5
    /// minutes.
    pub discovery_ttl: Duration,
    /// How long one API group version may take to describe itself before its kinds
    /// count as unavailable (an aggregated API whose backend is down). Default 10 s.
    pub discovery_timeout: Duration,
}

impl Default for KubeApplierOptions {
    fn default() -> Self {
        Self {
            inventory_namespace: "brokkr-system".to_owned(),
            default_namespace: "default".to_owned(),
            crd_established_timeout: Duration::from_secs(30),
            ensure_inventory_namespace: true,
            deletion_timeout: Duration::from_secs(60),
            discovery_ttl: Duration::from_secs(300),
            discovery_timeout: Duration::from_secs(10),
        }
    }
}

/// Applies stacks to a Kubernetes cluster with server-side apply; see the
/// [module documentation](self).
pub struct KubeApplier {
    client: Client,
    options: KubeApplierOptions,
    discovery: Discovery,
    inventories: Inventories,
}

impl fmt::Debug for KubeApplier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeApplier")
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl KubeApplier {
    /// Discovers the cluster's kinds and, if asked, creates the inventory namespace.
    ///
    /// Fails with `Unavailable` when the cluster cannot be reached.
    pub async fn new(client: Client, options: KubeApplierOptions) -> Result<KubeApplier> {
        let discovery = Discovery::new(
            client.clone(),
            options.discovery_ttl,
            options.discovery_timeout,
        )
        .await?;
        if options.ensure_inventory_namespace {
            inventory::ensure_namespace(client.clone(), &options.inventory_namespace).await;
        }
        let inventories = Inventories::new(client.clone(), &options.inventory_namespace);
        Ok(KubeApplier {
            client,
            options,
            discovery,
            inventories,
        })
    }

    /// Its options.
    pub fn options(&self) -> &KubeApplierOptions {
        &self.options
    }

    /// The API for objects of `kind` in `namespace` (ignored for cluster-scoped kinds).
    fn api(&self, kind: &Kind, namespace: Option<&str>) -> Api<DynamicObject> {
        match namespace {
            Some(namespace) if kind.namespaced => {
                Api::namespaced_with(self.client.clone(), namespace, &kind.resource)
            }
            _ => Api::all_with(self.client.clone(), &kind.resource),
        }
    }

    /// The live object at `key`, if any. `Ok(None)` too when its kind is no longer
    /// served: then it cannot exist.
    async fn live(
        &self,
        key: &ObjectKey,
        lookup: &mut Lookup<'_>,
    ) -> Result<Option<DynamicObject>> {
        let kind = match lookup.find_object(key).await? {
            Found::Served(kind) => kind,
            Found::Unknown => return Ok(None),
            found => return Err(not_served(key.clone(), found)),
        };
        self.api(&kind, key.namespace.as_deref())
            .get_opt(&key.name)
            .await
            .map_err(|e| object_error(key, e))
    }
}

#[async_trait]
impl Applier for KubeApplier {
    async fn dry_run(&self, stack: &StackRef, manifests: &[Manifest]) -> Result<()> {
        self.dry_run_all(stack, manifests).await
    }

    async fn apply(&self, stack: &StackRef, manifests: &[Manifest]) -> Result<ApplyReport> {
        self.apply_all(stack, manifests).await
    }

    async fn remove(&self, stack_id: StackId) -> Result<Vec<ObjectKey>> {
        self.remove_all(stack_id).await
    }

    async fn inventory(&self, stack_id: StackId) -> Result<Option<Inventory>> {
        self.inventories.read(stack_id).await
    }

    async fn health(&self, stack_id: StackId) -> Result<Vec<ObjectHealth>> {
        let Some(inventory) = self.inventories.read(stack_id).await? else {
            return Ok(Vec::new());
        };
        let mut lookup = Lookup::new(&self.discovery);
        let mut verdicts = Vec::new();
        for key in inventory
            .objects
            .iter()
            .filter(|k| health::is_workload(&k.kind))
        {
            if let Some(verdict) = self.workload_health(key, &mut lookup).await? {
                verdicts.push(verdict);
            }
        }
        Ok(verdicts)
    }
}
