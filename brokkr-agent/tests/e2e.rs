//! End to end: the reference server (SQLite, real HTTP on loopback), the real agent
//! loop and the real `KubeApplier` with the real kube-rs client, against the
//! Kubernetes API emulator — or against a real cluster when `BROKKR_TEST_KUBECONFIG`
//! names a kubeconfig (emulator-only checks are then skipped).
//!
//! Every wait is bounded (`eventually`), and every scenario uses its own namespaces.

mod emulator;

use std::sync::Arc;
use std::time::{Duration, Instant};

use brokkr_agent::agent::{Agent, StaticCapabilities};
use brokkr_agent::broker::BrokerClient;
use brokkr_agent::capabilities::KubeCapabilities;
use brokkr_agent::config::{AgentSection, Secret};
use brokkr_agent::health_server::HealthServer;
use brokkr_agent::kube_applier::{KubeApplier, KubeApplierOptions};
use brokkr_core::{Actor, Capabilities, KeyOwner, NewAgent, Pak, Store};
use brokkr_server::serve::Server;
use brokkr_store::SqlStore;
use emulator::Emulator;
use kube::api::{Api, DynamicObject, Patch, PatchParams};
use kube::core::{ApiResource, GroupVersionKind};
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);

/// The cluster under test: the emulator, or a real one.
enum Cluster {
    Emulated(Emulator),
    Real(kube::Client),
}

impl Cluster {
    async fn start() -> Cluster {
        let _ = rustls::crypto::ring::default_provider().install_default();
        match std::env::var_os("BROKKR_TEST_KUBECONFIG") {
            Some(path) => {
                let kubeconfig =
                    kube::config::Kubeconfig::read_from(path).expect("read BROKKR_TEST_KUBECONFIG");
                let config = kube::Config::from_custom_kubeconfig(kubeconfig, &Default::default())
                    .await
                    .expect("a usable kubeconfig");
                Cluster::Real(kube::Client::try_from(config).expect("a kube client"))
            }
            None => Cluster::Emulated(Emulator::start().await),
        }
    }

    fn client(&self) -> kube::Client {
        match self {
            Cluster::Emulated(emulator) => emulator.client(),
            Cluster::Real(client) => client.clone(),
        }
    }

    fn emulator(&self) -> Option<&Emulator> {
        match self {
            Cluster::Emulated(emulator) => Some(emulator),
            Cluster::Real(_) => {
                eprintln!("note: running against a real cluster; skipping an emulator-only check");
                None
            }
        }
    }

    /// The live object, through the kube client (works on both kinds of cluster).
    async fn get(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
    ) -> Option<Value> {
        let api = dynamic_api(&self.client(), api_version, kind, namespace);
        api.get_opt(name)
            .await
            .expect("GET through kube")
            .map(|o| serde_json::to_value(o).expect("object as JSON"))
    }
}

fn dynamic_api(
    client: &kube::Client,
    api_version: &str,
    kind: &str,
    namespace: Option<&str>,
) -> Api<DynamicObject> {
    let (group, version) = api_version.split_once('/').unwrap_or(("", api_version));
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    match namespace {
        Some(ns) => Api::namespaced_with(client.clone(), ns, &resource),
        None => Api::all_with(client.clone(), &resource),
    }
}

/// The broker: a real server over a socket, with an admin key and one agent.
struct Broker {
    url: String,
    admin: String,
    agent_id: brokkr_core::AgentId,
    agent_key: String,
    http: reqwest::Client,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Broker {
    async fn start() -> Broker {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("brokkr.db").display()
        );
        let store = SqlStore::connect(&url).await.expect("open SQLite");
        let admin = Pak::generate();
        store
            .rotate_api_key(&Actor::System, KeyOwner::Admin, admin.stored())
            .await
            .expect("admin key");
        let agent_key = Pak::generate();
        let agent = store
            .create_agent(
                &Actor::System,
                NewAgent {
                    name: "edge-1".into(),
                    cluster_name: "e2e".into(),
                    labels: Default::default(),
                    annotations: Default::default(),
                    key: agent_key.stored(),
                },
            )
            .await
            .expect("agent");
        let mut config = brokkr_server::config::Config::default();
        config.server.listen = "127.0.0.1:0".into();
        config.agents.heartbeat_flush_millis = 100;
        let server = Server::bind_with_store(Arc::new(store), config, Default::default())
            .await
            .expect("bind the server");
        let addr = server.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Broker {
            url: format!("http://{addr}"),
            admin: admin.expose().to_owned(),
            agent_id: agent.id,
            agent_key: agent_key.expose().to_owned(),
            http: reqwest::Client::new(),
            stop: Some(stop),
            _dir: dir,
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .http
            .request(method, format!("{}/api/v1{path}", self.url))
            .bearer_auth(&self.admin);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("call the broker");
        let status = response.status().as_u16();
        let body = response.json().await.unwrap_or(Value::Null);
        (status, body)
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let (status, body) = self.call(reqwest::Method::POST, path, Some(body)).await;
        assert!(status < 300, "POST {path}: {status} {body}");
        body
    }

    async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// Deletes a stack whose objects include a protected kind, as an admin must: the
    /// blast-radius guard refuses (409, naming `kind`), then the plan it stored is
    /// confirmed.
    async fn delete_stack_confirmed(&self, stack: &str, kind: &str) {
        let path = format!("/stacks/{stack}");
        let (status, refused) = self.call(reqwest::Method::DELETE, &path, None).await;
        assert_eq!(status, 409, "{refused}");
        assert_eq!(refused["code"], "blast_radius_exceeded");
        let violations = refused["details"]["violations"]
            .as_array()
            .expect("violations");
        assert!(
            violations
                .iter()
                .any(|v| v["rule"] == "protected_kinds" && v["kind"] == kind),
            "{refused}"
        );
        let plan = refused["details"]["plan_id"].as_str().expect("plan id");
        let confirmed = format!("{path}?confirm_plan_id={plan}");
        let (status, body) = self.call(reqwest::Method::DELETE, &confirmed, None).await;
        assert_eq!(status, 200, "{body}");
    }

    /// A stack assigned to the agent; returns its id.
    async fn stack(&self, name: &str) -> String {
        let stack = self.post("/stacks", json!({"name": name})).await;
        let id = stack["id"].as_str().expect("stack id").to_owned();
        self.post(
            &format!("/agents/{}/targets", self.agent_id),
            json!({"stack_id": id}),
        )
        .await;
        id
    }

    /// Appends a deployment object; returns its id.
    async fn deploy(&self, stack: &str, yaml: &str) -> String {
        let object = self
            .post(
                &format!("/stacks/{stack}/deployment-objects"),
                json!({"yaml_content": yaml}),
            )
            .await;
        object["id"].as_str().expect("object id").to_owned()
    }

    /// The agent's events about one deployment object.
    async fn events(&self, object: &str) -> Vec<Value> {
        let page = self
            .get(&format!("/agents/{}/events?limit=1000", self.agent_id))
            .await;
        page["items"]
            .as_array()
            .expect("items")
            .iter()
            .filter(|e| e["deployment_object_id"] == object)
            .cloned()
            .collect()
    }

    fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// A running agent and the handle that stops it.
struct RunningAgent {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
    probes_url: String,
    stop_probes: tokio::sync::oneshot::Sender<()>,
}

impl RunningAgent {
    async fn start(broker: &Broker, cluster: &Cluster, namespace: &str) -> RunningAgent {
        let mut config = AgentSection {
            broker_url: broker.url.clone(),
            pak: Secret::new(broker.agent_key.clone()),
            ..AgentSection::default()
        };
        config.poll_wait_secs = 2;
        config.resync_period_secs = 2;
        config.health_interval_secs = 1;
        config.heartbeat_interval_secs = 1;
        config.max_backoff_secs = 1;
        config.labels.insert("region".into(), "eu-west".into());
        let options = KubeApplierOptions {
            inventory_namespace: namespace.to_owned(),
            ..KubeApplierOptions::default()
        };
        let applier = KubeApplier::new(cluster.client(), options)
            .await
            .expect("the applier starts");
        let client = BrokerClient::new(&broker.url, config.pak.clone()).expect("client");
        let agent = Agent::new(
            config,
            client,
            Arc::new(applier),
            Arc::new(KubeCapabilities(cluster.client())),
        );
        let probes = HealthServer::bind("127.0.0.1:0", agent.metrics(), agent.readiness())
            .await
            .expect("bind the probes");
        let probes_url = format!("http://{}", probes.local_addr().expect("an address"));
        let (stop_probes, probes_stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(probes.run(async {
            let _ = probes_stopped.await;
        }));
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            agent
                .run(async {
                    let _ = stopped.await;
                })
                .await
                .expect("the agent runs");
        });
        RunningAgent {
            stop,
            task,
            probes_url,
            stop_probes,
        }
    }

    async fn probe(&self, path: &str) -> (u16, String) {
        let response = reqwest::get(format!("{}{path}", self.probes_url))
            .await
            .expect("call the probes");
        (
            response.status().as_u16(),
            response.text().await.unwrap_or_default(),
        )
    }

    async fn stop(self) {
        let _ = self.stop_probes.send(());
        let _ = self.stop.send(());
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the agent stops within the grace period")
            .expect("the agent task ends cleanly");
    }
}

/// Polls `check` every 100 ms until it yields `Some`, for at most [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn app(namespace: &str, with_extra: bool, replicas: u32) -> String {
    let mut yaml = format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: {namespace}\n---\n\
         apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: {namespace}\ndata:\n  mode: fast\n---\n\
         apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n  namespace: {namespace}\nspec:\n  replicas: {replicas}\n  selector:\n    matchLabels:\n      app: web\n  template:\n    metadata:\n      labels:\n        app: web\n    spec:\n      containers:\n        - name: web\n          image: nginx:1.27\n"
    );
    if with_extra {
        yaml.push_str(&format!(
            "---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: extra\n  namespace: {namespace}\ndata:\n  a: b\n"
        ));
    }
    yaml
}

async fn event_with(broker: &Broker, object: &str, event_type: &str, status: &str) -> Value {
    eventually(&format!("a {event_type}/{status} event"), || async {
        broker
            .events(object)
            .await
            .into_iter()
            .find(|e| e["event_type"] == event_type && e["status"] == status)
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_applies_prunes_survives_bad_input_corrects_drift_and_removes() {
    let cluster = Cluster::start().await;
    let mut broker = Broker::start().await;
    let ns = "e2e-shop";
    let agent = RunningAgent::start(&broker, &cluster, "brokkr-e2e").await;
    let stack = broker.stack("shop").await;

    // v1: applied, stamped, one success event.
    let v1 = broker.deploy(&stack, &app(ns, true, 2)).await;
    let extra = eventually("v1's objects", || async {
        cluster.get("v1", "ConfigMap", Some(ns), "extra").await
    })
    .await;
    assert_eq!(
        extra["metadata"]["labels"]["brokkr.io/stack-id"],
        stack.as_str()
    );
    assert_eq!(
        extra["metadata"]["annotations"]["brokkr.io/deployment-object-id"],
        v1.as_str()
    );
    event_with(&broker, &v1, "apply", "success").await;

    // Heartbeats carry the cluster's version and the configured labels; the probes
    // answer.
    let agent_row = eventually("capabilities from a heartbeat", || async {
        let row = broker.get(&format!("/agents/{}", broker.agent_id)).await;
        row["capabilities"]["kubernetes_version"]
            .is_string()
            .then_some(row)
    })
    .await;
    assert_eq!(agent_row["capabilities"]["extra"]["region"], "eu-west");
    assert_eq!(agent.probe("/healthz").await.0, 200);
    assert_eq!(agent.probe("/readyz").await.0, 200);
    let (status, metrics) = agent.probe("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("brokkr_agent_applies_total 1"),
        "{metrics}"
    );

    // v2 without the extra ConfigMap: it is pruned, the rest stays.
    let v2 = broker.deploy(&stack, &app(ns, false, 2)).await;
    event_with(&broker, &v2, "apply", "success").await;
    assert!(
        cluster
            .get("v1", "ConfigMap", Some(ns), "extra")
            .await
            .is_none()
    );
    assert!(
        cluster
            .get("apps/v1", "Deployment", Some(ns), "web")
            .await
            .is_some()
    );

    // v3 with an object in a namespace that does not exist: a failure event with the
    // cluster's reason, and v2's objects stay as they were.
    let bad = format!(
        "{}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: lost\n  namespace: e2e-missing\n",
        app(ns, false, 5)
    );
    let v3 = broker.deploy(&stack, &bad).await;
    let failure = event_with(&broker, &v3, "apply", "failure").await;
    assert!(
        failure["message"].as_str().unwrap().contains("e2e-missing"),
        "{failure}"
    );
    let web = cluster
        .get("apps/v1", "Deployment", Some(ns), "web")
        .await
        .unwrap();
    assert_eq!(
        web["spec"]["replicas"], 2,
        "the bad version changed nothing"
    );

    // v4 fixes it; then a hand edit is put back on the next resync, as drift.
    let v4 = broker.deploy(&stack, &app(ns, false, 3)).await;
    event_with(&broker, &v4, "apply", "success").await;
    let settings = dynamic_api(&cluster.client(), "v1", "ConfigMap", Some(ns));
    let edit = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "settings"}, "data": {"mode": "slow"}});
    settings
        .patch(
            "settings",
            &PatchParams::apply("someone-else").force(),
            &Patch::Apply(&edit),
        )
        .await
        .expect("a hand edit");
    eventually("the hand edit to be corrected", || async {
        let live = cluster.get("v1", "ConfigMap", Some(ns), "settings").await?;
        (live["data"]["mode"] == "fast").then_some(())
    })
    .await;
    let drift = event_with(&broker, &v4, "drift", "success").await;
    assert!(
        drift["message"].as_str().unwrap().contains("settings"),
        "{drift}"
    );

    // Health reaches the server.
    let health = eventually("a health report", || async {
        let (status, body) = broker
            .call(
                reqwest::Method::GET,
                &format!("/stacks/{stack}/health"),
                None,
            )
            .await;
        (status == 200 && !body["items"].as_array()?.is_empty()).then_some(body)
    })
    .await;
    assert_eq!(health["items"][0]["deployment_object_id"], v4.as_str());

    // Deleting the stack (confirmed past the guard: it prunes a Namespace) removes
    // everything the agent applied, then its inventory.
    broker.delete_stack_confirmed(&stack, "Namespace").await;
    eventually("the stack's objects to be removed", || async {
        let web = cluster.get("apps/v1", "Deployment", Some(ns), "web").await;
        let settings = cluster.get("v1", "ConfigMap", Some(ns), "settings").await;
        let inventory = cluster
            .get(
                "v1",
                "ConfigMap",
                Some("brokkr-e2e"),
                &format!("brokkr-inventory-{stack}"),
            )
            .await;
        (web.is_none() && settings.is_none() && inventory.is_none()).then_some(())
    })
    .await;

    agent.stop().await;
    broker.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_that_was_away_applies_only_the_newest_version() {
    let cluster = Cluster::start().await;
    let mut broker = Broker::start().await;
    let ns = "e2e-away";
    let stack = broker.stack("away").await;

    let agent = RunningAgent::start(&broker, &cluster, "brokkr-e2e-away").await;
    let v1 = broker.deploy(&stack, &app(ns, false, 1)).await;
    event_with(&broker, &v1, "apply", "success").await;
    agent.stop().await;

    // Three versions while the agent is away.
    let mut versions = Vec::new();
    for replicas in [2, 3, 4] {
        versions.push(broker.deploy(&stack, &app(ns, false, replicas)).await);
    }
    let newest = versions.last().unwrap().clone();

    let agent = RunningAgent::start(&broker, &cluster, "brokkr-e2e-away").await;
    event_with(&broker, &newest, "apply", "success").await;
    let web = cluster
        .get("apps/v1", "Deployment", Some(ns), "web")
        .await
        .unwrap();
    assert_eq!(web["spec"]["replicas"], 4);
    for skipped in &versions[..2] {
        assert!(
            broker.events(skipped).await.is_empty(),
            "version {skipped} was acted on"
        );
    }
    if let Some(emulator) = cluster.emulator() {
        let applied: Vec<String> = emulator
            .applies()
            .into_iter()
            .filter_map(|a| a.annotations.get("brokkr.io/deployment-object-id").cloned())
            .collect();
        for skipped in &versions[..2] {
            assert!(
                !applied.contains(skipped),
                "version {skipped} reached the cluster"
            );
        }
        assert!(applied.contains(&newest));
    }
    agent.stop().await;
    broker.stop();
}

/// The broker going away (errors, timeouts) never makes the agent delete anything,
/// and the agent catches up when it returns. Runs on the in-memory applier.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_never_deletes_workloads() {
    use brokkr_core::testing::MemoryApplier;
    use brokkr_core::{Applier as _, ObjectKey};

    let mut broker = Broker::start().await;
    let stack = broker.stack("steady").await;
    let v1 = broker.deploy(&stack, &app("steady", false, 1)).await;

    let cluster = Arc::new(MemoryApplier::new());
    let mut config = AgentSection {
        broker_url: broker.url.clone(),
        pak: Secret::new(broker.agent_key.clone()),
        ..AgentSection::default()
    };
    config.poll_wait_secs = 1;
    config.resync_period_secs = 1;
    config.max_backoff_secs = 1;
    let client = BrokerClient::new(&broker.url, config.pak.clone()).expect("client");
    let agent = Agent::new(
        config,
        client,
        Arc::clone(&cluster) as Arc<dyn brokkr_core::Applier>,
        Arc::new(StaticCapabilities(Capabilities::default())),
    );
    let metrics = agent.metrics();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(agent.run(async {
        let _ = stopped.await;
    }));
    event_with(&broker, &v1, "apply", "success").await;
    let web = ObjectKey {
        api_version: "apps/v1".into(),
        kind: "Deployment".into(),
        namespace: Some("steady".into()),
        name: "web".into(),
    };
    assert!(cluster.get(&web).is_some());

    // The broker stops: polls fail for several resync periods.
    broker.stop();
    let errors_before = metrics.render();
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_ne!(
        metrics.render(),
        errors_before,
        "the agent noticed the outage"
    );
    assert!(cluster.get(&web).is_some(), "an outage deleted a workload");
    assert_eq!(
        cluster
            .inventory(stack.parse().unwrap())
            .await
            .unwrap()
            .unwrap()
            .objects
            .len(),
        3
    );

    let _ = stop.send(());
    tokio::time::timeout(WAIT, task)
        .await
        .expect("the agent stops")
        .expect("task")
        .expect("clean exit");
}

// --- Issue 11: the agent against a strict API server, end to end. ---

/// Any event of the agent with this type and status (a removal's event is about the
/// deletion marker, whose id the test does not know).
async fn any_event_with(broker: &Broker, event_type: &str, status: &str) -> Value {
    eventually(&format!("a {event_type}/{status} event"), || async {
        let page = broker
            .get(&format!("/agents/{}/events?limit=1000", broker.agent_id))
            .await;
        page["items"]
            .as_array()?
            .iter()
            .find(|e| e["event_type"] == event_type && e["status"] == status)
            .cloned()
    })
    .await
}

/// Server-side applies `yaml`'s one object as someone other than Brokkr.
async fn apply_by_hand(cluster: &Cluster, object: Value) {
    let api_version = object["apiVersion"].as_str().expect("apiVersion");
    let kind = object["kind"].as_str().expect("kind");
    let name = object["metadata"]["name"].as_str().expect("name");
    let namespace = object["metadata"]["namespace"].as_str();
    dynamic_api(&cluster.client(), api_version, kind, namespace)
        .patch(
            name,
            &PatchParams::apply("someone-else").force(),
            &Patch::Apply(&object),
        )
        .await
        .expect("a hand-made apply");
}

/// The agent's `brokkr_agent_applies_total`.
async fn applies_total(agent: &RunningAgent) -> u64 {
    let (_, metrics) = agent.probe("/metrics").await;
    metrics
        .lines()
        .find_map(|l| l.strip_prefix("brokkr_agent_applies_total "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pre_existing_namespace_with_other_workloads_survives_the_stacks_removal() {
    let cluster = Cluster::start().await;
    let mut broker = Broker::start().await;
    let ns = "e2e-shared";
    apply_by_hand(
        &cluster,
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}}),
    )
    .await;
    apply_by_hand(
        &cluster,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "theirs", "namespace": ns}, "data": {"owner": "another team"}}),
    )
    .await;
    let agent = RunningAgent::start(&broker, &cluster, "brokkr-e2e-shared").await;
    let stack = broker.stack("shared").await;

    // The stack names the Namespace without adopting it: refused, named.
    let v1 = broker.deploy(&stack, &app(ns, false, 1)).await;
    let failure = event_with(&broker, &v1, "apply", "failure").await;
    let message = failure["message"].as_str().unwrap();
    assert!(message.contains(&format!("v1 Namespace {ns}")), "{message}");
    assert!(message.contains("brokkr.io/adopt"), "{message}");
    assert!(
        cluster
            .get("apps/v1", "Deployment", Some(ns), "web")
            .await
            .is_none()
    );

    // Adopting it (stack-wide, with the ApplyPolicy document) succeeds and says so.
    let policy = "apiVersion: brokkr.io/v1\nkind: ApplyPolicy\nmetadata:\n  name: policy\nspec:\n  adopt: true\n---\n";
    let v2 = broker
        .deploy(&stack, &format!("{policy}{}", app(ns, false, 1)))
        .await;
    let success = event_with(&broker, &v2, "apply", "success").await;
    assert!(
        success["message"]
            .as_str()
            .unwrap()
            .contains(&format!("adopted v1 Namespace {ns}")),
        "{success}"
    );

    // Deleting the stack (confirmed past the guard) removes what Brokkr created, and
    // only that.
    broker.delete_stack_confirmed(&stack, "Namespace").await;
    any_event_with(&broker, "delete", "success").await;
    assert!(
        cluster
            .get("apps/v1", "Deployment", Some(ns), "web")
            .await
            .is_none()
    );
    assert!(
        cluster
            .get("v1", "ConfigMap", Some(ns), "settings")
            .await
            .is_none()
    );
    let namespace = cluster
        .get("v1", "Namespace", None, ns)
        .await
        .expect("the namespace survives");
    assert!(
        namespace["metadata"]["deletionTimestamp"].is_null(),
        "{namespace}"
    );
    assert!(
        namespace["metadata"]["labels"]
            .get("brokkr.io/stack-id")
            .is_none()
    );
    let theirs = cluster
        .get("v1", "ConfigMap", Some(ns), "theirs")
        .await
        .expect("their workload survives");
    assert_eq!(theirs["data"]["owner"], "another team");

    agent.stop().await;
    broker.stop();
}

/// A CRD serving `v1beta1` and `v1`, and a widget moved from one to the other.
fn widgets(version: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: e2e-move\n---\n\
         apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.e2e.brokkr.io\n\
         spec:\n  group: e2e.brokkr.io\n  scope: Namespaced\n  names:\n    kind: Widget\n    plural: widgets\n    singular: widget\n    listKind: WidgetList\n\
         \x20 versions:\n\
         \x20   - name: v1beta1\n      served: true\n      storage: false\n      schema:\n        openAPIV3Schema:\n          type: object\n          x-kubernetes-preserve-unknown-fields: true\n\
         \x20   - name: v1\n      served: true\n      storage: true\n      schema:\n        openAPIV3Schema:\n          type: object\n          x-kubernetes-preserve-unknown-fields: true\n---\n\
         apiVersion: e2e.brokkr.io/{version}\nkind: Widget\nmetadata:\n  name: gizmo\n  namespace: e2e-move\nspec:\n  size: 3\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_version_move_keeps_the_object() {
    let cluster = Cluster::start().await;
    let mut broker = Broker::start().await;
    let agent = RunningAgent::start(&broker, &cluster, "brokkr-e2e-move").await;
    let stack = broker.stack("move").await;

    let v1 = broker.deploy(&stack, &widgets("v1beta1")).await;
    event_with(&broker, &v1, "apply", "success").await;
    let before = cluster
        .get("e2e.brokkr.io/v1", "Widget", Some("e2e-move"), "gizmo")
        .await
        .expect("the widget");
    let v2 = broker.deploy(&stack, &widgets("v1")).await;
    let success = event_with(&broker, &v2, "apply", "success").await;
    assert!(
        success["message"].as_str().unwrap().contains("pruned 0"),
        "{success}"
    );
    // Through a resync too.
    let applies = applies_total(&agent).await;
    eventually("a resync", || async {
        (applies_total(&agent).await > applies).then_some(())
    })
    .await;
    let after = cluster
        .get("e2e.brokkr.io/v1", "Widget", Some("e2e-move"), "gizmo")
        .await
        .expect("the widget survives the move");
    assert_eq!(
        after["metadata"]["uid"], before["metadata"]["uid"],
        "the same object"
    );

    agent.stop().await;
    broker.stop();
}

fn migration_job(image: &str, recreate: bool) -> String {
    let annotation = if recreate {
        "\n  annotations:\n    brokkr.io/recreate-on-immutable: \"true\""
    } else {
        ""
    };
    format!(
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: e2e-jobs\n---\n\
         apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: migrate\n  namespace: e2e-jobs{annotation}\n\
         spec:\n  template:\n    spec:\n      restartPolicy: Never\n      containers:\n        - name: migrate\n          image: {image}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_immutable_change_fails_naming_the_field_then_recreates_when_allowed() {
    let cluster = Cluster::start().await;
    let mut broker = Broker::start().await;
    let agent = RunningAgent::start(&broker, &cluster, "brokkr-e2e-jobs").await;
    let stack = broker.stack("jobs").await;

    let v1 = broker.deploy(&stack, &migration_job("tool:1", false)).await;
    event_with(&broker, &v1, "apply", "success").await;
    let uid = cluster
        .get("batch/v1", "Job", Some("e2e-jobs"), "migrate")
        .await
        .unwrap()["metadata"]["uid"]
        .clone();

    let v2 = broker.deploy(&stack, &migration_job("tool:2", false)).await;
    let failure = event_with(&broker, &v2, "apply", "failure").await;
    let message = failure["message"].as_str().unwrap();
    assert!(
        message.contains("batch/v1 Job e2e-jobs/migrate"),
        "{message}"
    );
    assert!(
        message.contains("immutable field(s) spec.template"),
        "{message}"
    );

    let v3 = broker.deploy(&stack, &migration_job("tool:2", true)).await;
    let success = event_with(&broker, &v3, "apply", "success").await;
    assert!(
        success["message"]
            .as_str()
            .unwrap()
            .contains("recreated (immutable field changed) batch/v1 Job e2e-jobs/migrate"),
        "{success}"
    );
    let live = cluster
        .get("batch/v1", "Job", Some("e2e-jobs"), "migrate")
        .await
        .unwrap();
    assert_ne!(live["metadata"]["uid"], uid);
    assert_eq!(
        live["spec"]["template"]["spec"]["containers"][0]["image"],
        "tool:2"
    );

    agent.stop().await;
    broker.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removal_with_an_operator_and_its_custom_resources_completes_in_order() {
    let cluster = Cluster::start().await;
    let Some(emulator) = cluster.emulator() else {
        return;
    };
    let mut broker = Broker::start().await;
    emulator.run_operator("e2e.brokkr.io/cleanup", "e2e-op", "operator");
    let agent = RunningAgent::start(&broker, &cluster, "brokkr-e2e-op").await;
    let stack = broker.stack("operator").await;
    let yaml = format!(
        "{}---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: operator\n  namespace: e2e-op\n\
         spec:\n  replicas: 1\n  selector:\n    matchLabels:\n      app: operator\n  template:\n    metadata:\n      labels:\n        app: operator\n\
         \x20   spec:\n      containers:\n        - name: operator\n          image: operator:1\n",
        widgets("v1").replace("e2e-move", "e2e-op").replace(
            "  namespace: e2e-op\nspec:\n  size",
            "  namespace: e2e-op\n  finalizers:\n    - e2e.brokkr.io/cleanup\nspec:\n  size"
        )
    );
    let v1 = broker.deploy(&stack, &yaml).await;
    event_with(&broker, &v1, "apply", "success").await;

    broker
        .delete_stack_confirmed(&stack, "CustomResourceDefinition")
        .await;
    let removed = any_event_with(&broker, "delete", "success").await;
    assert!(
        removed["message"].as_str().unwrap().contains("removed 4"),
        "{removed}"
    );
    // Success is reported only once everything is gone, not while it terminates.
    assert!(
        cluster
            .get("e2e.brokkr.io/v1", "Widget", Some("e2e-op"), "gizmo")
            .await
            .is_none()
    );
    assert!(
        cluster
            .get("apps/v1", "Deployment", Some("e2e-op"), "operator")
            .await
            .is_none()
    );
    assert!(
        cluster
            .get(
                "apiextensions.k8s.io/v1",
                "CustomResourceDefinition",
                None,
                "widgets.e2e.brokkr.io"
            )
            .await
            .is_none()
    );
    assert!(
        cluster
            .get("v1", "Namespace", None, "e2e-op")
            .await
            .is_none()
    );

    agent.stop().await;
    broker.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_status_writing_controller_raises_no_drift_and_a_hand_edit_is_put_back() {
    let cluster = Cluster::start().await;
    let mut broker = Broker::start().await;
    let ns = "e2e-quiet";
    if let Some(emulator) = cluster.emulator() {
        emulator.churn_status(true);
    }
    let agent = RunningAgent::start(&broker, &cluster, "brokkr-e2e-quiet").await;
    let stack = broker.stack("quiet").await;
    let v1 = broker.deploy(&stack, &app(ns, false, 1)).await;
    event_with(&broker, &v1, "apply", "success").await;

    // Two resyncs while the controller keeps writing status: no drift event.
    let applies = applies_total(&agent).await;
    eventually("two resyncs", || async {
        (applies_total(&agent).await >= applies + 2).then_some(())
    })
    .await;
    let events = broker.events(&v1).await;
    assert!(
        events.iter().all(|e| e["event_type"] != "drift"),
        "{events:?}"
    );

    // A hand edit of a field the manifest sets is put back and reported.
    apply_by_hand(
        &cluster,
        json!({"apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": ns}, "data": {"mode": "slow"}}),
    )
    .await;
    eventually("the hand edit to be put back", || async {
        let live = cluster.get("v1", "ConfigMap", Some(ns), "settings").await?;
        (live["data"]["mode"] == "fast").then_some(())
    })
    .await;
    let drift = event_with(&broker, &v1, "drift", "success").await;
    let message = drift["message"].as_str().unwrap();
    assert!(
        message.contains(&format!("v1 ConfigMap {ns}/settings")),
        "{message}"
    );
    assert!(
        !message.contains("Deployment"),
        "only what was edited: {message}"
    );

    agent.stop().await;
    broker.stop();
}

/// Server, agent and emulator: during a surge rollout (all new pods available, an old
/// one still terminating) the stack's health is progressing, and healthy only once the
/// old pod is gone, as `kubectl rollout status` judges it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_surge_rollout_is_not_healthy_until_it_is() {
    let cluster = Cluster::start().await;
    let Some(emulator) = cluster.emulator() else {
        eprintln!("skipping: needs hand-set workload status");
        return;
    };
    let mut broker = Broker::start().await;
    let ns = "e2e-surge";
    let agent = RunningAgent::start(&broker, &cluster, "brokkr-e2e-surge").await;
    let stack = broker.stack("surge").await;
    let v1 = broker.deploy(&stack, &app(ns, false, 3)).await;
    event_with(&broker, &v1, "apply", "success").await;

    let live = cluster
        .get("apps/v1", "Deployment", Some(ns), "web")
        .await
        .expect("applied");
    let generation = live["metadata"]["generation"].clone();
    let status = |replicas: u32| {
        json!({"observedGeneration": generation, "replicas": replicas,
            "updatedReplicas": 3, "readyReplicas": 3, "availableReplicas": 3,
            "conditions": [{"type": "Progressing", "status": "True",
                "reason": "ReplicaSetUpdated"}]})
    };
    let web_health = |wanted: &'static str| {
        let broker = &broker;
        let stack = &stack;
        async move {
            let (code, body) = broker
                .call(
                    reqwest::Method::GET,
                    &format!("/stacks/{stack}/health"),
                    None,
                )
                .await;
            let web = body["items"]
                .as_array()?
                .iter()
                .flat_map(|item| item["resources"].as_array().into_iter().flatten())
                .find(|r| r["kind"] == "Deployment" && r["name"] == "web")?
                .clone();
            (code == 200 && web["status"] == wanted).then_some(web)
        }
    };

    emulator.set_status("apps/v1", "Deployment", Some(ns), "web", status(4));
    let web = eventually("progressing while an old pod remains", || {
        web_health("progressing")
    })
    .await;
    assert_eq!(web["reason"], "OldReplicasPending", "{web}");

    emulator.set_status("apps/v1", "Deployment", Some(ns), "web", status(3));
    eventually("healthy once the old pod is gone", || web_health("healthy")).await;

    agent.stop().await;
    broker.stop();
}
