//! Generators (external systems with their own keys): `/generators` and
//! `/generators/{id}/rotate-pak`.
//!
//! Admin manages generators; a generator may read itself and rotate its own key
//! (another generator is a 404 to it); agents get 403. A new key is shown once, in
//! the answer that issues it; only its hash is stored. The control plane invalidates
//! its key cache on rotation and deletion (`brokkr_core::runtime`, `generators.rs`).

use brokkr_core::runtime::{self, GeneratorSpec};
use brokkr_core::{GeneratorFilter, GeneratorUpdate, model::Generator};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use crate::api::Tag;
use crate::api::dto::{OrderParam, page};
use crate::api::fields::{Description, Name, no_null};
use crate::auth::BearerAuth;
use crate::error::ApiResult;
use crate::page_type;
use crate::state::AppState;

// ---------------------------------------------------------------------------------------
// DTOs

/// An external system that creates stacks through the API with its own key.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "Generator")]
pub struct GeneratorDto {
    /// Its id.
    pub id: Uuid,
    /// Unique among live generators.
    pub name: String,
    /// Free text.
    #[oai(skip_serializing_if_is_none)]
    pub description: Option<String>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it last changed.
    pub updated_at: DateTime<Utc>,
    /// When it was deleted; absent while it lives.
    #[oai(skip_serializing_if_is_none)]
    pub deleted_at: Option<DateTime<Utc>>,
}

impl From<Generator> for GeneratorDto {
    fn from(g: Generator) -> Self {
        Self {
            id: g.id.into(),
            name: g.name,
            description: g.description,
            created_at: g.created_at,
            updated_at: g.updated_at,
            deleted_at: g.deleted_at,
        }
    }
}

page_type!(
    /// A page of generators.
    GeneratorPage,
    GeneratorDto
);

/// Answer of `POST /generators`: the generator and its first key, shown only here.
#[derive(Debug, Clone, Object)]
pub struct GeneratorWithKey {
    /// The new generator.
    pub generator: GeneratorDto,
    /// Its key, `brokkr_<short id>_<secret>`. Store it now: it is never shown again.
    pub api_key: String,
}

/// Answer of `POST /generators/{id}/rotate-pak`: the new key, shown only here.
#[derive(Debug, Clone, Object)]
pub struct RotatedGeneratorKey {
    /// The generator.
    pub generator_id: Uuid,
    /// Its new key; every previous key of the generator is revoked.
    pub api_key: String,
}

/// Body of `POST /generators`.
#[derive(Debug, Clone, Object)]
pub struct CreateGeneratorRequest {
    /// Unique among live generators.
    pub name: Name,
    /// Free text; `""` is none.
    #[oai(deserialize_with = "no_null")]
    pub description: Option<Description>,
}

/// Body of `PATCH /generators/{id}`: absent fields stay as they are.
#[derive(Debug, Clone, Object)]
pub struct UpdateGeneratorRequest {
    /// New name.
    #[oai(deserialize_with = "no_null")]
    pub name: Option<Name>,
    /// New description; `""` clears it.
    #[oai(deserialize_with = "no_null")]
    pub description: Option<Description>,
}

impl From<CreateGeneratorRequest> for GeneratorSpec {
    fn from(body: CreateGeneratorRequest) -> Self {
        Self {
            name: body.name.into(),
            description: body.description.map(String::from),
        }
    }
}

impl From<UpdateGeneratorRequest> for GeneratorUpdate {
    fn from(body: UpdateGeneratorRequest) -> Self {
        Self {
            name: body.name.map(String::from),
            description: body.description.map(|d| Some(d.into())),
        }
    }
}

impl From<runtime::GeneratorWithKey> for GeneratorWithKey {
    fn from(created: runtime::GeneratorWithKey) -> Self {
        Self {
            generator: created.generator.into(),
            api_key: created.key.expose().to_owned(),
        }
    }
}

// ---------------------------------------------------------------------------------------
// Responses

/// Answer of `POST /generators`.
#[derive(Debug, ApiResponse)]
pub enum GeneratorCreated {
    /// The generator was created; the body holds its key, shown once.
    #[oai(status = 201)]
    Created(Json<GeneratorWithKey>),
}

/// A generator.
#[derive(Debug, ApiResponse)]
pub enum GeneratorResponse {
    /// The generator.
    #[oai(status = 200)]
    Ok(Json<GeneratorDto>),
}

/// A page of generators.
#[derive(Debug, ApiResponse)]
pub enum GeneratorPageResponse {
    /// The page.
    #[oai(status = 200)]
    Ok(Json<GeneratorPage>),
}

/// Answer of `DELETE /generators/{id}`.
#[derive(Debug, ApiResponse)]
pub enum GeneratorDeleted {
    /// The generator was soft-deleted and its keys revoked; its stacks stay.
    #[oai(status = 204)]
    NoContent,
}

/// Answer of `POST /generators/{id}/rotate-pak`.
#[derive(Debug, ApiResponse)]
pub enum GeneratorKeyRotated {
    /// A new key was issued; the body shows it once.
    #[oai(status = 200)]
    Ok(Json<RotatedGeneratorKey>),
}

// ---------------------------------------------------------------------------------------
// Operations

/// Generator operations.
pub struct GeneratorsApi;

#[OpenApi]
impl GeneratorsApi {
    /// Create a generator and its first key (admin).
    ///
    /// The key is in this answer only.
    #[oai(
        path = "/generators",
        method = "post",
        operation_id = "createGenerator",
        tag = "Tag::Generators"
    )]
    async fn create_generator(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        body: Json<CreateGeneratorRequest>,
    ) -> ApiResult<GeneratorCreated> {
        let created = state
            .control_plane
            .create_generator(&auth.0, body.0.into())
            .await?;
        Ok(GeneratorCreated::Created(Json(created.into())))
    }

    /// List generators, ordered by id (admin).
    #[oai(
        path = "/generators",
        method = "get",
        operation_id = "listGenerators",
        tag = "Tag::Generators"
    )]
    async fn list_generators(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        /// Include soft-deleted generators.
        include_deleted: Query<Option<bool>>,
        /// Rows per page, 1-1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// `asc` (default) or `desc`.
        order: Query<Option<OrderParam>>,
    ) -> ApiResult<GeneratorPageResponse> {
        let page = page(limit, cursor, order)?;
        let filter = GeneratorFilter {
            include_deleted: include_deleted.0.unwrap_or(false),
        };
        let generators = state
            .control_plane
            .list_generators(&auth.0, filter, &page)
            .await?;
        Ok(GeneratorPageResponse::Ok(Json(generators.into())))
    }

    /// Get a generator (admin, or the generator itself).
    #[oai(
        path = "/generators/:id",
        method = "get",
        operation_id = "getGenerator",
        tag = "Tag::Generators"
    )]
    async fn get_generator(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<GeneratorResponse> {
        let generator = state
            .control_plane
            .get_generator(&auth.0, id.0.into())
            .await?;
        Ok(GeneratorResponse::Ok(Json(generator.into())))
    }

    /// Rename or re-describe a generator (admin).
    #[oai(
        path = "/generators/:id",
        method = "patch",
        operation_id = "updateGenerator",
        tag = "Tag::Generators"
    )]
    async fn update_generator(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        body: Json<UpdateGeneratorRequest>,
    ) -> ApiResult<GeneratorResponse> {
        let generator = state
            .control_plane
            .update_generator(&auth.0, id.0.into(), body.0.into())
            .await?;
        Ok(GeneratorResponse::Ok(Json(generator.into())))
    }

    /// Delete a generator and revoke its keys (admin).
    ///
    /// Its stacks and templates stay. The revocation takes effect at once on this
    /// replica, and within the key cache TTL on others.
    #[oai(
        path = "/generators/:id",
        method = "delete",
        operation_id = "deleteGenerator",
        tag = "Tag::Generators"
    )]
    async fn delete_generator(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<GeneratorDeleted> {
        state
            .control_plane
            .delete_generator(&auth.0, id.0.into())
            .await?;
        Ok(GeneratorDeleted::NoContent)
    }

    /// Issue a new key for a generator, revoking its previous keys.
    ///
    /// Admin, or the generator itself (whose current key stops working at once on
    /// this replica). The new key is in this answer only.
    #[oai(
        path = "/generators/:id/rotate-pak",
        method = "post",
        operation_id = "rotateGeneratorKey",
        tag = "Tag::Generators"
    )]
    async fn rotate_generator_key(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<GeneratorKeyRotated> {
        let key = state
            .control_plane
            .rotate_generator_key(&auth.0, id.0.into())
            .await?;
        Ok(GeneratorKeyRotated::Ok(Json(RotatedGeneratorKey {
            generator_id: id.0,
            api_key: key.expose().to_owned(),
        })))
    }
}
