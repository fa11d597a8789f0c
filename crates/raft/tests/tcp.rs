//! Three voters over real sockets (the TCP transport on 127.0.0.1:0).

mod common;

use std::collections::BTreeMap;
use std::sync::Arc;

use common::{eventually, has_proposal, proposal};
use gregor_raft::{tcp, MetadataQuorum, Node, TcpTransport};
use openraft::ServerState;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_voters_over_tcp_elect_and_replicate() {
    let mut listeners = BTreeMap::new();
    let mut voters = BTreeMap::new();
    for id in 1..=3u64 {
        let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        voters.insert(id, Node::new("127.0.0.1", port));
        listeners.insert(id, l);
    }
    let dirs: Vec<_> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
    let mut nodes = BTreeMap::new();
    let mut servers = Vec::new();
    for (id, listener) in listeners {
        let q = MetadataQuorum::start(
            id,
            dirs[id as usize - 1].path(),
            voters.clone(),
            Arc::new(TcpTransport::default()),
            common::config(),
        )
        .await
        .unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tokio::spawn(tcp::serve(listener, q.raft(), None, async {
            let _ = stopped.await;
        }));
        servers.push((stop, server));
        nodes.insert(id, q);
    }
    let leader = eventually("a leader", || async {
        nodes
            .iter()
            .find(|(_, q)| q.metrics().borrow().state == ServerState::Leader)
            .map(|(id, _)| *id)
    })
    .await;
    for i in 0..3 {
        nodes[&leader].propose(proposal(i)).await.unwrap();
    }
    let image = nodes[&leader].image();
    assert!((0..3).all(|i| has_proposal(&image, i)));
    eventually("equal images", || async {
        nodes.values().all(|q| *q.image() == *image).then_some(())
    })
    .await;
    for q in nodes.into_values() {
        q.shutdown().await.unwrap();
    }
    for (stop, server) in servers {
        let _ = stop.send(());
        server.await.unwrap();
    }
}
