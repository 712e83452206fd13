//! The `agents` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "agents")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) id: Uuid,
    pub(crate) name: String,
    pub(crate) cluster_name: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub(crate) labels: Json,
    #[sea_orm(column_type = "JsonBinary")]
    pub(crate) annotations: Json,
    pub(crate) status: String,
    pub(crate) last_heartbeat: Option<DateTimeUtc>,
    #[sea_orm(column_type = "JsonBinary")]
    pub(crate) capabilities: Json,
    pub(crate) created_at: DateTimeUtc,
    pub(crate) updated_at: DateTimeUtc,
    pub(crate) deleted_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
