//! `brokkr-agent start`: the agent for one cluster.
//!
//! ```sh
//! BROKKR__AGENT__BROKER_URL=http://127.0.0.1:3000 BROKKR__AGENT__PAK=<key> \
//!   brokkr-agent start --kubeconfig ~/.kube/config
//! ```

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use brokkr_agent::agent::Agent;
use brokkr_agent::broker::BrokerClient;
use brokkr_agent::capabilities::KubeCapabilities;
use brokkr_agent::config::{Config, LogFormat};
use brokkr_agent::health_server::HealthServer;
use brokkr_agent::kube_applier::{KubeApplier, KubeApplierOptions};
use clap::{Parser, Subcommand};

/// Brokkr's cluster agent.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Connect to the broker and keep this cluster in its target state.
    Start {
        /// A TOML configuration file (`[agent]`, `[log]`); environment variables
        /// `BROKKR__AGENT__*` override it.
        #[arg(long)]
        config: Option<PathBuf>,
        /// The kubeconfig to use; default: `agent.kubeconfig`, then `KUBECONFIG`,
        /// `~/.kube/config`, or the in-cluster service account.
        #[arg(long)]
        kubeconfig: Option<PathBuf>,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Command::Start { config, kubeconfig } = Cli::parse().command;
    let config = match Config::load(config.as_deref()) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("brokkr-agent: {err}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config);
    match start(config, kubeconfig).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %err, "brokkr-agent stopped");
            ExitCode::FAILURE
        }
    }
}

async fn start(
    config: Config,
    kubeconfig: Option<PathBuf>,
) -> Result<(), Box<dyn std::error::Error>> {
    let agent_config = config.agent;
    let client = kube_client(kubeconfig.or(agent_config.kubeconfig.clone())).await?;
    let options = KubeApplierOptions {
        inventory_namespace: agent_config.inventory_namespace.clone(),
        default_namespace: agent_config.default_namespace.clone(),
        crd_established_timeout: std::time::Duration::from_secs(
            agent_config.crd_established_timeout_secs,
        ),
        ensure_inventory_namespace: agent_config.ensure_inventory_namespace,
        deletion_timeout: std::time::Duration::from_secs(agent_config.deletion_timeout_secs),
        discovery_ttl: std::time::Duration::from_secs(agent_config.discovery_ttl_secs),
        discovery_timeout: std::time::Duration::from_secs(agent_config.discovery_timeout_secs),
    };
    let applier = KubeApplier::new(client.clone(), options).await?;
    let broker = BrokerClient::new(&agent_config.broker_url, agent_config.pak.clone())?;
    let listen = agent_config.health_listen.clone();
    let agent = Agent::new(
        agent_config,
        broker,
        Arc::new(applier),
        Arc::new(KubeCapabilities(client)),
    );
    let probes = HealthServer::bind(&listen, agent.metrics(), agent.readiness()).await?;
    tracing::info!(listen = ?probes.local_addr(), "probes listening");
    let (stop_probes, probes_stopped) = tokio::sync::oneshot::channel::<()>();
    let probes = tokio::spawn(probes.run(async {
        let _ = probes_stopped.await;
    }));
    let result = agent.run(shutdown_signal()).await;
    let _ = stop_probes.send(());
    let _ = probes.await;
    result.map_err(Into::into)
}

async fn kube_client(
    kubeconfig: Option<PathBuf>,
) -> Result<kube::Client, Box<dyn std::error::Error>> {
    let config = match kubeconfig {
        Some(path) => {
            let kubeconfig = kube::config::Kubeconfig::read_from(&path)?;
            kube::Config::from_custom_kubeconfig(
                kubeconfig,
                &kube::config::KubeConfigOptions::default(),
            )
            .await?
        }
        None => kube::Config::infer().await?,
    };
    Ok(kube::Client::try_from(config)?)
}

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    match config.log.format {
        LogFormat::Json => builder.json().init(),
        LogFormat::Text => builder.init(),
    }
}

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
