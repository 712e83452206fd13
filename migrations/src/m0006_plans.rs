//! Plan and guard: what a plan compares, and the plans themselves.
//!
//! - `deployment_objects.items`: each object's items (identity and content hash, a
//!   JSON array), written by the append with the object, so a plan never parses old
//!   YAML. NULL for an object stored before this migration: the store parses it once,
//!   when a plan first asks, and writes the column then.
//! - `agent_applied`: what each agent last reported applying per stack (the object of
//!   its latest successful event, NULL after a successful delete), kept by the event
//!   writer in its transaction, so a plan reads one row per agent of the stack rather
//!   than the event history. The primary key leads with the stack, whose agents the
//!   one read lists in order. Filled here from the events stored so far.
//! - `stacks.guard_overrides`: a stack's own guard limits (JSON), NULL for none.
//! - `plans`: stored plans, kept for confirmation; `consumed_at` makes one single use.
//!   The index serves "the newest held plan of a stack".

use sea_orm_migration::prelude::*;

use crate::m0001_initial::{fk, json, text, time, uuid};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

const APPLIED: &str = "agent_applied";
const PLANS: &str = "plans";

/// The latest successful event per agent and stack (by time, then id), as
/// `agent_applied` rows; window functions read the same on PostgreSQL and SQLite.
const BACKFILL_APPLIED: &str = "\
    INSERT INTO agent_applied (stack_id, agent_id, deployment_object_id, recorded_at) \
    SELECT stack_id, agent_id, \
           CASE WHEN event_type = 'delete' THEN NULL ELSE deployment_object_id END, \
           created_at \
    FROM (SELECT stack_id, agent_id, deployment_object_id, event_type, created_at, \
                 ROW_NUMBER() OVER (PARTITION BY agent_id, stack_id \
                                    ORDER BY created_at DESC, id DESC) AS latest \
          FROM agent_events WHERE status = 'success') successes \
    WHERE latest = 1";

fn null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).null().take()
}

fn json_null(name: &'static str) -> ColumnDef {
    null(name).json_binary().take()
}

fn applied_table() -> TableCreateStatement {
    Table::create()
        .table(APPLIED)
        .col(uuid("stack_id"))
        .col(uuid("agent_id"))
        .col(null("deployment_object_id").uuid().take())
        .col(time("recorded_at"))
        .primary_key(Index::create().col("stack_id").col("agent_id"))
        .foreign_key(&mut fk(APPLIED, "stack_id", "stacks"))
        .foreign_key(&mut fk(APPLIED, "agent_id", "agents"))
        .foreign_key(&mut fk(
            APPLIED,
            "deployment_object_id",
            "deployment_objects",
        ))
        .take()
}

fn plans_table() -> TableCreateStatement {
    Table::create()
        .table(PLANS)
        .col(ColumnDef::new("id").uuid().not_null().primary_key())
        .col(uuid("stack_id"))
        .col(text("origin"))
        .col(json("change"))
        .col(text("digest"))
        .col(json("body"))
        .col(text("created_by_kind"))
        .col(null("created_by_id").uuid().take())
        .col(time("created_at"))
        .col(time("expires_at"))
        .col(null("consumed_at").timestamp_with_time_zone().take())
        .col(null("consumed_by_kind").text().take())
        .col(null("consumed_by_id").uuid().take())
        .foreign_key(&mut fk(PLANS, "stack_id", "stacks"))
        .take()
}

fn add_column(table: &'static str, column: ColumnDef) -> TableAlterStatement {
    Table::alter().table(table).add_column(column).take()
}

fn drop_column(table: &'static str, column: &'static str) -> TableAlterStatement {
    Table::alter().table(table).drop_column(column).take()
}

// `async_trait` needs the elided lifetime of the trait's signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(add_column("deployment_objects", json_null("items")))
            .await?;
        manager
            .alter_table(add_column("stacks", json_null("guard_overrides")))
            .await?;
        manager.create_table(applied_table()).await?;
        manager
            .get_connection()
            .execute_unprepared(BACKFILL_APPLIED)
            .await?;
        manager.create_table(plans_table()).await?;
        manager
            .create_index(
                Index::create()
                    .name("ix_plans_stack_id_origin_created_at")
                    .table(PLANS)
                    .col("stack_id")
                    .col("origin")
                    .col("created_at")
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [PLANS, APPLIED] {
            manager
                .drop_table(Table::drop().table(table).if_exists().take())
                .await?;
        }
        manager
            .alter_table(drop_column("stacks", "guard_overrides"))
            .await?;
        manager
            .alter_table(drop_column("deployment_objects", "items"))
            .await
    }
}
