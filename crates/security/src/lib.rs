//! SASL authentication for Gregor: the server side of PLAIN,
//! SCRAM-SHA-256/512 and OAUTHBEARER as Kafka speaks them, Kafka's JAAS config text, and
//! SCRAM credentials. Pure: no I/O, no async; the connection code feeds the
//! bytes of each SaslAuthenticate request through a [`SaslServer`] and sends
//! back what it returns.
//!
//! # Layout
//!
//! - [`acl`]: Kafka's ACL model ([`acl::AclBinding`], its filters) and
//!   [`acl::Authorizer`], the decision of Kafka's `StandardAuthorizer`.
//! - [`jaas`]: [`JaasConfig`], a parser for `sasl.jaas.config` text.
//! - [`keystore`]: Kafka's keystores and truststores (PEM) read into the
//!   DER certificates and key rustls takes, for the broker and the client.
//! - [`tls_verify`]: the server-certificate verifier without host-name
//!   check (`ssl.endpoint.identification.algorithm=`), for the broker's
//!   links and the client.
//! - [`oauthbearer`]: SASL/OAUTHBEARER: the client's initial response,
//!   Kafka's unsecured and JWKS validators, [`OAuthBearerServer`].
//! - [`plain`]: [`PlainServer`] (RFC 4616) and [`PlainUsers`] (the
//!   `user_<name>` options of Kafka's `PlainLoginModule`).
//! - [`scram`]: [`ScramMechanism`], [`ScramCredential`] (salt, iterations,
//!   StoredKey, ServerKey; derived with PBKDF2-HMAC), the exchange's
//!   messages, [`ScramServer`], and a [`ScramClient`] for tests and tools.
//!
//! # Example
//!
//! ```
//! use std::sync::Arc;
//! use gregor_security::{Authenticator, Mechanism, PlainUsers, StaticCredentials, Step};
//!
//! let users = PlainUsers::from_jaas_text(
//!     r#"org.apache.kafka.common.security.plain.PlainLoginModule required user_alice="alice-secret";"#,
//! ).unwrap();
//! let auth = Authenticator::new(
//!     vec![Mechanism::Plain, Mechanism::ScramSha256],
//!     Arc::new(StaticCredentials::with_plain(users)),
//! );
//! assert_eq!(auth.mechanisms(), vec!["PLAIN", "SCRAM-SHA-256"]); // SaslHandshake
//! let mut server = auth.start("PLAIN").unwrap();
//! match server.step(b"\0alice\0alice-secret").unwrap() {
//!     Step::Done { principal, .. } => assert_eq!(principal, "alice"),
//!     Step::Continue(_) => unreachable!(),
//! }
//! ```
//!
//! # Kafka error codes
//!
//! The connection code picks them: [`AuthError::UnsupportedMechanism`] is
//! UNSUPPORTED_SASL_MECHANISM (33) in SaslHandshake, [`AuthError::IllegalState`]
//! is ILLEGAL_SASL_STATE (34), every other error SASL_AUTHENTICATION_FAILED
//! (58) with the error's message; Kafka then closes the connection.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

pub mod acl;
pub mod jaas;
pub mod keystore;
pub mod oauthbearer;
pub mod plain;
pub mod scram;
pub mod tls_verify;

pub use jaas::{JaasConfig, JaasError};
pub use oauthbearer::{OAuthBearerConfig, OAuthBearerServer};
pub use plain::{PlainServer, PlainUsers};
pub use scram::{ScramClient, ScramCredential, ScramMechanism, ScramServer};

/// A SASL mechanism Gregor serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Mechanism {
    Plain,
    ScramSha256,
    ScramSha512,
    OAuthBearer,
}

impl Mechanism {
    pub const ALL: [Mechanism; 4] = [
        Mechanism::Plain,
        Mechanism::ScramSha256,
        Mechanism::ScramSha512,
        Mechanism::OAuthBearer,
    ];

    /// The IANA name, as in SaslHandshake and `sasl.enabled.mechanisms`.
    pub fn name(self) -> &'static str {
        match self {
            Mechanism::Plain => "PLAIN",
            Mechanism::ScramSha256 => "SCRAM-SHA-256",
            Mechanism::ScramSha512 => "SCRAM-SHA-512",
            Mechanism::OAuthBearer => "OAUTHBEARER",
        }
    }

    /// The mechanism of a name (exact, as Kafka compares them).
    pub fn from_name(name: &str) -> Option<Mechanism> {
        Mechanism::ALL.into_iter().find(|m| m.name() == name)
    }

    /// Parses a `sasl.enabled.mechanisms` value (comma-separated; blanks
    /// around names ignored). An unknown name is an error naming it.
    pub fn parse_list(list: &str) -> Result<Vec<Mechanism>, AuthError> {
        let mut out = Vec::new();
        for name in list.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let m = Mechanism::from_name(name)
                .ok_or_else(|| AuthError::UnsupportedMechanism(name.to_string()))?;
            if !out.contains(&m) {
                out.push(m);
            }
        }
        Ok(out)
    }

    pub fn scram(self) -> Option<ScramMechanism> {
        match self {
            Mechanism::Plain | Mechanism::OAuthBearer => None,
            Mechanism::ScramSha256 => Some(ScramMechanism::Sha256),
            Mechanism::ScramSha512 => Some(ScramMechanism::Sha512),
        }
    }
}

impl fmt::Display for Mechanism {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What a step of an exchange produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Send these bytes (SaslAuthenticate's `auth_bytes`) and wait for the
    /// client's next message.
    Continue(Vec<u8>),
    /// Authenticated as `principal` (the user name; Kafka's principal is
    /// `User:<principal>`); send `response` as the last `auth_bytes`.
    Done {
        principal: String,
        response: Vec<u8>,
    },
}

/// Why authentication failed. The messages are Kafka's where Kafka has one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error("Unsupported SASL mechanism {0}")]
    UnsupportedMechanism(String),
    #[error("Invalid SASL/{mechanism} response: {reason}")]
    Malformed {
        mechanism: &'static str,
        reason: String,
    },
    #[error("Authentication failed: Client requested an authorization id that is different from username")]
    AuthorizationIdMismatch,
    /// A wrong password, or an unknown user (indistinguishable on purpose).
    /// `server_final` is SCRAM's `e=` message (RFC 5802) for clients that
    /// read one.
    #[error("Authentication failed during authentication due to invalid credentials with SASL mechanism {mechanism}")]
    InvalidCredentials {
        mechanism: &'static str,
        server_final: Option<Vec<u8>>,
    },
    #[error("Authentication failed: channel binding is not supported")]
    ChannelBindingNotSupported,
    #[error("Authentication failed: delegation tokens (tokenauth) are not supported")]
    TokenAuthNotSupported,
    /// An OAUTHBEARER failure: `message` goes to the client (Kafka's error
    /// JSON, or its generic message), `detail` to the broker's log.
    #[error("{message}")]
    OAuthBearer { message: String, detail: String },
    /// A message after the exchange ended (successfully or not).
    #[error("Unexpected SASL message: the authentication exchange is over")]
    IllegalState,
}

impl AuthError {
    /// SCRAM's `e=` server-final message for this failure, if it has one.
    pub fn server_final(&self) -> Option<&[u8]> {
        match self {
            AuthError::InvalidCredentials { server_final, .. } => server_final.as_deref(),
            _ => None,
        }
    }

    /// What the broker logs beyond the client's message, if anything.
    pub fn detail(&self) -> Option<&str> {
        match self {
            AuthError::OAuthBearer { detail, .. } => Some(detail),
            _ => None,
        }
    }
}

/// Where the servers look credentials up. The broker implements it over
/// its JAAS users and the metadata image's SCRAM credentials.
pub trait CredentialStore: Send + Sync {
    /// `user`'s SCRAM credential for `mechanism`, if one is stored.
    fn scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential>;

    /// Whether `password` is `user`'s PLAIN password. Compare in constant
    /// time ([`PlainUsers::verify`] does).
    fn verify_plain(&self, user: &str, password: &str) -> bool;
}

/// A [`CredentialStore`] held in memory: PLAIN users and SCRAM credentials.
#[derive(Debug, Clone, Default)]
pub struct StaticCredentials {
    pub plain: PlainUsers,
    scram: HashMap<(String, ScramMechanism), ScramCredential>,
}

impl StaticCredentials {
    pub fn with_plain(plain: PlainUsers) -> Self {
        StaticCredentials {
            plain,
            scram: HashMap::new(),
        }
    }

    pub fn add_scram(
        &mut self,
        user: &str,
        mechanism: ScramMechanism,
        credential: ScramCredential,
    ) {
        self.scram.insert((user.to_string(), mechanism), credential);
    }
}

impl CredentialStore for StaticCredentials {
    fn scram_credential(&self, user: &str, mechanism: ScramMechanism) -> Option<ScramCredential> {
        self.scram.get(&(user.to_string(), mechanism)).cloned()
    }

    fn verify_plain(&self, user: &str, password: &str) -> bool {
        self.plain.verify(user, password)
    }
}

/// The mechanisms a listener enables and where their credentials come from:
/// what SaslHandshake lists and what starts each exchange.
#[derive(Clone)]
pub struct Authenticator {
    enabled: Vec<Mechanism>,
    store: Arc<dyn CredentialStore>,
    oauthbearer: Option<Arc<OAuthBearerConfig>>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

impl Authenticator {
    pub fn new(enabled: Vec<Mechanism>, store: Arc<dyn CredentialStore>) -> Self {
        Authenticator {
            enabled,
            store,
            oauthbearer: None,
        }
    }

    /// The same, validating OAUTHBEARER tokens with `config` (without it,
    /// an enabled OAUTHBEARER refuses every exchange as unsupported).
    pub fn with_oauthbearer(mut self, config: OAuthBearerConfig) -> Self {
        self.oauthbearer = Some(Arc::new(config));
        self
    }

    /// The enabled mechanisms' names, for SaslHandshake's `mechanisms`.
    pub fn mechanisms(&self) -> Vec<&'static str> {
        self.enabled.iter().map(|m| m.name()).collect()
    }

    pub fn is_enabled(&self, mechanism: &str) -> bool {
        Mechanism::from_name(mechanism).is_some_and(|m| self.enabled.contains(&m))
    }

    /// A server for one exchange of `mechanism` (a name from SaslHandshake),
    /// with a random SCRAM nonce.
    pub fn start(&self, mechanism: &str) -> Result<SaslServer, AuthError> {
        self.start_with_nonce(mechanism, scram::random_nonce(&mut rand::thread_rng()))
    }

    /// [`Authenticator::start`] with the SCRAM server nonce given (tests).
    pub fn start_with_nonce(
        &self,
        mechanism: &str,
        server_nonce: String,
    ) -> Result<SaslServer, AuthError> {
        let m = Mechanism::from_name(mechanism)
            .filter(|m| self.enabled.contains(m))
            .ok_or_else(|| AuthError::UnsupportedMechanism(mechanism.to_string()))?;
        Ok(match (m, m.scram()) {
            (Mechanism::OAuthBearer, _) => match &self.oauthbearer {
                Some(c) => SaslServer::OAuthBearer(Box::new(OAuthBearerServer::new(c.clone()))),
                None => return Err(AuthError::UnsupportedMechanism(mechanism.to_string())),
            },
            (_, Some(s)) => SaslServer::Scram(Box::new(ScramServer::new(
                s,
                self.store.clone(),
                server_nonce,
            ))),
            (_, None) => SaslServer::Plain(PlainServer::new(self.store.clone())),
        })
    }
}

/// The server side of one exchange, whatever its mechanism.
#[derive(Debug)]
pub enum SaslServer {
    Plain(PlainServer),
    /// Boxed: its exchange state is far larger than PLAIN's.
    Scram(Box<ScramServer>),
    OAuthBearer(Box<OAuthBearerServer>),
}

impl SaslServer {
    pub fn mechanism(&self) -> Mechanism {
        match self {
            SaslServer::Plain(_) => Mechanism::Plain,
            SaslServer::OAuthBearer(_) => Mechanism::OAuthBearer,
            SaslServer::Scram(s) => match s.mechanism() {
                ScramMechanism::Sha256 => Mechanism::ScramSha256,
                ScramMechanism::Sha512 => Mechanism::ScramSha512,
            },
        }
    }

    /// Feeds the client's next message (SaslAuthenticate's `auth_bytes`, or
    /// a v0 SaslHandshake's raw frame). After an error or [`Step::Done`],
    /// any further step is [`AuthError::IllegalState`].
    pub fn step(&mut self, input: &[u8]) -> Result<Step, AuthError> {
        match self {
            SaslServer::Plain(p) => p.step(input),
            SaslServer::Scram(s) => s.step(input),
            SaslServer::OAuthBearer(o) => o.step(input),
        }
    }

    pub fn is_complete(&self) -> bool {
        match self {
            SaslServer::Plain(p) => p.is_complete(),
            SaslServer::Scram(s) => s.is_complete(),
            SaslServer::OAuthBearer(o) => o.is_complete(),
        }
    }

    /// The credential's remaining lifetime in ms at authentication, for
    /// mechanisms whose credentials expire (OAUTHBEARER's token `exp`).
    pub fn credential_lifetime_ms(&self) -> Option<i64> {
        match self {
            SaslServer::OAuthBearer(o) => o.credential_lifetime_ms(),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn authenticator() -> Authenticator {
        let mut store = StaticCredentials::with_plain(
            PlainUsers::from_jaas_text(
                "org.apache.kafka.common.security.plain.PlainLoginModule required user_alice=\"a\";",
            )
            .unwrap(),
        );
        store.add_scram(
            "alice",
            ScramMechanism::Sha512,
            ScramCredential::from_password(ScramMechanism::Sha512, "s", vec![7; 16], 4096),
        );
        Authenticator::new(
            Mechanism::parse_list("PLAIN, SCRAM-SHA-512,PLAIN").unwrap(),
            Arc::new(store),
        )
    }

    #[test]
    fn mechanisms_and_start() {
        let auth = authenticator();
        assert_eq!(auth.mechanisms(), vec!["PLAIN", "SCRAM-SHA-512"]);
        assert!(auth.is_enabled("PLAIN") && !auth.is_enabled("SCRAM-SHA-256"));
        assert_eq!(
            auth.start("SCRAM-SHA-256").unwrap_err(),
            AuthError::UnsupportedMechanism("SCRAM-SHA-256".into())
        );
        assert!(auth.start("plain").is_err());
        assert_eq!(auth.start("PLAIN").unwrap().mechanism(), Mechanism::Plain);
        assert!(Mechanism::parse_list("PLAIN,GSSAPI").is_err());
        assert_eq!(Mechanism::parse_list(" ").unwrap(), vec![]);
    }

    #[test]
    fn scram_through_the_enum() {
        let auth = authenticator();
        let mut server = auth.start("SCRAM-SHA-512").unwrap();
        assert_eq!(server.mechanism(), Mechanism::ScramSha512);
        let mut client = ScramClient::new(ScramMechanism::Sha512, "alice", "s", "cnonce");
        let Step::Continue(first) = server.step(&client.client_first()).unwrap() else {
            panic!("expected server-first");
        };
        assert!(!server.is_complete());
        let fin = client.client_final(&first).unwrap();
        let Step::Done {
            principal,
            response,
        } = server.step(&fin).unwrap()
        else {
            panic!("expected done");
        };
        assert_eq!(principal, "alice");
        assert!(client.verify_server_final(&response));
        assert!(server.is_complete());
        assert_eq!(server.step(b"x").unwrap_err(), AuthError::IllegalState);
    }
}
