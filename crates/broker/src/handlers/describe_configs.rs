//! DescribeConfigs (key 32), versions 1-4: every config of a topic, broker
//! or group with its value, source, synonyms (when asked), type and
//! documentation. Admin tools and UIs break on partial answers, so all
//! configs are returned unless specific keys are asked for.

use std::collections::{BTreeMap, BTreeSet};

use gregor_metadata::config_defs::{self, ConfigSource, ConfigType};
use gregor_metadata::ConfigResource;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

use super::util::str_bytes;
use super::RequestContext;
use crate::broker::Broker;

pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;
pub const RESOURCE_BROKER_LOGGER: i8 = 8;
pub const RESOURCE_GROUP: i8 = 32;

/// One config line before filtering.
struct Entry {
    name: String,
    value: Option<String>,
    source: ConfigSource,
    read_only: bool,
    /// `None`: a name Kafka has no definition for (reported as UNKNOWN, sensitive).
    ty: Option<ConfigType>,
    doc: Option<String>,
    synonyms: Vec<(String, Option<String>, ConfigSource)>,
}

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeConfigsRequest,
) -> Option<DescribeConfigsResponse> {
    let mut resp = DescribeConfigsResponse::default();
    let authz = super::acl_util::Authz::new(broker, ctx);
    for resource in req.resources {
        let mut result = DescribeConfigsResult::default();
        result.error_message = None;
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name.clone();
        let name = resource.resource_name.to_string();
        if let Some(e) = super::acl_util::config_resource_refusal(
            &authz,
            gregor_security::acl::AclOperation::DescribeConfigs,
            resource.resource_type,
            &name,
        ) {
            result.error_code = e.code();
            resp.results.push(result);
            continue;
        }
        let entries = match entries(broker, resource.resource_type, &name) {
            Ok(e) => e,
            Err((code, message)) => {
                result.error_code = code.code();
                result.error_message = Some(str_bytes(message));
                resp.results.push(result);
                continue;
            }
        };
        let keys: Option<Vec<String>> = resource
            .configuration_keys
            .map(|k| k.iter().map(|s| s.to_string()).collect());
        for e in entries {
            if keys.as_ref().is_some_and(|k| !k.contains(&e.name)) {
                continue;
            }
            // Kafka treats configs of unknown type as sensitive.
            let sensitive = e.ty.is_none_or(|t| t == ConfigType::Password);
            let mut c = DescribeConfigsResourceResult::default();
            c.name = str_bytes(e.name);
            c.value = e.value.filter(|_| !sensitive).map(str_bytes);
            c.read_only = e.read_only;
            c.config_source = e.source as i8;
            c.is_sensitive = sensitive;
            if ctx.api_version >= 3 {
                c.config_type = e.ty.map_or(0, ConfigType::code);
            }
            if req.include_documentation && ctx.api_version >= 3 {
                c.documentation = e.doc.map(str_bytes);
            }
            if req.include_synonyms {
                c.synonyms = e
                    .synonyms
                    .into_iter()
                    .map(|(n, v, s)| {
                        let mut syn = DescribeConfigsSynonym::default();
                        syn.name = str_bytes(n);
                        syn.value = v.filter(|_| !sensitive).map(str_bytes);
                        syn.source = s as i8;
                        syn
                    })
                    .collect();
            }
            result.configs.push(c);
        }
        resp.results.push(result);
    }
    Some(resp)
}

fn entries(broker: &Broker, ty: i8, name: &str) -> Result<Vec<Entry>, (ResponseError, String)> {
    match ty {
        RESOURCE_TOPIC => {
            if broker.metadata.image().topic(name).is_none() {
                return Err((
                    ResponseError::UnknownTopicOrPartition,
                    format!("Topic {name} does not exist"),
                ));
            }
            Ok(broker
                .describe_topic_configs(name)
                .into_iter()
                .map(|c| Entry {
                    name: c.name.to_string(),
                    value: c.value,
                    source: c.source,
                    read_only: false,
                    ty: Some(c.def.ty),
                    doc: Some(c.def.doc.to_string()),
                    synonyms: c
                        .synonyms
                        .into_iter()
                        .map(|(n, v, s)| (n, Some(v), s))
                        .collect(),
                })
                .collect())
        }
        RESOURCE_BROKER => {
            if !name.is_empty() && name != broker.node_id().to_string() {
                return Err((
                    ResponseError::InvalidRequest,
                    format!(
                        "Unexpected broker id, expected {} or empty string, but received {name}",
                        broker.node_id()
                    ),
                ));
            }
            Ok(broker_entries(broker, name))
        }
        RESOURCE_BROKER_LOGGER => Ok(Vec::new()),
        RESOURCE_GROUP => {
            if name.is_empty() {
                return Err((
                    ResponseError::InvalidRequest,
                    "Group name must not be empty".into(),
                ));
            }
            Ok(broker
                .describe_group_configs(name)
                .into_iter()
                .map(|c| Entry {
                    name: c.def.name.to_string(),
                    value: Some(c.value.clone()),
                    source: c.source,
                    read_only: false,
                    ty: Some(c.def.ty),
                    doc: Some(c.def.doc.to_string()),
                    synonyms: vec![(c.def.name.to_string(), Some(c.value), c.source)],
                })
                .collect())
        }
        other => Err((
            ResponseError::InvalidRequest,
            format!("Unsupported resource type {other}"),
        )),
    }
}

/// The names Kafka reports together for a broker config, in precedence
/// order (its `DynamicBrokerConfig.brokerConfigSynonyms`).
fn broker_synonyms(name: &str) -> Vec<String> {
    const GROUPS: &[&[&str]] = &[
        &["log.roll.ms", "log.roll.hours"],
        &["log.roll.jitter.ms", "log.roll.jitter.hours"],
        &[
            "log.retention.ms",
            "log.retention.minutes",
            "log.retention.hours",
        ],
    ];
    if name == "log.flush.interval.ms" {
        return vec![name.into(), "log.flush.scheduler.interval.ms".into()];
    }
    if let Some(g) = GROUPS.iter().find(|g| g.contains(&name)) {
        return g.iter().map(|s| s.to_string()).collect();
    }
    if let Some(base) = config_defs::strip_listener_prefix(name) {
        // `<mechanism>.<config>` overrides fall back to the plain config.
        let plain = match config_defs::broker_key(name).and_then(|k| k.def()) {
            Some(d) => d.name.to_string(),
            None => base.to_string(),
        };
        return vec![name.into(), plain];
    }
    vec![name.into()]
}

/// Broker configs. For a broker: every config, with the layers that set it
/// (dynamic per broker, dynamic cluster default, static, default). For the
/// cluster default (""): only the configs set there, as Kafka answers.
fn broker_entries(broker: &Broker, name: &str) -> Vec<Entry> {
    let image = broker.metadata.image();
    let empty = BTreeMap::new();
    let per_broker = image
        .configs(&ConfigResource::Broker(broker.node_id().to_string()))
        .unwrap_or(&empty);
    let cluster_default = image
        .configs(&ConfigResource::Broker(String::new()))
        .unwrap_or(&empty);
    let static_props = &broker.config.props;
    let describing_default = name.is_empty();
    let names: BTreeSet<String> = if describing_default {
        cluster_default.keys().cloned().collect()
    } else {
        config_defs::broker_configs()
            .iter()
            .map(|d| d.name.to_string())
            .chain(per_broker.keys().cloned())
            .chain(cluster_default.keys().cloned())
            .chain(static_props.keys().cloned())
            .collect()
    };
    let default_value = |n: &str| {
        config_defs::broker_config(n)
            .and_then(|d| d.default)
            .map(str::to_string)
    };
    names
        .into_iter()
        .map(|n| {
            let key = config_defs::broker_key(&n);
            let def = key.and_then(|k| k.def());
            let mut synonyms = Vec::new();
            let layers: [(&BTreeMap<String, String>, ConfigSource); 3] = [
                (per_broker, ConfigSource::DynamicBroker),
                (cluster_default, ConfigSource::DynamicDefaultBroker),
                (static_props, ConfigSource::StaticBroker),
            ];
            let all_names = broker_synonyms(&n);
            for (map, source) in layers {
                for s in &all_names {
                    if let Some(v) = map.get(s) {
                        synonyms.push((s.clone(), Some(v.clone()), source));
                    }
                }
            }
            for s in &all_names {
                if let Some(v) = default_value(s) {
                    synonyms.push((s.clone(), Some(v), ConfigSource::Default));
                }
            }
            // Synonyms of higher precedence but another name are not this
            // config's (Kafka drops them), and the cluster default shows only its layer.
            let start = synonyms
                .iter()
                .position(|s| s.0 == n)
                .unwrap_or(synonyms.len());
            synonyms.drain(..start);
            if describing_default {
                synonyms.retain(|s| s.2 == ConfigSource::DynamicDefaultBroker);
            }
            let (value, source) = match synonyms.first() {
                Some((_, v, s)) => (v.clone(), *s),
                None => (default_value(&n), ConfigSource::Default),
            };
            let plain = matches!(key, Some(config_defs::BrokerKey::Plain(_)));
            Entry {
                read_only: !plain
                    || def.is_none_or(|d| d.mode == config_defs::UpdateMode::ReadOnly),
                ty: def.map(|d| d.ty),
                doc: def.map(|d| d.documentation()),
                name: n,
                value,
                source,
                synonyms,
            }
        })
        .collect()
}
