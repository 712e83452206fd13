//! Load: many agents polling their target state and heartbeating over loopback.
//!
//! For each backend (SQLite in a temporary file, then a scratch PostgreSQL database)
//! the server runs in this process on 127.0.0.1:0 through the real serve code path.
//! The bench registers `BROKKR_LOAD_AGENTS` agents (default 1,000, each with its own
//! key), 5 stacks per agent (5,000) with one small deployment object each, targets
//! every agent to its 5 stacks, then runs every agent concurrently for
//! `BROKKR_LOAD_SECONDS` (default 30): each agent has its own HTTP client (its own
//! connection) and loops `GET target-state` with `If-None-Match`, then `POST
//! heartbeat`. It prints, per backend, requests per second of each kind, p50/p99
//! latency, the error count and the process RSS (`VmHWM`/`VmRSS`, which includes the
//! load generator itself).
//!
//! ```text
//! cargo bench -p brokkr-server --bench load
//! BROKKR_LOAD_SECONDS=3 BROKKR_LOAD_AGENTS=50 cargo bench -p brokkr-server --bench load
//! BROKKR_LOAD_BACKENDS=sqlite cargo bench -p brokkr-server --bench load
//! ```
//!
//! Seeding goes through the `Store` (the same rows the API would write, without 11,000
//! HTTP round trips); the measurement goes through HTTP only. PostgreSQL comes from
//! `BROKKR_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`);
//! when it is unreachable that backend is skipped with a notice. Everything is bounded:
//! a fixed number of agents, a fixed duration, a per-request timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use brokkr_core::{
    Actor, GeneratorRegistry, KeyOwner, NewAgent, NewDeploymentObject, NewStack, Pak, Store,
};
use brokkr_server::config::Config;
use brokkr_server::serve::Server;
use brokkr_store::{SqlStore, StoreConfig};
use futures::StreamExt;
use sea_orm::{ConnectionTrait, Database};

type Result<T = (), E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

const STACKS_PER_AGENT: usize = 5;
const SEED_CONCURRENCY: usize = 16;
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One agent's identity for the run.
struct LoadAgent {
    id: String,
    key: String,
}

/// Creates the agents, stacks, objects and targets; returns the agents.
async fn seed(store: &dyn Store, agents: usize) -> Result<Vec<LoadAgent>> {
    let sys = Actor::System;
    let started = Instant::now();
    let created: Vec<Result<LoadAgent>> = futures::stream::iter(0..agents)
        .map(|i| async move {
            let key = Pak::generate();
            let agent = store
                .create_agent(
                    &sys,
                    NewAgent {
                        name: format!("load-agent-{i}"),
                        cluster_name: format!("cluster-{i}"),
                        labels: Default::default(),
                        annotations: Default::default(),
                        key: key.stored(),
                    },
                )
                .await?;
            for s in 0..STACKS_PER_AGENT {
                let stack = store
                    .create_stack(
                        &sys,
                        NewStack {
                            name: format!("load-stack-{i}-{s}"),
                            ..Default::default()
                        },
                    )
                    .await?;
                let yaml = format!(
                    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{i}-{s}\n  namespace: default\ndata:\n  k: v\n"
                );
                store
                    .append_deployment_object(&sys, NewDeploymentObject::from_yaml(stack.id, yaml)?)
                    .await?;
                store.assign_stack(&sys, agent.id, stack.id).await?;
            }
            Ok(LoadAgent {
                id: agent.id.to_string(),
                key: key.expose().to_owned(),
            })
        })
        .buffer_unordered(SEED_CONCURRENCY)
        .collect()
        .await;
    let agents = created.into_iter().collect::<Result<Vec<_>>>()?;
    println!(
        "  seeded {} agents, {} stacks with one deployment object each, {} targets in {:.1?}",
        agents.len(),
        agents.len() * STACKS_PER_AGENT,
        agents.len() * STACKS_PER_AGENT,
        started.elapsed()
    );
    Ok(agents)
}

/// Latencies and errors of one kind of request.
#[derive(Default)]
struct Samples {
    micros: Vec<u32>,
    errors: usize,
    /// Errors by HTTP status, or by `timeout`/`connect`/`other` for transport errors.
    error_kinds: std::collections::BTreeMap<String, usize>,
}

impl Samples {
    fn merge(&mut self, other: Samples) {
        self.micros.extend(other.micros);
        self.errors += other.errors;
        for (kind, count) in other.error_kinds {
            *self.error_kinds.entry(kind).or_default() += count;
        }
    }

    fn fail(&mut self, outcome: &reqwest::Result<reqwest::Response>) {
        self.errors += 1;
        let kind = match outcome {
            Ok(resp) => resp.status().as_u16().to_string(),
            Err(err) if err.is_timeout() => "timeout".to_owned(),
            Err(err) if err.is_connect() => "connect".to_owned(),
            Err(_) => "other".to_owned(),
        };
        *self.error_kinds.entry(kind).or_default() += 1;
    }

    fn report(&mut self, name: &str, seconds: f64) {
        self.micros.sort_unstable();
        let pct = |p: f64| -> f64 {
            if self.micros.is_empty() {
                return 0.0;
            }
            let i = ((self.micros.len() as f64 - 1.0) * p).round() as usize;
            f64::from(self.micros[i]) / 1000.0
        };
        println!(
            "  {name:<13} {:>9.0} req/s  p50 {:>7.2} ms  p99 {:>7.2} ms  ({} ok, {} errors)",
            self.micros.len() as f64 / seconds,
            pct(0.50),
            pct(0.99),
            self.micros.len(),
            self.errors
        );
        if !self.error_kinds.is_empty() {
            println!("  {:<13} errors by kind: {:?}", "", self.error_kinds);
        }
    }
}

/// One agent's loop until `deadline`.
async fn run_agent(base: String, agent: LoadAgent, deadline: Instant) -> (Samples, Samples) {
    let mut fetches = Samples::default();
    let mut beats = Samples::default();
    // Its own client: its own connection, as a real agent has.
    let client = match reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(1)
        .build()
    {
        Ok(client) => client,
        Err(_) => {
            fetches.errors += 1;
            return (fetches, beats);
        }
    };
    let auth = format!("Bearer {}", agent.key);
    let target_url = format!("{base}/api/v1/agents/{}/target-state", agent.id);
    let beat_url = format!("{base}/api/v1/agents/{}/heartbeat", agent.id);
    let mut etag: Option<String> = None;
    while Instant::now() < deadline {
        let started = Instant::now();
        let mut req = client.get(&target_url).header("authorization", &auth);
        if let Some(etag) = &etag {
            req = req.header("if-none-match", etag);
        }
        let outcome = req.send().await;
        match outcome {
            Ok(resp) if resp.status() == 200 || resp.status() == 304 => {
                if let Some(tag) = resp.headers().get("etag").and_then(|v| v.to_str().ok()) {
                    etag = Some(tag.to_owned());
                }
                let _ = resp.bytes().await;
                fetches.micros.push(elapsed_micros(started));
            }
            failed => fetches.fail(&failed),
        }
        if Instant::now() >= deadline {
            break;
        }
        let started = Instant::now();
        let outcome = client
            .post(&beat_url)
            .header("authorization", &auth)
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .await;
        match outcome {
            Ok(resp) if resp.status().is_success() => {
                let _ = resp.bytes().await;
                beats.micros.push(elapsed_micros(started));
            }
            failed => beats.fail(&failed),
        }
    }
    (fetches, beats)
}

fn elapsed_micros(started: Instant) -> u32 {
    u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX)
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
        "VmHWM {} VmRSS {} (server and load generator together)",
        field("VmHWM:"),
        field("VmRSS:")
    )
}

/// Seeds `store`, serves it, runs the load, prints the figures.
async fn measure(name: &str, store: Arc<dyn Store>, agents: usize, seconds: u64) -> Result {
    println!("{name}:");
    let admin = Pak::generate();
    store
        .rotate_api_key(&Actor::System, KeyOwner::Admin, admin.stored())
        .await?;
    let load_agents = seed(store.as_ref(), agents).await?;

    let mut config = Config::default();
    config.server.listen = "127.0.0.1:0".into();
    let server = Server::bind_with_store(store, config, GeneratorRegistry::default()).await?;
    let addr: SocketAddr = server.local_addr();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn(server.run(async move {
        let _ = stopped.await;
    }));
    let base = format!("http://{addr}");
    let probe = reqwest::Client::new();
    let ready_by = Instant::now() + Duration::from_secs(10);
    while probe.get(format!("{base}/healthz")).send().await.is_err() {
        if Instant::now() > ready_by {
            return Err("the server did not come up within 10 s".into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let tasks: Vec<_> = load_agents
        .into_iter()
        .map(|agent| tokio::spawn(run_agent(base.clone(), agent, deadline)))
        .collect();
    let mut fetches = Samples::default();
    let mut beats = Samples::default();
    for task in tasks {
        let (f, b) = task.await?;
        fetches.merge(f);
        beats.merge(b);
    }
    let elapsed = started.elapsed().as_secs_f64();
    println!("  {agents} agents for {elapsed:.1} s:");
    fetches.report("target-state", elapsed);
    beats.report("heartbeat", elapsed);
    println!("  RSS: {}", rss());
    let _ = stop.send(());
    match tokio::time::timeout(Duration::from_secs(40), serving).await {
        Ok(Ok(Ok(()))) => {}
        Ok(Ok(Err(err))) => eprintln!("  the server stopped with an error: {err}"),
        Ok(Err(err)) => eprintln!("  the server task failed: {err}"),
        Err(_) => eprintln!("  the server did not stop within 40 s"),
    }
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
    let agents = env_usize("BROKKR_LOAD_AGENTS", 1_000);
    // Each agent holds a client socket and the server its end: two descriptors each.
    if let Some(limit) = open_files_limit()
        && limit < agents * 2 + 200
    {
        return Err(format!(
            "{agents} agents need about {} open files, the limit is {limit}: raise it \
             (ulimit -n) or lower BROKKR_LOAD_AGENTS",
            agents * 2 + 200
        )
        .into());
    }
    let seconds = env_usize("BROKKR_LOAD_SECONDS", 30) as u64;
    let backends =
        std::env::var("BROKKR_LOAD_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        if backends.contains("sqlite") {
            let dir = tempfile::tempdir()?;
            let url = format!("sqlite://{}?mode=rwc", dir.path().join("load.db").display());
            let store = SqlStore::connect(&url).await?;
            measure("SQLite", Arc::new(store), agents, seconds).await?;
        }
        if backends.contains("postgres") {
            postgres(agents, seconds).await?;
        }
        Ok(())
    })
}

async fn postgres(agents: usize, seconds: u64) -> Result {
    let base = std::env::var("BROKKR_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let admin =
        match tokio::time::timeout(Duration::from_secs(10), Database::connect(base.as_str())).await
        {
            Ok(Ok(admin)) => admin,
            _ => {
                println!("PostgreSQL: skipped, {base} is unreachable");
                return Ok(());
            }
        };
    let name = format!("brokkr_load_{}", uuid::Uuid::new_v4().simple());
    admin
        .execute_unprepared(&format!("CREATE DATABASE {name}"))
        .await?;
    let url = match base.rfind('/') {
        Some(i) if i > base.find("://").map_or(0, |s| s + 2) => format!("{}/{name}", &base[..i]),
        _ => format!("{base}/{name}"),
    };
    let outcome = async {
        let store = SqlStore::connect_with(StoreConfig {
            url,
            max_connections: 20,
            ..StoreConfig::default()
        })
        .await?;
        measure("PostgreSQL", Arc::new(store), agents, seconds).await
    }
    .await;
    admin
        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .await?;
    outcome
}
