//! Prometheus metrics in the text exposition format, kept by hand: a few counters,
//! one histogram and some gauges do not justify a metrics framework.
//!
//! | metric | type | meaning |
//! |---|---|---|
//! | `brokkr_http_requests_total{method,route,status}` | counter | answered requests |
//! | `brokkr_http_request_duration_seconds{method,route}` | histogram | time to answer |
//! | `brokkr_agents_active` | gauge | agents that sent a heartbeat to this replica within `agents.stale_after_secs` |
//! | `brokkr_target_state_cache_entries` | gauge | agents whose target state this replica holds |
//! | `brokkr_target_state_watchers` | gauge | long polls waiting here for a change |
//! | `brokkr_store_up` | gauge | 1 when the database answered a ping during this scrape |
//! | `brokkr_store_ping_seconds` | gauge | how long that ping took |
//! | `brokkr_webhook_deliveries_total{outcome}` | counter | this replica's delivery attempts: `delivered`, `failed` (to be retried), `dead` (the last attempt failed) |
//! | `brokkr_webhook_outbox_events` | gauge | events committed but not yet fanned out (the database's count) |
//! | `brokkr_webhook_pending_deliveries` | gauge | deliveries waiting to be sent (the queue depth) |
//! | `brokkr_webhook_dead_deliveries` | gauge | deliveries given up on, waiting for a redelivery |
//! | `brokkr_webhook_oldest_undelivered_age_seconds` | gauge | how long ago the oldest event not yet delivered occurred; 0 when none waits |
//! | `brokkr_rollout_evaluations_total` | counter | rollout evaluations this replica applied |
//! | `brokkr_rollout_transitions_total` | counter | rollout and wave state changes this replica applied |
//! | `brokkr_rollout_conflicts_total` | counter | evaluations computed from a version that had moved, and so computed again |
//!
//! Memory stays bounded: `route` is a route template of the API (or `unmatched`),
//! `method` one of the standard methods (or `OTHER`), `status` an HTTP status, so the
//! number of series is at most templates × methods × statuses. The map of recent
//! heartbeats holds one entry per agent and drops stale entries as it grows.
//!
//! Every gauge is per replica: behind a load balancer, sum `brokkr_agents_active` over
//! replicas only if each agent talks to one replica; the database's view of liveness is
//! the agents' `status` field in the API.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use brokkr_core::sync::lock;
use uuid::Uuid;

/// Upper bounds of the latency histogram, in seconds.
pub const DURATION_BUCKETS: [f64; 14] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 7.5, 10.0,
];

/// Label value for requests that matched no route of the API.
pub const UNMATCHED_ROUTE: &str = "unmatched";

/// Heartbeat entries kept before stale ones are swept.
const SWEEP_THRESHOLD: usize = 4096;

#[derive(Debug, Default)]
struct Histogram {
    /// Per bucket (not cumulative); one more slot for `+Inf`.
    buckets: [u64; DURATION_BUCKETS.len() + 1],
    sum: f64,
    count: u64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        let slot = DURATION_BUCKETS
            .iter()
            .position(|bound| seconds <= *bound)
            .unwrap_or(DURATION_BUCKETS.len());
        self.buckets[slot] += 1;
        self.sum += seconds;
        self.count += 1;
    }
}

#[derive(Debug, Default)]
struct Requests {
    totals: BTreeMap<(&'static str, String, u16), u64>,
    durations: BTreeMap<(&'static str, String), Histogram>,
}

#[derive(Debug, Default)]
struct Heartbeats {
    last_seen: HashMap<Uuid, Instant>,
    /// Size after the last sweep; the next sweep runs when the map doubles.
    swept_len: usize,
}

/// Request and domain metrics of this replica.
#[derive(Debug)]
pub struct Metrics {
    stale_after: Duration,
    requests: Mutex<Requests>,
    heartbeats: Mutex<Heartbeats>,
    watchers: AtomicI64,
}

/// What a scrape adds to the metrics kept in [`Metrics`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Snapshot {
    /// Entries of the target-state cache.
    pub target_state_cache_entries: usize,
    /// Whether the store answered its ping.
    pub store_up: bool,
    /// How long the ping took.
    pub store_ping: Duration,
    /// This replica's webhook attempts by outcome.
    pub webhook_counts: brokkr_core::runtime::WebhookCounts,
    /// The webhook queue as the database counts it; `None` when it did not answer.
    pub webhook_queue: Option<WebhookQueue>,
    /// This replica's rollout evaluations.
    pub rollout_counts: brokkr_core::runtime::RolloutCounts,
}

/// The webhook queue at a scrape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookQueue {
    /// Events not yet fanned out.
    pub outbox: u64,
    /// Deliveries waiting to be sent.
    pub pending: u64,
    /// Dead deliveries.
    pub dead: u64,
    /// Age of the oldest event not yet delivered; zero when none waits.
    pub oldest_undelivered_age: Duration,
}

impl WebhookQueue {
    /// The queue from the store's counts, ages measured at `now`.
    pub fn new(stats: &brokkr_core::WebhookQueueStats, now: chrono::DateTime<chrono::Utc>) -> Self {
        Self {
            outbox: stats.outbox,
            pending: stats.pending,
            dead: stats.dead,
            oldest_undelivered_age: stats
                .oldest_undelivered_at
                .and_then(|at| (now - at).to_std().ok())
                .unwrap_or_default(),
        }
    }
}

impl Metrics {
    /// Metrics counting an agent as active for `stale_after` after its last heartbeat.
    pub fn new(stale_after: Duration) -> Self {
        Self {
            stale_after,
            requests: Mutex::new(Requests::default()),
            heartbeats: Mutex::new(Heartbeats::default()),
            watchers: AtomicI64::new(0),
        }
    }

    /// Counts one answered request. `route` must be a route template (or
    /// [`UNMATCHED_ROUTE`]), never a concrete path.
    pub fn observe_request(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let method = method_label(method);
        let mut requests = lock(&self.requests);
        let key = (method, route.to_owned(), status);
        *requests.totals.entry(key).or_default() += 1;
        let key = (method, route.to_owned());
        requests
            .durations
            .entry(key)
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    /// Notes an accepted heartbeat of `agent`.
    pub fn observe_heartbeat(&self, agent: Uuid) {
        let now = Instant::now();
        let mut beats = lock(&self.heartbeats);
        beats.last_seen.insert(agent, now);
        if beats.last_seen.len() >= SWEEP_THRESHOLD.max(beats.swept_len * 2) {
            let stale_after = self.stale_after;
            beats
                .last_seen
                .retain(|_, seen| now.duration_since(*seen) < stale_after);
            beats.swept_len = beats.last_seen.len();
        }
    }

    /// Agents with a heartbeat to this replica within `stale_after`.
    pub fn active_agents(&self) -> usize {
        let now = Instant::now();
        let beats = lock(&self.heartbeats);
        beats
            .last_seen
            .values()
            .filter(|seen| now.duration_since(**seen) < self.stale_after)
            .count()
    }

    /// Counts a target-state request until the guard is dropped (also when the request
    /// is cancelled).
    pub fn watcher(self: &Arc<Self>) -> WatcherGuard {
        self.watchers.fetch_add(1, Ordering::Relaxed);
        WatcherGuard(self.clone())
    }

    /// Target-state requests in flight.
    pub fn watchers(&self) -> i64 {
        self.watchers.load(Ordering::Relaxed)
    }

    /// The text exposition format (`text/plain; version=0.0.4`).
    pub fn render(&self, snapshot: Snapshot) -> String {
        let mut out = String::with_capacity(4096);
        {
            let requests = lock(&self.requests);
            out.push_str("# HELP brokkr_http_requests_total HTTP requests answered, by route template and status.\n");
            out.push_str("# TYPE brokkr_http_requests_total counter\n");
            for ((method, route, status), count) in &requests.totals {
                let route = escape(route);
                let _ = writeln!(
                    out,
                    "brokkr_http_requests_total{{method=\"{method}\",route=\"{route}\",status=\"{status}\"}} {count}"
                );
            }
            out.push_str(
                "# HELP brokkr_http_request_duration_seconds Time to answer HTTP requests.\n",
            );
            out.push_str("# TYPE brokkr_http_request_duration_seconds histogram\n");
            for ((method, route), histogram) in &requests.durations {
                let route = escape(route);
                let labels = format!("method=\"{method}\",route=\"{route}\"");
                let mut cumulative = 0;
                for (bound, count) in DURATION_BUCKETS.iter().zip(histogram.buckets) {
                    cumulative += count;
                    let _ = writeln!(
                        out,
                        "brokkr_http_request_duration_seconds_bucket{{{labels},le=\"{bound}\"}} {cumulative}"
                    );
                }
                let _ = writeln!(
                    out,
                    "brokkr_http_request_duration_seconds_bucket{{{labels},le=\"+Inf\"}} {}",
                    histogram.count
                );
                let _ = writeln!(
                    out,
                    "brokkr_http_request_duration_seconds_sum{{{labels}}} {}",
                    histogram.sum
                );
                let _ = writeln!(
                    out,
                    "brokkr_http_request_duration_seconds_count{{{labels}}} {}",
                    histogram.count
                );
            }
        }
        gauge(
            &mut out,
            "brokkr_agents_active",
            "Agents that sent a heartbeat to this replica within agents.stale_after_secs.",
            self.active_agents(),
        );
        gauge(
            &mut out,
            "brokkr_target_state_cache_entries",
            "Agents whose target state this replica has cached.",
            snapshot.target_state_cache_entries,
        );
        gauge(
            &mut out,
            "brokkr_target_state_watchers",
            "Target-state requests in flight on this replica (long polls waiting).",
            self.watchers().max(0),
        );
        gauge(
            &mut out,
            "brokkr_store_up",
            "1 when the database answered a ping during this scrape.",
            u8::from(snapshot.store_up),
        );
        gauge(
            &mut out,
            "brokkr_store_ping_seconds",
            "How long the database took to answer the ping of this scrape.",
            snapshot.store_ping.as_secs_f64(),
        );
        render_webhooks(&mut out, &snapshot);
        render_rollouts(&mut out, &snapshot);
        out
    }
}

/// Decrements the watcher gauge when dropped.
#[derive(Debug)]
pub struct WatcherGuard(Arc<Metrics>);

impl Drop for WatcherGuard {
    fn drop(&mut self) {
        self.0.watchers.fetch_sub(1, Ordering::Relaxed);
    }
}

fn render_rollouts(out: &mut String, snapshot: &Snapshot) {
    let counts = snapshot.rollout_counts;
    for (name, help, value) in [
        (
            "brokkr_rollout_evaluations_total",
            "Rollout evaluations applied by this replica.",
            counts.evaluations,
        ),
        (
            "brokkr_rollout_transitions_total",
            "Rollout and wave state changes applied by this replica.",
            counts.transitions,
        ),
        (
            "brokkr_rollout_conflicts_total",
            "Rollout evaluations computed from a version that had moved, and so computed again.",
            counts.conflicts,
        ),
    ] {
        let _ = writeln!(
            out,
            "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
        );
    }
}

fn render_webhooks(out: &mut String, snapshot: &Snapshot) {
    let counts = snapshot.webhook_counts;
    out.push_str("# HELP brokkr_webhook_deliveries_total Webhook delivery attempts made by this replica, by outcome (failed: to be retried; dead: the last attempt failed).\n");
    out.push_str("# TYPE brokkr_webhook_deliveries_total counter\n");
    for (outcome, count) in [
        ("delivered", counts.delivered),
        ("failed", counts.failed),
        ("dead", counts.dead),
    ] {
        let _ = writeln!(
            out,
            "brokkr_webhook_deliveries_total{{outcome=\"{outcome}\"}} {count}"
        );
    }
    // Left out when the database did not answer, rather than reported as zero.
    let Some(queue) = snapshot.webhook_queue else {
        return;
    };
    gauge(
        out,
        "brokkr_webhook_outbox_events",
        "Webhook events committed but not yet fanned out into deliveries.",
        queue.outbox,
    );
    gauge(
        out,
        "brokkr_webhook_pending_deliveries",
        "Webhook deliveries waiting to be sent (the queue depth).",
        queue.pending,
    );
    gauge(
        out,
        "brokkr_webhook_dead_deliveries",
        "Webhook deliveries given up on, waiting for a redelivery.",
        queue.dead,
    );
    gauge(
        out,
        "brokkr_webhook_oldest_undelivered_age_seconds",
        "How long ago the oldest webhook event not yet delivered occurred; 0 when none waits.",
        queue.oldest_undelivered_age.as_secs_f64(),
    );
}

fn gauge(out: &mut String, name: &str, help: &str, value: impl std::fmt::Display) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
    );
}

/// The standard methods keep their name; anything else is `OTHER`, so a client cannot
/// create series at will.
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "TRACE", "CONNECT",
    ];
    KNOWN
        .into_iter()
        .find(|known| *known == method)
        .unwrap_or("OTHER")
}

fn escape(label: &str) -> String {
    label
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_histograms_and_gauges() {
        let metrics = Arc::new(Metrics::new(Duration::from_secs(60)));
        let route = "/api/v1/agents/{id}/target-state";
        metrics.observe_request("GET", route, 200, Duration::from_millis(3));
        metrics.observe_request("GET", route, 200, Duration::from_secs(20));
        metrics.observe_request("BREW", UNMATCHED_ROUTE, 404, Duration::from_millis(1));
        metrics.observe_heartbeat(Uuid::nil());
        let _guard = metrics.watcher();
        let text = metrics.render(Snapshot {
            target_state_cache_entries: 7,
            store_up: true,
            store_ping: Duration::from_millis(2),
            ..Snapshot::default()
        });
        assert!(text.contains(&format!(
            "brokkr_http_requests_total{{method=\"GET\",route=\"{route}\",status=\"200\"}} 2"
        )));
        assert!(text.contains(
            "brokkr_http_requests_total{method=\"OTHER\",route=\"unmatched\",status=\"404\"} 1"
        ));
        assert!(text.contains(&format!(
            "brokkr_http_request_duration_seconds_bucket{{method=\"GET\",route=\"{route}\",le=\"0.005\"}} 1"
        )));
        assert!(text.contains(&format!(
            "brokkr_http_request_duration_seconds_bucket{{method=\"GET\",route=\"{route}\",le=\"10\"}} 1"
        )));
        assert!(text.contains(&format!(
            "brokkr_http_request_duration_seconds_bucket{{method=\"GET\",route=\"{route}\",le=\"+Inf\"}} 2"
        )));
        assert!(text.contains("brokkr_agents_active 1\n"));
        assert!(text.contains("brokkr_target_state_cache_entries 7\n"));
        assert!(text.contains("brokkr_target_state_watchers 1\n"));
        assert!(text.contains("brokkr_store_up 1\n"));
    }

    #[test]
    fn watchers_are_released_and_stale_agents_are_not_active() {
        let metrics = Arc::new(Metrics::new(Duration::ZERO));
        drop(metrics.watcher());
        assert_eq!(metrics.watchers(), 0);
        metrics.observe_heartbeat(Uuid::nil());
        assert_eq!(metrics.active_agents(), 0);
    }

    #[test]
    fn the_heartbeat_map_stays_bounded_by_sweeping_stale_agents() {
        let metrics = Metrics::new(Duration::ZERO);
        for _ in 0..3 * SWEEP_THRESHOLD {
            metrics.observe_heartbeat(Uuid::new_v4());
        }
        assert!(metrics.heartbeats.lock().unwrap().last_seen.len() < SWEEP_THRESHOLD);
    }

    #[test]
    fn renders_webhook_outcomes_and_the_queue_only_when_it_was_read() {
        let metrics = Metrics::new(Duration::from_secs(60));
        let counts = brokkr_core::runtime::WebhookCounts {
            delivered: 5,
            failed: 3,
            dead: 1,
        };
        let now = chrono::Utc::now();
        let stats = brokkr_core::WebhookQueueStats {
            outbox: 2,
            pending: 7,
            dead: 1,
            oldest_undelivered_at: Some(now - chrono::TimeDelta::seconds(42)),
        };
        let text = metrics.render(Snapshot {
            webhook_counts: counts,
            webhook_queue: Some(WebhookQueue::new(&stats, now)),
            ..Snapshot::default()
        });
        for line in [
            "brokkr_webhook_deliveries_total{outcome=\"delivered\"} 5",
            "brokkr_webhook_deliveries_total{outcome=\"failed\"} 3",
            "brokkr_webhook_deliveries_total{outcome=\"dead\"} 1",
            "brokkr_webhook_outbox_events 2",
            "brokkr_webhook_pending_deliveries 7",
            "brokkr_webhook_dead_deliveries 1",
            "brokkr_webhook_oldest_undelivered_age_seconds 42",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
        let text = metrics.render(Snapshot {
            webhook_counts: counts,
            ..Snapshot::default()
        });
        assert!(text.contains("brokkr_webhook_deliveries_total{outcome=\"dead\"} 1"));
        assert!(
            !text.contains("brokkr_webhook_pending_deliveries"),
            "{text}"
        );
    }

    #[test]
    fn renders_rollout_counters() {
        let metrics = Metrics::new(Duration::ZERO);
        let text = metrics.render(Snapshot {
            rollout_counts: brokkr_core::runtime::RolloutCounts {
                evaluations: 12,
                transitions: 4,
                conflicts: 1,
            },
            ..Snapshot::default()
        });
        for line in [
            "brokkr_rollout_evaluations_total 12",
            "brokkr_rollout_transitions_total 4",
            "brokkr_rollout_conflicts_total 1",
            "# TYPE brokkr_rollout_transitions_total counter",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
    }
}
