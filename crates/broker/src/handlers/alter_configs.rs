//! AlterConfigs (key 33), versions 0-2: replaces the whole set of dynamic
//! configs of a topic or broker (configs not named are removed), as Kafka's
//! legacy API does.

use std::collections::BTreeMap;

use gregor_metadata::{controller, ConfigResource};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::util::{self, str_bytes};
use super::RequestContext;
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    _ctx: &RequestContext,
    req: AlterConfigsRequest,
) -> Option<AlterConfigsResponse> {
    let mut resp = AlterConfigsResponse::default();
    for res in req.resources {
        let mut r = AlterConfigsResourceResponse::default();
        r.error_message = None;
        r.resource_type = res.resource_type;
        r.resource_name = res.resource_name.clone();
        let outcome =
            resource(broker, res.resource_type, &res.resource_name).and_then(|resource| {
                let mut changes: BTreeMap<String, Option<String>> = BTreeMap::new();
                if let Some(existing) = broker.metadata.image().configs(&resource) {
                    for k in existing.keys() {
                        changes.insert(k.clone(), None);
                    }
                }
                for c in &res.configs {
                    changes.insert(c.name.to_string(), c.value.as_ref().map(|v| v.to_string()));
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

/// The config resource named in a request, or the error to answer with.
pub fn resource(
    broker: &Broker,
    ty: i8,
    name: &str,
) -> Result<ConfigResource, (ResponseError, String)> {
    match ty {
        RESOURCE_TOPIC => Ok(ConfigResource::Topic(name.to_string())),
        RESOURCE_BROKER if name.is_empty() || name == broker.node_id().to_string() => {
            Ok(ConfigResource::Broker(name.to_string()))
        }
        RESOURCE_BROKER => Err((
            ResponseError::InvalidRequest,
            format!("Unexpected broker id {name}"),
        )),
        other => Err((
            ResponseError::InvalidRequest,
            format!("Unsupported resource type {other}"),
        )),
    }
}

/// Validates and (unless `validate_only`) commits config changes.
pub fn apply(
    broker: &Broker,
    resource: &ConfigResource,
    changes: BTreeMap<String, Option<String>>,
    validate_only: bool,
) -> Result<(), (ResponseError, String)> {
    let outcome = if validate_only {
        Ok(controller::alter_configs(&broker.metadata.image(), resource, &changes).map(|_| ()))
    } else {
        broker.controller_update(|image| {
            controller::alter_configs(image, resource, &changes).map(|recs| (recs, ()))
        })
    };
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err((util::controller_error(&e), e.to_string())),
        Err(e) => Err((ResponseError::UnknownServerError, e.to_string())),
    }
}
