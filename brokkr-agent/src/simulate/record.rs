//! What the simulated fleet did, as each agent's [`Observer`] tells it: applies and
//! their lag, failures, removals, and which stack versions each agent holds.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use brokkr_core::{DeploymentObjectId, EventStatus, EventType, StackId};
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;

use crate::agent::Observer;
use crate::broker::{EventReport, TargetEntry};

/// One successful apply by one simulated agent, as [`super::Simulator::subscribe`]
/// sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The agent's index in the fleet (0-based, in start order).
    pub agent: usize,
    /// The stack.
    pub stack: StackId,
    /// The deployment object applied.
    pub object: DeploymentObjectId,
    /// When the agent finished applying it, on this process's monotonic clock.
    pub at: Instant,
    /// From the object's `created_at` (the broker's clock) to the apply (this host's
    /// clock); `None` when the object was created before the agent started (a
    /// catch-up, not a propagation) or the broker sent no `created_at`.
    pub lag: Option<Duration>,
}

/// Counts and latencies over the whole fleet, copied out of the recorder.
#[derive(Debug, Clone, Default)]
pub(super) struct Tally {
    pub applies: u64,
    pub catch_up_applies: u64,
    pub failures: u64,
    pub removals: u64,
    pub drift: u64,
    pub stacks: usize,
    pub holding: usize,
    pub up_to_date: usize,
    pub lag: Histogram,
    pub recent_lag: Histogram,
    pub startup: Histogram,
}

/// The fleet's record, shared by every agent's observer.
#[derive(Debug, Default)]
pub(super) struct Recorder {
    state: Mutex<State>,
    subscribers: Mutex<Vec<mpsc::UnboundedSender<Applied>>>,
}

#[derive(Debug, Default)]
struct State {
    agents: Vec<AgentRecord>,
    /// Per stack, the newest deployment object (by sequence) any agent acted on.
    newest: HashMap<StackId, i64>,
    tally: Tally,
}

#[derive(Debug)]
struct AgentRecord {
    started: Instant,
    started_wall: DateTime<Utc>,
    applied_once: bool,
    /// Per stack it holds, the sequence of the object it applied last.
    holds: HashMap<StackId, i64>,
}

impl Recorder {
    fn lock(&self) -> MutexGuard<'_, State> {
        // Plain counters: after a panic elsewhere they are still worth reporting.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers agent `index` as started now; returns its observer.
    pub fn start_agent(self: &Arc<Self>, index: usize) -> Arc<dyn Observer> {
        let mut state = self.lock();
        if state.agents.len() <= index {
            state.agents.resize_with(index + 1, || AgentRecord {
                started: Instant::now(),
                started_wall: Utc::now(),
                applied_once: false,
                holds: HashMap::new(),
            });
        }
        state.agents[index].started = Instant::now();
        state.agents[index].started_wall = Utc::now();
        Arc::new(AgentObserver {
            index,
            recorder: Arc::clone(self),
        })
    }

    /// A channel receiving every successful apply from now on.
    pub fn subscribe(&self) -> mpsc::UnboundedReceiver<Applied> {
        let (tx, rx) = mpsc::unbounded_channel();
        self.subscribers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(tx);
        rx
    }

    /// The counts so far; `recent_lag` covers the applies since the previous call.
    pub fn tally(&self) -> Tally {
        let mut state = self.lock();
        let State {
            agents,
            newest,
            tally,
        } = &mut *state;
        let mut out = tally.clone();
        tally.recent_lag.reset();
        out.stacks = newest.len();
        out.holding = agents.iter().filter(|a| !a.holds.is_empty()).count();
        out.up_to_date = agents
            .iter()
            .filter(|a| {
                !a.holds.is_empty()
                    && a.holds
                        .iter()
                        .all(|(stack, sequence)| newest.get(stack) == Some(sequence))
            })
            .count();
        out
    }

    fn record(&self, index: usize, entry: &TargetEntry, outcome: &EventReport) {
        let at = Instant::now();
        let now = Utc::now();
        let object = &entry.deployment_object;
        let applied = {
            let mut state = self.lock();
            let State {
                agents,
                newest,
                tally,
            } = &mut *state;
            let newest = newest.entry(entry.stack_id).or_insert(object.sequence_id);
            *newest = (*newest).max(object.sequence_id);
            let Some(agent) = agents.get_mut(index) else {
                return;
            };
            match (outcome.event_type, outcome.status) {
                (EventType::Apply, EventStatus::Success) => {
                    tally.applies += 1;
                    agent.holds.insert(entry.stack_id, object.sequence_id);
                    if !agent.applied_once {
                        agent.applied_once = true;
                        tally.startup.record(at.duration_since(agent.started));
                    }
                    let lag = object
                        .created_at
                        .filter(|created| *created >= agent.started_wall)
                        .map(|created| (now - created).to_std().unwrap_or_default());
                    match lag {
                        Some(lag) => {
                            tally.lag.record(lag);
                            tally.recent_lag.record(lag);
                        }
                        None => tally.catch_up_applies += 1,
                    }
                    Some(lag)
                }
                (EventType::Delete, EventStatus::Success) => {
                    tally.removals += 1;
                    agent.holds.remove(&entry.stack_id);
                    None
                }
                (EventType::Drift, _) => {
                    tally.drift += 1;
                    None
                }
                (_, EventStatus::Failure) => {
                    tally.failures += 1;
                    None
                }
            }
        };
        if let Some(lag) = applied {
            let applied = Applied {
                agent: index,
                stack: entry.stack_id,
                object: object.id,
                at,
                lag,
            };
            let mut subscribers = self.subscribers.lock().unwrap_or_else(|e| e.into_inner());
            subscribers.retain(|tx| tx.send(applied.clone()).is_ok());
        }
    }
}

/// One agent's observer: its index and the shared record.
struct AgentObserver {
    index: usize,
    recorder: Arc<Recorder>,
}

impl Observer for AgentObserver {
    fn reconciled(&self, entry: &TargetEntry, outcome: &EventReport) {
        self.recorder.record(self.index, entry, outcome);
    }
}

/// Values kept exactly below this many microseconds; above, 64 buckets per power of
/// two, so a percentile is off by less than 1/64 (1.6%).
const EXACT: u64 = 128;
const SUB_BUCKETS: u64 = 64;
/// Durations are clamped to 2^40 µs (12.7 days).
const MAX_MICROS: u64 = (1 << 40) - 1;
const BUCKETS: usize = (EXACT + (40 - 7) * SUB_BUCKETS) as usize;

/// A latency histogram of fixed size (log-linear buckets), so a simulation can run
/// for days without its memory growing with the number of applies.
#[derive(Clone)]
pub(super) struct Histogram {
    counts: Box<[u64]>,
    count: u64,
    max: u64,
}

impl Default for Histogram {
    fn default() -> Self {
        Self {
            counts: vec![0; BUCKETS].into_boxed_slice(),
            count: 0,
            max: 0,
        }
    }
}

impl std::fmt::Debug for Histogram {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Histogram")
            .field("count", &self.count)
            .field("max_micros", &self.max)
            .finish_non_exhaustive()
    }
}

fn bucket(micros: u64) -> usize {
    if micros < EXACT {
        return micros as usize;
    }
    let exponent = 63 - u64::from(micros.leading_zeros());
    let shift = exponent - 6;
    (EXACT + (shift - 1) * SUB_BUCKETS + ((micros >> shift) - SUB_BUCKETS)) as usize
}

/// The largest value that falls in bucket `index`.
fn upper_bound(index: usize) -> u64 {
    let index = index as u64;
    if index < EXACT {
        return index;
    }
    let k = index - EXACT;
    let shift = k / SUB_BUCKETS + 1;
    ((k % SUB_BUCKETS + SUB_BUCKETS + 1) << shift) - 1
}

impl Histogram {
    pub fn record(&mut self, value: Duration) {
        let micros = u64::try_from(value.as_micros())
            .unwrap_or(MAX_MICROS)
            .min(MAX_MICROS);
        self.counts[bucket(micros)] += 1;
        self.count += 1;
        self.max = self.max.max(micros);
    }

    pub fn count(&self) -> u64 {
        self.count
    }

    pub fn max(&self) -> Duration {
        Duration::from_micros(self.max)
    }

    /// The value at quantile `q` (0 to 1): the upper bound of its bucket, never above
    /// the largest value recorded. Zero when empty.
    pub fn quantile(&self, q: f64) -> Duration {
        if self.count == 0 {
            return Duration::ZERO;
        }
        let rank = ((q.clamp(0.0, 1.0) * self.count as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (index, n) in self.counts.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Duration::from_micros(upper_bound(index).min(self.max));
            }
        }
        self.max()
    }

    pub fn reset(&mut self) {
        self.counts.fill(0);
        self.count = 0;
        self.max = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_value_lands_in_a_bucket_within_one_sixty_fourth() {
        let mut values: Vec<u64> = (0..5000).collect();
        values.extend([65_535, 65_536, 1_000_000, 999_999_999, MAX_MICROS]);
        for v in values {
            let index = bucket(v);
            assert!(index < BUCKETS, "{v} -> {index}");
            let upper = upper_bound(index);
            assert!(upper >= v, "{v}: upper bound {upper}");
            assert!(
                (upper - v) as f64 <= v as f64 / 64.0,
                "{v}: upper bound {upper} too far"
            );
            if index > 0 {
                assert!(
                    upper_bound(index - 1) < v,
                    "{v} belongs to an earlier bucket"
                );
            }
        }
    }

    #[test]
    fn quantiles_of_a_known_series() {
        let mut h = Histogram::default();
        assert_eq!(h.quantile(0.99), Duration::ZERO);
        for ms in 1..=1000 {
            h.record(Duration::from_millis(ms));
        }
        let close = |got: Duration, want_ms: f64| {
            let got = got.as_secs_f64() * 1000.0;
            assert!(
                (got - want_ms).abs() <= want_ms / 64.0 + 0.001,
                "{got} ms, want {want_ms}"
            );
        };
        close(h.quantile(0.5), 500.0);
        close(h.quantile(0.99), 990.0);
        assert_eq!(h.quantile(1.0), Duration::from_millis(1000));
        assert_eq!(h.count(), 1000);
        h.reset();
        assert_eq!(h.count(), 0);
    }
}
