//! What a [`ControlPlane`](super::ControlPlane) operation can fail with.
//!
//! The caller's failures (who may not do what, bad input, missing rows) are kept apart
//! from the platform's (`Store(Backend)`, `Task`): a transport maps the first to its
//! client-error answers and logs the second.

use crate::store;

/// Why an operation failed. Every variant but `Store(Backend)` and `Task` is the
/// caller's failure; nothing was changed when any of them is returned.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No key, a malformed key, or a key that is unknown or revoked.
    #[error("unauthenticated: {0}")]
    Unauthenticated(&'static str),
    /// The caller's role may not do this.
    #[error("forbidden: {0}")]
    Forbidden(String),
    /// An admin disabled this agent: it may not fetch its target state.
    #[error("an admin disabled this agent")]
    AgentInactive,
    /// The store refused or failed (`NotFound`, `Conflict`, `Invalid`, `Backend`, ...).
    /// A generator asking for another generator's row gets `NotFound` too.
    #[error(transparent)]
    Store(#[from] store::Error),
    /// A deployment object's YAML is invalid or too large.
    #[error(transparent)]
    Manifest(#[from] crate::manifest::Error),
    /// A template version does not compile (source or schema).
    #[error(transparent)]
    Template(#[from] crate::template::TemplateError),
    /// A generator or template refused its parameters or failed to render.
    #[error(transparent)]
    Generate(#[from] crate::generator::Error),
    /// A placement policy is invalid for its placement.
    #[error("invalid placement policy: {0}")]
    InvalidPolicy(String),
    /// Well-formed input that breaks a rule of the operation; `code` is a stable
    /// snake_case name for it (`invalid_capabilities`, `unknown_placement`, ...).
    #[error("{message}")]
    Invalid {
        /// Stable machine-readable code.
        code: &'static str,
        /// Human-readable explanation.
        message: String,
    },
    /// The change is over the blast-radius guard's limits: nothing changed but the
    /// stored plan, which an admin may confirm.
    #[error("the change is over the blast-radius guard's limits; an admin may confirm plan {}", .0.id)]
    BlastRadiusExceeded(Box<crate::runtime::plan::PlanView>),
    /// The confirmed plan no longer describes the change: the world moved on, it
    /// expired, or it is for another stack.
    #[error("plan {plan_id} is stale: {reason}")]
    PlanStale {
        /// The plan.
        plan_id: crate::id::PlanId,
        /// Why.
        reason: String,
    },
    /// The confirmed plan was used already: plans are single use.
    #[error("plan {plan_id} was used already")]
    PlanConsumed {
        /// The plan.
        plan_id: crate::id::PlanId,
    },
    /// A rollout policy breaks rules; every one is listed.
    #[error("invalid rollout policy: {}", .0.iter().map(|v| format!("{}: {}", v.path, v.message)).collect::<Vec<_>>().join("; "))]
    InvalidRolloutPolicy(Vec<crate::rollout::PolicyViolation>),
    /// Work handed to a blocking thread panicked or was cancelled (a bug, or shutdown).
    #[error("background work failed")]
    Task(#[source] tokio::task::JoinError),
}

impl Error {
    /// A 403-style refusal.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::Forbidden(message.into())
    }

    /// A `NotFound` for `kind` and `id`.
    pub fn not_found(kind: &'static str, id: impl ToString) -> Self {
        Self::Store(store::Error::not_found(kind, id))
    }

    /// An [`Error::Invalid`] with a code.
    pub fn invalid(code: &'static str, message: impl Into<String>) -> Self {
        Self::Invalid {
            code,
            message: message.into(),
        }
    }

    /// Whether this is the platform's failure rather than the caller's.
    pub fn is_internal(&self) -> bool {
        matches!(self, Self::Store(store::Error::Backend(_)) | Self::Task(_))
    }
}

/// `Result` of a runtime operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Displays an error with its chain of sources, for logs. A source whose message the
/// error before it already contains is left out: some errors (sea-orm's among them)
/// repeat their source in their own message, and a reader should see it once.
pub struct ErrorChain<'a>(pub &'a (dyn std::error::Error + 'static));

impl std::fmt::Display for ErrorChain<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut shown = self.0.to_string();
        f.write_str(&shown)?;
        let mut source = self.0.source();
        while let Some(cause) = source {
            let text = cause.to_string();
            if !shown.contains(&text) {
                write!(f, ": {text}")?;
                shown = text;
            }
            source = cause.source();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorChain;

    #[derive(Debug, thiserror::Error)]
    #[error("{message}")]
    struct Link {
        message: &'static str,
        #[source]
        source: Option<Box<Link>>,
    }

    fn chain(messages: &[&'static str]) -> Link {
        messages
            .iter()
            .rev()
            .fold(None, |source, message| {
                Some(Link {
                    message,
                    source: source.map(Box::new),
                })
            })
            .expect("at least one message")
    }

    #[test]
    fn every_cause_is_shown_once() {
        let check = |messages: &[&'static str], expected: &str| {
            assert_eq!(ErrorChain(&chain(messages)).to_string(), expected);
        };
        check(&["cannot open", "refused"], "cannot open: refused");
        // sea-orm's `Connection Error: {0}` over the driver's error.
        check(
            &["cannot open", "Connection Error: refused", "refused"],
            "cannot open: Connection Error: refused",
        );
        check(&["a", "b", "a"], "a: b: a");
    }
}
