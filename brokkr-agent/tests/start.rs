//! `brokkr-agent start` as a whole: `brokkr_agent::start::run` against the reference
//! server over HTTPS (trusted through the CA file, and refused without it) and the
//! Kubernetes API emulator (including one that appears only after the agent started),
//! and the binary itself for what only a process shows: its help text, and logs
//! without colours when stderr is a pipe.

mod emulator;
#[path = "../../brokkr-server/tests/common/test_ca.rs"]
mod test_ca;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use brokkr_agent::config::{Config, Secret};
use brokkr_core::{Actor, AgentId, KeyOwner, NewAgent, Pak, Store};
use brokkr_server::config::TlsSection;
use brokkr_server::serve::Server;
use brokkr_store::SqlStore;
use emulator::Emulator;
use serde_json::Value;
use test_ca::{PairOnDisk, TestCa};

const WAIT: Duration = Duration::from_secs(30);

/// The reference server over HTTPS with an admin key and one agent.
struct TlsBroker {
    url: String,
    admin: String,
    /// Trusts the test CA alone.
    http: reqwest::Client,
    agent_id: AgentId,
    agent_key: String,
    _stop: tokio::sync::oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

impl TlsBroker {
    async fn start(ca: &TestCa, files: &PairOnDisk) -> TlsBroker {
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
                    name: "edge-tls".into(),
                    cluster_name: "tls".into(),
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
        config.server.tls = Some(TlsSection {
            cert_file: files.cert.clone(),
            key_file: files.key.clone(),
            reload_secs: 0,
        });
        let server = Server::bind_with_store(Arc::new(store), config, Default::default())
            .await
            .expect("bind the server");
        let addr = server.local_addr();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        TlsBroker {
            url: format!("https://127.0.0.1:{}", addr.port()),
            admin: admin.expose().to_owned(),
            http: ca.client(),
            agent_id: agent.id,
            agent_key: agent_key.expose().to_owned(),
            _stop: stop,
            _dir: dir,
        }
    }

    /// The agent as the broker shows it.
    async fn agent(&self) -> Value {
        let response = self
            .http
            .get(format!("{}/api/v1/agents/{}", self.url, self.agent_id))
            .bearer_auth(&self.admin)
            .send()
            .await
            .expect("the broker answers over HTTPS");
        assert_eq!(response.status(), 200);
        response.json().await.expect("an agent")
    }

    /// The Kubernetes version of the agent's last heartbeat, if it sent one.
    async fn reported_version(&self) -> Option<String> {
        let agent = self.agent().await;
        agent["capabilities"]["kubernetes_version"]
            .as_str()
            .map(str::to_owned)
    }
}

/// A kubeconfig naming an API server at `server` (plain HTTP, no credentials).
fn kubeconfig(dir: &Path, server: &str) -> PathBuf {
    let path = dir.join("kubeconfig");
    let text = format!(
        "apiVersion: v1\nkind: Config\n\
         clusters:\n- name: test\n  cluster:\n    server: {server}\n\
         users:\n- name: test\n  user: {{}}\n\
         contexts:\n- name: test\n  context:\n    cluster: test\n    user: test\n\
         current-context: test\n"
    );
    std::fs::write(&path, text).expect("write the kubeconfig");
    path
}

fn agent_config(broker: &TlsBroker, kubeconfig: &Path, ca_file: Option<&Path>) -> Config {
    let mut config = Config::default();
    let agent = &mut config.agent;
    agent.broker_url = broker.url.clone();
    agent.pak = Secret::new(broker.agent_key.clone());
    agent.ca_file = ca_file.map(Path::to_owned);
    agent.kubeconfig = Some(kubeconfig.to_owned());
    agent.health_listen = "127.0.0.1:0".into();
    agent.heartbeat_interval_secs = 1;
    agent.poll_wait_secs = 2;
    agent.max_backoff_secs = 1;
    config
}

/// `start::run` on a task of its own, and what stops it.
struct Started {
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<Result<(), brokkr_agent::start::StartError>>,
}

impl Started {
    fn run(config: Config) -> Started {
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(brokkr_agent::start::run(config, async {
            let _ = stopped.await;
        }));
        Started { stop, task }
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(WAIT, self.task)
            .await
            .expect("the agent stops within the grace period")
            .expect("the agent task ends cleanly")
            .expect("the agent stops without an error");
    }
}

/// Waits until the broker has a heartbeat with the cluster's version.
async fn heartbeat_arrives(broker: &TlsBroker) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        if let Some(version) = broker.reported_version().await {
            return version;
        }
        assert!(Instant::now() < deadline, "no heartbeat within {WAIT:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn an_https_broker_is_trusted_through_the_ca_file_and_refused_without_it() {
    let ca = TestCa::new("brokkr test CA");
    let files = PairOnDisk::signed_by(&ca);
    let broker = TlsBroker::start(&ca, &files).await;
    let cluster = Emulator::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = kubeconfig(dir.path(), &cluster.url());
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();

    // The system's roots alone do not know the test CA: the agent keeps retrying.
    let untrusting = Started::run(agent_config(&broker, &kubeconfig, None));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(!untrusting.task.is_finished(), "a TLS failure is retried");
    assert_eq!(broker.reported_version().await, None);
    untrusting.stop().await;

    let trusting = Started::run(agent_config(&broker, &kubeconfig, Some(&ca_file)));
    let version = heartbeat_arrives(&broker).await;
    assert!(version.starts_with('v'), "{version}");
    trusting.stop().await;

    // A CA file that holds no certificate stops the start, naming the file.
    std::fs::write(&ca_file, "not a certificate").unwrap();
    let err = brokkr_agent::start::run(
        agent_config(&broker, &kubeconfig, Some(&ca_file)),
        std::future::pending(),
    )
    .await
    .expect_err("an unusable CA file");
    let text = brokkr_core::runtime::ErrorChain(&err).to_string();
    assert!(text.contains("ca.pem"), "{text}");
}

/// A loopback address nothing listens on (bound, then released).
fn closed_port() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    addr.to_string()
}

#[tokio::test]
async fn the_agent_waits_for_a_cluster_api_that_is_not_there_yet() {
    let ca = TestCa::new("brokkr test CA");
    let files = PairOnDisk::signed_by(&ca);
    let broker = TlsBroker::start(&ca, &files).await;
    let dir = tempfile::tempdir().unwrap();
    let addr = closed_port();
    let kubeconfig = kubeconfig(dir.path(), &format!("http://{addr}"));
    let ca_file = dir.path().join("ca.pem");
    std::fs::write(&ca_file, ca.pem()).unwrap();

    let agent = Started::run(agent_config(&broker, &kubeconfig, Some(&ca_file)));
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        !agent.task.is_finished(),
        "an unreachable cluster is retried"
    );
    assert_eq!(broker.reported_version().await, None);

    let cluster = Emulator::start_on(&addr).await;
    heartbeat_arrives(&broker).await;
    agent.stop().await;
    cluster.stop().await;
}

fn agent_binary() -> Command {
    Command::new(env!("CARGO_BIN_EXE_brokkr-agent"))
}

#[test]
fn start_help_names_every_flag_and_its_environment_variable() {
    let output = agent_binary()
        .args(["start", "--help"])
        .env("BROKKR__AGENT__PAK", "brokkr_abc_topsecret")
        .output()
        .expect("run brokkr-agent start --help");
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).unwrap();
    for expected in [
        "--broker-url",
        "BROKKR__AGENT__BROKER_URL",
        "--pak",
        "BROKKR__AGENT__PAK",
        "--ca-file",
        "BROKKR__AGENT__CA_FILE",
        "--kubeconfig",
        "BROKKR__AGENT__KUBECONFIG",
        "--config",
    ] {
        assert!(help.contains(expected), "{expected} missing from:\n{help}");
    }
    assert!(
        !help.contains("topsecret"),
        "the key's value is never shown"
    );
}

#[test]
fn logs_in_a_pipe_have_no_colours_and_name_the_unreachable_cluster_at_every_attempt() {
    let dir = tempfile::tempdir().unwrap();
    let addr = closed_port();
    let kubeconfig = kubeconfig(dir.path(), &format!("http://{addr}"));
    let mut child = agent_binary()
        .args(["start", "--kubeconfig"])
        .arg(&kubeconfig)
        .env(
            "BROKKR__AGENT__BROKER_URL",
            format!("http://{}", closed_port()),
        )
        .env("BROKKR__AGENT__PAK", "brokkr_abc_secret")
        .env("BROKKR__AGENT__HEALTH_LISTEN", "127.0.0.1:0")
        .env("BROKKR__AGENT__MAX_BACKOFF_SECS", "1")
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start brokkr-agent");
    let mut stderr = child.stderr.take().expect("piped stderr");
    let reader = std::thread::spawn(move || {
        let mut logs = String::new();
        let _ = stderr.read_to_string(&mut logs);
        logs
    });
    std::thread::sleep(Duration::from_millis(3500));
    let still_running = child.try_wait().expect("the agent's status").is_none();
    child.kill().expect("stop the agent");
    let _ = child.wait();
    let logs = reader.join().expect("the reader thread");

    assert!(still_running, "the agent exited:\n{logs}");
    assert!(!logs.contains('\u{1b}'), "ANSI escapes in a pipe:\n{logs}");
    let attempts = logs
        .lines()
        .filter(|line| line.contains("cluster API unreachable") && line.contains(&addr))
        .count();
    assert!(
        attempts >= 2,
        "expected repeated attempts naming {addr}:\n{logs}"
    );
}
