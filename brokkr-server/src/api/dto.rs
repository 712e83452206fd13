//! Request and response types shared by several resources, and the conventions every
//! resource follows:
//!
//! - JSON field names follow Brokkr's documented v1 API (`sequence_id`, `yaml_content`,
//!   `is_deletion_marker`, ...); core types convert with `From`, core derives no API
//!   traits.
//! - Listings answer `{"items": [...], "next_cursor": "..."}` (see
//!   [`page_type!`](crate::page_type)) and take `?limit=` (1-1000, default 100),
//!   `?cursor=` and `?order=asc|desc` ([`page`]).

use brokkr_core::{
    Cursor, DeploymentObject, ListedDeploymentObject, Order, PageRequest, Provenance,
    page::{DEFAULT_LIMIT, MAX_LIMIT},
};
use chrono::{DateTime, Utc};
use poem_openapi::param::Query;
use poem_openapi::{Enum, Object};
use uuid::Uuid;

use crate::error::{ApiError, ApiResult};

/// Declares `$name { items: Vec<$item>, next_cursor }` and its conversion from a core
/// `Page<T>` whose items convert into `$item`.
#[macro_export]
macro_rules! page_type {
    ($(#[$doc:meta])* $name:ident, $item:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, poem_openapi::Object)]
        pub struct $name {
            /// The rows of this page.
            pub items: Vec<$item>,
            /// Pass as `?cursor=` to get the next page; absent on the last page.
            #[oai(skip_serializing_if_is_none)]
            pub next_cursor: Option<String>,
        }

        impl<T> From<brokkr_core::Page<T>> for $name
        where
            $item: From<T>,
        {
            fn from(page: brokkr_core::Page<T>) -> Self {
                Self {
                    items: page.items.into_iter().map(<$item>::from).collect(),
                    next_cursor: page.next_cursor.map(|cursor| cursor.0),
                }
            }
        }
    };
}

/// Sort direction of a listing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Enum)]
#[oai(rename_all = "lowercase")]
pub enum OrderParam {
    /// Oldest first.
    #[default]
    Asc,
    /// Newest first.
    Desc,
}

/// The store's page request from a listing's `?limit=`, `?cursor=` and `?order=`;
/// 400 `invalid_parameter` for a limit outside 1-1000.
pub fn page(
    limit: Query<Option<u32>>,
    cursor: Query<Option<String>>,
    order: Query<Option<OrderParam>>,
) -> ApiResult<PageRequest> {
    let limit = limit.0.unwrap_or(DEFAULT_LIMIT);
    if !(1..=MAX_LIMIT).contains(&limit) {
        return Err(ApiError::bad_request(
            "invalid_parameter",
            format!("limit must be between 1 and {MAX_LIMIT}"),
        ));
    }
    Ok(PageRequest {
        limit,
        cursor: cursor.0.map(Cursor),
        order: match order.0.unwrap_or_default() {
            OrderParam::Asc => Order::Ascending,
            OrderParam::Desc => Order::Descending,
        },
    })
}

/// What produced a deployment object.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "Provenance")]
pub struct ProvenanceDto {
    /// The template instantiated, if any.
    #[oai(skip_serializing_if_is_none)]
    pub template_id: Option<Uuid>,
    /// Its version.
    #[oai(skip_serializing_if_is_none)]
    pub template_version: Option<i32>,
    /// The registered generator, if any.
    #[oai(skip_serializing_if_is_none)]
    pub generator: Option<String>,
    /// Parameters after schema defaults.
    pub parameters: serde_json::Value,
}

impl From<Provenance> for ProvenanceDto {
    fn from(p: Provenance) -> Self {
        Self {
            template_id: p.template_id.map(Into::into),
            template_version: p.template_version,
            generator: p.generator,
            parameters: p.parameters,
        }
    }
}

/// An immutable snapshot of every resource of one stack.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "DeploymentObject")]
pub struct DeploymentObjectDto {
    /// Its id.
    pub id: Uuid,
    /// Its stack.
    pub stack_id: Uuid,
    /// Unique in the store, strictly increasing within the stack in commit order.
    pub sequence_id: i64,
    /// Multi-document YAML (empty for a deletion marker).
    pub yaml_content: String,
    /// Hex SHA-256 of `yaml_content`.
    pub yaml_checksum: String,
    /// `true` when it says "remove this stack".
    pub is_deletion_marker: bool,
    /// What produced it, when a template or generator did.
    #[oai(skip_serializing_if_is_none)]
    pub provenance: Option<ProvenanceDto>,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

impl From<DeploymentObject> for DeploymentObjectDto {
    fn from(o: DeploymentObject) -> Self {
        Self {
            id: o.id.into(),
            stack_id: o.stack_id.into(),
            sequence_id: o.sequence,
            yaml_content: o.yaml_content,
            yaml_checksum: o.yaml_checksum,
            is_deletion_marker: o.is_deletion_marker,
            provenance: o.provenance.map(Into::into),
            created_at: o.created_at,
        }
    }
}

/// What a listing of deployment objects may include beyond each object's metadata.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Enum)]
#[oai(rename = "DeploymentObjectInclude", rename_all = "snake_case")]
pub enum IncludeParam {
    /// Each object's YAML; pages then also end at the server's byte budget.
    YamlContent,
}

/// A deployment object in a listing: its YAML only when asked for with
/// `?include=yaml_content`.
#[derive(Debug, Clone, PartialEq, Object)]
#[oai(rename = "ListedDeploymentObject")]
pub struct ListedDeploymentObjectDto {
    /// Its id.
    pub id: Uuid,
    /// Its stack.
    pub stack_id: Uuid,
    /// Unique in the store, strictly increasing within the stack in commit order.
    pub sequence_id: i64,
    /// Multi-document YAML (empty for a deletion marker); present only with
    /// `?include=yaml_content`.
    #[oai(skip_serializing_if_is_none)]
    pub yaml_content: Option<String>,
    /// Size of the YAML in bytes, also when it is left out.
    pub yaml_bytes: u64,
    /// Hex SHA-256 of the YAML.
    pub yaml_checksum: String,
    /// `true` when it says "remove this stack".
    pub is_deletion_marker: bool,
    /// What produced it, when a template or generator did.
    #[oai(skip_serializing_if_is_none)]
    pub provenance: Option<ProvenanceDto>,
    /// When it was stored.
    pub created_at: DateTime<Utc>,
}

impl From<ListedDeploymentObject> for ListedDeploymentObjectDto {
    fn from(o: ListedDeploymentObject) -> Self {
        Self {
            id: o.id.into(),
            stack_id: o.stack_id.into(),
            sequence_id: o.sequence,
            yaml_content: o.yaml_content,
            yaml_bytes: o.yaml_bytes,
            yaml_checksum: o.yaml_checksum,
            is_deletion_marker: o.is_deletion_marker,
            provenance: o.provenance.map(Into::into),
            created_at: o.created_at,
        }
    }
}

page_type!(
    /// A page of deployment objects.
    DeploymentObjectPage,
    ListedDeploymentObjectDto
);

/// One Kubernetes object, by identity (group, kind, namespace, name): an object a
/// template renders, or one a plan creates, updates or prunes.
#[derive(Debug, Clone, PartialEq, Eq, Object)]
#[oai(rename = "ObjectKey")]
pub struct ObjectKeyDto {
    /// `v1` or `group/version`.
    pub api_version: String,
    /// Kind.
    pub kind: String,
    /// Namespace, if set.
    #[oai(skip_serializing_if_is_none)]
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
}

impl From<brokkr_core::ObjectKey> for ObjectKeyDto {
    fn from(key: brokkr_core::ObjectKey) -> Self {
        Self {
            api_version: key.api_version,
            kind: key.kind,
            namespace: key.namespace,
            name: key.name,
        }
    }
}
