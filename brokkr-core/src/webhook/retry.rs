//! When a failed delivery is tried again: exponential backoff with full jitter.
//!
//! The ceiling doubles with each attempt from `base` up to `max`; the delay is a
//! uniformly random share of it. Full jitter spreads the retries of many deliveries
//! that failed together (a receiver that was down for everyone) instead of bringing
//! them back in waves.

use std::time::Duration;

/// How long to wait after failed attempt number `attempt` (1 for the first attempt):
/// `jitter × min(max, base × 2^(attempt-1))`, with `jitter` drawn uniformly from
/// `[0, 1)` by the caller (values outside are clamped), so this stays a pure function.
pub fn retry_delay(attempt: u32, base: Duration, max: Duration, jitter: f64) -> Duration {
    let doublings = attempt.saturating_sub(1).min(63);
    let ceiling = base
        .checked_mul(1u32.checked_shl(doublings).unwrap_or(u32::MAX))
        .unwrap_or(Duration::MAX)
        .min(max);
    let jitter = if jitter.is_nan() {
        0.0
    } else {
        jitter.clamp(0.0, 1.0)
    };
    ceiling.mul_f64(jitter)
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const BASE: Duration = Duration::from_secs(1);
    const MAX: Duration = Duration::from_secs(3600);

    #[test]
    fn the_ceiling_doubles_from_base_until_max() {
        let ceiling = |attempt| retry_delay(attempt, BASE, MAX, 1.0);
        assert_eq!(ceiling(1), BASE);
        assert_eq!(ceiling(2), Duration::from_secs(2));
        assert_eq!(ceiling(4), Duration::from_secs(8));
        assert_eq!(ceiling(12), Duration::from_secs(2048));
        // 2^12 s is past the hour: the hour caps it, and so on for ever.
        for attempt in [13, 32, 64, u32::MAX] {
            assert_eq!(ceiling(attempt), MAX, "{attempt}");
        }
        // Attempt 0 is treated as the first.
        assert_eq!(
            retry_delay(0, BASE, MAX, 0.5),
            retry_delay(1, BASE, MAX, 0.5)
        );
    }

    #[test]
    fn jitter_scales_the_whole_ceiling() {
        assert_eq!(retry_delay(3, BASE, MAX, 0.0), Duration::ZERO);
        assert_eq!(retry_delay(3, BASE, MAX, 0.5), Duration::from_secs(2));
        assert_eq!(retry_delay(3, BASE, MAX, 0.25), Duration::from_secs(1));
        // Out-of-range jitter is clamped rather than trusted.
        assert_eq!(retry_delay(3, BASE, MAX, -1.0), Duration::ZERO);
        assert_eq!(retry_delay(3, BASE, MAX, 7.0), Duration::from_secs(4));
        assert_eq!(retry_delay(3, BASE, MAX, f64::NAN), Duration::ZERO);
    }

    proptest! {
        #[test]
        fn the_delay_stays_below_the_attempts_ceiling_and_the_max(
            attempt in 0u32..100,
            base_ms in 1u64..10_000,
            max_ms in 1u64..10_000_000,
            jitter in 0.0f64..1.0,
        ) {
            let base = Duration::from_millis(base_ms);
            let max = Duration::from_millis(max_ms);
            let delay = retry_delay(attempt, base, max, jitter);
            prop_assert!(delay <= max);
            let doublings = attempt.saturating_sub(1).min(40);
            let ceiling = base.saturating_mul(1 << doublings.min(31)).min(max);
            prop_assert!(delay <= ceiling);
            // A larger jitter never gives a shorter delay.
            let larger = jitter + (1.0 - jitter) / 2.0;
            prop_assert!(retry_delay(attempt, base, max, larger) >= delay);
        }
    }
}
