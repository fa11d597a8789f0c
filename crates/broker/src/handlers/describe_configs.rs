//! DescribeConfigs (key 32), versions 1-4: every config of a topic or broker
//! with its value, source, synonyms (when asked), type and documentation.
//! Admin tools and UIs break on partial answers, so all configs are returned
//! unless specific keys are asked for.

use gregor_metadata::config_defs::{self, ConfigSource};
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

/// One config line before filtering.
struct Entry {
    name: String,
    value: Option<String>,
    source: ConfigSource,
    read_only: bool,
    ty: config_defs::ConfigType,
    doc: &'static str,
    synonyms: Vec<(String, String, ConfigSource)>,
}

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeConfigsRequest,
) -> Option<DescribeConfigsResponse> {
    let mut resp = DescribeConfigsResponse::default();
    for resource in req.resources {
        let mut result = DescribeConfigsResult::default();
        result.error_message = None;
        result.resource_type = resource.resource_type;
        result.resource_name = resource.resource_name.clone();
        let name = resource.resource_name.to_string();
        let entries = match resource.resource_type {
            RESOURCE_TOPIC => {
                if broker.metadata.image().topic(&name).is_none() {
                    result.error_code = ResponseError::UnknownTopicOrPartition.code();
                    result.error_message = Some(str_bytes(format!("Topic {name} does not exist")));
                    resp.results.push(result);
                    continue;
                }
                broker
                    .describe_topic_configs(&name)
                    .into_iter()
                    .map(|c| Entry {
                        name: c.name.to_string(),
                        value: c.value,
                        source: c.source,
                        read_only: false,
                        ty: c.def.ty,
                        doc: c.def.doc,
                        synonyms: c.synonyms,
                    })
                    .collect::<Vec<_>>()
            }
            RESOURCE_BROKER => {
                if !name.is_empty() && name != broker.node_id().to_string() {
                    result.error_code = ResponseError::InvalidRequest.code();
                    result.error_message = Some(str_bytes(format!(
                        "Unexpected broker id, expected {} or empty string, but received {name}",
                        broker.node_id()
                    )));
                    resp.results.push(result);
                    continue;
                }
                broker_entries(broker, &name)
            }
            RESOURCE_BROKER_LOGGER => Vec::new(),
            other => {
                result.error_code = ResponseError::InvalidRequest.code();
                result.error_message =
                    Some(str_bytes(format!("Unsupported resource type {other}")));
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
            let mut c = DescribeConfigsResourceResult::default();
            c.name = str_bytes(e.name);
            c.value = e.value.map(str_bytes);
            c.read_only = e.read_only;
            c.config_source = e.source as i8;
            c.is_sensitive = e.ty == config_defs::ConfigType::Password;
            if ctx.api_version >= 3 {
                c.config_type = e.ty.code();
            }
            if req.include_documentation && ctx.api_version >= 3 {
                c.documentation = Some(str_bytes(e.doc));
            }
            if req.include_synonyms {
                c.synonyms = e
                    .synonyms
                    .into_iter()
                    .map(|(n, v, s)| {
                        let mut syn = DescribeConfigsSynonym::default();
                        syn.name = str_bytes(n);
                        syn.value = Some(str_bytes(v));
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

/// Broker configs: dynamic (per broker, then cluster default), static, default.
fn broker_entries(broker: &Broker, name: &str) -> Vec<Entry> {
    let image = broker.metadata.image();
    let per_broker = image.configs(&ConfigResource::Broker(broker.node_id().to_string()));
    let cluster_default = image.configs(&ConfigResource::Broker(String::new()));
    let mut defs: Vec<(
        &'static str,
        config_defs::ConfigType,
        Option<&'static str>,
        &'static str,
        bool,
    )> = config_defs::BROKER_CONFIGS
        .iter()
        .map(|d| (d.name, d.ty, d.default, d.doc, true))
        .collect();
    for d in config_defs::TOPIC_CONFIGS {
        for s in d.synonyms {
            if !defs.iter().any(|x| x.0 == s.name) {
                let default = if s.factor == 1 { d.default } else { None };
                defs.push((s.name, d.ty, default, d.doc, false));
            }
        }
    }
    defs.sort_by_key(|d| d.0);
    defs.into_iter()
        .map(|(n, ty, default, doc, read_only)| {
            let mut synonyms = Vec::new();
            // Describing the cluster default ("") shows only the default layer.
            if !name.is_empty() {
                if let Some(v) = per_broker.and_then(|m| m.get(n)) {
                    synonyms.push((n.to_string(), v.clone(), ConfigSource::DynamicBroker));
                }
            }
            if let Some(v) = cluster_default.and_then(|m| m.get(n)) {
                synonyms.push((n.to_string(), v.clone(), ConfigSource::DynamicDefaultBroker));
            }
            if !name.is_empty() {
                if let Some(v) = broker.config.props.get(n) {
                    synonyms.push((n.to_string(), v.clone(), ConfigSource::StaticBroker));
                }
            }
            if let Some(d) = default {
                synonyms.push((n.to_string(), d.to_string(), ConfigSource::Default));
            }
            let (value, source) = match synonyms.first() {
                Some((_, v, s)) => (Some(v.clone()), *s),
                None => (None, ConfigSource::Default),
            };
            Entry {
                name: n.to_string(),
                value,
                source,
                read_only,
                ty,
                doc,
                synonyms,
            }
        })
        .collect()
}
