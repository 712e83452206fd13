//! Webhooks: subscriptions, the outbox, deliveries, and the stale mark on agents.
//!
//! - `webhook_subscriptions`: where to send which events; `lease_owner` and
//!   `lease_until` are a dispatcher's claim on the subscription, so that one delivery
//!   of a subscription is in flight at a time, across replicas.
//! - `webhook_outbox`: events written by the transaction of the change that causes
//!   them; `position` (assigned on insert, increasing) is the order fan-out takes them
//!   in. Fan-out deletes what it moved.
//! - `webhook_deliveries`: one event for one subscription. `position`, assigned at
//!   fan-out, orders a subscription's deliveries; `id` is the idempotency key a
//!   receiver sees. The event is copied in, so deliveries outlive the outbox row.
//!   Partial indexes serve the head pending delivery of a subscription, the oldest
//!   pending event, and pruning delivered rows.
//! - `agents.stale_since`: set when an agent is found silent, cleared by its next
//!   heartbeat, so each silence yields one `agent.stale` and one `agent.recovered`;
//!   a partial index finds the silent agents not marked yet.

use sea_orm_migration::prelude::*;

use crate::m0001_initial::{fk, json, text, text_null, time, uuid};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

const SUBSCRIPTIONS: &str = "webhook_subscriptions";
const OUTBOX: &str = "webhook_outbox";
const DELIVERIES: &str = "webhook_deliveries";

/// Partial indexes are the same SQL on PostgreSQL and SQLite.
const PARTIAL_INDEXES: &[&str] = &[
    "CREATE INDEX ix_webhook_deliveries_pending ON webhook_deliveries \
     (subscription_id, position) WHERE status = 'pending'",
    "CREATE INDEX ix_webhook_deliveries_pending_occurred_at ON webhook_deliveries \
     (occurred_at) WHERE status = 'pending'",
    "CREATE INDEX ix_webhook_deliveries_delivered_at ON webhook_deliveries \
     (delivered_at) WHERE status = 'delivered'",
    "CREATE INDEX ix_agents_not_stale_last_heartbeat ON agents \
     (last_heartbeat) WHERE deleted_at IS NULL AND stale_since IS NULL",
];

/// The index of live agents not marked stale, by last heartbeat.
const AGENTS_NOT_STALE: &str = "ix_agents_not_stale_last_heartbeat";

fn null(name: &'static str) -> ColumnDef {
    ColumnDef::new(name).null().take()
}

fn position() -> ColumnDef {
    ColumnDef::new("position")
        .big_integer()
        .not_null()
        .auto_increment()
        .primary_key()
        .take()
}

fn subscriptions_table() -> TableCreateStatement {
    Table::create()
        .table(SUBSCRIPTIONS)
        .col(ColumnDef::new("id").uuid().not_null().primary_key())
        .col(text("owner_kind"))
        .col(null("owner_id").uuid().take())
        .col(text("url"))
        .col(text_null("description"))
        .col(json("event_types"))
        .col(null("stack_id").uuid().take())
        .col(null("labels").json_binary().take())
        .col(ColumnDef::new("sealed_secret").binary().not_null())
        .col(ColumnDef::new("enabled").boolean().not_null())
        .col(time("created_at"))
        .col(time("updated_at"))
        .col(text_null("lease_owner"))
        .col(null("lease_until").timestamp_with_time_zone().take())
        .take()
}

fn outbox_table() -> TableCreateStatement {
    Table::create()
        .table(OUTBOX)
        .col(position())
        .col(uuid("id"))
        .col(text("event_type"))
        .col(null("stack_id").uuid().take())
        .col(null("agent_id").uuid().take())
        .col(time("occurred_at"))
        .col(json("data"))
        .take()
}

fn deliveries_table() -> TableCreateStatement {
    Table::create()
        .table(DELIVERIES)
        .col(position())
        .col(ColumnDef::new("id").uuid().not_null().unique_key())
        .col(uuid("subscription_id"))
        .col(uuid("event_id"))
        .col(text("event_type"))
        .col(null("stack_id").uuid().take())
        .col(null("agent_id").uuid().take())
        .col(time("occurred_at"))
        .col(json("data"))
        .col(text("status"))
        .col(ColumnDef::new("attempts").integer().not_null())
        .col(time("next_attempt_at"))
        .col(null("last_attempt_at").timestamp_with_time_zone().take())
        .col(null("last_status").integer().take())
        .col(text_null("last_error"))
        .col(time("created_at"))
        .col(null("delivered_at").timestamp_with_time_zone().take())
        .foreign_key(&mut fk(DELIVERIES, "subscription_id", SUBSCRIPTIONS))
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

// `async_trait` needs the elided lifetime of the trait's signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("agents")
                    .add_column(null("stale_since").timestamp_with_time_zone().take())
                    .take(),
            )
            .await?;
        manager.create_table(subscriptions_table()).await?;
        manager.create_table(outbox_table()).await?;
        manager.create_table(deliveries_table()).await?;
        for index in [
            index(SUBSCRIPTIONS, &["owner_kind", "owner_id", "id"]),
            index(DELIVERIES, &["subscription_id", "id"]),
            index(DELIVERIES, &["status", "id"]),
        ] {
            manager.create_index(index).await?;
        }
        let db = manager.get_connection();
        for sql in PARTIAL_INDEXES {
            db.execute_unprepared(sql).await?;
        }
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        // SQLite drops no column an index still names.
        manager
            .drop_index(
                Index::drop()
                    .name(AGENTS_NOT_STALE)
                    .table("agents")
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table("agents")
                    .drop_column("stale_since")
                    .take(),
            )
            .await?;
        for table in [DELIVERIES, OUTBOX, SUBSCRIPTIONS] {
            manager
                .drop_table(Table::drop().table(table).if_exists().take())
                .await?;
        }
        Ok(())
    }
}
