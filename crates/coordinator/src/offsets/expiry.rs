//! Offset expiry (Kafka's `cleanupGroupMetadata`, every
//! `offsets.retention.check.interval.ms`). Since Kafka 2.1 (KIP-211) the
//! offsets of a consumer group only age once the group is Empty: they expire
//! `offsets.retention.ms` after the group became Empty. Simple groups (no
//! protocol type) age from each commit, and a Stable consumer group ages the
//! offsets of topics it no longer subscribes to. An Empty group left with no
//! offsets is deleted (GroupMetadata tombstone). Offsets a pending
//! transactional commit may replace, and groups with an open transaction,
//! wait for the transaction to end.

use std::collections::BTreeMap;

use super::{tombstone, OffsetStore};
use crate::classic::group_metadata_record;
use crate::group::{ClassicGroup, GroupState, CONSUMER_PROTOCOL_TYPE};
use crate::records::OffsetCommitValue;
use crate::{GroupConfig, OffsetsRecord, Output};

/// What an offset's age counts from (Kafka's `OffsetExpirationCondition`).
#[derive(Clone, Copy)]
enum Base {
    /// The moment the group became Empty (or the commit, if unknown).
    EmptySince(Option<i64>),
    CommitTimestamp,
}

fn expiration_base(g: &ClassicGroup) -> Option<Base> {
    match g.protocol_type.as_deref() {
        None => Some(Base::CommitTimestamp),
        Some(_) if g.state == GroupState::Empty => Some(Base::EmptySince(g.state_timestamp)),
        Some(CONSUMER_PROTOCOL_TYPE)
            if g.subscribed_topics.is_some() && g.state == GroupState::Stable =>
        {
            Some(Base::CommitTimestamp)
        }
        Some(_) => None,
    }
}

fn expired(v: &OffsetCommitValue, base: Base, now_ms: i64, retention_ms: i64) -> bool {
    if let Some(expire) = v.expire_timestamp {
        // A commit with its own retention (OffsetCommit v2-4) keeps the old rule.
        return now_ms >= expire;
    }
    let from = match base {
        Base::EmptySince(Some(t)) => t,
        Base::EmptySince(None) | Base::CommitTimestamp => v.commit_timestamp,
    };
    now_ms - from >= retention_ms
}

pub(crate) fn expire_offsets(
    groups: &mut BTreeMap<String, ClassicGroup>,
    offsets: &mut OffsetStore,
    cfg: &GroupConfig,
    now_ms: i64,
    out: &mut Output,
) {
    let ids: Vec<String> = groups.keys().cloned().collect();
    for group_id in ids {
        let Some(g) = groups.get(&group_id) else {
            continue;
        };
        let Some(base) = expiration_base(g) else {
            continue;
        };
        let mut all_expired = true;
        let mut doomed = Vec::new();
        if let Some(topics) = offsets.group(&group_id) {
            for (topic, parts) in topics {
                if g.is_subscribed_to(topic) {
                    all_expired = false;
                    continue;
                }
                for (&p, c) in parts {
                    // Kafka keeps an offset a pending transaction may replace.
                    if expired(&c.value, base, now_ms, cfg.offsets_retention_ms)
                        && !offsets.has_pending(&group_id, topic, p)
                    {
                        doomed.push((topic.clone(), p));
                    } else {
                        all_expired = false;
                    }
                }
            }
        }
        for (topic, p) in &doomed {
            offsets.remove(&group_id, topic, *p);
            out.records.push(tombstone(&group_id, topic, *p));
        }
        if !doomed.is_empty() {
            tracing::info!(group = %group_id, count = doomed.len(), "expired committed offsets");
        }
        // Not in Kafka: a group with a KIP-394 pending member is about to be
        // joined; deleting it would turn that member's rejoin into an error.
        // A group with an open transaction stays: its commit may add offsets.
        if all_expired
            && g.state == GroupState::Empty
            && g.pending_members.is_empty()
            && !offsets.has_open_transactions(&group_id)
        {
            let key = group_metadata_record(g).key;
            out.records.push(OffsetsRecord { key, value: None });
            groups.remove(&group_id);
            tracing::info!(group = %group_id, "deleted empty group without offsets");
        }
    }
}
