//! The validation a write must pass, where a lenient emulator would hide a failure
//! the agent must handle: immutable fields, size limits, label syntax, and no new
//! finalizers on an object being deleted. Each failure is one [`Cause`]; the caller
//! answers 422 with all of them, for a dry run as for a real write.
//!
//! Sources (`kubernetes/kubernetes` unless named):
//! - metadata: `k8s.io/apimachinery/pkg/api/validation/objectmeta.go`
//!   (`ValidateAnnotations`, `TotalAnnotationSizeLimitB` = 256 KiB,
//!   `ValidateObjectMetaUpdate` for finalizers), `k8s.io/apimachinery/pkg/apis/meta/
//!   v1/validation/validation.go` (`ValidateLabels`), `k8s.io/apimachinery/pkg/util/
//!   validation/validation.go` (`IsQualifiedName`, `IsValidLabelValue`);
//! - `pkg/apis/core/validation/validation.go`: `ValidateConfigMap` and `ValidateSecret`
//!   (1 MiB, `MaxSecretSize`), `ValidateConfigMapUpdate` / `ValidateSecretUpdate`
//!   (`immutable`), `ValidatePersistentVolumeClaimUpdate`, `ValidateServiceUpdate`;
//! - `pkg/apis/apps/validation/validation.go` (selectors, `ValidateStatefulSetUpdate`),
//!   `pkg/apis/batch/validation/validation.go` (Job selector and template),
//!   `pkg/apis/rbac/validation/validation.go` (`roleRef`).

use serde_json::Value;

use super::status::Cause;

/// `MaxSecretSize`, also the ConfigMap limit.
const MAX_DATA_BYTES: usize = 1024 * 1024;
/// `TotalAnnotationSizeLimitB`.
const MAX_ANNOTATION_BYTES: usize = 256 * 1024;
const MAX_NAME_PART: usize = 63;
const MAX_PREFIX: usize = 253;

const IMMUTABLE: &str = "field is immutable";
const IMMUTABLE_WHEN_SET: &str = "field is immutable when `immutable` is set";

/// Every reason `new` (replacing `old`, if any) is invalid.
pub fn validate(group: &str, kind: &str, old: Option<&Value>, new: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    metadata(new, &mut causes);
    match (group, kind) {
        ("", "ConfigMap") => {
            let size = string_bytes(&new["data"]) + binary_bytes(&new["binaryData"]);
            if size > MAX_DATA_BYTES {
                causes.push(Cause::too_long("[]", MAX_DATA_BYTES));
            }
        }
        ("", "Secret") if binary_bytes(&new["data"]) > MAX_DATA_BYTES => {
            causes.push(Cause::too_long("data", MAX_DATA_BYTES));
        }
        _ => {}
    }
    if let Some(old) = old {
        immutable_fields(group, kind, old, new, &mut causes);
        finalizers_while_deleting(old, new, &mut causes);
    }
    causes
}

fn metadata(object: &Value, causes: &mut Vec<Cause>) {
    let labels = object["metadata"]["labels"].as_object();
    for (key, value) in labels.into_iter().flatten() {
        for why in qualified_name(key) {
            causes.push(Cause::invalid(
                "metadata.labels",
                &Value::from(key.as_str()),
                &why,
            ));
        }
        let value = value.as_str().unwrap_or_default();
        for why in label_value(value) {
            causes.push(Cause::invalid("metadata.labels", &Value::from(value), &why));
        }
    }
    let annotations = object["metadata"]["annotations"].as_object();
    let mut total = 0;
    for (key, value) in annotations.into_iter().flatten() {
        for why in qualified_name(&key.to_lowercase()) {
            causes.push(Cause::invalid(
                "metadata.annotations",
                &Value::from(key.as_str()),
                &why,
            ));
        }
        total += key.len() + value.as_str().map_or(0, str::len);
    }
    if total > MAX_ANNOTATION_BYTES {
        causes.push(Cause::too_long(
            "metadata.annotations",
            MAX_ANNOTATION_BYTES,
        ));
    }
}

/// `IsQualifiedName`: `[prefix/]name`, the prefix a DNS subdomain.
fn qualified_name(key: &str) -> Vec<String> {
    let mut errors = Vec::new();
    let (prefix, name) = match key.split('/').collect::<Vec<_>>().as_slice() {
        [name] => (None, *name),
        [prefix, name] => (Some(*prefix), *name),
        _ => {
            errors.push(
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.', \
                 and must start and end with an alphanumeric character, with an optional \
                 DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
                    .to_owned(),
            );
            return errors;
        }
    };
    if let Some(prefix) = prefix {
        if prefix.is_empty() {
            errors.push("prefix part must be non-empty".to_owned());
        } else if prefix.len() > MAX_PREFIX {
            errors.push(format!(
                "prefix part must be no more than {MAX_PREFIX} characters"
            ));
        } else if !is_dns_subdomain(prefix) {
            errors.push(
                "prefix part a lowercase RFC 1123 subdomain must consist of lower case \
                 alphanumeric characters, '-' or '.', and must start and end with an \
                 alphanumeric character"
                    .to_owned(),
            );
        }
    }
    if name.is_empty() {
        errors.push("name part must be non-empty".to_owned());
    } else if name.len() > MAX_NAME_PART {
        errors.push(format!(
            "name part must be no more than {MAX_NAME_PART} characters"
        ));
    } else if !is_label_token(name) {
        errors.push(
            "name part must consist of alphanumeric characters, '-', '_' or '.', and must \
             start and end with an alphanumeric character (regex used for validation is \
             '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
                .to_owned(),
        );
    }
    errors
}

/// `IsValidLabelValue`: empty, or a name part of at most 63 characters.
fn label_value(value: &str) -> Vec<String> {
    if value.len() > MAX_NAME_PART {
        return vec![format!("must be no more than {MAX_NAME_PART} characters")];
    }
    if !value.is_empty() && !is_label_token(value) {
        return vec![
            "a valid label must be an empty string or consist of alphanumeric characters, \
             '-', '_' or '.', and must start and end with an alphanumeric character (regex \
             used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
                .to_owned(),
        ];
    }
    Vec::new()
}

/// `([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]`
fn is_label_token(s: &str) -> bool {
    let bytes = s.as_bytes();
    let edge = |b: &u8| b.is_ascii_alphanumeric();
    bytes.first().is_some_and(edge)
        && bytes.last().is_some_and(edge)
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

fn is_dns_subdomain(s: &str) -> bool {
    s.split('.').all(|label| {
        let bytes = label.as_bytes();
        let edge = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
        bytes.first().is_some_and(edge)
            && bytes.last().is_some_and(edge)
            && bytes
                .iter()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
    })
}

/// Bytes of a map of strings (ConfigMap `data`).
fn string_bytes(map: &Value) -> usize {
    map.as_object()
        .into_iter()
        .flatten()
        .map(|(_, v)| v.as_str().map_or(0, str::len))
        .sum()
}

/// Decoded bytes of a map of base64 strings (`binaryData`, Secret `data`).
fn binary_bytes(map: &Value) -> usize {
    map.as_object()
        .into_iter()
        .flatten()
        .map(|(_, v)| {
            let text = v.as_str().unwrap_or_default().trim_end_matches('=');
            text.len() * 3 / 4
        })
        .sum()
}

fn immutable_fields(group: &str, kind: &str, old: &Value, new: &Value, causes: &mut Vec<Cause>) {
    let mut unchanged = |path: &[&str], detail: &str| {
        let (before, after) = (at(old, path), at(new, path));
        if before != after {
            causes.push(Cause::invalid(&path.join("."), after, detail));
        }
    };
    match (group, kind) {
        ("apps", "StatefulSet") => statefulset(old, new, causes),
        ("apps", "Deployment" | "DaemonSet" | "ReplicaSet") => {
            unchanged(&["spec", "selector"], IMMUTABLE);
        }
        ("batch", "Job") => {
            unchanged(&["spec", "selector"], IMMUTABLE);
            unchanged(&["spec", "template"], IMMUTABLE);
        }
        ("rbac.authorization.k8s.io", "RoleBinding" | "ClusterRoleBinding") => {
            unchanged(&["roleRef"], "cannot change roleRef");
        }
        ("", "Service") => {
            let (before, after) = (&old["spec"]["clusterIP"], &new["spec"]["clusterIP"]);
            let set = |v: &Value| v.as_str().is_some_and(|s| !s.is_empty());
            if set(before) && set(after) && before != after {
                causes.push(Cause::invalid("spec.clusterIP", after, IMMUTABLE));
            }
        }
        ("", "PersistentVolumeClaim") => pvc(old, new, causes),
        ("", "ConfigMap" | "Secret") if old["immutable"] == true => {
            for field in ["data", "binaryData", "stringData"] {
                if at(old, &[field]) != at(new, &[field]) {
                    causes.push(Cause::forbidden(field, IMMUTABLE_WHEN_SET));
                }
            }
            if new["immutable"] != true {
                causes.push(Cause::forbidden("immutable", IMMUTABLE_WHEN_SET));
            }
        }
        _ => {}
    }
}

/// A StatefulSet's spec is fixed but for a few fields (`ValidateStatefulSetUpdate`);
/// its selector, `serviceName` and `volumeClaimTemplates` among the fixed ones.
fn statefulset(old: &Value, new: &Value, causes: &mut Vec<Cause>) {
    const MUTABLE: &[&str] = &[
        "replicas",
        "ordinals",
        "template",
        "updateStrategy",
        "revisionHistoryLimit",
        "persistentVolumeClaimRetentionPolicy",
        "minReadySeconds",
    ];
    let fixed = |sts: &Value| {
        let mut spec = sts["spec"].clone();
        if let Some(fields) = spec.as_object_mut() {
            fields.retain(|k, _| !MUTABLE.contains(&k.as_str()));
        }
        spec
    };
    if fixed(old) != fixed(new) {
        causes.push(Cause::forbidden(
            "spec",
            "updates to statefulset spec for fields other than 'replicas', 'ordinals', \
             'template', 'updateStrategy', 'revisionHistoryLimit', \
             'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
        ));
    }
}

/// A claim's spec is fixed after creation, except that the requested storage may grow.
fn pvc(old: &Value, new: &Value, causes: &mut Vec<Cause>) {
    let storage = |pvc: &Value| pvc["spec"]["resources"]["requests"]["storage"].clone();
    let without_storage = |pvc: &Value| {
        let mut spec = pvc["spec"].clone();
        if let Some(requests) = spec["resources"]["requests"].as_object_mut() {
            requests.remove("storage");
        }
        spec
    };
    if without_storage(old) != without_storage(new) {
        causes.push(Cause::forbidden(
            "spec",
            "spec is immutable after creation except resources.requests and \
             volumeAttributesClassName for bound claims",
        ));
    }
    let (before, after) = (storage(old), storage(new));
    if let (Some(before), Some(after)) = (
        before.as_str().and_then(quantity),
        after.as_str().and_then(quantity),
    ) && after < before
    {
        causes.push(Cause::forbidden(
            "spec.resources.requests.storage",
            "field can not be less than previous value",
        ));
    }
}

/// A storage quantity in bytes (`10Gi`, `500M`, `1024`); `None` if not understood.
fn quantity(text: &str) -> Option<f64> {
    let split = text
        .find(|c: char| c.is_ascii_alphabetic())
        .unwrap_or(text.len());
    let (number, suffix) = text.split_at(split);
    let factor: f64 = match suffix {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024.0 * 1024.0 * 1024.0 * 1024.0,
        _ => return None,
    };
    number.parse::<f64>().ok().map(|n| n * factor)
}

/// `ValidateObjectMetaUpdate`: a deleting object's finalizers may only shrink.
fn finalizers_while_deleting(old: &Value, new: &Value, causes: &mut Vec<Cause>) {
    if !old["metadata"]["deletionTimestamp"].is_string() {
        return;
    }
    let list = |o: &Value| -> Vec<String> {
        o["metadata"]["finalizers"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f.as_str().map(str::to_owned))
            .collect()
    };
    let before = list(old);
    let added: Vec<String> = list(new)
        .into_iter()
        .filter(|f| !before.contains(f))
        .collect();
    if !added.is_empty() {
        causes.push(Cause::forbidden(
            "metadata.finalizers",
            &format!(
                "no new finalizers can be added if the object is being deleted, found new finalizers {added:?}"
            ),
        ));
    }
}

fn at<'a>(object: &'a Value, path: &[&str]) -> &'a Value {
    path.iter().fold(object, |node, key| &node[*key])
}
