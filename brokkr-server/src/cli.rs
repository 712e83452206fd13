//! The command line of `brokkr-server`.
//!
//! ```text
//! brokkr-server [--config FILE] serve [--listen ADDR]
//! brokkr-server [--config FILE] create agent --name N --cluster-name C
//! brokkr-server [--config FILE] create generator --name N [--description D]
//! brokkr-server [--config FILE] rotate admin | agent <ID> | generator <ID>
//! brokkr-server [--config FILE] migrate
//! brokkr-server stacks | deploy | objects | agents | events | placements | render ...
//! ```
//!
//! The last line is the HTTP client of a running server ([`crate::client`]).
//!
//! A new key is the only thing written to stdout, so `KEY=$(brokkr-server rotate
//! admin)` works; logs (including the ids of created rows) go to stderr.

use std::path::PathBuf;
use std::sync::Arc;

use brokkr_core::runtime::{AgentRegistration, ControlPlane, GeneratorSpec};
use brokkr_core::{Actor, GeneratorRegistry, Pak};
use clap::{Args, Parser, Subcommand};
use uuid::Uuid;

use crate::config::{Config, ConfigError, DatabaseSection, LogFormat, LogSection};
use crate::serve::{ServeError, open_store, serve};

/// `brokkr-server`: Brokkr's reference REST server.
#[derive(Debug, Parser)]
#[command(name = "brokkr-server", version, about)]
pub struct Cli {
    /// TOML configuration file (defaults apply without one; `BROKKR__SECTION__KEY`
    /// environment variables override it).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API (creates and prints the admin key on first start).
    Serve(ServeArgs),
    /// Register an agent or a generator and print its key.
    #[command(subcommand)]
    Create(CreateCommand),
    /// Issue a new key (revoking the previous ones) and print it.
    #[command(subcommand)]
    Rotate(RotateCommand),
    /// Bring the database schema up to date and exit (whatever
    /// `database.run_migrations` says): a deployment's migration step.
    Migrate,
    /// Talk to a running server over HTTP (`BROKKR_URL`, `BROKKR_PAK`).
    #[command(flatten)]
    Client(crate::client::ClientCommand),
}

/// `serve`
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on, overriding `server.listen`.
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<String>,
}

/// `create ...`
#[derive(Debug, Subcommand)]
pub enum CreateCommand {
    /// An agent: one cluster's puller.
    Agent {
        /// Its name, unique within its cluster.
        #[arg(long)]
        name: String,
        /// The cluster it runs in.
        #[arg(long)]
        cluster_name: String,
    },
    /// A generator: an external system with its own key.
    Generator {
        /// Its unique name.
        #[arg(long)]
        name: String,
        /// Free text.
        #[arg(long)]
        description: Option<String>,
    },
}

/// `rotate ...`
#[derive(Debug, Subcommand)]
pub enum RotateCommand {
    /// The admin key.
    Admin,
    /// An agent's key.
    Agent {
        /// The agent's id.
        id: Uuid,
    },
    /// A generator's key.
    Generator {
        /// The generator's id.
        id: Uuid,
    },
}

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The configuration could not be loaded.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// Serving failed.
    #[error(transparent)]
    Serve(#[from] ServeError),
    /// The store refused the command.
    #[error("the command failed")]
    Store(#[from] brokkr_core::store::Error),
    /// The control plane refused the command.
    #[error("the command failed")]
    Operation(#[from] brokkr_core::runtime::Error),
    /// The Tokio runtime could not start.
    #[error("cannot start the async runtime")]
    Runtime(#[source] std::io::Error),
    /// A client command failed.
    #[error(transparent)]
    Client(#[from] crate::client::Error),
}

impl CliError {
    /// The process exit code: a client command's own ([`crate::client::error`]), 1
    /// for everything else.
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Client(err) => err.exit_code(),
            _ => 1,
        }
    }
}

/// Runs a parsed command line (with no Rust generators registered).
pub fn run(cli: Cli) -> Result<(), CliError> {
    run_with(cli, GeneratorRegistry::default())
}

/// Runs a parsed command line, serving with `generators`: a control plane with its
/// own generators can have a three-line `main` too.
pub fn run_with(cli: Cli, generators: GeneratorRegistry) -> Result<(), CliError> {
    // The client needs neither the server's configuration nor its logs.
    let command = match cli.command {
        Command::Client(client) => return Ok(crate::client::run(client)?),
        command => command,
    };
    let mut config = Config::load(cli.config.as_deref())?;
    if let Command::Serve(ServeArgs {
        listen: Some(listen),
    }) = &command
    {
        config.server.listen.clone_from(listen);
    }
    init_logging(&config.log);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    runtime.block_on(async move {
        match command {
            Command::Serve(_) => Ok(serve(config, generators, shutdown_signal()).await?),
            Command::Create(create) => {
                let store = Arc::new(open_store(&config.database).await?);
                let control_plane = config.control_plane(store, GeneratorRegistry::default());
                let key = self::create(&control_plane, create).await?;
                println!("{}", key.expose());
                Ok(())
            }
            Command::Rotate(rotate) => {
                let store = Arc::new(open_store(&config.database).await?);
                let control_plane = config.control_plane(store, GeneratorRegistry::default());
                let key = self::rotate(&control_plane, rotate).await?;
                println!("{}", key.expose());
                Ok(())
            }
            Command::Migrate => migrate(&config).await,
            Command::Client(_) => unreachable!("client commands returned before the config"),
        }
    })
}

async fn migrate(config: &Config) -> Result<(), CliError> {
    let database = DatabaseSection {
        run_migrations: true,
        ..config.database.clone()
    };
    open_store(&database).await?;
    tracing::info!("the database schema is up to date");
    Ok(())
}

async fn create(control_plane: &ControlPlane, command: CreateCommand) -> Result<Pak, CliError> {
    match command {
        CreateCommand::Agent { name, cluster_name } => {
            let registered = control_plane
                .create_agent(
                    &Actor::System,
                    AgentRegistration {
                        name,
                        cluster_name,
                        ..AgentRegistration::default()
                    },
                )
                .await?;
            tracing::info!(agent_id = %registered.agent.agent.id, "created agent; its key is on stdout");
            Ok(registered.key)
        }
        CreateCommand::Generator { name, description } => {
            let created = control_plane
                .create_generator(&Actor::System, GeneratorSpec { name, description })
                .await?;
            tracing::info!(generator_id = %created.generator.id, "created generator; its key is on stdout");
            Ok(created.key)
        }
    }
}

async fn rotate(control_plane: &ControlPlane, command: RotateCommand) -> Result<Pak, CliError> {
    let system = Actor::System;
    let key = match command {
        RotateCommand::Admin => control_plane.rotate_admin_key(&system).await?,
        RotateCommand::Agent { id } => control_plane.rotate_agent_key(&system, id.into()).await?,
        RotateCommand::Generator { id } => {
            control_plane
                .rotate_generator_key(&system, id.into())
                .await?
        }
    };
    tracing::info!(
        "rotated the key; the previous one is revoked (running servers stop accepting it within auth.key_revocation_poll_millis)"
    );
    Ok(key)
}

/// Logs to stderr, as text or JSON lines, filtered by `log.filter`. Does nothing if a
/// subscriber is installed already (e.g. by an embedding program).
pub fn init_logging(log: &LogSection) {
    let filter = tracing_subscriber::EnvFilter::try_new(&log.filter).unwrap_or_else(|err| {
        eprintln!(
            "invalid log.filter {:?} ({err}); using \"info\"",
            log.filter
        );
        tracing_subscriber::EnvFilter::new("info")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()));
    let _ = match log.format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}

/// Completes at the first SIGINT (Ctrl-C) or SIGTERM.
pub async fn shutdown_signal() {
    let interrupt = async {
        if let Err(err) = tokio::signal::ctrl_c().await {
            tracing::error!(error = %err, "cannot listen for SIGINT");
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                tracing::error!(error = %err, "cannot listen for SIGTERM");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = interrupt => tracing::info!("SIGINT received; shutting down"),
        () = terminate => tracing::info!("SIGTERM received; shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use brokkr_core::testing::MemoryStore;
    use clap::CommandFactory;

    use super::*;
    use crate::serve::ensure_admin_key;

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
        let cli = Cli::try_parse_from([
            "brokkr-server",
            "--config",
            "b.toml",
            "serve",
            "--listen",
            "0.0.0.0:1",
        ])
        .unwrap();
        assert!(matches!(
            cli.command,
            Command::Serve(ServeArgs { listen: Some(_) })
        ));
        let cli = Cli::try_parse_from(["brokkr-server", "rotate", "agent", "not-a-uuid"]);
        assert!(cli.is_err());
    }

    #[tokio::test]
    async fn migrate_prepares_the_schema_for_servers_that_do_not_migrate() {
        let dir = tempfile::tempdir().unwrap();
        let mut config = Config::default();
        config.database.url = format!("sqlite://{}?mode=rwc", dir.path().join("b.db").display());
        config.database.run_migrations = false;
        let unmigrated = open_store(&config.database).await.unwrap();
        assert!(
            ensure_admin_key(&unmigrated).await.is_err(),
            "no schema yet"
        );

        migrate(&config).await.unwrap();
        // Again: a second replica's migration step finds nothing to do.
        migrate(&config).await.unwrap();
        let store = open_store(&config.database).await.unwrap();
        assert!(ensure_admin_key(&store).await.unwrap().is_some());
    }

    #[tokio::test]
    async fn created_and_rotated_keys_authenticate() {
        let control_plane = ControlPlane::builder(Arc::new(MemoryStore::new())).build();
        let agent_key = create(
            &control_plane,
            CreateCommand::Agent {
                name: "a".into(),
                cluster_name: "c".into(),
            },
        )
        .await
        .unwrap();
        let Actor::Agent(agent) = control_plane
            .authenticate(agent_key.expose())
            .await
            .unwrap()
        else {
            panic!("not an agent key");
        };
        let rotated = rotate(&control_plane, RotateCommand::Agent { id: agent.into() })
            .await
            .unwrap();
        // Rotation through the control plane forgets the cached old key at once.
        assert!(
            control_plane
                .authenticate(agent_key.expose())
                .await
                .is_err()
        );
        assert_eq!(
            control_plane.authenticate(rotated.expose()).await.unwrap(),
            Actor::Agent(agent)
        );

        let admin = rotate(&control_plane, RotateCommand::Admin).await.unwrap();
        assert_eq!(
            control_plane.authenticate(admin.expose()).await.unwrap(),
            Actor::Admin
        );
        let generator = create(
            &control_plane,
            CreateCommand::Generator {
                name: "ci".into(),
                description: None,
            },
        )
        .await
        .unwrap();
        assert!(matches!(
            control_plane
                .authenticate(generator.expose())
                .await
                .unwrap(),
            Actor::Generator(_)
        ));
    }
}
