//! Load: many agents polling their target state and heartbeating, against the Brokkr
//! server and, in the same run, against a minimal poem endpoint.
//!
//! For each backend (SQLite in a temporary file, then a scratch PostgreSQL database)
//! the bench seeds the store through the `Store` trait: `BROKKR_LOAD_AGENTS` agents
//! (default 1,000, each with its own key), 5 stacks per agent (5,000) with one small
//! deployment object each, every agent targeted to its 5 stacks. It then starts the
//! server in a child process (see `support`), through the real serve path, and runs
//! every agent concurrently for a 2 s warm-up, then `BROKKR_LOAD_SECONDS` (default 30)
//! that count: each agent has its own HTTP connection and loops `GET target-state`
//! with `If-None-Match` of its last ETag (so `304` once it has its state, as for a real
//! agent between changes), then `POST heartbeat`. It prints requests per second of each
//! kind, p50/p99/max, answers by status, errors by kind, and the server process's own
//! RSS: `VmRSS` sampled at 90% of the run while every connection is open, and the peak
//! `VmHWM`.
//!
//! The same agents then run the same loop for the same time against a minimal poem
//! endpoint in its own child process: a fixed JSON body of the size of agent 0's
//! target state, the same `ETag`/`304` rule, a heartbeat route answering `204`, and no
//! key, store, cache or middleware. Target-state p99 is printed beside twice the
//! minimal p99.
//!
//! Budgets (stated for PostgreSQL, printed for both): target state ≥ 20,000 req/s with
//! p99 ≤ 2 × the minimal endpoint's p99; heartbeats ≥ 6,000 req/s; server RSS under
//! 1,000 connections < 100 MiB (`VmHWM`).
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
//! when it is unreachable that backend is skipped with a notice. `BROKKR__*` variables
//! reach the server's configuration. Everything is bounded: a fixed number of agents,
//! a fixed duration, a timeout per request.

mod support;

use std::time::{Duration, Instant};

use brokkr_core::{Actor, NewAgent, NewDeploymentObject, NewStack, Pak, Store};
use futures::StreamExt;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, ETAG, IF_NONE_MATCH};

use support::{
    Backend, Child, Result, Rss, Samples, ScratchDatabase, Window, budget, errors, figure,
    thousands,
};

const STACKS_PER_AGENT: usize = 5;
/// Connections open and every agent has its state before counting starts.
const WARM_UP: Duration = Duration::from_secs(2);
const SEED_CONCURRENCY: usize = 16;
/// Bounds each agent's loop by count as well as by time.
const MAX_ROUNDS_PER_AGENT: usize = 10_000_000;

fn main() -> Result {
    if let Some(outcome) = support::run_child_role() {
        return outcome;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let agents = support::env_usize("BROKKR_LOAD_AGENTS", 1_000).max(1);
    // Each process holds one end of every agent's connection.
    support::check_open_files(agents + 200, "BROKKR_LOAD_AGENTS")?;
    let seconds = support::env_usize("BROKKR_LOAD_SECONDS", 30) as u64;
    let backends = Backend::from_env("BROKKR_LOAD_BACKENDS");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        for backend in backends {
            measure(backend, agents, Duration::from_secs(seconds)).await?;
        }
        Ok(())
    })
}

/// One agent's identity for the run.
#[derive(Clone)]
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

/// What the agents saw in one run against one endpoint.
#[derive(Default)]
struct LoadRun {
    fetches: Samples,
    beats: Samples,
    /// Target-state answers with a body (200) and without (304).
    full: usize,
    not_modified: usize,
    warm_up_errors: usize,
}

impl LoadRun {
    fn merge(&mut self, other: LoadRun) {
        self.fetches.merge(other.fetches);
        self.beats.merge(other.beats);
        self.full += other.full;
        self.not_modified += other.not_modified;
        self.warm_up_errors += other.warm_up_errors;
    }
}

/// One agent's loop until the window closes, as a real agent between changes: its
/// target state with the ETag it has, then a heartbeat.
async fn run_agent(
    base: String,
    agent: LoadAgent,
    client: reqwest::Client,
    window: Window,
) -> LoadRun {
    let mut run = LoadRun::default();
    let auth = format!("Bearer {}", agent.key);
    let target_url = format!("{base}/api/v1/agents/{}/target-state", agent.id);
    let beat_url = format!("{base}/api/v1/agents/{}/heartbeat", agent.id);
    let mut etag: Option<String> = None;
    for _ in 0..MAX_ROUNDS_PER_AGENT {
        let started = Instant::now();
        if started >= window.until {
            break;
        }
        let mut req = client.get(&target_url).header(AUTHORIZATION, &auth);
        if let Some(etag) = &etag {
            req = req.header(IF_NONE_MATCH, etag);
        }
        let outcome = req.send().await;
        let counted = window.counts(started);
        match outcome {
            Ok(resp) if resp.status() == 200 || resp.status() == 304 => {
                if let Some(tag) = resp.headers().get(ETAG).and_then(|v| v.to_str().ok()) {
                    etag = Some(tag.to_owned());
                }
                let full = resp.status() == 200;
                let _ = resp.bytes().await;
                if counted {
                    run.fetches.ok(started);
                    if full {
                        run.full += 1;
                    } else {
                        run.not_modified += 1;
                    }
                }
            }
            failed if counted => run.fetches.fail_outcome(&failed),
            _ => run.warm_up_errors += 1,
        }

        let started = Instant::now();
        if started >= window.until {
            break;
        }
        let outcome = client
            .post(&beat_url)
            .header(AUTHORIZATION, &auth)
            .header(CONTENT_TYPE, "application/json")
            .body("{}")
            .send()
            .await;
        let counted = window.counts(started);
        match outcome {
            Ok(resp) if resp.status().is_success() => {
                let _ = resp.bytes().await;
                if counted {
                    run.beats.ok(started);
                }
            }
            failed if counted => run.beats.fail_outcome(&failed),
            _ => run.warm_up_errors += 1,
        }
    }
    run
}

/// Runs every agent against `target` for a warm-up and then `duration`; also returns
/// the target's RSS sampled at 90% of the counted time, while every connection is
/// open, and the counted seconds.
async fn run_load(
    target: &Child,
    agents: &[LoadAgent],
    duration: Duration,
) -> Result<(LoadRun, Option<Rss>, f64)> {
    // Built before the clock starts: only requests are measured.
    let clients = agents
        .iter()
        .map(|_| support::client())
        .collect::<Result<Vec<_>>>()?;
    let window = Window::starting_now(WARM_UP, duration);
    let pid = target.pid();
    let sampler = tokio::spawn(async move {
        tokio::time::sleep(WARM_UP + duration.mul_f64(0.9)).await;
        Rss::of_pid(pid)
    });
    let tasks: Vec<_> = agents
        .iter()
        .zip(clients)
        .map(|(agent, client)| {
            tokio::spawn(run_agent(
                target.base.clone(),
                agent.clone(),
                client,
                window,
            ))
        })
        .collect();
    let mut all = LoadRun::default();
    for task in tasks {
        all.merge(task.await?);
    }
    let seconds = window.counted_seconds();
    Ok((all, sampler.await?, seconds))
}

/// The size of agent 0's target state, for the minimal endpoint's body.
async fn target_state_size(base: &str, agent: &LoadAgent) -> Result<usize> {
    let body = support::client()?
        .get(format!("{base}/api/v1/agents/{}/target-state", agent.id))
        .header(AUTHORIZATION, format!("Bearer {}", agent.key))
        .send()
        .await?
        .error_for_status()?
        .bytes()
        .await?;
    Ok(body.len())
}

/// Seeds a fresh database of `backend`, loads the server, then the minimal endpoint.
async fn measure(backend: Backend, agents: usize, duration: Duration) -> Result {
    let Some(db) = ScratchDatabase::create(backend).await? else {
        return Ok(());
    };
    let outcome = measure_on(&db.url, backend, agents, duration).await;
    db.remove().await?;
    outcome
}

async fn measure_on(url: &str, backend: Backend, agents: usize, duration: Duration) -> Result {
    println!("{backend}:");
    let load_agents = {
        // Dropped before the server starts: from then on the server alone uses it.
        let store = support::open_store(url).await?;
        seed(&store, agents).await?
    };

    let server = Child::spawn_server(url)?;
    server.wait_ready("/readyz").await?;
    let body_bytes = target_state_size(&server.base, &load_agents[0]).await?;
    let (mut brokkr, under_load, seconds) = run_load(&server, &load_agents, duration).await?;
    let peak = server.rss();
    server.stop().await?;
    println!(
        "  Brokkr server, {agents} agents for {seconds:.1} s after a {} s warm-up:",
        WARM_UP.as_secs()
    );
    let brokkr_p99 = report_load(&mut brokkr, seconds, true);
    report_rss(under_load, peak, agents);

    let minimal = Child::spawn_minimal(body_bytes)?;
    minimal.wait_ready("/healthz").await?;
    let (mut floor, _, seconds) = run_load(&minimal, &load_agents, duration).await?;
    let minimal_rss = minimal.rss();
    minimal.stop().await?;
    println!(
        "  minimal poem endpoint ({body_bytes}-byte body), the same agents and loop for {seconds:.1} s:",
    );
    let floor_p99 = report_load(&mut floor, seconds, false);
    if let Some(rss) = minimal_rss {
        figure("minimal endpoint RSS", rss);
    }
    budget(
        "target-state p99 / minimal",
        format!("{brokkr_p99:.1} / {floor_p99:.1} ms"),
        &format!("≤ 2 × minimal ({:.1} ms)", 2.0 * floor_p99),
        brokkr_p99 <= 2.0 * floor_p99,
    );
    Ok(())
}

/// Prints one run's figures (with the budgets for the Brokkr server); returns the
/// target-state p99 in milliseconds.
fn report_load(run: &mut LoadRun, seconds: f64, budgets: bool) -> f64 {
    let fetches = run.fetches.summary();
    let beats = run.beats.summary();
    let fetch_rate = fetches.count as f64 / seconds;
    let beat_rate = beats.count as f64 / seconds;
    if budgets {
        budget(
            "target-state req/s",
            thousands(fetch_rate),
            "≥ 20,000/s",
            fetch_rate >= 20_000.0,
        );
    } else {
        figure("target-state req/s", thousands(fetch_rate));
    }
    figure("target state", fetches);
    figure(
        "target-state answers",
        format!(
            "{} × 200, {} × 304",
            thousands(run.full as f64),
            thousands(run.not_modified as f64)
        ),
    );
    if budgets {
        budget(
            "heartbeat req/s",
            thousands(beat_rate),
            "≥ 6,000/s",
            beat_rate >= 6_000.0,
        );
    } else {
        figure("heartbeat req/s", thousands(beat_rate));
    }
    figure("heartbeat", beats);
    errors("target-state errors", &run.fetches.errors);
    errors("heartbeat errors", &run.beats.errors);
    if run.warm_up_errors > 0 {
        figure("warm-up errors", run.warm_up_errors);
    }
    fetches.p99_ms
}

fn report_rss(under_load: Option<Rss>, peak: Option<Rss>, agents: usize) {
    if let Some(rss) = under_load {
        figure(
            "server VmRSS under load",
            format!(
                "{:.1} MiB with {agents} connections open",
                rss.now_kib as f64 / 1024.0
            ),
        );
    }
    match peak {
        Some(rss) => budget(
            "server VmHWM (peak)",
            format!("{:.1} MiB", rss.peak_mib()),
            "< 100 MiB",
            rss.peak_mib() < 100.0,
        ),
        None => figure("server RSS", "unknown (no /proc)"),
    }
    if let Some(rss) = Rss::of_self() {
        figure("load generator RSS", rss);
    }
}
