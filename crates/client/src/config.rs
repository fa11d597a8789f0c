//! `ClientConfig`: the Java client's property names and defaults (Kafka 4.x),
//! read from a map or from Java-properties text. One config type serves the
//! producer, the consumer and the admin client, as a Java `Properties` does;
//! each reads the keys it needs. Unknown keys are an error rather than a
//! warning, because a misspelt `enable.idempotence` silently ignored is worse
//! than a refusal to start.

use std::time::Duration;

use gregor_records::Compression;

use crate::error::{Error, Result};
use crate::tls::PemSource;

/// `acks`: how many replicas must have the batch before the broker answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Acks {
    /// `acks=0`: the broker sends no response at all.
    None,
    /// `acks=1`: the leader's log has it.
    Leader,
    /// `acks=all` (or -1): every in-sync replica has it.
    All,
}

impl Acks {
    pub fn wire(self) -> i16 {
        match self {
            Acks::None => 0,
            Acks::Leader => 1,
            Acks::All => -1,
        }
    }
}

/// `auto.offset.reset`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetReset {
    Earliest,
    Latest,
    /// Report an error instead of moving the position.
    None,
}

/// `isolation.level`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IsolationLevel {
    ReadUncommitted,
    ReadCommitted,
}

impl IsolationLevel {
    pub fn wire(self) -> i8 {
        match self {
            IsolationLevel::ReadUncommitted => 0,
            IsolationLevel::ReadCommitted => 1,
        }
    }
}

/// The built-in partitioners, chosen with `partitioner.class`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartitionerKind {
    /// murmur2 of the key like the Java client; sticky (KIP-480) without a key.
    Default,
    /// Sticky for every record, keys ignored (`UniformStickyPartitioner`).
    UniformSticky,
    /// Partitions in turn (`RoundRobinPartitioner`).
    RoundRobin,
}

/// Group assignors by their protocol names (`partition.assignment.strategy`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AssignorKind {
    Range,
    RoundRobin,
    CooperativeSticky,
}

impl AssignorKind {
    /// The protocol name sent in JoinGroup, the same as the Java assignors'.
    pub fn name(self) -> &'static str {
        match self {
            AssignorKind::Range => "range",
            AssignorKind::RoundRobin => "roundrobin",
            AssignorKind::CooperativeSticky => "cooperative-sticky",
        }
    }
    fn parse(s: &str) -> Option<Self> {
        let short = s.rsplit('.').next().unwrap_or(s);
        match short {
            "range" | "RangeAssignor" => Some(AssignorKind::Range),
            "roundrobin" | "RoundRobinAssignor" => Some(AssignorKind::RoundRobin),
            "cooperative-sticky" | "CooperativeStickyAssignor" => {
                Some(AssignorKind::CooperativeSticky)
            }
            _ => None,
        }
    }
}

/// Settings for producers, consumers and admin clients. Fields hold parsed
/// values; [`ClientConfig::set`] takes the Kafka property names.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    // -- common
    pub bootstrap_servers: Vec<String>,
    pub client_id: String,
    pub request_timeout: Duration,
    pub retry_backoff: Duration,
    pub retry_backoff_max: Duration,
    pub metadata_max_age: Duration,
    /// `security.protocol=SASL_PLAINTEXT`: every connection authenticates.
    pub sasl_enabled: bool,
    /// `sasl.mechanism` (Kafka's default GSSAPI is not supported).
    pub sasl_mechanism: String,
    /// `sasl.username` / `sasl.password` (librdkafka's names), or the
    /// `username` and `password` options of `sasl.jaas.config`.
    pub sasl_username: Option<String>,
    pub sasl_password: Option<String>,
    /// `sasl.oauthbearer.token` (Gregor's): the compact JWS OAUTHBEARER sends.
    pub sasl_oauthbearer_token: Option<String>,
    /// `sasl.oauthbearer.config` (librdkafka's): `principal=alice scope=a,b`
    /// for an unsecured token.
    pub sasl_oauthbearer_config: Option<String>,
    /// The options of `sasl.jaas.config`'s login module (OAUTHBEARER reads
    /// its `unsecuredLogin*` options from them).
    pub sasl_jaas_options: Vec<(String, String)>,
    /// `security.protocol=SSL` or `SASL_SSL`: every connection is TLS.
    pub ssl_enabled: bool,
    /// The `ssl.*` settings (read when a client is built).
    pub ssl: crate::tls::SslSettings,
    // -- producer
    pub acks: Acks,
    pub linger: Duration,
    pub batch_size: usize,
    pub buffer_memory: usize,
    pub max_block: Duration,
    pub max_request_size: usize,
    pub max_in_flight: usize,
    pub compression: Compression,
    pub retries: u32,
    pub delivery_timeout: Duration,
    pub enable_idempotence: bool,
    pub partitioner: PartitionerKind,
    pub partitioner_ignore_keys: bool,
    /// `transactional.id`: makes the producer transactional (and idempotent).
    pub transactional_id: Option<String>,
    pub transaction_timeout: Duration,
    // -- consumer
    pub group_id: Option<String>,
    pub group_instance_id: Option<String>,
    pub session_timeout: Duration,
    pub heartbeat_interval: Duration,
    pub max_poll_interval: Duration,
    pub max_poll_records: usize,
    pub fetch_min_bytes: i32,
    pub fetch_max_wait: Duration,
    pub fetch_max_bytes: i32,
    pub max_partition_fetch_bytes: i32,
    pub enable_auto_commit: bool,
    pub auto_commit_interval: Duration,
    pub auto_offset_reset: OffsetReset,
    pub isolation_level: IsolationLevel,
    pub assignment_strategy: Vec<AssignorKind>,
    /// Which keys were set explicitly (Kafka treats explicit and default
    /// `enable.idempotence` differently on conflict).
    explicit: Vec<String>,
}

impl Default for ClientConfig {
    /// Kafka's defaults.
    fn default() -> Self {
        ClientConfig {
            bootstrap_servers: Vec::new(),
            client_id: String::new(),
            sasl_enabled: false,
            sasl_mechanism: "GSSAPI".to_string(),
            sasl_username: None,
            sasl_password: None,
            sasl_oauthbearer_token: None,
            sasl_oauthbearer_config: None,
            sasl_jaas_options: Vec::new(),
            ssl_enabled: false,
            ssl: crate::tls::SslSettings::default(),
            request_timeout: Duration::from_millis(30_000),
            retry_backoff: Duration::from_millis(100),
            retry_backoff_max: Duration::from_millis(1_000),
            metadata_max_age: Duration::from_millis(300_000),
            acks: Acks::All,
            linger: Duration::from_millis(5),
            batch_size: 16_384,
            buffer_memory: 33_554_432,
            max_block: Duration::from_millis(60_000),
            max_request_size: 1_048_576,
            max_in_flight: 5,
            compression: Compression::None,
            retries: i32::MAX as u32,
            delivery_timeout: Duration::from_millis(120_000),
            enable_idempotence: true,
            partitioner: PartitionerKind::Default,
            partitioner_ignore_keys: false,
            transactional_id: None,
            transaction_timeout: Duration::from_millis(60_000),
            group_id: None,
            group_instance_id: None,
            session_timeout: Duration::from_millis(45_000),
            heartbeat_interval: Duration::from_millis(3_000),
            max_poll_interval: Duration::from_millis(300_000),
            max_poll_records: 500,
            fetch_min_bytes: 1,
            fetch_max_wait: Duration::from_millis(500),
            fetch_max_bytes: 52_428_800,
            max_partition_fetch_bytes: 1_048_576,
            enable_auto_commit: true,
            auto_commit_interval: Duration::from_millis(5_000),
            auto_offset_reset: OffsetReset::Latest,
            isolation_level: IsolationLevel::ReadUncommitted,
            assignment_strategy: vec![AssignorKind::Range, AssignorKind::CooperativeSticky],
            explicit: Vec::new(),
        }
    }
}

fn non_empty(v: &str) -> Option<&str> {
    Some(v).filter(|s| !s.is_empty())
}

fn parse_num<T: std::str::FromStr>(key: &str, v: &str) -> Result<T> {
    v.trim()
        .parse()
        .map_err(|_| Error::config(key, format!("{v:?} is not a valid number")))
}

fn parse_ms(key: &str, v: &str) -> Result<Duration> {
    let ms: i64 = parse_num(key, v)?;
    u64::try_from(ms)
        .map(Duration::from_millis)
        .map_err(|_| Error::config(key, format!("{ms} must not be negative")))
}

fn parse_bool(key: &str, v: &str) -> Result<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "true" => Ok(true),
        "false" => Ok(false),
        _ => Err(Error::config(key, format!("{v:?} is not true or false"))),
    }
}

fn positive_size(key: &str, v: &str) -> Result<usize> {
    let n: i64 = parse_num(key, v)?;
    usize::try_from(n).map_err(|_| Error::config(key, format!("{n} must not be negative")))
}

impl ClientConfig {
    /// What connections authenticate with (`None` on PLAINTEXT).
    pub fn sasl_credentials(&self) -> Result<Option<crate::conn::SaslCredentials>> {
        if !self.sasl_enabled {
            return Ok(None);
        }
        let mechanism =
            gregor_security::Mechanism::from_name(&self.sasl_mechanism).ok_or_else(|| {
                Error::config(
                    "sasl.mechanism",
                    format!(
                        "{} is not supported (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER)",
                        self.sasl_mechanism
                    ),
                )
            })?;
        if mechanism == gregor_security::Mechanism::OAuthBearer {
            let source = match (&self.sasl_oauthbearer_token, &self.sasl_oauthbearer_config) {
                (Some(t), _) => crate::oauthbearer::TokenSource::Static(t.clone()),
                (None, Some(c)) => crate::oauthbearer::TokenSource::Unsecured(
                    crate::oauthbearer::UnsecuredLogin::from_librdkafka(c)
                        .map_err(|e| Error::config("sasl.oauthbearer.config", e.to_string()))?,
                ),
                (None, None) => crate::oauthbearer::TokenSource::Unsecured(
                    crate::oauthbearer::UnsecuredLogin::from_options(
                        self.sasl_jaas_options
                            .iter()
                            .map(|(k, v)| (k.as_str(), v.as_str())),
                    )
                    .map_err(|e| {
                        Error::config(
                            "sasl.jaas.config",
                            format!("OAUTHBEARER needs sasl.oauthbearer.token or an unsecured login: {e}"),
                        )
                    })?,
                ),
            };
            return Ok(Some(crate::conn::SaslCredentials {
                mechanism,
                username: String::new(),
                password: String::new(),
                oauthbearer: Some(source),
            }));
        }
        match (&self.sasl_username, &self.sasl_password) {
            (Some(username), Some(password)) => Ok(Some(crate::conn::SaslCredentials {
                mechanism,
                username: username.clone(),
                password: password.clone(),
                oauthbearer: None,
            })),
            _ => Err(Error::config(
                "sasl.username",
                "SASL needs sasl.username and sasl.password (or sasl.jaas.config)",
            )),
        }
    }

    pub fn new() -> Self {
        Self::default()
    }

    /// A config from `(key, value)` pairs; an unknown key or bad value is an error.
    pub fn from_map<K: AsRef<str>, V: AsRef<str>>(
        map: impl IntoIterator<Item = (K, V)>,
    ) -> Result<Self> {
        let mut c = ClientConfig::default();
        for (k, v) in map {
            c.set(k.as_ref(), v.as_ref())?;
        }
        Ok(c)
    }

    /// A config from Java-properties text (`key=value`, `key: value`,
    /// `#`/`!` comments, trailing-backslash continuation lines).
    pub fn from_properties(text: &str) -> Result<Self> {
        Self::from_map(parse_properties(text))
    }

    /// Builder-style [`ClientConfig::set`].
    pub fn with(mut self, key: &str, value: &str) -> Result<Self> {
        self.set(key, value)?;
        Ok(self)
    }

    /// Sets one property by its Kafka name.
    pub fn set(&mut self, key: &str, value: &str) -> Result<&mut Self> {
        let v = value.trim();
        match key {
            "bootstrap.servers" => {
                self.bootstrap_servers = v
                    .split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(str::to_string)
                    .collect();
                if self.bootstrap_servers.is_empty() {
                    return Err(Error::config(key, "no host:port given"));
                }
            }
            "client.id" => self.client_id = v.to_string(),
            "request.timeout.ms" => self.request_timeout = parse_ms(key, v)?,
            "retry.backoff.ms" => self.retry_backoff = parse_ms(key, v)?,
            "retry.backoff.max.ms" => self.retry_backoff_max = parse_ms(key, v)?,
            "metadata.max.age.ms" => self.metadata_max_age = parse_ms(key, v)?,
            "security.protocol" => {
                (self.sasl_enabled, self.ssl_enabled) = match v.to_ascii_uppercase().as_str() {
                    "PLAINTEXT" => (false, false),
                    "SASL_PLAINTEXT" => (true, false),
                    "SSL" => (false, true),
                    "SASL_SSL" => (true, true),
                    _ => {
                        return Err(Error::config(
                            key,
                            format!("{v:?} is not PLAINTEXT, SSL, SASL_PLAINTEXT or SASL_SSL"),
                        ))
                    }
                }
            }
            "ssl.ca.location" | "ssl.truststore.location" => {
                self.ssl.ca = non_empty(v).map(|p| PemSource::File(p.into()))
            }
            "ssl.ca.pem" | "ssl.truststore.certificates" => {
                self.ssl.ca = non_empty(v).map(|p| PemSource::Inline(p.into()))
            }
            "ssl.certificate.location" => {
                self.ssl.certificate = non_empty(v).map(|p| PemSource::File(p.into()))
            }
            "ssl.certificate.pem" | "ssl.keystore.certificate.chain" => {
                self.ssl.certificate = non_empty(v).map(|p| PemSource::Inline(p.into()))
            }
            "ssl.key.location" => self.ssl.key = non_empty(v).map(|p| PemSource::File(p.into())),
            "ssl.key.pem" | "ssl.keystore.key" => {
                self.ssl.key = non_empty(v).map(|p| PemSource::Inline(p.into()))
            }
            // Java's keystore: one file with the key and the chain.
            "ssl.keystore.location" => {
                self.ssl.certificate = non_empty(v).map(|p| PemSource::File(p.into()));
                self.ssl.key = None;
            }
            "ssl.key.password" => self.ssl.key_password = non_empty(v).map(str::to_string),
            "ssl.keystore.password" => {
                self.ssl.keystore_password = non_empty(v).map(str::to_string)
            }
            "ssl.truststore.password" => {
                self.ssl.truststore_password = non_empty(v).map(str::to_string)
            }
            "ssl.keystore.type" => self.ssl.keystore_type = v.to_string(),
            "ssl.truststore.type" => self.ssl.truststore_type = v.to_string(),
            "ssl.endpoint.identification.algorithm" => {
                self.ssl.verify_hostname = match v.to_ascii_lowercase().as_str() {
                    "https" => true,
                    "" | "none" => false,
                    _ => return Err(Error::config(key, format!("{v:?} is not https or none"))),
                }
            }
            "sasl.mechanism" | "sasl.mechanisms" => {
                if gregor_security::Mechanism::from_name(v).is_none() {
                    return Err(Error::config(
                        key,
                        format!("{v:?} is not PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER"),
                    ));
                }
                self.sasl_mechanism = v.to_string();
            }
            "sasl.username" => self.sasl_username = Some(v.to_string()),
            "sasl.password" => self.sasl_password = Some(v.to_string()),
            "sasl.oauthbearer.token" => self.sasl_oauthbearer_token = Some(v.to_string()),
            "sasl.oauthbearer.config" => {
                crate::oauthbearer::UnsecuredLogin::from_librdkafka(v)
                    .map_err(|e| Error::config(key, e.to_string()))?;
                self.sasl_oauthbearer_config = Some(v.to_string());
            }
            // librdkafka's switch for the unsecured token builder that
            // sasl.oauthbearer.config drives; here that key alone decides.
            "enable.sasl.oauthbearer.unsecure.jwt" => {}
            "sasl.jaas.config" => {
                let jaas = gregor_security::JaasConfig::parse(v)
                    .map_err(|e| Error::config(key, e.to_string()))?;
                let module = jaas
                    .modules
                    .first()
                    .ok_or_else(|| Error::config(key, "no login module"))?;
                self.sasl_username = module.option("username").map(str::to_string);
                self.sasl_password = module.option("password").map(str::to_string);
                self.sasl_jaas_options = module.options.clone();
            }
            "acks" => {
                self.acks = match v {
                    "0" => Acks::None,
                    "1" => Acks::Leader,
                    "all" | "-1" => Acks::All,
                    _ => return Err(Error::config(key, format!("{v:?} is not 0, 1, all or -1"))),
                }
            }
            "linger.ms" => self.linger = parse_ms(key, v)?,
            "batch.size" => self.batch_size = positive_size(key, v)?,
            "buffer.memory" => self.buffer_memory = positive_size(key, v)?,
            "max.block.ms" => self.max_block = parse_ms(key, v)?,
            "max.request.size" => self.max_request_size = positive_size(key, v)?,
            "max.in.flight.requests.per.connection" => {
                self.max_in_flight = positive_size(key, v)?;
                if self.max_in_flight == 0 {
                    return Err(Error::config(key, "must be at least 1"));
                }
            }
            "compression.type" => {
                self.compression = Compression::from_name(v).ok_or_else(|| {
                    Error::config(key, format!("{v:?} is not none, gzip, snappy, lz4 or zstd"))
                })?
            }
            "retries" => {
                let n: i64 = parse_num(key, v)?;
                self.retries = u32::try_from(n.clamp(0, i64::from(i32::MAX))).unwrap_or(0);
            }
            "delivery.timeout.ms" => self.delivery_timeout = parse_ms(key, v)?,
            "enable.idempotence" => self.enable_idempotence = parse_bool(key, v)?,
            "partitioner.class" => {
                let short = v.rsplit('.').next().unwrap_or(v);
                self.partitioner = match short {
                    "" | "default" | "murmur2" | "DefaultPartitioner" => PartitionerKind::Default,
                    "uniform_sticky" | "UniformStickyPartitioner" => PartitionerKind::UniformSticky,
                    "round_robin" | "RoundRobinPartitioner" => PartitionerKind::RoundRobin,
                    _ => {
                        return Err(Error::config(
                            key,
                            format!(
                                "{v:?} is not default, uniform_sticky or round_robin \
                                 (a custom Partitioner is set with ProducerBuilder::partitioner)"
                            ),
                        ))
                    }
                }
            }
            "partitioner.ignore.keys" => self.partitioner_ignore_keys = parse_bool(key, v)?,
            "transactional.id" => {
                self.transactional_id = Some(v.to_string()).filter(|s| !s.is_empty())
            }
            "transaction.timeout.ms" => {
                self.transaction_timeout = parse_ms(key, v)?;
                if self.transaction_timeout.is_zero()
                    || self.transaction_timeout.as_millis() > i32::MAX as u128
                {
                    return Err(Error::config(
                        key,
                        format!("{v} is not in 1..={}", i32::MAX),
                    ));
                }
            }
            "group.id" => self.group_id = Some(v.to_string()).filter(|s| !s.is_empty()),
            "group.instance.id" => {
                self.group_instance_id = Some(v.to_string()).filter(|s| !s.is_empty())
            }
            "session.timeout.ms" => self.session_timeout = parse_ms(key, v)?,
            "heartbeat.interval.ms" => self.heartbeat_interval = parse_ms(key, v)?,
            "max.poll.interval.ms" => self.max_poll_interval = parse_ms(key, v)?,
            "max.poll.records" => {
                self.max_poll_records = positive_size(key, v)?;
                if self.max_poll_records == 0 {
                    return Err(Error::config(key, "must be at least 1"));
                }
            }
            "fetch.min.bytes" => self.fetch_min_bytes = parse_num(key, v)?,
            "fetch.max.wait.ms" => self.fetch_max_wait = parse_ms(key, v)?,
            "fetch.max.bytes" => self.fetch_max_bytes = parse_num(key, v)?,
            "max.partition.fetch.bytes" => self.max_partition_fetch_bytes = parse_num(key, v)?,
            "enable.auto.commit" => self.enable_auto_commit = parse_bool(key, v)?,
            "auto.commit.interval.ms" => self.auto_commit_interval = parse_ms(key, v)?,
            "auto.offset.reset" => {
                self.auto_offset_reset = match v {
                    "earliest" => OffsetReset::Earliest,
                    "latest" => OffsetReset::Latest,
                    "none" => OffsetReset::None,
                    _ => {
                        return Err(Error::config(
                            key,
                            format!("{v:?} is not earliest, latest or none"),
                        ))
                    }
                }
            }
            "isolation.level" => {
                self.isolation_level = match v {
                    "read_uncommitted" => IsolationLevel::ReadUncommitted,
                    "read_committed" => IsolationLevel::ReadCommitted,
                    _ => {
                        return Err(Error::config(
                            key,
                            format!("{v:?} is not read_uncommitted or read_committed"),
                        ))
                    }
                }
            }
            "partition.assignment.strategy" => {
                let mut list = Vec::new();
                for s in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    list.push(AssignorKind::parse(s).ok_or_else(|| {
                        Error::config(
                            key,
                            format!("{s:?} is not range, roundrobin or cooperative-sticky"),
                        )
                    })?);
                }
                if list.is_empty() {
                    return Err(Error::config(key, "no assignor given"));
                }
                self.assignment_strategy = list;
            }
            _ => return Err(Error::config(key, "unknown configuration key")),
        }
        if !self.explicit.iter().any(|k| k == key) {
            self.explicit.push(key.to_string());
        }
        Ok(self)
    }

    /// Whether `key` was set rather than left at its default.
    pub fn is_set(&self, key: &str) -> bool {
        self.explicit.iter().any(|k| k == key)
    }

    /// Checks the settings every client needs.
    pub(crate) fn validate_common(&self) -> Result<()> {
        if self.bootstrap_servers.is_empty() {
            return Err(Error::config("bootstrap.servers", "must be set"));
        }
        Ok(())
    }

    /// Resolves producer settings that depend on each other, as the Java
    /// client does: idempotence needs acks=all, retries > 0 and at most five
    /// requests in flight. If idempotence was asked for explicitly, a conflict
    /// is an error; if it is only the default, it is turned off instead.
    /// A `transactional.id` needs idempotence, so with one every conflict is
    /// an error, and so is `enable.idempotence=false`.
    pub(crate) fn resolve_producer(&mut self) -> Result<()> {
        self.validate_common()?;
        let transactional = self.transactional_id.is_some();
        if transactional && !self.enable_idempotence {
            return Err(Error::config(
                "enable.idempotence",
                "cannot be false when transactional.id is set \
                 (a transactional producer is idempotent)",
            ));
        }
        if self.enable_idempotence {
            let conflict = if self.acks != Acks::All {
                Some(("acks", "must be all when enable.idempotence=true"))
            } else if self.retries == 0 {
                Some((
                    "retries",
                    "must be greater than 0 when enable.idempotence=true",
                ))
            } else if self.max_in_flight > 5 {
                Some((
                    "max.in.flight.requests.per.connection",
                    "must be at most 5 when enable.idempotence=true",
                ))
            } else {
                None
            };
            if let Some((key, reason)) = conflict {
                if transactional {
                    return Err(Error::config(
                        key,
                        format!("{reason} (implied by transactional.id)"),
                    ));
                }
                if self.is_set("enable.idempotence") {
                    return Err(Error::config(key, reason));
                }
                self.enable_idempotence = false;
            }
        }
        // Java: delivery.timeout.ms >= linger.ms + request.timeout.ms.
        if self.delivery_timeout < self.linger + self.request_timeout {
            if self.is_set("delivery.timeout.ms") {
                return Err(Error::config(
                    "delivery.timeout.ms",
                    "must be at least linger.ms + request.timeout.ms",
                ));
            }
            self.delivery_timeout = self.linger + self.request_timeout;
        }
        Ok(())
    }

    pub(crate) fn validate_consumer(&self) -> Result<()> {
        self.validate_common()?;
        if self.heartbeat_interval >= self.session_timeout {
            return Err(Error::config(
                "heartbeat.interval.ms",
                "must be lower than session.timeout.ms",
            ));
        }
        if self.group_instance_id.is_some() && self.group_id.is_none() {
            return Err(Error::config("group.instance.id", "needs group.id"));
        }
        Ok(())
    }
}

/// Parses Java-properties text into `(key, value)` pairs, in order.
pub fn parse_properties(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut pending = String::new();
    for raw in text.lines() {
        let line = if pending.is_empty() {
            raw.trim_start()
        } else {
            raw.trim()
        };
        if pending.is_empty() && (line.is_empty() || line.starts_with('#') || line.starts_with('!'))
        {
            continue;
        }
        // An odd number of trailing backslashes continues the line.
        let trailing = line.chars().rev().take_while(|&c| c == '\\').count();
        if trailing % 2 == 1 {
            pending.push_str(&line[..line.len() - 1]);
            continue;
        }
        pending.push_str(line);
        let logical = std::mem::take(&mut pending);
        out.push(split_property(&logical));
    }
    if !pending.is_empty() {
        out.push(split_property(&pending));
    }
    out
}

/// Splits `key=value`, `key:value` or `key value` at the first unescaped separator.
fn split_property(line: &str) -> (String, String) {
    let mut key = String::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(n) = chars.next() {
                    key.push(n);
                }
            }
            '=' | ':' => break,
            c if c.is_whitespace() => {
                // `key   = value`: skip spaces and at most one separator.
                while chars.peek().is_some_and(|c| c.is_whitespace()) {
                    chars.next();
                }
                if matches!(chars.peek(), Some('=') | Some(':')) {
                    chars.next();
                }
                break;
            }
            c => key.push(c),
        }
    }
    let value: String = chars.collect();
    (key, unescape(value.trim_start()))
}

fn unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            match chars.next() {
                Some('n') => out.push('\n'),
                Some('t') => out.push('\t'),
                Some('r') => out.push('\r'),
                Some(o) => out.push(o),
                None => {}
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_kafka() {
        let c = ClientConfig::default();
        assert_eq!(c.acks, Acks::All);
        assert_eq!(c.batch_size, 16384);
        assert_eq!(c.linger, Duration::from_millis(5));
        assert_eq!(c.max_in_flight, 5);
        assert!(c.enable_idempotence);
        assert_eq!(c.max_poll_records, 500);
        assert_eq!(c.session_timeout, Duration::from_secs(45));
        assert_eq!(c.auto_offset_reset, OffsetReset::Latest);
        assert_eq!(
            c.assignment_strategy,
            vec![AssignorKind::Range, AssignorKind::CooperativeSticky]
        );
    }

    #[test]
    fn properties_text() {
        let text = "# comment\n! also\nbootstrap.servers = a:1, b:2\nclient.id:me\n\
                    acks all\nlinger.ms=10\ncompression.type=zstd\n\
                    partition.assignment.strategy=org.apache.kafka.clients.consumer.RoundRobinAssignor,\\\n  range\n";
        let c = ClientConfig::from_properties(text).unwrap();
        assert_eq!(c.bootstrap_servers, vec!["a:1", "b:2"]);
        assert_eq!(c.client_id, "me");
        assert_eq!(c.linger, Duration::from_millis(10));
        assert_eq!(c.compression, Compression::Zstd);
        assert_eq!(
            c.assignment_strategy,
            vec![AssignorKind::RoundRobin, AssignorKind::Range]
        );
        assert!(c.is_set("acks"));
        assert!(!c.is_set("batch.size"));
    }

    #[test]
    fn ssl_settings_in_both_spellings() {
        let c = ClientConfig::from_properties(
            "security.protocol=SASL_SSL\nssl.truststore.type=PEM\nssl.truststore.location=/ca.pem\n\
             ssl.keystore.location=/alice-keystore.pem\nssl.endpoint.identification.algorithm=\n",
        )
        .unwrap();
        assert!(c.ssl_enabled && c.sasl_enabled);
        assert_eq!(c.ssl.ca, Some(PemSource::File("/ca.pem".into())));
        assert_eq!(
            c.ssl.certificate,
            Some(PemSource::File("/alice-keystore.pem".into()))
        );
        assert_eq!(c.ssl.key, None);
        assert!(!c.ssl.verify_hostname);
        let c = ClientConfig::from_properties(
            "security.protocol=ssl\nssl.ca.location=/ca.pem\nssl.certificate.location=/a.pem\nssl.key.location=/a.key\n",
        )
        .unwrap();
        assert!(c.ssl_enabled && !c.sasl_enabled && c.ssl.verify_hostname);
        assert_eq!(c.ssl.key, Some(PemSource::File("/a.key".into())));
        assert!(ClientConfig::new().set("security.protocol", "TLS").is_err());
        assert!(ClientConfig::new()
            .set("ssl.endpoint.identification.algorithm", "ldap")
            .is_err());
    }

    #[test]
    fn unknown_and_bad_values_are_errors() {
        let e = ClientConfig::from_map([("enable.idempotency", "true")]).unwrap_err();
        assert!(e.to_string().contains("enable.idempotency"), "{e}");
        assert!(ClientConfig::from_map([("acks", "2")]).is_err());
        assert!(ClientConfig::from_map([("linger.ms", "-1")]).is_err());
        assert!(ClientConfig::from_map([("enable.auto.commit", "yes")]).is_err());
        assert!(ClientConfig::from_map([("compression.type", "brotli")]).is_err());
    }

    #[test]
    fn idempotence_conflicts() {
        // Default idempotence quietly yields to acks=1 ...
        let mut c = ClientConfig::from_map([("bootstrap.servers", "x:1"), ("acks", "1")]).unwrap();
        c.resolve_producer().unwrap();
        assert!(!c.enable_idempotence);
        // ... but an explicit request is an error.
        let mut c = ClientConfig::from_map([
            ("bootstrap.servers", "x:1"),
            ("acks", "1"),
            ("enable.idempotence", "true"),
        ])
        .unwrap();
        assert!(c.resolve_producer().is_err());
        let mut c = ClientConfig::from_map([
            ("bootstrap.servers", "x:1"),
            ("max.in.flight.requests.per.connection", "6"),
        ])
        .unwrap();
        c.resolve_producer().unwrap();
        assert!(!c.enable_idempotence);
    }

    #[test]
    fn transactional_id_requires_idempotence() {
        let base = [("bootstrap.servers", "x:1"), ("transactional.id", "tx-1")];
        let mut c = ClientConfig::from_map(base).unwrap();
        assert_eq!(c.transaction_timeout, Duration::from_secs(60));
        c.resolve_producer().unwrap();
        assert!(c.enable_idempotence);
        assert_eq!(c.transactional_id.as_deref(), Some("tx-1"));
        // Explicitly off: an error, not a silent downgrade.
        let mut c = ClientConfig::from_map(base)
            .unwrap()
            .with("enable.idempotence", "false")
            .unwrap();
        let e = c.resolve_producer().unwrap_err();
        assert!(e.to_string().contains("enable.idempotence"), "{e}");
        // A conflict that would quietly turn default idempotence off is an
        // error once a transactional.id needs it.
        let mut c = ClientConfig::from_map(base)
            .unwrap()
            .with("acks", "1")
            .unwrap();
        let e = c.resolve_producer().unwrap_err();
        assert!(e.to_string().contains("acks"), "{e}");
        // An empty id is no id; the timeout is validated.
        let c = ClientConfig::from_map([("transactional.id", "")]).unwrap();
        assert!(c.transactional_id.is_none());
        let c = ClientConfig::from_map([("transaction.timeout.ms", "900000")]).unwrap();
        assert_eq!(c.transaction_timeout, Duration::from_secs(900));
        assert!(ClientConfig::from_map([("transaction.timeout.ms", "0")]).is_err());
        assert!(ClientConfig::from_map([("isolation.level", "read_committed")]).is_ok());
        assert_eq!(
            ClientConfig::default().isolation_level,
            IsolationLevel::ReadUncommitted
        );
    }
}
