//! A cluster of metadata quorum nodes in one process, over the in-process
//! router. Waits poll the nodes with a deadline; nothing sleeps to assert.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use gregor_metadata::{ConfigResource, MetadataImage, MetadataRecord};
use gregor_raft::{InProcessRouter, MetadataQuorum, Node, NodeId, QuorumConfig};
use openraft::ServerState;
use tempfile::TempDir;

pub const DEADLINE: Duration = Duration::from_secs(30);

pub fn config() -> QuorumConfig {
    QuorumConfig {
        election_timeout_ms: 800,
        heartbeat_interval_ms: 60,
        ..QuorumConfig::default()
    }
}

/// Polls `check` every 10 ms until it returns `Some`, or panics with `what`
/// after [`DEADLINE`].
pub async fn eventually<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// One config record per proposal, so every proposal is visible in the image.
pub fn proposal(i: u32) -> Vec<MetadataRecord> {
    vec![MetadataRecord::Config {
        resource: ConfigResource::Topic(format!("t{i}")),
        name: "retention.ms".into(),
        value: Some(i.to_string()),
    }]
}

pub fn has_proposal(image: &MetadataImage, i: u32) -> bool {
    image
        .configs(&ConfigResource::Topic(format!("t{i}")))
        .and_then(|c| c.get("retention.ms"))
        .is_some_and(|v| *v == i.to_string())
}

pub struct Cluster {
    pub router: Arc<InProcessRouter>,
    pub voters: BTreeMap<NodeId, Node>,
    pub dirs: BTreeMap<NodeId, TempDir>,
    pub nodes: BTreeMap<NodeId, MetadataQuorum>,
    pub config: QuorumConfig,
}

impl Cluster {
    /// Voters `1..=n`, not started.
    pub fn new(n: u64, config: QuorumConfig) -> Self {
        Self {
            router: Arc::new(InProcessRouter::default()),
            voters: (1..=n).map(|i| (i, node(i))).collect(),
            dirs: BTreeMap::new(),
            nodes: BTreeMap::new(),
            config,
        }
    }

    /// Starts every voter.
    pub async fn start_voters(n: u64) -> Self {
        let mut c = Self::new(n, config());
        for id in 1..=n {
            c.start(id).await;
        }
        c
    }

    /// Starts node `id` from its directory (created on first start).
    pub async fn start(&mut self, id: NodeId) {
        let dir = self
            .dirs
            .entry(id)
            .or_insert_with(|| tempfile::tempdir().expect("temp dir"))
            .path()
            .to_path_buf();
        let q = MetadataQuorum::start(
            id,
            &dir,
            self.voters.clone(),
            self.router.clone(),
            self.config.clone(),
        )
        .await
        .expect("start node");
        self.router.register(id, q.raft());
        self.nodes.insert(id, q);
    }

    /// Stops node `id` (its Raft tasks end, its log is closed).
    pub async fn stop(&mut self, id: NodeId) {
        self.router.unregister(id);
        if let Some(q) = self.nodes.remove(&id) {
            q.shutdown().await.expect("shutdown");
        }
    }

    pub async fn stop_all(mut self) {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        for id in ids {
            self.stop(id).await;
        }
    }

    pub fn node(&self, id: NodeId) -> &MetadataQuorum {
        &self.nodes[&id]
    }

    /// Waits until one of `among` is leader and every other node of
    /// `among` follows it.
    pub async fn leader_among(&self, among: &[NodeId]) -> NodeId {
        eventually("a leader", || async {
            let leader = among
                .iter()
                .copied()
                .find(|id| self.nodes[id].metrics().borrow().state == ServerState::Leader)?;
            let term = self.nodes[&leader].metrics().borrow().current_term;
            among
                .iter()
                .all(|id| {
                    let m = self.nodes[id].metrics().borrow().clone();
                    m.current_leader == Some(leader) && m.current_term == term
                })
                .then_some(leader)
        })
        .await
    }

    pub async fn leader(&self) -> NodeId {
        let ids: Vec<NodeId> = self.nodes.keys().copied().collect();
        self.leader_among(&ids).await
    }

    /// Waits until every node in `ids` has applied an image equal to `image`.
    pub async fn images_equal(&self, ids: &[NodeId], image: &MetadataImage) {
        eventually("equal images", || async {
            ids.iter()
                .all(|id| *self.nodes[id].image() == *image)
                .then_some(())
        })
        .await
    }
}

pub fn node(id: NodeId) -> Node {
    Node::new("127.0.0.1", 9000 + id as u16)
}
