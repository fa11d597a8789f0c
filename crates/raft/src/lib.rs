//! The metadata quorum: the metadata log (`__cluster_metadata-0`) ordered
//! and replicated by [openraft](https://docs.rs/openraft/0.9), applied to a
//! [`MetadataImage`](gregor_metadata::MetadataImage) on every node.
//!
//! Controllers are voters; broker-only nodes are non-voting learners that
//! receive the same log and build the same image. The log stays
//! Kafka-shaped (segments of record batches, one batch per Raft entry) and
//! snapshots are Kafka-style `.checkpoint` files; openraft only decides
//! *which* batches are committed. The controller keeps deciding with pure
//! functions over the image (`gregor_metadata::controller`); what it returns
//! is what gets proposed here.
//!
//! # Layout
//!
//! - [`codec`]: a Raft entry as a Kafka record batch and back (the
//!   index/term ↔ offset/epoch mapping is documented there).
//! - [`quorum_state`]: the `quorum-state` file (vote, committed, purged).
//! - [`log_store`]: [`LogStore`], openraft's log storage over
//!   `gregor_storage::Log`.
//! - [`checkpoint`]: the `<offset>-<epoch>.checkpoint` snapshot files.
//! - [`state_machine`]: [`StateMachine`], applies entries to the image and
//!   publishes it on a watch channel; builds and installs snapshots.
//! - [`network`]: the [`Transport`] seam (one object-safe method), the
//!   request/response envelopes a wire transport serialises, and openraft's
//!   network factory on top of it.
//! - [`router`]: [`InProcessRouter`], a transport for tests: every node in
//!   one process, any link can be cut.
//! - [`tcp`]: [`TcpTransport`] and [`tcp::serve`], the wire transport
//!   (length-prefixed JSON over TCP) served on the CONTROLLER listener,
//!   with a lane for the controller's own RPCs ([`AppHandler`]).
//! - [`quorum`]: [`MetadataQuorum`], the facade a broker uses (start,
//!   propose, image, subscribe, describe, add_learner, shutdown).
//!
//! # openraft features
//!
//! `serde` (RPCs and files are JSON), `storage-v2` (separate log storage and
//! state machine) and `single-term-leader`: one leader per term, as Raft and
//! Kafka's KRaft define it, so a log id is `(term, index)` and the term fits
//! the batch's single `partitionLeaderEpoch` field. (Without it openraft
//! allows several leaders per term and a log id also carries the leader's
//! node id, which a Kafka batch header has no place for.) Features are
//! workspace-wide in Cargo: any other openraft user in this workspace gets
//! the same mode.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use std::collections::BTreeMap;
//! use std::sync::Arc;
//! use gregor_raft::{InProcessRouter, MetadataQuorum, Node, QuorumConfig};
//! use gregor_metadata::MetadataRecord;
//!
//! let router = Arc::new(InProcessRouter::default());
//! let voters = BTreeMap::from([(1, Node::new("127.0.0.1", 9093))]);
//! let q = MetadataQuorum::start(1, "/tmp/meta".as_ref(), voters, router.clone(), QuorumConfig::default()).await?;
//! router.register(1, q.raft());
//! q.wait_for_leader(std::time::Duration::from_secs(5)).await?;
//! q.propose(vec![MetadataRecord::Cluster { cluster_id: "c".into() }]).await?;
//! assert_eq!(q.image().cluster_id.as_deref(), Some("c"));
//! q.shutdown().await?;
//! # Ok(()) }
//! ```

pub mod checkpoint;
pub mod codec;
pub mod log_store;
pub mod network;
pub mod quorum;
pub mod quorum_state;
pub mod router;
pub mod state_machine;
pub mod tcp;

use std::fmt;
use std::io::Cursor;

use gregor_metadata::MetadataRecord;
use serde::{Deserialize, Serialize};

pub use log_store::LogStore;
pub use network::{RaftRequest, RaftResponse, Transport, TransportError};
pub use quorum::{
    Conditional, Describe, MetadataQuorum, NotLeader, ProposeError, QuorumConfig, ReplicaState,
};
pub use router::InProcessRouter;
pub use state_machine::{AppliedImage, StateMachine};
pub use tcp::{Acceptor, AppHandler, AppLane, BoxStream, Connector, TcpTransport};

/// Kafka's `node.id`; the Raft node id.
pub type NodeId = u64;

/// A quorum member's controller endpoint (the CONTROLLER listener).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Node {
    pub host: String,
    pub port: u16,
}

impl Node {
    pub fn new(host: impl Into<String>, port: u16) -> Self {
        Self {
            host: host.into(),
            port,
        }
    }
}

impl fmt::Display for Node {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

/// The payload of a normal Raft entry: the records one controller decision
/// produced, applied all-or-nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Proposal {
    pub records: Vec<MetadataRecord>,
}

openraft::declare_raft_types!(
    /// openraft's type configuration for the metadata quorum.
    pub TypeConfig:
        D = Proposal,
        R = (),
        NodeId = NodeId,
        Node = Node,
);

/// A Raft entry of the metadata log.
pub type Entry = openraft::Entry<TypeConfig>;
/// A Raft log id (term + index).
pub type LogId = openraft::LogId<NodeId>;
/// The openraft handle of one node.
pub type Raft = openraft::Raft<TypeConfig>;
/// openraft's storage error, as its traits return it.
pub type StorageError = openraft::StorageError<NodeId>;

/// Errors of this crate's storage (the log, the quorum-state file, the
/// checkpoints), before they are handed to openraft.
#[derive(Debug, thiserror::Error)]
pub enum RaftStoreError {
    #[error("metadata log: {0}")]
    Storage(#[from] gregor_storage::StorageError),
    #[error("metadata log: {0}")]
    Records(#[from] gregor_records::RecordsError),
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: invalid JSON: {source}")]
    Json {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("metadata log batch at offset {offset}: {reason}")]
    BadBatch { offset: i64, reason: String },
    #[error("raft entry {index}: term {term} does not fit a Kafka leader epoch (i32)")]
    TermTooLarge { index: u64, term: u64 },
    #[error("raft entry {index}: index does not fit a Kafka offset (i64)")]
    IndexTooLarge { index: u64 },
    #[error("checkpoint {path}: {reason}")]
    BadCheckpoint { path: String, reason: String },
    #[error("blocking storage task failed: {0}")]
    Join(String),
}
