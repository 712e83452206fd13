//! The tamper-evident audit chain.
//!
//! - `audit_records.content_hash`: the SHA-256 of the record's fields, hex, written with
//!   the record. NULL for records written before this migration; the sealer hashes
//!   their fields when it links them.
//! - `audit_chain_queue`: the records not yet linked, one row written with each record
//!   and removed by the sealer, so finding them never scans history. Filled here with
//!   every record stored so far.
//! - `audit_chain`: the links, append-only: `position` from 1 without gaps, the record
//!   it seals (each at most once), and `chain_hash` = SHA-256(previous chain hash ||
//!   the record's content hash), hex. No foreign key to `audit_records`: a deleted
//!   record must be reported by the check, which a refused delete would only hide
//!   behind a dropped constraint.

use sea_orm_migration::prelude::*;

use crate::m0001_initial::{text, uuid};

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

const CHAIN: &str = "audit_chain";
const QUEUE: &str = "audit_chain_queue";

const QUEUE_EXISTING: &str =
    "INSERT INTO audit_chain_queue (audit_record_id) SELECT id FROM audit_records";

fn chain_table() -> TableCreateStatement {
    Table::create()
        .table(CHAIN)
        .col(
            ColumnDef::new("position")
                .big_integer()
                .not_null()
                .primary_key(),
        )
        .col(uuid("audit_record_id"))
        .col(text("chain_hash"))
        .take()
}

fn queue_table() -> TableCreateStatement {
    Table::create()
        .table(QUEUE)
        .col(
            ColumnDef::new("audit_record_id")
                .uuid()
                .not_null()
                .primary_key(),
        )
        .take()
}

// `async_trait` needs the elided lifetime of the trait's signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table("audit_records")
                    .add_column(ColumnDef::new("content_hash").text().null())
                    .take(),
            )
            .await?;
        manager.create_table(chain_table()).await?;
        manager
            .create_index(
                Index::create()
                    .name("ux_audit_chain_audit_record_id")
                    .table(CHAIN)
                    .col("audit_record_id")
                    .unique()
                    .take(),
            )
            .await?;
        manager.create_table(queue_table()).await?;
        manager
            .get_connection()
            .execute_unprepared(QUEUE_EXISTING)
            .await
            .map(|_| ())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for table in [QUEUE, CHAIN] {
            manager
                .drop_table(Table::drop().table(table).if_exists().take())
                .await?;
        }
        manager
            .alter_table(
                Table::alter()
                    .table("audit_records")
                    .drop_column("content_hash")
                    .take(),
            )
            .await
    }
}
