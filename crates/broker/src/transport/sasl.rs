//! One connection's SASL state on a SASL_PLAINTEXT or SASL_SSL listener
//! (Kafka's `SaslServerAuthenticator`), without I/O: the connection loop
//! asks [`SaslSession::gate`] what to do with each frame, the SaslHandshake
//! and SaslAuthenticate handlers drive the exchange, and the time is passed
//! in.
//!
//! ```text
//!  Handshake ──SaslHandshake v1──▶ Authenticate ──SaslAuthenticate…──▶ Complete
//!     │  (ApiVersions allowed)        (SaslAuthenticate only)            │
//!     └──SaslHandshake v0──▶ RawTokens (4-byte size + token, no header) ─┘
//!  any failure ──▶ Failed: the response goes out after
//!  connection.failed.authentication.delay.ms, then the connection closes
//!  Complete + SaslHandshake (connections.max.reauth.ms > 0) ──▶ Handshake (KIP-368)
//! ```
//!
//! Any other request before authentication closes the connection, as
//! Kafka's IllegalSaslStateException does. With `connections.max.reauth.ms`
//! set, or a credential that expires (an OAUTHBEARER token's `exp`), a
//! session ends after the smaller of the two (Kafka's
//! `calcCompletionTimesAndReturnSessionLifetimeMs`): the client
//! re-authenticates with a new SaslHandshake + SaslAuthenticate (never
//! changing the principal or the mechanism), and any other request after
//! the end closes the connection.

use std::time::{Duration, Instant};

use gregor_security::{AuthError, Authenticator, Mechanism, SaslServer, Step};
use kafka_protocol::messages::ApiKey;

use super::KafkaPrincipal;

/// Kafka's minimum interval between two re-authentications of a connection
/// (`KafkaChannel.MIN_REAUTH_INTERVAL_ONE_SECOND_NANOS`); a faster
/// SaslHandshake is answered as on an authenticated connection.
const MIN_REAUTH_INTERVAL: Duration = Duration::from_secs(1);

/// What the connection loop does with a frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Gate {
    /// A Kafka request to dispatch as usual.
    Dispatch,
    /// A raw SASL token (after a v0 SaslHandshake): [`SaslSession::raw_token`].
    RawToken,
    /// Close the connection without an answer (the reason is logged).
    Close(String),
}

enum State {
    /// Before SaslHandshake: ApiVersions and SaslHandshake only.
    Handshake,
    /// After SaslHandshake v1: SaslAuthenticate only.
    Authenticate(SaslServer),
    /// After SaslHandshake v0: raw tokens.
    RawTokens(SaslServer),
    Complete,
    /// A failure answer is on its way; then the connection closes.
    Failed,
}

/// What an authentication step produced, for the handler to answer.
#[derive(Debug, PartialEq, Eq)]
pub enum AuthStep {
    /// Send these bytes, wait for the next message.
    Continue(Vec<u8>),
    /// Authenticated; `session_lifetime_ms` is 0 without re-authentication.
    Done {
        principal: KafkaPrincipal,
        response: Vec<u8>,
        session_lifetime_ms: i64,
    },
    /// Failed (SASL_AUTHENTICATION_FAILED with `message`); close after answering.
    Failed { message: String },
    /// Not expected now (ILLEGAL_SASL_STATE); the connection stays open.
    Illegal { message: String },
}

/// What a SaslHandshake produced.
#[derive(Debug, PartialEq, Eq)]
pub enum HandshakeOutcome {
    /// NONE: the exchange of the mechanism starts.
    Started,
    /// UNSUPPORTED_SASL_MECHANISM: close after answering.
    Unsupported,
    /// ILLEGAL_SASL_STATE (already authenticated, or a changed mechanism at
    /// re-authentication).
    Illegal,
}

/// One connection's SASL state.
pub struct SaslSession {
    authenticator: Authenticator,
    /// `connections.max.reauth.ms` (0: sessions never end).
    max_reauth_ms: i64,
    /// `connection.failed.authentication.delay.ms`.
    failed_delay: Duration,
    state: State,
    /// The user and mechanism of the last successful authentication.
    authenticated: Option<(String, Mechanism)>,
    expires_at: Option<Instant>,
    last_reauth_start: Option<Instant>,
    /// Why the last exchange failed, beyond the client's message.
    failure_detail: Option<String>,
}

impl std::fmt::Debug for SaslSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SaslSession")
            .field("authenticated", &self.authenticated)
            .finish_non_exhaustive()
    }
}

impl SaslSession {
    pub fn new(authenticator: Authenticator, max_reauth_ms: i64, failed_delay: Duration) -> Self {
        SaslSession {
            authenticator,
            max_reauth_ms: max_reauth_ms.max(0),
            failed_delay,
            state: State::Handshake,
            authenticated: None,
            expires_at: None,
            last_reauth_start: None,
            failure_detail: None,
        }
    }

    /// The enabled mechanisms, for SaslHandshake's answer.
    pub fn mechanisms(&self) -> Vec<&'static str> {
        self.authenticator.mechanisms()
    }

    /// Whether the client has authenticated (at least once).
    pub fn is_authenticated(&self) -> bool {
        self.authenticated.is_some()
    }

    /// Why the failed exchange failed, for the log (not sent to the client).
    pub fn take_failure_detail(&mut self) -> Option<String> {
        self.failure_detail.take()
    }

    /// Set once an exchange failed: the answer goes out after this delay
    /// and the connection closes.
    pub fn failed_delay(&self) -> Option<Duration> {
        matches!(self.state, State::Failed).then_some(self.failed_delay)
    }

    /// Decides what happens to `frame` (a whole request frame, size prefix
    /// stripped) arriving at `now`.
    pub fn gate(&mut self, frame: &[u8], now: Instant) -> Gate {
        if let State::RawTokens(_) = self.state {
            return Gate::RawToken;
        }
        let key = match frame.get(..2) {
            Some(b) => i16::from_be_bytes([b[0], b[1]]),
            None => return Gate::Close(format!("a {}-byte frame", frame.len())),
        };
        let name = || {
            ApiKey::try_from(key)
                .map(|k| format!("{k:?}"))
                .unwrap_or_else(|_| key.to_string())
        };
        let handshake = key == ApiKey::SaslHandshake as i16;
        match &self.state {
            State::Handshake => {
                if handshake || key == ApiKey::ApiVersions as i16 {
                    Gate::Dispatch
                } else {
                    Gate::Close(format!(
                        "Unexpected Kafka request of type {} during SASL handshake.",
                        name()
                    ))
                }
            }
            State::Authenticate(_) => {
                if key == ApiKey::SaslAuthenticate as i16 {
                    Gate::Dispatch
                } else {
                    Gate::Close(format!(
                        "Unexpected Kafka request of type {} during SASL authentication.",
                        name()
                    ))
                }
            }
            State::RawTokens(_) => Gate::RawToken,
            State::Failed => Gate::Close("authentication failed".into()),
            State::Complete => {
                let reauth_allowed = self.expires_at.is_some()
                    && !matches!(self.last_reauth_start,
                        Some(t) if now.saturating_duration_since(t) < MIN_REAUTH_INTERVAL);
                if handshake && reauth_allowed {
                    self.last_reauth_start = Some(now);
                    self.state = State::Handshake;
                    Gate::Dispatch
                } else if self.expires_at.is_some_and(|t| now >= t) {
                    Gate::Close(format!(
                        "the session expired (connections.max.reauth.ms {}, or the credential's expiry) and the client did not re-authenticate",
                        self.max_reauth_ms
                    ))
                } else {
                    Gate::Dispatch
                }
            }
        }
    }

    /// SaslHandshake `version` naming `mechanism`.
    pub fn handshake(&mut self, version: i16, mechanism: &str) -> HandshakeOutcome {
        if !matches!(self.state, State::Handshake) {
            return HandshakeOutcome::Illegal;
        }
        if let Some((_, previous)) = &self.authenticated {
            if previous.name() != mechanism {
                // Kafka: "SASL mechanism ... is not supported for re-authentication".
                self.state = State::Failed;
                return HandshakeOutcome::Illegal;
            }
        }
        match self.authenticator.start(mechanism) {
            Ok(server) => {
                self.state = if version == 0 {
                    State::RawTokens(server)
                } else {
                    State::Authenticate(server)
                };
                HandshakeOutcome::Started
            }
            Err(_) => {
                self.state = State::Failed;
                HandshakeOutcome::Unsupported
            }
        }
    }

    /// SaslAuthenticate's bytes, at `now`.
    pub fn authenticate(&mut self, bytes: &[u8], now: Instant) -> AuthStep {
        match self.state {
            State::Authenticate(_) => self.step(bytes, now),
            State::Complete => AuthStep::Illegal {
                message: "SaslAuthenticate request received after successful authentication".into(),
            },
            _ => AuthStep::Illegal {
                message: "Unexpected SaslAuthenticate request".into(),
            },
        }
    }

    /// A raw token after SaslHandshake v0: the bytes to send back (framed by
    /// a 4-byte size, no header), or the failure (close without an answer:
    /// v0 has no way to carry one).
    pub fn raw_token(&mut self, token: &[u8], now: Instant) -> Result<AuthStep, String> {
        if !matches!(self.state, State::RawTokens(_)) {
            return Err("not expecting a raw SASL token".into());
        }
        match self.step(token, now) {
            AuthStep::Failed { message } | AuthStep::Illegal { message } => Err(message),
            ok => Ok(ok),
        }
    }

    fn step(&mut self, bytes: &[u8], now: Instant) -> AuthStep {
        let server = match &mut self.state {
            State::Authenticate(s) | State::RawTokens(s) => s,
            _ => {
                return AuthStep::Illegal {
                    message: "Unexpected SASL message".into(),
                }
            }
        };
        let mechanism = server.mechanism();
        let result = server.step(bytes);
        let credential_lifetime_ms = server.credential_lifetime_ms();
        match result {
            Ok(Step::Continue(b)) => AuthStep::Continue(b),
            Ok(Step::Done {
                principal,
                response,
            }) => {
                if let Some((previous, _)) = &self.authenticated {
                    if *previous != principal {
                        self.state = State::Failed;
                        return AuthStep::Failed {
                            message: format!(
                                "Cannot change principals during re-authentication from User:{previous}: User:{principal}"
                            ),
                        };
                    }
                }
                self.state = State::Complete;
                self.authenticated = Some((principal.clone(), mechanism));
                let lifetime = session_lifetime_ms(credential_lifetime_ms, self.max_reauth_ms);
                self.expires_at = lifetime.map(|ms| now + Duration::from_millis(ms as u64));
                AuthStep::Done {
                    principal: KafkaPrincipal::user(principal),
                    response,
                    session_lifetime_ms: lifetime.unwrap_or(0),
                }
            }
            Err(e) => {
                self.state = State::Failed;
                self.failure_detail = e.detail().map(String::from);
                AuthStep::Failed {
                    message: failure_message(&e),
                }
            }
        }
    }
}

/// A session's lifetime in ms (`None`: it never ends), as Kafka's
/// `SaslServerAuthenticator` computes it: the smaller of the credential's
/// remaining lifetime and `connections.max.reauth.ms` (when positive),
/// never negative.
fn session_lifetime_ms(credential_ms: Option<i64>, max_reauth_ms: i64) -> Option<i64> {
    let max_set = max_reauth_ms > 0;
    match (credential_ms, max_set) {
        (None, false) => None,
        (None, true) => Some(max_reauth_ms),
        (Some(c), false) => Some(c.max(0)),
        (Some(c), true) => Some(c.min(max_reauth_ms).max(0)),
    }
}

/// Kafka's message for a failed exchange: PLAIN's own (`PlainSaslServer`
/// throws a SaslAuthenticationException with it), else the error's, which
/// for SCRAM is the generic one Kafka gives for any SaslException.
fn failure_message(e: &AuthError) -> String {
    match e {
        AuthError::InvalidCredentials {
            mechanism: "PLAIN", ..
        } => "Authentication failed: Invalid username or password".into(),
        e => e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use gregor_security::{
        PlainUsers, ScramClient, ScramCredential, ScramMechanism, StaticCredentials,
    };

    use super::*;

    fn session(max_reauth_ms: i64) -> SaslSession {
        let mut store = StaticCredentials::with_plain(
            PlainUsers::from_jaas_text(
                "org.apache.kafka.common.security.plain.PlainLoginModule required user_alice=\"a\" user_bob=\"b\";",
            )
            .unwrap(),
        );
        store.add_scram(
            "alice",
            ScramMechanism::Sha256,
            ScramCredential::from_password(ScramMechanism::Sha256, "s", vec![7; 16], 4096),
        );
        let auth = Authenticator::new(
            vec![Mechanism::Plain, Mechanism::ScramSha256],
            Arc::new(store),
        );
        SaslSession::new(auth, max_reauth_ms, Duration::from_millis(100))
    }

    fn frame(key: ApiKey) -> Vec<u8> {
        let mut f = (key as i16).to_be_bytes().to_vec();
        f.extend_from_slice(&[0; 6]);
        f
    }

    #[test]
    fn only_handshake_requests_before_authentication() {
        let now = Instant::now();
        let mut s = session(0);
        assert_eq!(s.gate(&frame(ApiKey::ApiVersions), now), Gate::Dispatch);
        assert_eq!(
            s.gate(&frame(ApiKey::Metadata), now),
            Gate::Close("Unexpected Kafka request of type Metadata during SASL handshake.".into())
        );
        assert_eq!(s.gate(&frame(ApiKey::SaslHandshake), now), Gate::Dispatch);
        assert_eq!(s.handshake(1, "PLAIN"), HandshakeOutcome::Started);
        assert!(matches!(
            s.gate(&frame(ApiKey::ApiVersions), now),
            Gate::Close(_)
        ));
        assert_eq!(
            s.gate(&frame(ApiKey::SaslAuthenticate), now),
            Gate::Dispatch
        );
        let step = s.authenticate(b"\0alice\0a", now);
        assert_eq!(
            step,
            AuthStep::Done {
                principal: KafkaPrincipal::user("alice"),
                response: vec![],
                session_lifetime_ms: 0
            }
        );
        assert_eq!(s.gate(&frame(ApiKey::Metadata), now), Gate::Dispatch);
        // Authenticated, no re-authentication: Kafka answers ILLEGAL_SASL_STATE.
        assert_eq!(s.gate(&frame(ApiKey::SaslHandshake), now), Gate::Dispatch);
        assert_eq!(s.handshake(1, "PLAIN"), HandshakeOutcome::Illegal);
        assert!(matches!(
            s.authenticate(b"\0alice\0a", now),
            AuthStep::Illegal { .. }
        ));
        assert_eq!(s.failed_delay(), None);
    }

    #[test]
    fn failures_close_after_a_delay() {
        let now = Instant::now();
        let mut s = session(0);
        assert_eq!(s.handshake(1, "GSSAPI"), HandshakeOutcome::Unsupported);
        assert_eq!(s.failed_delay(), Some(Duration::from_millis(100)));
        let mut s = session(0);
        s.handshake(1, "PLAIN");
        let AuthStep::Failed { message } = s.authenticate(b"\0alice\0wrong", now) else {
            panic!("expected a failure");
        };
        assert!(message.starts_with("Authentication failed"), "{message}");
        assert!(s.failed_delay().is_some());
        assert!(matches!(
            s.gate(&frame(ApiKey::Metadata), now),
            Gate::Close(_)
        ));
    }

    #[test]
    fn v0_raw_tokens() {
        let now = Instant::now();
        let mut s = session(0);
        s.handshake(0, "SCRAM-SHA-256");
        assert_eq!(s.gate(b"n,,n=alice,r=x", now), Gate::RawToken);
        let mut client = ScramClient::new(ScramMechanism::Sha256, "alice", "s", "cnonce");
        let Ok(AuthStep::Continue(first)) = s.raw_token(&client.client_first(), now) else {
            panic!("expected server-first");
        };
        let fin = client.client_final(&first).unwrap();
        let Ok(AuthStep::Done { principal, .. }) = s.raw_token(&fin, now) else {
            panic!("expected done");
        };
        assert_eq!(principal.to_string(), "User:alice");
        assert_eq!(s.gate(&frame(ApiKey::Produce), now), Gate::Dispatch);
        let mut s = session(0);
        s.handshake(0, "PLAIN");
        assert!(s.raw_token(b"\0alice\0no", now).is_err());
    }

    #[test]
    fn session_lifetime_as_kafka() {
        assert_eq!(session_lifetime_ms(None, 0), None);
        assert_eq!(session_lifetime_ms(None, 5_000), Some(5_000));
        assert_eq!(session_lifetime_ms(Some(3_000), 0), Some(3_000));
        assert_eq!(session_lifetime_ms(Some(3_000), 5_000), Some(3_000));
        assert_eq!(session_lifetime_ms(Some(9_000), 5_000), Some(5_000));
        assert_eq!(session_lifetime_ms(Some(-10), 5_000), Some(0));
    }

    /// OAUTHBEARER: the session ends with the token; a refused token's
    /// reason is kept for the log.
    #[test]
    fn oauthbearer_session() {
        use gregor_security::oauthbearer::{UnsecuredValidator, Validator};
        use gregor_security::OAuthBearerConfig;
        let now_ms = 1_700_000_000_000i64;
        let auth = Authenticator::new(
            vec![Mechanism::OAuthBearer],
            Arc::new(StaticCredentials::default()),
        )
        .with_oauthbearer(OAuthBearerConfig {
            validator: Validator::Unsecured(UnsecuredValidator::default()),
            clock: Arc::new(move || now_ms),
        });
        // eyJhbGciOiJub25lIn0 = {"alg":"none"}
        let token = |exp: i64| {
            use base64::Engine;
            let claims = format!(r#"{{"sub":"alice","exp":{exp}}}"#);
            let b = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(claims);
            format!("n,,\x01auth=Bearer eyJhbGciOiJub25lIn0.{b}.\x01\x01").into_bytes()
        };
        let t0 = Instant::now();
        let mut s = SaslSession::new(auth.clone(), 60_000, Duration::from_millis(100));
        assert_eq!(s.handshake(1, "OAUTHBEARER"), HandshakeOutcome::Started);
        let AuthStep::Done {
            principal,
            session_lifetime_ms,
            ..
        } = s.authenticate(&token(now_ms / 1000 + 30), t0)
        else {
            panic!("expected done");
        };
        assert_eq!(principal.to_string(), "User:alice");
        assert_eq!(session_lifetime_ms, 30_000);
        assert!(matches!(
            s.gate(&frame(ApiKey::Fetch), t0 + Duration::from_secs(31)),
            Gate::Close(_)
        ));
        // Without connections.max.reauth.ms the token still bounds the session.
        let mut s = SaslSession::new(auth.clone(), 0, Duration::from_millis(100));
        s.handshake(1, "OAUTHBEARER");
        let AuthStep::Done {
            session_lifetime_ms,
            ..
        } = s.authenticate(&token(now_ms / 1000 + 30), t0)
        else {
            panic!("expected done");
        };
        assert_eq!(session_lifetime_ms, 30_000);
        // Expired: the challenge, then the failure with the reason kept.
        let mut s = SaslSession::new(auth, 0, Duration::from_millis(100));
        s.handshake(1, "OAUTHBEARER");
        assert_eq!(
            s.authenticate(&token(now_ms / 1000 - 30), t0),
            AuthStep::Continue(br#"{"status":"invalid_token"}"#.to_vec())
        );
        assert_eq!(
            s.authenticate(b"\x01", t0),
            AuthStep::Failed {
                message: r#"{"status":"invalid_token"}"#.into()
            }
        );
        assert!(s.take_failure_detail().unwrap().contains("Expiration Time"));
        assert!(s.failed_delay().is_some());
    }

    #[test]
    fn reauthentication() {
        let t0 = Instant::now();
        let mut s = session(60_000);
        s.handshake(1, "PLAIN");
        let AuthStep::Done {
            session_lifetime_ms,
            ..
        } = s.authenticate(b"\0alice\0a", t0)
        else {
            panic!("expected done");
        };
        assert_eq!(session_lifetime_ms, 60_000);
        let t1 = t0 + Duration::from_secs(30);
        assert_eq!(s.gate(&frame(ApiKey::SaslHandshake), t1), Gate::Dispatch);
        assert_eq!(s.handshake(1, "PLAIN"), HandshakeOutcome::Started);
        assert!(matches!(
            s.authenticate(b"\0alice\0a", t1),
            AuthStep::Done { .. }
        ));
        // Expired without re-authenticating: closed at the next request.
        let t2 = t1 + Duration::from_secs(61);
        assert!(matches!(s.gate(&frame(ApiKey::Fetch), t2), Gate::Close(_)));
        // Another user at re-authentication fails.
        let t3 = t1 + Duration::from_secs(2);
        assert_eq!(s.gate(&frame(ApiKey::SaslHandshake), t3), Gate::Dispatch);
        s.handshake(1, "PLAIN");
        assert!(matches!(
            s.authenticate(b"\0bob\0b", t3),
            AuthStep::Failed { .. }
        ));
        // A changed mechanism at re-authentication is refused.
        let mut s = session(60_000);
        s.handshake(1, "PLAIN");
        s.authenticate(b"\0alice\0a", t0);
        assert_eq!(s.gate(&frame(ApiKey::SaslHandshake), t1), Gate::Dispatch);
        assert_eq!(s.handshake(1, "SCRAM-SHA-256"), HandshakeOutcome::Illegal);
    }
}
