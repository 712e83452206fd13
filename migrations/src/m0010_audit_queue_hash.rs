//! The audit chain's queue carries each record's content hash.
//!
//! - `audit_chain_queue.content_hash`: the record's content hash, hex, written with the
//!   record and its queue row, so the sealer links queued records without reading them
//!   back from `audit_records` (a read by hundreds of ids that PostgreSQL answers with
//!   a scan of the whole history once the table is large). NULL for rows queued before
//!   this migration: the sealer reads those records as it did before.

use sea_orm_migration::prelude::*;

use crate::m0001_initial::text_null;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

const QUEUE: &str = "audit_chain_queue";

// `async_trait` needs the elided lifetime of the trait's signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(QUEUE)
                    .add_column(text_null("content_hash"))
                    .take(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(QUEUE)
                    .drop_column("content_hash")
                    .take(),
            )
            .await
    }
}
