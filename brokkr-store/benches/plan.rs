//! Plan cost over 10,000 agents on SQLite: `ControlPlane::plan` over a `SqlStore` on a
//! temporary file, the same fleet and stack as `brokkr-core`'s `plan` bench (a new
//! 200-object deployment object; 10,000 agents on one of three earlier versions, 1%
//! never applied). Prints p50, p99 and max over 50 runs after a warm-up, the number of
//! distinct (from, to) pairs and the plan's size as JSON. Target: p50 and p99 under
//! 100 ms (printed, not asserted).
//!
//! ```text
//! cargo bench -p brokkr-store --bench plan
//! ```
//!
//! The seed goes through the control plane and the store as an API client would,
//! many writes at once so the store batches them. Then the store's part phase by
//! phase (the reads `ControlPlane::plan` makes, and storing the plan), p50 each.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use brokkr_core::page::MAX_LIMIT;
use brokkr_core::plan::{GuardOverrides, Plan};
use brokkr_core::runtime::ControlPlane;
use brokkr_core::runtime::plan::PlanRequest;
use brokkr_core::{
    Actor, AgentEventId, AgentId, DeploymentObjectId, EventStatus, EventType, Heartbeat, NewAgent,
    NewAgentEvent, NewPlan, NewStack, PageRequest, Pak, PlanOrigin, StackId, Store, TargetFilter,
};
use brokkr_store::SqlStore;
use tokio::task::JoinSet;

const AGENTS: usize = 10_000;
const OBJECTS: usize = 200;
const VERSIONS: usize = 3;
const NEVER_APPLIED_EVERY: usize = 100;
/// Writes in flight while seeding.
const CONCURRENCY: usize = 64;
const WARMUP: usize = 5;
const RUNS: usize = 50;
const TARGET: Duration = Duration::from_millis(100);

/// Version `v`: 200 ConfigMaps, shifted by 10 names per version, every fifth one's
/// content changed (the same stack as `brokkr-core/benches/plan.rs`).
fn yaml(v: usize) -> String {
    let mut out = String::new();
    for i in (v * 10)..(v * 10 + OBJECTS) {
        let content = if i % 5 == 0 { v } else { 0 };
        out.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {{name: cm-{i}, namespace: app}}\ndata: {{v: '{content}', payload: 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'}}\n"
        ));
    }
    out
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[index]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Runs `f` for every item, `CONCURRENCY` at a time, and waits for all of them.
async fn each<T, F, Fut>(items: Vec<T>, f: F)
where
    T: Send + 'static,
    F: Fn(T) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let mut running = JoinSet::new();
    for item in items {
        if running.len() >= CONCURRENCY {
            running
                .join_next()
                .await
                .expect("a task")
                .expect("the task finished");
        }
        running.spawn(f(item));
    }
    while let Some(done) = running.join_next().await {
        done.expect("the task finished");
    }
}

async fn seed(cp: &ControlPlane) -> (StackId, Vec<DeploymentObjectId>) {
    let store = Arc::clone(cp.store());
    let indices: Vec<usize> = (0..AGENTS).collect();
    let created = Arc::new(std::sync::Mutex::new(vec![AgentId::new(); AGENTS]));
    each(indices, |i| {
        let (store, created) = (Arc::clone(&store), Arc::clone(&created));
        async move {
            let agent = store
                .create_agent(
                    &Actor::Admin,
                    NewAgent {
                        name: format!("cluster-{i:05}"),
                        cluster_name: format!("cluster-{i:05}"),
                        labels: [("region".to_owned(), format!("r{}", i % 5))].into(),
                        annotations: Default::default(),
                        key: Pak::generate().stored(),
                    },
                )
                .await
                .expect("create agent");
            created.lock().expect("not poisoned")[i] = agent.id;
        }
    })
    .await;
    let agents = created.lock().expect("not poisoned").clone();
    for chunk in agents.chunks(1_000) {
        let beats: Vec<Heartbeat> = chunk
            .iter()
            .map(|&agent_id| Heartbeat {
                agent_id,
                at: chrono::Utc::now(),
                capabilities: None,
            })
            .collect();
        store.record_heartbeats(&beats).await.expect("heartbeats");
    }
    cp.agents_changed(&agents).await.expect("index the agents");
    let stack = cp
        .create_stack(
            &Actor::Admin,
            NewStack {
                name: "fleet-wide".into(),
                ..Default::default()
            },
        )
        .await
        .expect("a stack")
        .id;
    let loose = GuardOverrides {
        max_removed_fraction: Some(1.0),
        min_removed_agents: None,
        max_pruned_objects: Some(u64::MAX),
        protected_kinds: Some(BTreeSet::new()),
    };
    cp.set_guard_policy(&Actor::Admin, stack, loose)
        .await
        .expect("loosen the guard");
    each(agents.clone(), |agent| {
        let cp = cp.clone();
        async move {
            cp.assign_target(&Actor::Admin, agent, stack)
                .await
                .expect("assign");
        }
    })
    .await;
    let mut versions = Vec::with_capacity(VERSIONS);
    for v in 0..VERSIONS {
        let object: DeploymentObjectId = cp
            .append_deployment_object(&Actor::Admin, stack, yaml(v))
            .await
            .expect("append a version")
            .id;
        let appliers: Vec<AgentId> = agents
            .iter()
            .enumerate()
            .filter(|(i, _)| {
                i % NEVER_APPLIED_EVERY != NEVER_APPLIED_EVERY - 1 && i % VERSIONS == v
            })
            .map(|(_, &agent)| agent)
            .collect();
        each(appliers, |agent| {
            let cp = cp.clone();
            async move {
                let event = NewAgentEvent {
                    id: AgentEventId::new(),
                    agent_id: agent,
                    deployment_object_id: object,
                    event_type: EventType::Apply,
                    status: EventStatus::Success,
                    message: None,
                };
                cp.record_agent_event(&Actor::Agent(agent), event)
                    .await
                    .expect("record the apply");
            }
        })
        .await;
        versions.push(object);
    }
    (stack, versions)
}

/// Times `f` `RUNS` times after `WARMUP` and prints its p50.
async fn phase<T, F, Fut>(name: &str, mut f: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let mut samples = Vec::with_capacity(RUNS);
    for run in 0..WARMUP + RUNS {
        let started = Instant::now();
        std::hint::black_box(f().await);
        if run >= WARMUP {
            samples.push(started.elapsed());
        }
    }
    samples.sort();
    println!(
        "    {name:<40} p50 {:>8.2} ms",
        ms(percentile(&samples, 0.5))
    );
}

/// The store's calls in `ControlPlane::plan`, each on its own.
async fn phases(store: &dyn Store, stack: StackId, versions: &[DeploymentObjectId], plan: &Plan) {
    println!("  the store's part, phase by phase:");
    let filter = TargetFilter {
        stack_id: Some(stack),
        ..TargetFilter::default()
    };
    phase("read the stack's targets (every page)", || async {
        let mut rows = 0;
        let mut page = PageRequest::first(MAX_LIMIT);
        loop {
            let got = store
                .list_agent_targets(&filter, &page)
                .await
                .expect("targets");
            rows += got.items.len();
            match got.next_cursor {
                Some(cursor) => page.cursor = Some(cursor),
                None => break rows,
            }
        }
    })
    .await;
    phase("read the agents' applied states", || async {
        store.applied_states(stack).await.expect("applied states")
    })
    .await;
    phase("read the versions' items", || async {
        store
            .deployment_object_items(versions)
            .await
            .expect("items")
    })
    .await;
    let body = serde_json::to_value(plan).expect("to JSON");
    phase("store the plan", || async {
        let new = NewPlan {
            stack_id: stack,
            origin: PlanOrigin::Requested,
            change: serde_json::json!({"change": "delete"}),
            digest: plan.digest.clone(),
            body: body.clone(),
            expires_at: chrono::Utc::now() + chrono::Duration::minutes(15),
        };
        store.create_plan(&Actor::Admin, new).await.expect("stored")
    })
    .await;
}

async fn bench() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("brokkr.db").display()
    );
    let store: Arc<dyn Store> = Arc::new(SqlStore::connect(&url).await.expect("SQLite"));
    let cp = ControlPlane::builder(store).build();
    let _background = cp.start();
    let started = Instant::now();
    let (stack, versions) = seed(&cp).await;
    println!(
        "SQLite: seeded {AGENTS} agents on {VERSIONS} versions of {OBJECTS} objects in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let next = yaml(VERSIONS);
    let mut samples = Vec::with_capacity(RUNS);
    let mut last = None;
    for run in 0..WARMUP + RUNS {
        let started = Instant::now();
        let view = cp
            .plan(&Actor::Admin, stack, PlanRequest::Yaml(next.clone()))
            .await
            .expect("a plan");
        if run >= WARMUP {
            samples.push(started.elapsed());
        }
        last = Some(view);
    }
    let view = last.expect("at least one run");
    let json = serde_json::to_vec(&view.plan).expect("the plan as JSON");
    let summary = &view.plan.summary;
    println!(
        "ControlPlane::plan (SQLite), {RUNS} runs after {WARMUP} warm-up: {} distinct pairs, \
         {} agents changing, {} gaining; verdict {:?}; plan JSON {} bytes",
        view.plan.groups.len(),
        summary.agents_changing,
        summary.agents_gaining,
        view.plan.guard.verdict,
        json.len()
    );
    samples.sort();
    let (p50, p99) = (percentile(&samples, 0.50), percentile(&samples, 0.99));
    let met = if p50 < TARGET && p99 < TARGET {
        "met"
    } else {
        "NOT met"
    };
    println!(
        "  ControlPlane::plan   p50 {:>8.2} ms   p99 {:>8.2} ms   max {:>8.2} ms   target (p50, p99 < {} ms) {met}",
        ms(p50),
        ms(p99),
        ms(samples[samples.len() - 1]),
        TARGET.as_millis()
    );
    phases(cp.store().as_ref(), stack, &versions, &view.plan).await;
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(bench());
}
