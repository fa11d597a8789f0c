//! A stable-Rust stand-in for the cargo-fuzz target in `fuzz/`: feeds 20,000
//! deterministic pseudo-random mutations of valid batches (every codec)
//! through every entry point. Nothing may panic; whatever validate_batch
//! accepts must also decode.

use bytes::Bytes;
use gregor_records::batch::{compute_crc, BATCH_LENGTH_OFFSET, CRC_OFFSET};
use gregor_records::record::decode_records;
use gregor_records::{
    validate_batch, BatchBuilder, BatchHeader, BatchIter, Compression, Header, Record,
};

/// xorshift64*: tiny, seedable, good enough to pick mutations.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn seeds() -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for codec in [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ] {
        for n in [1usize, 3, 20] {
            let mut b = BatchBuilder::new(1000, codec);
            for i in 0..n {
                b.push(Record {
                    timestamp: 1_700_000_000_000 + i as i64,
                    key: (i % 2 == 0).then(|| Bytes::from(format!("key{i}"))),
                    value: Some(Bytes::from(vec![b'a' + (i % 26) as u8; i * 5])),
                    headers: vec![Header {
                        key: "h".into(),
                        value: (i % 3 != 0).then(|| Bytes::from_static(b"hv")),
                    }],
                    ..Record::default()
                });
            }
            out.push(b.build().expect("build").to_vec());
        }
    }
    out
}

/// Runs every entry point over `buf`. Returns whether validate accepted it.
fn exercise(buf: &[u8]) -> bool {
    let _ = BatchHeader::parse(buf).map(|h| (h.last_sequence(), h.next_offset()));
    let mut n = 0;
    for item in BatchIter::new(buf) {
        n += 1;
        if let Ok((_, _, batch)) = item {
            let _ = decode_records(batch, 1 << 16);
        }
    }
    // One item per whole batch plus at most one error; at least one byte per batch.
    assert!(n <= buf.len() / 61 + 1);
    let ok = validate_batch(buf, 1 << 16).is_ok();
    if ok {
        decode_records(buf, 1 << 16).expect("a valid batch decodes");
    }
    ok
}

fn fix_crc(buf: &mut [u8]) {
    if buf.len() >= 21 {
        let crc = compute_crc(buf);
        buf[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    }
}

#[test]
fn twenty_thousand_mutations() {
    let seeds = seeds();
    for s in &seeds {
        assert!(exercise(s), "seed batches are valid");
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut accepted = 0usize;
    for _ in 0..20_000 {
        let mut buf = seeds[rng.below(seeds.len())].clone();
        for _ in 0..1 + rng.below(4) {
            let len = buf.len();
            match rng.below(7) {
                0 => buf[rng.below(len)] ^= 1 << rng.below(8),
                1 => buf[rng.below(len)] = rng.next() as u8,
                2 => buf.truncate(rng.below(len + 1)),
                3 => {
                    let extra = rng.below(64);
                    buf.extend((0..extra).map(|_| rng.next() as u8));
                }
                4 if len >= 12 => {
                    // Interesting lengths, including ones near i32::MAX.
                    let v =
                        [i32::MAX, i32::MAX - 11, i32::MIN, -1, 0, 48, 49, 1 << 20][rng.below(8)];
                    buf[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4]
                        .copy_from_slice(&v.to_be_bytes());
                }
                5 => {
                    // Duplicate a chunk: a concatenation of (partial) batches.
                    let at = rng.below(len);
                    let chunk = buf[at..].to_vec();
                    buf.extend_from_slice(&chunk);
                }
                _ if len > 61 => {
                    // Corrupt the records section, then make the CRC agree so
                    // the mutation reaches the record walker / decompressor.
                    let at = 61 + rng.below(len - 61);
                    buf[at] = rng.next() as u8;
                    fix_crc(&mut buf);
                }
                _ => {}
            }
            if buf.is_empty() {
                break;
            }
        }
        if rng.below(3) == 0 {
            fix_crc(&mut buf);
        }
        accepted += usize::from(exercise(&buf));
    }
    // Sanity: the mutations are not all trivially rejected (nor all accepted).
    assert!(accepted > 100 && accepted < 19_000, "accepted {accepted}");
}

/// Writes the seed batches as a starting corpus for cargo-fuzz:
/// `GREGOR_FUZZ_SEEDS=$PWD/fuzz/corpus/record_batch cargo test -p gregor-records
/// --test fuzz_smoke -- --ignored write_fuzz_seeds`.
#[test]
#[ignore = "writes files; run by hand to seed the cargo-fuzz corpus"]
fn write_fuzz_seeds() {
    let dir = std::env::var("GREGOR_FUZZ_SEEDS").expect("set GREGOR_FUZZ_SEEDS to a directory");
    std::fs::create_dir_all(&dir).expect("create seed dir");
    let seeds = seeds();
    for (i, s) in seeds.iter().enumerate() {
        std::fs::write(format!("{dir}/seed-{i:02}"), s).expect("write seed");
    }
    // Two batches back to back, as in a segment or a produce request.
    std::fs::write(
        format!("{dir}/seed-pair"),
        [&seeds[0][..], &seeds[1][..]].concat(),
    )
    .expect("write seed");
}
