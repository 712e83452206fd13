//! Placement: each stack's placement policy and its latest decision.
//!
//! One row per stack with a policy, keyed by the stack, so listing every placement for
//! the controller is a primary-key scan and the writer of a decision can lock the row
//! (`SELECT ... FOR UPDATE` on PostgreSQL) to serialise replicas deciding the same
//! stack. The decision is JSON: it is read and written whole, never queried inside.

use sea_orm_migration::prelude::*;

use crate::m0001_initial::{fk, json, time};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

const TABLE: &str = "stack_placements";

// `async_trait` needs the elided lifetime of the trait's signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TABLE)
                    .col(ColumnDef::new("stack_id").uuid().not_null().primary_key())
                    .col(json("policy"))
                    .col(ColumnDef::new("decision").json_binary().null())
                    .col(time("updated_at"))
                    .col(
                        ColumnDef::new("decided_at")
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .foreign_key(&mut fk(TABLE, "stack_id", "stacks"))
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(TABLE).if_exists().take())
            .await
    }
}
