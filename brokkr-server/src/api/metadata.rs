//! Labels and annotations as subresources of stacks, agents and templates:
//! `/{stacks|agents|templates}/{id}/{labels|annotations}` and `.../{key}`.
//!
//! Every answer is the whole map after the request. The eighteen routes (three
//! resources × two maps × read, set, remove) are one generic piece: `metadata_routes!`
//! declares them from one line per resource and map, and every one of them calls the
//! control plane's `metadata`, `put_metadata` or `remove_metadata` with a
//! [`MetadataTarget`] and a [`MetadataField`]. Access and validation live there
//! (`brokkr_core::runtime`, `metadata.rs`).

use std::collections::BTreeMap;

use brokkr_core::{Actor, AgentId, MetadataField, MetadataTarget};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use crate::api::Tag;
use crate::api::fields::MetadataKey;
use crate::auth::BearerAuth;
use crate::error::ApiResult;
use crate::state::AppState;

/// Body of `POST .../labels` and `POST .../annotations`: sets one entry.
#[derive(Debug, Clone, Object)]
pub struct MetadataEntry {
    /// The key: `[prefix/]name`, as in Kubernetes (an optional prefix of lowercase DNS
    /// labels joined by dots, at most 253 characters, and `/`; then a name of 1-63
    /// alphanumerics, `-`, `_` or `.` starting and ending with an alphanumeric).
    pub key: MetadataKey,
    /// The value: for a label, empty or 1-63 alphanumerics, `-`, `_` or `.` starting
    /// and ending with an alphanumeric; for an annotation, free text, the object's
    /// annotations (keys and values) together at most 256 KiB (422 otherwise).
    pub value: String,
}

/// The whole label or annotation map of a resource.
#[derive(Debug, ApiResponse)]
pub enum MetadataResponse {
    /// The map, `{key: value}`.
    #[oai(status = 200)]
    Ok(Json<BTreeMap<String, String>>),
}

/// One of the three operations, on any resource and map.
enum Op {
    Read,
    Put(MetadataEntry),
    Remove(String),
}

async fn call(
    state: &AppState,
    caller: &Actor,
    target: MetadataTarget,
    field: MetadataField,
    op: Op,
) -> ApiResult<MetadataResponse> {
    let control_plane = &state.control_plane;
    let map = match op {
        Op::Read => control_plane.metadata(caller, target, field).await?,
        Op::Put(entry) => {
            control_plane
                .put_metadata(caller, target, field, &entry.key.0, &entry.value)
                .await?
        }
        Op::Remove(key) => {
            control_plane
                .remove_metadata(caller, target, field, &key)
                .await?
        }
    };
    Ok(MetadataResponse::Ok(Json(map)))
}

fn stack(id: Uuid) -> MetadataTarget {
    MetadataTarget::Stack(id.into())
}

fn agent(id: Uuid) -> MetadataTarget {
    MetadataTarget::Agent(AgentId::from(id))
}

fn template(id: Uuid) -> MetadataTarget {
    MetadataTarget::Template(id.into())
}

/// Label and annotation operations.
pub struct MetadataApi;

/// Declares the `#[OpenApi]` impl of [`MetadataApi`]: per line, a resource's target
/// constructor, one map, its collection and entry paths, the three operations' names,
/// operation ids and summaries. poem-openapi needs one method per route (its attribute
/// reads literal paths), so the table is expanded before the attribute runs.
macro_rules! metadata_routes {
    ($(
        $target:ident $field:ident $collection:tt $entry:tt
        => $read:ident $read_id:literal $read_doc:tt,
           $put:ident $put_id:literal $put_doc:tt,
           $remove:ident $remove_id:literal $remove_doc:tt;
    )*) => {
        #[OpenApi]
        impl MetadataApi {
            $(
                #[doc = $read_doc]
                #[oai(path = $collection, method = "get", operation_id = $read_id, tag = "Tag::Metadata")]
                async fn $read(
                    &self,
                    auth: BearerAuth,
                    state: Data<&AppState>,
                    id: Path<Uuid>,
                ) -> ApiResult<MetadataResponse> {
                    call(&state, &auth.0, $target(id.0), MetadataField::$field, Op::Read).await
                }

                #[doc = $put_doc]
                #[oai(path = $collection, method = "post", operation_id = $put_id, tag = "Tag::Metadata")]
                async fn $put(
                    &self,
                    auth: BearerAuth,
                    state: Data<&AppState>,
                    id: Path<Uuid>,
                    body: Json<MetadataEntry>,
                ) -> ApiResult<MetadataResponse> {
                    let op = Op::Put(body.0);
                    call(&state, &auth.0, $target(id.0), MetadataField::$field, op).await
                }

                #[doc = $remove_doc]
                #[oai(path = $entry, method = "delete", operation_id = $remove_id, tag = "Tag::Metadata")]
                async fn $remove(
                    &self,
                    auth: BearerAuth,
                    state: Data<&AppState>,
                    id: Path<Uuid>,
                    /// The key (percent-encode a `/` as `%2F`).
                    key: Path<String>,
                ) -> ApiResult<MetadataResponse> {
                    let op = Op::Remove(key.0);
                    call(&state, &auth.0, $target(id.0), MetadataField::$field, op).await
                }
            )*
        }
    };
}

metadata_routes! {
    stack Labels "/stacks/:id/labels" "/stacks/:id/labels/:key"
        => get_stack_labels "getStackLabels" "A stack's labels.",
           put_stack_label "putStackLabel" "Set a stack label; answers all its labels.",
           remove_stack_label "removeStackLabel"
               "Remove a stack label; answers the remaining labels.";
    stack Annotations "/stacks/:id/annotations" "/stacks/:id/annotations/:key"
        => get_stack_annotations "getStackAnnotations" "A stack's annotations.",
           put_stack_annotation "putStackAnnotation"
               "Set a stack annotation; answers all its annotations.",
           remove_stack_annotation "removeStackAnnotation"
               "Remove a stack annotation; answers the remaining annotations.";
    agent Labels "/agents/:id/labels" "/agents/:id/labels/:key"
        => get_agent_labels "getAgentLabels"
               "An agent's labels (admin, or the agent itself).",
           put_agent_label "putAgentLabel"
               "Set an agent label (admin); answers all its labels.",
           remove_agent_label "removeAgentLabel"
               "Remove an agent label (admin); answers the remaining labels.";
    agent Annotations "/agents/:id/annotations" "/agents/:id/annotations/:key"
        => get_agent_annotations "getAgentAnnotations"
               "An agent's annotations (admin, or the agent itself).",
           put_agent_annotation "putAgentAnnotation"
               "Set an agent annotation (admin); answers all its annotations.",
           remove_agent_annotation "removeAgentAnnotation"
               "Remove an agent annotation (admin); answers the remaining annotations.";
    template Labels "/templates/:id/labels" "/templates/:id/labels/:key"
        => get_template_labels "getTemplateLabels" "A template's labels.",
           put_template_label "putTemplateLabel"
               "Set a template label; answers all its labels.",
           remove_template_label "removeTemplateLabel"
               "Remove a template label; answers the remaining labels.";
    template Annotations "/templates/:id/annotations" "/templates/:id/annotations/:key"
        => get_template_annotations "getTemplateAnnotations" "A template's annotations.",
           put_template_annotation "putTemplateAnnotation"
               "Set a template annotation; answers all its annotations.",
           remove_template_annotation "removeTemplateAnnotation"
               "Remove a template annotation; answers the remaining annotations.";
}
