//! The cleaner's I/O throttle (`log.cleaner.io.max.bytes.per.second`),
//! Kafka's `Throttler`: the bytes read and written are counted, and once per
//! check interval, if the rate since the last check exceeds the limit, the
//! cleaner sleeps long enough to bring it back to the limit.
//!
//! The throttler only *computes* the pause, from the injected [`Clock`]; the
//! caller sleeps (interruptibly, so shutdown is not delayed by a pause).

use std::sync::Arc;
use std::time::Duration;

use crate::Clock;

/// How often the rate is checked, as in Kafka.
pub const CHECK_INTERVAL_MS: i64 = 300;

#[derive(Debug)]
pub struct Throttler {
    /// Bytes per second; infinite (or ≤ 0) means unlimited.
    rate: f64,
    clock: Arc<dyn Clock>,
    period_start_ms: i64,
    observed: f64,
}

impl Throttler {
    pub fn new(rate: f64, clock: Arc<dyn Clock>) -> Self {
        let now = clock.now_ms();
        Self {
            rate,
            clock,
            period_start_ms: now,
            observed: 0.0,
        }
    }

    fn unlimited(&self) -> bool {
        !self.rate.is_finite() || self.rate <= 0.0
    }

    /// Counts `bytes` and returns how long to pause to stay under the rate.
    pub fn maybe_throttle(&mut self, bytes: u64) -> Duration {
        if self.unlimited() {
            return Duration::ZERO;
        }
        self.observed += bytes as f64;
        let now = self.clock.now_ms();
        let elapsed = now.saturating_sub(self.period_start_ms);
        if elapsed <= CHECK_INTERVAL_MS || self.observed <= 0.0 {
            return Duration::ZERO;
        }
        // The time the observed bytes should have taken, minus what they did.
        let wanted_ms = self.observed / (self.rate / 1000.0);
        let sleep_ms = (wanted_ms - elapsed as f64).round();
        // The next period starts after the pause.
        self.period_start_ms = now + sleep_ms.max(0.0) as i64;
        self.observed = 0.0;
        if sleep_ms > 0.0 {
            Duration::from_millis(sleep_ms as u64)
        } else {
            Duration::ZERO
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ManualClock;

    #[test]
    fn pauses_to_the_configured_rate() {
        let clock = Arc::new(ManualClock::new(1_000));
        let mut t = Throttler::new(1_000_000.0, clock.clone()); // 1 MB/s
                                                                // Within the check interval nothing is decided.
        assert_eq!(t.maybe_throttle(500_000), Duration::ZERO);
        clock.advance(100);
        assert_eq!(t.maybe_throttle(500_000), Duration::ZERO);
        // 1.5 MB in 400 ms at 1 MB/s should have taken 1500 ms: sleep 1100.
        clock.advance(300);
        assert_eq!(t.maybe_throttle(500_000), Duration::from_millis(1100));
        // The caller slept; the next period starts after the pause.
        clock.advance(1100);
        // Under the rate: no pause.
        clock.advance(1000);
        assert_eq!(t.maybe_throttle(100_000), Duration::ZERO);
    }

    #[test]
    fn unlimited_never_pauses() {
        let clock = Arc::new(ManualClock::new(0));
        let mut t = Throttler::new(f64::INFINITY, clock.clone());
        clock.advance(1000);
        assert_eq!(t.maybe_throttle(u64::MAX / 2), Duration::ZERO);
    }
}
