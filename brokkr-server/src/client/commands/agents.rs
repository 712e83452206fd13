//! `agents list | show | label`.

use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::error::{Error, Result};
use crate::client::http::Api;
use crate::client::output::{Column, Format, Printer, col, pretty, table};
use crate::client::{ListArgs, refs};

const AGENT_COLUMNS: &[Column] = &[
    col("ID", "/id"),
    col("NAME", "/name"),
    col("CLUSTER", "/cluster_name"),
    col("STATUS", "/status"),
    col("LAST HEARTBEAT", "/last_heartbeat"),
    col("LABELS", "/labels"),
];

const AGENT_FIELDS: &[Column] = &[
    col("ID", "/id"),
    col("NAME", "/name"),
    col("CLUSTER", "/cluster_name"),
    col("STATUS", "/status"),
    col("ENABLED", "/enabled"),
    col("LAST HEARTBEAT", "/last_heartbeat"),
    col("KUBERNETES", "/capabilities/kubernetes_version"),
    col("NODES", "/capabilities/node_count"),
    col("FEATURES", "/capabilities/features"),
    col("LABELS", "/labels"),
    col("ANNOTATIONS", "/annotations"),
    col("CREATED", "/created_at"),
    col("UPDATED", "/updated_at"),
];

/// `agents ...`
#[derive(Debug, Subcommand)]
pub enum AgentsCommand {
    /// List agents, oldest first (admin).
    List {
        /// Only agents in this cluster.
        #[arg(long)]
        cluster: Option<String>,
        /// Only agents with this status: active, stale or inactive.
        #[arg(long)]
        status: Option<String>,
        /// How many.
        #[command(flatten)]
        list: ListArgs,
    },
    /// Show an agent, by id or CLUSTER/NAME.
    Show {
        /// Its id or CLUSTER/NAME.
        agent: String,
    },
    /// Set labels (`key=value`) and remove them (`key-`), then print its labels.
    Label {
        /// Its id or CLUSTER/NAME.
        agent: String,
        /// `key=value` to set, `key-` to remove, applied in order.
        #[arg(required = true, value_name = "KEY=VALUE|KEY-")]
        changes: Vec<String>,
    },
}

/// One change of a label.
#[derive(Debug, PartialEq, Eq)]
enum LabelChange<'a> {
    Set(&'a str, &'a str),
    Remove(&'a str),
}

fn label_change(text: &str) -> Result<LabelChange<'_>> {
    if let Some((key, value)) = text.split_once('=') {
        return Ok(LabelChange::Set(key, value));
    }
    match text.strip_suffix('-') {
        Some(key) if !key.is_empty() => Ok(LabelChange::Remove(key)),
        _ => Err(Error::Input(format!(
            "{text:?} is neither key=value nor key-"
        ))),
    }
}

/// Runs an `agents` command.
pub async fn run(api: &Api, out: Printer, command: AgentsCommand) -> Result<()> {
    match command {
        AgentsCommand::List {
            cluster,
            status,
            list,
        } => {
            let mut query: Vec<(&str, String)> = list.order().into_iter().collect();
            query.extend(cluster.map(|c| ("cluster_name", c)));
            query.extend(status.map(|s| ("status", s)));
            let agents = api.list(&["agents"], &query, list.rows()).await?;
            out.list(&agents, AGENT_COLUMNS);
        }
        AgentsCommand::Show { agent } => {
            let id = refs::agent_id(api, &agent).await?;
            out.one(&api.get(&["agents", &id], &[]).await?, AGENT_FIELDS);
        }
        AgentsCommand::Label { agent, changes } => {
            // Every change is checked before the first request, so a typo changes nothing.
            let changes = changes
                .iter()
                .map(|c| label_change(c))
                .collect::<Result<Vec<_>>>()?;
            let id = refs::agent_id(api, &agent).await?;
            let mut labels = Value::Null;
            for change in changes {
                labels = match change {
                    LabelChange::Set(key, value) => {
                        let body = json!({"key": key, "value": value});
                        api.post(&["agents", &id, "labels"], &body).await?
                    }
                    LabelChange::Remove(key) => api.delete(&["agents", &id, "labels", key]).await?,
                };
            }
            print_map(out, &labels);
        }
    }
    Ok(())
}

/// A `{key: value}` map as KEY/VALUE rows, or as the JSON object.
fn print_map(out: Printer, map: &Value) {
    match out.format {
        Format::Json => println!("{}", pretty(map)),
        Format::Table => {
            let rows: Vec<Value> = map
                .as_object()
                .into_iter()
                .flatten()
                .map(|(key, value)| json!({"key": key, "value": value}))
                .collect();
            print!(
                "{}",
                table(&rows, &[col("KEY", "/key"), col("VALUE", "/value")])
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_changes_set_or_remove() {
        assert_eq!(label_change("a=b").unwrap(), LabelChange::Set("a", "b"));
        assert_eq!(label_change("a=").unwrap(), LabelChange::Set("a", ""));
        assert_eq!(
            label_change("example.com/team-").unwrap(),
            LabelChange::Remove("example.com/team")
        );
        assert!(label_change("-").is_err());
        assert!(label_change("plain").is_err());
    }
}
