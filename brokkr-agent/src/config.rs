//! The agent's configuration: defaults, then an optional TOML file, then environment
//! variables `BROKKR__AGENT__<KEY>` (and `BROKKR__LOG__<KEY>`), like the server's.
//!
//! Only `broker_url` and `pak` have no usable default. The key is never logged:
//! `Debug` shows it redacted.

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Everything the agent reads at start.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// How the agent reaches the broker and its cluster, and its rhythm.
    pub agent: AgentSection,
    /// Logs.
    pub log: LogSection,
}

/// `[agent]`
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentSection {
    /// The broker's base URL, e.g. `http://127.0.0.1:3000`.
    pub broker_url: String,
    /// The agent's key (`brokkr_<id>_<secret>`).
    pub pak: Secret,
    /// A PEM file of certificate authorities trusted for an `https://` broker, in
    /// addition to the system's roots (for a broker with a private CA).
    pub ca_file: Option<PathBuf>,
    /// Path of a kubeconfig; `KUBECONFIG` or in-cluster config when absent.
    pub kubeconfig: Option<PathBuf>,
    /// Labels reported with every heartbeat's capabilities (e.g. `region = "eu-west"`).
    pub labels: BTreeMap<String, String>,
    /// Named capabilities reported with every heartbeat (e.g. `gpu`).
    pub features: Vec<String>,
    /// Longest a target-state long poll waits for a change.
    pub poll_wait_secs: u64,
    /// How often the agent beats.
    pub heartbeat_interval_secs: u64,
    /// How often every current deployment object is applied again, to correct drift.
    pub resync_period_secs: u64,
    /// How often the health of applied workloads is read and reported.
    pub health_interval_secs: u64,
    /// Longest pause between retries after failures (backoff doubles up to this, with
    /// jitter).
    pub max_backoff_secs: u64,
    /// Stacks reconciled at the same time.
    pub concurrency: usize,
    /// Where `/healthz`, `/readyz` and `/metrics` are served.
    pub health_listen: String,
    /// Namespace holding the per-stack inventories.
    pub inventory_namespace: String,
    /// Namespace for namespaced objects that name none.
    pub default_namespace: String,
    /// How long a CustomResourceDefinition may take to become established.
    pub crd_established_timeout_secs: u64,
    /// Whether to create `inventory_namespace` at start if it is missing.
    pub ensure_inventory_namespace: bool,
    /// How long deleted objects may take to go (finalizers), per removal tier.
    pub deletion_timeout_secs: u64,
    /// How long discovery results are trusted before they are read again.
    pub discovery_ttl_secs: u64,
    /// How long one API group version may take to describe itself.
    pub discovery_timeout_secs: u64,
    /// How long shutdown waits for the current work and pending reports.
    pub shutdown_grace_secs: u64,
}

impl Default for AgentSection {
    fn default() -> Self {
        Self {
            broker_url: "http://127.0.0.1:3000".into(),
            pak: Secret::default(),
            ca_file: None,
            kubeconfig: None,
            labels: BTreeMap::new(),
            features: Vec::new(),
            poll_wait_secs: 30,
            heartbeat_interval_secs: 30,
            resync_period_secs: 300,
            health_interval_secs: 60,
            max_backoff_secs: 60,
            concurrency: 4,
            health_listen: "127.0.0.1:9440".into(),
            inventory_namespace: "brokkr-system".into(),
            default_namespace: "default".into(),
            crd_established_timeout_secs: 30,
            ensure_inventory_namespace: true,
            deletion_timeout_secs: 60,
            discovery_ttl_secs: 300,
            discovery_timeout_secs: 10,
            shutdown_grace_secs: 30,
        }
    }
}

impl fmt::Debug for AgentSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AgentSection")
            .field("broker_url", &self.broker_url)
            .field("pak", &self.pak)
            .field("ca_file", &self.ca_file)
            .field("kubeconfig", &self.kubeconfig)
            .field("labels", &self.labels)
            .field("poll_wait_secs", &self.poll_wait_secs)
            .field("resync_period_secs", &self.resync_period_secs)
            .finish_non_exhaustive()
    }
}

impl AgentSection {
    /// The long-poll wait (at least one second).
    pub fn poll_wait(&self) -> Duration {
        Duration::from_secs(self.poll_wait_secs.max(1))
    }

    /// The heartbeat period (at least one second).
    pub fn heartbeat_interval(&self) -> Duration {
        Duration::from_secs(self.heartbeat_interval_secs.max(1))
    }

    /// The resync period (at least one second).
    pub fn resync_period(&self) -> Duration {
        Duration::from_secs(self.resync_period_secs.max(1))
    }

    /// The health period (at least one second).
    pub fn health_interval(&self) -> Duration {
        Duration::from_secs(self.health_interval_secs.max(1))
    }

    /// The backoff ceiling (at least one second).
    pub fn max_backoff(&self) -> Duration {
        Duration::from_secs(self.max_backoff_secs.max(1))
    }

    /// The shutdown grace period.
    pub fn shutdown_grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_secs)
    }
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `brokkr_agent=debug,info`.
    pub filter: String,
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            format: LogFormat::Text,
            filter: "info".into(),
        }
    }
}

/// Log line format.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LogFormat {
    /// Human-readable.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// A secret string whose `Debug` never shows it.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself, for the one place that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            f.write_str("<unset>")
        } else {
            f.write_str("<redacted>")
        }
    }
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file or an environment variable could not be read or parsed.
    #[error("configuration: {0}")]
    Load(#[from] config::ConfigError),
    /// A value is unusable.
    #[error("configuration: {0}")]
    Invalid(String),
}

/// Values given on the command line: they override the file and the environment.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `agent.broker_url`.
    pub broker_url: Option<String>,
    /// `agent.pak`.
    pub pak: Option<Secret>,
    /// `agent.ca_file`.
    pub ca_file: Option<PathBuf>,
    /// `agent.kubeconfig`.
    pub kubeconfig: Option<PathBuf>,
}

impl Config {
    /// [`Config::load`], then `overrides`, then the checks of [`Config::validate`].
    pub fn load_with(file: Option<&Path>, overrides: Overrides) -> Result<Self, ConfigError> {
        let mut config = Self::load_unchecked(file)?;
        let agent = &mut config.agent;
        if let Some(url) = overrides.broker_url {
            agent.broker_url = url;
        }
        if let Some(pak) = overrides.pak {
            agent.pak = pak;
        }
        if let Some(path) = overrides.ca_file {
            agent.ca_file = Some(path);
        }
        if let Some(path) = overrides.kubeconfig {
            agent.kubeconfig = Some(path);
        }
        config.validate()?;
        Ok(config)
    }

    /// Defaults, then `file` (TOML) if given, then `BROKKR__SECTION__KEY` variables.
    pub fn load(file: Option<&Path>) -> Result<Self, ConfigError> {
        let loaded = Self::load_unchecked(file)?;
        loaded.validate()?;
        Ok(loaded)
    }

    fn load_unchecked(file: Option<&Path>) -> Result<Self, ConfigError> {
        let mut builder = config::Config::builder();
        if let Some(file) = file {
            builder = builder.add_source(config::File::from(file).format(config::FileFormat::Toml));
        }
        let loaded: Config = builder
            .add_source(
                config::Environment::with_prefix("BROKKR")
                    .prefix_separator("__")
                    .separator("__")
                    .try_parsing(true)
                    .list_separator(",")
                    .with_list_parse_key("agent.features"),
            )
            .build()?
            .try_deserialize()?;
        Ok(loaded)
    }

    /// Checks what cannot work.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let agent = &self.agent;
        if !(agent.broker_url.starts_with("http://") || agent.broker_url.starts_with("https://")) {
            return Err(ConfigError::Invalid(format!(
                "agent.broker_url must be an http:// or https:// URL, not {:?}",
                agent.broker_url
            )));
        }
        if agent.pak.expose().is_empty() {
            return Err(ConfigError::Invalid(
                "agent.pak is not set (BROKKR__AGENT__PAK)".into(),
            ));
        }
        if agent.concurrency == 0 {
            return Err(ConfigError::Invalid(
                "agent.concurrency must be at least 1".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_key_is_never_debug_printed() {
        let mut config = Config::default();
        config.agent.pak = Secret::new("brokkr_abc_supersecret");
        let printed = format!("{config:?}");
        assert!(!printed.contains("supersecret"), "{printed}");
        assert!(printed.contains("<redacted>"));
    }

    #[test]
    fn missing_key_and_bad_url_are_refused() {
        let mut config = Config::default();
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("agent.pak")
        );
        config.agent.pak = Secret::new("brokkr_a_b");
        config.agent.broker_url = "127.0.0.1:3000".into();
        assert!(
            config
                .validate()
                .unwrap_err()
                .to_string()
                .contains("broker_url")
        );
        config.agent.broker_url = "http://127.0.0.1:3000".into();
        assert!(config.validate().is_ok());
    }

    #[test]
    fn command_line_values_override_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(&path, "[agent]\nbroker_url = \"http://file:3000\"\n").unwrap();
        // No key in the file: the command line's makes the configuration valid.
        let config = Config::load_with(
            Some(&path),
            Overrides {
                broker_url: Some("https://broker.example:443".into()),
                pak: Some(Secret::new("brokkr_a_b")),
                ca_file: Some("/etc/brokkr/ca.pem".into()),
                kubeconfig: None,
            },
        )
        .unwrap();
        assert_eq!(config.agent.broker_url, "https://broker.example:443");
        assert_eq!(config.agent.pak.expose(), "brokkr_a_b");
        assert_eq!(
            config.agent.ca_file,
            Some(PathBuf::from("/etc/brokkr/ca.pem"))
        );
        assert!(Config::load_with(Some(&path), Overrides::default()).is_err());
    }

    #[test]
    fn periods_of_zero_are_one_second() {
        let agent = AgentSection {
            poll_wait_secs: 0,
            heartbeat_interval_secs: 0,
            ..AgentSection::default()
        };
        assert_eq!(agent.poll_wait(), Duration::from_secs(1));
        assert_eq!(agent.heartbeat_interval(), Duration::from_secs(1));
    }

    #[test]
    fn a_file_sets_labels_and_periods() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("agent.toml");
        std::fs::write(
            &path,
            "[agent]\npak = \"brokkr_a_b\"\nresync_period_secs = 60\n[agent.labels]\nregion = \"eu-west\"\n",
        )
        .unwrap();
        let config = Config::load(Some(&path)).unwrap();
        assert_eq!(config.agent.resync_period(), Duration::from_secs(60));
        assert_eq!(config.agent.labels["region"], "eu-west");
        std::fs::write(&path, "[agent]\npak = \"x\"\nno_such_key = 1\n").unwrap();
        assert!(Config::load(Some(&path)).is_err());
    }
}
