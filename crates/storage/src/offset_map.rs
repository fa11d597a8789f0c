//! [`OffsetMap`]: the cleaner's key → latest-offset map in a fixed memory
//! budget, Kafka's `SkimpyOffsetMap`.
//!
//! The map stores a 16-byte hash of each key rather than the key, so its size
//! depends only on `log.cleaner.dedupe.buffer.size`, never on key sizes:
//!
//! ```text
//! slot (24 bytes, memory only):
//!  0  hash    [u8; 16]   128-bit MurmurHash3 (x64) of the key; all zeros = empty
//! 16  offset  i64        latest offset seen for the key
//! ```
//!
//! Open addressing: the first probes use the four 32-bit words of the hash as
//! independent positions (as Kafka uses windows of its MD5), then probing
//! continues linearly. The map counts itself full at `slots × load factor`
//! entries (`log.cleaner.io.buffer.load.factor`, 0.9) so probe chains stay
//! bounded; the cleaner then cleans only up to where the map filled.
//!
//! Why a 128-bit hash and not the key: two keys with the same hash would make
//! the cleaner drop the older key's latest record. With 128 bits (Kafka uses
//! MD5) the chance is ~n²/2¹²⁸, negligible for any n that fits in memory.

/// Bytes of the key hash kept per entry.
pub const HASH_SIZE: usize = 16;
/// Bytes per slot: the hash and an 8-byte offset, as in Kafka.
pub const BYTES_PER_ENTRY: usize = HASH_SIZE + 8;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    hash: [u64; 2],
    offset: i64,
}

impl Slot {
    fn is_empty(&self) -> bool {
        self.hash == [0, 0]
    }
}

/// `n` empty slots from `alloc_zeroed` (calloc): for a large map the pages
/// stay untouched, and so out of the resident set, until a slot is used.
/// (`vec![Slot::default(); n]` would write every slot.)
fn zeroed_slots(n: usize) -> Vec<Slot> {
    let Ok(layout) = std::alloc::Layout::array::<Slot>(n) else {
        return vec![Slot::default(); n];
    };
    if layout.size() == 0 {
        return Vec::new();
    }
    // SAFETY: the layout is non-zero-sized and valid for `n` slots; an
    // all-zero `Slot` is a valid value (the empty slot), so the memory is
    // initialised for `n` elements; the Vec takes ownership of exactly this
    // allocation with capacity `n`.
    unsafe {
        let ptr = std::alloc::alloc_zeroed(layout) as *mut Slot;
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Vec::from_raw_parts(ptr, n, n)
    }
}

/// See the module docs.
#[derive(Debug)]
pub struct OffsetMap {
    slots: Vec<Slot>,
    max_entries: usize,
    entries: usize,
    /// The largest offset the map covers (records past it are kept as-is).
    latest_offset: i64,
    /// Slots were written since the last clear (the zeroing can be skipped).
    dirty: bool,
    lookups: u64,
    probes: u64,
}

impl OffsetMap {
    /// A map of `memory` bytes (at least one slot) that counts itself full at
    /// `load_factor` of its slots.
    pub fn new(memory: usize, load_factor: f64) -> Self {
        let n = (memory / BYTES_PER_ENTRY).max(2);
        let lf = if load_factor.is_finite() {
            load_factor.clamp(0.01, 0.99)
        } else {
            0.9
        };
        Self {
            slots: zeroed_slots(n),
            max_entries: ((n as f64 * lf) as usize).clamp(1, n - 1),
            entries: 0,
            latest_offset: -1,
            dirty: false,
            lookups: 0,
            probes: 0,
        }
    }

    /// Number of slots.
    pub fn slots(&self) -> usize {
        self.slots.len()
    }
    /// Distinct keys stored.
    pub fn len(&self) -> usize {
        self.entries
    }
    pub fn is_empty(&self) -> bool {
        self.entries == 0
    }
    /// True when no further distinct key may be added.
    pub fn is_full(&self) -> bool {
        self.entries >= self.max_entries
    }
    /// Entries the map accepts before it is full.
    pub fn capacity(&self) -> usize {
        self.max_entries
    }
    /// Fraction of slots in use.
    pub fn utilization(&self) -> f64 {
        self.entries as f64 / self.slots.len() as f64
    }
    /// Average probes per lookup since the last clear (1.0 is perfect).
    pub fn collision_rate(&self) -> f64 {
        if self.lookups == 0 {
            0.0
        } else {
            self.probes as f64 / self.lookups as f64
        }
    }
    pub fn latest_offset(&self) -> i64 {
        self.latest_offset
    }
    /// Raises the covered range: offsets up to `offset` were all considered
    /// (Kafka's `updateLatestOffset`).
    pub fn update_latest_offset(&mut self, offset: i64) {
        self.latest_offset = self.latest_offset.max(offset);
    }

    pub fn clear(&mut self) {
        if self.dirty {
            // A fresh zeroed allocation instead of writing every slot: the old
            // pages go back to the OS and the new ones cost nothing until
            // touched, so an idle cleaner holds no resident memory.
            self.slots = zeroed_slots(self.slots.len());
        }
        self.dirty = false;
        self.entries = 0;
        self.latest_offset = -1;
        self.lookups = 0;
        self.probes = 0;
    }

    /// Records `offset` as the latest for `key` (a later put wins). Returns
    /// false, storing nothing, if the key is new and the map is full.
    pub fn put(&mut self, key: &[u8], offset: i64) -> bool {
        let hash = key_hash(key);
        let i = self.find(hash);
        let slot = &mut self.slots[i];
        if slot.is_empty() {
            if self.entries >= self.max_entries {
                return false;
            }
            self.entries += 1;
            slot.hash = hash;
            self.dirty = true;
        }
        slot.offset = offset;
        self.latest_offset = self.latest_offset.max(offset);
        true
    }

    /// The latest offset stored for `key`.
    pub fn get(&mut self, key: &[u8]) -> Option<i64> {
        let i = self.find(key_hash(key));
        let s = &self.slots[i];
        (!s.is_empty()).then_some(s.offset)
    }

    /// The slot holding `hash`, or the empty slot where it belongs. Terminates
    /// because at least one slot is always empty (max_entries < slots).
    fn find(&mut self, hash: [u64; 2]) -> usize {
        self.lookups += 1;
        let n = self.slots.len() as u64;
        let words = [
            hash[0] as u32,
            (hash[0] >> 32) as u32,
            hash[1] as u32,
            (hash[1] >> 32) as u32,
        ];
        // Lemire's multiply-shift maps a uniform u32 onto 0..n without a division.
        let at = |w: u32| ((w as u64 * n) >> 32) as usize;
        let mut i = 0;
        for w in words {
            i = at(w);
            self.probes += 1;
            let s = &self.slots[i];
            if s.is_empty() || s.hash == hash {
                return i;
            }
        }
        loop {
            i = if i + 1 == self.slots.len() { 0 } else { i + 1 };
            self.probes += 1;
            let s = &self.slots[i];
            if s.is_empty() || s.hash == hash {
                return i;
            }
        }
    }
}

/// The key hash stored in the map: MurmurHash3 x64 128, with one bit forced
/// so that no key hashes to the all-zero "empty" marker.
fn key_hash(key: &[u8]) -> [u64; 2] {
    let (a, b) = murmur3_x64_128(key, 0);
    [a, b | 1]
}

fn fmix64(mut k: u64) -> u64 {
    k ^= k >> 33;
    k = k.wrapping_mul(0xff51_afd7_ed55_8ccd);
    k ^= k >> 33;
    k = k.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    k ^ (k >> 33)
}

fn le_u64(b: &[u8]) -> u64 {
    let mut x = [0u8; 8];
    x[..b.len()].copy_from_slice(b);
    u64::from_le_bytes(x)
}

/// MurmurHash3_x64_128 (Austin Appleby, public domain): fast, well mixed,
/// 128 bits. Not cryptographic: keys are not adversarial inputs to a hash
/// table here, since an attacker gains nothing from a collision they could not
/// get by simply writing the key.
pub fn murmur3_x64_128(data: &[u8], seed: u64) -> (u64, u64) {
    const C1: u64 = 0x87c3_7b91_1142_53d5;
    const C2: u64 = 0x4cf5_ad43_2745_937f;
    let (mut h1, mut h2) = (seed, seed);
    let mut blocks = data.chunks_exact(16);
    for b in blocks.by_ref() {
        let k1 = le_u64(&b[..8])
            .wrapping_mul(C1)
            .rotate_left(31)
            .wrapping_mul(C2);
        h1 ^= k1;
        h1 = h1
            .rotate_left(27)
            .wrapping_add(h2)
            .wrapping_mul(5)
            .wrapping_add(0x52dc_e729);
        let k2 = le_u64(&b[8..])
            .wrapping_mul(C2)
            .rotate_left(33)
            .wrapping_mul(C1);
        h2 ^= k2;
        h2 = h2
            .rotate_left(31)
            .wrapping_add(h1)
            .wrapping_mul(5)
            .wrapping_add(0x3849_5ab5);
    }
    let tail = blocks.remainder();
    if tail.len() > 8 {
        h2 ^= le_u64(&tail[8..])
            .wrapping_mul(C2)
            .rotate_left(33)
            .wrapping_mul(C1);
    }
    if !tail.is_empty() {
        h1 ^= le_u64(&tail[..tail.len().min(8)])
            .wrapping_mul(C1)
            .rotate_left(31)
            .wrapping_mul(C2);
    }
    h1 ^= data.len() as u64;
    h2 ^= data.len() as u64;
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    h1 = fmix64(h1);
    h2 = fmix64(h2);
    h1 = h1.wrapping_add(h2);
    h2 = h2.wrapping_add(h1);
    (h1, h2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur_known_vectors() {
        // Reference values of the canonical C++ implementation (seed 0).
        assert_eq!(murmur3_x64_128(b"", 0), (0, 0));
        assert_eq!(
            murmur3_x64_128(b"hello", 0),
            (0xcbd8_a7b3_41bd_9b02, 0x5b1e_906a_48ae_1d19)
        );
        assert_eq!(
            murmur3_x64_128(b"The quick brown fox jumps over the lazy dog", 0),
            (0xe34b_bc7b_bc07_1b6c, 0x7a43_3ca9_c49a_9347)
        );
    }

    #[test]
    fn latest_offset_wins() {
        let mut m = OffsetMap::new(24 * 100, 0.9);
        assert!(m.put(b"a", 1));
        assert!(m.put(b"b", 2));
        assert!(m.put(b"a", 7));
        assert_eq!(m.get(b"a"), Some(7));
        assert_eq!(m.get(b"b"), Some(2));
        assert_eq!(m.get(b"c"), None);
        assert_eq!(m.get(b""), None);
        assert!(m.put(b"", 9));
        assert_eq!(m.get(b""), Some(9));
        assert_eq!(m.len(), 3);
        assert_eq!(m.latest_offset(), 9);
        m.clear();
        assert!(m.is_empty());
        assert_eq!(m.get(b"a"), None);
        assert_eq!(m.latest_offset(), -1);
    }

    #[test]
    fn bounded_and_full_detection() {
        // 1000 slots, full at 900 entries, whatever the key sizes.
        let mut m = OffsetMap::new(24 * 1000, 0.9);
        assert_eq!(m.slots(), 1000);
        assert_eq!(m.capacity(), 900);
        let key = |i: usize| format!("{i:0>200}").into_bytes();
        for i in 0..900 {
            assert!(!m.is_full());
            assert!(m.put(&key(i), i as i64), "{i}");
        }
        assert!(m.is_full());
        // A new key is refused; an existing key may still be updated.
        assert!(!m.put(&key(900), 900));
        assert_eq!(m.get(&key(900)), None);
        assert!(m.put(&key(5), 5000));
        assert_eq!(m.get(&key(5)), Some(5000));
        for i in (0..900).filter(|i| *i != 5) {
            assert_eq!(m.get(&key(i)), Some(i as i64));
        }
        assert!((m.utilization() - 0.9).abs() < 1e-9);
        assert!(m.collision_rate() >= 1.0);
    }

    #[test]
    fn tiny_maps_terminate() {
        let mut m = OffsetMap::new(0, 0.99);
        assert_eq!(m.slots(), 2);
        assert!(m.put(b"x", 1));
        assert!(!m.put(b"y", 2));
        assert_eq!(m.get(b"y"), None);
        assert_eq!(m.get(b"x"), Some(1));
    }
}
