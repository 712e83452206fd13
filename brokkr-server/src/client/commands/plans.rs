//! `plans get | confirm`, and how a plan is printed (also by `deploy --dry-run`).

use clap::Subcommand;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::client::error::Result;
use crate::client::http::Api;
use crate::client::output::{Column, Format, Printer, col, table};

const PLAN_FIELDS: &[Column] = &[
    col("PLAN", "/plan_id"),
    col("STACK", "/stack_id"),
    col("ORIGIN", "/origin"),
    col("CHANGE", "/change/change"),
    col("VERDICT", "/guard/verdict"),
    col("VIOLATIONS", "/guard/violations"),
    col("CURRENT", "/summary/agents_current"),
    col("GAINING", "/summary/agents_gaining"),
    col("CHANGING", "/summary/agents_changing"),
    col("REMOVED", "/summary/agents_removed"),
    col("OBJECTS", "/summary/objects"),
    col("DIGEST", "/digest"),
    col("EXPIRES", "/expires_at"),
    col("CONSUMED", "/consumed_at"),
];

/// One line per move: the counts, not every agent and object (`-o json` has them).
const GROUP_COLUMNS: &[Column] = &[
    col("ACTION", "/action"),
    col("AGENTS", "/agents"),
    col("FROM", "/from"),
    col("TO", "/to"),
    col("CREATE", "/create"),
    col("UPDATE", "/update"),
    col("PRUNE", "/prune"),
];

/// `plans ...`
#[derive(Debug, Subcommand)]
pub enum PlansCommand {
    /// Show a plan: its verdict, its numbers and one line per move.
    Get {
        /// The plan's id.
        id: Uuid,
    },
    /// Release a placement decision the guard held (admin).
    Confirm {
        /// The held plan's id (see `placements show`).
        id: Uuid,
    },
}

/// Runs a `plans` command.
pub async fn run(api: &Api, out: Printer, command: PlansCommand) -> Result<()> {
    let plan = match command {
        PlansCommand::Get { id } => api.get(&["plans", &id.to_string()], &[]).await?,
        PlansCommand::Confirm { id } => {
            api.post(&["plans", &id.to_string(), "confirm"], &json!({}))
                .await?
        }
    };
    print_plan(out, &plan);
    Ok(())
}

/// Prints a plan: its fields and a table of its moves, or its JSON.
pub fn print_plan(out: Printer, plan: &Value) {
    out.one(plan, PLAN_FIELDS);
    if out.format == Format::Table {
        let groups: Vec<Value> = plan
            .get("groups")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(group_line)
            .collect();
        print!("\n{}", table(&groups, GROUP_COLUMNS));
    }
}

fn group_line(group: &Value) -> Value {
    let count = |pointer: &str| {
        group
            .pointer(pointer)
            .and_then(Value::as_array)
            .map(Vec::len)
    };
    let to = if group["to_proposed"] == true {
        json!("(new)")
    } else {
        group.get("to").cloned().unwrap_or(Value::Null)
    };
    json!({
        "action": group.get("action"),
        "agents": count("/agents"),
        "from": group.get("from"),
        "to": to,
        "create": count("/objects/create"),
        "update": count("/objects/update"),
        "prune": count("/objects/prune"),
    })
}
