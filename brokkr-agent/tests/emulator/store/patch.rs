//! JSON merge patch (`application/merge-patch+json`, RFC 7386) on an existing object:
//! an Update operation, recorded in `managedFields` like any other write by its field
//! manager. `null` removes a key; a list is replaced whole.

use serde_json::Value;

use super::super::catalog::ResourceType;
use super::super::fields::Part;
use super::super::ssa;
use super::super::status::ApiError;
use super::super::validation;
use super::{Cluster, Key, StatusWrite, at_version, now};

/// One merge-patch request, as the HTTP layer parsed it.
pub struct MergePatch<'a> {
    pub served: &'a ResourceType,
    pub namespace: Option<&'a str>,
    pub name: &'a str,
    pub patch: Value,
    pub field_manager: &'a str,
    pub dry_run: bool,
}

impl Cluster {
    /// Patches a stored object. 404 if there is none (a merge patch never creates),
    /// 409 if the patch names another `metadata.resourceVersion`, 422 if the result is
    /// invalid. The main resource's `status` and server-owned metadata are not the
    /// patch's to change.
    pub fn merge_patch(&mut self, request: MergePatch<'_>) -> Result<Value, ApiError> {
        let MergePatch {
            served,
            namespace,
            name,
            ..
        } = request;
        let key = Key::of(served, namespace, name);
        let Some(stored) = self.objects.get(&key) else {
            return Err(ApiError::not_found(&served.group, &served.plural, name));
        };
        let old = stored.object.clone();
        if !request.patch.is_object() {
            return Err(ApiError::bad_request(
                "a merge patch on an object must be a JSON object",
            ));
        }
        let precondition = &request.patch["metadata"]["resourceVersion"];
        if !precondition.is_null() && *precondition != old["metadata"]["resourceVersion"] {
            return Err(ApiError::conflict(&served.group, &served.plural, name));
        }
        let mut object = old.clone();
        merge(&mut object, &request.patch);
        for field in ["apiVersion", "kind", "status"] {
            restore(&mut object, &old, &[field]);
        }
        for field in ["name", "namespace", "uid", "managedFields"] {
            restore(&mut object, &old, &["metadata", field]);
        }
        let object = ssa::update(
            &old,
            object,
            request.field_manager,
            &served.api_version(),
            Part::Main,
            &now(),
        );
        let causes = validation::validate(&served.group, &served.kind, Some(&old), &object);
        if !causes.is_empty() {
            return Err(ApiError::invalid_fields(
                &served.group,
                &served.kind,
                name,
                &causes,
            ));
        }
        let object = if request.dry_run {
            self.settle(&key, object, StatusWrite::Keep).object
        } else {
            let stored = self.write(key, object, StatusWrite::Keep, false);
            self.collect();
            stored
        };
        Ok(at_version(object, served))
    }
}

/// RFC 7386: objects merge key by key, `null` deletes, anything else replaces.
fn merge(target: &mut Value, patch: &Value) {
    let Value::Object(changes) = patch else {
        *target = patch.clone();
        return;
    };
    if !target.is_object() {
        *target = Value::Object(Default::default());
    }
    let fields = target.as_object_mut().expect("just made an object");
    for (key, change) in changes {
        if change.is_null() {
            fields.remove(key);
        } else {
            merge(fields.entry(key.clone()).or_insert(Value::Null), change);
        }
    }
}

/// Puts `old`'s value at `path` back into `object` (or removes it if `old` has none).
fn restore(object: &mut Value, old: &Value, path: &[&str]) {
    let path: Vec<String> = path.iter().map(|s| (*s).to_owned()).collect();
    match super::super::fields::get(old, &path) {
        Some(value) => super::super::fields::set(object, &path, value.clone()),
        None => super::super::fields::remove(object, &path),
    }
}
