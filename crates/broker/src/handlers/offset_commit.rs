//! OffsetCommit (key 8), versions 2-9: member commits (generation checked)
//! and simple commits of standalone consumers.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::RequestContext;
use crate::broker::Broker;
use gregor_coordinator::Response;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: OffsetCommitRequest,
) -> Option<OffsetCommitResponse> {
    let p = broker.groups.partition_for(&req.group_id);
    let v = ctx.api_version;
    // Kept to answer every partition with an error if the coordinator fails.
    let topics: Vec<(kafka_protocol::messages::TopicName, Vec<i32>)> = req
        .topics
        .iter()
        .map(|t| {
            (
                t.name.clone(),
                t.partitions.iter().map(|p| p.partition_index).collect(),
            )
        })
        .collect();
    match broker
        .groups
        .call(p, move |s, now, id| s.commit_offsets(now, id, v, req))
        .await
    {
        Ok(Response::OffsetCommit(r)) => Some(r),
        other => {
            super::group_util::log_failure("OffsetCommit", other.err());
            let mut r = OffsetCommitResponse::default();
            for (name, parts) in topics {
                let mut t = OffsetCommitResponseTopic::default();
                t.name = name;
                for index in parts {
                    let mut rp = OffsetCommitResponsePartition::default();
                    rp.partition_index = index;
                    rp.error_code = ResponseError::CoordinatorNotAvailable.code();
                    t.partitions.push(rp);
                }
                r.topics.push(t);
            }
            Some(r)
        }
    }
}
