//! How the rollout driver runs.

use std::time::Duration;

/// Timings of the rollout driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RolloutSettings {
    /// How often due rollouts are looked for. Agent events, health and commands make a
    /// rollout due at once; this is how long until it is seen.
    pub poll: Duration,
    /// How long a claimed rollout stays this replica's: longer than its slowest gate
    /// (gates time out after at most 60 s).
    pub lease: Duration,
    /// Rollouts claimed per poll at most; a full batch is followed by another at once.
    pub batch: usize,
}

impl Default for RolloutSettings {
    fn default() -> Self {
        Self {
            poll: Duration::from_millis(500),
            lease: Duration::from_secs(120),
            batch: 32,
        }
    }
}
