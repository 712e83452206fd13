//! [`WebhookGate`]: the rollout gate that asks a URL for a verdict, over the same
//! [`OutboundClient`] as webhook deliveries; what it sends and how it reads the answer
//! are the core's rules ([`brokkr_core::rollout::webhook_gate`]).

use std::collections::BTreeMap;
use std::fmt;

use brokkr_core::rollout::webhook_gate::{self, MAX_ANSWER_BYTES};
use brokkr_core::rollout::{Gate, GateContext, GateError, GateFuture, GateVerdict};
use brokkr_core::webhook::HostAllowlist;

use super::client::OutboundClient;

/// The fewest bytes a gate secret may have: an HMAC key shorter than this is
/// guessable.
pub const MIN_GATE_SECRET_BYTES: usize = 16;

/// The signing secrets webhook gates name by `secret_ref` (`[rollouts] gate_secrets`).
/// Secrets stay in the server's configuration, never in a policy, which anyone who
/// reads the stack sees. `Debug` shows the names, never a secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct GateSecrets {
    secrets: BTreeMap<String, Vec<u8>>,
}

impl GateSecrets {
    /// Secrets by name. A name is ASCII letters, digits, `_` and `-`; a secret has at
    /// least [`MIN_GATE_SECRET_BYTES`] bytes. The error names the entry, never its
    /// secret.
    pub fn new<N, S>(entries: impl IntoIterator<Item = (N, S)>) -> Result<Self, String>
    where
        N: Into<String>,
        S: Into<Vec<u8>>,
    {
        let mut secrets = BTreeMap::new();
        for (name, secret) in entries {
            let name = name.into();
            let secret = secret.into();
            let well_named = !name.is_empty()
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
            if !well_named {
                return Err(format!(
                    "gate_secrets: the name {name:?} is not letters, digits, _ and -"
                ));
            }
            if secret.len() < MIN_GATE_SECRET_BYTES {
                return Err(format!(
                    "gate_secrets.{name}: the secret has {} bytes; it needs at least {MIN_GATE_SECRET_BYTES} (e.g. openssl rand -hex 32)",
                    secret.len()
                ));
            }
            secrets.insert(name, secret);
        }
        Ok(Self { secrets })
    }

    /// The secret named `name`.
    pub fn get(&self, name: &str) -> Option<&[u8]> {
        self.secrets.get(name).map(Vec::as_slice)
    }

    /// The names, sorted.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.secrets.keys().map(String::as_str)
    }
}

impl fmt::Debug for GateSecrets {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GateSecrets")
            .field("names", &self.secrets.keys().collect::<Vec<_>>())
            .finish()
    }
}

/// The `webhook` gate of rollout policies: a signed `POST` of the evaluation to the
/// gate's `url`, answered with a verdict (ROLLOUTS.md section 7). Register it in the
/// control plane's [`GateRegistry`](brokkr_core::rollout::GateRegistry).
///
/// The request leaves only for a host `[webhooks] allowed_hosts` allows, checked before
/// connecting and on every address the name resolves to; it follows no redirect and
/// uses no proxy; it ends within the gate's `timeout` (10 s by default, at most 60 s),
/// connecting and reading included; at most [`MAX_ANSWER_BYTES`] of the answer are
/// read. Everything short of a verdict is a [`GateError`]: an unknown `secret_ref`,
/// a refused host, a timeout, a non-2xx answer, an answer that is not a verdict.
#[derive(Debug, Clone)]
pub struct WebhookGate {
    client: OutboundClient,
    secrets: GateSecrets,
}

impl WebhookGate {
    /// The name policies use (`"type": "webhook"`).
    pub const NAME: &'static str = "webhook";

    /// A gate sending to the hosts `allowlist` allows, signing with `secrets`.
    pub fn new(allowlist: HostAllowlist, secrets: GateSecrets) -> Result<Self, reqwest::Error> {
        // One byte past the bound, so that an answer longer than it shows as such.
        let client = OutboundClient::new(
            allowlist,
            concat!("brokkr-gates/", env!("CARGO_PKG_VERSION")),
            MAX_ANSWER_BYTES + 1,
        )?;
        Ok(Self { client, secrets })
    }

    async fn ask(&self, cx: &GateContext) -> Result<GateVerdict, GateError> {
        let name = webhook_gate::secret_ref(&cx.spec)?;
        let secret = self.secrets.get(name).ok_or_else(|| {
            webhook_gate::gate_error(format!(
                "webhook gate {:?}: secret_ref {name:?} names no secret in [rollouts] gate_secrets",
                cx.spec.name
            ))
        })?;
        // Signed when sent, by this server's clock: the receiver holds the timestamp
        // against its own clock, whenever the evaluation was planned.
        let request = webhook_gate::request(cx, secret, chrono::Utc::now().timestamp())?;
        let answer = self
            .client
            .post(
                &request.url,
                &request.headers,
                request.body,
                request.timeout,
            )
            .await
            .map_err(|err| webhook_gate::gate_error(err.to_string()))?;
        if let Some(why) = answer.broken {
            return Err(webhook_gate::gate_error(format!(
                "answered {}, then the answer broke off: {why}",
                answer.status
            )));
        }
        webhook_gate::judge_answer(answer.status, answer.location.as_deref(), &answer.body)
    }
}

impl Gate for WebhookGate {
    fn name(&self) -> &str {
        Self::NAME
    }

    fn evaluate<'a>(&'a self, cx: &'a GateContext) -> GateFuture<'a> {
        Box::pin(self.ask(cx))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_named_long_enough_and_never_shown() {
        let secrets = GateSecrets::new([
            ("slo-hmac", "0123456789abcdef"),
            ("SLO_2", "another secret, longer"),
        ])
        .unwrap();
        assert_eq!(secrets.get("slo-hmac"), Some(&b"0123456789abcdef"[..]));
        assert_eq!(secrets.get("slo"), None);
        assert_eq!(secrets.names().collect::<Vec<_>>(), ["SLO_2", "slo-hmac"]);
        let shown = format!("{secrets:?}");
        assert!(shown.contains("slo-hmac"), "{shown}");
        assert!(
            !shown.contains("0123456789abcdef") && !shown.contains("another"),
            "{shown}"
        );

        let err = GateSecrets::new([("slo", "0123456789abcde")]).unwrap_err();
        assert!(
            err.contains("gate_secrets.slo") && err.contains("15 bytes"),
            "{err}"
        );
        assert!(!err.contains("0123456789abcde"), "{err}");
        assert!(GateSecrets::new([("slo", "")]).is_err());
        for bad in ["", "a.b", "a b", "é"] {
            let err = GateSecrets::new([(bad, "0123456789abcdef")]).unwrap_err();
            assert!(err.contains("is not letters"), "{bad:?}: {err}");
        }
    }
}
