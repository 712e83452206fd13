//! `deploy` and `objects list | show`: a stack's deployment objects.

use std::path::PathBuf;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use crate::client::commands::plans::print_plan;
use crate::client::error::Result;
use crate::client::http::Api;
use crate::client::input::manifests;
use crate::client::output::{Column, Format, Printer, col};
use crate::client::{ConnectionArgs, ListArgs, refs};

/// Columns of a deployment object (a listing carries no YAML).
pub const OBJECT_COLUMNS: &[Column] = &[
    col("ID", "/id"),
    col("SEQUENCE", "/sequence_id"),
    col("BYTES", "/yaml_bytes"),
    col("CHECKSUM", "/yaml_checksum"),
    col("DELETION", "/is_deletion_marker"),
    col("CREATED", "/created_at"),
];

/// Fields of one deployment object.
pub const OBJECT_FIELDS: &[Column] = &[
    col("ID", "/id"),
    col("STACK", "/stack_id"),
    col("SEQUENCE", "/sequence_id"),
    col("CHECKSUM", "/yaml_checksum"),
    col("DELETION", "/is_deletion_marker"),
    col("PROVENANCE", "/provenance"),
    col("CREATED", "/created_at"),
];

/// `deploy <STACK> <FILE|DIR|->`
#[derive(Debug, Args)]
pub struct DeployArgs {
    /// Connection and output.
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// The stack, by id or name.
    pub stack: String,
    /// A YAML file, a directory (its *.yaml and *.yml files, not subdirectories, in
    /// name order, as one deployment object), or `-` for stdin.
    pub path: PathBuf,
    /// Print what it would do to every agent (the plan), append nothing.
    #[arg(long, conflicts_with = "confirm_plan")]
    pub dry_run: bool,
    /// Go ahead past the blast-radius guard on this plan (admin only; the plan a
    /// refused deploy printed).
    #[arg(long, value_name = "PLAN")]
    pub confirm_plan: Option<uuid::Uuid>,
}

/// `objects ...`
#[derive(Debug, Subcommand)]
pub enum ObjectsCommand {
    /// List a stack's deployment objects by sequence, without their YAML.
    List {
        /// The stack, by id or name.
        stack: String,
        /// How many.
        #[command(flatten)]
        list: ListArgs,
    },
    /// Show a deployment object and its YAML.
    Show {
        /// Its id.
        id: uuid::Uuid,
    },
}

/// Appends the YAML at `args.path` to the stack as one deployment object, or with
/// `--dry-run` prints its plan.
pub async fn deploy(api: &Api, out: Printer, args: DeployArgs) -> Result<()> {
    let yaml = manifests(&args.path)?;
    let stack = refs::stack_id(api, &args.stack).await?;
    let mut query = Vec::new();
    if args.dry_run {
        query.push(("dry_run", "true".to_owned()));
    }
    if let Some(plan) = args.confirm_plan {
        query.push(("confirm_plan_id", plan.to_string()));
    }
    let answer = api
        .post_query(
            &["stacks", &stack, "deployment-objects"],
            &query,
            &json!({"yaml_content": yaml}),
        )
        .await?;
    if args.dry_run {
        print_plan(out, &answer);
    } else {
        out.one(&answer, OBJECT_FIELDS);
    }
    Ok(())
}

/// Runs an `objects` command.
pub async fn run(api: &Api, out: Printer, command: ObjectsCommand) -> Result<()> {
    match command {
        ObjectsCommand::List { stack, list } => {
            let stack = refs::stack_id(api, &stack).await?;
            let query: Vec<_> = list.order().into_iter().collect();
            let objects = api
                .list(
                    &["stacks", &stack, "deployment-objects"],
                    &query,
                    list.rows(),
                )
                .await?;
            out.list(&objects, OBJECT_COLUMNS);
        }
        ObjectsCommand::Show { id } => {
            let object = api
                .get(&["deployment-objects", &id.to_string()], &[])
                .await?;
            out.one(&object, OBJECT_FIELDS);
            if out.format == Format::Table {
                let yaml = object.get("yaml_content").and_then(Value::as_str);
                println!("\n{}", yaml.unwrap_or_default().trim_end());
            }
        }
    }
    Ok(())
}
