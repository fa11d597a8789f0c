//! ListConfigResources (key 74), versions 0-1 (KIP-1142; v0 is KIP-714's
//! ListClientMetricsResources): the names of the config resources of the
//! requested types, as Kafka's broker lists them: every topic, every
//! registered broker (as BROKER and as BROKER_LOGGER), the groups that have
//! configs, and client-metrics subscriptions (Gregor has none: KIP-714
//! telemetry is not served). An empty type list means every type; a type
//! outside TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS and GROUP answers
//! UNSUPPORTED_VERSION. v0 asks for client metrics only.

use gregor_metadata::ConfigResource;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::list_config_resources_response::ConfigResource as Listed;
use kafka_protocol::messages::{ListConfigResourcesRequest, ListConfigResourcesResponse};

use super::util::str_bytes;
use super::RequestContext;
use crate::broker::Broker;

const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const BROKER_LOGGER: i8 = 8;
const CLIENT_METRICS: i8 = 16;
const GROUP: i8 = 32;
const SUPPORTED: [i8; 5] = [TOPIC, BROKER, BROKER_LOGGER, CLIENT_METRICS, GROUP];

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: ListConfigResourcesRequest,
) -> Option<ListConfigResourcesResponse> {
    let mut resp = ListConfigResourcesResponse::default();
    // DESCRIBE_CONFIGS on the cluster.
    if !super::acl_util::authorize_cluster(
        broker,
        ctx,
        gregor_security::acl::AclOperation::DescribeConfigs,
    ) {
        resp.error_code = ResponseError::ClusterAuthorizationFailed.code();
        return Some(resp);
    }
    if ctx.api_version == 0 {
        // Client-metrics subscriptions only, and there are none.
        return Some(resp);
    }
    let types: Vec<i8> = if req.resource_types.is_empty() {
        SUPPORTED.to_vec()
    } else {
        req.resource_types
    };
    if types.iter().any(|t| !SUPPORTED.contains(t)) {
        resp.error_code = ResponseError::UnsupportedVersion.code();
        return Some(resp);
    }
    let image = broker.metadata.image();
    let mut push = |name: String, ty: i8| {
        let mut r = Listed::default();
        r.resource_name = str_bytes(name);
        r.resource_type = ty;
        resp.config_resources.push(r);
    };
    if types.contains(&TOPIC) {
        for t in image.topics() {
            push(t.name.clone(), TOPIC);
        }
    }
    for ty in [BROKER, BROKER_LOGGER] {
        if types.contains(&ty) {
            for id in image.brokers.keys() {
                push(id.to_string(), ty);
            }
        }
    }
    if types.contains(&GROUP) {
        let groups: Vec<String> = image
            .config_resources()
            .filter_map(|r| match r {
                ConfigResource::Group(g) => Some(g.clone()),
                _ => None,
            })
            .collect();
        for g in groups {
            push(g, GROUP);
        }
    }
    Some(resp)
}
