//! The `agent_targets` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "agent_targets")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) agent_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) stack_id: Uuid,
    pub(crate) source: String,
    pub(crate) created_at: DateTimeUtc,
    pub(crate) removed_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
