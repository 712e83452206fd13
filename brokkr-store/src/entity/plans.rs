//! The `plans` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "plans")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) id: Uuid,
    pub(crate) stack_id: Uuid,
    pub(crate) origin: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub(crate) change: Json,
    pub(crate) digest: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub(crate) body: Json,
    pub(crate) created_by_kind: String,
    pub(crate) created_by_id: Option<Uuid>,
    pub(crate) created_at: DateTimeUtc,
    pub(crate) expires_at: DateTimeUtc,
    pub(crate) consumed_at: Option<DateTimeUtc>,
    pub(crate) consumed_by_kind: Option<String>,
    pub(crate) consumed_by_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
