//! The initial schema: every table of Brokkr's model.
//!
//! Ids are UUIDs (v7, time-ordered, so keyset pagination on the primary key is
//! chronological), timestamps are `timestamp with time zone` in UTC, label-like maps
//! are JSON. Foreign keys are declared inline because SQLite cannot add them later.
//! `stacks.latest_deployment_object_id` has none: it would be circular with
//! `deployment_objects.stack_id`, and the append transaction is its only writer.

use sea_orm_migration::prelude::*;

use crate::DEPLOYMENT_OBJECT_SEQUENCE;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

/// Tables in creation order; dropped in reverse.
const TABLES: &[&str] = &[
    "counters",
    "generators",
    "stacks",
    "deployment_objects",
    "agents",
    "agent_targets",
    "agent_events",
    "templates",
    "template_versions",
    "api_keys",
    "audit_records",
];

/// Names stay unique among rows that are not soft-deleted. Partial indexes are the
/// same SQL on PostgreSQL and SQLite.
const PARTIAL_UNIQUE_INDEXES: &[&str] = &[
    "CREATE UNIQUE INDEX ux_stacks_live_name ON stacks (name) WHERE deleted_at IS NULL",
    "CREATE UNIQUE INDEX ux_agents_live_name ON agents (name, cluster_name) WHERE deleted_at IS NULL",
    "CREATE UNIQUE INDEX ux_generators_live_name ON generators (name) WHERE deleted_at IS NULL",
    "CREATE UNIQUE INDEX ux_templates_live_name ON templates (name) WHERE deleted_at IS NULL",
];

fn id(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).uuid().not_null().primary_key().take()
}

pub(crate) fn uuid(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).uuid().not_null().take()
}

fn uuid_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).uuid().null().take()
}

pub(crate) fn text(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).text().not_null().take()
}

pub(crate) fn text_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).text().null().take()
}

pub(crate) fn json(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).json_binary().not_null().take()
}

fn json_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).json_binary().null().take()
}

pub(crate) fn time(name: &'static str) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .not_null()
        .take()
}

fn time_null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name)
        .timestamp_with_time_zone()
        .null()
        .take()
}

pub(crate) fn fk(
    from_table: &'static str,
    from_col: &'static str,
    to_table: &'static str,
) -> ForeignKeyCreateStatement {
    ForeignKey::create()
        .name(format!("fk_{from_table}_{from_col}"))
        .from(from_table, from_col)
        .to(to_table, "id")
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

fn tables() -> Vec<TableCreateStatement> {
    vec![
        Table::create()
            .table("counters")
            .col(ColumnDef::new("name").text().not_null().primary_key())
            .col(ColumnDef::new("value").big_integer().not_null())
            .take(),
        Table::create()
            .table("generators")
            .col(id("id"))
            .col(text("name"))
            .col(text_null("description"))
            .col(time("created_at"))
            .col(time("updated_at"))
            .col(time_null("deleted_at"))
            .take(),
        Table::create()
            .table("stacks")
            .col(id("id"))
            .col(text("name"))
            .col(text_null("description"))
            .col(uuid_null("generator_id"))
            .col(json("labels"))
            .col(json("annotations"))
            .col(uuid_null("latest_deployment_object_id"))
            .col(time("created_at"))
            .col(time("updated_at"))
            .col(time_null("deleted_at"))
            .foreign_key(&mut fk("stacks", "generator_id", "generators"))
            .take(),
        Table::create()
            .table("deployment_objects")
            .col(id("id"))
            .col(uuid("stack_id"))
            .col(
                ColumnDef::new("sequence")
                    .big_integer()
                    .not_null()
                    .unique_key(),
            )
            .col(text("yaml_content"))
            .col(text("yaml_checksum"))
            .col(ColumnDef::new("is_deletion_marker").boolean().not_null())
            .col(json_null("provenance"))
            .col(time("created_at"))
            .foreign_key(&mut fk("deployment_objects", "stack_id", "stacks"))
            .index(
                Index::create()
                    .name("ux_deployment_objects_stack_id_sequence")
                    .unique()
                    .col("stack_id")
                    .col("sequence"),
            )
            .take(),
        Table::create()
            .table("agents")
            .col(id("id"))
            .col(text("name"))
            .col(text("cluster_name"))
            .col(json("labels"))
            .col(json("annotations"))
            .col(text("status"))
            .col(time_null("last_heartbeat"))
            .col(json("capabilities"))
            .col(time("created_at"))
            .col(time("updated_at"))
            .col(time_null("deleted_at"))
            .take(),
        Table::create()
            .table("agent_targets")
            .col(uuid("agent_id"))
            .col(uuid("stack_id"))
            .col(text("source"))
            .col(time("created_at"))
            .col(time_null("removed_at"))
            .primary_key(Index::create().col("agent_id").col("stack_id"))
            .foreign_key(&mut fk("agent_targets", "agent_id", "agents"))
            .foreign_key(&mut fk("agent_targets", "stack_id", "stacks"))
            .take(),
        Table::create()
            .table("agent_events")
            .col(id("id"))
            .col(uuid("agent_id"))
            .col(uuid("deployment_object_id"))
            .col(uuid("stack_id"))
            .col(text("event_type"))
            .col(text("status"))
            .col(text_null("message"))
            .col(time("created_at"))
            .foreign_key(&mut fk("agent_events", "agent_id", "agents"))
            .foreign_key(&mut fk(
                "agent_events",
                "deployment_object_id",
                "deployment_objects",
            ))
            .foreign_key(&mut fk("agent_events", "stack_id", "stacks"))
            .take(),
        Table::create()
            .table("templates")
            .col(id("id"))
            .col(text("name"))
            .col(text_null("description"))
            .col(uuid_null("generator_id"))
            .col(json("labels"))
            .col(json("annotations"))
            .col(ColumnDef::new("latest_version").integer().not_null())
            .col(time("created_at"))
            .col(time("updated_at"))
            .col(time_null("deleted_at"))
            .foreign_key(&mut fk("templates", "generator_id", "generators"))
            .take(),
        Table::create()
            .table("template_versions")
            .col(uuid("template_id"))
            .col(ColumnDef::new("version").integer().not_null())
            .col(text("content"))
            .col(json("parameters_schema"))
            .col(time("created_at"))
            .primary_key(Index::create().col("template_id").col("version"))
            .foreign_key(&mut fk("template_versions", "template_id", "templates"))
            .take(),
        Table::create()
            .table("api_keys")
            .col(id("id"))
            .col(ColumnDef::new("short_id").text().not_null().unique_key())
            .col(text("hash"))
            .col(text("owner_kind"))
            .col(uuid_null("owner_id"))
            .col(time("created_at"))
            .col(time_null("revoked_at"))
            .take(),
        Table::create()
            .table("audit_records")
            .col(id("id"))
            .col(text("actor_kind"))
            .col(uuid_null("actor_id"))
            .col(text("action"))
            .col(text("resource_kind"))
            .col(uuid("resource_id"))
            .col(text("summary"))
            .col(time("created_at"))
            .take(),
    ]
}

fn indexes() -> Vec<IndexCreateStatement> {
    vec![
        index("stacks", &["generator_id", "id"]),
        index("agents", &["cluster_name", "id"]),
        index("agent_targets", &["stack_id"]),
        index("agent_events", &["agent_id", "id"]),
        index("agent_events", &["stack_id", "id"]),
        index("agent_events", &["deployment_object_id", "id"]),
        index("agent_events", &["created_at"]),
        index("templates", &["generator_id", "id"]),
        index("api_keys", &["owner_kind", "owner_id"]),
        index("audit_records", &["actor_kind", "actor_id", "id"]),
        index("audit_records", &["resource_kind", "resource_id", "id"]),
        index("audit_records", &["action", "id"]),
        index("audit_records", &["created_at"]),
    ]
}

// `async_trait` needs the elided lifetime of the trait's signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in tables() {
            manager.create_table(table).await?;
        }
        for index in indexes() {
            manager.create_index(index).await?;
        }
        let db = manager.get_connection();
        for sql in PARTIAL_UNIQUE_INDEXES {
            db.execute_unprepared(sql).await?;
        }
        manager
            .exec_stmt(
                Query::insert()
                    .into_table("counters")
                    .columns(["name", "value"])
                    .values_panic([DEPLOYMENT_OBJECT_SEQUENCE.into(), 0i64.into()])
                    .take(),
            )
            .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in TABLES.iter().rev() {
            manager
                .drop_table(Table::drop().table(*table).if_exists().take())
                .await?;
        }
        Ok(())
    }
}
