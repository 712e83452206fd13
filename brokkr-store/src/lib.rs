//! Brokkr's production [`Store`](brokkr_core::Store), on PostgreSQL and SQLite.
//!
//! [`SqlStore`] is one type for both databases, built on sea-orm. Start with
//! [`SqlStore::connect`] (a URL) or [`SqlStore::connect_with`] (a [`StoreConfig`]); both
//! run the schema migrations of `brokkr-migrations` unless told not to. Callers only
//! ever see `brokkr_core` types: the tables and their sea-orm entities stay inside.
//!
//! ```no_run
//! use brokkr_core::{Actor, NewStack, Store};
//! use brokkr_store::SqlStore;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! // `sqlite://brokkr.db?mode=rwc`, `sqlite::memory:` or `postgres://user@host/db`.
//! let store = SqlStore::connect("sqlite::memory:").await?;
//! let stack = store
//!     .create_stack(&Actor::Admin, NewStack { name: "tenant-a".into(), ..Default::default() })
//!     .await?;
//! assert_eq!(store.get_stack(stack.id).await?.name, "tenant-a");
//! # Ok(()) }
//! ```
//!
//! # How it keeps the contract
//!
//! - Every mutation and its audit record commit in one transaction; the record carries
//!   its content hash and is queued for the audit chain, which a sealer extends one
//!   call at a time (`pg_advisory_xact_lock` on PostgreSQL), so writers never wait
//!   for each other's records.
//! - SQLite: WAL journal, `busy_timeout`, `foreign_keys=ON`, `synchronous=NORMAL`. All
//!   write transactions go through a separate pool of exactly one connection and begin
//!   `IMMEDIATE`, so writers in this process queue in the pool instead of racing for
//!   the database lock, and writers in other processes wait in `busy_timeout`; reads
//!   use their own pool and never block on writers (WAL).
//! - Deployment-object sequences strictly increase within a stack: the stack's row is
//!   locked before its sequences are drawn (a database sequence on PostgreSQL, a
//!   counter row on SQLite), so within a stack sequence order is commit order.
//! - The frequent writes (new stacks, appends, new placements, direct assignments,
//!   agent events, health reports) commit in batches (group commit), each caller still answered alone: see
//!   `batch.rs`.
//! - Change notification: on SQLite the store publishes into its
//!   [`ChangeHub`](brokkr_core::ChangeHub) after commit; on PostgreSQL it sends
//!   `pg_notify` inside the write transaction and a background `LISTEN` task publishes
//!   what arrives, so writes through any replica wake long polls on every replica.

mod append;
mod assigning;
mod audit;
mod audit_chain;
mod batch;
mod connect;
mod content;
mod convert;
mod diagnose;
mod entity;
mod errors;
mod notify;
mod outbox;
mod paging;
mod sql;
mod store;
mod write;

mod agents;
mod applied;
mod confirm;
mod deliveries;
mod events;
mod fleet;
mod generators;
mod harmless;
mod health;
mod items;
mod keys;
mod metadata;
mod new_stacks;
mod object_listing;
mod placements;
mod placing;
mod plans;
mod report_refs;
mod rollout_appends;
mod rollout_changes;
mod rollout_claims;
mod rollout_due;
mod rollout_operator;
mod rollout_reads;
mod rollout_rows;
mod rollout_snapshot;
mod rollout_store;
mod stacks;
mod stale;
mod subscriptions;
mod targets;
mod template_listing;
mod templates;
mod world;

use std::time::Duration;

use brokkr_core::ChangeHub;
use sea_orm::DatabaseConnection;

pub use brokkr_migrations::{Migrator, MigratorTrait};

/// Which database a [`SqlStore`] talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Backend {
    /// SQLite (a file or memory): one process, change notification in process.
    Sqlite,
    /// PostgreSQL: several replicas may share it; change notification by `LISTEN/NOTIFY`.
    Postgres,
}

impl Backend {
    /// The backend a connection talks to.
    pub(crate) fn of(conn: &impl sea_orm::ConnectionTrait) -> Self {
        match conn.get_database_backend() {
            sea_orm::DbBackend::Postgres => Backend::Postgres,
            _ => Backend::Sqlite,
        }
    }
}

/// How to connect.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreConfig {
    /// `sqlite://path?mode=rwc`, `sqlite::memory:` or `postgres://...`.
    pub url: String,
    /// Upper bound of the (reader) pool. SQLite opens at most twice as many readers as
    /// the machine has cores.
    pub max_connections: u32,
    /// Connections kept open when idle.
    pub min_connections: u32,
    /// How long to wait for a pooled connection, connecting included: while the
    /// database is down, how long a call takes to fail with `Unavailable`. It also
    /// bounds the first PostgreSQL connection at start.
    pub acquire_timeout: Duration,
    /// How long SQLite waits for a lock held by another connection before failing.
    pub sqlite_busy_timeout: Duration,
    /// Run the schema migrations on connect.
    pub run_migrations: bool,
}

impl Default for StoreConfig {
    /// A SQLite file `brokkr.db` in the working directory, created if missing.
    fn default() -> Self {
        Self {
            url: "sqlite://brokkr.db?mode=rwc".into(),
            max_connections: 10,
            min_connections: 1,
            acquire_timeout: Duration::from_secs(3),
            sqlite_busy_timeout: Duration::from_secs(5),
            run_migrations: true,
        }
    }
}

/// The production [`Store`](brokkr_core::Store) on PostgreSQL or SQLite.
///
/// Connecting starts background tasks on the current tokio runtime: the committers of
/// new stacks, appends, agent events, health reports and new placements (each kind waits in a
/// queue and commits in batches) and, on PostgreSQL, the `LISTEN` task. Use the store
/// on that runtime; dropping it stops them (the committers after answering what is
/// queued).
#[derive(Debug)]
pub struct SqlStore {
    backend: Backend,
    /// Reads. On SQLite a separate pool from `writer`; on PostgreSQL the same pool.
    reader: DatabaseConnection,
    /// Write transactions and their announcements.
    writer: write::Writer,
    /// The batched writes: each kind queues and commits in batches.
    appends: batch::Batcher<append::Append>,
    events: batch::Batcher<events::EventReport>,
    health: batch::Batcher<health::HealthUpdate>,
    placing: batch::Batcher<placing::Placing>,
    new_stacks: batch::Batcher<new_stacks::NewStackWrite>,
    assigning: batch::Batcher<assigning::Assignment>,
    _listener: Option<notify::ListenerGuard>,
}

impl SqlStore {
    /// Connects with [`StoreConfig::default`] settings to `url` and runs migrations.
    pub async fn connect(url: &str) -> Result<SqlStore, brokkr_core::store::Error> {
        Self::connect_with(StoreConfig {
            url: url.to_owned(),
            ..StoreConfig::default()
        })
        .await
    }

    /// Connects as configured.
    pub async fn connect_with(config: StoreConfig) -> Result<SqlStore, brokkr_core::store::Error> {
        connect::connect(config).await
    }

    /// Which database this store talks to.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The hub that wakes this store's target-state watches.
    pub fn change_hub(&self) -> &ChangeHub {
        &self.writer.hub
    }
}
