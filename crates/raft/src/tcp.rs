//! A minimal TCP [`Transport`]: length-prefixed JSON frames, one request at
//! a time per connection. A stand-in until Raft RPCs ride the CONTROLLER
//! listener next to Kafka's own framing; the shape is the same (a 4-byte
//! big-endian length, then the body), only the body is JSON.
//!
//! ```text
//! request:  len:u32 {"from":<node id>,"request":<RaftRequest>}
//! response: len:u32 <RaftResponse>
//! ```
//!
//! The client keeps one connection per peer (reconnecting after any error);
//! [`serve`] accepts connections and answers each frame with
//! [`crate::network::serve`] until its shutdown future completes, then
//! stops every connection task it started.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::network::{BoxFuture, RaftRequest, RaftResponse, Transport, TransportError};
use crate::{Node, NodeId, Raft};

/// Largest frame accepted either way (a snapshot chunk is far smaller).
pub const MAX_FRAME_BYTES: usize = 64 << 20;

#[derive(Serialize, Deserialize)]
struct RequestFrame {
    from: NodeId,
    request: RaftRequest,
}

async fn write_frame<T: Serialize>(s: &mut TcpStream, v: &T) -> std::io::Result<()> {
    let body = serde_json::to_vec(v).map_err(std::io::Error::other)?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&l| l as usize <= MAX_FRAME_BYTES)
        .ok_or_else(|| std::io::Error::other(format!("frame of {} bytes", body.len())))?;
    s.write_all(&len.to_be_bytes()).await?;
    s.write_all(&body).await?;
    s.flush().await
}

async fn read_frame<T: for<'de> Deserialize<'de>>(s: &mut TcpStream) -> std::io::Result<T> {
    let len = s.read_u32().await? as usize;
    if len > MAX_FRAME_BYTES {
        return Err(std::io::Error::other(format!(
            "frame of {len} bytes exceeds {MAX_FRAME_BYTES}"
        )));
    }
    let mut body = vec![0; len];
    s.read_exact(&mut body).await?;
    serde_json::from_slice(&body).map_err(std::io::Error::other)
}

type Slot = Arc<tokio::sync::Mutex<Option<TcpStream>>>;

/// The client side: one pooled connection per peer.
#[derive(Default)]
pub struct TcpTransport {
    conns: parking_lot::Mutex<HashMap<NodeId, Slot>>,
}

impl TcpTransport {
    fn slot(&self, node: NodeId) -> Slot {
        self.conns.lock().entry(node).or_default().clone()
    }
}

impl Transport for TcpTransport {
    fn send(
        &self,
        from: NodeId,
        to: NodeId,
        node: &Node,
        request: RaftRequest,
    ) -> BoxFuture<Result<RaftResponse, TransportError>> {
        let slot = self.slot(to);
        let addr = format!("{}:{}", node.host, node.port);
        Box::pin(async move {
            // The per-peer lock orders requests on its one connection; no
            // file I/O happens under it.
            let mut conn = slot.lock().await;
            let mut stream =
                match conn.take() {
                    Some(s) => s,
                    None => TcpStream::connect(&addr).await.map_err(|e| {
                        TransportError::Unreachable {
                            node: to,
                            reason: format!("connect {addr}: {e}"),
                        }
                    })?,
                };
            let frame = RequestFrame { from, request };
            let result = async {
                write_frame(&mut stream, &frame).await?;
                read_frame::<RaftResponse>(&mut stream).await
            }
            .await;
            match result {
                Ok(r) => {
                    *conn = Some(stream);
                    Ok(r)
                }
                // The connection is dropped; the next call reconnects.
                Err(e) => Err(TransportError::Failed {
                    node: to,
                    reason: format!("{addr}: {e}"),
                }),
            }
        })
    }
}

/// Answers Raft RPCs arriving on `listener` with `raft` until `shutdown`
/// completes; then stops every connection task and returns.
pub async fn serve(listener: TcpListener, raft: Raft, shutdown: impl Future<Output = ()>) {
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let raft = raft.clone();
                tasks.spawn(connection(stream, raft));
            }
            // Reap finished connection tasks so the set stays bounded.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    tasks.shutdown().await;
}

async fn connection(mut stream: TcpStream, raft: Raft) {
    loop {
        let frame: RequestFrame = match read_frame(&mut stream).await {
            Ok(f) => f,
            Err(_) => return, // closed or garbage: drop the connection
        };
        let response = crate::network::serve(&raft, frame.request).await;
        if write_frame(&mut stream, &response).await.is_err() {
            return;
        }
    }
}
