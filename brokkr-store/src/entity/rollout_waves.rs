//! The `rollout_waves` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "rollout_waves")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) rollout_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) idx: i32,
    pub(crate) name: String,
    pub(crate) spec: Option<String>,
    pub(crate) max_failures: i32,
    pub(crate) state: String,
    pub(crate) started_at: Option<DateTimeUtc>,
    pub(crate) all_healthy_since: Option<DateTimeUtc>,
    pub(crate) promoted: bool,
    pub(crate) reason: Option<String>,
    pub(crate) finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
