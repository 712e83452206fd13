//! Driver errors mapped to store errors, once, for both databases.

use brokkr_core::store::Error;
use sea_orm::{DbErr, SqlErr};

/// Maps a sea-orm error: a unique violation is a `Conflict` (a name or short id taken,
/// usually by a concurrent writer that passed the same pre-check), a foreign-key
/// violation means the input names a row that does not exist, anything else is the
/// platform's failure.
pub(crate) fn db(err: DbErr) -> Error {
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
    ];
    NAMES
        .iter()
        .find(|(needle, _)| detail.contains(needle))
        .map_or("unique constraint", |(_, name)| name)
}
