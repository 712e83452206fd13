//! Health reports: the latest health each agent reported for each stack.
//!
//! One row per (stack, agent), replaced by every report, so the table's size follows
//! the number of targets, never the number of reports. The primary key leads with the
//! stack because the one read lists a stack's reports ordered by agent.

use sea_orm_migration::prelude::*;

use crate::m0001_initial::{fk, json, text, text_null, time, uuid};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

const TABLE: &str = "health_reports";

// `async_trait` needs the elided lifetime of the trait's signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(TABLE)
                    .col(uuid("stack_id"))
                    .col(uuid("agent_id"))
                    .col(uuid("deployment_object_id"))
                    .col(text("status"))
                    .col(text_null("summary"))
                    .col(json("resources"))
                    .col(time("reported_at"))
                    .primary_key(Index::create().col("stack_id").col("agent_id"))
                    .foreign_key(&mut fk(TABLE, "stack_id", "stacks"))
                    .foreign_key(&mut fk(TABLE, "agent_id", "agents"))
                    .foreign_key(&mut fk(TABLE, "deployment_object_id", "deployment_objects"))
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
