//! The emulated cluster's state: objects, the resource-version counter and the catalog
//! of served kinds, with the one write path every change goes through.
//!
//! Objects are keyed by group and kind, not version: like the real API server, one
//! object is visible at every served version of its kind (here without conversion, as a
//! CRD with `strategy: None` would be).

use std::collections::BTreeMap;

use chrono::{SecondsFormat, Utc};
use serde_json::{Map, Value, json};

use super::catalog::{Catalog, ResourceType};
use super::controller;
use super::selector::Selector;
use super::status::ApiError;

const CRD_GROUP: &str = "apiextensions.k8s.io";
const CRD_KIND: &str = "CustomResourceDefinition";

/// Metadata only the server writes; what a client sends for these is dropped.
const SERVER_METADATA: &[&str] = &[
    "uid",
    "creationTimestamp",
    "generation",
    "resourceVersion",
    "managedFields",
    "deletionTimestamp",
    "deletionGracePeriodSeconds",
    "selfLink",
];

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

#[derive(Debug)]
pub struct Cluster {
    catalog: Catalog,
    objects: BTreeMap<Key, Stored>,
    last_resource_version: u64,
    /// While set, newly applied CRDs stay un-established (and their kinds unserved).
    hold_crds: bool,
}

impl Default for Cluster {
    /// A cluster with the namespaces every real cluster starts with, and no nodes.
    fn default() -> Self {
        let mut cluster = Cluster {
            catalog: Catalog::default(),
            objects: BTreeMap::new(),
            last_resource_version: 0,
            hold_crds: false,
        };
        for name in ["default", "kube-system", "kube-public", "kube-node-lease"] {
            let namespace =
                json!({ "apiVersion": "v1", "kind": "Namespace", "metadata": { "name": name } });
            cluster.write(Key::namespace(name), namespace, StatusWrite::Keep);
        }
        cluster
    }
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

    /// Server-side apply, simplified: the applied object replaces the stored one, except
    /// for server-set metadata and `status`.
    pub fn apply(
        &mut self,
        served: &ResourceType,
        namespace: Option<&str>,
        name: &str,
        body: Value,
        dry_run: bool,
    ) -> Result<Applied, ApiError> {
        let key = Key::of(served, namespace, name);
        let stored_version = self
            .objects
            .get(&key)
            .map(|s| s.object["metadata"]["resourceVersion"].clone());
        let object = admit(served, namespace, name, body, stored_version)?;
        if let Some(namespace) = namespace
            && !self.objects.contains_key(&Key::namespace(namespace))
        {
            return Err(ApiError::not_found("", "namespaces", namespace));
        }
        if served.group == CRD_GROUP && served.kind == CRD_KIND {
            crd_types(&object).map_err(|why| ApiError::invalid(CRD_GROUP, CRD_KIND, name, why))?;
        }
        let created = !self.objects.contains_key(&key);
        let object = if dry_run {
            // As stored but not stored: a new object has no resource version yet, a
            // changed one still shows its current version.
            self.settle(&key, object, StatusWrite::Keep).object
        } else {
            self.write(key, object, StatusWrite::Keep)
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

    /// Removes an object and returns it. Deleting a namespace removes its contents and
    /// deleting a CRD its custom objects, at once (no finalizers, no Terminating phase).
    pub fn delete(
        &mut self,
        served: &ResourceType,
        namespace: Option<&str>,
        name: &str,
    ) -> Result<Value, ApiError> {
        let key = Key::of(served, namespace, name);
        let stored = self
            .objects
            .remove(&key)
            .ok_or_else(|| ApiError::not_found(&served.group, &served.plural, name))?;
        self.last_resource_version += 1;
        if key.group.is_empty() && key.kind == "Namespace" {
            self.objects.retain(|k, _| k.namespace != key.name);
        }
        if key.group == CRD_GROUP && key.kind == CRD_KIND {
            self.catalog.remove_crd_types(&key.name);
            let spec = &stored.object["spec"];
            let (group, kind) = (spec["group"].as_str(), spec["names"]["kind"].as_str());
            self.objects
                .retain(|k, _| Some(k.group.as_str()) != group || Some(k.kind.as_str()) != kind);
        }
        Ok(at_version(stored.object, served))
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

    /// A hand edit. Editing `status` pins it; editing anything else runs the same
    /// bookkeeping as an apply. Returns false if there is no such object.
    pub fn edit(&mut self, key: Key, edit: impl FnOnce(&mut Value)) -> bool {
        let Some(stored) = self.objects.get(&key) else {
            return false;
        };
        let mut object = stored.object.clone();
        edit(&mut object);
        let status = if object.get("status") == stored.object.get("status") {
            StatusWrite::Keep
        } else {
            StatusWrite::Pin(object.get("status").cloned().unwrap_or(Value::Null))
        };
        self.write(key, object, status);
        true
    }

    /// Returns false if there is no such object.
    pub fn set_status(&mut self, key: Key, status: Value) -> bool {
        let Some(stored) = self.objects.get(&key) else {
            return false;
        };
        let object = stored.object.clone();
        self.write(key, object, StatusWrite::Pin(status));
        true
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
            self.write(key, object, StatusWrite::Keep);
        }
    }

    // --- The write path. ---

    /// Stores `object` under `key` with server metadata maintained, and returns it as
    /// stored. An unchanged object keeps its resource version.
    fn write(&mut self, key: Key, object: Value, status: StatusWrite) -> Value {
        let next = self.settle(&key, object, status);
        let unchanged = self
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
                for field in ["uid", "creationTimestamp", "resourceVersion"] {
                    metadata.insert(field.to_owned(), old_meta[field].clone());
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
        let (new_status, status_pinned) = match status {
            StatusWrite::Pin(status) => (Some(status), true),
            StatusWrite::Keep if old.is_some_and(|o| o.status_pinned) && !spec_changed => {
                (old_status, true)
            }
            StatusWrite::Keep => {
                let settled =
                    controller::settled_status(&key.group, &key.kind, &object, !self.hold_crds);
                (settled.or(old_status), false)
            }
        };
        let fields = object
            .as_object_mut()
            .expect("admitted objects are JSON objects");
        match new_status {
            Some(status) if !status.is_null() => fields.insert("status".to_owned(), status),
            _ => fields.remove("status"),
        };
        Stored {
            object,
            status_pinned,
        }
    }

    /// Serves a CRD's kinds exactly while its status says it is established.
    fn sync_crd(&mut self, key: &Key) {
        let crd = &self.objects[key].object;
        match crd_types(crd) {
            Ok(types) if controller::is_established(crd) => {
                self.catalog.set_crd_types(&key.name, types)
            }
            _ => self.catalog.remove_crd_types(&key.name),
        }
    }
}

/// Checks an applied body against the URL it was sent to and strips what only the
/// server may set. Returns the object to store (without `status`).
fn admit(
    served: &ResourceType,
    namespace: Option<&str>,
    name: &str,
    body: Value,
    stored_version: Option<Value>,
) -> Result<Value, ApiError> {
    let Value::Object(mut fields) = body else {
        return Err(ApiError::bad_request(
            "the applied configuration must be a JSON object",
        ));
    };
    let expected = served.api_version();
    match fields.get("apiVersion").and_then(Value::as_str) {
        Some(found) if found == expected => {}
        found => {
            return Err(ApiError::bad_request(format!(
                "the API version in the data ({}) does not match the expected API version ({expected})",
                found.unwrap_or_default()
            )));
        }
    }
    match fields.get("kind").and_then(Value::as_str) {
        Some(found) if found == served.kind => {}
        found => {
            return Err(ApiError::bad_request(format!(
                "the kind in the data ({}) does not match the expected kind ({})",
                found.unwrap_or_default(),
                served.kind
            )));
        }
    }
    let metadata = fields
        .entry("metadata")
        .or_insert_with(|| Value::Object(Map::new()))
        .as_object_mut()
        .ok_or_else(|| ApiError::bad_request("metadata must be an object"))?;
    match metadata.get("name").and_then(Value::as_str) {
        Some(found) if found != name => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({found}) does not match the name on the URL ({name})"
            )));
        }
        _ => metadata.insert("name".to_owned(), json!(name)),
    };
    match (namespace, metadata.get("namespace").and_then(Value::as_str)) {
        (Some(url), Some(found)) if found != url => {
            return Err(ApiError::bad_request(
                "the namespace of the provided object does not match the namespace sent on the request",
            ));
        }
        (Some(url), _) => metadata.insert("namespace".to_owned(), json!(url)),
        (None, _) => metadata.remove("namespace"),
    };
    // A resourceVersion in an apply is a precondition, as upstream.
    if let (Some(sent), Some(stored)) = (metadata.get("resourceVersion"), stored_version)
        && *sent != stored
    {
        return Err(ApiError::conflict(&served.group, &served.plural, name));
    }
    fields.remove("status");
    Ok(Value::Object(fields))
}

/// The kinds a CRD defines, one per served version, or why the CRD is invalid.
fn crd_types(crd: &Value) -> Result<Vec<ResourceType>, String> {
    let spec = &crd["spec"];
    let required = |value: &Value, field: &str| {
        value
            .as_str()
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .ok_or_else(|| format!("{field}: Required value"))
    };
    let group = required(&spec["group"], "spec.group")?;
    let kind = required(&spec["names"]["kind"], "spec.names.kind")?;
    let plural = required(&spec["names"]["plural"], "spec.names.plural")?;
    let namespaced = match spec["scope"].as_str() {
        Some("Namespaced") => true,
        Some("Cluster") => false,
        _ => return Err("spec.scope: Unsupported value: must be Namespaced or Cluster".to_owned()),
    };
    let name = crd["metadata"]["name"].as_str().unwrap_or_default();
    if name != format!("{plural}.{group}") {
        return Err(format!(
            "metadata.name: Invalid value: \"{name}\": must be spec.names.plural+\".\"+spec.group"
        ));
    }
    let versions = spec["versions"].as_array().filter(|v| !v.is_empty());
    let versions = versions.ok_or_else(|| {
        "spec.versions: Invalid value: must have exactly one version marked as storage version"
            .to_owned()
    })?;
    let served = versions
        .iter()
        .filter(|v| v["served"] != false)
        .map(|v| {
            let version = required(&v["name"], "spec.versions[].name")?;
            Ok(ResourceType::new(
                &group, &version, &kind, &plural, namespaced,
            ))
        })
        .collect::<Result<Vec<_>, String>>()?;
    if versions.iter().filter(|v| v["storage"] == true).count() != 1 {
        return Err(
            "spec.versions: Invalid value: must have exactly one version marked as storage version"
                .to_owned(),
        );
    }
    Ok(served)
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
