//! `brokkr-agent start`: the agent for one cluster; `brokkr-agent simulate`: many
//! simulated agents in one process (see `brokkr_agent::simulate`).
//!
//! ```sh
//! BROKKR__AGENT__BROKER_URL=https://brokkr.example.com BROKKR__AGENT__PAK=<key> \
//!   brokkr-agent start --kubeconfig ~/.kube/config --ca-file ca.pem
//! BROKKR_ADMIN_KEY=<admin key> brokkr-agent simulate --agents 1000 --duration 5m
//! ```

use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use brokkr_agent::config::{AgentSection, Config, LogFormat, Overrides, Secret};
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
    ///
    /// Every `[agent]` setting can also be given as `BROKKR__AGENT__<KEY>` (e.g.
    /// `BROKKR__AGENT__POLL_WAIT_SECS`); the flags below override both the file and
    /// the environment.
    Start(StartArgs),
    /// Run many simulated agents in this process against a broker, each with its own
    /// key and an in-memory cluster, and report what they applied and how fast.
    Simulate(SimulateArgs),
}

#[derive(Debug, Args)]
struct StartArgs {
    /// A TOML configuration file (`[agent]`, `[log]`); environment variables
    /// `BROKKR__AGENT__*` override it.
    #[arg(long, env = "BROKKR_AGENT_CONFIG")]
    config: Option<PathBuf>,
    /// The broker's base URL, `http://` or `https://` (`agent.broker_url`).
    #[arg(long, env = "BROKKR__AGENT__BROKER_URL")]
    broker_url: Option<String>,
    /// The agent's key, `brokkr_<id>_<secret>` (`agent.pak`); prefer the environment
    /// variable, which other users cannot read from the process list.
    #[arg(long, env = "BROKKR__AGENT__PAK", hide_env_values = true)]
    pak: Option<String>,
    /// A PEM file of CA certificates trusted for an `https://` broker in addition to
    /// the system's roots (`agent.ca_file`).
    #[arg(long, env = "BROKKR__AGENT__CA_FILE")]
    ca_file: Option<PathBuf>,
    /// The kubeconfig to use (`agent.kubeconfig`); without it: `KUBECONFIG`,
    /// `~/.kube/config`, or the in-cluster service account.
    #[arg(long, env = "BROKKR__AGENT__KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
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
    let args = match Cli::parse().command {
        Command::Start(args) => args,
        Command::Simulate(args) => return simulate(args).await,
    };
    let overrides = Overrides {
        broker_url: args.broker_url,
        pak: args.pak.map(Secret::new),
        ca_file: args.ca_file,
        kubeconfig: args.kubeconfig,
    };
    let config = match Config::load_with(args.config.as_deref(), overrides) {
        Ok(config) => config,
        Err(err) => {
            eprintln!("brokkr-agent: {err}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config);
    match brokkr_agent::start::run(config, shutdown_signal()).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = %ErrorChain(&err), "brokkr-agent stopped");
            ExitCode::FAILURE
        }
    }
}

async fn simulate(args: SimulateArgs) -> ExitCode {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log_filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
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

fn init_logging(config: &Config) {
    let filter = tracing_subscriber::EnvFilter::try_new(&config.log.filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Logs go to stderr, coloured only for a person watching a terminal: never ANSI
    // escapes in a pipe, a file or a container's log.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
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
