//! AlterConfigs (key 33), versions 0-2: replaces the whole set of dynamic
//! configs of a topic, broker or group (configs not named are removed), as
//! Kafka's legacy API does.

use std::collections::{BTreeMap, BTreeSet};

use gregor_metadata::controller::{self, AlterConfigsError};
use gregor_metadata::ConfigResource;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::alter_configs_response::AlterConfigsResourceResponse;
use kafka_protocol::messages::{AlterConfigsRequest, AlterConfigsResponse};

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_GROUP, RESOURCE_TOPIC};
use super::util::{self, str_bytes};
use super::RequestContext;
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: AlterConfigsRequest,
) -> Option<AlterConfigsResponse> {
    let mut resp = AlterConfigsResponse::default();
    let repeated = repeated_resources(
        req.resources
            .iter()
            .map(|r| (r.resource_type, r.resource_name.as_str())),
    );
    let authz = super::acl_util::Authz::new(broker, ctx);
    for res in req.resources {
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
                check_keys(
                    res.configs
                        .iter()
                        .map(|c| (c.name.as_str(), c.value.is_none())),
                )
            })
            .and_then(|()| resource(broker, res.resource_type, &res.resource_name))
            .map(|resource| {
                let mut changes: BTreeMap<String, Option<String>> = BTreeMap::new();
                if let Some(existing) = broker.metadata.image().configs(&resource) {
                    for k in existing.keys() {
                        changes.insert(k.clone(), None);
                    }
                }
                for c in &res.configs {
                    changes.insert(c.name.to_string(), c.value.as_ref().map(|v| v.to_string()));
                }
                (resource, changes)
            });
        let outcome = match outcome {
            Ok((resource, changes)) => apply(broker, &resource, changes, req.validate_only).await,
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

/// Resources named more than once in one request (Kafka fails all of them).
pub fn repeated_resources<'a>(
    resources: impl Iterator<Item = (i8, &'a str)>,
) -> BTreeSet<(i8, String)> {
    let mut seen = BTreeSet::new();
    let mut repeated = BTreeSet::new();
    for (ty, name) in resources {
        if !seen.insert((ty, name.to_string())) {
            repeated.insert((ty, name.to_string()));
        }
    }
    repeated
}

pub fn check_repeated(
    repeated: &BTreeSet<(i8, String)>,
    ty: i8,
    name: &str,
) -> Result<(), (ResponseError, String)> {
    if repeated.contains(&(ty, name.to_string())) {
        return Err((
            ResponseError::InvalidRequest,
            "Each resource must appear at most once.".into(),
        ));
    }
    Ok(())
}

/// Kafka's checks of a resource's config list before anything else: no key
/// twice, and no null value where one is needed (`(name, value_is_null)`).
pub fn check_keys<'a>(
    configs: impl Iterator<Item = (&'a str, bool)>,
) -> Result<(), (ResponseError, String)> {
    let mut seen = BTreeSet::new();
    let mut nulls = Vec::new();
    for (name, null) in configs {
        if !seen.insert(name) {
            return Err((
                ResponseError::InvalidRequest,
                "Error due to duplicate config keys".into(),
            ));
        }
        if null {
            nulls.push(name);
        }
    }
    if !nulls.is_empty() {
        return Err((
            ResponseError::InvalidRequest,
            format!("Null value not supported for : {}", nulls.join(", ")),
        ));
    }
    Ok(())
}

/// The config resource named in a request, or the error to answer with.
pub fn resource(
    broker: &Broker,
    ty: i8,
    name: &str,
) -> Result<ConfigResource, (ResponseError, String)> {
    match ty {
        RESOURCE_TOPIC => Ok(ConfigResource::Topic(name.to_string())),
        RESOURCE_BROKER if name.is_empty() => Ok(ConfigResource::Broker(String::new())),
        RESOURCE_BROKER => match name.parse::<i32>() {
            Ok(id) if id == broker.node_id() => Ok(ConfigResource::Broker(name.to_string())),
            Ok(_) => Err((
                ResponseError::InvalidRequest,
                format!(
                    "Unexpected broker id, expected {}, but received {name}",
                    broker.node_id()
                ),
            )),
            Err(_) => Err((
                ResponseError::InvalidRequest,
                format!("Node id must be an integer, but it is: {name}"),
            )),
        },
        RESOURCE_GROUP => Ok(ConfigResource::Group(name.to_string())),
        other => Err((
            ResponseError::InvalidRequest,
            format!("Unknown resource type {other}"),
        )),
    }
}

/// Validates and (unless `validate_only`) commits config changes.
pub async fn apply(
    broker: &Broker,
    resource: &ConfigResource,
    changes: BTreeMap<String, Option<String>>,
    validate_only: bool,
) -> Result<(), (ResponseError, String)> {
    // New SSL material must load on this broker's listeners before it is
    // committed; the old acceptor serves on if it does not.
    crate::transport::tls_reload::validate_change(broker, resource, &changes)
        .map_err(|reason| (ResponseError::InvalidRequest, reason))?;
    let static_props = &broker.config.props;
    let outcome = if validate_only {
        Ok(
            controller::alter_configs(&broker.metadata.image(), resource, &changes, static_props)
                .map(|_| ()),
        )
    } else {
        broker
            .controller_update(|image| {
                controller::alter_configs(image, resource, &changes, static_props)
                    .map(|recs| (recs, ()))
            })
            .await
    };
    match outcome {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            let code = match &e {
                AlterConfigsError::Controller(c) => util::controller_error(c),
                AlterConfigsError::InvalidRequest(_) => ResponseError::InvalidRequest,
                AlterConfigsError::InvalidConfig(_) => ResponseError::InvalidConfig,
            };
            Err((code, e.to_string()))
        }
        Err(e) => Err((ResponseError::UnknownServerError, e.to_string())),
    }
}
