//! Snapshot files: the image at one log index, as Kafka lays out KRaft
//! snapshots.
//!
//! Name: `<20-digit end offset>-<10-digit epoch>.checkpoint` in the metadata
//! log dir, where the end offset is the last included index + 1 and the
//! epoch is the last included entry's term (Kafka's `OffsetAndEpoch` of the
//! snapshot id). Contents, a sequence of record batches (uncompressed):
//!
//! ```text
//! offset 0      control batch, key type 4 (SnapshotHeader),
//!               value {"v":0,"meta":<openraft SnapshotMeta as JSON>}
//! offset 1..n   data batches of up to 1000 records; each record's value is
//!               one MetadataRecord encoded as in the metadata log
//!               ({"v":0,"type":...}); replayed in order they rebuild the image
//! offset n+1    control batch, key type 5 (SnapshotFooter), value {"v":0}
//! ```
//!
//! Every batch carries the snapshot's epoch as its partitionLeaderEpoch.
//! A file is written to `<name>.tmp`, fsynced and renamed, so a listed
//! checkpoint is always complete; older checkpoints are deleted after a
//! newer one is in place. The same bytes are what a leader sends a lagging
//! follower or a new learner (openraft's `InstallSnapshot`).

use std::fs;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use gregor_metadata::MetadataRecord;
use gregor_records::{BatchIter, Record};
use serde::{Deserialize, Serialize};

use crate::codec::{build_batch, control_key, CONTROL_SNAPSHOT_FOOTER, CONTROL_SNAPSHOT_HEADER};
use crate::quorum_state::write_atomically;
use crate::{LogId, Node, NodeId, RaftStoreError};

pub const CHECKPOINT_SUFFIX: &str = ".checkpoint";
const RECORDS_PER_BATCH: usize = 1000;

/// openraft's description of a snapshot.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;

#[derive(Serialize, Deserialize)]
struct Header {
    v: u8,
    meta: SnapshotMeta,
}

/// `<20-digit end offset>-<10-digit epoch>.checkpoint` for a snapshot whose
/// last entry is `last`.
pub fn file_name(last: Option<LogId>) -> String {
    let (end, epoch) = last.map_or((0, 0), |l| (l.index + 1, l.leader_id.term));
    format!("{end:020}-{epoch:010}{CHECKPOINT_SUFFIX}")
}

fn bad(path: &str, reason: impl Into<String>) -> RaftStoreError {
    RaftStoreError::BadCheckpoint {
        path: path.to_string(),
        reason: reason.into(),
    }
}

/// The file's bytes for `meta` and the image's `records`.
pub fn encode(meta: &SnapshotMeta, records: &[MetadataRecord]) -> Result<Vec<u8>, RaftStoreError> {
    let epoch = meta
        .last_log_id
        .map_or(0, |l| i32::try_from(l.leader_id.term).unwrap_or(i32::MAX));
    let now = 0;
    let rec = |key: Option<Bytes>, value: Vec<u8>| Record {
        timestamp: now,
        key,
        value: Some(Bytes::from(value)),
        ..Record::default()
    };
    let header = serde_json::to_vec(&Header {
        v: 0,
        meta: meta.clone(),
    })
    .unwrap_or_default();
    let mut out = Vec::new();
    let mut offset = 0i64;
    let batch = build_batch(
        offset,
        epoch,
        true,
        vec![rec(Some(control_key(CONTROL_SNAPSHOT_HEADER)), header)],
    )?;
    out.extend_from_slice(&batch);
    offset += 1;
    for chunk in records.chunks(RECORDS_PER_BATCH) {
        let recs = chunk.iter().map(|r| rec(None, r.encode())).collect();
        out.extend_from_slice(&build_batch(offset, epoch, false, recs)?);
        offset += chunk.len() as i64;
    }
    let footer = build_batch(
        offset,
        epoch,
        true,
        vec![rec(
            Some(control_key(CONTROL_SNAPSHOT_FOOTER)),
            br#"{"v":0}"#.to_vec(),
        )],
    )?;
    out.extend_from_slice(&footer);
    Ok(out)
}

/// Parses a checkpoint's bytes (named `path` in errors).
pub fn decode(
    path: &str,
    bytes: &[u8],
) -> Result<(SnapshotMeta, Vec<MetadataRecord>), RaftStoreError> {
    let mut meta = None;
    let mut records = Vec::new();
    let mut footer = false;
    for item in BatchIter::new(bytes) {
        let (h, _, batch) = item?;
        gregor_records::validate_batch(batch, 64 << 20)?;
        let (_, recs) = gregor_records::record::decode_records(batch, 64 << 20)?;
        for r in recs {
            let value = r.value.unwrap_or_default();
            if h.is_control() {
                let kind = r.key.as_ref().filter(|k| k.len() >= 4).map(|k| k[3]);
                match kind.map(i16::from) {
                    Some(CONTROL_SNAPSHOT_HEADER) => {
                        let hdr: Header = serde_json::from_slice(&value)
                            .map_err(|e| bad(path, format!("header: {e}")))?;
                        meta = Some(hdr.meta);
                    }
                    Some(CONTROL_SNAPSHOT_FOOTER) => footer = true,
                    other => return Err(bad(path, format!("control record type {other:?}"))),
                }
            } else {
                records.push(
                    MetadataRecord::decode(&value, r.offset)
                        .map_err(|e| bad(path, e.to_string()))?,
                );
            }
        }
    }
    let meta = meta.ok_or_else(|| bad(path, "no snapshot header"))?;
    if !footer {
        return Err(bad(path, "no snapshot footer (truncated file)"));
    }
    Ok((meta, records))
}

/// Writes the checkpoint for `meta` into `dir` (atomically) and deletes
/// every other checkpoint there. Returns its path.
pub fn write(dir: &Path, meta: &SnapshotMeta, bytes: &[u8]) -> Result<PathBuf, RaftStoreError> {
    let path = dir.join(file_name(meta.last_log_id));
    write_atomically(&path, bytes)?;
    for old in list(dir)? {
        if old.path != path {
            fs::remove_file(&old.path).map_err(|source| RaftStoreError::Io {
                path: old.path.display().to_string(),
                source,
            })?;
        }
    }
    Ok(path)
}

/// A checkpoint file found in a directory.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct CheckpointFile {
    /// The last included index + 1.
    pub end_offset: u64,
    /// The last included entry's term.
    pub epoch: u64,
    pub path: PathBuf,
}

/// A checkpoint read back: its description, the image's records, the
/// file's bytes (what is sent to a follower).
#[derive(Debug, Clone)]
pub struct Checkpoint {
    pub meta: SnapshotMeta,
    pub records: Vec<MetadataRecord>,
    pub bytes: Vec<u8>,
}

/// The checkpoints in `dir`, by end offset (then epoch), oldest first.
pub fn list(dir: &Path) -> Result<Vec<CheckpointFile>, RaftStoreError> {
    let io = |source| RaftStoreError::Io {
        path: dir.display().to_string(),
        source,
    };
    let mut out = Vec::new();
    for e in fs::read_dir(dir).map_err(io)? {
        let e = e.map_err(io)?;
        let name = e.file_name();
        let Some(stem) = name
            .to_str()
            .and_then(|n| n.strip_suffix(CHECKPOINT_SUFFIX))
        else {
            continue;
        };
        let Some((offset, epoch)) = stem.split_once('-') else {
            continue;
        };
        if let (Ok(end_offset), Ok(epoch)) = (offset.parse::<u64>(), epoch.parse::<u64>()) {
            out.push(CheckpointFile {
                end_offset,
                epoch,
                path: e.path(),
            });
        }
    }
    out.sort();
    Ok(out)
}

/// The newest checkpoint in `dir`, read and parsed.
pub fn latest(dir: &Path) -> Result<Option<Checkpoint>, RaftStoreError> {
    let Some(file) = list(dir)?.pop() else {
        return Ok(None);
    };
    let p = file.path.display().to_string();
    let bytes = fs::read(&file.path).map_err(|source| RaftStoreError::Io {
        path: p.clone(),
        source,
    })?;
    let (meta, records) = decode(&p, &bytes)?;
    Ok(Some(Checkpoint {
        meta,
        records,
        bytes,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use openraft::{Membership, StoredMembership};
    use std::collections::BTreeSet;

    #[test]
    fn names_and_round_trip() {
        let last = crate::codec::log_id(7, 41);
        assert_eq!(
            file_name(Some(last)),
            "00000000000000000042-0000000007.checkpoint"
        );
        let meta = SnapshotMeta {
            last_log_id: Some(last),
            last_membership: StoredMembership::new(
                Some(crate::codec::log_id(1, 0)),
                Membership::new(vec![BTreeSet::from([1, 2, 3])], None),
            ),
            snapshot_id: "42-7".into(),
        };
        let records: Vec<MetadataRecord> = (0..2500)
            .map(|i| MetadataRecord::ProducerIds {
                broker_id: i,
                next_producer_id: i64::from(i),
            })
            .collect();
        let bytes = encode(&meta, &records).unwrap();
        let (m, r) = decode("x", &bytes).unwrap();
        assert_eq!((m, r), (meta.clone(), records));
        assert!(decode("x", &bytes[..bytes.len() - 10]).is_err());

        let dir = tempfile::tempdir().unwrap();
        write(dir.path(), &meta, &bytes).unwrap();
        let mut newer = meta.clone();
        newer.last_log_id = Some(crate::codec::log_id(8, 50));
        write(dir.path(), &newer, &encode(&newer, &[]).unwrap()).unwrap();
        assert_eq!(list(dir.path()).unwrap().len(), 1);
        assert_eq!(latest(dir.path()).unwrap().unwrap().meta, newer);
    }
}
