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
