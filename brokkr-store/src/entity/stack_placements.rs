//! The `stack_placements` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "stack_placements")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) stack_id: Uuid,
    #[sea_orm(column_type = "JsonBinary")]
    pub(crate) policy: Json,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub(crate) decision: Option<Json>,
    pub(crate) updated_at: DateTimeUtc,
    pub(crate) decided_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
