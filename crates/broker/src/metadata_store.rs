//! The metadata log runtime: appends the controller's records to
//! `__cluster_metadata-0` (a Kafka-format log) and keeps the image built by
//! replaying them. Every change is one batch, fsynced before it is applied,
//! so a change is all-or-nothing across a crash.

use std::path::Path;
use std::sync::Arc;

use bytes::Bytes;
use gregor_metadata::{MetadataImage, MetadataRecord};
use gregor_records::{BatchBuilder, Compression, Record};
use gregor_storage::{Clock, Log, LogConfig, TopicPartition};
use parking_lot::{Mutex, RwLock};

/// Name of the metadata log's directory inside the metadata log dir.
pub const METADATA_TOPIC: &str = "__cluster_metadata";

#[derive(Debug, thiserror::Error)]
pub enum MetadataStoreError {
    #[error("metadata log: {0}")]
    Storage(#[from] gregor_storage::StorageError),
    #[error("metadata log: {0}")]
    Records(#[from] gregor_records::RecordsError),
    #[error(transparent)]
    Decode(#[from] gregor_metadata::records::DecodeError),
}

pub struct MetadataStore {
    log: Log,
    image: RwLock<Arc<MetadataImage>>,
    /// Serialises read-decide-append so two changes never decide on the same image.
    write: Mutex<()>,
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
    /// Opens the metadata log under `dir` and replays it into an image.
    pub fn open(dir: &Path, clock: Arc<dyn Clock>) -> Result<Self, MetadataStoreError> {
        let tp = TopicPartition::new(METADATA_TOPIC, 0);
        let config = LogConfig {
            segment_bytes: 64 * 1024 * 1024,
            retention_ms: -1,
            ..LogConfig::default()
        };
        let log = Log::open(dir.join(tp.dir_name()), tp, config, clock.clone(), 0, 0)?;
        let mut image = MetadataImage::default();
        let mut offset = log.log_start_offset();
        let end = log.log_end_offset();
        while offset < end {
            let read = log.read(offset, 1 << 20, true, end)?;
            if read.records.is_empty() {
                break;
            }
            for item in gregor_records::BatchIter::new(&read.records) {
                let (header, _, batch) = item?;
                let (_, records) = gregor_records::record::decode_records(batch, 64 << 20)?;
                for r in records {
                    let value = r.value.unwrap_or_default();
                    image.apply(&MetadataRecord::decode(&value, r.offset)?);
                }
                offset = header.next_offset();
            }
        }
        Ok(Self {
            log,
            image: RwLock::new(Arc::new(image)),
            write: Mutex::new(()),
            clock,
        })
    }

    /// The current image (cheap: an `Arc`).
    pub fn image(&self) -> Arc<MetadataImage> {
        self.image.read().clone()
    }

    /// Runs `decide` on the current image and, if it returns records, appends
    /// them as one batch, fsyncs, and applies them. Returns `decide`'s value.
    pub fn update<R, E>(
        &self,
        decide: impl FnOnce(&MetadataImage) -> Result<(Vec<MetadataRecord>, R), E>,
    ) -> Result<Result<R, E>, MetadataStoreError> {
        let _guard = self.write.lock();
        let current = self.image();
        let (records, value) = match decide(&current) {
            Ok(v) => v,
            Err(e) => return Ok(Err(e)),
        };
        if records.is_empty() {
            return Ok(Ok(value));
        }
        let now = self.clock.now_ms();
        let mut builder = BatchBuilder::new(0, Compression::None);
        for r in &records {
            builder.push(Record {
                timestamp: now,
                value: Some(Bytes::from(r.encode())),
                ..Record::default()
            });
        }
        let batch = builder.build()?;
        self.log.append_as_leader(batch, 0)?;
        self.log.flush()?;
        let mut next = (*current).clone();
        for r in &records {
            next.apply(r);
        }
        *self.image.write() = Arc::new(next);
        Ok(Ok(value))
    }

    pub fn close(&self) -> Result<(), MetadataStoreError> {
        self.log.close()?;
        Ok(())
    }
}
