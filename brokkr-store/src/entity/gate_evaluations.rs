//! The `gate_evaluations` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "gate_evaluations")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) id: Uuid,
    pub(crate) rollout_id: Uuid,
    pub(crate) wave_idx: i32,
    pub(crate) gate: String,
    pub(crate) phase: String,
    pub(crate) attempt: i32,
    pub(crate) outcome: Option<String>,
    pub(crate) reason: Option<String>,
    pub(crate) recheck_at: Option<DateTimeUtc>,
    pub(crate) decided_by_kind: Option<String>,
    pub(crate) decided_by_id: Option<Uuid>,
    pub(crate) started_at: DateTimeUtc,
    pub(crate) finished_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
