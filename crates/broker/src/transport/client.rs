//! The cluster's own links, secured like client listeners: this node's
//! outgoing connections (broker to broker on the inter-broker listener,
//! to the controllers on the controller listener) and the controller
//! listener's accepting side.
//!
//! A [`LinkSecurity`] is what Kafka's configs say about one listener seen
//! from the connecting side: its security protocol
//! (`listener.security.protocol.map`), its `ssl.*` settings (the same
//! listener-prefixed keys the server side reads: the keystore is presented
//! as client certificate, the truststore verifies the peer,
//! `ssl.endpoint.identification.algorithm=https` checks the host name) and,
//! on a SASL listener, the mechanism (`sasl.mechanism.inter.broker.protocol`
//! or `sasl.mechanism.controller.protocol`) with the credentials from the
//! listener's JAAS config (`username=... password=...`, as Kafka's brokers
//! log in for PLAIN and SCRAM).
//!
//! A [`ClientConnector`] opens TCP, then TLS, then runs the SASL exchange
//! as a Kafka client does (SaslHandshake v1, SaslAuthenticate v2), so the
//! stream it hands back is ready for requests. It serves both the Kafka
//! protocol connections (`inter_broker.rs`) and the Raft transport
//! (`gregor_raft::Connector`). [`LinkAcceptor`] is the server's half for
//! the controller listener, whose frames are not Kafka's: TLS, then the
//! same two SASL requests answered here before the Raft frames start.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use gregor_raft::{BoxStream, Connector};
use gregor_security::{Authenticator, JaasConfig, Mechanism, Step};
use kafka_protocol::messages::{
    ApiKey, RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslAuthenticateResponse,
    SaslHandshakeRequest, SaslHandshakeResponse,
};
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;

use super::principal::PrincipalMapper;
use super::tls::{Password, TlsConfigError, TlsError, TlsSettings};
use super::tls_reload::{ReloadableAcceptor, ReloadableConnector};
use super::{KafkaPrincipal, SecurityProtocol};

/// How long TLS and SASL may take on a new link, either side.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The largest SASL frame either side accepts (SCRAM messages are tiny).
const MAX_SASL_FRAME: usize = 64 * 1024;

/// Why a link's settings cannot be used (found at start).
#[derive(Debug, PartialEq, Eq, thiserror::Error)]
pub enum LinkConfigError {
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
    #[error("listener {listener} is {protocol}: set {key} (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512; Kafka's default GSSAPI is not supported)")]
    Mechanism {
        listener: String,
        protocol: SecurityProtocol,
        key: &'static str,
    },
    #[error("{key}={value}: SASL mechanism not supported (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)")]
    UnsupportedMechanism { key: &'static str, value: String },
    #[error("listener {listener}: no JAAS config with username and password for {mechanism} (tried {tried})")]
    NoCredentials {
        listener: String,
        mechanism: Mechanism,
        tried: String,
    },
    #[error("{key}: {reason}")]
    Jaas { key: String, reason: String },
}

/// The SASL identity this node logs in with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SaslLogin {
    pub mechanism: Mechanism,
    pub username: String,
    pub password: Password,
}

/// One listener as this node connects to it.
#[derive(Debug, Clone)]
pub struct LinkSecurity {
    pub listener: String,
    pub protocol: SecurityProtocol,
    pub tls: Option<TlsSettings>,
    pub sasl: Option<SaslLogin>,
}

impl LinkSecurity {
    pub fn plaintext(listener: &str) -> Self {
        Self {
            listener: listener.to_string(),
            protocol: SecurityProtocol::Plaintext,
            tls: None,
            sasl: None,
        }
    }

    /// Listener `listener` (security protocol `protocol`) from Kafka's keys
    /// in `props`; `mechanism_key` names the config of the SASL mechanism
    /// (`sasl.mechanism.inter.broker.protocol`,
    /// `sasl.mechanism.controller.protocol`). `served`: this node also
    /// serves the listener (its keystore is then required).
    pub fn from_props(
        props: &BTreeMap<String, String>,
        listener: &str,
        protocol: SecurityProtocol,
        mechanism_key: &'static str,
        served: bool,
    ) -> Result<Self, LinkConfigError> {
        let tls = if protocol.uses_tls() {
            Some(if served {
                TlsSettings::from_props(props, listener)?
            } else {
                TlsSettings::client_from_props(props, listener)?
            })
        } else {
            None
        };
        let sasl = match protocol {
            SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl => {
                Some(sasl_login(props, listener, protocol, mechanism_key)?)
            }
            _ => None,
        };
        Ok(Self {
            listener: listener.to_string(),
            protocol,
            tls,
            sasl,
        })
    }
}

/// The mechanism from `mechanism_key` and the credentials from the first
/// JAAS config found among Kafka's keys for the listener:
/// `listener.name.<l>.<mechanism>.sasl.jaas.config`,
/// `listener.name.<l>.sasl.jaas.config`, `sasl.jaas.config`.
fn sasl_login(
    props: &BTreeMap<String, String>,
    listener: &str,
    protocol: SecurityProtocol,
    mechanism_key: &'static str,
) -> Result<SaslLogin, LinkConfigError> {
    let name = props
        .get(mechanism_key)
        .map(|v| v.trim())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| LinkConfigError::Mechanism {
            listener: listener.to_string(),
            protocol,
            key: mechanism_key,
        })?;
    let mechanism =
        Mechanism::from_name(name).ok_or_else(|| LinkConfigError::UnsupportedMechanism {
            key: mechanism_key,
            value: name.to_string(),
        })?;
    let l = listener.to_ascii_lowercase();
    let keys = [
        format!(
            "listener.name.{l}.{}.sasl.jaas.config",
            mechanism.name().to_ascii_lowercase()
        ),
        format!("listener.name.{l}.sasl.jaas.config"),
        "sasl.jaas.config".to_string(),
    ];
    for key in &keys {
        let Some(text) = props.get(key) else { continue };
        let jaas = JaasConfig::parse(text).map_err(|e| LinkConfigError::Jaas {
            key: key.clone(),
            reason: e.to_string(),
        })?;
        let found = jaas.modules.iter().find_map(|m| {
            Some((
                m.option("username")?.to_string(),
                m.option("password")?.to_string(),
            ))
        });
        if let Some((username, password)) = found {
            return Ok(SaslLogin {
                mechanism,
                username,
                password: Password(password),
            });
        }
    }
    Err(LinkConfigError::NoCredentials {
        listener: listener.to_string(),
        mechanism,
        tried: keys.join(", "),
    })
}

/// Opens secured connections to one listener of other nodes.
pub struct ClientConnector {
    listener: String,
    protocol: SecurityProtocol,
    /// Reloaded when the keystore or truststore changes (`tls_reload`).
    tls: Option<Arc<ReloadableConnector>>,
    sasl: Option<SaslLogin>,
}

impl std::fmt::Debug for ClientConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientConnector")
            .field("listener", &self.listener)
            .field("protocol", &self.protocol)
            .finish_non_exhaustive()
    }
}

impl ClientConnector {
    /// Plain TCP.
    pub fn plaintext() -> Self {
        Self {
            listener: "PLAINTEXT".into(),
            protocol: SecurityProtocol::Plaintext,
            tls: None,
            sasl: None,
        }
    }

    /// Reads the TLS material of `security` (so a missing file stops the
    /// start with its path named).
    pub fn new(security: &LinkSecurity) -> Result<Self, TlsError> {
        let tls = match &security.tls {
            Some(t) => Some(Arc::new(ReloadableConnector::connector(t)?)),
            None => None,
        };
        Ok(Self {
            listener: security.listener.clone(),
            protocol: security.protocol,
            tls,
            sasl: security.sasl.clone(),
        })
    }

    /// The TLS side to reload when the keystore or truststore changes.
    pub fn tls(&self) -> Option<Arc<ReloadableConnector>> {
        self.tls.clone()
    }

    pub fn protocol(&self) -> SecurityProtocol {
        self.protocol
    }

    /// TCP to `host:port`, then TLS and SASL as the listener demands. The
    /// error says which step failed and why (a certificate the truststore
    /// does not vouch for, a refused password).
    pub async fn connect(&self, host: &str, port: u16) -> std::io::Result<BoxStream> {
        let socket = TcpStream::connect((host, port)).await?;
        socket.set_nodelay(true)?;
        if self.protocol == SecurityProtocol::Plaintext {
            return Ok(Box::new(socket));
        }
        let secured = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.secure(socket, host)).await;
        match secured {
            Ok(r) => r,
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "{} handshake with {host}:{port} (listener {}) not completed in {HANDSHAKE_TIMEOUT:?}",
                    self.protocol, self.listener
                ),
            )),
        }
    }

    async fn secure(&self, socket: TcpStream, host: &str) -> std::io::Result<BoxStream> {
        let mut stream: BoxStream = match &self.tls {
            None => Box::new(socket),
            Some(tls) => {
                let name = rustls_pki_types::ServerName::try_from(host.to_string())
                    .map_err(|e| std::io::Error::other(format!("host name {host}: {e}")))?;
                let s = tls.current().connect(name, socket).await.map_err(|e| {
                    std::io::Error::other(format!(
                        "TLS handshake with {host} (listener {}) failed: {e}",
                        self.listener
                    ))
                })?;
                Box::new(s)
            }
        };
        if let Some(login) = &self.sasl {
            sasl_client(&mut stream, login).await.map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!(
                        "SASL/{} authentication to {host} (listener {}) as {} failed: {e}",
                        login.mechanism, self.listener, login.username
                    ),
                )
            })?;
        }
        Ok(stream)
    }
}

impl Connector for ClientConnector {
    fn connect(&self, addr: String) -> gregor_raft::network::BoxFuture<std::io::Result<BoxStream>> {
        // `Connector` hands a `host:port` string; the future must own what
        // it borrows, so the connector's parts are cloned into it.
        let this = Self {
            listener: self.listener.clone(),
            protocol: self.protocol,
            tls: self.tls.clone(),
            sasl: self.sasl.clone(),
        };
        Box::pin(async move {
            let (host, port) = addr
                .rsplit_once(':')
                .and_then(|(h, p)| Some((h.to_string(), p.parse::<u16>().ok()?)))
                .ok_or_else(|| std::io::Error::other(format!("{addr} is not host:port")))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            this.connect(host, port).await
        })
    }
}

async fn write_request<S, Req>(
    s: &mut S,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    request: &Req,
) -> std::io::Result<()>
where
    S: AsyncWrite + Unpin + ?Sized,
    Req: Encodable + HeaderVersion,
{
    let mut frame = BytesMut::with_capacity(128);
    frame.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("gregor-link")))
        .encode(&mut frame, Req::header_version(version))
        .and_then(|()| request.encode(&mut frame, version))
        .map_err(|e| std::io::Error::other(format!("encoding {key:?}: {e}")))?;
    let size = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    s.write_all(&frame).await?;
    s.flush().await
}

async fn read_frame<S: AsyncRead + Unpin + ?Sized>(s: &mut S) -> std::io::Result<Bytes> {
    let size = s.read_i32().await?;
    if size < 0 || size as usize > MAX_SASL_FRAME {
        return Err(std::io::Error::other(format!(
            "frame of {size} bytes during authentication (at most {MAX_SASL_FRAME})"
        )));
    }
    let mut body = vec![0; size as usize];
    s.read_exact(&mut body).await?;
    Ok(Bytes::from(body))
}

async fn roundtrip<S, Req, Resp>(
    s: &mut S,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    request: &Req,
) -> std::io::Result<Resp>
where
    S: AsyncRead + AsyncWrite + Unpin + ?Sized,
    Req: Encodable + HeaderVersion,
    Resp: Decodable + HeaderVersion,
{
    write_request(s, key, version, correlation_id, request).await?;
    let mut body = read_frame(s).await?;
    let bad = |e: anyhow::Error| std::io::Error::other(format!("malformed {key:?} response: {e}"));
    let header = ResponseHeader::decode(&mut body, Resp::header_version(version)).map_err(bad)?;
    if header.correlation_id != correlation_id {
        return Err(std::io::Error::other(format!(
            "{key:?} response carries correlation id {}, expected {correlation_id}",
            header.correlation_id
        )));
    }
    Resp::decode(&mut body, version).map_err(bad)
}

/// The client's SASL exchange, as Kafka's clients run it: SaslHandshake v1
/// naming the mechanism, then SaslAuthenticate v2 frames.
async fn sasl_client<S>(s: &mut S, login: &SaslLogin) -> std::io::Result<()>
where
    S: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let handshake: SaslHandshakeResponse = roundtrip(
        s,
        ApiKey::SaslHandshake,
        1,
        1,
        &SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_static_str(login.mechanism.name())),
    )
    .await?;
    if handshake.error_code != 0 {
        let offered: Vec<&str> = handshake.mechanisms.iter().map(|m| m.as_str()).collect();
        return Err(denied(
            handshake.error_code,
            Some(StrBytes::from_string(format!(
                "the listener does not enable {} (it offers {})",
                login.mechanism,
                offered.join(",")
            ))),
        ));
    }
    let mut correlation = 1;
    match login.mechanism.scram() {
        None => {
            let mut token = Vec::new();
            token.push(0);
            token.extend_from_slice(login.username.as_bytes());
            token.push(0);
            token.extend_from_slice(login.password.0.as_bytes());
            authenticate_step(s, &mut correlation, token).await?;
        }
        Some(m) => {
            let nonce = gregor_security::scram::random_nonce(&mut rand::thread_rng());
            let mut client = gregor_security::scram::ScramClient::new(
                m,
                &login.username,
                &login.password.0,
                &nonce,
            );
            let server_first =
                authenticate_step(s, &mut correlation, client.client_first()).await?;
            let client_final = client
                .client_final(&server_first)
                .map_err(|e| std::io::Error::other(e.to_string()))?;
            let server_final = authenticate_step(s, &mut correlation, client_final).await?;
            if !client.verify_server_final(&server_final) {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    "the server's SCRAM signature is invalid (it does not know the credential)",
                ));
            }
        }
    }
    Ok(())
}

fn denied(code: i16, message: Option<StrBytes>) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::PermissionDenied,
        format!(
            "error code {code}: {}",
            message.as_deref().unwrap_or("(no message)")
        ),
    )
}

/// One SaslAuthenticate v2 round trip: the server's bytes, or its refusal.
async fn authenticate_step<S>(
    s: &mut S,
    correlation: &mut i32,
    bytes: Vec<u8>,
) -> std::io::Result<Bytes>
where
    S: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    *correlation += 1;
    let r: SaslAuthenticateResponse = roundtrip(
        s,
        ApiKey::SaslAuthenticate,
        2,
        *correlation,
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(bytes)),
    )
    .await?;
    if r.error_code != 0 {
        return Err(denied(r.error_code, r.error_message));
    }
    Ok(r.auth_bytes)
}

/// Whether a principal connecting from a host may hold a link on the
/// controller listener.
pub type LinkAuthorizer = Arc<dyn Fn(&KafkaPrincipal, IpAddr) -> bool + Send + Sync>;

/// The controller listener's accepting side: TLS (the client certificate
/// mapped to a principal), then the SASL exchange, then, with an
/// authorizer, the principal's right to be there.
pub struct LinkAcceptor {
    listener: String,
    tls: Option<(Arc<ReloadableAcceptor>, PrincipalMapper)>,
    sasl: Option<Authenticator>,
    authorize: Option<LinkAuthorizer>,
}

impl LinkAcceptor {
    /// `tls`: the listener's settings on an SSL / SASL_SSL listener (files
    /// are read now); `sasl`: its authenticator on a SASL one.
    pub fn new(
        listener: &str,
        tls: Option<&TlsSettings>,
        sasl: Option<Authenticator>,
    ) -> Result<Self, TlsError> {
        let tls = match tls {
            Some(t) => Some((
                Arc::new(ReloadableAcceptor::new(t)?),
                t.principal_mapper.clone(),
            )),
            None => None,
        };
        Ok(Self {
            listener: listener.to_string(),
            tls,
            sasl,
            authorize: None,
        })
    }

    /// The TLS side to reload when the keystore or truststore changes.
    pub fn tls(&self) -> Option<Arc<ReloadableAcceptor>> {
        self.tls.as_ref().map(|(a, _)| a.clone())
    }

    /// Refuses links whose principal `authorize` rejects. Kafka's
    /// controller answers every request of its listener (Vote, Fetch,
    /// BrokerRegistration, BrokerHeartbeat, AlterPartition...) with
    /// CLUSTER_AUTHORIZATION_FAILED unless the principal has CLUSTER_ACTION
    /// on the cluster; this listener's frames are Raft's, so the link is
    /// closed instead, with that reason in the log.
    pub fn with_authorizer(mut self, authorize: LinkAuthorizer) -> Self {
        self.authorize = Some(authorize);
        self
    }

    /// Secures one accepted socket and names who is at the other end.
    pub async fn accept(
        &self,
        socket: TcpStream,
        peer: SocketAddr,
    ) -> std::io::Result<(BoxStream, KafkaPrincipal)> {
        let accepted = tokio::time::timeout(HANDSHAKE_TIMEOUT, self.accept_inner(socket))
            .await
            .map(|r| {
                r.and_then(|(stream, principal)| match &self.authorize {
                    Some(allows) if !allows(&principal, peer.ip()) => {
                        Err(std::io::Error::new(
                            std::io::ErrorKind::PermissionDenied,
                            format!(
                                "{principal} is not authorized for CLUSTER_ACTION on the cluster \
                                 (CLUSTER_AUTHORIZATION_FAILED); add it to super.users or grant the ACL"
                            ),
                        ))
                    }
                    _ => Ok((stream, principal)),
                })
            });
        match accepted {
            Ok(r) => r.map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("listener {} from {peer}: {e}", self.listener),
                )
            }),
            Err(_) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "listener {} from {peer}: handshake not completed in {HANDSHAKE_TIMEOUT:?}",
                    self.listener
                ),
            )),
        }
    }

    async fn accept_inner(
        &self,
        socket: TcpStream,
    ) -> std::io::Result<(BoxStream, KafkaPrincipal)> {
        let mut principal = KafkaPrincipal::anonymous();
        let mut stream: BoxStream = match &self.tls {
            None => Box::new(socket),
            Some((acceptor, mapper)) => {
                let s = acceptor
                    .acceptor()
                    .accept(socket)
                    .await
                    .map_err(|e| std::io::Error::other(format!("TLS handshake failed: {e}")))?;
                if let Some(cert) = s.get_ref().1.peer_certificates().and_then(|c| c.first()) {
                    let name = super::tls::subject_dn(cert.as_ref())
                        .and_then(|dn| mapper.name_for(&dn).map_err(|e| e.to_string()))
                        .map_err(|e| {
                            std::io::Error::other(format!("client certificate refused: {e}"))
                        })?;
                    principal = KafkaPrincipal::user(name);
                }
                Box::new(s)
            }
        };
        if let Some(auth) = &self.sasl {
            principal = sasl_server(&mut stream, auth).await?;
        }
        Ok((stream, principal))
    }
}

impl gregor_raft::Acceptor for LinkAcceptor {
    fn accept(
        &self,
        socket: TcpStream,
        peer: SocketAddr,
    ) -> gregor_raft::network::BoxFuture<std::io::Result<BoxStream>> {
        let this = Self {
            listener: self.listener.clone(),
            tls: self.tls.clone(),
            sasl: self.sasl.clone(),
            authorize: self.authorize.clone(),
        };
        Box::pin(async move {
            let (stream, principal) = LinkAcceptor::accept(&this, socket, peer).await?;
            tracing::debug!(%peer, listener = %this.listener, %principal, "controller link authenticated");
            Ok(stream)
        })
    }
}

/// Kafka's error codes the exchange answers with.
const UNSUPPORTED_SASL_MECHANISM: i16 = 33;
const ILLEGAL_SASL_STATE: i16 = 34;
const SASL_AUTHENTICATION_FAILED: i16 = 58;

async fn write_response<S, Resp>(
    s: &mut S,
    version: i16,
    correlation_id: i32,
    response: &Resp,
) -> std::io::Result<()>
where
    S: AsyncWrite + Unpin + ?Sized,
    Resp: Encodable + HeaderVersion,
{
    let mut frame = BytesMut::with_capacity(128);
    frame.put_i32(0);
    ResponseHeader::default()
        .with_correlation_id(correlation_id)
        .encode(&mut frame, Resp::header_version(version))
        .and_then(|()| response.encode(&mut frame, version))
        .map_err(|e| std::io::Error::other(format!("encoding a SASL response: {e}")))?;
    let size = (frame.len() - 4) as i32;
    frame[..4].copy_from_slice(&size.to_be_bytes());
    s.write_all(&frame).await?;
    s.flush().await
}

/// One request of the exchange: its API key, version and correlation id,
/// the body left in `Bytes`.
fn request_header(frame: &mut Bytes) -> std::io::Result<(ApiKey, i16, i32)> {
    let bad = |what: String| std::io::Error::other(format!("malformed SASL request: {what}"));
    if frame.len() < 4 {
        return Err(bad("short frame".into()));
    }
    let key = i16::from_be_bytes([frame[0], frame[1]]);
    let version = i16::from_be_bytes([frame[2], frame[3]]);
    let api = ApiKey::try_from(key).map_err(|_| bad(format!("unknown API key {key}")))?;
    let header_version = match api {
        ApiKey::SaslHandshake if (0..=1).contains(&version) => {
            SaslHandshakeRequest::header_version(version)
        }
        ApiKey::SaslAuthenticate if (0..=2).contains(&version) => {
            SaslAuthenticateRequest::header_version(version)
        }
        _ => {
            return Err(bad(format!(
                "{api:?} v{version} before authentication (expected SaslHandshake v1, SaslAuthenticate)"
            )))
        }
    };
    let header = RequestHeader::decode(frame, header_version).map_err(|e| bad(e.to_string()))?;
    Ok((api, version, header.correlation_id))
}

/// The server's SASL exchange on the controller listener; the principal
/// of the authenticated user.
async fn sasl_server<S>(s: &mut S, auth: &Authenticator) -> std::io::Result<KafkaPrincipal>
where
    S: AsyncRead + AsyncWrite + Unpin + ?Sized,
{
    let mut frame = read_frame(s).await?;
    let (api, version, correlation) = request_header(&mut frame)?;
    if api != ApiKey::SaslHandshake || version != 1 {
        return Err(std::io::Error::other(format!(
            "expected SaslHandshake v1, got {api:?} v{version}"
        )));
    }
    let request = SaslHandshakeRequest::decode(&mut frame, version)
        .map_err(|e| std::io::Error::other(format!("malformed SaslHandshake: {e}")))?;
    let mechanisms: Vec<StrBytes> = auth
        .mechanisms()
        .into_iter()
        .map(StrBytes::from_static_str)
        .collect();
    let mut server = match auth.start(request.mechanism.as_str()) {
        Ok(server) => server,
        Err(e) => {
            let response = SaslHandshakeResponse::default()
                .with_error_code(UNSUPPORTED_SASL_MECHANISM)
                .with_mechanisms(mechanisms);
            write_response(s, version, correlation, &response).await?;
            return Err(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                e.to_string(),
            ));
        }
    };
    let response = SaslHandshakeResponse::default().with_mechanisms(mechanisms);
    write_response(s, version, correlation, &response).await?;
    loop {
        let mut frame = read_frame(s).await?;
        let (api, version, correlation) = request_header(&mut frame)?;
        if api != ApiKey::SaslAuthenticate {
            let response = SaslAuthenticateResponse::default().with_error_code(ILLEGAL_SASL_STATE);
            write_response(s, 2, correlation, &response).await?;
            return Err(std::io::Error::other(format!(
                "{api:?} during the SASL exchange"
            )));
        }
        let request = SaslAuthenticateRequest::decode(&mut frame, version)
            .map_err(|e| std::io::Error::other(format!("malformed SaslAuthenticate: {e}")))?;
        match server.step(&request.auth_bytes) {
            Ok(Step::Continue(bytes)) => {
                let response = SaslAuthenticateResponse::default().with_auth_bytes(bytes.into());
                write_response(s, version, correlation, &response).await?;
            }
            Ok(Step::Done {
                principal,
                response,
            }) => {
                let response = SaslAuthenticateResponse::default().with_auth_bytes(response.into());
                write_response(s, version, correlation, &response).await?;
                return Ok(KafkaPrincipal::user(principal));
            }
            Err(e) => {
                let response = SaslAuthenticateResponse::default()
                    .with_error_code(SASL_AUTHENTICATION_FAILED)
                    .with_error_message(Some(StrBytes::from_string(e.to_string())))
                    .with_auth_bytes(Bytes::from(e.server_final().unwrap_or_default().to_vec()));
                write_response(s, version, correlation, &response).await?;
                return Err(std::io::Error::new(
                    std::io::ErrorKind::PermissionDenied,
                    e.to_string(),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::tls_reload::Refresh;
    use gregor_security::{PlainUsers, StaticCredentials};
    use std::sync::Arc;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn sasl_login_reads_mechanism_and_jaas_in_kafkas_order() {
        let p = props(&[
            ("sasl.mechanism.inter.broker.protocol", "SCRAM-SHA-512"),
            (
                "listener.name.broker.scram-sha-512.sasl.jaas.config",
                r#"org.apache.kafka.common.security.scram.ScramLoginModule required username="b" password="pw";"#,
            ),
            (
                "sasl.jaas.config",
                r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="other" password="x";"#,
            ),
        ]);
        let s = LinkSecurity::from_props(
            &p,
            "BROKER",
            SecurityProtocol::SaslPlaintext,
            "sasl.mechanism.inter.broker.protocol",
            true,
        )
        .unwrap();
        let login = s.sasl.unwrap();
        assert_eq!(login.mechanism, Mechanism::ScramSha512);
        assert_eq!(login.username, "b");
        assert_eq!(login.password.0, "pw");
        assert!(s.tls.is_none());
    }

    #[test]
    fn sasl_login_errors_name_the_missing_key() {
        let e = LinkSecurity::from_props(
            &props(&[]),
            "CONTROLLER",
            SecurityProtocol::SaslPlaintext,
            "sasl.mechanism.controller.protocol",
            true,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("sasl.mechanism.controller.protocol"), "{e}");
        let e = LinkSecurity::from_props(
            &props(&[("sasl.mechanism.controller.protocol", "GSSAPI")]),
            "CONTROLLER",
            SecurityProtocol::SaslPlaintext,
            "sasl.mechanism.controller.protocol",
            true,
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("GSSAPI"), "{e}");
        let e = LinkSecurity::from_props(
            &props(&[("sasl.mechanism.controller.protocol", "PLAIN")]),
            "CONTROLLER",
            SecurityProtocol::SaslPlaintext,
            "sasl.mechanism.controller.protocol",
            true,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.contains("listener.name.controller.plain.sasl.jaas.config"),
            "{e}"
        );
    }

    #[test]
    fn tls_link_settings() {
        let base = [
            ("ssl.keystore.type", "PEM"),
            ("ssl.truststore.type", "PEM"),
            ("listener.name.ssl.ssl.truststore.location", "/ca.pem"),
        ];
        // A listener only connected to: no keystore needed; host names
        // verified by default (Kafka's `https`).
        let s = LinkSecurity::from_props(
            &props(&base),
            "SSL",
            SecurityProtocol::Ssl,
            "sasl.mechanism.inter.broker.protocol",
            false,
        )
        .unwrap();
        let tls = s.tls.unwrap();
        assert!(tls.keystore.is_none());
        assert!(tls.verify_hostname);
        // Served: the keystore is required.
        assert!(LinkSecurity::from_props(
            &props(&base),
            "SSL",
            SecurityProtocol::Ssl,
            "sasl.mechanism.inter.broker.protocol",
            true,
        )
        .is_err());
        let mut p = props(&base);
        p.insert(
            "listener.name.ssl.ssl.endpoint.identification.algorithm".into(),
            "".into(),
        );
        let tls = LinkSecurity::from_props(&p, "SSL", SecurityProtocol::Ssl, "x", false)
            .unwrap()
            .tls
            .unwrap();
        assert!(!tls.verify_hostname);
        p.insert(
            "listener.name.ssl.ssl.endpoint.identification.algorithm".into(),
            "ldap".into(),
        );
        assert!(LinkSecurity::from_props(&p, "SSL", SecurityProtocol::Ssl, "x", false).is_err());
        // Without a truststore the connector cannot be built.
        let no_trust = TlsSettings::client_from_props(&props(&[]), "SSL").unwrap();
        let e = ClientConnector::new(&LinkSecurity {
            listener: "SSL".into(),
            protocol: SecurityProtocol::Ssl,
            tls: Some(no_trust),
            sasl: None,
        })
        .unwrap_err()
        .to_string();
        assert!(e.contains("truststore"), "{e}");
    }

    /// The client's and the acceptor's SASL halves agree, for each
    /// mechanism, and a wrong password is refused with Kafka's message.
    #[tokio::test]
    async fn sasl_exchange_between_connector_and_acceptor() {
        let mut plain = PlainUsers::default();
        plain.insert("admin", "secret");
        let mut store = StaticCredentials::with_plain(plain);
        let cred = gregor_security::ScramCredential::generate(
            gregor_security::ScramMechanism::Sha512,
            "scram-pw",
            4096,
            &mut rand::thread_rng(),
        );
        store.add_scram("broker", gregor_security::ScramMechanism::Sha512, cred);
        let auth = Authenticator::new(
            vec![Mechanism::Plain, Mechanism::ScramSha512],
            Arc::new(store),
        );
        let cases = [
            (Mechanism::Plain, "admin", "secret", true),
            (Mechanism::Plain, "admin", "wrong", false),
            (Mechanism::ScramSha512, "broker", "scram-pw", true),
            (Mechanism::ScramSha512, "broker", "wrong", false),
            (Mechanism::ScramSha256, "broker", "scram-pw", false),
        ];
        for (mechanism, user, password, ok) in cases {
            let (mut a, mut b) = tokio::io::duplex(4096);
            let login = SaslLogin {
                mechanism,
                username: user.into(),
                password: Password(password.into()),
            };
            let auth = auth.clone();
            let server = tokio::spawn(async move { sasl_server(&mut b, &auth).await });
            let client = sasl_client(&mut a, &login).await;
            let server = server.await.unwrap();
            assert_eq!(client.is_ok(), ok, "{mechanism} {password}: {client:?}");
            match server {
                Ok(p) => {
                    assert!(ok);
                    assert_eq!(p, KafkaPrincipal::user(user));
                }
                Err(e) => assert!(!ok, "{e}"),
            }
            if !ok && mechanism != Mechanism::ScramSha256 {
                let e = client.unwrap_err().to_string();
                assert!(e.contains("Authentication failed"), "{e}");
            }
        }
    }

    /// A CA, and keystores (key and certificate PEM) it signs.
    struct TestCa(rcgen::Issuer<'static, rcgen::KeyPair>, String);

    impl TestCa {
        fn new() -> Self {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
            params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, "gregor test ca");
            let pem = params.self_signed(&key).unwrap().pem();
            TestCa(rcgen::Issuer::new(params, key), pem)
        }

        fn keystore(&self, cn: &str) -> String {
            let key = rcgen::KeyPair::generate().unwrap();
            let mut params =
                rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()])
                    .unwrap();
            params
                .distinguished_name
                .push(rcgen::DnType::CommonName, cn);
            let cert = params.signed_by(&key, &self.0).unwrap();
            format!("{}{}", key.serialize_pem(), cert.pem())
        }
    }

    /// One link from `connector` to `acceptor`: who the acceptor says is
    /// at the other end.
    async fn link(
        listener: &tokio::net::TcpListener,
        acceptor: &LinkAcceptor,
        connector: &ClientConnector,
    ) -> std::io::Result<KafkaPrincipal> {
        let port = listener.local_addr().unwrap().port();
        let (accepted, connected) = tokio::join!(
            async {
                let (socket, peer) = listener.accept().await?;
                acceptor.accept(socket, peer).await
            },
            connector.connect("127.0.0.1", port)
        );
        connected?;
        accepted.map(|(_, principal)| principal)
    }

    /// The outgoing side of a link reloads its keystore: a link opened
    /// after the reload presents the new certificate (Kafka's checks of a
    /// new subject apply), and the controller listener lets in only the
    /// principals its authorizer allows.
    #[tokio::test]
    async fn connector_presents_the_reloaded_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let path = |name: &str| dir.path().join(name).to_str().unwrap().to_string();
        let ca = TestCa::new();
        std::fs::write(path("ca.pem"), &ca.1).unwrap();
        std::fs::write(path("server.pem"), ca.keystore("localhost")).unwrap();
        std::fs::write(path("client.pem"), ca.keystore("old")).unwrap();
        let (server_ks, client_ks, trust) =
            (path("server.pem"), path("client.pem"), path("ca.pem"));
        let server = TlsSettings::from_props(
            &props(&[
                ("ssl.keystore.type", "PEM"),
                ("ssl.keystore.location", &server_ks),
                ("ssl.truststore.type", "PEM"),
                ("ssl.truststore.location", &trust),
                ("ssl.client.auth", "required"),
            ]),
            "BROKER",
        )
        .unwrap();
        let client_props = |extra: &[(&str, &str)]| {
            let mut p = props(&[
                ("ssl.keystore.type", "PEM"),
                ("ssl.keystore.location", &client_ks),
                ("ssl.truststore.type", "PEM"),
                ("ssl.truststore.location", &trust),
            ]);
            p.extend(props(extra));
            TlsSettings::client_from_props(&p, "BROKER").unwrap()
        };
        let acceptor = LinkAcceptor::new("BROKER", Some(&server), None).unwrap();
        let connector = ClientConnector::new(&LinkSecurity {
            listener: "BROKER".into(),
            protocol: SecurityProtocol::Ssl,
            tls: Some(client_props(&[])),
            sasl: None,
        })
        .unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let old = KafkaPrincipal::user("CN=old");
        assert_eq!(link(&listener, &acceptor, &connector).await.unwrap(), old);

        // A certificate for another subject: refused by default, the old
        // one still presented.
        std::fs::write(path("client.pem"), ca.keystore("new")).unwrap();
        let tls = connector.tls().unwrap();
        let e = tls
            .refresh(&client_props(&[]), true)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Keystore DistinguishedName does not match"),
            "{e}"
        );
        assert_eq!(link(&listener, &acceptor, &connector).await.unwrap(), old);
        // Allowed: the next link presents it.
        let allowed = client_props(&[("ssl.allow.dn.changes", "true")]);
        assert_eq!(tls.refresh(&allowed, true).unwrap(), Refresh::Reloaded);
        let new = KafkaPrincipal::user("CN=new");
        assert_eq!(link(&listener, &acceptor, &connector).await.unwrap(), new);

        // An authorizer on the acceptor: only CN=old may hold a link now.
        let acceptor = acceptor.with_authorizer(Arc::new(move |p, _| *p == old));
        let e = link(&listener, &acceptor, &connector).await.unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::PermissionDenied);
        assert!(
            e.to_string()
                .contains("User:CN=new is not authorized for CLUSTER_ACTION on the cluster"),
            "{e}"
        );
    }
}
