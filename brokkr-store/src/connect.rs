//! Opening the pools, configuring SQLite and running migrations.

use std::sync::Arc;

use brokkr_core::ChangeHub;
use brokkr_core::store::{Error, Result};
use brokkr_migrations::Migrator;
use brokkr_migrations::MigratorTrait;
use sea_orm::sqlx::sqlite::{SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, Database, DatabaseConnection};

use crate::batch::{Batcher, CommitSlots};
use crate::diagnose;
use crate::errors::db;
use crate::write::Writer;
use crate::{
    Backend, SqlStore, StoreConfig, append, assigning, events, health, new_stacks, notify, placing,
};

pub(crate) async fn connect(config: StoreConfig) -> Result<SqlStore> {
    let backend = backend_of(&config.url)?;
    let hub = ChangeHub::default();
    let origin = notify::origin();
    let store = match backend {
        Backend::Postgres => {
            // One direct connection first: the pool would only say that it timed out.
            diagnose::probe_postgres(&config.url, config.acquire_timeout).await?;
            let pool = Database::connect(options(&config, config.max_connections))
                .await
                .map_err(db)?;
            migrate(&config, &pool).await?;
            let listener = notify::listen(&config.url, hub.clone(), origin.clone()).await?;
            let slots = batch_slots(&config);
            assemble(
                backend,
                pool.clone(),
                pool,
                hub,
                origin,
                Some(listener),
                slots,
            )
        }
        Backend::Sqlite if is_memory(&config.url) => {
            // Every connection to `sqlite::memory:` opens its own empty database, so
            // one connection serves reads and writes alike.
            let pool = Database::connect(sqlite_options(&config, 1, true))
                .await
                .map_err(|err| diagnose::sqlite_open_failed(&config.url, err))?;
            migrate(&config, &pool).await?;
            assemble(backend, pool.clone(), pool, hub, origin, None, 1)
        }
        Backend::Sqlite => {
            // The writer connects first so that it creates the file and switches it to
            // WAL before readers open it.
            let writer = Database::connect(sqlite_options(&config, 1, false))
                .await
                .map_err(|err| diagnose::sqlite_open_failed(&config.url, err))?;
            migrate(&config, &writer).await?;
            let reader = Database::connect(sqlite_options(&config, sqlite_readers(&config), false))
                .await
                .map_err(db)?;
            assemble(backend, reader, writer, hub, origin, None, 1)
        }
    };
    Ok(store)
}

/// How many batches may commit at once on PostgreSQL: at most half the pool, so that
/// reads and other writes always find a connection however busy the committers are.
fn batch_slots(config: &StoreConfig) -> usize {
    usize::try_from(config.max_connections / 2)
        .unwrap_or(1)
        .max(1)
}

/// The store over its pools, with its committers started; `slots` batches may commit
/// at once.
fn assemble(
    backend: Backend,
    reader: DatabaseConnection,
    writer: DatabaseConnection,
    hub: ChangeHub,
    origin: Arc<str>,
    listener: Option<notify::ListenerGuard>,
    slots: usize,
) -> SqlStore {
    let writer = Writer {
        pool: writer,
        backend,
        hub,
        origin,
    };
    let slots = CommitSlots::new(slots);
    SqlStore {
        backend,
        reader,
        appends: Batcher::start(&writer, append::POSTGRES_COMMITTERS, &slots),
        events: Batcher::start(&writer, events::POSTGRES_COMMITTERS, &slots),
        health: Batcher::start(&writer, health::POSTGRES_COMMITTERS, &slots),
        placing: Batcher::start(&writer, placing::POSTGRES_COMMITTERS, &slots),
        new_stacks: Batcher::start(&writer, new_stacks::POSTGRES_COMMITTERS, &slots),
        assigning: Batcher::start(&writer, assigning::POSTGRES_COMMITTERS, &slots),
        writer,
        _listener: listener,
    }
}

/// How many SQLite reader connections to open: each runs its queries on a thread of
/// its own with its own page cache, so readers beyond twice the cores add memory and
/// context switches, not throughput.
fn sqlite_readers(config: &StoreConfig) -> u32 {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let useful = u32::try_from(cores * 2).unwrap_or(u32::MAX);
    config.max_connections.clamp(1, useful.max(2))
}

fn backend_of(url: &str) -> Result<Backend> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else {
        Err(Error::Invalid(
            "database url must start with sqlite: or postgres://".into(),
        ))
    }
}

fn is_memory(url: &str) -> bool {
    url.starts_with("sqlite::memory:") || url.contains("mode=memory")
}

fn options(config: &StoreConfig, max_connections: u32) -> ConnectOptions {
    let mut options = ConnectOptions::new(config.url.clone());
    options
        .max_connections(max_connections.max(1))
        .min_connections(config.min_connections.min(max_connections.max(1)))
        .acquire_timeout(config.acquire_timeout)
        .sqlx_logging(false);
    options
}

fn sqlite_options(config: &StoreConfig, max_connections: u32, memory: bool) -> ConnectOptions {
    let busy_timeout = config.sqlite_busy_timeout;
    let mut options = options(config, max_connections);
    if memory {
        // An idle timeout or lifetime would close the only connection, and with it the
        // database.
        options
            .idle_timeout(None)
            .max_lifetime(None)
            .min_connections(1);
    }
    options.map_sqlx_sqlite_opts(move |opts| {
        let opts = opts
            .busy_timeout(busy_timeout)
            .foreign_keys(true)
            .synchronous(SqliteSynchronous::Normal);
        if memory {
            opts
        } else {
            opts.journal_mode(SqliteJournalMode::Wal)
        }
    });
    options
}

async fn migrate(config: &StoreConfig, db: &DatabaseConnection) -> Result<()> {
    if config.run_migrations {
        Migrator::up(db, None).await.map_err(db_migration)?;
    }
    Ok(())
}

fn db_migration(err: sea_orm::DbErr) -> Error {
    Error::Backend(Box::new(err))
}
