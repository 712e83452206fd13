//! Field checks shared by the parser and [`Manifest::from_value`](super::Manifest):
//! what makes an `apiVersion`, a kind or a name well-formed, and the errors for them.

use serde_json::{Map, Value};

use super::{Error, Position, Result};

/// Longest accepted `metadata.name` or `metadata.namespace`, as in Kubernetes.
const MAX_NAME_LEN: usize = 253;

/// The string at `key`, or the error for it being absent, null or not a string.
pub(super) fn required_str<'a>(
    object: &'a Map<String, Value>,
    key: &str,
    field: &'static str,
    at: Position,
) -> Result<&'a str> {
    match object.get(key) {
        None | Some(Value::Null) => Err(Error::MissingField { at, field }),
        Some(Value::String(value)) => Ok(value),
        Some(other) => Err(invalid(
            at,
            field,
            format!("expected a string, found {}", type_name(other)),
        )),
    }
}

pub(super) fn invalid(at: Position, field: &'static str, reason: impl Into<String>) -> Error {
    Error::InvalidField {
        at,
        field,
        reason: reason.into(),
    }
}

pub(super) fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a sequence",
        Value::Object(_) => "a mapping",
    }
}

/// `v1`, or `group/version` with a DNS-like group and an alphanumeric version.
pub(super) fn check_api_version(api_version: &str) -> Result<(), String> {
    let Some((group, version)) = api_version.split_once('/') else {
        return if api_version == "v1" {
            Ok(())
        } else {
            Err(format!(
                "{api_version:?} is neither v1 nor of the form group/version"
            ))
        };
    };
    let group_ok = !group.is_empty()
        && group
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    let version_ok = !version.is_empty() && version.chars().all(|c| c.is_ascii_alphanumeric());
    if group_ok && version_ok {
        Ok(())
    } else {
        Err(format!("{api_version:?} is not of the form group/version"))
    }
}

/// An identifier such as `Deployment`.
pub(super) fn check_kind(kind: &str) -> Result<(), String> {
    let mut chars = kind.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric());
    if ok {
        Ok(())
    } else {
        Err(format!("{kind:?} is not an alphanumeric identifier"))
    }
}

/// A name or namespace, checked loosely: the exact rules depend on the kind (a
/// Namespace must be a DNS label, a ClusterRole may contain `:`), and the agent's dry
/// run applies them. This rejects what can never be a valid name in any kind, and
/// what would break a URL path.
pub(super) fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() {
        return Err("must not be empty".to_owned());
    }
    if name.len() > MAX_NAME_LEN {
        return Err(format!(
            "is {} bytes long, more than {MAX_NAME_LEN}",
            name.len()
        ));
    }
    if name == "." || name == ".." {
        return Err(format!("{name:?} is not a valid name"));
    }
    if let Some(c) = name
        .chars()
        .find(|&c| c.is_whitespace() || c.is_control() || c == '/' || c == '%')
    {
        return Err(format!("{name:?} contains {c:?}"));
    }
    Ok(())
}
