//! Stacks and their deployment objects: `/stacks`, `/stacks/{id}/deployment-objects`
//! and `/deployment-objects/{id}`.
//!
//! Every handler parses, calls the control plane and maps the answer; who may see what
//! is decided there (`brokkr_core::runtime`, `stacks.rs`): admin any stack, a generator
//! only its own (another generator's stack is a 404), agents 403.

use std::collections::BTreeMap;

use brokkr_core::runtime::IncludeContent;
use brokkr_core::runtime::plan::Outcome;
use brokkr_core::{
    DeploymentObjectId, GeneratorId, NewStack, Stack, StackFilter, StackId, StackUpdate,
};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiRequest, ApiResponse, Object, OpenApi, Union};
use uuid::Uuid;

use crate::api::Tag;
use crate::api::dto::{DeploymentObjectDto, DeploymentObjectPage, IncludeParam, OrderParam, page};
use crate::api::fields::{Description, LabelValue, Name, labels, no_null};
use crate::api::plans::dto::PlanDto;
use crate::api::plans::guard_options;
use crate::api::yaml_body::YamlText;
use crate::auth::BearerAuth;
use crate::error::{ApiError, ApiResult};
use crate::page_type;
use crate::state::AppState;

// ---------------------------------------------------------------------------------------
// DTOs

/// A named group of Kubernetes resources managed as one unit.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "Stack")]
pub struct StackDto {
    /// Its id.
    pub id: Uuid,
    /// Unique among live stacks.
    pub name: String,
    /// Free text.
    #[oai(skip_serializing_if_is_none)]
    pub description: Option<String>,
    /// The generator that owns it; absent for an admin's stack.
    #[oai(skip_serializing_if_is_none)]
    pub generator_id: Option<Uuid>,
    /// Labels, for selection.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When its name, description, labels or annotations last changed.
    pub updated_at: DateTime<Utc>,
    /// When it was deleted; absent while it lives.
    #[oai(skip_serializing_if_is_none)]
    pub deleted_at: Option<DateTime<Utc>>,
}

impl From<Stack> for StackDto {
    fn from(s: Stack) -> Self {
        Self {
            id: s.id.into(),
            name: s.name,
            description: s.description,
            generator_id: s.generator_id.map(Into::into),
            labels: s.labels,
            annotations: s.annotations,
            created_at: s.created_at,
            updated_at: s.updated_at,
            deleted_at: s.deleted_at,
        }
    }
}

page_type!(
    /// A page of stacks.
    StackPage,
    StackDto
);

/// Body of `POST /stacks`.
#[derive(Debug, Clone, Object)]
pub struct CreateStackRequest {
    /// Unique among live stacks.
    pub name: Name,
    /// Free text; `""` is none.
    #[oai(deserialize_with = "no_null")]
    pub description: Option<Description>,
    /// Initial labels. Keys are `[prefix/]name` as in Kubernetes: an optional prefix
    /// of lowercase DNS labels joined by dots (at most 253 characters) and `/`, then a
    /// name of 1-63 alphanumerics, `-`, `_` or `.` starting and ending with an
    /// alphanumeric.
    #[oai(default)]
    pub labels: BTreeMap<String, LabelValue>,
    /// Initial annotations: keys as for labels, values free text; keys and values
    /// together at most 256 KiB.
    #[oai(default)]
    pub annotations: BTreeMap<String, String>,
    /// The owning generator (admin only; a generator's stacks are always its own).
    #[oai(deserialize_with = "no_null")]
    pub generator_id: Option<Uuid>,
}

/// Body of `PATCH /stacks/{id}`: absent fields stay as they are.
#[derive(Debug, Clone, Object)]
pub struct UpdateStackRequest {
    /// New name.
    #[oai(deserialize_with = "no_null")]
    pub name: Option<Name>,
    /// New description; `""` clears it.
    #[oai(deserialize_with = "no_null")]
    pub description: Option<Description>,
}

/// Body of `POST /stacks/{id}/deployment-objects`.
#[derive(Debug, Clone, Object)]
pub struct CreateDeploymentObjectRequest {
    /// Multi-document Kubernetes YAML; must be empty (or absent) for a deletion marker.
    #[oai(default)]
    pub yaml_content: String,
    /// `true` to append a marker telling agents to remove the stack's objects.
    #[oai(default)]
    pub is_deletion_marker: bool,
}

impl From<CreateStackRequest> for NewStack {
    fn from(body: CreateStackRequest) -> Self {
        Self {
            name: body.name.into(),
            description: body.description.map(String::from),
            generator_id: body.generator_id.map(GeneratorId::from),
            labels: labels(body.labels),
            annotations: body.annotations,
        }
    }
}

impl From<UpdateStackRequest> for StackUpdate {
    fn from(body: UpdateStackRequest) -> Self {
        Self {
            name: body.name.map(String::from),
            description: body.description.map(|d| Some(d.into())),
        }
    }
}

/// The body of `POST /stacks/{id}/deployment-objects`, by content type.
#[derive(Debug, ApiRequest)]
pub enum CreateDeploymentObjectBody {
    /// `application/json`: YAML in `yaml_content`, or a deletion marker.
    Json(Json<CreateDeploymentObjectRequest>),
    /// `application/yaml`: the multi-document YAML itself.
    Yaml(YamlText),
}

/// What a `POST /stacks/{id}/deployment-objects` body asks to append.
enum Content {
    Yaml(String),
    DeletionMarker,
}

impl CreateDeploymentObjectRequest {
    /// The one thing the body asks for: YAML, or a marker with no YAML (422
    /// `validation_failed` for a marker that carries YAML).
    fn content(self) -> ApiResult<Content> {
        match (self.is_deletion_marker, self.yaml_content) {
            (false, yaml) => Ok(Content::Yaml(yaml)),
            (true, yaml) if yaml.trim().is_empty() => Ok(Content::DeletionMarker),
            (true, _) => Err(ApiError::unprocessable(
                "validation_failed",
                "a deletion marker carries no yaml_content",
                None,
            )),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Responses

/// Answer of `POST /stacks`.
#[derive(Debug, ApiResponse)]
pub enum StackCreated {
    /// The stack was created.
    #[oai(status = 201)]
    Created(Json<StackDto>),
}

/// A stack.
#[derive(Debug, ApiResponse)]
pub enum StackResponse {
    /// The stack.
    #[oai(status = 200)]
    Ok(Json<StackDto>),
}

/// A page of stacks.
#[derive(Debug, ApiResponse)]
pub enum StackPageResponse {
    /// The page.
    #[oai(status = 200)]
    Ok(Json<StackPage>),
}

/// The body of `DELETE /stacks/{id}`: the deletion marker, or on a dry run the plan
/// (told apart by `plan_id`, which only a plan has).
#[derive(Debug, Clone, Union)]
#[oai(one_of)]
pub enum MarkerOrPlan {
    /// The deletion marker appended for the stack.
    Marker(DeploymentObjectDto),
    /// Dry run: the plan; nothing changed.
    Plan(PlanDto),
}

/// Answer of `DELETE /stacks/{id}`.
#[derive(Debug, ApiResponse)]
pub enum StackDeleted {
    /// The stack was deleted and the body is the deletion marker appended for it; or,
    /// with `?dry_run=true`, the plan.
    #[oai(status = 200)]
    Ok(Json<MarkerOrPlan>),
}

/// Answer of `POST /stacks/{id}/deployment-objects`.
#[derive(Debug, ApiResponse)]
pub enum DeploymentObjectCreated {
    /// The deployment object was appended.
    #[oai(status = 201)]
    Created(Json<DeploymentObjectDto>),
    /// Dry run: the plan; nothing changed.
    #[oai(status = 200)]
    Planned(Json<PlanDto>),
}

/// A deployment object.
#[derive(Debug, ApiResponse)]
pub enum DeploymentObjectResponse {
    /// The deployment object.
    #[oai(status = 200)]
    Ok(Json<DeploymentObjectDto>),
}

/// A page of deployment objects.
#[derive(Debug, ApiResponse)]
pub enum DeploymentObjectPageResponse {
    /// The page, ordered by `sequence_id`.
    #[oai(status = 200)]
    Ok(Json<DeploymentObjectPage>),
}

// ---------------------------------------------------------------------------------------
// Operations

/// Stack and deployment-object operations.
pub struct StacksApi;

#[OpenApi]
impl StacksApi {
    /// Create a stack.
    ///
    /// Admin, or a generator (the stack is then its own; `generator_id` is for admins).
    #[oai(
        path = "/stacks",
        method = "post",
        operation_id = "createStack",
        tag = "Tag::Stacks"
    )]
    async fn create_stack(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        body: Json<CreateStackRequest>,
    ) -> ApiResult<StackCreated> {
        let stack = state
            .control_plane
            .create_stack(&auth.0, body.0.into())
            .await?;
        Ok(StackCreated::Created(Json(stack.into())))
    }

    /// List stacks, ordered by id.
    ///
    /// Admin sees all (optionally one generator's); a generator sees only its own.
    #[allow(clippy::too_many_arguments)]
    #[oai(
        path = "/stacks",
        method = "get",
        operation_id = "listStacks",
        tag = "Tag::Stacks"
    )]
    async fn list_stacks(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        /// Only stacks of this generator (admin only).
        generator_id: Query<Option<Uuid>>,
        /// Only the stack with this exact name.
        name: Query<Option<String>>,
        /// Include soft-deleted stacks.
        include_deleted: Query<Option<bool>>,
        /// Rows per page, 1-1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// `asc` (default) or `desc`.
        order: Query<Option<OrderParam>>,
    ) -> ApiResult<StackPageResponse> {
        let filter = StackFilter {
            id: None,
            generator_id: generator_id.0.map(GeneratorId::from),
            name: name.0,
            include_deleted: include_deleted.0.unwrap_or(false),
        };
        let page = page(limit, cursor, order)?;
        let stacks = state
            .control_plane
            .list_stacks(&auth.0, filter, &page)
            .await?;
        Ok(StackPageResponse::Ok(Json(stacks.into())))
    }

    /// Get a live stack.
    #[oai(
        path = "/stacks/:id",
        method = "get",
        operation_id = "getStack",
        tag = "Tag::Stacks"
    )]
    async fn get_stack(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<StackResponse> {
        let stack = state.control_plane.get_stack(&auth.0, id.0.into()).await?;
        Ok(StackResponse::Ok(Json(stack.into())))
    }

    /// Rename or re-describe a stack.
    #[oai(
        path = "/stacks/:id",
        method = "patch",
        operation_id = "updateStack",
        tag = "Tag::Stacks"
    )]
    async fn update_stack(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        body: Json<UpdateStackRequest>,
    ) -> ApiResult<StackResponse> {
        let stack = state
            .control_plane
            .update_stack(&auth.0, id.0.into(), body.0.into())
            .await?;
        Ok(StackResponse::Ok(Json(stack.into())))
    }

    /// Delete a stack.
    ///
    /// Soft-deletes it and appends its deletion marker, so every agent responsible for
    /// it removes its objects; answers the marker. The history stays readable. The
    /// blast-radius guard checks it first: removing the stack from more of its agents
    /// than the limits allow is a 409 `blast_radius_exceeded` (nothing changes but the
    /// plan stored), until an admin repeats it with `?confirm_plan_id=` (403 for a
    /// generator; 409 `plan_stale` or `plan_consumed` when the plan no longer
    /// applies). With `?dry_run=true` the answer is the plan, told apart by its
    /// `plan_id`, and nothing changes.
    #[oai(
        path = "/stacks/:id",
        method = "delete",
        operation_id = "deleteStack",
        tag = "Tag::Stacks"
    )]
    async fn delete_stack(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        /// `true`: answer the plan and change nothing.
        dry_run: Query<Option<bool>>,
        /// Go ahead past the guard on this plan (admin only, once, while the world is
        /// as planned).
        confirm_plan_id: Query<Option<Uuid>>,
    ) -> ApiResult<StackDeleted> {
        let outcome = state
            .control_plane
            .guarded(guard_options(dry_run, confirm_plan_id))
            .delete_stack(&auth.0, id.0.into())
            .await?;
        Ok(StackDeleted::Ok(Json(match outcome {
            Outcome::Done(marker) => MarkerOrPlan::Marker(marker.into()),
            Outcome::Planned(plan) => MarkerOrPlan::Plan((*plan).into()),
        })))
    }

    /// Append a deployment object to a stack.
    ///
    /// With a rollout policy on the stack, the object starts a rollout (see
    /// `docs/rollouts.md`) instead of reaching every agent at once; `?rollout=immediate`
    /// (admin) releases it at once.
    ///
    /// The body is JSON (`yaml_content`, or `is_deletion_marker`), or the YAML itself as
    /// `application/yaml` (also accepted: `application/x-yaml`, `text/yaml`,
    /// `text/x-yaml`). The YAML is parsed and validated before anything is stored: an
    /// invalid document is a 422 `invalid_manifest` naming the document, an oversized
    /// one a 413. The blast-radius guard compares it with what every agent applied: a
    /// change that prunes more than the limits allow, or a protected kind, is a 409
    /// `blast_radius_exceeded` until an admin repeats it with `?confirm_plan_id=` (403
    /// for a generator); with `?dry_run=true` the answer is the plan (200) and nothing
    /// is appended.
    #[oai(
        path = "/stacks/:id/deployment-objects",
        method = "post",
        operation_id = "createDeploymentObject",
        tag = "Tag::DeploymentObjects"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn create_deployment_object(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        /// `true`: answer the plan and change nothing.
        dry_run: Query<Option<bool>>,
        /// Go ahead past the guard on this plan (admin only, once, while the world is
        /// as planned).
        confirm_plan_id: Query<Option<Uuid>>,
        /// `immediate` (admin only): release the object to every agent at once, past
        /// the stack's rollout policy, cancelling its rollouts (a hotfix). Default
        /// `policy`: a stack with a rollout policy rolls the object out in waves.
        rollout: Query<Option<RolloutStrategy>>,
        body: CreateDeploymentObjectBody,
    ) -> ApiResult<DeploymentObjectCreated> {
        let (caller, stack) = (auth.0, StackId::from(id.0));
        let content = match body {
            CreateDeploymentObjectBody::Json(body) => body.0.content()?,
            CreateDeploymentObjectBody::Yaml(yaml) => Content::Yaml(yaml.0),
        };
        let mut guarded = state
            .control_plane
            .guarded(guard_options(dry_run, confirm_plan_id));
        if rollout.0 == Some(RolloutStrategy::Immediate) {
            guarded = guarded.immediate();
        }
        let outcome = match content {
            Content::Yaml(yaml) => {
                guarded
                    .append_deployment_object(&caller, stack, yaml)
                    .await?
            }
            Content::DeletionMarker => guarded.append_deletion_marker(&caller, stack).await?,
        };
        Ok(match outcome {
            Outcome::Done(object) => DeploymentObjectCreated::Created(Json(object.into())),
            Outcome::Planned(plan) => DeploymentObjectCreated::Planned(Json((*plan).into())),
        })
    }

    /// List a stack's deployment objects, ordered by `sequence_id`.
    ///
    /// Works for deleted stacks too (for their owner and admin). Entries leave out
    /// `yaml_content` unless `?include=yaml_content` asks for it; then a page also ends
    /// before its YAML passes the server's byte budget (`server.listing_yaml_bytes`,
    /// 4 MiB by default), with a `next_cursor`, and holds at least one object.
    #[oai(
        path = "/stacks/:id/deployment-objects",
        method = "get",
        operation_id = "listDeploymentObjects",
        tag = "Tag::DeploymentObjects"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list_deployment_objects(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        /// Rows per page, 1-1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// `asc` (default) or `desc`.
        order: Query<Option<OrderParam>>,
        /// `yaml_content` to include each object's YAML, in pages bounded in bytes;
        /// left out by default.
        include: Query<Option<IncludeParam>>,
    ) -> ApiResult<DeploymentObjectPageResponse> {
        let page = page(limit, cursor, order)?;
        let include = match include.0 {
            Some(IncludeParam::YamlContent) => IncludeContent::Yes,
            None => IncludeContent::No,
        };
        let objects = state
            .control_plane
            .list_deployment_objects(&auth.0, id.0.into(), include, &page)
            .await?;
        Ok(DeploymentObjectPageResponse::Ok(Json(objects.into())))
    }

    /// Get a deployment object (also of a deleted stack, for its owner and admin).
    #[oai(
        path = "/deployment-objects/:id",
        method = "get",
        operation_id = "getDeploymentObject",
        tag = "Tag::DeploymentObjects"
    )]
    async fn get_deployment_object(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<DeploymentObjectResponse> {
        let object = state
            .control_plane
            .get_deployment_object(&auth.0, DeploymentObjectId::from(id.0))
            .await?;
        Ok(DeploymentObjectResponse::Ok(Json(object.into())))
    }
}

/// How an appended object reaches the stack's agents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, poem_openapi::Enum)]
#[oai(rename_all = "snake_case")]
pub enum RolloutStrategy {
    /// By the stack's rollout policy: in waves when it has one, else at once.
    Policy,
    /// At once, past the policy (admin only).
    Immediate,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body(yaml: &str, is_deletion_marker: bool) -> CreateDeploymentObjectRequest {
        CreateDeploymentObjectRequest {
            yaml_content: yaml.into(),
            is_deletion_marker,
        }
    }

    #[test]
    fn a_body_asks_for_yaml_or_a_bare_marker() {
        let yaml = "kind: ConfigMap\n";
        assert!(matches!(body(yaml, false).content(), Ok(Content::Yaml(y)) if y == yaml));
        // Empty YAML is the parser's to refuse (422 `invalid_manifest`), not a marker.
        assert!(matches!(body("", false).content(), Ok(Content::Yaml(_))));
        assert!(matches!(
            body(" \n", true).content(),
            Ok(Content::DeletionMarker)
        ));
        let err = body(yaml, true)
            .content()
            .err()
            .expect("a marker with YAML");
        assert_eq!(err.status(), 422);
        assert_eq!(err.body().code, "validation_failed");
    }
}
