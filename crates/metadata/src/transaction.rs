//! Metadata transactions (KIP-868): one change written as several batches.
//!
//! A change is normally one batch of the metadata log, so it is applied
//! all-or-nothing. A few changes are too large for one batch (a topic of
//! 10,000 partitions is ~1.7 MB of records; the metadata log's batches are
//! bounded by `max.message.bytes` and `controller.max.records.per.batch`).
//! Kafka's controller writes those as a *non-atomic* result framed by
//! `BeginTransactionRecord` / `EndTransactionRecord`, and its metadata
//! loader publishes nothing between the two; a controller that takes over
//! with a transaction still open appends `AbortTransactionRecord`. Gregor
//! does the same:
//!
//! - [`split`] turns one change into batches within [`BatchLimits`]: the
//!   change itself when it fits, else `BeginTransaction`, the records, and
//!   `EndTransaction`, packed greedily.
//! - [`Replayer`] applies records to an image, holding a transaction's
//!   records back until its end (and dropping them on an abort), so a
//!   reader never sees a prefix of a change. A log that ends inside a
//!   transaction (a crash between two of its batches) leaves the replayer
//!   [`in_transaction`](Replayer::in_transaction); the writer then appends
//!   [`MetadataRecord::AbortTransaction`] before anything else.
//!
//! ```
//! use gregor_metadata::transaction::{split, BatchLimits, Replayer};
//! use gregor_metadata::{controller, MetadataImage};
//! let records = controller::create_topic(
//!     &MetadataImage::default(), &controller::CreateTopic::new("big", 250), &[1], uuid::Uuid::from_u128(1),
//! ).unwrap();
//! let batches = split(records, BatchLimits { max_records: 100, max_bytes: 1 << 20 }, "create big");
//! assert_eq!(batches.len(), 3); // 251 records + begin + end, 100 a batch
//! let mut r = Replayer::default();
//! for rec in &batches[0] { r.apply(rec); }
//! assert!(r.image().topic("big").is_none()); // a prefix is not visible
//! for rec in batches[1..].iter().flatten() { r.apply(rec); }
//! assert_eq!(r.image().topic("big").unwrap().partitions.len(), 250);
//! ```

use crate::{MetadataImage, MetadataRecord};

/// Kafka's default of `controller.max.records.per.batch` (its
/// `QuorumController.MAX_RECORDS_PER_BATCH`).
pub const DEFAULT_MAX_RECORDS_PER_BATCH: usize = 10_000;

/// Bytes of records in one metadata batch: under the metadata log's
/// `max.message.bytes` (1,048,588) with room for the batch header and each
/// record's framing.
pub const DEFAULT_MAX_BATCH_BYTES: usize = 1_000_000;

/// The most records one user operation (one CreateTopics topic, one
/// CreatePartitions topic, ...) may produce; more is refused with
/// POLICY_VIOLATION before anything is written (Kafka's
/// `MAX_RECORDS_PER_USER_OP`, a `BoundedList`). Kafka sets it to one batch
/// (10,000), which refuses a topic of 10,000 partitions (10,001 records);
/// gregor writes large changes as transactions, so it allows a few batches'
/// worth. The requests' own caps (`MAX_PARTITIONS_PER_BATCH`) keep real
/// operations well below it.
pub const MAX_RECORDS_PER_USER_OP: usize = 5 * DEFAULT_MAX_RECORDS_PER_BATCH;

/// Framing of one record in a batch beyond its value (length, attributes,
/// timestamp and offset deltas, key and header counts: varints).
const RECORD_OVERHEAD: usize = 24;

/// How large one batch of the metadata log may be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    /// `controller.max.records.per.batch`.
    pub max_records: usize,
    /// Bytes of encoded records.
    pub max_bytes: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            max_records: DEFAULT_MAX_RECORDS_PER_BATCH,
            max_bytes: DEFAULT_MAX_BATCH_BYTES,
        }
    }
}

/// A record's size in a batch, as [`split`] counts it.
pub fn record_size(record: &MetadataRecord) -> usize {
    record.encode().len() + RECORD_OVERHEAD
}

/// The batches that write `records` as one change: `[records]` when they fit
/// one batch, else a transaction named `name` over as many batches as the
/// limits need. A single record larger than `max_bytes` gets a batch of its
/// own (the append will refuse it). Empty in, empty out.
pub fn split(
    records: Vec<MetadataRecord>,
    limits: BatchLimits,
    name: &str,
) -> Vec<Vec<MetadataRecord>> {
    if records.is_empty() {
        return Vec::new();
    }
    let max_records = limits.max_records.max(1);
    let sizes: Vec<usize> = records.iter().map(record_size).collect();
    let total: usize = sizes.iter().sum();
    if records.len() <= max_records && total <= limits.max_bytes {
        return vec![records];
    }
    let begin = MetadataRecord::BeginTransaction {
        name: name.to_string(),
    };
    let end = MetadataRecord::EndTransaction;
    let mut items = Vec::with_capacity(records.len() + 2);
    items.push((record_size(&begin), begin));
    items.extend(sizes.into_iter().zip(records));
    items.push((record_size(&end), end));
    let mut batches = Vec::new();
    let mut current: Vec<MetadataRecord> = Vec::new();
    let mut bytes = 0usize;
    for (size, record) in items {
        if !current.is_empty() && (current.len() >= max_records || bytes + size > limits.max_bytes)
        {
            batches.push(std::mem::take(&mut current));
            bytes = 0;
        }
        bytes += size;
        current.push(record);
    }
    batches.push(current);
    batches
}

/// What [`Replayer::apply`] did with a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// The image changed (or would have: the record was applied).
    Visible,
    /// Held back inside an open transaction (or a marker that opened one).
    Held,
    /// A transaction ended: its records were applied together.
    Committed,
    /// A transaction was dropped: by an abort, or by a second begin (which
    /// only a writer that lost its place leaves behind).
    Aborted,
}

/// Records applied to an image with transactions applied whole.
#[derive(Debug, Clone, Default)]
pub struct Replayer {
    image: MetadataImage,
    /// The open transaction's name and records, if one is open.
    pending: Option<(String, Vec<MetadataRecord>)>,
}

impl Replayer {
    pub fn new(image: MetadataImage) -> Self {
        Self {
            image,
            pending: None,
        }
    }

    /// Applies (or holds back) one record.
    pub fn apply(&mut self, record: &MetadataRecord) -> Applied {
        match record {
            MetadataRecord::BeginTransaction { name } => {
                let dropped = self.pending.replace((name.clone(), Vec::new())).is_some();
                if dropped {
                    Applied::Aborted
                } else {
                    Applied::Held
                }
            }
            MetadataRecord::EndTransaction => match self.pending.take() {
                Some((_, records)) => {
                    for r in &records {
                        self.image.apply(r);
                    }
                    Applied::Committed
                }
                // An end without a begin (its begin was before a snapshot
                // that already holds the whole change): nothing to do.
                None => Applied::Visible,
            },
            MetadataRecord::AbortTransaction { .. } => {
                if self.pending.take().is_some() {
                    Applied::Aborted
                } else {
                    Applied::Visible
                }
            }
            other => match &mut self.pending {
                Some((_, records)) => {
                    records.push(other.clone());
                    Applied::Held
                }
                None => {
                    self.image.apply(other);
                    Applied::Visible
                }
            },
        }
    }

    /// The image of every change applied whole so far.
    pub fn image(&self) -> &MetadataImage {
        &self.image
    }

    pub fn into_image(self) -> MetadataImage {
        let mut image = self.image;
        image.compact(None);
        image
    }

    /// Whether a transaction is open (its end not yet applied).
    pub fn in_transaction(&self) -> bool {
        self.pending.is_some()
    }

    /// Records that rebuild this replayer from an empty one: the image's
    /// records, then the open transaction's begin and records (so a snapshot
    /// taken mid-transaction resumes it).
    pub fn to_records(&self) -> Vec<MetadataRecord> {
        let mut out = self.image.to_records();
        if let Some((name, records)) = &self.pending {
            out.push(MetadataRecord::BeginTransaction { name: name.clone() });
            out.extend(records.iter().cloned());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::controller::{self, CreateTopic};

    fn big_topic(partitions: i32) -> Vec<MetadataRecord> {
        controller::create_topic(
            &MetadataImage::default(),
            &CreateTopic::new("big", partitions),
            &[1, 2, 3],
            Uuid::from_u128(42),
        )
        .unwrap()
    }

    #[test]
    fn a_small_change_is_one_batch_without_markers() {
        let records = big_topic(10);
        let batches = split(records.clone(), BatchLimits::default(), "t");
        assert_eq!(batches, vec![records]);
        assert!(split(Vec::new(), BatchLimits::default(), "t").is_empty());
    }

    #[test]
    fn ten_thousand_partitions_split_within_the_limits_and_replay_whole() {
        let records = big_topic(10_000);
        let total: usize = records.iter().map(record_size).sum();
        assert!(
            total > DEFAULT_MAX_BATCH_BYTES,
            "{total} bytes fit one batch"
        );
        let limits = BatchLimits::default();
        let batches = split(records.clone(), limits, "CreateTopics big");
        assert!(batches.len() >= 2);
        for b in &batches {
            assert!(b.len() <= limits.max_records);
            assert!(b.iter().map(record_size).sum::<usize>() <= limits.max_bytes);
        }
        let flat: Vec<MetadataRecord> = batches.concat();
        assert!(matches!(flat[0], MetadataRecord::BeginTransaction { .. }));
        assert_eq!(flat.last(), Some(&MetadataRecord::EndTransaction));
        assert_eq!(&flat[1..flat.len() - 1], &records[..]);
        // Replayed batch by batch, nothing shows until the last one.
        let mut r = Replayer::default();
        for (i, b) in batches.iter().enumerate() {
            for rec in b {
                r.apply(rec);
            }
            if i + 1 < batches.len() {
                assert!(r.image().topic("big").is_none());
                assert!(r.in_transaction());
            }
        }
        assert!(!r.in_transaction());
        let expected = MetadataImage::default().with_records(&records);
        assert_eq!(*r.image(), expected);
        assert_eq!(r.image().topic("big").unwrap().partitions.len(), 10_000);
    }

    #[test]
    fn the_record_count_limit_splits_too() {
        let records = big_topic(25);
        let batches = split(
            records,
            BatchLimits {
                max_records: 10,
                max_bytes: usize::MAX,
            },
            "t",
        );
        // 26 records + begin + end = 28, 10 a batch.
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![10, 10, 8]
        );
    }

    #[test]
    fn an_abort_or_a_second_begin_drops_the_open_transaction() {
        let batches = split(
            big_topic(30),
            BatchLimits {
                max_records: 10,
                max_bytes: usize::MAX,
            },
            "t",
        );
        let mut r = Replayer::default();
        for rec in &batches[0] {
            r.apply(rec);
        }
        assert_eq!(
            r.apply(&MetadataRecord::AbortTransaction {
                reason: "failover".into()
            }),
            Applied::Aborted
        );
        assert!(!r.in_transaction());
        assert_eq!(*r.image(), MetadataImage::default());
        // A later, complete change applies normally.
        for rec in batches.iter().flatten() {
            r.apply(rec);
        }
        assert_eq!(r.image().topic("big").unwrap().partitions.len(), 30);
        // A begin while one is open drops the first.
        let mut r = Replayer::default();
        for rec in &batches[0] {
            r.apply(rec);
        }
        assert_eq!(r.apply(&batches[0][0]), Applied::Aborted);
        for rec in batches[0][1..].iter().chain(batches[1..].iter().flatten()) {
            r.apply(rec);
        }
        assert_eq!(r.image().topic("big").unwrap().partitions.len(), 30);
    }

    #[test]
    fn to_records_resumes_an_open_transaction() {
        let batches = split(
            big_topic(30),
            BatchLimits {
                max_records: 10,
                max_bytes: usize::MAX,
            },
            "t",
        );
        let mut r = Replayer::default();
        for rec in batches[0].iter().chain(&batches[1]) {
            r.apply(rec);
        }
        // As a snapshot taken here and loaded on restart.
        let mut resumed = Replayer::default();
        for rec in &r.to_records() {
            resumed.apply(rec);
        }
        assert!(resumed.in_transaction());
        for rec in batches[2..].iter().flatten() {
            resumed.apply(rec);
            r.apply(rec);
        }
        assert_eq!(*resumed.image(), *r.image());
        assert_eq!(resumed.image().topic("big").unwrap().partitions.len(), 30);
    }

    #[test]
    fn more_records_than_a_user_op_may_make_are_refused() {
        let record = MetadataRecord::EndTransaction;
        assert!(controller::bounded(vec![record.clone(); MAX_RECORDS_PER_USER_OP]).is_ok());
        let refused = controller::bounded(vec![record; MAX_RECORDS_PER_USER_OP + 1]).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "Unable to perform excessively large batch operation."
        );
    }
}
