//! Progressive rollouts at scale (ROLLOUTS.md section 13), with the server in a process
//! of its own as in the fleet bench, so that its memory is measured alone, and a
//! simulated fleet of real agent loops over `MemoryApplier`s on real HTTP long polls.
//! Each figure is printed beside its budget.
//!
//! For each backend of `BROKKR_ROLLOUT_BACKENDS` (default `sqlite,postgres`), on a fresh
//! database each time:
//!
//! 1. **Release** (`release.rs`): `BROKKR_ROLLOUT_AGENTS` agents (default 10,000)
//!    started at `BROKKR_ROLLOUT_RAMP` a second (200), one stack on all of them, a
//!    policy of `BROKKR_ROLLOUT_WAVES` waves (5; a split of every agent), no bake. Each
//!    of `BROKKR_ROLLOUT_ROUNDS` rounds (1) appends a new version and measures: the
//!    time from the append to the rollout's `finished_at`; per wave, each agent's
//!    `pinned_at` to its simulated cluster's apply of the candidate (budget p99 < 1 s);
//!    on PostgreSQL the rows the driver wrote per transition (budget <= 3, see
//!    `release.rs`); and `BROKKR_ROLLOUT_SIDE_WORKERS` (8) loops of target-state reads
//!    with the agents' own keys, for `BROKKR_ROLLOUT_SIDE_SECS` (5) without a rollout
//!    and then during it.
//! 2. **Revert** (`revert.rs`): the agents of the second wave refuse the next
//!    candidate; from the breach to no pin left, and to 99% of the agents that had the
//!    candidate back on the baseline.
//! 3. **Many** (`many.rs`), on a second database and server: `BROKKR_ROLLOUT_MANY_STACKS`
//!    (100) rollouts at once over `BROKKR_ROLLOUT_MANY_AGENTS` (1,000) agents:
//!    transitions per second and the server's peak memory.
//! 4. **Restart** (`restart.rs`), on the same: `BROKKR_ROLLOUT_RESTART_ROLLOUTS` (1,000)
//!    rollouts baking for `BROKKR_ROLLOUT_RESTART_BAKE_SECS` (30), the server killed
//!    and started again: the time to its first step.
//!
//! `BROKKR_ROLLOUT_PARTS` (default `release,revert,many,restart`) picks parts.
//!
//! ```text
//! cargo bench -p brokkr-agent --bench rollouts
//! BROKKR_ROLLOUT_AGENTS=1000 BROKKR_ROLLOUT_RESTART_ROLLOUTS=200 BROKKR_ROLLOUT_BACKENDS=sqlite \
//!   cargo bench -p brokkr-agent --bench rollouts
//! ```
//!
//! Both processes share the machine's cores, so the times bound the server's from
//! above. Each process needs an open-files limit of about 1.25 × agents + 256. PostgreSQL
//! comes from `BROKKR_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); scratch databases are created and
//! dropped as the tests' are, and the backend is skipped with a notice when that fails.
//! Every wait is bounded.

mod admin;
mod db;
mod fleet;
mod many;
#[path = "../../../brokkr-server/tests/common/pg_database.rs"]
mod pg_database;
mod release;
mod restart;
mod revert;
#[path = "../common/scratch.rs"]
mod scratch;
#[path = "../common/server.rs"]
mod server;
mod sideload;
mod stats;

use std::time::Duration;

use brokkr_agent::simulate;

use admin::Admin;
use db::Db;
use fleet::Fleet;
use scratch::Scratch;
use server::ServerProcess;

type Result<T = (), E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

/// The server's log filter: `BROKKR_ROLLOUT_SERVER_LOG`, `error` when unset.
fn server_log() -> String {
    server::log_filter("BROKKR_ROLLOUT_SERVER_LOG")
}

/// The bench's knobs.
pub struct Settings {
    agents: usize,
    ramp: u32,
    waves: usize,
    rounds: usize,
    side_workers: usize,
    side_load: Duration,
    many_agents: usize,
    many_stacks: usize,
    restart_rollouts: usize,
    restart_bake: Duration,
    parts: Vec<String>,
}

impl Settings {
    fn from_env() -> Self {
        let parts = std::env::var("BROKKR_ROLLOUT_PARTS")
            .unwrap_or_else(|_| "release,revert,many,restart".into());
        Self {
            agents: env_usize("BROKKR_ROLLOUT_AGENTS", 10_000).max(1),
            ramp: u32::try_from(env_usize("BROKKR_ROLLOUT_RAMP", 200)).unwrap_or(200),
            waves: env_usize("BROKKR_ROLLOUT_WAVES", 5).clamp(1, 100),
            rounds: env_usize("BROKKR_ROLLOUT_ROUNDS", 1).max(1),
            side_workers: env_usize("BROKKR_ROLLOUT_SIDE_WORKERS", 8).max(1),
            side_load: Duration::from_secs(env_usize("BROKKR_ROLLOUT_SIDE_SECS", 5) as u64),
            many_agents: env_usize("BROKKR_ROLLOUT_MANY_AGENTS", 1_000).max(1),
            many_stacks: env_usize("BROKKR_ROLLOUT_MANY_STACKS", 100).max(1),
            restart_rollouts: env_usize("BROKKR_ROLLOUT_RESTART_ROLLOUTS", 1_000).max(1),
            restart_bake: Duration::from_secs(
                env_usize("BROKKR_ROLLOUT_RESTART_BAKE_SECS", 30).max(1) as u64,
            ),
            parts: parts.split(',').map(|p| p.trim().to_owned()).collect(),
        }
    }

    fn part(&self, name: &str) -> bool {
        self.parts.iter().any(|p| p == name)
    }
}

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result {
    if std::env::var(server::ROLE).as_deref() == Ok("server") {
        return server::serve();
    }
    let _ = rustls::crypto::ring::default_provider().install_default();
    let settings = Settings::from_env();
    let largest = settings.agents.max(settings.many_agents);
    let needed = (largest + largest / 4 + 256) as u64;
    if let Some(limit) = simulate::open_files_limit()
        && limit < needed
    {
        return Err(format!(
            "{largest} agents need about {needed} open files per process, the limit is {limit}: \
             raise it (ulimit -n) or lower BROKKR_ROLLOUT_AGENTS"
        )
        .into());
    }
    let backends =
        std::env::var("BROKKR_ROLLOUT_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "rollouts: {} agents, {} waves, {} rounds; {} rollouts over {} agents; restart with {} rollouts; {} cores; {}",
        settings.agents,
        settings.waves,
        settings.rounds,
        settings.many_stacks,
        settings.many_agents,
        settings.restart_rollouts,
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    );
    for backend in backends.split(',').map(str::trim) {
        let (name, max_connections) = match backend {
            "sqlite" => ("SQLite", None),
            "postgres" => ("PostgreSQL", Some(20)),
            "" => continue,
            other => {
                return Err(format!("unknown backend {other:?}: use sqlite or postgres").into());
            }
        };
        if settings.part("release") || settings.part("revert") {
            let Some(database) = Scratch::create(backend, "brokkr_rollouts", &runtime)? else {
                continue;
            };
            println!("{name}, releases and a revert:");
            let server = ServerProcess::spawn(&database.url, max_connections, None, &server_log())?;
            let outcome = runtime.block_on(fleet_part(&server, &database.url, &settings));
            server.stop();
            outcome?;
        }
        if settings.part("many") || settings.part("restart") {
            let Some(database) = Scratch::create(backend, "brokkr_rollouts", &runtime)? else {
                continue;
            };
            println!("{name}, many rollouts and a restart:");
            let server = ServerProcess::spawn(&database.url, max_connections, None, &server_log())?;
            let outcome =
                runtime.block_on(many_part(server, &database.url, max_connections, &settings));
            if let Ok(server) = outcome {
                server.stop();
            } else {
                outcome?;
            }
        }
    }
    Ok(())
}

/// Figures 1 and 2, on one fleet.
async fn fleet_part(server: &ServerProcess, url: &str, settings: &Settings) -> Result {
    println!("  server pid {} at {}", server.pid(), server.url);
    let admin = Admin::new(&server.url, &server.admin);
    let db = Db::connect(url).await?;
    let mut fleet = Fleet::start(&admin, settings.agents, settings.ramp, "fleet").await?;
    let outcome = async {
        let (stack, _) = release::setup(&admin, &mut fleet, settings).await?;
        let mut released = None;
        for round in 1..=settings.rounds {
            released =
                Some(release::round(&admin, &db, &mut fleet, settings, &stack, round).await?);
        }
        if settings.part("revert")
            && let Some(released) = released
        {
            revert::run(&admin, &db, &mut fleet, &released).await?;
        }
        println!("  server: {}", server::memory(&server.stats()));
        Ok(())
    }
    .await;
    fleet.stop().await;
    outcome
}

/// Figures 3 and 4, on one fleet; answers the server running at the end (restarted).
async fn many_part(
    server: ServerProcess,
    url: &str,
    max_connections: Option<u32>,
    settings: &Settings,
) -> Result<ServerProcess> {
    println!("  server pid {} at {}", server.pid(), server.url);
    let admin = Admin::new(&server.url, &server.admin);
    let db = Db::connect(url).await?;
    let mut fleet = Fleet::start(&admin, settings.many_agents, settings.ramp, "many").await?;
    let outcome = many_steps(
        &admin,
        &db,
        server,
        url,
        max_connections,
        &mut fleet,
        settings,
    )
    .await;
    fleet.stop().await;
    outcome
}

async fn many_steps(
    admin: &Admin,
    db: &Db,
    server: ServerProcess,
    url: &str,
    max_connections: Option<u32>,
    fleet: &mut Fleet,
    settings: &Settings,
) -> Result<ServerProcess> {
    if settings.part("many") {
        many::run(admin, db, &server, fleet, settings).await?;
    }
    if settings.part("restart") {
        return restart::run(admin, db, server, url, max_connections, fleet, settings).await;
    }
    Ok(server)
}
