//! Where simulated agents get their keys: a file of keys registered elsewhere, or
//! registration through the broker's admin API.
//!
//! Registration names agent `i` `{prefix}-{i}` in cluster `{prefix}-{i}`. An agent of
//! that name that exists already is reused: its key is rotated (the previous one stops
//! working) and the labels asked for are set on it. Running the same simulation twice
//! thus reuses the same agents instead of piling up new ones.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use brokkr_core::AgentId;
use futures::{StreamExt, TryStreamExt};
use serde::Deserialize;
use serde_json::json;
use uuid::Uuid;

use super::Error;
use crate::config::Secret;

/// Admin calls in flight while registering.
const CONCURRENCY: usize = 16;
const TIMEOUT: Duration = Duration::from_secs(30);

/// One registered agent.
#[derive(Debug, Clone)]
pub struct Registered {
    /// Its id.
    pub id: AgentId,
    /// Its name (also its cluster's name).
    pub name: String,
    /// Its key, just issued.
    pub key: Secret,
}

/// Reads keys, one per line; blank lines and lines starting with `#` are skipped.
pub fn read_keys_file(path: &Path) -> Result<Vec<Secret>, Error> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::KeysFile {
        path: path.display().to_string(),
        source,
    })?;
    Ok(text
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(Secret::new)
        .collect())
}

#[derive(Deserialize)]
struct AgentDto {
    id: Uuid,
    name: String,
    cluster_name: String,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
struct AgentPage {
    items: Vec<AgentDto>,
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct Created {
    agent: AgentDto,
    initial_pak: String,
}

#[derive(Deserialize)]
struct Rotated {
    pak: String,
}

/// The admin's side of the API, for registration.
struct Admin {
    http: reqwest::Client,
    base: String,
    key: Secret,
}

impl Admin {
    async fn send<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<T, Error> {
        let failed = |message: String| Error::Register {
            what: what.to_owned(),
            message,
        };
        let response = request
            .bearer_auth(self.key.expose())
            .timeout(TIMEOUT)
            .send()
            .await
            .map_err(|e| failed(e.without_url().to_string()))?;
        let status = response.status();
        if !status.is_success() {
            let body = response.text().await.unwrap_or_default();
            return Err(failed(format!("{status}: {body}")));
        }
        response
            .json()
            .await
            .map_err(|e| failed(e.without_url().to_string()))
    }

    /// Every agent whose name starts with `prefix-`, by name and cluster.
    async fn existing(&self, prefix: &str) -> Result<HashMap<(String, String), AgentDto>, Error> {
        let mut found = HashMap::new();
        let mut cursor: Option<String> = None;
        loop {
            let mut url =
                reqwest::Url::parse(&format!("{}/api/v1/agents", self.base)).map_err(|e| {
                    Error::Register {
                        what: "listing agents".into(),
                        message: format!("bad broker URL: {e}"),
                    }
                })?;
            url.query_pairs_mut().append_pair("limit", "1000");
            if let Some(cursor) = &cursor {
                url.query_pairs_mut().append_pair("cursor", cursor);
            }
            let request = self.http.get(url);
            let page: AgentPage = self.send("listing agents", request).await?;
            for agent in page.items {
                if agent.name.starts_with(&format!("{prefix}-")) {
                    found.insert((agent.name.clone(), agent.cluster_name.clone()), agent);
                }
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(found),
            }
        }
    }

    async fn create(
        &self,
        name: &str,
        labels: &BTreeMap<String, String>,
    ) -> Result<Registered, Error> {
        let request = self
            .http
            .post(format!("{}/api/v1/agents", self.base))
            .json(&json!({"name": name, "cluster_name": name, "labels": labels}));
        let created: Created = self
            .send(&format!("creating agent {name}"), request)
            .await?;
        Ok(Registered {
            id: AgentId(created.agent.id),
            name: name.to_owned(),
            key: Secret::new(created.initial_pak),
        })
    }

    async fn reuse(
        &self,
        agent: &AgentDto,
        labels: &BTreeMap<String, String>,
    ) -> Result<Registered, Error> {
        let id = agent.id;
        for (key, value) in labels {
            if agent.labels.get(key) != Some(value) {
                let request = self
                    .http
                    .post(format!("{}/api/v1/agents/{id}/labels", self.base))
                    .json(&json!({"key": key, "value": value}));
                let _: serde_json::Value = self
                    .send(&format!("labelling agent {}", agent.name), request)
                    .await?;
            }
        }
        let request = self
            .http
            .post(format!("{}/api/v1/agents/{id}/rotate-pak", self.base));
        let rotated: Rotated = self
            .send(
                &format!("rotating the key of agent {}", agent.name),
                request,
            )
            .await?;
        Ok(Registered {
            id: AgentId(id),
            name: agent.name.clone(),
            key: Secret::new(rotated.pak),
        })
    }
}

/// Registers agents `{prefix}-{i}` for every `i` in `indices` through the admin API
/// (reusing those that exist), with `labels`; in the order of `indices`.
pub async fn register(
    broker_url: &str,
    admin_key: &Secret,
    prefix: &str,
    indices: std::ops::Range<usize>,
    labels: &BTreeMap<String, String>,
) -> Result<Vec<Registered>, Error> {
    let admin = Admin {
        http: reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(5))
            .build()
            .map_err(|e| Error::Register {
                what: "building an HTTP client".into(),
                message: e.to_string(),
            })?,
        base: broker_url.trim_end_matches('/').to_owned(),
        key: admin_key.clone(),
    };
    let existing = admin.existing(prefix).await?;
    let admin = &admin;
    let existing = &existing;
    futures::stream::iter(indices)
        .map(|i| async move {
            let name = format!("{prefix}-{i}");
            match existing.get(&(name.clone(), name.clone())) {
                Some(agent) => admin.reuse(agent, labels).await,
                None => admin.create(&name, labels).await,
            }
        })
        .buffered(CONCURRENCY)
        .try_collect()
        .await
}
