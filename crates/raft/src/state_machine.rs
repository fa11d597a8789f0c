//! [`StateMachine`]: committed entries applied to the [`MetadataImage`].
//!
//! The image lives in memory and is published after every applied run of
//! entries on a `watch` channel (`Arc<MetadataImage>`, cheap to clone), so a
//! broker subscribes to changes instead of polling. Durability comes from
//! the log plus the latest snapshot: at start the image is the newest
//! `.checkpoint` (see [`crate::checkpoint`]) and openraft re-applies the
//! committed entries after it (the committed id is in `quorum-state`).
//!
//! Records come through a [`Replayer`], so a change written as a KIP-868
//! transaction over several entries (see `gregor_metadata::transaction`)
//! is published only once its end is applied: no image a reader sees holds
//! a part of one. A checkpoint taken inside a transaction keeps its records
//! so far after a `BeginTransaction`, and loading it resumes it.
//!
//! Checkpoints live beside the segments in `__cluster_metadata-0/`, as
//! Kafka's do. Building one copies the image (pointer copies, see
//! `gregor_metadata::image`) so applying continues while the file is
//! written on the blocking pool.

use std::io::Cursor;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use gregor_metadata::transaction::Replayer;
use gregor_metadata::MetadataImage;
use openraft::storage::{RaftStateMachine, Snapshot};
use openraft::{
    AnyError, EntryPayload, OptionalSend, RaftSnapshotBuilder, StorageIOError, StoredMembership,
};
use parking_lot::Mutex;
use tokio::sync::watch;

use crate::checkpoint::{self, SnapshotMeta};
use crate::log_store::{blocking, METADATA_TOPIC};
use crate::{Entry, LogId, Node, NodeId, RaftStoreError, StorageError, TypeConfig};

/// What the state machine has applied.
#[derive(Debug, Clone, Default)]
struct Applied {
    last_applied: Option<LogId>,
    membership: StoredMembership<NodeId, Node>,
    /// The image of whole changes, and the open transaction's records.
    replayer: Replayer,
}

struct Shared {
    /// Where checkpoints go: the metadata log's partition directory.
    dir: PathBuf,
    applied: Mutex<Applied>,
    /// The newest checkpoint on disk.
    current: Mutex<Option<SnapshotMeta>>,
    image_tx: watch::Sender<AppliedImage>,
}

/// An image with the log index of the last entry applied to it: two nodes'
/// images at the same index are equal (both replayed the same committed
/// prefix), which is what a conditional proposal relies on.
#[derive(Debug, Clone, Default)]
pub struct AppliedImage {
    /// The last applied entry's index; `None` before any entry.
    pub index: Option<u64>,
    pub image: Arc<MetadataImage>,
}

/// The metadata state machine of one node. Cloning shares it.
#[derive(Clone)]
pub struct StateMachine {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for StateMachine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateMachine")
            .field("dir", &self.shared.dir)
            .field("last_applied", &self.shared.applied.lock().last_applied)
            .finish()
    }
}

fn sm_err(e: RaftStoreError) -> StorageError {
    StorageError::IO {
        source: StorageIOError::write_state_machine(AnyError::new(&e)),
    }
}

fn snapshot_err(e: RaftStoreError) -> StorageError {
    StorageError::IO {
        source: StorageIOError::write_snapshot(None, AnyError::new(&e)),
    }
}

fn replay(records: &[gregor_metadata::MetadataRecord]) -> Replayer {
    let mut replayer = Replayer::default();
    for r in records {
        replayer.apply(r);
    }
    replayer
}

impl StateMachine {
    /// Opens the state machine of the metadata log in `dir` (the metadata
    /// log dir), loading the newest checkpoint. Blocking.
    pub fn open(dir: &Path) -> Result<Self, RaftStoreError> {
        let dir = dir.join(format!("{METADATA_TOPIC}-0"));
        std::fs::create_dir_all(&dir).map_err(|source| RaftStoreError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        let (applied, current) = match checkpoint::latest(&dir)? {
            Some(c) => (
                Applied {
                    last_applied: c.meta.last_log_id,
                    membership: c.meta.last_membership.clone(),
                    replayer: replay(&c.records),
                },
                Some(c.meta),
            ),
            None => (Applied::default(), None),
        };
        let (image_tx, _) = watch::channel(AppliedImage {
            index: applied.last_applied.map(|l| l.index),
            image: Arc::new(applied.replayer.image().clone()),
        });
        Ok(Self {
            shared: Arc::new(Shared {
                dir,
                applied: Mutex::new(applied),
                current: Mutex::new(current),
                image_tx,
            }),
        })
    }

    /// The image after the last applied entry.
    pub fn image(&self) -> Arc<MetadataImage> {
        self.shared.image_tx.borrow().image.clone()
    }

    /// The image with the index it was applied up to.
    pub fn applied_image(&self) -> AppliedImage {
        self.shared.image_tx.borrow().clone()
    }

    /// A receiver that sees every newly published image.
    pub fn subscribe(&self) -> watch::Receiver<AppliedImage> {
        self.shared.image_tx.subscribe()
    }

    /// The last applied entry.
    pub fn last_applied(&self) -> Option<LogId> {
        self.shared.applied.lock().last_applied
    }

    /// Whether a transaction's first entries are applied but not its end:
    /// on the leader, before it appends anything, that is a transaction
    /// its writer abandoned (a failover between its entries).
    pub fn in_transaction(&self) -> bool {
        self.shared.applied.lock().replayer.in_transaction()
    }

    /// The checkpoint directory (the metadata log's partition dir).
    pub fn checkpoint_dir(&self) -> &Path {
        &self.shared.dir
    }

    fn publish(&self, index: Option<u64>, image: MetadataImage) {
        self.shared.image_tx.send_replace(AppliedImage {
            index,
            image: Arc::new(image),
        });
    }
}

/// Builds a checkpoint from a copy of the applied state.
pub struct SnapshotBuilder {
    sm: StateMachine,
    applied: Applied,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        let applied = self.applied.clone();
        let meta = SnapshotMeta {
            last_log_id: applied.last_applied,
            last_membership: applied.membership.clone(),
            snapshot_id: checkpoint::file_name(applied.last_applied)
                .trim_end_matches(checkpoint::CHECKPOINT_SUFFIX)
                .to_string(),
        };
        let dir = self.sm.shared.dir.clone();
        let m = meta.clone();
        let bytes = blocking(move || {
            let bytes = checkpoint::encode(&m, &applied.replayer.to_records())?;
            checkpoint::write(&dir, &m, &bytes)?;
            Ok(bytes)
        })
        .await
        .map_err(snapshot_err)?;
        *self.sm.shared.current.lock() = Some(meta.clone());
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        })
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(
        &mut self,
    ) -> Result<(Option<LogId>, StoredMembership<NodeId, Node>), StorageError> {
        let a = self.shared.applied.lock();
        Ok((a.last_applied, a.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<()>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut replies = Vec::new();
        let published = {
            let mut a = self.shared.applied.lock();
            for e in entries {
                a.last_applied = Some(e.log_id);
                match e.payload {
                    EntryPayload::Blank => {}
                    EntryPayload::Normal(p) => {
                        for r in &p.records {
                            a.replayer.apply(r);
                        }
                    }
                    EntryPayload::Membership(m) => {
                        a.membership = StoredMembership::new(Some(e.log_id), m);
                    }
                }
                replies.push(());
            }
            // Inside a transaction the image is the one before it: nothing
            // new to publish.
            (!a.replayer.in_transaction())
                .then(|| (a.last_applied.map(|l| l.index), a.replayer.image().clone()))
        };
        if let Some((index, image)) = published {
            self.publish(index, image);
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> SnapshotBuilder {
        SnapshotBuilder {
            sm: self.clone(),
            applied: self.shared.applied.lock().clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        let bytes = snapshot.into_inner();
        let dir = self.shared.dir.clone();
        let m = meta.clone();
        let records = blocking(move || {
            let (_, records) = checkpoint::decode("received snapshot", &bytes)?;
            checkpoint::write(&dir, &m, &bytes)?;
            Ok(records)
        })
        .await
        .map_err(sm_err)?;
        let replayer = replay(&records);
        let image = replayer.image().clone();
        {
            let mut a = self.shared.applied.lock();
            *a = Applied {
                last_applied: meta.last_log_id,
                membership: meta.last_membership.clone(),
                replayer,
            };
        }
        *self.shared.current.lock() = Some(meta.clone());
        self.publish(meta.last_log_id.map(|l| l.index), image);
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        let Some(meta) = self.shared.current.lock().clone() else {
            return Ok(None);
        };
        let path = self
            .shared
            .dir
            .join(checkpoint::file_name(meta.last_log_id));
        let bytes = blocking(move || {
            std::fs::read(&path).map_err(|source| RaftStoreError::Io {
                path: path.display().to_string(),
                source,
            })
        })
        .await
        .map_err(snapshot_err)?;
        Ok(Some(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(bytes)),
        }))
    }
}
