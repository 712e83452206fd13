//! The agent's counters, rendered in the Prometheus text format at `/metrics`.
//!
//! Plain atomics: the agent has few events per second, and a scrape must never wait
//! for a reconcile.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use chrono::Utc;

/// What the agent has done since it started.
#[derive(Debug, Default)]
pub struct Metrics {
    applies: AtomicU64,
    applied_objects: AtomicU64,
    pruned_objects: AtomicU64,
    removals: AtomicU64,
    removed_objects: AtomicU64,
    failures: AtomicU64,
    drifted_objects: AtomicU64,
    events_sent: AtomicU64,
    broker_errors: AtomicU64,
    stacks: AtomicU64,
    last_poll_unix: AtomicI64,
    last_heartbeat_unix: AtomicI64,
}

impl Metrics {
    /// A deployment object was applied.
    pub fn applied(&self, objects: usize, pruned: usize) {
        self.applies.fetch_add(1, Ordering::Relaxed);
        self.applied_objects
            .fetch_add(objects as u64, Ordering::Relaxed);
        self.pruned_objects
            .fetch_add(pruned as u64, Ordering::Relaxed);
    }

    /// A stack was removed.
    pub fn removed(&self, objects: usize) {
        self.removals.fetch_add(1, Ordering::Relaxed);
        self.removed_objects
            .fetch_add(objects as u64, Ordering::Relaxed);
    }

    /// A reconcile failed.
    pub fn failed(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// A resync found objects changed in the cluster.
    pub fn drift(&self, objects: usize) {
        self.drifted_objects
            .fetch_add(objects as u64, Ordering::Relaxed);
    }

    /// An event reached the broker.
    pub fn event_sent(&self) {
        self.events_sent.fetch_add(1, Ordering::Relaxed);
    }

    /// A broker call failed.
    pub fn broker_error(&self) {
        self.broker_errors.fetch_add(1, Ordering::Relaxed);
    }

    /// A target state was received (or confirmed unchanged) with `stacks` entries.
    pub fn polled(&self, stacks: usize) {
        self.stacks.store(stacks as u64, Ordering::Relaxed);
        self.last_poll_unix
            .store(Utc::now().timestamp(), Ordering::Relaxed);
    }

    /// A heartbeat was accepted.
    pub fn beat(&self) {
        self.last_heartbeat_unix
            .store(Utc::now().timestamp(), Ordering::Relaxed);
    }

    /// Seconds since the last successful poll, or `None` before the first.
    pub fn seconds_since_poll(&self) -> Option<i64> {
        match self.last_poll_unix.load(Ordering::Relaxed) {
            0 => None,
            at => Some(Utc::now().timestamp() - at),
        }
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let counters = [
            (
                "brokkr_agent_applies_total",
                "Deployment objects applied.",
                &self.applies,
            ),
            (
                "brokkr_agent_applied_objects_total",
                "Objects applied.",
                &self.applied_objects,
            ),
            (
                "brokkr_agent_pruned_objects_total",
                "Objects pruned.",
                &self.pruned_objects,
            ),
            (
                "brokkr_agent_removals_total",
                "Stacks removed.",
                &self.removals,
            ),
            (
                "brokkr_agent_removed_objects_total",
                "Objects removed with their stack.",
                &self.removed_objects,
            ),
            (
                "brokkr_agent_failures_total",
                "Failed reconciles.",
                &self.failures,
            ),
            (
                "brokkr_agent_drifted_objects_total",
                "Objects found changed in the cluster and corrected.",
                &self.drifted_objects,
            ),
            (
                "brokkr_agent_events_sent_total",
                "Agent events accepted by the broker.",
                &self.events_sent,
            ),
            (
                "brokkr_agent_broker_errors_total",
                "Failed broker calls.",
                &self.broker_errors,
            ),
        ];
        let mut out = String::new();
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        let gauges = [
            (
                "brokkr_agent_stacks",
                "Stacks in the last target state.",
                self.stacks.load(Ordering::Relaxed) as i64,
            ),
            (
                "brokkr_agent_last_poll_timestamp_seconds",
                "When the target state was last fetched.",
                self.last_poll_unix.load(Ordering::Relaxed),
            ),
            (
                "brokkr_agent_last_heartbeat_timestamp_seconds",
                "When a heartbeat was last accepted.",
                self.last_heartbeat_unix.load(Ordering::Relaxed),
            ),
        ];
        for (name, help, value) in gauges {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
            let _ = writeln!(out, "{name} {value}");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counters_show_up_in_the_exposition() {
        let metrics = Metrics::default();
        metrics.applied(3, 1);
        metrics.drift(2);
        metrics.polled(5);
        let text = metrics.render();
        assert!(text.contains("brokkr_agent_applies_total 1\n"), "{text}");
        assert!(text.contains("brokkr_agent_applied_objects_total 3\n"));
        assert!(text.contains("brokkr_agent_pruned_objects_total 1\n"));
        assert!(text.contains("brokkr_agent_drifted_objects_total 2\n"));
        assert!(text.contains("brokkr_agent_stacks 5\n"));
        assert!(metrics.seconds_since_poll().is_some_and(|s| s <= 1));
    }
}
