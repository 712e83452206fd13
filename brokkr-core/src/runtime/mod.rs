//! The control-plane runtime: everything that makes Brokkr a control plane, with no
//! transport.
//!
//! A [`ControlPlane`] is built from an `Arc<dyn Store>`, a placement (the default or
//! your own), a [`GeneratorRegistry`] and [`Settings`]. It owns:
//!
//! - every operation of API v1 as a method that takes the caller (an [`Actor`]) and
//!   enforces role and row access ([`access`]); a generator never learns that another
//!   generator's rows exist;
//! - authentication of API keys through a bounded cache ([`keys`]);
//! - target state per agent with its ETag, cached, and
//!   [`ControlPlane::wait_for_change`] (long poll), woken by the store's change feed so
//!   replicas wake each other;
//! - heartbeats coalesced in memory and written in batches ([`heartbeat`]);
//! - render-then-append for templates and registered generators, with rendering,
//!   parsing and hashing kept off the async workers;
//! - the placement controller ([`placement`]);
//! - the audit chain's sealer, and the admin's check of the whole chain
//!   ([`ControlPlane::verify_audit_chain`]);
//! - outbound webhooks ([`webhooks`]): subscriptions with their access rules and the
//!   dispatcher that signs and delivers events through a [`WebhookSender`];
//! - background tasks with a clear start ([`ControlPlane::start`]) and a graceful
//!   shutdown ([`Background::shutdown`]).
//!
//! The reference server (`brokkr-server`) is a thin HTTP mapping over this type; a
//! control plane with its own API (axum, gRPC, a queue consumer) calls the same
//! methods.
//!
//! ```no_run
//! use std::sync::Arc;
//!
//! use brokkr_core::runtime::ControlPlane;
//! use brokkr_core::{Actor, NewStack, Store};
//!
//! async fn run(store: Arc<dyn Store>) -> Result<(), Box<dyn std::error::Error>> {
//!     let control_plane = ControlPlane::builder(store).build();
//!     // Heartbeat writes, cache invalidation and placement run while `background` lives.
//!     let background = control_plane.start();
//!     let stack = control_plane
//!         .create_stack(&Actor::Admin, NewStack { name: "tenant-a".into(), ..Default::default() })
//!         .await?;
//!     println!("created {}", stack.id);
//!     background.shutdown().await;
//!     Ok(())
//! }
//! ```

pub mod access;
mod admin;
mod agents;
mod audit_chain;
mod background;
mod deployment_objects;
pub mod error;
mod events;
mod fleet;
mod generators;
mod health;
pub mod heartbeat;
pub mod keys;
mod listing;
mod metadata;
pub mod placement;
pub mod plan;
mod render;
pub mod rollouts;
mod settings;
mod stack_owners;
mod stacks;
pub mod target_cache;
mod target_loader;
mod target_state;
mod targets;
mod templates;
pub mod webhooks;

use std::sync::Arc;

use crate::generator::GeneratorRegistry;
use crate::model::Actor;
use crate::placement::{Placement, PlacementRegistry};
use crate::rollout::{Gate, GateRegistry};
use crate::store::Store;

pub use agents::{AgentQuery, AgentRegistration, AgentView, DisplayedStatus, RegisteredAgent};
pub use audit_chain::AuditChainReport;
pub use background::Background;
pub use error::{Error, ErrorChain, Result};
pub use events::MAX_EVENT_MESSAGE_BYTES;
pub use generators::{GeneratorSpec, GeneratorWithKey};
pub use health::StackHealth;
pub use listing::IncludeContent;
pub use render::{GenerateSource, Rendered};
pub use rollouts::{RolloutCounts, RolloutSettings};
pub use settings::Settings;
pub use target_cache::CachedTargetState;
pub use target_state::{MAX_CAPABILITY_STRING, MAX_EXTRA_BYTES, MAX_FEATURES, Poll};
pub use webhooks::{
    SendOutcome, SubscriptionChange, SubscriptionSpec, SubscriptionWithSecret, WebhookCounts,
    WebhookRequest, WebhookSender, WebhookSettings,
};

use heartbeat::HeartbeatBuffer;
use keys::KeyCache;
use placement::PlacementSignals;
use target_cache::TargetStateCache;

/// Stack owners remembered for appends (about 40 bytes each).
const STACK_OWNERS_CAPACITY: usize = 65_536;

/// A control plane without transport; see the [module documentation](self). Cheap to
/// clone (one `Arc`); clones share caches and background tasks.
#[derive(Clone)]
pub struct ControlPlane {
    inner: Arc<Inner>,
}

struct Inner {
    store: Arc<dyn Store>,
    placements: PlacementRegistry,
    placement_state: Arc<placement::PlacementState>,
    generators: GeneratorRegistry,
    settings: Settings,
    keys: KeyCache,
    stack_owners: stack_owners::StackOwners,
    heartbeats: Arc<HeartbeatBuffer>,
    target_states: Arc<TargetStateCache>,
    placement_signals: Arc<PlacementSignals>,
    /// Set once shutdown begins, so waits answer at once instead of holding the
    /// shutdown grace period hostage.
    draining: tokio::sync::watch::Sender<bool>,
    /// Sends webhook deliveries; `None`: the dispatcher sends nothing.
    webhook_sender: Option<Arc<dyn webhooks::WebhookSender>>,
    /// This control plane's name on the leases it takes (webhook subscriptions,
    /// rollouts).
    claimant: Arc<str>,
    webhook_counters: Arc<webhooks::WebhookCounters>,
    /// Answers rollouts' webhook gates; `None`: policies with one are refused.
    webhook_gate: Option<Arc<dyn Gate>>,
    /// The control plane's own gates, for policies' `custom` gates.
    gates: GateRegistry,
    rollout_counters: Arc<rollouts::RolloutCounters>,
}

impl std::fmt::Debug for ControlPlane {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlPlane")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

/// Builds a [`ControlPlane`]: only the store is required.
pub struct ControlPlaneBuilder {
    store: Arc<dyn Store>,
    placements: PlacementRegistry,
    generators: GeneratorRegistry,
    settings: Settings,
    webhook_sender: Option<Arc<dyn webhooks::WebhookSender>>,
    webhook_gate: Option<Arc<dyn Gate>>,
    gates: GateRegistry,
}

impl ControlPlaneBuilder {
    /// The default placement: it decides stacks whose policy names none (default:
    /// [`DefaultPlacement`](crate::DefaultPlacement)).
    pub fn placement(mut self, placement: Arc<dyn Placement>) -> Self {
        self.placements.set_default(placement);
        self
    }

    /// Registers a placement by name: a stack's policy selects it with
    /// `"placement": name` and gives it its own JSON in `"custom"`.
    ///
    /// # Panics
    /// When `name` is not 1-63 characters of `a-z`, `0-9`, `-`, `_`, `.`.
    pub fn register_placement(
        mut self,
        name: impl Into<String>,
        placement: Arc<dyn Placement>,
    ) -> Self {
        self.placements.register(name, placement);
        self
    }

    /// Every placement at once: a default and named ones.
    pub fn placements(mut self, placements: PlacementRegistry) -> Self {
        self.placements = placements;
        self
    }

    /// The registered Rust generators (default: none).
    pub fn generators(mut self, generators: GeneratorRegistry) -> Self {
        self.generators = generators;
        self
    }

    /// Timings, cache sizes and limits (default: [`Settings::default`]).
    pub fn settings(mut self, settings: Settings) -> Self {
        self.settings = settings;
        self
    }

    /// Sends webhook deliveries (default: none, and then nothing is sent; events are
    /// still fanned out, so they wait as deliveries for a control plane that sends).
    /// The reference server's is `brokkr_server::webhooks::ReqwestSender`.
    pub fn webhook_sender(mut self, sender: Arc<dyn webhooks::WebhookSender>) -> Self {
        self.webhook_sender = Some(sender);
        self
    }

    /// Answers rollout policies' webhook gates (default: none, and then a policy with
    /// a webhook gate is refused). The reference server's is
    /// `brokkr_server::rollouts::WebhookGate`.
    pub fn webhook_gate(mut self, gate: Arc<dyn Gate>) -> Self {
        self.webhook_gate = Some(gate);
        self
    }

    /// The control plane's own rollout gates: a policy names one with
    /// `{"type": "custom", "custom": "<name>"}` (default: none).
    pub fn gates(mut self, gates: GateRegistry) -> Self {
        self.gates = gates;
        self
    }

    /// The control plane. Nothing runs in the background until [`ControlPlane::start`].
    pub fn build(self) -> ControlPlane {
        let settings = self.settings;
        let claimant = settings
            .replica
            .clone()
            .filter(|name| !name.is_empty())
            .unwrap_or_else(|| uuid::Uuid::new_v4().simple().to_string())
            .into();
        ControlPlane {
            inner: Arc::new(Inner {
                keys: KeyCache::new(settings.key_cache_ttl, settings.key_cache_capacity),
                stack_owners: stack_owners::StackOwners::new(STACK_OWNERS_CAPACITY),
                heartbeats: Arc::new(HeartbeatBuffer::default()),
                target_states: Arc::new(TargetStateCache::new(
                    settings.target_state_cache_capacity,
                )),
                placement_signals: Arc::new(PlacementSignals::default()),
                draining: tokio::sync::watch::Sender::new(false),
                store: self.store,
                placements: self.placements,
                placement_state: Arc::default(),
                generators: self.generators,
                settings,
                webhook_sender: self.webhook_sender,
                claimant,
                webhook_counters: Arc::default(),
                webhook_gate: self.webhook_gate,
                gates: self.gates,
                rollout_counters: Arc::default(),
            }),
        }
    }
}

impl ControlPlane {
    /// Starts building a control plane over `store`.
    pub fn builder(store: Arc<dyn Store>) -> ControlPlaneBuilder {
        ControlPlaneBuilder {
            store,
            placements: PlacementRegistry::default(),
            generators: GeneratorRegistry::default(),
            settings: Settings::default(),
            webhook_sender: None,
            webhook_gate: None,
            gates: GateRegistry::default(),
        }
    }

    /// The store. Writing through it directly bypasses access rules and cache
    /// invalidation by this replica (change notifications still arrive).
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// The settings it runs with.
    pub fn settings(&self) -> &Settings {
        &self.inner.settings
    }

    /// The registered generators.
    pub fn generators(&self) -> &GeneratorRegistry {
        &self.inner.generators
    }

    /// The default placement: it decides stacks whose policy names none.
    pub fn placement(&self) -> &Arc<dyn Placement> {
        self.inner.placements.default_placement()
    }

    /// Every placement: the default and the named ones.
    pub fn placements(&self) -> &PlacementRegistry {
        &self.inner.placements
    }

    /// Resolves a presented API key (`brokkr_<short id>_<secret>`) to the actor it
    /// belongs to: one SHA-256 and one constant-time comparison, found or not, the
    /// record cached for a short, jittered TTL.
    pub async fn authenticate(&self, presented: &str) -> Result<Actor> {
        self.inner
            .keys
            .authenticate(self.inner.store.as_ref(), presented)
            .await
    }

    /// Tells waits to answer now: the control plane is shutting down.
    pub fn begin_draining(&self) {
        self.inner.draining.send_replace(true);
    }

    /// Resolves once [`ControlPlane::begin_draining`] was called.
    pub async fn draining(&self) {
        let mut receiver = self.inner.draining.subscribe();
        // Only fails if the sender is gone, which it cannot be while `self` holds it.
        let _ = receiver.wait_for(|draining| *draining).await;
    }

    /// Cached key entries to forget after a key of `owner` was issued, rotated or
    /// revoked.
    pub(crate) fn forget_keys(&self, owner: crate::model::KeyOwner, new_short_id: Option<&str>) {
        self.inner.keys.invalidate(owner, new_short_id);
    }

    pub(crate) fn heartbeats(&self) -> &Arc<HeartbeatBuffer> {
        &self.inner.heartbeats
    }

    /// How many agents' target states are cached (for metrics).
    pub fn cached_target_states(&self) -> usize {
        self.inner.target_states.len()
    }

    pub(crate) fn target_states(&self) -> &Arc<TargetStateCache> {
        &self.inner.target_states
    }

    pub(crate) fn placement_signals(&self) -> &Arc<PlacementSignals> {
        &self.inner.placement_signals
    }
}
