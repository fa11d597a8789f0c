//! The bootstrap metadata a new cluster starts with: records that
//! `gregor storage format` (Kafka's `kafka-storage.sh format --add-scram`)
//! leaves in the metadata log dir, and that the first broker to register
//! appends with the cluster's first records. Today these are SCRAM
//! credentials, so that a SASL/SCRAM cluster has its first users before
//! anyone can authenticate to add them.
//!
//! # On disk
//!
//! `<metadata.log.dir>/bootstrap.checkpoint`, as Kafka names it: the
//! records in a metadata snapshot file (see [`crate::metadata_store::snapshot`];
//! next offset 0, epoch 0). Once the cluster exists the file is not read
//! again: the records are in the metadata log.

use std::fs;
use std::path::{Path, PathBuf};

use gregor_metadata::{MetadataImage, MetadataRecord};

use crate::metadata_store::snapshot::{self, SnapshotError, SnapshotId};

/// The bootstrap file's name in the metadata log dir.
pub const BOOTSTRAP_FILE: &str = "bootstrap.checkpoint";

const ID: SnapshotId = SnapshotId {
    next_offset: 0,
    epoch: 0,
};

/// Writes `records` as the bootstrap of `metadata_dir` (atomically: a
/// fsynced temporary file renamed over the old one).
pub fn write(
    metadata_dir: &Path,
    records: &[MetadataRecord],
    now_ms: i64,
) -> Result<PathBuf, SnapshotError> {
    let image = MetadataImage::default().with_records(records);
    let written = snapshot::write(metadata_dir, &image, ID, now_ms)?;
    let path = metadata_dir.join(BOOTSTRAP_FILE);
    fs::rename(&written, &path).map_err(|source| SnapshotError::Io {
        path: path.clone(),
        op: "rename",
        source,
    })?;
    Ok(path)
}

/// The bootstrap records of `metadata_dir`; none when it has no bootstrap file.
pub fn read(metadata_dir: &Path) -> Result<Vec<MetadataRecord>, SnapshotError> {
    let path = metadata_dir.join(BOOTSTRAP_FILE);
    if !path.exists() {
        return Ok(Vec::new());
    }
    Ok(snapshot::read_file(&path, ID)?.to_records())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        assert!(read(dir.path()).unwrap().is_empty());
        let records = vec![MetadataRecord::UserScramCredential {
            name: "admin".into(),
            mechanism: 1,
            salt: vec![1, 2],
            stored_key: vec![3; 32],
            server_key: vec![4; 32],
            iterations: 4096,
        }];
        write(dir.path(), &records, 0).unwrap();
        assert_eq!(read(dir.path()).unwrap(), records);
        // Only the bootstrap file is left: no snapshot-named file.
        let names: Vec<String> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, vec![BOOTSTRAP_FILE.to_string()]);
        fs::write(dir.path().join(BOOTSTRAP_FILE), b"garbage").unwrap();
        assert!(read(dir.path()).is_err());
    }
}
