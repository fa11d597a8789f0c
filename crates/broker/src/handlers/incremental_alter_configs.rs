//! IncrementalAlterConfigs (key 44), versions 0-1: SET, DELETE, APPEND and
//! SUBTRACT on individual configs of a topic or broker.

use std::collections::BTreeMap;

use gregor_metadata::config_defs::{self, ConfigType};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::alter_configs::{apply, resource};
use super::util::str_bytes;
use super::RequestContext;
use crate::broker::Broker;

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

pub async fn handle(
    broker: &Broker,
    _ctx: &RequestContext,
    req: IncrementalAlterConfigsRequest,
) -> Option<IncrementalAlterConfigsResponse> {
    let mut resp = IncrementalAlterConfigsResponse::default();
    for res in req.resources {
        let mut r = AlterConfigsResourceResponse::default();
        r.error_message = None;
        r.resource_type = res.resource_type;
        r.resource_name = res.resource_name.clone();
        let outcome =
            resource(broker, res.resource_type, &res.resource_name).and_then(|resource| {
                let image = broker.metadata.image();
                let existing = image.configs(&resource);
                let mut changes: BTreeMap<String, Option<String>> = BTreeMap::new();
                for c in &res.configs {
                    let name = c.name.to_string();
                    let value = c.value.as_ref().map(|v| v.to_string());
                    let is_list = config_defs::topic_config(&name)
                        .map(|d| d.ty)
                        .or_else(|| config_defs::broker_config_type(&name).map(|t| t.0))
                        == Some(ConfigType::List);
                    let current = changes
                        .get(&name)
                        .cloned()
                        .flatten()
                        .or_else(|| existing.and_then(|m| m.get(&name).cloned()));
                    let current = current.or_else(|| match &resource {
                        gregor_metadata::ConfigResource::Topic(t) => broker
                            .describe_topic_configs(t)
                            .into_iter()
                            .find(|rc| rc.name == name)
                            .and_then(|rc| rc.value),
                        gregor_metadata::ConfigResource::Broker(_) => None,
                    });
                    let new = match c.config_operation {
                        SET => value,
                        DELETE => None,
                        APPEND | SUBTRACT if !is_list => {
                            return Err((
                                ResponseError::InvalidConfig,
                                format!(
                                    "Config value append is not allowed for config key: {name}"
                                ),
                            ));
                        }
                        APPEND => {
                            let mut items: Vec<String> = split(current.as_deref());
                            for v in split(value.as_deref()) {
                                if !items.contains(&v) {
                                    items.push(v);
                                }
                            }
                            Some(items.join(","))
                        }
                        SUBTRACT => {
                            let remove = split(value.as_deref());
                            Some(
                                split(current.as_deref())
                                    .into_iter()
                                    .filter(|v| !remove.contains(v))
                                    .collect::<Vec<_>>()
                                    .join(","),
                            )
                        }
                        other => {
                            return Err((
                                ResponseError::InvalidRequest,
                                format!("Unknown config operation {other}"),
                            ))
                        }
                    };
                    changes.insert(name, new);
                }
                apply(broker, &resource, changes, req.validate_only)
            });
        if let Err((code, message)) = outcome {
            r.error_code = code.code();
            r.error_message = Some(str_bytes(message));
        }
        resp.responses.push(r);
    }
    Some(resp)
}

fn split(v: Option<&str>) -> Vec<String> {
    v.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}
