//! The example over HTTP: its binary serves on 127.0.0.1:0, and its own placement
//! decides a stack with its own reason code.

use std::process::Stdio;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

struct Api {
    base: String,
    key: String,
    client: reqwest::Client,
}

impl Api {
    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = self
            .client
            .request(method, format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("send");
        let status = response.status().as_u16();
        let text = response.text().await.expect("body");
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn the_custom_placement_decides_with_its_own_reason() {
    // reqwest is built without a TLS provider; plain HTTP still needs one installed.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let mut child = Command::new(env!("CARGO_BIN_EXE_custom-placement"))
        .arg("127.0.0.1:0")
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start the example");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = tokio::time::timeout(Duration::from_secs(60), lines.next_line())
        .await
        .expect("the example starts within a minute")
        .expect("read stdout")
        .expect("a first line");
    // "listening on http://127.0.0.1:PORT admin key brokkr_..."
    let words: Vec<&str> = line.split_whitespace().collect();
    let api = Api {
        base: words[2].to_owned(),
        key: words[5].to_owned(),
        client: reqwest::Client::new(),
    };
    use reqwest::Method;

    let mut agents = Vec::new();
    for name in ["edge-1", "core-1"] {
        let body = json!({"name": name, "cluster_name": name});
        let (status, agent) = api.call(Method::POST, "/agents", Some(body)).await;
        assert_eq!(status, 201, "{agent}");
        agents.push(agent["agent"]["id"].as_str().expect("an id").to_owned());
    }
    let (status, stack) = api
        .call(Method::POST, "/stacks", Some(json!({"name": "web"})))
        .await;
    assert_eq!(status, 201, "{stack}");
    let stack = stack["id"].as_str().expect("an id").to_owned();
    let generate = json!({"generator": "hello", "parameters": {"message": "hi"}});
    let path = format!("/stacks/{stack}/deployment-objects/from-template");
    let (status, object) = api.call(Method::POST, &path, Some(generate)).await;
    assert_eq!(status, 201, "{object}");

    let path = format!("/stacks/{stack}/placement");
    let policy = json!({"placement": "name-prefix", "custom": {"prefix": "edge-"}});
    let (status, placed) = api.call(Method::PUT, &path, Some(policy)).await;
    assert_eq!(status, 200, "{placed}");
    assert_eq!(placed["decision"]["chosen"], json!([agents[0]]));
    let rejected = &placed["decision"]["rejected"];
    assert_eq!(rejected[0]["agent_id"], json!(agents[1]));
    assert_eq!(rejected[0]["reason"], "name_prefix");
    assert_eq!(
        placed["decision"]["rejected_by_reason"],
        json!({"name_prefix": 1})
    );
    let (status, read) = api.call(Method::GET, &path, None).await;
    assert_eq!((status, &read["decision"]), (200, &placed["decision"]));

    // The edge agent has the stack as a placement target.
    let (status, targets) = api
        .call(Method::GET, &format!("/agents/{}/targets", agents[0]), None)
        .await;
    assert_eq!(status, 200, "{targets}");
    assert!(targets.to_string().contains(&stack), "{targets}");

    // Its policy is its own to validate; an unknown placement is refused.
    let bad = json!({"placement": "name-prefix", "custom": {"prefix": 3}});
    let (status, error) = api.call(Method::PUT, &path, Some(bad)).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (422, Some("invalid_policy"))
    );
    let unknown = json!({"placement": "nearest", "custom": {}});
    let (status, error) = api.call(Method::PUT, &path, Some(unknown)).await;
    assert_eq!(
        (status, error["code"].as_str()),
        (422, Some("unknown_placement"))
    );
    child.kill().await.expect("stop the example");
}
