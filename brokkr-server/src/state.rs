//! What every handler shares, and the background tasks that keep it fresh.

use std::sync::Arc;

use brokkr_core::{GeneratorRegistry, Store};

use crate::auth::KeyCache;
use crate::config::Config;
use crate::heartbeat::HeartbeatBuffer;
use crate::metrics::Metrics;
use crate::placement::{PlacementController, PlacementSignals};
use crate::target_cache::TargetStateCache;

/// Shared state, attached to every request (`Data<&AppState>`). Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The store.
    pub store: Arc<dyn Store>,
    /// Key lookups.
    pub keys: Arc<KeyCache>,
    /// Coalesced heartbeats waiting to be written.
    pub heartbeats: Arc<HeartbeatBuffer>,
    /// Target states by agent, valid until a change notification.
    pub target_states: Arc<TargetStateCache>,
    /// Request and domain metrics.
    pub metrics: Arc<Metrics>,
    /// Registered Rust generators.
    pub generators: Arc<GeneratorRegistry>,
    /// The configuration the server runs with.
    pub config: Arc<Config>,
    /// Changes the placement controller should look at (agents changed, policies set).
    pub placement: Arc<PlacementSignals>,
    /// Set once shutdown begins, so long polls answer at once instead of holding the
    /// shutdown grace period hostage.
    draining: Arc<tokio::sync::watch::Sender<bool>>,
}

impl AppState {
    /// State sized by `config`. Nothing runs yet: call [`AppState::start_background`]
    /// (inside a Tokio runtime) before serving, or heartbeats are never written and
    /// cached target states never invalidated.
    pub fn new(store: Arc<dyn Store>, config: Config, generators: GeneratorRegistry) -> Self {
        Self {
            keys: Arc::new(KeyCache::new(
                config.auth.key_cache_ttl(),
                config.auth.key_cache_capacity,
            )),
            heartbeats: Arc::new(HeartbeatBuffer::default()),
            target_states: Arc::new(TargetStateCache::new(
                config.agents.target_state_cache_capacity,
            )),
            metrics: Arc::new(Metrics::new(config.agents.stale_after())),
            generators: Arc::new(generators),
            config: Arc::new(config),
            placement: Arc::new(PlacementSignals::default()),
            store,
            draining: Arc::new(tokio::sync::watch::Sender::new(false)),
        }
    }

    /// Tells long polls to answer now: the server is shutting down.
    pub fn begin_draining(&self) {
        self.draining.send_replace(true);
    }

    /// Resolves once [`AppState::begin_draining`] was called.
    pub async fn draining(&self) {
        let mut receiver = self.draining.subscribe();
        // Only fails if the sender is gone, which it cannot be while `self` holds it.
        let _ = receiver.wait_for(|draining| *draining).await;
    }

    /// Starts the heartbeat flusher, the target-state cache invalidator and the
    /// placement controller. They run until the returned [`Background`] is dropped or
    /// shut down.
    pub fn start_background(&self) -> Background {
        let flusher = Arc::clone(&self.heartbeats).spawn_flusher(
            Arc::clone(&self.store),
            self.config.agents.heartbeat_flush_period(),
            Arc::clone(&self.placement),
        );
        // Subscribe before returning, so no change made after this call is missed.
        let invalidator =
            Arc::clone(&self.target_states).spawn_invalidator(self.store.change_feed());
        let placement = self.placement_controller().spawn();
        Background {
            tasks: vec![flusher, invalidator, placement],
        }
    }

    /// The placement controller over this state (started by
    /// [`AppState::start_background`]; tests and tools may run it by hand).
    pub fn placement_controller(&self) -> PlacementController {
        PlacementController::new(
            Arc::clone(&self.store),
            Arc::clone(&self.heartbeats),
            Arc::clone(&self.placement),
            self.config.agents.stale_after(),
            self.config.agents.placement_period(),
        )
    }
}

/// The background tasks of an [`AppState`]; dropping it aborts them.
#[derive(Debug)]
#[must_use = "dropping Background stops the heartbeat flusher, the cache invalidator and the placement controller"]
pub struct Background {
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Background {
    /// Stops the tasks and writes the heartbeats still pending.
    pub async fn shutdown(self, state: &AppState) {
        for task in &self.tasks {
            task.abort();
        }
        match state.heartbeats.flush(state.store.as_ref()).await {
            Ok(0) => {}
            Ok(written) => tracing::info!(written, "wrote pending heartbeats"),
            Err(err) => tracing::warn!(
                error = %crate::error::ErrorChain(&err),
                "writing pending heartbeats at shutdown failed; they are lost"
            ),
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}
