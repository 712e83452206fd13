//! How a [`ControlPlane`](super::ControlPlane) runs: timings, cache sizes and limits.

use std::time::Duration;

use crate::plan::GuardPolicy;
use crate::template::TemplateLimits;

use super::rollouts::RolloutSettings;
use super::webhooks::WebhookSettings;

/// Settings of a control plane. `Default` gives the values the reference server uses
/// when nothing is configured.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    /// An agent with no heartbeat for this long is stale (shown as such, and placement
    /// gives it no new stacks).
    pub stale_after: Duration,
    /// How often coalesced heartbeats are written.
    pub heartbeat_flush_period: Duration,
    /// How often the placement controller recomputes every decision (agents going
    /// stale, `evict_after_secs` running out); `None`: a third of `stale_after`, at
    /// least one second.
    pub placement_period: Option<Duration>,
    /// The longest a target-state wait may last.
    pub long_poll_max: Duration,
    /// How many agents' target states are cached.
    pub target_state_cache_capacity: usize,
    /// How long an authenticated key stays cached (each entry a random 50–100% of it).
    pub key_cache_ttl: Duration,
    /// How many keys are cached.
    pub key_cache_capacity: usize,
    /// How often the store's key revocation counter is read: a key revoked by another
    /// replica or the command line stops working here within this period (plus one
    /// query).
    pub key_revocation_poll: Duration,
    /// Template rendering limits (fuel, recursion); the output is capped at
    /// `max_yaml_bytes`, like a deployment object sent directly.
    pub template_limits: TemplateLimits,
    /// The largest deployment object's YAML, in bytes (sent or rendered).
    pub max_yaml_bytes: usize,
    /// The most content, in bytes, one page of a listing carries when it includes the
    /// content ([`IncludeContent::Yes`](super::IncludeContent)): deployment objects'
    /// YAML, templates' latest source and parameter schema. The page ends early, with a
    /// cursor, before passing it. A page always holds at least one entry, so a larger
    /// one comes alone.
    pub listing_yaml_bytes: usize,
    /// The blast-radius guard's defaults; stacks may override them.
    pub guard: GuardPolicy,
    /// How long a plan can be confirmed.
    pub plan_ttl: Duration,
    /// How often new audit records are sealed into the audit chain: a record is
    /// covered by the chain within about this long of its commit.
    pub audit_seal_period: Duration,
    /// Outbound webhooks: keys for secrets at rest, the host allowlist, timings.
    pub webhooks: WebhookSettings,
    /// The rollout driver's timings.
    pub rollouts: RolloutSettings,
    /// This replica's name in the leases it holds (rollouts it evaluates, webhook
    /// subscriptions it delivers to). Give each replica one that is unique among the
    /// live ones and the same across its restarts (a pod's name): a replica started
    /// again then takes back at once the rollouts it was evaluating when it stopped,
    /// instead of waiting for their leases to run out (webhook subscriptions still wait
    /// for theirs, which keeps each subscription's deliveries in order). `None`: a
    /// random name each start. Two live replicas with one name may both evaluate a
    /// rollout; the version check still lets one change land.
    pub replica: Option<String>,
}

impl Default for Settings {
    fn default() -> Self {
        let max_yaml_bytes = 8 * 1024 * 1024;
        Self {
            stale_after: Duration::from_secs(90),
            heartbeat_flush_period: Duration::from_secs(1),
            placement_period: None,
            long_poll_max: Duration::from_secs(60),
            target_state_cache_capacity: 100_000,
            key_cache_ttl: Duration::from_secs(10),
            key_cache_capacity: 100_000,
            key_revocation_poll: Duration::from_millis(500),
            template_limits: TemplateLimits::default(),
            max_yaml_bytes,
            listing_yaml_bytes: 4 * 1024 * 1024,
            guard: GuardPolicy::default(),
            plan_ttl: Duration::from_secs(15 * 60),
            audit_seal_period: Duration::from_secs(1),
            webhooks: WebhookSettings::default(),
            rollouts: RolloutSettings::default(),
            replica: None,
        }
    }
}

impl Settings {
    /// The placement controller's full-recompute period.
    pub fn placement_period(&self) -> Duration {
        match self.placement_period {
            Some(period) => period.max(Duration::from_millis(10)),
            None => (self.stale_after / 3).max(Duration::from_secs(1)),
        }
    }
}
