//! Driver errors mapped to store errors, once, for both databases.

use brokkr_core::store::Error;
use sea_orm::sqlx;
use sea_orm::{ConnAcquireErr, DbErr, RuntimeErr, SqlErr};

/// Maps a sea-orm error: a database that cannot be reached is `Unavailable`, a unique
/// violation is a `Conflict` (a name or short id taken, usually by a concurrent writer
/// that passed the same pre-check), a foreign-key violation means the input names a
/// row that does not exist, anything else is the platform's failure.
pub(crate) fn db(err: DbErr) -> Error {
    if is_unavailable(&err) {
        return Error::Unavailable(Box::new(err));
    }
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(detail)) => {
            Error::Conflict(format!("already exists ({})", constraint_of(&detail)))
        }
        Some(SqlErr::ForeignKeyConstraintViolation(_)) => {
            Error::Invalid("refers to a resource that does not exist".into())
        }
        _ => Error::Backend(Box::new(err)),
    }
}

/// Whether the database could not be reached, as opposed to refusing or failing a
/// statement: no connection came free (or could be opened) in time, the connection
/// broke, the server is shutting down or not accepting connections (SQLSTATE classes
/// 08 and 57P), or SQLite stayed busy past its timeout.
fn is_unavailable(err: &DbErr) -> bool {
    match err {
        DbErr::ConnectionAcquire(ConnAcquireErr::Timeout | ConnAcquireErr::ConnectionClosed) => {
            true
        }
        DbErr::Conn(RuntimeErr::SqlxError(err))
        | DbErr::Exec(RuntimeErr::SqlxError(err))
        | DbErr::Query(RuntimeErr::SqlxError(err)) => sqlx_unavailable(err),
        _ => false,
    }
}

fn sqlx_unavailable(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(err) => {
            let Some(code) = err.code() else {
                return false;
            };
            if err
                .try_downcast_ref::<sqlx::sqlite::SqliteError>()
                .is_some()
            {
                // SQLITE_BUSY and its extended codes (the low byte is the primary code).
                code.parse::<u32>().is_ok_and(|code| code & 0xff == 5)
            } else {
                code.starts_with("08") || code.starts_with("57P")
            }
        }
        _ => false,
    }
}

/// A JSON column that does not hold what this crate wrote.
pub(crate) fn corrupt(what: &str, detail: impl std::fmt::Display) -> Error {
    Error::Backend(format!("stored {what} is malformed: {detail}").into())
}

/// The name of the violated constraint or index, without the rest of the driver's
/// message (which may quote values).
fn constraint_of(detail: &str) -> &str {
    const NAMES: &[(&str, &str)] = &[
        ("ux_stacks_live_name", "stack name"),
        ("stacks.name", "stack name"),
        ("ux_agents_live_name", "agent name in cluster"),
        ("agents.name", "agent name in cluster"),
        ("ux_generators_live_name", "generator name"),
        ("generators.name", "generator name"),
        ("ux_templates_live_name", "template name"),
        ("templates.name", "template name"),
        ("short_id", "key short id"),
        ("agent_events", "agent event id"),
        ("agent_targets", "agent target"),
        ("ux_rollouts_active_stack", "active rollout of the stack"),
    ];
    NAMES
        .iter()
        .find(|(needle, _)| detail.contains(needle))
        .map_or("unique constraint", |(_, name)| name)
}
