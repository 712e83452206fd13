//! The emulated cluster's state: objects, the resource-version counter and the catalog
//! of served kinds, with the one write path every change goes through.
//!
//! Objects are keyed by group and kind, not version: like the real API server, one
//! object is visible at every served version of its kind (here without conversion, as a
//! CRD with `strategy: None` would be).
//!
//! Every write merges by field manager ([`ssa`](super::ssa)) and is validated
//! ([`validation`](super::validation)) before it is stored. Deletion, finalizers and
//! the namespace and CRD cascades live in [`lifecycle`]; what an apply body must
//! satisfy in [`admit`]; JSON merge patch in [`patch`]; a Secret's `stringData` in
//! [`secrets`].

mod admit;
mod lifecycle;
mod patch;
mod secrets;

use std::collections::BTreeMap;

use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::catalog::{Catalog, ResourceType};
use super::controller;
use super::fields::Part;
use super::selector::Selector;
use super::ssa;
use super::status::{ApiError, Cause};
use super::validation;

pub use lifecycle::Operator;
pub use patch::MergePatch;

const CRD_GROUP: &str = "apiextensions.k8s.io";
const CRD_KIND: &str = "CustomResourceDefinition";

/// Metadata only the server writes; what a client sends for these is dropped and
/// the stored value carried over. (`managedFields` is the write path's own business.)
const SERVER_METADATA: &[&str] = &[
    "uid",
    "creationTimestamp",
    "generation",
    "resourceVersion",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

/// The manager the emulator's helpers write status as, like a real controller.
pub const CONTROLLER_MANAGER: &str = "emulated-controller";

/// Where an object lives. Ordered like upstream lists: by namespace, then name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    pub group: String,
    pub kind: String,
    /// Empty for cluster-scoped objects.
    pub namespace: String,
    pub name: String,
}

impl Key {
    pub fn new(group: &str, kind: &str, namespace: Option<&str>, name: &str) -> Key {
        Key {
            group: group.to_owned(),
            kind: kind.to_owned(),
            namespace: namespace.unwrap_or_default().to_owned(),
            name: name.to_owned(),
        }
    }

    fn of(served: &ResourceType, namespace: Option<&str>, name: &str) -> Key {
        Key::new(&served.group, &served.kind, namespace, name)
    }

    fn namespace(name: &str) -> Key {
        Key::new("", "Namespace", None, name)
    }
}

#[derive(Debug, Clone)]
struct Stored {
    object: Value,
    /// A test set this status by hand: the built-in controller leaves it alone until
    /// the next spec change.
    status_pinned: bool,
}

/// How a write treats `status`.
enum StatusWrite {
    /// Keep the stored status (the built-in controller may then settle it).
    Keep,
    /// A test's status, pinned until the next spec change.
    Pin(Value),
}

/// The result of an apply: the object as stored (or as it would be, for a dry run).
pub struct Applied {
    pub object: Value,
    pub created: bool,
}

/// One server-side apply request, as the HTTP layer parsed it.
pub struct ApplyRequest<'a> {
    pub served: &'a ResourceType,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    pub body: Value,
    pub field_manager: &'a str,
    pub force: bool,
    pub dry_run: bool,
}

#[derive(Debug)]
pub struct Cluster {
    catalog: Catalog,
    objects: BTreeMap<Key, Stored>,
    last_resource_version: u64,
    /// While set, newly applied CRDs stay un-established (and their kinds unserved).
    hold_crds: bool,
    /// Emulated operators that clear a finalizer (see [`Operator`]).
    operators: Vec<Operator>,
    /// While set, the built-in controller writes status after every request about an
    /// object it looks after (see [`Cluster::churn`]).
    churn: bool,
    churn_writes: u64,
}

impl Default for Cluster {
    /// A cluster with the namespaces every real cluster starts with, and no nodes.
    fn default() -> Self {
        let mut cluster = Cluster {
            catalog: Catalog::default(),
            objects: BTreeMap::new(),
            last_resource_version: 0,
            hold_crds: false,
            operators: Vec::new(),
            churn: false,
            churn_writes: 0,
        };
        for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let namespace =
                json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name } });
            cluster.write(Key::namespace(name), namespace, StatusWrite::Keep, false);
        }
        cluster
    }
}

/// Now, as `metadata` timestamps are written (seconds, UTC).
pub fn now() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

impl Cluster {
    pub fn catalog(&self) -> &Catalog {
        &self.catalog
    }

    pub fn catalog_mut(&mut self) -> &mut Catalog {
        &mut self.catalog
    }

    /// The resource version a list is consistent with (the last change anywhere).
    pub fn resource_version(&self) -> String {
        self.last_resource_version.to_string()
    }

    /// Server-side apply: admission, the merge by field manager (see [`ssa`]),
    /// validation, then the write (or, for a dry run, what would be written).
    pub fn apply(&mut self, request: ApplyRequest<'_>) -> Result<Applied, ApiError> {
        let ApplyRequest {
            served,
            namespace,
            name,
            ..
        } = request;
        let key = Key::of(served, namespace, name);
        let live = self.objects.get(&key).map(|s| s.object.clone());
        let stored_version = live
            .as_ref()
            .map(|o| o["metadata"]["resourceVersion"].clone());
        let object = admit::admit(served, namespace, name, request.body, stored_version)?;
        if let Some(namespace) = namespace
            && !self.objects.contains_key(&Key::namespace(namespace))
        {
            return Err(ApiError::not_found("", "namespaces", namespace));
        }
        let created = live.is_none();
        if created {
            self.check_namespace_accepts(served, namespace, name)?;
        }
        if served.group == CRD_GROUP && served.kind == CRD_KIND {
            admit::crd_types(&object)
                .map_err(|why| ApiError::invalid(CRD_GROUP, CRD_KIND, name, why))?;
        }
        let now = now();
        let api_version = served.api_version();
        let mut merged = ssa::apply(
            live.as_ref(),
            &object,
            request.field_manager,
            &api_version,
            request.force,
            &now,
        )
        .map_err(|conflicts| conflict_error(&conflicts))?;
        // The server turns `stringData` into `data` on every write, so the applied
        // `stringData` never matches what is stored and every apply is a change: a new
        // resourceVersion and a new managedFields time, even when nothing else moved
        // (kubernetes/kubernetes#96841 and #118519).
        let rewritten = secrets::is_secret(served) && secrets::string_data_to_data(&mut merged);
        if rewritten {
            secrets::touch_entry(&mut merged, request.field_manager, &now);
        }
        let causes = validation::validate(&served.group, &served.kind, live.as_ref(), &merged);
        if !causes.is_empty() {
            return Err(ApiError::invalid_fields(
                &served.group,
                &served.kind,
                name,
                &causes,
            ));
        }
        let object = if request.dry_run {
            // As stored but not stored: a new object has no resource version yet, a
            // changed one still shows its current version.
            self.settle(&key, merged, StatusWrite::Keep).object
        } else {
            let stored = self.write(key, merged, StatusWrite::Keep, rewritten);
            self.collect();
            stored
        };
        Ok(Applied {
            object: at_version(object, served),
            created,
        })
    }

    pub fn get(&self, served: &ResourceType, namespace: Option<&str>, name: &str) -> Option<Value> {
        let stored = self.objects.get(&Key::of(served, namespace, name))?;
        Some(at_version(stored.object.clone(), served))
    }

    /// Objects of one kind, in one namespace or all, that the selector picks.
    pub fn list(
        &self,
        served: &ResourceType,
        namespace: Option<&str>,
        selector: &Selector,
    ) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|(key, _)| key.group == served.group && key.kind == served.kind)
            .filter(|(key, _)| namespace.is_none_or(|ns| key.namespace == ns))
            .filter(|(_, stored)| selector.matches(&labels(&stored.object)))
            .map(|(_, stored)| at_version(stored.object.clone(), served))
            .collect()
    }

    // --- The test's side door: no URL, no validation, same bookkeeping. ---

    pub fn object(&self, key: &Key) -> Option<Value> {
        self.objects.get(key).map(|s| s.object.clone())
    }

    pub fn objects_of(&self, group: &str, kind: &str) -> Vec<Value> {
        self.objects
            .iter()
            .filter(|(key, _)| key.group == group && key.kind == kind)
            .map(|(_, stored)| stored.object.clone())
            .collect()
    }

    /// An Update by `manager` (a hand edit, another controller): ownership of what
    /// changed moves to `manager`, see [`ssa::update`]. Editing `status` pins it;
    /// editing anything else runs the same bookkeeping as an apply. No validation: a
    /// test may build states the API would refuse. Returns false if there is no such
    /// object.
    pub fn update_as(
        &mut self,
        key: Key,
        manager: &str,
        api_version: &str,
        edit: impl FnOnce(&mut Value),
    ) -> bool {
        let Some(stored) = self.objects.get(&key) else {
            return false;
        };
        let old = stored.object.clone();
        let mut object = old.clone();
        edit(&mut object);
        let status = if object.get("status") == old.get("status") {
            StatusWrite::Keep
        } else {
            StatusWrite::Pin(object.get("status").cloned().unwrap_or(Value::Null))
        };
        let now = now();
        let object = ssa::update(&old, object, manager, api_version, Part::Main, &now);
        let object = ssa::update(&old, object, manager, api_version, Part::Status, &now);
        self.write(key, object, status, false);
        self.collect();
        true
    }

    /// A controller's status write (the `status` subresource): the resource version
    /// moves, spec and generation do not. Returns false if there is no such object.
    pub fn set_status(&mut self, key: Key, api_version: &str, status: Value) -> bool {
        let Some(stored) = self.objects.get(&key) else {
            return false;
        };
        let old = stored.object.clone();
        let mut object = old.clone();
        object["status"] = status.clone();
        let object = ssa::update(
            &old,
            object,
            CONTROLLER_MANAGER,
            api_version,
            Part::Status,
            &now(),
        );
        self.write(key, object, StatusWrite::Pin(status), false);
        true
    }

    /// Turns status churn on or off: while on, the built-in controller writes a new
    /// status (a `emulatorHeartbeat` counter on top of the settled one) to an object it
    /// looks after whenever a client has read or applied it, as a busy controller
    /// would between an agent's calls.
    pub fn set_churn(&mut self, on: bool) {
        self.churn = on;
    }

    /// After a request about `key`: one churned status write, if churn is on and the
    /// built-in controller looks after the kind.
    pub fn churn(&mut self, served: &ResourceType, namespace: Option<&str>, name: &str) {
        let key = Key::of(served, namespace, name);
        let Some(stored) = self.objects.get(&key) else {
            return;
        };
        if !self.churn || stored.object["metadata"]["deletionTimestamp"].is_string() {
            return;
        }
        let settled =
            controller::settled_status(&key.group, &key.kind, &stored.object, !self.hold_crds);
        let Some(mut status) = settled else {
            return;
        };
        self.churn_writes += 1;
        status["emulatorHeartbeat"] = json!(self.churn_writes);
        self.set_status(key, &served.api_version(), status);
    }

    /// Creates or replaces a node with the given capacity (all of it allocatable).
    pub fn put_node(&mut self, name: &str, cpu: &str, memory: &str) {
        let node = json!({
            "apiVersion": "v1",
            "kind": "Node",
            "metadata": {
                "name": name,
                "labels": { "kubernetes.io/hostname": name, "kubernetes.io/os": "linux" },
            },
            "spec": {},
        });
        let resources = json!({ "cpu": cpu, "memory": memory, "pods": "110" });
        let status = json!({
            "capacity": resources,
            "allocatable": resources,
            "conditions": [{ "type": "Ready", "status": "True", "reason": "KubeletReady" }],
        });
        self.write(
            Key::new("", "Node", None, name),
            node,
            StatusWrite::Pin(status),
            false,
        );
    }

    /// Holds CRD establishment back, or releases it: on release every held CRD becomes
    /// established and its kinds are served.
    pub fn hold_crds(&mut self, hold: bool) {
        self.hold_crds = hold;
        if hold {
            return;
        }
        let crds: Vec<Key> = self
            .objects
            .keys()
            .filter(|k| k.group == CRD_GROUP && k.kind == CRD_KIND)
            .cloned()
            .collect();
        for key in crds {
            let object = self.objects[&key].object.clone();
            self.write(key, object, StatusWrite::Keep, false);
        }
    }

    // --- The write path. ---

    /// Stores `object` under `key` with server metadata maintained, and returns it as
    /// stored. An unchanged object keeps its resource version unless `always_bump`.
    fn write(&mut self, key: Key, object: Value, status: StatusWrite, always_bump: bool) -> Value {
        let next = self.settle(&key, object, status);
        let unchanged = !always_bump
            && self
                .objects
                .get(&key)
                .is_some_and(|old| old.object == next.object);
        if !unchanged {
            let mut next = next;
            self.last_resource_version += 1;
            next.object["metadata"]["resourceVersion"] =
                json!(self.last_resource_version.to_string());
            self.objects.insert(key.clone(), next);
            if key.group == CRD_GROUP && key.kind == CRD_KIND {
                self.sync_crd(&key);
            }
        }
        self.objects[&key].object.clone()
    }

    /// What `object` becomes once stored, without storing it: server metadata carried
    /// over (or created), generation bumped on a spec change, status kept, pinned or
    /// settled by the built-in controller. The resource version is still the old one.
    fn settle(&self, key: &Key, mut object: Value, status: StatusWrite) -> Stored {
        let old = self.objects.get(key);
        let metadata = object["metadata"]
            .as_object_mut()
            .expect("admitted objects have metadata");
        for field in SERVER_METADATA {
            metadata.remove(*field);
        }
        let spec_changed = match old {
            Some(old) => {
                let old_meta = &old.object["metadata"];
                for field in SERVER_METADATA {
                    if let Some(value) = old_meta.get(*field).filter(|v| !v.is_null()) {
                        metadata.insert((*field).to_owned(), value.clone());
                    }
                }
                let generation = old_meta["generation"].as_i64().unwrap_or(1);
                let changed = spec_of(&old.object) != spec_of(&object);
                object["metadata"]["generation"] = json!(generation + i64::from(changed));
                changed
            }
            None => {
                metadata.insert("uid".to_owned(), json!(uuid::Uuid::new_v4().to_string()));
                metadata.insert(
                    "creationTimestamp".to_owned(),
                    json!(Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)),
                );
                metadata.insert("generation".to_owned(), json!(1));
                true
            }
        };
        let old_status = old.and_then(|o| o.object.get("status").cloned());
        let mut controller_write = None;
        let (new_status, status_pinned) = match status {
            StatusWrite::Pin(status) => (Some(status), true),
            StatusWrite::Keep if old.is_some_and(|o| o.status_pinned) && !spec_changed => {
                (old_status.clone(), true)
            }
            StatusWrite::Keep => {
                let settled =
                    controller::settled_status(&key.group, &key.kind, &object, !self.hold_crds);
                if settled.is_some() && settled != old_status {
                    controller_write = controller::status_manager(&key.group, &key.kind);
                }
                (settled.or(old_status.clone()), false)
            }
        };
        let before = with_status(object.clone(), old_status);
        let object = with_status(object, new_status);
        // The controller's status write is an Update of the status subresource under
        // its own field manager, as on a real cluster.
        let object = match controller_write {
            Some(manager) => {
                let api_version = object["apiVersion"].as_str().unwrap_or_default().to_owned();
                ssa::update(&before, object, manager, &api_version, Part::Status, &now())
            }
            None => object,
        };
        Stored {
            object,
            status_pinned,
        }
    }

    /// Serves a CRD's kinds exactly while its status says it is established.
    fn sync_crd(&mut self, key: &Key) {
        let crd = &self.objects[key].object;
        match admit::crd_types(crd) {
            Ok(types) if controller::is_established(crd) => {
                self.catalog.set_crd_types(&key.name, types)
            }
            _ => self.catalog.remove_crd_types(&key.name),
        }
    }
}

/// `object` with `status` set, or without one for `None` or `null`.
fn with_status(mut object: Value, status: Option<Value>) -> Value {
    if let Some(fields) = object.as_object_mut() {
        match status {
            Some(status) if !status.is_null() => fields.insert("status".to_owned(), status),
            _ => fields.remove("status"),
        };
    }
    object
}

/// The 409 of an apply that contests other managers' fields.
fn conflict_error(conflicts: &[ssa::Conflict]) -> ApiError {
    let causes: Vec<Cause> = conflicts
        .iter()
        .map(|c| Cause {
            reason: "FieldManagerConflict",
            message: format!("conflict with {}", c.manager),
            field: super::fields::display(&c.path),
        })
        .collect();
    ApiError::apply_conflict(ssa::conflict_message(conflicts), &causes)
}

/// Everything but metadata and status: what `metadata.generation` counts changes of.
fn spec_of(object: &Value) -> Map<String, Value> {
    let mut fields = object.as_object().cloned().unwrap_or_default();
    for field in ["metadata", "status", "apiVersion", "kind"] {
        fields.remove(field);
    }
    fields
}

fn labels(object: &Value) -> BTreeMap<String, String> {
    object["metadata"]["labels"]
        .as_object()
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect()
}

/// An object as seen through one served version of its kind.
fn at_version(mut object: Value, served: &ResourceType) -> Value {
    object["apiVersion"] = json!(served.api_version());
    object
}
