//! Labels and annotations as subresources of stacks, agents and templates:
//! `/{stacks|agents|templates}/{id}/{labels|annotations}` and `.../{key}`.
//!
//! Every answer is the whole map after the request. The six resource × map
//! combinations share three functions ([`read`], [`put`], [`remove`]) that take a
//! [`MetadataTarget`] and a [`MetadataField`]; the handlers only name the combination.
//!
//! Access: stacks and templates as their own endpoints decide (admin, or the owning
//! generator; a global template is changed by admin only); agents: admin, and the agent
//! itself may read its own. Keys and values are validated by the store (422).

use std::collections::BTreeMap;

use brokkr_core::{AgentId, MetadataField, MetadataTarget};
use poem::web::Data;
use poem_openapi::param::Path;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use crate::api::Tag;
use crate::api::stacks::visible_stack;
use crate::api::templates::{changeable_template, visible_template};
use crate::auth::{BearerAuth, Identity};
use crate::error::ApiResult;
use crate::state::AppState;

/// Body of `POST .../labels` and `POST .../annotations`: sets one entry.
#[derive(Debug, Clone, Object)]
pub struct MetadataEntry {
    /// The key: `[prefix/]name`, as in Kubernetes.
    pub key: String,
    /// The value (label values follow Kubernetes' label value syntax).
    pub value: String,
}

/// The whole label or annotation map of a resource.
#[derive(Debug, ApiResponse)]
pub enum MetadataResponse {
    /// The map, `{key: value}`.
    #[oai(status = 200)]
    Ok(Json<BTreeMap<String, String>>),
}

/// Checks that the caller may read `target`'s metadata and returns `field`'s map.
async fn read(
    state: &AppState,
    identity: &Identity,
    target: MetadataTarget,
    field: MetadataField,
) -> ApiResult<MetadataResponse> {
    let (labels, annotations) = match target {
        MetadataTarget::Stack(id) => {
            let stack = visible_stack(state, identity, id).await?;
            (stack.labels, stack.annotations)
        }
        MetadataTarget::Agent(id) => {
            identity.require_agent_or_admin(id)?;
            let agent = state.store.get_agent(id).await?;
            (agent.labels, agent.annotations)
        }
        MetadataTarget::Template(id) => {
            let template = visible_template(state, identity, id).await?;
            (template.labels, template.annotations)
        }
    };
    Ok(answer(match field {
        MetadataField::Labels => labels,
        MetadataField::Annotations => annotations,
    }))
}

/// Checks that the caller may change `target`'s metadata.
async fn check_write(
    state: &AppState,
    identity: &Identity,
    target: MetadataTarget,
) -> ApiResult<()> {
    match target {
        MetadataTarget::Stack(id) => visible_stack(state, identity, id).await.map(drop),
        MetadataTarget::Agent(_) => identity.require_admin(),
        MetadataTarget::Template(id) => changeable_template(state, identity, id).await.map(drop),
    }
}

/// Sets one entry of `field` on `target`.
async fn put(
    state: &AppState,
    identity: &Identity,
    target: MetadataTarget,
    field: MetadataField,
    entry: MetadataEntry,
) -> ApiResult<MetadataResponse> {
    check_write(state, identity, target).await?;
    let map = state
        .store
        .put_metadata(&identity.actor(), target, field, &entry.key, &entry.value)
        .await?;
    placement_may_change(state, target);
    Ok(answer(map))
}

/// Removes one entry of `field` from `target` (404 when the key is not set).
async fn remove(
    state: &AppState,
    identity: &Identity,
    target: MetadataTarget,
    field: MetadataField,
    key: &str,
) -> ApiResult<MetadataResponse> {
    check_write(state, identity, target).await?;
    let map = state
        .store
        .remove_metadata(&identity.actor(), target, field, key)
        .await?;
    placement_may_change(state, target);
    Ok(answer(map))
}

/// An agent's labels and annotations (taints included) steer placement.
fn placement_may_change(state: &AppState, target: MetadataTarget) {
    if let MetadataTarget::Agent(agent) = target {
        state.control_plane.placement_signals().agent_changed(agent);
    }
}

fn answer(map: BTreeMap<String, String>) -> MetadataResponse {
    MetadataResponse::Ok(Json(map))
}

fn stack(id: Path<Uuid>) -> MetadataTarget {
    MetadataTarget::Stack(id.0.into())
}

fn agent(id: Path<Uuid>) -> MetadataTarget {
    MetadataTarget::Agent(AgentId::from(id.0))
}

fn template(id: Path<Uuid>) -> MetadataTarget {
    MetadataTarget::Template(id.0.into())
}

/// Label and annotation operations.
pub struct MetadataApi;

#[OpenApi]
impl MetadataApi {
    /// A stack's labels.
    #[oai(path = "/stacks/:id/labels", method = "get", tag = "Tag::Metadata")]
    async fn get_stack_labels(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<MetadataResponse> {
        read(&state, &auth.0, stack(id), MetadataField::Labels).await
    }

    /// Set a stack label; answers all its labels.
    #[oai(path = "/stacks/:id/labels", method = "post", tag = "Tag::Metadata")]
    async fn put_stack_label(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        body: Json<MetadataEntry>,
    ) -> ApiResult<MetadataResponse> {
        put(&state, &auth.0, stack(id), MetadataField::Labels, body.0).await
    }

    /// Remove a stack label; answers the remaining labels.
    #[oai(
        path = "/stacks/:id/labels/:key",
        method = "delete",
        tag = "Tag::Metadata"
    )]
    async fn remove_stack_label(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        /// The key (percent-encode a `/` as `%2F`).
        key: Path<String>,
    ) -> ApiResult<MetadataResponse> {
        remove(&state, &auth.0, stack(id), MetadataField::Labels, &key.0).await
    }

    /// A stack's annotations.
    #[oai(
        path = "/stacks/:id/annotations",
        method = "get",
        tag = "Tag::Metadata"
    )]
    async fn get_stack_annotations(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<MetadataResponse> {
        read(&state, &auth.0, stack(id), MetadataField::Annotations).await
    }

    /// Set a stack annotation; answers all its annotations.
    #[oai(
        path = "/stacks/:id/annotations",
        method = "post",
        tag = "Tag::Metadata"
    )]
    async fn put_stack_annotation(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        body: Json<MetadataEntry>,
    ) -> ApiResult<MetadataResponse> {
        put(
            &state,
            &auth.0,
            stack(id),
            MetadataField::Annotations,
            body.0,
        )
        .await
    }

    /// Remove a stack annotation; answers the remaining annotations.
    #[oai(
        path = "/stacks/:id/annotations/:key",
        method = "delete",
        tag = "Tag::Metadata"
    )]
    async fn remove_stack_annotation(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        /// The key (percent-encode a `/` as `%2F`).
        key: Path<String>,
    ) -> ApiResult<MetadataResponse> {
        remove(
            &state,
            &auth.0,
            stack(id),
            MetadataField::Annotations,
            &key.0,
        )
        .await
    }

    /// An agent's labels (admin, or the agent itself).
    #[oai(path = "/agents/:id/labels", method = "get", tag = "Tag::Metadata")]
    async fn get_agent_labels(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<MetadataResponse> {
        read(&state, &auth.0, agent(id), MetadataField::Labels).await
    }

    /// Set an agent label (admin); answers all its labels.
    #[oai(path = "/agents/:id/labels", method = "post", tag = "Tag::Metadata")]
    async fn put_agent_label(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        body: Json<MetadataEntry>,
    ) -> ApiResult<MetadataResponse> {
        put(&state, &auth.0, agent(id), MetadataField::Labels, body.0).await
    }

    /// Remove an agent label (admin); answers the remaining labels.
    #[oai(
        path = "/agents/:id/labels/:key",
        method = "delete",
        tag = "Tag::Metadata"
    )]
    async fn remove_agent_label(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        /// The key (percent-encode a `/` as `%2F`).
        key: Path<String>,
    ) -> ApiResult<MetadataResponse> {
        remove(&state, &auth.0, agent(id), MetadataField::Labels, &key.0).await
    }

    /// An agent's annotations (admin, or the agent itself).
    #[oai(
        path = "/agents/:id/annotations",
        method = "get",
        tag = "Tag::Metadata"
    )]
    async fn get_agent_annotations(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<MetadataResponse> {
        read(&state, &auth.0, agent(id), MetadataField::Annotations).await
    }

    /// Set an agent annotation (admin); answers all its annotations.
    #[oai(
        path = "/agents/:id/annotations",
        method = "post",
        tag = "Tag::Metadata"
    )]
    async fn put_agent_annotation(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        body: Json<MetadataEntry>,
    ) -> ApiResult<MetadataResponse> {
        put(
            &state,
            &auth.0,
            agent(id),
            MetadataField::Annotations,
            body.0,
        )
        .await
    }

    /// Remove an agent annotation (admin); answers the remaining annotations.
    #[oai(
        path = "/agents/:id/annotations/:key",
        method = "delete",
        tag = "Tag::Metadata"
    )]
    async fn remove_agent_annotation(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        /// The key (percent-encode a `/` as `%2F`).
        key: Path<String>,
    ) -> ApiResult<MetadataResponse> {
        remove(
            &state,
            &auth.0,
            agent(id),
            MetadataField::Annotations,
            &key.0,
        )
        .await
    }

    /// A template's labels.
    #[oai(path = "/templates/:id/labels", method = "get", tag = "Tag::Metadata")]
    async fn get_template_labels(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<MetadataResponse> {
        read(&state, &auth.0, template(id), MetadataField::Labels).await
    }

    /// Set a template label; answers all its labels.
    #[oai(path = "/templates/:id/labels", method = "post", tag = "Tag::Metadata")]
    async fn put_template_label(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        body: Json<MetadataEntry>,
    ) -> ApiResult<MetadataResponse> {
        put(&state, &auth.0, template(id), MetadataField::Labels, body.0).await
    }

    /// Remove a template label; answers the remaining labels.
    #[oai(
        path = "/templates/:id/labels/:key",
        method = "delete",
        tag = "Tag::Metadata"
    )]
    async fn remove_template_label(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        /// The key (percent-encode a `/` as `%2F`).
        key: Path<String>,
    ) -> ApiResult<MetadataResponse> {
        remove(&state, &auth.0, template(id), MetadataField::Labels, &key.0).await
    }

    /// A template's annotations.
    #[oai(
        path = "/templates/:id/annotations",
        method = "get",
        tag = "Tag::Metadata"
    )]
    async fn get_template_annotations(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<MetadataResponse> {
        read(&state, &auth.0, template(id), MetadataField::Annotations).await
    }

    /// Set a template annotation; answers all its annotations.
    #[oai(
        path = "/templates/:id/annotations",
        method = "post",
        tag = "Tag::Metadata"
    )]
    async fn put_template_annotation(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        body: Json<MetadataEntry>,
    ) -> ApiResult<MetadataResponse> {
        put(
            &state,
            &auth.0,
            template(id),
            MetadataField::Annotations,
            body.0,
        )
        .await
    }

    /// Remove a template annotation; answers the remaining annotations.
    #[oai(
        path = "/templates/:id/annotations/:key",
        method = "delete",
        tag = "Tag::Metadata"
    )]
    async fn remove_template_annotation(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        /// The key (percent-encode a `/` as `%2F`).
        key: Path<String>,
    ) -> ApiResult<MetadataResponse> {
        remove(
            &state,
            &auth.0,
            template(id),
            MetadataField::Annotations,
            &key.0,
        )
        .await
    }
}
