//! A Kafka-protocol connection from this broker to another one, as the
//! replica fetchers and the transaction marker sender use it: one request at
//! a time, connecting on first use, every round trip bounded by a timeout,
//! and the connection dropped after any error (the caller's next request
//! reconnects). The connection is secured as the inter-broker listener
//! says (TLS, SASL: `transport::client::ClientConnector`).

use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use std::sync::Arc;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use gregor_raft::BoxStream;

use crate::transport::client::ClientConnector;

#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    #[error("broker {node} at {host}:{port}: {source}")]
    Io {
        node: i32,
        host: String,
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("broker {node}: no answer within {ms} ms")]
    Timeout { node: i32, ms: u128 },
    #[error("broker {node}: response of {size} bytes exceeds the limit of {max}")]
    TooLarge { node: i32, size: i64, max: usize },
    #[error("broker {node}: cannot encode {what} v{version}: {source}")]
    Encode {
        node: i32,
        what: &'static str,
        version: i16,
        #[source]
        source: anyhow::Error,
    },
    #[error("broker {node}: malformed {what} v{version}: {source}")]
    Decode {
        node: i32,
        what: &'static str,
        version: i16,
        #[source]
        source: anyhow::Error,
    },
    #[error("broker {node}: response to request {expected} carries correlation id {got}")]
    Correlation { node: i32, expected: i32, got: i32 },
}

/// One connection to broker `node`.
pub struct BrokerConn {
    node: i32,
    host: String,
    port: u16,
    client_id: String,
    timeout: Duration,
    max_response: usize,
    connector: Arc<ClientConnector>,
    conn: Option<BoxStream>,
    correlation_id: i32,
    /// When the connection last carried a request.
    last_used: std::time::Instant,
}

/// A connection unused this long is dropped before the next request (Kafka
/// clients' `connections.max.idle.ms`, 9 minutes): a broker closes
/// connections idle for its own `connections.max.idle.ms` (10 minutes), and
/// a request on such a connection would fail once.
const CLIENT_MAX_IDLE: Duration = Duration::from_secs(540);

impl std::fmt::Debug for BrokerConn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerConn")
            .field("node", &self.node)
            .field("host", &self.host)
            .field("port", &self.port)
            .field("connected", &self.conn.is_some())
            .finish_non_exhaustive()
    }
}

impl BrokerConn {
    pub fn new(
        node: i32,
        host: String,
        port: u16,
        client_id: String,
        timeout: Duration,
        max_response: usize,
        connector: Arc<ClientConnector>,
    ) -> Self {
        Self {
            node,
            host,
            port,
            client_id,
            timeout,
            max_response,
            connector,
            conn: None,
            correlation_id: 0,
            last_used: std::time::Instant::now(),
        }
    }

    pub fn node(&self) -> i32 {
        self.node
    }

    pub fn endpoint(&self) -> (&str, u16) {
        (&self.host, self.port)
    }

    /// Drops the connection; the next request connects again.
    pub fn reset(&mut self) {
        self.conn = None;
    }

    /// Sends one request and reads its response, connecting first if
    /// needed; everything within the timeout. Any error drops the
    /// connection.
    pub async fn roundtrip<Req, Resp>(
        &mut self,
        key: ApiKey,
        what: &'static str,
        version: i16,
        request: &Req,
    ) -> Result<Resp, RpcError>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        let timeout = self.timeout;
        let node = self.node;
        if self.last_used.elapsed() >= CLIENT_MAX_IDLE {
            self.conn = None;
        }
        self.last_used = std::time::Instant::now();
        let r =
            match tokio::time::timeout(timeout, self.roundtrip_inner(key, what, version, request))
                .await
            {
                Ok(r) => r,
                Err(_) => Err(RpcError::Timeout {
                    node,
                    ms: timeout.as_millis(),
                }),
            };
        if r.is_err() {
            self.conn = None;
        }
        r
    }

    async fn roundtrip_inner<Req, Resp>(
        &mut self,
        key: ApiKey,
        what: &'static str,
        version: i16,
        request: &Req,
    ) -> Result<Resp, RpcError>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        let (node, host, port) = (self.node, self.host.clone(), self.port);
        let io = |source| RpcError::Io {
            node,
            host: host.clone(),
            port,
            source,
        };
        self.correlation_id = self.correlation_id.wrapping_add(1);
        let correlation_id = self.correlation_id;
        let mut frame = BytesMut::with_capacity(256);
        frame.put_i32(0);
        let encoded = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(correlation_id)
            .with_client_id(Some(StrBytes::from_string(self.client_id.clone())))
            .encode(&mut frame, Req::header_version(version))
            .and_then(|()| request.encode(&mut frame, version));
        if let Err(source) = encoded {
            return Err(RpcError::Encode {
                node,
                what,
                version,
                source,
            });
        }
        let size = (frame.len() - 4) as i32;
        frame[..4].copy_from_slice(&size.to_be_bytes());

        let max = self.max_response;
        let stream = match &mut self.conn {
            Some(stream) => stream,
            None => {
                let stream = self
                    .connector
                    .connect(host.as_str(), port)
                    .await
                    .map_err(io)?;
                self.conn.insert(stream)
            }
        };
        stream.write_all(&frame).await.map_err(io)?;
        let size = stream.read_i32().await.map_err(io)?;
        if size < 0 || size as usize > max {
            return Err(RpcError::TooLarge {
                node,
                size: size as i64,
                max,
            });
        }
        let size = size as usize;
        let mut buf = BytesMut::with_capacity(size);
        while buf.len() < size {
            let want = (size - buf.len()) as u64;
            if (&mut *stream)
                .take(want)
                .read_buf(&mut buf)
                .await
                .map_err(io)?
                == 0
            {
                return Err(io(std::io::ErrorKind::UnexpectedEof.into()));
            }
        }
        let mut body: Bytes = buf.freeze();
        let decode = |source| RpcError::Decode {
            node,
            what,
            version,
            source,
        };
        let header =
            ResponseHeader::decode(&mut body, Resp::header_version(version)).map_err(decode)?;
        if header.correlation_id != correlation_id {
            return Err(RpcError::Correlation {
                node,
                expected: correlation_id,
                got: header.correlation_id,
            });
        }
        Resp::decode(&mut body, version).map_err(decode)
    }
}

/// One connection per peer broker, shared by this broker's coordinator-side
/// requests (transaction markers, KIP-890 verification); requests to one
/// peer go one at a time.
#[derive(Debug)]
pub struct Peers {
    client_id: String,
    timeout: Duration,
    connector: Arc<ClientConnector>,
    conns: parking_lot::Mutex<
        std::collections::HashMap<i32, std::sync::Arc<tokio::sync::Mutex<BrokerConn>>>,
    >,
}

impl Peers {
    pub fn new(client_id: String, timeout: Duration, connector: Arc<ClientConnector>) -> Self {
        Self {
            client_id,
            timeout,
            connector,
            conns: Default::default(),
        }
    }

    /// [`BrokerConn::roundtrip`] to broker `node` at `endpoint` (a moved
    /// endpoint gets a new connection).
    pub async fn roundtrip<Req, Resp>(
        &self,
        node: i32,
        endpoint: (String, u16),
        key: ApiKey,
        what: &'static str,
        version: i16,
        request: &Req,
    ) -> Result<Resp, RpcError>
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        let connect = || {
            BrokerConn::new(
                node,
                endpoint.0.clone(),
                endpoint.1,
                self.client_id.clone(),
                self.timeout,
                PEER_MAX_RESPONSE,
                self.connector.clone(),
            )
        };
        let conn = self
            .conns
            .lock()
            .entry(node)
            .or_insert_with(|| std::sync::Arc::new(tokio::sync::Mutex::new(connect())))
            .clone();
        let mut conn = conn.lock().await;
        if conn.endpoint() != (endpoint.0.as_str(), endpoint.1) {
            *conn = connect();
        }
        conn.roundtrip(key, what, version, request).await
    }
}

/// Coordinator-side responses are small; a larger frame is a broken peer.
const PEER_MAX_RESPONSE: usize = 16 << 20;
