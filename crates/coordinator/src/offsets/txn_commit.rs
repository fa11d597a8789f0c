//! TxnOffsetCommit (API 28, v0-5): offsets committed inside a transaction
//! (Kafka's `OffsetMetadataManager.commitTransactionalOffset`).
//!
//! The records are ordinary OffsetCommit records, but the runtime appends
//! them as a transactional batch of the producer ([`crate::Output::producer`]).
//! Until that producer's COMMIT marker lands in this partition
//! ([`crate::GroupCoordinatorShard::complete_txn`]) they are pending: not
//! visible to OffsetFetch, which answers UNSTABLE_OFFSET_COMMIT for them when
//! asked for stable offsets. An ABORT marker drops them.
//!
//! Validation is OffsetCommit's without the group state rules: v3+ clients
//! send their member id and generation (checked when given), v0-2 send
//! none; a group that does not exist is created as a simple group when the
//! generation is -1. Group-level errors answer every partition.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{TxnOffsetCommitRequest, TxnOffsetCommitResponse};

use super::{commit_record, OffsetStore};
use crate::consumer::ConsumerGroup;
use crate::group::ClassicGroup;
use crate::records::OffsetCommitValue;
use crate::{GroupConfig, Output, RequestId, Response};

/// Kafka's `validateTransactionalOffsetCommit`.
fn validate(
    groups: &mut BTreeMap<String, ClassicGroup>,
    consumer: &BTreeMap<String, ConsumerGroup>,
    now_ms: i64,
    req: &TxnOffsetCommitRequest,
) -> Result<(), ResponseError> {
    let group_id = req.group_id.as_str();
    if group_id.is_empty() {
        return Err(ResponseError::InvalidGroupId);
    }
    let member_id = req.member_id.as_str();
    let generation = req.generation_id;
    if let Some(g) = consumer.get(group_id) {
        return crate::consumer::admin::validate_commit(g, member_id, generation, None);
    }
    match groups.get(group_id) {
        Some(g) => super::commit::validate(
            g,
            member_id,
            req.group_instance_id.as_deref(),
            generation,
            true,
        ),
        None if generation < 0 => {
            // The admin client or a consumer without group management: a
            // simple group (no protocol type) is created, Empty.
            groups.insert(group_id.to_owned(), ClassicGroup::new(group_id, now_ms));
            Ok(())
        }
        None => Err(ResponseError::IllegalGeneration),
    }
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn txn_offset_commit(
    groups: &mut BTreeMap<String, ClassicGroup>,
    consumer: &BTreeMap<String, ConsumerGroup>,
    offsets: &mut OffsetStore,
    cfg: &GroupConfig,
    now_ms: i64,
    id: RequestId,
    version: i16,
    req: &TxnOffsetCommitRequest,
    out: &mut Output,
) {
    let _ = version; // v0-1 have no leader epoch: the decoder leaves -1.
    let result = validate(groups, consumer, now_ms, req);
    let group_id = req.group_id.as_str();
    let producer_id = req.producer_id.0;
    let mut resp = TxnOffsetCommitResponse::default();
    for topic in &req.topics {
        let mut rt = TxnOffsetCommitResponseTopic::default();
        rt.name = topic.name.clone();
        for p in &topic.partitions {
            let mut rp = TxnOffsetCommitResponsePartition::default();
            rp.partition_index = p.partition_index;
            let metadata = p.committed_metadata.as_deref().unwrap_or("");
            rp.error_code = match result {
                Err(e) => e.code(),
                Ok(()) if metadata.len() > cfg.offset_metadata_max_bytes => {
                    ResponseError::OffsetMetadataTooLarge.code()
                }
                Ok(()) => {
                    let v = OffsetCommitValue {
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: metadata.to_owned(),
                        commit_timestamp: now_ms,
                        expire_timestamp: None,
                    };
                    out.records.push(commit_record(
                        group_id,
                        topic.name.as_str(),
                        p.partition_index,
                        &v,
                    ));
                    offsets.put_pending(
                        producer_id,
                        group_id,
                        topic.name.as_str(),
                        p.partition_index,
                        v,
                    );
                    0
                }
            };
            rt.partitions.push(rp);
        }
        resp.topics.push(rt);
    }
    if !out.records.is_empty() {
        out.producer = Some((producer_id, req.producer_epoch));
    }
    out.responses.push((id, Response::TxnOffsetCommit(resp)));
}
