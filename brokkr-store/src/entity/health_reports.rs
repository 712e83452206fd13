//! The `health_reports` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "health_reports")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) stack_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) agent_id: Uuid,
    pub(crate) deployment_object_id: Uuid,
    pub(crate) status: String,
    pub(crate) summary: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub(crate) resources: Json,
    pub(crate) reported_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
