//! `[rollouts]`: what progressive rollouts need from the server's configuration, the
//! signing secrets of webhook gates.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use brokkr_core::runtime::RolloutSettings;

use serde::{Deserialize, Serialize};

use super::Config;
use crate::webhooks::{GateSecrets, WebhookGate};

/// The environment variables that set one gate secret each:
/// `BROKKR__ROLLOUTS__GATE_SECRETS__<NAME>`. They are read as text, never as numbers,
/// so a secret of digits keeps its leading zeros.
pub(super) const GATE_SECRETS_ENV_PREFIX: &str = "BROKKR__ROLLOUTS__GATE_SECRETS__";

/// The shortest lease: a gate may take 60 s, and the lease must outlast it.
const MIN_LEASE_SECS: u64 = 61;

/// `[rollouts]` (see `docs/configuration.md`).
///
/// `Debug` shows the secrets' names, never a secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutsSection {
    /// Signing secrets of webhook gates by name: a gate's `secret_ref` names one
    /// (`gate_secrets = { slo-hmac = "..." }`), so no secret is ever part of a policy.
    /// Each at least 16 bytes. Environment: `BROKKR__ROLLOUTS__GATE_SECRETS__<NAME>`,
    /// whose name is read in lower case.
    pub gate_secrets: BTreeMap<String, String>,
    /// How often the rollout driver looks for due rollouts, in milliseconds. Agent
    /// reports and commands make a rollout due at once; this is how long until it is
    /// seen.
    pub poll_millis: u64,
    /// How long a replica holds a rollout it evaluates, in seconds: longer than the
    /// slowest gate (at most 60 s).
    pub lease_secs: u64,
}

impl Default for RolloutsSection {
    fn default() -> Self {
        let defaults = RolloutSettings::default();
        Self {
            gate_secrets: BTreeMap::new(),
            poll_millis: defaults.poll.as_millis() as u64,
            lease_secs: defaults.lease.as_secs(),
        }
    }
}

impl RolloutsSection {
    /// The driver's settings: the poll at least 10 ms, the lease longer than the
    /// longest gate timeout.
    pub fn settings(&self) -> RolloutSettings {
        RolloutSettings {
            poll: Duration::from_millis(self.poll_millis.max(10)),
            lease: Duration::from_secs(self.lease_secs.max(MIN_LEASE_SECS)),
            ..RolloutSettings::default()
        }
    }

    /// The gate secrets, checked ([`GateSecrets::new`]); the error names the entry.
    pub fn gate_secrets(&self) -> Result<GateSecrets, String> {
        GateSecrets::new(
            self.gate_secrets
                .iter()
                .map(|(name, secret)| (name.clone(), secret.as_bytes().to_vec())),
        )
    }
}

impl fmt::Debug for RolloutsSection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RolloutsSection")
            .field(
                "gate_secrets",
                &self.gate_secrets.keys().collect::<Vec<_>>(),
            )
            .field("poll_millis", &self.poll_millis)
            .field("lease_secs", &self.lease_secs)
            .finish()
    }
}

impl Config {
    /// The `webhook` rollout gate: `[rollouts] gate_secrets` signs, `[webhooks]
    /// allowed_hosts` says where it may send (whether or not webhook deliveries are on).
    /// The error names what is wrong.
    pub fn webhook_gate(&self) -> Result<WebhookGate, String> {
        let allowlist = self
            .webhooks
            .settings()
            .map_err(|err| format!("[webhooks] is invalid: {err}"))?
            .allowlist;
        let secrets = self
            .rollouts
            .gate_secrets()
            .map_err(|err| format!("[rollouts] is invalid: {err}"))?;
        WebhookGate::new(allowlist, secrets)
            .map_err(|err| format!("cannot build the webhook gate's HTTP client: {err}"))
    }
}
