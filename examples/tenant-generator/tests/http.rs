//! The tenant generator over HTTP: the reference server, started in process on
//! 127.0.0.1:0 over the control plane's own store, the code path of `serve`.

use std::time::Duration;

use brokkr_core::{ContentListing, PageRequest, StackId};
use brokkr_example_tenant_generator::{Agents, ControlPlane, TenantSpec, generators};
use brokkr_server::config::Config;
use brokkr_server::serve::Server;
use serde_json::{Value, json};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// A running server sharing the control plane's SQLite file.
struct Running {
    control_plane: ControlPlane,
    base: String,
    admin_key: String,
    client: reqwest::Client,
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
    _dir: tempfile::TempDir,
}

impl Running {
    async fn start() -> Running {
        // reqwest is built without a TLS provider; plain HTTP still needs one installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().expect("create a temporary directory");
        let url = format!(
            "sqlite://{}?mode=rwc",
            dir.path().join("tenants.db").display()
        );
        let control_plane = ControlPlane::open(&url).await.expect("open the store");
        let mut config = Config::default();
        config.server.listen = "127.0.0.1:0".into();
        config.server.shutdown_grace_secs = 1;
        let mut server =
            Server::bind_with_store(control_plane.store().clone(), config, generators())
                .await
                .expect("bind 127.0.0.1:0");
        let admin_key = server
            .take_admin_key()
            .expect("a new store gets an admin key")
            .expose()
            .to_owned();
        let base = format!("http://{}/api/v1", server.local_addr());
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let shutdown = async move {
                let _ = stopped.await;
            };
            server.run(shutdown).await.expect("serve");
        });
        Running {
            control_plane,
            base,
            admin_key,
            client: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .expect("build a client"),
            stop,
            task,
            _dir: dir,
        }
    }

    async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .client
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.admin_key)
            .send()
            .await
            .expect("send");
        (
            resp.status().as_u16(),
            resp.json().await.expect("a JSON body"),
        )
    }

    async fn post(&self, path: &str, body: &Value) -> (u16, Value) {
        let resp = self
            .client
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.admin_key)
            .json(body)
            .send()
            .await
            .expect("send");
        (
            resp.status().as_u16(),
            resp.json().await.expect("a JSON body"),
        )
    }

    async fn versions(&self, stack: StackId) -> usize {
        self.control_plane
            .store()
            .list_deployment_objects(stack, ContentListing::Omit, &PageRequest::first(100))
            .await
            .unwrap()
            .items
            .len()
    }

    async fn stop(self) {
        let _ = self.stop.send(());
        tokio::time::timeout(Duration::from_secs(10), self.task)
            .await
            .expect("the server stops")
            .expect("the server task ends cleanly");
    }
}

#[tokio::test]
async fn the_server_serves_the_tenant_generator() {
    let running = Running::start().await;

    let (status, body) = running.get("/registered-generators").await;
    assert_eq!(status, 200, "{body}");
    let items = body["items"].as_array().expect("items");
    assert_eq!(items.len(), 1, "{body}");
    assert_eq!(items[0]["name"], "tenant");
    assert_eq!(
        items[0]["parameters_schema"]["properties"]["plan"]["enum"],
        json!(["free", "pro"])
    );

    // The control plane makes the stack; HTTP callers generate into it.
    let onboarded = running
        .control_plane
        .onboard(&TenantSpec::new("acme"), &Agents::none())
        .await
        .unwrap();
    let stack = onboarded.stack.id;
    let path = format!("/stacks/{stack}/deployment-objects/from-template");

    let (status, body) = running
        .post(
            &path,
            &json!({"generator": "tenant", "parameters": {"name": "acme", "plan": "pro"}, "dry_run": true}),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    let objects: Vec<(&str, &str)> = body["objects"]
        .as_array()
        .expect("objects")
        .iter()
        .map(|o| (o["kind"].as_str().unwrap(), o["name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        objects,
        [
            ("Namespace", "tenant-acme"),
            ("ResourceQuota", "tenant-quota"),
            ("Deployment", "acme")
        ]
    );
    assert_eq!(body["provenance"]["generator"], "tenant");
    assert_eq!(body["provenance"]["parameters"]["replicas"], 3);
    let manifests = brokkr_core::manifest::parse(body["yaml_content"].as_str().unwrap()).unwrap();
    assert_eq!(
        manifests[1].as_value()["spec"]["hard"]["requests.cpu"],
        "16",
        "the pro quota"
    );
    assert_eq!(
        running.versions(stack).await,
        1,
        "a dry run stored something"
    );

    let (status, body) = running
        .post(
            &path,
            &json!({"generator": "tenant", "parameters": {"name": "acme", "replicas": 0, "plan": "gold"}}),
        )
        .await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["code"], "invalid_parameters");
    let mut pointers: Vec<&str> = body["details"]["violations"]
        .as_array()
        .expect("violations")
        .iter()
        .map(|v| v["pointer"].as_str().unwrap())
        .collect();
    pointers.sort();
    assert_eq!(pointers, ["/plan", "/replicas"]);

    let (status, body) = running
        .post(
            &path,
            &json!({"generator": "tenants", "parameters": {"name": "acme"}}),
        )
        .await;
    assert_eq!(status, 404, "{body}");

    // Stored over HTTP: the same output the library produced for the same spec.
    let (status, body) = running
        .post(
            &path,
            &json!({"generator": "tenant", "parameters": {"name": "acme"}}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["stack_id"], stack.to_string());
    assert_eq!(body["provenance"]["generator"], "tenant");
    assert_eq!(body["provenance"]["template_id"], Value::Null);
    assert_eq!(
        body["provenance"]["parameters"],
        json!({"name": "acme", "plan": "free", "replicas": 1, "image": "nginx:1.27"})
    );
    assert_eq!(
        body["yaml_content"],
        onboarded.deployment_object.yaml_content.as_str()
    );
    assert!(body["sequence_id"].as_i64().unwrap() > onboarded.deployment_object.sequence);
    assert_eq!(running.versions(stack).await, 2);

    running.stop().await;
}
