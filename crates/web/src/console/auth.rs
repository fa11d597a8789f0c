//! Which Kafka listener the console connects to, as whom, and who
//! authorizes each call.
//!
//! The console is a Kafka client of its own node. It acts as the caller
//! whenever it can, so Kafka's own checks apply to the caller's principal:
//!
//! 1. A caller with HTTP basic credentials, on a node with a SASL listener
//!    (SASL_PLAINTEXT, else SASL_SSL) enabling SCRAM-SHA-512, SCRAM-SHA-256
//!    or PLAIN: the console logs in with those credentials. A wrong
//!    password fails the SASL handshake and is answered 401. With HTTP
//!    authentication off, a SASL listener asks the browser for them.
//! 2. With HTTP authentication off, on a node with a PLAINTEXT listener:
//!    the console connects anonymously (`User:ANONYMOUS`, as any
//!    PLAINTEXT client).
//! 3. Otherwise (a client-certificate principal, a basic principal on a
//!    node without a SASL listener, a node whose client listeners are all
//!    SSL): the console cannot be the caller on the wire. It connects with
//!    the node's own identity, as the node connects to the inter-broker
//!    listener (its keystore and truststore, its inter-broker SASL login),
//!    and every API call is first authorized in-process for the caller's
//!    principal with the broker's authorizer and ACLs, operation by
//!    operation as the matching Kafka API checks it ([`Clients::authorize`]).
//!    A refusal is 403 with Kafka's error name.
//!
//! The in-process check runs in cases 1 and 2 too whenever the principal is
//! established (HTTP-authenticated, or anonymous): Kafka checks again on
//! the wire, and a refusal the client would only retry quietly (a Fetch
//! without READ) is a 403 at once.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::StatusCode;
use gregor_broker::transport::client::LinkSecurity;
use gregor_broker::transport::tls::{Keystore, PemSource, TlsSettings};
use gregor_broker::transport::SecurityProtocol;
use gregor_broker::Broker;
use gregor_client::{Admin, ClientConfig, Producer};
use gregor_security::acl::{AclOperation, Decision, ResourceType, CLUSTER_RESOURCE_NAME};
use gregor_security::Mechanism;
use tokio::sync::{Mutex, OnceCell};

use super::{ApiError, Console};
use crate::authn::Caller;

/// Logged-in users kept at once; past this the cache starts over.
const MAX_USERS: usize = 64;

/// One identity's clients: an admin client and a producer made on first use.
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

/// The caller's principal, checked in-process (case 3 of the module doc).
struct InProcess {
    broker: Arc<Broker>,
    principal: String,
    host: String,
}

/// The clients of the request's caller, as an extractor.
pub struct Clients {
    set: Arc<ClientSet>,
    check: Option<InProcess>,
}

impl std::ops::Deref for Clients {
    type Target = ClientSet;
    fn deref(&self) -> &ClientSet {
        &self.set
    }
}

impl Clients {
    /// Whether the caller may do `op` on the resource. Always yes when
    /// the console acts as the caller (Kafka checks on the wire) or the
    /// broker has no authorizer.
    pub fn may(&self, op: AclOperation, resource_type: ResourceType, name: &str) -> bool {
        let Some(c) = &self.check else {
            return true;
        };
        let Some(authorizer) = &c.broker.config.authorizer else {
            return true;
        };
        let image = c.broker.metadata.image();
        authorizer.authorize(
            image.acls().map(|(_, b)| b),
            &c.principal,
            &c.host,
            op,
            resource_type,
            name,
        ) == Decision::Allowed
    }

    /// [`Clients::may`], or 403 with Kafka's error for the resource type
    /// (TOPIC_ / GROUP_ / CLUSTER_AUTHORIZATION_FAILED).
    pub fn authorize(
        &self,
        op: AclOperation,
        resource_type: ResourceType,
        name: &str,
    ) -> Result<(), ApiError> {
        if self.may(op, resource_type, name) {
            return Ok(());
        }
        let code = match resource_type {
            ResourceType::Topic => 29,
            ResourceType::Group => 30,
            _ => 31,
        };
        Err(authorization_failed(code))
    }

    /// `op` on the cluster resource.
    pub fn authorize_cluster(&self, op: AclOperation) -> Result<(), ApiError> {
        self.authorize(op, ResourceType::Cluster, CLUSTER_RESOURCE_NAME)
    }

    /// CreateTopics' check: CREATE on the cluster, else on the topic.
    pub fn authorize_create_topic(&self, topic: &str) -> Result<(), ApiError> {
        if self.may(
            AclOperation::Create,
            ResourceType::Cluster,
            CLUSTER_RESOURCE_NAME,
        ) {
            return Ok(());
        }
        self.authorize(AclOperation::Create, ResourceType::Topic, topic)
    }
}

/// 403 with the error Kafka answers, as the client reports it.
fn authorization_failed(code: i16) -> ApiError {
    match gregor_client::Error::from_code(code, None) {
        Some(e) => ApiError::from(e),
        None => ApiError {
            status: StatusCode::FORBIDDEN,
            message: "authorization failed".into(),
            challenge: false,
        },
    }
}

/// How the console reaches its node for one caller.
enum Route {
    /// Case 1: log in as the caller on a SASL listener.
    Login {
        bootstrap: String,
        tls: Option<Box<TlsSettings>>,
        mechanism: Mechanism,
        protocol: SecurityProtocol,
    },
    /// Case 2: anonymously on a PLAINTEXT listener.
    Anonymous { bootstrap: String },
    /// Case 3: as the node itself, authorizing in-process.
    Node,
}

pub struct ClientPool {
    broker: Arc<Broker>,
    /// HTTP authentication is on (`http.authentication.method`).
    http_auth: bool,
    anonymous: OnceCell<Arc<ClientSet>>,
    node: OnceCell<Arc<ClientSet>>,
    /// user → (password, clients).
    users: Mutex<HashMap<String, (String, Arc<ClientSet>)>>,
}

fn unavailable(message: String) -> ApiError {
    ApiError {
        status: StatusCode::SERVICE_UNAVAILABLE,
        message,
        challenge: false,
    }
}

impl ClientPool {
    pub fn new(broker: Arc<Broker>, http_auth: bool) -> ClientPool {
        ClientPool {
            broker,
            http_auth,
            anonymous: OnceCell::new(),
            node: OnceCell::new(),
            users: Mutex::new(HashMap::new()),
        }
    }

    /// `host:port` of a listener, as advertised (read at each call: a
    /// port-0 listener's port is known only once bound).
    fn bootstrap(&self, l: &gregor_broker::config::ClientListener) -> String {
        let (host, port) = self
            .broker
            .advertised_endpoint_on(&l.listener.name)
            .unwrap_or((l.advertised_host.clone(), l.advertised_port));
        format!("{host}:{port}")
    }

    fn route(&self, caller: &Caller) -> Result<Route, ApiError> {
        let listeners = &self.broker.config.listeners;
        let pick = |want: SecurityProtocol| listeners.iter().find(|l| l.protocol == want);
        let has_basic = caller.basic.is_some() || !self.http_auth;
        if has_basic {
            let sasl = pick(SecurityProtocol::SaslPlaintext).or(pick(SecurityProtocol::SaslSsl));
            if let Some(l) = sasl {
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
                // An HTTP-authenticated caller was checked against the
                // SCRAM users: PLAIN's users are another list.
                .filter(|m| !self.http_auth || *m != Mechanism::Plain)
                .find(|m| enabled.contains(m));
                // Without HTTP authentication a PLAINTEXT listener serves
                // anonymous callers first, as before.
                let plaintext_first =
                    !self.http_auth && pick(SecurityProtocol::Plaintext).is_some();
                if let (Some(mechanism), false) = (mechanism, plaintext_first) {
                    let tls = match l.protocol {
                        SecurityProtocol::SaslSsl => Some(Box::new(self.tls_of(&l.listener.name)?)),
                        _ => None,
                    };
                    return Ok(Route::Login {
                        bootstrap: self.bootstrap(l),
                        tls,
                        mechanism,
                        protocol: l.protocol,
                    });
                }
            }
        }
        if !self.http_auth {
            if let Some(l) = pick(SecurityProtocol::Plaintext) {
                return Ok(Route::Anonymous {
                    bootstrap: self.bootstrap(l),
                });
            }
        }
        Ok(Route::Node)
    }

    /// The `ssl.*` settings of this node's listener `name`.
    fn tls_of(&self, name: &str) -> Result<TlsSettings, ApiError> {
        TlsSettings::from_props(&self.broker.config.props, name)
            .map_err(|e| unavailable(format!("the console's TLS settings: {e}")))
    }

    fn base(&self, bootstrap: &str) -> Result<ClientConfig, ApiError> {
        Ok(ClientConfig::new()
            .with("bootstrap.servers", bootstrap)?
            .with("client.id", "gregor-console")?)
    }

    /// The node's own clients: to its inter-broker listener, with the
    /// settings the node uses to connect to it.
    fn node_config(&self) -> Result<ClientConfig, ApiError> {
        let config = &self.broker.config;
        let l = config
            .listeners
            .get(config.inter_broker_listener)
            .or(config.listeners.first())
            .ok_or_else(|| unavailable("this node has no client listener".into()))?;
        let link = LinkSecurity::from_props(
            &config.props,
            &l.listener.name,
            l.protocol,
            "sasl.mechanism.inter.broker.protocol",
            true,
        )
        .map_err(|e| unavailable(format!("the console connects as this node: {e}")))?;
        let mut c = self
            .base(&self.bootstrap(l))?
            .with("security.protocol", l.protocol.name())?;
        if let Some(tls) = &link.tls {
            c = with_tls(c, tls)?;
        }
        if let Some(s) = &link.sasl {
            c = c
                .with("sasl.mechanism", s.mechanism.name())?
                .with("sasl.username", &s.username)?
                .with("sasl.password", &s.password.0)?;
        }
        Ok(c)
    }

    fn in_process(&self, caller: &Caller) -> InProcess {
        InProcess {
            broker: self.broker.clone(),
            principal: caller.principal.clone(),
            host: caller.host.clone(),
        }
    }

    async fn clients(&self, caller: &Caller) -> Result<Clients, ApiError> {
        match self.route(caller)? {
            Route::Anonymous { bootstrap } => {
                let set = self
                    .anonymous
                    .get_or_try_init(|| async {
                        Ok::<_, ApiError>(Arc::new(ClientSet::new(self.base(&bootstrap)?)?))
                    })
                    .await?
                    .clone();
                // Kafka checks User:ANONYMOUS on the wire; checked here too
                // so a refused Fetch (which the consumer retries quietly)
                // is a 403 rather than an empty page.
                Ok(Clients {
                    set,
                    check: Some(self.in_process(caller)),
                })
            }
            Route::Node => {
                let set = self
                    .node
                    .get_or_try_init(|| async {
                        Ok::<_, ApiError>(Arc::new(ClientSet::new(self.node_config()?)?))
                    })
                    .await?
                    .clone();
                Ok(Clients {
                    set,
                    check: Some(self.in_process(caller)),
                })
            }
            Route::Login {
                bootstrap,
                tls,
                mechanism,
                protocol,
            } => {
                let (user, password) = caller.basic.clone().ok_or_else(|| ApiError {
                    status: StatusCode::UNAUTHORIZED,
                    message: "this node's Kafka listener requires SASL: log in with a Kafka user"
                        .into(),
                    challenge: true,
                })?;
                // A principal the HTTP listener verified is also checked
                // in-process (as for the other routes); an unverified one
                // is left to the SASL login and Kafka's authorizer, so a
                // wrong password stays a 401.
                let check = caller.authenticated.then(|| self.in_process(caller));
                let mut users = self.users.lock().await;
                if let Some((known, set)) = users.get(&user) {
                    if *known == password {
                        return Ok(Clients {
                            set: set.clone(),
                            check,
                        });
                    }
                }
                let mut config = self
                    .base(&bootstrap)?
                    .with("security.protocol", protocol.name())?
                    .with("sasl.mechanism", mechanism.name())?
                    .with("sasl.username", &user)?
                    .with("sasl.password", &password)?;
                if let Some(tls) = &tls {
                    config = with_tls(config, tls)?;
                }
                let set = Arc::new(ClientSet::new(config)?);
                if users.len() >= MAX_USERS {
                    users.clear();
                }
                users.insert(user, (password, set.clone()));
                Ok(Clients { set, check })
            }
        }
    }
}

/// The client side of a node's TLS settings: trust its truststore,
/// present its keystore (for a listener requiring client certificates).
fn with_tls(c: ClientConfig, tls: &TlsSettings) -> Result<ClientConfig, ApiError> {
    let mut keys: BTreeMap<&str, String> = BTreeMap::new();
    match &tls.truststore {
        Some(PemSource::File(p)) => {
            keys.insert("ssl.truststore.location", p.display().to_string());
        }
        Some(PemSource::Inline(text)) => {
            keys.insert("ssl.truststore.certificates", text.clone());
        }
        None => {
            return Err(unavailable(format!(
                "the console connects to listener {} with TLS and needs a truststore \
                 (ssl.truststore.location) to trust this node's certificate",
                tls.listener
            )))
        }
    }
    match &tls.keystore {
        Some(Keystore::File(p)) => {
            keys.insert("ssl.keystore.location", p.display().to_string());
        }
        Some(Keystore::Inline { chain, key }) => {
            keys.insert("ssl.keystore.certificate.chain", chain.clone());
            keys.insert("ssl.keystore.key", key.clone());
        }
        None => {}
    }
    if let Some(p) = &tls.key_password {
        keys.insert("ssl.key.password", p.0.clone());
    }
    keys.insert(
        "ssl.endpoint.identification.algorithm",
        if tls.verify_hostname { "https" } else { "" }.into(),
    );
    let mut c = c
        .with("ssl.keystore.type", "PEM")?
        .with("ssl.truststore.type", "PEM")?;
    for (k, v) in keys {
        c = c.with(k, &v)?;
    }
    Ok(c)
}

impl FromRequestParts<Console> for Clients {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &Console) -> Result<Self, ApiError> {
        let caller = parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                message: "the request was not authenticated".into(),
                challenge: false,
            })?;
        state.clients.clients(&caller).await
    }
}
