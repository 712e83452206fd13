//! Whether an apply changed anything Brokkr manages: the fields the `brokkr` field
//! manager owns, as its `managedFields` entry lists them, compared before and after.
//!
//! The `resourceVersion` is no measure: it moves on every status write (a controller
//! between the agent's read and its apply), and on some applies that change nothing
//! (a Secret with `stringData`, StatefulSets with `volumeClaimTemplates`). Fields other
//! managers own (an HPA's replicas, a controller's annotations) are theirs to change.
//!
//! `fieldsV1` is a trie of the owned fields (Kubernetes
//! `staging/src/k8s.io/apimachinery/pkg/util/managedfields`, structured-merge-diff's
//! `fieldpath` serialisation): `f:<name>` a map field, `k:<json>` the list element
//! whose key fields have those values, `v:<json>` a set element, `i:<n>` a list
//! index, and `.` the element itself. When the server records no entry for `brokkr`,
//! the whole object is compared instead, without `status` and server-set metadata.

use brokkr_core::applier::FIELD_MANAGER;
use kube::api::DynamicObject;
use serde_json::{Map, Value};

/// Metadata the server writes on its own; never Brokkr's change.
const SERVER_METADATA: [&str; 6] = [
    "resourceVersion",
    "generation",
    "managedFields",
    "uid",
    "creationTimestamp",
    "selfLink",
];

/// Whether applying turned `before` (`None`: absent) into a different `after`, as far
/// as the fields Brokkr applies go.
pub(crate) fn changed(before: Option<&DynamicObject>, after: &DynamicObject) -> bool {
    let Some(before) = before else {
        return true;
    };
    let (Ok(before_value), Ok(after_value)) =
        (serde_json::to_value(before), serde_json::to_value(after))
    else {
        // Cannot be read as JSON (it was just received as JSON): say changed, the
        // safe side of a report.
        return true;
    };
    match owned_fields(after) {
        Some(fields) => project(&before_value, fields) != project(&after_value, fields),
        None => comparable(before_value) != comparable(after_value),
    }
}

/// The `fieldsV1` of the `brokkr` apply entry.
fn owned_fields(object: &DynamicObject) -> Option<&Value> {
    object
        .metadata
        .managed_fields
        .as_ref()?
        .iter()
        .find(|entry| {
            entry.manager.as_deref() == Some(FIELD_MANAGER)
                && entry.operation.as_deref() == Some("Apply")
        })?
        .fields_v1
        .as_ref()
        .map(|fields| &fields.0)
}

/// The parts of `value` that `fields` names, keyed by their `fieldsV1` keys, so two
/// projections compare equal exactly when the owned fields hold the same values.
fn project(value: &Value, fields: &Value) -> Value {
    let Some(fields) = fields.as_object().filter(|f| f.keys().any(|k| k != ".")) else {
        // A leaf: the field is owned whole.
        return value.clone();
    };
    let mut projection = Map::new();
    for (path, children) in fields {
        let part = if let Some(name) = path.strip_prefix("f:") {
            value.get(name).map(|child| project(child, children))
        } else if let Some(key) = path.strip_prefix("k:") {
            element_by_key(value, key).map(|child| project(child, children))
        } else if let Some(member) = path.strip_prefix("v:") {
            let member: Option<Value> = serde_json::from_str(member).ok();
            let present = value
                .as_array()
                .is_some_and(|items| member.is_some_and(|m| items.contains(&m)));
            Some(Value::Bool(present))
        } else if let Some(index) = path.strip_prefix("i:") {
            index
                .parse::<usize>()
                .ok()
                .and_then(|i| value.get(i))
                .map(|child| project(child, children))
        } else {
            continue;
        };
        projection.insert(path.clone(), part.unwrap_or(Value::Null));
    }
    Value::Object(projection)
}

/// The element of the list `value` whose fields match the JSON object `key`
/// (`{"name":"app"}`; `{"containerPort":80,"protocol":"TCP"}`).
fn element_by_key<'v>(value: &'v Value, key: &str) -> Option<&'v Value> {
    let key: Map<String, Value> = serde_json::from_str(key).ok()?;
    value.as_array()?.iter().find(|item| {
        key.iter()
            .all(|(field, wanted)| item.get(field) == Some(wanted))
    })
}

/// `object` without what only the server writes.
fn comparable(mut object: Value) -> Value {
    if let Some(map) = object.as_object_mut() {
        map.remove("status");
        if let Some(metadata) = map.get_mut("metadata").and_then(Value::as_object_mut) {
            for field in SERVER_METADATA {
                metadata.remove(field);
            }
        }
    }
    object
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn object(value: Value) -> DynamicObject {
        serde_json::from_value(value).unwrap()
    }

    /// A Deployment as the server returns it, `brokkr` owning replicas and the image of
    /// container `app`, someone else owning an annotation.
    fn deployment(replicas: i64, image: &str, note: &str, resource_version: &str) -> DynamicObject {
        object(json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "shop", "resourceVersion": resource_version,
                "annotations": {"note": note},
                "managedFields": [
                    {"manager": FIELD_MANAGER, "operation": "Apply", "apiVersion": "apps/v1",
                     "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {},
                        "f:template": {"f:spec": {"f:containers": {"k:{\"name\":\"app\"}": {".": {}, "f:name": {}, "f:image": {}}}}}}}},
                    {"manager": "kubectl-edit", "operation": "Update", "apiVersion": "apps/v1",
                     "fieldsType": "FieldsV1", "fieldsV1": {"f:metadata": {"f:annotations": {"f:note": {}}}}}
                ]},
            "spec": {"replicas": replicas, "template": {"spec": {"containers": [
                {"name": "sidecar", "image": "other:1"},
                {"name": "app", "image": image}]}}},
            "status": {"readyReplicas": 1}
        }))
    }

    #[test]
    fn only_fields_brokkr_owns_count() {
        let before = deployment(2, "web:1", "a", "10");
        assert!(
            !changed(Some(&before), &deployment(2, "web:1", "a", "11")),
            "a bare resourceVersion bump"
        );
        assert!(
            !changed(Some(&before), &deployment(2, "web:1", "b", "12")),
            "someone else's field"
        );
        let mut status_written = deployment(2, "web:1", "a", "13");
        status_written.data["status"] = json!({"readyReplicas": 0});
        assert!(!changed(Some(&before), &status_written), "a status write");
        assert!(
            changed(Some(&before), &deployment(3, "web:1", "a", "14")),
            "replicas put back"
        );
        assert!(
            changed(Some(&before), &deployment(2, "web:2", "a", "15")),
            "the image put back"
        );
        assert!(changed(None, &before), "created");
    }

    #[test]
    fn without_managed_fields_the_object_less_server_fields_is_compared() {
        let secret = |rv: &str, data: &str| {
            object(json!({"apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "s", "namespace": "n", "resourceVersion": rv},
                "data": {"k": data}}))
        };
        assert!(!changed(Some(&secret("1", "dg==")), &secret("2", "dg==")));
        assert!(changed(Some(&secret("1", "dg==")), &secret("2", "dw==")));
    }

    #[test]
    fn set_members_and_indexes_are_projected() {
        let fields = json!({"f:finalizers": {"v:\"a\"": {}}, "f:args": {"i:1": {}}});
        let one = json!({"finalizers": ["a", "b"], "args": ["x", "y"]});
        let two = json!({"finalizers": ["b"], "args": ["x", "z"]});
        let three = json!({"finalizers": ["a"], "args": ["q", "y"]});
        assert_ne!(project(&one, &fields), project(&two, &fields));
        assert_eq!(project(&one, &fields), project(&three, &fields));
    }
}
