//! Failures as `meta/v1 Status` bodies, the only error shape kube-rs turns into
//! `kube::Error::Api` with the code and reason intact.

use serde_json::{Value, json};

/// One failed request: HTTP code, machine-readable reason, human message.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub code: u16,
    pub reason: &'static str,
    pub message: String,
    /// `details` of the Status (`name`, `group`, `kind`), when the failure names an object.
    pub details: Option<Value>,
}

impl ApiError {
    fn new(code: u16, reason: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            reason,
            message: message.into(),
            details: None,
        }
    }

    fn about(mut self, group: &str, resource: &str, name: &str) -> ApiError {
        self.details = Some(json!({ "name": name, "group": group, "kind": resource }));
        self
    }

    /// `configmaps "x" not found` (upstream wording, group-qualified outside core).
    pub fn not_found(group: &str, resource: &str, name: &str) -> ApiError {
        let message = format!("{} \"{name}\" not found", qualified(group, resource));
        ApiError::new(404, "NotFound", message).about(group, resource, name)
    }

    /// A path the server does not serve, e.g. a kind that is not installed.
    pub fn no_route() -> ApiError {
        ApiError::new(
            404,
            "NotFound",
            "the server could not find the requested resource",
        )
    }

    pub fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    /// 422: the object (or its options) failed validation.
    pub fn invalid(group: &str, kind: &str, name: &str, message: impl Into<String>) -> ApiError {
        let message = format!(
            "{} \"{name}\" is invalid: {}",
            qualified(group, kind),
            message.into()
        );
        ApiError::new(422, "Invalid", message).about(group, kind, name)
    }

    pub fn conflict(group: &str, resource: &str, name: &str) -> ApiError {
        let message = format!(
            "Operation cannot be fulfilled on {} \"{name}\": the object has been modified; \
             please apply your changes to the latest version and try again",
            qualified(group, resource)
        );
        ApiError::new(409, "Conflict", message).about(group, resource, name)
    }

    /// RBAC's wording, for a service account the emulator pretends the client is.
    pub fn forbidden(
        verb: &str,
        group: &str,
        resource: &str,
        namespace: Option<&str>,
        name: Option<&str>,
    ) -> ApiError {
        let subject = match name {
            Some(name) => format!("{} \"{name}\"", qualified(group, resource)),
            None => qualified(group, resource),
        };
        let scope = match namespace {
            Some(ns) => format!("in the namespace \"{ns}\""),
            None => "at the cluster scope".to_owned(),
        };
        let message = format!(
            "{subject} is forbidden: User \"system:serviceaccount:brokkr:brokkr-agent\" \
             cannot {verb} resource \"{resource}\" in API group \"{group}\" {scope}"
        );
        ApiError::new(403, "Forbidden", message).about(group, resource, name.unwrap_or_default())
    }

    /// 422 with one `details.causes` entry per failed field, worded as upstream's
    /// `errors.NewInvalid` (`k8s.io/apimachinery/pkg/api/errors/errors.go`): one error
    /// prints as `field: detail`, several as `[field: detail, …]`.
    pub fn invalid_fields(group: &str, kind: &str, name: &str, causes: &[Cause]) -> ApiError {
        let printed: Vec<String> = causes.iter().map(Cause::printed).collect();
        let summary = match printed.as_slice() {
            [one] => one.clone(),
            many => format!("[{}]", many.join(", ")),
        };
        let mut error = ApiError::invalid(group, kind, name, summary);
        error.with_causes(causes);
        error
    }

    /// 409 for a server-side apply conflict (`errors.NewApplyConflict`): the causes
    /// name each contested field and its manager.
    pub fn apply_conflict(message: String, causes: &[Cause]) -> ApiError {
        let mut error = ApiError::new(409, "Conflict", message);
        error.details = Some(json!({}));
        error.with_causes(causes);
        error
    }

    /// 403 with upstream's `errors.NewForbidden` wording: `resource "name" is
    /// forbidden: why`.
    pub fn forbidden_because(
        group: &str,
        resource: &str,
        name: &str,
        why: &str,
        cause: Option<Cause>,
    ) -> ApiError {
        let message = format!(
            "{} \"{name}\" is forbidden: {why}",
            qualified(group, resource)
        );
        let mut error = ApiError::new(403, "Forbidden", message).about(group, resource, name);
        if let Some(cause) = cause {
            error.with_causes(&[cause]);
        }
        error
    }

    fn with_causes(&mut self, causes: &[Cause]) {
        let causes: Vec<Value> = causes
            .iter()
            .map(|c| json!({ "reason": c.reason, "message": c.message, "field": c.field }))
            .collect();
        let details = self.details.get_or_insert_with(|| json!({}));
        details["causes"] = Value::Array(causes);
    }

    pub fn method_not_allowed(message: impl Into<String>) -> ApiError {
        ApiError::new(405, "MethodNotAllowed", message)
    }

    pub fn unsupported_media_type(content_type: &str) -> ApiError {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format ({content_type}); \
                 the emulator accepts application/apply-patch+yaml and \
                 application/merge-patch+json"
            ),
        )
    }

    /// The Status document sent as the response body.
    pub fn body(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

/// One `details.causes` entry: a `field.Error` of upstream's validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueForbidden`, `FieldValueTooLong`, …
    pub reason: &'static str,
    pub message: String,
    pub field: String,
}

impl Cause {
    /// `field.Invalid`: `Invalid value: <value>: <detail>`.
    pub fn invalid(field: &str, value: &Value, detail: &str) -> Cause {
        Cause {
            reason: "FieldValueInvalid",
            message: format!("Invalid value: {value}: {detail}"),
            field: field.to_owned(),
        }
    }

    /// `field.Forbidden`: `Forbidden: <detail>`.
    pub fn forbidden(field: &str, detail: &str) -> Cause {
        Cause {
            reason: "FieldValueForbidden",
            message: format!("Forbidden: {detail}"),
            field: field.to_owned(),
        }
    }

    /// `field.TooLong`: `Too long: must have at most <n> bytes`.
    pub fn too_long(field: &str, limit: usize) -> Cause {
        Cause {
            reason: "FieldValueTooLong",
            message: format!("Too long: must have at most {limit} bytes"),
            field: field.to_owned(),
        }
    }

    fn printed(&self) -> String {
        format!("{}: {}", self.field, self.message)
    }
}

/// `deployments.apps`, or just `configmaps` for the core group.
fn qualified(group: &str, resource: &str) -> String {
    if group.is_empty() {
        resource.to_owned()
    } else {
        format!("{resource}.{group}")
    }
}
