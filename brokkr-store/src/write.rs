//! Write transactions: begin on the writer, collect the agents whose target state the
//! change touches and the webhook events it causes, write the events and announce the
//! agents, commit.

use brokkr_core::store::Result;
use std::sync::Arc;

use brokkr_core::{AgentId, ChangeHub, TargetChange, WebhookEvent};
use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{
    ConnectionTrait, DatabaseConnection, DatabaseTransaction, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};

use crate::errors::db;
use crate::{Backend, SqlStore, notify, outbox, sql};

/// What a write transaction needs: the writer pool, and where to announce its changes.
/// Cheap to clone, so the append committers hold their own.
#[derive(Debug, Clone)]
pub(crate) struct Writer {
    /// Write transactions. On SQLite a pool of exactly one connection.
    pub(crate) pool: DatabaseConnection,
    pub(crate) backend: Backend,
    pub(crate) hub: ChangeHub,
    /// Tags this store's notifications, so its own listener skips what the store
    /// already published locally at commit.
    pub(crate) origin: Arc<str>,
}

/// The current time at the precision both databases store (microseconds), so a value
/// returned by a write equals the value read back later.
pub(crate) fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// One open write transaction.
pub(crate) struct Write {
    tx: DatabaseTransaction,
    backend: Backend,
    affected: Vec<AgentId>,
    /// Agents whose record this transaction changes, announced to other replicas.
    agents_changed: Vec<AgentId>,
    /// Webhook events this change causes, written to the outbox just before commit.
    events: Vec<WebhookEvent>,
    /// The transaction's clock: every timestamp it writes.
    pub(crate) now: DateTime<Utc>,
}

impl SqlStore {
    pub(crate) async fn begin(&self) -> Result<Write> {
        self.writer.begin().await
    }

    pub(crate) async fn commit(&self, write: Write) -> Result<()> {
        self.writer.commit(write).await
    }
}

impl Writer {
    /// Begins a write transaction. On SQLite it runs on the single writer connection
    /// and begins `IMMEDIATE`, taking the database's write lock up front: a deferred
    /// transaction that reads first and writes later could otherwise fail with
    /// "database is locked" when it tries to upgrade its lock.
    pub(crate) async fn begin(&self) -> Result<Write> {
        let tx = match self.backend {
            Backend::Sqlite => self
                .pool
                .begin_with_options(TransactionOptions {
                    sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                    ..TransactionOptions::default()
                })
                .await
                .map_err(db)?,
            Backend::Postgres => self.pool.begin().await.map_err(db)?,
        };
        Ok(Write {
            tx,
            backend: self.backend,
            affected: Vec::new(),
            agents_changed: Vec::new(),
            events: Vec::new(),
            now: now(),
        })
    }

    /// Commits, then wakes the watches of the affected agents: in this store's hub
    /// directly, before returning, so a caller reads its own writes through any cache
    /// the hub invalidates; and on PostgreSQL also through `pg_notify` sent inside the
    /// transaction (delivered on commit to every replica; this store's own listener
    /// skips it, tagged with its origin). The change's webhook events go to the outbox
    /// with one statement in the same transaction, so they exist exactly when it
    /// commits.
    pub(crate) async fn commit(&self, write: Write) -> Result<()> {
        let Write {
            tx,
            backend,
            mut affected,
            mut agents_changed,
            events,
            ..
        } = write;
        outbox::insert(&tx, &events).await?;
        affected.sort_unstable();
        affected.dedup();
        agents_changed.sort_unstable();
        agents_changed.dedup();
        if backend == Backend::Postgres {
            let target_changes = notify::payloads(&self.origin, &affected)
                .into_iter()
                .map(|payload| (notify::CHANNEL, payload));
            // Only other replicas need agent changes: this one's control plane applied
            // them itself when it made them.
            let agent_changes = notify::payloads(&self.origin, &agents_changed)
                .into_iter()
                .map(|payload| (notify::AGENT_CHANNEL, payload));
            for (channel, payload) in target_changes.chain(agent_changes) {
                tx.execute_raw(sql::stmt(
                    backend,
                    "SELECT pg_notify(?, ?)",
                    [channel.into(), payload.into()],
                ))
                .await
                .map_err(db)?;
            }
        }
        tx.commit().await.map_err(db)?;
        if !affected.is_empty() {
            self.hub.publish(TargetChange::Agents(affected));
        }
        Ok(())
    }
}

impl Write {
    /// The transaction, to run statements on.
    pub(crate) fn tx(&self) -> &DatabaseTransaction {
        &self.tx
    }

    pub(crate) fn backend(&self) -> Backend {
        self.backend
    }

    /// Notes that these agents' records (registration, status, labels, annotations,
    /// deletion) change with this transaction, for other replicas' placement.
    pub(crate) fn agent_changed(&mut self, agents: impl IntoIterator<Item = AgentId>) {
        self.agents_changed.extend(agents);
    }

    /// Writes a webhook event with this transaction's change (to the outbox, at
    /// commit). A transaction that does not commit writes none.
    pub(crate) fn emit(&mut self, event: WebhookEvent) {
        self.events.push(event);
    }

    /// Notes that the target state of `agents` may change with this transaction.
    pub(crate) fn affect(&mut self, agents: impl IntoIterator<Item = AgentId>) {
        self.affected.extend(agents);
    }
}
