//! Percentiles, and the one clock the figures are read on.
//!
//! The server stamps rollouts, pins and events with its wall clock (`Utc::now()`); the
//! simulator stamps applies with this process's monotonic clock. Both processes run on
//! one host and so read the same wall clock: [`Clock`] takes one (monotonic, wall)
//! pair and converts applies to wall times through it, which over a run of minutes
//! drifts by far less than a millisecond.

use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// Converts this process's monotonic instants to wall-clock times.
#[derive(Clone, Copy)]
pub struct Clock {
    instant: Instant,
    wall: DateTime<Utc>,
}

impl Clock {
    pub fn now() -> Self {
        Self {
            instant: Instant::now(),
            wall: Utc::now(),
        }
    }

    pub fn wall(&self, at: Instant) -> DateTime<Utc> {
        let offset = chrono::TimeDelta::from_std(at.saturating_duration_since(self.instant))
            .unwrap_or_default()
            - chrono::TimeDelta::from_std(self.instant.saturating_duration_since(at))
                .unwrap_or_default();
        self.wall + offset
    }
}

/// Milliseconds from `from` to `to` (negative when `to` is earlier).
pub fn millis(from: DateTime<Utc>, to: DateTime<Utc>) -> f64 {
    (to - from).num_microseconds().unwrap_or(i64::MAX) as f64 / 1000.0
}

/// A set of latencies in milliseconds.
#[derive(Default, Clone)]
pub struct Figures {
    millis: Vec<f64>,
}

impl Figures {
    pub fn push(&mut self, ms: f64) {
        self.millis.push(ms);
    }

    pub fn push_duration(&mut self, d: Duration) {
        self.millis.push(d.as_secs_f64() * 1000.0);
    }

    pub fn extend(&mut self, other: Figures) {
        self.millis.extend(other.millis);
    }

    pub fn len(&self) -> usize {
        self.millis.len()
    }

    /// The `p` quantile (0..=1), nearest rank; NaN when empty.
    pub fn pct(&mut self, p: f64) -> f64 {
        if self.millis.is_empty() {
            return f64::NAN;
        }
        self.millis.sort_by(f64::total_cmp);
        self.millis[((self.millis.len() as f64 - 1.0) * p).round() as usize]
    }

    /// `n  p50 .. p99 .. max .. ms`.
    pub fn line(&mut self) -> String {
        format!(
            "n {:>5}  min {:>7.1}  p50 {:>7.1}  p90 {:>7.1}  p99 {:>7.1}  max {:>7.1} ms",
            self.len(),
            self.pct(0.0),
            self.pct(0.5),
            self.pct(0.9),
            self.pct(0.99),
            self.pct(1.0)
        )
    }
}

/// `ok` or `OVER BUDGET`.
pub fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "OVER BUDGET" }
}

/// A server time as read from JSON, if any.
pub fn time(value: &serde_json::Value) -> Option<DateTime<Utc>> {
    value.as_str()?.parse().ok()
}
