//! The `quorum-state` file in the metadata log dir: what Raft must not
//! forget across a restart besides the log itself.
//!
//! Kafka keeps the election state in a JSON file of this name; ours has the
//! same spirit and Kafka's field names where they mean the same thing:
//!
//! ```text
//! {"leaderEpoch":3,"votedId":1,"leaderId":1,      vote: term, candidate, and the
//!                                                 leader once it is committed (-1: none)
//!  "vote":{...},                                   openraft's Vote, authoritative
//!  "committed":{"leader_id":{"term":3},"index":41}, highest index known committed (or null)
//!  "purged":{"leader_id":{"term":2},"index":20},   last entry removed from the log's head
//!  "data_version":0}
//! ```
//!
//! `purged` is needed because the log only keeps offsets, and after a purge
//! the term of the last removed entry is gone with its batch; its index + 1
//! is also the log start offset handed to `Log::open` (segments are deleted
//! whole, so the first segment may begin below it).
//!
//! The file is replaced atomically (write `quorum-state.tmp`, fsync, rename,
//! fsync the directory), so a crash leaves the old or the new state.

use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};

use openraft::Vote;
use serde::{Deserialize, Serialize};

use crate::{LogId, NodeId, RaftStoreError};

pub const QUORUM_STATE_FILE: &str = "quorum-state";

/// The contents of `quorum-state`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuorumState {
    #[serde(rename = "leaderEpoch")]
    pub leader_epoch: i64,
    #[serde(rename = "votedId")]
    pub voted_id: i64,
    #[serde(rename = "leaderId")]
    pub leader_id: i64,
    pub vote: Option<Vote<NodeId>>,
    pub committed: Option<LogId>,
    pub purged: Option<LogId>,
    pub data_version: u32,
}

impl QuorumState {
    /// Sets the vote and the Kafka-named mirrors of it.
    pub fn set_vote(&mut self, vote: Vote<NodeId>) {
        self.leader_epoch = vote.leader_id.term as i64;
        self.voted_id = vote.leader_id.voted_for.map_or(-1, |n| n as i64);
        self.leader_id = if vote.committed { self.voted_id } else { -1 };
        self.vote = Some(vote);
    }
}

/// Reads the file; a missing file is the empty state.
pub fn read(dir: &Path) -> Result<QuorumState, RaftStoreError> {
    let path = dir.join(QUORUM_STATE_FILE);
    match fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|source| RaftStoreError::Json {
            path: path.display().to_string(),
            source,
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(QuorumState::default()),
        Err(source) => Err(RaftStoreError::Io {
            path: path.display().to_string(),
            source,
        }),
    }
}

/// Replaces the file atomically and durably.
pub fn write(dir: &Path, state: &QuorumState) -> Result<(), RaftStoreError> {
    let bytes = serde_json::to_vec(state).unwrap_or_default();
    write_atomically(&dir.join(QUORUM_STATE_FILE), &bytes)
}

/// Writes `path` through a fsynced temporary file and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), RaftStoreError> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    let tmp = PathBuf::from(tmp);
    let io = |p: &Path| {
        let p = p.display().to_string();
        move |source| RaftStoreError::Io { path: p, source }
    };
    let mut f = File::create(&tmp).map_err(io(&tmp))?;
    f.write_all(bytes).map_err(io(&tmp))?;
    f.sync_all().map_err(io(&tmp))?;
    drop(f);
    fs::rename(&tmp, path).map_err(io(path))?;
    if let Some(dir) = path.parent() {
        File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io(dir))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_missing_file() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()).unwrap(), QuorumState::default());
        let mut s = QuorumState::default();
        s.set_vote(Vote::new_committed(3, 1));
        s.committed = Some(crate::codec::log_id(3, 41));
        write(dir.path(), &s).unwrap();
        let back = read(dir.path()).unwrap();
        assert_eq!(back, s);
        assert_eq!(
            (back.leader_epoch, back.voted_id, back.leader_id),
            (3, 1, 1)
        );
        fs::write(dir.path().join(QUORUM_STATE_FILE), b"{").unwrap();
        assert!(read(dir.path()).is_err());
    }
}
