//! A fleet for rollout scenarios: the reference server in this process over SQLite or
//! PostgreSQL (real HTTP on loopback), and real agent loops whose clusters are
//! `MemoryApplier`s, each long-polling its target state, heartbeating and reporting
//! events and health as a real agent does. Every wait is bounded.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use brokkr_agent::agent::{Agent, StaticCapabilities};
use brokkr_agent::broker::BrokerClient;
use brokkr_agent::config::{AgentSection, Secret};
use brokkr_core::testing::MemoryApplier;
use brokkr_core::{Actor, Capabilities, DeploymentObjectId, KeyOwner, Pak, Store};
use brokkr_server::serve::Server;
use brokkr_store::SqlStore;
use serde_json::{Value, json};

use super::pg::PgDatabase;

/// How long any single wait of a scenario may take.
pub const WAIT: Duration = Duration::from_secs(60);

/// Adjusts the server's configuration at every start, restarts included.
pub type Configure = Arc<dyn Fn(&mut brokkr_server::config::Config) + Send + Sync>;

/// Which database the server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The server, with the admin key and the store behind it.
pub struct Broker {
    pub url: String,
    admin: String,
    http: reqwest::Client,
    pub store: Arc<SqlStore>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
    database: Database,
    configure: Configure,
}

/// Where the database lives, dropped with the broker.
enum Database {
    Sqlite(String, #[allow(dead_code)] tempfile::TempDir),
    Postgres(PgDatabase),
}

impl Broker {
    /// A server on a fresh database; `None` when PostgreSQL is unreachable outside CI.
    pub async fn start(backend: Backend) -> Option<Broker> {
        Self::start_with(backend, Arc::new(|_| {})).await
    }

    /// [`Broker::start`], with `configure` applied to the server's configuration.
    pub async fn start_with(backend: Backend, configure: Configure) -> Option<Broker> {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let database = match backend {
            Backend::Sqlite => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!(
                    "sqlite://{}?mode=rwc",
                    dir.path().join("brokkr.db").display()
                );
                Database::Sqlite(url, dir)
            }
            Backend::Postgres => Database::Postgres(PgDatabase::create().await?),
        };
        let store = Arc::new(
            SqlStore::connect(database.url())
                .await
                .expect("open the store"),
        );
        let admin = Pak::generate();
        store
            .rotate_api_key(&Actor::System, KeyOwner::Admin, admin.stored())
            .await
            .expect("admin key");
        let mut broker = Broker {
            url: String::new(),
            admin: admin.expose().to_owned(),
            http: reqwest::Client::new(),
            store,
            stop: None,
            task: None,
            database,
            configure,
        };
        broker.serve().await;
        Some(broker)
    }

    /// Starts the server over the same database (again, after [`Broker::kill`]).
    pub async fn serve(&mut self) {
        let listen = self.url.strip_prefix("http://").map(str::to_owned);
        let (url, stop, task) = spawn_server(self.database.url(), listen, &self.configure).await;
        self.url = url;
        self.stop = Some(stop);
        self.task = Some(task);
    }

    /// Another server replica on the same database, on a port of its own.
    pub async fn replica(&self) -> Replica {
        let (url, stop, task) = spawn_server(self.database.url(), None, &self.configure).await;
        Replica {
            url,
            _stop: stop,
            task,
        }
    }

    /// Stops the server at once, as a crash would: its tasks are aborted, nothing is
    /// drained.
    pub fn kill(&mut self) {
        self.stop = None;
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }

    pub async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
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

    pub async fn post(&self, path: &str, body: Value) -> Value {
        let (status, body) = self.call(reqwest::Method::POST, path, Some(body)).await;
        assert!(status < 300, "POST {path}: {status} {body}");
        body
    }

    pub async fn put(&self, path: &str, body: Value) -> Value {
        let (status, body) = self.call(reqwest::Method::PUT, path, Some(body)).await;
        assert!(status < 300, "PUT {path}: {status} {body}");
        body
    }

    pub async fn get(&self, path: &str) -> Value {
        let (status, body) = self.call(reqwest::Method::GET, path, None).await;
        assert_eq!(status, 200, "GET {path}: {body}");
        body
    }

    /// How many agents are pinned to a rollout's candidate, read from the database.
    pub async fn pins(&self) -> i64 {
        use sea_orm::{ConnectionTrait, Database as Connect, Statement};
        let connection = Connect::connect(self.database.url())
            .await
            .expect("connect");
        let backend = connection.get_database_backend();
        let row = connection
            .query_one_raw(Statement::from_string(
                backend,
                "SELECT COUNT(*) AS n FROM agent_stack_pins",
            ))
            .await
            .expect("count pins")
            .expect("a row");
        let count: i64 = row.try_get("", "n").expect("a count");
        let _ = connection.close().await;
        count
    }

    /// The database's URL, for what a test reads or changes behind the server's back.
    pub fn database_url(&self) -> &str {
        self.database.url()
    }

    /// Drops the database (PostgreSQL) after the server stopped.
    pub async fn teardown(mut self) {
        self.kill();
        if let Database::Postgres(db) = self.database {
            db.drop_database().await;
        }
    }
}

impl Database {
    fn url(&self) -> &str {
        match self {
            Self::Sqlite(url, _) => url,
            Self::Postgres(db) => &db.url,
        }
    }
}

/// A second server on a broker's database; stopped when dropped.
pub struct Replica {
    pub url: String,
    _stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A server over `database` with the scenarios' short timers and then `configure`,
/// listening on `listen` (a free port when `None`): its URL, the sender that stops it
/// and its task.
async fn spawn_server(
    database: &str,
    listen: Option<String>,
    configure: &Configure,
) -> (
    String,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let store = Arc::new(SqlStore::connect(database).await.expect("open the store"));
    let mut config = brokkr_server::config::Config::default();
    config.server.listen = listen.unwrap_or_else(|| "127.0.0.1:0".into());
    config.agents.heartbeat_flush_millis = 100;
    config.agents.stale_after_secs = 3;
    config.rollouts.poll_millis = 100;
    configure(&mut config);
    let server = Server::bind_with_store(store, config, Default::default())
        .await
        .expect("bind the server");
    let url = format!("http://{}", server.local_addr());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(async move {
        let _ = server
            .run(async {
                let _ = stopped.await;
            })
            .await;
    });
    (url, stop, task)
}

/// One simulated agent: a real agent loop over a `MemoryApplier`.
pub struct SimAgent {
    pub id: String,
    pub name: String,
    key: String,
    pub cluster: Arc<MemoryApplier>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
}

impl SimAgent {
    /// Starts its loop against `url` (again after [`SimAgent::go_offline`]).
    pub fn start(&mut self, url: &str) {
        let mut config = AgentSection {
            broker_url: url.to_owned(),
            pak: Secret::new(self.key.clone()),
            ..AgentSection::default()
        };
        config.poll_wait_secs = 2;
        config.heartbeat_interval_secs = 1;
        config.resync_period_secs = 1;
        config.health_interval_secs = 1;
        config.max_backoff_secs = 1;
        let client = BrokerClient::new(url, config.pak.clone()).expect("client");
        let agent = Agent::new(
            config,
            client,
            Arc::clone(&self.cluster) as Arc<dyn brokkr_core::Applier>,
            Arc::new(StaticCapabilities(Capabilities::default())),
        );
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        self.stop = Some(stop);
        tokio::spawn(agent.run(async {
            let _ = stopped.await;
        }));
    }

    /// Stops its loop: it sends nothing more (heartbeats included) until started again.
    pub fn go_offline(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// Every deployment object it applied, in order.
    pub fn applied(&self) -> Vec<DeploymentObjectId> {
        self.cluster
            .applies()
            .into_iter()
            .map(|(_, object)| object)
            .collect()
    }
}

/// A server and agents.
pub struct Fleet {
    pub broker: Broker,
    pub agents: Vec<SimAgent>,
}

impl Fleet {
    /// A server and `n` running agents `agent-0`... with the labels `labels(i)` gives.
    pub async fn start(
        backend: Backend,
        n: usize,
        labels: impl Fn(usize) -> BTreeMap<String, String>,
    ) -> Option<Fleet> {
        Self::start_with(backend, n, labels, Arc::new(|_| {})).await
    }

    /// [`Fleet::start`], the server configured by `configure`.
    pub async fn start_with(
        backend: Backend,
        n: usize,
        labels: impl Fn(usize) -> BTreeMap<String, String>,
        configure: Configure,
    ) -> Option<Fleet> {
        let broker = Broker::start_with(backend, configure).await?;
        let mut agents = Vec::with_capacity(n);
        for i in 0..n {
            let name = format!("agent-{i:03}");
            let body = broker
                .post(
                    "/agents",
                    json!({"name": name, "cluster_name": format!("cluster-{i}"), "labels": labels(i)}),
                )
                .await;
            let mut agent = SimAgent {
                id: body["agent"]["id"].as_str().expect("agent id").to_owned(),
                name,
                key: body["initial_pak"].as_str().expect("agent key").to_owned(),
                cluster: Arc::new(MemoryApplier::new()),
                stop: None,
            };
            agent.start(&broker.url);
            agents.push(agent);
        }
        Some(Fleet { broker, agents })
    }

    /// A stack assigned to every agent; its id.
    pub async fn stack_on_all(&self, name: &str) -> String {
        let stack = self.broker.post("/stacks", json!({"name": name})).await;
        let id = stack["id"].as_str().expect("stack id").to_owned();
        for agent in &self.agents {
            self.broker
                .post(
                    &format!("/agents/{}/targets", agent.id),
                    json!({"stack_id": id}),
                )
                .await;
        }
        id
    }

    /// Appends a deployment object; its id.
    pub async fn deploy(&self, stack: &str, yaml: &str) -> String {
        let object = self
            .broker
            .post(
                &format!("/stacks/{stack}/deployment-objects"),
                json!({"yaml_content": yaml}),
            )
            .await;
        object["id"].as_str().expect("object id").to_owned()
    }

    /// Waits until every agent in `agents` applied `object`.
    pub async fn wait_applied(&self, agents: &[usize], object: &str) {
        let object: DeploymentObjectId = object.parse().expect("object id");
        eventually(
            &format!("{} agents applied {object}", agents.len()),
            || async {
                agents
                    .iter()
                    .all(|&i| self.agents[i].applied().contains(&object))
                    .then_some(())
            },
        )
        .await;
    }

    /// The stack's newest rollout.
    pub async fn newest_rollout(&self, stack: &str) -> Value {
        let page = self
            .broker
            .get(&format!("/stacks/{stack}/rollouts?limit=1"))
            .await;
        page["items"][0].clone()
    }

    /// The id of the stack's newest rollout.
    pub async fn newest_rollout_id(&self, stack: &str) -> String {
        let rollout = self.newest_rollout(stack).await;
        rollout["id"].as_str().expect("rollout id").to_owned()
    }

    /// A rollout with its waves, agents, gate evaluations and commands.
    pub async fn rollout(&self, id: &str) -> Value {
        self.broker.get(&format!("/rollouts/{id}")).await
    }

    /// Waits until the rollout is in `state`; answers its details then.
    pub async fn wait_state(&self, id: &str, state: &str) -> Value {
        eventually(&format!("rollout {id} {state}"), || async {
            let details = self.rollout(id).await;
            (details["rollout"]["state"] == state).then_some(details)
        })
        .await
    }

    /// Stops every agent and the server.
    pub async fn teardown(mut self) {
        for agent in &mut self.agents {
            agent.go_offline();
        }
        self.broker.teardown().await;
    }
}

/// Waits until `check` answers `Some`, at most [`WAIT`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(found) = check().await {
            return found;
        }
        assert!(started.elapsed() < WAIT, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A namespace, a ConfigMap and a Deployment carrying `version`.
pub fn app(name: &str, version: &str) -> String {
    [
        "apiVersion: v1",
        "kind: Namespace",
        "metadata:",
        &format!("  name: {name}"),
        "---",
        "apiVersion: v1",
        "kind: ConfigMap",
        "metadata:",
        &format!("  name: {name}-config"),
        &format!("  namespace: {name}"),
        "data:",
        &format!("  version: '{version}'"),
        "---",
        "apiVersion: apps/v1",
        "kind: Deployment",
        "metadata:",
        "  name: web",
        &format!("  namespace: {name}"),
        "spec:",
        "  replicas: 1",
        "  selector:",
        "    matchLabels: {app: web}",
        "  template:",
        "    metadata:",
        "      labels: {app: web}",
        "    spec:",
        "      containers:",
        "      - name: web",
        &format!("        image: web:{version}"),
    ]
    .join("\n")
}

/// One `#[tokio::test]` per scenario and database: `mod sqlite` and `mod postgres`,
/// each calling `scenario(Backend)` of the including test binary.
#[allow(unused_macros)]
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::Backend::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(super::Backend::Postgres).await;
                }
            )*
        }
    };
}
