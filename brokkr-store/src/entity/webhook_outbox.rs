//! The `webhook_outbox` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_outbox")]
pub(crate) struct Model {
    /// Fan-out's order.
    #[sea_orm(primary_key)]
    pub(crate) position: i64,
    pub(crate) id: Uuid,
    pub(crate) event_type: String,
    pub(crate) stack_id: Option<Uuid>,
    pub(crate) agent_id: Option<Uuid>,
    pub(crate) occurred_at: DateTimeUtc,
    #[sea_orm(column_type = "JsonBinary")]
    pub(crate) data: Json,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
