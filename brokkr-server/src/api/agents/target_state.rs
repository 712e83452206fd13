//! The target-state answer: its body, serialized once per state and sent many times,
//! and the `ETag` / `If-None-Match` rules of HTTP around it.

use std::marker::PhantomData;

use brokkr_core::runtime::CachedTargetState;
use brokkr_core::{TargetAction, TargetState, TargetStateEntry};
use poem_openapi::payload::Payload;
use poem_openapi::registry::{MetaSchemaRef, Registry};
use poem_openapi::types::{ToJSON, Type};
use poem_openapi::{ApiResponse, Enum, Object};
use uuid::Uuid;

use crate::api::dto::DeploymentObjectDto;

/// What the agent should do with one stack.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "TargetAction", rename_all = "snake_case")]
pub enum TargetActionDto {
    /// Make the cluster match the deployment object.
    Apply,
    /// Remove every object of the stack (deleted, or unassigned from this agent).
    Remove,
}

impl From<TargetAction> for TargetActionDto {
    fn from(action: TargetAction) -> Self {
        match action {
            TargetAction::Apply => Self::Apply,
            TargetAction::Remove => Self::Remove,
        }
    }
}

/// One stack in an agent's target state.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "TargetStateEntry")]
pub struct TargetStateEntryDto {
    /// The stack.
    pub stack_id: Uuid,
    /// Its name, for logs.
    pub stack_name: String,
    /// Apply or remove.
    pub action: TargetActionDto,
    /// The deployment object to apply, or whose stack to remove.
    pub deployment_object: DeploymentObjectDto,
}

impl From<&TargetStateEntry> for TargetStateEntryDto {
    fn from(e: &TargetStateEntry) -> Self {
        Self {
            stack_id: e.stack_id.into(),
            stack_name: e.stack_name.clone(),
            action: e.action.into(),
            deployment_object: e.deployment_object.clone().into(),
        }
    }
}

/// An agent's whole target state: a state, not a queue.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "TargetState")]
pub struct TargetStateDto {
    /// The agent.
    pub agent_id: Uuid,
    /// The strong ETag of this state, without quotes (also in the `ETag` header).
    pub etag: String,
    /// One entry per stack, ordered by stack id.
    pub entries: Vec<TargetStateEntryDto>,
}

impl TargetStateDto {
    fn new(state: &TargetState, etag: &str) -> Self {
        Self {
            agent_id: state.agent_id.into(),
            etag: etag.to_owned(),
            entries: state.entries.iter().map(Into::into).collect(),
        }
    }
}

/// A JSON body serialized once and sent many times, documented as `T`.
pub struct CachedJson<T> {
    bytes: Vec<u8>,
    schema: PhantomData<fn() -> T>,
}

impl<T> CachedJson<T> {
    fn new(bytes: Vec<u8>) -> Self {
        Self {
            bytes,
            schema: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for CachedJson<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CachedJson({} bytes)", self.bytes.len())
    }
}

impl<T: Type> Payload for CachedJson<T> {
    const CONTENT_TYPE: &'static str = "application/json; charset=utf-8";

    fn schema_ref() -> MetaSchemaRef {
        T::schema_ref()
    }

    fn register(registry: &mut Registry) {
        T::register(registry);
    }
}

impl<T> poem::IntoResponse for CachedJson<T> {
    fn into_response(self) -> poem::Response {
        poem::Response::builder()
            .content_type("application/json; charset=utf-8")
            .body(self.bytes)
    }
}

/// Answer of `GET /agents/{id}/target-state`.
#[derive(Debug, ApiResponse)]
pub enum TargetStateResponse {
    /// The target state, with its strong ETag.
    #[oai(status = 200)]
    Ok(
        CachedJson<TargetStateDto>,
        /// The state's strong ETag, quoted.
        #[oai(header = "ETag")]
        String,
    ),
    /// The state still has the ETag given in `If-None-Match`.
    #[oai(status = 304)]
    NotModified(
        /// The state's strong ETag, quoted.
        #[oai(header = "ETag")]
        String,
    ),
}

impl TargetStateResponse {
    /// 200 with the state's body, serialized by the first request that needs it.
    pub fn full(entry: &CachedTargetState) -> Self {
        let json = entry.json.get_or_init(|| {
            serde_json::to_vec(&TargetStateDto::new(&entry.state, &entry.etag).to_json())
                .expect("a serde_json::Value always serializes")
        });
        Self::Ok(CachedJson::new(json.clone()), quoted(&entry.etag))
    }

    /// 304 for the state the caller has.
    pub fn not_modified(entry: &CachedTargetState) -> Self {
        Self::NotModified(quoted(&entry.etag))
    }
}

/// Whether an `If-None-Match` value names `etag` (weak comparison, as RFC 9110 asks
/// for this header; `*` matches any state). Lenient about missing quotes.
pub fn etag_matches(if_none_match: &str, etag: &str) -> bool {
    if_none_match.split(',').map(str::trim).any(|tag| {
        if tag == "*" {
            return true;
        }
        let tag = tag.strip_prefix("W/").unwrap_or(tag);
        let tag = tag
            .strip_prefix('"')
            .and_then(|t| t.strip_suffix('"'))
            .unwrap_or(tag);
        tag == etag
    })
}

fn quoted(etag: &str) -> String {
    format!("\"{etag}\"")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn if_none_match_forms() {
        let etag = "0123abcd";
        for header in [
            "\"0123abcd\"",
            "W/\"0123abcd\"",
            "\"x\", \"0123abcd\"",
            "*",
            "0123abcd",
        ] {
            assert!(etag_matches(header, etag), "{header}");
        }
        for header in ["\"x\"", "", "\"0123abc\"", "W/\"0123abcde\""] {
            assert!(!etag_matches(header, etag), "{header}");
        }
    }

    #[test]
    fn the_spec_declares_etag_304_and_if_none_match() {
        let spec: serde_json::Value =
            serde_json::from_str(&crate::app::openapi_json()).expect("the spec is JSON");
        let op = &spec["paths"]["/agents/{id}/target-state"]["get"];
        // poem-openapi writes header names upper-cased; HTTP ignores their case.
        for status in ["200", "304"] {
            assert!(
                op["responses"][status]["headers"]["ETAG"].is_object(),
                "{op}"
            );
        }
        let params = op["parameters"].as_array().expect("parameters");
        assert!(
            params
                .iter()
                .any(|p| p["name"] == "If-None-Match" && p["in"] == "header")
        );
        let schema = &op["responses"]["200"]["content"]["application/json; charset=utf-8"];
        assert_eq!(
            schema["schema"]["$ref"], "#/components/schemas/TargetState",
            "{op}"
        );
    }
}
