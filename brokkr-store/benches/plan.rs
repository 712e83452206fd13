//! Plan cost over 10,000 agents: `ControlPlane::plan` for a new 200-object deployment
//! object of a stack assigned to 10,000 agents, each on one of three earlier versions
//! (1% never applied anything), on the memory store and on SQLite (a temporary file);
//! then the pure `plan::compute` alone on the same moves. Prints p50, p99 and max over
//! 50 runs after a warm-up, the number of distinct (from, to) pairs and the plan's size
//! as JSON, then each store's part phase by phase (p50). Target: p50 and p99 under
//! 100 ms (printed, not asserted: timings depend on the machine).
//!
//! ```text
//! cargo bench -p brokkr-store --bench plan
//! ```
//!
//! The seed goes through the control plane and the store as an API client would, many
//! writes at once so the SQL store batches them.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use brokkr_core::plan::{self, AgentMove, GuardOverrides, GuardPolicy, ItemDigest, Plan, Version};
use brokkr_core::runtime::ControlPlane;
use brokkr_core::runtime::plan::PlanRequest;
use brokkr_core::testing::MemoryStore;
use brokkr_core::testing::conformance::new_event;
use brokkr_core::{
    Actor, AgentId, DeploymentObjectId, EventStatus, EventType, Heartbeat, NewAgent,
    NewDeploymentObject, NewPlan, NewStack, Pak, PlanOrigin, StackId, Store, manifest,
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

/// Version `v` of the stack: 200 ConfigMaps, shifted by 10 names per version (so each
/// move creates and prunes some) and with every fifth object's content changed (so it
/// updates some).
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

/// Prints p50, p99 and max of `samples` and whether both percentiles meet the target.
fn report(name: &str, samples: &mut [Duration]) {
    samples.sort();
    let (p50, p99) = (percentile(samples, 0.50), percentile(samples, 0.99));
    let max = samples[samples.len() - 1];
    let met = if p50 < TARGET && p99 < TARGET {
        "met"
    } else {
        "NOT met"
    };
    println!(
        "  {name:<28} p50 {:>8.2} ms   p99 {:>8.2} ms   max {:>8.2} ms   target (p50, p99 < {} ms) {met}",
        ms(p50),
        ms(p99),
        ms(max),
        TARGET.as_millis()
    );
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
    let loose = GuardOverrides::off();
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
                let event = new_event(agent, object, EventType::Apply, EventStatus::Success);
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
        black_box(f().await);
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

/// The parts of `ControlPlane::plan`, each on its own, through the same public calls.
async fn phases(
    store: &dyn Store,
    stack: StackId,
    versions: &[DeploymentObjectId],
    next: &str,
    plan: &Plan,
) {
    println!("  phase by phase:");
    phase("parse the new YAML and digest its items", || async {
        NewDeploymentObject::from_yaml(stack, next.to_owned()).expect("valid YAML")
    })
    .await;
    phase("plan to JSON and back", || async {
        let body = serde_json::to_value(plan).expect("to JSON");
        serde_json::from_value::<Plan>(body).expect("from JSON")
    })
    .await;
    phase("read the stack's world (targets, applied)", || async {
        store.stack_world(stack).await.expect("world")
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
            holds_change: false,
        };
        store.create_plan(&Actor::Admin, new).await.expect("stored")
    })
    .await;
}

async fn through_the_control_plane(name: &str, store: Arc<dyn Store>) {
    let cp = ControlPlane::builder(store).build();
    let _background = cp.start();
    let started = Instant::now();
    let (stack, versions) = seed(&cp).await;
    println!(
        "{name}: seeded {AGENTS} agents on {VERSIONS} versions of {OBJECTS} objects in {:.1} s",
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
        "ControlPlane::plan ({name}), {RUNS} runs after {WARMUP} warm-up: {} distinct pairs, \
         {} agents changing, {} gaining; objects per agent summed: {} create, {} update, {} prune; \
         verdict {:?}; plan JSON {} bytes",
        view.plan.groups.len(),
        summary.agents_changing,
        summary.agents_gaining,
        summary.objects.create,
        summary.objects.update,
        summary.objects.prune,
        view.plan.guard.verdict,
        json.len()
    );
    report("ControlPlane::plan", &mut samples);
    phases(cp.store().as_ref(), stack, &versions, &next, &view.plan).await;
}

/// The same moves straight into `plan::compute`: the pure part of the cost.
fn compute_alone() {
    let versions: Vec<DeploymentObjectId> =
        (0..VERSIONS).map(|_| DeploymentObjectId::new()).collect();
    let mut items: HashMap<Version, Vec<ItemDigest>> = HashMap::new();
    for (v, id) in versions.iter().enumerate() {
        let parsed = manifest::parse(&yaml(v)).expect("valid YAML");
        items.insert(Version::Stored(*id), ItemDigest::of_all(&parsed));
    }
    let parsed = manifest::parse(&yaml(VERSIONS)).expect("valid YAML");
    items.insert(Version::Proposed, ItemDigest::of_all(&parsed));
    let moves: Vec<AgentMove> = (0..AGENTS)
        .map(|i| AgentMove {
            agent_id: AgentId::new(),
            agent_name: format!("cluster-{i:05}"),
            from: (i % NEVER_APPLIED_EVERY != NEVER_APPLIED_EVERY - 1)
                .then(|| versions[i % VERSIONS]),
            to: Some(Version::Proposed),
        })
        .collect();
    let change = serde_json::json!({"change": "deployment_object", "yaml_checksum": "x"});
    let guard = GuardPolicy::default();
    let mut samples = Vec::with_capacity(RUNS);
    let mut pairs = 0;
    for run in 0..WARMUP + RUNS {
        let started = Instant::now();
        let computed = plan::compute(&change, &moves, &items, &guard).expect("a plan");
        let took = started.elapsed();
        pairs = computed.groups.len();
        black_box(computed);
        if run >= WARMUP {
            samples.push(took);
        }
    }
    println!("plan::compute alone, same moves: {pairs} distinct pairs");
    report("plan::compute", &mut samples);
}

async fn bench() {
    through_the_control_plane("memory store", Arc::new(MemoryStore::new())).await;
    let dir = tempfile::tempdir().expect("a temporary directory");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("brokkr.db").display()
    );
    let sqlite = SqlStore::connect(&url).await.expect("SQLite");
    through_the_control_plane("SQLite", Arc::new(sqlite)).await;
    compute_alone();
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(bench());
}
