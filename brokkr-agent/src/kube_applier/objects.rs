//! Turning a manifest into the object Brokkr sends: its namespace resolved, stamped
//! with the stack's label and the deployment object's annotations. Pure functions.

use brokkr_core::applier::{
    CHECKSUM_ANNOTATION, DEPLOYMENT_OBJECT_ANNOTATION, Error, STACK_LABEL, StackRef,
};
use brokkr_core::{Manifest, ObjectKey};
use kube::api::DynamicObject;
use serde_json::{Map, Value};

use super::errors::invalid;

/// Metadata the API server sets. Copied from `kubectl get -o yaml` into a manifest,
/// they would make server-side apply fail (a stale `resourceVersion` is a conflict) or
/// mean nothing, so they are dropped.
const SERVER_SET_METADATA: [&str; 7] = [
    "resourceVersion",
    "uid",
    "creationTimestamp",
    "generation",
    "managedFields",
    "selfLink",
    "deletionTimestamp",
];

/// The identity the object will have in the cluster: a namespaced object without a
/// namespace gets `default_namespace`; a cluster-scoped object must name none.
pub(crate) fn target_key(
    manifest: &Manifest,
    namespaced: bool,
    default_namespace: &str,
) -> Result<ObjectKey, Error> {
    let mut key = manifest.key();
    match (&key.namespace, namespaced) {
        (None, true) => key.namespace = Some(default_namespace.to_owned()),
        (Some(namespace), false) => {
            return Err(invalid(
                &key,
                format!(
                    "{} is cluster-scoped and cannot have a namespace (found {namespace:?})",
                    key.kind
                ),
            ));
        }
        _ => {}
    }
    Ok(key)
}

/// The object to apply for `manifest` at `key`: its namespace set, server-set metadata
/// dropped, and the stack's label and annotations merged into its own.
pub(crate) fn stamped(
    manifest: &Manifest,
    key: &ObjectKey,
    stack: &StackRef,
) -> Result<DynamicObject, Error> {
    let mut value = manifest.as_value().clone();
    let metadata = value
        .get_mut("metadata")
        .and_then(Value::as_object_mut)
        .ok_or_else(|| invalid(key, "metadata is not a mapping"))?;
    for field in SERVER_SET_METADATA {
        metadata.remove(field);
    }
    match &key.namespace {
        Some(namespace) => {
            metadata.insert("namespace".to_owned(), Value::from(namespace.as_str()));
        }
        None => {
            metadata.remove("namespace");
        }
    }
    merge_into(
        metadata,
        "labels",
        key,
        [(STACK_LABEL, stack.stack_id.to_string())],
    )?;
    merge_into(
        metadata,
        "annotations",
        key,
        [
            (
                DEPLOYMENT_OBJECT_ANNOTATION,
                stack.deployment_object_id.to_string(),
            ),
            (CHECKSUM_ANNOTATION, stack.checksum.clone()),
        ],
    )?;
    serde_json::from_value(value).map_err(|e| invalid(key, format!("invalid metadata: {e}")))
}

/// Sets `entries` in the string map `metadata[field]`, creating it if absent.
fn merge_into<const N: usize>(
    metadata: &mut Map<String, Value>,
    field: &str,
    key: &ObjectKey,
    entries: [(&str, String); N],
) -> Result<(), Error> {
    let slot = metadata.entry(field).or_insert(Value::Null);
    // Kubernetes reads a null field as an absent one.
    if slot.is_null() {
        *slot = Value::Object(Map::new());
    }
    let Value::Object(map) = slot else {
        return Err(invalid(key, format!("metadata.{field} is not a mapping")));
    };
    for (name, value) in entries {
        map.insert(name.to_owned(), Value::String(value));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use brokkr_core::{DeploymentObjectId, StackId};
    use serde_json::json;

    use super::*;

    fn stack() -> StackRef {
        StackRef {
            stack_id: StackId::new(),
            deployment_object_id: DeploymentObjectId::new(),
            checksum: "c0ffee".into(),
            policy: Default::default(),
        }
    }

    fn manifest(value: Value) -> Manifest {
        Manifest::from_value(value).unwrap()
    }

    #[test]
    fn namespaced_objects_get_the_default_namespace() {
        let cm =
            manifest(json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}}));
        assert_eq!(
            target_key(&cm, true, "apps").unwrap().namespace.as_deref(),
            Some("apps")
        );
        let cm = manifest(
            json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "own"}}),
        );
        assert_eq!(
            target_key(&cm, true, "apps").unwrap().namespace.as_deref(),
            Some("own")
        );
    }

    #[test]
    fn cluster_scoped_objects_must_not_name_a_namespace() {
        let ns =
            manifest(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "n"}}));
        assert_eq!(target_key(&ns, false, "apps").unwrap().namespace, None);
        let role = manifest(
            json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "ClusterRole",
            "metadata": {"name": "r", "namespace": "apps"}}),
        );
        match target_key(&role, false, "apps") {
            Err(Error::Rejected {
                reason, message, ..
            }) => {
                assert_eq!(reason, "Invalid");
                assert!(message.contains("cluster-scoped"), "{message}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn stamps_merge_with_the_manifests_own_metadata() {
        let stack = stack();
        let cm = manifest(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "labels": {"app": "web", STACK_LABEL: "forged"},
                         "annotations": {"note": "kept"}, "resourceVersion": "42", "uid": "u"},
            "data": {"k": "v"}}));
        let key = target_key(&cm, true, "apps").unwrap();
        let object = stamped(&cm, &key, &stack).unwrap();
        let labels = object.metadata.labels.unwrap();
        assert_eq!(labels["app"], "web");
        assert_eq!(labels[STACK_LABEL], stack.stack_id.to_string());
        let annotations = object.metadata.annotations.unwrap();
        assert_eq!(annotations["note"], "kept");
        assert_eq!(
            annotations[DEPLOYMENT_OBJECT_ANNOTATION],
            stack.deployment_object_id.to_string()
        );
        assert_eq!(annotations[CHECKSUM_ANNOTATION], "c0ffee");
        assert_eq!(object.metadata.namespace.as_deref(), Some("apps"));
        assert_eq!(object.metadata.resource_version, None);
        assert_eq!(object.metadata.uid, None);
        assert_eq!(object.data["data"], json!({"k": "v"}));
        let types = object.types.unwrap();
        assert_eq!(
            (types.api_version.as_str(), types.kind.as_str()),
            ("v1", "ConfigMap")
        );
    }

    #[test]
    fn malformed_labels_are_rejected() {
        let cm = manifest(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "labels": ["not", "a", "map"]}}));
        let key = target_key(&cm, true, "apps").unwrap();
        assert!(matches!(
            stamped(&cm, &key, &stack()),
            Err(Error::Rejected { .. })
        ));
        let cm = manifest(json!({"apiVersion": "v1", "kind": "ConfigMap",
            "metadata": {"name": "c", "labels": {"n": 1}}}));
        assert!(matches!(
            stamped(&cm, &key, &stack()),
            Err(Error::Rejected { .. })
        ));
    }
}
