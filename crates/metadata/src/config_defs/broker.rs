//! Kafka's broker config vocabulary: every name `server.properties` may hold,
//! with its type, default, validation and dynamic update mode, and the rules
//! of Kafka's `DynamicBrokerConfig` for changing broker configs at run time.
//!
//! The tables live in `broker_server`, `broker_security` and `broker_groups`
//! (by area); [`GREGOR_EFFECTIVE`] names the configs Gregor acts on. Every
//! other known name is accepted (so a Kafka `server.properties` starts
//! Gregor unchanged) and reported as having no effect.

use std::collections::{BTreeMap, BTreeSet};

use super::{validate, ConfigType, InvalidConfig, Validator};

/// How a broker config may change at run time (Kafka's "Update Mode").
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UpdateMode {
    /// Only in `server.properties`; a restart applies it.
    ReadOnly,
    /// Dynamically, only for one broker (resource name = node id).
    PerBroker,
    /// Dynamically, per broker or as the cluster-wide default (resource name "").
    ClusterWide,
}

impl UpdateMode {
    /// Kafka's documentation name.
    pub fn name(self) -> &'static str {
        match self {
            UpdateMode::ReadOnly => "read-only",
            UpdateMode::PerBroker => "per-broker",
            UpdateMode::ClusterWide => "cluster-wide",
        }
    }
}

/// One broker config.
#[derive(Debug, Clone, Copy)]
pub struct BrokerConfigDef {
    pub name: &'static str,
    pub ty: ConfigType,
    /// Kafka's default as DescribeConfigs prints it; `None` is Kafka's null.
    pub default: Option<&'static str>,
    pub validator: Validator,
    pub mode: UpdateMode,
    pub doc: &'static str,
}

impl BrokerConfigDef {
    /// Whether Gregor acts on this config (see [`GREGOR_EFFECTIVE`]).
    pub fn effective(&self) -> bool {
        GREGOR_EFFECTIVE.binary_search(&self.name).is_ok()
    }

    /// The documentation DescribeConfigs returns: the doc, plus a note when
    /// Gregor only accepts the config.
    pub fn documentation(&self) -> String {
        if self.effective() {
            self.doc.to_string()
        } else {
            format!("{} {NO_EFFECT_NOTE}", self.doc)
        }
    }

    pub fn validate(&self, name: &str, value: &str) -> Result<(), InvalidConfig> {
        validate(name, self.ty, self.validator, value)
    }
}

/// Appended to the documentation of configs Gregor does not act on.
pub const NO_EFFECT_NOTE: &str =
    "(Gregor accepts this Kafka config for compatibility; it has no effect in Gregor.)";

pub(super) const fn ro(
    name: &'static str,
    ty: ConfigType,
    default: Option<&'static str>,
    validator: Validator,
    doc: &'static str,
) -> BrokerConfigDef {
    BrokerConfigDef {
        name,
        ty,
        default,
        validator,
        mode: UpdateMode::ReadOnly,
        doc,
    }
}

pub(super) const fn pb(
    name: &'static str,
    ty: ConfigType,
    default: Option<&'static str>,
    validator: Validator,
    doc: &'static str,
) -> BrokerConfigDef {
    BrokerConfigDef {
        mode: UpdateMode::PerBroker,
        ..ro(name, ty, default, validator, doc)
    }
}

pub(super) const fn cw(
    name: &'static str,
    ty: ConfigType,
    default: Option<&'static str>,
    validator: Validator,
    doc: &'static str,
) -> BrokerConfigDef {
    BrokerConfigDef {
        mode: UpdateMode::ClusterWide,
        ..ro(name, ty, default, validator, doc)
    }
}

/// The broker configs Gregor acts on, in name order (binary-searched).
pub static GREGOR_EFFECTIVE: &[&str] = &[
    "advertised.listeners",
    "allow.everyone.if.no.acl.found",
    "authorizer.class.name",
    "auto.create.topics.enable",
    "broker.id",
    "broker.rack",
    "compression.type",
    "connection.failed.authentication.delay.ms",
    "connections.max.idle.ms",
    "connections.max.reauth.ms",
    "controller.listener.names",
    "controller.max.records.per.batch",
    // They decide whether a node formats its own dirs at start.
    "controller.quorum.bootstrap.servers",
    "controller.quorum.voters",
    "default.replication.factor",
    "delete.topic.enable",
    "gregor.log.max.open.segments",
    "gregor.metrics.partition.level",
    "gregor.request.log.threshold.ms",
    "gregor.ssl.keystore.reload.interval.ms",
    "group.consumer.assignors",
    "group.consumer.heartbeat.interval.ms",
    "group.consumer.max.heartbeat.interval.ms",
    "group.consumer.max.session.timeout.ms",
    "group.consumer.max.size",
    "group.consumer.min.heartbeat.interval.ms",
    "group.consumer.min.session.timeout.ms",
    "group.consumer.session.timeout.ms",
    "group.coordinator.rebalance.protocols",
    "group.initial.rebalance.delay.ms",
    "group.max.session.timeout.ms",
    "group.max.size",
    "group.min.session.timeout.ms",
    "http.authentication.method",
    "http.listeners",
    "inter.broker.listener.name",
    "listener.security.protocol.map",
    "listeners",
    "log.cleaner.backoff.ms",
    "log.cleaner.dedupe.buffer.size",
    "log.cleaner.delete.retention.ms",
    "log.cleaner.enable",
    "log.cleaner.io.buffer.load.factor",
    "log.cleaner.io.buffer.size",
    "log.cleaner.io.max.bytes.per.second",
    "log.cleaner.max.compaction.lag.ms",
    "log.cleaner.min.cleanable.ratio",
    "log.cleaner.min.compaction.lag.ms",
    "log.cleaner.threads",
    "log.cleanup.policy",
    "log.dir",
    "log.dirs",
    "log.flush.interval.messages",
    "log.flush.interval.ms",
    "log.flush.offset.checkpoint.interval.ms",
    "log.index.interval.bytes",
    "log.index.size.max.bytes",
    "log.message.timestamp.after.max.ms",
    "log.message.timestamp.before.max.ms",
    "log.message.timestamp.type",
    "log.preallocate",
    "log.retention.bytes",
    "log.retention.check.interval.ms",
    "log.retention.hours",
    "log.retention.minutes",
    "log.retention.ms",
    "log.roll.hours",
    "log.roll.jitter.hours",
    "log.roll.jitter.ms",
    "log.roll.ms",
    "log.segment.bytes",
    "log.segment.delete.delay.ms",
    "max.connections",
    "max.connections.per.ip",
    "max.connections.per.ip.overrides",
    "max.incremental.fetch.session.cache.slots",
    "message.max.bytes",
    "metadata.log.dir",
    "metadata.log.max.record.bytes.between.snapshots",
    "min.insync.replicas",
    "node.id",
    "num.io.threads",
    "num.partitions",
    "num.recovery.threads.per.data.dir",
    "offset.metadata.max.bytes",
    "offsets.retention.minutes",
    "offsets.topic.num.partitions",
    "offsets.topic.replication.factor",
    "process.roles",
    "queued.max.request.bytes",
    "quota.window.num",
    "quota.window.size.seconds",
    "sasl.enabled.mechanisms",
    "sasl.jaas.config",
    "sasl.mechanism.controller.protocol",
    "sasl.mechanism.inter.broker.protocol",
    "sasl.oauthbearer.clock.skew.seconds",
    "sasl.oauthbearer.expected.audience",
    "sasl.oauthbearer.expected.issuer",
    "sasl.oauthbearer.jwks.endpoint.refresh.ms",
    "sasl.oauthbearer.jwks.endpoint.retry.backoff.max.ms",
    "sasl.oauthbearer.jwks.endpoint.retry.backoff.ms",
    "sasl.oauthbearer.jwks.endpoint.url",
    "sasl.oauthbearer.scope.claim.name",
    "sasl.oauthbearer.sub.claim.name",
    "sasl.server.callback.handler.class",
    "security.inter.broker.protocol",
    "socket.request.max.bytes",
    "ssl.allow.dn.changes",
    "ssl.allow.san.changes",
    "ssl.cipher.suites",
    "ssl.client.auth",
    "ssl.enabled.protocols",
    "ssl.endpoint.identification.algorithm",
    "ssl.key.password",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.keystore.location",
    "ssl.keystore.type",
    "ssl.principal.mapping.rules",
    "ssl.truststore.certificates",
    "ssl.truststore.location",
    "ssl.truststore.type",
    "super.users",
    "transaction.abort.timed.out.transaction.cleanup.interval.ms",
    "transaction.max.timeout.ms",
    "transaction.remove.expired.transaction.cleanup.interval.ms",
    "transaction.state.log.min.isr",
    "transaction.state.log.num.partitions",
    "transaction.state.log.replication.factor",
    "transaction.state.log.segment.bytes",
    "transactional.id.expiration.ms",
];

/// Every broker config table, by area.
fn tables() -> impl Iterator<Item = &'static BrokerConfigDef> {
    super::broker_server::SERVER_CONFIGS
        .iter()
        .chain(super::broker_security::SECURITY_CONFIGS.iter())
        .chain(super::broker_groups::GROUP_COORDINATOR_CONFIGS.iter())
}

/// Every broker config Kafka 4.1 has, in name order.
pub fn broker_configs() -> &'static [BrokerConfigDef] {
    static ALL: std::sync::OnceLock<Vec<BrokerConfigDef>> = std::sync::OnceLock::new();
    ALL.get_or_init(|| {
        let mut all: Vec<BrokerConfigDef> = tables().copied().collect();
        all.sort_by_key(|d| d.name);
        all
    })
}

/// The definition of a broker config by its plain name.
pub fn broker_config(name: &str) -> Option<&'static BrokerConfigDef> {
    let all = broker_configs();
    all.binary_search_by_key(&name, |d| d.name)
        .ok()
        .map(|i| &all[i])
}

/// Prefix of Kafka's per-listener overrides: `listener.name.<listener>.<config>`.
pub const LISTENER_PREFIX: &str = "listener.name.";

/// Prefix of the HTTP listener's own `ssl.*` settings (Gregor's keys).
pub const HTTP_PREFIX: &str = "http.";

/// SASL configs a listener override names with the mechanism in between:
/// `listener.name.<listener>.<mechanism>.<config>` (Kafka's ListenerMechanismConfigs).
const LISTENER_MECHANISM_CONFIGS: &[&str] = &[
    "connections.max.reauth.ms",
    "sasl.jaas.config",
    "sasl.login.callback.handler.class",
    "sasl.login.class",
    "sasl.server.callback.handler.class",
];

/// Key prefixes of plugin settings Kafka passes through (remote storage
/// managers, config providers); any key under them is accepted.
const PLUGIN_PREFIXES: &[&str] = &["config.providers.", "rlmm.config.", "rsm.config."];

/// `listener.name.<listener>.<rest>` → `<rest>`.
pub fn strip_listener_prefix(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(LISTENER_PREFIX)?;
    let (listener, base) = rest.split_once('.')?;
    (!listener.is_empty() && !base.is_empty()).then_some(base)
}

/// What a key in `server.properties` (or a dynamic broker config) names.
#[derive(Debug, Clone, Copy)]
pub enum BrokerKey {
    /// A broker config by its plain name.
    Plain(&'static BrokerConfigDef),
    /// `listener.name.<listener>.<config>` (or `.<mechanism>.<config>`).
    Listener(&'static BrokerConfigDef),
    /// A setting of a plugin (`rsm.config.*`, `config.providers.*`, ...).
    Plugin,
}

impl BrokerKey {
    /// The config the key sets, if it is not a plugin setting.
    pub fn def(self) -> Option<&'static BrokerConfigDef> {
        match self {
            BrokerKey::Plain(d) | BrokerKey::Listener(d) => Some(d),
            BrokerKey::Plugin => None,
        }
    }
}

/// Resolves a broker key, or `None` if Kafka has no such config.
pub fn broker_key(name: &str) -> Option<BrokerKey> {
    if let Some(d) = broker_config(name) {
        return Some(BrokerKey::Plain(d));
    }
    // The HTTP listener's TLS settings (`http.ssl.keystore.location`): a
    // listener of its own, under Gregor's `http.` prefix.
    if let Some(base) = name
        .strip_prefix(HTTP_PREFIX)
        .filter(|b| b.starts_with("ssl."))
    {
        return broker_config(base).map(BrokerKey::Listener);
    }
    if let Some(base) = strip_listener_prefix(name) {
        if let Some(d) = broker_config(base) {
            return Some(BrokerKey::Listener(d));
        }
        if let Some((_mechanism, config)) = base.split_once('.') {
            if LISTENER_MECHANISM_CONFIGS.contains(&config) {
                return broker_config(config).map(BrokerKey::Listener);
            }
        }
        return None;
    }
    PLUGIN_PREFIXES
        .iter()
        .any(|p| name.len() > p.len() && name.starts_with(p))
        .then_some(BrokerKey::Plugin)
}

/// Levenshtein distance (for suggestions; names are short).
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let subst = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = subst.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// The known broker config closest to an unknown name, if one is close
/// enough to be a likely misspelling (at most a third of the name differs).
pub fn suggest_broker_config(name: &str) -> Option<String> {
    let (prefix, base) = match strip_listener_prefix(name) {
        Some(base) => (&name[..name.len() - base.len()], base),
        None => ("", name),
    };
    let (best, distance) = broker_configs()
        .iter()
        .map(|d| (d.name, edit_distance(base, d.name)))
        .min_by_key(|(n, dist)| (*dist, *n))?;
    if distance == 0 || distance > (base.chars().count() / 3).max(1) {
        return None;
    }
    // A listener override keeps its prefix: suggest the whole corrected key.
    Some(format!("{prefix}{best}"))
}

/// Why a dynamic broker config change was refused. Kafka answers all of
/// these with INVALID_REQUEST (its ConfigAdminManager wraps the
/// ConfigException of DynamicBrokerConfig.validate), with these messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DynamicBrokerConfigError {
    #[error("Cannot update these configs dynamically: {}", scala_set(.0))]
    ReadOnly(Vec<String>),
    #[error("These security configs can be dynamically updated only per-listener using the listener prefix: {}", scala_set(.0))]
    NeedsListenerPrefix(Vec<String>),
    #[error(transparent)]
    Invalid(#[from] InvalidConfig),
    #[error("Cannot update these configs at default cluster level, broker id must be specified: {}", scala_set(.0))]
    PerBrokerOnly(Vec<String>),
}

/// Formats names as Scala prints a `Set` (Kafka's messages show it that way).
fn scala_set(names: &[String]) -> String {
    let kind = if names.len() > 4 { "HashSet" } else { "Set" };
    format!("{kind}({})", names.join(", "))
}

/// SSL keystore/truststore configs that may change only per listener
/// (Kafka's `SslConfigs.RECONFIGURABLE_CONFIGS`).
const SSL_RECONFIGURABLE: &[&str] = &[
    "ssl.key.password",
    "ssl.keystore.certificate.chain",
    "ssl.keystore.key",
    "ssl.keystore.location",
    "ssl.keystore.password",
    "ssl.keystore.type",
    "ssl.truststore.certificates",
    "ssl.truststore.location",
    "ssl.truststore.password",
    "ssl.truststore.type",
];

/// Listener configs that are cluster-wide even under a listener prefix.
const CLUSTER_LEVEL_LISTENER_CONFIGS: &[&str] = &[
    "max.connection.creation.rate",
    "max.connections",
    "num.network.threads",
];

/// Checks the full set of dynamic configs a broker resource would have after
/// a change, as Kafka's `DynamicBrokerConfig.validateConfigs` does:
/// read-only configs are refused, SSL stores need a listener prefix, values
/// of dynamic configs must parse, and per-broker configs cannot be set as the
/// cluster default (`per_broker == false`). Names Kafka does not know are
/// custom configs and are accepted, as Kafka does.
pub fn validate_dynamic_broker_configs(
    props: &BTreeMap<String, String>,
    per_broker: bool,
) -> Result<(), DynamicBrokerConfigError> {
    let read_only: Vec<String> = props
        .keys()
        .filter(|k| broker_config(k).is_some_and(|d| d.mode == UpdateMode::ReadOnly))
        .cloned()
        .collect();
    if !read_only.is_empty() {
        return Err(DynamicBrokerConfigError::ReadOnly(read_only));
    }
    let unprefixed: Vec<String> = SSL_RECONFIGURABLE
        .iter()
        .filter(|n| props.contains_key(**n))
        .map(|n| n.to_string())
        .collect();
    if !unprefixed.is_empty() {
        return Err(DynamicBrokerConfigError::NeedsListenerPrefix(unprefixed));
    }
    for (k, v) in props {
        let base = strip_listener_prefix(k).unwrap_or(k);
        // Kafka validates the values of dynamic configs only; others under a
        // listener prefix are custom settings of that listener.
        if let Some(d) = broker_config(base).filter(|d| d.mode != UpdateMode::ReadOnly) {
            d.validate(base, v)?;
        }
    }
    if !per_broker {
        let per_broker_names: Vec<String> = props
            .keys()
            .filter(|k| match strip_listener_prefix(k) {
                Some(base) => !CLUSTER_LEVEL_LISTENER_CONFIGS.contains(&base),
                None => broker_config(k).is_some_and(|d| d.mode == UpdateMode::PerBroker),
            })
            .cloned()
            .collect();
        if !per_broker_names.is_empty() {
            return Err(DynamicBrokerConfigError::PerBrokerOnly(per_broker_names));
        }
    }
    Ok(())
}

/// Why a static broker config (`server.properties`, `--override`) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StaticBrokerConfigError {
    #[error("unknown configuration '{name}'{}", .suggestion.as_ref().map(|s| format!("; did you mean '{s}'?")).unwrap_or_default())]
    Unknown {
        name: String,
        suggestion: Option<String>,
    },
    #[error(transparent)]
    Invalid(#[from] InvalidConfig),
}

/// Checks one static broker config: the name must be one Kafka has (plain,
/// listener-prefixed or a plugin setting) and the value must parse.
pub fn validate_static_broker_config(
    name: &str,
    value: &str,
) -> Result<(), StaticBrokerConfigError> {
    let key = broker_key(name).ok_or_else(|| StaticBrokerConfigError::Unknown {
        name: name.to_string(),
        suggestion: suggest_broker_config(name),
    })?;
    if let Some(d) = key.def() {
        d.validate(name, value)?;
    }
    Ok(())
}

/// The keys among `names` that Gregor accepts but does not act on (plugin
/// settings and listener overrides included), in name order.
pub fn keys_without_effect<'a>(names: impl IntoIterator<Item = &'a String>) -> Vec<&'a str> {
    let mut out: BTreeSet<&str> = BTreeSet::new();
    for n in names {
        match broker_key(n) {
            Some(BrokerKey::Plain(d)) if d.effective() => {}
            // A listener's own TLS settings (`listener.name.ssl.ssl.keystore.location`).
            Some(BrokerKey::Listener(d)) if d.effective() && d.name.starts_with("ssl.") => {}
            // A SASL listener's mechanisms and session length, its PLAIN users
            // (`listener.name.<l>.plain.sasl.jaas.config`), OAUTHBEARER's
            // validator settings, and the login the node uses when it
            // connects to the listener (any mechanism's `sasl.jaas.config`).
            Some(BrokerKey::Listener(d))
                if matches!(
                    d.name,
                    "sasl.enabled.mechanisms" | "connections.max.reauth.ms" | "sasl.jaas.config"
                ) || d.name.starts_with("sasl.oauthbearer.")
                    || n.ends_with(".sasl.jaas.config")
                    || n.ends_with(".oauthbearer.sasl.server.callback.handler.class") => {}
            Some(_) => {
                out.insert(n.as_str());
            }
            None => {}
        }
    }
    out.into_iter().collect()
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
    fn every_default_parses_and_names_are_unique() {
        let all = broker_configs();
        assert!(all.len() > 300, "only {} broker configs", all.len());
        for w in all.windows(2) {
            assert_ne!(w[0].name, w[1].name, "duplicate broker config");
        }
        for d in all {
            if let Some(v) = d.default {
                d.validate(d.name, v)
                    .unwrap_or_else(|e| panic!("default of {}: {e}", d.name));
            }
            assert!(!d.doc.is_empty(), "{} has no doc", d.name);
        }
    }

    #[test]
    fn effective_list_is_sorted_and_known() {
        for w in GREGOR_EFFECTIVE.windows(2) {
            assert!(w[0] < w[1], "{} before {}", w[0], w[1]);
        }
        for n in GREGOR_EFFECTIVE {
            assert!(broker_config(n).is_some(), "{n} is not a broker config");
        }
    }

    #[test]
    fn topic_config_synonyms_are_broker_configs() {
        for t in super::super::TOPIC_CONFIGS {
            for s in t.synonyms {
                let d = broker_config(s.name)
                    .unwrap_or_else(|| panic!("synonym {} of {} unknown", s.name, t.name));
                assert_eq!(d.mode, UpdateMode::ClusterWide, "{}", s.name);
            }
        }
    }

    #[test]
    fn kafka_python_and_librdkafka_keys_are_known() {
        for k in [
            "offsets.commit.timeout.ms",
            "replica.lag.time.max.ms",
            "replica.socket.timeout.ms",
            "security.inter.broker.protocol",
            "authorizer.class.name",
            "allow.everyone.if.no.acl.found",
            "sasl.enabled.mechanisms",
            "sasl.mechanism.inter.broker.protocol",
            "ssl.keystore.location",
            "ssl.truststore.password",
            "sasl.kerberos.min.time.before.relogin",
            "share.coordinator.state.topic.replication.factor",
            "group.consumer.min.session.timeout.ms",
            "listener.name.plaintext.sasl.enabled.mechanisms",
            "listener.name.sasl_plaintext.plain.sasl.jaas.config",
            "rsm.config.dir",
        ] {
            assert!(broker_key(k).is_some(), "{k} refused");
        }
        for k in [
            "log.retention.hour",
            "listener.name.x.nope",
            "listener.name..a",
            "rsm.config.",
        ] {
            assert!(broker_key(k).is_none(), "{k} accepted");
        }
    }

    #[test]
    fn http_listener_keys() {
        // The HTTP listener's TLS settings are Kafka's ssl.* under `http.`.
        for (k, v) in [
            ("http.ssl.keystore.location", "/k.pem"),
            ("http.ssl.client.auth", "required"),
            ("http.ssl.truststore.location", "/ca.pem"),
            ("http.authentication.method", "basic,mtls"),
            ("http.listeners", "https://0.0.0.0:8443"),
        ] {
            let checked = validate_static_broker_config(k, v);
            assert!(checked.is_ok(), "{k}: {checked:?}");
        }
        assert!(broker_key("http.sasl.jaas.config").is_none());
        assert!(broker_key("http.ssl.nonsense").is_none());
        assert!(keys_without_effect(&["http.ssl.keystore.location".to_string()]).is_empty());
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            suggest_broker_config("log.retention.hour").as_deref(),
            Some("log.retention.hours")
        );
        assert_eq!(
            suggest_broker_config("offsets.comit.timeout.ms").as_deref(),
            Some("offsets.commit.timeout.ms")
        );
        assert_eq!(
            suggest_broker_config("listener.name.ext.ssl.keystore.locaton").as_deref(),
            Some("listener.name.ext.ssl.keystore.location")
        );
        assert_eq!(suggest_broker_config("completely.unrelated.thing"), None);
        let e = validate_static_broker_config("log.retention.hour", "1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "unknown configuration 'log.retention.hour'; did you mean 'log.retention.hours'?"
        );
        assert!(validate_static_broker_config("num.network.threads", "x").is_err());
        assert!(validate_static_broker_config("num.network.threads", "4").is_ok());
    }

    #[test]
    fn dynamic_rules_follow_kafka() {
        // Per-broker SASL config: fine on a broker, refused as the cluster default.
        let p = props(&[("sasl.kerberos.min.time.before.relogin", "58000")]);
        assert_eq!(validate_dynamic_broker_configs(&p, true), Ok(()));
        assert_eq!(
            validate_dynamic_broker_configs(&p, false).unwrap_err().to_string(),
            "Cannot update these configs at default cluster level, broker id must be specified: Set(sasl.kerberos.min.time.before.relogin)"
        );
        // Read-only.
        let p = props(&[("node.id", "3"), ("log.dirs", "/x")]);
        assert_eq!(
            validate_dynamic_broker_configs(&p, true)
                .unwrap_err()
                .to_string(),
            "Cannot update these configs dynamically: Set(log.dirs, node.id)"
        );
        // SSL stores only per listener.
        let p = props(&[("ssl.keystore.location", "/k")]);
        assert!(matches!(
            validate_dynamic_broker_configs(&p, true),
            Err(DynamicBrokerConfigError::NeedsListenerPrefix(_))
        ));
        let p = props(&[("listener.name.external.ssl.keystore.location", "/k")]);
        assert_eq!(validate_dynamic_broker_configs(&p, true), Ok(()));
        assert!(validate_dynamic_broker_configs(&p, false).is_err());
        // Values of dynamic configs are checked; cluster-wide ones work at both levels.
        let p = props(&[("log.retention.ms", "abc")]);
        assert!(matches!(
            validate_dynamic_broker_configs(&p, false),
            Err(DynamicBrokerConfigError::Invalid(_))
        ));
        let p = props(&[
            ("log.retention.ms", "1000"),
            ("leader.replication.throttled.rate", "10"),
        ]);
        assert_eq!(validate_dynamic_broker_configs(&p, false), Ok(()));
        // Custom names are accepted, as Kafka does.
        let p = props(&[("my.plugin.setting", "1")]);
        assert_eq!(validate_dynamic_broker_configs(&p, true), Ok(()));
    }

    #[test]
    fn no_effect_keys() {
        let names: Vec<String> = [
            "offsets.commit.timeout.ms",
            "num.partitions",
            "rsm.config.x",
            "nope",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(
            keys_without_effect(&names),
            vec!["offsets.commit.timeout.ms", "rsm.config.x"]
        );
        let d = broker_config("offsets.commit.timeout.ms").unwrap();
        assert!(d.documentation().ends_with(NO_EFFECT_NOTE));
        assert!(!broker_config("num.partitions")
            .unwrap()
            .documentation()
            .contains("Gregor accepts"));
    }
}
