//! `[webhooks]`: keys for subscription secrets at rest, the host allowlist, timings.

use std::fmt;
use std::time::Duration;

use brokkr_core::runtime::WebhookSettings;
use brokkr_core::webhook::{HostAllowlist, Keyring};
use serde::{Deserialize, Serialize};

/// `[webhooks]`: outbound webhooks (see `docs/webhooks.md`). With no `keys`, webhooks
/// are off: nothing is delivered and creating a subscription is refused. With no
/// `allowed_hosts`, no URL is accepted.
///
/// `Debug` shows the key ids, never the keys.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WebhooksSection {
    /// Keys that seal subscription secrets at rest, `<id>:<base64 of 32 bytes>`
    /// (`openssl rand -base64 32`); the first seals, every one opens. To rotate, put a
    /// new key first and keep the old ones until every secret was rotated.
    /// Environment: comma-separated.
    pub keys: Vec<String>,
    /// Hosts deliveries may go to: `hooks.example.com`, `*.example.com` (every name
    /// under it), either with `:port` (without, any port). Loopback addresses only
    /// when an entry names one. Environment: comma-separated.
    pub allowed_hosts: Vec<String>,
    /// The longest one attempt may take, connecting included, in milliseconds.
    pub timeout_millis: u64,
    /// Attempts before a delivery is dead (dead deliveries wait for a redelivery).
    pub max_attempts: u32,
    /// The first retry waits up to this long; the ceiling doubles with each attempt.
    pub backoff_base_millis: u64,
    /// The longest ceiling between two attempts, in seconds.
    pub backoff_max_secs: u64,
    /// How long a replica holds a claimed subscription, in seconds; longer than the
    /// timeout.
    pub lease_secs: u64,
    /// How often this replica looks for work, in milliseconds.
    pub poll_millis: u64,
    /// How long delivered deliveries stay listed, in hours.
    pub delivered_retention_hours: u64,
    /// Most attempts in flight at once on this replica.
    pub concurrency: usize,
    /// How much of a receiver's answer is read (its start is quoted in a failed
    /// delivery's `last_error`); the rest is not read.
    pub max_response_bytes: usize,
}

impl Default for WebhooksSection {
    fn default() -> Self {
        let settings = WebhookSettings::default();
        Self {
            keys: Vec::new(),
            allowed_hosts: Vec::new(),
            timeout_millis: millis(settings.timeout),
            max_attempts: settings.max_attempts,
            backoff_base_millis: millis(settings.backoff_base),
            backoff_max_secs: settings.backoff_max.as_secs(),
            lease_secs: settings.lease.as_secs(),
            poll_millis: millis(settings.poll),
            delivered_retention_hours: settings.delivered_retention.as_secs() / 3600,
            concurrency: settings.concurrency,
            max_response_bytes: 64 * 1024,
        }
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

impl WebhooksSection {
    /// Whether webhooks are on: at least one key is configured.
    pub fn enabled(&self) -> bool {
        !self.keys.is_empty()
    }

    /// The settings as the control plane takes them; the error names what is wrong.
    pub fn settings(&self) -> Result<WebhookSettings, String> {
        let keyring = if self.keys.is_empty() {
            None
        } else {
            Some(Keyring::parse(&self.keys).map_err(|err| format!("keys: {err}"))?)
        };
        let allowlist = HostAllowlist::parse(&self.allowed_hosts)
            .map_err(|err| format!("allowed_hosts: {err}"))?;
        let settings = WebhookSettings {
            keyring,
            allowlist,
            timeout: Duration::from_millis(self.timeout_millis),
            max_attempts: self.max_attempts,
            backoff_base: Duration::from_millis(self.backoff_base_millis),
            backoff_max: Duration::from_secs(self.backoff_max_secs),
            lease: Duration::from_secs(self.lease_secs),
            poll: Duration::from_millis(self.poll_millis),
            delivered_retention: Duration::from_secs(
                self.delivered_retention_hours.saturating_mul(3600),
            ),
            concurrency: self.concurrency,
        };
        settings.validate()?;
        if self.max_response_bytes == 0 {
            return Err("max_response_bytes must be at least 1".into());
        }
        Ok(settings)
    }
}

impl fmt::Debug for WebhooksSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let key_ids: Vec<&str> = self
            .keys
            .iter()
            .map(|key| key.split_once(':').map_or("<malformed>", |(id, _)| id))
            .collect();
        f.debug_struct("WebhooksSection")
            .field("key_ids", &key_ids)
            .field("allowed_hosts", &self.allowed_hosts)
            .field("timeout_millis", &self.timeout_millis)
            .field("max_attempts", &self.max_attempts)
            .field("backoff_base_millis", &self.backoff_base_millis)
            .field("backoff_max_secs", &self.backoff_max_secs)
            .field("lease_secs", &self.lease_secs)
            .field("poll_millis", &self.poll_millis)
            .field("delivered_retention_hours", &self.delivered_retention_hours)
            .field("concurrency", &self.concurrency)
            .field("max_response_bytes", &self.max_response_bytes)
            .finish()
    }
}
