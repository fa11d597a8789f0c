//! The metadata log runtime: appends the controller's records to
//! `__cluster_metadata-0` (a Kafka-format log) and keeps the image built by
//! replaying them. Every change is one batch, fsynced before it is applied,
//! so a change is all-or-nothing across a crash. A change too large for one
//! batch (`controller.max.records.per.batch` records, or about
//! `max.message.bytes`) is written as a KIP-868 transaction over several
//! (see [`gregor_metadata::transaction`]): replay applies it only once its
//! end is read, and a log that ends inside one (a crash between its
//! batches) gets an `AbortTransaction` record at open.
//!
//! Each change makes the next image from the current one, sharing what the
//! change does not touch (see [`gregor_metadata::image`]). Every
//! `metadata.log.max.record.bytes.between.snapshots` bytes appended, and at
//! a clean close, the image is written as a snapshot ([`snapshot`]) by a
//! background thread; start-up loads the newest valid snapshot and replays
//! only the log after it.
//!
//! Everything here blocks on the disk: async callers run it on the blocking
//! pool (see `Broker::controller_update`), and the write lock below is only
//! taken there.

pub mod snapshot;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use gregor_metadata::transaction::{self, BatchLimits, Replayer};
use gregor_metadata::{MetadataImage, MetadataRecord};
use gregor_records::{BatchBuilder, Compression, Record};
use gregor_storage::{Clock, Log, LogConfig, TopicPartition};
use parking_lot::{Mutex, RwLock};

use snapshot::{SnapshotError, SnapshotId};

/// Name of the metadata log's directory inside the metadata log dir.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// Kafka's default of `metadata.log.max.record.bytes.between.snapshots` (20 MiB).
pub const DEFAULT_SNAPSHOT_BYTES: u64 = 20 * 1024 * 1024;

/// The metadata log's leader epoch: 0 until a Raft quorum assigns epochs.
const EPOCH: i32 = 0;

#[derive(Debug, thiserror::Error)]
pub enum MetadataStoreError {
    #[error("metadata log: {0}")]
    Storage(#[from] gregor_storage::StorageError),
    #[error("metadata log: {0}")]
    Records(#[from] gregor_records::RecordsError),
    #[error(transparent)]
    Decode(#[from] gregor_metadata::records::DecodeError),
    #[error("metadata log: {0}")]
    Snapshot(#[from] SnapshotError),
}

/// Settings of the metadata store.
#[derive(Debug, Clone)]
pub struct MetadataStoreConfig {
    /// `metadata.log.max.record.bytes.between.snapshots`: bytes appended to
    /// the log after which a new snapshot is written.
    pub snapshot_bytes: u64,
    /// How large one batch of the metadata log may be
    /// (`controller.max.records.per.batch` and the log's message size).
    pub batch_limits: BatchLimits,
}

impl Default for MetadataStoreConfig {
    fn default() -> Self {
        Self {
            snapshot_bytes: DEFAULT_SNAPSHOT_BYTES,
            batch_limits: BatchLimits::default(),
        }
    }
}

/// What [`MetadataStore::open`] read to build the image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenStats {
    /// The snapshot loaded, if any.
    pub snapshot: Option<SnapshotId>,
    /// Snapshots skipped because they did not check.
    pub snapshots_skipped: usize,
    /// Log records replayed after the snapshot (or from the start).
    pub replayed_records: u64,
    /// The log ended inside a transaction, which was aborted.
    pub aborted_transaction: bool,
}

/// State only a writer touches (under [`MetadataStore::write`]).
#[derive(Debug, Default)]
struct WriteState {
    /// Log bytes appended (or replayed at start) since the last snapshot.
    bytes_since_snapshot: u64,
    /// A transaction's first batches are in the log but not its end (an
    /// append failed between them): the next write aborts it first.
    open_transaction: bool,
}

pub struct MetadataStore {
    log: Log,
    /// The metadata log's partition directory, where snapshots live too.
    dir: PathBuf,
    image: RwLock<Arc<MetadataImage>>,
    /// Serialises read-decide-append so two changes never decide on the same
    /// image. Taken only off the async workers (start-up, the blocking pool).
    write: Mutex<WriteState>,
    /// The snapshot being written in the background, if any.
    snapshotter: Mutex<Option<std::thread::JoinHandle<()>>>,
    config: MetadataStoreConfig,
    opened: OpenStats,
    clock: Arc<dyn Clock>,
}

impl std::fmt::Debug for MetadataStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetadataStore")
            .field("log_end", &self.log.log_end_offset())
            .finish()
    }
}

impl MetadataStore {
    /// Opens the metadata log under `dir`: loads the newest valid snapshot
    /// and replays the log after it.
    pub fn open(
        dir: &Path,
        clock: Arc<dyn Clock>,
        config: MetadataStoreConfig,
    ) -> Result<Self, MetadataStoreError> {
        let tp = TopicPartition::new(METADATA_TOPIC, 0);
        let log_config = LogConfig {
            segment_bytes: 64 * 1024 * 1024,
            retention_ms: -1,
            ..LogConfig::default()
        };
        let part_dir = dir.join(tp.dir_name());
        let log = Log::open(part_dir.clone(), tp, log_config, clock.clone(), 0, 0)?;
        let end = log.log_end_offset();
        let mut opened = OpenStats::default();
        let mut image = Replayer::default();
        let mut offset = log.log_start_offset();
        for id in snapshot::list(&part_dir)? {
            // A snapshot past the log's end holds changes the log lost (a
            // damaged disk: every append is fsynced). The log goes on from
            // its end with other records at those offsets, so the snapshot
            // describes a history that is no longer this log's: delete it,
            // or it would load once the log grows past its offset.
            if id.next_offset > end {
                tracing::error!(snapshot = %id.file_name(), log_end = end, "deleting metadata snapshot past the end of the log");
                std::fs::remove_file(part_dir.join(id.file_name())).map_err(|source| {
                    SnapshotError::Io {
                        path: part_dir.join(id.file_name()),
                        op: "delete",
                        source,
                    }
                })?;
                opened.snapshots_skipped += 1;
                continue;
            }
            // Before the log's start: the records between are gone.
            if id.next_offset < offset {
                opened.snapshots_skipped += 1;
                continue;
            }
            match snapshot::read(&part_dir, id) {
                Ok(loaded) => {
                    image = Replayer::new(loaded);
                    offset = id.next_offset;
                    opened.snapshot = Some(id);
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "skipping metadata snapshot that does not check");
                    opened.snapshots_skipped += 1;
                }
            }
        }
        let mut replayed_bytes = 0u64;
        while offset < end {
            let read = log.read(offset, 1 << 20, true, end)?;
            if read.records.is_empty() {
                break;
            }
            for item in gregor_records::BatchIter::new(&read.records) {
                let (header, _, batch) = item?;
                let (_, records) = gregor_records::record::decode_records(batch, 64 << 20)?;
                for r in records {
                    // The first batch read may start before a snapshot's offset.
                    if r.offset < offset {
                        continue;
                    }
                    let value = r.value.unwrap_or_default();
                    image.apply(&MetadataRecord::decode(&value, r.offset)?);
                    opened.replayed_records += 1;
                }
                replayed_bytes += batch.len() as u64;
                offset = header.next_offset();
            }
        }
        tracing::info!(
            snapshot = ?opened.snapshot.map(|s| s.file_name()),
            replayed = opened.replayed_records,
            "loaded the metadata image"
        );
        let open_transaction = image.in_transaction();
        opened.aborted_transaction = open_transaction;
        let store = Self {
            log,
            dir: part_dir,
            image: RwLock::new(Arc::new(image.into_image())),
            write: Mutex::new(WriteState {
                bytes_since_snapshot: replayed_bytes,
                open_transaction,
            }),
            snapshotter: Mutex::new(None),
            config,
            opened,
            clock,
        };
        if open_transaction {
            // Before anything else is appended, so later records are not
            // taken for the rest of the transaction.
            tracing::warn!("the metadata log ends inside a transaction: aborting it");
            store.abort_open_transaction(&mut store.write.lock())?;
        }
        store.maybe_snapshot(&mut store.write.lock());
        Ok(store)
    }

    /// The current image (cheap: an `Arc`).
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().clone()
    }

    /// What the last [`open`](Self::open) read.
    pub fn open_stats(&self) -> OpenStats {
        self.opened
    }

    /// The metadata log's partition directory (the log and its snapshots).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The metadata log's end offset. Every change is fsynced before it is
    /// applied, so on this one-node quorum it is also the high watermark.
    pub fn log_end_offset(&self) -> i64 {
        self.log.log_end_offset()
    }

    /// The epoch the metadata log is written in (the quorum's leader epoch;
    /// 0 until the Raft quorum is wired).
    pub fn epoch(&self) -> i32 {
        EPOCH
    }

    /// Runs `decide` on the current image and, if it returns records, appends
    /// them as one batch, fsyncs, and applies them. Returns `decide`'s value.
    /// Blocks on the disk.
    pub fn update<R, E>(
        &self,
        decide: impl FnOnce(&MetadataImage) -> Result<(Vec<MetadataRecord>, R), E>,
    ) -> Result<Result<R, E>, MetadataStoreError> {
        let mut state = self.write.lock();
        let current = self.image();
        let (records, value) = match decide(&current) {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        if !records.is_empty() {
            self.commit(&mut state, &current, &records)?;
        }
        Ok(Ok(value))
    }

    /// Appends `records` (decided on `base`) as one batch, fsyncs and applies
    /// them, unless the image moved on from `base` since: then nothing is
    /// written and `false` returned, for the caller to decide again on the
    /// new image. Blocks on the disk.
    pub fn try_commit(
        &self,
        base: &Arc<MetadataImage>,
        records: &[MetadataRecord],
    ) -> Result<bool, MetadataStoreError> {
        let mut state = self.write.lock();
        if !Arc::ptr_eq(&self.image(), base) {
            return Ok(false);
        }
        if !records.is_empty() {
            self.commit(&mut state, base, records)?;
        }
        Ok(true)
    }

    /// Appends `records` as one batch; returns its size.
    fn append_batch(&self, records: &[MetadataRecord]) -> Result<u64, MetadataStoreError> {
        let now = self.clock.now_ms();
        let mut builder = BatchBuilder::new(0, Compression::None);
        for r in records {
            builder.push(Record {
                timestamp: now,
                value: Some(Bytes::from(r.encode())),
                ..Record::default()
            });
        }
        let batch = builder.build()?;
        let size = batch.len() as u64;
        self.log.append_as_leader(batch, EPOCH)?;
        Ok(size)
    }

    /// Ends a transaction whose end never made it to the log.
    fn abort_open_transaction(&self, state: &mut WriteState) -> Result<(), MetadataStoreError> {
        let abort = MetadataRecord::AbortTransaction {
            reason: "the transaction's writer stopped before its end".into(),
        };
        state.bytes_since_snapshot += self.append_batch(std::slice::from_ref(&abort))?;
        self.log.flush()?;
        state.open_transaction = false;
        Ok(())
    }

    /// Appends `records` as one batch, or as a transaction over several
    /// when one would be too large; fsyncs once, then applies them.
    fn commit(
        &self,
        state: &mut WriteState,
        current: &MetadataImage,
        records: &[MetadataRecord],
    ) -> Result<(), MetadataStoreError> {
        if state.open_transaction {
            self.abort_open_transaction(state)?;
        }
        let batches = transaction::split(
            records.to_vec(),
            self.config.batch_limits,
            "metadata change",
        );
        let transactional = batches.len() > 1;
        for batch in &batches {
            state.open_transaction = transactional;
            state.bytes_since_snapshot += self.append_batch(batch)?;
        }
        self.log.flush()?;
        state.open_transaction = false;
        *self.image.write() = Arc::new(current.with_records(records));
        self.maybe_snapshot(state);
        Ok(())
    }

    /// Starts a background snapshot when enough was appended since the last
    /// one and none is being written.
    fn maybe_snapshot(&self, state: &mut WriteState) {
        if state.bytes_since_snapshot < self.config.snapshot_bytes {
            return;
        }
        let mut running = self.snapshotter.lock();
        if running.as_ref().is_some_and(|h| !h.is_finished()) {
            // Counted on: the next commit tries again.
            return;
        }
        if let Some(done) = running.take() {
            let _ = done.join();
        }
        let id = SnapshotId {
            next_offset: self.log.log_end_offset(),
            epoch: EPOCH,
        };
        state.bytes_since_snapshot = 0;
        let image = self.image();
        let dir = self.dir.clone();
        let now = self.clock.now_ms();
        let spawned = std::thread::Builder::new()
            .name("metadata-snapshot".into())
            .spawn(move || {
                if let Err(e) = write_snapshot(&dir, &image, id, now) {
                    tracing::warn!(error = %e, "writing a metadata snapshot failed");
                }
            });
        match spawned {
            Ok(handle) => *running = Some(handle),
            Err(e) => tracing::warn!(error = %e, "cannot start the metadata snapshot thread"),
        }
    }

    /// Waits for a background snapshot, writes a last one if the log moved
    /// past the newest, and closes the log.
    pub fn close(&self) -> Result<(), MetadataStoreError> {
        let mut state = self.write.lock();
        if state.open_transaction {
            self.abort_open_transaction(&mut state)?;
        }
        if let Some(running) = self.snapshotter.lock().take() {
            let _ = running.join();
        }
        let end = self.log.log_end_offset();
        // The newest snapshot on disk, not the one last started: that one may have failed.
        let newest = snapshot::list(&self.dir)?
            .first()
            .map_or(0, |s| s.next_offset);
        if end > newest {
            let id = SnapshotId {
                next_offset: end,
                epoch: EPOCH,
            };
            write_snapshot(&self.dir, &self.image(), id, self.clock.now_ms())?;
            state.bytes_since_snapshot = 0;
        }
        self.log.close()?;
        Ok(())
    }
}

fn write_snapshot(
    dir: &Path,
    image: &MetadataImage,
    id: SnapshotId,
    now_ms: i64,
) -> Result<(), SnapshotError> {
    let path = snapshot::write(dir, image, id, now_ms)?;
    let pruned = snapshot::prune(dir)?;
    tracing::info!(snapshot = %path.display(), pruned, "wrote a metadata snapshot");
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::fs;
    use std::time::Instant;

    use gregor_metadata::ConfigResource;
    use gregor_storage::ManualClock;
    use uuid::Uuid;

    use super::*;

    fn open(dir: &Path, snapshot_bytes: u64) -> MetadataStore {
        let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(1_000));
        MetadataStore::open(
            dir,
            clock,
            MetadataStoreConfig {
                snapshot_bytes,
                ..MetadataStoreConfig::default()
            },
        )
        .unwrap()
    }

    fn big_topic(name: &str, partitions: i32, id: u128) -> Vec<MetadataRecord> {
        gregor_metadata::controller::create_topic(
            &MetadataImage::default(),
            &gregor_metadata::controller::CreateTopic::new(name, partitions),
            &[1],
            Uuid::from_u128(id),
        )
        .unwrap()
    }

    /// Batches in the log: (records in each).
    fn batch_sizes(store: &MetadataStore) -> Vec<usize> {
        let read = store
            .log
            .read(0, 64 << 20, true, store.log_end_offset())
            .unwrap();
        gregor_records::BatchIter::new(&read.records)
            .map(|b| {
                let (h, _, _) = b.unwrap();
                (h.next_offset() - h.base_offset) as usize
            })
            .collect()
    }

    #[test]
    fn a_ten_thousand_partition_topic_is_written_as_a_transaction_and_replayed_whole() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), u64::MAX);
        let records = big_topic("big", 10_000, 1);
        append(&store, records.clone());
        let image = store.image();
        assert_eq!(image.topic("big").unwrap().partitions.len(), 10_000);
        // Over 1 MB of records: several batches, each under the log's limit,
        // framed by begin and end.
        let sizes = batch_sizes(&store);
        assert!(sizes.len() >= 2, "{sizes:?}");
        assert_eq!(sizes.iter().sum::<usize>(), records.len() + 2);
        drop(store);
        // Replayed from the log (no close, so no snapshot).
        let store = open(dir.path(), u64::MAX);
        assert_eq!(
            store.open_stats().replayed_records,
            records.len() as u64 + 2
        );
        assert!(!store.open_stats().aborted_transaction);
        assert_eq!(*store.image(), *image);
        store.close().unwrap();
        let store = open(dir.path(), u64::MAX);
        assert_eq!(store.open_stats().replayed_records, 0);
        assert_eq!(*store.image(), *image);
    }

    #[test]
    fn a_log_ending_inside_a_transaction_is_aborted_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), u64::MAX);
        append(&store, change(0));
        let image = store.image();
        // A crash after the first two of four batches.
        let batches = gregor_metadata::transaction::split(
            big_topic("lost", 3_000, 9),
            BatchLimits {
                max_records: 1_000,
                ..BatchLimits::default()
            },
            "lost",
        );
        assert_eq!(batches.len(), 4);
        for b in &batches[..2] {
            store.append_batch(b).unwrap();
        }
        store.log.flush().unwrap();
        drop(store);
        let store = open(dir.path(), u64::MAX);
        assert!(store.open_stats().aborted_transaction);
        assert_eq!(*store.image(), *image);
        // Later changes apply, on this open and after a restart.
        append(&store, change(1));
        let image = store.image();
        assert!(image.topic("t1").is_some() && image.topic("lost").is_none());
        drop(store);
        let store = open(dir.path(), u64::MAX);
        assert!(!store.open_stats().aborted_transaction);
        assert_eq!(*store.image(), *image);
    }

    /// Appends `records` as one change.
    fn append(store: &MetadataStore, records: Vec<MetadataRecord>) {
        store
            .update(|_| Ok::<_, std::convert::Infallible>((records, ())))
            .unwrap()
            .unwrap();
    }

    /// Topic `t<i>` with two partitions, then a leader change, then a config.
    fn change(i: u32) -> Vec<MetadataRecord> {
        let topic_id = Uuid::from_u128(u128::from(i) + 1);
        let partition = |p: i32, epoch: i32| MetadataRecord::Partition {
            topic_id,
            partition: p,
            replicas: vec![1, 2],
            isr: vec![1, 2],
            leader: 1 + epoch % 2,
            leader_epoch: epoch,
            partition_epoch: epoch,
            adding_replicas: vec![],
            removing_replicas: vec![],
        };
        vec![
            MetadataRecord::Topic {
                name: format!("t{i}"),
                topic_id,
            },
            partition(0, 0),
            partition(1, 0),
            partition(0, 1),
            MetadataRecord::Config {
                resource: ConfigResource::Topic(format!("t{i}")),
                name: "retention.ms".into(),
                value: Some(i.to_string()),
            },
        ]
    }

    fn snapshots(store: &MetadataStore) -> Vec<i64> {
        snapshot::list(store.dir())
            .unwrap()
            .iter()
            .map(|s| s.next_offset)
            .collect()
    }

    #[test]
    fn restart_reads_the_snapshot_and_the_tail() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), u64::MAX);
        for i in 0..10 {
            append(&store, change(i));
        }
        let at_close = store.image();
        store.close().unwrap();
        // A clean close wrote a snapshot at the log's end (5 records a change).
        let store = open(dir.path(), u64::MAX);
        assert_eq!(snapshots(&store), vec![50]);
        assert_eq!(
            store.open_stats().snapshot.map(|s| s.file_name()),
            Some("00000000000000000050-0000000000.checkpoint".to_string())
        );
        assert_eq!(store.open_stats().replayed_records, 0);
        assert_eq!(*store.image(), *at_close);
        // Changes after it, then a crash (no close): the tail is replayed.
        for i in 10..13 {
            append(&store, change(i));
        }
        let at_crash = store.image();
        drop(store);
        let store = open(dir.path(), u64::MAX);
        assert_eq!(store.open_stats().snapshot.map(|s| s.next_offset), Some(50));
        assert_eq!(store.open_stats().replayed_records, 15);
        assert_eq!(*store.image(), *at_crash);
        // The same image as replaying the whole log.
        fs::remove_file(
            store
                .dir()
                .join("00000000000000000050-0000000000.checkpoint"),
        )
        .unwrap();
        drop(store);
        let store = open(dir.path(), u64::MAX);
        assert_eq!(store.open_stats().snapshot, None);
        assert_eq!(store.open_stats().replayed_records, 65);
        assert_eq!(*store.image(), *at_crash);
    }

    #[test]
    fn snapshots_every_n_bytes_keeping_two() {
        let dir = tempfile::tempdir().unwrap();
        // Every change's batch passes the threshold.
        let store = open(dir.path(), 1);
        for i in 0..6 {
            append(&store, change(i));
            // Let each snapshot finish so the next change starts another.
            if let Some(h) = store.snapshotter.lock().take() {
                h.join().unwrap();
            }
        }
        assert_eq!(snapshots(&store), vec![30, 25]);
        let names: Vec<String> = fs::read_dir(store.dir())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.contains("checkpoint") && n != "leader-epoch-checkpoint")
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        assert_eq!(
            names,
            vec![
                "00000000000000000025-0000000000.checkpoint",
                "00000000000000000030-0000000000.checkpoint",
            ]
        );
        let image = store.image();
        store.close().unwrap();
        // Nothing new since the last snapshot: close writes none.
        assert_eq!(
            snapshot::list(dir.path().join("__cluster_metadata-0").as_path())
                .unwrap()
                .len(),
            2
        );
        let store = open(dir.path(), 1);
        assert_eq!(store.open_stats().replayed_records, 0);
        assert_eq!(*store.image(), *image);
    }

    #[test]
    fn a_corrupt_snapshot_falls_back_to_an_older_one_then_the_log() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), u64::MAX);
        for i in 0..4 {
            append(&store, change(i));
        }
        store.close().unwrap(); // snapshot at 20
        let store = open(dir.path(), u64::MAX);
        for i in 4..6 {
            append(&store, change(i));
        }
        let image = store.image();
        store.close().unwrap(); // snapshot at 30
        let part = dir.path().join("__cluster_metadata-0");
        assert_eq!(snapshot::list(&part).unwrap().len(), 2);
        let corrupt = |offset: i64| {
            let path = part.join(
                SnapshotId {
                    next_offset: offset,
                    epoch: EPOCH,
                }
                .file_name(),
            );
            let mut bytes = fs::read(&path).unwrap();
            let last = bytes.len() - 3;
            bytes[last] ^= 0xff;
            fs::write(&path, bytes).unwrap();
        };
        corrupt(30);
        let store = open(dir.path(), u64::MAX);
        let stats = store.open_stats();
        assert_eq!(stats.snapshot.map(|s| s.next_offset), Some(20));
        assert_eq!((stats.snapshots_skipped, stats.replayed_records), (1, 10));
        assert_eq!(*store.image(), *image);
        drop(store);
        corrupt(20);
        let store = open(dir.path(), u64::MAX);
        let stats = store.open_stats();
        assert_eq!(stats.snapshot, None);
        assert_eq!((stats.snapshots_skipped, stats.replayed_records), (2, 30));
        assert_eq!(*store.image(), *image);
    }

    #[test]
    fn a_snapshot_past_the_log_end_is_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), u64::MAX);
        append(&store, change(0));
        let image = store.image();
        // As if the log had lost its tail after a snapshot of it was taken.
        let ahead = SnapshotId {
            next_offset: 99,
            epoch: EPOCH,
        };
        snapshot::write(store.dir(), &MetadataImage::default(), ahead, 0).unwrap();
        drop(store);
        let store = open(dir.path(), u64::MAX);
        assert_eq!(store.open_stats().snapshot, None);
        assert_eq!(store.open_stats().replayed_records, 5);
        assert_eq!(*store.image(), *image);
        // Deleted, so it cannot load once the log grows past offset 99.
        assert_eq!(snapshots(&store), Vec::<i64>::new());
    }

    /// Start-up time with a metadata log of 50,000 records, replayed whole
    /// and from a snapshot. Prints; asserts nothing about time. Run with
    /// `cargo test -p gregor-broker --release --lib startup_time -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn startup_time_with_50k_records() {
        let dir = tempfile::tempdir().unwrap();
        let store = open(dir.path(), u64::MAX);
        let topics = 1_000u32;
        // 1,000 topics of 8 partitions, then leader/ISR changes to 50,000 records.
        let mut written = 0usize;
        for t in 0..topics {
            let topic_id = Uuid::from_u128(u128::from(t) + 1);
            let mut records = vec![MetadataRecord::Topic {
                name: format!("topic-{t}"),
                topic_id,
            }];
            for p in 0..8 {
                records.push(MetadataRecord::Partition {
                    topic_id,
                    partition: p,
                    replicas: vec![1, 2, 3],
                    isr: vec![1, 2, 3],
                    leader: 1,
                    leader_epoch: 0,
                    partition_epoch: 0,
                    adding_replicas: vec![],
                    removing_replicas: vec![],
                });
            }
            written += records.len();
            append(&store, records);
        }
        let mut epoch = 0;
        while written < 50_000 {
            epoch += 1;
            let records: Vec<MetadataRecord> = (0..100u32)
                .map(|k| {
                    let t = (k * 7 + epoch as u32) % topics;
                    MetadataRecord::Partition {
                        topic_id: Uuid::from_u128(u128::from(t) + 1),
                        partition: (k % 8) as i32,
                        replicas: vec![1, 2, 3],
                        isr: vec![1 + (epoch % 3), 2],
                        leader: 1 + (epoch % 3),
                        leader_epoch: epoch,
                        partition_epoch: epoch,
                        adding_replicas: vec![],
                        removing_replicas: vec![],
                    }
                })
                .collect();
            written += records.len();
            append(&store, records);
        }
        let image = store.image();
        drop(store);
        let started = Instant::now();
        let full = open(dir.path(), u64::MAX);
        let full_time = started.elapsed();
        assert_eq!(full.open_stats().replayed_records, written as u64);
        assert_eq!(*full.image(), *image);
        full.close().unwrap();
        let started = Instant::now();
        let snap = open(dir.path(), u64::MAX);
        let snap_time = started.elapsed();
        assert_eq!(snap.open_stats().replayed_records, 0);
        assert_eq!(*snap.image(), *image);
        let size = fs::metadata(
            snap.dir()
                .join(snap.open_stats().snapshot.unwrap().file_name()),
        )
        .unwrap()
        .len();
        println!(
            "metadata start-up, {written} records ({} topics, {} partitions): \
             full replay {full_time:?}, snapshot ({size} bytes, {} records) {snap_time:?}",
            topics,
            topics * 8,
            image.to_records().len(),
        );
    }
}
