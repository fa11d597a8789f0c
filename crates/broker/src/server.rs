//! The listeners: bind every client listener (PLAINTEXT, SSL, SASL_PLAINTEXT
//! or SASL_SSL), accept connections on all of them, spawn one task per
//! connection (after the TLS handshake on an SSL or SASL_SSL listener; with
//! a SASL session on a SASL listener), and shut down in order: stop accepting,
//! let in-flight requests finish, stop background tasks, flush and
//! checkpoint the logs.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;
use std::time::Duration;

use gregor_security::Authenticator;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

use crate::broker::Broker;
use crate::config::ClientListener;
use crate::quota::WindowConfig;
use crate::transport::connection_rate::{self, Admission, ConnectionRates};
use crate::transport::limits::ConnectionLimits;
use crate::transport::principal::PrincipalMapper;
use crate::transport::sasl::SaslSession;
use crate::transport::tls::TlsError;
use crate::transport::tls_reload::ReloadableAcceptor;
use crate::transport::{ConnectionContext, KafkaPrincipal, SecurityProtocol};

/// How long shutdown waits for in-flight requests.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// How long a client may take to complete the TLS handshake: a connection
/// that never does (a plaintext client on an SSL port that waits for an
/// answer) is closed instead of holding a connection slot forever.
pub const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum BindError {
    #[error("binding {name}://{host}:{port}: {source}")]
    Io {
        name: String,
        host: String,
        port: u16,
        source: std::io::Error,
    },
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// What an SSL listener needs per connection.
struct TlsListener {
    /// Replaced when the listener's certificates are reloaded; a connection
    /// takes the one current when it arrives.
    acceptor: Arc<ReloadableAcceptor>,
    mapper: PrincipalMapper,
}

/// One bound client listener.
pub struct BoundListener {
    pub name: Arc<str>,
    pub protocol: SecurityProtocol,
    pub local_addr: SocketAddr,
    socket: TcpListener,
    tls: Option<Arc<TlsListener>>,
    sasl: Option<crate::sasl::SaslSettings>,
}

/// Every bound client listener, in the order of `listeners`.
pub struct Listeners {
    bound: Vec<BoundListener>,
}

impl Listeners {
    /// The first listener's address (the one printed first at start).
    pub fn local_addr(&self) -> std::io::Result<SocketAddr> {
        self.bound
            .first()
            .map(|l| l.local_addr)
            .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "no listener"))
    }

    pub fn iter(&self) -> impl Iterator<Item = &BoundListener> {
        self.bound.iter()
    }

    /// Accepts the next connection on any listener, starting the scan at
    /// `start` so one busy listener cannot starve the others; a listener
    /// `paused` (over a connection creation rate) is skipped.
    async fn accept(
        &self,
        start: usize,
        paused: &[Option<tokio::time::Instant>],
    ) -> (usize, std::io::Result<(TcpStream, SocketAddr)>) {
        std::future::poll_fn(|cx| {
            let n = self.bound.len();
            for k in 0..n {
                let i = (start + k) % n;
                if paused.get(i).is_some_and(Option::is_some) {
                    continue;
                }
                if let Poll::Ready(r) = self.bound[i].socket.poll_accept(cx) {
                    return Poll::Ready((i, r));
                }
            }
            Poll::Pending
        })
        .await
    }
}

/// Binds every client listener (port 0 binds an ephemeral port, which is
/// then advertised) and loads the TLS material of the SSL ones.
pub async fn bind(broker: &Broker) -> Result<Listeners, BindError> {
    let mut bound = Vec::new();
    for (index, l) in broker.config.listeners.iter().enumerate() {
        let tls = match &l.tls {
            Some(settings) => Some(Arc::new(TlsListener {
                acceptor: Arc::new(crate::transport::tls_reload::bind(broker, settings)?),
                mapper: settings.principal_mapper.clone(),
            })),
            None => None,
        };
        let socket = bind_one(l).await.map_err(|source| BindError::Io {
            name: l.listener.name.clone(),
            host: l.listener.host.clone(),
            port: l.listener.port,
            source,
        })?;
        let local_addr = socket.local_addr().map_err(|source| BindError::Io {
            name: l.listener.name.clone(),
            host: l.listener.host.clone(),
            port: l.listener.port,
            source,
        })?;
        broker.set_bound_port(index, local_addr.port());
        bound.push(BoundListener {
            name: Arc::from(l.listener.name.as_str()),
            protocol: l.protocol,
            local_addr,
            socket,
            tls,
            sasl: l.sasl.clone(),
        });
    }
    Ok(Listeners { bound })
}

async fn bind_one(l: &ClientListener) -> std::io::Result<TcpListener> {
    let l = &l.listener;
    let host = if l.host.is_empty() {
        "0.0.0.0"
    } else {
        l.host.as_str()
    };
    let addr = tokio::net::lookup_host((host, l.port))
        .await?
        .next()
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("cannot resolve {host}"),
            )
        })?;
    let socket = if addr.is_ipv6() {
        tokio::net::TcpSocket::new_v6()?
    } else {
        tokio::net::TcpSocket::new_v4()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(addr)?;
    socket.listen(1024)
}

/// Serves until `shutdown` resolves, then shuts down cleanly.
pub async fn run(broker: Arc<Broker>, listeners: Listeners, shutdown: impl Future<Output = ()>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let limits = Arc::new(ConnectionLimits::new(
        broker.config.connection_limits.max_connections,
        broker.config.connection_limits.max_connections_per_ip,
        broker.config.connection_limits.per_ip_overrides.clone(),
    ));
    let inter_broker = broker.config.inter_broker_listener;
    let rates = connection_rates(&broker);
    // Listeners over their connection creation rate accept again from then.
    let mut paused: Vec<Option<tokio::time::Instant>> = vec![None; listeners.bound.len()];
    let mut connections = JoinSet::new();
    let checkpointer = tokio::spawn(checkpoint_loop(broker.clone(), stop_rx.clone()));
    let retention = tokio::spawn(retention_loop(broker.clone(), stop_rx.clone()));
    let group_timers = tokio::spawn(broker.groups.clone().run_timers(stop_rx.clone()));
    let txn_timers = tokio::spawn(broker.txns.clone().run_timers(stop_rx.clone()));
    let cluster = tokio::spawn(crate::cluster::run_broker(broker.clone(), stop_rx.clone()));
    let tls_listeners: Vec<_> = listeners
        .bound
        .iter()
        .filter_map(|l| l.tls.as_ref().map(|t| t.acceptor.clone()))
        .collect();
    *broker.tls_listeners.lock() = tls_listeners.clone();
    let tls_reload = tokio::spawn(crate::transport::tls_reload::run(
        broker.clone(),
        tls_listeners,
        stop_rx.clone(),
    ));
    // One authenticator per SASL listener; each connection starts a session on it.
    let authenticators: Vec<Option<(Authenticator, i64, Duration)>> = listeners
        .bound
        .iter()
        .map(|l| {
            l.sasl.as_ref().map(|s| {
                (
                    s.authenticator(&broker),
                    s.max_reauth_ms,
                    s.failed_auth_delay,
                )
            })
        })
        .collect();
    tokio::pin!(shutdown);
    let mut next = 0;
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            () = sleep_until_first(&paused), if paused.iter().any(Option::is_some) => {
                let now = tokio::time::Instant::now();
                for p in &mut paused {
                    if p.is_some_and(|until| until <= now) {
                        *p = None;
                    }
                }
            }
            (index, accepted) = listeners.accept(next, &paused) => {
                next = index + 1;
                let (socket, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let ip = peer.ip().to_canonical();
                let ip_quota = connection_rate::ip_quota(&broker.metadata.image(), ip);
                let delay = match rates.admit(index, ip, ip_quota, broker.clock.now_ms()) {
                    Admission::Accept { delay_ms } => Duration::from_millis(delay_ms.max(0) as u64),
                    Admission::Throttled { close_after_ms } => {
                        // Held unserved, then closed: the client does not
                        // reconnect at once (Kafka's DelayedCloseSocket).
                        tracing::debug!(%peer, close_after_ms, "connection throttled: connection_creation_rate");
                        let mut stop = stop_rx.clone();
                        connections.spawn(async move {
                            let hold = Duration::from_millis(close_after_ms as u64);
                            tokio::select! {
                                _ = stop.changed() => {}
                                () = tokio::time::sleep(hold) => {}
                            }
                            drop(socket);
                        });
                        continue;
                    }
                };
                if !delay.is_zero() {
                    tracing::debug!(%peer, ?delay, "connection delayed: max.connection.creation.rate");
                    paused[index] = Some(tokio::time::Instant::now() + delay);
                }
                let permit = match limits.admit(peer.ip(), index == inter_broker) {
                    Ok(p) => p,
                    Err(e) => {
                        tracing::warn!(%peer, reason = %e, "connection refused: too many connections");
                        continue;
                    }
                };
                let l = &listeners.bound[index];
                let (name, protocol, tls) = (l.name.clone(), l.protocol, l.tls.clone());
                let sasl = authenticators[index]
                    .as_ref()
                    .map(|(a, reauth, delay)| SaslSession::new(a.clone(), *reauth, *delay));
                let broker = broker.clone();
                let mut stop = stop_rx.clone();
                connections.spawn(async move {
                    if !delay.is_zero() {
                        // Accepted late, as Kafka's acceptor waits out the rate.
                        tokio::select! {
                            _ = stop.changed() => return,
                            () = tokio::time::sleep(delay) => {}
                        }
                    }
                    let counted = broker.metrics.listener(&name);
                    counted.connections_created.inc();
                    counted.connection_count.add(1);
                    let result = match tls {
                        None => {
                            let context = Arc::new(with_sasl(ConnectionContext::new(
                                name.clone(),
                                protocol,
                                Some(peer),
                                KafkaPrincipal::anonymous(),
                            ), sasl));
                            crate::connection::serve_tcp(broker, socket, context, stop).await
                        }
                        // Boxed: TLS state is large, and inline every plaintext
                        // connection's task would have room for it too.
                        Some(tls) => Box::pin(serve_tls(broker, socket, peer, name.clone(), protocol, &tls, sasl, stop)).await,
                    };
                    if let Err(e) = result {
                        tracing::debug!(%peer, listener = %name, error = %e, "connection closed");
                    }
                    counted.connection_count.add(-1);
                    counted.connections_closed.inc();
                    drop(permit);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Leaderships move to other brokers while this one still answers (with
    // NOT_LEADER_OR_FOLLOWER and fresh metadata) and its followers catch up.
    crate::cluster::controlled_shutdown(&broker).await;
    drop(listeners);
    tracing::info!("shutting down: waiting for in-flight requests");
    let _ = stop_tx.send(true);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        connections.abort_all();
    }
    let _ = checkpointer.await;
    let _ = retention.await;
    let _ = group_timers.await;
    let _ = txn_timers.await;
    let _ = cluster.await;
    let _ = tls_reload.await;
    let b = broker.clone();
    match tokio::task::spawn_blocking(move || b.shutdown()).await {
        Ok(Ok(())) => tracing::info!("shut down cleanly"),
        Ok(Err(e)) => tracing::error!(error = %e, "shutdown: flushing logs failed"),
        Err(e) => tracing::error!(error = %e, "shutdown task failed"),
    }
}

/// The broker's connection creation rates from its config.
fn connection_rates(broker: &Broker) -> ConnectionRates {
    let c = &broker.config;
    ConnectionRates::new(
        WindowConfig {
            samples: c.quota_window_num,
            window_ms: i64::from(c.quota_window_size_seconds) * 1000,
        },
        c.connection_limits
            .max_connection_creation_rate
            .map(f64::from),
        c.connection_limits
            .listener_connection_creation_rates
            .iter()
            .map(|r| r.map(f64::from))
            .collect(),
        c.inter_broker_listener,
    )
}

/// Resolves when the first paused listener may accept again.
async fn sleep_until_first(paused: &[Option<tokio::time::Instant>]) {
    match paused.iter().flatten().min() {
        Some(until) => tokio::time::sleep_until(*until).await,
        None => std::future::pending().await,
    }
}

fn with_sasl(context: ConnectionContext, sasl: Option<SaslSession>) -> ConnectionContext {
    match sasl {
        Some(session) => context.with_sasl(session),
        None => context,
    }
}

/// The TLS handshake, the client's principal, then the connection. A failed
/// handshake (a plaintext client, a missing or untrusted client
/// certificate, no common protocol or suite) closes this connection only.
#[allow(clippy::too_many_arguments)] // one connection's parts, passed once
async fn serve_tls(
    broker: Arc<Broker>,
    socket: TcpStream,
    peer: SocketAddr,
    listener: Arc<str>,
    protocol: SecurityProtocol,
    tls: &TlsListener,
    sasl: Option<SaslSession>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), crate::connection::ConnectionError> {
    socket.set_nodelay(true)?;
    let handshake = tokio::time::timeout(
        TLS_HANDSHAKE_TIMEOUT,
        tls.acceptor.acceptor().accept(socket),
    );
    let stream = tokio::select! {
        done = handshake => match done {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                broker.metrics.listener(&listener).failed_authentication.inc();
                tracing::info!(%peer, %listener, error = %e, "TLS handshake failed; connection closed");
                return Ok(());
            }
            Err(_) => {
                tracing::info!(%peer, %listener, "TLS handshake not completed in {TLS_HANDSHAKE_TIMEOUT:?}; connection closed");
                return Ok(());
            }
        },
        _ = stop.changed() => return Ok(()),
    };
    let principal = match stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
    {
        None => KafkaPrincipal::anonymous(),
        Some(cert) => {
            let name = crate::transport::tls::subject_dn(cert.as_ref())
                .and_then(|dn| tls.mapper.name_for(&dn).map_err(|e| e.to_string()));
            match name {
                Ok(name) => KafkaPrincipal::user(name),
                Err(e) => {
                    broker
                        .metrics
                        .listener(&listener)
                        .failed_authentication
                        .inc();
                    tracing::warn!(%peer, %listener, error = %e, "client certificate refused; connection closed");
                    return Ok(());
                }
            }
        }
    };
    tracing::debug!(%peer, %listener, %principal, "TLS connection authenticated");
    let context = Arc::new(with_sasl(
        ConnectionContext::new(listener, protocol, Some(peer), principal),
        sasl,
    ));
    crate::connection::serve(broker, stream, context, stop).await
}

/// Writes the log-dir checkpoints every `log.flush.offset.checkpoint.interval.ms`.
async fn checkpoint_loop(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let period = Duration::from_millis(broker.config.checkpoint_interval_ms);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(period) => {
                let b = broker.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || b.checkpoint()).await {
                    tracing::warn!(error = %e, "writing checkpoints failed");
                }
            }
        }
    }
}

/// Applies retention every `log.retention.check.interval.ms`.
async fn retention_loop(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let period = Duration::from_millis(broker.config.retention_check_interval_ms);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(period) => {
                let b = broker.clone();
                match tokio::task::spawn_blocking(move || b.enforce_retention()).await {
                    Ok(Ok(0)) | Err(_) => {}
                    Ok(Ok(n)) => tracing::info!(segments = n, "retention deleted segments"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "retention failed"),
                }
            }
        }
    }
}
