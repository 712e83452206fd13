//! What every handler shares: the control plane, the configuration and the metrics.

use std::sync::Arc;

use brokkr_core::runtime::{ControlPlane, Settings};
use brokkr_core::{GeneratorRegistry, Store};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::webhooks::ReqwestSender;

/// Shared state, attached to every request (`Data<&AppState>`). Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The control plane every handler calls.
    pub control_plane: ControlPlane,
    /// Request and domain metrics.
    pub metrics: Arc<Metrics>,
    /// The configuration the server runs with.
    pub config: Arc<Config>,
}

impl AppState {
    /// State over a control plane built from `store`, `config` and `generators` with
    /// the default placement. Nothing runs yet: call [`ControlPlane::start`] on `control_plane`
    /// (inside a Tokio runtime) before serving.
    pub fn new(store: Arc<dyn Store>, config: Config, generators: GeneratorRegistry) -> Self {
        let control_plane = config.control_plane(store, generators);
        Self::with_control_plane(control_plane, config)
    }

    /// State over a control plane you built (your own placement, generators and
    /// settings); `config` gives the server's own settings (listen address, body
    /// limit, logs).
    pub fn with_control_plane(control_plane: ControlPlane, config: Config) -> Self {
        Self {
            metrics: Arc::new(Metrics::new(control_plane.settings().stale_after)),
            control_plane,
            config: Arc::new(config),
        }
    }
}

impl From<ControlPlane> for AppState {
    /// State over `control_plane` with the server's default configuration.
    fn from(control_plane: ControlPlane) -> Self {
        Self::with_control_plane(control_plane, Config::default())
    }
}

impl Config {
    /// A control plane over `store` with this configuration's settings, `generators`
    /// and the default placement.
    pub fn control_plane(
        &self,
        store: Arc<dyn Store>,
        generators: GeneratorRegistry,
    ) -> ControlPlane {
        let mut builder = ControlPlane::builder(store)
            .settings(self.runtime_settings())
            .generators(generators);
        if let Some(sender) = self.webhook_sender() {
            builder = builder.webhook_sender(sender);
        }
        // Built whether or not webhook deliveries are on: a gate needs only the
        // allowlist and its secret. `Config::load` checked both, so an error here is a
        // configuration built in code; policies with webhook gates are then refused.
        match self.webhook_gate() {
            Ok(gate) => builder = builder.webhook_gate(Arc::new(gate)),
            Err(err) => {
                tracing::error!(error = %err, "cannot build the webhook gate; rollout policies with webhook gates are refused");
            }
        }
        builder.build()
    }

    /// The webhook sender when `[webhooks]` has keys (webhooks are on), else `None`.
    fn webhook_sender(&self) -> Option<Arc<dyn brokkr_core::runtime::WebhookSender>> {
        if !self.webhooks.enabled() {
            return None;
        }
        let settings = self.webhook_settings();
        match ReqwestSender::new(&settings, self.webhooks.max_response_bytes) {
            Ok(sender) => Some(Arc::new(sender)),
            Err(err) => {
                tracing::error!(error = %crate::error::ErrorChain(&err), "cannot build the webhook client; webhooks are not sent");
                None
            }
        }
    }

    /// `[webhooks]` as the control plane takes it. A section that does not validate
    /// (possible only for a `Config` built in code, as [`Config::load`] validates)
    /// turns webhooks off, with an error in the log, rather than sending anywhere.
    fn webhook_settings(&self) -> brokkr_core::runtime::WebhookSettings {
        self.webhooks.settings().unwrap_or_else(|err| {
            tracing::error!(error = %err, "[webhooks] is invalid; webhooks are off");
            brokkr_core::runtime::WebhookSettings::default()
        })
    }

    /// The control plane's settings from this configuration.
    pub fn runtime_settings(&self) -> Settings {
        Settings {
            stale_after: self.agents.stale_after(),
            heartbeat_flush_period: self.agents.heartbeat_flush_period(),
            placement_period: self.agents.placement_interval(),
            long_poll_max: std::time::Duration::from_secs(self.agents.long_poll_max_secs),
            target_state_cache_capacity: self.agents.target_state_cache_capacity,
            key_cache_ttl: self.auth.key_cache_ttl(),
            key_cache_capacity: self.auth.key_cache_capacity,
            key_revocation_poll: self.auth.key_revocation_poll(),
            template_limits: self.templates.limits(),
            max_yaml_bytes: self.server.body_limit_bytes,
            listing_yaml_bytes: self.server.listing_yaml_bytes,
            guard: self.guard.policy(),
            plan_ttl: std::time::Duration::from_secs(self.server.plan_ttl_secs.max(1)),
            audit_seal_period: self.audit.seal_period(),
            webhooks: self.webhook_settings(),
            rollouts: self.rollouts.settings(),
            replica: self.server.replica_name.clone(),
        }
    }
}
