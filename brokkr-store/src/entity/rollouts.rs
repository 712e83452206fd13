//! The `rollouts` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "rollouts")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) id: Uuid,
    pub(crate) stack_id: Uuid,
    pub(crate) candidate_deployment_object_id: Uuid,
    pub(crate) baseline_deployment_object_id: Option<Uuid>,
    #[sea_orm(column_type = "JsonBinary")]
    pub(crate) policy: Json,
    pub(crate) created_by_kind: String,
    pub(crate) created_by_id: Option<Uuid>,
    pub(crate) created_at: DateTimeUtc,
    pub(crate) state: String,
    pub(crate) state_reason: Option<String>,
    pub(crate) version: i64,
    pub(crate) started_at: Option<DateTimeUtc>,
    pub(crate) deadline_at: Option<DateTimeUtc>,
    pub(crate) next_eval_at: Option<DateTimeUtc>,
    pub(crate) finished_at: Option<DateTimeUtc>,
    pub(crate) updated_at: DateTimeUtc,
    pub(crate) lease_owner: Option<String>,
    pub(crate) lease_until: Option<DateTimeUtc>,
    pub(crate) signalled: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
