//! Webhook deliveries survive what real servers go through, with the real binary:
//!
//! - `kill -9` while deliveries are in flight, then a restart on the same database: every
//!   event committed before the kill reaches the receiver, and an event received twice
//!   carries the same delivery id both times (SQLite and PostgreSQL).
//! - Two replicas on one PostgreSQL: each event is delivered by one of them; a repeat
//!   is only ever a retry with the same delivery id.
//!
//! The servers are `brokkr-server serve` processes; the receiver is the loopback one of
//! `common::receiver`, answering slowly so that deliveries are in flight when the
//! server dies.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver as Lines, channel};
use std::time::{Duration, Instant};

use common::PgDatabase;
use common::receiver::{Answer, Received, Receiver};
use serde_json::{Value, json};

/// A key to seal subscription secrets with (test only).
const SEALING_KEY: &str = "t1:AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// How long the receiver takes to answer each delivery: long enough that a few are in
/// flight when the server is killed.
const SLOW_ANSWER: Duration = Duration::from_millis(150);
const EVENTS: usize = 24;
const WITHIN: Duration = Duration::from_secs(60);

/// One `brokkr-server serve` process.
struct Server {
    child: Child,
    lines: Lines<String>,
    base: String,
    admin_key: Option<String>,
    /// "webhook delivered" lines read so far.
    delivered: usize,
}

impl Server {
    /// Starts the server; `first` says it is the first start on this database, which
    /// prints the admin key (after it listens, possibly on the other stream).
    fn start(dir: &Path, database_url: &str, receiver: &Receiver, first: bool) -> Server {
        let mut child = Command::new(env!("CARGO_BIN_EXE_brokkr-server"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .current_dir(dir)
            .env("BROKKR__DATABASE__URL", database_url)
            .env("BROKKR__LOG__FILTER", "info")
            .env("BROKKR__LOG__FORMAT", "text")
            .env("NO_COLOR", "1")
            .env("BROKKR__WEBHOOKS__KEYS", SEALING_KEY)
            .env("BROKKR__WEBHOOKS__ALLOWED_HOSTS", receiver.host_port())
            .env("BROKKR__WEBHOOKS__TIMEOUT_MILLIS", "2000")
            .env("BROKKR__WEBHOOKS__LEASE_SECS", "3")
            .env("BROKKR__WEBHOOKS__POLL_MILLIS", "50")
            .env("BROKKR__WEBHOOKS__BACKOFF_BASE_MILLIS", "100")
            .env("BROKKR__WEBHOOKS__BACKOFF_MAX_SECS", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start brokkr-server");
        let (send, lines) = channel();
        for stream in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let send = send.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if send.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        let mut server = Server {
            child,
            lines,
            base: String::new(),
            admin_key: None,
            delivered: 0,
        };
        server.until_listening(first);
        server
    }

    /// Reads output until the log says where the server listens and, on a first start,
    /// the admin key was printed.
    fn until_listening(&mut self, first: bool) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            if let Some(key) = line.strip_prefix("admin key (shown once): ") {
                self.admin_key = Some(key.trim().to_owned());
            }
            if line.contains("listening") {
                let addr = line
                    .split_whitespace()
                    .find_map(|field| field.strip_prefix("addr="))
                    .expect("the listening line names its address");
                self.base = format!("http://{addr}/api/v1");
            }
            if !self.base.is_empty() && (!first || self.admin_key.is_some()) {
                return;
            }
        }
        panic!("brokkr-server did not start listening (and print its key, if first) within 30 s");
    }

    /// How many attempts this server logged as delivered so far.
    fn delivered_count(&mut self) -> usize {
        while let Ok(line) = self.lines.try_recv() {
            self.delivered += usize::from(line.contains("webhook delivered"));
        }
        self.delivered
    }

    /// `kill -9`: no shutdown, nothing flushed.
    fn kill(mut self) {
        self.child.kill().expect("SIGKILL brokkr-server");
        self.child.wait().expect("reap brokkr-server");
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The admin's HTTP calls.
struct Api {
    http: reqwest::Client,
    key: String,
}

impl Api {
    async fn call(
        &self,
        server: &Server,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> Value {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", server.base))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("reach brokkr-server");
        let status = response.status();
        let text = response.text().await.expect("read the answer");
        assert!(status.is_success(), "{method} {path}: {status} {text}");
        serde_json::from_str(&text).unwrap_or(Value::Null)
    }

    /// Subscribes the receiver to new deployment objects through `subscribe_on`, then
    /// creates a stack named `name` through `stack_on`; answers the stack's id.
    async fn subscribe_and_make_stack(
        &self,
        subscribe_on: &Server,
        stack_on: &Server,
        receiver: &Receiver,
        name: &str,
    ) -> String {
        let subscription = json!({
            "url": receiver.url("/hook"),
            "event_types": ["deployment_object.created"],
        });
        self.call(
            subscribe_on,
            reqwest::Method::POST,
            "/webhooks",
            Some(subscription),
        )
        .await;
        self.call(
            stack_on,
            reqwest::Method::POST,
            "/stacks",
            Some(json!({ "name": name })),
        )
        .await["id"]
            .as_str()
            .expect("the stack's id")
            .to_owned()
    }

    async fn append(&self, server: &Server, stack: &str, n: usize) -> String {
        let yaml = format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: default\ndata:\n  n: \"{n}\"\n"
        );
        let response = self
            .http
            .post(format!("{}/stacks/{stack}/deployment-objects", server.base))
            .bearer_auth(&self.key)
            .header("content-type", "application/yaml")
            .body(yaml)
            .send()
            .await
            .expect("reach brokkr-server");
        let status = response.status();
        let body: Value = response.json().await.expect("JSON answer");
        assert!(status.is_success(), "append: {status} {body}");
        body["id"].as_str().expect("the object's id").to_owned()
    }
}

/// Which deployment object a delivery is about, and its delivery id.
fn delivered(received: &[Received]) -> Vec<(String, String)> {
    received
        .iter()
        .filter(|r| r.header("x-brokkr-event") == Some("deployment_object.created"))
        .map(|r| {
            let body = r.json();
            (
                body["data"]["deployment_object_id"]
                    .as_str()
                    .expect("the object's id")
                    .to_owned(),
                r.header("x-brokkr-delivery")
                    .expect("a delivery id")
                    .to_owned(),
            )
        })
        .collect()
}

/// Waits until every object in `objects` was delivered at least once.
async fn wait_for_all(receiver: &Receiver, objects: &[String]) -> Vec<(String, String)> {
    let deadline = Instant::now() + WITHIN;
    loop {
        let seen = delivered(&receiver.received());
        let ids: BTreeSet<&str> = seen.iter().map(|(object, _)| object.as_str()).collect();
        if objects.iter().all(|o| ids.contains(o.as_str())) {
            return seen;
        }
        assert!(
            Instant::now() < deadline,
            "{} of {} events delivered within {WITHIN:?}",
            ids.len(),
            objects.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Every object's deliveries carry one delivery id; returns how many were repeats.
fn assert_one_delivery_id_per_event(seen: &[(String, String)]) -> usize {
    let mut ids: BTreeMap<&str, BTreeSet<&str>> = BTreeMap::new();
    for (object, delivery) in seen {
        ids.entry(object).or_default().insert(delivery);
    }
    for (object, deliveries) in &ids {
        assert_eq!(
            deliveries.len(),
            1,
            "object {object} came with delivery ids {deliveries:?}"
        );
    }
    seen.len() - ids.len()
}

async fn kill_9_loses_nothing(database_url: &str) {
    common::install_crypto();
    let dir = tempfile::tempdir().expect("temporary directory");
    let receiver = Receiver::start().await;
    receiver.script((0..EVENTS * 2).map(|_| Answer::Sleep(SLOW_ANSWER)));
    let first = Server::start(dir.path(), database_url, &receiver, true);
    let api = Api {
        http: reqwest::Client::new(),
        key: first
            .admin_key
            .clone()
            .expect("a first start prints the admin key"),
    };
    let stack = api
        .subscribe_and_make_stack(&first, &first, &receiver, "durable")
        .await;
    let mut objects = Vec::new();
    for n in 0..EVENTS {
        objects.push(api.append(&first, &stack, n).await);
    }
    // Some delivered, the rest queued or in flight: now the server dies.
    receiver.wait_for(3, WITHIN).await;
    let before = delivered(&receiver.received()).len();
    first.kill();
    assert!(
        before < EVENTS,
        "the kill came after every delivery ({before})"
    );

    let second = Server::start(dir.path(), database_url, &receiver, false);
    let seen = wait_for_all(&receiver, &objects).await;
    let repeats = assert_one_delivery_id_per_event(&seen);
    // Order per subscription: first arrivals in the order the objects were created.
    let mut first_arrivals = Vec::new();
    for (object, _) in &seen {
        if !first_arrivals.contains(object) {
            first_arrivals.push(object.clone());
        }
    }
    assert_eq!(first_arrivals, objects, "delivered in order");
    eprintln!("{before} delivered before the kill, {repeats} repeated after it");
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_delivering_loses_nothing_on_sqlite() {
    let dir = tempfile::tempdir().expect("temporary directory");
    let url = format!(
        "sqlite://{}?mode=rwc",
        dir.path().join("brokkr.db").display()
    );
    kill_9_loses_nothing(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_while_delivering_loses_nothing_on_postgres() {
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    kill_9_loses_nothing(&db.url).await;
    db.drop_database().await;
}

/// Two replicas on one PostgreSQL, both dispatching: every event reaches the receiver
/// with one delivery id, whichever replica sent it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_deliver_each_event_once_on_postgres() {
    common::install_crypto();
    let Some(db) = PgDatabase::create().await else {
        return;
    };
    let dir = tempfile::tempdir().expect("temporary directory");
    let receiver = Receiver::start().await;
    let mut replicas = [
        Server::start(dir.path(), &db.url, &receiver, true),
        Server::start(dir.path(), &db.url, &receiver, false),
    ];
    let api = Api {
        http: reqwest::Client::new(),
        key: replicas[0]
            .admin_key
            .clone()
            .expect("the first start prints the admin key"),
    };
    let stack = api
        .subscribe_and_make_stack(&replicas[1], &replicas[0], &receiver, "replicated")
        .await;
    let mut objects = Vec::new();
    for n in 0..EVENTS * 2 {
        objects.push(api.append(&replicas[n % 2], &stack, n).await);
    }
    let seen = wait_for_all(&receiver, &objects).await;
    let repeats = assert_one_delivery_id_per_event(&seen);
    assert_eq!(repeats, 0, "a healthy receiver gets each event once");
    // Let a late duplicate, if any, arrive before counting again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let seen = delivered(&receiver.received());
    assert_eq!(seen.len(), objects.len(), "no event delivered twice");
    let split = [replicas[0].delivered_count(), replicas[1].delivered_count()];
    assert_eq!(
        split[0] + split[1],
        objects.len(),
        "each delivery logged by the replica that made it"
    );
    eprintln!("deliveries by replica: {split:?}");
    drop(replicas);
    db.drop_database().await;
}
