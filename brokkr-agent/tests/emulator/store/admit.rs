//! What an apply body must satisfy before it is merged: it names the object the URL
//! names, sets no server-owned metadata, and (for a CRD) defines kinds that can be
//! served.

use serde_json::{Map, Value, json};

use super::super::catalog::ResourceType;
use super::super::status::ApiError;

/// Checks an applied body against the URL it was sent to and strips what only the
/// server may set. Returns the object to store (without `status`).
pub fn admit(
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
    // Upstream's field manager refuses an apply that carries ownership of its own
    // (`k8s.io/apimachinery/pkg/util/managedfields/internal/structuredmerge.go`, Apply:
    // "metadata.managedFields must be nil"); even an empty list counts.
    if metadata.get("managedFields").is_some_and(|v| !v.is_null()) {
        return Err(ApiError::bad_request("metadata.managedFields must be nil"));
    }
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
pub fn crd_types(crd: &Value) -> Result<Vec<ResourceType>, String> {
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
            let subresources: Vec<&str> = ["status", "scale"]
                .into_iter()
                .filter(|sub| v["subresources"].get(sub).is_some())
                .collect();
            Ok(
                ResourceType::new(&group, &version, &kind, &plural, namespaced)
                    .with_subresources(&subresources),
            )
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
