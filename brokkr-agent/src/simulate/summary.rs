//! What a simulation reports: a [`Summary`] (serializable, for `--json`), a one-line
//! progress report and a final block of text.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::Serialize;

use super::record::{Histogram, Tally};
use crate::broker::{Call, CallCounters, Outcome};

/// Where a simulation stands.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Seconds since the simulation started.
    pub elapsed_secs: f64,
    /// The broker.
    pub broker_url: String,
    /// How the simulated agents are doing.
    pub agents: AgentCounts,
    /// Distinct stacks any agent acted on.
    pub stacks: usize,
    /// Agents holding at least one applied stack.
    pub holding: usize,
    /// Agents holding at least one stack whose every stack is at the newest deployment
    /// object any agent of the fleet acted on.
    pub up_to_date: usize,
    /// Deployment objects applied, in all.
    pub applies: u64,
    /// Applies of objects created before their agent started (a new agent catching
    /// up): not counted in `lag`.
    pub catch_up_applies: u64,
    /// Failed reconciles (apply or delete).
    pub failures: u64,
    /// Stacks removed (deletion markers, unassignments).
    pub removals: u64,
    /// Resyncs that corrected drift (none unless something edits the simulated
    /// clusters).
    pub drift: u64,
    /// From each object's `created_at` (the broker's clock) to its apply (this host's
    /// clock), over every apply of an object created while its agent ran.
    pub lag: Option<Latency>,
    /// The same over the applies since the previous summary.
    pub recent_lag: Option<Latency>,
    /// From an agent's start to its first apply.
    pub startup: Option<Latency>,
    /// Broker calls by kind, then by outcome (`ok`, `unchanged`, `timed_out`, ...);
    /// only non-zero counts.
    pub requests: BTreeMap<&'static str, BTreeMap<&'static str, u64>>,
    /// All calls.
    pub requests_total: u64,
    /// Calls that failed (any outcome but `ok` and `unchanged`).
    pub errors_total: u64,
    /// Calls per second since the previous summary.
    pub recent_requests_per_sec: f64,
    /// This process's memory and open files.
    pub process: ProcessStats,
}

/// How many simulated agents are where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AgentCounts {
    /// Asked for.
    pub requested: usize,
    /// Started so far (the ramp may still be going).
    pub started: usize,
    /// Started, with a verified key and a target state received, and still running.
    pub ready: usize,
    /// Stopped before the simulation ended: the broker refused their key.
    pub stopped: usize,
}

/// Latency percentiles, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Latency {
    /// How many values.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 90th percentile.
    pub p90_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// Largest.
    pub max_ms: f64,
}

impl Latency {
    pub(super) fn of(histogram: &Histogram) -> Option<Self> {
        let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
        (histogram.count() > 0).then(|| Self {
            count: histogram.count(),
            p50_ms: ms(histogram.quantile(0.50)),
            p90_ms: ms(histogram.quantile(0.90)),
            p99_ms: ms(histogram.quantile(0.99)),
            max_ms: ms(histogram.max()),
        })
    }
}

/// A process's memory, open files and CPU time, from `/proc` (Linux only; zero
/// elsewhere).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct ProcessStats {
    /// Resident set size now (`VmRSS`), KiB.
    pub rss_kib: u64,
    /// Peak resident set size (`VmHWM`), KiB.
    pub peak_rss_kib: u64,
    /// Open file descriptors (sockets included).
    pub open_files: u64,
    /// CPU time used so far, user and system, all threads (10 ms resolution).
    pub cpu_secs: f64,
}

impl ProcessStats {
    /// Of the process `pid`, or of this one.
    pub fn read(pid: Option<u32>) -> Self {
        let dir = pid.map_or_else(|| "/proc/self".to_owned(), |pid| format!("/proc/{pid}"));
        let status = std::fs::read_to_string(format!("{dir}/status")).unwrap_or_default();
        let field = |name: &str| -> u64 {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next())
                .and_then(|kib| kib.parse().ok())
                .unwrap_or(0)
        };
        let open_files = std::fs::read_dir(format!("{dir}/fd")).map_or(0, |d| d.count() as u64);
        // Fields 14 and 15 of `stat` (utime, stime) in clock ticks, which Linux fixes
        // at 100 a second for user space; the command name before them may hold spaces.
        let stat = std::fs::read_to_string(format!("{dir}/stat")).unwrap_or_default();
        let ticks: u64 = stat
            .rsplit_once(')')
            .map(|(_, rest)| {
                rest.split_whitespace()
                    .skip(11)
                    .take(2)
                    .filter_map(|t| t.parse::<u64>().ok())
                    .sum()
            })
            .unwrap_or(0);
        Self {
            rss_kib: field("VmRSS:"),
            peak_rss_kib: field("VmHWM:"),
            open_files,
            cpu_secs: ticks as f64 / 100.0,
        }
    }
}

/// The soft limit of open files of this process (`ulimit -n`), from
/// `/proc/self/limits`.
pub fn open_files_limit() -> Option<u64> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Per kind and outcome, the non-zero counts, with the totals of all and of errors.
pub(super) fn requests(
    calls: &CallCounters,
) -> (
    BTreeMap<&'static str, BTreeMap<&'static str, u64>>,
    u64,
    u64,
) {
    let (mut total, mut errors) = (0, 0);
    let mut by_call = BTreeMap::new();
    for call in Call::ALL {
        let mut by_outcome = BTreeMap::new();
        for outcome in Outcome::ALL {
            let n = calls.get(call, outcome);
            if n > 0 {
                by_outcome.insert(outcome.as_str(), n);
                total += n;
                if outcome.is_error() {
                    errors += n;
                }
            }
        }
        if !by_outcome.is_empty() {
            by_call.insert(call.as_str(), by_outcome);
        }
    }
    (by_call, total, errors)
}

impl Summary {
    pub(super) fn new(
        tally: Tally,
        agents: AgentCounts,
        calls: &CallCounters,
        elapsed: Duration,
        broker_url: &str,
    ) -> Self {
        let (requests, requests_total, errors_total) = requests(calls);
        Self {
            elapsed_secs: elapsed.as_secs_f64(),
            broker_url: broker_url.to_owned(),
            agents,
            stacks: tally.stacks,
            holding: tally.holding,
            up_to_date: tally.up_to_date,
            applies: tally.applies,
            catch_up_applies: tally.catch_up_applies,
            failures: tally.failures,
            removals: tally.removals,
            drift: tally.drift,
            lag: Latency::of(&tally.lag),
            recent_lag: Latency::of(&tally.recent_lag),
            startup: Latency::of(&tally.startup),
            requests,
            requests_total,
            errors_total,
            recent_requests_per_sec: 0.0,
            process: ProcessStats::read(None),
        }
    }

    /// One line for a periodic report, e.g.
    /// `[   30s] agents 1000/1000 ready | up to date 1000/1000 | applies 2000 | lag p50 41ms p99 87ms max 120ms (1000 new) | 95 req/s | errors 0 | rss 160 MiB, 1011 fds`.
    pub fn progress_line(&self) -> String {
        let a = &self.agents;
        let mut line = format!(
            "[{:>5.0}s] agents {}/{} ready",
            self.elapsed_secs, a.ready, a.requested
        );
        if a.started < a.requested {
            line.push_str(&format!(" ({} started)", a.started));
        }
        if a.stopped > 0 {
            line.push_str(&format!(", {} stopped", a.stopped));
        }
        line.push_str(&format!(
            " | up to date {}/{} | applies {}",
            self.up_to_date, self.holding, self.applies
        ));
        if self.failures > 0 {
            line.push_str(&format!(", {} failed", self.failures));
        }
        match &self.recent_lag {
            Some(l) => line.push_str(&format!(
                " | lag p50 {} p99 {} max {} ({} new)",
                ms(l.p50_ms),
                ms(l.p99_ms),
                ms(l.max_ms),
                l.count
            )),
            None => line.push_str(" | no new applies"),
        }
        line.push_str(&format!(
            " | {:.0} req/s | errors {} | rss {} MiB, {} fds",
            self.recent_requests_per_sec,
            self.errors_total,
            self.process.rss_kib / 1024,
            self.process.open_files
        ));
        line
    }
}

fn ms(value: f64) -> String {
    if value >= 10_000.0 {
        format!("{:.1}s", value / 1000.0)
    } else if value >= 100.0 {
        format!("{value:.0}ms")
    } else {
        format!("{value:.1}ms")
    }
}

fn latency(l: &Latency) -> String {
    format!(
        "p50 {}  p90 {}  p99 {}  max {}  ({} values)",
        ms(l.p50_ms),
        ms(l.p90_ms),
        ms(l.p99_ms),
        ms(l.max_ms),
        l.count
    )
}

/// The final report: one labelled line per aspect.
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let a = &self.agents;
        writeln!(
            f,
            "simulated {} agents against {} for {:.1}s",
            a.requested, self.broker_url, self.elapsed_secs
        )?;
        writeln!(
            f,
            "  agents     {} started, {} ready, {} stopped early (key refused)",
            a.started, a.ready, a.stopped
        )?;
        writeln!(
            f,
            "  up to date {} of {} agents holding stacks have the newest object of every stack they hold (stacks seen: {})",
            self.up_to_date, self.holding, self.stacks
        )?;
        writeln!(
            f,
            "  applies    {} ({} catch-up on start), {} failed, {} removals, {} drift corrections",
            self.applies, self.catch_up_applies, self.failures, self.removals, self.drift
        )?;
        match &self.lag {
            Some(l) => writeln!(f, "  lag        {}", latency(l))?,
            None => writeln!(f, "  lag        no object was created while the agents ran")?,
        }
        writeln!(
            f,
            "             (object created_at on the broker's clock -> apply on this host's clock)"
        )?;
        if let Some(l) = &self.startup {
            writeln!(
                f,
                "  startup    {}  (agent start -> first apply)",
                latency(l)
            )?;
        }
        let calls: Vec<String> = self
            .requests
            .iter()
            .map(|(call, outcomes)| {
                let ok = outcomes.get("ok").copied().unwrap_or(0);
                match outcomes.get("unchanged") {
                    Some(unchanged) => format!("{call} {ok} + {unchanged} unchanged"),
                    None => format!("{call} {ok}"),
                }
            })
            .collect();
        writeln!(
            f,
            "  requests   {} ({:.0}/s): {}",
            self.requests_total,
            self.requests_total as f64 / self.elapsed_secs.max(0.001),
            calls.join(", ")
        )?;
        let errors: Vec<String> = self
            .requests
            .iter()
            .flat_map(|(call, outcomes)| {
                outcomes
                    .iter()
                    .filter(|(outcome, _)| !matches!(**outcome, "ok" | "unchanged"))
                    .map(move |(outcome, n)| format!("{call} {outcome} {n}"))
            })
            .collect();
        if errors.is_empty() {
            writeln!(f, "  errors     none")?;
        } else {
            writeln!(
                f,
                "  errors     {}: {}",
                self.errors_total,
                errors.join(", ")
            )?;
        }
        write!(
            f,
            "  process    rss {} MiB (peak {} MiB), {} open files, {:.1} s of CPU",
            self.process.rss_kib / 1024,
            self.process.peak_rss_kib / 1024,
            self.process.open_files,
            self.process.cpu_secs
        )
    }
}
