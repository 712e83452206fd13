//! Deployment-object sequences from a database sequence on PostgreSQL.
//!
//! Until now every append took the next value from the `counters` row with an
//! `UPDATE`, whose row lock every other append waited for until commit: writes to
//! different stacks serialised on one row. A PostgreSQL sequence hands out values
//! without waiting for other transactions; appends draw from it after locking their
//! stack, so within a stack sequence order is still commit order. It continues where
//! the counter stopped. SQLite has one writer, so it keeps the counter row.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::DbBackend;

use crate::DEPLOYMENT_OBJECT_SEQUENCE;

#[derive(DeriveMigrationName)]
pub(crate) struct Migration;

// `async_trait` needs the elided lifetime of the trait's signature.
#[allow(elided_lifetimes_in_paths)]
#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        db.execute_unprepared(&format!(
            "CREATE SEQUENCE {DEPLOYMENT_OBJECT_SEQUENCE} AS bigint MINVALUE 1"
        ))
        .await?;
        // `false`: the next `nextval` returns exactly the counter's next value.
        db.execute_unprepared(&format!(
            "SELECT setval('{DEPLOYMENT_OBJECT_SEQUENCE}', value + 1, false) \
             FROM counters WHERE name = '{DEPLOYMENT_OBJECT_SEQUENCE}'"
        ))
        .await?;
        Ok(())
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        if manager.get_database_backend() != DbBackend::Postgres {
            return Ok(());
        }
        let db = manager.get_connection();
        // Hand the counter back every value the sequence gave out.
        db.execute_unprepared(&format!(
            "UPDATE counters SET value = \
             (SELECT COALESCE(MAX(sequence), 0) FROM deployment_objects) \
             WHERE name = '{DEPLOYMENT_OBJECT_SEQUENCE}'"
        ))
        .await?;
        db.execute_unprepared(&format!(
            "DROP SEQUENCE IF EXISTS {DEPLOYMENT_OBJECT_SEQUENCE}"
        ))
        .await?;
        Ok(())
    }
}
