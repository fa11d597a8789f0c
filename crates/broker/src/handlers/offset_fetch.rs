//! OffsetFetch (key 9), versions 1-9 (several groups per request from v8,
//! each answered by its own coordinator shard).

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::offset_fetch_response::OffsetFetchResponseGroup;
use kafka_protocol::messages::{OffsetFetchRequest, OffsetFetchResponse};

use super::acl_util::Authz;
use super::group_util::{in_request_order, per_shard};
use super::RequestContext;
use crate::broker::Broker;
use gregor_security::acl::{AclOperation as Op, ResourceType};

/// Of a group's offsets, those of topics the caller may DESCRIBE: when the
/// request named its topics the others are refused per partition
/// (TOPIC_AUTHORIZATION_FAILED, no offset), else left out. A macro because
/// the response's topic types differ before and from v8.
macro_rules! describable_offsets {
    ($topics:expr, $authz:expr, $named:expr) => {
        $topics.retain_mut(|t| {
            let ok = $authz.allows(Op::Describe, ResourceType::Topic, &t.name);
            if !ok && $named {
                for p in &mut t.partitions {
                    p.committed_offset = -1;
                    p.committed_leader_epoch = -1;
                    p.metadata = None;
                    p.error_code = ResponseError::TopicAuthorizationFailed.code();
                }
            }
            ok || $named
        })
    };
}

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: OffsetFetchRequest,
) -> Option<OffsetFetchResponse> {
    let v = ctx.api_version;
    // DESCRIBE on the group; of the offsets, only those of topics the
    // caller may describe: named ones it may not are refused per partition,
    // and a fetch of all offsets leaves them out (Kafka's handler).
    let authz = Authz::new(broker, ctx);
    if v < 8 {
        if !authz.allows(Op::Describe, ResourceType::Group, &req.group_id) {
            let mut r = OffsetFetchResponse::default();
            r.error_code = ResponseError::GroupAuthorizationFailed.code();
            return Some(r);
        }
        let named = req.topics.is_some();
        let p = broker.groups.partition_for(&req.group_id);
        let mut r = match broker
            .groups
            .call(p, move |s, _, id| s.fetch_offsets(id, v, req))
            .await
        {
            Ok(r) => r,
            Err(e) => {
                super::group_util::log_failure("OffsetFetch", &e);
                let mut r = OffsetFetchResponse::default();
                r.error_code = super::group_util::failure_code(&e).code();
                r
            }
        };
        describable_offsets!(r.topics, authz, named);
        return Some(r);
    }
    let (allowed, denied): (Vec<_>, Vec<_>) = req
        .groups
        .iter()
        .cloned()
        .partition(|g| authz.allows(Op::Describe, ResourceType::Group, &g.group_id));
    let named: std::collections::HashSet<String> = allowed
        .iter()
        .filter(|g| g.topics.is_some())
        .map(|g| g.group_id.to_string())
        .collect();
    let mut groups = per_shard(
        broker,
        "OffsetFetch",
        &allowed,
        |g| &g.group_id,
        |s, _, id, groups| {
            let mut sub = req.clone();
            sub.groups = groups;
            s.fetch_offsets(id, v, sub)
        },
        |r: OffsetFetchResponse| r.groups,
        |g, code| {
            let mut out = OffsetFetchResponseGroup::default();
            out.group_id = g.group_id.clone();
            out.error_code = code.code();
            out
        },
    )
    .await;
    for g in &mut groups {
        let named = named.contains(g.group_id.as_str());
        describable_offsets!(g.topics, authz, named);
    }
    groups.extend(denied.into_iter().map(|g| {
        let mut out = OffsetFetchResponseGroup::default();
        out.group_id = g.group_id;
        out.error_code = ResponseError::GroupAuthorizationFailed.code();
        out
    }));
    let order: Vec<&str> = req.groups.iter().map(|g| &**g.group_id).collect();
    in_request_order(&mut groups, &order, |g| &g.group_id);
    let mut resp = OffsetFetchResponse::default();
    resp.groups = groups;
    Some(resp)
}
