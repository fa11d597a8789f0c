//! The broker's static configuration: `server.properties` (Java properties
//! format) plus `--override key=value`, with Kafka's names and defaults.
//! Every Kafka 4.1 broker config name is accepted (most have no effect in
//! Gregor: [`BrokerConfig::keys_without_effect`]); names Kafka does not have
//! and invalid values are refused at start.

use std::collections::BTreeMap;
use std::path::PathBuf;

use gregor_metadata::config_defs;

use crate::transport::client::{LinkConfigError, LinkSecurity};
use crate::transport::tls::{TlsConfigError, TlsSettings};
use crate::transport::SecurityProtocol;

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ConfigError {
    /// A name Kafka has no broker config for, with the closest known name.
    #[error("unknown configuration '{name}'{}", .suggestion.as_ref().map(|s| format!("; did you mean '{s}'?")).unwrap_or_default())]
    Unknown {
        name: String,
        suggestion: Option<String>,
    },
    #[error(transparent)]
    Invalid(#[from] config_defs::InvalidConfig),
    #[error("invalid listeners '{value}': {reason}")]
    Listener { value: String, reason: String },
    #[error("{0}")]
    Unsupported(String),
    #[error(transparent)]
    Tls(#[from] TlsConfigError),
    /// A SASL listener's mechanisms or JAAS users.
    #[error("{0}")]
    Sasl(String),
    /// The security of the inter-broker or controller link.
    #[error(transparent)]
    Link(#[from] LinkConfigError),
    #[error("line {line}: {text}")]
    Syntax { line: usize, text: String },
}

/// One listener: `NAME://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listener {
    pub name: String,
    pub host: String,
    pub port: u16,
}

impl Listener {
    pub fn parse(value: &str) -> Result<Vec<Listener>, ConfigError> {
        let bad = |reason: &str| ConfigError::Listener {
            value: value.to_string(),
            reason: reason.to_string(),
        };
        let mut out = Vec::new();
        for item in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, rest) = item
                .split_once("://")
                .ok_or_else(|| bad("expected NAME://host:port"))?;
            let (host, port) = rest
                .rsplit_once(':')
                .ok_or_else(|| bad("expected NAME://host:port"))?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let port: u16 = port.parse().map_err(|_| bad("port must be 0..65535"))?;
            out.push(Listener {
                name: name.to_string(),
                host: host.to_string(),
                port,
            });
        }
        if out.is_empty() {
            return Err(bad("no listener given"));
        }
        Ok(out)
    }
}

/// A listener clients (and other brokers) connect to: where it binds, what
/// it advertises, how its connections are secured.
#[derive(Debug, Clone)]
pub struct ClientListener {
    pub listener: Listener,
    /// From `listener.security.protocol.map`.
    pub protocol: SecurityProtocol,
    /// From `advertised.listeners` (else the bind address; an empty or
    /// wildcard host advertises 127.0.0.1).
    pub advertised_host: String,
    /// 0: the port actually bound.
    pub advertised_port: u16,
    /// The `ssl.*` settings of an SSL or SASL_SSL listener.
    pub tls: Option<TlsSettings>,
    /// The SASL settings of a SASL_PLAINTEXT or SASL_SSL listener.
    pub sasl: Option<crate::sasl::SaslSettings>,
}

/// A node of a Raft metadata quorum (`controller.quorum.voters` given):
/// how it reaches the other controllers and how the cluster watches brokers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuorumSettings {
    /// `controller.quorum.voters`: `id@host:port` of every controller.
    pub voters: BTreeMap<i32, (String, u16)>,
    /// `process.roles` has `broker` / `controller`.
    pub broker: bool,
    pub controller: bool,
    /// `controller.listener.names`.
    pub controller_names: Vec<String>,
    /// A controller's listener named in `controller.listener.names` (Raft
    /// and the controller's RPCs are served there); `None` on a broker-only
    /// node.
    pub controller_listener: Option<Listener>,
    /// `broker.heartbeat.interval.ms`.
    pub heartbeat_interval_ms: u64,
    /// `broker.session.timeout.ms`: a broker not heard from for this long is
    /// fenced and its leaderships move.
    pub session_timeout_ms: u64,
    /// `controller.quorum.election.timeout.ms`.
    pub election_timeout_ms: u64,
    /// `replica.lag.time.max.ms`: a follower not caught up for this long
    /// leaves the ISR.
    pub replica_lag_time_max_ms: i64,
    /// `unclean.leader.election.enable` (the broker-wide default).
    pub unclean_leader_election: bool,
    /// `controlled.shutdown.enable`.
    pub controlled_shutdown: bool,
    /// `auto.leader.rebalance.enable` with
    /// `leader.imbalance.check.interval.seconds` (in ms): how often the
    /// active controller moves leaderships back to preferred replicas.
    pub leader_rebalance_interval_ms: Option<u64>,
}

/// The controller listener's security (the first name of
/// `controller.listener.names`, its protocol from
/// `listener.security.protocol.map`, PLAINTEXT if unmapped).
#[derive(Debug, Clone)]
pub struct ControllerLink {
    /// Connecting: TLS and the `sasl.mechanism.controller.protocol` login.
    pub security: LinkSecurity,
    /// Accepting, on a SASL controller listener of a controller: its
    /// mechanisms and PLAIN users.
    pub sasl_server: Option<crate::sasl::SaslSettings>,
}

#[derive(Debug, Clone)]
pub struct BrokerConfig {
    /// Every key given (server.properties, then overrides), as written.
    pub props: BTreeMap<String, String>,
    pub node_id: i32,
    /// The first client listener (on a controller-only node, its controller listener).
    pub listener: Listener,
    /// Every client listener (`listeners` less the controller's), in the
    /// order given; empty on a controller-only node.
    pub listeners: Vec<ClientListener>,
    /// Index in `listeners` of the listener other brokers use
    /// (`inter.broker.listener.name`, else `security.inter.broker.protocol`).
    pub inter_broker_listener: usize,
    /// How this node connects to other brokers' inter-broker listener
    /// (TLS, SASL login); PLAINTEXT outside a quorum.
    pub inter_broker_link: LinkSecurity,
    /// In a quorum: the controller listener as this node connects to it,
    /// and (on a controller) how it accepts connections there.
    pub controller_link: Option<ControllerLink>,
    /// The inter-broker listener's advertised host and port: the endpoint
    /// registered for replication and coordinator traffic.
    pub advertised_host: String,
    pub advertised_port: u16,
    pub log_dirs: Vec<PathBuf>,
    pub metadata_log_dir: PathBuf,
    pub num_partitions: i32,
    pub default_replication_factor: i16,
    pub auto_create_topics_enable: bool,
    pub delete_topic_enable: bool,
    /// `authorizer.class.name` set to Kafka's `StandardAuthorizer`: ACLs
    /// are enforced (with `super.users`, `allow.everyone.if.no.acl.found`).
    /// `None`: no authorizer; the ACL APIs answer SECURITY_DISABLED.
    pub authorizer: Option<gregor_security::acl::Authorizer>,
    pub socket_request_max_bytes: usize,
    /// `queued.max.request.bytes` (Kafka's default -1: no pool).
    pub queued_max_request_bytes: i64,
    /// `connections.max.idle.ms`: a client connection with no request for
    /// this long is closed (0 or less: never).
    pub connections_max_idle_ms: i64,
    /// `max.connections`, `max.connections.per.ip` and its overrides.
    pub connection_limits: ConnectionLimitSettings,
    /// `quota.window.num` and `quota.window.size.seconds`: client quotas'
    /// rates are measured over this many windows of this many seconds.
    pub quota_window_num: u32,
    pub quota_window_size_seconds: u32,
    pub checkpoint_interval_ms: u64,
    /// `gregor.ssl.keystore.reload.interval.ms` (0: the files are not watched).
    pub ssl_reload_interval_ms: u64,
    /// log.retention.check.interval.ms
    pub retention_check_interval_ms: u64,
    /// `gregor.log.max.open.segments` (0: derived from RLIMIT_NOFILE, see
    /// [`crate::fd_limit`]).
    pub max_open_segments: u64,
    /// num.recovery.threads.per.data.dir
    pub recovery_threads_per_data_dir: usize,
    pub rack: Option<String>,
    pub num_io_threads: usize,
    pub message_max_bytes: usize,
    /// Group coordinator settings (group.*, offsets.*).
    pub group: gregor_coordinator::GroupConfig,
    /// offsets.topic.num.partitions
    pub offsets_topic_partitions: i32,
    /// log.cleaner.enable and the log.cleaner.* settings.
    pub cleaner: Option<gregor_storage::CleanerConfig>,
    /// Set when `controller.quorum.voters` names a Raft quorum; `None` runs
    /// the embedded single-node metadata log.
    pub quorum: Option<QuorumSettings>,
    /// `http.listeners` (Gregor's key): where /metrics, /healthz, /readyz
    /// and the web console are served; empty when disabled.
    pub http: HttpSettings,
    /// `gregor.metrics.partition.level` and `gregor.request.log.threshold.ms`.
    pub metrics: MetricsSettings,
}

/// What `/metrics` reports and which requests are logged as slow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MetricsSettings {
    /// Per-partition series on `/metrics` (`gregor.metrics.partition.level`).
    pub partition_level: bool,
    /// Requests at least this slow are logged (`gregor.request.log.threshold.ms`,
    /// negative: none).
    pub request_log_threshold_ms: Option<u64>,
}

/// The HTTP listeners (`http.listeners=http://HOST:PORT,https://HOST:PORT...`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct HttpSettings {
    /// What to bind; port 0 picks a free one.
    pub listeners: Vec<HttpEndpoint>,
    /// False when the value is the default: a default address already in
    /// use is logged and skipped (several nodes on one host), while an
    /// explicitly configured one that cannot be bound fails the start.
    pub explicit: bool,
}

/// One `http.listeners` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpEndpoint {
    pub host: String,
    pub port: u16,
    /// `https://`: served with TLS from the `http.ssl.*` keys (see gregor-web).
    pub https: bool,
}

impl HttpSettings {
    /// Parses `http://HOST:PORT[,https://HOST:PORT...]` (`[v6]:PORT` for IPv6).
    pub fn parse(text: &str, explicit: bool) -> Result<Self, ConfigError> {
        let mut listeners = Vec::new();
        for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let bad = || {
                ConfigError::Unsupported(format!(
                    "http.listeners: '{item}' is not http://HOST:PORT or https://HOST:PORT"
                ))
            };
            let (rest, https) = match item.strip_prefix("https://") {
                Some(rest) => (rest, true),
                None => (item.strip_prefix("http://").ok_or_else(bad)?, false),
            };
            let rest = rest.strip_suffix('/').unwrap_or(rest);
            let (host, port) = rest.rsplit_once(':').ok_or_else(bad)?;
            let port: u16 = port.parse().map_err(|_| bad())?;
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let host = if host.is_empty() { "0.0.0.0" } else { host };
            listeners.push(HttpEndpoint {
                host: host.to_string(),
                port,
                https,
            });
        }
        Ok(Self {
            listeners,
            explicit,
        })
    }
}

/// Kafka's connection limits (see `transport::limits`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnectionLimitSettings {
    pub max_connections: usize,
    pub max_connections_per_ip: u32,
    pub per_ip_overrides: std::collections::HashMap<std::net::IpAddr, u32>,
    /// `max.connection.creation.rate` (`None`: Kafka's default, unlimited).
    pub max_connection_creation_rate: Option<u32>,
    /// `listener.name.<l>.max.connection.creation.rate`, by index in
    /// `listeners` (`None`: unlimited).
    pub listener_connection_creation_rates: Vec<Option<u32>>,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        // The defaults parse; a failure here is a bug in the defaults table.
        Self::from_props(BTreeMap::new())
            .unwrap_or_else(|e| panic!("default broker config is invalid: {e}"))
    }
}

fn get<'a>(props: &'a BTreeMap<String, String>, name: &str) -> Option<&'a str> {
    props.get(name).map(|s| s.trim())
}

/// A `max.connection.creation.rate` value: Kafka's default (`Int.MaxValue`)
/// and above mean no limit.
fn creation_rate(value: i64) -> Option<u32> {
    (value < i64::from(i32::MAX)).then(|| value.clamp(0, i64::from(i32::MAX)) as u32)
}

/// The class name Kafka's KRaft brokers use for ACLs kept in the metadata log.
pub const STANDARD_AUTHORIZER: &str = "org.apache.kafka.metadata.authorizer.StandardAuthorizer";

/// `authorizer.class.name` (empty: none), `super.users`,
/// `allow.everyone.if.no.acl.found`. Any class other than Kafka's
/// `StandardAuthorizer` is refused: we cannot load Java classes.
fn authorizer(
    props: &BTreeMap<String, String>,
) -> Result<Option<gregor_security::acl::Authorizer>, ConfigError> {
    match get(props, "authorizer.class.name").unwrap_or("") {
        "" => Ok(None),
        STANDARD_AUTHORIZER => Ok(Some(gregor_security::acl::Authorizer::new(
            get(props, "super.users").unwrap_or(""),
            get(props, "allow.everyone.if.no.acl.found")
                .is_some_and(|v| v.eq_ignore_ascii_case("true")),
        ))),
        other => Err(ConfigError::Unsupported(format!(
            "authorizer.class.name={other} is not supported: the only authorizer is {STANDARD_AUTHORIZER}"
        ))),
    }
}

fn default_of(name: &str) -> &'static str {
    config_defs::broker_config(name)
        .and_then(|d| d.default)
        .unwrap_or("")
}

impl BrokerConfig {
    /// Parses Java properties text as Kafka's `Utils.loadProps` does
    /// (comments `#`/`!`, `key=value`, `key: value`, `key value`, backslash
    /// continuations and escapes), values trimmed.
    pub fn parse_properties(text: &str) -> Result<BTreeMap<String, String>, ConfigError> {
        let props =
            crate::java_properties::load_properties(text).map_err(|e| ConfigError::Syntax {
                line: e.line,
                text: e.to_string(),
            })?;
        // Kafka trims values when it parses them (ConfigDef.parseType).
        Ok(props
            .into_iter()
            .map(|(k, v)| (k, v.trim().to_string()))
            .collect())
    }

    pub fn from_props(props: BTreeMap<String, String>) -> Result<Self, ConfigError> {
        for (k, v) in &props {
            config_defs::validate_static_broker_config(k, v).map_err(|e| match e {
                config_defs::StaticBrokerConfigError::Unknown { name, suggestion } => {
                    ConfigError::Unknown { name, suggestion }
                }
                config_defs::StaticBrokerConfigError::Invalid(e) => ConfigError::Invalid(e),
            })?;
        }
        let int = |name: &str| -> i64 {
            get(&props, name)
                .unwrap_or(default_of(name))
                .parse()
                .unwrap_or(0)
        };
        let boolean = |name: &str| {
            get(&props, name)
                .unwrap_or(default_of(name))
                .eq_ignore_ascii_case("true")
        };
        let list = |name: &str| -> Vec<String> {
            get(&props, name)
                .unwrap_or(default_of(name))
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        };
        let double = |name: &str| {
            get(&props, name)
                .unwrap_or(default_of(name))
                .parse::<f64>()
                .ok()
        };

        let roles: Vec<&str> = get(&props, "process.roles")
            .unwrap_or("broker,controller")
            .split(',')
            .map(str::trim)
            .collect();
        let (is_broker, is_controller) = (roles.contains(&"broker"), roles.contains(&"controller"));
        let voters_text = get(&props, "controller.quorum.voters").unwrap_or("");
        if voters_text.is_empty() && !(is_broker && is_controller) {
            return Err(ConfigError::Unsupported(format!(
                "process.roles={} needs a controller quorum (controller.quorum.voters); \
                 without one a node is a single combined broker and controller",
                roles.join(",")
            )));
        }
        let node_id = match get(&props, "node.id") {
            Some(v) => v.parse().unwrap_or(1),
            None => match int("broker.id") {
                -1 => 1,
                id => id as i32,
            },
        };
        let listener_text = get(&props, "listeners")
            .unwrap_or(default_of("listeners"))
            .to_string();
        let listeners = Listener::parse(&listener_text)?;
        // Controller listeners (named in controller.listener.names) are not served separately yet;
        // the first other listener is the client listener.
        let controller_names: Vec<&str> = get(&props, "controller.listener.names")
            .map(|v| v.split(',').map(str::trim).collect())
            .unwrap_or_default();
        let client_listener = listeners
            .iter()
            .find(|l| !controller_names.contains(&l.name.as_str()))
            .cloned();
        let listener = match client_listener {
            Some(l) => l,
            // A controller-only node serves no clients: the field names its
            // controller listener and no Kafka listener is bound.
            None if !is_broker => listeners[0].clone(),
            None => {
                return Err(ConfigError::Listener {
                    value: listener_text.clone(),
                    reason: "no client listener".into(),
                })
            }
        };
        let protocols = parse_protocol_map(
            get(&props, "listener.security.protocol.map")
                .unwrap_or(default_of("listener.security.protocol.map")),
        )?;
        let advertised = match get(&props, "advertised.listeners") {
            Some(v) if !v.is_empty() => Listener::parse(v)?,
            _ => Vec::new(),
        };
        let mut client_listeners = Vec::new();
        for l in listeners
            .iter()
            .filter(|l| is_broker && !controller_names.contains(&l.name.as_str()))
        {
            if client_listeners
                .iter()
                .any(|c: &ClientListener| c.listener.name == l.name)
            {
                return Err(ConfigError::Listener {
                    value: listener_text.clone(),
                    reason: format!("listener name {} is used twice", l.name),
                });
            }
            let protocol = *protocols
                .get(&l.name)
                .ok_or_else(|| ConfigError::Listener {
                    value: listener_text.clone(),
                    reason: format!(
                        "no security protocol for listener {} in listener.security.protocol.map",
                        l.name
                    ),
                })?;
            let sasl = if matches!(
                protocol,
                SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl
            ) {
                Some(
                    crate::sasl::SaslSettings::from_props(&props, &l.name)
                        .map_err(|e| ConfigError::Sasl(e.to_string()))?,
                )
            } else {
                None
            };
            let tls = if protocol.uses_tls() {
                Some(TlsSettings::from_props(&props, &l.name)?)
            } else {
                None
            };
            let adv = advertised.iter().find(|a| a.name == l.name).unwrap_or(l);
            let advertised_host = if adv.host.is_empty() || adv.host == "0.0.0.0" {
                "127.0.0.1".to_string()
            } else {
                adv.host.clone()
            };
            client_listeners.push(ClientListener {
                listener: l.clone(),
                protocol,
                advertised_host,
                advertised_port: adv.port,
                tls,
                sasl,
            });
        }
        let inter_broker_listener =
            inter_broker_listener(&props, &client_listeners, !voters_text.is_empty())?;
        // Only a quorum member connects to other brokers; a single node's
        // inter-broker listener may be SASL without a login.
        let inter_broker_link = match client_listeners.get(inter_broker_listener) {
            Some(l) if !voters_text.is_empty() => LinkSecurity::from_props(
                &props,
                &l.listener.name,
                l.protocol,
                "sasl.mechanism.inter.broker.protocol",
                true,
            )?,
            _ => LinkSecurity::plaintext("PLAINTEXT"),
        };
        let (advertised_host, advertised_port) = match client_listeners.get(inter_broker_listener) {
            Some(c) => (c.advertised_host.clone(), c.advertised_port),
            None => {
                let host = if listener.host.is_empty() || listener.host == "0.0.0.0" {
                    "127.0.0.1".to_string()
                } else {
                    listener.host.clone()
                };
                (host, listener.port)
            }
        };
        let dirs_text = get(&props, "log.dirs")
            .or_else(|| get(&props, "log.dir"))
            .unwrap_or("./gregor-data");
        let log_dirs: Vec<PathBuf> = dirs_text
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(PathBuf::from)
            .collect();
        if log_dirs.is_empty() {
            return Err(ConfigError::Unsupported("log.dirs is empty".into()));
        }
        let metadata_log_dir = get(&props, "metadata.log.dir")
            .map(PathBuf::from)
            .unwrap_or_else(|| log_dirs[0].clone());
        let rack = get(&props, "broker.rack").map(str::to_string);
        let mut controller_link = None;
        let quorum = if voters_text.is_empty() {
            None
        } else {
            let voters = parse_voters(voters_text)?;
            // Kafka's KafkaConfig checks: a controller is a voter, a broker-only node is not.
            if is_controller && !voters.contains_key(&node_id) {
                return Err(ConfigError::Unsupported(format!(
                    "node.id {node_id} has the controller role but is not in controller.quorum.voters ({voters_text})"
                )));
            }
            if !is_controller && voters.contains_key(&node_id) {
                return Err(ConfigError::Unsupported(format!(
                    "node.id {node_id} is in controller.quorum.voters ({voters_text}) but process.roles has no 'controller'"
                )));
            }
            if controller_names.is_empty() {
                return Err(ConfigError::Unsupported(
                    "controller.listener.names must be set when controller.quorum.voters is".into(),
                ));
            }
            let controller_listener = listeners
                .iter()
                .find(|l| controller_names.contains(&l.name.as_str()))
                .cloned();
            if is_controller && controller_listener.is_none() {
                return Err(ConfigError::Listener {
                    value: listener_text.clone(),
                    reason: format!(
                        "no listener named in controller.listener.names ({}) for the controller quorum",
                        controller_names.join(",")
                    ),
                });
            }
            if !is_controller && controller_listener.is_some() {
                return Err(ConfigError::Listener {
                    value: listener_text.clone(),
                    reason: "a broker-only node must not list a controller listener".into(),
                });
            }
            let controller_name = controller_names[0];
            let controller_protocol = protocols
                .get(controller_name)
                .copied()
                .unwrap_or(SecurityProtocol::Plaintext);
            let sasl_server = match controller_protocol {
                SecurityProtocol::SaslPlaintext | SecurityProtocol::SaslSsl if is_controller => {
                    Some(
                        crate::sasl::SaslSettings::from_props(&props, controller_name)
                            .map_err(|e| ConfigError::Sasl(e.to_string()))?,
                    )
                }
                _ => None,
            };
            controller_link = Some(ControllerLink {
                security: LinkSecurity::from_props(
                    &props,
                    controller_name,
                    controller_protocol,
                    "sasl.mechanism.controller.protocol",
                    is_controller,
                )?,
                sasl_server,
            });
            Some(QuorumSettings {
                voters,
                broker: is_broker,
                controller: is_controller,
                controller_names: controller_names.iter().map(|n| n.to_string()).collect(),
                controller_listener,
                heartbeat_interval_ms: int("broker.heartbeat.interval.ms").max(1) as u64,
                session_timeout_ms: int("broker.session.timeout.ms").max(1) as u64,
                election_timeout_ms: int("controller.quorum.election.timeout.ms").max(10) as u64,
                replica_lag_time_max_ms: int("replica.lag.time.max.ms").max(1),
                unclean_leader_election: boolean("unclean.leader.election.enable"),
                controlled_shutdown: boolean("controlled.shutdown.enable"),
                leader_rebalance_interval_ms: boolean("auto.leader.rebalance.enable").then(|| {
                    (int("leader.imbalance.check.interval.seconds").max(1) as u64)
                        .saturating_mul(1000)
                }),
            })
        };
        let listener_connection_creation_rates: Vec<Option<u32>> = client_listeners
            .iter()
            .map(|l| {
                let key = format!(
                    "listener.name.{}.max.connection.creation.rate",
                    l.listener.name.to_ascii_lowercase()
                );
                get(&props, &key)
                    .map(|v| {
                        v.parse::<i64>().map_err(|_| {
                            ConfigError::Unsupported(format!("{key}: '{v}' is not an INT value"))
                        })
                    })
                    .transpose()
                    .map(|v| v.and_then(creation_rate))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            quorum,
            node_id,
            advertised_host,
            advertised_port,
            listener,
            listeners: client_listeners,
            inter_broker_listener,
            inter_broker_link,
            controller_link,
            log_dirs,
            metadata_log_dir,
            num_partitions: int("num.partitions") as i32,
            default_replication_factor: int("default.replication.factor") as i16,
            auto_create_topics_enable: boolean("auto.create.topics.enable"),
            delete_topic_enable: boolean("delete.topic.enable"),
            authorizer: authorizer(&props)?,
            socket_request_max_bytes: int("socket.request.max.bytes") as usize,
            queued_max_request_bytes: int("queued.max.request.bytes"),
            connections_max_idle_ms: int("connections.max.idle.ms"),
            connection_limits: ConnectionLimitSettings {
                max_connections: int("max.connections").clamp(0, i64::from(i32::MAX)) as usize,
                max_connections_per_ip: int("max.connections.per.ip").clamp(0, i64::from(i32::MAX))
                    as u32,
                per_ip_overrides: crate::transport::limits::parse_overrides(
                    get(&props, "max.connections.per.ip.overrides").unwrap_or(""),
                )
                .map_err(|e| {
                    ConfigError::Unsupported(format!(
                        "invalid max.connections.per.ip.overrides: {e}"
                    ))
                })?,
                max_connection_creation_rate: creation_rate(int("max.connection.creation.rate")),
                listener_connection_creation_rates,
            },
            quota_window_num: int("quota.window.num").clamp(1, 1000) as u32,
            quota_window_size_seconds: int("quota.window.size.seconds").clamp(1, 3600) as u32,
            checkpoint_interval_ms: int("log.flush.offset.checkpoint.interval.ms").max(1) as u64,
            ssl_reload_interval_ms: int("gregor.ssl.keystore.reload.interval.ms").max(0) as u64,
            retention_check_interval_ms: int("log.retention.check.interval.ms").max(1) as u64,
            max_open_segments: int("gregor.log.max.open.segments").max(0) as u64,
            recovery_threads_per_data_dir: int("num.recovery.threads.per.data.dir").clamp(1, 64)
                as usize,
            rack,
            num_io_threads: int("num.io.threads").max(1) as usize,
            message_max_bytes: int("message.max.bytes").max(0) as usize,
            group: gregor_coordinator::GroupConfig {
                min_session_timeout_ms: int("group.min.session.timeout.ms") as i32,
                max_session_timeout_ms: int("group.max.session.timeout.ms") as i32,
                initial_rebalance_delay_ms: int("group.initial.rebalance.delay.ms") as i32,
                max_size: int("group.max.size").max(1) as usize,
                offsets_retention_ms: int("offsets.retention.minutes").saturating_mul(60_000),
                offset_metadata_max_bytes: int("offset.metadata.max.bytes").max(0) as usize,
                consumer_heartbeat_interval_ms: int("group.consumer.heartbeat.interval.ms")
                    .clamp(1, i64::from(i32::MAX))
                    as i32,
                consumer_session_timeout_ms: int("group.consumer.session.timeout.ms")
                    .clamp(1, i64::from(i32::MAX))
                    as i32,
                consumer_assignors: list("group.consumer.assignors"),
                consumer_max_size: int("group.consumer.max.size").max(1) as usize,
                rebalance_protocols: list("group.coordinator.rebalance.protocols"),
                // Supplied by the broker from its metadata image (Broker::open).
                group_overrides: Default::default(),
            },
            offsets_topic_partitions: int("offsets.topic.num.partitions").max(1) as i32,
            metrics: MetricsSettings {
                partition_level: boolean("gregor.metrics.partition.level"),
                request_log_threshold_ms: u64::try_from(int("gregor.request.log.threshold.ms"))
                    .ok(),
            },
            http: HttpSettings::parse(
                get(&props, "http.listeners").unwrap_or(default_of("http.listeners")),
                get(&props, "http.listeners").is_some(),
            )?,
            cleaner: boolean("log.cleaner.enable").then(|| gregor_storage::CleanerConfig {
                threads: int("log.cleaner.threads").max(1) as usize,
                dedupe_buffer_size: int("log.cleaner.dedupe.buffer.size").max(1024) as usize,
                io_buffer_load_factor: double("log.cleaner.io.buffer.load.factor").unwrap_or(0.9),
                io_buffer_size: int("log.cleaner.io.buffer.size").max(1024) as usize,
                max_io_bytes_per_second: double("log.cleaner.io.max.bytes.per.second")
                    .unwrap_or(f64::INFINITY),
                backoff_ms: int("log.cleaner.backoff.ms").max(0) as u64,
            }),
            props,
        })
    }
}

/// `listener.security.protocol.map`: `NAME:PROTOCOL,...`.
fn parse_protocol_map(text: &str) -> Result<BTreeMap<String, SecurityProtocol>, ConfigError> {
    let mut map = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let bad = || {
            ConfigError::Unsupported(format!(
                "invalid listener.security.protocol.map '{text}': '{item}' is not NAME:PROTOCOL \
                 (PROTOCOL one of PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL)"
            ))
        };
        let (name, protocol) = item.split_once(':').ok_or_else(bad)?;
        let protocol = SecurityProtocol::parse(protocol).ok_or_else(bad)?;
        map.insert(name.trim().to_string(), protocol);
    }
    Ok(map)
}

/// The index of the inter-broker listener among `listeners`: the one named by
/// `inter.broker.listener.name`, else the listener named after
/// `security.inter.broker.protocol` (Kafka's default PLAINTEXT). A
/// single-node broker without such a listener uses its first one (nothing
/// connects to it as a broker); in a quorum the inter-broker listener must
/// exist (brokers connect to it secured as its protocol says:
/// `transport::client`).
fn inter_broker_listener(
    props: &BTreeMap<String, String>,
    listeners: &[ClientListener],
    in_quorum: bool,
) -> Result<usize, ConfigError> {
    if listeners.is_empty() {
        return Ok(0);
    }
    let by_name = get(props, "inter.broker.listener.name");
    let by_protocol = get(props, "security.inter.broker.protocol");
    if by_name.is_some() && by_protocol.is_some() {
        return Err(ConfigError::Unsupported(
            "only one of inter.broker.listener.name and security.inter.broker.protocol should be set"
                .into(),
        ));
    }
    let name = by_name
        .or(by_protocol)
        .unwrap_or(default_of("security.inter.broker.protocol"));
    let found = listeners.iter().position(|l| l.listener.name == name);
    let index = match found {
        Some(i) => i,
        None if by_name.is_some() || in_quorum => {
            return Err(ConfigError::Unsupported(format!(
                "the inter-broker listener {name} ({}) is not one of the broker's listeners ({})",
                if by_name.is_some() {
                    "inter.broker.listener.name"
                } else {
                    "security.inter.broker.protocol"
                },
                listeners
                    .iter()
                    .map(|l| l.listener.name.as_str())
                    .collect::<Vec<_>>()
                    .join(",")
            )))
        }
        None => 0,
    };
    Ok(index)
}

/// `controller.quorum.voters`: `id@host:port,...`.
fn parse_voters(text: &str) -> Result<BTreeMap<i32, (String, u16)>, ConfigError> {
    let bad = |reason: String| {
        ConfigError::Unsupported(format!(
            "invalid controller.quorum.voters '{text}': {reason}"
        ))
    };
    let mut voters = BTreeMap::new();
    for item in text.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let (id, addr) = item
            .split_once('@')
            .ok_or_else(|| bad(format!("'{item}' is not id@host:port")))?;
        let id: i32 = id
            .trim()
            .parse()
            .map_err(|_| bad(format!("'{id}' is not a node id")))?;
        let (host, port) = addr
            .rsplit_once(':')
            .ok_or_else(|| bad(format!("'{addr}' is not host:port")))?;
        let port: u16 = port
            .parse()
            .map_err(|_| bad(format!("'{port}' is not a port")))?;
        let host = host.trim_start_matches('[').trim_end_matches(']');
        if voters.insert(id, (host.to_string(), port)).is_some() {
            return Err(bad(format!("node {id} is named twice")));
        }
    }
    if voters.is_empty() {
        return Err(bad("no voter named".into()));
    }
    Ok(voters)
}

impl BrokerConfig {
    /// The given keys Gregor accepts (they are Kafka's) but does not act on.
    pub fn keys_without_effect(&self) -> Vec<&str> {
        config_defs::keys_without_effect(self.props.keys())
    }

    /// How large one metadata batch may be: `controller.max.records.per.batch`
    /// records (Kafka's default 10,000), and bytes under the metadata log's
    /// message size.
    pub fn metadata_batch_limits(&self) -> gregor_metadata::transaction::BatchLimits {
        let mut limits = gregor_metadata::transaction::BatchLimits::default();
        if let Some(n) = self
            .props
            .get("controller.max.records.per.batch")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .filter(|&n| n >= 1)
        {
            limits.max_records = n;
        }
        limits
    }

    /// Logs, once at start, the given keys that have no effect in Gregor.
    pub fn warn_keys_without_effect(&self) {
        let keys = self.keys_without_effect();
        if !keys.is_empty() {
            tracing::warn!(
                "these Kafka configs are accepted but have no effect in Gregor: {}",
                keys.join(", ")
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn defaults() {
        let c = BrokerConfig::default();
        assert_eq!(c.node_id, 1);
        assert_eq!(
            c.listener,
            Listener {
                name: "PLAINTEXT".into(),
                host: "127.0.0.1".into(),
                port: 9092
            }
        );
        assert_eq!(c.log_dirs, vec![PathBuf::from("./gregor-data")]);
        assert_eq!(c.socket_request_max_bytes, 104_857_600);
        assert!(c.auto_create_topics_enable);
    }

    #[test]
    fn authorizer_is_standard_or_nothing() {
        assert!(BrokerConfig::default().authorizer.is_none());
        let c = BrokerConfig::from_props(props(&[
            ("authorizer.class.name", STANDARD_AUTHORIZER),
            ("super.users", "User:admin;User:CN=broker"),
        ]))
        .unwrap();
        let a = c.authorizer.unwrap();
        assert!(a.is_super_user("User:admin") && a.is_super_user("User:CN=broker"));
        let e = BrokerConfig::from_props(props(&[(
            "authorizer.class.name",
            "kafka.security.authorizer.AclAuthorizer",
        )]))
        .unwrap_err();
        assert!(e.to_string().contains("StandardAuthorizer"), "{e}");
    }

    #[test]
    fn kafka_quickstart_properties_are_accepted() {
        let text = "# comment\nprocess.roles=broker,controller\nnode.id=1\n\
            controller.quorum.bootstrap.servers=localhost:9093\n\
            listeners=PLAINTEXT://:9092,CONTROLLER://:9093\ninter.broker.listener.name=PLAINTEXT\n\
            advertised.listeners=PLAINTEXT://localhost:9092,CONTROLLER://localhost:9093\n\
            controller.listener.names=CONTROLLER\n\
            listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT\n\
            num.network.threads=3\nnum.io.threads=8\nsocket.send.buffer.bytes=102400\n\
            socket.receive.buffer.bytes=102400\nsocket.request.max.bytes=104857600\n\
            log.dirs=/tmp/kraft-combined-logs\nnum.partitions=1\nnum.recovery.threads.per.data.dir=1\n\
            offsets.topic.replication.factor=1\nshare.coordinator.state.topic.replication.factor=1\n\
            share.coordinator.state.topic.min.isr=1\ntransaction.state.log.replication.factor=1\n\
            transaction.state.log.min.isr=1\nlog.retention.hours=168\nlog.segment.bytes=1073741824\n\
            log.retention.check.interval.ms=300000\n";
        let c = BrokerConfig::from_props(BrokerConfig::parse_properties(text).unwrap()).unwrap();
        assert_eq!(c.listener.port, 9092);
        assert_eq!(c.advertised_host, "localhost");
        assert_eq!(c.log_dirs, vec![PathBuf::from("/tmp/kraft-combined-logs")]);
    }

    #[test]
    fn http_listeners_parse() {
        let d = BrokerConfig::default().http;
        let e = |host: &str, port, https| HttpEndpoint {
            host: host.to_string(),
            port,
            https,
        };
        assert_eq!(d.listeners, vec![e("127.0.0.1", 8080, false)]);
        assert!(!d.explicit);
        let h = HttpSettings::parse("http://0.0.0.0:0, https://[::1]:9644/", true).unwrap();
        assert_eq!(
            h.listeners,
            vec![e("0.0.0.0", 0, false), e("::1", 9644, true)]
        );
        assert!(HttpSettings::parse("", true).unwrap().listeners.is_empty());
        assert!(HttpSettings::parse("ftp://x:1", true).is_err());
        assert!(HttpSettings::parse("http://x", true).is_err());
        assert!(HttpSettings::parse("http://x:99999", true).is_err());
    }

    #[test]
    fn unknown_and_invalid_are_refused() {
        assert_eq!(
            BrokerConfig::from_props(props(&[("log.retention.dayz", "1")])).unwrap_err(),
            ConfigError::Unknown {
                name: "log.retention.dayz".into(),
                suggestion: Some("log.retention.ms".into())
            }
        );
        assert_eq!(
            BrokerConfig::from_props(props(&[("log.retention.hour", "1")]))
                .unwrap_err()
                .to_string(),
            "unknown configuration 'log.retention.hour'; did you mean 'log.retention.hours'?"
        );
        assert!(matches!(
            BrokerConfig::from_props(props(&[("num.partitions", "zero")])),
            Err(ConfigError::Invalid(_))
        ));
        assert!(matches!(
            BrokerConfig::from_props(props(&[("listeners", "PLAINTEXT://127.0.0.1:99999")])),
            Err(ConfigError::Listener { .. })
        ));
        assert!(matches!(
            BrokerConfig::from_props(props(&[("process.roles", "broker")])),
            Err(ConfigError::Unsupported(_))
        ));
    }

    #[test]
    fn connection_creation_rates() {
        let c = BrokerConfig::default();
        assert_eq!(c.connection_limits.max_connection_creation_rate, None);
        assert_eq!(
            c.connection_limits.listener_connection_creation_rates,
            vec![None]
        );
        let c = BrokerConfig::from_props(props(&[
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:0,INTERNAL://127.0.0.1:0",
            ),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,INTERNAL:PLAINTEXT",
            ),
            ("max.connection.creation.rate", "30"),
            ("listener.name.internal.max.connection.creation.rate", "5"),
        ]))
        .unwrap();
        assert_eq!(c.connection_limits.max_connection_creation_rate, Some(30));
        assert_eq!(
            c.connection_limits.listener_connection_creation_rates,
            vec![None, Some(5)]
        );
        assert!(BrokerConfig::from_props(props(&[(
            "listener.name.plaintext.max.connection.creation.rate",
            "lots"
        )]))
        .is_err());
    }

    #[test]
    fn named_listeners_protocols_and_inter_broker() {
        let c = BrokerConfig::from_props(props(&[
            (
                "listeners",
                "PLAINTEXT://127.0.0.1:0,SSL://127.0.0.1:0,INTERNAL://:9094",
            ),
            (
                "listener.security.protocol.map",
                "PLAINTEXT:PLAINTEXT,SSL:SSL,INTERNAL:PLAINTEXT",
            ),
            (
                "advertised.listeners",
                "PLAINTEXT://a.example:9092,SSL://b.example:9093",
            ),
            ("inter.broker.listener.name", "INTERNAL"),
            ("ssl.keystore.type", "PEM"),
            ("listener.name.ssl.ssl.keystore.location", "/k.pem"),
        ]))
        .unwrap();
        assert_eq!(c.listener.name, "PLAINTEXT");
        let names: Vec<_> = c
            .listeners
            .iter()
            .map(|l| l.listener.name.as_str())
            .collect();
        assert_eq!(names, ["PLAINTEXT", "SSL", "INTERNAL"]);
        assert_eq!(c.listeners[1].protocol, SecurityProtocol::Ssl);
        assert!(c.listeners[1].tls.is_some() && c.listeners[0].tls.is_none());
        assert_eq!(
            (
                c.listeners[1].advertised_host.as_str(),
                c.listeners[1].advertised_port
            ),
            ("b.example", 9093)
        );
        // Not advertised: the bind address, a wildcard host as 127.0.0.1.
        assert_eq!(c.inter_broker_listener, 2);
        assert_eq!(
            (c.advertised_host.as_str(), c.advertised_port),
            ("127.0.0.1", 9094)
        );
        // A single SSL listener on a single node serves as the inter-broker one.
        let ssl_only = BrokerConfig::from_props(props(&[
            ("listeners", "SSL://127.0.0.1:0"),
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.location", "/k.pem"),
        ]))
        .unwrap();
        assert_eq!(ssl_only.listener.name, "SSL");
        assert_eq!(ssl_only.inter_broker_listener, 0);

        let refused = |pairs: &[(&str, &str)]| {
            BrokerConfig::from_props(props(pairs))
                .unwrap_err()
                .to_string()
        };
        // Kafka's default mechanism, GSSAPI, is not served.
        let e = refused(&[("listeners", "SASL_PLAINTEXT://:9093")]);
        assert!(e.contains("GSSAPI is not supported"), "{e}");
        let e = refused(&[
            ("listeners", "SASL_PLAINTEXT://:9093"),
            ("sasl.enabled.mechanisms", "PLAIN"),
        ]);
        assert!(e.contains("names no PlainLoginModule users"), "{e}");
        let sasl = BrokerConfig::from_props(props(&[
            ("listeners", "SASL_PLAINTEXT://:9093"),
            ("sasl.enabled.mechanisms", "SCRAM-SHA-256"),
            ("connections.max.reauth.ms", "60000"),
        ]))
        .unwrap();
        let settings = sasl.listeners[0].sasl.as_ref().unwrap();
        assert_eq!(settings.max_reauth_ms, 60_000);
        assert_eq!(settings.failed_auth_delay.as_millis(), 100);
        let e = refused(&[("listeners", "SSL://:9093")]);
        assert!(e.contains("ssl.keystore.location"), "{e}");
        let e = refused(&[("listeners", "CLIENT://:9093")]);
        assert!(
            e.contains("no security protocol for listener CLIENT"),
            "{e}"
        );
        let e = refused(&[
            ("inter.broker.listener.name", "PLAINTEXT"),
            ("security.inter.broker.protocol", "PLAINTEXT"),
        ]);
        assert!(e.contains("only one of"), "{e}");
        let e = refused(&[("inter.broker.listener.name", "NOPE")]);
        assert!(e.contains("is not one of the broker's listeners"), "{e}");
        let e = refused(&[("listener.security.protocol.map", "PLAINTEXT:TLS")]);
        assert!(e.contains("listener.security.protocol.map"), "{e}");
    }

    /// kafka-python's test broker config (servers/resources/default/kafka.properties,
    /// KRaft variant, with its SASL/SSL/ACL fragments filled in).
    #[test]
    fn kafka_python_test_properties_are_accepted() {
        let text = "process.roles=broker,controller\nnode.id=1\n\
            controller.quorum.bootstrap.servers=127.0.0.1:9093\n\
            listeners=PLAINTEXT://127.0.0.1:9092,CONTROLLER://127.0.0.1:9093\n\
            inter.broker.listener.name=PLAINTEXT\n\
            sasl.enabled.mechanisms=PLAIN\nsasl.mechanism.inter.broker.protocol=PLAIN\n\
            ssl.keystore.location=/tmp/ks.jks\nssl.keystore.password=foobar\nssl.key.password=foobar\n\
            ssl.truststore.location=/tmp/ts.jks\nssl.truststore.password=foobar\n\
            authorizer.class.name=org.apache.kafka.metadata.authorizer.StandardAuthorizer\n\
            allow.everyone.if.no.acl.found=true\n\
            controller.listener.names=CONTROLLER\n\
            listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_PLAINTEXT:SASL_PLAINTEXT,SASL_SSL:SASL_SSL\n\
            num.network.threads=3\nnum.io.threads=8\nsocket.send.buffer.bytes=102400\n\
            socket.receive.buffer.bytes=102400\nsocket.request.max.bytes=104857600\n\
            log.dirs=/tmp/kp/kraft-combined-logs\nnum.partitions=2\ndefault.replication.factor=1\n\
            replica.lag.time.max.ms=1000\nreplica.socket.timeout.ms=1000\n\
            num.recovery.threads.per.data.dir=1\noffsets.topic.replication.factor=1\n\
            share.coordinator.state.topic.replication.factor=1\nshare.coordinator.state.topic.min.isr=1\n\
            transaction.state.log.replication.factor=1\ntransaction.state.log.min.isr=1\n\
            log.retention.hours=168\nlog.segment.bytes=1073741824\nlog.retention.check.interval.ms=300000\n\
            log.cleaner.enable=false\noffsets.commit.timeout.ms=500\noffsets.topic.num.partitions=2\n\
            group.min.session.timeout.ms=1000\ngroup.initial.rebalance.delay.ms=0\n\
            listener.name.plaintext.sasl.enabled.mechanisms=PLAIN\n";
        let c = BrokerConfig::from_props(BrokerConfig::parse_properties(text).unwrap()).unwrap();
        assert_eq!(c.offsets_topic_partitions, 2);
        assert_eq!(c.group.min_session_timeout_ms, 1000);
        let no_effect = c.keys_without_effect();
        assert!(no_effect.contains(&"offsets.commit.timeout.ms"));
        // SASL listeners read it (the check does not look at the listener's protocol).
        assert!(!no_effect.contains(&"listener.name.plaintext.sasl.enabled.mechanisms"));
        // Read by the inter-broker link (in a quorum).
        assert!(!no_effect.contains(&"sasl.mechanism.inter.broker.protocol"));
        assert!(!no_effect.contains(&"num.partitions"));
    }

    #[test]
    fn properties_syntax() {
        let p = BrokerConfig::parse_properties("a=1\nb: 2\nc 3\nd=x\\\n  y\n! bang\n").unwrap();
        assert_eq!(p["a"], "1");
        assert_eq!(p["b"], "2");
        assert_eq!(p["c"], "3");
        assert_eq!(p["d"], "xy");
    }

    #[test]
    fn quorum_roles_and_voters() {
        let props = |pairs: &[(&str, &str)]| {
            BrokerConfig::from_props(
                pairs
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        };
        let voters = (
            "controller.quorum.voters",
            "1@127.0.0.1:9093,2@127.0.0.1:9094",
        );
        let names = ("controller.listener.names", "CONTROLLER");
        let combined = props(&[
            ("node.id", "1"),
            voters,
            names,
            ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
        ])
        .unwrap();
        let q = combined.quorum.unwrap();
        assert!(q.broker && q.controller);
        assert_eq!(q.voters.len(), 2);
        assert_eq!(q.controller_listener.unwrap().port, 9093);
        assert_eq!((q.heartbeat_interval_ms, q.session_timeout_ms), (250, 1500));
        // A broker-only node is not a voter and has no controller listener.
        let broker = props(&[
            ("node.id", "3"),
            ("process.roles", "broker"),
            voters,
            names,
            ("listeners", "PLAINTEXT://:9095"),
        ])
        .unwrap();
        assert!(broker
            .quorum
            .is_some_and(|q| !q.controller && q.controller_listener.is_none()));
        // Kafka's refusals.
        for bad in [
            vec![
                ("node.id", "3"),
                voters,
                names,
                ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
            ],
            vec![
                ("node.id", "1"),
                ("process.roles", "broker"),
                voters,
                names,
                ("listeners", "PLAINTEXT://:9092"),
            ],
            vec![
                ("node.id", "1"),
                voters,
                ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
            ],
            vec![
                ("node.id", "1"),
                ("controller.quorum.voters", ","),
                names,
                ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
            ],
            vec![
                ("node.id", "1"),
                ("controller.quorum.voters", "1@h"),
                names,
                ("listeners", "PLAINTEXT://:9092,CONTROLLER://:9093"),
            ],
            vec![("process.roles", "controller")],
        ] {
            assert!(props(&bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn quorum_links_follow_the_protocol_map() {
        let base = [
            ("node.id", "1"),
            ("controller.quorum.voters", "1@127.0.0.1:9093"),
            ("controller.listener.names", "CONTROLLER"),
            (
                "listeners",
                "PLAINTEXT://:9092,BROKER://:9094,CONTROLLER://:9093",
            ),
            ("inter.broker.listener.name", "BROKER"),
            ("ssl.keystore.type", "PEM"),
            ("ssl.keystore.location", "/k.pem"),
            ("ssl.truststore.type", "PEM"),
            ("ssl.truststore.location", "/ca.pem"),
            ("sasl.mechanism.controller.protocol", "PLAIN"),
            ("listener.name.controller.sasl.enabled.mechanisms", "PLAIN"),
            (
                "listener.name.controller.plain.sasl.jaas.config",
                r#"org.apache.kafka.common.security.plain.PlainLoginModule required username="c" password="p" user_c="p";"#,
            ),
        ];
        let mut pairs = props(&base);
        pairs.insert(
            "listener.security.protocol.map".into(),
            "PLAINTEXT:PLAINTEXT,BROKER:SSL,CONTROLLER:SASL_PLAINTEXT".into(),
        );
        let c = BrokerConfig::from_props(pairs.clone()).unwrap();
        // An SSL inter-broker listener in a quorum (refused before links were secured).
        assert_eq!(c.inter_broker_link.protocol, SecurityProtocol::Ssl);
        assert_eq!(c.inter_broker_link.listener, "BROKER");
        assert!(c.inter_broker_link.tls.is_some() && c.inter_broker_link.sasl.is_none());
        let ctl = c.controller_link.unwrap();
        assert_eq!(ctl.security.protocol, SecurityProtocol::SaslPlaintext);
        let login = ctl.security.sasl.unwrap();
        assert_eq!(
            (login.username.as_str(), login.password.0.as_str()),
            ("c", "p")
        );
        assert!(ctl.sasl_server.is_some());
        // A SASL inter-broker listener without sasl.mechanism.inter.broker.protocol.
        pairs.insert(
            "listener.security.protocol.map".into(),
            "PLAINTEXT:PLAINTEXT,BROKER:SASL_SSL,CONTROLLER:SASL_PLAINTEXT".into(),
        );
        pairs.insert(
            "listener.name.broker.sasl.enabled.mechanisms".into(),
            "SCRAM-SHA-512".into(),
        );
        let e = BrokerConfig::from_props(pairs).unwrap_err().to_string();
        assert!(e.contains("sasl.mechanism.inter.broker.protocol"), "{e}");
        // An unmapped controller listener is PLAINTEXT.
        let mut plain = props(&base);
        plain.insert(
            "listener.security.protocol.map".into(),
            "PLAINTEXT:PLAINTEXT,BROKER:PLAINTEXT".into(),
        );
        let c = BrokerConfig::from_props(plain).unwrap();
        assert_eq!(
            c.controller_link.unwrap().security.protocol,
            SecurityProtocol::Plaintext
        );
    }
}
