//! The admin's view of the API: JSON calls and the counters of `/metrics`.

use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{Value, json};

use crate::Result;

/// Longest wait for one admin call.
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone)]
pub struct Admin {
    pub http: reqwest::Client,
    pub base: String,
    pub key: String,
}

impl Admin {
    pub fn new(base: &str, key: &str) -> Self {
        Self {
            http: reqwest::Client::new(),
            base: base.to_owned(),
            key: key.to_owned(),
        }
    }

    pub async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.key)
            .timeout(CALL_TIMEOUT);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await?;
        let status = response.status();
        let body: Value = response.json().await.unwrap_or(Value::Null);
        if status.is_success() {
            Ok(body)
        } else {
            Err(format!("{method} {path}: {status} {body}").into())
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> Result<Value> {
        self.call(Method::POST, path, Some(body)).await
    }

    pub async fn put(&self, path: &str, body: Value) -> Result<Value> {
        self.call(Method::PUT, path, Some(body)).await
    }

    pub async fn get(&self, path: &str) -> Result<Value> {
        self.call(Method::GET, path, None).await
    }

    /// A new stack; its id.
    pub async fn stack(&self, name: &str) -> Result<String> {
        let body = self.post("/stacks", json!({ "name": name })).await?;
        Ok(body["id"].as_str().ok_or("no stack id")?.to_owned())
    }

    /// Appends a deployment object to `stack`; its id.
    pub async fn deploy(&self, stack: &str, yaml: String) -> Result<String> {
        let body = self
            .post(
                &format!("/stacks/{stack}/deployment-objects"),
                json!({ "yaml_content": yaml }),
            )
            .await?;
        Ok(body["id"].as_str().ok_or("no object id")?.to_owned())
    }

    /// The stack's newest rollout, without its agents.
    pub async fn newest_rollout(&self, stack: &str) -> Result<Value> {
        let page = self
            .get(&format!("/stacks/{stack}/rollouts?limit=1"))
            .await?;
        Ok(page["items"][0].clone())
    }

    /// Polls the stack's newest rollout until it is in a final state, at most
    /// `timeout`; answers it then (or the last one read).
    pub async fn wait_final(&self, stack: &str, timeout: Duration) -> Result<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let rollout = self.newest_rollout(stack).await?;
            let state = rollout["state"].as_str().unwrap_or("");
            if is_final(state) || Instant::now() >= deadline {
                return Ok(rollout);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A value of the server's `/metrics` (the first series of that name).
    pub async fn metric(&self, name: &str) -> Result<f64> {
        let text = self
            .http
            .get(format!("{}/metrics", self.base))
            .timeout(Duration::from_secs(10))
            .send()
            .await?
            .text()
            .await?;
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                let (series, value) = l.rsplit_once(' ')?;
                let series = series.split('{').next()?;
                (series == name).then(|| value.trim().parse::<f64>().ok())?
            })
            .ok_or_else(|| format!("no {name} in /metrics").into())
    }

    /// The driver's counters: (evaluations, rollout and wave transitions).
    pub async fn driver_counts(&self) -> Result<(u64, u64)> {
        let evaluations = self.metric("brokkr_rollout_evaluations_total").await?;
        let transitions = self.metric("brokkr_rollout_transitions_total").await?;
        Ok((evaluations as u64, transitions as u64))
    }

    /// Waits until all but 0.1% of `agents` long polls are parked on the server;
    /// `false` on timeout.
    pub async fn settle(&self, agents: usize, timeout: Duration) -> Result<bool> {
        let deadline = Instant::now() + timeout;
        let enough = (agents - agents / 1000) as f64;
        loop {
            let watchers = self.metric("brokkr_target_state_watchers").await?;
            if watchers >= enough {
                return Ok(true);
            }
            if Instant::now() >= deadline {
                println!(
                    "  note: only {watchers} of {agents} agents in a long poll after {timeout:?}"
                );
                return Ok(false);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Whether a rollout state is final.
pub fn is_final(state: &str) -> bool {
    matches!(
        state,
        "succeeded" | "reverted" | "revert_failed" | "superseded" | "cancelled"
    )
}
