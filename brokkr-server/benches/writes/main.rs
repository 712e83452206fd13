//! Writes: deployment objects appended by many clients at once, tenants onboarded
//! through a generator key, and two replicas sharing one PostgreSQL.
//!
//! The server runs in a child process of the bench (see `support`), through the real
//! serve path, on a fresh database per measurement; the bench talks to it over HTTP on
//! 127.0.0.1 only, every client on its own connection, and prints each figure beside
//! its budget.
//!
//! - Creates: `BROKKR_WRITES_CLIENTS` clients (default 200) over as many stacks, client
//!   i appending to stack i (`POST /stacks/{id}/deployment-objects`, a ConfigMap of
//!   about 300 bytes) as fast as the answers come, for `BROKKR_WRITES_SECONDS` (default
//!   20) after a 2 s warm-up that is not counted. Prints created/s, p50/p99/max and
//!   errors by kind, then lists every stack through the API to check that it holds
//!   exactly the objects acknowledged to it, with strictly increasing sequences, and
//!   what the cores and PostgreSQL's lock waits looked like meanwhile (`machine.rs`).
//!   Budgets: PostgreSQL ≥ 4,000/s with p99 < 150 ms; SQLite ≥ 2,000/s.
//! - Two replicas (PostgreSQL): the same with two server processes on one database,
//!   half the clients on each. Budget: the two together beat one.
//! - Onboarding: what a control plane holding a generator key does when a tenant signs
//!   up: create the tenant's stack, give it a placement policy (one agent of the
//!   tenant's cell; `BROKKR_ONBOARD_AGENTS`, default 50, in 10 cells), append its first
//!   object. Three requests make one onboarding. Prints onboardings/s, p50/p99 of the
//!   whole sequence and of each step, and checks that every placed stack reached an
//!   agent. Budget ≥ 1,500/s. `BROKKR_ONBOARD_VIA=assign` assigns each stack to an
//!   agent directly instead of by placement.
//!
//! - Webhooks: creates as above, once without a subscription and once with one to
//!   `deployment_object.created` (a receiver in the bench process), each on a fresh
//!   database; prints the write rate of both and, for the second, how fast the events
//!   reached the receiver (see `webhooks.rs`).
//!
//! ```text
//! cargo bench -p brokkr-server --bench writes                                  # both databases
//! BROKKR_WRITES_BACKENDS=postgres cargo bench -p brokkr-server --bench writes
//! BROKKR_WRITES_SECONDS=3 BROKKR_WRITES_CLIENTS=50 cargo bench -p brokkr-server --bench writes
//! BROKKR_WRITES_ONLY=onboarding cargo bench -p brokkr-server --bench writes   # or =creates, =webhooks
//! ```
//!
//! PostgreSQL comes from `BROKKR_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); each measurement creates a scratch
//! database and drops it after. `BROKKR__*` variables reach the server's configuration
//! (e.g. `BROKKR__DATABASE__MAX_CONNECTIONS=40`). Everything is bounded: a fixed number
//! of clients, a fixed duration, a timeout per request.

mod machine;
mod onboarding;
#[path = "../support/mod.rs"]
mod support;
mod webhooks;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::StreamExt;
use reqwest::header::AUTHORIZATION;
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use onboarding::Reach;
use support::{
    Backend, Child, Result, Samples, ScratchDatabase, Window, budget, errors, figure, thousands,
};

/// What `BROKKR_WRITES_ONLY` may name.
const MEASUREMENTS: [&str; 3] = ["creates", "onboarding", "webhooks"];

const WARM_UP: Duration = Duration::from_secs(2);
/// Bounds each client's loop by count as well as by time.
const MAX_REQUESTS_PER_CLIENT: usize = 1_000_000;
const CELLS: usize = 10;
/// Setup and verification requests in flight at once.
const SETUP_CONCURRENCY: usize = 16;

fn main() -> Result {
    if let Some(outcome) = support::run_child_role() {
        return outcome;
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let settings = Settings::from_env()?;
    support::check_open_files(settings.clients + 200, "BROKKR_WRITES_CLIENTS")?;
    let backends = Backend::from_env("BROKKR_WRITES_BACKENDS");
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(&settings, &backends))
}

struct Settings {
    clients: usize,
    measured: Duration,
    onboard_agents: usize,
    reach: Reach,
    /// `BROKKR_WRITES_ONLY=creates|onboarding|webhooks` runs one measurement (default:
    /// all).
    only: Option<String>,
}

impl Settings {
    fn from_env() -> Result<Self> {
        let only = std::env::var("BROKKR_WRITES_ONLY").ok();
        if let Some(only) = &only
            && !MEASUREMENTS.contains(&only.as_str())
        {
            return Err(
                format!("BROKKR_WRITES_ONLY={only}: expected one of {MEASUREMENTS:?}").into(),
            );
        }
        let reach = match std::env::var("BROKKR_ONBOARD_VIA").as_deref() {
            Ok("assign") => Reach::Assign,
            _ => Reach::Placement,
        };
        Ok(Self {
            clients: support::env_usize("BROKKR_WRITES_CLIENTS", 200).max(1),
            measured: Duration::from_secs(support::env_usize("BROKKR_WRITES_SECONDS", 20) as u64),
            onboard_agents: support::env_usize("BROKKR_ONBOARD_AGENTS", 50).max(1),
            reach,
            only,
        })
    }

    fn runs(&self, measurement: &str) -> bool {
        self.only.as_deref().is_none_or(|only| only == measurement)
    }
}

async fn run(settings: &Settings, backends: &[Backend]) -> Result {
    for &backend in backends {
        if settings.runs("creates") {
            let one = creates(backend, 1, settings, None).await?;
            if backend == Backend::Postgres
                && let Some(one) = one
                && let Some(two) = creates(backend, 2, settings, None).await?
            {
                println!("PostgreSQL, two replicas against one (same run):");
                budget(
                    "created/s, 2 vs 1 replica",
                    format!("{} vs {}", thousands(two), thousands(one)),
                    "2 replicas > 1",
                    two > one,
                );
            }
        }
        if settings.runs("onboarding") {
            onboarding::onboarding(backend, settings).await?;
        }
        if settings.runs("webhooks") {
            webhooks::webhooks(backend, settings).await?;
        }
    }
    Ok(())
}

/// Starts `replicas` servers on `url` (already migrated, with an admin key), with
/// more configuration variables.
async fn start_servers(url: &str, replicas: usize, vars: &[(&str, &str)]) -> Result<Vec<Child>> {
    let mut servers = Vec::new();
    for _ in 0..replicas {
        let server = Child::spawn_server_with(url, vars)?;
        server.wait_ready("/readyz").await?;
        servers.push(server);
    }
    Ok(servers)
}

/// Prints each server's RSS, then stops it.
async fn stop_servers(servers: Vec<Child>) -> Result {
    for (i, server) in servers.into_iter().enumerate() {
        if let Some(rss) = server.rss() {
            figure(&format!("server {} RSS", i + 1), rss);
        }
        server.stop().await?;
    }
    Ok(())
}

/// Migrates the database and issues the admin key, with the store, before any server.
async fn prepare(url: &str) -> Result<Arc<str>> {
    let store = support::open_store(url).await?;
    Ok(support::admin_key(&store).await?.into())
}

async fn expect_json<T: serde::de::DeserializeOwned>(
    outcome: reqwest::Result<reqwest::Response>,
) -> std::result::Result<T, String> {
    match outcome {
        Ok(resp) if resp.status().is_success() => {
            resp.json().await.map_err(|_| "unreadable 2xx body".into())
        }
        failed => Err(support::error_kind(&failed)),
    }
}

#[derive(Deserialize)]
struct Created {
    id: Uuid,
}

// ---------------------------------------------------------------------------------------
// Creates

/// A deployment object as a client appends it, about 300 bytes; `n` makes each one
/// differ, as successive versions do.
fn object_yaml(i: usize, n: usize) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: writes-{i}\n  namespace: tenant-{i}\n  \
         labels:\n    app.kubernetes.io/name: writes\n    app.kubernetes.io/managed-by: brokkr\n\
         data:\n  revision: \"{n}\"\n  settings.yaml: |\n    log_level: info\n    replicas: 3\n    \
         features: [audit, metrics, tracing]\n"
    )
}

/// An acknowledged deployment object, as the answer to its POST named it.
#[derive(Debug, Clone, Copy, Deserialize)]
struct Acked {
    id: Uuid,
    sequence_id: i64,
}

/// What one appending client saw.
struct AppendRun {
    stack: Uuid,
    /// 2xx answers, warm-up included: what the stack must hold after.
    answered: usize,
    /// The acknowledged objects in the order of their answers.
    acked: Vec<Acked>,
    /// Counted requests only.
    samples: Samples,
    warm_up_errors: usize,
}

/// One measurement of creates on a fresh database, with `hook` subscribed to every new
/// deployment object when given; the created/s, or `None` when the backend is
/// unavailable.
async fn creates(
    backend: Backend,
    replicas: usize,
    settings: &Settings,
    hook: Option<&webhooks::Receiver>,
) -> Result<Option<f64>> {
    let Some(db) = ScratchDatabase::create(backend).await? else {
        return Ok(None);
    };
    let outcome = measure_creates(&db.url, backend, replicas, settings, hook).await;
    db.remove().await?;
    outcome.map(Some)
}

async fn measure_creates(
    url: &str,
    backend: Backend,
    replicas: usize,
    settings: &Settings,
    hook: Option<&webhooks::Receiver>,
) -> Result<f64> {
    let admin = prepare(url).await?;
    let vars = hook
        .map(webhooks::Receiver::server_vars)
        .unwrap_or_default();
    let vars: Vec<(&str, &str)> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let servers = start_servers(url, replicas, &vars).await?;
    let bases: Vec<String> = servers.iter().map(|s| s.base.clone()).collect();
    let stacks = create_stacks(&bases[0], &admin, settings.clients).await?;
    if let Some(hook) = hook {
        hook.subscribe(&bases[0], &admin).await?;
    }
    let replicas_named = match (replicas, hook.is_some()) {
        (1, false) => "one replica",
        (1, true) => "one replica, one webhook subscription",
        _ => "two replicas",
    };
    println!(
        "{backend}, {replicas_named}: creates by {} clients over {} stacks, {} s after a {} s warm-up",
        settings.clients,
        stacks.len(),
        settings.measured.as_secs(),
        WARM_UP.as_secs()
    );

    let window = Window::starting_now(WARM_UP, settings.measured);
    let pids = servers.iter().map(Child::pid).collect();
    let watch = machine::Watch::start(url, backend, pids, window).await;
    let tasks: Vec<_> = stacks
        .iter()
        .enumerate()
        .map(|(i, &stack)| {
            // Half the clients on each replica when there are two.
            let base = bases[i % bases.len()].clone();
            tokio::spawn(append_loop(base, admin.clone(), i, stack, window))
        })
        .collect();
    let mut runs = Vec::with_capacity(tasks.len());
    for task in tasks {
        runs.push(task.await?);
    }
    let seconds = window.counted_seconds();
    let window_end = Instant::now();
    let rate = report_creates(backend, replicas, &mut runs, seconds);
    watch.report(seconds).await;
    verify_objects(&bases[0], &admin, &runs).await?;
    if let Some(hook) = hook {
        let acknowledged = runs.iter().map(|run| run.answered).sum();
        hook.report(acknowledged, window_end).await;
    }
    stop_servers(servers).await?;
    Ok(rate)
}

/// Creates `count` stacks through the API, as an admin would.
async fn create_stacks(base: &str, admin: &str, count: usize) -> Result<Vec<Uuid>> {
    let client = support::client()?;
    let auth = format!("Bearer {admin}");
    let created: Vec<std::result::Result<Created, String>> = futures::stream::iter(0..count)
        .map(|i| {
            let request = client
                .post(format!("{base}/api/v1/stacks"))
                .header(AUTHORIZATION, &auth)
                .json(&json!({"name": format!("writes-{i}")}));
            async move { expect_json(request.send().await).await }
        })
        .buffered(SETUP_CONCURRENCY)
        .collect()
        .await;
    created
        .into_iter()
        .map(|c| {
            c.map(|c| c.id)
                .map_err(|kind| format!("creating a stack: {kind}").into())
        })
        .collect()
}

/// Client `i`: appends to `stack` until the window closes.
async fn append_loop(
    base: String,
    admin: Arc<str>,
    i: usize,
    stack: Uuid,
    window: Window,
) -> AppendRun {
    let mut run = AppendRun {
        stack,
        answered: 0,
        acked: Vec::new(),
        samples: Samples::default(),
        warm_up_errors: 0,
    };
    let Ok(client) = support::client() else {
        run.samples.fail("client");
        return run;
    };
    let url = format!("{base}/api/v1/stacks/{stack}/deployment-objects");
    let auth = format!("Bearer {admin}");
    for n in 0..MAX_REQUESTS_PER_CLIENT {
        let started = Instant::now();
        if started >= window.until {
            break;
        }
        let outcome = client
            .post(&url)
            .header(AUTHORIZATION, &auth)
            .json(&json!({"yaml_content": object_yaml(i, n)}))
            .send()
            .await;
        let counted = window.counts(started);
        if matches!(&outcome, Ok(resp) if resp.status().is_success()) {
            run.answered += 1;
        }
        match (expect_json::<Acked>(outcome).await, counted) {
            (Ok(acked), true) => {
                run.acked.push(acked);
                run.samples.ok(started);
            }
            (Ok(acked), false) => run.acked.push(acked),
            (Err(kind), true) => run.samples.fail(kind),
            (Err(_), false) => run.warm_up_errors += 1,
        }
    }
    run
}

fn report_creates(backend: Backend, replicas: usize, runs: &mut [AppendRun], seconds: f64) -> f64 {
    let mut all = Samples::default();
    let mut warm_up_errors = 0;
    for run in runs.iter_mut() {
        all.merge(std::mem::take(&mut run.samples));
        warm_up_errors += run.warm_up_errors;
    }
    let summary = all.summary();
    let rate = summary.count as f64 / seconds;
    let (rate_budget, rate_floor) = match backend {
        Backend::Postgres => ("≥ 4,000/s (PostgreSQL)", 4_000.0),
        Backend::Sqlite => ("≥ 2,000/s (SQLite)", 2_000.0),
    };
    let label = if replicas == 1 {
        "created/s".to_owned()
    } else {
        format!("created/s, {replicas} replicas")
    };
    budget(&label, thousands(rate), rate_budget, rate >= rate_floor);
    if backend == Backend::Postgres {
        budget(
            "p99",
            format!("{:.1} ms", summary.p99_ms),
            "< 150 ms (PostgreSQL)",
            summary.p99_ms < 150.0,
        );
    } else {
        figure("p99", format!("{:.1} ms", summary.p99_ms));
    }
    figure(
        "p50 / max",
        format!("{:.1} ms / {:.1} ms", summary.p50_ms, summary.max_ms),
    );
    figure(
        "answered",
        format!(
            "{} created in {seconds:.1} s",
            thousands(summary.count as f64)
        ),
    );
    errors("errors", &all.errors);
    if warm_up_errors > 0 {
        figure("warm-up errors", warm_up_errors);
    }
    rate
}

/// Lists every stack and compares it with what its client was told.
async fn verify_objects(base: &str, admin: &str, runs: &[AppendRun]) -> Result {
    let client = support::client()?;
    let listed: Vec<Result<Vec<Acked>>> = futures::stream::iter(runs)
        .map(|run| list_objects(&client, base, admin, run.stack))
        .buffered(SETUP_CONCURRENCY)
        .collect()
        .await;
    let (mut stored, mut answered, mut lost, mut unacknowledged, mut disordered) = (0, 0, 0, 0, 0);
    for (run, listed) in runs.iter().zip(listed) {
        let listed = listed?;
        let ids: HashSet<Uuid> = listed.iter().map(|o| o.id).collect();
        stored += listed.len();
        answered += run.answered;
        // By id where the answer could be read, by count for the rest.
        let missing = run.acked.iter().filter(|a| !ids.contains(&a.id)).count();
        lost += missing.max(run.answered.saturating_sub(listed.len()));
        unacknowledged += listed.len().saturating_sub(run.answered);
        let increasing = |seq: &[i64]| seq.windows(2).all(|w| w[0] < w[1]);
        let acked: Vec<i64> = run.acked.iter().map(|a| a.sequence_id).collect();
        let listed: Vec<i64> = listed.iter().map(|o| o.sequence_id).collect();
        if !increasing(&acked) || !increasing(&listed) {
            disordered += 1;
        }
    }
    budget("acknowledged, then lost", lost, "0", lost == 0);
    figure(
        "stored / 2xx answers",
        format!(
            "{} / {} over {} stacks ({unacknowledged} stored without a 2xx: timed out)",
            thousands(stored as f64),
            thousands(answered as f64),
            runs.len()
        ),
    );
    budget(
        "stacks out of order",
        disordered,
        "0 (strictly increasing)",
        disordered == 0,
    );
    Ok(())
}

#[derive(Deserialize)]
struct Listing<T> {
    items: Vec<T>,
    next_cursor: Option<String>,
}

/// Every deployment object of `stack`, in the API's order (by sequence).
async fn list_objects(
    client: &reqwest::Client,
    base: &str,
    admin: &str,
    stack: Uuid,
) -> Result<Vec<Acked>> {
    let url = format!("{base}/api/v1/stacks/{stack}/deployment-objects");
    list_all(client, &url, admin).await
}

/// Follows `next_cursor` through a listing, 1,000 rows a page, at most 10,000 pages.
async fn list_all<T: serde::de::DeserializeOwned>(
    client: &reqwest::Client,
    url: &str,
    key: &str,
) -> Result<Vec<T>> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10_000 {
        let page_url = match &cursor {
            Some(cursor) => format!("{url}?limit=1000&cursor={}", percent_encoded(cursor)),
            None => format!("{url}?limit=1000"),
        };
        let request = client
            .get(page_url)
            .header(AUTHORIZATION, format!("Bearer {key}"));
        let page: Listing<T> = expect_json(request.send().await)
            .await
            .map_err(|kind| format!("listing {url}: {kind}"))?;
        items.extend(page.items);
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(items),
        }
    }
    Err(format!("listing {url}: more than 10,000 pages").into())
}

/// `text` fit for a query string: every byte but the unreserved ones as `%XX`.
fn percent_encoded(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
