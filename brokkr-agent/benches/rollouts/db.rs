//! Reads of the server's database that the API does not answer cheaply: pins left,
//! the first failure event, states counted over many rollouts, and PostgreSQL's own
//! statistics of rows written and transactions committed. Read only.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement, Value};

use crate::Result;

/// Tables that hold a rollout's state: its own, the pins, the stack's release head.
pub const STATE_TABLES: [&str; 7] = [
    "rollouts",
    "rollout_waves",
    "rollout_agents",
    "agent_stack_pins",
    "stacks",
    "gate_evaluations",
    "rollout_commands",
];

/// Tables of what the driver's transactions also log: the audit records (with the
/// chain's queue and its later hashing) and the webhook outbox.
pub const LOG_TABLES: [&str; 4] = [
    "audit_records",
    "audit_chain_queue",
    "audit_chain",
    "webhook_outbox",
];

pub struct Db {
    connection: DatabaseConnection,
    backend: DbBackend,
}

impl Db {
    pub async fn connect(url: &str) -> Result<Self> {
        let connection = Database::connect(url).await?;
        let backend = connection.get_database_backend();
        Ok(Self {
            connection,
            backend,
        })
    }

    pub fn is_postgres(&self) -> bool {
        self.backend == DbBackend::Postgres
    }

    /// `sql`, whose parameters are written `?`, in the backend's own syntax.
    fn statement(&self, sql: &str, values: Vec<Value>) -> Statement {
        let sql = if self.is_postgres() {
            let mut out = String::with_capacity(sql.len() + 8);
            let mut n = 0;
            for c in sql.chars() {
                if c == '?' {
                    n += 1;
                    out.push_str(&format!("${n}"));
                } else {
                    out.push(c);
                }
            }
            out
        } else {
            sql.to_owned()
        };
        Statement::from_sql_and_values(self.backend, sql, values)
    }

    /// The first column `n` of a one-row query, as a count.
    pub async fn count(&self, sql: &str, values: Vec<Value>) -> Result<i64> {
        let row = self
            .connection
            .query_one_raw(self.statement(sql, values))
            .await?
            .ok_or("no row")?;
        Ok(row.try_get("", "n")?)
    }

    /// Pins left, on every stack.
    pub async fn pins(&self) -> Result<i64> {
        self.count("SELECT COUNT(*) AS n FROM agent_stack_pins", Vec::new())
            .await
    }

    /// Rollouts in `state`.
    pub async fn rollouts_in(&self, state: &str) -> Result<i64> {
        self.count(
            "SELECT COUNT(*) AS n FROM rollouts WHERE state = ?",
            vec![state.into()],
        )
        .await
    }

    /// Waves in `state`.
    pub async fn waves_in(&self, state: &str) -> Result<i64> {
        self.count(
            "SELECT COUNT(*) AS n FROM rollout_waves WHERE state = ?",
            vec![state.into()],
        )
        .await
    }

    /// Audit records of `rollout` (its pins, unpins, rollout and wave transitions).
    pub async fn audits_of(&self, rollout: uuid::Uuid) -> Result<i64> {
        self.count(
            "SELECT COUNT(*) AS n FROM audit_records WHERE resource_id = ?",
            vec![rollout.into()],
        )
        .await
    }

    /// Audit records of every rollout.
    pub async fn rollout_audits(&self) -> Result<i64> {
        self.count(
            "SELECT COUNT(*) AS n FROM audit_records WHERE resource_kind = 'rollout'",
            Vec::new(),
        )
        .await
    }

    /// When the server recorded the first failure event for `object`.
    pub async fn first_failure(&self, object: uuid::Uuid) -> Result<Option<DateTime<Utc>>> {
        let rows = self
            .connection
            .query_all_raw(self.statement(
                "SELECT created_at FROM agent_events WHERE deployment_object_id = ? \
                 AND status = 'failure' ORDER BY created_at LIMIT 1",
                vec![object.into()],
            ))
            .await?;
        match rows.first() {
            Some(row) => Ok(Some(row.try_get("", "created_at")?)),
            None => Ok(None),
        }
    }

    /// The latest `all_healthy_since` of a baking wave.
    pub async fn last_bake_start(&self) -> Result<Option<DateTime<Utc>>> {
        let rows = self
            .connection
            .query_all_raw(self.statement(
                "SELECT all_healthy_since FROM rollout_waves WHERE state = 'baking' \
                 AND all_healthy_since IS NOT NULL ORDER BY all_healthy_since DESC LIMIT 1",
                Vec::new(),
            ))
            .await?;
        match rows.first() {
            Some(row) => Ok(Some(row.try_get("", "all_healthy_since")?)),
            None => Ok(None),
        }
    }

    /// PostgreSQL: rows inserted, updated and deleted so far, per table, and the
    /// transactions committed in this database. `None` on SQLite, which keeps no such
    /// statistics. PostgreSQL's statistics lag: a backend reports its counts when it
    /// goes idle, at most once a second, or after 10 s of idleness (see [`STATS_LAG`]).
    pub async fn writes(&self) -> Result<Option<Writes>> {
        if !self.is_postgres() {
            return Ok(None);
        }
        // A fresh snapshot of the statistics, not the one this connection cached.
        self.connection
            .execute_unprepared("SELECT pg_stat_clear_snapshot()")
            .await?;
        let rows = self
            .connection
            .query_all_raw(self.statement(
                "SELECT relname::text AS t, (n_tup_ins + n_tup_upd + n_tup_del)::bigint AS n \
                 FROM pg_stat_user_tables",
                Vec::new(),
            ))
            .await?;
        let mut tables = BTreeMap::new();
        for row in rows {
            let table: String = row.try_get("", "t")?;
            let n: i64 = row.try_get("", "n")?;
            tables.insert(table, n);
        }
        let commits = self
            .count(
                "SELECT xact_commit::bigint AS n FROM pg_stat_database \
                 WHERE datname = current_database()",
                Vec::new(),
            )
            .await?;
        Ok(Some(Writes { tables, commits }))
    }
}

/// How long PostgreSQL may take to publish a backend's counts: an idle backend
/// flushes them after 10 s at the latest (PGSTAT_IDLE_INTERVAL).
pub const STATS_LAG: std::time::Duration = std::time::Duration::from_secs(11);

/// PostgreSQL's counts of rows written, per table, and of transactions committed.
#[derive(Debug, Clone, Default)]
pub struct Writes {
    pub tables: BTreeMap<String, i64>,
    pub commits: i64,
}

impl Writes {
    /// What was written between `before` and `self`.
    pub fn since(&self, before: &Writes) -> Writes {
        Writes {
            tables: self
                .tables
                .iter()
                .map(|(t, n)| (t.clone(), n - before.tables.get(t).copied().unwrap_or(0)))
                .filter(|(_, n)| *n != 0)
                .collect(),
            commits: self.commits - before.commits,
        }
    }

    /// Rows written in `tables`.
    pub fn rows(&self, tables: &[&str]) -> i64 {
        tables.iter().filter_map(|t| self.tables.get(*t)).sum()
    }

    /// `table rows, ...`, largest first.
    pub fn breakdown(&self) -> String {
        let mut tables: Vec<_> = self.tables.iter().collect();
        tables.sort_by(|a, b| b.1.cmp(a.1));
        let items: Vec<String> = tables.iter().map(|(t, n)| format!("{t} {n}")).collect();
        items.join(", ")
    }
}
