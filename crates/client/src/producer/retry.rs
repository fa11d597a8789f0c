//! When to retry a failed batch: a pure function of the attempt count, the
//! batch's age and the clock value passed in, so it is tested without time
//! passing.
//!
//! Backoff grows exponentially from `retry.backoff.ms` to
//! `retry.backoff.max.ms` (KIP-580, without the jitter, which only matters
//! for thundering herds of many clients). No retry is scheduled that would
//! start after the batch's `delivery.timeout.ms` has run out: the batch
//! fails with a timeout instead, as the Java client does.

use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    pub retries: u32,
    pub backoff: Duration,
    pub backoff_max: Duration,
    pub delivery_timeout: Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Decision {
    /// Send again at this instant.
    RetryAt(Instant),
    /// `retries` attempts are used up.
    OutOfRetries,
    /// `delivery.timeout.ms` would pass before the retry.
    DeliveryTimeout,
}

impl RetryPolicy {
    /// The wait before retry number `attempt` (1 for the first retry).
    pub fn backoff_for(&self, attempt: u32) -> Duration {
        let shift = attempt.saturating_sub(1).min(20);
        self.backoff
            .saturating_mul(1u32 << shift)
            .min(self.backoff_max.max(self.backoff))
    }

    /// What to do with a batch created at `created` that has failed
    /// `attempts` times (counting this failure), at time `now`.
    pub fn decide(&self, attempts: u32, created: Instant, now: Instant) -> Decision {
        if attempts > self.retries {
            return Decision::OutOfRetries;
        }
        let at = now + self.backoff_for(attempts);
        if at >= created + self.delivery_timeout {
            return Decision::DeliveryTimeout;
        }
        Decision::RetryAt(at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy {
            retries: 5,
            backoff: Duration::from_millis(100),
            backoff_max: Duration::from_millis(1000),
            delivery_timeout: Duration::from_secs(10),
        }
    }

    #[test]
    fn exponential_backoff_capped() {
        let p = policy();
        let ms: Vec<u128> = (1..=6).map(|a| p.backoff_for(a).as_millis()).collect();
        assert_eq!(ms, vec![100, 200, 400, 800, 1000, 1000]);
        // A huge attempt count does not overflow.
        assert_eq!(p.backoff_for(u32::MAX), Duration::from_millis(1000));
        // backoff.max below backoff: the constant backoff wins.
        let p = RetryPolicy {
            backoff_max: Duration::from_millis(10),
            ..policy()
        };
        assert_eq!(p.backoff_for(3), Duration::from_millis(100));
    }

    #[test]
    fn retries_bounded_by_count_and_delivery_timeout() {
        let p = policy();
        let t0 = Instant::now();
        assert_eq!(
            p.decide(1, t0, t0),
            Decision::RetryAt(t0 + Duration::from_millis(100))
        );
        assert_eq!(
            p.decide(3, t0, t0 + Duration::from_secs(1)),
            Decision::RetryAt(t0 + Duration::from_millis(1400))
        );
        assert_eq!(p.decide(6, t0, t0), Decision::OutOfRetries);
        // 9.5 s in, a 1 s backoff would end past the 10 s delivery timeout.
        assert_eq!(
            p.decide(5, t0, t0 + Duration::from_millis(9500)),
            Decision::DeliveryTimeout
        );
        assert_eq!(
            p.decide(1, t0, t0 + Duration::from_millis(9850)),
            Decision::RetryAt(t0 + Duration::from_millis(9950))
        );
    }
}
