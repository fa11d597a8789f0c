//! ConsumerGroupDescribe (key 69), versions 0-1: KIP-848 consumer groups
//! with members' current and target assignments. Groups are split by shard
//! and the answers merged in request order.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::consumer_group_describe_response::DescribedGroup;
use kafka_protocol::messages::{ConsumerGroupDescribeRequest, ConsumerGroupDescribeResponse};

use super::RequestContext;
use crate::broker::Broker;
use crate::group_runtime::ImageTopics;
use gregor_coordinator::Response;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: ConsumerGroupDescribeRequest,
) -> Option<ConsumerGroupDescribeResponse> {
    let v = ctx.api_version;
    let order: Vec<String> = req.group_ids.iter().map(|g| g.to_string()).collect();
    let by_shard = broker
        .groups
        .by_partition(req.group_ids.iter().map(|g| (&***g, g.clone())));
    let image = broker.metadata.image();
    let mut groups = Vec::new();
    for (p, shard_groups) in by_shard {
        let mut sub = req.clone();
        sub.group_ids = shard_groups.clone();
        let topics = ImageTopics(image.clone());
        match broker
            .groups
            .call(p, move |s, _, id| {
                s.consumer_group_describe(id, v, sub, &topics)
            })
            .await
        {
            Ok(Response::ConsumerGroupDescribe(r)) => groups.extend(r.groups),
            other => {
                super::group_util::log_failure("ConsumerGroupDescribe", other.err());
                for name in shard_groups {
                    let mut g = DescribedGroup::default();
                    g.group_id = name;
                    g.error_code = ResponseError::CoordinatorNotAvailable.code();
                    groups.push(g);
                }
            }
        }
    }
    groups.sort_by_key(|g: &DescribedGroup| {
        order
            .iter()
            .position(|o| *g.group_id == **o)
            .unwrap_or(usize::MAX)
    });
    let mut resp = ConsumerGroupDescribeResponse::default();
    resp.groups = groups;
    Some(resp)
}
