//! The `deployment_objects` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "deployment_objects")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) id: Uuid,
    pub(crate) stack_id: Uuid,
    pub(crate) sequence: i64,
    pub(crate) yaml_content: String,
    pub(crate) yaml_checksum: String,
    pub(crate) is_deletion_marker: bool,
    #[sea_orm(column_type = "JsonBinary")]
    pub(crate) provenance: Option<Json>,
    pub(crate) created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
