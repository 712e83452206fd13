//! Turning what a person types (a name, `cluster/name`) into the id the API wants.

use serde_json::Value;
use uuid::Uuid;

use super::error::{Error, Result};
use super::http::{Api, Rows};

/// A stack's id from its id or its exact name (live stacks' names are unique).
pub async fn stack_id(api: &Api, reference: &str) -> Result<String> {
    if Uuid::parse_str(reference).is_ok() {
        return Ok(reference.to_owned());
    }
    let found = api
        .list(
            &["stacks"],
            &[("name", reference.to_owned())],
            Rows::AtMost(1),
        )
        .await?;
    first_id(&found).ok_or_else(|| Error::not_found(format!("no stack named {reference:?}")))
}

/// An agent's id from its id or `CLUSTER/NAME` (unique among live agents).
pub async fn agent_id(api: &Api, reference: &str) -> Result<String> {
    if Uuid::parse_str(reference).is_ok() {
        return Ok(reference.to_owned());
    }
    let Some((cluster, name)) = reference.split_once('/') else {
        return Err(Error::Input(format!(
            "{reference:?}: name an agent by its id or as CLUSTER/NAME"
        )));
    };
    let agents = api
        .list(
            &["agents"],
            &[("cluster_name", cluster.to_owned())],
            Rows::All,
        )
        .await?;
    let matching: Vec<Value> = agents
        .into_iter()
        .filter(|agent| agent.get("name").and_then(Value::as_str) == Some(name))
        .collect();
    first_id(&matching)
        .ok_or_else(|| Error::not_found(format!("no agent {name:?} in cluster {cluster:?}")))
}

fn first_id(items: &[Value]) -> Option<String> {
    items
        .first()
        .and_then(|item| item.get("id"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}
