//! The `webhook_deliveries` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_deliveries")]
pub(crate) struct Model {
    /// The delivery's place in its subscription's order.
    #[sea_orm(primary_key)]
    pub(crate) position: i64,
    pub(crate) id: Uuid,
    pub(crate) subscription_id: Uuid,
    pub(crate) event_id: Uuid,
    pub(crate) event_type: String,
    pub(crate) stack_id: Option<Uuid>,
    pub(crate) agent_id: Option<Uuid>,
    pub(crate) occurred_at: DateTimeUtc,
    #[sea_orm(column_type = "JsonBinary")]
    pub(crate) data: Json,
    pub(crate) status: String,
    pub(crate) attempts: i32,
    pub(crate) next_attempt_at: DateTimeUtc,
    pub(crate) last_attempt_at: Option<DateTimeUtc>,
    pub(crate) last_status: Option<i32>,
    pub(crate) last_error: Option<String>,
    pub(crate) created_at: DateTimeUtc,
    pub(crate) delivered_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
