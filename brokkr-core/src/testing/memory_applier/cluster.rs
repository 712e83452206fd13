//! The state of the simulated cluster and the rules it applies: which kinds it
//! serves, which namespaces exist, who may take an object, what is immutable, and what
//! a deletion takes along.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde_json::{Value, json};

use super::fields;
use super::kinds::{CLUSTER_SCOPED, NAMESPACED};
use crate::applier::{
    self, CHECKSUM_ANNOTATION, Claim, DEPLOYMENT_OBJECT_ANNOTATION, Disposal, Inventory,
    STACK_LABEL, StackRef, apply_order, claim, disposal,
};
use crate::health::HealthStatus;
use crate::id::{DeploymentObjectId, StackId};
use crate::manifest::{Manifest, ObjectKey};

/// One live object.
#[derive(Debug, Clone)]
pub(super) struct Stored {
    /// The object as the cluster holds it.
    pub(super) value: Value,
    /// What Brokkr last applied to it (stamped manifest): the fields it owns. `None`
    /// for an object Brokkr never applied or has let go of.
    pub(super) applied: Option<Value>,
}

/// Everything the simulated cluster holds, behind one lock.
#[derive(Debug, Default)]
pub(super) struct Cluster {
    pub(super) objects: BTreeMap<ObjectKey, Stored>,
    pub(super) inventories: BTreeMap<StackId, Inventory>,
    /// Kinds registered by CRDs: kind -> namespaced.
    pub(super) custom_kinds: HashMap<String, bool>,
    pub(super) health: HashMap<ObjectKey, (HealthStatus, String)>,
    pub(super) rejected_kinds: HashMap<String, String>,
    /// (kind, dotted field path) pairs that may not change once set.
    pub(super) immutable: Vec<(String, String)>,
    /// Objects whose deletion is refused (403), as for a cluster's own namespaces.
    pub(super) undeletable: BTreeSet<ObjectKey>,
    pub(super) unavailable: bool,
    pub(super) applies: Vec<(StackId, DeploymentObjectId)>,
}

pub(super) fn namespace_key(name: &str) -> ObjectKey {
    ObjectKey {
        api_version: "v1".into(),
        kind: "Namespace".into(),
        namespace: None,
        name: name.into(),
    }
}

/// One object of an apply, checked and claimed.
pub(super) struct Planned {
    pub(super) key: ObjectKey,
    pub(super) manifest: Manifest,
    pub(super) claim: Claim,
    /// Whether it must be deleted and created again (an allowed immutable change).
    pub(super) recreate: bool,
}

// Failures are rare and carry the object they are about; boxing them would only make
// the many matches on `applier::Error` harder to read.
#[allow(clippy::result_large_err)]
impl Cluster {
    pub(super) fn available(&self) -> applier::Result<()> {
        if self.unavailable {
            Err(applier::Error::Unavailable(
                "the simulated API server is down".into(),
            ))
        } else {
            Ok(())
        }
    }

    /// Whether `kind` is served, and if so whether it is namespaced.
    pub(super) fn scope(&self, kind: &str, pending_crds: &HashMap<String, bool>) -> Option<bool> {
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
    pub(super) fn resolve(&self, mut key: ObjectKey) -> ObjectKey {
        if key.namespace.is_none() && self.scope(&key.kind, &HashMap::new()) == Some(true) {
            key.namespace = Some("default".into());
        }
        key
    }

    /// Stores `value` at `key` as someone other than Brokkr would (a hand edit, an
    /// object made outside Brokkr): the fields Brokkr applied to it stay its own.
    pub(super) fn put_by_hand(&mut self, key: ObjectKey, value: Value) {
        let applied = self.objects.remove(&key).and_then(|s| s.applied);
        self.objects.insert(key, Stored { value, applied });
    }

    /// Applies `stamped` to the object at `key` as a forced server-side apply of
    /// Brokkr's would (see [`fields::apply`]); tells whether the object changed. The
    /// key is replaced too, so the object is addressed at the version last applied.
    pub(super) fn apply_fields(&mut self, key: ObjectKey, stamped: Value) -> bool {
        let previous = self.objects.remove(&key);
        let value = fields::apply(
            previous.as_ref().map(|s| &s.value),
            previous.as_ref().and_then(|s| s.applied.as_ref()),
            &stamped,
        );
        let changed = previous.is_none_or(|s| s.value != value);
        self.objects.insert(
            key,
            Stored {
                value,
                applied: Some(stamped),
            },
        );
        changed
    }

    /// The stack label of the live object at `key`: `None` if absent.
    pub(super) fn owner(&self, key: &ObjectKey) -> Option<Option<&str>> {
        self.objects
            .get(key)
            .map(|s| s.value.pointer(&label_pointer()).and_then(Value::as_str))
    }

    /// Checks one object against the cluster as it would be after `created` namespaces
    /// and `pending_crds` exist.
    pub(super) fn check(
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
    pub(super) fn plan(
        &self,
        stack: &StackRef,
        manifests: &[Manifest],
    ) -> applier::Result<Vec<Planned>> {
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
            let adopted = claim == Claim::Adopt
                || self
                    .inventories
                    .get(&stack.stack_id)
                    .is_some_and(|i| i.is_adopted(&key));
            if recreate && adopted {
                // Recreating deletes, and Brokkr never deletes what it did not create.
                return Err(applier::Error::Immutable {
                    object: key,
                    fields: changed,
                    message: "not recreated: the object was adopted".to_owned(),
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
    pub(super) fn immutable_changes(&self, key: &ObjectKey, manifest: &Manifest) -> Vec<String> {
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
    pub(super) fn dispose(
        &mut self,
        key: &ObjectKey,
        stack: StackId,
        adopted: bool,
    ) -> applier::Result<bool> {
        let stack = stack.to_string();
        if self.owner(key) != Some(Some(stack.as_str())) {
            return Ok(false);
        }
        match disposal(key, adopted) {
            Disposal::Release => {
                if let Some(stored) = self.objects.get_mut(key) {
                    // Brokkr no longer owns any field of it; everything else stays.
                    stored.applied = None;
                    if let Some(metadata) = stored.value.get_mut("metadata") {
                        strip(metadata, "labels", &[STACK_LABEL]);
                        strip(
                            metadata,
                            "annotations",
                            &[DEPLOYMENT_OBJECT_ANNOTATION, CHECKSUM_ANNOTATION],
                        );
                    }
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
    pub(super) fn delete(&mut self, key: &ObjectKey) {
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

pub(super) fn label_pointer() -> String {
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

pub(super) fn rejected(object: ObjectKey, reason: &str, message: &str) -> applier::Error {
    applier::Error::Rejected {
        object,
        reason: reason.to_owned(),
        message: message.to_owned(),
    }
}

/// The kind a CRD defines and whether it is namespaced.
pub(super) fn crd_kind(crd: &Value) -> Option<(String, bool)> {
    let kind = crd.pointer("/spec/names/kind")?.as_str()?.to_owned();
    let namespaced = crd.pointer("/spec/scope").and_then(Value::as_str) != Some("Cluster");
    Some((kind, namespaced))
}

/// The manifest with the stack's label and annotations added.
pub(super) fn stamped(manifest: &Manifest, stack: &StackRef, key: &ObjectKey) -> Value {
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
