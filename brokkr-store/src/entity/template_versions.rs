//! The `template_versions` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "template_versions")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) template_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) version: i32,
    pub(crate) content: String,
    #[sea_orm(column_type = "JsonBinary")]
    pub(crate) parameters_schema: Json,
    pub(crate) created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
