//! The `agent_applied` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "agent_applied")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) stack_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) agent_id: Uuid,
    pub(crate) deployment_object_id: Option<Uuid>,
    pub(crate) recorded_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
