//! DeleteRecords (key 21), versions 0-2: moves the log start offset forward;
//! offset -1 means the high watermark.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

use super::util;
use super::RequestContext;
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: DeleteRecordsRequest,
) -> Option<DeleteRecordsResponse> {
    let mut resp = DeleteRecordsResponse::default();
    let authz = super::acl_util::Authz::new(broker, ctx);
    for topic in req.topics {
        let mut t = DeleteRecordsTopicResult::default();
        t.name = topic.name.clone();
        // DELETE on the topic, before its existence.
        let denied = !authz.allows(
            gregor_security::acl::AclOperation::Delete,
            gregor_security::acl::ResourceType::Topic,
            &topic.name,
        );
        for p in topic.partitions {
            let mut r = DeleteRecordsPartitionResult::default();
            r.partition_index = p.partition_index;
            r.low_watermark = -1;
            match broker.partition(&topic.name, p.partition_index) {
                _ if denied => r.error_code = ResponseError::TopicAuthorizationFailed.code(),
                None => {
                    r.error_code =
                        super::util::not_hosted(broker, &topic.name, p.partition_index).code()
                }
                Some(partition) if !partition.is_leader() => {
                    r.error_code = ResponseError::NotLeaderOrFollower.code()
                }
                Some(partition) => {
                    let hw = partition.high_watermark();
                    let target = if p.offset == -1 { hw } else { p.offset };
                    if target < 0 || target > hw {
                        r.error_code = ResponseError::OffsetOutOfRange.code();
                    } else {
                        match partition.delete_records_before(target) {
                            Ok(low) => r.low_watermark = low,
                            Err(e) => {
                                broker.on_storage_error(&partition.tp, &e);
                                r.error_code = util::storage_error(&e).code();
                            }
                        }
                    }
                }
            }
            t.partitions.push(r);
        }
        resp.topics.push(t);
    }
    if let Err(e) = broker.checkpoint_async().await {
        tracing::warn!(error = %e, "checkpoint after DeleteRecords failed");
    }
    Some(resp)
}
