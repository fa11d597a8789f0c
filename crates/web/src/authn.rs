//! Who is asking: authentication on the HTTP listener
//! (`http.authentication.method`, Gregor's key).
//!
//! | method | the principal |
//! | --- | --- |
//! | `none` (default) | `User:ANONYMOUS`; the console still asks for HTTP basic credentials when it logs in to a SASL listener (see `console::auth`) |
//! | `basic` | `User:<name>` for HTTP basic credentials that match a SCRAM credential of the metadata log (SCRAM-SHA-256 or -512, as `kafka-configs --alter --add-config SCRAM-SHA-...` or AlterUserScramCredentials made it) |
//! | `mtls` | the client certificate's principal (`http.ssl.client.auth=required` or `requested`, `ssl.principal.mapping.rules`), on an `https://` listener |
//!
//! With both, a request with a client certificate is that certificate's
//! principal and one without needs basic credentials. With any method on,
//! every route but `/healthz` and `/readyz` (what an orchestrator probes)
//! answers 401 to a request that does not authenticate (with
//! `WWW-Authenticate: Basic realm="gregor"` when basic is enabled), and the
//! failure counts in the `HTTP` listener's `failed_authentication` series.
//!
//! The password check derives the salted password with the stored salt
//! and iteration count and compares the stored key in constant time (no
//! SCRAM exchange). That costs thousands of HMACs, so a successful check
//! is remembered (by user, a keyed digest of the password, never the
//! password itself, and the stored key) for later requests;
//! a changed or deleted credential invalidates it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine;
use gregor_broker::Broker;
use gregor_security::scram::{password_memo, ScramCredential, ScramMechanism};
use parking_lot::Mutex;

use crate::tls::{HttpPeer, LISTENER};

/// Verified logins remembered at once; past this the cache starts over.
const MAX_REMEMBERED: usize = 256;

/// `http.authentication.method`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Methods {
    pub basic: bool,
    pub mtls: bool,
}

impl Methods {
    /// Parses `none`, or a list of `basic` and `mtls`.
    pub fn parse(text: &str) -> Result<Methods, String> {
        let mut m = Methods::default();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item.to_ascii_lowercase().as_str() {
                "none" => {}
                "basic" => m.basic = true,
                "mtls" => m.mtls = true,
                _ => {
                    return Err(format!(
                        "http.authentication.method: '{item}' is not none, basic or mtls"
                    ))
                }
            }
        }
        Ok(m)
    }

    pub fn any(self) -> bool {
        self.basic || self.mtls
    }
}

/// The caller of one request, put in the request's extensions.
#[derive(Debug, Clone)]
pub struct Caller {
    /// `User:alice`; `User:ANONYMOUS` when HTTP authentication is off.
    pub principal: String,
    /// The peer's IP address (ACLs may name hosts).
    pub host: String,
    /// The HTTP basic credentials sent, verified when `authenticated`.
    pub basic: Option<(String, String)>,
    /// The principal was established by the HTTP listener (basic or mTLS).
    pub authenticated: bool,
}

/// A verified login: the password's `password_memo` and the stored key it
/// matched (a changed credential no longer matches).
type Remembered = (Vec<u8>, Vec<u8>);

/// The authentication state of the HTTP listener.
pub struct Authenticator {
    pub methods: Methods,
    broker: Arc<Broker>,
    /// user → the login verified for it.
    remembered: Mutex<HashMap<String, Remembered>>,
}

impl Authenticator {
    pub fn new(broker: Arc<Broker>, methods: Methods) -> Authenticator {
        Authenticator {
            methods,
            broker,
            remembered: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `password` is `user`'s, by a SCRAM credential of the image.
    async fn check_password(&self, user: &str, password: &str) -> bool {
        let image = self.broker.metadata.image();
        let Some(credentials) = image.scram_credentials(user) else {
            return false;
        };
        // The strongest mechanism the user has.
        let Some((mechanism, c)) = [ScramMechanism::Sha512, ScramMechanism::Sha256]
            .into_iter()
            .find_map(|m| credentials.get(&m.type_id()).map(|c| (m, c)))
        else {
            return false;
        };
        let credential = ScramCredential {
            salt: c.salt.clone(),
            stored_key: c.stored_key.clone(),
            server_key: c.server_key.clone(),
            iterations: c.iterations,
        };
        drop(image);
        let memo = password_memo(password);
        if let Some((known, key)) = self.remembered.lock().get(user) {
            if constant_time_eq(known, &memo) && *key == credential.stored_key {
                return true;
            }
        }
        let pw = password.to_string();
        let key = credential.stored_key.clone();
        let ok = tokio::task::spawn_blocking(move || credential.matches_password(mechanism, &pw))
            .await
            .unwrap_or(false);
        if ok {
            let mut remembered = self.remembered.lock();
            if remembered.len() >= MAX_REMEMBERED {
                remembered.clear();
            }
            remembered.insert(user.to_string(), (memo, key));
        }
        ok
    }

    /// The caller of a request, or why it is refused.
    pub async fn authenticate(
        &self,
        peer: &HttpPeer,
        authorization: Option<&str>,
    ) -> Result<Caller, &'static str> {
        let host = peer.addr.ip().to_string();
        let basic = authorization.and_then(parse_basic);
        if !self.methods.any() {
            return Ok(Caller {
                principal: "User:ANONYMOUS".into(),
                host,
                basic,
                authenticated: false,
            });
        }
        if self.methods.mtls {
            if let Some(p) = &peer.cert_principal {
                return Ok(Caller {
                    principal: p.clone(),
                    host,
                    basic: None,
                    authenticated: true,
                });
            }
        }
        if self.methods.basic {
            let Some((user, password)) = basic else {
                return Err("authentication required");
            };
            if !self.check_password(&user, &password).await {
                return Err("Authentication failed: Invalid username or password");
            }
            return Ok(Caller {
                principal: format!("User:{user}"),
                host,
                basic: Some((user, password)),
                authenticated: true,
            });
        }
        Err("a client certificate is required")
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// `Basic base64(user:password)`.
pub fn parse_basic(value: &str) -> Option<(String, String)> {
    let (scheme, rest) = value.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8(raw).ok()?;
    let (user, password) = text.split_once(':')?;
    Some((user.to_string(), password.to_string()))
}

/// The middleware: authenticates every request but `/healthz` and
/// `/readyz`, and puts the [`Caller`] in its extensions.
pub async fn middleware(
    State(auth): State<Arc<Authenticator>>,
    ConnectInfo(peer): ConnectInfo<HttpPeer>,
    mut request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let open = path == "/healthz" || path == "/readyz";
    let authorization = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok());
    match auth.authenticate(&peer, authorization).await {
        Ok(caller) => {
            if caller.authenticated && authorization.is_some() {
                auth.broker
                    .metrics
                    .listener(LISTENER)
                    .successful_authentication
                    .inc();
            }
            request.extensions_mut().insert(caller);
            next.run(request).await
        }
        Err(_) if open => next.run(request).await,
        Err(reason) => {
            if authorization.is_some() || auth.methods.mtls {
                auth.broker
                    .metrics
                    .listener(LISTENER)
                    .failed_authentication
                    .inc();
            }
            tracing::debug!(peer = %peer.addr, %reason, "HTTP request not authenticated");
            let body = axum::Json(serde_json::json!({ "error": reason }));
            if auth.methods.basic {
                (
                    StatusCode::UNAUTHORIZED,
                    [(header::WWW_AUTHENTICATE, "Basic realm=\"gregor\"")],
                    body,
                )
                    .into_response()
            } else {
                (StatusCode::UNAUTHORIZED, body).into_response()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn methods_parse() {
        assert_eq!(Methods::parse("none"), Ok(Methods::default()));
        assert_eq!(Methods::parse(""), Ok(Methods::default()));
        assert_eq!(
            Methods::parse("basic, MTLS"),
            Ok(Methods {
                basic: true,
                mtls: true
            })
        );
        assert!(Methods::parse("digest").is_err());
    }

    #[test]
    fn basic_credentials() {
        // "alice:s3cr:et" (a password may hold ':').
        assert_eq!(
            parse_basic("Basic YWxpY2U6czNjcjpldA=="),
            Some(("alice".into(), "s3cr:et".into()))
        );
        assert_eq!(parse_basic("Bearer xyz"), None);
        assert_eq!(parse_basic("Basic !!!"), None);
        assert_eq!(parse_basic("Basic bm9jb2xvbg=="), None);
    }

    #[test]
    fn equal_in_constant_time() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
