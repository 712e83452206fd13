//! Target-state latency against history.
//!
//! Seeds a store with 10,000 agents, 50,000 stacks with 10 deployment objects each
//! (500,000 objects) and 5 stacks per agent, measures `Store::target_state` for agents
//! with 5 stacks, then adds 1,000,000 agent events (a fifth of them about the measured
//! agents' own stacks) and measures again. The two figures must stay within 20%:
//! target-state cost must not grow with history.
//!
//! ```text
//! cargo bench -p brokkr-store --bench target_state
//! BROKKR_BENCH_BACKENDS=sqlite BROKKR_BENCH_SCALE=0.1 cargo bench -p brokkr-store --bench target_state
//! ```
//!
//! `BROKKR_BENCH_BACKENDS` is `sqlite`, `postgres` or both (default); PostgreSQL comes
//! from `BROKKR_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`),
//! where a scratch database is created and dropped. `BROKKR_BENCH_SCALE` scales every
//! count (default 1.0). Rows are seeded with multi-row INSERTs straight into the schema
//! (going through the `Store` one row at a time would take hours); the measurement
//! goes through `SqlStore::target_state`, the code the server runs.

use std::time::{Duration, Instant};

use brokkr_core::{AgentId, Store};
use brokkr_store::SqlStore;
use chrono::Utc;
use sea_orm::sea_query::{Expr, ExprTrait, Query, SimpleExpr};
use sea_orm::{ConnectionTrait, Database, DatabaseConnection, Value};
use uuid::Uuid;

#[path = "../../brokkr-server/tests/common/pg_database.rs"]
mod pg_database;

use pg_database::PgDatabase;

type Result<T = (), E = Box<dyn std::error::Error + Send + Sync>> = std::result::Result<T, E>;

const VERSIONS_PER_STACK: usize = 10;
const STACKS_PER_AGENT: usize = 5;
/// Rows per multi-row INSERT: well under SQLite's 32,766 bound parameters.
const BATCH: usize = 2_000;
/// Agents whose target state is measured, round-robin.
const MEASURED_AGENTS: usize = 100;
/// Share of events that concern the measured agents' own stacks.
const HOT_EVENT_SHARE: usize = 5;
const WARMUP_CALLS: usize = 1_000;
const MEASURED_CALLS: usize = 5_000;

struct Scale {
    agents: usize,
    events: usize,
}

impl Scale {
    fn from_env() -> Self {
        let factor: f64 = std::env::var("BROKKR_BENCH_SCALE")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1.0);
        Self {
            agents: ((10_000.0 * factor) as usize).max(MEASURED_AGENTS),
            events: (1_000_000.0 * factor) as usize,
        }
    }

    fn stacks(&self) -> usize {
        self.agents * STACKS_PER_AGENT
    }

    fn objects(&self) -> usize {
        self.stacks() * VERSIONS_PER_STACK
    }
}

/// Ids of what was seeded: agent `a` has stacks `a*5..a*5+5`; stack `s` has objects
/// `s*10..s*10+10`, the last being its latest.
struct Seed {
    agents: Vec<Uuid>,
    stacks: Vec<Uuid>,
    objects: Vec<Uuid>,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> Result {
    let scale = Scale::from_env();
    let backends =
        std::env::var("BROKKR_BENCH_BACKENDS").unwrap_or_else(|_| "sqlite,postgres".into());
    println!(
        "target-state benchmark: {} agents, {} stacks x {VERSIONS_PER_STACK} versions = {} deployment objects, \
         {STACKS_PER_AGENT} stacks per agent, then {} agent events",
        scale.agents,
        scale.stacks(),
        scale.objects(),
        scale.events
    );
    for backend in backends.split(',').map(str::trim).filter(|b| !b.is_empty()) {
        match backend {
            "sqlite" => {
                let dir = tempfile::tempdir()?;
                let path = dir.path().join("bench.db");
                run(
                    "sqlite",
                    &format!("sqlite://{}?mode=rwc", path.display()),
                    &scale,
                )
                .await?;
            }
            "postgres" => {
                let Some(database) = PgDatabase::create().await else {
                    continue;
                };
                let result = run("postgres", &database.url, &scale).await;
                database.drop_database().await;
                result?;
            }
            other => {
                return Err(format!("unknown backend {other:?}: use sqlite or postgres").into());
            }
        }
    }
    Ok(())
}

async fn run(label: &str, url: &str, scale: &Scale) -> Result {
    let store = SqlStore::connect(url).await?;
    let db = Database::connect(url).await?;
    if label == "sqlite" {
        // Seeding only: the store's own connections keep their safe settings.
        db.execute_unprepared("PRAGMA synchronous = OFF").await?;
    }

    let started = Instant::now();
    let seed = seed_model(&db, scale).await?;
    db.execute_unprepared("ANALYZE").await?;
    println!("[{label}] seeded the model in {:.1?}", started.elapsed());

    let measured: Vec<AgentId> = seed.agents[..MEASURED_AGENTS]
        .iter()
        .map(|&id| id.into())
        .collect();
    let empty = measure(&store, &measured).await?;
    println!("[{label}] {:>9} events: {empty}", 0);

    let started = Instant::now();
    seed_events(&db, scale, &seed).await?;
    db.execute_unprepared("ANALYZE").await?;
    println!(
        "[{label}] added {} events in {:.1?}",
        scale.events,
        started.elapsed()
    );

    let full = measure(&store, &measured).await?;
    println!("[{label}] {:>9} events: {full}", scale.events);
    let ratio = full.p50.as_secs_f64() / empty.p50.as_secs_f64();
    let verdict = if (0.8..=1.2).contains(&ratio) {
        "within 20%"
    } else {
        "OUTSIDE 20%"
    };
    println!("[{label}] p50 with history / without = {ratio:.2} ({verdict})");
    Ok(())
}

struct Latency {
    p50: Duration,
    p99: Duration,
    mean: Duration,
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let us = |d: Duration| d.as_secs_f64() * 1e6;
        write!(
            f,
            "target_state p50 {:>7.1} µs  p99 {:>7.1} µs  mean {:>7.1} µs  ({:.0} calls/s sequential)",
            us(self.p50),
            us(self.p99),
            us(self.mean),
            1.0 / self.mean.as_secs_f64()
        )
    }
}

async fn measure(store: &SqlStore, agents: &[AgentId]) -> Result<Latency> {
    for i in 0..WARMUP_CALLS {
        fetch(store, agents[i % agents.len()]).await?;
    }
    let mut samples = Vec::with_capacity(MEASURED_CALLS);
    let all = Instant::now();
    for i in 0..MEASURED_CALLS {
        let start = Instant::now();
        fetch(store, agents[i % agents.len()]).await?;
        samples.push(start.elapsed());
    }
    let mean = all.elapsed() / MEASURED_CALLS as u32;
    samples.sort();
    Ok(Latency {
        p50: samples[samples.len() / 2],
        p99: samples[samples.len() * 99 / 100],
        mean,
    })
}

/// One target-state fetch, checked so a broken query cannot look fast.
async fn fetch(store: &SqlStore, agent: AgentId) -> Result {
    let state = store.target_state(agent).await?;
    if state.entries.len() != STACKS_PER_AGENT {
        let found = state.entries.len();
        return Err(
            format!("agent {agent} has {found} entries, expected {STACKS_PER_AGENT}").into(),
        );
    }
    Ok(())
}

/// Inserts rows with multi-row statements of [`BATCH`] rows.
async fn insert_rows(
    db: &DatabaseConnection,
    table: &'static str,
    columns: &[&'static str],
    rows: impl Iterator<Item = Vec<SimpleExpr>>,
) -> Result {
    let mut rows = rows.peekable();
    while rows.peek().is_some() {
        let mut insert = Query::insert();
        insert.into_table(table).columns(columns.iter().copied());
        for row in rows.by_ref().take(BATCH) {
            insert.values(row)?;
        }
        db.execute(&insert).await?;
    }
    Ok(())
}

fn val(value: impl Into<Value>) -> SimpleExpr {
    Expr::val(value)
}

fn empty_map() -> SimpleExpr {
    val(serde_json::json!({}))
}

fn yaml(stack: usize, version: usize) -> String {
    format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: stack-{stack}\n  namespace: bench\n\
         data:\n  version: \"{version}\"\n"
    )
}

async fn seed_model(db: &DatabaseConnection, scale: &Scale) -> Result<Seed> {
    let now = Utc::now();
    let ids = |n: usize| (0..n).map(|_| Uuid::now_v7()).collect::<Vec<_>>();
    let seed = Seed {
        agents: ids(scale.agents),
        stacks: ids(scale.stacks()),
        objects: ids(scale.objects()),
    };

    let columns = [
        "id",
        "name",
        "cluster_name",
        "labels",
        "annotations",
        "status",
        "capabilities",
        "created_at",
        "updated_at",
    ];
    let rows = seed.agents.iter().enumerate().map(|(a, id)| {
        vec![
            val(*id),
            val(format!("agent-{a}")),
            val(format!("cluster-{a}")),
            empty_map(),
            empty_map(),
            val("active"),
            empty_map(),
            val(now),
            val(now),
        ]
    });
    insert_rows(db, "agents", &columns, rows).await?;

    let columns = [
        "id",
        "name",
        "labels",
        "annotations",
        "latest_deployment_object_id",
        "release_deployment_object_id",
        "created_at",
        "updated_at",
    ];
    // No rollout: the release head is the latest version, as an append sets it.
    let rows = seed.stacks.iter().enumerate().map(|(s, id)| {
        let latest = seed.objects[(s + 1) * VERSIONS_PER_STACK - 1];
        vec![
            val(*id),
            val(format!("stack-{s}")),
            empty_map(),
            empty_map(),
            val(latest),
            val(latest),
            val(now),
            val(now),
        ]
    });
    insert_rows(db, "stacks", &columns, rows).await?;

    let columns = [
        "id",
        "stack_id",
        "sequence",
        "yaml_content",
        "yaml_checksum",
        "is_deletion_marker",
        "created_at",
    ];
    let rows = seed.objects.iter().enumerate().map(|(n, id)| {
        let stack = n / VERSIONS_PER_STACK;
        let content = yaml(stack, n % VERSIONS_PER_STACK);
        let checksum = brokkr_core::checksum(&content);
        vec![
            val(*id),
            val(seed.stacks[stack]),
            val(n as i64 + 1),
            val(content),
            val(checksum),
            val(false),
            val(now),
        ]
    });
    insert_rows(db, "deployment_objects", &columns, rows).await?;
    let counter = Query::update()
        .table("counters")
        .value("value", seed.objects.len() as i64)
        .and_where(Expr::col("name").eq(brokkr_migrations::DEPLOYMENT_OBJECT_SEQUENCE))
        .to_owned();
    db.execute(&counter).await?;

    let columns = ["agent_id", "stack_id", "source", "created_at"];
    let rows = (0..seed.agents.len() * STACKS_PER_AGENT).map(|t| {
        let agent = seed.agents[t / STACKS_PER_AGENT];
        vec![val(agent), val(seed.stacks[t]), val("direct"), val(now)]
    });
    insert_rows(db, "agent_targets", &columns, rows).await?;
    Ok(seed)
}

/// Events spread over every agent and every version of its stacks; one in
/// [`HOT_EVENT_SHARE`] concerns the measured agents, the worst case for a query that
/// wrongly touched events.
async fn seed_events(db: &DatabaseConnection, scale: &Scale, seed: &Seed) -> Result {
    let now = Utc::now();
    let columns = [
        "id",
        "agent_id",
        "deployment_object_id",
        "stack_id",
        "event_type",
        "status",
        "message",
        "created_at",
    ];
    // A cheap deterministic spread (no RNG needed for a fixed workload).
    let rows = (0..scale.events).map(|e| {
        let agent = if e % HOT_EVENT_SHARE == 0 {
            (e / HOT_EVENT_SHARE) % MEASURED_AGENTS
        } else {
            (e.wrapping_mul(2_654_435_761)) % seed.agents.len()
        };
        let stack = agent * STACKS_PER_AGENT + e % STACKS_PER_AGENT;
        let object = stack * VERSIONS_PER_STACK + (e / STACKS_PER_AGENT) % VERSIONS_PER_STACK;
        let failed = e % 10 == 0;
        vec![
            val(Uuid::now_v7()),
            val(seed.agents[agent]),
            val(seed.objects[object]),
            val(seed.stacks[stack]),
            val("apply"),
            val(if failed { "failure" } else { "success" }),
            val(failed.then(|| "ImagePullBackOff: back-off pulling image".to_owned())),
            val(now),
        ]
    });
    insert_rows(db, "agent_events", &columns, rows).await
}
