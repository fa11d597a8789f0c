//! The transport seam: what a connection knows about itself besides its bytes.
//!
//! A connection is served over any byte stream (`connection::serve` is
//! generic over `AsyncRead + AsyncWrite`): a plain TCP socket on a
//! PLAINTEXT listener, a TLS stream (`tls.rs`, rustls) on an SSL listener.
//! Whatever the stream, the connection carries one [`ConnectionContext`]:
//! the listener it arrived on, that listener's security protocol, the peer
//! address and the authenticated [`KafkaPrincipal`]. Handlers see it through
//! their `RequestContext`; Metadata answers with the endpoints of the
//! context's listener, and SASL replaces the principal once the client
//! has authenticated.
//!
//! - `tls.rs`: Kafka's `ssl.*` settings of one listener, turned into a
//!   rustls server config; the client certificate's subject DN in RFC 2253.
//! - `principal.rs`: `ssl.principal.mapping.rules` (Kafka's SslPrincipalMapper).
//! - `client.rs`: the cluster's own links: outgoing connections secured as
//!   the target listener demands (TLS, SASL client), and the controller
//!   listener's accepting side.
//! - `limits.rs`, `connection_rate.rs`: Kafka's connection limits and
//!   connection creation rates, applied as connections are accepted.
//! - `frame_io.rs`: a connection's read and write buffers, taken while
//!   bytes move and given back when the connection is idle.
//! - `sasl.rs`: a SASL connection's authentication state ([`sasl::SaslSession`]):
//!   which frames may pass before authentication, the exchange, re-authentication.

use std::net::SocketAddr;
use std::sync::Arc;

use parking_lot::{Mutex, RwLock};

use self::sasl::SaslSession;

pub mod client;
pub mod connection_rate;
pub mod frame_io;
pub mod limits;
pub mod memory_pool;
pub mod principal;
pub mod sasl;
pub mod tls;
pub mod tls_reload;

/// A listener's security protocol (Kafka's `SecurityProtocol`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecurityProtocol {
    Plaintext,
    Ssl,
    SaslPlaintext,
    SaslSsl,
}

impl SecurityProtocol {
    /// Kafka's name of the protocol, upper case as in configs.
    pub fn parse(name: &str) -> Option<Self> {
        match name.trim().to_ascii_uppercase().as_str() {
            "PLAINTEXT" => Some(Self::Plaintext),
            "SSL" => Some(Self::Ssl),
            "SASL_PLAINTEXT" => Some(Self::SaslPlaintext),
            "SASL_SSL" => Some(Self::SaslSsl),
            _ => None,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Plaintext => "PLAINTEXT",
            Self::Ssl => "SSL",
            Self::SaslPlaintext => "SASL_PLAINTEXT",
            Self::SaslSsl => "SASL_SSL",
        }
    }

    /// Whether connections on such a listener are TLS.
    pub fn uses_tls(self) -> bool {
        matches!(self, Self::Ssl | Self::SaslSsl)
    }
}

impl std::fmt::Display for SecurityProtocol {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Who a connection acts as (Kafka's `KafkaPrincipal`): `User:ANONYMOUS`
/// on a PLAINTEXT listener, `User:<mapped DN>` for a TLS client that
/// presented a certificate.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KafkaPrincipal {
    pub principal_type: String,
    pub name: String,
}

impl KafkaPrincipal {
    pub const USER_TYPE: &'static str = "User";

    pub fn user(name: impl Into<String>) -> Self {
        Self {
            principal_type: Self::USER_TYPE.to_string(),
            name: name.into(),
        }
    }

    /// Kafka's `KafkaPrincipal.ANONYMOUS`.
    pub fn anonymous() -> Self {
        Self::user("ANONYMOUS")
    }
}

impl std::fmt::Display for KafkaPrincipal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.principal_type, self.name)
    }
}

/// One connection's identity, shared by every request it carries.
#[derive(Debug)]
pub struct ConnectionContext {
    /// The listener name the connection arrived on (`PLAINTEXT`, `SSL`, ...).
    pub listener: Arc<str>,
    pub security_protocol: SecurityProtocol,
    /// The client's address (DescribeGroups reports it as the member's host).
    pub peer: Option<SocketAddr>,
    /// Set at accept (TLS: from the client certificate) and replaced when
    /// SASL authentication completes; requests read it as they arrive.
    principal: RwLock<Arc<KafkaPrincipal>>,
    /// On a SASL listener: the authentication state. `None` elsewhere, so
    /// the per-request check on other listeners is one branch.
    sasl: Option<Mutex<SaslSession>>,
    /// A client quota's throttle of the request being handled, taken by
    /// the connection loop once the response is ready (`crate::quota`).
    throttle: Mutex<Option<Throttle>>,
}

/// How the connection throttles a client over a quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    pub time: std::time::Duration,
    /// The client throttles itself (KIP-219: Produce v6+, Fetch v8+): the
    /// response goes at once and the connection is then muted (no request
    /// read) for `time`. Otherwise the response itself is held for `time`.
    pub client_throttles: bool,
}

impl ConnectionContext {
    pub fn new(
        listener: Arc<str>,
        security_protocol: SecurityProtocol,
        peer: Option<SocketAddr>,
        principal: KafkaPrincipal,
    ) -> Self {
        Self {
            listener,
            security_protocol,
            peer,
            principal: RwLock::new(Arc::new(principal)),
            sasl: None,
            throttle: Mutex::new(None),
        }
    }

    /// The context of a connection on a SASL listener.
    pub fn with_sasl(mut self, session: SaslSession) -> Self {
        self.sasl = Some(Mutex::new(session));
        self
    }

    /// The SASL state (SASL listeners only). Never held across an await.
    pub fn sasl(&self) -> Option<&Mutex<SaslSession>> {
        self.sasl.as_ref()
    }

    /// The principal the connection is authenticated as now.
    pub fn principal(&self) -> Arc<KafkaPrincipal> {
        self.principal.read().clone()
    }

    /// Asks the connection to throttle after this request (the longest of
    /// several asks wins).
    pub fn throttle(&self, throttle: Throttle) {
        let mut slot = self.throttle.lock();
        match *slot {
            Some(t) if t.time >= throttle.time => {}
            _ => *slot = Some(throttle),
        }
    }

    /// The throttle asked for by the request just handled, if any.
    pub fn take_throttle(&self) -> Option<Throttle> {
        self.throttle.lock().take()
    }

    /// Replaces the principal (after a successful SASL exchange).
    pub fn set_principal(&self, principal: KafkaPrincipal) {
        *self.principal.write() = Arc::new(principal);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_and_principals() {
        assert_eq!(SecurityProtocol::parse("ssl"), Some(SecurityProtocol::Ssl));
        assert_eq!(SecurityProtocol::parse("TLS"), None);
        assert!(SecurityProtocol::SaslSsl.uses_tls());
        let ctx = ConnectionContext::new(
            "SSL".into(),
            SecurityProtocol::Ssl,
            None,
            KafkaPrincipal::anonymous(),
        );
        assert_eq!(ctx.principal().to_string(), "User:ANONYMOUS");
        ctx.set_principal(KafkaPrincipal::user("alice"));
        assert_eq!(ctx.principal().to_string(), "User:alice");
    }

    #[test]
    fn the_longest_throttle_wins_and_is_taken_once() {
        let ctx = ConnectionContext::new(
            "PLAINTEXT".into(),
            SecurityProtocol::Plaintext,
            None,
            KafkaPrincipal::anonymous(),
        );
        let t = |ms, client_throttles| Throttle {
            time: std::time::Duration::from_millis(ms),
            client_throttles,
        };
        ctx.throttle(t(200, true));
        ctx.throttle(t(100, false));
        assert_eq!(ctx.take_throttle(), Some(t(200, true)));
        assert_eq!(ctx.take_throttle(), None);
    }
}
