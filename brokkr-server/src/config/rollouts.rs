//! `[rollouts]`: what progressive rollouts need from the server's configuration, the
//! signing secrets of webhook gates.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::Config;
use crate::webhooks::{GateSecrets, WebhookGate};

/// The environment variables that set one gate secret each:
/// `BROKKR__ROLLOUTS__GATE_SECRETS__<NAME>`. They are read as text, never as numbers,
/// so a secret of digits keeps its leading zeros.
pub(super) const GATE_SECRETS_ENV_PREFIX: &str = "BROKKR__ROLLOUTS__GATE_SECRETS__";

/// `[rollouts]` (see `docs/configuration.md`).
///
/// `Debug` shows the secrets' names, never a secret.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RolloutsSection {
    /// Signing secrets of webhook gates by name: a gate's `secret_ref` names one
    /// (`gate_secrets = { slo-hmac = "..." }`), so no secret is ever part of a policy.
    /// Each at least 16 bytes. Environment: `BROKKR__ROLLOUTS__GATE_SECRETS__<NAME>`,
    /// whose name is read in lower case.
    pub gate_secrets: BTreeMap<String, String>,
}

impl RolloutsSection {
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
