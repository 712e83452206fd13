//! The fleet simulator against the reference server (SQLite, real HTTP on loopback):
//! agents registered through the admin API, a stack assigned to each, a new deployment
//! object reaching every simulated agent, and the summary counting it.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use brokkr_agent::config::{AgentSection, Secret};
use brokkr_agent::simulate::{self, Options, Simulator};
use brokkr_core::{Actor, KeyOwner, Pak, Store};
use brokkr_server::serve::Server;
use brokkr_store::SqlStore;
use serde_json::{Value, json};

const WAIT: Duration = Duration::from_secs(30);
const AGENTS: usize = 3;

struct Broker {
    url: String,
    admin: String,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

impl Broker {
    async fn start() -> Broker {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}?mode=rwc", dir.path().join("sim.db").display());
        let store = SqlStore::connect(&url).await.expect("open SQLite");
        let admin = Pak::generate();
        store
            .rotate_api_key(&Actor::System, KeyOwner::Admin, admin.stored())
            .await
            .expect("admin key");
        let mut config = brokkr_server::config::Config::default();
        config.server.listen = "127.0.0.1:0".into();
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
            http: reqwest::Client::new(),
            _stop: stop,
            _dir: dir,
        }
    }

    async fn post(&self, path: &str, body: Value) -> Value {
        let response = self
            .http
            .post(format!("{}/api/v1{path}", self.url))
            .bearer_auth(&self.admin)
            .json(&body)
            .send()
            .await
            .expect("call the broker");
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        assert!(status.is_success(), "POST {path}: {status} {body}");
        body
    }

    async fn deploy(&self, stack: &str, round: u32) -> String {
        let yaml = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: settings\n  namespace: default\ndata:\n  round: \"{round}\"\n"
        );
        let object = self
            .post(
                &format!("/stacks/{stack}/deployment-objects"),
                json!({"yaml_content": yaml}),
            )
            .await;
        object["id"].as_str().expect("object id").to_owned()
    }
}

fn options(broker: &Broker) -> Options {
    Options {
        broker_url: broker.url.clone(),
        agents: AGENTS,
        admin_key: Some(Secret::new(broker.admin.clone())),
        prefix: "test-sim".into(),
        labels: BTreeMap::from([("fleet".to_owned(), "simulated".to_owned())]),
        ramp_per_sec: 0,
        agent: AgentSection {
            poll_wait_secs: 30,
            max_backoff_secs: 1,
            shutdown_grace_secs: 5,
            ..AgentSection::default()
        },
        ..Options::default()
    }
}

/// Waits until every agent applied `object`; returns the agents that did.
async fn every_agent_applies(
    applies: &mut tokio::sync::mpsc::UnboundedReceiver<simulate::Applied>,
    object: &str,
) -> HashSet<usize> {
    let mut agents = HashSet::new();
    let deadline = tokio::time::Instant::now() + WAIT;
    while agents.len() < AGENTS {
        let applied = tokio::time::timeout_at(deadline, applies.recv())
            .await
            .unwrap_or_else(|_| panic!("only agents {agents:?} applied {object} within {WAIT:?}"))
            .expect("the simulator is running");
        if applied.object.to_string() == object {
            agents.insert(applied.agent);
        }
    }
    agents
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_simulated_agent_applies_a_new_object_and_the_summary_counts_it() {
    let broker = Broker::start().await;
    let options = options(&broker);
    let registered = simulate::register(
        &broker.url,
        options.admin_key.as_ref().expect("admin key"),
        &options.prefix,
        0..AGENTS,
        &options.labels,
    )
    .await
    .expect("register the fleet");
    assert_eq!(registered.len(), AGENTS);
    let stack = broker.post("/stacks", json!({"name": "sim"})).await;
    let stack = stack["id"].as_str().expect("stack id").to_owned();
    for agent in &registered {
        broker
            .post(
                &format!("/agents/{}/targets", agent.id),
                json!({"stack_id": stack}),
            )
            .await;
    }
    let first = broker.deploy(&stack, 0).await;

    let keys = registered.iter().map(|r| r.key.clone()).collect();
    let simulator = Simulator::start(&options, keys).expect("start the fleet");
    let mut applies = simulator.subscribe();
    // The first version predates the agents: a catch-up, without a lag.
    every_agent_applies(&mut applies, &first).await;

    let second = broker.deploy(&stack, 1).await;
    let agents = every_agent_applies(&mut applies, &second).await;
    assert_eq!(agents, (0..AGENTS).collect());

    // Events and health are sent after the apply; wait for them to be counted.
    let deadline = tokio::time::Instant::now() + WAIT;
    let summary = loop {
        let summary = simulator.summary();
        let sent = |call: &str| {
            summary
                .requests
                .get(call)
                .and_then(|o| o.get("ok"))
                .copied()
        };
        if sent("event") >= Some(2 * AGENTS as u64) && sent("health") >= Some(2 * AGENTS as u64) {
            break summary;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "events and health not all sent: {summary:#?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(summary.agents.ready, AGENTS, "{summary:#?}");
    assert_eq!(summary.applies, 2 * AGENTS as u64, "{summary:#?}");
    assert_eq!(summary.catch_up_applies, AGENTS as u64, "{summary:#?}");
    assert_eq!((summary.holding, summary.up_to_date), (AGENTS, AGENTS));
    assert_eq!(summary.stacks, 1);
    let lag = summary.lag.expect("the second object's lag");
    assert_eq!(lag.count, AGENTS as u64);
    assert!(lag.max_ms < WAIT.as_secs_f64() * 1000.0, "{lag:?}");
    assert_eq!(summary.errors_total, 0, "{:#?}", summary.requests);
    let polls = &summary.requests["target_state"];
    assert!(polls["ok"] >= 2 * AGENTS as u64, "{polls:?}");
    assert_eq!(summary.requests["whoami"]["ok"], AGENTS as u64);
    assert!(summary.progress_line().contains("up to date 3/3"));
    if cfg!(target_os = "linux") {
        let process = summary.process;
        assert!(process.rss_kib > 0 && process.open_files > 0, "{process:?}");
        assert!(process.cpu_secs > 0.0, "{process:?}");
    }
    assert!(summary.to_string().contains("errors     none"));

    let last = simulator.stop().await;
    assert_eq!(last.applies, 2 * AGENTS as u64);
    assert_eq!(last.agents.stopped, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registering_again_reuses_the_agents_with_new_keys() {
    let broker = Broker::start().await;
    let options = options(&broker);
    let admin = options.admin_key.clone().expect("admin key");
    let first = simulate::register(&broker.url, &admin, "again", 0..2, &BTreeMap::new())
        .await
        .expect("first registration");
    let second = simulate::register(&broker.url, &admin, "again", 0..3, &options.labels)
        .await
        .expect("second registration");
    let ids = |r: &[simulate::Registered]| r.iter().map(|a| a.id).collect::<Vec<_>>();
    assert_eq!(ids(&second)[..2], ids(&first)[..], "the same agents");
    assert_eq!(second[2].name, "again-2");
    assert_ne!(second[0].key, first[0].key, "a rotated key");
    // The old key is revoked, the new one works, and the labels were set.
    let whoami = |key: Secret| {
        broker
            .http
            .post(format!("{}/api/v1/auth/pak", broker.url))
            .bearer_auth(key.expose().to_owned())
            .send()
    };
    let old = whoami(first[0].key.clone()).await.expect("call");
    assert_eq!(old.status(), 401);
    let new = whoami(second[0].key.clone()).await.expect("call");
    assert_eq!(new.status(), 200);
    let labels: Value = broker
        .http
        .get(format!(
            "{}/api/v1/agents/{}/labels",
            broker.url, second[0].id
        ))
        .bearer_auth(&broker.admin)
        .send()
        .await
        .expect("call")
        .json()
        .await
        .expect("labels");
    assert_eq!(labels, json!({"fleet": "simulated"}));
}

#[tokio::test]
async fn too_few_keys_without_an_admin_key_is_refused() {
    let options = Options {
        agents: 2,
        keys: vec![Secret::new("brokkr_a_b")],
        ..Options::default()
    };
    let err = simulate::obtain_keys(&options).await.unwrap_err();
    assert!(
        matches!(err, simulate::Error::NotEnoughKeys { wanted: 2, have: 1 }),
        "{err}"
    );
}
