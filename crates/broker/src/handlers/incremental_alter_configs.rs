//! IncrementalAlterConfigs (key 44), versions 0-1: SET, DELETE, APPEND and
//! SUBTRACT on individual configs of a topic, broker or group.

use std::collections::BTreeMap;

use gregor_metadata::config_defs::{self, ConfigType};
use gregor_metadata::ConfigResource;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::incremental_alter_configs_request::AlterConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse};

use super::alter_configs::{apply, check_keys, check_repeated, repeated_resources, resource};
use super::util::str_bytes;
use super::RequestContext;
use crate::broker::Broker;

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

type Failure = (ResponseError, String);

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: IncrementalAlterConfigsRequest,
) -> Option<IncrementalAlterConfigsResponse> {
    let mut resp = IncrementalAlterConfigsResponse::default();
    let repeated = repeated_resources(
        req.resources
            .iter()
            .map(|r| (r.resource_type, r.resource_name.as_str())),
    );
    let authz = super::acl_util::Authz::new(broker, ctx);
    for res in &req.resources {
        let mut r = AlterConfigsResourceResponse::default();
        r.error_message = None;
        r.resource_type = res.resource_type;
        r.resource_name = res.resource_name.clone();
        if let Some(e) = super::acl_util::config_resource_refusal(
            &authz,
            gregor_security::acl::AclOperation::AlterConfigs,
            res.resource_type,
            &res.resource_name,
        ) {
            r.error_code = e.code();
            resp.responses.push(r);
            continue;
        }
        let outcome = check_repeated(&repeated, res.resource_type, &res.resource_name)
            .and_then(|()| {
                check_keys(res.configs.iter().map(|c| {
                    (
                        c.name.as_str(),
                        c.config_operation != DELETE && c.value.is_none(),
                    )
                }))
            })
            .and_then(|()| resource(broker, res.resource_type, &res.resource_name))
            .and_then(|resource| Ok((changes(broker, &resource, res)?, resource)));
        let outcome = match outcome {
            Ok((changes, resource)) => apply(broker, &resource, changes, req.validate_only).await,
            Err(e) => Err(e),
        };
        if let Err((code, message)) = outcome {
            r.error_code = code.code();
            r.error_message = Some(str_bytes(message));
        }
        resp.responses.push(r);
    }
    Some(resp)
}

/// Whether a config of this resource is a LIST (APPEND / SUBTRACT apply).
fn is_list(resource: &ConfigResource, name: &str) -> Option<bool> {
    let ty = match resource {
        ConfigResource::Topic(_) => config_defs::topic_config(name).map(|d| d.ty),
        ConfigResource::Broker(_) => config_defs::broker_key(name)
            .and_then(|k| k.def())
            .map(|d| d.ty),
        ConfigResource::Group(_) => config_defs::group_config(name).map(|d| d.ty),
    };
    ty.map(|t| t == ConfigType::List)
}

/// The resource's new values: `Some` sets, `None` deletes.
fn changes(
    broker: &Broker,
    resource: &ConfigResource,
    res: &AlterConfigsResource,
) -> Result<BTreeMap<String, Option<String>>, Failure> {
    let image = broker.metadata.image();
    let existing = image.configs(resource);
    let mut changes: BTreeMap<String, Option<String>> = BTreeMap::new();
    for c in &res.configs {
        let name = c.name.to_string();
        let value = c.value.as_ref().map(|v| v.to_string());
        let op = c.config_operation;
        if op == APPEND || op == SUBTRACT {
            not_a_list(resource, &name, op)?;
        }
        let new = match op {
            SET => value,
            DELETE => None,
            APPEND | SUBTRACT => {
                let current = changes
                    .get(&name)
                    .cloned()
                    .flatten()
                    .or_else(|| existing.and_then(|m| m.get(&name).cloned()))
                    .or_else(|| default_of(broker, resource, &name));
                let items = split(value.as_deref());
                let mut list = split(current.as_deref());
                if op == APPEND {
                    for v in items {
                        if !list.contains(&v) {
                            list.push(v);
                        }
                    }
                } else {
                    list.retain(|v| !items.contains(v));
                }
                Some(list.join(","))
            }
            other => {
                return Err((
                    ResponseError::InvalidRequest,
                    format!("Unknown operations type {other}"),
                ))
            }
        };
        changes.insert(name, new);
    }
    Ok(changes)
}

/// APPEND / SUBTRACT need a LIST config; Kafka's messages differ between
/// broker resources (checked on the broker) and the others (on the controller).
fn not_a_list(resource: &ConfigResource, name: &str, op: i8) -> Result<(), Failure> {
    let verb = if op == APPEND { "append" } else { "subtract" };
    match (resource, is_list(resource, name)) {
        (_, Some(true)) => Ok(()),
        (ConfigResource::Broker(_), None) => Err((
            ResponseError::InvalidConfig,
            format!("Unknown config name: {name}"),
        )),
        (ConfigResource::Broker(_), Some(false)) => Err((
            ResponseError::InvalidConfig,
            format!("Config value {verb} is not allowed for config key: {name}"),
        )),
        _ => Err((
            ResponseError::InvalidConfig,
            format!(
                "Can't {} to key {name} because its type is not LIST.",
                verb.to_uppercase()
            ),
        )),
    }
}

/// The value APPEND / SUBTRACT start from when the resource does not set it.
fn default_of(broker: &Broker, resource: &ConfigResource, name: &str) -> Option<String> {
    match resource {
        ConfigResource::Topic(t) => broker
            .describe_topic_configs(t)
            .into_iter()
            .find(|rc| rc.name == name)
            .and_then(|rc| rc.value),
        ConfigResource::Broker(_) => config_defs::broker_config(name)
            .and_then(|d| d.default)
            .map(str::to_string),
        ConfigResource::Group(_) => None,
    }
}

fn split(v: Option<&str>) -> Vec<String> {
    v.unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}
