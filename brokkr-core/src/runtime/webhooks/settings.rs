//! How webhooks are delivered: keys, allowlist, timings and limits.

use std::time::Duration;

use crate::webhook::{HostAllowlist, Keyring, retry_delay};

/// Webhook delivery settings, part of the control plane's
/// [`Settings`](crate::runtime::Settings). The defaults send nothing anywhere: no
/// keyring (subscriptions cannot be created) and an empty allowlist.
#[derive(Debug, Clone, PartialEq)]
pub struct WebhookSettings {
    /// Seals and opens subscription secrets; `None`: webhooks are not configured and
    /// creating a subscription is refused.
    pub keyring: Option<Keyring>,
    /// Hosts deliveries may go to, checked when a subscription is written and before
    /// every send.
    pub allowlist: HostAllowlist,
    /// The longest one attempt may take, connection included.
    pub timeout: Duration,
    /// Attempts before a delivery is dead (at least 1); a dead delivery is sent again
    /// only when redelivered.
    pub max_attempts: u32,
    /// The first retry's ceiling; it doubles with each attempt.
    pub backoff_base: Duration,
    /// The largest retry ceiling.
    pub backoff_max: Duration,
    /// How long a replica holds a subscription it claimed before another may claim it;
    /// longer than `timeout`, so an attempt in flight is never sent twice at once.
    pub lease: Duration,
    /// How often the dispatcher looks for events to fan out and deliveries due.
    pub poll: Duration,
    /// How long delivered deliveries are kept (for the API) before they are pruned.
    /// Dead ones are kept until redelivered or their subscription is deleted.
    pub delivered_retention: Duration,
    /// Most attempts in flight at once, each to a different subscription (one at a
    /// time per subscription keeps its order).
    pub concurrency: usize,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            keyring: None,
            allowlist: HostAllowlist::default(),
            timeout: Duration::from_secs(10),
            max_attempts: 8,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(3600),
            lease: Duration::from_secs(30),
            poll: Duration::from_millis(500),
            delivered_retention: Duration::from_secs(7 * 24 * 3600),
            concurrency: 16,
        }
    }
}

impl WebhookSettings {
    /// Checks what types cannot express; the message names the setting.
    pub fn validate(&self) -> Result<(), String> {
        if self.max_attempts == 0 {
            return Err("max_attempts must be at least 1".into());
        }
        if self.concurrency == 0 {
            return Err("concurrency must be at least 1".into());
        }
        if self.poll.is_zero() || self.timeout.is_zero() {
            return Err("poll and timeout must be more than 0".into());
        }
        if self.lease <= self.timeout {
            return Err(format!(
                "lease ({:?}) must be longer than timeout ({:?}), or a slow attempt could be claimed and sent again while in flight",
                self.lease, self.timeout
            ));
        }
        if self.backoff_base > self.backoff_max {
            return Err("backoff_base must not exceed backoff_max".into());
        }
        Ok(())
    }

    /// The wait before the next attempt after `attempts` failed ones, with `jitter`
    /// drawn uniformly from `[0, 1)`; `None` when no attempt is left (dead letter).
    pub fn retry_after(&self, attempts: u32, jitter: f64) -> Option<Duration> {
        (attempts < self.max_attempts)
            .then(|| retry_delay(attempts, self.backoff_base, self.backoff_max, jitter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid_and_send_nowhere() {
        let settings = WebhookSettings::default();
        assert_eq!(settings.validate(), Ok(()));
        assert!(settings.keyring.is_none());
        assert!(settings.allowlist.is_empty());
    }

    #[test]
    fn settings_that_could_not_work_are_refused_naming_the_setting() {
        let check = |settings: WebhookSettings, named: &str| {
            let err = settings.validate().unwrap_err();
            assert!(err.contains(named), "{err}");
        };
        let base = WebhookSettings::default;
        check(
            WebhookSettings {
                max_attempts: 0,
                ..base()
            },
            "max_attempts",
        );
        check(
            WebhookSettings {
                concurrency: 0,
                ..base()
            },
            "concurrency",
        );
        check(
            WebhookSettings {
                poll: Duration::ZERO,
                ..base()
            },
            "poll",
        );
        check(
            WebhookSettings {
                lease: Duration::from_secs(10),
                ..base()
            },
            "lease",
        );
        check(
            WebhookSettings {
                backoff_base: Duration::from_secs(7200),
                ..base()
            },
            "backoff_base",
        );
    }

    #[test]
    fn retries_back_off_until_the_last_attempt_then_stop() {
        let settings = WebhookSettings {
            max_attempts: 3,
            ..WebhookSettings::default()
        };
        assert_eq!(
            settings.retry_after(1, 0.5),
            Some(Duration::from_millis(500))
        );
        assert_eq!(settings.retry_after(2, 0.5), Some(Duration::from_secs(1)));
        assert_eq!(settings.retry_after(3, 0.5), None);
        assert_eq!(settings.retry_after(9, 0.5), None);
    }
}
