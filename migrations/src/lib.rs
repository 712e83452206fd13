//! The one schema of Brokkr's store, for PostgreSQL and SQLite.
//!
//! [`Migrator`] lists every migration in order; `brokkr-store` runs it at start-up
//! unless told not to. Tables are built with sea-query so that one definition yields
//! the right types on both databases (`uuid`/`timestamptz`/`jsonb` on PostgreSQL,
//! their text-affinity equivalents on SQLite). Partial unique indexes, which keep
//! names unique among rows that are not soft-deleted, are plain SQL that both
//! databases accept unchanged.
//!
//! ```no_run
//! use brokkr_migrations::{Migrator, MigratorTrait};
//!
//! # async fn run(db: &sea_orm_migration::sea_orm::DatabaseConnection) -> Result<(), sea_orm_migration::DbErr> {
//! Migrator::up(db, None).await?;
//! # Ok(()) }
//! ```

use sea_orm_migration::prelude::*;

mod m0001_initial;
mod m0002_health;
mod m0003_placement;
mod m0004_sequence;
mod m0005_key_revocations;
mod m0006_plans;
mod m0007_webhooks;
mod m0008_audit_chain;
mod m0009_rollouts;
mod m0010_audit_queue_hash;

/// Name of what hands out deployment-object sequences: a `counters` row on SQLite, a
/// database sequence on PostgreSQL.
pub const DEPLOYMENT_OBJECT_SEQUENCE: &str = "deployment_object_sequence";

/// Name of the `counters` row that moves at every key revocation.
pub const KEY_REVOCATIONS: &str = "key_revocations";

/// Every migration of Brokkr's schema, oldest first.
#[derive(Debug, Clone, Copy, Default)]
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m0001_initial::Migration),
            Box::new(m0002_health::Migration),
            Box::new(m0003_placement::Migration),
            Box::new(m0004_sequence::Migration),
            Box::new(m0005_key_revocations::Migration),
            Box::new(m0006_plans::Migration),
            Box::new(m0007_webhooks::Migration),
            Box::new(m0008_audit_chain::Migration),
            Box::new(m0009_rollouts::Migration),
            Box::new(m0010_audit_queue_hash::Migration),
        ]
    }

    fn migration_table_name() -> DynIden {
        "brokkr_migrations".into_iden()
    }
}

/// Re-exported so callers can run [`Migrator`] (`up`, `down`, `status`) without a direct
/// dependency on sea-orm-migration.
pub use sea_orm_migration::MigratorTrait;
