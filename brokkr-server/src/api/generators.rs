//! Generators (external systems with their own keys): `/generators` and
//! `/generators/{id}/rotate-pak`.
//!
//! Admin manages generators; a generator may read itself and rotate its own key
//! (another generator is a 404 to it); agents get 403. A new key is shown once, in
//! the answer that issues it; only its hash is stored. Rotating or deleting invalidates
//! the key cache of this replica at once.

use brokkr_core::{
    GeneratorFilter, GeneratorId, GeneratorUpdate, KeyOwner, NewGenerator, Pak, model::Generator,
};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use crate::api::Tag;
use crate::api::dto::{OrderParam, page};
use crate::api::stacks::patch_optional;
use crate::auth::{BearerAuth, Identity};
use crate::error::{ApiError, ApiResult};
use crate::page_type;
use crate::state::AppState;

/// 403 for agents, 404 for a generator asking about another generator.
fn require_self_or_admin(identity: &Identity, id: GeneratorId) -> ApiResult<()> {
    identity.require_admin_or_generator()?;
    match identity {
        Identity::Generator(me) if *me != id => Err(ApiError::not_found("generator", id)),
        _ => Ok(()),
    }
}

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
    pub name: String,
    /// Free text.
    pub description: Option<String>,
}

/// Body of `PATCH /generators/{id}`: absent fields stay as they are.
#[derive(Debug, Clone, Object)]
pub struct UpdateGeneratorRequest {
    /// New name.
    pub name: Option<String>,
    /// New description; `null` clears it.
    pub description: MaybeUndefined<String>,
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
    #[oai(path = "/generators", method = "post", tag = "Tag::Generators")]
    async fn create_generator(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        body: Json<CreateGeneratorRequest>,
    ) -> ApiResult<GeneratorCreated> {
        auth.0.require_admin()?;
        let body = body.0;
        let key = Pak::generate();
        let generator = state
            .store
            .create_generator(
                &auth.0.actor(),
                NewGenerator {
                    name: body.name,
                    description: body.description,
                    key: key.stored(),
                },
            )
            .await?;
        // Forget a cached "unknown key" answer for the new short id.
        state
            .control_plane
            .forget_keys(KeyOwner::Generator(generator.id), Some(key.short_id()));
        Ok(GeneratorCreated::Created(Json(GeneratorWithKey {
            generator: generator.into(),
            api_key: key.expose().to_owned(),
        })))
    }

    /// List generators, ordered by id (admin).
    #[oai(path = "/generators", method = "get", tag = "Tag::Generators")]
    async fn list_generators(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        /// Include soft-deleted generators.
        include_deleted: Query<Option<bool>>,
        /// Rows per page, 1-1000 (default 100).
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// `asc` (default) or `desc`.
        order: Query<Option<OrderParam>>,
    ) -> ApiResult<GeneratorPageResponse> {
        auth.0.require_admin()?;
        let page = page(limit, cursor, order)?;
        let filter = GeneratorFilter {
            include_deleted: include_deleted.0.unwrap_or(false),
        };
        let generators = state.store.list_generators(&filter, &page).await?;
        Ok(GeneratorPageResponse::Ok(Json(generators.into())))
    }

    /// Get a generator (admin, or the generator itself).
    #[oai(path = "/generators/:id", method = "get", tag = "Tag::Generators")]
    async fn get_generator(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<GeneratorResponse> {
        let id = GeneratorId::from(id.0);
        require_self_or_admin(&auth.0, id)?;
        let generator = state.store.get_generator(id).await?;
        Ok(GeneratorResponse::Ok(Json(generator.into())))
    }

    /// Rename or re-describe a generator (admin).
    #[oai(path = "/generators/:id", method = "patch", tag = "Tag::Generators")]
    async fn update_generator(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        body: Json<UpdateGeneratorRequest>,
    ) -> ApiResult<GeneratorResponse> {
        auth.0.require_admin()?;
        let body = body.0;
        let update = GeneratorUpdate {
            name: body.name,
            description: patch_optional(body.description),
        };
        let generator = state
            .store
            .update_generator(&auth.0.actor(), id.0.into(), update)
            .await?;
        Ok(GeneratorResponse::Ok(Json(generator.into())))
    }

    /// Delete a generator and revoke its keys (admin).
    ///
    /// Its stacks and templates stay. The revocation takes effect at once on this
    /// replica, and within the key cache TTL on others.
    #[oai(path = "/generators/:id", method = "delete", tag = "Tag::Generators")]
    async fn delete_generator(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<GeneratorDeleted> {
        auth.0.require_admin()?;
        let id = GeneratorId::from(id.0);
        state.store.delete_generator(&auth.0.actor(), id).await?;
        state
            .control_plane
            .forget_keys(KeyOwner::Generator(id), None);
        Ok(GeneratorDeleted::NoContent)
    }

    /// Issue a new key for a generator, revoking its previous keys.
    ///
    /// Admin, or the generator itself (whose current key stops working at once on
    /// this replica). The new key is in this answer only.
    #[oai(
        path = "/generators/:id/rotate-pak",
        method = "post",
        tag = "Tag::Generators"
    )]
    async fn rotate_generator_key(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<GeneratorKeyRotated> {
        let id = GeneratorId::from(id.0);
        require_self_or_admin(&auth.0, id)?;
        let key = Pak::generate();
        let owner = KeyOwner::Generator(id);
        state
            .store
            .rotate_api_key(&auth.0.actor(), owner, key.stored())
            .await?;
        state.control_plane.forget_keys(owner, Some(key.short_id()));
        Ok(GeneratorKeyRotated::Ok(Json(RotatedGeneratorKey {
            generator_id: id.into(),
            api_key: key.expose().to_owned(),
        })))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_generator_reaches_only_itself() {
        let (me, other) = (GeneratorId::new(), GeneratorId::new());
        assert!(require_self_or_admin(&Identity::Generator(me), me).is_ok());
        assert!(require_self_or_admin(&Identity::Admin, other).is_ok());
        let err = require_self_or_admin(&Identity::Generator(me), other).unwrap_err();
        assert_eq!(err.status(), 404);
        let agent = Identity::Agent(brokkr_core::AgentId::new());
        assert_eq!(require_self_or_admin(&agent, me).unwrap_err().status(), 403);
    }
}
