//! How quorum members reach each other.
//!
//! openraft's network traits are generic and have several methods; a wire
//! transport only needs to move one request to one node and bring back its
//! answer. So the seam is [`Transport`]: one object-safe method taking a
//! [`RaftRequest`] and returning a [`RaftResponse`], both plain serde enums.
//! The receiving side hands the request to [`serve`]. The in-process
//! [`crate::router::InProcessRouter`] implements it for tests;
//! [`crate::tcp::TcpTransport`] is the wire one (a length-prefixed frame per
//! request over the CONTROLLER listener).
//!
//! [`NetworkFactory`] adapts a `Transport` to openraft and records, per
//! follower, when it last answered the leader and when it last held
//! everything the leader had committed: DescribeQuorum's
//! `lastFetchTimestamp` and `lastCaughtUpTimestamp` (openraft 0.9's metrics
//! do not keep them).

use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use gregor_storage::Clock;
use openraft::error::{
    InstallSnapshotError, NetworkError, RPCError, RaftError, RemoteError, Unreachable,
};
use openraft::network::{RPCOption, RaftNetwork, RaftNetworkFactory};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};

use crate::{Node, NodeId, Raft, TypeConfig};

/// A boxed, sendable future (what [`Transport::send`] returns).
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// A Raft RPC to one node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum RaftRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<NodeId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
}

/// The answer to a [`RaftRequest`]: the receiving node's result as is.
#[derive(Debug, Serialize, Deserialize)]
pub enum RaftResponse {
    AppendEntries(Result<AppendEntriesResponse<NodeId>, RaftError<NodeId>>),
    Vote(Result<VoteResponse<NodeId>, RaftError<NodeId>>),
    InstallSnapshot(
        Result<InstallSnapshotResponse<NodeId>, RaftError<NodeId, InstallSnapshotError>>,
    ),
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// No route or connection to the node: openraft backs off before retrying.
    #[error("node {node} is unreachable: {reason}")]
    Unreachable { node: NodeId, reason: String },
    /// The request may not have arrived (timeout, broken connection).
    #[error("request to node {node} failed: {reason}")]
    Failed { node: NodeId, reason: String },
}

/// Moves one request to one node. Implementations: the in-process router
/// (tests) and, later, the CONTROLLER-listener client.
pub trait Transport: Send + Sync + 'static {
    fn send(
        &self,
        from: NodeId,
        to: NodeId,
        node: &Node,
        request: RaftRequest,
    ) -> BoxFuture<Result<RaftResponse, TransportError>>;
}

/// The receiving side: runs `request` on the local node.
pub async fn serve(raft: &Raft, request: RaftRequest) -> RaftResponse {
    match request {
        RaftRequest::AppendEntries(r) => RaftResponse::AppendEntries(raft.append_entries(r).await),
        RaftRequest::Vote(r) => RaftResponse::Vote(raft.vote(r).await),
        RaftRequest::InstallSnapshot(r) => {
            RaftResponse::InstallSnapshot(raft.install_snapshot(r).await)
        }
    }
}

/// What the leader saw of one follower; times in ms of the quorum's clock.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerContact {
    /// Last successful AppendEntries (heartbeats included).
    pub last_fetch_ms: Option<i64>,
    /// Last time the follower held every entry the leader had committed.
    pub last_caught_up_ms: Option<i64>,
}

/// Contact times per follower, filled by the connections of this node.
#[derive(Debug, Default)]
pub struct PeerTracker {
    peers: Mutex<BTreeMap<NodeId, PeerContact>>,
}

impl PeerTracker {
    pub fn get(&self, node: NodeId) -> PeerContact {
        self.peers.lock().get(&node).copied().unwrap_or_default()
    }

    fn record(&self, node: NodeId, now: i64, caught_up: bool) {
        let mut peers = self.peers.lock();
        let p = peers.entry(node).or_default();
        p.last_fetch_ms = Some(now);
        if caught_up {
            p.last_caught_up_ms = Some(now);
        }
    }
}

/// openraft's network factory over a [`Transport`].
#[derive(Clone)]
pub struct NetworkFactory {
    pub(crate) from: NodeId,
    pub(crate) transport: Arc<dyn Transport>,
    pub(crate) peers: Arc<PeerTracker>,
    pub(crate) clock: Arc<dyn Clock>,
}

impl RaftNetworkFactory<TypeConfig> for NetworkFactory {
    type Network = Connection;

    async fn new_client(&mut self, target: NodeId, node: &Node) -> Connection {
        Connection {
            factory: self.clone(),
            target,
            node: node.clone(),
        }
    }
}

/// openraft's view of the link to one node.
pub struct Connection {
    factory: NetworkFactory,
    target: NodeId,
    node: Node,
}

type RpcError<E = openraft::error::Infallible> = RPCError<NodeId, Node, RaftError<NodeId, E>>;

impl Connection {
    async fn call<E: std::error::Error>(
        &self,
        request: RaftRequest,
        option: &RPCOption,
    ) -> Result<RaftResponse, RpcError<E>> {
        let f = &self.factory;
        let send = f.transport.send(f.from, self.target, &self.node, request);
        match tokio::time::timeout(option.hard_ttl(), send).await {
            Ok(Ok(r)) => Ok(r),
            Ok(Err(e @ TransportError::Unreachable { .. })) => {
                Err(RPCError::Unreachable(Unreachable::new(&e)))
            }
            Ok(Err(e)) => Err(RPCError::Network(NetworkError::new(&e))),
            Err(_) => {
                let e = TransportError::Failed {
                    node: self.target,
                    reason: format!("no answer within {:?}", option.hard_ttl()),
                };
                Err(RPCError::Network(NetworkError::new(&e)))
            }
        }
    }

    fn remote<E: std::error::Error>(&self, e: RaftError<NodeId, E>) -> RpcError<E> {
        RPCError::RemoteError(RemoteError::new_with_node(
            self.target,
            self.node.clone(),
            e,
        ))
    }

    fn mismatch<E: std::error::Error>(&self) -> RpcError<E> {
        let e = TransportError::Failed {
            node: self.target,
            reason: "answer does not match the request".into(),
        };
        RPCError::Network(NetworkError::new(&e))
    }
}

impl RaftNetwork<TypeConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, RpcError> {
        let last = rpc.entries.last().map(|e| e.log_id).or(rpc.prev_log_id);
        let caught_up = last >= rpc.leader_commit;
        match self.call(RaftRequest::AppendEntries(rpc), &option).await? {
            RaftResponse::AppendEntries(Ok(r)) => {
                if matches!(r, AppendEntriesResponse::Success) {
                    let now = self.factory.clock.now_ms();
                    self.factory.peers.record(self.target, now, caught_up);
                }
                Ok(r)
            }
            RaftResponse::AppendEntries(Err(e)) => Err(self.remote(e)),
            _ => Err(self.mismatch()),
        }
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<TypeConfig>,
        option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, RpcError<InstallSnapshotError>> {
        match self
            .call(RaftRequest::InstallSnapshot(rpc), &option)
            .await?
        {
            RaftResponse::InstallSnapshot(Ok(r)) => Ok(r),
            RaftResponse::InstallSnapshot(Err(e)) => Err(self.remote(e)),
            _ => Err(self.mismatch()),
        }
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, RpcError> {
        match self.call(RaftRequest::Vote(rpc), &option).await? {
            RaftResponse::Vote(Ok(r)) => Ok(r),
            RaftResponse::Vote(Err(e)) => Err(self.remote(e)),
            _ => Err(self.mismatch()),
        }
    }
}
