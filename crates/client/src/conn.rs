//! One TCP connection to one broker, shared by every request to that broker.
//!
//! ```text
//!  callers ──send()──► pending map (correlation id → oneshot) ──┐
//!        └──frame────► mpsc ──► writer task ──► socket          │
//!                              reader task ◄── socket ──────────┘ completes the oneshot
//! ```
//!
//! Requests are pipelined: a caller registers its correlation id, hands the
//! encoded frame to the writer and awaits its own response, so many requests
//! can be in flight on one socket. Kafka answers in request order, but we
//! match by correlation id anyway so a bug or a timeout cannot hand one
//! caller another's response. Any failure (EOF, a bad frame, a request
//! timeout) closes the whole connection and fails every pending request:
//! after a timeout the position in the response stream is no longer known,
//! which is also why the Java client disconnects then.
//!
//! On connect the client sends ApiVersions and from then on uses, per API, the
//! highest version that both it and the broker support.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, RequestHeader, ResponseHeader,
    SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader, BufWriter};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::error::{codes, Error, Result};

/// The largest response frame we accept. Bigger than any fetch.max.bytes a
/// client would sensibly set; stops a corrupt length from allocating gigabytes.
const MAX_RESPONSE_SIZE: usize = 1 << 30;
/// Frames queued for the writer before senders wait.
const WRITE_QUEUE: usize = 64;
/// How long to wait for the TCP handshake (Java: socket.connection.setup.timeout.ms).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The highest version this client can speak for `key`, where that is below
/// what the protocol crate can encode. Produce and Fetch v13+ address topics
/// by id only; we address them by name and stop at 12. Transactions follow
/// the classic protocol (no KIP-890 part 2): AddPartitionsToTxn v4+ is the
/// brokers' batched form and EndTxn v5 belongs to transaction version 2, so
/// the client stops at 3 and 4, as the Java client does without TV2.
fn client_max_version(key: i16) -> Option<i16> {
    match ApiKey::try_from(key).ok()? {
        ApiKey::Produce => Some(12),
        ApiKey::Fetch => Some(12),
        ApiKey::AddPartitionsToTxn => Some(3),
        ApiKey::EndTxn => Some(5),
        _ => None,
    }
}

type Waiter = oneshot::Sender<Result<Bytes>>;

struct Shared {
    pending: HashMap<i32, Waiter>,
    /// Set once the connection is dead; later sends fail with it.
    closed: Option<Error>,
}

pub(crate) struct Connection {
    /// `host:port`, for error messages.
    pub addr: String,
    /// The broker's node id, -1 for a bootstrap connection.
    pub node_id: i32,
    client_id: StrBytes,
    request_timeout: Duration,
    next_correlation_id: AtomicI32,
    shared: Arc<Mutex<Shared>>,
    frames: mpsc::Sender<Bytes>,
    /// api key → (min, max) the broker supports.
    versions: HashMap<i16, (i16, i16)>,
    /// Finalized cluster feature levels from ApiVersions v3+ (KIP-584).
    features: HashMap<String, i16>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        // Only the reader is stopped: the writer still owns queued frames
        // (acks=0 produce requests count as delivered once queued), so it
        // drains them, then sees the channel close and shuts the socket.
        if let Some(reader) = self.tasks.get(1) {
            reader.abort();
        }
    }
}

/// How a connection secures itself: TLS (SSL, SASL_SSL) and SASL.
#[derive(Clone, Default)]
pub(crate) struct Security {
    pub tls: Option<Arc<rustls::ClientConfig>>,
    pub sasl: Option<SaslCredentials>,
}

/// What a connection authenticates with on a SASL_PLAINTEXT listener.
#[derive(Clone)]
pub struct SaslCredentials {
    pub mechanism: gregor_security::Mechanism,
    pub username: String,
    pub password: String,
    /// OAUTHBEARER's token (the mechanism ignores username and password).
    pub oauthbearer: Option<crate::oauthbearer::TokenSource>,
}

impl std::fmt::Debug for SaslCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslCredentials")
            .field("mechanism", &self.mechanism)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

impl Connection {
    /// Connects to `addr`, with `security.tls` makes the TLS handshake,
    /// negotiates API versions and, with `security.sasl`, authenticates
    /// (SaslHandshake v1, then SaslAuthenticate).
    pub async fn connect(
        addr: &str,
        node_id: i32,
        client_id: &str,
        request_timeout: Duration,
        security: &Security,
    ) -> Result<Connection> {
        let connect = async {
            let stream = TcpStream::connect(addr)
                .await
                .map_err(|e| Error::io(addr, e))?;
            let _ = stream.set_nodelay(true);
            match &security.tls {
                None => Ok::<_, Error>(Stream::Plain(stream)),
                Some(config) => {
                    let name = crate::tls::server_name(addr)
                        .map_err(|reason| Error::config("bootstrap.servers", reason))?;
                    let tls = tokio_rustls::TlsConnector::from(config.clone())
                        .connect(name, stream)
                        .await
                        .map_err(|e| Error::Tls {
                            broker: addr.to_string(),
                            reason: format!("{e}{}", crate::tls::handshake_hint(&e)),
                        })?;
                    Ok(Stream::Tls(Box::new(tls)))
                }
            }
        };
        let stream = tokio::time::timeout(CONNECT_TIMEOUT, connect)
            .await
            .map_err(|_| Error::Timeout {
                what: format!("connecting to {addr}"),
                after: CONNECT_TIMEOUT,
            })??;
        let shared = Arc::new(Mutex::new(Shared {
            pending: HashMap::new(),
            closed: None,
        }));
        let (tx, rx) = mpsc::channel(WRITE_QUEUE);
        let owned = addr.to_string();
        // Plaintext keeps tokio's lock-free owned halves; TLS needs one
        // session for both directions, so it is split behind a lock.
        let (writer, reader) = match stream {
            Stream::Plain(s) => {
                let (rd, wr) = s.into_split();
                (
                    tokio::spawn(write_loop(owned.clone(), wr, rx, shared.clone())),
                    tokio::spawn(read_loop(owned, rd, shared.clone())),
                )
            }
            Stream::Tls(s) => {
                let (rd, wr) = tokio::io::split(*s);
                (
                    tokio::spawn(write_loop(owned.clone(), wr, rx, shared.clone())),
                    tokio::spawn(read_loop(owned, rd, shared.clone())),
                )
            }
        };
        let mut conn = Connection {
            addr: addr.to_string(),
            node_id,
            client_id: StrBytes::from_string(client_id.to_string()),
            request_timeout,
            next_correlation_id: AtomicI32::new(0),
            shared,
            frames: tx,
            versions: HashMap::new(),
            features: HashMap::new(),
            tasks: vec![writer, reader],
        };
        (conn.versions, conn.features) = conn.negotiate().await?;
        if let Some(sasl) = &security.sasl {
            conn.authenticate(sasl).await?;
        }
        Ok(conn)
    }

    /// The SASL exchange (KIP-152): PLAIN in one message, SCRAM in two,
    /// the server's final message verified.
    async fn authenticate(&self, sasl: &SaslCredentials) -> Result<()> {
        let failed =
            |msg: String| Error::Invalid(format!("SASL authentication with {}: {msg}", self.addr));
        let mechanism = sasl.mechanism.name();
        let hs =
            SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str(mechanism));
        let resp: SaslHandshakeResponse = self.send_version(&hs, 1, self.request_timeout).await?;
        if resp.error_code != 0 {
            let enabled: Vec<&str> = resp.mechanisms.iter().map(|m| m.as_str()).collect();
            return Err(failed(format!(
                "the broker refused mechanism {mechanism} (error {}; enabled: {})",
                resp.error_code,
                enabled.join(", ")
            )));
        }
        let step = |bytes: Vec<u8>| async move {
            let req = SaslAuthenticateRequest::default().with_auth_bytes(bytes::Bytes::from(bytes));
            let resp: SaslAuthenticateResponse =
                self.send_version(&req, 1, self.request_timeout).await?;
            if resp.error_code != 0 {
                return Err(failed(
                    resp.error_message
                        .map(|m| m.to_string())
                        .unwrap_or_else(|| format!("error {}", resp.error_code)),
                ));
            }
            Ok(resp.auth_bytes)
        };
        if let Some(source) = &sasl.oauthbearer {
            let now_ms = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
            let first = crate::oauthbearer::initial_response(&source.token(now_ms));
            let req = SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(first));
            let resp: SaslAuthenticateResponse =
                self.send_version(&req, 1, self.request_timeout).await?;
            Error::check(resp.error_code, resp.error_message.as_deref())?;
            if resp.auth_bytes.is_empty() {
                return Ok(());
            }
            // RFC 7628 3.2.2: a rejected token comes back as a JSON error
            // challenge; the client answers %x01 and the server then fails
            // the exchange (SASL_AUTHENTICATION_FAILED).
            let json = String::from_utf8_lossy(&resp.auth_bytes).into_owned();
            let req =
                SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from_static(b"\x01"));
            let resp: SaslAuthenticateResponse =
                self.send_version(&req, 1, self.request_timeout).await?;
            let code = if resp.error_code != 0 {
                resp.error_code
            } else {
                codes::SASL_AUTHENTICATION_FAILED
            };
            // Kafka's server repeats the JSON as the error message.
            let message = format!(
                "OAUTHBEARER with {}: {}",
                self.addr,
                resp.error_message.as_deref().unwrap_or(&json)
            );
            return Error::check(code, Some(&message));
        }
        match sasl.mechanism.scram() {
            None => {
                let mut token = vec![0u8];
                token.extend_from_slice(sasl.username.as_bytes());
                token.push(0);
                token.extend_from_slice(sasl.password.as_bytes());
                step(token).await?;
            }
            Some(m) => {
                let nonce = gregor_security::scram::random_nonce(&mut rand::thread_rng());
                let mut client =
                    gregor_security::ScramClient::new(m, &sasl.username, &sasl.password, &nonce);
                let server_first = step(client.client_first()).await?;
                let fin = client
                    .client_final(&server_first)
                    .map_err(|e| failed(e.to_string()))?;
                let server_final = step(fin).await?;
                if !client.verify_server_final(&server_final) {
                    return Err(failed("the server's signature does not verify".into()));
                }
            }
        }
        Ok(())
    }

    /// ApiVersions v3, falling back to v0 for a broker that does not know v3
    /// (it answers UNSUPPORTED_VERSION with a v0 body listing its versions).
    #[allow(clippy::type_complexity)]
    async fn negotiate(&self) -> Result<(HashMap<i16, (i16, i16)>, HashMap<String, i16>)> {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("gregor-client"))
            .with_client_software_version(StrBytes::from_static_str(env!("CARGO_PKG_VERSION")));
        let mut resp: ApiVersionsResponse =
            self.send_version(&req, 3, self.request_timeout).await?;
        if resp.error_code == codes::UNSUPPORTED_VERSION {
            resp = self.send_version(&req, 0, self.request_timeout).await?;
        }
        Error::check(resp.error_code, Some("ApiVersions"))?;
        let versions = resp
            .api_keys
            .iter()
            .map(|k| (k.api_key, (k.min_version, k.max_version)))
            .collect();
        let features = resp
            .finalized_features
            .iter()
            .map(|f| (f.name.to_string(), f.max_version_level))
            .collect();
        Ok((versions, features))
    }

    /// The finalized level of cluster feature `name` this broker reported
    /// (0 when it reported none).
    pub fn feature_level(&self, name: &str) -> i16 {
        self.features.get(name).copied().unwrap_or(0)
    }

    /// The version to use for `R`: the highest both sides support.
    pub fn version_for<R: Request>(&self) -> Result<i16> {
        self.version_at_most::<R>(i16::MAX)
    }

    /// [`Connection::version_for`], but at most `cap`.
    pub fn version_at_most<R: Request>(&self, cap: i16) -> Result<i16> {
        let ours_max = client_max_version(R::KEY)
            .map_or(R::VERSIONS.max, |m| m.min(R::VERSIONS.max))
            .min(cap);
        let (theirs_min, theirs_max) = self.versions.get(&R::KEY).copied().ok_or_else(|| {
            Error::Invalid(format!(
                "broker {} does not support API key {}",
                self.addr,
                R::KEY
            ))
        })?;
        let v = ours_max.min(theirs_max);
        if v < R::VERSIONS.min.max(theirs_min) {
            return Err(Error::Invalid(format!(
                "no common version of API key {} (client {}..{ours_max}, broker {} {theirs_min}..{theirs_max})",
                R::KEY,
                R::VERSIONS.min,
                self.addr
            )));
        }
        Ok(v)
    }

    /// Whether the broker serves `key` at all.
    pub fn supports(&self, key: ApiKey) -> bool {
        self.versions.contains_key(&(key as i16))
    }

    /// Sends `req` at the negotiated version and waits for its response.
    pub async fn send<R: Request>(&self, req: &R) -> Result<R::Response> {
        self.send_timeout(req, self.request_timeout).await
    }

    /// [`Connection::send`] with a per-request timeout (JoinGroup may wait a
    /// whole rebalance).
    pub async fn send_timeout<R: Request>(
        &self,
        req: &R,
        timeout: Duration,
    ) -> Result<R::Response> {
        let version = self.version_for::<R>()?;
        self.send_version(req, version, timeout).await
    }

    /// Sends `req` at exactly `version`, whatever the broker announced (the
    /// caller owns that choice), and waits for its response.
    pub async fn send_exact<R: Request>(&self, req: &R, version: i16) -> Result<R::Response> {
        self.send_version(req, version, self.request_timeout).await
    }

    async fn send_version<R: Request>(
        &self,
        req: &R,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response> {
        let (tx, rx) = oneshot::channel();
        self.enqueue(req, version, Some(tx)).await?;
        self.wait_response::<R>(rx, version, timeout).await
    }

    /// Writes `req` now and returns a handle to await its response later.
    /// Lets a caller fix the order of requests on the wire (the producer's
    /// sequence numbers depend on it) without waiting for each response.
    /// The version is the highest both sides support, and at most `cap` (a
    /// transactional Produce stays below v12, which would announce
    /// transaction version 2).
    pub async fn start_at_most<R: Request>(
        self: &Arc<Self>,
        req: &R,
        cap: i16,
    ) -> Result<Pending<R>> {
        let version = self.version_at_most::<R>(cap)?;
        let (tx, rx) = oneshot::channel();
        self.enqueue(req, version, Some(tx)).await?;
        Ok(Pending {
            conn: self.clone(),
            rx,
            version,
            _r: std::marker::PhantomData,
        })
    }

    async fn wait_response<R: Request>(
        &self,
        rx: oneshot::Receiver<Result<Bytes>>,
        version: i16,
        timeout: Duration,
    ) -> Result<R::Response> {
        let frame = match tokio::time::timeout(timeout, rx).await {
            Err(_) => {
                let err = Error::Timeout {
                    what: format!("request (API key {}) to {}", R::KEY, self.addr),
                    after: timeout,
                };
                self.fail(err.clone());
                return Err(err);
            }
            Ok(Err(_)) => return Err(self.closed_error()),
            Ok(Ok(r)) => r?,
        };
        let mut buf = frame;
        let context = || format!("API key {} v{version} response from {}", R::KEY, self.addr);
        ResponseHeader::decode(&mut buf, R::Response::header_version(version))
            .map_err(|e| Error::protocol(context(), e))?;
        R::Response::decode(&mut buf, version).map_err(|e| Error::protocol(context(), e))
    }

    /// Sends a request the broker will not answer (Produce with acks=0).
    pub async fn send_no_response<R: Request>(&self, req: &R) -> Result<()> {
        let version = self.version_for::<R>()?;
        self.enqueue(req, version, None).await
    }

    async fn enqueue<R: Request>(
        &self,
        req: &R,
        version: i16,
        waiter: Option<Waiter>,
    ) -> Result<()> {
        let correlation_id = self.next_correlation_id.fetch_add(1, Ordering::Relaxed);
        let header = RequestHeader::default()
            .with_request_api_key(R::KEY)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(self.client_id.clone()));
        let mut buf = BytesMut::with_capacity(64);
        buf.put_i32(0);
        let context = || format!("encoding API key {} v{version} for {}", R::KEY, self.addr);
        header
            .encode(&mut buf, R::header_version(version))
            .map_err(|e| Error::protocol(context(), e))?;
        req.encode(&mut buf, version)
            .map_err(|e| Error::protocol(context(), e))?;
        let size = i32::try_from(buf.len() - 4)
            .map_err(|_| Error::protocol(context(), "request larger than 2 GiB"))?;
        buf[..4].copy_from_slice(&size.to_be_bytes());
        {
            let mut shared = lock(&self.shared);
            if let Some(e) = &shared.closed {
                return Err(e.clone());
            }
            if let Some(w) = waiter {
                shared.pending.insert(correlation_id, w);
            }
        }
        if self.frames.send(buf.freeze()).await.is_err() {
            lock(&self.shared).pending.remove(&correlation_id);
            return Err(self.closed_error());
        }
        Ok(())
    }

    /// Whether the connection has failed and should be replaced.
    pub fn is_closed(&self) -> bool {
        lock(&self.shared).closed.is_some()
    }

    fn closed_error(&self) -> Error {
        lock(&self.shared).closed.clone().unwrap_or_else(|| {
            Error::io(
                &self.addr,
                std::io::Error::new(std::io::ErrorKind::ConnectionAborted, "connection closed"),
            )
        })
    }

    /// Marks the connection dead and fails everything pending.
    fn fail(&self, err: Error) {
        fail_all(&self.shared, err);
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A request on the wire whose response has not been read yet.
pub(crate) struct Pending<R: Request> {
    conn: Arc<Connection>,
    rx: oneshot::Receiver<Result<Bytes>>,
    version: i16,
    _r: std::marker::PhantomData<fn() -> R>,
}

impl<R: Request> Pending<R> {
    pub async fn wait(self) -> Result<R::Response> {
        self.conn
            .wait_response::<R>(self.rx, self.version, self.conn.request_timeout)
            .await
    }
}

fn lock(m: &Mutex<Shared>) -> std::sync::MutexGuard<'_, Shared> {
    // A panic while holding this lock cannot leave the map inconsistent
    // (every critical section is a single insert/remove), so poisoning is ignored.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn fail_all(shared: &Mutex<Shared>, err: Error) {
    let pending = {
        let mut s = lock(shared);
        if s.closed.is_none() {
            s.closed = Some(err.clone());
        }
        std::mem::take(&mut s.pending)
    };
    for (_, w) in pending {
        let _ = w.send(Err(err.clone()));
    }
}

/// A connected socket, before it is split between the reader and the writer.
enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::client::TlsStream<TcpStream>>),
}

async fn write_loop<W: AsyncWrite + Unpin>(
    addr: String,
    wr: W,
    mut rx: mpsc::Receiver<Bytes>,
    shared: Arc<Mutex<Shared>>,
) {
    let mut wr = BufWriter::with_capacity(64 * 1024, wr);
    while let Some(frame) = rx.recv().await {
        let mut result = wr.write_all(&frame).await;
        // Coalesce whatever else is queued into the same flush.
        while result.is_ok() {
            match rx.try_recv() {
                Ok(f) => result = wr.write_all(&f).await,
                Err(_) => break,
            }
        }
        if let Err(e) = result.and(wr.flush().await) {
            tracing::debug!(broker = %addr, error = %e, "write failed");
            fail_all(&shared, Error::io(&addr, e));
            return;
        }
    }
    let _ = wr.shutdown().await;
}

async fn read_loop<R: AsyncRead + Unpin>(addr: String, rd: R, shared: Arc<Mutex<Shared>>) {
    let mut rd = BufReader::with_capacity(64 * 1024, rd);
    let err = loop {
        let size = match rd.read_i32().await {
            Ok(s) => s,
            Err(e) => break Error::io(&addr, e),
        };
        let size = match usize::try_from(size) {
            Ok(s) if (4..=MAX_RESPONSE_SIZE).contains(&s) => s,
            _ => {
                break Error::protocol(
                    format!("response from {addr}"),
                    format!("invalid frame size {size}"),
                )
            }
        };
        let mut frame = BytesMut::zeroed(size);
        if let Err(e) = rd.read_exact(&mut frame).await {
            break Error::io(&addr, e);
        }
        let frame = frame.freeze();
        let correlation_id = (&frame[..4]).get_i32();
        let waiter = lock(&shared).pending.remove(&correlation_id);
        match waiter {
            Some(w) => {
                let _ = w.send(Ok(frame));
            }
            None => {
                break Error::protocol(
                    format!("response from {addr}"),
                    format!("unexpected correlation id {correlation_id}"),
                )
            }
        }
    };
    tracing::debug!(broker = %addr, error = %err, "connection closed");
    fail_all(&shared, err);
}
