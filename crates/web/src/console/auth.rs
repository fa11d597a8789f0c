//! Which Kafka listener the console connects to, and as whom.
//!
//! The console connects to the first client listener it can reach without
//! TLS settings of its own: PLAINTEXT, else SASL_PLAINTEXT (an SSL or
//! SASL_SSL-only node has no console API; the page says so). On a SASL
//! listener every API call needs HTTP basic credentials, which become the
//! client's SASL login (SCRAM-SHA-512, SCRAM-SHA-256 or PLAIN, the first the
//! listener enables), so the user's ACLs apply exactly as to a Kafka client.
//! A wrong password fails the broker's SASL handshake and is answered 401.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use base64::Engine;
use gregor_broker::transport::SecurityProtocol;
use gregor_broker::Broker;
use gregor_client::{Admin, ClientConfig, Producer};
use gregor_security::Mechanism;
use tokio::sync::{Mutex, OnceCell};

use super::{ApiError, Console};

/// Logged-in users kept at once; past this the cache starts over.
const MAX_USERS: usize = 64;

/// One user's clients: an admin client and a producer made on first use.
pub struct ClientSet {
    pub config: ClientConfig,
    pub admin: Admin,
    producer: OnceCell<Producer>,
}

impl ClientSet {
    fn new(config: ClientConfig) -> Result<ClientSet, ApiError> {
        Ok(ClientSet {
            admin: Admin::new(config.clone())?,
            config,
            producer: OnceCell::new(),
        })
    }

    /// The producer for test messages (acks=all, no batching delay).
    pub async fn producer(&self) -> Result<&Producer, ApiError> {
        self.producer
            .get_or_try_init(|| async {
                let config = self
                    .config
                    .clone()
                    .with("acks", "all")?
                    .with("linger.ms", "0")?;
                Ok::<_, ApiError>(Producer::new(config)?)
            })
            .await
    }
}

/// The clients of the request's user, as an extractor.
pub struct Clients(pub Arc<ClientSet>);

impl std::ops::Deref for Clients {
    type Target = ClientSet;
    fn deref(&self) -> &ClientSet {
        &self.0
    }
}

/// The listener the console uses, and the mechanism for its SASL login.
#[derive(Clone)]
struct Target {
    bootstrap: String,
    sasl: Option<Mechanism>,
}

pub struct ClientPool {
    broker: Arc<Broker>,
    anonymous: OnceCell<Arc<ClientSet>>,
    /// user → (password, clients).
    users: Mutex<HashMap<String, (String, Arc<ClientSet>)>>,
}

impl ClientPool {
    pub fn new(broker: Arc<Broker>) -> ClientPool {
        ClientPool {
            broker,
            anonymous: OnceCell::new(),
            users: Mutex::new(HashMap::new()),
        }
    }

    /// Read at each call: a port-0 listener's port is known only once bound.
    fn target(&self) -> Result<Target, ApiError> {
        let listeners = &self.broker.config.listeners;
        let pick = |want: SecurityProtocol| listeners.iter().find(|l| l.protocol == want);
        let (listener, sasl) = if let Some(l) = pick(SecurityProtocol::Plaintext) {
            (l, None)
        } else if let Some(l) = pick(SecurityProtocol::SaslPlaintext) {
            let enabled = l
                .sasl
                .as_ref()
                .map(|s| s.enabled.clone())
                .unwrap_or_default();
            let mechanism = [
                Mechanism::ScramSha512,
                Mechanism::ScramSha256,
                Mechanism::Plain,
            ]
            .into_iter()
            .find(|m| enabled.contains(m))
            .ok_or_else(|| ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: format!(
                    "listener {} enables no SASL mechanism the console can log in with (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512)",
                    l.listener.name
                ),
                challenge: false,
            })?;
            (l, Some(mechanism))
        } else {
            return Err(ApiError {
                status: StatusCode::SERVICE_UNAVAILABLE,
                message: "the console needs a PLAINTEXT or SASL_PLAINTEXT listener on this node"
                    .into(),
                challenge: false,
            });
        };
        let (host, port) = self
            .broker
            .advertised_endpoint_on(&listener.listener.name)
            .unwrap_or((listener.advertised_host.clone(), listener.advertised_port));
        Ok(Target {
            bootstrap: format!("{host}:{port}"),
            sasl,
        })
    }

    async fn clients(&self, authorization: Option<&str>) -> Result<Arc<ClientSet>, ApiError> {
        let target = self.target()?;
        let base = || -> Result<ClientConfig, ApiError> {
            Ok(ClientConfig::new()
                .with("bootstrap.servers", &target.bootstrap)?
                .with("client.id", "gregor-console")?)
        };
        let Some(mechanism) = target.sasl else {
            return self
                .anonymous
                .get_or_try_init(|| async { Ok(Arc::new(ClientSet::new(base()?)?)) })
                .await
                .cloned();
        };
        let (user, password) = authorization
            .and_then(parse_basic)
            .ok_or_else(|| ApiError {
                status: StatusCode::UNAUTHORIZED,
                message: "this node's Kafka listener requires SASL: log in with a Kafka user"
                    .into(),
                challenge: true,
            })?;
        let mut users = self.users.lock().await;
        if let Some((known, set)) = users.get(&user) {
            if *known == password {
                return Ok(set.clone());
            }
        }
        let config = base()?
            .with("security.protocol", "SASL_PLAINTEXT")?
            .with("sasl.mechanism", mechanism.name())?
            .with("sasl.username", &user)?
            .with("sasl.password", &password)?;
        let set = Arc::new(ClientSet::new(config)?);
        if users.len() >= MAX_USERS {
            users.clear();
        }
        users.insert(user, (password, set.clone()));
        Ok(set)
    }
}

/// `Basic base64(user:password)`.
fn parse_basic(value: &str) -> Option<(String, String)> {
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

impl FromRequestParts<Console> for Clients {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Console) -> Result<Self, ApiError> {
        let authorization = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok());
        Ok(Clients(state.clients.clients(authorization).await?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
