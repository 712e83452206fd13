//! The `audit_records` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "audit_records")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) id: Uuid,
    pub(crate) actor_kind: String,
    pub(crate) actor_id: Option<Uuid>,
    pub(crate) action: String,
    pub(crate) resource_kind: String,
    pub(crate) resource_id: Uuid,
    pub(crate) summary: String,
    pub(crate) created_at: DateTimeUtc,
    /// Hex SHA-256 of the fields; NULL for records written before records carried one.
    pub(crate) content_hash: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
