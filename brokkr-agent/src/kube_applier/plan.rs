//! Resolving a deployment object before touching the cluster: every kind looked up,
//! every namespace resolved, every object stamped, in apply order. Whatever can be
//! found wrong without the cluster's verdict (an unknown kind, a cluster-scoped object
//! with a namespace, malformed metadata) is found here, so nothing is applied.

use std::collections::BTreeSet;

use brokkr_core::applier::{Error, StackRef, apply_order};
use brokkr_core::{Manifest, ObjectKey};
use kube::api::DynamicObject;

use super::crd::{Definition, defined_by, is_crd};
use super::discovery::{Found, Kind, Lookup};
use super::objects::{stamped, target_key};

/// How a step's kind was resolved.
#[derive(Debug, Clone)]
pub(crate) enum Resolution {
    /// The cluster serves it.
    Served(Kind),
    /// A CRD of the same deployment object defines it and the cluster does not serve
    /// it yet; it is looked up again once that CRD is established.
    Deferred,
}

/// One object to apply.
#[derive(Debug)]
pub(crate) struct Step<'m> {
    /// The manifest it comes from.
    pub manifest: &'m Manifest,
    /// Its identity in the cluster, namespace resolved.
    pub key: ObjectKey,
    /// Its kind.
    pub resolution: Resolution,
    /// What is sent.
    pub object: DynamicObject,
}

impl Step<'_> {
    /// Whether this step applies a CustomResourceDefinition.
    pub(crate) fn is_crd(&self) -> bool {
        is_crd(self.manifest.group(), self.manifest.kind())
    }
}

/// A deployment object, resolved.
#[derive(Debug)]
pub(crate) struct Plan<'m> {
    /// The objects in apply order.
    pub steps: Vec<Step<'m>>,
}

impl Plan<'_> {
    /// The keys of every object, in apply order.
    pub(crate) fn keys(&self) -> Vec<ObjectKey> {
        self.steps.iter().map(|s| s.key.clone()).collect()
    }

    /// The names of the Namespaces it creates.
    pub(crate) fn namespaces(&self) -> BTreeSet<&str> {
        self.steps
            .iter()
            .filter(|s| s.manifest.group().is_empty() && s.manifest.kind() == "Namespace")
            .map(|s| s.key.name.as_str())
            .collect()
    }
}

/// Resolves `manifests`. An unknown kind is looked up again after at most one
/// discovery refresh; still unknown, it fails the whole plan with `UnknownKind`.
pub(crate) async fn plan<'m>(
    manifests: &'m [Manifest],
    stack: &StackRef,
    lookup: &mut Lookup<'_>,
    default_namespace: &str,
) -> Result<Plan<'m>, Error> {
    let definitions: Vec<Definition> = manifests.iter().filter_map(Definition::of).collect();
    let mut steps = Vec::with_capacity(manifests.len());
    for manifest in apply_order(manifests) {
        let (api_version, kind) = (manifest.api_version(), manifest.kind());
        let (resolution, namespaced) = match lookup.find(api_version, kind).await? {
            Found::Served(kind) => {
                let namespaced = kind.namespaced;
                (Resolution::Served(kind), namespaced)
            }
            found => match defined_by(&definitions, api_version, kind) {
                Some(definition) => (Resolution::Deferred, definition.namespaced),
                None => return Err(not_served(manifest.key(), found)),
            },
        };
        let key = target_key(manifest, namespaced, default_namespace)?;
        let object = stamped(manifest, &key, stack)?;
        steps.push(Step {
            manifest,
            key,
            resolution,
            object,
        });
    }
    Ok(Plan { steps })
}

/// The error for a kind the cluster does not serve, as `found` says.
pub(crate) fn not_served(object: ObjectKey, found: Found) -> Error {
    match found {
        Found::GroupVersionFailed(error) => Error::Unavailable(format!(
            "{object}: discovery of {} failed: {error}",
            object.api_version
        )),
        Found::Served(_) | Found::Unknown => Error::UnknownKind { object },
    }
}
