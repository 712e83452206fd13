//! Placement over HTTP, end to end: policies set through the API, agents reporting
//! capabilities in heartbeats, the placement controller reacting to agent changes and
//! to time, and every agent's target state following the decisions.
//!
//! The scenario runs on a real socket (`Server::run`) against SQLite and PostgreSQL
//! (and the in-memory store): 50 agents in three regions with mixed capabilities, some
//! tainted, keep beating from a background task while the test changes one agent's
//! labels, raises another's capacity and silences a third until it is stale. Every
//! wait is a bounded poll.

mod common;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::{Backend, Mode, Req, Resp, TestApp, Transport, test_config};
use serde_json::{Value, json};

const AGENTS: usize = 50;
const REGIONS: [&str; 3] = ["eu", "us", "ap"];
/// Heartbeats older than this are stale (the test config).
const STALE_AFTER_SECS: u64 = 2;
/// `evict_after_secs` of the evicting policy: long enough after staleness to look at
/// the stale agent before its stack moves.
const EVICT_AFTER_SECS: u64 = 6;
/// The longest any change may take to show.
const CONVERGE: Duration = Duration::from_secs(15);

/// One registered agent of the scenario.
#[derive(Debug, Clone)]
struct TestAgent {
    index: usize,
    id: String,
    key: String,
}

fn region(i: usize) -> &'static str {
    REGIONS[i % 3]
}
fn tier(i: usize) -> &'static str {
    if i.is_multiple_of(2) { "web" } else { "batch" }
}
fn tainted(i: usize) -> bool {
    i.is_multiple_of(10)
}
fn payments(i: usize) -> bool {
    i.is_multiple_of(7)
}
fn old_kubernetes(i: usize) -> bool {
    i % 4 == 3
}
fn gpu(i: usize) -> bool {
    i.is_multiple_of(5)
}

fn capabilities(i: usize, cpu: u64) -> Value {
    let features: Vec<&str> = if gpu(i) { vec!["gpu"] } else { vec![] };
    json!({
        "kubernetes_version": if old_kubernetes(i) { "v1.28.5" } else { "v1.31.2-gke.100" },
        "node_count": 3,
        "allocatable_cpu_millis": cpu,
        "allocatable_memory_bytes": (8u64 << 30) + (i as u64) * (1 << 20),
        "features": features,
    })
}

fn default_cpu(i: usize) -> u64 {
    4000 + (i as u64) * 10
}

/// The config of the scenario: short staleness, fast flushes and placement runs.
fn scenario_config() -> brokkr_server::config::Config {
    let mut config = test_config();
    config.agents.stale_after_secs = STALE_AFTER_SECS;
    config.agents.heartbeat_flush_millis = 50;
    config.agents.placement_interval_millis = Some(200);
    config
}

/// Beats for every agent not silenced, every 300 ms, over its own connection, until
/// stopped.
struct Beater {
    silenced: Arc<Mutex<HashSet<String>>>,
    stop: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl Beater {
    fn start(base: String, agents: Vec<TestAgent>) -> Beater {
        let silenced = Arc::new(Mutex::new(HashSet::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("client");
        let task = {
            let (silenced, stop) = (Arc::clone(&silenced), Arc::clone(&stop));
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    for agent in &agents {
                        if silenced.lock().unwrap().contains(&agent.id) {
                            continue;
                        }
                        let _ = client
                            .post(format!("{base}/api/v1/agents/{}/heartbeat", agent.id))
                            .bearer_auth(&agent.key)
                            .json(&json!({}))
                            .send()
                            .await;
                    }
                    tokio::time::sleep(Duration::from_millis(300)).await;
                }
            })
        };
        Beater {
            silenced,
            stop,
            task,
        }
    }

    fn silence(&self, agent: &TestAgent) {
        self.silenced.lock().unwrap().insert(agent.id.clone());
    }

    async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        let abort = self.task.abort_handle();
        if tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .is_err()
        {
            abort.abort();
        }
    }
}

async fn send_as(app: &TestApp, method: &str, path: &str, key: &str, body: Option<Value>) -> Resp {
    let mut req = Req::new(method, format!("/api/v1{path}")).key(key);
    if let Some(body) = body {
        req = req.json(&body);
    }
    app.send(req).await
}

async fn admin(app: &TestApp, method: &str, path: &str, body: Option<Value>) -> Resp {
    let key = app.world.admin_key.clone();
    send_as(app, method, path, &key, body).await
}

/// Creates a stack (as `key`) with one deployment object, so it shows in target states.
async fn stack(app: &TestApp, key: &str, name: &str) -> String {
    let resp = send_as(app, "POST", "/stacks", key, Some(json!({"name": name}))).await;
    resp.expect(201);
    let id = resp.json()["id"].as_str().expect("stack id").to_owned();
    let yaml = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  namespace: default\n"
    );
    send_as(
        app,
        "POST",
        &format!("/stacks/{id}/deployment-objects"),
        key,
        Some(json!({"yaml_content": yaml})),
    )
    .await
    .expect(201);
    id
}

async fn put_policy(app: &TestApp, stack: &str, policy: Value) -> Value {
    let resp = admin(
        app,
        "PUT",
        &format!("/stacks/{stack}/placement"),
        Some(policy),
    )
    .await;
    resp.expect(200);
    resp.json()
}

async fn placement(app: &TestApp, stack: &str) -> Value {
    let resp = admin(app, "GET", &format!("/stacks/{stack}/placement"), None).await;
    resp.expect(200);
    resp.json()
}

fn chosen(placement: &Value) -> BTreeSet<String> {
    placement["decision"]["chosen"]
        .as_array()
        .expect("chosen")
        .iter()
        .map(|id| id.as_str().expect("agent id").to_owned())
        .collect()
}

fn rejection<'a>(placement: &'a Value, agent: &str) -> &'a Value {
    placement["decision"]["rejected"]
        .as_array()
        .expect("rejected")
        .iter()
        .find(|r| r["agent_id"] == agent)
        .unwrap_or(&Value::Null)
}

fn ids(agents: &[TestAgent], keep: impl Fn(usize) -> bool) -> BTreeSet<String> {
    agents
        .iter()
        .filter(|a| keep(a.index))
        .map(|a| a.id.clone())
        .collect()
}

/// An agent's target state as `stack id -> action`.
async fn target_state(app: &TestApp, agent: &TestAgent) -> BTreeMap<String, String> {
    let resp = send_as(
        app,
        "GET",
        &format!("/agents/{}/target-state", agent.id),
        &agent.key,
        None,
    )
    .await;
    resp.expect(200);
    resp.json()["entries"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["stack_id"].as_str().expect("stack id").to_owned(),
                e["action"].as_str().expect("action").to_owned(),
            )
        })
        .collect()
}

/// Polls `check` until it returns `None` (done) or `CONVERGE` passes, then fails with
/// its last complaint.
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<String>>,
{
    let deadline = Instant::now() + CONVERGE;
    loop {
        let Some(complaint) = check().await else {
            return;
        };
        assert!(
            Instant::now() < deadline,
            "{what}: not within {CONVERGE:?}: {complaint}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `None` when every agent applies exactly the stacks whose stored decision chose it
/// (removals of stacks it lost may linger until it confirms them).
async fn target_states_follow_decisions(
    app: &TestApp,
    agents: &[TestAgent],
    stacks: &[String],
) -> Option<String> {
    let mut expected: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for stack in stacks {
        for agent in chosen(&placement(app, stack).await) {
            expected.entry(agent).or_default().insert(stack.clone());
        }
    }
    for agent in agents {
        let applied: BTreeSet<String> = target_state(app, agent)
            .await
            .into_iter()
            .filter(|(_, action)| action == "apply")
            .map(|(stack, _)| stack)
            .collect();
        let want = expected.remove(&agent.id).unwrap_or_default();
        if applied != want {
            return Some(format!(
                "agent {} applies {applied:?}, its decisions say {want:?}",
                agent.index
            ));
        }
    }
    None
}

async fn agent_status(app: &TestApp, agent: &TestAgent) -> String {
    let resp = admin(app, "GET", &format!("/agents/{}", agent.id), None).await;
    resp.expect(200);
    resp.json()["status"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

async fn scenario(backend: Backend) {
    let Some(app) = TestApp::start_with(backend, Mode::Socket, scenario_config()).await else {
        return;
    };
    let base = match &app.replica.transport {
        Transport::Socket { base, .. } => base.clone(),
        Transport::InProcess(_) => unreachable!("started in socket mode"),
    };

    // --- 50 agents: labels at registration, capabilities in their first heartbeat.
    let mut agents = Vec::new();
    for i in 0..AGENTS {
        let mut annotations = BTreeMap::new();
        if tainted(i) {
            annotations.insert("brokkr.io/taints", "gpu=true:NoSchedule");
        }
        if payments(i) {
            annotations.insert("team", "payments");
        }
        let resp = admin(
            &app,
            "POST",
            "/agents",
            Some(json!({
                "name": format!("agent-{i:02}"),
                "cluster_name": format!("cluster-{i:02}"),
                "labels": {"region": region(i), "tier": tier(i)},
                "annotations": annotations,
            })),
        )
        .await;
        resp.expect(201);
        let body = resp.json();
        let agent = TestAgent {
            index: i,
            id: body["agent"]["id"].as_str().expect("id").to_owned(),
            key: body["initial_pak"].as_str().expect("key").to_owned(),
        };
        send_as(
            &app,
            "POST",
            &format!("/agents/{}/heartbeat", agent.id),
            &agent.key,
            Some(json!({"capabilities": capabilities(i, default_cpu(i))})),
        )
        .await
        .expect(204);
        agents.push(agent);
    }
    let beater = Beater::start(base, agents.clone());
    eventually(
        "every agent is active with its capabilities stored",
        || async {
            for agent in &agents {
                let resp = admin(&app, "GET", &format!("/agents/{}", agent.id), None).await;
                let body = resp.json();
                if body["status"] != "active"
                    || body["capabilities"]["kubernetes_version"].is_null()
                {
                    return Some(format!("agent {}: {body}", agent.index));
                }
            }
            None
        },
    )
    .await;

    // --- Policies, each decided at once by PUT.
    let eu_web_selector = json!({
        "matchLabels": {"tier": "web"},
        "matchExpressions": [{"key": "region", "operator": "In", "values": ["eu"]}],
    });
    let eu_web = stack(&app, &app.world.admin_key, "eu-web").await;
    let decided = put_policy(&app, &eu_web, json!({"agent_selector": eu_web_selector})).await;
    let expect_eu_web = ids(&agents, |i| {
        region(i) == "eu" && tier(i) == "web" && !tainted(i)
    });
    assert_eq!(chosen(&decided), expect_eu_web, "eu-web: {decided}");
    let tainted_eu_web = agents
        .iter()
        .find(|a| region(a.index) == "eu" && tier(a.index) == "web" && tainted(a.index))
        .expect("a tainted eu web agent");
    assert_eq!(rejection(&decided, &tainted_eu_web.id)["reason"], "taint");
    let us_agent = agents
        .iter()
        .find(|a| region(a.index) == "us")
        .expect("a us agent");
    assert_eq!(
        rejection(&decided, &us_agent.id)["reason"],
        "label_mismatch"
    );
    assert!(decided["decided_at"].is_string(), "{decided}");

    let gpu_stack = stack(&app, &app.world.admin_key, "gpu").await;
    let decided = put_policy(
        &app,
        &gpu_stack,
        json!({
            "requirements": {"min_kubernetes_version": "1.30", "features": ["gpu"]},
            "tolerations": [{"key": "gpu", "operator": "Equal", "value": "true", "effect": "NoSchedule"}],
        }),
    )
    .await;
    assert_eq!(
        chosen(&decided),
        ids(&agents, |i| gpu(i) && !old_kubernetes(i)),
        "gpu: {decided}"
    );
    let old_gpu = agents
        .iter()
        .find(|a| gpu(a.index) && old_kubernetes(a.index))
        .expect("an old gpu agent");
    assert_eq!(
        rejection(&decided, &old_gpu.id)["reason"],
        "missing_capability"
    );

    let spread = stack(&app, &app.world.admin_key, "spread").await;
    let decided = put_policy(
        &app,
        &spread,
        json!({"spread": {"topology_key": "region", "max_per_value": 2}, "max_clusters": 5}),
    )
    .await;
    let spread_chosen = chosen(&decided);
    assert_eq!(spread_chosen.len(), 5, "spread: {decided}");
    for region_name in REGIONS {
        let in_region = agents
            .iter()
            .filter(|a| region(a.index) == region_name && spread_chosen.contains(&a.id))
            .count();
        assert!(
            in_region <= 2,
            "spread: {in_region} agents in {region_name}: {decided}"
        );
    }
    assert!(
        agents
            .iter()
            .all(|a| !spread_chosen.contains(&a.id) || !tainted(a.index)),
        "spread chose a tainted agent: {decided}"
    );

    let annotated = stack(&app, &app.world.admin_key, "payments").await;
    let decided = put_policy(
        &app,
        &annotated,
        json!({"annotations": {"team": "payments"}}),
    )
    .await;
    assert_eq!(
        chosen(&decided),
        ids(&agents, |i| payments(i) && !tainted(i)),
        "payments: {decided}"
    );

    let evicting = stack(&app, &app.world.admin_key, "evicting").await;
    let decided = put_policy(
        &app,
        &evicting,
        json!({"agent_selector": eu_web_selector, "max_clusters": 1, "evict_after_secs": EVICT_AFTER_SECS}),
    )
    .await;
    let evict_chosen = chosen(&decided);
    assert_eq!(evict_chosen.len(), 1, "evicting: {decided}");
    let stale_agent = agents
        .iter()
        .find(|a| evict_chosen.contains(&a.id))
        .expect("the chosen agent is one of ours")
        .clone();
    assert!(expect_eu_web.contains(&stale_agent.id));

    // Room for one more us web agent than there are.
    let us_web = ids(&agents, |i| {
        region(i) == "us" && tier(i) == "web" && !tainted(i)
    });
    let us_stack = stack(&app, &app.world.admin_key, "us-web").await;
    let decided = put_policy(
        &app,
        &us_stack,
        json!({"agent_selector": {"matchLabels": {"region": "us", "tier": "web"}}, "max_clusters": us_web.len() + 1}),
    )
    .await;
    assert_eq!(chosen(&decided), us_web, "us-web: {decided}");

    let big = stack(&app, &app.world.admin_key, "big").await;
    let decided = put_policy(
        &app,
        &big,
        json!({"requirements": {"min_cpu_millis": 100_000}}),
    )
    .await;
    assert!(chosen(&decided).is_empty(), "big: {decided}");
    assert_eq!(
        rejection(&decided, &agents[1].id)["reason"],
        "missing_capability"
    );

    let mut stacks = vec![
        eu_web.clone(),
        gpu_stack.clone(),
        spread.clone(),
        annotated.clone(),
        evicting.clone(),
        us_stack.clone(),
        big.clone(),
    ];
    eventually("target states follow the decisions", || {
        target_states_follow_decisions(&app, &agents, &stacks)
    })
    .await;
    // Setting the policy moved the stack onto its agents: one `place` record.
    let placed = app
        .count_all(&format!(
            "/api/v1/admin/audit-logs?resource_type=placement&action=place&resource_id={eu_web}"
        ))
        .await;
    assert_eq!(placed, 1, "one place record for eu-web");

    // --- An agent leaves a selector: it gets a removal, and a stack with a free slot.
    let mover = agents
        .iter()
        .find(|a| expect_eu_web.contains(&a.id) && a.id != stale_agent.id)
        .expect("another eu web agent")
        .clone();
    admin(
        &app,
        "POST",
        &format!("/agents/{}/labels", mover.id),
        Some(json!({"key": "region", "value": "us"})),
    )
    .await
    .expect(200);
    eventually("the moved agent loses eu-web and gets us-web", || async {
        let state = target_state(&app, &mover).await;
        let eu = state.get(&eu_web).map(String::as_str);
        let us = state.get(&us_stack).map(String::as_str);
        (eu != Some("remove") || us != Some("apply"))
            .then(|| format!("eu-web {eu:?}, us-web {us:?}"))
    })
    .await;
    let eu_now = placement(&app, &eu_web).await;
    assert_eq!(rejection(&eu_now, &mover.id)["reason"], "label_mismatch");

    // --- More capacity makes an agent eligible.
    let grower = &agents[1];
    send_as(
        &app,
        "POST",
        &format!("/agents/{}/heartbeat", grower.id),
        &grower.key,
        Some(json!({"capabilities": capabilities(1, 200_000)})),
    )
    .await
    .expect(204);
    eventually("the grown agent gets the big stack", || async {
        let state = target_state(&app, grower).await;
        (state.get(&big).map(String::as_str) != Some("apply")).then(|| format!("{state:?}"))
    })
    .await;
    eventually("target states follow the decisions", || {
        target_states_follow_decisions(&app, &agents, &stacks)
    })
    .await;

    // --- A stale agent keeps what it has and gets nothing new.
    beater.silence(&stale_agent);
    let silenced_at = Instant::now();
    eventually("the silenced agent is stale", || async {
        let status = agent_status(&app, &stale_agent).await;
        (status != "stale").then_some(status)
    })
    .await;
    let late = stack(&app, &app.world.admin_key, "late-eu-web").await;
    let decided = put_policy(&app, &late, json!({"agent_selector": eu_web_selector})).await;
    assert_eq!(
        rejection(&decided, &stale_agent.id)["reason"],
        "stale_heartbeat",
        "{decided}"
    );
    stacks.push(late.clone());
    let state = target_state(&app, &stale_agent).await;
    // Its last beat was at most one beat period before the silence, so until
    // `EVICT_AFTER_SECS - 1` seconds after it the evicting stack must still be there;
    // a machine too slow to look that early still checks the policy without eviction.
    let mut kept = vec![&eu_web];
    if silenced_at.elapsed() < Duration::from_secs(EVICT_AFTER_SECS - 1) {
        kept.push(&evicting);
    }
    for stack in kept {
        assert_eq!(
            state.get(stack).map(String::as_str),
            Some("apply"),
            "the stale agent keeps its stacks: {state:?}"
        );
    }
    assert!(!state.contains_key(&late), "no new stack: {state:?}");

    // --- Past evict_after_secs the evicting policy places its stack elsewhere.
    eventually("the evicting stack moves off the stale agent", || async {
        let now = chosen(&placement(&app, &evicting).await);
        (now.len() != 1 || now.contains(&stale_agent.id)).then(|| format!("{now:?}"))
    })
    .await;
    eventually("the stale agent receives the removal", || async {
        let state = target_state(&app, &stale_agent).await;
        let evicted = state.get(&evicting).map(String::as_str);
        let kept = state.get(&eu_web).map(String::as_str);
        (evicted != Some("remove") || kept != Some("apply"))
            .then(|| format!("evicting {evicted:?}, eu-web {kept:?}"))
    })
    .await;
    eventually("target states follow the decisions", || {
        target_states_follow_decisions(&app, &agents, &stacks)
    })
    .await;

    // --- A preview stores nothing.
    let before = placement(&app, &eu_web).await;
    let preview = admin(
        &app,
        "POST",
        &format!("/stacks/{eu_web}/placement/preview"),
        Some(json!({"agent_selector": eu_web_selector, "max_clusters": 1})),
    )
    .await;
    preview.expect(200);
    assert_eq!(chosen(&preview.json()).len(), 1, "{}", preview.text);
    let after = placement(&app, &eu_web).await;
    assert_eq!(before["policy"], after["policy"]);
    assert_eq!(before["decided_at"], after["decided_at"]);

    // --- Invalid policies are refused and change nothing.
    for bad in [
        json!({"agent_selector": {"matchExpressions": [{"key": "region", "operator": "Near", "values": ["eu"]}]}}),
        json!({"max_cluster": 3}),
        json!({"spread": {"topology_key": "region", "max_per_value": 0}}),
        // The built-in placement reads no custom policy.
        json!({"custom": {"prefix": "eu-"}}),
    ] {
        let resp = admin(
            &app,
            "PUT",
            &format!("/stacks/{eu_web}/placement"),
            Some(bad.clone()),
        )
        .await;
        resp.expect(422);
        assert_eq!(
            resp.json()["code"],
            "invalid_policy",
            "{bad}: {}",
            resp.text
        );
    }
    assert_eq!(placement(&app, &eu_web).await["policy"], before["policy"]);
    // A placement that is not registered is its own refusal.
    let resp = admin(
        &app,
        "PUT",
        &format!("/stacks/{eu_web}/placement"),
        Some(json!({"placement": "nearest", "custom": {}})),
    )
    .await;
    resp.expect(422);
    assert_eq!(resp.json()["code"], "unknown_placement", "{}", resp.text);
    assert_eq!(placement(&app, &eu_web).await["policy"], before["policy"]);

    // --- Rejected agents are counted per reason and listed a page at a time.
    let full = placement(&app, &eu_web).await;
    let total = full["decision"]["rejected_total"]
        .as_u64()
        .expect("a total");
    let by_reason: u64 = full["decision"]["rejected_by_reason"]
        .as_object()
        .expect("counts")
        .values()
        .map(|n| n.as_u64().expect("a count"))
        .sum();
    assert_eq!(by_reason, total);
    assert!(total >= 2, "{full}");
    let mut paged = Vec::new();
    let mut cursor = String::new();
    loop {
        let path = format!("/stacks/{eu_web}/placement?limit=1{cursor}");
        let page = admin(&app, "GET", &path, None).await.expect(200).json();
        let rows = page["decision"]["rejected"]
            .as_array()
            .expect("a page")
            .clone();
        assert!(rows.len() <= 1, "{page}");
        paged.extend(rows);
        match page["decision"]["next_cursor"].as_str() {
            Some(next) => cursor = format!("&cursor={next}"),
            None => break,
        }
    }
    assert_eq!(paged.len() as u64, total);
    assert_eq!(Value::Array(paged), full["decision"]["rejected"]);

    // --- A generator places its own stacks only.
    let generator_key = app.world.generator_key.clone();
    let own = stack(&app, &generator_key, "generator-own").await;
    let resp = send_as(
        &app,
        "PUT",
        &format!("/stacks/{own}/placement"),
        &generator_key,
        Some(json!({"agent_selector": {"matchLabels": {"region": "ap"}}, "max_clusters": 2})),
    )
    .await;
    resp.expect(200);
    assert_eq!(chosen(&resp.json()).len(), 2, "{}", resp.text);
    send_as(
        &app,
        "GET",
        &format!("/stacks/{own}/placement"),
        &generator_key,
        None,
    )
    .await
    .expect(200);
    for (path, method) in [
        (format!("/stacks/{eu_web}/placement"), "GET"),
        (format!("/stacks/{eu_web}/placement"), "DELETE"),
    ] {
        send_as(&app, method, &path, &generator_key, None)
            .await
            .expect(404);
    }
    let other_key = app.world.other_generator_key.clone();
    send_as(
        &app,
        "GET",
        &format!("/stacks/{own}/placement"),
        &other_key,
        None,
    )
    .await
    .expect(404);
    send_as(
        &app,
        "PUT",
        &format!("/stacks/{own}/placement"),
        &agents[0].key,
        Some(json!({})),
    )
    .await
    .expect(403);

    // --- Removing a policy removes the stack from the agents it placed it on.
    admin(
        &app,
        "DELETE",
        &format!("/stacks/{annotated}/placement"),
        None,
    )
    .await
    .expect(204);
    admin(&app, "GET", &format!("/stacks/{annotated}/placement"), None)
        .await
        .expect(404);
    let payer = agents
        .iter()
        .find(|a| payments(a.index) && !tainted(a.index) && a.id != stale_agent.id)
        .expect("a payments agent");
    eventually("the unplaced stack is removed", || async {
        let state = target_state(&app, payer).await;
        let action = state.get(&annotated).map(String::as_str);
        (action != Some("remove")).then(|| format!("{action:?}"))
    })
    .await;

    beater.stop().await;
    app.teardown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_scenario_memory() {
    scenario(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_scenario_sqlite() {
    scenario(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn placement_scenario_postgres() {
    scenario(Backend::Postgres).await;
}
