//! Broker calls counted by kind and outcome, for a fleet simulation's summary.

use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use super::BrokerError;

/// A kind of broker call, for [`CallCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Call {
    /// `GET /readyz`.
    Ready,
    /// `POST /api/v1/auth/pak`.
    Whoami,
    /// `POST .../heartbeat`.
    Heartbeat,
    /// `GET .../target-state` (a long poll when the agent names its ETag).
    TargetState,
    /// `POST .../events`.
    Event,
    /// `POST .../health`.
    Health,
}

impl Call {
    /// Every kind, in a fixed order.
    pub const ALL: [Call; 6] = [
        Call::Ready,
        Call::Whoami,
        Call::Heartbeat,
        Call::TargetState,
        Call::Event,
        Call::Health,
    ];

    /// `target_state`, `heartbeat`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Call::Ready => "ready",
            Call::Whoami => "whoami",
            Call::Heartbeat => "heartbeat",
            Call::TargetState => "target_state",
            Call::Event => "event",
            Call::Health => "health",
        }
    }
}

/// How a broker call ended, for [`CallCounters`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// A 2xx answer (for a target state: a new state).
    Ok,
    /// A target-state poll answered 304: nothing changed.
    Unchanged,
    /// [`BrokerError::TimedOut`].
    TimedOut,
    /// [`BrokerError::Unreachable`].
    Unreachable,
    /// [`BrokerError::Refused`] (401, 403).
    Refused,
    /// Another 4xx answer.
    ClientError,
    /// A 5xx answer.
    ServerError,
    /// [`BrokerError::Decode`].
    Decode,
}

impl Outcome {
    /// Every outcome, in a fixed order.
    pub const ALL: [Outcome; 8] = [
        Outcome::Ok,
        Outcome::Unchanged,
        Outcome::TimedOut,
        Outcome::Unreachable,
        Outcome::Refused,
        Outcome::ClientError,
        Outcome::ServerError,
        Outcome::Decode,
    ];

    /// Whether the call failed.
    pub fn is_error(self) -> bool {
        !matches!(self, Outcome::Ok | Outcome::Unchanged)
    }

    /// `ok`, `timed_out`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Unchanged => "unchanged",
            Outcome::TimedOut => "timed_out",
            Outcome::Unreachable => "unreachable",
            Outcome::Refused => "refused",
            Outcome::ClientError => "client_error",
            Outcome::ServerError => "server_error",
            Outcome::Decode => "decode",
        }
    }

    pub(super) fn of<T>(result: &Result<T, BrokerError>) -> Self {
        match result {
            Ok(_) => Outcome::Ok,
            Err(BrokerError::TimedOut(_)) => Outcome::TimedOut,
            Err(BrokerError::Unreachable(_)) => Outcome::Unreachable,
            Err(BrokerError::Refused { .. }) => Outcome::Refused,
            Err(BrokerError::Status { status, .. }) if *status >= 500 => Outcome::ServerError,
            Err(BrokerError::Status { .. }) => Outcome::ClientError,
            Err(BrokerError::Decode(_)) => Outcome::Decode,
        }
    }
}

/// Broker calls counted by kind and outcome: plain atomics, shared by every client
/// built from the same [`BrokerClients`].
#[derive(Debug, Default)]
pub struct CallCounters {
    counts: [[AtomicU64; Outcome::ALL.len()]; Call::ALL.len()],
}

impl CallCounters {
    pub(super) fn record(&self, call: Call, outcome: Outcome) {
        self.counts[call as usize][outcome as usize].fetch_add(1, Ordering::Relaxed);
    }

    /// Calls of `call` that ended with `outcome` so far.
    pub fn get(&self, call: Call, outcome: Outcome) -> u64 {
        self.counts[call as usize][outcome as usize].load(Ordering::Relaxed)
    }
}
