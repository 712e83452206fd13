//! What the machine was doing while creates were counted: the CPU the servers,
//! PostgreSQL and this bench used against what the cores could give, and, on
//! PostgreSQL, how often its active backends waited on a lock. The first tells a
//! machine that is out of CPU from a write path that waits; the second is the evidence
//! that writers do not queue behind each other (before per-stack sequences, most
//! samples waited on the one `counters` row every append updated).

use std::time::Duration;

use sea_orm::{ConnectionTrait, Database, DatabaseConnection, DbBackend, Statement};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::support::{Backend, Window, figure, thousands};

/// How often `pg_stat_activity` is sampled.
const SAMPLE_EVERY: Duration = Duration::from_millis(10);

/// Linux reports process CPU time in ticks of 1/100 s (`USER_HZ`).
const TICKS_PER_SECOND: f64 = 100.0;

/// Samples of the scratch database's active backends.
#[derive(Debug, Default)]
struct LockSamples {
    active: u64,
    /// Waiting on a row, tuple or transaction lock: writers queueing behind each other.
    row_locks: u64,
    /// Waiting on an advisory lock: the audit chain's sealers taking turns.
    advisory: u64,
}

/// Watches the counted window of one measurement.
pub(super) struct Watch {
    servers: Vec<u32>,
    stop: watch::Sender<bool>,
    sampler: Option<JoinHandle<LockSamples>>,
    started: JoinHandle<CpuTimes>,
}

/// CPU ticks used so far, by whom.
#[derive(Debug, Clone, Default)]
struct CpuTimes {
    servers: u64,
    postgres: Vec<(u32, u64)>,
    bench: u64,
}

impl Watch {
    /// Watches from the start of `window`'s counted part (returning at once); `servers`
    /// are the server processes' pids.
    pub(super) async fn start(
        url: &str,
        backend: Backend,
        servers: Vec<u32>,
        window: Window,
    ) -> Self {
        let (stop, stopped) = watch::channel(false);
        let sampler = match backend {
            Backend::Postgres => match Database::connect(url).await {
                Ok(db) => Some(tokio::spawn(sample_locks(db, window, stopped))),
                Err(err) => {
                    eprintln!("lock samples: cannot connect: {err}");
                    None
                }
            },
            Backend::Sqlite => None,
        };
        let pids = servers.clone();
        let started = tokio::spawn(async move {
            tokio::time::sleep_until(window.counted_from.into()).await;
            CpuTimes::read(&pids)
        });
        Self {
            servers,
            stop,
            sampler,
            started,
        }
    }

    /// Stops watching and prints what was seen over `seconds`.
    pub(super) async fn report(mut self, seconds: f64) {
        let ended = CpuTimes::read(&self.servers);
        let _ = self.stop.send(true);
        if let Ok(started) = (&mut self.started).await {
            print_cpu(&started, &ended, seconds);
        }
        if let Some(sampler) = self.sampler.take()
            && let Ok(samples) = sampler.await
        {
            print_locks(&samples);
        }
    }
}

impl CpuTimes {
    fn read(servers: &[u32]) -> Self {
        Self {
            servers: servers.iter().filter_map(|pid| ticks(*pid)).sum(),
            postgres: postgres_pids()
                .into_iter()
                .filter_map(|pid| Some((pid, ticks(pid)?)))
                .collect(),
            bench: ticks(std::process::id()).unwrap_or(0),
        }
    }

    /// PostgreSQL's ticks since `before`: a backend that started meanwhile counts from 0.
    fn postgres_since(&self, before: &Self) -> u64 {
        self.postgres
            .iter()
            .map(|(pid, now)| {
                let then = before
                    .postgres
                    .iter()
                    .find(|(p, _)| p == pid)
                    .map_or(0, |(_, t)| *t);
                now.saturating_sub(then)
            })
            .sum()
    }
}

fn print_cpu(started: &CpuTimes, ended: &CpuTimes, seconds: f64) {
    let cores = std::thread::available_parallelism().map_or(1, usize::from) as f64;
    let per_second = |ticks: u64| ticks as f64 / TICKS_PER_SECOND / seconds;
    let servers = per_second(ended.servers.saturating_sub(started.servers));
    let postgres = per_second(ended.postgres_since(started));
    let bench = per_second(ended.bench.saturating_sub(started.bench));
    let busy = (servers + postgres + bench) / cores * 100.0;
    figure(
        "CPU, in cores",
        format!(
            "servers {servers:.2}, PostgreSQL {postgres:.2}, clients {bench:.2} \
             of {cores:.0} ({busy:.0}% busy)"
        ),
    );
}

fn print_locks(samples: &LockSamples) {
    let share = |n: u64| n as f64 * 100.0 / samples.active.max(1) as f64;
    figure(
        "PostgreSQL lock waits",
        format!(
            "{} of {} active-backend samples on a row or transaction lock ({:.1}%), \
             {} on the sealer's advisory lock ({:.1}%)",
            thousands(samples.row_locks as f64),
            thousands(samples.active as f64),
            share(samples.row_locks),
            thousands(samples.advisory as f64),
            share(samples.advisory),
        ),
    );
}

/// Samples the database's active backends, but for its own, every [`SAMPLE_EVERY`] of
/// the counted window until told to stop.
async fn sample_locks(
    db: DatabaseConnection,
    window: Window,
    mut stopped: watch::Receiver<bool>,
) -> LockSamples {
    let query = Statement::from_string(
        DbBackend::Postgres,
        "SELECT count(*) AS active, \
           count(*) FILTER (WHERE wait_event_type = 'Lock' AND wait_event <> 'advisory') AS row_locks, \
           count(*) FILTER (WHERE wait_event_type = 'Lock' AND wait_event = 'advisory') AS advisory \
         FROM pg_stat_activity \
         WHERE datname = current_database() AND state = 'active' AND pid <> pg_backend_pid()",
    );
    let mut samples = LockSamples::default();
    tokio::time::sleep_until(window.counted_from.into()).await;
    let mut tick = tokio::time::interval(SAMPLE_EVERY);
    while !*stopped.borrow() {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stopped.changed() => break,
        }
        let Ok(Some(row)) = db.query_one_raw(query.clone()).await else {
            continue;
        };
        let count = |column: &str| {
            row.try_get::<i64>("", column)
                .map_or(0, |n| u64::try_from(n).unwrap_or(0))
        };
        samples.active += count("active");
        samples.row_locks += count("row_locks");
        samples.advisory += count("advisory");
    }
    let _ = db.close().await;
    samples
}

/// User and system CPU ticks of `pid`, from `/proc/<pid>/stat` (fields 14 and 15; the
/// command name before them may hold spaces, so counting starts after its `)`).
fn ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 2..];
    let mut fields = after_name.split_whitespace().skip(11);
    let user: u64 = fields.next()?.parse().ok()?;
    let system: u64 = fields.next()?.parse().ok()?;
    Some(user + system)
}

/// Every process named `postgres`: the server and its backends, on this host.
fn postgres_pids() -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|comm| comm.trim_end() == "postgres")
        })
        .collect()
}
