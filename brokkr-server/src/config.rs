//! Configuration: defaults, then an optional TOML file, then `BROKKR__SECTION__KEY`
//! environment variables, then `DATABASE_URL` (see [`Config::load`]).
//!
//! Every section rejects keys it does not know, from the file and from the
//! environment alike, so a misspelt setting fails the start instead of being ignored.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

mod guard;
mod rollouts;
mod webhooks;

pub use guard::GuardSection;
pub use rollouts::RolloutsSection;
pub use webhooks::WebhooksSection;

/// Prefix of the environment variables read by [`Config::load`]: `BROKKR__SECTION__KEY`.
pub const ENV_PREFIX: &str = "BROKKR";

/// The longest long poll `agents.long_poll_max_secs` may allow, and so the largest
/// `?wait=` the OpenAPI document admits: an hour. A longer wait would only keep a
/// connection that some proxy or load balancer on the way has long dropped.
pub const MAX_LONG_POLL_SECS: u64 = 3600;

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The TOML file could not be read or parsed.
    #[error("cannot read configuration file {path}")]
    File {
        /// The file.
        path: String,
        /// What went wrong.
        #[source]
        source: Box<config::ConfigError>,
    },
    /// A value is unknown, misspelt or of the wrong type.
    #[error("invalid configuration")]
    Invalid(#[source] Box<config::ConfigError>),
    /// A value is outside the range its setting allows.
    #[error("{key} is {value}, more than the largest allowed, {max}")]
    OutOfRange {
        /// The setting, `section.key`.
        key: &'static str,
        /// The value given.
        value: u64,
        /// The largest value allowed.
        max: u64,
    },
    /// `[guard]` holds a limit the guard cannot use.
    #[error("[guard] is invalid: {0}")]
    Guard(String),
    /// `[webhooks]` holds a key, host pattern or timing that cannot work.
    #[error("[webhooks] is invalid: {0}")]
    Webhooks(String),
    /// `server.replica_name` is empty, too long or holds other characters.
    #[error("server.replica_name {0:?} is invalid: use 1-128 letters, digits, '.', '-' or '_'")]
    ReplicaName(String),
    /// `[rollouts]` holds a gate secret that is misnamed or too short.
    #[error("[rollouts] is invalid: {0}")]
    Rollouts(String),
}

impl ConfigError {
    fn invalid(source: config::ConfigError) -> Self {
        Self::Invalid(Box::new(source))
    }
}

impl Config {
    /// Defaults, then `file` (TOML) if given, then the environment variables
    /// `BROKKR__SECTION__KEY` (e.g. `BROKKR__SERVER__LISTEN`), then `DATABASE_URL`,
    /// which overrides `database.url`. Unknown keys are an error.
    pub fn load(file: Option<&Path>) -> Result<Config, ConfigError> {
        Self::load_with_env(file, std::env::vars().collect())
    }

    /// [`Config::load`] with the environment given as a map (for tests and embedding).
    pub fn load_with_env(
        file: Option<&Path>,
        env: HashMap<String, String>,
    ) -> Result<Config, ConfigError> {
        let defaults =
            config::Config::try_from(&Config::default()).map_err(ConfigError::invalid)?;
        let mut builder = config::Config::builder().add_source(defaults);
        if let Some(path) = file {
            let text = std::fs::read_to_string(path).map_err(|err| ConfigError::File {
                path: path.display().to_string(),
                source: Box::new(config::ConfigError::Foreign(Box::new(err))),
            })?;
            // Parse the file on its own first, so a syntax error names the file.
            config::Config::builder()
                .add_source(config::File::from_str(&text, config::FileFormat::Toml))
                .build()
                .map_err(|source| ConfigError::File {
                    path: path.display().to_string(),
                    source: Box::new(source),
                })?;
            builder = builder.add_source(config::File::from_str(&text, config::FileFormat::Toml));
        }
        let database_url = env.get("DATABASE_URL").cloned();
        // Gate secrets are read as text: the source below would turn a secret of
        // digits into a number and lose its leading zeros.
        let (gate_secrets, prefixed): (config::Map<String, String>, config::Map<String, String>) =
            env.into_iter()
                .filter(|(key, _)| key.starts_with(&format!("{ENV_PREFIX}__")))
                .partition(|(key, _)| key.starts_with(rollouts::GATE_SECRETS_ENV_PREFIX));
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true)
                // Lists in the environment are comma-separated.
                .list_separator(",")
                .with_list_parse_key("guard.protected_kinds")
                .with_list_parse_key("webhooks.keys")
                .with_list_parse_key("webhooks.allowed_hosts")
                .source(Some(prefixed)),
        );
        builder = builder.add_source(
            config::Environment::with_prefix(ENV_PREFIX)
                .prefix_separator("__")
                .separator("__")
                .source(Some(gate_secrets)),
        );
        let loaded = builder
            .set_override_option("database.url", database_url)
            .and_then(|builder| builder.build())
            .map_err(ConfigError::invalid)?;
        let config: Config = loaded.try_deserialize().map_err(ConfigError::invalid)?;
        config.validate()?;
        Ok(config)
    }

    /// Checks the ranges that types cannot express ([`MAX_LONG_POLL_SECS`]), the
    /// guard's limits, `[webhooks]` (keys, host patterns, timings) and `[rollouts]`
    /// (gate secrets' names and lengths).
    pub fn validate(&self) -> Result<(), ConfigError> {
        let long_poll = self.agents.long_poll_max_secs;
        if long_poll > MAX_LONG_POLL_SECS {
            return Err(ConfigError::OutOfRange {
                key: "agents.long_poll_max_secs",
                value: long_poll,
                max: MAX_LONG_POLL_SECS,
            });
        }
        if let Some(name) = &self.server.replica_name {
            let valid = (1..=128).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'));
            if !valid {
                return Err(ConfigError::ReplicaName(name.clone()));
            }
        }
        self.guard.validate().map_err(ConfigError::Guard)?;
        self.webhooks.settings().map_err(ConfigError::Webhooks)?;
        self.rollouts
            .gate_secrets()
            .map_err(ConfigError::Rollouts)?;
        Ok(())
    }
}

/// Everything the server can be told. Every field has a default.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// HTTP.
    pub server: ServerSection,
    /// The store.
    pub database: DatabaseSection,
    /// Key checking.
    pub auth: AuthSection,
    /// Agents: liveness, heartbeats, long polls.
    pub agents: AgentsSection,
    /// Template rendering limits.
    pub templates: TemplatesSection,
    /// The blast-radius guard's defaults.
    pub guard: GuardSection,
    /// The audit chain.
    pub audit: AuditSection,
    /// Outbound webhooks.
    pub webhooks: WebhooksSection,
    /// Progressive rollouts: webhook gates' secrets.
    pub rollouts: RolloutsSection,
    /// Logs.
    pub log: LogSection,
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    /// Address to listen on.
    pub listen: String,
    /// Largest accepted request body, in bytes.
    pub body_limit_bytes: usize,
    /// The most YAML, in bytes, one page of a deployment-object listing carries with
    /// `?include=yaml_content`, and the most template source and schema one page of
    /// templates carries with `?include=content`: the page ends early, with a cursor,
    /// before passing it. A page always holds at least one entry, so a larger one
    /// comes alone.
    pub listing_yaml_bytes: usize,
    /// How long in-flight requests may take to finish after SIGINT/SIGTERM.
    pub shutdown_grace_secs: u64,
    /// How long a client may take to send a request's head (request line and headers),
    /// counted from the head's first byte, or from the connection's start for its
    /// first request; the connection is closed after that. 0: no limit.
    pub header_read_timeout_secs: u64,
    /// How long a connection may stay open with no request in flight and nothing
    /// received; it is then closed. A waiting long poll is in flight, not idle. Longer
    /// than common clients' pool idle time (90 s), so that clients close first.
    /// 0: no limit.
    pub idle_timeout_secs: u64,
    /// Most connections open at once; a connection beyond them is answered `503` with
    /// `Retry-After` and closed. 0: no limit (the open-files limit still applies).
    pub max_connections: usize,
    /// How long a plan (`POST /stacks/{id}/plan`, a dry run, a change the guard
    /// stopped) can be confirmed, in seconds (at least 1).
    pub plan_ttl_secs: u64,
    /// This replica's name in the leases it holds: unique among the live replicas and
    /// the same across restarts (a pod's name), so a restarted replica takes back at
    /// once the rollouts it was evaluating. At most 128 letters, digits, `.`, `-` or
    /// `_`. Absent: a random name each start, and a rollout it held waits for its
    /// lease (`[rollouts] lease_secs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replica_name: Option<String>,
    /// `[server.tls]`: serve HTTPS with this certificate and key; absent: plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSection>,
}

/// `[server.tls]`: HTTPS (TLS 1.2 and 1.3, ALPN `h2` and `http/1.1`) with a
/// certificate and key read from PEM files, read again when they are renewed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSection {
    /// The certificate chain (PEM): the server's certificate first, then the
    /// intermediates.
    pub cert_file: PathBuf,
    /// The private key (PEM: PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// How often, in seconds, the files are checked for a renewal (modification time,
    /// then content); a renewed pair serves new connections. 0: never.
    #[serde(default = "TlsSection::default_reload_secs")]
    pub reload_secs: u64,
}

impl TlsSection {
    fn default_reload_secs() -> u64 {
        10
    }

    /// [`TlsSection::reload_secs`] as a period; `None` for 0.
    pub fn reload_period(&self) -> Option<Duration> {
        (self.reload_secs > 0).then(|| Duration::from_secs(self.reload_secs))
    }
}

impl Default for ServerSection {
    fn default() -> Self {
        Self {
            listen: "127.0.0.1:3000".into(),
            body_limit_bytes: 8 * 1024 * 1024,
            listing_yaml_bytes: brokkr_core::runtime::Settings::default().listing_yaml_bytes,
            shutdown_grace_secs: 30,
            header_read_timeout_secs: 15,
            idle_timeout_secs: 120,
            max_connections: 16_384,
            plan_ttl_secs: 900,
            replica_name: None,
            tls: None,
        }
    }
}

impl ServerSection {
    /// The limits the connection loop enforces.
    pub(crate) fn connection_limits(&self) -> crate::connections::Limits {
        let secs = |secs: u64| (secs > 0).then(|| std::time::Duration::from_secs(secs));
        crate::connections::Limits {
            header_read_timeout: secs(self.header_read_timeout_secs),
            idle_timeout: secs(self.idle_timeout_secs),
            max_connections: (self.max_connections > 0).then_some(self.max_connections),
        }
    }
}

/// `[database]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSection {
    /// `sqlite://file?mode=rwc`, `sqlite::memory:` or `postgres://...`.
    pub url: String,
    /// Largest connection pool.
    pub max_connections: u32,
    /// How long a request waits for a database connection (including connecting)
    /// before it is answered 503 `unavailable`: the longest a request hangs while the
    /// database is down or every connection is busy.
    pub acquire_timeout_millis: u64,
    /// Run schema migrations at start.
    pub run_migrations: bool,
}

impl Default for DatabaseSection {
    fn default() -> Self {
        Self {
            url: "sqlite://brokkr.db?mode=rwc".into(),
            max_connections: 20,
            acquire_timeout_millis: 3_000,
            run_migrations: true,
        }
    }
}

/// `[auth]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSection {
    /// How long a looked-up key stays cached before it is read again.
    pub key_cache_ttl_secs: u64,
    /// Most cached keys.
    pub key_cache_capacity: usize,
    /// How often the database's key revocation counter is read: a key revoked through
    /// another replica or the command line stops working here within this period.
    pub key_revocation_poll_millis: u64,
}

impl Default for AuthSection {
    fn default() -> Self {
        Self {
            key_cache_ttl_secs: 10,
            key_cache_capacity: 100_000,
            key_revocation_poll_millis: 500,
        }
    }
}

impl AgentsSection {
    /// [`AgentsSection::stale_after_secs`] as a duration.
    pub fn stale_after(&self) -> Duration {
        Duration::from_secs(self.stale_after_secs)
    }

    /// [`AgentsSection::heartbeat_flush_millis`] as a duration (at least 1 ms).
    pub fn heartbeat_flush_period(&self) -> Duration {
        Duration::from_millis(self.heartbeat_flush_millis.max(1))
    }

    /// How often every placement decision is recomputed:
    /// [`AgentsSection::placement_interval_millis`] (at least 10 ms), by default a third
    /// of `stale_after_secs`, at least one second (the runtime's rule,
    /// [`Settings::placement_period`](brokkr_core::runtime::Settings::placement_period)).
    pub fn placement_period(&self) -> Duration {
        brokkr_core::runtime::Settings {
            stale_after: self.stale_after(),
            placement_period: self.placement_interval(),
            ..Default::default()
        }
        .placement_period()
    }

    /// [`AgentsSection::placement_interval_millis`] as a duration, if set.
    pub fn placement_interval(&self) -> Option<Duration> {
        self.placement_interval_millis.map(Duration::from_millis)
    }
}

impl AuthSection {
    /// The TTL as a duration.
    pub fn key_cache_ttl(&self) -> Duration {
        Duration::from_secs(self.key_cache_ttl_secs)
    }

    /// [`AuthSection::key_revocation_poll_millis`] as a duration (at least 10 ms).
    pub fn key_revocation_poll(&self) -> Duration {
        Duration::from_millis(self.key_revocation_poll_millis.max(10))
    }
}

/// `[agents]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AgentsSection {
    /// An agent without a heartbeat for this long is shown as stale.
    pub stale_after_secs: u64,
    /// Heartbeats are coalesced in memory and written at most this often.
    pub heartbeat_flush_millis: u64,
    /// Longest `?wait=` a target-state long poll may ask for; at most
    /// [`MAX_LONG_POLL_SECS`].
    pub long_poll_max_secs: u64,
    /// Most target states kept in the ETag cache.
    pub target_state_cache_capacity: usize,
    /// How often the placement controller recomputes every decision, noticing agents
    /// that went stale or fresh; absent: a third of `stale_after_secs`, at least 1 s.
    /// Agent and policy changes trigger a recomputation at once regardless.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement_interval_millis: Option<u64>,
}

impl Default for AgentsSection {
    fn default() -> Self {
        Self {
            stale_after_secs: 90,
            heartbeat_flush_millis: 1000,
            long_poll_max_secs: 60,
            target_state_cache_capacity: 100_000,
            placement_interval_millis: None,
        }
    }
}

/// `[templates]`: how much work one rendering may do. The rendered output is capped
/// at `server.body_limit_bytes`, like a deployment object sent directly.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TemplatesSection {
    /// Instructions one rendering may execute before it fails as a runaway loop.
    pub fuel: u64,
    /// Deepest nesting of macro calls and recursive loops.
    pub recursion_limit: usize,
}

impl Default for TemplatesSection {
    fn default() -> Self {
        let limits = brokkr_core::TemplateLimits::default();
        Self {
            fuel: limits.fuel,
            recursion_limit: limits.recursion,
        }
    }
}

impl TemplatesSection {
    /// The limits as the core takes them.
    pub fn limits(&self) -> brokkr_core::TemplateLimits {
        brokkr_core::TemplateLimits {
            fuel: self.fuel,
            recursion: self.recursion_limit,
        }
    }
}

/// `[audit]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuditSection {
    /// How often new audit records are sealed into the audit chain (at least 10 ms).
    pub seal_millis: u64,
}

impl Default for AuditSection {
    fn default() -> Self {
        Self { seal_millis: 1000 }
    }
}

impl AuditSection {
    /// [`AuditSection::seal_millis`] as a duration (at least 10 ms).
    pub fn seal_period(&self) -> Duration {
        Duration::from_millis(self.seal_millis.max(10))
    }
}

/// `[log]`
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LogSection {
    /// `text` or `json`.
    pub format: LogFormat,
    /// A `tracing` filter, e.g. `info` or `brokkr_server=debug,info`.
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

#[cfg(test)]
mod tests;
