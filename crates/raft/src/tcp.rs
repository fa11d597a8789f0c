//! The TCP [`Transport`] a node serves on its CONTROLLER listener:
//! length-prefixed frames (a 4-byte big-endian length, then the body, as
//! Kafka frames requests), one request at a time per connection. The body is
//! JSON, not Kafka's KRaft RPCs: only quorum members speak it.
//!
//! ```text
//! request:  len:u32 {"Raft":{"from":<node id>,"request":<RaftRequest>}}
//! response: len:u32 <RaftResponse>
//! request:  len:u32 {"App":{"from":<node id>,"body":<JSON>}}
//! response: len:u32 <JSON>
//! ```
//!
//! `App` frames carry the controller's own RPCs (proposals forwarded to the
//! active controller, broker heartbeats, observers' metadata polls): the
//! crate moves them, an [`AppHandler`] given to [`serve`] answers them. Each
//! [`AppLane`] has its own pooled connection per peer, apart from Raft's, so
//! a slow proposal never delays a Raft or a broker heartbeat.
//!
//! The client keeps one connection per peer (reconnecting after any error);
//! [`serve`] accepts connections and answers each frame with
//! [`crate::network::serve`] until its shutdown future completes, then
//! stops every connection task it started.
//!
//! # Securing the link
//!
//! The frames ride any byte stream. A [`Connector`] given to
//! [`TcpTransport::with_connector`] turns a peer's address into a ready
//! stream (TCP, then TLS and a SASL exchange, as the controller listener's
//! security protocol says), and an [`Acceptor`] given to [`serve_with`] does
//! the server's half on each accepted socket before the first frame is read.
//! The crate knows neither TLS nor SASL: the broker crate implements both
//! traits (`gregor_broker::transport::client`) from Kafka's configs.

use std::collections::HashMap;
use std::future::Future;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;

use crate::network::{BoxFuture, RaftRequest, RaftResponse, Transport, TransportError};
use crate::{Node, NodeId, Raft};

/// Largest frame accepted either way (a snapshot chunk is far smaller).
pub const MAX_FRAME_BYTES: usize = 64 << 20;

#[derive(Serialize, Deserialize)]
enum RequestFrame {
    Raft {
        from: NodeId,
        request: RaftRequest,
    },
    App {
        from: NodeId,
        body: serde_json::Value,
    },
}

/// Answers the `App` frames arriving at [`serve`].
pub trait AppHandler: Send + Sync + 'static {
    fn handle(&self, from: NodeId, body: serde_json::Value) -> BoxFuture<serde_json::Value>;

    /// A connection that carried `App` frames from `from` was closed by the
    /// peer (or broke). A process that dies closes all of its connections at
    /// once, so this is the first sign of a crash; a live peer reconnects on
    /// its next request.
    fn closed(&self, _from: NodeId) {}
}

/// A connected byte stream: a TCP socket, or TLS over one.
pub trait Stream: AsyncRead + AsyncWrite + Send + Sync + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Sync + Unpin> Stream for T {}

/// A [`Stream`] of any kind.
pub type BoxStream = Box<dyn Stream>;

/// The client's half of a secured link: opens a connection to `addr`
/// (`host:port`) and completes whatever the listener demands (TLS, SASL)
/// before frames flow. An error names what failed (it ends up in the log).
pub trait Connector: Send + Sync + 'static {
    fn connect(&self, addr: String) -> BoxFuture<std::io::Result<BoxStream>>;
}

/// The server's half: secures an accepted socket (TLS handshake, SASL
/// exchange). An error closes that connection only.
pub trait Acceptor: Send + Sync + 'static {
    fn accept(
        &self,
        socket: TcpStream,
        peer: std::net::SocketAddr,
    ) -> BoxFuture<std::io::Result<BoxStream>>;
}

/// Plain TCP, the PLAINTEXT listener's connector.
struct PlainConnector;

impl Connector for PlainConnector {
    fn connect(&self, addr: String) -> BoxFuture<std::io::Result<BoxStream>> {
        Box::pin(async move {
            let s = TcpStream::connect(&addr).await?;
            s.set_nodelay(true)?;
            Ok(Box::new(s) as BoxStream)
        })
    }
}

async fn write_frame<T: Serialize>(s: &mut BoxStream, v: &T) -> std::io::Result<()> {
    let body = serde_json::to_vec(v).map_err(std::io::Error::other)?;
    let len = u32::try_from(body.len())
        .ok()
        .filter(|&l| l as usize <= MAX_FRAME_BYTES)
        .ok_or_else(|| std::io::Error::other(format!("frame of {} bytes", body.len())))?;
    s.write_all(&len.to_be_bytes()).await?;
    s.write_all(&body).await?;
    s.flush().await
}

async fn read_frame<T: for<'de> Deserialize<'de>>(s: &mut BoxStream) -> std::io::Result<T> {
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

type Slot = Arc<tokio::sync::Mutex<Option<BoxStream>>>;

/// Which pooled connection an `App` request rides on: one request at a
/// time per connection, so requests that may wait (a proposal, a long poll)
/// must not hold up those that must not (heartbeats).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AppLane {
    Requests,
    Heartbeats,
    LongPolls,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Lane {
    Raft,
    App(AppLane),
}

/// The client side: one pooled connection per peer and lane.
pub struct TcpTransport {
    conns: parking_lot::Mutex<HashMap<(NodeId, Lane), Slot>>,
    connector: Arc<dyn Connector>,
}

impl Default for TcpTransport {
    /// Plain TCP connections (a PLAINTEXT controller listener).
    fn default() -> Self {
        Self::with_connector(Arc::new(PlainConnector))
    }
}

impl TcpTransport {
    /// Connections opened by `connector` (TLS, SASL: see [`Connector`]).
    pub fn with_connector(connector: Arc<dyn Connector>) -> Self {
        Self {
            conns: Default::default(),
            connector,
        }
    }

    fn slot(&self, node: NodeId, lane: Lane) -> Slot {
        self.conns.lock().entry((node, lane)).or_default().clone()
    }

    /// Sends one `App` frame to node `to` on `lane` and returns its answer.
    pub async fn call_app(
        &self,
        lane: AppLane,
        from: NodeId,
        to: NodeId,
        node: &Node,
        body: serde_json::Value,
    ) -> Result<serde_json::Value, TransportError> {
        exchange(
            self.slot(to, Lane::App(lane)),
            self.connector.clone(),
            to,
            format!("{}:{}", node.host, node.port),
            RequestFrame::App { from, body },
        )
        .await
    }
}

/// One request and its answer on the pooled connection in `slot`.
async fn exchange<R: for<'de> Deserialize<'de>>(
    slot: Slot,
    connector: Arc<dyn Connector>,
    to: NodeId,
    addr: String,
    frame: RequestFrame,
) -> Result<R, TransportError> {
    // The per-peer lock orders requests on its one connection; no file I/O
    // happens under it.
    let mut conn = slot.lock().await;
    let mut stream = match conn.take() {
        Some(s) => s,
        None => connector
            .connect(addr.clone())
            .await
            .map_err(|e| TransportError::Unreachable {
                node: to,
                reason: format!("connect {addr}: {e}"),
            })?,
    };
    let result = async {
        write_frame(&mut stream, &frame).await?;
        read_frame::<R>(&mut stream).await
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
}

impl Transport for TcpTransport {
    fn send(
        &self,
        from: NodeId,
        to: NodeId,
        node: &Node,
        request: RaftRequest,
    ) -> BoxFuture<Result<RaftResponse, TransportError>> {
        let slot = self.slot(to, Lane::Raft);
        let addr = format!("{}:{}", node.host, node.port);
        Box::pin(exchange(
            slot,
            self.connector.clone(),
            to,
            addr,
            RequestFrame::Raft { from, request },
        ))
    }
}

/// Answers Raft RPCs arriving on `listener` with `raft` (and `App` frames
/// with `app`; without one they close the connection) until `shutdown`
/// completes; then stops every connection task and returns.
pub async fn serve(
    listener: TcpListener,
    raft: Raft,
    app: Option<Arc<dyn AppHandler>>,
    shutdown: impl Future<Output = ()>,
) {
    serve_with(listener, None, raft, app, shutdown).await
}

/// [`serve`], each accepted socket first secured by `acceptor` (`None`:
/// plain TCP).
pub async fn serve_with(
    listener: TcpListener,
    acceptor: Option<Arc<dyn Acceptor>>,
    raft: Raft,
    app: Option<Arc<dyn AppHandler>>,
    shutdown: impl Future<Output = ()>,
) {
    let mut tasks = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let Ok((socket, peer)) = accepted else { continue };
                let raft = raft.clone();
                let (app, acceptor) = (app.clone(), acceptor.clone());
                tasks.spawn(async move {
                    let _ = socket.set_nodelay(true);
                    let stream = match acceptor {
                        None => Box::new(socket) as BoxStream,
                        Some(a) => match a.accept(socket, peer).await {
                            Ok(s) => s,
                            Err(e) => {
                                // Kafka logs a failed authentication at INFO:
                                // a misconfigured peer retries often.
                                tracing::info!(%peer, error = %e, "controller listener: connection closed before its first frame");
                                return;
                            }
                        },
                    };
                    connection(stream, raft, app).await
                });
            }
            // Reap finished connection tasks so the set stays bounded.
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    tasks.shutdown().await;
}

async fn connection(mut stream: BoxStream, raft: Raft, app: Option<Arc<dyn AppHandler>>) {
    let mut app_peer: Option<NodeId> = None;
    loop {
        let frame: RequestFrame = match read_frame(&mut stream).await {
            Ok(f) => f,
            Err(_) => {
                // Closed or garbage: drop the connection.
                if let (Some(app), Some(from)) = (&app, app_peer) {
                    app.closed(from);
                }
                return;
            }
        };
        let written = match frame {
            RequestFrame::Raft { request, .. } => {
                let response = crate::network::serve(&raft, request).await;
                write_frame(&mut stream, &response).await
            }
            RequestFrame::App { from, body } => {
                let Some(app) = &app else { return };
                app_peer = Some(from);
                let response = app.handle(from, body).await;
                write_frame(&mut stream, &response).await
            }
        };
        if written.is_err() {
            return;
        }
    }
}
