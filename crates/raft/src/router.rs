//! [`InProcessRouter`]: a [`Transport`] between nodes of one process, for
//! tests. Every request and answer goes through `serde_json` as a wire
//! transport's would, so what works here serialises. Links can be cut one
//! by one ([`InProcessRouter::cut`]) or all links of a node at once
//! ([`InProcessRouter::isolate`]); a cut link answers `Unreachable`.

use std::collections::{BTreeMap, BTreeSet};

use parking_lot::Mutex;

use crate::network::{serve, BoxFuture, RaftRequest, RaftResponse, Transport, TransportError};
use crate::{Node, NodeId, Raft};

#[derive(Default)]
pub struct InProcessRouter {
    nodes: Mutex<BTreeMap<NodeId, Raft>>,
    /// Cut links, stored as (low id, high id): a cut is both ways.
    cut: Mutex<BTreeSet<(NodeId, NodeId)>>,
    isolated: Mutex<BTreeSet<NodeId>>,
}

impl std::fmt::Debug for InProcessRouter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("InProcessRouter")
            .field("nodes", &self.nodes.lock().keys().collect::<Vec<_>>())
            .field("cut", &*self.cut.lock())
            .field("isolated", &*self.isolated.lock())
            .finish()
    }
}

fn link(a: NodeId, b: NodeId) -> (NodeId, NodeId) {
    (a.min(b), a.max(b))
}

impl InProcessRouter {
    /// Makes `raft` reachable as node `id` (replacing an earlier one).
    pub fn register(&self, id: NodeId, raft: Raft) {
        self.nodes.lock().insert(id, raft);
    }

    /// Removes node `id` (a stopped node): requests to it are unreachable.
    pub fn unregister(&self, id: NodeId) {
        self.nodes.lock().remove(&id);
    }

    /// Cuts the link between `a` and `b`, both ways.
    pub fn cut(&self, a: NodeId, b: NodeId) {
        self.cut.lock().insert(link(a, b));
    }

    /// Cuts every link of `id`.
    pub fn isolate(&self, id: NodeId) {
        self.isolated.lock().insert(id);
    }

    /// Restores every link.
    pub fn heal(&self) {
        self.cut.lock().clear();
        self.isolated.lock().clear();
    }

    fn connected(&self, a: NodeId, b: NodeId) -> bool {
        let isolated = self.isolated.lock();
        !isolated.contains(&a) && !isolated.contains(&b) && !self.cut.lock().contains(&link(a, b))
    }
}

fn through_json<T: serde::Serialize + serde::de::DeserializeOwned>(
    node: NodeId,
    v: &T,
) -> Result<T, TransportError> {
    let failed = |e: serde_json::Error| TransportError::Failed {
        node,
        reason: format!("serialisation: {e}"),
    };
    let bytes = serde_json::to_vec(v).map_err(failed)?;
    serde_json::from_slice(&bytes).map_err(failed)
}

impl Transport for InProcessRouter {
    fn send(
        &self,
        from: NodeId,
        to: NodeId,
        _node: &Node,
        request: RaftRequest,
    ) -> BoxFuture<Result<RaftResponse, TransportError>> {
        let target = if self.connected(from, to) {
            self.nodes.lock().get(&to).cloned()
        } else {
            None
        };
        Box::pin(async move {
            let Some(raft) = target else {
                return Err(TransportError::Unreachable {
                    node: to,
                    reason: "link cut or node not running".into(),
                });
            };
            let request = through_json(to, &request)?;
            let response = serve(&raft, request).await;
            through_json(to, &response)
        })
    }
}
