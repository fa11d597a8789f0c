//! Moving a replica to another log dir of this broker (AlterReplicaLogDirs,
//! key 34): Kafka's "future replica" and its `ReplicaAlterLogDirsThread`.
//!
//! ```text
//!   AlterReplicaLogDirs ──► Broker::alter_replica_log_dir ──► a copy task:
//!     1. an empty log `<dest>/<topic>-<partition>.<uuid>-future`
//!     2. batches copied from the replica's log as a follower copies them
//!        (byte for byte: indexes, leader epochs and producer state rebuilt)
//!        while produce and replication go on
//!     3. close to the end, with appends held off (the partition's state
//!        lock): the last batches, the log start, then the copy is renamed
//!        to `<dest>/<topic>-<partition>` and becomes the partition's log,
//!        and the old directory is deleted
//! ```
//!
//! The answer does not wait for the copy (as in Kafka); DescribeLogDirs
//! lists the copy as a future replica meanwhile. The copy checks its tail
//! against the source's leader epochs each round (KIP-595's rule): when the
//! source was truncated under it (a follower meeting a new leader), it starts
//! over. A stop interrupts the copy: the future dir is deleted at the next
//! start and the replica stays where it was (Kafka resumes the copy instead);
//! ask again to move it.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use gregor_records::BatchIter;
use gregor_storage::{Log, StorageError, TopicPartition};
use kafka_protocol::error::ResponseError;
use parking_lot::Mutex;

use crate::broker::Broker;
use crate::partition::Partition;

/// Bytes read from the source per copy step.
const COPY_CHUNK: usize = 1 << 20;
/// The copy switches over (appends held off) once it is this close to the
/// source's end, in offsets.
const SWITCH_LAG: i64 = 1_000;
/// How many times a copy that fell behind a truncation starts over before
/// it gives up (logged; asking again starts a new one).
const MAX_RESTARTS: usize = 5;

/// The moves in progress on a broker.
#[derive(Debug, Default)]
pub struct LogDirMoves {
    moves: Mutex<HashMap<TopicPartition, Move>>,
}

#[derive(Debug)]
struct Move {
    dest: usize,
    cancel: Arc<AtomicBool>,
    /// The copy, once created (for DescribeLogDirs).
    future: Arc<Mutex<Option<Arc<Log>>>>,
}

/// A copy in progress, as DescribeLogDirs shows it.
#[derive(Debug, Clone)]
pub struct FutureReplica {
    pub tp: TopicPartition,
    pub dir: PathBuf,
    pub size_bytes: u64,
    pub log_end_offset: i64,
}

impl LogDirMoves {
    /// The copies in progress.
    pub fn futures(&self) -> Vec<FutureReplica> {
        self.moves
            .lock()
            .iter()
            .filter_map(|(tp, m)| {
                let f = m.future.lock().clone()?;
                Some(FutureReplica {
                    tp: tp.clone(),
                    dir: f.dir().parent()?.to_path_buf(),
                    size_bytes: f.size_bytes(),
                    log_end_offset: f.log_end_offset(),
                })
            })
            .collect()
    }

    /// Stops every copy (at shutdown).
    pub fn cancel_all(&self) {
        for (_, m) in self.moves.lock().drain() {
            m.cancel.store(true, Ordering::Release);
        }
    }
}

impl Broker {
    /// Kafka's `ReplicaManager.alterReplicaLogDirs` for one partition: moves
    /// this broker's replica of `tp` to log dir `dir` (as DescribeLogDirs
    /// names it). Errors: LOG_DIR_NOT_FOUND (not one of `log.dirs`),
    /// KAFKA_STORAGE_ERROR (that dir or the replica's is offline),
    /// REPLICA_NOT_AVAILABLE (no replica here yet: it is created in `dir`
    /// when it is), INVALID_TOPIC_EXCEPTION (a name too long for the future
    /// dir). Already there: nothing to do. Moving already: to the new `dir`
    /// from now on.
    pub fn alter_replica_log_dir(
        &self,
        tp: &TopicPartition,
        dir: &str,
    ) -> Result<(), ResponseError> {
        if format!("{}.{}-future", tp.dir_name(), uuid::Uuid::nil().simple()).len() > 255 {
            return Err(ResponseError::InvalidTopicException);
        }
        let Some(dest) = self.logs.dir_index(Path::new(dir)) else {
            return Err(ResponseError::LogDirNotFound);
        };
        if self.logs.is_index_offline(dest) {
            return Err(ResponseError::KafkaStorageError);
        }
        let Some(partition) = self.partition(&tp.topic, tp.partition) else {
            self.logs.set_preferred_dir(tp, dest);
            return Err(ResponseError::ReplicaNotAvailable);
        };
        if self.logs.is_offline(tp) {
            return Err(ResponseError::KafkaStorageError);
        }
        let current = self.logs.dir_of(tp).and_then(|d| self.logs.dir_index(d));
        let mut moves = self.log_moves.moves.lock();
        if current == Some(dest) {
            // Already there: a move elsewhere is called off.
            if let Some(m) = moves.remove(tp) {
                m.cancel.store(true, Ordering::Release);
            }
            return Ok(());
        }
        if moves.get(tp).is_some_and(|m| m.dest == dest) {
            return Ok(());
        }
        if let Some(m) = moves.remove(tp) {
            m.cancel.store(true, Ordering::Release);
        }
        let cancel = Arc::new(AtomicBool::new(false));
        let future = Arc::new(Mutex::new(None));
        moves.insert(
            tp.clone(),
            Move {
                dest,
                cancel: cancel.clone(),
                future: future.clone(),
            },
        );
        drop(moves);
        tracing::info!(partition = %tp, to = %self.logs.dir_at(dest).display(), "moving replica to another log dir");
        let broker = self.arc().map_err(|_| ResponseError::UnknownServerError)?;
        let tp = tp.clone();
        std::thread::Builder::new()
            .name("log-dir-move".into())
            .spawn(move || {
                let outcome = run_move(&broker, &partition, dest, &cancel, &future);
                let mut moves = broker.log_moves.moves.lock();
                if moves.get(&tp).is_some_and(|m| Arc::ptr_eq(&m.cancel, &cancel)) {
                    moves.remove(&tp);
                }
                drop(moves);
                match outcome {
                    Ok(true) => tracing::info!(partition = %tp, dir = %broker.logs.dir_at(dest).display(), "replica moved to another log dir"),
                    Ok(false) => tracing::info!(partition = %tp, "replica move called off"),
                    Err(e) => tracing::error!(partition = %tp, error = %e, "replica move failed; the replica stays where it was"),
                }
            })
            .map_err(|e| {
                tracing::error!(error = %e, "cannot start a log dir move");
                ResponseError::KafkaStorageError
            })?;
        Ok(())
    }
}

/// Why a copy must start over or stop.
enum CopyError {
    /// The source was truncated under the copy: start over.
    Diverged,
    Storage(StorageError),
    Other(String),
}

impl From<StorageError> for CopyError {
    fn from(e: StorageError) -> Self {
        CopyError::Storage(e)
    }
}

/// Copies until done (`Ok(true)`), called off (`Ok(false)`) or failed.
fn run_move(
    broker: &Broker,
    partition: &Arc<Partition>,
    dest: usize,
    cancel: &AtomicBool,
    slot: &Mutex<Option<Arc<Log>>>,
) -> Result<bool, String> {
    for _ in 0..MAX_RESTARTS {
        let source = partition.log();
        let future = match new_future(broker, &source, dest) {
            Ok(f) => f,
            Err(e) => return Err(e.to_string()),
        };
        *slot.lock() = Some(future.clone());
        let outcome = copy_and_switch(broker, partition, &source, &future, cancel);
        *slot.lock() = None;
        match outcome {
            Ok(true) => return Ok(true),
            Ok(false) => {
                discard(broker, &future);
                return Ok(false);
            }
            Err(CopyError::Diverged) => {
                tracing::info!(partition = %partition.tp, "the replica was truncated while being copied; copying again");
                discard(broker, &future);
            }
            Err(CopyError::Storage(e)) => {
                discard(broker, &future);
                return Err(e.to_string());
            }
            Err(CopyError::Other(e)) => {
                discard(broker, &future);
                return Err(e);
            }
        }
    }
    Err(format!(
        "gave up after {MAX_RESTARTS} restarts (the replica kept being truncated)"
    ))
}

fn discard(broker: &Broker, future: &Log) {
    if let Err(e) = broker.logs.discard_future(future) {
        tracing::warn!(dir = %future.dir().display(), error = %e, "cannot delete an abandoned replica copy");
    }
}

/// An empty copy in `dest`, starting at the first batch of `source`.
fn new_future(broker: &Broker, source: &Log, dest: usize) -> Result<Arc<Log>, StorageError> {
    let start = source.log_start_offset();
    // The log start may fall inside a batch: the copy starts at that batch
    // and takes the log start at the switch.
    let first = source.read(start, 1, true, i64::MAX)?;
    let base = BatchIter::new(&first.records)
        .next()
        .and_then(|b| b.ok())
        .map_or(start, |(h, _, _)| h.base_offset);
    let future =
        broker
            .logs
            .create_future(source.topic_partition(), dest, source.config(), base)?;
    if let Some(id) = source.topic_id() {
        future.set_topic_id(id)?;
    }
    Ok(future)
}

/// Copies `source` into `future` while it grows, then switches the partition
/// over with appends held off.
fn copy_and_switch(
    broker: &Broker,
    partition: &Partition,
    source: &Arc<Log>,
    future: &Arc<Log>,
    cancel: &AtomicBool,
) -> Result<bool, CopyError> {
    loop {
        if cancel.load(Ordering::Acquire) {
            return Ok(false);
        }
        if !Arc::ptr_eq(&partition.log(), source) {
            return Err(CopyError::Other(
                "the replica's log was replaced meanwhile".into(),
            ));
        }
        if source.log_end_offset() - future.log_end_offset() <= SWITCH_LAG {
            break;
        }
        copy_step(source, future)?;
    }
    let _reconcile = broker.reconcile_guard();
    let mut moved = false;
    let switched = partition.replace_log(|current| {
        if !Arc::ptr_eq(current, source) {
            return Err(CopyError::Other(
                "the replica's log was replaced meanwhile".into(),
            ));
        }
        if cancel.load(Ordering::Acquire) {
            return Ok(current.clone());
        }
        while future.log_end_offset() < current.log_end_offset() {
            copy_step(current, future)?;
        }
        check_same_tail(current, future)?;
        if future.log_start_offset() < current.log_start_offset() {
            future.delete_records_before(current.log_start_offset())?;
        }
        let moved_log = broker
            .logs
            .complete_move(current.topic_partition(), current, future)?;
        moved = true;
        Ok(moved_log)
    });
    switched?;
    Ok(moved)
}

/// Appends the next batches of `source` (from the copy's end) to `future`.
fn copy_step(source: &Log, future: &Log) -> Result<(), CopyError> {
    check_same_tail(source, future)?;
    let next = future.log_end_offset();
    let read = match source.read(next, COPY_CHUNK, true, i64::MAX) {
        Ok(r) => r,
        Err(StorageError::OffsetOutOfRange { log_start, .. }) if next < log_start => {
            // Retention or DeleteRecords moved the start past the copy: go
            // on from there (the copy's head goes at the switch).
            let skip = source.read(log_start, COPY_CHUNK, true, i64::MAX)?;
            if skip.records.is_empty() {
                return Ok(());
            }
            skip
        }
        Err(e) => return Err(e.into()),
    };
    if read.records.is_empty() {
        return Ok(());
    }
    let records = bytes::BytesMut::from(&read.records[..]);
    future.append_as_follower(records, i32::MAX)?;
    Ok(())
}

/// KIP-595's rule between the copy and its source: the copy's last epoch
/// must end in the source no earlier than the copy does, or the source was
/// truncated (and may have been written again) under it.
fn check_same_tail(source: &Log, future: &Log) -> Result<(), CopyError> {
    let end = future.log_end_offset();
    if end > source.log_end_offset() {
        return Err(CopyError::Diverged);
    }
    let Some(epoch) = future.latest_epoch() else {
        return Ok(());
    };
    match source.end_offset_for_epoch(epoch) {
        Some((e, source_end)) if e == epoch && source_end >= end => Ok(()),
        _ => Err(CopyError::Diverged),
    }
}
