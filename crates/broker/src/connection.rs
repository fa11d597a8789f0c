//! One client connection: read size-prefixed frames, answer them in order.
//!
//! Requests on a connection are handled one at a time, in arrival order, as
//! Kafka does, so pipelined requests are answered in order. Responses are
//! buffered and flushed when no further request is already waiting, so a
//! pipelining producer gets its acknowledgements in few writes, and also
//! before a request that has to wait (a long-poll fetch, a JoinGroup parked
//! until the rebalance completes), so no answer waits on a later request.
//!
//! The byte stream is whatever the listener accepted: [`serve_tcp`] for a
//! plain socket (its owned halves, as fast as a socket gets here), [`serve`]
//! for any `AsyncRead + AsyncWrite` stream (TLS).
//!
//! On a SASL listener every frame first passes the connection's SASL gate
//! (`transport::sasl`): before authentication only ApiVersions and the SASL
//! exchange pass, anything else closes the connection; a failed exchange is
//! answered after `connection.failed.authentication.delay.ms`, then closed.
//! Other listeners skip the gate with one branch.

use std::sync::Arc;
use std::time::Instant;

use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::broker::Broker;
use crate::handlers::{self, DispatchError};
pub use crate::transport::frame_io::{FrameRead, FrameWrite};
use crate::transport::frame_io::{FrameReader, FrameWriter};
use crate::transport::sasl::{AuthStep, Gate, SaslSession};
use crate::transport::ConnectionContext;

#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    #[error("i/o: {0}")]
    Io(#[from] std::io::Error),
    #[error("request of {size} bytes exceeds socket.request.max.bytes {max}")]
    TooLarge { size: i64, max: usize },
    #[error(transparent)]
    Dispatch(#[from] DispatchError),
}

/// Serves a plain TCP connection (see [`serve_halves`]).
pub async fn serve_tcp(
    broker: Arc<Broker>,
    socket: TcpStream,
    connection: Arc<ConnectionContext>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), ConnectionError> {
    socket.set_nodelay(true)?;
    let (rd, wr) = socket.into_split();
    serve_halves(broker, rd, wr, connection, shutdown).await
}

/// Serves a connection over any byte stream (a TLS stream; see [`serve_halves`]).
pub async fn serve<S>(
    broker: Arc<Broker>,
    stream: S,
    connection: Arc<ConnectionContext>,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), ConnectionError>
where
    S: AsyncRead + AsyncWrite + Unpin + Send,
    tokio::io::ReadHalf<S>: FrameRead,
    tokio::io::WriteHalf<S>: FrameWrite,
{
    let (rd, wr) = tokio::io::split(stream);
    serve_halves(broker, rd, wr, connection, shutdown).await
}

/// Serves one connection until the peer closes it, a protocol error occurs,
/// or `shutdown` fires (between requests: an in-flight request completes).
pub async fn serve_halves<R, W>(
    broker: Arc<Broker>,
    rd: R,
    wr: W,
    connection: Arc<ConnectionContext>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) -> Result<(), ConnectionError>
where
    R: FrameRead,
    W: FrameWrite,
{
    // Buffers only while bytes move (`transport::frame_io`): an idle
    // connection holds none.
    let mut reader = FrameReader::new(rd);
    let mut writer = FrameWriter::new(wr);
    let max = broker.config.socket_request_max_bytes;
    // connections.max.idle.ms: no request for that long closes the connection.
    let idle = (broker.config.connections_max_idle_ms > 0)
        .then(|| std::time::Duration::from_millis(broker.config.connections_max_idle_ms as u64));
    let timing = Arc::new(crate::metrics::RequestTiming::default());
    let slow = broker
        .config
        .metrics
        .request_log_threshold_ms
        .map(std::time::Duration::from_millis);
    loop {
        let idle_timeout = async {
            match idle {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        let size = tokio::select! {
            biased;
            _ = shutdown.changed() => break,
            size = reader.read_size() => match size {
                Ok(Some(s)) => s,
                Ok(None) => break,
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => break,
                Err(e) => return Err(e.into()),
            },
            () = idle_timeout => {
                tracing::debug!(peer = ?connection.peer, "closing a connection idle for connections.max.idle.ms");
                break;
            }
        };
        if size < 0 || size as usize > max {
            // Kafka closes the connection on an invalid size (InvalidReceiveException).
            return Err(ConnectionError::TooLarge {
                size: size as i64,
                max,
            });
        }
        // Read into spare capacity: no zeroing of up to socket.request.max.bytes.
        let size = size as usize;
        // queued.max.request.bytes: not read until the memory is there,
        // held until the request is handled.
        let _reserved = broker.request_memory.reserve(size).await;
        let frame = reader.read_frame(size).await?;
        // SASL listeners only: before authentication, only the handshake passes.
        if let Some(sasl) = connection.sasl() {
            match sasl_gate(&broker, sasl, &frame, &connection, &mut writer).await? {
                Flow::Dispatch => {}
                Flow::Answered => {
                    if !reader.has_buffered() {
                        writer.flush().await?;
                    }
                    continue;
                }
                Flow::Close => break,
            }
        }
        let received = Instant::now();
        let api_key = frame
            .get(..2)
            .map_or(-1, |k| i16::from_be_bytes([k[0], k[1]]));
        // Only for the slow-request log and the request observer (OpenTelemetry):
        // the header's client id, read if needed.
        let head = (slow.is_some() || crate::metrics::request_observer().is_some())
            .then(|| frame.slice(..frame.len().min(1024)));
        // Boxed: the handlers' futures are large (the largest of every API's
        // state), and inline they would be part of every idle connection's
        // task; boxed, only a request being handled holds one.
        let mut handled = Box::pin(handlers::dispatch(&broker, frame, &connection, &timing));
        let handled = tokio::select! {
            biased;
            done = &mut handled => done,
            // The request waits (a long-poll fetch, a parked JoinGroup):
            // the answers already buffered must not wait with it.
            () = std::future::ready(()) => {
                writer.flush().await?;
                handled.await
            }
        };
        let handled_at = Instant::now();
        // A client over a quota: hold the response (old clients) or mute
        // the connection after it (KIP-219 clients throttle themselves).
        let throttle = connection.take_throttle();
        // When the response went out (none for requests without one).
        let sent_at = match handled {
            Ok(Some(response)) => {
                // A failed SASL exchange: the answer waits (to slow password
                // guessing), then the connection closes.
                if let Some(delay) = connection.sasl().and_then(|s| s.lock().failed_delay()) {
                    writer.flush().await?;
                    tokio::time::sleep(delay).await;
                    write_frame(&mut writer, response).await?;
                    break;
                }
                if let Some(t) = throttle.filter(|t| !t.client_throttles) {
                    writer.flush().await?;
                    if !throttle_sleep(t.time, &mut shutdown).await {
                        break;
                    }
                }
                let send = Instant::now();
                // Flushed right after unless more requests are waiting.
                writer.write_through(!reader.has_buffered());
                write_frame(&mut writer, response).await?;
                Some(send)
            }
            Ok(None) => None,
            Err(e) => {
                // Answers to the requests before this one still go out before the close.
                let _ = writer.flush().await;
                return Err(e.into());
            }
        };
        record_times(
            &broker,
            &connection,
            api_key,
            head,
            &timing,
            received,
            handled_at,
            sent_at,
            slow,
        );
        if let Some(t) = throttle.filter(|t| t.client_throttles) {
            // Muted: the next request is not read until the time is up.
            writer.flush().await?;
            if !throttle_sleep(t.time, &mut shutdown).await {
                break;
            }
        }
        if !reader.has_buffered() {
            writer.flush().await?;
        }
        // Fairness: requests pipelined into the read buffer are served
        // without touching the socket, so tokio's cooperative budget alone
        // would let one busy client hold its worker thread; one unit per
        // request makes the task yield to the others every 128 requests.
        tokio::task::coop::consume_budget().await;
    }
    // Flushes, then ends the stream: a FIN on TCP, close_notify then FIN on TLS.
    writer.shutdown().await?;
    Ok(())
}

/// Records one answered request's phases in the registry and, past
/// `gregor.request.log.threshold.ms`, logs it (Kafka's request logger).
#[allow(clippy::too_many_arguments)] // one request's timestamps, passed once
fn record_times(
    broker: &Broker,
    connection: &ConnectionContext,
    api_key: i16,
    head: Option<bytes::Bytes>,
    timing: &crate::metrics::RequestTiming,
    received: Instant,
    handled_at: Instant,
    send: Option<Instant>,
    slow: Option<std::time::Duration>,
) {
    let done = Instant::now();
    let remote = timing.take_remote();
    let handling = handled_at.duration_since(received);
    let times = crate::metrics::RequestTimes {
        local: handling.saturating_sub(remote),
        remote,
        response_send: send.map_or_else(Default::default, |s| done.duration_since(s)),
        total: done.duration_since(received),
    };
    broker.metrics.record_request(api_key, &times);
    let error_code = timing.take_error();
    let observer = crate::metrics::request_observer();
    let logged = slow.is_some_and(|t| times.total >= t);
    if !logged && observer.is_none() {
        return;
    }
    let (version, correlation_id, client_id) = head
        .as_deref()
        .map(crate::metrics::request_header_fields)
        .unwrap_or((-1, -1, String::new()));
    let throttle = send.map_or(Default::default(), |s| s.duration_since(handled_at));
    if let Some(observer) = observer {
        observer.request(&crate::metrics::RequestRecord {
            api_key,
            api_version: version,
            correlation_id,
            client_id: &client_id,
            principal: &connection.principal().to_string(),
            listener: &connection.listener,
            error_code,
            start: std::time::SystemTime::now()
                .checked_sub(times.total)
                .unwrap_or(std::time::UNIX_EPOCH),
            times: &times,
            throttle,
        });
    }
    if logged {
        tracing::info!(
            target: "kafka.request.logger",
            api = %crate::metrics::api_name(api_key),
            api_version = version,
            correlation_id,
            client_id = %client_id,
            principal = %connection.principal(),
            listener = %connection.listener,
            peer = ?connection.peer,
            total_ms = times.total.as_secs_f64() * 1000.0,
            local_ms = times.local.as_secs_f64() * 1000.0,
            remote_ms = times.remote.as_secs_f64() * 1000.0,
            throttle_ms = throttle.as_secs_f64() * 1000.0,
            response_send_ms = times.response_send.as_secs_f64() * 1000.0,
            "slow request"
        );
    }
}

/// Waits out a quota throttle; `false` when the broker shuts down first.
async fn throttle_sleep(
    time: std::time::Duration,
    shutdown: &mut tokio::sync::watch::Receiver<bool>,
) -> bool {
    tokio::select! {
        _ = shutdown.changed() => false,
        () = tokio::time::sleep(time) => true,
    }
}

/// What the connection does with a frame after the SASL gate.
enum Flow {
    Dispatch,
    /// A raw SASL token (after SaslHandshake v0), answered here.
    Answered,
    Close,
}

/// The SASL gate of one frame (see `transport::sasl`).
async fn sasl_gate<W: AsyncWrite + Unpin>(
    broker: &Broker,
    sasl: &parking_lot::Mutex<SaslSession>,
    frame: &[u8],
    connection: &ConnectionContext,
    writer: &mut W,
) -> Result<Flow, ConnectionError> {
    let now = Instant::now();
    let gate = sasl.lock().gate(frame, now);
    match gate {
        Gate::Dispatch => Ok(Flow::Dispatch),
        Gate::Close(reason) => {
            tracing::info!(
                peer = ?connection.peer,
                listener = %connection.listener,
                %reason,
                "SASL: closing the connection"
            );
            Ok(Flow::Close)
        }
        Gate::RawToken => {
            let step = sasl.lock().raw_token(frame, now);
            let bytes = match step {
                Ok(AuthStep::Continue(bytes)) => bytes,
                Ok(AuthStep::Done {
                    principal,
                    response,
                    ..
                }) => {
                    connection.set_principal(principal);
                    let counted = broker.metrics.listener(&connection.listener);
                    counted.successful_authentication.inc();
                    response
                }
                Ok(AuthStep::Failed { message } | AuthStep::Illegal { message }) | Err(message) => {
                    let counted = broker.metrics.listener(&connection.listener);
                    counted.failed_authentication.inc();
                    // SaslHandshake v0 has no way to carry the error: close
                    // after the delay, as Kafka does.
                    let detail = sasl.lock().take_failure_detail();
                    tracing::info!(
                        peer = ?connection.peer,
                        listener = %connection.listener,
                        error = %message,
                        detail = detail.as_deref().unwrap_or(""),
                        "SASL authentication failed; connection closed"
                    );
                    let delay = sasl.lock().failed_delay().unwrap_or_default();
                    tokio::time::sleep(delay).await;
                    return Ok(Flow::Close);
                }
            };
            writer
                .write_all(&(bytes.len() as i32).to_be_bytes())
                .await?;
            writer.write_all(&bytes).await?;
            Ok(Flow::Answered)
        }
    }
}

/// Writes a response frame. One chunk goes through the buffer; several
/// (record sets referenced, not copied) go out with vectored writes, which
/// the `FrameWriter` passes straight to the socket when they do not fit its
/// buffer; records left in their file go out with `sendfile(2)` after a flush.
pub(crate) async fn write_frame<W: FrameWrite>(
    writer: &mut FrameWriter<W>,
    frame: crate::response_buf::ResponseFrame,
) -> std::io::Result<()> {
    use crate::response_buf::Chunk;
    // Most responses are one buffer: one write, nothing to collect.
    if let [Chunk::Bytes(only)] = &frame.chunks[..] {
        return writer.write_all(only).await;
    }
    // The bytes between files go out in one vectored write each.
    let mut run: Vec<bytes::Bytes> = Vec::new();
    for chunk in frame.chunks {
        let records = match chunk {
            Chunk::Bytes(b) => {
                run.push(b);
                continue;
            }
            Chunk::File(records) => records,
        };
        write_chunks(writer, &mut run).await?;
        if writer.get_ref().socket().is_some() {
            writer.flush().await?;
        }
        match writer.get_ref().socket() {
            Some(socket) => send_file(socket, &records).await?,
            None => {
                let bytes = records.read().map_err(|e| truncated(&records, e))?;
                writer.write_all(&bytes).await?;
            }
        }
    }
    write_chunks(writer, &mut run).await
}

/// Writes `chunks` (emptied) with vectored writes.
async fn write_chunks<W: AsyncWrite + Unpin>(
    writer: &mut W,
    chunks: &mut Vec<bytes::Bytes>,
) -> std::io::Result<()> {
    if chunks.len() <= 1 {
        if let Some(only) = chunks.pop() {
            writer.write_all(&only).await?;
        }
        return Ok(());
    }
    let mut first = 0;
    while first < chunks.len() {
        let slices: Vec<std::io::IoSlice<'_>> = chunks[first..]
            .iter()
            .map(|c| std::io::IoSlice::new(c))
            .collect();
        let mut n = writer.write_vectored(&slices).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        while n > 0 {
            let len = chunks[first].len();
            if n >= len {
                n -= len;
                first += 1;
            } else {
                bytes::Buf::advance(&mut chunks[first], n);
                n = 0;
            }
        }
        while first < chunks.len() && chunks[first].is_empty() {
            first += 1;
        }
    }
    chunks.clear();
    Ok(())
}

/// Sends `records` from their file to `socket` with `sendfile(2)`, waiting
/// for writability through tokio. The frame's length was fixed when the
/// records were read: a file truncated meanwhile is an error that closes
/// the connection (as Kafka's `FileRecords.writeTo` throws), never a frame
/// shorter than its size prefix.
async fn send_file(
    socket: &TcpStream,
    records: &gregor_storage::FileRecords,
) -> std::io::Result<()> {
    use std::os::fd::AsRawFd;
    let (out_fd, in_fd) = (socket.as_raw_fd(), records.file().as_raw_fd());
    let mut offset = records.position() as libc::off_t;
    let end = offset + records.len() as libc::off_t;
    while offset < end {
        socket.writable().await?;
        let sent = socket.try_io(tokio::io::Interest::WRITABLE, || {
            let count = (end - offset) as usize;
            // SAFETY: both descriptors are open for the call (the socket is
            // borrowed, the file held by `records`); `offset` is a valid
            // pointer the kernel advances by the bytes sent.
            let n = unsafe { libc::sendfile(out_fd, in_fd, &mut offset, count) };
            if n < 0 {
                Err(std::io::Error::last_os_error())
            } else {
                Ok(n as usize)
            }
        });
        match sent {
            Ok(0) => {
                let eof = std::io::Error::from(std::io::ErrorKind::UnexpectedEof);
                return Err(truncated(records, eof));
            }
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

fn truncated(records: &gregor_storage::FileRecords, e: std::io::Error) -> std::io::Error {
    if e.kind() != std::io::ErrorKind::UnexpectedEof {
        return e;
    }
    std::io::Error::new(
        std::io::ErrorKind::UnexpectedEof,
        format!(
            "records at {} ({} bytes) were truncated during write",
            records.position(),
            records.len()
        ),
    )
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::config::BrokerConfig;
    use crate::transport::{KafkaPrincipal, SecurityProtocol};

    /// What a plaintext connection's task holds inline, idle or not: the
    /// connection future (the handlers' future is boxed per request, so it
    /// is not part of it), and the handlers' future allocated per request.
    /// Printed for docs/PERFORMANCE.md; the bounds only catch a large future
    /// inlined again.
    #[test]
    fn a_connection_task_is_small() {
        let dir = tempfile::tempdir().unwrap();
        let mut props = BTreeMap::new();
        props.insert("log.dirs".to_string(), dir.path().display().to_string());
        props.insert("node.id".to_string(), "1".to_string());
        let config = BrokerConfig::from_props(props).unwrap();
        let broker =
            Broker::open(config, Arc::new(gregor_storage::ManualClock::new(1_000))).unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let _client = TcpStream::connect(listener.local_addr().unwrap())
                .await
                .unwrap();
            let (socket, peer) = listener.accept().await.unwrap();
            let context = Arc::new(ConnectionContext::new(
                "PLAINTEXT".into(),
                SecurityProtocol::Plaintext,
                Some(peer),
                KafkaPrincipal::anonymous(),
            ));
            let timing = Arc::new(crate::metrics::RequestTiming::default());
            let dispatch = handlers::dispatch(&broker, bytes::Bytes::new(), &context, &timing);
            let dispatch_size = std::mem::size_of_val(&dispatch);
            drop(dispatch);
            let ctx = handlers::RequestContext {
                api_version: 0,
                connection: context.clone(),
                correlation_id: 0,
                client_id: None,
                timing: timing.clone(),
                file_records: Default::default(),
            };
            let mut sizes = handlers::handler_future_sizes(&broker, &ctx);
            sizes.sort_by_key(|(_, size)| std::cmp::Reverse(*size));
            eprintln!("largest handler futures: {:?}", &sizes[..8]);
            let (_stop, stop) = tokio::sync::watch::channel(false);
            let serve = serve_tcp(broker.clone(), socket, context, stop);
            let serve_size = std::mem::size_of_val(&serve);
            eprintln!("connection future: {serve_size} bytes; a request's handler future: {dispatch_size} bytes");
            assert!(serve_size < 4096, "{serve_size} bytes");
            // Allocated per request: a large future that only a rare path
            // needs (a controller round trip) belongs in a box of its own.
            assert!(dispatch_size < 4096, "{dispatch_size} bytes");
        });
    }
}
