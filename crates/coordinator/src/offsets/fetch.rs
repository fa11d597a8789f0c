//! OffsetFetch (API 9, v1-9). Read-only. A partition without a committed
//! offset, or a group that does not exist, answers offset -1 with no error
//! (that is how clients learn to apply `auto.offset.reset`). v8+ batch
//! several groups. With `require_stable` (v7+, consumers with
//! `isolation.level=read_committed`) a partition with a pending
//! transactional offset answers UNSTABLE_OFFSET_COMMIT (per partition, as
//! Kafka's group coordinator does) and the client retries; without it the
//! committed offset is returned as if the transaction did not exist.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse, TopicName};

use super::OffsetStore;
use crate::classic::join::sb;
use crate::group::{ClassicGroup, GroupState};
use crate::records::OffsetCommitValue;
use crate::{Output, RequestId, Response};

/// (topic, [(partition, committed)]) in request order, or every committed
/// partition when `topics` is `None`.
type Fetched<'a> = Vec<(String, Vec<(i32, Option<&'a OffsetCommitValue>)>)>;

fn fetch_group<'a>(
    groups: &BTreeMap<String, ClassicGroup>,
    offsets: &'a OffsetStore,
    group_id: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
    consumer_group: bool,
) -> Fetched<'a> {
    let known = consumer_group
        || groups
            .get(group_id)
            .is_some_and(|g| g.state != GroupState::Dead);
    match topics {
        Some(topics) => topics
            .into_iter()
            .map(|(topic, parts)| {
                let parts = parts
                    .into_iter()
                    .map(|p| (p, offsets.get(group_id, &topic, p).filter(|_| known)))
                    .collect();
                (topic, parts)
            })
            .collect(),
        None if !known => Vec::new(),
        None => offsets
            .group(group_id)
            .into_iter()
            .flat_map(|t| t.iter())
            .map(|(topic, parts)| {
                (
                    topic.clone(),
                    parts.iter().map(|(&p, c)| (p, Some(&c.value))).collect(),
                )
            })
            .collect(),
    }
}

/// For a consumer group id: the member check's outcome (`None` for other ids).
pub(crate) type ConsumerCheck<'a> =
    &'a dyn Fn(&str, Option<&str>, i32) -> Option<Result<(), kafka_protocol::error::ResponseError>>;

pub(crate) fn fetch_offsets(
    groups: &BTreeMap<String, ClassicGroup>,
    consumer: ConsumerCheck<'_>,
    offsets: &OffsetStore,
    id: RequestId,
    version: i16,
    req: OffsetFetchRequest,
    out: &mut Output,
) {
    let mut resp = OffsetFetchResponse::default();
    if version >= 8 {
        for g in &req.groups {
            let topics = g.topics.as_ref().map(|ts| {
                ts.iter()
                    .map(|t| (t.name.as_str().to_owned(), t.partition_indexes.clone()))
                    .collect()
            });
            let mut rg = OffsetFetchResponseGroup::default();
            rg.group_id = g.group_id.clone();
            let check = consumer(g.group_id.as_str(), g.member_id.as_deref(), g.member_epoch);
            if let Some(Err(e)) = check {
                rg.error_code = e.code();
                resp.groups.push(rg);
                continue;
            }
            let is_consumer = check.is_some();
            let group_id = g.group_id.as_str();
            for (topic, parts) in fetch_group(groups, offsets, group_id, topics, is_consumer) {
                let mut rt = OffsetFetchResponseTopics::default();
                rt.name = TopicName(sb(&topic));
                for (p, v) in parts {
                    let mut rp = OffsetFetchResponsePartitions::default();
                    rp.partition_index = p;
                    let unstable = req.require_stable && offsets.has_pending(group_id, &topic, p);
                    let v = v.filter(|_| !unstable);
                    if unstable {
                        rp.error_code = ResponseError::UnstableOffsetCommit.code();
                    }
                    rp.committed_offset = v.map_or(-1, |v| v.offset);
                    rp.committed_leader_epoch = v.map_or(-1, |v| v.leader_epoch);
                    rp.metadata = Some(sb(v.map_or("", |v| v.metadata.as_str())));
                    rt.partitions.push(rp);
                }
                rg.topics.push(rt);
            }
            resp.groups.push(rg);
        }
    } else {
        let topics = req.topics.as_ref().map(|ts| {
            ts.iter()
                .map(|t| (t.name.as_str().to_owned(), t.partition_indexes.clone()))
                .collect()
        });
        let is_consumer = consumer(req.group_id.as_str(), None, -1).is_some();
        for (topic, parts) in
            fetch_group(groups, offsets, req.group_id.as_str(), topics, is_consumer)
        {
            let mut rt = OffsetFetchResponseTopic::default();
            rt.name = TopicName(sb(&topic));
            for (p, v) in parts {
                let mut rp = OffsetFetchResponsePartition::default();
                rp.partition_index = p;
                let unstable =
                    req.require_stable && offsets.has_pending(req.group_id.as_str(), &topic, p);
                let v = v.filter(|_| !unstable);
                if unstable {
                    rp.error_code = ResponseError::UnstableOffsetCommit.code();
                }
                rp.committed_offset = v.map_or(-1, |v| v.offset);
                if version >= 5 {
                    rp.committed_leader_epoch = v.map_or(-1, |v| v.leader_epoch);
                }
                rp.metadata = Some(sb(v.map_or("", |v| v.metadata.as_str())));
                rt.partitions.push(rp);
            }
            resp.topics.push(rt);
        }
    }
    out.responses.push((id, Response::OffsetFetch(resp)));
}
