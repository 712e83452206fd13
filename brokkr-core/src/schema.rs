//! JSON Schema for generator parameters: compile once, then validate requests with
//! every violation reported by its JSON pointer, and fill in schema defaults.
//!
//! Drafts 2020-12 (the default when `$schema` is absent), 2019-09, 7, 6 and 4 are
//! understood. Only local references (`#/...`) resolve: a schema never reaches the
//! network or the file system.

use serde_json::{Map, Value};

use crate::generator::ParameterViolation;

/// Deepest nesting of schema and parameters the default filler walks; it stops there
/// rather than recurse without bound through self-referencing `$ref`s.
const MAX_DEFAULT_DEPTH: usize = 32;

/// Why a schema cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid parameters schema: {0}")]
pub struct SchemaError(pub String);

/// A compiled JSON Schema for the parameters of a generator or template.
#[derive(Debug)]
pub struct ParameterSchema {
    raw: Value,
    validator: jsonschema::Validator,
}

impl ParameterSchema {
    /// Compiles `schema`. It must be a JSON object that is a valid schema of the draft
    /// it names, and every `$ref` must resolve inside it.
    pub fn compile(schema: &Value) -> Result<Self, SchemaError> {
        if !schema.is_object() {
            return Err(SchemaError(
                "must be a JSON object (a JSON Schema)".to_owned(),
            ));
        }
        let validator = jsonschema::options()
            .should_validate_formats(true)
            .build(schema)
            .map_err(|e| SchemaError(e.to_string()))?;
        Ok(Self {
            raw: schema.clone(),
            validator,
        })
    }

    /// The schema as given.
    pub fn as_value(&self) -> &Value {
        &self.raw
    }

    /// Fills in schema defaults, then validates. Returns the parameters to render with
    /// (keys sorted, so equal parameters give equal output), or every violation.
    ///
    /// Defaults are applied first so that a property that is `required` but has a
    /// `default` can be left out, and so that the defaults themselves are checked.
    pub fn prepare(&self, parameters: &Value) -> Result<Value, Vec<ParameterViolation>> {
        let mut filled = parameters.clone();
        apply_defaults(&self.raw, &self.raw, &mut filled, 0);
        let violations: Vec<ParameterViolation> = self
            .validator
            .iter_errors(&filled)
            .map(|e| ParameterViolation::new(e.instance_path().as_str(), e.to_string()))
            .collect();
        if violations.is_empty() {
            Ok(canonical(filled))
        } else {
            Err(violations)
        }
    }
}

/// Inserts `default`s of absent object properties, recursing into present objects and
/// array items. Follows local `$ref`s and `allOf`.
fn apply_defaults(root: &Value, schema: &Value, instance: &mut Value, depth: usize) {
    if depth > MAX_DEFAULT_DEPTH {
        return;
    }
    let Some(schema) = schema.as_object() else {
        return;
    };
    if let Some(target) = schema
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| resolve(root, r))
    {
        apply_defaults(root, target, instance, depth + 1);
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for part in all {
            apply_defaults(root, part, instance, depth + 1);
        }
    }
    match instance {
        Value::Object(object) => fill_properties(root, schema, object, depth),
        Value::Array(items) => {
            if let Some(item_schema) = schema.get("items").filter(|s| s.is_object()) {
                for item in items {
                    apply_defaults(root, item_schema, item, depth + 1);
                }
            }
        }
        _ => {}
    }
}

fn fill_properties(
    root: &Value,
    schema: &Map<String, Value>,
    object: &mut Map<String, Value>,
    depth: usize,
) {
    let Some(properties) = schema.get("properties").and_then(Value::as_object) else {
        return;
    };
    for (name, property) in properties {
        let property = match property.get("$ref").and_then(Value::as_str) {
            Some(reference) if property.get("default").is_none() => {
                resolve(root, reference).unwrap_or(property)
            }
            _ => property,
        };
        if !object.contains_key(name)
            && let Some(default) = property.get("default")
        {
            object.insert(name.clone(), default.clone());
        }
        if let Some(value) = object.get_mut(name) {
            apply_defaults(root, property, value, depth + 1);
        }
    }
}

/// Resolves a local reference such as `#/$defs/port`.
fn resolve<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    root.pointer(pointer)
}

/// The same value with every object's keys in sorted order, whatever map type
/// `serde_json` was built with.
pub fn canonical(value: Value) -> Value {
    match value {
        Value::Object(object) => {
            let mut entries: Vec<(String, Value)> = object.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            Value::Object(
                entries
                    .into_iter()
                    .map(|(k, v)| (k, canonical(v)))
                    .collect(),
            )
        }
        Value::Array(items) => Value::Array(items.into_iter().map(canonical).collect()),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn tenant_schema() -> Value {
        json!({
            "type": "object",
            "required": ["name", "replicas"],
            "additionalProperties": false,
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z][a-z0-9-]*$"},
                "replicas": {"type": "integer", "minimum": 1, "default": 2},
                "plan": {"enum": ["free", "pro"], "default": "free"},
                "limits": {
                    "type": "object",
                    "default": {},
                    "properties": {"cpu": {"type": "string", "default": "500m"}}
                },
                "ports": {"type": "array", "items": {"$ref": "#/$defs/port"}}
            },
            "$defs": {
                "port": {
                    "type": "object",
                    "properties": {
                        "port": {"type": "integer", "maximum": 65535},
                        "protocol": {"type": "string", "default": "TCP"}
                    }
                }
            }
        })
    }

    #[test]
    fn defaults_fill_absent_values_at_every_depth() {
        let schema = ParameterSchema::compile(&tenant_schema()).unwrap();
        let prepared = schema
            .prepare(&json!({"name": "acme", "ports": [{"port": 80}]}))
            .unwrap();
        assert_eq!(
            prepared,
            json!({
                "name": "acme",
                "replicas": 2,
                "plan": "free",
                "limits": {"cpu": "500m"},
                "ports": [{"port": 80, "protocol": "TCP"}]
            })
        );
    }

    #[test]
    fn given_values_win_over_defaults() {
        let schema = ParameterSchema::compile(&tenant_schema()).unwrap();
        let prepared = schema
            .prepare(&json!({"name": "acme", "replicas": 5, "limits": {"cpu": "2"}}))
            .unwrap();
        assert_eq!(prepared["replicas"], 5);
        assert_eq!(prepared["limits"]["cpu"], "2");
    }

    #[test]
    fn every_violation_is_reported_with_its_pointer() {
        let schema = ParameterSchema::compile(&tenant_schema()).unwrap();
        let violations = schema
            .prepare(&json!({
                "name": "Not Valid",
                "replicas": 0,
                "plan": "gold",
                "extra": true,
                "ports": [{"port": 70000}]
            }))
            .unwrap_err();
        let mut pointers: Vec<&str> = violations.iter().map(|v| v.pointer.as_str()).collect();
        pointers.sort_unstable();
        assert_eq!(
            pointers,
            ["", "/name", "/plan", "/ports/0/port", "/replicas"],
            "{violations:?}"
        );
    }

    #[test]
    fn draft_7_schemas_are_understood() {
        let schema = ParameterSchema::compile(&json!({
            "$schema": "http://json-schema.org/draft-07/schema#",
            "type": "object",
            "properties": {"size": {"type": "integer", "exclusiveMaximum": 10}},
            "definitions": {"unused": {"type": "string"}}
        }))
        .unwrap();
        assert!(schema.prepare(&json!({"size": 9})).is_ok());
        let violations = schema.prepare(&json!({"size": 10})).unwrap_err();
        assert_eq!(violations[0].pointer, "/size");
    }

    #[test]
    fn broken_schemas_are_refused() {
        for bad in [
            json!("not an object"),
            json!({"type": "no-such-type"}),
            json!({"properties": {"a": {"$ref": "#/$defs/missing"}}}),
            json!({"$ref": "https://example.com/schema.json"}),
            json!({"minimum": "five"}),
        ] {
            assert!(ParameterSchema::compile(&bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn self_referencing_schemas_do_not_recurse_forever() {
        let schema = ParameterSchema::compile(&json!({
            "$ref": "#/$defs/node",
            "$defs": {"node": {
                "type": "object",
                "properties": {"child": {"$ref": "#/$defs/node"}, "n": {"default": 1}}
            }}
        }))
        .unwrap();
        let prepared = schema.prepare(&json!({"child": {"child": {}}})).unwrap();
        assert_eq!(
            prepared,
            json!({"child": {"child": {"n": 1}, "n": 1}, "n": 1})
        );
    }

    #[test]
    fn canonical_sorts_keys_recursively() {
        let value = canonical(json!({"b": 1, "a": {"d": 1, "c": [{"z": 1, "y": 2}]}}));
        assert_eq!(
            value.to_string(),
            r#"{"a":{"c":[{"y":2,"z":1}],"d":1},"b":1}"#
        );
    }
}
