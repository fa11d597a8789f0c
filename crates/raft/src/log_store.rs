//! [`LogStore`]: openraft's log storage over a Kafka-format log.
//!
//! ```text
//! <metadata dir>/
//!   __cluster_metadata-0/      gregor_storage::Log: segments of batches,
//!     00000000000000000000.log   one batch per Raft entry, baseOffset = index,
//!     00000000000000000000.index partitionLeaderEpoch = term (see crate::codec)
//!     leader-epoch-checkpoint    the term history, kept by the Log itself
//!   quorum-state               vote, committed and purged ids (crate::quorum_state)
//! ```
//!
//! | openraft call      | on the Kafka log                                         |
//! | ------------------ | -------------------------------------------------------- |
//! | `append(entries)`  | `append_as_follower` of each entry's batch at its index (≥ the log end), then `flush` (fsync) before the callback |
//! | `truncate(id)`     | `truncate_to(id.index)`: removes `id` and everything after |
//! | `purge(id)`        | `quorum-state.purged = id`, then `delete_records_before(id.index + 1)`; past the log end (a snapshot was installed) the log is reopened empty at `id.index + 1` |
//! | `save_vote`, `save_committed` | rewrite `quorum-state`                        |
//!
//! Every file operation runs on the blocking pool (`spawn_blocking`); the
//! only locks are `parking_lot` ones held for in-memory updates or inside
//! the blocking closure, never across an `.await`.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gregor_storage::{Clock, Log, LogConfig, TopicPartition};
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, OptionalSend, RaftLogReader, StorageIOError, Vote};
use parking_lot::{Mutex, RwLock};

use crate::quorum_state::{self, QuorumState};
use crate::{codec, Entry, LogId, NodeId, RaftStoreError, StorageError, TypeConfig};

/// Name of the metadata log's topic (its directory is `__cluster_metadata-0`).
pub const METADATA_TOPIC: &str = "__cluster_metadata";

/// How many bytes one read of the log asks for.
const READ_CHUNK: usize = 1 << 20;

/// The Raft log of one node. Cloning shares it (a clone is the log reader
/// openraft's replication tasks use).
#[derive(Clone)]
pub struct LogStore {
    inner: Arc<Inner>,
}

struct Inner {
    dir: PathBuf,
    clock: Arc<dyn Clock>,
    /// Replaced (closed and reopened) only when a purge passes the log end.
    log: RwLock<Arc<Log>>,
    state: Mutex<QuorumState>,
}

impl Debug for LogStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let log = self.log();
        f.debug_struct("LogStore")
            .field("dir", &self.inner.dir)
            .field("log_start", &log.log_start_offset())
            .field("log_end", &log.log_end_offset())
            .finish()
    }
}

fn log_config() -> LogConfig {
    LogConfig {
        segment_bytes: 64 * 1024 * 1024,
        // The log is trimmed by Raft (purge after a snapshot), never by time.
        retention_ms: -1,
        ..LogConfig::default()
    }
}

fn open_log(dir: &Path, clock: &Arc<dyn Clock>, log_start: i64) -> Result<Log, RaftStoreError> {
    let tp = TopicPartition::new(METADATA_TOPIC, 0);
    // Recovery point 0: after an unclean stop every segment is checked (the
    // metadata log is small and bounded by snapshots).
    Ok(Log::open(
        dir.join(tp.dir_name()),
        tp,
        log_config(),
        clock.clone(),
        0,
        log_start,
    )?)
}

fn to_i64(index: u64) -> i64 {
    i64::try_from(index).unwrap_or(i64::MAX)
}

fn to_u64(offset: i64) -> u64 {
    u64::try_from(offset).unwrap_or(0)
}

/// Runs blocking file work off the async workers.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, RaftStoreError> + Send + 'static,
) -> Result<T, RaftStoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| RaftStoreError::Join(e.to_string()))?
}

fn read_err(e: RaftStoreError) -> StorageError {
    StorageError::IO {
        source: StorageIOError::read_logs(AnyError::new(&e)),
    }
}

fn write_err(e: RaftStoreError) -> StorageError {
    StorageError::IO {
        source: StorageIOError::write_logs(AnyError::new(&e)),
    }
}

fn vote_err(e: RaftStoreError) -> StorageError {
    StorageError::IO {
        source: StorageIOError::write_vote(AnyError::new(&e)),
    }
}

impl LogStore {
    /// Opens (creating if absent) the metadata log and `quorum-state` in
    /// `dir`. Blocking: call from the blocking pool or before the runtime.
    pub fn open(dir: &Path, clock: Arc<dyn Clock>) -> Result<Self, RaftStoreError> {
        std::fs::create_dir_all(dir).map_err(|source| RaftStoreError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let state = quorum_state::read(dir)?;
        let log_start = state.purged.map_or(0, |p| to_i64(p.index + 1));
        let log = open_log(dir, &clock, log_start)?;
        Ok(Self {
            inner: Arc::new(Inner {
                dir: dir.to_path_buf(),
                clock,
                log: RwLock::new(Arc::new(log)),
                state: Mutex::new(state),
            }),
        })
    }

    fn log(&self) -> Arc<Log> {
        self.inner.log.read().clone()
    }

    /// Offset of the first entry in the log (`purged.index + 1`, or 0).
    pub fn log_start_offset(&self) -> i64 {
        self.log().log_start_offset()
    }

    /// Offset the next entry will get (the last index + 1).
    pub fn log_end_offset(&self) -> i64 {
        self.log().log_end_offset()
    }

    /// The persisted `quorum-state`.
    pub fn quorum_state(&self) -> QuorumState {
        self.inner.state.lock().clone()
    }

    /// Flushes and closes the log (a clean shutdown: the next open skips
    /// recovery). Later calls fail.
    pub async fn close(&self) -> Result<(), RaftStoreError> {
        let log = self.log();
        blocking(move || Ok(log.close()?)).await
    }

    /// Entries with index in `[from, to)` that are in the log.
    fn read_range(&self, from: u64, to: u64) -> Result<Vec<Entry>, RaftStoreError> {
        let log = self.log();
        let start = to_u64(log.log_start_offset());
        let end = to_u64(log.log_end_offset());
        let (from, to) = (from.max(start), to.min(end));
        let mut out = Vec::new();
        let mut next = from;
        while next < to {
            let read = log.read(to_i64(next), READ_CHUNK, true, to_i64(to))?;
            if read.records.is_empty() {
                break;
            }
            let before = out.len();
            codec::decode_entries(&read.records, next, to, &mut out)?;
            match out.last() {
                Some(e) if out.len() > before => next = e.log_id.index + 1,
                _ => break,
            }
        }
        Ok(out)
    }

    fn append_blocking(&self, entries: Vec<Entry>) -> Result<(), RaftStoreError> {
        let log = self.log();
        let now = self.inner.clock.now_ms();
        for e in &entries {
            // A running node appends exactly at the log end (openraft
            // truncates a conflicting tail first). openraft's storage suite
            // also writes sparse logs and rewrites indexes, as a map would
            // take them: a gap is fine in a Kafka log (compaction makes
            // them), and an entry below the end replaces that tail.
            let log_end = to_u64(log.log_end_offset());
            if e.log_id.index < log_end {
                tracing::warn!(
                    index = e.log_id.index,
                    log_end,
                    "raft entry overwrites the log tail"
                );
                log.truncate_to(to_i64(e.log_id.index))?;
            }
            let batch = codec::encode_entry(e, now)?;
            if log.append_as_follower(batch, i32::MAX)?.is_none() {
                return Err(RaftStoreError::BadBatch {
                    offset: to_i64(e.log_id.index),
                    reason: "the log appended nothing".into(),
                });
            }
        }
        log.flush()?;
        Ok(())
    }

    fn purge_blocking(&self, id: LogId) -> Result<(), RaftStoreError> {
        {
            let mut st = self.inner.state.lock();
            if st.purged.is_some_and(|p| p.index >= id.index) {
                return Ok(());
            }
            let mut next = st.clone();
            next.purged = Some(id);
            // Durable first: after a crash the log start is taken from here.
            quorum_state::write(&self.inner.dir, &next)?;
            *st = next;
        }
        let new_start = to_i64(id.index + 1);
        let log = self.log();
        if new_start <= log.log_end_offset() {
            log.delete_records_before(new_start)?;
            return Ok(());
        }
        // The snapshot covers more than the log holds: start over, empty, at
        // the entry after it (Log::open truncates fully when the start
        // offset is past everything it finds).
        // (Readers racing with the swap get "offline" from the closed log;
        // the entries they wanted are purged anyway.)
        log.close()?;
        let fresh = Arc::new(open_log(&self.inner.dir, &self.inner.clock, new_start)?);
        *self.inner.log.write() = fresh;
        Ok(())
    }

    fn update_state(
        &self,
        f: impl FnOnce(&mut QuorumState),
    ) -> impl FnOnce() -> Result<(), RaftStoreError> + Send + 'static {
        let mut next = self.inner.state.lock().clone();
        f(&mut next);
        let this = self.clone();
        move || {
            let mut st = this.inner.state.lock();
            // Keep fields another writer changed meanwhile (purged).
            next.purged = st.purged;
            quorum_state::write(&this.inner.dir, &next)?;
            *st = next;
            Ok(())
        }
    }
}

fn bounds(range: &impl RangeBounds<u64>) -> (u64, u64) {
    let from = match range.start_bound() {
        Bound::Included(&i) => i,
        Bound::Excluded(&i) => i.saturating_add(1),
        Bound::Unbounded => 0,
    };
    let to = match range.end_bound() {
        Bound::Included(&i) => i.saturating_add(1),
        Bound::Excluded(&i) => i,
        Bound::Unbounded => u64::MAX,
    };
    (from, to)
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let (from, to) = bounds(&range);
        let this = self.clone();
        blocking(move || this.read_range(from, to))
            .await
            .map_err(read_err)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let purged = self.inner.state.lock().purged;
        let this = self.clone();
        let last = blocking(move || {
            let end = to_u64(this.log().log_end_offset());
            let start = to_u64(this.log().log_start_offset());
            if end <= start {
                return Ok(None);
            }
            Ok(this.read_range(end - 1, end)?.pop().map(|e| e.log_id))
        })
        .await
        .map_err(read_err)?;
        Ok(LogState {
            last_purged_log_id: purged,
            last_log_id: last.or(purged),
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        let vote = *vote;
        blocking(self.update_state(|s| s.set_vote(vote)))
            .await
            .map_err(vote_err)
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        Ok(self.inner.state.lock().vote)
    }

    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        blocking(self.update_state(|s| s.committed = committed))
            .await
            .map_err(write_err)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.inner.state.lock().committed)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let entries: Vec<Entry> = entries.into_iter().collect();
        let this = self.clone();
        let result = blocking(move || this.append_blocking(entries)).await;
        match result {
            Ok(()) => {
                callback.log_io_completed(Ok(()));
                Ok(())
            }
            Err(e) => {
                callback.log_io_completed(Err(std::io::Error::other(e.to_string())));
                Err(write_err(e))
            }
        }
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let log = self.log();
        blocking(move || Ok(log.truncate_to(to_i64(log_id.index))?))
            .await
            .map_err(write_err)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let this = self.clone();
        blocking(move || this.purge_blocking(log_id))
            .await
            .map_err(write_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::log_id;
    use openraft::storage::RaftLogStorageExt;
    use openraft::EntryPayload;

    fn blank(term: u64, index: u64) -> Entry {
        Entry {
            log_id: log_id(term, index),
            payload: EntryPayload::Blank,
        }
    }

    /// (baseOffset, partitionLeaderEpoch) of every batch in the Kafka log.
    fn batches(store: &LogStore) -> Vec<(i64, i32)> {
        let log = store.log();
        let read = log
            .read(log.log_start_offset(), 1 << 20, true, i64::MAX)
            .unwrap();
        gregor_records::BatchIter::new(&read.records)
            .map(|b| {
                let (h, _, _) = b.unwrap();
                (h.base_offset, h.partition_leader_epoch)
            })
            .collect()
    }

    #[tokio::test]
    async fn index_is_the_offset_and_term_the_leader_epoch_across_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let clock: Arc<dyn Clock> = Arc::new(gregor_storage::ManualClock::new(0));
        let mut store = LogStore::open(dir.path(), clock.clone()).unwrap();
        let entries: Vec<Entry> = (0..6).map(|i| blank(1 + i / 3, i)).collect();
        store.blocking_append(entries.clone()).await.unwrap();
        assert_eq!(
            batches(&store),
            [(0, 1), (1, 1), (2, 1), (3, 2), (4, 2), (5, 2)]
        );
        assert_eq!(store.log().epoch_for_offset(4), Some(2));

        // Truncate [4, ..) and append a new term's entry at 4.
        store.truncate(log_id(2, 4)).await.unwrap();
        store.blocking_append([blank(3, 4)]).await.unwrap();
        assert_eq!(batches(&store).last(), Some(&(4, 3)));

        // Purge within the log: the start moves, the purged id is kept.
        store.purge(log_id(1, 1)).await.unwrap();
        store.save_vote(&Vote::new(3, 7)).await.unwrap();
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(1, 1)));
        assert_eq!(state.last_log_id, Some(log_id(3, 4)));
        store.close().await.unwrap();

        // Reopen: same entries, vote, purged id (segments are deleted
        // whole, so the start offset comes from quorum-state).
        let mut store = LogStore::open(dir.path(), clock.clone()).unwrap();
        assert_eq!(store.log_start_offset(), 2);
        let got = store.try_get_log_entries(0..).await.unwrap();
        let ids: Vec<LogId> = got.iter().map(|e| e.log_id).collect();
        assert_eq!(ids, [log_id(1, 2), log_id(2, 3), log_id(3, 4)]);
        assert_eq!(store.read_vote().await.unwrap(), Some(Vote::new(3, 7)));

        // Purge past the log end (a snapshot was installed): empty log that
        // continues at the next index, also after a reopen.
        store.purge(log_id(4, 9)).await.unwrap();
        assert_eq!((store.log_start_offset(), store.log_end_offset()), (10, 10));
        store.blocking_append([blank(4, 10)]).await.unwrap();
        store.close().await.unwrap();
        let mut store = LogStore::open(dir.path(), clock).unwrap();
        let state = store.get_log_state().await.unwrap();
        assert_eq!(state.last_purged_log_id, Some(log_id(4, 9)));
        assert_eq!(state.last_log_id, Some(log_id(4, 10)));
        assert_eq!(batches(&store), [(10, 4)]);
        store.close().await.unwrap();
    }
}
