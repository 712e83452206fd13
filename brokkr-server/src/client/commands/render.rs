//! `render`: a deployment object from a stored template or a registered generator,
//! with parameters from a file.

use std::path::PathBuf;

use clap::Args;
use serde_json::{Value, json};

use crate::client::error::Result;
use crate::client::http::Api;
use crate::client::input::document;
use crate::client::output::{Format, Printer, pretty};
use crate::client::{ConnectionArgs, refs};

use super::objects::OBJECT_FIELDS;

/// `render [TEMPLATE] --stack S --params FILE`
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["template", "generator"])))]
pub struct RenderArgs {
    /// Connection and output.
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// The stored template's id.
    pub template: Option<uuid::Uuid>,
    /// A registered Rust generator's name, instead of a template.
    #[arg(long)]
    pub generator: Option<String>,
    /// The template version (the latest by default).
    #[arg(long, requires = "template")]
    pub version: Option<i32>,
    /// The stack, by id or name.
    #[arg(long)]
    pub stack: String,
    /// Parameters: a JSON (`.json`) or YAML file, `-` for stdin; `{}` without one.
    #[arg(long, value_name = "FILE")]
    pub params: Option<PathBuf>,
    /// Render and print the YAML; store nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Renders, and appends unless `--dry-run`.
pub async fn run(api: &Api, out: Printer, args: RenderArgs) -> Result<()> {
    let parameters = match &args.params {
        Some(path) => document(path)?,
        None => json!({}),
    };
    let mut body = json!({"parameters": parameters, "dry_run": args.dry_run});
    if let Some(template) = args.template {
        body["template_id"] = json!(template);
    }
    if let Some(generator) = args.generator {
        body["generator"] = Value::String(generator);
    }
    if let Some(version) = args.version {
        body["version"] = json!(version);
    }
    let stack = refs::stack_id(api, &args.stack).await?;
    let answer = api
        .post(
            &["stacks", &stack, "deployment-objects", "from-template"],
            &body,
        )
        .await?;
    match (args.dry_run, out.format) {
        (_, Format::Json) => println!("{}", pretty(&answer)),
        (true, Format::Table) => {
            let yaml = answer.get("yaml_content").and_then(Value::as_str);
            print!("{}", yaml.unwrap_or_default());
        }
        (false, Format::Table) => out.one(&answer, OBJECT_FIELDS),
    }
    Ok(())
}
