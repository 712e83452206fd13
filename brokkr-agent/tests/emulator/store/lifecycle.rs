//! Deletion as the API server and its controllers do it: finalizers and
//! `deletionTimestamp`, Terminating namespaces and the CRD cleanup, all run
//! synchronously after every change (the emulator has no background controllers).
//!
//! - DELETE of an object with `metadata.finalizers` only marks it: `deletionTimestamp`
//!   and `deletionGracePeriodSeconds: 0` are set and it stays until a write empties
//!   its finalizers (`k8s.io/apiserver/pkg/registry/generic/registry/store.go`,
//!   `Delete` and `deletionFinalizersForGarbageCollection`).
//! - DELETE of a Namespace makes it Terminating (`spec.finalizers: [kubernetes]`,
//!   `status.phase: Terminating`); the namespace controller deletes what is in it
//!   (each object's finalizers respected) and removes the namespace once it is empty
//!   (`pkg/controller/namespace/deletion/namespaced_resources_deleter.go`). While it
//!   terminates, creating in it answers 403 (`NamespaceLifecycle` admission,
//!   `plugin/pkg/admission/namespace/lifecycle/admission.go`). `default`,
//!   `kube-system` and `kube-public` may never be deleted (same plugin,
//!   `immortalNamespaces`).
//! - DELETE of a CRD adds `customresourcecleanup.apiextensions.k8s.io` and marks it;
//!   its custom resources are deleted (finalizers respected) and the CRD goes once none
//!   is left (`apiextensions-apiserver/pkg/registry/customresourcedefinition/etcd.go`
//!   and `pkg/controller/finalizer/crd_finalizer.go`).

use serde_json::{Value, json};

use super::super::catalog::ResourceType;
use super::super::status::{ApiError, Cause};
use super::{CRD_GROUP, CRD_KIND, Cluster, Key, at_version, now};

/// Namespaces the API server refuses to delete.
const IMMORTAL_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public"];

const NAMESPACE_FINALIZER: &str = "kubernetes";
const CRD_FINALIZER: &str = "customresourcecleanup.apiextensions.k8s.io";

/// An emulated operator: while its Deployment exists (and is not being deleted), it
/// removes `finalizer` from custom resources that are being deleted, as a real
/// operator's cleanup would. Once the Deployment is gone, those resources stay
/// Terminating for good, as in a cluster where the operator was removed first.
#[derive(Debug, Clone)]
pub struct Operator {
    pub finalizer: String,
    pub namespace: String,
    pub deployment: String,
}

/// An upper bound on cascade rounds, far above any test's object count; the loop
/// normally ends as soon as a round changes nothing.
const MAX_ROUNDS: usize = 10_000;

impl Cluster {
    /// DELETE: removes the object at once, or (finalizers, a Namespace, a CRD) marks it
    /// as being deleted. Returns the object as the response shows it.
    pub fn delete(
        &mut self,
        served: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        let key = Key::of(served, namespace, name);
        let Some(stored) = self.objects.get(&key) else {
            return Err(ApiError::not_found(&served.group, &served.plural, name));
        };
        if is_namespace(&key) && IMMORTAL_NAMESPACES.contains(&name) {
            return Err(ApiError::forbidden_because(
                "",
                "namespaces",
                name,
                "this namespace may not be deleted",
                None,
            ));
        }
        let object = stored.object.clone();
        if is_deleting(&object) {
            return Ok(at_version(object, served));
        }
        let answer = self.delete_key(&key);
        self.collect();
        Ok(at_version(answer, served))
    }

    /// 403 if `namespace` is Terminating: nothing new may be created in it.
    pub(super) fn check_namespace_accepts(
        &self,
        served: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<(), ApiError> {
        let Some(namespace) = namespace else {
            return Ok(());
        };
        let terminating = self
            .objects
            .get(&Key::namespace(namespace))
            .is_some_and(|ns| is_deleting(&ns.object));
        if !terminating {
            return Ok(());
        }
        let why = format!(
            "unable to create new content in namespace {namespace} because it is being terminated"
        );
        let cause = Cause {
            reason: "NamespaceTerminating",
            message: why.clone(),
            field: "metadata.namespace".to_owned(),
        };
        Err(ApiError::forbidden_because(
            &served.group,
            &served.plural,
            name,
            &why,
            Some(cause),
        ))
    }

    /// Registers an emulated operator.
    pub fn add_operator(&mut self, operator: Operator) {
        self.operators.push(operator);
        self.collect();
    }

    /// Removes one finalizer (as its controller would) and lets the deletion proceed.
    /// Returns false if there is no such object.
    pub fn remove_finalizer(&mut self, key: &Key, finalizer: &str) -> bool {
        if !self.objects.contains_key(key) {
            return false;
        }
        self.drop_finalizer(key, |f| f == finalizer);
        self.collect();
        true
    }

    /// Deletes `key` as a DELETE would (no checks) and returns what the response shows:
    /// the object marked as being deleted, or as it was before removal.
    fn delete_key(&mut self, key: &Key) -> Value {
        let object = self.objects[key].object.clone();
        if is_namespace(key) {
            self.mark_deleting(key, |ns| {
                set_spec_finalizers(ns, json!([NAMESPACE_FINALIZER]));
                ns["status"] = json!({ "phase": "Terminating" });
            })
        } else if is_crd(key) {
            self.mark_deleting(key, |crd| {
                add_finalizer(crd, CRD_FINALIZER);
                if let Some(conditions) = crd["status"]["conditions"].as_array_mut() {
                    conditions.push(json!({
                        "type": "Terminating", "status": "True", "reason": "InstanceDeletionPending",
                        "message": "CustomResourceDefinition marked for deletion; CustomResource deletion will begin soon",
                    }));
                }
            })
        } else if finalizers(&object).is_empty() {
            self.remove_object(key);
            object
        } else {
            self.mark_deleting(key, |_| {})
        }
    }

    /// Sets `deletionTimestamp` (and whatever `also` adds), with a new resource version;
    /// the status is pinned so the built-in controller does not undo a phase.
    fn mark_deleting(&mut self, key: &Key, also: impl FnOnce(&mut Value)) -> Value {
        let next = self.next_resource_version();
        let stored = self.objects.get_mut(key).expect("caller checked the key");
        let metadata = &mut stored.object["metadata"];
        metadata["deletionTimestamp"] = json!(now());
        metadata["deletionGracePeriodSeconds"] = json!(0);
        metadata["resourceVersion"] = json!(next);
        also(&mut stored.object);
        stored.status_pinned = true;
        stored.object.clone()
    }

    fn drop_finalizer(&mut self, key: &Key, matches: impl Fn(&str) -> bool) {
        let next = self.next_resource_version();
        let Some(stored) = self.objects.get_mut(key) else {
            return;
        };
        let Some(list) = stored.object["metadata"]["finalizers"].as_array_mut() else {
            return;
        };
        let before = list.len();
        list.retain(|f| !f.as_str().is_some_and(&matches));
        if list.len() != before {
            stored.object["metadata"]["resourceVersion"] = json!(next);
        }
    }

    fn next_resource_version(&mut self) -> String {
        self.last_resource_version += 1;
        self.last_resource_version.to_string()
    }

    fn remove_object(&mut self, key: &Key) {
        self.objects.remove(key);
        self.last_resource_version += 1;
        if is_crd(key) {
            self.catalog.remove_crd_types(&key.name);
        }
    }

    /// Runs the deletion machinery until nothing moves: namespace and CRD cascades,
    /// operators clearing finalizers, and removal of marked objects whose finalizers
    /// are gone.
    pub(super) fn collect(&mut self) {
        for _ in 0..MAX_ROUNDS {
            if !self.collect_round() {
                return;
            }
        }
    }

    fn collect_round(&mut self) -> bool {
        let deleting: Vec<Key> = self
            .objects
            .iter()
            .filter(|(_, s)| is_deleting(&s.object))
            .map(|(k, _)| k.clone())
            .collect();
        let mut moved = false;
        for owner in &deleting {
            let contents = self.contents(owner);
            let pending: Vec<Key> = contents
                .iter()
                .filter(|k| !is_deleting(&self.objects[*k].object))
                .cloned()
                .collect();
            for key in &pending {
                self.delete_key(key);
                moved = true;
            }
            // The namespace controller and the CRD finalizer drop their finalizer once
            // nothing is left.
            if contents.is_empty() && is_namespace(owner) {
                let ns = &self.objects[owner].object;
                if !ns["spec"]["finalizers"]
                    .as_array()
                    .is_none_or(Vec::is_empty)
                {
                    let next = self.next_resource_version();
                    let stored = self.objects.get_mut(owner).expect("listed above");
                    set_spec_finalizers(&mut stored.object, json!([]));
                    stored.object["metadata"]["resourceVersion"] = json!(next);
                    moved = true;
                }
            }
            if contents.is_empty() && is_crd(owner) {
                let had = finalizers(&self.objects[owner].object).contains(&CRD_FINALIZER);
                if had {
                    self.drop_finalizer(owner, |f| f == CRD_FINALIZER);
                    moved = true;
                }
            }
        }
        for operator in self.operators.clone() {
            let deployment = Key::new(
                "apps",
                "Deployment",
                Some(&operator.namespace),
                &operator.deployment,
            );
            let running = self
                .objects
                .get(&deployment)
                .is_some_and(|d| !is_deleting(&d.object));
            if !running {
                continue;
            }
            for key in &deleting {
                let object = &self.objects[key].object;
                if self.is_custom(key) && finalizers(object).contains(&operator.finalizer.as_str())
                {
                    self.drop_finalizer(key, |f| f == operator.finalizer);
                    moved = true;
                }
            }
        }
        for key in &deleting {
            let Some(stored) = self.objects.get(key) else {
                continue;
            };
            let object = &stored.object;
            let spec_done = !is_namespace(key)
                || object["spec"]["finalizers"]
                    .as_array()
                    .is_none_or(Vec::is_empty);
            if finalizers(object).is_empty() && spec_done {
                self.remove_object(key);
                moved = true;
            }
        }
        moved
    }

    /// What deleting `owner` must delete first: a namespace's objects, a CRD's custom
    /// resources.
    fn contents(&self, owner: &Key) -> Vec<Key> {
        if is_namespace(owner) {
            return self
                .objects
                .keys()
                .filter(|k| k.namespace == owner.name)
                .cloned()
                .collect();
        }
        if is_crd(owner) {
            let spec = &self.objects[owner].object["spec"];
            let (group, kind) = (spec["group"].as_str(), spec["names"]["kind"].as_str());
            return self
                .objects
                .keys()
                .filter(|k| Some(k.group.as_str()) == group && Some(k.kind.as_str()) == kind)
                .cloned()
                .collect();
        }
        Vec::new()
    }

    /// Whether a stored CRD defines this object's kind.
    fn is_custom(&self, key: &Key) -> bool {
        self.objects.iter().any(|(k, s)| {
            is_crd(k)
                && s.object["spec"]["group"] == key.group.as_str()
                && s.object["spec"]["names"]["kind"] == key.kind.as_str()
        })
    }
}

fn is_namespace(key: &Key) -> bool {
    key.group.is_empty() && key.kind == "Namespace"
}

fn is_crd(key: &Key) -> bool {
    key.group == CRD_GROUP && key.kind == CRD_KIND
}

pub fn is_deleting(object: &Value) -> bool {
    object["metadata"]["deletionTimestamp"].is_string()
}

fn finalizers(object: &Value) -> Vec<&str> {
    object["metadata"]["finalizers"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

/// `spec.finalizers` of a Namespace; a `spec` that is not a map (nothing validates a
/// Namespace's spec here) is replaced rather than panicked on.
fn set_spec_finalizers(namespace: &mut Value, finalizers: Value) {
    let path = ["spec".to_owned(), "finalizers".to_owned()];
    super::super::fields::set(namespace, &path, finalizers);
}

fn add_finalizer(object: &mut Value, finalizer: &str) {
    if finalizers(object).contains(&finalizer) {
        return;
    }
    match object["metadata"]["finalizers"].as_array_mut() {
        Some(list) => list.push(json!(finalizer)),
        None => object["metadata"]["finalizers"] = json!([finalizer]),
    }
}
