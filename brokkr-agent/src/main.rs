//! `brokkr-agent start`: the agent for one cluster; `brokkr-agent simulate`: many
//! simulated agents in one process (see `brokkr_agent::simulate`).
//!
//! ```sh
//! BROKKR__AGENT__BROKER_URL=http://127.0.0.1:3000 BROKKR__AGENT__PAK=<key> \
//!   brokkr-agent start --kubeconfig ~/.kube/config
//! BROKKR_ADMIN_KEY=<admin key> brokkr-agent simulate --agents 1000 --duration 5m
//! ```

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use brokkr_agent::agent::Agent;
use brokkr_agent::broker::BrokerClient;
use brokkr_agent::capabilities::KubeCapabilities;
use brokkr_agent::config::{AgentSection, Config, LogFormat, Secret};
use brokkr_agent::health_server::HealthServer;
use brokkr_agent::kube_applier::{KubeApplier, KubeApplierOptions};
use brokkr_agent::simulate;
use brokkr_core::runtime::ErrorChain;
use clap::{Args, Parser, Subcommand};

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
    /// Run many simulated agents in this process against a broker, each with its own
    /// key and an in-memory cluster, and report what they applied and how fast.
    Simulate(SimulateArgs),
}

#[derive(Debug, Args)]
struct SimulateArgs {
    /// The broker's base URL.
    #[arg(
        long,
        env = "BROKKR__AGENT__BROKER_URL",
        default_value = "http://127.0.0.1:3000"
    )]
    broker_url: String,
    /// How many agents to run.
    #[arg(long, default_value_t = 100)]
    agents: usize,
    /// An admin key: registers agents `{prefix}-{i}` (in clusters `{prefix}-{i}`), or
    /// rotates the key of those that exist, for every agent `--keys-file` does not cover.
    #[arg(long, env = "BROKKR_ADMIN_KEY", hide_env_values = true)]
    admin_key: Option<String>,
    /// A file of agent keys, one per line (agents registered elsewhere), used first.
    #[arg(long, env = "BROKKR_SIMULATE_KEYS_FILE")]
    keys_file: Option<PathBuf>,
    /// Name prefix of the agents registered with `--admin-key`.
    #[arg(long, default_value = "sim")]
    prefix: String,
    /// Labels `key=value` set on registered agents and reported with heartbeats, so a
    /// placement policy can target the simulated fleet (repeat, or separate with commas).
    #[arg(long = "labels", value_delimiter = ',', value_parser = parse_label)]
    labels: Vec<(String, String)>,
    /// How long to run (`90s`, `10m`, `1h`, or seconds); default: until Ctrl-C.
    #[arg(long, value_parser = parse_duration)]
    duration: Option<std::time::Duration>,
    /// Seconds between progress lines (on stderr).
    #[arg(long, default_value_t = 10)]
    report_every: u64,
    /// Agents started per second (0: all at once).
    #[arg(long, default_value_t = 200)]
    ramp: u32,
    /// Longest target-state long poll, seconds.
    #[arg(long, default_value_t = 30)]
    poll_wait_secs: u64,
    /// Heartbeat period, seconds.
    #[arg(long, default_value_t = 30)]
    heartbeat_secs: u64,
    /// Period of full re-applies (drift correction), seconds.
    #[arg(long, default_value_t = 300)]
    resync_secs: u64,
    /// Period of health reads (sent when changed), seconds.
    #[arg(long, default_value_t = 60)]
    health_secs: u64,
    /// Print the final summary as JSON on stdout.
    #[arg(long)]
    json: bool,
    /// Log filter for stderr.
    #[arg(
        long,
        env = "BROKKR_SIMULATE_LOG",
        default_value = "warn,brokkr_agent::simulate=info"
    )]
    log_filter: String,
}

fn parse_label(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected key=value, got {text:?}")),
    }
}

fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    let (number, unit) = text
        .find(|c: char| !c.is_ascii_digit())
        .map_or((text, ""), |i| text.split_at(i));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("expected e.g. 90s, 10m or 1h, got {text:?}"))?;
    let seconds = match unit {
        "" | "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        _ => return Err(format!("unknown unit {unit:?} in {text:?}: use s, m or h")),
    };
    Ok(std::time::Duration::from_secs(seconds))
}

#[tokio::main]
async fn main() -> ExitCode {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (config, kubeconfig) = match Cli::parse().command {
        Command::Start { config, kubeconfig } => (config, kubeconfig),
        Command::Simulate(args) => return simulate(args).await,
    };
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

async fn simulate(args: SimulateArgs) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let keys = match &args.keys_file {
        Some(path) => match simulate::read_keys_file(path) {
            Ok(keys) => keys,
            Err(err) => {
                eprintln!("brokkr-agent: {}", ErrorChain(&err));
                return ExitCode::from(2);
            }
        },
        None => Vec::new(),
    };
    let options = simulate::Options {
        broker_url: args.broker_url,
        agents: args.agents,
        keys,
        admin_key: args.admin_key.map(Secret::new),
        prefix: args.prefix,
        labels: args.labels.into_iter().collect::<BTreeMap<_, _>>(),
        ramp_per_sec: args.ramp,
        agent: AgentSection {
            poll_wait_secs: args.poll_wait_secs,
            heartbeat_interval_secs: args.heartbeat_secs,
            resync_period_secs: args.resync_secs,
            health_interval_secs: args.health_secs,
            ..AgentSection::default()
        },
        duration: args.duration,
        report_every: std::time::Duration::from_secs(args.report_every),
    };
    let result = simulate::run(options, shutdown_signal(), |summary| {
        eprintln!("{}", summary.progress_line());
    })
    .await;
    match result {
        Ok(summary) if args.json => {
            println!(
                "{}",
                serde_json::to_string_pretty(&summary).expect("a summary always serializes")
            );
            ExitCode::SUCCESS
        }
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("brokkr-agent: {}", ErrorChain(&err));
            ExitCode::FAILURE
        }
    }
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
