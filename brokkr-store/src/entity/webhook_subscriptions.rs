//! The `webhook_subscriptions` table.

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_subscriptions")]
pub(crate) struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub(crate) id: Uuid,
    pub(crate) owner_kind: String,
    pub(crate) owner_id: Option<Uuid>,
    pub(crate) url: String,
    pub(crate) description: Option<String>,
    #[sea_orm(column_type = "JsonBinary")]
    pub(crate) event_types: Json,
    pub(crate) stack_id: Option<Uuid>,
    #[sea_orm(column_type = "JsonBinary", nullable)]
    pub(crate) labels: Option<Json>,
    pub(crate) sealed_secret: Vec<u8>,
    pub(crate) enabled: bool,
    pub(crate) created_at: DateTimeUtc,
    pub(crate) updated_at: DateTimeUtc,
    pub(crate) lease_owner: Option<String>,
    pub(crate) lease_until: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub(crate) enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
