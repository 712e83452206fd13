//! Versioned templates: `/templates`, `/templates/{id}/versions`.
//!
//! A template belongs to a generator, or is global (`generator_id` absent, created by
//! an admin). Who may see and change which template is decided by the control plane
//! (`brokkr_core::runtime`, `templates.rs`): admin sees and changes all; a generator
//! sees its own and the global ones and changes only its own (another generator's
//! template is a 404; a global one is a 403 to change); agents get 403. Every update
//! appends a version; older versions stay readable. A version is stored only if its
//! source compiles and its schema is a valid JSON Schema; rendering lives in
//! [`crate::api::generate`].

use std::collections::BTreeMap;

use brokkr_core::runtime::IncludeContent;
use brokkr_core::{
    GeneratorId, ListedTemplate, NewTemplate, NewTemplateVersion, Template, TemplateFilter,
    TemplateVersion,
};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use uuid::Uuid;

use crate::api::Tag;
use crate::api::dto::{OrderParam, page};
use crate::api::fields::{Description, LabelValue, Name, labels, no_null};
use crate::auth::BearerAuth;
use crate::error::ApiResult;
use crate::page_type;
use crate::state::AppState;

// ---------------------------------------------------------------------------------------
// DTOs

/// A versioned template, with the fields of its latest version.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "Template")]
pub struct TemplateDto {
    /// Its id, shared by all its versions.
    pub id: Uuid,
    /// Unique among live templates.
    pub name: String,
    /// Free text.
    #[oai(skip_serializing_if_is_none)]
    pub description: Option<String>,
    /// The owning generator; absent for a global template.
    #[oai(skip_serializing_if_is_none)]
    pub generator_id: Option<Uuid>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// The latest version's number (1 for the first).
    pub version: i32,
    /// The latest version's minijinja source.
    pub content: String,
    /// The latest version's JSON Schema of the parameters.
    pub parameters_schema: serde_json::Value,
    /// When the template was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed (a new version counts).
    pub updated_at: DateTime<Utc>,
    /// When it was deleted; absent while it lives.
    #[oai(skip_serializing_if_is_none)]
    pub deleted_at: Option<DateTime<Utc>>,
}

impl From<Template> for TemplateDto {
    fn from(t: Template) -> Self {
        Self {
            id: t.id.into(),
            name: t.name,
            description: t.description,
            generator_id: t.generator_id.map(Into::into),
            labels: t.labels,
            annotations: t.annotations,
            version: t.latest.version,
            content: t.latest.content,
            parameters_schema: t.latest.parameters_schema,
            created_at: t.created_at,
            updated_at: t.updated_at,
            deleted_at: t.deleted_at,
        }
    }
}

/// What a listing of templates may include beyond each template's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "TemplateInclude", rename_all = "snake_case")]
pub enum TemplateIncludeParam {
    /// Each template's latest `content` and `parameters_schema`; pages then also end
    /// at the server's byte budget.
    Content,
}

/// A template in a listing: its latest version's `content` and `parameters_schema`
/// only when asked for with `?include=content`, their sizes always.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "ListedTemplate")]
pub struct ListedTemplateDto {
    /// Its id, shared by all its versions.
    pub id: Uuid,
    /// Unique among live templates.
    pub name: String,
    /// Free text.
    #[oai(skip_serializing_if_is_none)]
    pub description: Option<String>,
    /// The owning generator; absent for a global template.
    #[oai(skip_serializing_if_is_none)]
    pub generator_id: Option<Uuid>,
    /// Labels.
    pub labels: BTreeMap<String, String>,
    /// Annotations.
    pub annotations: BTreeMap<String, String>,
    /// The latest version's number (1 for the first).
    pub version: i32,
    /// The latest version's minijinja source; present only with `?include=content`.
    #[oai(skip_serializing_if_is_none)]
    pub content: Option<String>,
    /// Size of the latest version's source in bytes, also when it is left out.
    pub content_bytes: u64,
    /// The latest version's JSON Schema of the parameters; present only with
    /// `?include=content`.
    #[oai(skip_serializing_if_is_none)]
    pub parameters_schema: Option<serde_json::Value>,
    /// Size of the schema as the database keeps its JSON text, in bytes, also when it
    /// is left out (on PostgreSQL a little above the compact JSON sent here).
    pub parameters_schema_bytes: u64,
    /// When the template was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed (a new version counts).
    pub updated_at: DateTime<Utc>,
    /// When it was deleted; absent while it lives.
    #[oai(skip_serializing_if_is_none)]
    pub deleted_at: Option<DateTime<Utc>>,
}

impl From<ListedTemplate> for ListedTemplateDto {
    fn from(t: ListedTemplate) -> Self {
        Self {
            id: t.id.into(),
            name: t.name,
            description: t.description,
            generator_id: t.generator_id.map(Into::into),
            labels: t.labels,
            annotations: t.annotations,
            version: t.latest.version,
            content: t.latest.content,
            content_bytes: t.latest.content_bytes,
            parameters_schema: t.latest.parameters_schema,
            parameters_schema_bytes: t.latest.parameters_schema_bytes,
            created_at: t.created_at,
            updated_at: t.updated_at,
            deleted_at: t.deleted_at,
        }
    }
}

page_type!(
    /// A page of templates.
    TemplatePage,
    ListedTemplateDto
);

/// One immutable version of a template.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "TemplateVersion")]
pub struct TemplateVersionDto {
    /// The template.
    pub template_id: Uuid,
    /// 1 for the first, then +1 per update.
    pub version: i32,
    /// minijinja source.
    pub content: String,
    /// JSON Schema of the parameters.
    pub parameters_schema: serde_json::Value,
    /// When this version was stored.
    pub created_at: DateTime<Utc>,
}

impl From<TemplateVersion> for TemplateVersionDto {
    fn from(v: TemplateVersion) -> Self {
        Self {
            template_id: v.template_id.into(),
            version: v.version,
            content: v.content,
            parameters_schema: v.parameters_schema,
            created_at: v.created_at,
        }
    }
}

page_type!(
    /// A page of template versions, ordered by version number.
    TemplateVersionPage,
    TemplateVersionDto
);

/// Body of `POST /templates`.
#[derive(Debug, Clone, Object)]
pub struct CreateTemplateRequest {
    /// Unique among live templates.
    pub name: Name,
    /// Free text; `""` is none.
    #[oai(deserialize_with = "no_null")]
    pub description: Option<Description>,
    /// minijinja source of version 1.
    pub content: String,
    /// JSON Schema (an object) of version 1's parameters.
    pub parameters_schema: serde_json::Value,
    /// Initial labels. Keys are `[prefix/]name` as in Kubernetes:
    /// an optional prefix of lowercase DNS labels joined by dots (at most 253
    /// characters) and `/`, then a name of 1-63 alphanumerics, `-`, `_` or `.` starting
    /// and ending with an alphanumeric.
    #[oai(default)]
    pub labels: BTreeMap<String, LabelValue>,
    /// Initial annotations: keys as for labels, values free text; keys and values
    /// together at most 256 KiB.
    #[oai(default)]
    pub annotations: BTreeMap<String, String>,
    /// The owning generator (admin only; absent makes a global template). A
    /// generator's templates are always its own.
    #[oai(deserialize_with = "no_null")]
    pub generator_id: Option<Uuid>,
}

/// Body of `PUT /templates/{id}`: the next version.
#[derive(Debug, Clone, Object)]
pub struct UpdateTemplateRequest {
    /// minijinja source.
    pub content: String,
    /// JSON Schema (an object) of the parameters.
    pub parameters_schema: serde_json::Value,
}

impl From<CreateTemplateRequest> for NewTemplate {
    fn from(body: CreateTemplateRequest) -> Self {
        Self {
            name: body.name.into(),
            description: body.description.map(String::from),
            generator_id: body.generator_id.map(GeneratorId::from),
            labels: labels(body.labels),
            annotations: body.annotations,
            content: body.content,
            parameters_schema: body.parameters_schema,
        }
    }
}

impl From<UpdateTemplateRequest> for NewTemplateVersion {
    fn from(body: UpdateTemplateRequest) -> Self {
        Self {
            content: body.content,
            parameters_schema: body.parameters_schema,
        }
    }
}

// ---------------------------------------------------------------------------------------
// Responses

/// Answer of `POST /templates`.
#[derive(Debug, ApiResponse)]
pub enum TemplateCreated {
    /// The template was created at version 1.
    #[oai(status = 201)]
    Created(Json<TemplateDto>),
}

/// A template.
#[derive(Debug, ApiResponse)]
pub enum TemplateResponse {
    /// The template with its latest version.
    #[oai(status = 200)]
    Ok(Json<TemplateDto>),
}

/// A page of templates.
#[derive(Debug, ApiResponse)]
pub enum TemplatePageResponse {
    /// The page.
    #[oai(status = 200)]
    Ok(Json<TemplatePage>),
}

/// One template version.
#[derive(Debug, ApiResponse)]
pub enum TemplateVersionResponse {
    /// The version.
    #[oai(status = 200)]
    Ok(Json<TemplateVersionDto>),
}

/// A page of template versions.
#[derive(Debug, ApiResponse)]
pub enum TemplateVersionPageResponse {
    /// The page.
    #[oai(status = 200)]
    Ok(Json<TemplateVersionPage>),
}

/// Answer of `DELETE /templates/{id}`.
#[derive(Debug, ApiResponse)]
pub enum TemplateDeleted {
    /// The template was soft-deleted.
    #[oai(status = 204)]
    NoContent,
}

// ---------------------------------------------------------------------------------------
// Operations

/// Template operations.
pub struct TemplatesApi;

#[OpenApi]
impl TemplatesApi {
    /// Create a template at version 1.
    ///
    /// Admin (a global template, or one for a generator), or a generator (its own).
    #[oai(
        path = "/templates",
        method = "post",
        operation_id = "createTemplate",
        tag = "Tag::Templates"
    )]
    async fn create_template(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        body: Json<CreateTemplateRequest>,
    ) -> ApiResult<TemplateCreated> {
        let template = state
            .control_plane
            .create_template(&auth.0, body.0.into())
            .await?;
        Ok(TemplateCreated::Created(Json(template.into())))
    }

    /// List templates, ordered by id.
    ///
    /// Admin sees all (optionally one generator's); a generator sees its own and the
    /// global ones (with `generator_id`, only its own). A generator's page may hold
    /// fewer rows than `limit` (other generators' rows are left out); follow
    /// `next_cursor` until it is absent.
    ///
    /// Entries leave out the latest version's `content` and `parameters_schema` unless
    /// `?include=content` asks for them; then a page also ends before they pass the
    /// server's byte budget (`server.listing_yaml_bytes`, 4 MiB by default), with a
    /// `next_cursor`, and holds at least one template.
    #[allow(clippy::too_many_arguments)]
    #[oai(
        path = "/templates",
        method = "get",
        operation_id = "listTemplates",
        tag = "Tag::Templates"
    )]
    async fn list_templates(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        /// Only templates of this generator (a generator may name only itself).
        generator_id: Query<Option<Uuid>>,
        /// Include soft-deleted templates.
        include_deleted: Query<Option<bool>>,
        /// Rows per page, 1-1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// `asc` (default) or `desc`.
        order: Query<Option<OrderParam>>,
        /// `content` to include each template's latest source and parameter schema, in
        /// pages bounded in bytes; left out by default.
        include: Query<Option<TemplateIncludeParam>>,
    ) -> ApiResult<TemplatePageResponse> {
        let page = page(limit, cursor, order)?;
        let include = match include.0 {
            Some(TemplateIncludeParam::Content) => IncludeContent::Yes,
            None => IncludeContent::No,
        };
        let filter = TemplateFilter {
            generator_id: generator_id.0.map(GeneratorId::from),
            include_deleted: include_deleted.0.unwrap_or(false),
        };
        let templates = state
            .control_plane
            .list_templates(&auth.0, filter, include, &page)
            .await?;
        Ok(TemplatePageResponse::Ok(Json(templates.into())))
    }

    /// Get a template with its latest version.
    #[oai(
        path = "/templates/:id",
        method = "get",
        operation_id = "getTemplate",
        tag = "Tag::Templates"
    )]
    async fn get_template(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<TemplateResponse> {
        let template = state
            .control_plane
            .get_template(&auth.0, id.0.into())
            .await?;
        Ok(TemplateResponse::Ok(Json(template.into())))
    }

    /// Store a new version of a template.
    ///
    /// Admin, or the owning generator; older versions stay readable.
    #[oai(
        path = "/templates/:id",
        method = "put",
        operation_id = "updateTemplate",
        tag = "Tag::Templates"
    )]
    async fn update_template(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        body: Json<UpdateTemplateRequest>,
    ) -> ApiResult<TemplateResponse> {
        let template = state
            .control_plane
            .update_template(&auth.0, id.0.into(), body.0.into())
            .await?;
        Ok(TemplateResponse::Ok(Json(template.into())))
    }

    /// Delete a template (soft); its versions stay in the store.
    #[oai(
        path = "/templates/:id",
        method = "delete",
        operation_id = "deleteTemplate",
        tag = "Tag::Templates"
    )]
    async fn delete_template(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<TemplateDeleted> {
        state
            .control_plane
            .delete_template(&auth.0, id.0.into())
            .await?;
        Ok(TemplateDeleted::NoContent)
    }

    /// List a template's versions, ordered by version number.
    #[oai(
        path = "/templates/:id/versions",
        method = "get",
        operation_id = "listTemplateVersions",
        tag = "Tag::Templates"
    )]
    async fn list_template_versions(
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
    ) -> ApiResult<TemplateVersionPageResponse> {
        let page = page(limit, cursor, order)?;
        let versions = state
            .control_plane
            .list_template_versions(&auth.0, id.0.into(), &page)
            .await?;
        Ok(TemplateVersionPageResponse::Ok(Json(versions.into())))
    }

    /// Get one version of a template.
    #[oai(
        path = "/templates/:id/versions/:version",
        method = "get",
        operation_id = "getTemplateVersion",
        tag = "Tag::Templates"
    )]
    async fn get_template_version(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        /// The version number (1 for the first).
        version: Path<i32>,
    ) -> ApiResult<TemplateVersionResponse> {
        let version = state
            .control_plane
            .get_template_version(&auth.0, id.0.into(), version.0)
            .await?;
        Ok(TemplateVersionResponse::Ok(Json(version.into())))
    }
}
