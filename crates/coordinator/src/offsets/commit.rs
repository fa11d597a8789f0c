//! OffsetCommit (API 8, v2-9). Validation follows Kafka's classic-group
//! rules: a "simple" commit (generation < 0, no member id) is accepted when
//! the group is Empty or unknown (which creates it), a member's commit needs
//! its current member id and generation, and nothing commits while the group
//! waits for the leader's assignment (CompletingRebalance).
//!
//! The new offsets are applied to memory when the records are produced: the
//! runtime appends `Output.records` before sending the response, and an
//! append failure is fatal for the shard (it reloads from the log), so no
//! reader can observe an offset that did not reach the log.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

use super::{commit_record, OffsetStore};
use crate::classic::code;
use crate::group::{ClassicGroup, GroupState};
use crate::records::OffsetCommitValue;
use crate::{GroupConfig, Output, RequestId, Response};

/// Kafka's `ClassicGroup.validateOffsetCommit`. A transactional commit
/// (TxnOffsetCommit) skips the group state rules: its v0-2 requests carry no
/// member at all, and the group's state is not enforced for it.
pub(crate) fn validate(
    g: &ClassicGroup,
    member_id: &str,
    instance_id: Option<&str>,
    generation: i32,
    transactional: bool,
) -> Result<(), ResponseError> {
    if g.state == GroupState::Dead {
        return Err(ResponseError::CoordinatorNotAvailable);
    }
    if generation < 0 && g.state == GroupState::Empty {
        return Ok(());
    }
    if generation >= 0 || !member_id.is_empty() || instance_id.is_some() {
        g.validate_member(member_id, instance_id)?;
        if generation != g.generation {
            return Err(ResponseError::IllegalGeneration);
        }
    } else if !transactional && g.state != GroupState::Empty {
        // No member id and no generation: only an Empty group accepts it.
        return Err(ResponseError::UnknownMemberId);
    }
    if !transactional && g.state == GroupState::CompletingRebalance {
        // The member has its JoinGroup response but not its assignment yet:
        // it should not be committing; make it finish the rebalance.
        return Err(ResponseError::RebalanceInProgress);
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub(crate) fn commit_offsets(
    groups: &mut BTreeMap<String, ClassicGroup>,
    offsets: &mut OffsetStore,
    cfg: &GroupConfig,
    now_ms: i64,
    id: RequestId,
    version: i16,
    req: OffsetCommitRequest,
    out: &mut Output,
) {
    let group_id = req.group_id.as_str();
    let member_id = req.member_id.as_str();
    let instance_id = req.group_instance_id.as_deref();
    let generation = req.generation_id_or_member_epoch;

    let result = match groups.get(group_id) {
        Some(g) => validate(g, member_id, instance_id, generation, false),
        None if generation < 0 => {
            // A consumer that only uses Kafka to store offsets: a "simple"
            // group (no protocol type) is created in Empty state.
            groups.insert(group_id.to_owned(), ClassicGroup::new(group_id, now_ms));
            Ok(())
        }
        // v9 clients understand GROUP_ID_NOT_FOUND; older ones get
        // ILLEGAL_GENERATION as Kafka always answered.
        None if version >= 9 => Err(ResponseError::GroupIdNotFound),
        None => Err(ResponseError::IllegalGeneration),
    };
    if result.is_ok() && !member_id.is_empty() {
        if let Some(g) = groups.get_mut(group_id) {
            // A commit proves the member is alive (Kafka's classic coordinator
            // treats it as a heartbeat).
            if g.has_member(member_id) {
                g.reschedule_session(member_id, now_ms, out);
            }
        }
    }
    write_commits(offsets, cfg, now_ms, id, version, &req, result, out);
}

/// Writes the commits of a validated request (`result` is the group
/// check's outcome: its error goes to every partition), and answers.
#[allow(clippy::too_many_arguments)]
pub(crate) fn write_commits(
    offsets: &mut OffsetStore,
    cfg: &GroupConfig,
    now_ms: i64,
    id: RequestId,
    version: i16,
    req: &OffsetCommitRequest,
    result: Result<(), ResponseError>,
    out: &mut Output,
) {
    let group_id = req.group_id.as_str();
    // v2-4 carry a retention; -1 means the broker default.
    let expire_timestamp = (version <= 4 && req.retention_time_ms != -1)
        .then(|| now_ms.saturating_add(req.retention_time_ms));

    let mut resp = OffsetCommitResponse::default();
    for topic in &req.topics {
        let mut rt = OffsetCommitResponseTopic::default();
        rt.name = topic.name.clone();
        for p in &topic.partitions {
            let mut rp = OffsetCommitResponsePartition::default();
            rp.partition_index = p.partition_index;
            let metadata = p.committed_metadata.as_deref().unwrap_or("");
            rp.error_code = match result {
                Err(e) => code(e),
                Ok(()) if metadata.len() > cfg.offset_metadata_max_bytes => {
                    code(ResponseError::OffsetMetadataTooLarge)
                }
                Ok(()) => {
                    let v = OffsetCommitValue {
                        offset: p.committed_offset,
                        leader_epoch: p.committed_leader_epoch,
                        metadata: metadata.to_owned(),
                        commit_timestamp: now_ms,
                        expire_timestamp,
                    };
                    out.records.push(commit_record(
                        group_id,
                        topic.name.as_str(),
                        p.partition_index,
                        &v,
                    ));
                    offsets.put(group_id, topic.name.as_str(), p.partition_index, v);
                    0
                }
            };
            rt.partitions.push(rp);
        }
        resp.topics.push(rt);
    }
    out.responses.push((id, Response::OffsetCommit(resp)));
}
