//! What a request body's fields mean beyond their JSON types, stated once:
//!
//! - `null` is never a value. An optional field is left out, not sent as `null`:
//!   every optional field of every request body is parsed with [`no_null`], which
//!   answers `null` with 400 `invalid_body` like any other wrong type. The OpenAPI
//!   document declares no request field nullable except the two that older agents
//!   still send as `null` (an event's `message`, a health report's `summary`), which
//!   take `null` as absent until API v2.
//! - Names, descriptions, label and annotation keys and label values carry the
//!   control plane's rules into the OpenAPI document ([`Name`], [`Description`],
//!   [`MetadataKey`], [`LabelValue`]), so clients and fuzzers can know them. The rules
//!   are enforced by the control plane, not here: a value that breaks one gets the
//!   same 422 `validation_failed` and message over HTTP as through an embedder's
//!   `ControlPlane`.

use std::borrow::Cow;
use std::collections::BTreeMap;

use brokkr_core::model::{MAX_DESCRIPTION_LEN, MAX_NAME_LEN};
use poem_openapi::registry::{MetaSchema, MetaSchemaRef};
use poem_openapi::types::{ParseError, ParseFromJSON, ParseResult, ToJSON, Type};
use serde_json::Value;

/// Parses an optional body field: absent is `None`, `null` is refused.
///
/// Use as `#[oai(deserialize_with = "crate::api::fields::no_null")]` on every
/// `Option` field of a request body.
pub fn no_null<T: ParseFromJSON>(value: Option<Value>) -> ParseResult<Option<T>> {
    match value {
        Some(Value::Null) => Err(ParseError::custom(
            "null is not a value: leave an optional field out instead",
        )),
        value => Option::<T>::parse_from_json(value).map_err(ParseError::propagate),
    }
}

/// Characters that may not start or end a name: Unicode white space (what
/// `str::trim` removes) and control characters. Written as explicit ranges so that
/// ECMAScript, Python and Rust regular expressions read the pattern alike.
macro_rules! name_edge_class {
    () => {
        r"[^\u0000-\u0020\u007f-\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]"
    };
}

/// A name of a stack, agent, cluster, generator or template
/// (`brokkr_core::model::validate_name`): 1-253 characters, no control characters,
/// no white space at either end.
pub const NAME_PATTERN: &str = concat!(
    "^",
    name_edge_class!(),
    r"(?:[^\u0000-\u001f\u007f-\u009f]*",
    name_edge_class!(),
    ")?$"
);

/// A label or annotation key (`brokkr_core::metadata::validate_key`): an optional
/// prefix of lowercase DNS labels joined by dots and a `/`, then a name of 1-63
/// alphanumerics, `-`, `_` or `.` that starts and ends with an alphanumeric.
pub const METADATA_KEY_PATTERN: &str = concat!(
    r"^(?:[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?(?:\.[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?)*/)?",
    r"[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
);

/// Longest key: a 253-character prefix, `/` and a 63-character name.
pub const MAX_METADATA_KEY_LEN: usize = 253 + 1 + 63;

/// A label value (`brokkr_core::metadata::validate_label_value`): empty, or 1-63
/// alphanumerics, `-`, `_` or `.` starting and ending with an alphanumeric.
pub const LABEL_VALUE_PATTERN: &str = r"^(?:[A-Za-z0-9](?:[-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$";

/// Longest label value.
pub const MAX_LABEL_VALUE_LEN: usize = 63;

/// The schema of a string with the given rules.
fn string_schema(min: Option<usize>, max: usize, pattern: Option<&str>) -> MetaSchemaRef {
    MetaSchemaRef::Inline(Box::new(MetaSchema {
        min_length: min,
        max_length: Some(max),
        pattern: pattern.map(str::to_owned),
        ..MetaSchema::new("string")
    }))
}

/// Declares a string newtype whose OpenAPI schema states a rule that the control
/// plane enforces; parsing takes any string, as `String` does.
macro_rules! ruled_string {
    ($(#[$doc:meta])* $name:ident, $type_name:literal, $schema:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord)]
        pub struct $name(pub String);

        impl Type for $name {
            const IS_REQUIRED: bool = true;
            type RawValueType = String;
            type RawElementValueType = String;

            fn name() -> Cow<'static, str> {
                $type_name.into()
            }

            fn schema_ref() -> MetaSchemaRef {
                $schema
            }

            fn as_raw_value(&self) -> Option<&String> {
                Some(&self.0)
            }

            fn raw_element_iter<'a>(&'a self) -> Box<dyn Iterator<Item = &'a String> + 'a> {
                Box::new(std::iter::once(&self.0))
            }
        }

        impl ParseFromJSON for $name {
            fn parse_from_json(value: Option<Value>) -> ParseResult<Self> {
                String::parse_from_json(value)
                    .map(Self)
                    .map_err(ParseError::propagate)
            }
        }

        impl ToJSON for $name {
            fn to_json(&self) -> Option<Value> {
                self.0.to_json()
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> Self {
                value.0
            }
        }
    };
}

ruled_string!(
    /// A name: 1-253 characters, no control characters, no white space at either end.
    Name,
    "string_name",
    string_schema(Some(1), MAX_NAME_LEN, Some(NAME_PATTERN))
);

ruled_string!(
    /// A description: free text of at most 4096 characters; `""` is no description.
    Description,
    "string_description",
    string_schema(None, MAX_DESCRIPTION_LEN, None)
);

ruled_string!(
    /// A label or annotation key, `[prefix/]name` as in Kubernetes.
    MetadataKey,
    "string_metadata_key",
    string_schema(Some(1), MAX_METADATA_KEY_LEN, Some(METADATA_KEY_PATTERN))
);

ruled_string!(
    /// A label value: empty, or 1-63 alphanumerics, `-`, `_` or `.`, starting and
    /// ending with an alphanumeric.
    LabelValue,
    "string_label_value",
    string_schema(None, MAX_LABEL_VALUE_LEN, Some(LABEL_VALUE_PATTERN))
);

/// A label map as the core takes it.
pub fn labels(map: BTreeMap<String, LabelValue>) -> BTreeMap<String, String> {
    map.into_iter().map(|(key, value)| (key, value.0)).collect()
}

#[cfg(test)]
mod tests;
