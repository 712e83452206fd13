//! The command-line client: `brokkr-server` subcommands that talk to a running server
//! over its HTTP API, for people (tables) and scripts (`--output json`, exit codes).
//!
//! ```text
//! brokkr-server stacks list | show <STACK> | create <NAME>
//! brokkr-server deploy <STACK> <FILE|DIR|-> [--dry-run | --confirm-plan <PLAN>]
//! brokkr-server objects list <STACK> | show <ID>
//! brokkr-server agents list | show <AGENT> | label <AGENT> key=value... key-...
//! brokkr-server events list | tail
//! brokkr-server placements list | show <STACK> | set <STACK> <POLICY_FILE>
//! brokkr-server plans get <PLAN> | confirm <PLAN>
//! brokkr-server render [TEMPLATE] --stack <STACK> --params <FILE>
//! ```
//!
//! Every one takes `--url` (`BROKKR_URL`), `--pak` (`BROKKR_PAK`) and `--output
//! table|json`. Exit codes are in [`error`]; a failure prints `error: <code>:
//! <message>` with the server's code to stderr. `docs/cli.md` has the details.

mod commands;
pub mod error;
pub mod http;
pub mod input;
pub mod output;
mod refs;

use clap::{Args, Subcommand};

pub use commands::{
    AgentsCommand, DeployArgs, EventsCommand, ObjectsCommand, PlacementsCommand, PlansCommand,
    RenderArgs, StacksCommand,
};
pub use error::Error;
use http::{Api, Rows};
use output::{Format, Printer};

/// Where the server is, which key to use, how to print.
#[derive(Debug, Clone, Args)]
pub struct ConnectionArgs {
    /// The server's base URL.
    #[arg(
        long,
        env = "BROKKR_URL",
        default_value = "http://127.0.0.1:3000",
        global = true
    )]
    pub url: String,
    /// The key (PAK) sent as `Authorization: Bearer`.
    #[arg(long, env = "BROKKR_PAK", hide_env_values = true, global = true)]
    pub pak: Option<String>,
    /// `table` for people, `json` (the API's objects) for scripts.
    #[arg(long, short = 'o', value_enum, default_value_t = Format::Table, global = true)]
    pub output: Format,
}

/// How much of a listing to print.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Most rows to print; the client follows the server's pages up to it.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    pub limit: u32,
    /// Every row, however many pages.
    #[arg(long, conflicts_with = "limit")]
    pub all: bool,
    /// Newest first (the listing's key descending).
    #[arg(long)]
    pub desc: bool,
}

impl ListArgs {
    fn rows(&self) -> Rows {
        if self.all {
            Rows::All
        } else {
            Rows::AtMost(self.limit as usize)
        }
    }

    fn order(&self) -> Option<(&'static str, String)> {
        self.desc.then(|| ("order", "desc".to_owned()))
    }
}

/// A command group with the connection flags.
#[derive(Debug, Args)]
pub struct Group<C: Subcommand> {
    /// Connection and output.
    #[command(flatten)]
    pub connection: ConnectionArgs,
    /// What to do.
    #[command(subcommand)]
    pub command: C,
}

/// The client's subcommands, flattened into `brokkr-server`'s command line.
#[derive(Debug, Subcommand)]
pub enum ClientCommand {
    /// Client: list, show and create stacks.
    Stacks(Group<StacksCommand>),
    /// Client: append a deployment object from a YAML file, a directory or stdin.
    Deploy(DeployArgs),
    /// Client: list a stack's deployment objects, show one with its YAML.
    Objects(Group<ObjectsCommand>),
    /// Client: list, show and label agents.
    Agents(Group<AgentsCommand>),
    /// Client: list agent events, or follow them as they arrive.
    Events(Group<EventsCommand>),
    /// Client: a stack's agents, its placement policy and decision; set a policy.
    Placements(Group<PlacementsCommand>),
    /// Client: render a template or registered generator into a deployment object.
    Render(RenderArgs),
    /// Client: show a plan; release a placement decision the guard held.
    Plans(Group<PlansCommand>),
}

/// Runs a client command on its own runtime; the caller turns the error into the exit
/// code ([`Error::exit_code`]).
pub fn run(command: ClientCommand) -> Result<(), Error> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(Error::Runtime)?;
    runtime.block_on(dispatch(command))
}

async fn dispatch(command: ClientCommand) -> Result<(), Error> {
    let connect = |c: &ConnectionArgs| -> Result<(Api, Printer), Error> {
        Ok((
            Api::new(&c.url, c.pak.clone())?,
            Printer { format: c.output },
        ))
    };
    match command {
        ClientCommand::Stacks(group) => {
            let (api, out) = connect(&group.connection)?;
            commands::stacks(&api, out, group.command).await
        }
        ClientCommand::Deploy(args) => {
            let (api, out) = connect(&args.connection)?;
            commands::deploy(&api, out, args).await
        }
        ClientCommand::Objects(group) => {
            let (api, out) = connect(&group.connection)?;
            commands::objects(&api, out, group.command).await
        }
        ClientCommand::Agents(group) => {
            let (api, out) = connect(&group.connection)?;
            commands::agents(&api, out, group.command).await
        }
        ClientCommand::Events(group) => {
            let (api, out) = connect(&group.connection)?;
            commands::events(&api, out, group.command).await
        }
        ClientCommand::Placements(group) => {
            let (api, out) = connect(&group.connection)?;
            commands::placements(&api, out, group.command).await
        }
        ClientCommand::Render(args) => {
            let (api, out) = connect(&args.connection)?;
            commands::render(&api, out, args).await
        }
        ClientCommand::Plans(group) => {
            let (api, out) = connect(&group.connection)?;
            commands::plans(&api, out, group.command).await
        }
    }
}
