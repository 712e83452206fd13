//! Stacks and their deployment objects: `/stacks`, `/stacks/{id}/deployment-objects`
//! and `/deployment-objects/{id}`.
//!
//! Who may see what is decided here once, for every module:
//! [`visible_stack`] loads a live stack the caller may see (admin: any; generator: only
//! its own, another generator's stack is a 404; agent: 403), and
//! [`check_stack_history`] applies the same rule to the history of a stack that may
//! have been deleted (deployment objects stay readable by the owner and admin).

use std::collections::BTreeMap;

use brokkr_core::manifest::ParseOptions;
use brokkr_core::{
    DeploymentObjectId, GeneratorId, NewDeploymentObject, NewStack, PageRequest, Stack,
    StackFilter, StackId, StackUpdate, Store,
};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::{Path, Query};
use poem_openapi::payload::Json;
use poem_openapi::types::MaybeUndefined;
use poem_openapi::{ApiResponse, Object, OpenApi};
use uuid::Uuid;

use crate::api::Tag;
use crate::api::dto::{DeploymentObjectDto, DeploymentObjectPage, OrderParam, page};
use crate::auth::{BearerAuth, Identity};
use crate::error::{ApiError, ApiResult};
use crate::page_type;
use crate::state::AppState;

// ---------------------------------------------------------------------------------------
// Row access shared by every module

/// Loads a live stack the caller may see: admin any, a generator only its own (another
/// generator's stack is a 404, so it does not learn the stack exists), an agent never
/// (403). Every endpoint that touches a stack goes through this.
pub(crate) async fn visible_stack(
    state: &AppState,
    identity: &Identity,
    id: impl Into<StackId>,
) -> ApiResult<Stack> {
    stack_visible_in(state.store.as_ref(), identity, id.into()).await
}

/// Checks that the caller may read the history (deployment objects) of a stack that
/// is live or soft-deleted: the same rule as [`visible_stack`], except that a deleted
/// stack's history stays readable by its owner and by admin.
pub(crate) async fn check_stack_history(
    state: &AppState,
    identity: &Identity,
    id: impl Into<StackId>,
) -> ApiResult<()> {
    stack_history_visible_in(state.store.as_ref(), identity, id.into()).await
}

async fn stack_visible_in(store: &dyn Store, identity: &Identity, id: StackId) -> ApiResult<Stack> {
    identity.require_admin_or_generator()?;
    let stack = store.get_stack(id).await?;
    match identity {
        Identity::Generator(me) if stack.generator_id != Some(*me) => {
            Err(ApiError::not_found("stack", id))
        }
        _ => Ok(stack),
    }
}

async fn stack_history_visible_in(
    store: &dyn Store,
    identity: &Identity,
    id: StackId,
) -> ApiResult<()> {
    identity.require_admin_or_generator()?;
    let Identity::Generator(me) = *identity else {
        // Admin: the store itself answers 404 for a stack that never existed.
        return Ok(());
    };
    if owns_stack(store, me, id).await? {
        Ok(())
    } else {
        Err(ApiError::not_found("stack", id))
    }
}

/// Whether `generator` created the stack `id`, live or soft-deleted: one indexed lookup.
async fn owns_stack(store: &dyn Store, generator: GeneratorId, id: StackId) -> ApiResult<bool> {
    let filter = StackFilter {
        id: Some(id),
        generator_id: Some(generator),
        name: None,
        include_deleted: true,
    };
    let found = store.list_stacks(&filter, &PageRequest::first(1)).await?;
    Ok(!found.items.is_empty())
}

/// A PATCH field that may be left out (unchanged), `null` (cleared) or set.
pub(crate) fn patch_optional(field: MaybeUndefined<String>) -> Option<Option<String>> {
    match field {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(value) => Some(Some(value)),
    }
}

/// The generator whose rows a request creates or lists: an admin may name any generator
/// (or none); a generator always gets its own, and naming another generator is a 403.
pub(crate) fn owner_scope(
    identity: &Identity,
    requested: Option<Uuid>,
) -> ApiResult<Option<GeneratorId>> {
    match *identity {
        Identity::Admin => Ok(requested.map(GeneratorId::from)),
        Identity::Generator(me) => match requested {
            Some(other) if GeneratorId::from(other) != me => Err(ApiError::forbidden(
                "a generator may only act on its own rows",
            )),
            _ => Ok(Some(me)),
        },
        Identity::Agent(_) => Err(ApiError::forbidden("the agent role may not do this")),
    }
}

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
    pub name: String,
    /// Free text.
    pub description: Option<String>,
    /// Initial labels.
    #[oai(default)]
    pub labels: BTreeMap<String, String>,
    /// Initial annotations.
    #[oai(default)]
    pub annotations: BTreeMap<String, String>,
    /// The owning generator (admin only; a generator's stacks are always its own).
    pub generator_id: Option<Uuid>,
}

/// Body of `PATCH /stacks/{id}`: absent fields stay as they are.
#[derive(Debug, Clone, Object)]
pub struct UpdateStackRequest {
    /// New name.
    pub name: Option<String>,
    /// New description; `null` clears it.
    pub description: MaybeUndefined<String>,
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

/// Answer of `DELETE /stacks/{id}`.
#[derive(Debug, ApiResponse)]
pub enum StackDeleted {
    /// The stack was deleted; the body is the deletion marker appended for it.
    #[oai(status = 200)]
    Ok(Json<DeploymentObjectDto>),
}

/// Answer of `POST /stacks/{id}/deployment-objects`.
#[derive(Debug, ApiResponse)]
pub enum DeploymentObjectCreated {
    /// The deployment object was appended.
    #[oai(status = 201)]
    Created(Json<DeploymentObjectDto>),
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
    #[oai(path = "/stacks", method = "post", tag = "Tag::Stacks")]
    async fn create_stack(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        body: Json<CreateStackRequest>,
    ) -> ApiResult<StackCreated> {
        let body = body.0;
        let generator_id = owner_scope(&auth.0, body.generator_id)?;
        let stack = state
            .store
            .create_stack(
                &auth.0.actor(),
                NewStack {
                    name: body.name,
                    description: body.description,
                    generator_id,
                    labels: body.labels,
                    annotations: body.annotations,
                },
            )
            .await?;
        Ok(StackCreated::Created(Json(stack.into())))
    }

    /// List stacks, ordered by id.
    ///
    /// Admin sees all (optionally one generator's); a generator sees only its own.
    #[allow(clippy::too_many_arguments)]
    #[oai(path = "/stacks", method = "get", tag = "Tag::Stacks")]
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
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// `asc` (default) or `desc`.
        order: Query<Option<OrderParam>>,
    ) -> ApiResult<StackPageResponse> {
        let filter = StackFilter {
            id: None,
            generator_id: owner_scope(&auth.0, generator_id.0)?,
            name: name.0,
            include_deleted: include_deleted.0.unwrap_or(false),
        };
        let page = page(limit, cursor, order)?;
        let stacks = state.store.list_stacks(&filter, &page).await?;
        Ok(StackPageResponse::Ok(Json(stacks.into())))
    }

    /// Get a live stack.
    #[oai(path = "/stacks/:id", method = "get", tag = "Tag::Stacks")]
    async fn get_stack(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<StackResponse> {
        let stack = visible_stack(&state, &auth.0, id.0).await?;
        Ok(StackResponse::Ok(Json(stack.into())))
    }

    /// Rename or re-describe a stack.
    #[oai(path = "/stacks/:id", method = "patch", tag = "Tag::Stacks")]
    async fn update_stack(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        body: Json<UpdateStackRequest>,
    ) -> ApiResult<StackResponse> {
        let stack = visible_stack(&state, &auth.0, id.0).await?;
        let body = body.0;
        let update = StackUpdate {
            name: body.name,
            description: patch_optional(body.description),
        };
        let stack = state
            .store
            .update_stack(&auth.0.actor(), stack.id, update)
            .await?;
        Ok(StackResponse::Ok(Json(stack.into())))
    }

    /// Delete a stack.
    ///
    /// Soft-deletes it and appends its deletion marker, so every agent responsible for
    /// it removes its objects; answers the marker. The history stays readable.
    #[oai(path = "/stacks/:id", method = "delete", tag = "Tag::Stacks")]
    async fn delete_stack(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<StackDeleted> {
        let stack = visible_stack(&state, &auth.0, id.0).await?;
        let marker = state.store.delete_stack(&auth.0.actor(), stack.id).await?;
        Ok(StackDeleted::Ok(Json(marker.into())))
    }

    /// Append a deployment object to a stack.
    ///
    /// The YAML is parsed and validated before anything is stored: an invalid document
    /// is a 422 `invalid_manifest` naming the document, an oversized one a 413.
    #[oai(
        path = "/stacks/:id/deployment-objects",
        method = "post",
        tag = "Tag::DeploymentObjects"
    )]
    async fn create_deployment_object(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        body: Json<CreateDeploymentObjectRequest>,
    ) -> ApiResult<DeploymentObjectCreated> {
        let stack = visible_stack(&state, &auth.0, id.0).await?;
        let body = body.0;
        let new = if body.is_deletion_marker {
            if !body.yaml_content.trim().is_empty() {
                return Err(ApiError::unprocessable(
                    "validation_failed",
                    "a deletion marker carries no yaml_content",
                    None,
                ));
            }
            NewDeploymentObject::deletion_marker(stack.id)
        } else {
            let options = ParseOptions {
                max_bytes: state.config.server.body_limit_bytes,
                ..ParseOptions::default()
            };
            NewDeploymentObject::from_yaml_with(stack.id, body.yaml_content, &options)?
        };
        let object = state
            .store
            .append_deployment_object(&auth.0.actor(), new)
            .await?;
        Ok(DeploymentObjectCreated::Created(Json(object.into())))
    }

    /// List a stack's deployment objects, ordered by `sequence_id`.
    ///
    /// Works for deleted stacks too (for their owner and admin).
    #[oai(
        path = "/stacks/:id/deployment-objects",
        method = "get",
        tag = "Tag::DeploymentObjects"
    )]
    async fn list_deployment_objects(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
        /// Rows per page, 1-1000 (default 100).
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// `asc` (default) or `desc`.
        order: Query<Option<OrderParam>>,
    ) -> ApiResult<DeploymentObjectPageResponse> {
        let page = page(limit, cursor, order)?;
        check_stack_history(&state, &auth.0, id.0).await?;
        let objects = state
            .store
            .list_deployment_objects(id.0.into(), &page)
            .await?;
        Ok(DeploymentObjectPageResponse::Ok(Json(objects.into())))
    }

    /// Get a deployment object (also of a deleted stack, for its owner and admin).
    #[oai(
        path = "/deployment-objects/:id",
        method = "get",
        tag = "Tag::DeploymentObjects"
    )]
    async fn get_deployment_object(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        id: Path<Uuid>,
    ) -> ApiResult<DeploymentObjectResponse> {
        auth.0.require_admin_or_generator()?;
        let id = DeploymentObjectId::from(id.0);
        let object = state.store.get_deployment_object(id).await?;
        check_stack_history(&state, &auth.0, object.stack_id)
            .await
            .map_err(|err| match err {
                // Do not reveal which stack an unseen object belongs to.
                ApiError::NotFound(_) => ApiError::not_found("deployment object", id),
                other => other,
            })?;
        Ok(DeploymentObjectResponse::Ok(Json(object.into())))
    }
}

#[cfg(test)]
mod tests {
    use brokkr_core::testing::MemoryStore;
    use brokkr_core::{Actor, NewGenerator, Pak};

    use super::*;

    async fn generator(store: &MemoryStore, name: &str) -> GeneratorId {
        let new = NewGenerator {
            name: name.into(),
            description: None,
            key: Pak::generate().stored(),
        };
        store.create_generator(&Actor::Admin, new).await.unwrap().id
    }

    async fn stack(store: &MemoryStore, name: &str, owner: Option<GeneratorId>) -> Stack {
        let new = NewStack {
            name: name.into(),
            generator_id: owner,
            ..NewStack::default()
        };
        store.create_stack(&Actor::Admin, new).await.unwrap()
    }

    #[tokio::test]
    async fn generators_see_only_their_own_stacks() {
        let store = MemoryStore::new();
        let (g1, g2) = (generator(&store, "g1").await, generator(&store, "g2").await);
        let mine = stack(&store, "mine", Some(g1)).await;
        let theirs = stack(&store, "theirs", Some(g2)).await;
        let admins = stack(&store, "admins", None).await;

        let me = Identity::Generator(g1);
        assert!(stack_visible_in(&store, &me, mine.id).await.is_ok());
        for other in [theirs.id, admins.id, StackId::new()] {
            let err = stack_visible_in(&store, &me, other).await.unwrap_err();
            assert_eq!(err.status(), 404);
        }
        assert!(
            stack_visible_in(&store, &Identity::Admin, theirs.id)
                .await
                .is_ok()
        );
        let agent = Identity::Agent(brokkr_core::AgentId::new());
        let err = stack_visible_in(&store, &agent, mine.id).await.unwrap_err();
        assert_eq!(err.status(), 403);
    }

    #[tokio::test]
    async fn deleted_history_stays_readable_by_its_owner_only() {
        let store = MemoryStore::new();
        let (g1, g2) = (generator(&store, "g1").await, generator(&store, "g2").await);
        let mine = stack(&store, "mine", Some(g1)).await;
        store.delete_stack(&Actor::Admin, mine.id).await.unwrap();

        assert!(
            stack_visible_in(&store, &Identity::Generator(g1), mine.id)
                .await
                .is_err()
        );
        let owner = stack_history_visible_in(&store, &Identity::Generator(g1), mine.id).await;
        assert!(owner.is_ok());
        let other = stack_history_visible_in(&store, &Identity::Generator(g2), mine.id).await;
        assert_eq!(other.unwrap_err().status(), 404);
        let admin = stack_history_visible_in(&store, &Identity::Admin, mine.id).await;
        assert!(admin.is_ok());
    }

    #[test]
    fn owners_of_new_rows() {
        let (me, other) = (GeneratorId::new(), GeneratorId::new());
        let gen_identity = Identity::Generator(me);
        assert_eq!(owner_scope(&gen_identity, None).unwrap(), Some(me));
        assert_eq!(owner_scope(&gen_identity, Some(me.0)).unwrap(), Some(me));
        let err = owner_scope(&gen_identity, Some(other.0)).unwrap_err();
        assert_eq!(err.status(), 403);
        assert_eq!(owner_scope(&Identity::Admin, None).unwrap(), None);
        assert_eq!(
            owner_scope(&Identity::Admin, Some(other.0)).unwrap(),
            Some(other)
        );
        assert_eq!(owner_scope(&gen_identity, None).unwrap(), Some(me));
        assert_eq!(owner_scope(&Identity::Admin, None).unwrap(), None);
    }
}
