//! What a store operation can fail with.

/// What a store operation can fail with. Callers branch on all but `Backend`, which is
/// the platform's failure, not the caller's.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The resource does not exist (or is soft-deleted).
    #[error("{kind} {id} not found")]
    NotFound {
        /// Which kind of resource, in lowercase words: `stack`, `deployment object`,
        /// `agent`, `agent target`, `agent event`, `generator`, `template`,
        /// `template version`, `label`, `annotation`.
        kind: &'static str,
        /// The id (or key) asked for.
        id: String,
    },
    /// A uniqueness rule or the resource's state forbids the change (duplicate name,
    /// target already assigned, key short id taken, event id of another agent, ...).
    #[error("conflict: {0}")]
    Conflict(String),
    /// The input breaks a validation rule; nothing was written.
    #[error("invalid input: {0}")]
    Invalid(String),
    /// A page cursor that this listing did not hand out (a request-syntax error rather
    /// than invalid data: APIs answer it like a bad query parameter).
    #[error("malformed page cursor {0:?}")]
    InvalidCursor(String),
    /// The database cannot be reached right now: it refused or dropped the
    /// connection, or no connection came free within the pool's acquire timeout.
    /// Nothing was written; the same call may succeed later.
    #[error("store unavailable")]
    Unavailable(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The database failed.
    #[error("store backend failed")]
    Backend(#[source] Box<dyn std::error::Error + Send + Sync>),
}

impl Error {
    /// A `NotFound` for `kind` and `id`.
    pub fn not_found(kind: &'static str, id: impl ToString) -> Self {
        Self::NotFound {
            kind,
            id: id.to_string(),
        }
    }
}

impl From<crate::metadata::Error> for Error {
    fn from(err: crate::metadata::Error) -> Self {
        Self::Invalid(err.to_string())
    }
}

impl From<crate::manifest::Error> for Error {
    fn from(err: crate::manifest::Error) -> Self {
        Self::Invalid(err.to_string())
    }
}

impl From<crate::model::NameError> for Error {
    fn from(err: crate::model::NameError) -> Self {
        Self::Invalid(err.to_string())
    }
}
