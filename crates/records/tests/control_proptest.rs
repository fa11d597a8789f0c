//! Property tests for transaction markers: the parser against a model of
//! Kafka's rules over arbitrary bytes, round trips of built markers, and no
//! panics on damaged marker batches.

use gregor_records::batch::{compute_crc, CRC_OFFSET};
use gregor_records::{
    build_control_batch, parse_control_record, read_control_batch, validate_batch,
    ControlRecordType, RecordsError,
};
use proptest::prelude::*;

/// What Kafka's `EndTransactionMarker.deserialize` decides, written from its
/// source rather than from our parser: Some((commit, coordinator epoch)).
fn model(key: &[u8], value: Option<&[u8]>) -> Option<(bool, i32)> {
    if key.len() < 4 || key[0] & 0x80 != 0 {
        return None;
    }
    let commit = match (key[2], key[3]) {
        (0, 0) => false,
        (0, 1) => true,
        _ => return None,
    };
    let v = value?;
    if v.len() < 6 || v[0] & 0x80 != 0 {
        return None;
    }
    Some((commit, i32::from_be_bytes([v[2], v[3], v[4], v[5]])))
}

fn small_bytes() -> impl Strategy<Value = Vec<u8>> {
    // Mostly short, often all zero bytes (valid versions), so every branch is hit.
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..10),
        proptest::collection::vec(0u8..2, 0..10),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn parser_matches_the_model_on_arbitrary_bytes(
        key in small_bytes(),
        value in proptest::option::of(small_bytes()),
    ) {
        let got = parse_control_record(&key, value.as_deref());
        match (model(&key, value.as_deref()), got) {
            (None, Err(e)) => {
                let expected_kind = matches!(
                    e,
                    RecordsError::Truncated { .. }
                        | RecordsError::InvalidControlRecord { .. }
                        | RecordsError::UnknownControlRecordType { .. }
                );
                prop_assert!(expected_kind, "{e:?}");
            }
            (Some((commit, epoch)), Ok(m)) => {
                prop_assert_eq!(m.is_commit(), commit);
                prop_assert_eq!(m.coordinator_epoch, epoch);
            }
            (want, got) => prop_assert!(false, "model {:?}, parser {:?}", want, got),
        }
    }

    #[test]
    fn built_markers_read_back(
        pid in 0i64..i64::MAX,
        epoch in 0i16..i16::MAX,
        commit in any::<bool>(),
        coordinator_epoch in any::<i32>(),
        ts in 0i64..(1 << 45),
    ) {
        let b = build_control_batch(pid, epoch, commit, coordinator_epoch, ts);
        let v = validate_batch(&b, 1 << 10).expect("valid");
        prop_assert!(v.header.is_control() && v.header.is_transactional());
        prop_assert_eq!((v.header.producer_id, v.header.producer_epoch), (pid, epoch));
        prop_assert_eq!(v.header.max_timestamp, ts);
        let m = read_control_batch(&b, 1 << 10).expect("marker").expect("one record");
        let kind = if commit { ControlRecordType::Commit } else { ControlRecordType::Abort };
        prop_assert_eq!(m.kind, kind);
        prop_assert_eq!(m.coordinator_epoch, coordinator_epoch);
    }

    /// Damage anywhere in a marker batch (CRC fixed up, so the record bytes
    /// themselves are parsed): an error or some marker, never a panic.
    #[test]
    fn damaged_marker_batches_never_panic(
        pos_seed in any::<usize>(),
        xor in 1u8..=255,
        cut_seed in any::<usize>(),
    ) {
        let mut b = build_control_batch(5, 1, true, 2, 1000).to_vec();
        let pos = pos_seed % b.len();
        b[pos] ^= xor;
        let crc = compute_crc(&b);
        b[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        let _ = read_control_batch(&b, 1 << 10);
        let cut = cut_seed % (b.len() + 1);
        let _ = read_control_batch(&b[..cut], 1 << 10);
    }
}
