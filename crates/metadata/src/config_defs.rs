//! Kafka's configuration names, types, defaults and validation, for topics
//! and brokers, and the precedence that resolves a topic's effective value:
//!
//! 1. the topic's own override (`DYNAMIC_TOPIC_CONFIG`),
//! 2. a dynamic config of this broker (`DYNAMIC_BROKER_CONFIG`),
//! 3. the cluster-wide dynamic broker default (`DYNAMIC_DEFAULT_BROKER_CONFIG`),
//! 4. `server.properties` / `--override` (`STATIC_BROKER_CONFIG`), through the
//!    broker synonyms in order (`log.retention.ms` before `log.retention.minutes`
//!    before `log.retention.hours`),
//! 5. Kafka's default (`DEFAULT_CONFIG`).
//!
//! # Layout
//!
//! - this file: the shared types, validation, and the topic configs with
//!   their resolution.
//! - `broker`: the broker config vocabulary (lookup, listener prefixes,
//!   suggestions for misspelt names, which configs Gregor acts on) and
//!   Kafka's rules for dynamic broker configs; the tables are in
//!   `broker_server`, `broker_security` and `broker_groups`.
//! - `group`: per-group configs (ConfigResource GROUP).

use std::collections::BTreeMap;

mod broker;
mod broker_groups;
mod broker_security;
mod broker_server;
mod group;

pub use broker::{
    broker_config, broker_configs, broker_key, keys_without_effect, strip_listener_prefix,
    suggest_broker_config, validate_dynamic_broker_configs, validate_static_broker_config,
    BrokerConfigDef, BrokerKey, DynamicBrokerConfigError, StaticBrokerConfigError, UpdateMode,
    GREGOR_EFFECTIVE, HTTP_PREFIX, LISTENER_PREFIX, NO_EFFECT_NOTE,
};
pub use group::{
    group_config, resolve_group_configs, validate_group_configs, GroupConfigDef, GroupConfigError,
    GroupDefault, ResolvedGroupConfig, CONSUMER_HEARTBEAT_INTERVAL_MS, CONSUMER_SESSION_TIMEOUT_MS,
    GROUP_CONFIGS,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigType {
    Boolean,
    String,
    Int,
    Short,
    Long,
    Double,
    List,
    Class,
    Password,
}

impl ConfigType {
    /// DescribeConfigs v3+ `config_type` codes.
    pub fn code(self) -> i8 {
        match self {
            ConfigType::Boolean => 1,
            ConfigType::String => 2,
            ConfigType::Int => 3,
            ConfigType::Short => 4,
            ConfigType::Long => 5,
            ConfigType::Double => 6,
            ConfigType::List => 7,
            ConfigType::Class => 8,
            ConfigType::Password => 9,
        }
    }
}

#[derive(Debug, Clone, Copy)]
pub enum Validator {
    None,
    /// Inclusive range for numeric types.
    AtLeast(i64),
    Between(i64, i64),
    DoubleBetween(f64, f64),
    OneOf(&'static [&'static str]),
    /// Every list element one of these.
    ListOf(&'static [&'static str]),
}

/// Where a value came from (DescribeConfigs `config_source`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigSource {
    DynamicTopic = 1,
    DynamicBroker = 2,
    DynamicDefaultBroker = 3,
    StaticBroker = 4,
    Default = 5,
    /// Set on a group (ConfigResource GROUP).
    GroupConfig = 8,
}

/// A broker synonym of a topic config, with the factor converting its unit
/// to the topic config's (hours → ms = 3_600_000).
#[derive(Debug, Clone, Copy)]
pub struct Synonym {
    pub name: &'static str,
    pub factor: i64,
}

const fn syn(name: &'static str) -> Synonym {
    Synonym { name, factor: 1 }
}

#[derive(Debug, Clone, Copy)]
pub struct ConfigDef {
    pub name: &'static str,
    pub ty: ConfigType,
    pub default: Option<&'static str>,
    pub validator: Validator,
    /// Broker configs that supply this topic config's default, in precedence order.
    pub synonyms: &'static [Synonym],
    pub doc: &'static str,
}

const fn def(
    name: &'static str,
    ty: ConfigType,
    default: Option<&'static str>,
    validator: Validator,
    synonyms: &'static [Synonym],
    doc: &'static str,
) -> ConfigDef {
    ConfigDef {
        name,
        ty,
        default,
        validator,
        synonyms,
        doc,
    }
}

use ConfigType as T;
use Validator as V;

pub(crate) const I64_MAX: &str = "9223372036854775807";
pub(crate) const CODECS: &[&str] = &["uncompressed", "zstd", "lz4", "snappy", "gzip", "producer"];

/// Topic-level configs (Kafka 4.x), in name order.
pub static TOPIC_CONFIGS: &[ConfigDef] = &[
    def(
        "cleanup.policy",
        T::List,
        Some("delete"),
        V::ListOf(&["delete", "compact"]),
        &[syn("log.cleanup.policy")],
        "The retention policy: delete, compact or both.",
    ),
    def(
        "compression.gzip.level",
        T::Int,
        Some("-1"),
        V::Between(-1, 9),
        &[syn("compression.gzip.level")],
        "Compression level for gzip.",
    ),
    def(
        "compression.lz4.level",
        T::Int,
        Some("9"),
        V::Between(1, 17),
        &[syn("compression.lz4.level")],
        "Compression level for lz4.",
    ),
    def(
        "compression.type",
        T::String,
        Some("producer"),
        V::OneOf(CODECS),
        &[syn("compression.type")],
        "Final compression type for the topic; 'producer' keeps the producer's codec.",
    ),
    def(
        "compression.zstd.level",
        T::Int,
        Some("3"),
        V::Between(-131072, 22),
        &[syn("compression.zstd.level")],
        "Compression level for zstd.",
    ),
    def(
        "delete.retention.ms",
        T::Long,
        Some("86400000"),
        V::AtLeast(0),
        &[syn("log.cleaner.delete.retention.ms")],
        "How long delete tombstones are retained on compacted topics.",
    ),
    def(
        "file.delete.delay.ms",
        T::Long,
        Some("60000"),
        V::AtLeast(0),
        &[syn("log.segment.delete.delay.ms")],
        "Time to wait before deleting a file from the filesystem.",
    ),
    def(
        "flush.messages",
        T::Long,
        Some(I64_MAX),
        V::AtLeast(1),
        &[syn("log.flush.interval.messages")],
        "Messages accumulated before an fsync.",
    ),
    def(
        "flush.ms",
        T::Long,
        Some(I64_MAX),
        V::AtLeast(0),
        &[syn("log.flush.interval.ms")],
        "Time before an fsync.",
    ),
    def(
        "follower.replication.throttled.replicas",
        T::List,
        Some(""),
        V::None,
        &[],
        "Replicas throttled on the follower side.",
    ),
    def(
        "index.interval.bytes",
        T::Int,
        Some("4096"),
        V::AtLeast(0),
        &[syn("log.index.interval.bytes")],
        "Bytes between offset index entries.",
    ),
    def(
        "leader.replication.throttled.replicas",
        T::List,
        Some(""),
        V::None,
        &[],
        "Replicas throttled on the leader side.",
    ),
    def(
        "local.retention.bytes",
        T::Long,
        Some("-2"),
        V::AtLeast(-2),
        &[syn("log.local.retention.bytes")],
        "Local retention size for tiered topics (-2: retention.bytes).",
    ),
    def(
        "local.retention.ms",
        T::Long,
        Some("-2"),
        V::AtLeast(-2),
        &[syn("log.local.retention.ms")],
        "Local retention time for tiered topics (-2: retention.ms).",
    ),
    def(
        "max.compaction.lag.ms",
        T::Long,
        Some(I64_MAX),
        V::AtLeast(1),
        &[syn("log.cleaner.max.compaction.lag.ms")],
        "Maximum time a message stays ineligible for compaction.",
    ),
    def(
        "max.message.bytes",
        T::Int,
        Some("1048588"),
        V::AtLeast(0),
        &[syn("message.max.bytes")],
        "Largest record batch size allowed.",
    ),
    def(
        "message.timestamp.after.max.ms",
        T::Long,
        Some("3600000"),
        V::AtLeast(0),
        &[syn("log.message.timestamp.after.max.ms")],
        "Allowed timestamp lead of a record over the broker's clock.",
    ),
    def(
        "message.timestamp.before.max.ms",
        T::Long,
        Some(I64_MAX),
        V::AtLeast(0),
        &[syn("log.message.timestamp.before.max.ms")],
        "Allowed timestamp lag of a record behind the broker's clock.",
    ),
    def(
        "message.timestamp.type",
        T::String,
        Some("CreateTime"),
        V::OneOf(&["CreateTime", "LogAppendTime"]),
        &[syn("log.message.timestamp.type")],
        "Whether record timestamps are the producer's or the broker's append time.",
    ),
    def(
        "min.cleanable.dirty.ratio",
        T::Double,
        Some("0.5"),
        V::DoubleBetween(0.0, 1.0),
        &[syn("log.cleaner.min.cleanable.ratio")],
        "Dirty ratio that makes a log eligible for cleaning.",
    ),
    def(
        "min.compaction.lag.ms",
        T::Long,
        Some("0"),
        V::AtLeast(0),
        &[syn("log.cleaner.min.compaction.lag.ms")],
        "Minimum time a message stays uncompacted.",
    ),
    def(
        "min.insync.replicas",
        T::Int,
        Some("1"),
        V::AtLeast(1),
        &[syn("min.insync.replicas")],
        "Minimum in-sync replicas for acks=all writes.",
    ),
    def(
        "preallocate",
        T::Boolean,
        Some("false"),
        V::None,
        &[syn("log.preallocate")],
        "Preallocate segment files.",
    ),
    def(
        "remote.storage.enable",
        T::Boolean,
        Some("false"),
        V::None,
        &[],
        "Tiered storage for the topic.",
    ),
    def(
        "retention.bytes",
        T::Long,
        Some("-1"),
        V::None,
        &[syn("log.retention.bytes")],
        "Maximum partition size before old segments are deleted (-1: unlimited).",
    ),
    def(
        "retention.ms",
        T::Long,
        Some("604800000"),
        V::AtLeast(-1),
        &[
            syn("log.retention.ms"),
            Synonym {
                name: "log.retention.minutes",
                factor: 60_000,
            },
            Synonym {
                name: "log.retention.hours",
                factor: 3_600_000,
            },
        ],
        "Maximum age of a segment before deletion (-1: unlimited).",
    ),
    def(
        "segment.bytes",
        T::Int,
        Some("1073741824"),
        V::AtLeast(1024 * 1024),
        &[syn("log.segment.bytes")],
        "Segment file size.",
    ),
    def(
        "segment.index.bytes",
        T::Int,
        Some("10485760"),
        V::AtLeast(4),
        &[syn("log.index.size.max.bytes")],
        "Offset index file size.",
    ),
    def(
        "segment.jitter.ms",
        T::Long,
        Some("0"),
        V::AtLeast(0),
        &[
            syn("log.roll.jitter.ms"),
            Synonym {
                name: "log.roll.jitter.hours",
                factor: 3_600_000,
            },
        ],
        "Random jitter subtracted from segment.ms.",
    ),
    def(
        "segment.ms",
        T::Long,
        Some("604800000"),
        V::AtLeast(1),
        &[
            syn("log.roll.ms"),
            Synonym {
                name: "log.roll.hours",
                factor: 3_600_000,
            },
        ],
        "Time after which a segment is rolled.",
    ),
    def(
        "unclean.leader.election.enable",
        T::Boolean,
        Some("false"),
        V::None,
        &[syn("unclean.leader.election.enable")],
        "Allow out-of-sync replicas to become leader.",
    ),
];

pub fn topic_config(name: &str) -> Option<&'static ConfigDef> {
    TOPIC_CONFIGS.iter().find(|d| d.name == name)
}

/// Why a value was rejected (INVALID_CONFIG's message).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Invalid value {value} for configuration {name}: {reason}")]
pub struct InvalidConfig {
    pub name: String,
    pub value: String,
    pub reason: String,
}

/// Checks `value` against a type and validator.
pub fn validate(
    name: &str,
    ty: ConfigType,
    validator: Validator,
    value: &str,
) -> Result<(), InvalidConfig> {
    let bad = |reason: String| InvalidConfig {
        name: name.to_string(),
        value: value.to_string(),
        reason,
    };
    let v = value.trim();
    let as_int = |min: i64, max: i64| -> Result<i64, InvalidConfig> {
        let n: i64 = v
            .parse()
            .map_err(|_| bad("Not a number of the required type".into()))?;
        if n < min || n > max {
            return Err(bad(format!("Value must be between {min} and {max}")));
        }
        Ok(n)
    };
    let n = match ty {
        ConfigType::Boolean => {
            if !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false") {
                return Err(bad("Expected value to be either true or false".into()));
            }
            None
        }
        ConfigType::Int => Some(as_int(i32::MIN as i64, i32::MAX as i64)?),
        ConfigType::Short => Some(as_int(i16::MIN as i64, i16::MAX as i64)?),
        ConfigType::Long => Some(as_int(i64::MIN, i64::MAX)?),
        ConfigType::Double => {
            let d: f64 = v
                .parse()
                .map_err(|_| bad("Not a number of type DOUBLE".into()))?;
            if let Validator::DoubleBetween(lo, hi) = validator {
                if !(lo..=hi).contains(&d) {
                    return Err(bad(format!("Value must be between {lo} and {hi}")));
                }
            }
            None
        }
        _ => None,
    };
    match (validator, n) {
        (Validator::AtLeast(min), Some(n)) if n < min => {
            Err(bad(format!("Value must be at least {min}")))
        }
        (Validator::Between(lo, hi), Some(n)) if n < lo || n > hi => {
            Err(bad(format!("Value must be between {lo} and {hi}")))
        }
        (Validator::OneOf(allowed), _) if !allowed.iter().any(|a| a.eq_ignore_ascii_case(v)) => {
            Err(bad(format!(
                "String must be one of: {}",
                allowed.join(", ")
            )))
        }
        (Validator::ListOf(allowed), _) => {
            for item in v.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                if !allowed.contains(&item) {
                    return Err(bad(format!(
                        "Invalid value {item}; every item must be one of: {}",
                        allowed.join(", ")
                    )));
                }
            }
            Ok(())
        }
        _ => Ok(()),
    }
}

/// A resolved config value and where it came from.
#[derive(Debug, Clone)]
pub struct ResolvedConfig {
    pub name: &'static str,
    pub value: Option<String>,
    pub source: ConfigSource,
    pub def: &'static ConfigDef,
    /// Every layer that sets this config, highest precedence first (DescribeConfigs synonyms).
    pub synonyms: Vec<(String, String, ConfigSource)>,
}

/// The layers a topic's configs are resolved through.
#[derive(Debug, Clone, Copy)]
pub struct ConfigLayers<'a> {
    pub topic: Option<&'a BTreeMap<String, String>>,
    pub broker_dynamic: Option<&'a BTreeMap<String, String>>,
    pub default_dynamic: Option<&'a BTreeMap<String, String>>,
    pub static_broker: &'a BTreeMap<String, String>,
}

/// Resolves every topic config through the layers (see the module docs).
pub fn resolve_topic_configs(layers: ConfigLayers<'_>) -> Vec<ResolvedConfig> {
    TOPIC_CONFIGS
        .iter()
        .map(|d| resolve_one(d, layers))
        .collect()
}

fn resolve_one(d: &'static ConfigDef, layers: ConfigLayers<'_>) -> ResolvedConfig {
    let mut synonyms = Vec::new();
    if let Some(v) = layers.topic.and_then(|m| m.get(d.name)) {
        synonyms.push((d.name.to_string(), v.clone(), ConfigSource::DynamicTopic));
    }
    for (layer, source) in [
        (layers.broker_dynamic, ConfigSource::DynamicBroker),
        (layers.default_dynamic, ConfigSource::DynamicDefaultBroker),
        (Some(layers.static_broker), ConfigSource::StaticBroker),
    ] {
        let Some(map) = layer else { continue };
        for s in d.synonyms {
            if let Some(v) = map.get(s.name) {
                let converted = match (s.factor, v.trim().parse::<i64>()) {
                    (1, _) => v.clone(),
                    (f, Ok(n)) if n >= 0 => n.saturating_mul(f).to_string(),
                    _ => v.clone(),
                };
                synonyms.push((s.name.to_string(), converted, source));
            }
        }
    }
    let (value, source) = match synonyms.first() {
        Some((_, v, s)) => (Some(v.clone()), *s),
        None => (d.default.map(str::to_string), ConfigSource::Default),
    };
    if let Some(default) = d.default {
        synonyms.push((
            d.synonyms.first().map_or(d.name, |s| s.name).to_string(),
            default.to_string(),
            ConfigSource::Default,
        ));
    }
    ResolvedConfig {
        name: d.name,
        value,
        source,
        def: d,
        synonyms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precedence_topic_then_dynamic_then_static_then_default() {
        let mut static_broker = BTreeMap::new();
        static_broker.insert("log.retention.hours".to_string(), "1".to_string());
        let layers = ConfigLayers {
            topic: None,
            broker_dynamic: None,
            default_dynamic: None,
            static_broker: &static_broker,
        };
        let r = resolve_topic_configs(layers);
        let retention = r.iter().find(|c| c.name == "retention.ms").unwrap();
        assert_eq!(retention.value.as_deref(), Some("3600000"));
        assert_eq!(retention.source, ConfigSource::StaticBroker);

        static_broker.insert("log.retention.ms".to_string(), "5".to_string());
        let mut topic = BTreeMap::new();
        topic.insert("retention.ms".to_string(), "7".to_string());
        let layers = ConfigLayers {
            topic: Some(&topic),
            broker_dynamic: None,
            default_dynamic: None,
            static_broker: &static_broker,
        };
        let r = resolve_topic_configs(layers);
        let retention = r.iter().find(|c| c.name == "retention.ms").unwrap();
        assert_eq!(retention.value.as_deref(), Some("7"));
        assert_eq!(retention.source, ConfigSource::DynamicTopic);
        let names: Vec<_> = retention.synonyms.iter().map(|s| s.0.as_str()).collect();
        assert_eq!(
            names,
            [
                "retention.ms",
                "log.retention.ms",
                "log.retention.hours",
                "log.retention.ms"
            ]
        );

        let segment = r.iter().find(|c| c.name == "segment.bytes").unwrap();
        assert_eq!(segment.source, ConfigSource::Default);
        assert_eq!(segment.value.as_deref(), Some("1073741824"));
    }

    #[test]
    fn validation() {
        let d = topic_config("segment.bytes").unwrap();
        assert!(validate(d.name, d.ty, d.validator, "100").is_err());
        assert!(validate(d.name, d.ty, d.validator, "abc").is_err());
        assert!(validate(d.name, d.ty, d.validator, "1048576").is_ok());
        let d = topic_config("cleanup.policy").unwrap();
        assert!(validate(d.name, d.ty, d.validator, "compact,delete").is_ok());
        assert!(validate(d.name, d.ty, d.validator, "compact,nope").is_err());
        let d = topic_config("min.cleanable.dirty.ratio").unwrap();
        assert!(validate(d.name, d.ty, d.validator, "1.5").is_err());
        let d = topic_config("message.timestamp.type").unwrap();
        assert!(validate(d.name, d.ty, d.validator, "LogAppendTime").is_ok());
        assert!(validate(d.name, d.ty, d.validator, "Later").is_err());
        assert!(broker_key("log.retention.hours").is_some());
        assert!(broker_key("log.retention.days").is_none());
    }
}
