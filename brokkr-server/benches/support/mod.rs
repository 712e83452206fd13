//! What the server benches share: the server (or a minimal poem endpoint) as a child
//! process of the bench, scratch databases, RSS from `/proc`, latency figures and the
//! budget lines they are printed on.
//!
//! A bench binary plays two parts. Run by `cargo bench` it is the load generator; it
//! starts copies of itself ([`Child::spawn_server`], [`Child::spawn_minimal`]) with
//! `BROKKR_BENCH_ROLE` set, and each `main` first hands those to [`run_child_role`].
//! The server thus has a process of its own, so its RSS is its alone, and it runs
//! through the library's real serve path (`Server::bind`, then `run`). A child stops
//! when its stdin closes: when the bench stops it, and also when the bench dies, so no
//! server outlives its bench.

// Each bench uses its own part of this module.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brokkr_core::{GeneratorRegistry, Store};
use brokkr_server::config::Config;
use brokkr_server::serve::Server;
use brokkr_store::SqlStore;
use poem::http::{StatusCode, header};
use poem::listener::{Acceptor, Listener, TcpListener};
use poem::web::{Data, Json};
use poem::{EndpointExt, Request, Response, Route, get, handler, post};

#[path = "../../tests/common/pg_database.rs"]
mod pg_database;

use pg_database::PgDatabase;

pub type Result<T = (), E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

/// Every request the load generators send gives up after this long.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

const ROLE: &str = "BROKKR_BENCH_ROLE";
const DATABASE_URL: &str = "BROKKR_BENCH_DATABASE_URL";
const ADDR_FILE: &str = "BROKKR_BENCH_ADDR_FILE";
const BODY_BYTES: &str = "BROKKR_BENCH_BODY_BYTES";

/// How long a child may take to bind (PostgreSQL migrations included) and to stop.
const START_TIMEOUT: Duration = Duration::from_secs(60);
const STOP_TIMEOUT: Duration = Duration::from_secs(15);

pub fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

// ---------------------------------------------------------------------------------------
// Backends and scratch databases

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backends named in `var` (`sqlite,postgres` when unset), in that order.
    pub fn from_env(var: &str) -> Vec<Backend> {
        let named = std::env::var(var).unwrap_or_else(|_| "sqlite,postgres".into());
        [Backend::Sqlite, Backend::Postgres]
            .into_iter()
            .filter(|b| named.contains(b.key()))
            .collect()
    }

    fn key(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

impl fmt::Display for Backend {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        })
    }
}

/// An empty database for one measurement: a SQLite file in a temporary directory, or a
/// PostgreSQL database with a unique name, made and dropped as the tests' are
/// ([`PgDatabase`]). [`ScratchDatabase::remove`] deletes it.
pub struct ScratchDatabase {
    pub url: String,
    place: Place,
}

enum Place {
    Sqlite(tempfile::TempDir),
    Postgres(PgDatabase),
}

impl ScratchDatabase {
    /// `None` (with a notice) when PostgreSQL is unreachable.
    pub async fn create(backend: Backend) -> Result<Option<Self>> {
        match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir()?;
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("bench.db").display()
                );
                Ok(Some(Self {
                    url,
                    place: Place::Sqlite(dir),
                }))
            }
            Backend::Postgres => Ok(PgDatabase::create().await.map(|database| Self {
                url: database.url.clone(),
                place: Place::Postgres(database),
            })),
        }
    }

    /// Deletes the database, even with connections still open to it. A scratch
    /// database dropped without this (a bench that failed) is deleted by
    /// [`PgDatabase`]'s own `Drop`.
    pub async fn remove(self) -> Result {
        if let Place::Postgres(database) = self.place {
            database.drop_database().await;
        }
        Ok(())
    }
}

/// Opens the store at `url` (running the migrations) the way the server does, as the
/// seeding side of a bench.
pub async fn open_store(url: &str) -> Result<SqlStore> {
    let database = brokkr_server::config::DatabaseSection {
        url: url.to_owned(),
        ..Default::default()
    };
    Ok(brokkr_server::serve::open_store(&database).await?)
}

/// Issues the admin key, as the server's first start does, before any server starts:
/// servers then find an active key and create none.
pub async fn admin_key(store: &dyn Store) -> Result<String> {
    let admin = brokkr_server::serve::ensure_admin_key(store)
        .await?
        .ok_or("the scratch database already had an admin key")?;
    Ok(admin.expose().to_owned())
}

// ---------------------------------------------------------------------------------------
// Child processes

/// A copy of the bench binary serving on 127.0.0.1. Dropping it kills the process;
/// [`Child::stop`] lets it shut down gracefully first.
pub struct Child {
    process: std::process::Child,
    /// `http://127.0.0.1:port`
    pub base: String,
    // Holds the address file until the child is gone.
    _dir: tempfile::TempDir,
}

impl Child {
    /// The Brokkr server over the database at `url`.
    pub fn spawn_server(url: &str) -> Result<Self> {
        Self::spawn_server_with(url, &[])
    }

    /// The Brokkr server over the database at `url`, with more `BROKKR__*`
    /// configuration variables.
    pub fn spawn_server_with(url: &str, vars: &[(&str, &str)]) -> Result<Self> {
        let mut all = vec![(DATABASE_URL, url)];
        all.extend_from_slice(vars);
        Self::spawn("server", &all)
    }

    /// A plain poem endpoint answering target state with a body of `body_bytes`.
    pub fn spawn_minimal(body_bytes: usize) -> Result<Self> {
        Self::spawn("minimal", &[(BODY_BYTES, &body_bytes.to_string())])
    }

    fn spawn(role: &str, vars: &[(&str, &str)]) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let addr_file = dir.path().join("addr");
        let mut command = Command::new(std::env::current_exe()?);
        command
            .env(ROLE, role)
            .env(ADDR_FILE, &addr_file)
            .stdin(Stdio::piped())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit());
        for (name, value) in vars {
            command.env(name, value);
        }
        let mut child = Self {
            process: command.spawn()?,
            base: String::new(),
            _dir: dir,
        };
        let addr = child.wait_for_addr(&addr_file)?;
        child.base = format!("http://{addr}");
        Ok(child)
    }

    /// Blocks until the child wrote its address, failing fast if it exits first.
    fn wait_for_addr(&mut self, file: &Path) -> Result<SocketAddr> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(addr) = std::fs::read_to_string(file)
                .ok()
                .and_then(|text| text.trim().parse().ok())
            {
                return Ok(addr);
            }
            if let Some(status) = self.process.try_wait()? {
                return Err(format!("the child exited before serving: {status}").into());
            }
            if Instant::now() > deadline {
                return Err(format!("the child did not bind within {START_TIMEOUT:?}").into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `path` answers 200 (`/readyz`: the server reaches its database).
    pub async fn wait_ready(&self, path: &str) -> Result {
        let probe = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .build()?;
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = format!("{}{path}", self.base);
        loop {
            match probe.get(&url).send().await {
                Ok(resp) if resp.status().is_success() => return Ok(()),
                _ if Instant::now() > deadline => {
                    return Err(format!("{url} did not answer 200 within 30 s").into());
                }
                _ => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.process.id()
    }

    /// The child's memory now (`VmRSS`) and at its peak (`VmHWM`).
    pub fn rss(&self) -> Option<Rss> {
        Rss::of_pid(self.pid())
    }

    /// Closes the child's stdin (its shutdown signal) and waits for it to exit; kills
    /// it if it takes longer than 15 s.
    pub async fn stop(mut self) -> Result<ExitStatus> {
        drop(self.process.stdin.take());
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            if let Some(status) = self.process.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                self.process.kill()?;
                return Err(format!("the child did not stop within {STOP_TIMEOUT:?}").into());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // After `stop` this finds the child gone already; otherwise (an error, a
        // panic) the child must not outlive the bench.
        if let Ok(None) = self.process.try_wait() {
            let _ = self.process.kill();
            let _ = self.process.wait();
        }
    }
}

/// Plays the part `BROKKR_BENCH_ROLE` names, if it is set: `Some` with the outcome in
/// a child, `None` in the bench itself.
pub fn run_child_role() -> Option<Result> {
    let role = std::env::var(ROLE).ok()?;
    let outcome = play(&role);
    if let Err(err) = &outcome {
        eprintln!("bench child ({role}): {err}");
    }
    Some(outcome)
}

fn play(role: &str) -> Result {
    let addr_file = PathBuf::from(std::env::var(ADDR_FILE)?);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match role {
        "server" => runtime.block_on(serve_brokkr(&addr_file)),
        "minimal" => runtime.block_on(serve_minimal(&addr_file)),
        other => Err(format!("unknown {ROLE} {other:?}").into()),
    }
}

/// Completes when stdin closes: the parent stopped this child, or died.
async fn stdin_closed() {
    let (closed, on_close) = tokio::sync::oneshot::channel::<()>();
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while matches!(std::io::stdin().read(&mut buf), Ok(n) if n > 0) {}
        let _ = closed.send(());
    });
    let _ = on_close.await;
}

/// Writes the bound address where the parent waits for it, atomically.
fn publish_addr(file: &Path, addr: SocketAddr) -> Result {
    let partial = file.with_extension("partial");
    std::fs::write(&partial, addr.to_string())?;
    std::fs::rename(partial, file)?;
    Ok(())
}

/// The Brokkr server as `brokkr-server serve` runs it: the configuration from
/// `BROKKR__*` variables (so a bench run can tune the server), with the bench's
/// database and a free port on 127.0.0.1.
async fn serve_brokkr(addr_file: &Path) -> Result {
    let mut config = Config::load(None)?;
    config.database.url = std::env::var(DATABASE_URL)?;
    config.server.listen = "127.0.0.1:0".into();
    config.server.shutdown_grace_secs = 5;
    if std::env::var_os("BROKKR__LOG__FILTER").is_none() {
        config.log.filter = "warn".into();
    }
    brokkr_server::cli::init_logging(&config.log);
    let server = Server::bind(config, GeneratorRegistry::default()).await?;
    publish_addr(addr_file, server.local_addr())?;
    server.run(stdin_closed()).await?;
    Ok(())
}

/// The floor to compare target state against: a plain poem server with a fixed body
/// and the same ETag rule, and no key, store, cache or middleware.
struct Minimal {
    body: Vec<u8>,
    etag: String,
}

#[handler]
fn minimal_target_state(req: &Request, minimal: Data<&Arc<Minimal>>) -> Response {
    let known = req
        .headers()
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok());
    if known == Some(minimal.etag.as_str()) {
        return Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .header(header::ETAG, minimal.etag.as_str())
            .finish();
    }
    Response::builder()
        .header(header::CONTENT_TYPE, "application/json; charset=utf-8")
        .header(header::ETAG, minimal.etag.as_str())
        .body(minimal.body.clone())
}

#[handler]
fn minimal_heartbeat(_body: Json<serde_json::Value>) -> StatusCode {
    StatusCode::NO_CONTENT
}

#[handler]
fn minimal_health() -> &'static str {
    "{\"status\":\"ok\"}"
}

async fn serve_minimal(addr_file: &Path) -> Result {
    let bytes: usize = std::env::var(BODY_BYTES)?.parse()?;
    let minimal = Arc::new(Minimal {
        body: json_of_size(bytes),
        etag: format!("\"{}\"", "0".repeat(64)),
    });
    let app = Route::new()
        .at("/healthz", get(minimal_health))
        .at("/api/v1/agents/:id/target-state", get(minimal_target_state))
        .at("/api/v1/agents/:id/heartbeat", post(minimal_heartbeat))
        .data(minimal);
    let acceptor = TcpListener::bind("127.0.0.1:0").into_acceptor().await?;
    let addr = acceptor
        .local_addr()
        .first()
        .and_then(|addr| addr.as_socket_addr().copied())
        .ok_or("the listener has no socket address")?;
    publish_addr(addr_file, addr)?;
    poem::Server::new_with_acceptor(acceptor)
        .run_with_graceful_shutdown(app, stdin_closed(), Some(Duration::from_secs(5)))
        .await?;
    Ok(())
}

/// A JSON object of exactly `bytes` bytes (at least 10).
fn json_of_size(bytes: usize) -> Vec<u8> {
    let pad = bytes.saturating_sub(10).max(1);
    format!("{{\"pad\":\"{}\"}}", "x".repeat(pad)).into_bytes()
}

// ---------------------------------------------------------------------------------------
// Figures

/// A process's resident memory, in KiB.
#[derive(Debug, Clone, Copy)]
pub struct Rss {
    pub now_kib: u64,
    pub peak_kib: u64,
}

impl Rss {
    /// Of process `pid`, from `/proc/<pid>/status`.
    pub fn of_pid(pid: u32) -> Option<Rss> {
        Self::of_status(&format!("/proc/{pid}/status"))
    }

    /// Of this process.
    pub fn of_self() -> Option<Rss> {
        Self::of_status("/proc/self/status")
    }

    fn of_status(file: &str) -> Option<Rss> {
        let status = std::fs::read_to_string(file).ok()?;
        let field = |name: &str| -> Option<u64> {
            let line = status.lines().find(|l| l.starts_with(name))?;
            line[name.len()..].split_whitespace().next()?.parse().ok()
        };
        Some(Rss {
            now_kib: field("VmRSS:")?,
            peak_kib: field("VmHWM:")?,
        })
    }

    pub fn peak_mib(&self) -> f64 {
        self.peak_kib as f64 / 1024.0
    }
}

impl fmt::Display for Rss {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "VmHWM {:.1} MiB, VmRSS {:.1} MiB",
            self.peak_mib(),
            self.now_kib as f64 / 1024.0
        )
    }
}

/// Latencies of the requests that succeeded and the failures, by kind.
#[derive(Debug, Default)]
pub struct Samples {
    micros: Vec<u32>,
    pub errors: BTreeMap<String, usize>,
}

impl Samples {
    pub fn ok(&mut self, started: Instant) {
        let micros = u32::try_from(started.elapsed().as_micros()).unwrap_or(u32::MAX);
        self.micros.push(micros);
    }

    pub fn fail(&mut self, kind: impl Into<String>) {
        *self.errors.entry(kind.into()).or_default() += 1;
    }

    /// Counts a request that failed: by HTTP status, or `timeout`/`connect`/`other`.
    pub fn fail_outcome(&mut self, outcome: &reqwest::Result<reqwest::Response>) {
        self.fail(error_kind(outcome));
    }

    pub fn merge(&mut self, other: Samples) {
        self.micros.extend(other.micros);
        for (kind, count) in other.errors {
            *self.errors.entry(kind).or_default() += count;
        }
    }

    pub fn count(&self) -> usize {
        self.micros.len()
    }

    pub fn error_count(&self) -> usize {
        self.errors.values().sum()
    }

    /// Sorts the latencies and returns the percentiles.
    pub fn summary(&mut self) -> Summary {
        self.micros.sort_unstable();
        let at = |p: f64| -> f64 {
            if self.micros.is_empty() {
                return 0.0;
            }
            let i = ((self.micros.len() as f64 - 1.0) * p).round() as usize;
            f64::from(self.micros[i]) / 1000.0
        };
        Summary {
            count: self.micros.len(),
            p50_ms: at(0.50),
            p99_ms: at(0.99),
            max_ms: at(1.0),
        }
    }
}

pub fn error_kind(outcome: &reqwest::Result<reqwest::Response>) -> String {
    match outcome {
        Ok(resp) => format!("HTTP {}", resp.status().as_u16()),
        Err(err) if err.is_timeout() => "timeout".to_owned(),
        Err(err) if err.is_connect() => "connect".to_owned(),
        Err(_) => "other".to_owned(),
    }
}

#[derive(Debug, Clone, Copy)]
pub struct Summary {
    pub count: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms",
            self.p50_ms, self.p99_ms, self.max_ms
        )
    }
}

/// Prints one figure with its budget and whether it is met.
pub fn budget(label: &str, figure: impl fmt::Display, budget: &str, met: bool) {
    let verdict = if met { "ok" } else { "MISSED" };
    println!(
        "  {label:<26} {:>18}   budget {budget:<22} {verdict}",
        figure.to_string()
    );
}

/// Prints one figure that has no budget of its own.
pub fn figure(label: &str, figure: impl fmt::Display) {
    println!("  {label:<26} {figure}");
}

/// Prints the errors by kind, or that there were none.
pub fn errors(label: &str, errors: &BTreeMap<String, usize>) {
    if errors.is_empty() {
        figure(label, "none");
    } else {
        figure(label, format!("{errors:?}"));
    }
}

/// A whole number with thousands separators: 12,345.
pub fn thousands(n: f64) -> String {
    let digits = format!("{:.0}", n.max(0.0));
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
}

// ---------------------------------------------------------------------------------------
// Clients

/// An HTTP client holding one connection, as one agent or one tenant's process would.
pub fn client() -> Result<reqwest::Client> {
    Ok(reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .pool_max_idle_per_host(1)
        // Plain HTTP only: without this every client would load the system's root
        // certificates, milliseconds of CPU each, taken from the server's two cores.
        .tls_certs_only([])
        .build()?)
}

/// When counting starts (after a warm-up) and when clients stop starting requests.
#[derive(Debug, Clone, Copy)]
pub struct Window {
    pub counted_from: Instant,
    pub until: Instant,
}

impl Window {
    pub fn starting_now(warm_up: Duration, measured: Duration) -> Self {
        let counted_from = Instant::now() + warm_up;
        Self {
            counted_from,
            until: counted_from + measured,
        }
    }

    /// Whether a request started at `started` counts.
    pub fn counts(&self, started: Instant) -> bool {
        started >= self.counted_from
    }

    /// Seconds from the end of the warm-up until now.
    pub fn counted_seconds(&self) -> f64 {
        self.counted_from.elapsed().as_secs_f64()
    }
}

/// The soft limit of open files, from `/proc/self/limits`.
pub fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Fails early, with advice, when `needed` descriptors exceed the limit.
pub fn check_open_files(needed: usize, lower: &str) -> Result {
    match open_files_limit() {
        Some(limit) if limit < needed => Err(format!(
            "this run needs about {needed} open files, the limit is {limit}: raise it \
             (ulimit -n) or lower {lower}"
        )
        .into()),
        _ => Ok(()),
    }
}
