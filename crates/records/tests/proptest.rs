//! Property tests for the RecordBatch codec: round trips through every codec,
//! corruption detection, and no panics on arbitrary input.

use bytes::Bytes;
use gregor_records::batch::{compute_crc, BATCH_LENGTH_OFFSET, CRC_OFFSET, RECORDS_COUNT_OFFSET};
use gregor_records::record::decode_records;
use gregor_records::{
    validate_batch, BatchBuilder, BatchHeader, BatchIter, Compression, Header, Record,
    BATCH_HEADER_LEN,
};
use proptest::prelude::*;

const MAX_OUT: usize = 1 << 22;

fn codec() -> impl Strategy<Value = Compression> {
    prop_oneof![
        Just(Compression::None),
        Just(Compression::Gzip),
        Just(Compression::Snappy),
        Just(Compression::Lz4),
        Just(Compression::Zstd),
    ]
}

fn bytes_opt(max: usize) -> impl Strategy<Value = Option<Bytes>> {
    proptest::option::of(proptest::collection::vec(any::<u8>(), 0..max).prop_map(Bytes::from))
}

fn record() -> impl Strategy<Value = Record> {
    (
        any::<i64>(),
        bytes_opt(40),
        bytes_opt(300),
        proptest::collection::vec(("[a-z\u{e9}\u{4e2d}]{0,8}", bytes_opt(20)), 0..4),
    )
        .prop_map(|(timestamp, key, value, headers)| Record {
            offset: 0,
            timestamp,
            key,
            value,
            headers: headers
                .into_iter()
                .map(|(key, value)| Header { key, value })
                .collect(),
        })
}

fn batch_strategy() -> impl Strategy<Value = (i64, Compression, bool, Vec<Record>)> {
    (
        0i64..i64::MAX / 2,
        codec(),
        any::<bool>(),
        proptest::collection::vec(record(), 1..40),
    )
}

fn build(base: i64, codec: Compression, txn: bool, records: &[Record]) -> Vec<u8> {
    let mut b = BatchBuilder::new(base, codec);
    b.transactional = txn;
    if txn {
        b.producer_id = 7;
        b.producer_epoch = 1;
        b.base_sequence = 0;
    }
    records.iter().cloned().for_each(|r| b.push(r));
    b.build().expect("build").to_vec()
}

/// Exercises every entry point; none may panic whatever the bytes.
fn poke(buf: &[u8]) {
    let _ = BatchHeader::parse(buf).map(|h| {
        (
            h.total_size(),
            h.compression(),
            h.last_offset(),
            h.next_offset(),
            h.last_sequence(),
        )
    });
    // flatten: the iterator's one possible Err is the last item anyway.
    for (_, _, batch) in BatchIter::new(buf).flatten() {
        let _ = validate_batch(batch, 1 << 16);
        let _ = decode_records(batch, 1 << 16);
    }
    let _ = validate_batch(buf, 1 << 16);
    let _ = decode_records(buf, 1 << 16);
    let _ = compute_crc(buf);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn roundtrip((base, codec, txn, records) in batch_strategy()) {
        let bytes = build(base, codec, txn, &records);
        let v = validate_batch(&bytes, MAX_OUT).expect("valid");
        prop_assert_eq!(v.size, bytes.len());
        prop_assert_eq!(v.header.compression(), Ok(codec));
        prop_assert_eq!(v.header.is_transactional(), txn);
        prop_assert_eq!(v.has_null_key, records.iter().any(|r| r.key.is_none()));
        prop_assert_eq!(v.header.last_offset(), base + records.len() as i64 - 1);
        let (h, decoded) = decode_records(&bytes, MAX_OUT).expect("decode");
        prop_assert_eq!(h, v.header);
        let expected: Vec<Record> = records
            .iter()
            .enumerate()
            .map(|(i, r)| Record { offset: base + i as i64, ..r.clone() })
            .collect();
        prop_assert_eq!(decoded, expected);
        let items: Vec<_> = BatchIter::new(&bytes).collect();
        prop_assert_eq!(items.len(), 1);
    }

    #[test]
    fn byte_flips_are_detected_or_harmless(
        (base, codec, txn, records) in batch_strategy(),
        pos_seed in any::<usize>(),
        xor in 1u8..=255,
    ) {
        let mut bytes = build(base, codec, txn, &records);
        let pos = pos_seed % bytes.len();
        bytes[pos] ^= xor;
        let result = validate_batch(&bytes, MAX_OUT);
        // baseOffset (0..8) and partitionLeaderEpoch (12..16) are outside the
        // CRC by design: the broker rewrites them. Everything else is covered
        // by the length check, the magic check or the CRC (CRC32C detects
        // every error burst of up to 32 bits, so one changed byte always).
        let outside_crc = pos < 8 || (12..16).contains(&pos);
        if outside_crc {
            let v = result.expect("change outside the CRC must stay valid");
            let (_, decoded) = decode_records(&bytes, MAX_OUT).expect("decode");
            prop_assert_eq!(decoded.len(), records.len());
            prop_assert_eq!(decoded[0].offset, v.header.base_offset);
        } else {
            prop_assert!(result.is_err(), "flip at {} not detected", pos);
        }
        poke(&bytes);
    }

    #[test]
    fn arbitrary_bytes_never_panic(buf in proptest::collection::vec(any::<u8>(), 0..300)) {
        poke(&buf);
    }

    /// Arbitrary bytes behind a plausible header with a correct CRC, so the
    /// record walker and the decompressors see the garbage.
    #[test]
    fn arbitrary_records_never_panic(
        codec in codec(),
        count in -2i32..20,
        section in proptest::collection::vec(any::<u8>(), 0..300),
    ) {
        let mut bytes = build(0, codec, false, &[Record::default()]);
        bytes.truncate(BATCH_HEADER_LEN);
        bytes.extend_from_slice(&section);
        let len = (bytes.len() - 12) as i32;
        bytes[BATCH_LENGTH_OFFSET..BATCH_LENGTH_OFFSET + 4].copy_from_slice(&len.to_be_bytes());
        bytes[RECORDS_COUNT_OFFSET..RECORDS_COUNT_OFFSET + 4].copy_from_slice(&count.to_be_bytes());
        let crc = compute_crc(&bytes);
        bytes[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        poke(&bytes);
    }

    /// Concatenations of valid batches iterate back exactly, and a cut anywhere
    /// yields the whole batches before it and then at most one error.
    #[test]
    fn iteration_over_concatenations(
        batches in proptest::collection::vec(batch_strategy(), 1..4),
        cut_seed in any::<usize>(),
    ) {
        let mut buf = Vec::new();
        let mut bounds = Vec::new();
        for (base, codec, txn, records) in &batches {
            bounds.push(buf.len());
            buf.extend_from_slice(&build(*base, *codec, *txn, records));
        }
        let positions: Vec<usize> = BatchIter::new(&buf).map(|r| r.expect("whole").1).collect();
        prop_assert_eq!(&positions, &bounds);

        let cut = cut_seed % (buf.len() + 1);
        let items: Vec<_> = BatchIter::new(&buf[..cut]).collect();
        let whole = bounds.iter().skip(1).chain(std::iter::once(&buf.len()))
            .filter(|&&end| end <= cut).count();
        let torn = !bounds.contains(&cut) && cut != buf.len();
        prop_assert_eq!(items.len(), whole + usize::from(torn));
        for item in &items[..whole] {
            prop_assert!(item.is_ok());
        }
        if torn {
            let is_truncated = matches!(items[whole], Err(gregor_records::RecordsError::Truncated { .. }));
            prop_assert!(is_truncated);
        }
    }
}
