//! ListOffsets (key 2), versions 1-10: earliest (-2), latest (-1, the log end
//! offset), max timestamp (-3), earliest local (-4), latest tiered (-5), or the
//! first offset whose timestamp is at least the given one. Offsets stop at
//! the high watermark, or for `read_committed` (isolation level 1) at the
//! last stable offset.

use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

use super::util;
use super::RequestContext;
use crate::broker::Broker;
use gregor_security::acl::{AclOperation as Op, ResourceType};
use kafka_protocol::error::ResponseError;

pub const LATEST: i64 = -1;
pub const EARLIEST: i64 = -2;
pub const MAX_TIMESTAMP: i64 = -3;
pub const EARLIEST_LOCAL: i64 = -4;
pub const LATEST_TIERED: i64 = -5;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: ListOffsetsRequest,
) -> Option<ListOffsetsResponse> {
    let mut resp = ListOffsetsResponse::default();
    let authz = super::acl_util::Authz::new(broker, ctx);
    for topic in req.topics {
        let mut t = ListOffsetsTopicResponse::default();
        t.name = topic.name.clone();
        // DESCRIBE on the topic, before its existence.
        let denied = !authz.allows(Op::Describe, ResourceType::Topic, &topic.name);
        for p in topic.partitions {
            let mut r = ListOffsetsPartitionResponse::default();
            r.partition_index = p.partition_index;
            r.timestamp = -1;
            r.offset = -1;
            r.leader_epoch = -1;
            if denied {
                r.error_code = ResponseError::TopicAuthorizationFailed.code();
                t.partitions.push(r);
                continue;
            }
            let Some(partition) = broker.partition(&topic.name, p.partition_index) else {
                r.error_code =
                    super::util::not_hosted(broker, &topic.name, p.partition_index).code();
                t.partitions.push(r);
                continue;
            };
            // A replica's own lookups (its fetcher's) skip the settled check,
            // as Kafka's do (no isolation level).
            let client = req.replica_id.0 < 0;
            if let Err(e) = partition
                .check_leader()
                .and_then(|()| partition.check_leader_epoch(p.current_leader_epoch))
                .and_then(|()| {
                    if client {
                        partition.check_high_watermark_settled()
                    } else {
                        Ok(())
                    }
                })
            {
                r.error_code = util::partition_error(&e).code();
                t.partitions.push(r);
                continue;
            }
            let log = partition.log();
            // Kafka's last fetchable offset: read_committed (v2+ isolation
            // level 1) stops at the last stable offset, read_uncommitted
            // (and our replica fetchers' lookups) at the high watermark.
            let fetchable = if client && ctx.api_version >= 2 && req.isolation_level == 1 {
                partition.last_stable_offset()
            } else {
                partition.high_watermark()
            };
            let found = match p.timestamp {
                LATEST => Ok(Some((fetchable, -1))),
                EARLIEST | EARLIEST_LOCAL => Ok(Some((log.log_start_offset(), -1))),
                MAX_TIMESTAMP => log.max_timestamp_offset(),
                LATEST_TIERED => Ok(Some((-1, -1))),
                ts => log
                    .offset_for_timestamp(ts)
                    .map(|found| found.filter(|(offset, _)| *offset < fetchable)),
            };
            match found {
                Ok(Some((offset, timestamp))) => {
                    r.offset = offset;
                    r.timestamp = timestamp;
                    if ctx.api_version >= 4 {
                        r.leader_epoch = partition.leader_epoch();
                    }
                }
                Ok(None) => {}
                Err(e) => {
                    broker.on_storage_error(&partition.tp, &e);
                    r.error_code = util::storage_error(&e).code();
                }
            }
            t.partitions.push(r);
        }
        resp.topics.push(t);
    }
    Some(resp)
}
