//! Fleet: a new deployment object reaching a large simulated fleet, with the server in
//! a process of its own so that its memory is measured alone. Budgets: p99 < 1 s from
//! the POST to the apply with 10,000 agents, server RSS < 500 MiB, no errors.
//!
//! For each backend of `BROKKR_FLEET_BACKENDS` (default `sqlite,postgres`) the bench
//! runs itself again (`std::env::current_exe()`) with `BROKKR_BENCH_ROLE=server`: that
//! child opens the store from `BROKKR__DATABASE__URL`, creates the admin key and serves
//! on 127.0.0.1 through the reference server's own bind-and-run path
//! (`Server::bind`, `Server::run`; see `common/server.rs`), and stops when its
//! standard input closes (a guard kills it if the bench dies). This process is the
//! load side: it creates one stack, posts a first deployment object, registers
//! `BROKKR_FLEET_AGENTS` agents (default 10,000) through the admin API with the
//! simulator's [`register`], assigns the stack to each, and starts the fleet with
//! [`Simulator`] at `BROKKR_FLEET_RAMP` agents a second (default 200): real
//! [`Agent`](brokkr_agent::agent::Agent)s with their own keys and `MemoryApplier`s,
//! sharing one HTTP client. Agents long-poll for 30 s; their heartbeats come every
//! 30 s; resync and health reports are an hour apart.
//!
//! Once every agent has applied the first version and the server's
//! `brokkr_target_state_watchers` gauge shows every agent back in a long poll (all but
//! 0.1%: a few agents of a large fleet are always between two polls), each of
//! `BROKKR_FLEET_ROUNDS` rounds (default 5) posts a new deployment object and records,
//! per agent, the time from just before the POST until the agent's observer saw the
//! apply (the same monotonic clock; no polling). An agent without the object after
//! 60 s counts as missed. The bench prints each round's percentiles, the overall ones,
//! errors (any broker call that failed, by kind), the server's peak and current RSS
//! (`VmHWM`, `VmRSS` from `/proc/<pid>/status`) and the open files of both processes,
//! next to the budgets.
//!
//! ```text
//! cargo bench -p brokkr-agent --bench fleet
//! BROKKR_FLEET_AGENTS=1000 BROKKR_FLEET_ROUNDS=2 BROKKR_FLEET_BACKENDS=sqlite cargo bench -p brokkr-agent --bench fleet
//! ```
//!
//! Both processes share the machine's cores, so the times bound the server's from above.
//! Each agent holds one connection for its long poll and borrows pooled ones for its
//! other calls, so each process needs an open-files limit of about 1.25 × agents + 256
//! (`ulimit -n`). PostgreSQL comes from `BROKKR_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); the scratch database is created and
//! dropped as the tests' are, and the backend skipped with a notice when that fails.

use std::collections::{BTreeMap, HashSet};
use std::time::{Duration, Instant};

use brokkr_agent::config::{AgentSection, Secret};
use brokkr_agent::simulate::{self, Applied, Options, ProcessStats, Simulator};
use futures::StreamExt;
use serde_json::{Value, json};
use tokio::sync::mpsc;

type Result<T = (), E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

#[path = "../../brokkr-server/tests/common/pg_database.rs"]
mod pg_database;
#[path = "common/scratch.rs"]
mod scratch;
// The rollout bench uses the rest of it (restarts, kills).
#[allow(dead_code)]
#[path = "common/server.rs"]
mod server;

use scratch::Scratch;
use server::{ServerProcess, memory};

/// The server's log filter: `BROKKR_FLEET_SERVER_LOG`, `error` when unset.
fn server_log() -> String {
    server::log_filter("BROKKR_FLEET_SERVER_LOG")
}

/// Longest wait for one round's object to reach every agent.
const ROUND_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest wait, beyond the ramp's length, for every agent to apply the first version.
const START_SLACK: Duration = Duration::from_secs(180);
/// Longest wait for every agent to be back in a long poll.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Admin calls in flight while assigning.
const ADMIN_CONCURRENCY: usize = 16;

const P99_BUDGET: Duration = Duration::from_secs(1);
const RSS_BUDGET_KIB: u64 = 500 * 1024;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The deployment object of round `round` (0 is the first version).
fn manifest(round: usize) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: default\ndata:\n  round: \"{round}\"\n---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: default\nspec:\n  replicas: 2\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n        - name: web\n          image: nginx:1.27.{round}\n"
    )
}

// ---------------------------------------------------------------------------------
// The load side.
// ---------------------------------------------------------------------------------

/// The admin's view of the API.
#[derive(Clone)]
struct Admin {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Admin {
    async fn post(&self, path: &str, body: Value) -> Result<Value> {
        let response = self
            .http
            .post(format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.key)
            .json(&body)
            .timeout(Duration::from_secs(30))
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(body)
        } else {
            Err(format!("POST {path}: {status} {body}").into())
        }
    }

    /// Appends a deployment object to `stack`; returns its id.
    async fn deploy(&self, stack: &str, round: usize) -> Result<String> {
        let body = self
            .post(
                &format!("/stacks/{stack}/deployment-objects"),
                json!({ "yaml_content": manifest(round) }),
            )
            .await?;
        Ok(body["id"].as_str().ok_or("no id")?.to_owned())
    }

    /// The server's `brokkr_target_state_watchers` gauge.
    async fn watchers(&self) -> Result<i64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .timeout(Duration::from_secs(10))
            .send()
            .await?
            .text()
            .await?;
        text.lines()
            .find_map(|l| l.strip_prefix("brokkr_target_state_watchers "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as i64)
            .ok_or_else(|| "no brokkr_target_state_watchers in /metrics".into())
    }
}

/// Waits until all but 0.1% of `agents` long polls are parked on the server (at any
/// moment a few agents of a large fleet are between two polls); `false` on timeout.
async fn settle(admin: &Admin, agents: usize) -> Result<bool> {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    let enough = (agents - agents / 1000) as i64;
    loop {
        let watchers = admin.watchers().await?;
        if watchers >= enough {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            println!(
                "  note: only {watchers} of {agents} agents were back in a long poll after {SETTLE_TIMEOUT:?}"
            );
            return Ok(false);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Latency figures of one set of arrivals.
struct Figures {
    millis: Vec<f64>,
    expected: usize,
}

impl Figures {
    fn new(expected: usize) -> Self {
        Self {
            millis: Vec::with_capacity(expected),
            expected,
        }
    }

    fn add(&mut self, times: impl IntoIterator<Item = Duration>) {
        self.millis
            .extend(times.into_iter().map(|d| d.as_secs_f64() * 1000.0));
    }

    fn pct(&mut self, p: f64) -> f64 {
        self.millis.sort_by(f64::total_cmp);
        self.sorted_pct(p)
    }

    fn sorted_pct(&self, p: f64) -> f64 {
        if self.millis.is_empty() {
            return f64::NAN;
        }
        self.millis[((self.millis.len() as f64 - 1.0) * p).round() as usize]
    }

    fn line(&mut self) -> String {
        self.millis.sort_by(f64::total_cmp);
        format!(
            "{}/{} agents  min {:>6.1}  p50 {:>6.1}  p90 {:>6.1}  p99 {:>6.1}  max {:>6.1} ms",
            self.millis.len(),
            self.expected,
            self.sorted_pct(0.0),
            self.sorted_pct(0.50),
            self.sorted_pct(0.90),
            self.sorted_pct(0.99),
            self.sorted_pct(1.0)
        )
    }
}

/// Drains the applies already queued (from before a round).
fn drain(applies: &mut mpsc::UnboundedReceiver<Applied>) {
    while applies.try_recv().is_ok() {}
}

/// Collects applies until `agents` distinct agents applied the object `object()`
/// names (known once the POST answered), or `deadline`. Returns, per agent, its first
/// apply of that object, and how many applies were of another object.
async fn arrivals(
    applies: &mut mpsc::UnboundedReceiver<Applied>,
    object: &tokio::sync::watch::Receiver<Option<String>>,
    agents: usize,
    deadline: Instant,
) -> (BTreeMap<usize, Instant>, usize) {
    let mut seen: Vec<Applied> = Vec::with_capacity(agents);
    let mut got = BTreeMap::new();
    let mut other = 0;
    let deadline = tokio::time::Instant::from_std(deadline);
    loop {
        if let Some(id) = object.borrow().as_deref() {
            for applied in seen.drain(..) {
                if applied.object.to_string() == id {
                    got.entry(applied.agent).or_insert(applied.at);
                } else {
                    other += 1;
                }
            }
            if got.len() >= agents {
                return (got, other);
            }
        }
        match tokio::time::timeout_at(deadline, applies.recv()).await {
            Ok(Some(applied)) => seen.push(applied),
            Ok(None) | Err(_) => {
                if object.borrow().is_none() {
                    // The POST never answered; nothing can be attributed.
                    return (got, other + seen.len());
                }
                // One last pass over what arrived before the deadline.
                let id = object.borrow().clone().unwrap_or_default();
                for applied in seen.drain(..) {
                    if applied.object.to_string() == id {
                        got.entry(applied.agent).or_insert(applied.at);
                    } else {
                        other += 1;
                    }
                }
                return (got, other);
            }
        }
    }
}

/// The bench's knobs.
struct Settings {
    agents: usize,
    rounds: usize,
    ramp: u32,
}

/// One backend's run: the server child, the fleet, the rounds.
async fn measure(name: &str, server: &ServerProcess, settings: &Settings) -> Result {
    println!("{name}: server pid {} at {}", server.pid(), server.url);
    let admin = Admin {
        http: reqwest::Client::new(),
        base: server.url.clone(),
        key: server.admin.clone(),
    };
    let n = settings.agents;
    let stack = admin.post("/stacks", json!({"name": "fleet"})).await?;
    let stack = stack["id"].as_str().ok_or("no stack id")?.to_owned();
    admin.deploy(&stack, 0).await?;

    let labels = BTreeMap::from([("fleet".to_owned(), "bench".to_owned())]);
    let started = Instant::now();
    let registered = simulate::register(
        &server.url,
        &Secret::new(admin.key.clone()),
        "fleet",
        0..n,
        &labels,
    )
    .await?;
    println!(
        "  registered {n} agents through the admin API in {:.1?}",
        started.elapsed()
    );
    let started = Instant::now();
    let assigned: Vec<Result<Value>> = futures::stream::iter(&registered)
        .map(|agent| {
            let path = format!("/agents/{}/targets", agent.id);
            let admin = &admin;
            let stack = &stack;
            async move { admin.post(&path, json!({"stack_id": stack})).await }
        })
        .buffer_unordered(ADMIN_CONCURRENCY)
        .collect()
        .await;
    assigned.into_iter().collect::<Result<Vec<_>>>()?;
    println!(
        "  assigned the stack to each in {:.1?}; server so far: {}",
        started.elapsed(),
        memory(&server.stats())
    );

    let options = Options {
        broker_url: server.url.clone(),
        agents: n,
        labels,
        ramp_per_sec: settings.ramp,
        agent: AgentSection {
            poll_wait_secs: 30,
            heartbeat_interval_secs: 30,
            resync_period_secs: 3600,
            health_interval_secs: 3600,
            max_backoff_secs: 5,
            shutdown_grace_secs: 10,
            ..AgentSection::default()
        },
        ..Options::default()
    };
    let keys = registered.into_iter().map(|r| r.key).collect();
    let simulator = Simulator::start(&options, keys)?;
    let outcome = rounds(&admin, server, &simulator, &stack, settings).await;
    if outcome.is_err() {
        println!(
            "  where the fleet stood: {}",
            simulator.summary().progress_line()
        );
        println!("  server: {}", memory(&server.stats()));
    }
    let stopping = Instant::now();
    let last = simulator.stop().await;
    println!(
        "  {n} agents stopped in {:.1?} ({} stopped early)",
        stopping.elapsed(),
        last.agents.stopped
    );
    outcome
}

/// Failed calls by kind and outcome, e.g. `event timed_out`.
fn errors(summary: &simulate::Summary) -> BTreeMap<String, u64> {
    summary
        .requests
        .iter()
        .flat_map(|(call, outcomes)| {
            outcomes
                .iter()
                .filter(|(outcome, _)| !matches!(**outcome, "ok" | "unchanged"))
                .map(move |(outcome, count)| (format!("{call} {outcome}"), *count))
        })
        .collect()
}

fn list(errors: &BTreeMap<String, u64>) -> String {
    if errors.is_empty() {
        return "none".into();
    }
    let items: Vec<String> = errors.iter().map(|(k, n)| format!("{k} {n}")).collect();
    items.join(", ")
}

/// Open files of both sides, sampled when every agent is parked in a long poll.
#[derive(Default)]
struct Fds {
    server: u64,
    load: u64,
}

impl Fds {
    fn sample(&mut self, server: &ServerProcess) {
        self.server = self.server.max(server.stats().open_files);
        self.load = self.load.max(ProcessStats::read(None).open_files);
    }
}

/// The first version, then the measured rounds.
async fn rounds(
    admin: &Admin,
    server: &ServerProcess,
    simulator: &Simulator,
    stack: &str,
    settings: &Settings,
) -> Result {
    let n = settings.agents;
    let mut applies = simulator.subscribe();
    let started = Instant::now();
    let start_timeout =
        Duration::from_secs_f64(n as f64 / f64::from(settings.ramp.max(1))) + START_SLACK;
    let mut first: HashSet<usize> = HashSet::with_capacity(n);
    let deadline = tokio::time::Instant::now() + start_timeout;
    while first.len() < n {
        match tokio::time::timeout_at(deadline, applies.recv()).await {
            Ok(Some(applied)) => {
                first.insert(applied.agent);
            }
            _ => {
                return Err(format!(
                    "only {} of {n} agents applied the first version within {start_timeout:?}",
                    first.len()
                )
                .into());
            }
        }
    }
    let summary = simulator.summary();
    println!(
        "  started {n} agents at {}/s; all had the first version after {:.1?}",
        settings.ramp,
        started.elapsed()
    );
    if let Some(startup) = summary.startup {
        println!(
            "    each agent's start to its first apply: p50 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            startup.p50_ms, startup.p99_ms, startup.max_ms
        );
    }
    let at_start = errors(&summary);
    println!("    errors while starting: {}", list(&at_start));
    let mut fds = Fds::default();
    settle(admin, n).await?;
    fds.sample(server);
    println!(
        "  all parked in long polls; server {}; load side {}",
        memory(&server.stats()),
        memory(&ProcessStats::read(None))
    );

    println!("  rounds, from just before the POST to each agent's apply:");
    let mut overall = Figures::new(n * settings.rounds);
    let mut round_p99 = Vec::new();
    let mut missed = 0;
    let mut wrong = 0;
    for round in 1..=settings.rounds {
        drain(&mut applies);
        let (object_tx, object) = tokio::sync::watch::channel(None);
        let cpu = (server.stats().cpu_secs, ProcessStats::read(None).cpu_secs);
        let t0 = Instant::now();
        let posting = {
            let admin = admin.clone();
            let stack = stack.to_owned();
            tokio::spawn(async move {
                let id = admin.deploy(&stack, round).await;
                let post = t0.elapsed();
                if let Ok(id) = &id {
                    object_tx.send_replace(Some(id.clone()));
                }
                (id, post)
            })
        };
        let (got, other) = arrivals(&mut applies, &object, n, t0 + ROUND_TIMEOUT).await;
        let (id, post) = posting.await?;
        id?;
        let mut figures = Figures::new(n);
        figures.add(got.values().map(|at| at.duration_since(t0)));
        round_p99.push(figures.pct(0.99));
        overall.add(got.values().map(|at| at.duration_since(t0)));
        missed += n - got.len();
        wrong += other;
        settle(admin, n).await?;
        fds.sample(server);
        let used = (
            server.stats().cpu_secs - cpu.0,
            ProcessStats::read(None).cpu_secs - cpu.1,
        );
        println!(
            "    round {round}: {}  (POST {:.1} ms; CPU until all polled again: server {:.2} s, load side {:.2} s)",
            figures.line(),
            post.as_secs_f64() * 1000.0,
            used.0,
            used.1
        );
    }
    let summary = simulator.summary();
    let stats = server.stats();
    let load = ProcessStats::read(None);
    println!("    overall: {}", overall.line());
    let mut in_rounds = errors(&summary);
    for (kind, count) in &at_start {
        if let Some(n) = in_rounds.get_mut(kind) {
            *n -= count;
        }
    }
    in_rounds.retain(|_, n| *n > 0);
    println!(
        "  requests: {} in all; errors in the rounds: {}",
        summary.requests_total,
        list(&in_rounds)
    );
    println!("  server: {}", memory(&stats));
    println!("  load side (simulator): {}", memory(&load));
    println!(
        "  open files, highest sample with every agent parked: server {}, load side {} ({} agents)",
        fds.server, fds.load, n
    );
    let p99 = overall.pct(0.99);
    let pass = |ok: bool| if ok { "ok" } else { "OVER BUDGET" };
    println!(
        "  budgets: p99 {:.0} ms < {} ms: {}; server VmHWM {} MiB < {} MiB: {}; errors {} (start and rounds; +{} missed, {} other objects) = 0: {}",
        p99,
        P99_BUDGET.as_millis(),
        pass(p99 < P99_BUDGET.as_secs_f64() * 1000.0),
        stats.peak_rss_kib / 1024,
        RSS_BUDGET_KIB / 1024,
        pass(stats.peak_rss_kib < RSS_BUDGET_KIB),
        summary.errors_total,
        missed,
        wrong,
        pass(summary.errors_total == 0 && missed == 0 && wrong == 0),
    );
    println!(
        "  round p99s: {}",
        round_p99
            .iter()
            .map(|p| format!("{p:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    Ok(())
}

// ---------------------------------------------------------------------------------
// Backends and the entry point.
// ---------------------------------------------------------------------------------

fn main() -> Result {
    if std::env::var(server::ROLE).as_deref() == Ok("server") {
        return server::serve();
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let settings = Settings {
        agents: env_usize("BROKKR_FLEET_AGENTS", 10_000).max(1),
        rounds: env_usize("BROKKR_FLEET_ROUNDS", 5).max(1),
        ramp: u32::try_from(env_usize("BROKKR_FLEET_RAMP", 200)).unwrap_or(200),
    };
    // Each side holds about one socket per agent, plus pooled ones for heartbeats and
    // the server's database connections.
    let needed = (settings.agents + settings.agents / 4 + 256) as u64;
    if let Some(limit) = simulate::open_files_limit()
        && limit < needed
    {
        return Err(format!(
            "{} agents need about {needed} open files per process, the limit is {limit}: \
             raise it (ulimit -n) or lower BROKKR_FLEET_AGENTS",
            settings.agents
        )
        .into());
    }
    let backends =
        std::env::var("BROKKR_FLEET_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "{} agents, {} rounds, ramp {}/s, {} cores",
        settings.agents,
        settings.rounds,
        settings.ramp,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for backend in backends.split(',').map(str::trim) {
        let (name, max_connections) = match backend {
            "sqlite" => ("SQLite", None),
            // The pool the reference server would get on a small PostgreSQL.
            "postgres" => ("PostgreSQL", Some(20)),
            "" => continue,
            other => {
                return Err(format!("unknown backend {other:?}: use sqlite or postgres").into());
            }
        };
        let Some(database) = Scratch::create(backend, "brokkr_fleet", &runtime)? else {
            continue;
        };
        let server = ServerProcess::spawn(&database.url, max_connections, None, &server_log())?;
        let outcome = runtime.block_on(measure(name, &server, &settings));
        server.stop();
        outcome?;
    }
    Ok(())
}
