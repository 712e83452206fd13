//! Keys and the audit log: `/auth/pak` (who is this key?) and `/admin/audit-logs`.
//!
//! Any valid key may ask who it is, so an agent or a command line can check its key
//! before relying on it; the audit log is admin's.

use brokkr_core::{Actor, ActorKind, AuditAction, AuditFilter, AuditRecord, ResourceKind};
use chrono::{DateTime, Utc};
use poem::web::Data;
use poem_openapi::param::Query;
use poem_openapi::payload::Json;
use poem_openapi::{ApiResponse, Enum, Object, OpenApi};
use uuid::Uuid;

use crate::api::Tag;
use crate::api::dto::{OrderParam, page};
use crate::auth::BearerAuth;
use crate::error::ApiResult;
use crate::page_type;
use crate::state::AppState;

/// Declares an API enum mirroring a core enum variant for variant, with conversions
/// both ways.
macro_rules! mirror_enum {
    ($(#[$doc:meta])* $dto:ident = $core:ident as $name:tt { $($(#[$vdoc:meta])* $variant:ident),* $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
        #[oai(rename = $name, rename_all = "snake_case")]
        pub enum $dto {
            $($(#[$vdoc])* $variant),*
        }

        impl From<$core> for $dto {
            fn from(value: $core) -> Self {
                match value { $($core::$variant => Self::$variant),* }
            }
        }

        impl From<$dto> for $core {
            fn from(value: $dto) -> Self {
                match value { $($dto::$variant => Self::$variant),* }
            }
        }
    };
}

mirror_enum!(
    /// Who made a change.
    ActorTypeDto = ActorKind as "ActorType" {
        /// An admin key.
        Admin,
        /// An agent's key.
        Agent,
        /// A generator's key.
        Generator,
        /// Brokkr itself (bootstrap, placement, command line).
        System,
    }
);

mirror_enum!(
    /// The kind of resource an audit record is about.
    ResourceTypeDto = ResourceKind as "ResourceType" {
        /// A stack.
        Stack,
        /// A deployment object.
        DeploymentObject,
        /// An agent.
        Agent,
        /// An agent target (the resource id is the stack's).
        AgentTarget,
        /// An agent event.
        AgentEvent,
        /// A generator.
        Generator,
        /// A template.
        Template,
        /// An API key (the resource id is the key record's).
        ApiKey,
        /// A stack's placement policy and decision (the resource id is the stack's).
        Placement,
        /// A plan (a change computed before it is made).
        Plan,
        /// A webhook subscription.
        Subscription,
        /// A webhook delivery.
        Delivery,
        /// A progressive rollout (its transitions, pins, commands, approvals).
        Rollout,
    }
);

mirror_enum!(
    /// What was done.
    AuditActionDto = AuditAction as "AuditAction" {
        /// Created (or a deployment object appended, an event recorded).
        Create,
        /// Changed.
        Update,
        /// (Soft-)deleted.
        Delete,
        /// A stack was assigned to an agent.
        Assign,
        /// A stack was unassigned from an agent.
        Unassign,
        /// A key was issued in place of the owner's previous keys.
        RotateKey,
        /// A label or annotation was set.
        SetMetadata,
        /// A label or annotation was removed.
        RemoveMetadata,
        /// A placement decision changed which agents have a stack.
        Place,
        /// An admin confirmed a plan the guard stopped (or released a held decision).
        Confirm,
    }
);

/// Who did what to which resource, when.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "AuditLog")]
pub struct AuditLogDto {
    /// Its id.
    pub id: Uuid,
    /// Who.
    pub actor_type: ActorTypeDto,
    /// The agent's or generator's id; absent for admin and system.
    #[oai(skip_serializing_if_is_none)]
    pub actor_id: Option<Uuid>,
    /// What.
    pub action: AuditActionDto,
    /// To which kind of resource.
    pub resource_type: ResourceTypeDto,
    /// To which resource.
    pub resource_id: Uuid,
    /// A one-line human summary (never a key).
    pub summary: String,
    /// When.
    pub created_at: DateTime<Utc>,
    /// SHA-256 of the fields above (64 hex digits), computed when the record was
    /// written; the audit chain links it (`GET /admin/audit-logs/verify`). Absent for
    /// records written before records carried one.
    #[oai(skip_serializing_if_is_none)]
    pub content_hash: Option<String>,
}

impl From<AuditRecord> for AuditLogDto {
    fn from(r: AuditRecord) -> Self {
        Self {
            id: r.id.into(),
            actor_type: r.actor.kind().into(),
            actor_id: r.actor.id(),
            action: r.action.into(),
            resource_type: r.resource_kind.into(),
            resource_id: r.resource_id,
            summary: r.summary,
            created_at: r.created_at,
            content_hash: r.content_hash.map(|hash| hash.to_hex()),
        }
    }
}

page_type!(
    /// A page of audit records, ordered by id (time-ordered).
    AuditLogPage,
    AuditLogDto
);

/// The role a key grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "Role", rename_all = "snake_case")]
pub enum RoleDto {
    /// Everything.
    Admin,
    /// Only its own agent, target state, heartbeat and events.
    Agent,
    /// Only what it created.
    Generator,
}

/// Who a key belongs to.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "KeyIdentity")]
pub struct KeyIdentityDto {
    /// The role the key grants.
    pub role: RoleDto,
    /// The agent's or generator's id; absent for admin.
    #[oai(skip_serializing_if_is_none)]
    pub id: Option<Uuid>,
}

impl From<Actor> for KeyIdentityDto {
    fn from(actor: Actor) -> Self {
        match actor {
            // No key belongs to `System`: authentication refuses it before this.
            Actor::Admin | Actor::System => Self {
                role: RoleDto::Admin,
                id: None,
            },
            Actor::Agent(id) => Self {
                role: RoleDto::Agent,
                id: Some(id.into()),
            },
            Actor::Generator(id) => Self {
                role: RoleDto::Generator,
                id: Some(id.into()),
            },
        }
    }
}

/// Answer of `POST /auth/pak`.
#[derive(Debug, ApiResponse)]
pub enum KeyIdentityResponse {
    /// The key is valid; this is who it belongs to.
    #[oai(status = 200)]
    Ok(Json<KeyIdentityDto>),
}

/// A page of audit records.
#[derive(Debug, ApiResponse)]
pub enum AuditLogPageResponse {
    /// The page.
    #[oai(status = 200)]
    Ok(Json<AuditLogPage>),
}

/// Key and audit operations.
pub struct AdminApi;

#[OpenApi]
impl AdminApi {
    /// Who the presented key belongs to (any valid key).
    ///
    /// Lets an agent or a command line check its key: 200 with the role and id, or
    /// 401 for a missing, malformed, unknown or revoked key. Changes nothing.
    #[oai(
        path = "/auth/pak",
        method = "post",
        operation_id = "verifyKey",
        tag = "Tag::Admin"
    )]
    async fn verify_key(&self, auth: BearerAuth) -> ApiResult<KeyIdentityResponse> {
        Ok(KeyIdentityResponse::Ok(Json(auth.0.into())))
    }

    /// List audit records, oldest first unless `order=desc` (admin).
    ///
    /// Every change made through the API or the command line leaves exactly one record,
    /// written in the same transaction as the change.
    #[oai(
        path = "/admin/audit-logs",
        method = "get",
        operation_id = "listAuditLogs",
        tag = "Tag::Admin"
    )]
    #[allow(clippy::too_many_arguments)]
    async fn list_audit_logs(
        &self,
        auth: BearerAuth,
        state: Data<&AppState>,
        /// Only records of this actor type.
        actor_type: Query<Option<ActorTypeDto>>,
        /// Only records of this agent or generator.
        actor_id: Query<Option<Uuid>>,
        /// Only this kind of resource.
        resource_type: Query<Option<ResourceTypeDto>>,
        /// Only this resource.
        resource_id: Query<Option<Uuid>>,
        /// Only this action.
        action: Query<Option<AuditActionDto>>,
        /// Created at or after (RFC 3339).
        since: Query<Option<DateTime<Utc>>>,
        /// Created before (RFC 3339).
        until: Query<Option<DateTime<Utc>>>,
        /// Rows per page, 1-1000 (default 100).
        #[oai(validator(minimum(value = "1"), maximum(value = "1000")))]
        limit: Query<Option<u32>>,
        /// `next_cursor` of the previous page.
        cursor: Query<Option<String>>,
        /// `asc` (default, oldest first) or `desc`.
        order: Query<Option<OrderParam>>,
    ) -> ApiResult<AuditLogPageResponse> {
        let page = page(limit, cursor, order)?;
        let filter = AuditFilter {
            actor_kind: actor_type.0.map(Into::into),
            actor_id: actor_id.0,
            action: action.0.map(Into::into),
            resource_kind: resource_type.0.map(Into::into),
            resource_id: resource_id.0,
            since: since.0,
            until: until.0,
        };
        let records = state
            .control_plane
            .list_audit_records(&auth.0, filter, &page)
            .await?;
        Ok(AuditLogPageResponse::Ok(Json(records.into())))
    }
}

#[cfg(test)]
mod tests {
    use brokkr_core::{Actor, AgentId};

    use super::*;

    #[test]
    fn api_names_are_the_core_stable_names() {
        use poem_openapi::types::ToJSON;
        for kind in [ResourceKind::DeploymentObject, ResourceKind::ApiKey] {
            let json = ResourceTypeDto::from(kind).to_json();
            assert_eq!(json, Some(serde_json::json!(kind.as_str())));
        }
        for action in [AuditAction::RotateKey, AuditAction::RemoveMetadata] {
            let json = AuditActionDto::from(action).to_json();
            assert_eq!(json, Some(serde_json::json!(action.as_str())));
        }
        let json = ActorTypeDto::from(ActorKind::System).to_json();
        assert_eq!(json, Some(serde_json::json!("system")));
    }

    #[test]
    fn a_record_shows_its_actor() {
        let agent = AgentId::new();
        let record = AuditRecord::new(
            Actor::Agent(agent),
            AuditAction::Create,
            ResourceKind::AgentEvent,
            Uuid::now_v7(),
            "s".into(),
            Utc::now(),
        );
        let hash = record.content_hash.expect("a new record is hashed");
        let dto = AuditLogDto::from(record);
        assert_eq!(dto.actor_type, ActorTypeDto::Agent);
        assert_eq!(dto.actor_id, Some(agent.into()));
        assert_eq!(dto.content_hash, Some(hash.to_hex()));
    }
}
