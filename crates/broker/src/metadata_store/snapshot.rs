//! Metadata snapshots: the image written as records, so that start-up reads
//! the newest snapshot and replays only the log after it (Kafka's
//! `<next offset>-<epoch>.checkpoint` files of `__cluster_metadata-0`).
//!
//! # On disk
//!
//! One file per snapshot in the metadata log's partition directory:
//!
//! ```text
//! 00000000000000050000-0000000000.checkpoint
//! └── next offset ───┘ └ epoch ┘   the image after applying offsets [0, 50000)
//! ```
//!
//! The file is uncompressed RecordBatch v2 batches (each CRC-checked on
//! load), records numbered from 0 across the file:
//!
//! | record | key                     | value                                                   |
//! | ------ | ----------------------- | ------------------------------------------------------- |
//! | 0      | `gregor.snapshot.header`| version i16 (0), next offset i64, epoch i32, count i64 (R), big-endian |
//! | 1..=R  | none                    | one [`MetadataRecord`] each, encoded as in the log      |
//!
//! A file is valid when every batch checks, the header matches the file's
//! name and exactly `R` records follow. Files are written atomically (a
//! fsynced `.tmp`, a rename, a directory fsync), so a crash leaves the old
//! set or the new one; a file that does not check anyway (a bad disk, a
//! hand edit) is skipped for an older one, or the whole log.
//!
//! The epoch is the leader epoch of the metadata log: 0 until the controller
//! quorum (Raft) assigns epochs.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use gregor_metadata::{MetadataImage, MetadataRecord};
use gregor_records::{BatchBuilder, BatchIter, Compression, Record};

const SUFFIX: &str = ".checkpoint";
const HEADER_KEY: &[u8] = b"gregor.snapshot.header";
const HEADER_VERSION: i16 = 0;
const HEADER_LEN: usize = 2 + 8 + 4 + 8;
/// Records per batch: bounds the memory one batch decode needs.
const RECORDS_PER_BATCH: usize = 1000;
/// Largest batch a snapshot reader accepts (a batch of 1000 records is far smaller).
const MAX_BATCH_BYTES: usize = 64 << 20;
/// How many snapshots stay on disk: the newest, and one to fall back to.
pub const SNAPSHOTS_KEPT: usize = 2;

#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("snapshot {path}: {op}: {source}")]
    Io {
        path: PathBuf,
        op: &'static str,
        #[source]
        source: std::io::Error,
    },
    #[error("snapshot {path}: {source}")]
    Records {
        path: PathBuf,
        #[source]
        source: gregor_records::RecordsError,
    },
    #[error("snapshot {path}: {reason}")]
    Invalid { path: PathBuf, reason: String },
}

/// A snapshot's identity, from its file name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct SnapshotId {
    /// The log offset the snapshot's image stops before.
    pub next_offset: i64,
    pub epoch: i32,
}

impl SnapshotId {
    /// `<20-digit next offset>-<10-digit epoch>.checkpoint`, as Kafka names them.
    pub fn file_name(&self) -> String {
        format!("{:020}-{:010}{SUFFIX}", self.next_offset, self.epoch)
    }

    pub fn parse(name: &str) -> Option<Self> {
        let stem = name.strip_suffix(SUFFIX)?;
        let (offset, epoch) = stem.split_once('-')?;
        let digits = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_digit());
        if !digits(offset, 20) || !digits(epoch, 10) {
            return None;
        }
        Some(Self {
            next_offset: offset.parse().ok()?,
            epoch: epoch.parse().ok()?,
        })
    }
}

/// The snapshots in `dir`, newest first.
pub fn list(dir: &Path) -> Result<Vec<SnapshotId>, SnapshotError> {
    let io = |source| SnapshotError::Io {
        path: dir.to_path_buf(),
        op: "list",
        source,
    };
    let mut out = Vec::new();
    for entry in fs::read_dir(dir).map_err(io)? {
        let entry = entry.map_err(io)?;
        if let Some(id) = entry.file_name().to_str().and_then(SnapshotId::parse) {
            out.push(id);
        }
    }
    out.sort_unstable_by(|a, b| b.cmp(a));
    Ok(out)
}

/// Encodes `image` as the snapshot `id`.
pub fn encode(
    image: &MetadataImage,
    id: SnapshotId,
    now_ms: i64,
) -> Result<Vec<u8>, SnapshotError> {
    let records = image.to_records();
    let mut header = Vec::with_capacity(HEADER_LEN);
    header.extend_from_slice(&HEADER_VERSION.to_be_bytes());
    header.extend_from_slice(&id.next_offset.to_be_bytes());
    header.extend_from_slice(&id.epoch.to_be_bytes());
    header.extend_from_slice(&(records.len() as i64).to_be_bytes());
    let values = std::iter::once((Some(HEADER_KEY), header))
        .chain(records.iter().map(|r| (None, r.encode())));
    let mut out = Vec::new();
    let mut builder = BatchBuilder::new(0, Compression::None);
    let mut next_offset = 0i64;
    let mut flush = |builder: &mut BatchBuilder, next_offset: &mut i64| {
        if builder.is_empty() {
            return Ok(());
        }
        let n = builder.len() as i64;
        let batch = builder.build().map_err(|source| SnapshotError::Records {
            path: PathBuf::from(id.file_name()),
            source,
        })?;
        out.extend_from_slice(&batch);
        *next_offset += n;
        *builder = BatchBuilder::new(*next_offset, Compression::None);
        Ok::<_, SnapshotError>(())
    };
    for (key, value) in values {
        builder.push(Record {
            timestamp: now_ms,
            key: key.map(Bytes::from_static),
            value: Some(Bytes::from(value)),
            ..Record::default()
        });
        if builder.len() >= RECORDS_PER_BATCH {
            flush(&mut builder, &mut next_offset)?;
        }
    }
    flush(&mut builder, &mut next_offset)?;
    Ok(out)
}

/// Writes `image` as snapshot `id` in `dir`: a fsynced `.tmp`, a rename, a
/// fsync of the directory. Returns the file's path.
pub fn write(
    dir: &Path,
    image: &MetadataImage,
    id: SnapshotId,
    now_ms: i64,
) -> Result<PathBuf, SnapshotError> {
    let path = dir.join(id.file_name());
    let bytes = encode(image, id, now_ms)?;
    let tmp = dir.join(format!("{}.tmp", id.file_name()));
    let io = |path: &Path, op: &'static str| {
        let path = path.to_path_buf();
        move |source| SnapshotError::Io { path, op, source }
    };
    let mut f = File::create(&tmp).map_err(io(&tmp, "create"))?;
    f.write_all(&bytes).map_err(io(&tmp, "write"))?;
    f.sync_all().map_err(io(&tmp, "fsync"))?;
    drop(f);
    fs::rename(&tmp, &path).map_err(io(&path, "rename"))?;
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir, "fsync dir"))?;
    Ok(path)
}

/// Reads snapshot `id` from `dir` into an image, checking every batch.
pub fn read(dir: &Path, id: SnapshotId) -> Result<MetadataImage, SnapshotError> {
    read_file(&dir.join(id.file_name()), id)
}

/// [`read`] from a file of another name (the bootstrap file, whose header
/// says `id`).
pub fn read_file(path: &Path, id: SnapshotId) -> Result<MetadataImage, SnapshotError> {
    let path = path.to_path_buf();
    let bytes = fs::read(&path).map_err(|source| SnapshotError::Io {
        path: path.clone(),
        op: "read",
        source,
    })?;
    decode(&bytes, id).map_err(|e| match e {
        Decoded::Records(source) => SnapshotError::Records { path, source },
        Decoded::Invalid(reason) => SnapshotError::Invalid { path, reason },
    })
}

enum Decoded {
    Records(gregor_records::RecordsError),
    Invalid(String),
}

impl From<gregor_records::RecordsError> for Decoded {
    fn from(e: gregor_records::RecordsError) -> Self {
        Decoded::Records(e)
    }
}

fn decode(bytes: &[u8], id: SnapshotId) -> Result<MetadataImage, Decoded> {
    let mut image = MetadataImage::default();
    let mut declared: Option<u64> = None;
    let mut seen = 0u64;
    for item in BatchIter::new(bytes) {
        let (_, _, batch) = item?;
        gregor_records::validate_batch(batch, MAX_BATCH_BYTES)?;
        let (_, records) = gregor_records::record::decode_records(batch, MAX_BATCH_BYTES)?;
        for r in records {
            let value = r.value.unwrap_or_default();
            let Some(count) = declared else {
                declared = Some(header(&r.key, &value, id)?);
                continue;
            };
            if seen >= count {
                return Err(Decoded::Invalid(format!(
                    "more records than the {count} its header declares"
                )));
            }
            let record = MetadataRecord::decode(&value, r.offset)
                .map_err(|e| Decoded::Invalid(e.to_string()))?;
            image.apply(&record);
            seen += 1;
        }
    }
    match declared {
        None => Err(Decoded::Invalid("no header record".into())),
        Some(count) if count != seen => Err(Decoded::Invalid(format!(
            "{seen} records, its header declares {count}"
        ))),
        Some(_) => Ok(image),
    }
}

/// Checks the header record against the file name; returns the record count.
fn header(key: &Option<Bytes>, value: &[u8], id: SnapshotId) -> Result<u64, Decoded> {
    if key.as_deref() != Some(HEADER_KEY) {
        return Err(Decoded::Invalid("first record is not the header".into()));
    }
    let bad = || Decoded::Invalid(format!("header of {} bytes is not valid", value.len()));
    if value.len() != HEADER_LEN {
        return Err(bad());
    }
    let (version, rest) = value.split_at(2);
    let (next_offset, rest) = rest.split_at(8);
    let (epoch, count) = rest.split_at(4);
    let version = i16::from_be_bytes(version.try_into().map_err(|_| bad())?);
    let next_offset = i64::from_be_bytes(next_offset.try_into().map_err(|_| bad())?);
    let epoch = i32::from_be_bytes(epoch.try_into().map_err(|_| bad())?);
    let count = i64::from_be_bytes(count.try_into().map_err(|_| bad())?);
    if version != HEADER_VERSION {
        return Err(Decoded::Invalid(format!(
            "unknown header version {version}"
        )));
    }
    if next_offset != id.next_offset || epoch != id.epoch {
        return Err(Decoded::Invalid(format!(
            "header says offset {next_offset} epoch {epoch}, its name {} {}",
            id.next_offset, id.epoch
        )));
    }
    u64::try_from(count).map_err(|_| bad())
}

/// Deletes all but the newest [`SNAPSHOTS_KEPT`] snapshots. Returns how many went.
pub fn prune(dir: &Path) -> Result<usize, SnapshotError> {
    let mut deleted = 0;
    for id in list(dir)?.into_iter().skip(SNAPSHOTS_KEPT) {
        let path = dir.join(id.file_name());
        fs::remove_file(&path).map_err(|source| SnapshotError::Io {
            path,
            op: "delete",
            source,
        })?;
        deleted += 1;
    }
    Ok(deleted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_metadata::ConfigResource;

    fn image() -> MetadataImage {
        let id = uuid::Uuid::from_u128(9);
        let mut records = vec![
            MetadataRecord::Cluster {
                cluster_id: "c".into(),
            },
            MetadataRecord::Topic {
                name: "t".into(),
                topic_id: id,
            },
            MetadataRecord::Config {
                resource: ConfigResource::Topic("t".into()),
                name: "retention.ms".into(),
                value: Some("5".into()),
            },
        ];
        // Enough partitions for several batches.
        for p in 0..2500 {
            records.push(MetadataRecord::Partition {
                topic_id: id,
                partition: p,
                replicas: vec![1],
                isr: vec![1],
                leader: 1,
                leader_epoch: p,
                partition_epoch: 0,
                adding_replicas: vec![],
                removing_replicas: vec![],
            });
        }
        MetadataImage::default().with_records(&records)
    }

    #[test]
    fn names_are_kafkas() {
        let id = SnapshotId {
            next_offset: 1234,
            epoch: 5,
        };
        assert_eq!(id.file_name(), "00000000000000001234-0000000005.checkpoint");
        assert_eq!(SnapshotId::parse(&id.file_name()), Some(id));
        for bad in [
            "00000000000000001234-0000000005.checkpoint.tmp",
            "1234-5.checkpoint",
            "00000000000000001234.checkpoint",
            "leader-epoch-checkpoint",
            "0000000000000000123x-0000000005.checkpoint",
        ] {
            assert_eq!(SnapshotId::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn round_trip_and_corruption() {
        let dir = tempfile::tempdir().unwrap();
        let id = SnapshotId {
            next_offset: 77,
            epoch: 0,
        };
        let image = image();
        let path = write(dir.path(), &image, id, 1).unwrap();
        assert_eq!(read(dir.path(), id).unwrap(), image);
        assert!(!dir.path().join(format!("{}.tmp", id.file_name())).exists());

        let good = fs::read(&path).unwrap();
        // A flipped byte in a record fails its batch's CRC.
        let mut bad = good.clone();
        let mid = bad.len() / 2;
        bad[mid] ^= 0x40;
        fs::write(&path, &bad).unwrap();
        assert!(read(dir.path(), id).is_err());
        // A file cut at a batch boundary misses records its header counts.
        let first_batch = BatchIter::new(&good)
            .next()
            .unwrap()
            .unwrap()
            .0
            .total_size();
        fs::write(&path, &good[..first_batch]).unwrap();
        let err = read(dir.path(), id).unwrap_err().to_string();
        assert!(err.contains("header declares"), "{err}");
        // A file renamed to another offset does not match its header.
        fs::write(&path, &good).unwrap();
        let other = SnapshotId {
            next_offset: 78,
            epoch: 0,
        };
        fs::rename(&path, dir.path().join(other.file_name())).unwrap();
        assert!(read(dir.path(), other).is_err());
    }

    #[test]
    fn prune_keeps_the_newest_two() {
        let dir = tempfile::tempdir().unwrap();
        let image = MetadataImage::default();
        for offset in [5, 100, 20, 7] {
            let id = SnapshotId {
                next_offset: offset,
                epoch: 0,
            };
            write(dir.path(), &image, id, 0).unwrap();
        }
        fs::write(dir.path().join("00000000000000000000.log"), b"").unwrap();
        assert_eq!(prune(dir.path()).unwrap(), 2);
        let left: Vec<i64> = list(dir.path())
            .unwrap()
            .iter()
            .map(|s| s.next_offset)
            .collect();
        assert_eq!(left, vec![100, 20]);
        assert!(dir.path().join("00000000000000000000.log").exists());
    }
}
