//! [`SegmentCache`]: the bound on open segment files (`gregor.log.max.open.segments`).
//!
//! A segment holds three descriptors while open (`.log`, `.index`,
//! `.timeindex`) plus two index mappings. Segments are opened on first use
//! (see [`crate::LogSegment`]) and registered here; when more than
//! `max_open` are open, the least recently used are closed (descriptors and
//! mappings dropped). A later append or read reopens a closed segment
//! transparently. Active segments count and are closed like the others (an
//! idle partition holds no descriptor); segments being deleted are
//! *pinned*: never closed here.
//!
//! Recency is a global tick stored in each segment on every access (a
//! relaxed atomic store, no lock on the read path). Eviction happens on
//! registration, under this cache's mutex only to pick victims; victims are
//! closed after the mutex is released, with `try_write` on their own lock,
//! so an eviction never waits for a segment in use (a busy victim is simply
//! kept: it was in use, so it is recent). The count may therefore exceed the
//! cap briefly, by the segments in use at that moment.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Weak};

use parking_lot::Mutex;

/// The smallest cap the automatic default picks.
pub const MIN_AUTO_SEGMENTS: u64 = 16;

/// The automatic `gregor.log.max.open.segments` for `budget` descriptors:
/// half of them, in segments of three descriptors, at least
/// [`MIN_AUTO_SEGMENTS`]; the other half stays free for connections. The
/// number of partitions does not enter: active segments are closed when
/// idle like the others.
pub fn auto_segment_cap(budget: u64) -> usize {
    let cap = (budget / 3 / 2).max(MIN_AUTO_SEGMENTS);
    usize::try_from(cap).unwrap_or(usize::MAX)
}

/// What the cache can close: implemented by a segment's shared file state.
pub(crate) trait Closable: Send + Sync {
    /// Closes the files unless they are pinned or in use; true if they
    /// were closed (or already were).
    fn try_close(&self) -> bool;
    fn last_used(&self) -> u64;
}

/// The open segments and the cap on them. One per [`crate::LogManager`]
/// (shared by all its logs); logs opened on their own get an unbounded one.
pub struct SegmentCache {
    max_open: AtomicUsize,
    tick: AtomicU64,
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Weak<dyn Closable>>>,
}

impl std::fmt::Debug for SegmentCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SegmentCache")
            .field("max_open", &self.max_open())
            .field("open", &self.open_segments())
            .finish()
    }
}

impl SegmentCache {
    /// A cache closing the least recently used inactive segments beyond
    /// `max_open` (at least 1).
    pub fn new(max_open: usize) -> Arc<Self> {
        Arc::new(Self {
            max_open: AtomicUsize::new(max_open.max(1)),
            tick: AtomicU64::new(1),
            next_id: AtomicU64::new(1),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// No bound (logs opened outside a [`crate::LogManager`]).
    pub fn unbounded() -> Arc<Self> {
        Self::new(usize::MAX)
    }

    /// A cache with the automatic cap for `budget` descriptors
    /// ([`auto_segment_cap`]).
    pub fn automatic(budget: u64) -> Arc<Self> {
        Self::new(auto_segment_cap(budget))
    }

    pub fn max_open(&self) -> usize {
        self.max_open.load(Ordering::Relaxed)
    }

    /// Segments whose files are open now.
    pub fn open_segments(&self) -> usize {
        self.open.lock().len()
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The current recency tick (each call returns a larger one).
    pub(crate) fn tick(&self) -> u64 {
        self.tick.fetch_add(1, Ordering::Relaxed)
    }

    /// Records that segment `id` is open; closes the least recently used
    /// others if that makes too many. The caller must not hold the lock of
    /// another segment's files... it may hold its own: victims are only
    /// tried, never waited for, and `id` itself is the most recent.
    pub(crate) fn register(&self, id: u64, seg: Weak<dyn Closable>) {
        let victims = {
            let mut open = self.open.lock();
            open.insert(id, seg);
            let max_open = self.max_open();
            if open.len() <= max_open {
                return;
            }
            // Close a batch (1/16 of the cap) at once, so a scan over many
            // cold segments does not pick victims on every open.
            let excess = open.len() - max_open;
            let batch = (excess + max_open / 16).min(open.len() - 1);
            let mut by_age: Vec<(u64, u64)> = open
                .iter()
                .filter(|(k, _)| **k != id)
                .map(|(k, w)| (w.upgrade().map_or(0, |s| s.last_used()), *k))
                .collect();
            if batch < by_age.len() {
                by_age.select_nth_unstable(batch);
                by_age.truncate(batch);
            }
            by_age
                .into_iter()
                .filter_map(|(_, k)| open.remove(&k).map(|w| (k, w)))
                .collect::<Vec<_>>()
        };
        let mut busy = Vec::new();
        for (k, w) in victims {
            if let Some(s) = w.upgrade() {
                if !s.try_close() {
                    busy.push((k, w));
                }
            }
        }
        if !busy.is_empty() {
            self.open.lock().extend(busy);
        }
    }

    /// Forgets segment `id` (pinned, closed or dropped).
    pub(crate) fn remove(&self, id: u64) {
        self.open.lock().remove(&id);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_automatic_cap_is_half_the_budget() {
        assert_eq!(
            super::SegmentCache::automatic(1000).max_open(),
            1000 / 3 / 2
        );
        assert_eq!(
            super::SegmentCache::automatic(30).max_open(),
            super::MIN_AUTO_SEGMENTS as usize
        );
    }

    use super::*;
    use std::sync::atomic::AtomicBool;

    struct Fake {
        used: AtomicU64,
        open: AtomicBool,
        busy: AtomicBool,
    }
    impl Closable for Fake {
        fn try_close(&self) -> bool {
            if self.busy.load(Ordering::Relaxed) {
                return false;
            }
            self.open.store(false, Ordering::Relaxed);
            true
        }
        fn last_used(&self) -> u64 {
            self.used.load(Ordering::Relaxed)
        }
    }

    fn fake(cache: &SegmentCache) -> Arc<Fake> {
        Arc::new(Fake {
            used: AtomicU64::new(cache.tick()),
            open: AtomicBool::new(true),
            busy: AtomicBool::new(false),
        })
    }

    #[test]
    fn closes_least_recently_used_beyond_the_cap() {
        let cache = SegmentCache::new(4);
        let segs: Vec<Arc<Fake>> = (0..4).map(|_| fake(&cache)).collect();
        for (i, s) in segs.iter().enumerate() {
            let w: Weak<dyn Closable> = Arc::downgrade(s) as _;
            cache.register(i as u64, w);
        }
        // Segment 0 is used again: 1 is now the oldest.
        segs[0].used.store(cache.tick(), Ordering::Relaxed);
        let new = fake(&cache);
        let w: Weak<dyn Closable> = Arc::downgrade(&new) as _;
        cache.register(9, w);
        assert_eq!(cache.open_segments(), 4);
        assert!(!segs[1].open.load(Ordering::Relaxed));
        assert!(segs[0].open.load(Ordering::Relaxed));
        assert!(new.open.load(Ordering::Relaxed));
    }

    #[test]
    fn a_busy_victim_stays_registered() {
        let cache = SegmentCache::new(1);
        let a = fake(&cache);
        a.busy.store(true, Ordering::Relaxed);
        let b = fake(&cache);
        cache.register(1, Arc::downgrade(&a) as Weak<dyn Closable>);
        cache.register(2, Arc::downgrade(&b) as Weak<dyn Closable>);
        assert!(a.open.load(Ordering::Relaxed));
        assert_eq!(cache.open_segments(), 2);
        a.busy.store(false, Ordering::Relaxed);
        let c = fake(&cache);
        cache.register(3, Arc::downgrade(&c) as Weak<dyn Closable>);
        assert!(!a.open.load(Ordering::Relaxed));
    }
}
