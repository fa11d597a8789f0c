//! `isolation.level=read_committed`: which batches of a fetched partition
//! belong to aborted transactions, decided as Kafka's `CompletedFetch` does.
//!
//! A read_committed Fetch returns records only up to the last stable offset,
//! and with them the partition's aborted transactions that overlap the
//! returned range: `(producer id, first offset)`. Walking the batches in
//! offset order:
//!
//! - before a batch of a producer, every aborted transaction that began at or
//!   before the batch's last offset makes its producer "aborted";
//! - a transactional data batch of an aborted producer is skipped whole;
//! - that producer's ABORT marker (a control batch) ends the aborted
//!   transaction, so its later transactions are read again.
//!
//! Control batches (COMMIT and ABORT markers) are never records for the
//! application, in either isolation level; the consumer's position moves
//! past them and past skipped batches all the same.
//!
//! ```text
//! control record key:   version int16 (0) | type int16 (0 = ABORT, 1 = COMMIT)
//! control record value: version int16 (0) | coordinator epoch int32   (EndTransactionMarker)
//! ```

use std::collections::{BTreeSet, HashSet};

use gregor_records::record::decode_records;
use gregor_records::BatchHeader;

use crate::error::{Error, Result};

/// A control record's type (the second int16 of its key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ControlType {
    Abort,
    Commit,
    /// Other control records (KIP-853 voter records, ...) carry no
    /// transaction outcome.
    Other(i16),
}

/// The type of the control batch `batch` (whole batch bytes), from its
/// first record's key.
pub(crate) fn control_type(batch: &[u8]) -> Result<ControlType> {
    // A marker batch holds one small record; 1 MiB is ample.
    let (_, records) = decode_records(batch, 1 << 20)?;
    let key = records
        .first()
        .and_then(|r| r.key.as_deref())
        .ok_or_else(|| Error::protocol("control batch", "no record with a key"))?;
    let [_v0, _v1, t0, t1, ..] = *key else {
        return Err(Error::protocol(
            "control batch",
            format!("key of {} bytes, expected at least 4", key.len()),
        ));
    };
    Ok(match i16::from_be_bytes([t0, t1]) {
        0 => ControlType::Abort,
        1 => ControlType::Commit,
        t => ControlType::Other(t),
    })
}

/// The aborted transactions of one fetched partition, consumed as its
/// batches are walked in order.
#[derive(Debug, Default)]
pub(crate) struct AbortedTransactions {
    /// `(first offset, producer id)` not reached yet, smallest first.
    upcoming: BTreeSet<(i64, i64)>,
    /// Producers whose aborted transaction is open at the current batch.
    aborted: HashSet<i64>,
}

impl AbortedTransactions {
    /// From the Fetch response's `(producer id, first offset)` list.
    pub fn new(list: impl IntoIterator<Item = (i64, i64)>) -> Self {
        AbortedTransactions {
            upcoming: list.into_iter().map(|(pid, first)| (first, pid)).collect(),
            aborted: HashSet::new(),
        }
    }

    /// Whether the data in the batch with `header` (whose bytes are `batch`)
    /// belongs to an aborted transaction. Must be called for every batch, in
    /// order; control batches are inspected here and always "skipped".
    pub fn skip(&mut self, header: &BatchHeader, batch: &[u8]) -> Result<bool> {
        if !header.has_producer_id() {
            return Ok(header.is_control());
        }
        while let Some(&(first, pid)) = self.upcoming.first() {
            if first > header.last_offset() {
                break;
            }
            self.upcoming.pop_first();
            self.aborted.insert(pid);
        }
        if header.is_control() {
            if control_type(batch)? == ControlType::Abort {
                self.aborted.remove(&header.producer_id);
            }
            return Ok(true);
        }
        Ok(header.is_transactional() && self.aborted.contains(&header.producer_id))
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bytes::Bytes;
    use gregor_records::batch::{compute_crc, ATTRIBUTES_OFFSET, CONTROL_MASK, CRC_OFFSET};
    use gregor_records::{BatchBuilder, Compression, Record};

    /// A batch of `n` records from `pid` at `base`, transactional or not.
    pub(crate) fn data_batch(pid: i64, base: i64, n: usize, transactional: bool) -> Vec<u8> {
        let mut b = BatchBuilder::new(base, Compression::None);
        b.producer_id = pid;
        b.producer_epoch = 0;
        b.base_sequence = 0;
        b.transactional = transactional;
        for i in 0..n {
            b.push(Record {
                timestamp: 1000,
                value: Some(Bytes::from(format!("p{pid}-{}", base + i as i64))),
                ..Default::default()
            });
        }
        b.build().unwrap().to_vec()
    }

    /// An end-transaction marker as the coordinator writes it: a
    /// transactional control batch with one EndTransactionMarker record.
    pub(crate) fn marker(pid: i64, offset: i64, commit: bool) -> Vec<u8> {
        let mut b = BatchBuilder::new(offset, Compression::None);
        b.producer_id = pid;
        b.producer_epoch = 0;
        b.transactional = true;
        let mut key = Vec::new();
        key.extend_from_slice(&0i16.to_be_bytes());
        key.extend_from_slice(&i16::from(commit).to_be_bytes());
        let mut value = Vec::new();
        value.extend_from_slice(&0i16.to_be_bytes());
        value.extend_from_slice(&7i32.to_be_bytes()); // coordinator epoch
        b.push(Record {
            timestamp: 2000,
            key: Some(Bytes::from(key)),
            value: Some(Bytes::from(value)),
            ..Default::default()
        });
        let mut bytes = b.build().unwrap().to_vec();
        let attributes =
            i16::from_be_bytes([bytes[ATTRIBUTES_OFFSET], bytes[ATTRIBUTES_OFFSET + 1]]);
        bytes[ATTRIBUTES_OFFSET..ATTRIBUTES_OFFSET + 2]
            .copy_from_slice(&(attributes | CONTROL_MASK).to_be_bytes());
        let crc = compute_crc(&bytes);
        bytes[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
        bytes
    }

    fn skips(aborted: &mut AbortedTransactions, batch: &[u8]) -> bool {
        let h = BatchHeader::parse(batch).unwrap();
        aborted.skip(&h, batch).unwrap()
    }

    #[test]
    fn markers_are_recognized() {
        let h = BatchHeader::parse(&marker(1, 5, false)).unwrap();
        assert!(h.is_control() && h.is_transactional());
        gregor_records::validate_batch(&marker(1, 5, false), 1 << 20).unwrap();
        assert_eq!(
            control_type(&marker(1, 5, false)).unwrap(),
            ControlType::Abort
        );
        assert_eq!(
            control_type(&marker(1, 5, true)).unwrap(),
            ControlType::Commit
        );
        // A control batch without a proper key is an error, not a panic.
        let mut b = BatchBuilder::new(0, Compression::None);
        b.push(Record::default());
        assert!(control_type(&b.build().unwrap()).is_err());
    }

    #[test]
    fn aborted_producers_are_skipped_until_their_abort_marker() {
        // Offsets: 0-1 p1 (aborted), 2-3 p2 (committed), 4 p1 abort marker,
        // 5 p2 commit marker, 6-7 p1 again (a later, committed transaction),
        // 8-9 non-transactional p3, 10 p1 commit marker.
        let mut aborted = AbortedTransactions::new([(1, 0)]);
        assert!(skips(&mut aborted, &data_batch(1, 0, 2, true)));
        assert!(!skips(&mut aborted, &data_batch(2, 2, 2, true)));
        assert!(skips(&mut aborted, &marker(1, 4, false)));
        assert!(skips(&mut aborted, &marker(2, 5, true)));
        assert!(!skips(&mut aborted, &data_batch(1, 6, 2, true)));
        assert!(!skips(&mut aborted, &data_batch(3, 8, 2, false)));
        assert!(skips(&mut aborted, &marker(1, 10, true)));
    }

    #[test]
    fn an_aborted_transaction_starting_inside_a_batch_counts() {
        // The aborted transaction's first offset is inside the batch's
        // range: Kafka consumes aborted transactions up to the *last* offset.
        let mut aborted = AbortedTransactions::new([(4, 11), (4, 20)]);
        assert!(!skips(&mut aborted, &data_batch(4, 0, 10, true)));
        assert!(skips(&mut aborted, &data_batch(4, 10, 5, true)));
        assert!(skips(&mut aborted, &marker(4, 15, false)));
        assert!(!skips(&mut aborted, &data_batch(4, 16, 2, true)));
        // The second aborted transaction of the same producer.
        assert!(skips(&mut aborted, &data_batch(4, 20, 2, true)));
        assert!(skips(&mut aborted, &marker(4, 22, false)));
        assert!(!skips(&mut aborted, &data_batch(4, 23, 1, true)));
    }

    #[test]
    fn non_transactional_batches_of_an_aborted_producer_are_kept() {
        let mut aborted = AbortedTransactions::new([(9, 0)]);
        assert!(!skips(&mut aborted, &data_batch(9, 0, 1, false)));
        assert!(skips(&mut aborted, &data_batch(9, 1, 1, true)));
        // Batches without a producer id are plain data.
        let mut b = BatchBuilder::new(2, Compression::None);
        b.push(Record::default());
        assert!(!skips(&mut aborted, &b.build().unwrap()));
    }
}
