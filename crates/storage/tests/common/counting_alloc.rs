//! A global allocator counting the heap a test binary holds: bytes
//! requested and not yet freed (by every thread), live allocations, what
//! glibc malloc's chunks for them take, and live allocations by size. Shared
//! by the idle-memory tests of the storage and broker crates (the broker's
//! includes this file by path); each test binary that declares this module
//! counts every allocation it makes.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

struct Counting;

#[global_allocator]
static ALLOC: Counting = Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);
static LIVE_COUNT: AtomicIsize = AtomicIsize::new(0);
/// glibc's chunk bytes: the request plus its 8-byte header, rounded up to
/// 16, at least 32. What RSS pays, closer than the requested bytes when
/// allocations are small.
static LIVE_CHUNKS: AtomicIsize = AtomicIsize::new(0);
/// Live allocations by requested size in 8-byte steps (the last bucket
/// holds everything from 2 KiB up), to see which sizes are held.
static BY_SIZE: [AtomicIsize; BUCKETS] = [const { AtomicIsize::new(0) }; BUCKETS];
const BUCKETS: usize = 257;

fn chunk(size: usize) -> isize {
    ((size + 8).div_ceil(16) * 16).max(32) as isize
}

fn count(size: usize, sign: isize) {
    LIVE.fetch_add(sign * size as isize, Ordering::Relaxed);
    LIVE_COUNT.fetch_add(sign, Ordering::Relaxed);
    LIVE_CHUNKS.fetch_add(sign * chunk(size), Ordering::Relaxed);
    BY_SIZE[(size / 8).min(BUCKETS - 1)].fetch_add(sign, Ordering::Relaxed);
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count(layout.size(), 1);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count(layout.size(), 1);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        count(layout.size(), -1);
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count(layout.size(), -1);
        count(new_size, 1);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

/// What the counters read at one moment, or the difference of two readings.
#[derive(Clone, Copy)]
pub struct Snapshot {
    pub bytes: isize,
    pub count: isize,
    pub chunks: isize,
    pub by_size: [isize; BUCKETS],
}

pub fn snapshot() -> Snapshot {
    Snapshot {
        bytes: LIVE.load(Ordering::Relaxed),
        count: LIVE_COUNT.load(Ordering::Relaxed),
        chunks: LIVE_CHUNKS.load(Ordering::Relaxed),
        by_size: std::array::from_fn(|i| BY_SIZE[i].load(Ordering::Relaxed)),
    }
}

impl std::ops::Sub for Snapshot {
    type Output = Snapshot;
    fn sub(self, o: Snapshot) -> Snapshot {
        Snapshot {
            bytes: self.bytes - o.bytes,
            count: self.count - o.count,
            chunks: self.chunks - o.chunks,
            by_size: std::array::from_fn(|i| self.by_size[i] - o.by_size[i]),
        }
    }
}

/// Prints what `d` (a difference of snapshots) holds per `unit`, of which
/// there are `n`: bytes, allocations, malloc chunk bytes and the
/// allocations by size; returns the bytes per unit.
pub fn report(what: &str, d: Snapshot, n: isize, unit: &str) -> isize {
    let per = |v: isize| v as f64 / n as f64;
    eprintln!(
        "{what}: {:.0} bytes, {:.2} allocations, {:.0} malloc chunk bytes per {unit}",
        per(d.bytes),
        per(d.count),
        per(d.chunks),
    );
    for (i, v) in d.by_size.iter().enumerate() {
        if per(*v).abs() >= 0.05 {
            eprintln!(
                "  {:>4}..{:<4} bytes: {:.2} per {unit}",
                i * 8,
                i * 8 + 7,
                per(*v)
            );
        }
    }
    d.bytes / n
}
