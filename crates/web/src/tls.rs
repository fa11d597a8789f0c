//! HTTPS on the HTTP listener (`http.listeners=https://HOST:PORT`).
//!
//! The TLS settings are Kafka's `ssl.*` keys under Gregor's `http.` prefix
//! (`http.ssl.keystore.location`, `http.ssl.key.password`,
//! `http.ssl.truststore.location`, `http.ssl.client.auth`,
//! `http.ssl.enabled.protocols`, `http.ssl.cipher.suites`, ...), each
//! falling back to the broker's own `ssl.*` key when unset, so a node
//! whose Kafka listener already has a certificate serves HTTPS with just
//! `https://` in `http.listeners`. They are read by the same code as a
//! Kafka listener's ([`TlsSettings`]): PEM keystores and truststores only,
//! encrypted PKCS#8 keys, `ssl.principal.mapping.rules` for the client
//! certificate's principal.
//!
//! The keystore and truststore files are re-read every
//! `gregor.ssl.keystore.reload.interval.ms` when they change (a new
//! connection gets the new certificate, as on a Kafka listener).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::serve::{IncomingStream, Listener};
use gregor_broker::transport::tls::{subject_dn, TlsSettings};
use gregor_broker::transport::tls_reload::ReloadableAcceptor;
use gregor_broker::Broker;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpListener;
use tokio::task::JoinSet;

/// The name the HTTP listener's TLS settings go by in errors and logs.
pub const LISTENER: &str = "HTTP";

/// A handshake not done in this long is dropped (as on a Kafka listener).
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Handshakes in progress on one listener at most; further connections
/// wait in the kernel's accept queue.
const MAX_HANDSHAKES: usize = 256;

/// The broker's properties with every `http.ssl.X` copied over `ssl.X`,
/// and no `listener.name.*` overrides (those belong to Kafka listeners):
/// what [`TlsSettings`] reads for listener [`LISTENER`].
pub fn http_props(props: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = props
        .iter()
        .filter(|(k, _)| !k.starts_with(gregor_metadata::config_defs::LISTENER_PREFIX))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for (k, v) in props {
        if let Some(base) = k
            .strip_prefix(gregor_metadata::config_defs::HTTP_PREFIX)
            .filter(|b| b.starts_with("ssl."))
        {
            out.insert(base.to_string(), v.clone());
        }
    }
    out
}

/// The HTTP listener's TLS settings (Kafka's errors, naming listener HTTP).
pub fn settings(props: &BTreeMap<String, String>) -> Result<TlsSettings, String> {
    TlsSettings::from_props(&http_props(props), LISTENER).map_err(|e| e.to_string())
}

/// Who is on the other end of an HTTP connection.
#[derive(Debug, Clone)]
pub struct HttpPeer {
    pub addr: SocketAddr,
    /// The principal of the client certificate (`User:<mapped name>`),
    /// on an HTTPS listener whose client presented one.
    pub cert_principal: Option<String>,
}

impl axum::extract::connect_info::Connected<IncomingStream<'_, HttpListener>> for HttpPeer {
    fn connect_info(stream: IncomingStream<'_, HttpListener>) -> Self {
        stream.remote_addr().clone()
    }
}

/// A connection's bytes, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// The TLS side of an HTTPS listener.
pub struct HttpTls {
    pub acceptor: Arc<ReloadableAcceptor>,
    pub settings: TlsSettings,
}

/// One bound HTTP listener, plain or HTTPS, as axum serves it.
pub struct HttpListener {
    tcp: TcpListener,
    tls: Option<Arc<HttpTls>>,
    handshakes: JoinSet<Option<(Box<dyn Io>, HttpPeer)>>,
    broker: Arc<Broker>,
}

impl HttpListener {
    pub fn new(tcp: TcpListener, tls: Option<Arc<HttpTls>>, broker: Arc<Broker>) -> Self {
        HttpListener {
            tcp,
            tls,
            handshakes: JoinSet::new(),
            broker,
        }
    }
}

/// The principal of a verified client certificate, through
/// `ssl.principal.mapping.rules`; `Err` when the rules map it to nothing.
fn cert_principal(settings: &TlsSettings, der: &[u8]) -> Result<String, String> {
    let dn = subject_dn(der)?;
    let name = settings
        .principal_mapper
        .name_for(&dn)
        .map_err(|e| e.to_string())?;
    Ok(format!("User:{name}"))
}

impl Listener for HttpListener {
    type Io = Box<dyn Io>;
    type Addr = HttpPeer;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            let Some(tls) = self.tls.clone() else {
                match self.tcp.accept().await {
                    Ok((stream, addr)) => {
                        let _ = stream.set_nodelay(true);
                        let peer = HttpPeer {
                            addr,
                            cert_principal: None,
                        };
                        return (Box::new(stream), peer);
                    }
                    Err(e) => accept_error(e).await,
                }
                continue;
            };
            // Handshakes run beside the accept loop, so a slow client
            // does not hold up the others.
            let accepting = self.handshakes.len() < MAX_HANDSHAKES;
            tokio::select! {
                accepted = self.tcp.accept(), if accepting => match accepted {
                    Ok((stream, addr)) => {
                        let _ = stream.set_nodelay(true);
                        let acceptor = tls.acceptor.acceptor();
                        let tls = tls.clone();
                        let broker = self.broker.clone();
                        self.handshakes.spawn(async move {
                            let done = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await;
                            let stream = match done {
                                Ok(Ok(s)) => s,
                                Ok(Err(e)) => {
                                    tracing::debug!(%addr, error = %e, "HTTPS handshake failed");
                                    broker.metrics.listener(LISTENER).failed_authentication.inc();
                                    return None;
                                }
                                Err(_) => return None,
                            };
                            let cert = stream.get_ref().1.peer_certificates().and_then(|c| c.first());
                            let cert_principal = match cert.map(|c| cert_principal(&tls.settings, c.as_ref())) {
                                None => None,
                                Some(Ok(p)) => Some(p),
                                Some(Err(e)) => {
                                    tracing::warn!(%addr, error = %e, "HTTPS client certificate refused");
                                    broker.metrics.listener(LISTENER).failed_authentication.inc();
                                    return None;
                                }
                            };
                            Some((Box::new(stream) as Box<dyn Io>, HttpPeer { addr, cert_principal }))
                        });
                    }
                    Err(e) => accept_error(e).await,
                },
                Some(done) = self.handshakes.join_next(), if !self.handshakes.is_empty() => {
                    if let Ok(Some(ready)) = done {
                        return ready;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(HttpPeer {
            addr: self.tcp.local_addr()?,
            cert_principal: None,
        })
    }
}

/// As axum's own listener: a failed accept (out of file descriptors, say)
/// is logged and retried after a pause.
async fn accept_error(e: std::io::Error) {
    if !matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    ) {
        tracing::warn!(error = %e, "HTTP accept failed");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Re-reads the keystore and truststore files every
/// `gregor.ssl.keystore.reload.interval.ms` (0: never) until `stop`.
pub async fn reload_loop(
    tls: Arc<HttpTls>,
    interval_ms: u64,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    if interval_ms == 0 {
        return;
    }
    let mut tick = tokio::time::interval(Duration::from_millis(interval_ms));
    tick.tick().await;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.wait_for(|s| *s) => return,
        }
        let t = tls.clone();
        let outcome =
            tokio::task::spawn_blocking(move || t.acceptor.refresh(&t.settings, false)).await;
        match outcome {
            Ok(Ok(gregor_broker::transport::tls_reload::Refresh::Reloaded)) => {
                tracing::info!("HTTP listener: keystore reloaded")
            }
            Ok(Err(e)) => tracing::warn!(error = %e, "HTTP listener: keystore reload failed"),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn http_keys_override_the_broker_ssl_keys() {
        let props: BTreeMap<String, String> = [
            ("ssl.keystore.location", "/broker.pem"),
            ("ssl.keystore.type", "PEM"),
            ("ssl.truststore.location", "/ca.pem"),
            ("ssl.truststore.type", "PEM"),
            ("http.ssl.keystore.location", "/http.pem"),
            ("http.ssl.client.auth", "required"),
            ("listener.name.http.ssl.client.auth", "none"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let s = settings(&props).expect("valid");
        assert_eq!(
            s.keystore,
            Some(gregor_broker::transport::tls::Keystore::File(
                "/http.pem".into()
            ))
        );
        assert_eq!(
            s.truststore,
            Some(gregor_broker::transport::tls::PemSource::File(
                "/ca.pem".into()
            ))
        );
        assert_eq!(
            s.client_auth,
            gregor_broker::transport::tls::ClientAuth::Required
        );

        // No keystore anywhere: Kafka's message, naming the HTTP listener.
        let none = BTreeMap::new();
        let e = settings(&none).unwrap_err();
        assert!(e.contains("listener HTTP"), "{e}");
        // client.auth=required without a truststore is refused.
        let props: BTreeMap<String, String> = [
            ("http.ssl.keystore.location", "/http.pem"),
            ("http.ssl.keystore.type", "PEM"),
            ("http.ssl.client.auth", "required"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert!(settings(&props).unwrap_err().contains("truststore"));
    }
}
