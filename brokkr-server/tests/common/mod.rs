//! The harness shared by the server's HTTP tests.
//!
//! [`TestApp::start`] builds the whole application over a fresh store (in memory, a
//! SQLite file in a temporary directory, or a fresh PostgreSQL database dropped at
//! [`TestApp::teardown`]) and seeds a [`World`]: an admin key, agents and generators
//! with their own keys, a stack with a deployment object, a target, a template and an
//! event, all made through the `Store` so the fixtures do not depend on the endpoints
//! under test. Requests go through poem's `TestClient` in process or, with
//! [`Mode::Socket`], through `reqwest` to the real serve code path on 127.0.0.1:0.
//!
//! PostgreSQL comes from `BROKKR_TEST_DATABASE_URL` (default
//! `postgres://postgres@127.0.0.1:5432/postgres`); when it is unreachable the test is
//! skipped with a notice, unless `CI=true`, where that is a failure.

#![allow(dead_code)] // each test binary uses a different subset

use std::sync::Arc;
use std::time::Duration;

use brokkr_core::runtime::Background;
use brokkr_core::testing::MemoryStore;
use brokkr_core::{
    Actor, AgentId, DeploymentObjectId, EventStatus, EventType, GeneratorId, GeneratorRegistry,
    KeyOwner, MetadataField, MetadataTarget, NewAgent, NewAgentEvent, NewDeploymentObject,
    NewGenerator, NewStack, NewTemplate, Pak, StackId, Store, TemplateId, id::PlanId,
};
use brokkr_core::{
    DeliveryId, DeliveryOutcome, NewSubscription, SubscriptionId, SubscriptionOwner,
    SubscriptionUpdate, WebhookEventType,
};
use brokkr_server::config::Config;
use brokkr_server::serve::Server;
use brokkr_server::state::AppState;
use brokkr_store::{SqlStore, StoreConfig};
use poem::EndpointExt;
use poem::test::TestClient;
use serde_json::{Value, json};

#[path = "pg_database.rs"]
mod pg_database;
pub use pg_database::PgDatabase;

pub mod ops;
pub mod pg_cluster;
pub mod plans;
pub mod receiver;
pub mod rollouts;

/// The placement policy of the seeded stack: it selects agents labelled
/// `placement=seeded`, which no seeded agent is, so it places the stack nowhere.
pub fn seeded_policy() -> brokkr_core::PlacementPolicy {
    serde_json::from_value(json!({"agent_selector": {"matchLabels": {"placement": "seeded"}}}))
        .expect("a valid policy")
}

/// A small valid deployment object.
pub const CONFIGMAP_YAML: &str = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: demo\n  namespace: default\ndata:\n  key: value\n";

/// Which store the app runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// `brokkr_core::testing::MemoryStore`.
    Memory,
    /// `SqlStore` on a SQLite file in a temporary directory.
    Sqlite,
    /// `SqlStore` on a fresh PostgreSQL database.
    Postgres,
}

/// How requests reach the app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// poem's `TestClient`, no socket.
    InProcess,
    /// `reqwest` over 127.0.0.1 to the real serve code path (`Server::run`).
    Socket,
}

// ---------------------------------------------------------------------------------------
// Stores

/// Keeps a store's backing resources alive until teardown.
pub enum StoreGuard {
    /// Nothing to clean.
    Memory,
    /// The SQLite file's directory.
    Sqlite(tempfile::TempDir),
    /// The PostgreSQL database.
    Postgres(PgDatabase),
}

/// A connection to PostgreSQL database `url`, small so many tests fit at once.
pub async fn pg_store(url: &str) -> SqlStore {
    SqlStore::connect_with(StoreConfig {
        url: url.to_owned(),
        max_connections: 5,
        min_connections: 0,
        ..StoreConfig::default()
    })
    .await
    .expect("open a PostgreSQL store")
}

/// A fresh store of `backend`, or `None` when PostgreSQL is not reachable (and not CI).
pub async fn store(backend: Backend) -> Option<(Arc<dyn Store>, StoreGuard)> {
    match backend {
        Backend::Memory => Some((Arc::new(MemoryStore::new()), StoreGuard::Memory)),
        Backend::Sqlite => {
            let dir = tempfile::tempdir().expect("create a temporary directory");
            let url = format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("brokkr.db").display()
            );
            let store = SqlStore::connect(&url).await.expect("open a SQLite store");
            Some((Arc::new(store), StoreGuard::Sqlite(dir)))
        }
        Backend::Postgres => {
            let db = PgDatabase::create().await?;
            let store = pg_store(&db.url).await;
            Some((Arc::new(store), StoreGuard::Postgres(db)))
        }
    }
}

/// The key test servers seal webhook secrets with (the base64 of bytes 0..32).
pub const TEST_WEBHOOK_KEY: &str = "k1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

/// The configuration tests run with: the defaults, with a fast heartbeat flush and
/// webhooks on, allowed only to `hooks.invalid` (a name that never resolves), so
/// subscriptions can be made and nothing leaves the machine.
pub fn test_config() -> Config {
    let mut config = Config::default();
    config.agents.heartbeat_flush_millis = 100;
    config.webhooks.keys = vec![TEST_WEBHOOK_KEY.to_owned()];
    config.webhooks.allowed_hosts = vec!["hooks.invalid".to_owned()];
    // The seeded rollout moves only when a test steps it: a command makes it due, and a
    // driver stepping it at once would add audit records to the command's.
    config.rollouts.poll_millis = 3_600_000;
    config
}

// ---------------------------------------------------------------------------------------
// The seeded world

/// Everything the seed created, with the keys to act as each caller.
#[derive(Debug, Clone)]
pub struct World {
    /// The admin key.
    pub admin_key: String,
    /// The agent the tests act as.
    pub agent: AgentId,
    /// Its key.
    pub agent_key: String,
    /// Another agent.
    pub other_agent: AgentId,
    /// Its key.
    pub other_agent_key: String,
    /// A generator owning `stack`, `spare_stack` and `template`.
    pub generator: GeneratorId,
    /// Its key.
    pub generator_key: String,
    /// Another generator, owning `other_stack`.
    pub other_generator: GeneratorId,
    /// Its key.
    pub other_generator_key: String,
    /// A key revoked by rotating its agent's key.
    pub revoked_key: String,
    /// A stack of `generator`, labelled `team=blue`, annotated `note=hello`,
    /// assigned to `agent`, with one deployment object, and a placement policy that
    /// matches no agent ([`seeded_policy`]).
    pub stack: StackId,
    /// Its deployment object.
    pub deployment_object: DeploymentObjectId,
    /// Another stack of `generator`, assigned to nobody.
    pub spare_stack: StackId,
    /// A stack of `other_generator`.
    pub other_stack: StackId,
    /// A template of `generator`, labelled `team=blue`, annotated `note=hello`.
    pub template: TemplateId,
    /// An event `agent` reported about `deployment_object`.
    pub event: uuid::Uuid,
    /// A stack of `generator` with two deployment objects, no agent, a placement
    /// policy that matches no agent ([`seeded_policy`]) and a decision the guard holds
    /// (`held_plan`).
    pub guarded_stack: StackId,
    /// The older of `guarded_stack`'s deployment objects (a rollback target).
    pub old_deployment_object: DeploymentObjectId,
    /// A held placement decision of `guarded_stack` that an admin can release: it
    /// chooses no agent, as the world already is, so its digest stays current.
    pub held_plan: PlanId,
    /// A plan of `stack` (its deletion), made by admin.
    pub plan: PlanId,
    /// A webhook subscription of `generator` to `stack`'s new deployment objects,
    /// disabled (so nothing is sent), to `https://hooks.invalid/seeded`.
    pub subscription: SubscriptionId,
    /// A dead test delivery of `subscription`.
    pub delivery: DeliveryId,
    /// A stack of `generator` with a rollout policy and a running rollout.
    pub rollout_stack: StackId,
    /// That rollout: its one wave waits for an approval.
    pub rollout: brokkr_core::RolloutId,
}

/// A store-level agent registration.
pub fn new_agent(name: &str, key: &Pak) -> NewAgent {
    NewAgent {
        name: name.into(),
        cluster_name: "cluster".into(),
        labels: Default::default(),
        annotations: Default::default(),
        key: key.stored(),
    }
}

fn labels(key: &str, value: &str) -> brokkr_core::Labels {
    [(key.to_owned(), value.to_owned())].into_iter().collect()
}

/// Seeds the world through the store.
pub async fn seed(store: &dyn Store) -> World {
    let sys = Actor::System;
    let admin = Pak::generate();
    store
        .rotate_api_key(&sys, KeyOwner::Admin, admin.stored())
        .await
        .expect("issue the admin key");

    let agent_key = Pak::generate();
    let agent = store
        .create_agent(&sys, new_agent("agent-a", &agent_key))
        .await
        .expect("create agent");
    let other_agent_key = Pak::generate();
    let other_agent = store
        .create_agent(&sys, new_agent("agent-b", &other_agent_key))
        .await
        .expect("create other agent");
    let revoked = Pak::generate();
    let rotated = store
        .create_agent(&sys, new_agent("agent-rotated", &revoked))
        .await
        .expect("create rotated agent");
    store
        .rotate_api_key(&sys, KeyOwner::Agent(rotated.id), Pak::generate().stored())
        .await
        .expect("rotate");

    let generator_key = Pak::generate();
    let generator = store
        .create_generator(
            &sys,
            NewGenerator {
                name: "gen-a".into(),
                description: None,
                key: generator_key.stored(),
            },
        )
        .await
        .expect("create generator");
    let other_generator_key = Pak::generate();
    let other_generator = store
        .create_generator(
            &sys,
            NewGenerator {
                name: "gen-b".into(),
                description: None,
                key: other_generator_key.stored(),
            },
        )
        .await
        .expect("create other generator");

    let stack = store
        .create_stack(
            &sys,
            NewStack {
                name: "stack-a".into(),
                description: Some("seeded".into()),
                generator_id: Some(generator.id),
                labels: labels("team", "blue"),
                annotations: labels("note", "hello"),
            },
        )
        .await
        .expect("create stack");
    let spare_stack = store
        .create_stack(
            &sys,
            NewStack {
                name: "stack-spare".into(),
                generator_id: Some(generator.id),
                ..Default::default()
            },
        )
        .await
        .expect("create spare stack");
    let other_stack = store
        .create_stack(
            &sys,
            NewStack {
                name: "stack-b".into(),
                generator_id: Some(other_generator.id),
                ..Default::default()
            },
        )
        .await
        .expect("create other stack");
    let object = store
        .append_deployment_object(
            &sys,
            NewDeploymentObject::from_yaml(stack.id, CONFIGMAP_YAML).expect("valid yaml"),
        )
        .await
        .expect("append");
    store
        .assign_stack(&sys, agent.id, stack.id)
        .await
        .expect("assign");
    store
        .set_placement_policy(&sys, stack.id, Some(seeded_policy()))
        .await
        .expect("set the seeded placement policy");
    for (field, key, value) in [
        (MetadataField::Labels, "team", "blue"),
        (MetadataField::Annotations, "note", "hello"),
    ] {
        store
            .put_metadata(&sys, MetadataTarget::Agent(agent.id), field, key, value)
            .await
            .expect("agent metadata");
    }
    let template = store
        .create_template(
            &sys,
            NewTemplate {
                name: "template-a".into(),
                description: None,
                generator_id: Some(generator.id),
                labels: labels("team", "blue"),
                annotations: labels("note", "hello"),
                content: "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ params.name }}\n"
                    .into(),
                parameters_schema: json!({"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}),
            },
        )
        .await
        .expect("create template");
    let event = store
        .record_agent_event(
            &Actor::Agent(agent.id),
            NewAgentEvent {
                id: brokkr_core::AgentEventId::new(),
                agent_id: agent.id,
                deployment_object_id: object.id,
                event_type: EventType::Apply,
                status: EventStatus::Success,
                message: Some("applied".into()),
            },
        )
        .await
        .expect("record event");

    let guarded = plans::seed(store, generator.id, stack.id).await;
    let (subscription, delivery) = seed_webhook(store, generator.id, stack.id).await;
    let rollout = rollouts::seed(store, generator.id, agent.id).await;

    World {
        admin_key: admin.expose().to_owned(),
        agent: agent.id,
        agent_key: agent_key.expose().to_owned(),
        other_agent: other_agent.id,
        other_agent_key: other_agent_key.expose().to_owned(),
        generator: generator.id,
        generator_key: generator_key.expose().to_owned(),
        other_generator: other_generator.id,
        other_generator_key: other_generator_key.expose().to_owned(),
        revoked_key: revoked.expose().to_owned(),
        stack: stack.id,
        deployment_object: object.id,
        spare_stack: spare_stack.id,
        other_stack: other_stack.id,
        template: template.id,
        event: event.id.into(),
        guarded_stack: guarded.stack,
        old_deployment_object: guarded.old_object,
        held_plan: guarded.held_plan,
        plan: guarded.plan,
        subscription,
        delivery,
        rollout_stack: rollout.stack,
        rollout: rollout.rollout,
    }
}

/// A disabled subscription of `generator` to `stack` with one dead delivery.
async fn seed_webhook(
    store: &dyn Store,
    generator: GeneratorId,
    stack: StackId,
) -> (SubscriptionId, DeliveryId) {
    let sys = Actor::System;
    let keyring = brokkr_core::webhook::Keyring::parse([TEST_WEBHOOK_KEY]).expect("a test key");
    let subscription = store
        .create_subscription(
            &sys,
            NewSubscription {
                owner: SubscriptionOwner::Generator(generator),
                url: "https://hooks.invalid/seeded".into(),
                description: None,
                event_types: vec![WebhookEventType::DeploymentObjectCreated],
                stack_id: Some(stack),
                labels: None,
                sealed_secret: keyring.seal(b"whsec_seeded"),
            },
        )
        .await
        .expect("create a subscription");
    let delivery = store
        .queue_test_delivery(&sys, subscription.id)
        .await
        .expect("queue a test delivery");
    // Dead (so a redelivery changes it), as a dispatcher would have left it.
    let now = chrono::Utc::now() + chrono::TimeDelta::seconds(1);
    let claimed = store
        .claim_webhook_deliveries("seed", now, now + chrono::TimeDelta::seconds(60), 10)
        .await
        .expect("claim the test delivery");
    assert_eq!(
        claimed.len(),
        1,
        "the seeded subscription's head is its test delivery"
    );
    store
        .finish_webhook_delivery(
            "seed",
            delivery.id,
            now,
            DeliveryOutcome::Failed {
                status: Some(500),
                error: "answered 500".into(),
                retry_at: None,
            },
        )
        .await
        .expect("finish the test delivery");
    store
        .update_subscription(
            &sys,
            subscription.id,
            SubscriptionUpdate {
                enabled: Some(false),
                ..SubscriptionUpdate::default()
            },
        )
        .await
        .expect("disable the subscription");
    (subscription.id, delivery.id)
}

/// Who makes a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Caller {
    /// No `Authorization` header.
    NoKey,
    /// `Bearer not-a-key`.
    Malformed,
    /// A well-formed key the server never issued.
    Unknown,
    /// A key revoked by rotation.
    Revoked,
    /// The admin.
    Admin,
    /// The agent the path names (or `World::agent`).
    Agent,
    /// Another agent.
    OtherAgent,
    /// The generator owning the stack or template in the path (`World::generator`).
    Generator,
    /// Another generator.
    OtherGenerator,
}

impl Caller {
    /// Every caller, in table order.
    pub const ALL: [Caller; 9] = [
        Caller::NoKey,
        Caller::Malformed,
        Caller::Unknown,
        Caller::Revoked,
        Caller::Admin,
        Caller::Agent,
        Caller::OtherAgent,
        Caller::Generator,
        Caller::OtherGenerator,
    ];

    /// The `Authorization` header value, if any.
    pub fn authorization(self, world: &World) -> Option<String> {
        let key = match self {
            Caller::NoKey => return None,
            Caller::Malformed => return Some("Bearer not-a-key".into()),
            Caller::Unknown => Pak::generate().expose().to_owned(),
            Caller::Revoked => world.revoked_key.clone(),
            Caller::Admin => world.admin_key.clone(),
            Caller::Agent => world.agent_key.clone(),
            Caller::OtherAgent => world.other_agent_key.clone(),
            Caller::Generator => world.generator_key.clone(),
            Caller::OtherGenerator => world.other_generator_key.clone(),
        };
        Some(format!("Bearer {key}"))
    }
}

// ---------------------------------------------------------------------------------------
// Requests

/// A request to the app.
#[derive(Debug, Clone)]
pub struct Req {
    /// `GET`, `POST`, ...
    pub method: String,
    /// Path with query, e.g. `/api/v1/stacks?limit=5`.
    pub path: String,
    /// `Authorization` header value.
    pub authorization: Option<String>,
    /// Body bytes and content type.
    pub body: Option<(Vec<u8>, String)>,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
}

impl Req {
    /// A request without key or body.
    pub fn new(method: &str, path: impl Into<String>) -> Self {
        Self {
            method: method.to_owned(),
            path: path.into(),
            authorization: None,
            body: None,
            headers: Vec::new(),
        }
    }

    /// Sends `key` as a bearer token.
    pub fn key(mut self, key: &str) -> Self {
        self.authorization = Some(format!("Bearer {key}"));
        self
    }

    /// Sets the `Authorization` header of `caller`.
    pub fn caller(mut self, caller: Caller, world: &World) -> Self {
        self.authorization = caller.authorization(world);
        self
    }

    /// A JSON body.
    pub fn json(mut self, body: &Value) -> Self {
        self.body = Some((
            serde_json::to_vec(body).expect("serialize"),
            "application/json".into(),
        ));
        self
    }

    /// Raw body bytes with a content type.
    pub fn raw(mut self, body: impl Into<Vec<u8>>, content_type: &str) -> Self {
        self.body = Some((body.into(), content_type.to_owned()));
        self
    }

    /// An extra header.
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// An answer.
#[derive(Debug, Clone)]
pub struct Resp {
    /// Status code.
    pub status: u16,
    /// Headers, lowercase names.
    pub headers: Vec<(String, String)>,
    /// The body as text.
    pub text: String,
}

impl Resp {
    /// The body as JSON (`Null` when it is not JSON).
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.text).unwrap_or(Value::Null)
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Panics with the body unless the status is `expected`.
    #[track_caller]
    pub fn expect(&self, expected: u16) -> &Self {
        assert_eq!(
            self.status, expected,
            "expected {expected}, got {}: {}",
            self.status, self.text
        );
        self
    }
}

type BoxedApp = poem::endpoint::BoxEndpoint<'static, poem::Response>;

/// What carries requests.
pub enum Transport {
    /// In process.
    InProcess(TestClient<BoxedApp>),
    /// Over a socket.
    Socket {
        /// `http://127.0.0.1:port`.
        base: String,
        /// The client.
        client: reqwest::Client,
    },
}

/// Installs the process-wide rustls provider once (reqwest is built without one).
pub fn install_crypto() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A registered Rust generator for tests: `configmap` makes one ConfigMap named
/// `params.name` holding `params.data`.
pub struct ConfigMapGenerator {
    schema: brokkr_core::schema::ParameterSchema,
}

impl ConfigMapGenerator {
    pub fn new() -> Self {
        let schema = json!({
            "type": "object",
            "required": ["name"],
            "additionalProperties": false,
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z][a-z0-9-]*$"},
                "data": {"type": "object", "additionalProperties": {"type": "string"}, "default": {"from": "generator"}}
            }
        });
        Self {
            schema: brokkr_core::schema::ParameterSchema::compile(&schema).expect("schema"),
        }
    }
}

impl brokkr_core::Generator for ConfigMapGenerator {
    fn name(&self) -> &str {
        "configmap"
    }

    fn description(&self) -> &str {
        "one ConfigMap"
    }

    fn parameters_schema(&self) -> Value {
        self.schema.as_value().clone()
    }

    fn generate(
        &self,
        request: &brokkr_core::GenerateRequest<'_>,
    ) -> brokkr_core::generator::Result<brokkr_core::Generated> {
        let params = self
            .schema
            .prepare(request.parameters)
            .map_err(brokkr_core::generator::Error::InvalidParameters)?;
        let manifest = brokkr_core::Manifest::from_value(json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": params["name"], "labels": {"stack": request.stack.name}},
            "data": params["data"],
        }))
        .map_err(brokkr_core::generator::Error::InvalidOutput)?;
        brokkr_core::Generated::from_manifests(&[manifest], params, request.limits)
    }
}

/// The generators every test server registers.
pub fn test_generators() -> GeneratorRegistry {
    let mut registry = GeneratorRegistry::new();
    registry.register(ConfigMapGenerator::new());
    registry
}

/// Builds the state the server would build.
pub fn app_state(store: Arc<dyn Store>, config: Config) -> AppState {
    AppState::new(store, config, test_generators())
}

/// One running server replica: its state, its background tasks, how to reach it.
pub struct Replica {
    /// The shared state it serves with.
    pub state: AppState,
    /// How requests reach it.
    pub transport: Transport,
    background: Option<Background>,
    server: Option<(
        tokio::sync::oneshot::Sender<()>,
        tokio::task::JoinHandle<()>,
    )>,
}

impl Replica {
    /// Starts a replica over `store`: in process (state, background tasks and
    /// `brokkr_server::app`), or over a socket through `Server::bind_with_store` on
    /// 127.0.0.1:0 and `Server::run`, the code path of `brokkr-server serve`.
    pub async fn start(store: Arc<dyn Store>, mut config: Config, mode: Mode) -> Replica {
        match mode {
            Mode::InProcess => {
                let state = app_state(store, config);
                let background = state.control_plane.start();
                let app: BoxedApp = brokkr_server::app::app(state.clone())
                    .map_to_response()
                    .boxed();
                Replica {
                    state,
                    transport: Transport::InProcess(TestClient::new(app)),
                    background: Some(background),
                    server: None,
                }
            }
            Mode::Socket => {
                install_crypto();
                config.server.listen = "127.0.0.1:0".into();
                let server = Server::bind_with_store(store, config, test_generators())
                    .await
                    .expect("bind 127.0.0.1:0");
                let addr = server.local_addr();
                let state = server.state().clone();
                let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
                let task = tokio::spawn(async move {
                    let shutdown = async move {
                        let _ = stopped.await;
                    };
                    if let Err(err) = server.run(shutdown).await {
                        eprintln!("server on {addr} failed: {err}");
                    }
                });
                Replica {
                    state,
                    transport: Transport::Socket {
                        base: format!("http://{addr}"),
                        client: reqwest::Client::builder()
                            .timeout(Duration::from_secs(30))
                            .build()
                            .expect("build a client"),
                    },
                    background: None,
                    server: Some((stop, task)),
                }
            }
        }
    }

    /// Sends a request to this replica.
    pub async fn send(&self, req: Req) -> Resp {
        send(&self.transport, req).await
    }

    /// Stops it: a graceful shutdown (bounded) for a socket server.
    pub async fn stop(mut self) {
        if let Some(background) = self.background.take() {
            background.shutdown().await;
        }
        if let Some((stop, task)) = self.server.take() {
            let _ = stop.send(());
            let abort = task.abort_handle();
            if tokio::time::timeout(Duration::from_secs(10), task)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
    }
}

/// The app under test, its store and its world.
pub struct TestApp {
    /// The replica serving the app.
    pub replica: Replica,
    /// Its shared state (its store is the seeded one).
    pub state: AppState,
    /// The seeded fixtures.
    pub world: World,
    guard: StoreGuard,
}

impl TestApp {
    /// An in-process app over a fresh `backend` store with [`test_config`], or `None`
    /// when PostgreSQL is unavailable.
    pub async fn start(backend: Backend) -> Option<TestApp> {
        Self::start_with(backend, Mode::InProcess, test_config()).await
    }

    /// An app over a fresh `backend` store, reached as `mode` says, configured by
    /// `config`.
    pub async fn start_with(backend: Backend, mode: Mode, config: Config) -> Option<TestApp> {
        let (store, guard) = store(backend).await?;
        let world = seed(store.as_ref()).await;
        let replica = Replica::start(store, config, mode).await;
        Some(TestApp {
            state: replica.state.clone(),
            replica,
            world,
            guard,
        })
    }

    /// The store.
    pub fn store(&self) -> &dyn Store {
        self.state.control_plane.store().as_ref()
    }

    /// A URL to the store's database, for a test that reaches past the server (a
    /// change made directly in the database); `None` for the memory store.
    pub fn database_url(&self) -> Option<String> {
        match &self.guard {
            StoreGuard::Memory => None,
            StoreGuard::Sqlite(dir) => Some(format!(
                "sqlite://{}?mode=rw",
                dir.path().join("brokkr.db").display()
            )),
            StoreGuard::Postgres(db) => Some(db.url.clone()),
        }
    }

    /// Sends a request.
    pub async fn send(&self, req: Req) -> Resp {
        self.replica.send(req).await
    }

    /// GET with a key.
    pub async fn get(&self, path: &str, key: &str) -> Resp {
        self.send(Req::new("GET", path).key(key)).await
    }

    /// POST JSON with a key.
    pub async fn post(&self, path: &str, key: &str, body: &Value) -> Resp {
        self.send(Req::new("POST", path).key(key).json(body)).await
    }

    /// GET as admin.
    pub async fn admin_get(&self, path: &str) -> Resp {
        let key = self.world.admin_key.clone();
        self.get(path, &key).await
    }

    /// Every page of the listing at `path_and_query` (which has a `?`) as `key`,
    /// following `next_cursor`; each page answered 200.
    pub async fn pages(&self, key: &str, path_and_query: &str) -> Vec<Value> {
        let mut pages = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..100 {
            let url = match &cursor {
                Some(c) => format!("{path_and_query}&cursor={c}"),
                None => path_and_query.to_owned(),
            };
            let resp = self.get(&url, key).await;
            resp.expect(200);
            let page = resp.json();
            cursor = page["next_cursor"].as_str().map(str::to_owned);
            pages.push(page);
            if cursor.is_none() {
                return pages;
            }
        }
        panic!("the listing at {path_and_query} does not end");
    }

    /// POST as admin.
    pub async fn admin_post(&self, path: &str, body: &Value) -> Resp {
        let key = self.world.admin_key.clone();
        self.post(path, &key, body).await
    }

    /// Every audit record (admin listing, all pages).
    pub async fn audit_count(&self) -> usize {
        self.count_all("/api/v1/admin/audit-logs").await
    }

    /// Rows of a paginated listing, all pages, as admin.
    pub async fn count_all(&self, path: &str) -> usize {
        let mut total = 0;
        let mut cursor: Option<String> = None;
        for _ in 0..1000 {
            let sep = if path.contains('?') { '&' } else { '?' };
            let url = match &cursor {
                Some(c) => format!("{path}{sep}limit=1000&cursor={c}"),
                None => format!("{path}{sep}limit=1000"),
            };
            let resp = self.admin_get(&url).await;
            resp.expect(200);
            let body = resp.json();
            total += body["items"].as_array().map_or(0, Vec::len);
            match body["next_cursor"].as_str() {
                Some(next) => cursor = Some(next.to_owned()),
                None => return total,
            }
        }
        panic!("{path}: more than 1000 pages");
    }

    /// Stops the server and drops the store's resources (the PostgreSQL database).
    pub async fn teardown(self) {
        self.replica.stop().await;
        drop(self.state);
        teardown_guard(self.guard).await;
    }
}

/// Releases a store's backing resources.
pub async fn teardown_guard(guard: StoreGuard) {
    match guard {
        StoreGuard::Memory => {}
        StoreGuard::Sqlite(dir) => drop(dir),
        StoreGuard::Postgres(db) => {
            // Let the pool's connections close before dropping the database.
            tokio::time::sleep(Duration::from_millis(50)).await;
            db.drop_database().await;
        }
    }
}

/// Sends `req` through `transport`.
pub async fn send(transport: &Transport, req: Req) -> Resp {
    match transport {
        Transport::InProcess(client) => {
            let method: poem::http::Method = req.method.parse().expect("method");
            let mut builder = client.request(method, req.path.clone());
            if let Some(auth) = &req.authorization {
                builder = builder.header("authorization", auth.as_str());
            }
            for (name, value) in &req.headers {
                builder = builder.header(name.as_str(), value.as_str());
            }
            if let Some((bytes, content_type)) = req.body {
                builder = builder.content_type(content_type).body(bytes);
            }
            let resp = builder.send().await.0;
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_ascii_lowercase(),
                        v.to_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            let text = resp
                .into_body()
                .into_string()
                .await
                .unwrap_or_else(|err| format!("<unreadable body: {err}>"));
            Resp {
                status,
                headers,
                text,
            }
        }
        Transport::Socket { base, client, .. } => {
            let method: reqwest::Method = req.method.parse().expect("method");
            let mut builder = client.request(method, format!("{base}{}", req.path));
            if let Some(auth) = &req.authorization {
                builder = builder.header("authorization", auth.as_str());
            }
            for (name, value) in &req.headers {
                builder = builder.header(name.as_str(), value.as_str());
            }
            if let Some((bytes, content_type)) = req.body {
                builder = builder.header("content-type", content_type).body(bytes);
            }
            let resp = builder.send().await.expect("send over the socket");
            let status = resp.status().as_u16();
            let headers = resp
                .headers()
                .iter()
                .map(|(n, v)| {
                    (
                        n.as_str().to_ascii_lowercase(),
                        v.to_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect();
            let text = resp.text().await.unwrap_or_default();
            Resp {
                status,
                headers,
                text,
            }
        }
    }
}

/// Asserts the standard error body: `{code, message}` with a snake_case code.
#[track_caller]
pub fn assert_error_body(resp: &Resp, context: &str) {
    let body = resp.json();
    let code = body["code"].as_str().unwrap_or_default();
    assert!(
        !code.is_empty()
            && code
                .chars()
                .all(|c| c.is_ascii_lowercase() || c == '_' || c.is_ascii_digit()),
        "{context}: error body without a snake_case code: {} {}",
        resp.status,
        resp.text
    );
    assert!(
        body["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{context}: error body without a message: {}",
        resp.text
    );
}
