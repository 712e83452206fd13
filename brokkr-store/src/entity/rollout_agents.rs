//! The `rollout_agents` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "rollout_agents")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) rollout_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) agent_id: Uuid,
    pub(crate) wave_idx: i32,
    pub(crate) state: String,
    pub(crate) pinned_at: Option<DateTimeUtc>,
    pub(crate) healthy_since: Option<DateTimeUtc>,
    pub(crate) unhealthy_since: Option<DateTimeUtc>,
    pub(crate) reason: Option<String>,
    pub(crate) updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
