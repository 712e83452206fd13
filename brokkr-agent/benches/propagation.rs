//! Propagation: how long a new deployment object takes to reach a fleet of
//! long-polling agents. The design budget is p99 < 1 s for 1,000 agents.
//!
//! For each backend named in `BROKKR_BENCH_BACKENDS` (`sqlite`, the default, in a
//! temporary directory; `postgres`; or both, comma-separated) the reference server runs
//! in this process on 127.0.0.1:0 through the real serve code path. The bench creates
//! `BROKKR_BENCH_AGENTS` agents (default 1,000), each with its own key, and one stack
//! assigned to all of them, posts a first deployment object through the API, then
//! starts that many real [`Agent`]s in this process, each with its own
//! [`MemoryApplier`] and [`BrokerClient`] (its own HTTP connections), long-polling for
//! 30 s at a time; resync and health reports are an hour apart and heartbeats 30 s, so
//! they stay out of the way. Once every agent has applied the first version and is
//! waiting in a long poll again, each of `BROKKR_BENCH_ROUNDS` rounds (default 5)
//! posts a new deployment object through the API and records, per agent, the time from
//! just before the POST was sent until its `MemoryApplier` shows a new apply.
//!
//! ```text
//! cargo bench -p brokkr-agent --bench propagation
//! BROKKR_BENCH_AGENTS=100 cargo bench -p brokkr-agent --bench propagation
//! BROKKR_BENCH_BACKENDS=sqlite,postgres cargo bench -p brokkr-agent --bench propagation
//! ```
//!
//! How it is measured: one watcher loop, on the bench's main thread, checks every agent
//! that has not applied the new object yet (`MemoryApplier::applies().len()` against
//! its length before the round: a lock and a copy of a few entries) and then sleeps
//! 5 ms. An agent's time is the moment the check first saw its apply, so each figure is
//! an upper bound, at most one scan period late; the bench prints the mean time a scan
//! takes and the mean period actually achieved (the sleep plus the scan plus waiting
//! for a core). After the round it checks that every new apply was of the object
//! just posted. An agent that has not applied it within 30 s counts as missed.
//!
//! The server, the agents and the watcher share this process and its cores, so the
//! figures are an upper bound for the server alone. PostgreSQL comes from
//! `BROKKR_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! the scratch database is created and dropped with `psql` (this crate does not depend
//! on a SQL driver), and the backend is skipped with a notice when that fails. Every
//! agent holds two connections (long poll and heartbeats), so the open-files limit must
//! be at least 4 × agents + 256 (`ulimit -n`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use brokkr_agent::agent::{Agent, StaticCapabilities};
use brokkr_agent::broker::BrokerClient;
use brokkr_agent::config::{AgentSection, Secret};
use brokkr_core::testing::MemoryApplier;
use brokkr_core::{Actor, Applier, KeyOwner, NewAgent, NewStack, Pak, StackId, Store};
use brokkr_server::config::Config;
use brokkr_server::metrics::Metrics;
use brokkr_server::serve::Server;
use brokkr_store::{SqlStore, StoreConfig};
use futures::StreamExt;
use serde_json::{Value, json};

type Result<T = (), E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

/// How often the watcher checks the agents that have not applied yet.
const SCAN_PERIOD: Duration = Duration::from_millis(5);
/// Longest wait for one round's object to reach every agent.
const ROUND_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the whole fleet to start and apply the first version.
const START_TIMEOUT: Duration = Duration::from_secs(120);
/// Longest wait for every agent to be back in a long poll between rounds.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest wait for the agents, then the server, to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(40);
const SEED_CONCURRENCY: usize = 16;

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

/// One agent's identity for the run.
struct FleetAgent {
    id: String,
    key: String,
}

/// Creates the agents and one stack assigned to all of them.
async fn seed(store: &dyn Store, agents: usize) -> Result<(StackId, Vec<FleetAgent>)> {
    let sys = Actor::System;
    let started = Instant::now();
    let stack = store
        .create_stack(
            &sys,
            NewStack {
                name: "propagation".into(),
                ..Default::default()
            },
        )
        .await?;
    let created: Vec<Result<FleetAgent>> = futures::stream::iter(0..agents)
        .map(|i| async move {
            let key = Pak::generate();
            let agent = store
                .create_agent(
                    &sys,
                    NewAgent {
                        name: format!("fleet-agent-{i}"),
                        cluster_name: format!("cluster-{i}"),
                        labels: Default::default(),
                        annotations: Default::default(),
                        key: key.stored(),
                    },
                )
                .await?;
            store.assign_stack(&sys, agent.id, stack.id).await?;
            Ok(FleetAgent {
                id: agent.id.to_string(),
                key: key.expose().to_owned(),
            })
        })
        .buffer_unordered(SEED_CONCURRENCY)
        .collect()
        .await;
    let fleet = created.into_iter().collect::<Result<Vec<_>>>()?;
    println!(
        "  seeded {} agents and one stack assigned to all of them in {:.1?}",
        fleet.len(),
        started.elapsed()
    );
    Ok((stack.id, fleet))
}

/// The admin's view of the API.
#[derive(Clone)]
struct Admin {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Admin {
    /// Appends a deployment object to `stack`; returns its id.
    async fn deploy(&self, stack: StackId, yaml: String) -> Result<String> {
        let response = self
            .http
            .post(format!(
                "{}/api/v1/stacks/{stack}/deployment-objects",
                self.base
            ))
            .bearer_auth(&self.key)
            .json(&json!({ "yaml_content": yaml }))
            .timeout(Duration::from_secs(10))
            .send()
            .await?;
        let status = response.status();
        let body: Value = response.json().await?;
        match body["id"].as_str() {
            Some(id) if status.is_success() => Ok(id.to_owned()),
            _ => Err(format!("POST deployment-objects: {status} {body}").into()),
        }
    }
}

/// What the watcher saw: per agent, when its new apply was first seen.
struct Arrivals {
    times: Vec<Option<Duration>>,
    scans: u32,
    /// Time spent checking.
    scanning: Duration,
    /// Time from the first check to the last.
    watching: Duration,
}

/// Checks every `SCAN_PERIOD` each applier that has not yet applied anything beyond its
/// baseline, until all have or `deadline` passes.
async fn watch_applies(
    fleet: &[Arc<MemoryApplier>],
    baselines: &[usize],
    t0: Instant,
    deadline: Instant,
) -> Arrivals {
    let mut arrivals = Arrivals {
        times: vec![None; fleet.len()],
        scans: 0,
        scanning: Duration::ZERO,
        watching: Duration::ZERO,
    };
    let watching = Instant::now();
    let mut pending: Vec<usize> = (0..fleet.len()).collect();
    loop {
        let scan = Instant::now();
        pending.retain(|&i| {
            if fleet[i].applies().len() > baselines[i] {
                arrivals.times[i] = Some(t0.elapsed());
                false
            } else {
                true
            }
        });
        arrivals.scans += 1;
        arrivals.scanning += scan.elapsed();
        if pending.is_empty() || Instant::now() >= deadline {
            arrivals.watching = watching.elapsed();
            return arrivals;
        }
        tokio::time::sleep(SCAN_PERIOD).await;
    }
}

/// Waits until `agents` long polls are parked on the server; `false` on timeout.
async fn settle(metrics: &Metrics, agents: usize) -> bool {
    let deadline = Instant::now() + SETTLE_TIMEOUT;
    while metrics.watchers() < agents as i64 {
        if Instant::now() >= deadline {
            println!(
                "  note: only {} of {agents} agents were back in a long poll after {SETTLE_TIMEOUT:?}",
                metrics.watchers()
            );
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    true
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

    fn add(&mut self, arrivals: &[Option<Duration>]) {
        self.millis
            .extend(arrivals.iter().flatten().map(|d| d.as_secs_f64() * 1000.0));
    }

    fn line(&mut self) -> String {
        self.millis.sort_by(f64::total_cmp);
        let pct = |p: f64| -> f64 {
            if self.millis.is_empty() {
                return f64::NAN;
            }
            self.millis[((self.millis.len() as f64 - 1.0) * p).round() as usize]
        };
        format!(
            "{}/{} agents  min {:>6.1}  p50 {:>6.1}  p90 {:>6.1}  p99 {:>6.1}  max {:>6.1} ms",
            self.millis.len(),
            self.expected,
            pct(0.0),
            pct(0.50),
            pct(0.90),
            pct(0.99),
            pct(1.0)
        )
    }
}

fn rss() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.trim_start_matches(name).trim().to_owned())
            .unwrap_or_else(|| "?".into())
    };
    format!(
        "VmRSS {} VmHWM {} (server, agents and watcher together)",
        field("VmRSS:"),
        field("VmHWM:")
    )
}

/// The bench's knobs.
struct Settings {
    agents: usize,
    rounds: usize,
}

/// Seeds `store`, serves it, runs the fleet and the rounds, prints the figures.
async fn measure(name: &str, store: Arc<dyn Store>, settings: &Settings) -> Result {
    println!("{name}:");
    let admin_key = Pak::generate();
    store
        .rotate_api_key(&Actor::System, KeyOwner::Admin, admin_key.stored())
        .await?;
    let (stack, agents) = seed(store.as_ref(), settings.agents).await?;

    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".into();
    let server = Server::bind_with_store(store, config, Default::default()).await?;
    let base = format!("http://{}", server.local_addr());
    let metrics = Arc::clone(&server.state().metrics);
    let (stop_server, server_stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async move {
        let _ = server_stopped.await;
    }));
    let admin = Admin {
        http: reqwest::Client::new(),
        base: base.clone(),
        key: admin_key.expose().to_owned(),
    };
    let ready_by = Instant::now() + Duration::from_secs(10);
    while admin
        .http
        .get(format!("{base}/healthz"))
        .send()
        .await
        .is_err()
    {
        if Instant::now() > ready_by {
            return Err("the server did not come up within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let outcome = run_fleet(&admin, &metrics, stack, agents, settings).await;

    let _ = stop_server.send(());
    match tokio::time::timeout(STOP_TIMEOUT, serving).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(err))) => eprintln!("  the server stopped with an error: {err}"),
        Ok(Err(err)) => eprintln!("  the server task failed: {err}"),
        Err(_) => eprintln!("  the server did not stop within {STOP_TIMEOUT:?}"),
    }
    outcome
}

/// Starts the agents, waits for the first version, runs the rounds, stops the agents.
async fn run_fleet(
    admin: &Admin,
    metrics: &Metrics,
    stack: StackId,
    agents: Vec<FleetAgent>,
    settings: &Settings,
) -> Result {
    let n = agents.len();
    admin.deploy(stack, manifest(0)).await?;

    let (stop_agents, stopped) = tokio::sync::watch::channel(false);
    let mut fleet = Vec::with_capacity(n);
    let mut tasks = Vec::with_capacity(n);
    let started = Instant::now();
    for agent in agents {
        let config = AgentSection {
            broker_url: admin.base.clone(),
            pak: Secret::new(agent.key),
            poll_wait_secs: 30,
            heartbeat_interval_secs: 30,
            resync_period_secs: 3600,
            health_interval_secs: 3600,
            max_backoff_secs: 5,
            shutdown_grace_secs: 10,
            ..AgentSection::default()
        };
        let client = BrokerClient::new(&admin.base, config.pak.clone())?;
        let applier = Arc::new(MemoryApplier::new());
        let running = Agent::new(
            config,
            client,
            Arc::clone(&applier) as Arc<dyn Applier>,
            Arc::new(StaticCapabilities::default()),
        );
        let mut stopped = stopped.clone();
        let id = agent.id;
        tasks.push(tokio::spawn(async move {
            let result = running
                .run(async move {
                    let _ = stopped.wait_for(|stop| *stop).await;
                })
                .await;
            result.map_err(|err| format!("agent {id}: {err}"))
        }));
        fleet.push(applier);
    }
    println!(
        "  started {n} agents in {:.1?} (mostly building their HTTP clients)",
        started.elapsed()
    );

    let outcome = rounds(admin, metrics, stack, &fleet, started, settings).await;

    stop_agents.send_replace(true);
    let stopping = Instant::now();
    let mut failed = 0;
    for task in tasks {
        let left = STOP_TIMEOUT.saturating_sub(stopping.elapsed());
        match tokio::time::timeout(left, task).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(err))) => {
                failed += 1;
                eprintln!("  {err}");
            }
            Ok(Err(err)) => {
                failed += 1;
                eprintln!("  an agent task failed: {err}");
            }
            Err(_) => {
                failed += 1;
                eprintln!("  an agent did not stop within {STOP_TIMEOUT:?}");
            }
        }
    }
    println!(
        "  {n} agents stopped in {:.1?} ({failed} failed)",
        stopping.elapsed()
    );
    outcome
}

/// The first version, then the measured rounds.
async fn rounds(
    admin: &Admin,
    metrics: &Metrics,
    stack: StackId,
    fleet: &[Arc<MemoryApplier>],
    started: Instant,
    settings: &Settings,
) -> Result {
    let n = fleet.len();
    let start = watch_applies(fleet, &vec![0; n], started, started + START_TIMEOUT).await;
    let mut first = Figures::new(n);
    first.add(&start.times);
    // The first check runs once every agent is spawned, so nothing below the spawn
    // time can show here: this line says when the whole fleet had the first version.
    println!("  start, from spawning the first agent to the first version applied:");
    println!("    {}", first.line());
    if first.millis.len() < n {
        return Err(format!(
            "only {} of {n} agents applied the first version within {START_TIMEOUT:?}",
            first.millis.len()
        )
        .into());
    }
    settle(metrics, n).await;

    println!("  rounds, from just before the POST to the agent's apply:");
    let mut overall = Figures::new(n * settings.rounds);
    let (mut scans, mut scanning, mut watching) = (0, Duration::ZERO, Duration::ZERO);
    for round in 1..=settings.rounds {
        let baselines: Vec<usize> = fleet.iter().map(|a| a.applies().len()).collect();
        let t0 = Instant::now();
        let posting = {
            let admin = admin.clone();
            tokio::spawn(async move {
                let id = admin.deploy(stack, manifest(round)).await;
                (id, t0.elapsed())
            })
        };
        let arrivals = watch_applies(fleet, &baselines, t0, t0 + ROUND_TIMEOUT).await;
        let (id, post) = posting.await?;
        let id = id?;
        // Every new apply must be of the object just posted.
        let wrong = fleet
            .iter()
            .zip(&baselines)
            .filter(|(applier, baseline)| {
                applier
                    .applies()
                    .get(**baseline)
                    .is_some_and(|(s, o)| *s != stack || o.to_string() != id)
            })
            .count();
        if wrong > 0 {
            return Err(format!("round {round}: {wrong} agents applied another object").into());
        }
        let mut figures = Figures::new(n);
        figures.add(&arrivals.times);
        println!(
            "    round {round}: {}  (POST {:.1} ms)",
            figures.line(),
            post.as_secs_f64() * 1000.0
        );
        overall.add(&arrivals.times);
        scans += arrivals.scans;
        scanning += arrivals.scanning;
        watching += arrivals.watching;
        settle(metrics, n).await;
    }
    println!("    overall: {}", overall.line());
    if scans > 0 {
        println!(
            "  watcher: {scans} scans, {:.0} µs each, one every {:.1} ms on average",
            scanning.as_secs_f64() * 1e6 / f64::from(scans),
            watching.as_secs_f64() * 1e3 / f64::from(scans)
        );
    }
    println!("  RSS: {}", rss());
    Ok(())
}

/// The soft limit of open files, from `/proc/self/limits`.
fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

fn main() -> Result {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let settings = Settings {
        agents: env_usize("BROKKR_BENCH_AGENTS", 1_000).max(1),
        rounds: env_usize("BROKKR_BENCH_ROUNDS", 5).max(1),
    };
    // Each agent holds two client sockets (long poll, heartbeats) and the server their
    // other ends.
    let needed = settings.agents * 4 + 256;
    if let Some(limit) = open_files_limit()
        && limit < needed
    {
        return Err(format!(
            "{} agents need about {needed} open files, the limit is {limit}: raise it \
             (ulimit -n) or lower BROKKR_BENCH_AGENTS",
            settings.agents
        )
        .into());
    }
    let backends = std::env::var("BROKKR_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "{} agents, {} rounds, {} cores",
        settings.agents,
        settings.rounds,
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    for backend in backends.split(',').map(str::trim) {
        match backend {
            "sqlite" => {
                let dir = tempfile::tempdir()?;
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("propagation.db").display()
                );
                runtime.block_on(async {
                    let store = SqlStore::connect(&url).await?;
                    measure("SQLite", Arc::new(store), &settings).await
                })?;
            }
            "postgres" => postgres(&runtime, &settings)?,
            "" => {}
            other => {
                return Err(format!("unknown backend {other:?}: use sqlite or postgres").into());
            }
        }
    }
    Ok(())
}

/// Runs one SQL statement on `url` with `psql`, bounded by a connect timeout.
fn psql(url: &str, sql: &str) -> Result {
    let output = std::process::Command::new("psql")
        .env("PGCONNECT_TIMEOUT", "10")
        .args([url, "-q", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .output()?;
    if output.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&output.stderr)
            .trim()
            .to_owned()
            .into())
    }
}

fn postgres(runtime: &tokio::runtime::Runtime, settings: &Settings) -> Result {
    let base = std::env::var("BROKKR_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("brokkr_propagation_{}", uuid::Uuid::new_v4().simple());
    if let Err(err) = psql(&base, &format!("CREATE DATABASE {name}")) {
        println!("PostgreSQL: skipped, cannot create a scratch database on {base}: {err}");
        return Ok(());
    }
    let url = match base.rfind('/') {
        Some(i) if i > base.find("://").map_or(0, |s| s + 2) => format!("{}/{name}", &base[..i]),
        _ => format!("{base}/{name}"),
    };
    let outcome = runtime.block_on(async {
        let store = SqlStore::connect_with(StoreConfig {
            url,
            max_connections: 20,
            ..StoreConfig::default()
        })
        .await?;
        measure("PostgreSQL", Arc::new(store), settings).await
    });
    psql(
        &base,
        &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"),
    )?;
    outcome
}
