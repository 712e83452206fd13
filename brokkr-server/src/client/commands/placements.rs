//! `placements list | show | set`: which agents have a stack, and its placement policy.

use std::path::PathBuf;

use clap::Subcommand;

use crate::client::error::Result;
use crate::client::http::Api;
use crate::client::input::document;
use crate::client::output::{Column, Printer, col};
use crate::client::{ListArgs, refs};

const TARGET_COLUMNS: &[Column] = &[
    col("AGENT", "/agent_id"),
    col("STACK", "/stack_id"),
    col("SOURCE", "/source"),
    col("ASSIGNED", "/created_at"),
    col("REMOVED", "/removed_at"),
];

const PLACEMENT_FIELDS: &[Column] = &[
    col("STACK", "/stack_id"),
    col("POLICY", "/policy"),
    col("CHOSEN", "/decision/chosen"),
    col("REJECTED", "/decision/rejected_total"),
    col("BY REASON", "/decision/rejected_by_reason"),
    col("UPDATED", "/updated_at"),
    col("DECIDED", "/decided_at"),
    col("HELD", "/held/plan_id"),
];

/// `placements ...`
#[derive(Debug, Subcommand)]
pub enum PlacementsCommand {
    /// The agents responsible for a stack, and why (direct or placement).
    List {
        /// The stack, by id or name.
        stack: String,
        /// How many.
        #[command(flatten)]
        list: ListArgs,
    },
    /// A stack's placement policy and its decision.
    Show {
        /// The stack, by id or name.
        stack: String,
    },
    /// Set a stack's placement policy from a JSON or YAML file (`-` for stdin); the
    /// server decides at once and the answer shows the decision.
    Set {
        /// The stack, by id or name.
        stack: String,
        /// The policy (see docs/placement.md); `.json` is read as JSON, anything
        /// else as YAML.
        policy: PathBuf,
    },
}

/// Runs a `placements` command.
pub async fn run(api: &Api, out: Printer, command: PlacementsCommand) -> Result<()> {
    match command {
        PlacementsCommand::List { stack, list } => {
            let stack = refs::stack_id(api, &stack).await?;
            let query: Vec<_> = list.order().into_iter().collect();
            let targets = api
                .list(&["stacks", &stack, "targets"], &query, list.rows())
                .await?;
            out.list(&targets, TARGET_COLUMNS);
        }
        PlacementsCommand::Show { stack } => {
            let stack = refs::stack_id(api, &stack).await?;
            let placement = api.get(&["stacks", &stack, "placement"], &[]).await?;
            out.one(&placement, PLACEMENT_FIELDS);
        }
        PlacementsCommand::Set { stack, policy } => {
            let policy = document(&policy)?;
            let stack = refs::stack_id(api, &stack).await?;
            let placement = api.put(&["stacks", &stack, "placement"], &policy).await?;
            out.one(&placement, PLACEMENT_FIELDS);
        }
    }
    Ok(())
}
