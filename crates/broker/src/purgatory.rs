//! Delayed operations keyed by partition (Kafka's purgatory, in the shape
//! the async runtime wants).
//!
//! A request that must wait (a fetch short of `min.bytes`, later an
//! `acks=all` produce until the ISR has its batch) creates one [`Waiter`],
//! registers it with the [`Watchers`] of every partition it waits on, and
//! sleeps until one of them fires or its deadline passes; then it checks its
//! condition again. A partition fires its watchers on the events that can
//! complete them: an append, a high-watermark move, a leadership change.
//! Nothing else is woken: a fetch on partition A does not run because B got
//! data, and nothing polls.
//!
//! A waiter is held weakly by the partitions: a finished request simply drops
//! its `Arc`, and the dead entries are pruned on the next fire or when the
//! list has grown.

use std::sync::{Arc, Weak};

use parking_lot::Mutex;
use tokio::sync::Notify;

/// One waiting request. Wake-ups that arrive while the request is busy
/// reading are kept (one stored permit), so none is lost between its check
/// and its sleep.
#[derive(Debug, Default)]
pub struct Waiter {
    notify: Notify,
}

impl Waiter {
    pub fn new() -> Arc<Self> {
        Arc::new(Self::default())
    }

    /// Resolves at the next wake-up (or at once if one came since the last).
    pub async fn woken(&self) {
        self.notify.notified().await;
    }

    fn wake(&self) {
        self.notify.notify_one();
    }
}

/// The requests waiting on one partition.
#[derive(Debug, Default)]
pub struct Watchers {
    list: Mutex<Vec<Weak<Waiter>>>,
}

impl Watchers {
    /// Registers `waiter` until it is dropped.
    pub fn watch(&self, waiter: &Arc<Waiter>) {
        let mut list = self.list.lock();
        // Keep the list proportional to the live waiters without a sweeper.
        if list.len() >= 32 && list.len().is_power_of_two() {
            list.retain(|w| w.strong_count() > 0);
        }
        list.push(Arc::downgrade(waiter));
    }

    /// Wakes every live waiter; they stay registered until they finish.
    pub fn fire(&self) {
        let mut list = self.list.lock();
        if list.is_empty() {
            return;
        }
        list.retain(|w| match w.upgrade() {
            Some(waiter) => {
                waiter.wake();
                true
            }
            None => false,
        });
    }

    /// Live and not-yet-pruned waiters (for tests and metrics).
    pub fn len(&self) -> usize {
        self.list
            .lock()
            .iter()
            .filter(|w| w.strong_count() > 0)
            .count()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_fire_before_the_wait_is_not_lost() {
        let w = Waiter::new();
        let watchers = Watchers::default();
        watchers.watch(&w);
        watchers.fire();
        tokio::time::timeout(Duration::from_secs(5), w.woken())
            .await
            .expect("the stored wake-up resolves at once");
    }

    #[tokio::test]
    async fn only_the_fired_partition_wakes_its_waiters() {
        let (a, b) = (Watchers::default(), Watchers::default());
        let on_a = Waiter::new();
        let on_b = Waiter::new();
        a.watch(&on_a);
        b.watch(&on_b);
        a.fire();
        assert!(
            tokio::time::timeout(Duration::from_millis(10), on_a.woken())
                .await
                .is_ok()
        );
        assert!(
            tokio::time::timeout(Duration::from_millis(10), on_b.woken())
                .await
                .is_err(),
            "a fire on A must not wake a waiter of B"
        );
    }

    #[test]
    fn dropped_waiters_are_pruned() {
        let watchers = Watchers::default();
        for _ in 0..100 {
            let w = Waiter::new();
            watchers.watch(&w);
        }
        assert_eq!(watchers.len(), 0);
        watchers.fire();
        assert!(watchers.list.lock().is_empty());
        let live = Waiter::new();
        watchers.watch(&live);
        assert_eq!(watchers.len(), 1);
    }
}
