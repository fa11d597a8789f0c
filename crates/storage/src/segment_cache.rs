//! [`SegmentCache`]: the bound on open segment files (`gregor.log.max.open.segments`).
//!
//! A segment holds three descriptors while fully open (`.log`, `.index`,
//! `.timeindex`) plus two index mappings, or one descriptor while open for
//! its `.log` only (an active segment reopened to append, see
//! [`crate::LogSegment`]). Segments are opened on first use and registered
//! here with the descriptors they hold; when they hold more than
//! `max_open` fully open segments' worth (`3 × max_open`, the
//! [`SegmentCache::descriptor_budget`]), the least recently used are closed
//! (descriptors and mappings dropped), a batch of 1/16 of the budget at a
//! time so the sort by age is paid once per batch, not per open. A later append or read reopens a closed segment
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

/// What the cache can close: implemented by a segment. Dropping the last
/// strong reference to one calls [`SegmentCache::remove`], so this cache
/// never drops one it upgraded while it holds its own lock.
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
    open: Mutex<OpenSet>,
}

/// Descriptors of a fully open segment: `.log`, `.index`, `.timeindex`.
pub(crate) const FULL: usize = 3;
/// Descriptors of an active segment open only to append (its `.log`; the
/// indexes are opened when an entry is due or a lookup needs them).
pub(crate) const WRITER: usize = 1;

#[derive(Default)]
struct OpenSet {
    /// Each open segment and the descriptors it holds.
    segs: HashMap<u64, (Weak<dyn Closable>, usize)>,
    /// The sum of the counts in `segs`.
    descriptors: usize,
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
            open: Mutex::new(OpenSet::default()),
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

    /// Segments with a file open now (fully, or only their `.log`).
    pub fn open_segments(&self) -> usize {
        self.open.lock().segs.len()
    }

    /// Descriptors the open segments hold now: [`FULL`] per fully open
    /// segment, [`WRITER`] per segment open only for its `.log`. At most
    /// [`SegmentCache::descriptor_budget`], plus the segments in use at
    /// the moment of an eviction.
    pub fn open_descriptors(&self) -> usize {
        self.open.lock().descriptors
    }

    /// `max_open` segments' worth of descriptors: what the cache keeps
    /// open at most (beyond the segments in use).
    pub fn descriptor_budget(&self) -> usize {
        self.max_open().saturating_mul(FULL)
    }

    pub(crate) fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// The current recency tick (each call returns a larger one).
    pub(crate) fn tick(&self) -> u64 {
        self.tick.fetch_add(1, Ordering::Relaxed)
    }

    /// Records that segment `id` is open holding `descriptors` descriptors
    /// ([`FULL`] or [`WRITER`]; registering again replaces the count);
    /// closes the least recently used others if that makes too many. The
    /// caller must not hold the lock of another segment's files... it may
    /// hold its own: victims are only tried, never waited for, and `id`
    /// itself is the most recent.
    pub(crate) fn register(&self, id: u64, seg: Weak<dyn Closable>, descriptors: usize) {
        // The segments upgraded to read their age: dropped only after the
        // lock is released, since dropping a segment's last reference
        // removes it from this cache (which takes the lock).
        let mut upgraded: Vec<Arc<dyn Closable>> = Vec::new();
        let victims = {
            let mut open = self.open.lock();
            let open = &mut *open;
            if let Some((_, old)) = open.segs.insert(id, (seg, descriptors)) {
                open.descriptors -= old;
            }
            open.descriptors += descriptors;
            let budget = self.descriptor_budget();
            if open.descriptors <= budget {
                return;
            }
            // Close a batch (1/16 of the budget) at once, so a scan over many
            // cold segments (or a write round over more partitions than
            // fit) sorts the open ones once per batch, not once per open.
            let to_free = open.descriptors - budget + budget / 16;
            let mut by_age: Vec<(u64, u64, usize)> = open
                .segs
                .iter()
                .filter(|(k, _)| **k != id)
                .map(|(k, (w, n))| {
                    let used = w.upgrade().map_or(0, |s| {
                        let used = s.last_used();
                        upgraded.push(s);
                        used
                    });
                    (used, *k, *n)
                })
                .collect();
            by_age.sort_unstable();
            let mut freed = 0;
            let mut victims = Vec::new();
            for (_, k, n) in by_age {
                if freed >= to_free {
                    break;
                }
                if let Some(v) = open.segs.remove(&k) {
                    open.descriptors -= n;
                    freed += n;
                    victims.push((k, v));
                }
            }
            victims
        };
        drop(upgraded);
        let mut busy = Vec::new();
        for (k, (w, n)) in victims {
            if let Some(s) = w.upgrade() {
                if !s.try_close() {
                    busy.push((k, (w, n)));
                }
            }
        }
        if !busy.is_empty() {
            let mut guard = self.open.lock();
            let open = &mut *guard;
            for (k, v) in busy {
                // Re-registered meanwhile (it was reopened): keep that entry.
                if let std::collections::hash_map::Entry::Vacant(e) = open.segs.entry(k) {
                    open.descriptors += v.1;
                    e.insert(v);
                }
            }
        }
    }

    /// Forgets segment `id` (pinned, closed or dropped).
    pub(crate) fn remove(&self, id: u64) {
        let mut open = self.open.lock();
        if let Some((_, n)) = open.segs.remove(&id) {
            open.descriptors -= n;
        }
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
            cache.register(i as u64, w, FULL);
        }
        // Segment 0 is used again: 1 is now the oldest.
        segs[0].used.store(cache.tick(), Ordering::Relaxed);
        let new = fake(&cache);
        let w: Weak<dyn Closable> = Arc::downgrade(&new) as _;
        cache.register(9, w, FULL);
        assert_eq!(cache.open_segments(), 4);
        assert!(!segs[1].open.load(Ordering::Relaxed));
        assert!(segs[0].open.load(Ordering::Relaxed));
        assert!(new.open.load(Ordering::Relaxed));
    }

    #[test]
    fn three_log_only_segments_fit_where_one_open_segment_does() {
        let cache = SegmentCache::new(2);
        assert_eq!(cache.descriptor_budget(), 6);
        let segs: Vec<Arc<Fake>> = (0..6).map(|_| fake(&cache)).collect();
        for (i, s) in segs.iter().enumerate() {
            cache.register(i as u64, Arc::downgrade(s) as Weak<dyn Closable>, WRITER);
        }
        assert_eq!(cache.open_segments(), 6);
        assert_eq!(cache.open_descriptors(), 6);
        assert!(segs.iter().all(|s| s.open.load(Ordering::Relaxed)));
        // Segment 5 opens its indexes too: two more descriptors, so the two
        // least recently used writers close.
        cache.register(5, Arc::downgrade(&segs[5]) as Weak<dyn Closable>, FULL);
        assert_eq!(cache.open_descriptors(), 6);
        assert!(!segs[0].open.load(Ordering::Relaxed));
        assert!(!segs[1].open.load(Ordering::Relaxed));
        assert!(segs[2..].iter().all(|s| s.open.load(Ordering::Relaxed)));
        cache.remove(5);
        assert_eq!(cache.open_descriptors(), 3);
    }

    #[test]
    fn a_busy_victim_stays_registered() {
        let cache = SegmentCache::new(1);
        let a = fake(&cache);
        a.busy.store(true, Ordering::Relaxed);
        let b = fake(&cache);
        cache.register(1, Arc::downgrade(&a) as Weak<dyn Closable>, FULL);
        cache.register(2, Arc::downgrade(&b) as Weak<dyn Closable>, FULL);
        assert!(a.open.load(Ordering::Relaxed));
        assert_eq!(cache.open_segments(), 2);
        a.busy.store(false, Ordering::Relaxed);
        let c = fake(&cache);
        cache.register(3, Arc::downgrade(&c) as Weak<dyn Closable>, FULL);
        assert!(!a.open.load(Ordering::Relaxed));
    }
}
