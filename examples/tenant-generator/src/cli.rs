//! The command line.
//!
//! ```text
//! brokkr-example-tenant-generator [--database-url URL] onboard --name N [--plan free|pro]
//!     [--replicas N] [--image IMAGE] [--agent NAME]... [--selector KEY=VALUE]...
//! brokkr-example-tenant-generator [--database-url URL] offboard --name N
//! brokkr-example-tenant-generator [--database-url URL] serve [--listen ADDR]
//! ```

use brokkr_core::selector::LabelSelector;
use brokkr_server::config::{Config, ConfigError};
use brokkr_server::serve::ServeError;
use clap::{Args, Parser, Subcommand};

use crate::control_plane::{Agents, ControlPlane, Onboarded};
use crate::tenant::{Plan, TenantSpec};

/// The database used when neither `--database-url` nor `DATABASE_URL` names one.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://tenants.db?mode=rwc";

/// A tenant control plane built on Brokkr.
#[derive(Debug, Parser)]
#[command(name = "brokkr-example-tenant-generator", version, about)]
pub struct Cli {
    /// The database: `sqlite://FILE?mode=rwc`, `sqlite::memory:` or `postgres://...`.
    #[arg(long, global = true, env = "DATABASE_URL", default_value = DEFAULT_DATABASE_URL)]
    pub database_url: String,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create or update a tenant and assign it to agents.
    Onboard(OnboardArgs),
    /// Delete a tenant: its agents remove its objects.
    Offboard {
        /// The tenant's name.
        #[arg(long)]
        name: String,
    },
    /// Serve Brokkr's REST API with the `tenant` generator registered.
    Serve {
        /// Address to listen on, overriding `server.listen` (default 127.0.0.1:3000).
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
}

/// `onboard`
#[derive(Debug, Args)]
pub struct OnboardArgs {
    /// The tenant's name, a DNS label; its namespace is `tenant-<name>`.
    #[arg(long)]
    pub name: String,
    /// The plan [default: free].
    #[arg(long, value_parser = parse_plan)]
    pub plan: Option<Plan>,
    /// Pods of the tenant's deployment [default: 1 on free, 3 on pro].
    #[arg(long)]
    pub replicas: Option<u32>,
    /// The container image [default: nginx:1.27].
    #[arg(long)]
    pub image: Option<String>,
    /// An agent to deploy to, by name (repeatable).
    #[arg(long = "agent", value_name = "NAME", conflicts_with = "selector")]
    pub agents: Vec<String>,
    /// Deploy to every active agent with this label (repeatable; all must match).
    #[arg(long = "selector", value_name = "KEY=VALUE", value_parser = parse_label)]
    pub selector: Vec<(String, String)>,
}

impl OnboardArgs {
    fn spec(&self) -> TenantSpec {
        TenantSpec {
            name: self.name.clone(),
            plan: self.plan,
            replicas: self.replicas,
            image: self.image.clone(),
        }
    }

    fn agents(&self) -> Agents {
        if self.selector.is_empty() {
            Agents::Named(self.agents.clone())
        } else {
            Agents::Matching(LabelSelector {
                match_labels: self.selector.iter().cloned().collect(),
                ..LabelSelector::default()
            })
        }
    }
}

fn parse_plan(value: &str) -> Result<Plan, String> {
    match value {
        "free" => Ok(Plan::Free),
        "pro" => Ok(Plan::Pro),
        other => Err(format!("unknown plan {other:?}; expected free or pro")),
    }
}

fn parse_label(value: &str) -> Result<(String, String), String> {
    value
        .split_once('=')
        .map(|(key, value)| (key.to_owned(), value.to_owned()))
        .ok_or_else(|| format!("expected KEY=VALUE, got {value:?}"))
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Onboarding or offboarding failed.
    #[error(transparent)]
    ControlPlane(#[from] crate::control_plane::Error),
    /// The server's configuration could not be loaded.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Serving failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The Tokio runtime could not start.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    runtime.block_on(async move {
        match cli.command {
            Command::Onboard(args) => {
                let control_plane = ControlPlane::open(&cli.database_url).await?;
                let onboarded = control_plane.onboard(&args.spec(), &args.agents()).await;
                control_plane.shutdown().await;
                print_onboarded(&onboarded?);
                Ok(())
            }
            Command::Offboard { name } => {
                let control_plane = ControlPlane::open(&cli.database_url).await?;
                let marker = control_plane.offboard(&name).await;
                control_plane.shutdown().await;
                let marker = marker?;
                println!(
                    "offboarded tenant {name}: deletion marker {} (sequence {}) sent to its agents",
                    marker.id, marker.sequence
                );
                Ok(())
            }
            Command::Serve { listen } => {
                // `BROKKR__SECTION__KEY` variables configure the rest of the server.
                let mut config = Config::load(None)?;
                config.database.url = cli.database_url;
                if let Some(listen) = listen {
                    config.server.listen = listen;
                }
                brokkr_server::cli::init_logging(&config.log);
                let shutdown = brokkr_server::cli::shutdown_signal();
                brokkr_server::serve(config, crate::generators(), shutdown).await?;
                Ok(())
            }
        }
    })
}

fn print_onboarded(onboarded: &Onboarded) {
    let tenant = &onboarded.tenant;
    let quota = tenant.plan.quota();
    let verb = if onboarded.stack_created {
        "created"
    } else {
        "updated"
    };
    println!(
        "{verb} stack {} ({})",
        onboarded.stack.name, onboarded.stack.id
    );
    println!(
        "plan {}: {} replica(s) of {}; quota cpu {}, memory {}, pods {}",
        tenant.plan.as_str(),
        tenant.replicas,
        tenant.image,
        quota.cpu,
        quota.memory,
        quota.pods
    );
    println!(
        "deployment object {} (sequence {}, sha256 {})",
        onboarded.deployment_object.id,
        onboarded.deployment_object.sequence,
        onboarded.deployment_object.yaml_checksum
    );
    println!(
        "agents: {} newly assigned, {} already assigned",
        onboarded.newly_assigned.len(),
        onboarded.already_assigned.len()
    );
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "tenants",
            "onboard",
            "--name",
            "acme",
            "--plan",
            "pro",
            "--replicas",
            "3",
            "--agent",
            "edge-1",
            "--agent",
            "edge-2",
        ])
        .unwrap();
        let Command::Onboard(args) = cli.command else {
            panic!("not onboard: {cli:?}");
        };
        assert_eq!(args.spec().plan, Some(Plan::Pro));
        assert_eq!(
            args.agents(),
            Agents::Named(vec!["edge-1".into(), "edge-2".into()])
        );
        assert!(
            Cli::try_parse_from(["tenants", "onboard", "--name", "a", "--plan", "gold"]).is_err()
        );
        assert!(
            Cli::try_parse_from([
                "tenants",
                "onboard",
                "--name",
                "a",
                "--agent",
                "x",
                "--selector",
                "k=v"
            ])
            .is_err()
        );
    }
}
