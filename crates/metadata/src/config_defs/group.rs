//! Per-group configs (ConfigResource type GROUP, Kafka's `GroupConfig`):
//! names, types, defaults (mostly the broker's `group.*` settings), and the
//! validation Kafka's controller runs before storing them.

use std::collections::BTreeMap;

use super::{validate, ConfigSource, ConfigType, InvalidConfig, Validator};

/// Where a group config's default comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupDefault {
    /// The broker's value of this broker config (`group.consumer.session.timeout.ms` …).
    Broker(&'static str),
    /// A fixed value.
    Fixed(&'static str),
}

#[derive(Debug, Clone, Copy)]
pub struct GroupConfigDef {
    pub name: &'static str,
    pub ty: ConfigType,
    pub validator: Validator,
    pub default: GroupDefault,
    pub doc: &'static str,
}

const fn def(
    name: &'static str,
    ty: ConfigType,
    validator: Validator,
    default: GroupDefault,
    doc: &'static str,
) -> GroupConfigDef {
    GroupConfigDef {
        name,
        ty,
        validator,
        default,
        doc,
    }
}

use ConfigType as T;
use GroupDefault::{Broker, Fixed};
use Validator as V;

pub const CONSUMER_SESSION_TIMEOUT_MS: &str = "consumer.session.timeout.ms";
pub const CONSUMER_HEARTBEAT_INTERVAL_MS: &str = "consumer.heartbeat.interval.ms";
const SHARE_AUTO_OFFSET_RESET: &str = "share.auto.offset.reset";

/// Kafka 4.1's group configs, in name order.
#[rustfmt::skip]
pub static GROUP_CONFIGS: &[GroupConfigDef] = &[
    def(CONSUMER_HEARTBEAT_INTERVAL_MS, T::Int, V::AtLeast(1), Broker("group.consumer.heartbeat.interval.ms"), "The heartbeat interval given to the members of a consumer group."),
    def(CONSUMER_SESSION_TIMEOUT_MS, T::Int, V::AtLeast(1), Broker("group.consumer.session.timeout.ms"), "The timeout to detect failed members of a consumer group (consumer protocol)."),
    def(SHARE_AUTO_OFFSET_RESET, T::String, V::None, Fixed("latest"), "Where a share partition starts: latest, earliest or by_duration:<ISO-8601 duration>. (Gregor has no share groups yet; stored only.)"),
    def("share.heartbeat.interval.ms", T::Int, V::AtLeast(1), Broker("group.share.heartbeat.interval.ms"), "The heartbeat interval given to the members of a share group. (Gregor has no share groups yet; stored only.)"),
    def("share.isolation.level", T::String, V::OneOf(&["read_committed", "read_uncommitted"]), Fixed("read_uncommitted"), "Whether a share group delivers only committed transactional records. (Gregor has no share groups yet; stored only.)"),
    def("share.record.lock.duration.ms", T::Int, V::AtLeast(1000), Broker("group.share.record.lock.duration.ms"), "How long a share group's delivered records stay locked. (Gregor has no share groups yet; stored only.)"),
    def("share.session.timeout.ms", T::Int, V::AtLeast(1), Broker("group.share.session.timeout.ms"), "The timeout to detect failed members of a share group. (Gregor has no share groups yet; stored only.)"),
    def("streams.heartbeat.interval.ms", T::Int, V::AtLeast(1), Broker("group.streams.heartbeat.interval.ms"), "The heartbeat interval given to the members of a streams group. (Gregor has no streams groups yet; stored only.)"),
    def("streams.num.standby.replicas", T::Int, V::AtLeast(0), Broker("group.streams.num.standby.replicas"), "Standby replicas per task of a streams group. (Gregor has no streams groups yet; stored only.)"),
    def("streams.session.timeout.ms", T::Int, V::AtLeast(1), Broker("group.streams.session.timeout.ms"), "The timeout to detect failed members of a streams group. (Gregor has no streams groups yet; stored only.)"),
];

pub fn group_config(name: &str) -> Option<&'static GroupConfigDef> {
    GROUP_CONFIGS.iter().find(|d| d.name == name)
}

/// Why group configs were refused; Kafka answers all with INVALID_CONFIG.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GroupConfigError {
    #[error("Unknown group config name: {0}")]
    Unknown(String),
    #[error(transparent)]
    Invalid(#[from] InvalidConfig),
    /// A value outside the bounds the broker's `group.*` configs set.
    #[error("{0}")]
    OutOfBounds(String),
}

/// A group config's value, from the group's own setting or its default.
fn value_of(
    d: &GroupConfigDef,
    props: Option<&BTreeMap<String, String>>,
    broker_value: &dyn Fn(&str) -> Option<String>,
) -> (String, ConfigSource) {
    if let Some(v) = props.and_then(|p| p.get(d.name)) {
        return (v.clone(), ConfigSource::GroupConfig);
    }
    let v = match d.default {
        Broker(name) => broker_value(name).unwrap_or_default(),
        Fixed(v) => v.to_string(),
    };
    (v, ConfigSource::Default)
}

/// Kafka's `by_duration:` values are ISO-8601 durations (`PnDTnHnMn.nS`), never negative.
fn iso_duration_ok(s: &str) -> bool {
    let Some(rest) = s.strip_prefix('P') else {
        return false;
    };
    let (days, time) = match rest.split_once('T') {
        Some((d, t)) => (d, Some(t)),
        None => (rest, None),
    };
    let number_units = |part: &str, units: &[char]| -> Option<usize> {
        let mut count = 0;
        let mut num = String::new();
        let mut last = 0;
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
            } else {
                let idx = units.iter().position(|u| *u == c)?;
                if num.is_empty() || num.parse::<f64>().is_err() || idx < last {
                    return None;
                }
                last = idx + 1;
                count += 1;
                num.clear();
            }
        }
        num.is_empty().then_some(count)
    };
    let d = number_units(days, &['D']);
    let t = time.map(|t| number_units(t, &['H', 'M', 'S']));
    match (d, t) {
        (Some(d), None) => d > 0,
        (Some(_), Some(Some(t))) => t > 0,
        _ => false,
    }
}

fn check_value(d: &GroupConfigDef, value: &str) -> Result<(), InvalidConfig> {
    if d.name == SHARE_AUTO_OFFSET_RESET {
        let v = value.trim();
        let ok = v.eq_ignore_ascii_case("latest")
            || v.eq_ignore_ascii_case("earliest")
            || v.strip_prefix("by_duration:").is_some_and(iso_duration_ok);
        if !ok {
            return Err(InvalidConfig {
                name: d.name.to_string(),
                value: value.to_string(),
                reason: "the value must be either 'earliest', 'latest', or of the format 'by_duration:<PnDTnHnMn.nS.>'".into(),
            });
        }
        return Ok(());
    }
    validate(d.name, d.ty, d.validator, value)
}

/// Checks a group's full set of configs (after the change) as Kafka's
/// `GroupConfig.validate` does: known names, parseable values, and the
/// bounds of the broker's `group.<type>.min/max.*` configs. `broker_value`
/// gives the broker's effective value of a broker config.
pub fn validate_group_configs(
    props: &BTreeMap<String, String>,
    broker_value: &dyn Fn(&str) -> Option<String>,
) -> Result<(), GroupConfigError> {
    if let Some(unknown) = props.keys().find(|k| group_config(k).is_none()) {
        return Err(GroupConfigError::Unknown(unknown.clone()));
    }
    let mut values: BTreeMap<&str, i64> = BTreeMap::new();
    for d in GROUP_CONFIGS {
        let (v, _) = value_of(d, Some(props), broker_value);
        check_value(d, &v)?;
        if let Ok(n) = v.trim().parse::<i64>() {
            values.insert(d.name, n);
        }
    }
    let broker = |name: &str| -> i64 {
        broker_value(name)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    };
    let get = |name: &str| values.get(name).copied().unwrap_or(0);
    let out_of_bounds = |msg: String| Err(GroupConfigError::OutOfBounds(msg));
    // (group config, broker minimum, broker maximum), in Kafka's order.
    let bounds: [(&str, Option<&str>, &str); 8] = [
        (
            CONSUMER_HEARTBEAT_INTERVAL_MS,
            Some("group.consumer.min.heartbeat.interval.ms"),
            "group.consumer.max.heartbeat.interval.ms",
        ),
        (
            CONSUMER_SESSION_TIMEOUT_MS,
            Some("group.consumer.min.session.timeout.ms"),
            "group.consumer.max.session.timeout.ms",
        ),
        (
            "share.heartbeat.interval.ms",
            Some("group.share.min.heartbeat.interval.ms"),
            "group.share.max.heartbeat.interval.ms",
        ),
        (
            "share.session.timeout.ms",
            Some("group.share.min.session.timeout.ms"),
            "group.share.max.session.timeout.ms",
        ),
        (
            "share.record.lock.duration.ms",
            Some("group.share.min.record.lock.duration.ms"),
            "group.share.max.record.lock.duration.ms",
        ),
        (
            "streams.heartbeat.interval.ms",
            Some("group.streams.min.heartbeat.interval.ms"),
            "group.streams.max.heartbeat.interval.ms",
        ),
        (
            "streams.session.timeout.ms",
            Some("group.streams.min.session.timeout.ms"),
            "group.streams.max.session.timeout.ms",
        ),
        (
            "streams.num.standby.replicas",
            None,
            "group.streams.max.standby.replicas",
        ),
    ];
    for (name, min, max) in bounds {
        if let Some(min) = min {
            if get(name) < broker(min) {
                return out_of_bounds(format!("{name} must be greater than or equal to {min}"));
            }
        }
        if get(name) > broker(max) {
            return out_of_bounds(format!("{name} must be less than or equal to {max}"));
        }
    }
    for (session, heartbeat) in [
        (CONSUMER_SESSION_TIMEOUT_MS, CONSUMER_HEARTBEAT_INTERVAL_MS),
        ("share.session.timeout.ms", "share.heartbeat.interval.ms"),
        (
            "streams.session.timeout.ms",
            "streams.heartbeat.interval.ms",
        ),
    ] {
        if get(session) <= get(heartbeat) {
            return out_of_bounds(format!("{session} must be greater than {heartbeat}"));
        }
    }
    Ok(())
}

/// A group config's effective value and where it came from.
#[derive(Debug, Clone)]
pub struct ResolvedGroupConfig {
    pub def: &'static GroupConfigDef,
    pub value: String,
    /// [`ConfigSource::GroupConfig`] when the group sets it, else [`ConfigSource::Default`].
    pub source: ConfigSource,
}

/// Every group config of a group with settings `props` (DescribeConfigs).
pub fn resolve_group_configs(
    props: Option<&BTreeMap<String, String>>,
    broker_value: &dyn Fn(&str) -> Option<String>,
) -> Vec<ResolvedGroupConfig> {
    GROUP_CONFIGS
        .iter()
        .map(|d| {
            let (value, source) = value_of(d, props, broker_value);
            ResolvedGroupConfig {
                def: d,
                value,
                source,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config_defs::broker_config;

    fn broker_default(name: &str) -> Option<String> {
        broker_config(name)
            .and_then(|d| d.default)
            .map(str::to_string)
    }

    fn props(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn names_sorted_and_defaults_valid() {
        for w in GROUP_CONFIGS.windows(2) {
            assert!(w[0].name < w[1].name);
        }
        for d in GROUP_CONFIGS {
            if let Broker(b) = d.default {
                assert!(broker_config(b).is_some(), "{b} is not a broker config");
            }
        }
        assert_eq!(
            validate_group_configs(&BTreeMap::new(), &broker_default),
            Ok(())
        );
        let r = resolve_group_configs(None, &broker_default);
        let s = r
            .iter()
            .find(|c| c.def.name == CONSUMER_SESSION_TIMEOUT_MS)
            .unwrap();
        assert_eq!(
            (s.value.as_str(), s.source),
            ("45000", ConfigSource::Default)
        );
    }

    #[test]
    fn kafka_bounds_and_messages() {
        let check = |pairs: &[(&str, &str)]| validate_group_configs(&props(pairs), &broker_default);
        assert_eq!(check(&[(CONSUMER_SESSION_TIMEOUT_MS, "50000")]), Ok(()));
        assert_eq!(
            check(&[(CONSUMER_SESSION_TIMEOUT_MS, "1000")]).unwrap_err().to_string(),
            "consumer.session.timeout.ms must be greater than or equal to group.consumer.min.session.timeout.ms"
        );
        assert_eq!(
            check(&[(CONSUMER_SESSION_TIMEOUT_MS, "70000")]).unwrap_err().to_string(),
            "consumer.session.timeout.ms must be less than or equal to group.consumer.max.session.timeout.ms"
        );
        assert_eq!(
            check(&[(CONSUMER_HEARTBEAT_INTERVAL_MS, "100")]).unwrap_err().to_string(),
            "consumer.heartbeat.interval.ms must be greater than or equal to group.consumer.min.heartbeat.interval.ms"
        );
        assert_eq!(
            check(&[("nope", "1")]).unwrap_err().to_string(),
            "Unknown group config name: nope"
        );
        assert!(matches!(
            check(&[(CONSUMER_SESSION_TIMEOUT_MS, "x")]),
            Err(GroupConfigError::Invalid(_))
        ));
        assert!(check(&[("share.isolation.level", "read_committed")]).is_ok());
        assert!(check(&[("share.isolation.level", "dirty")]).is_err());
        assert!(check(&[("streams.num.standby.replicas", "3")]).is_err());
        // The broker's bounds come from its own configs.
        let wide = |name: &str| match name {
            "group.consumer.min.session.timeout.ms"
            | "group.consumer.min.heartbeat.interval.ms" => Some("100".into()),
            _ => broker_default(name),
        };
        let p = props(&[
            (CONSUMER_SESSION_TIMEOUT_MS, "2000"),
            (CONSUMER_HEARTBEAT_INTERVAL_MS, "500"),
        ]);
        assert_eq!(validate_group_configs(&p, &wide), Ok(()));
        let p = props(&[
            (CONSUMER_SESSION_TIMEOUT_MS, "2000"),
            (CONSUMER_HEARTBEAT_INTERVAL_MS, "2000"),
        ]);
        assert_eq!(
            validate_group_configs(&p, &wide).unwrap_err().to_string(),
            "consumer.session.timeout.ms must be greater than consumer.heartbeat.interval.ms"
        );
    }

    #[test]
    fn share_auto_offset_reset() {
        let d = group_config(SHARE_AUTO_OFFSET_RESET).unwrap();
        for ok in [
            "latest",
            "earliest",
            "by_duration:PT1H",
            "by_duration:P1DT2H3M4.5S",
            "by_duration:P2D",
        ] {
            assert!(check_value(d, ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "newest",
            "by_duration:",
            "by_duration:1H",
            "by_duration:PT",
            "by_duration:-PT1H",
            "by_duration:PT1M1H",
        ] {
            assert!(check_value(d, bad).is_err(), "{bad}");
        }
    }
}
