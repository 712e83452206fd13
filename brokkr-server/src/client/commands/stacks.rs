//! `stacks list | show | create`.

use clap::Subcommand;
use serde_json::{Value, json};

use crate::client::error::Result;
use crate::client::http::Api;
use crate::client::input::pairs;
use crate::client::output::{Column, Printer, col};
use crate::client::{ListArgs, refs};

const STACK_COLUMNS: &[Column] = &[
    col("ID", "/id"),
    col("NAME", "/name"),
    col("LABELS", "/labels"),
    col("CREATED", "/created_at"),
    col("DELETED", "/deleted_at"),
];

const STACK_FIELDS: &[Column] = &[
    col("ID", "/id"),
    col("NAME", "/name"),
    col("DESCRIPTION", "/description"),
    col("GENERATOR", "/generator_id"),
    col("LABELS", "/labels"),
    col("ANNOTATIONS", "/annotations"),
    col("CREATED", "/created_at"),
    col("UPDATED", "/updated_at"),
    col("DELETED", "/deleted_at"),
];

/// `stacks ...`
#[derive(Debug, Subcommand)]
pub enum StacksCommand {
    /// List stacks, oldest first.
    List {
        /// Only the stack with this exact name.
        #[arg(long)]
        name: Option<String>,
        /// Include deleted stacks.
        #[arg(long)]
        include_deleted: bool,
        /// How many.
        #[command(flatten)]
        list: ListArgs,
    },
    /// Show a stack, by id or name.
    Show {
        /// Its id or name.
        stack: String,
    },
    /// Create a stack.
    Create {
        /// Its name, unique among live stacks.
        name: String,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
        /// A label, `key=value` (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// An annotation, `key=value` (repeatable).
        #[arg(long = "annotation", value_name = "KEY=VALUE")]
        annotations: Vec<String>,
    },
}

/// Runs a `stacks` command.
pub async fn run(api: &Api, out: Printer, command: StacksCommand) -> Result<()> {
    match command {
        StacksCommand::List {
            name,
            include_deleted,
            list,
        } => {
            let mut query: Vec<(&str, String)> = list.order().into_iter().collect();
            if let Some(name) = name {
                query.push(("name", name));
            }
            if include_deleted {
                query.push(("include_deleted", "true".into()));
            }
            let stacks = api.list(&["stacks"], &query, list.rows()).await?;
            out.list(&stacks, STACK_COLUMNS);
        }
        StacksCommand::Show { stack } => {
            let id = refs::stack_id(api, &stack).await?;
            out.one(&api.get(&["stacks", &id], &[]).await?, STACK_FIELDS);
        }
        StacksCommand::Create {
            name,
            description,
            labels,
            annotations,
        } => {
            let mut body = json!({
                "name": name,
                "labels": Value::Object(pairs(&labels)?),
                "annotations": Value::Object(pairs(&annotations)?),
            });
            if let Some(description) = description {
                body["description"] = Value::String(description);
            }
            out.one(&api.post(&["stacks"], &body).await?, STACK_FIELDS);
        }
    }
    Ok(())
}
