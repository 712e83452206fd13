//! Plan cost over 10,000 agents: `ControlPlane::plan` for a new 200-object deployment
//! object on the memory store, every agent of the stack on one of three versions (and
//! 1% never applied), so the plan diffs a few distinct (from, to) pairs; then the pure
//! `plan::compute` alone on the same moves. Prints p50, p99 and max over 50 runs after
//! a warm-up, the number of distinct pairs and the size of the plan as JSON. Target:
//! p50 and p99 under 100 ms (printed, not asserted: timings depend on the machine).
//! Then the same work phase by phase (the reads `ControlPlane::plan` makes, parsing the
//! new YAML, storing the plan), p50 each, to show where the time goes.
//!
//! `cargo bench -p brokkr-core --features testing --bench plan`

use std::collections::{BTreeSet, HashMap};
use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use brokkr_core::page::MAX_LIMIT;
use brokkr_core::plan::{self, AgentMove, GuardOverrides, GuardPolicy, ItemDigest, Plan, Version};
use brokkr_core::runtime::ControlPlane;
use brokkr_core::runtime::plan::PlanRequest;
use brokkr_core::testing::MemoryStore;
use brokkr_core::{
    Actor, AgentEventId, AgentId, DeploymentObjectId, EventStatus, EventType, Heartbeat, NewAgent,
    NewAgentEvent, NewDeploymentObject, NewPlan, NewStack, PageRequest, Pak, PlanOrigin, StackId,
    TargetFilter, manifest,
};

const AGENTS: usize = 10_000;
const OBJECTS: usize = 200;
/// Versions the agents stand on before the planned change.
const VERSIONS: usize = 3;
/// One agent in this many never applied anything (a "gain" move).
const NEVER_APPLIED_EVERY: usize = 100;
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

/// A stack assigned to 10,000 agents, each of which applied one of three versions
/// (1% none), with the guard loosened so the appends that get them there go ahead.
async fn seed(cp: &ControlPlane) -> (StackId, Vec<DeploymentObjectId>) {
    let store = cp.store();
    let mut agents = Vec::with_capacity(AGENTS);
    for i in 0..AGENTS {
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
        agents.push(agent.id);
    }
    let beats: Vec<Heartbeat> = agents
        .iter()
        .map(|&agent_id| Heartbeat {
            agent_id,
            at: chrono::Utc::now(),
            capabilities: None,
        })
        .collect();
    store.record_heartbeats(&beats).await.expect("heartbeats");
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
    for &agent in &agents {
        cp.assign_target(&Actor::Admin, agent, stack)
            .await
            .expect("assign");
    }
    let mut versions = Vec::with_capacity(VERSIONS);
    for v in 0..VERSIONS {
        let object = cp
            .append_deployment_object(&Actor::Admin, stack, yaml(v))
            .await
            .expect("append a version");
        for (i, &agent) in agents.iter().enumerate() {
            if i % NEVER_APPLIED_EVERY != NEVER_APPLIED_EVERY - 1 && i % VERSIONS == v {
                let event = NewAgentEvent {
                    id: AgentEventId::new(),
                    agent_id: agent,
                    deployment_object_id: object.id,
                    event_type: EventType::Apply,
                    status: EventStatus::Success,
                    message: None,
                };
                cp.record_agent_event(&Actor::Agent(agent), event)
                    .await
                    .expect("record the apply");
            }
        }
        versions.push(object.id);
    }
    (stack, versions)
}

async fn through_the_control_plane() {
    let cp = ControlPlane::builder(Arc::new(MemoryStore::new())).build();
    let _background = cp.start();
    let started = Instant::now();
    let (stack, versions) = seed(&cp).await;
    println!(
        "seeded {AGENTS} agents on {VERSIONS} versions of {OBJECTS} objects in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let next = yaml(VERSIONS);
    let mut samples = Vec::with_capacity(RUNS);
    let mut last = None;
    for run in 0..WARMUP + RUNS {
        let request = PlanRequest::Yaml(next.clone());
        let started = Instant::now();
        let view = cp
            .plan(&Actor::Admin, stack, request)
            .await
            .expect("a plan");
        let took = started.elapsed();
        if run >= WARMUP {
            samples.push(took);
        }
        last = Some(view);
    }
    let view = last.expect("at least one run");
    let json = serde_json::to_vec(&view.plan).expect("the plan as JSON");
    let summary = &view.plan.summary;
    println!(
        "ControlPlane::plan (memory store), {RUNS} runs after {WARMUP} warm-up: {} distinct pairs, \
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
    phases(&cp, stack, &versions, &next, &view.plan).await;
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
        "    {name:<44} p50 {:>8.2} ms",
        ms(percentile(&samples, 0.5))
    );
}

/// The parts of `ControlPlane::plan`, each on its own, through the same public calls.
async fn phases(
    cp: &ControlPlane,
    stack: StackId,
    versions: &[DeploymentObjectId],
    next: &str,
    computed: &Plan,
) {
    let store = cp.store().as_ref();
    println!("  phase by phase:");
    phase("parse the new YAML and digest its items", || async {
        NewDeploymentObject::from_yaml(stack, next.to_owned()).expect("valid YAML")
    })
    .await;
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
    phase("plan to JSON and back (stored, answered)", || async {
        let body = serde_json::to_value(computed).expect("to JSON");
        serde_json::from_value::<Plan>(body).expect("from JSON")
    })
    .await;
    let body = serde_json::to_value(computed).expect("to JSON");
    phase("store it (memory store: body cloned in)", || async {
        let new = NewPlan {
            stack_id: stack,
            origin: PlanOrigin::Requested,
            change: serde_json::json!({"change": "delete"}),
            digest: computed.digest.clone(),
            body: body.clone(),
            expires_at: chrono::Utc::now() + chrono::Duration::minutes(15),
        };
        store.create_plan(&Actor::Admin, new).await.expect("stored")
    })
    .await;
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

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(through_the_control_plane());
    compute_alone();
}
