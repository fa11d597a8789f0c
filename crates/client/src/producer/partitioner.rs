//! Choosing a partition for records sent without one.
//!
//! The default partitioner must agree with the Java client byte for byte,
//! so that a keyed record lands in the same partition whichever client wrote
//! it: `toPositive(murmur2(keyBytes)) % numPartitions`. Keyless records use
//! KIP-480 sticky partitioning: stay on one partition until a batch for it
//! is sent (the accumulator reports that as "a new batch is needed"), then
//! move on, so small records fill batches instead of spraying one-record
//! batches over every partition.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use crate::config::PartitionerKind;

/// Chooses partitions. Implementations must be cheap: this runs on every send.
pub trait Partitioner: Send + Sync {
    /// The partition (in `0..num_partitions`) for a record without one.
    fn partition(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        num_partitions: i32,
    ) -> i32;

    /// Whether the producer should call [`Partitioner::on_new_batch`] and
    /// then ask [`Partitioner::partition`] again when the chosen partition
    /// needs a new batch (KIP-480). Only sticky partitioners want this: for
    /// any other, asking twice would skip partitions (KAFKA-9965).
    fn repartition_on_new_batch(&self) -> bool {
        false
    }

    /// Called when the partition this partitioner chose last needs a new
    /// batch: a sticky partitioner switches partitions here.
    fn on_new_batch(&self, _topic: &str, _prev_partition: i32, _num_partitions: i32) {}
}

/// Kafka's murmur2 (`org.apache.kafka.common.utils.Utils.murmur2`), seed 0x9747b28c.
pub fn murmur2(data: &[u8]) -> i32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let len = data.len();
    let mut h: u32 = SEED ^ (len as u32);
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    // Java reads the tail bytes as signed bytes masked with 0xff: plain u8 here.
    let tail = chunks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h as i32
}

/// Java's `Utils.toPositive`: clears the sign bit (not `abs`, which overflows).
pub fn to_positive(n: i32) -> i32 {
    n & 0x7fff_ffff
}

/// The partition the Java client picks for `key`.
pub fn partition_for_key(key: &[u8], num_partitions: i32) -> i32 {
    to_positive(murmur2(key)) % num_partitions.max(1)
}

/// A small xorshift generator: partition choice needs spread, not security,
/// and this keeps the crate free of an RNG dependency.
struct Rng(AtomicU64);

impl Rng {
    fn new() -> Self {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0x2545_f491, |d| d.as_nanos() as u64)
            | 1;
        Rng(AtomicU64::new(seed))
    }
    fn below(&self, n: i32) -> i32 {
        let mut x = self.0.load(Ordering::Relaxed);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0.store(x, Ordering::Relaxed);
        (x % u64::from(n.max(1) as u32)) as i32
    }
}

/// The per-topic sticky partition (Java's `StickyPartitionCache`).
struct StickyCache {
    current: Mutex<HashMap<String, i32>>,
    rng: Rng,
}

impl StickyCache {
    fn new() -> Self {
        StickyCache {
            current: Mutex::new(HashMap::new()),
            rng: Rng::new(),
        }
    }
    fn partition(&self, topic: &str, n: i32) -> i32 {
        let mut m = self.current.lock().unwrap_or_else(|p| p.into_inner());
        match m.get(topic) {
            Some(&p) if p < n => p,
            _ => {
                let p = self.rng.below(n);
                m.insert(topic.to_string(), p);
                p
            }
        }
    }
    /// Switches away from `prev` if it is still the sticky partition.
    fn next(&self, topic: &str, prev: i32, n: i32) {
        let mut m = self.current.lock().unwrap_or_else(|p| p.into_inner());
        let cur = m.get(topic).copied();
        if cur.is_none() || cur == Some(prev) {
            let p = if n <= 1 {
                0
            } else {
                // Any partition but `prev`.
                let r = self.rng.below(n - 1);
                if r >= prev {
                    r + 1
                } else {
                    r
                }
            };
            m.insert(topic.to_string(), p);
        }
    }
}

/// murmur2 for keyed records, sticky for keyless ones (or for all, with
/// `partitioner.ignore.keys`).
pub struct DefaultPartitioner {
    sticky: StickyCache,
    ignore_keys: bool,
}

impl DefaultPartitioner {
    pub fn new(ignore_keys: bool) -> Self {
        DefaultPartitioner {
            sticky: StickyCache::new(),
            ignore_keys,
        }
    }
}

impl Partitioner for DefaultPartitioner {
    fn partition(&self, topic: &str, key: Option<&[u8]>, _value: Option<&[u8]>, n: i32) -> i32 {
        match key {
            Some(k) if !self.ignore_keys => partition_for_key(k, n),
            _ => self.sticky.partition(topic, n),
        }
    }
    fn repartition_on_new_batch(&self) -> bool {
        true
    }
    fn on_new_batch(&self, topic: &str, prev: i32, n: i32) {
        self.sticky.next(topic, prev, n)
    }
}

/// Each record to the next partition in turn (per topic).
pub struct RoundRobinPartitioner {
    counters: Mutex<HashMap<String, u32>>,
}

impl RoundRobinPartitioner {
    pub fn new() -> Self {
        RoundRobinPartitioner {
            counters: Mutex::new(HashMap::new()),
        }
    }
}

impl Default for RoundRobinPartitioner {
    fn default() -> Self {
        Self::new()
    }
}

impl Partitioner for RoundRobinPartitioner {
    fn partition(&self, topic: &str, _key: Option<&[u8]>, _value: Option<&[u8]>, n: i32) -> i32 {
        let mut m = self.counters.lock().unwrap_or_else(|p| p.into_inner());
        let c = m.entry(topic.to_string()).or_insert(0);
        let p = (*c % n.max(1) as u32) as i32;
        *c = c.wrapping_add(1);
        p
    }
}

/// The built-in partitioner for a config value.
pub(crate) fn built_in(kind: PartitionerKind, ignore_keys: bool) -> Box<dyn Partitioner> {
    match kind {
        PartitionerKind::Default => Box::new(DefaultPartitioner::new(ignore_keys)),
        PartitionerKind::UniformSticky => Box::new(DefaultPartitioner::new(true)),
        PartitionerKind::RoundRobin => Box::new(RoundRobinPartitioner::new()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// (key, Utils.murmur2(key.getBytes(UTF_8)), toPositive(hash) % 7), printed
    /// by a Java program against kafka-clients 3.9.
    const JAVA: &[(&str, i32, i32)] = &[
        ("", 275646681, 2),
        ("a", -1563381124, 5),
        ("ab", 316155434, 0),
        ("abc", 479470107, 4),
        ("abcd", -1323649548, 5),
        ("abcde", 461995741, 4),
        ("key", -1079937367, 4),
        ("key-0", 29210041, 0),
        ("key-1", 193331640, 5),
        ("key-42", -187086521, 3),
        ("hello world", 1221641059, 2),
        ("kafka", -798503068, 3),
        ("gregor", -1512854036, 1),
        ("The quick brown fox jumps over the lazy dog", 495243318, 3),
        ("0", 971027396, 3),
        ("1", -1993445489, 2),
        ("12345678", 338742798, 2),
        ("\u{e9}\u{e8}", -1525060724, 4),
        ("user-123456789", 1220388429, 1),
        ("x", 2121525046, 4),
    ];

    #[test]
    fn murmur2_matches_java() {
        for (key, hash, partition) in JAVA {
            assert_eq!(murmur2(key.as_bytes()), *hash, "murmur2({key:?})");
            assert_eq!(
                partition_for_key(key.as_bytes(), 7),
                *partition,
                "partition of {key:?}"
            );
        }
        // Bytes >= 0x80 in the tail exercise Java's sign masking.
        let all: Vec<u8> = (0..=255u8).collect();
        assert_eq!(murmur2(&all), -1948347274);
    }

    #[test]
    fn default_partitioner_keyed_and_sticky() {
        let p = DefaultPartitioner::new(false);
        assert_eq!(p.partition("t", Some(b"key-1"), None, 7), 5);
        let first = p.partition("t", None, None, 7);
        // Sticky: the same partition until a new batch is needed.
        for _ in 0..100 {
            assert_eq!(p.partition("t", None, None, 7), first);
        }
        p.on_new_batch("t", first, 7);
        let second = p.partition("t", None, None, 7);
        assert_ne!(second, first);
        // A stale notification (for a partition no longer sticky) changes nothing.
        p.on_new_batch("t", first, 7);
        assert_eq!(p.partition("t", None, None, 7), second);
        // Topics are independent; one partition is always 0.
        assert_eq!(p.partition("single", None, None, 1), 0);
        p.on_new_batch("single", 0, 1);
        assert_eq!(p.partition("single", None, None, 1), 0);
        // ignore.keys: keyed records are sticky too.
        let p = DefaultPartitioner::new(true);
        let s = p.partition("t", Some(b"a"), None, 7);
        assert_eq!(p.partition("t", Some(b"b"), None, 7), s);
    }

    #[test]
    fn round_robin_cycles() {
        let p = RoundRobinPartitioner::new();
        let got: Vec<i32> = (0..7)
            .map(|_| p.partition("t", Some(b"k"), None, 3))
            .collect();
        assert_eq!(got, vec![0, 1, 2, 0, 1, 2, 0]);
        assert_eq!(p.partition("u", None, None, 3), 0);
    }
}
