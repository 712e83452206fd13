//! The `agent_stack_pins` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "agent_stack_pins")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) agent_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) stack_id: Uuid,
    pub(crate) deployment_object_id: Uuid,
    pub(crate) rollout_id: Uuid,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
