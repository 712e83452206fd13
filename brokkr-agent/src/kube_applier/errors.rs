//! Turning kube-rs errors into [`applier::Error`](brokkr_core::applier::Error), in one
//! place.
//!
//! The line between the two kinds of failure callers branch on: a 4xx answer is the
//! cluster refusing an object (`Rejected`, fix the deployment object), anything else is
//! the cluster being unwell or unreachable (`Unavailable`, try again). 408 and 429 are
//! 4xx codes that mean "later", so they count as unavailable.

use brokkr_core::ObjectKey;
use brokkr_core::applier::Error;
use kube::core::Status;

/// The error for a request about `object` that failed with `err`.
pub(crate) fn object_error(object: &ObjectKey, err: kube::Error) -> Error {
    match err {
        kube::Error::Api(status) if is_namespace_terminating(&status) => {
            Error::NamespaceTerminating {
                object: object.clone(),
                namespace: object.namespace.clone().unwrap_or_default(),
            }
        }
        kube::Error::Api(status) if is_rejection(status.code) => rejected(object, &status),
        kube::Error::Api(status) => {
            Error::Unavailable(format!("{object}: {}", describe_status(&status)))
        }
        other => Error::Unavailable(format!("{object}: {other}")),
    }
}

/// The error for a request about Brokkr's own bookkeeping (the inventory): whatever
/// the API server answers, it is not the deployment object's fault, so it is never a
/// rejection of it.
pub(crate) fn bookkeeping_error(object: &ObjectKey, err: kube::Error) -> Error {
    cluster_error(&object.to_string(), err)
}

/// The error for a request that is about no object in particular (discovery).
pub(crate) fn cluster_error(what: &str, err: kube::Error) -> Error {
    match err {
        kube::Error::Api(status) => {
            Error::Unavailable(format!("{what}: {}", describe_status(&status)))
        }
        other => Error::Unavailable(format!("{what}: {other}")),
    }
}

/// A rejection that Brokkr itself finds before asking the cluster, worded like the
/// cluster's own.
pub(crate) fn invalid(object: &ObjectKey, message: impl Into<String>) -> Error {
    Error::Rejected {
        object: object.clone(),
        reason: "Invalid".to_owned(),
        message: message.into(),
    }
}

/// Whether an HTTP status means the request itself was refused, for good.
pub(crate) fn is_rejection(code: u16) -> bool {
    (400..500).contains(&code) && code != 408 && code != 429
}

/// Whether `err` is the API server's 404.
pub(crate) fn is_not_found(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.is_not_found())
}

/// Whether `err` is the API server's 403.
pub(crate) fn is_forbidden(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.is_forbidden())
}

/// Whether `err` is the API server's 409 (a failed precondition on delete).
pub(crate) fn is_conflict(err: &kube::Error) -> bool {
    matches!(err, kube::Error::Api(status) if status.is_conflict())
}

/// Whether `err` says the kind's resource is not served (a 404 about the URL, not
/// about a named object or namespace): the discovery cache is stale.
pub(crate) fn is_unserved(err: &kube::Error) -> bool {
    let kube::Error::Api(status) = err else {
        return false;
    };
    // A missing namespace or object names itself in `details`; a path the server does
    // not route answers "the server could not find the requested resource" without.
    status.is_not_found()
        && status
            .details
            .as_ref()
            .is_none_or(|d| d.name.is_empty() && d.kind.is_empty())
}

/// The immutable fields a 422 names, if it is about immutable fields. Kubernetes says
/// so in each cause ("field is immutable"; a RoleBinding's "cannot change roleRef"; a
/// PVC's "spec is immutable after creation"), with the field's path in `field`.
pub(crate) fn immutable_fields(err: &kube::Error) -> Option<Vec<String>> {
    let kube::Error::Api(status) = err else {
        return None;
    };
    if status.code != 422 {
        return None;
    }
    let causes = status
        .details
        .as_ref()
        .map(|d| d.causes.as_slice())
        .unwrap_or_default();
    let mut fields: Vec<String> = causes
        .iter()
        .filter(|c| mentions_immutability(&c.message))
        .map(|c| c.field.clone())
        .filter(|f| !f.is_empty())
        .collect();
    if fields.is_empty() {
        if !mentions_immutability(&status.message) {
            return None;
        }
        // No causes (a proxy, an older server): read the fields off the message,
        // `Kind.group "name" is invalid: <field>: Invalid value: ...: field is immutable`.
        let detail = status
            .message
            .split_once("is invalid: ")
            .map_or(status.message.as_str(), |(_, rest)| rest);
        fields = detail
            .trim_start_matches('[')
            .split(", ")
            .filter(|part| mentions_immutability(part))
            .filter_map(|part| part.split_once(": ").map(|(field, _)| field.to_owned()))
            .filter(|field| !field.contains(' '))
            .collect();
    }
    fields.dedup();
    Some(fields)
}

fn mentions_immutability(message: &str) -> bool {
    message.contains("immutable")
        || message.contains("cannot change")
        // A StatefulSet's fixed fields (selector, serviceName, volumeClaimTemplates)
        // are refused as a whole, without the word (Kubernetes
        // `pkg/apis/apps/validation`, `ValidateStatefulSetUpdate`).
        || message.contains("updates to statefulset spec for fields other than")
}

/// A create in a namespace being deleted: 403, "unable to create new content in
/// namespace x because it is being terminated" (Kubernetes
/// `plugin/pkg/admission/namespace/lifecycle`). It passes once the namespace is gone.
fn is_namespace_terminating(status: &Status) -> bool {
    status.code == 403 && status.message.contains("because it is being terminated")
}

fn rejected(object: &ObjectKey, status: &Status) -> Error {
    Error::Rejected {
        object: object.clone(),
        reason: reason_of(status),
        message: status.message.clone(),
    }
}

/// The Kubernetes reason; a proxy in front of the API server may answer without one.
fn reason_of(status: &Status) -> String {
    if status.reason.is_empty() {
        format!("HTTP{}", status.code)
    } else {
        status.reason.clone()
    }
}

fn describe_status(status: &Status) -> String {
    let reason = reason_of(status);
    if status.message.is_empty() {
        format!("{} {reason}", status.code)
    } else {
        format!("{} {reason}: {}", status.code, status.message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ObjectKey {
        ObjectKey {
            api_version: "v1".into(),
            kind: "ConfigMap".into(),
            namespace: Some("default".into()),
            name: "cfg".into(),
        }
    }

    fn with_message(code: u16, message: &str, causes: &[(&str, &str)]) -> kube::Error {
        use kube::core::response::{StatusCause, StatusDetails};
        kube::Error::Api(Box::new(Status {
            code,
            reason: "Invalid".into(),
            message: message.into(),
            details: (!causes.is_empty()).then(|| StatusDetails {
                causes: causes
                    .iter()
                    .map(|(field, message)| StatusCause {
                        field: (*field).into(),
                        message: (*message).into(),
                        reason: "FieldValueInvalid".into(),
                    })
                    .collect(),
                name: String::new(),
                group: String::new(),
                kind: String::new(),
                uid: String::new(),
                retry_after_seconds: 0,
            }),
            ..Status::default()
        }))
    }

    #[test]
    fn immutable_fields_are_named_from_causes_or_the_message() {
        let from_causes = with_message(
            422,
            "Job.batch \"once\" is invalid: spec.template: Invalid value: ...: field is immutable",
            &[("spec.template", "Invalid value: ...: field is immutable")],
        );
        assert_eq!(immutable_fields(&from_causes).unwrap(), ["spec.template"]);
        let role_binding = with_message(
            422,
            "RoleBinding.rbac.authorization.k8s.io \"r\" is invalid: roleRef: Invalid value: ...: cannot change roleRef",
            &[],
        );
        assert_eq!(immutable_fields(&role_binding).unwrap(), ["roleRef"]);
        let two = with_message(
            422,
            "Deployment.apps \"web\" is invalid: [spec.selector: Invalid value: x: field is immutable, spec.template.metadata.labels: Invalid value: y: `selector` does not match]",
            &[],
        );
        assert_eq!(immutable_fields(&two).unwrap(), ["spec.selector"]);
        let statefulset = with_message(
            422,
            "StatefulSet.apps \"db\" is invalid: spec: Forbidden: updates to statefulset spec for fields other than 'replicas', 'ordinals', 'template', 'updateStrategy', 'persistentVolumeClaimRetentionPolicy' and 'minReadySeconds' are forbidden",
            &[],
        );
        assert_eq!(immutable_fields(&statefulset).unwrap(), ["spec"]);
        let other = with_message(422, "spec.replicas: Invalid value: -1", &[]);
        assert_eq!(immutable_fields(&other), None);
        assert_eq!(immutable_fields(&api(409, "Conflict")), None);
    }

    #[test]
    fn a_terminating_namespace_is_transient_and_a_missing_route_is_unserved() {
        let terminating = kube::Error::Api(Box::new(Status {
            code: 403,
            reason: "Forbidden".into(),
            message: "configmaps \"c\" is forbidden: unable to create new content in namespace default because it is being terminated".into(),
            ..Status::default()
        }));
        let error = object_error(&key(), terminating);
        assert!(
            matches!(error, Error::NamespaceTerminating { ref namespace, .. } if namespace == "default")
        );
        assert!(error.is_transient());
        assert!(is_unserved(&api(404, "NotFound")));
        let missing_namespace = kube::Error::Api(Box::new(Status {
            code: 404,
            reason: "NotFound".into(),
            message: "namespaces \"x\" not found".into(),
            details: Some(kube::core::response::StatusDetails {
                name: "x".into(),
                kind: "namespaces".into(),
                group: String::new(),
                uid: String::new(),
                causes: Vec::new(),
                retry_after_seconds: 0,
            }),
            ..Status::default()
        }));
        assert!(!is_unserved(&missing_namespace));
        assert!(!is_unserved(&api(403, "Forbidden")));
    }

    fn api(code: u16, reason: &str) -> kube::Error {
        kube::Error::Api(Box::new(Status {
            code,
            reason: reason.into(),
            message: format!("{reason} happened"),
            ..Status::default()
        }))
    }

    #[test]
    fn client_errors_are_rejections_except_the_retryable_ones() {
        for (code, reason) in [(422, "Invalid"), (403, "Forbidden"), (404, "NotFound")] {
            match object_error(&key(), api(code, reason)) {
                Error::Rejected {
                    object,
                    reason: r,
                    message,
                } => {
                    assert_eq!(object, key());
                    assert_eq!(r, reason);
                    assert_eq!(message, format!("{reason} happened"));
                }
                other => panic!("{code}: {other:?}"),
            }
        }
        for (code, reason) in [(408, "Timeout"), (429, "TooManyRequests"), (503, "")] {
            match object_error(&key(), api(code, reason)) {
                Error::Unavailable(message) => {
                    assert!(message.contains("v1 ConfigMap default/cfg"), "{message}");
                    assert!(message.contains(&code.to_string()), "{message}");
                }
                other => panic!("{code}: {other:?}"),
            }
        }
    }

    #[test]
    fn a_rejection_without_reason_names_the_code() {
        match object_error(&key(), api(400, "")) {
            Error::Rejected { reason, .. } => assert_eq!(reason, "HTTP400"),
            other => panic!("{other:?}"),
        }
    }
}
