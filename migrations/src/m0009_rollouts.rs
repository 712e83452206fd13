//! Progressive rollouts.
//!
//! - `stacks.rollout_policy`: the stack's rollout policy (JSON), NULL for none.
//! - `stacks.release_deployment_object_id`: the release head, the object agents
//!   without a pin get; filled here from `latest_deployment_object_id`, so every stack
//!   serves exactly what it served before. Like the latest pointer it has no foreign
//!   key (circular with `deployment_objects.stack_id`).
//! - `rollouts`: one candidate's way through a stack's waves. The id, stack,
//!   candidate, policy snapshot and creator never change; `baseline_deployment_object_id`
//!   only while queued (it follows the release head until the rollout starts).
//!   `version` guards every change (compare and set); `lease_owner`/`lease_until` are
//!   a driver's claim; `signalled` says something made it due since its last claim. A
//!   partial unique index admits one active rollout per stack (the same SQL on both
//!   databases); partial indexes serve the open rollouts of a stack and the due ones.
//! - `rollout_waves` and `rollout_agents`: written whole by each change, keyed by
//!   (rollout, index) and (rollout, agent).
//! - `agent_stack_pins`: the agents a rollout pinned to its candidate, one per (agent,
//!   stack): the target-state query's left join; indexed by rollout (unpin all) and by
//!   stack (a deletion removes them).
//! - `gate_evaluations`: one evaluation of one gate, written before it runs, its outcome
//!   once after.
//! - `rollout_commands`: operators' commands until an evaluation takes them up; a
//!   partial index serves the ones not taken up.

use sea_orm_migration::prelude::*;

use crate::m0001_initial::{fk, json, text, text_null, time, uuid};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

const ROLLOUTS: &str = "rollouts";
const WAVES: &str = "rollout_waves";
const AGENTS: &str = "rollout_agents";
const PINS: &str = "agent_stack_pins";
const GATES: &str = "gate_evaluations";
const COMMANDS: &str = "rollout_commands";

/// Tables in creation order; dropped in reverse.
const TABLES: &[&str] = &[ROLLOUTS, WAVES, AGENTS, PINS, GATES, COMMANDS];

/// Every stack serves what it served: its release head is its latest object.
const BACKFILL_RELEASE: &str =
    "UPDATE stacks SET release_deployment_object_id = latest_deployment_object_id";

/// Partial indexes are the same SQL on PostgreSQL and SQLite. The state lists are
/// the ones the store's queries repeat, so both planners use them.
const PARTIAL_INDEXES: &[&str] = &[
    "CREATE UNIQUE INDEX ux_rollouts_active_stack ON rollouts (stack_id) \
     WHERE state IN ('running', 'paused', 'halted', 'reverting')",
    "CREATE INDEX ix_rollouts_open_stack ON rollouts (stack_id) \
     WHERE state IN ('queued', 'running', 'paused', 'halted', 'reverting')",
    "CREATE INDEX ix_rollouts_due ON rollouts (next_eval_at) WHERE next_eval_at IS NOT NULL",
    "CREATE INDEX ix_rollout_commands_waiting ON rollout_commands (rollout_id, id) \
     WHERE consumed_at IS NULL",
];

fn null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).null().take()
}

fn time_null(name: &'static str) -> ColumnDef {
    null(name).timestamp_with_time_zone().take()
}

fn int(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).integer().not_null().take()
}

fn rollouts_table() -> TableCreateStatement {
    Table::create()
        .table(ROLLOUTS)
        .col(ColumnDef::new("id").uuid().not_null().primary_key())
        .col(uuid("stack_id"))
        .col(uuid("candidate_deployment_object_id"))
        .col(null("baseline_deployment_object_id").uuid().take())
        .col(json("policy"))
        .col(text("created_by_kind"))
        .col(null("created_by_id").uuid().take())
        .col(time("created_at"))
        .col(text("state"))
        .col(text_null("state_reason"))
        .col(ColumnDef::new("version").big_integer().not_null())
        .col(time_null("started_at"))
        .col(time_null("deadline_at"))
        .col(time_null("next_eval_at"))
        .col(time_null("finished_at"))
        .col(time("updated_at"))
        .col(text_null("lease_owner"))
        .col(time_null("lease_until"))
        .col(ColumnDef::new("signalled").boolean().not_null())
        .foreign_key(&mut fk(ROLLOUTS, "stack_id", "stacks"))
        .foreign_key(&mut fk(
            ROLLOUTS,
            "candidate_deployment_object_id",
            "deployment_objects",
        ))
        .foreign_key(&mut fk(
            ROLLOUTS,
            "baseline_deployment_object_id",
            "deployment_objects",
        ))
        .take()
}

fn waves_table() -> TableCreateStatement {
    Table::create()
        .table(WAVES)
        .col(uuid("rollout_id"))
        .col(int("idx"))
        .col(text("name"))
        .col(text_null("spec"))
        .col(int("max_failures"))
        .col(text("state"))
        .col(time_null("started_at"))
        .col(time_null("all_healthy_since"))
        .col(ColumnDef::new("promoted").boolean().not_null())
        .col(text_null("reason"))
        .col(time_null("finished_at"))
        .primary_key(Index::create().col("rollout_id").col("idx"))
        .foreign_key(&mut fk(WAVES, "rollout_id", ROLLOUTS))
        .take()
}

fn agents_table() -> TableCreateStatement {
    Table::create()
        .table(AGENTS)
        .col(uuid("rollout_id"))
        .col(uuid("agent_id"))
        .col(int("wave_idx"))
        .col(text("state"))
        .col(time_null("pinned_at"))
        .col(time_null("healthy_since"))
        .col(time_null("unhealthy_since"))
        .col(text_null("reason"))
        .col(time("updated_at"))
        .primary_key(Index::create().col("rollout_id").col("agent_id"))
        .foreign_key(&mut fk(AGENTS, "rollout_id", ROLLOUTS))
        .foreign_key(&mut fk(AGENTS, "agent_id", "agents"))
        .take()
}

fn pins_table() -> TableCreateStatement {
    Table::create()
        .table(PINS)
        .col(uuid("agent_id"))
        .col(uuid("stack_id"))
        .col(uuid("deployment_object_id"))
        .col(uuid("rollout_id"))
        .primary_key(Index::create().col("agent_id").col("stack_id"))
        .foreign_key(&mut fk(PINS, "agent_id", "agents"))
        .foreign_key(&mut fk(PINS, "stack_id", "stacks"))
        .foreign_key(&mut fk(PINS, "deployment_object_id", "deployment_objects"))
        .foreign_key(&mut fk(PINS, "rollout_id", ROLLOUTS))
        .take()
}

fn gates_table() -> TableCreateStatement {
    Table::create()
        .table(GATES)
        .col(ColumnDef::new("id").uuid().not_null().primary_key())
        .col(uuid("rollout_id"))
        .col(int("wave_idx"))
        .col(text("gate"))
        .col(text("phase"))
        .col(int("attempt"))
        .col(text_null("outcome"))
        .col(text_null("reason"))
        .col(time_null("recheck_at"))
        .col(text_null("decided_by_kind"))
        .col(null("decided_by_id").uuid().take())
        .col(time("started_at"))
        .col(time_null("finished_at"))
        .foreign_key(&mut fk(GATES, "rollout_id", ROLLOUTS))
        .take()
}

fn commands_table() -> TableCreateStatement {
    Table::create()
        .table(COMMANDS)
        .col(ColumnDef::new("id").uuid().not_null().primary_key())
        .col(uuid("rollout_id"))
        .col(text("kind"))
        .col(text("actor_kind"))
        .col(null("actor_id").uuid().take())
        .col(time("created_at"))
        .col(time_null("consumed_at"))
        .col(text_null("outcome"))
        .foreign_key(&mut fk(COMMANDS, "rollout_id", ROLLOUTS))
        .take()
}

fn index(table: &'static str, cols: &[&'static str]) -> IndexCreateStatement {
    let mut stmt = Index::create();
    stmt.name(format!("ix_{table}_{}", cols.join("_")))
        .table(table);
    for col in cols {
        stmt.col(*col);
    }
    stmt.take()
}

fn add_column(column: ColumnDef) -> TableAlterStatement {
    Table::alter().table("stacks").add_column(column).take()
}

fn drop_column(column: &'static str) -> TableAlterStatement {
    Table::alter().table("stacks").drop_column(column).take()
}

// `async_trait` needs the elided lifetime of the trait's signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(add_column(null("rollout_policy").json_binary().take()))
            .await?;
        manager
            .alter_table(add_column(
                null("release_deployment_object_id").uuid().take(),
            ))
            .await?;
        let db = manager.get_connection();
        db.execute_unprepared(BACKFILL_RELEASE).await?;
        for table in [
            rollouts_table(),
            waves_table(),
            agents_table(),
            pins_table(),
            gates_table(),
            commands_table(),
        ] {
            manager.create_table(table).await?;
        }
        for index in [
            index(ROLLOUTS, &["stack_id", "id"]),
            index(ROLLOUTS, &["state", "id"]),
            index(PINS, &["rollout_id"]),
            index(PINS, &["stack_id"]),
            index(GATES, &["rollout_id", "id"]),
            index(COMMANDS, &["rollout_id", "id"]),
        ] {
            manager.create_index(index).await?;
        }
        for sql in PARTIAL_INDEXES {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in TABLES.iter().rev() {
            manager
                .drop_table(Table::drop().table(*table).if_exists().take())
                .await?;
        }
        manager
            .alter_table(drop_column("release_deployment_object_id"))
            .await?;
        manager.alter_table(drop_column("rollout_policy")).await
    }
}
