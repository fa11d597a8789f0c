//! DescribeGroups (API 15, v0-6), ListGroups (API 16, v0-5) and DeleteGroups
//! (API 42, v0-2): the admin view of this shard's groups.

use std::collections::BTreeMap;

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DeleteGroupsResponse, DescribeGroupsRequest, DescribeGroupsResponse,
    ListGroupsRequest, ListGroupsResponse,
};

use crate::classic::code;
use crate::classic::join::sb;
use crate::group::{ClassicGroup, GroupState};
use crate::offsets::{tombstone, OffsetStore};
use crate::{OffsetsRecord, Output, RequestId, Response};

/// Kafka leaves authorized operations to the request layer; without an
/// authorizer every operation a group supports is allowed: READ (3),
/// DELETE (6), DESCRIBE (8) as a bit field.
pub const GROUP_AUTHORIZED_OPERATIONS: i32 = (1 << 3) | (1 << 6) | (1 << 8);

/// The group type ListGroups v5 reports for classic groups.
const CLASSIC_GROUP_TYPE: &str = "classic";

fn describe_one(
    g: Option<&ClassicGroup>,
    group_id: &str,
    version: i16,
    include_ops: bool,
) -> DescribedGroup {
    let mut d = DescribedGroup::default();
    d.group_id = kafka_protocol::messages::GroupId(sb(group_id));
    if version >= 3 {
        d.authorized_operations = if include_ops {
            GROUP_AUTHORIZED_OPERATIONS
        } else {
            i32::MIN
        };
    }
    let Some(g) = g.filter(|g| g.state != GroupState::Dead) else {
        if version >= 6 {
            // KIP-1043: v6 reports a missing group as an error.
            d.error_code = code(ResponseError::GroupIdNotFound);
            d.error_message = Some(sb(&format!("Group {group_id} not found.")));
        }
        d.group_state = sb(GroupState::Dead.name());
        return d;
    };
    d.group_state = sb(g.state.name());
    d.protocol_type = sb(g.protocol_type.as_deref().unwrap_or(""));
    // Only a Stable group has a settled protocol and assignment to show.
    let stable_protocol = (g.state == GroupState::Stable)
        .then(|| g.protocol_name.clone())
        .flatten();
    d.protocol_data = sb(stable_protocol.as_deref().unwrap_or(""));
    d.members = g
        .members
        .iter()
        .map(|m| {
            let mut dm = DescribedGroupMember::default();
            dm.member_id = sb(&m.id);
            if version >= 4 {
                dm.group_instance_id = m.instance_id.as_deref().map(sb);
            }
            dm.client_id = sb(&m.client_id);
            dm.client_host = sb(&m.client_host);
            if let Some(p) = stable_protocol.as_deref() {
                dm.member_metadata = m.metadata(p).cloned().unwrap_or_default();
                dm.member_assignment = m.assignment.clone();
            }
            dm
        })
        .collect();
    d
}

pub(crate) fn describe_groups(
    groups: &BTreeMap<String, ClassicGroup>,
    id: RequestId,
    version: i16,
    req: DescribeGroupsRequest,
    out: &mut Output,
) {
    let mut resp = DescribeGroupsResponse::default();
    for group_id in &req.groups {
        resp.groups.push(describe_one(
            groups.get(group_id.as_str()),
            group_id.as_str(),
            version,
            req.include_authorized_operations,
        ));
    }
    out.responses.push((id, Response::DescribeGroups(resp)));
}

pub(crate) fn list_groups(
    groups: &BTreeMap<String, ClassicGroup>,
    id: RequestId,
    version: i16,
    req: &ListGroupsRequest,
    out: &mut Output,
) {
    let states: Vec<String> = if version >= 4 {
        req.states_filter.iter().map(|s| s.to_lowercase()).collect()
    } else {
        Vec::new()
    };
    let types: Vec<String> = if version >= 5 {
        req.types_filter.iter().map(|s| s.to_lowercase()).collect()
    } else {
        Vec::new()
    };
    let mut resp = ListGroupsResponse::default();
    if !types.is_empty() && !types.iter().any(|t| t == CLASSIC_GROUP_TYPE) {
        out.responses.push((id, Response::ListGroups(resp)));
        return;
    }
    for g in groups.values().filter(|g| g.state != GroupState::Dead) {
        if !states.is_empty() && !states.contains(&g.state.name().to_lowercase()) {
            continue;
        }
        let mut lg = ListedGroup::default();
        lg.group_id = kafka_protocol::messages::GroupId(sb(&g.id));
        lg.protocol_type = sb(g.protocol_type.as_deref().unwrap_or(""));
        if version >= 4 {
            lg.group_state = sb(g.state.name());
        }
        if version >= 5 {
            lg.group_type = sb(CLASSIC_GROUP_TYPE);
        }
        resp.groups.push(lg);
    }
    out.responses.push((id, Response::ListGroups(resp)));
}

pub(crate) fn delete_groups(
    groups: &mut BTreeMap<String, ClassicGroup>,
    offsets: &mut OffsetStore,
    id: RequestId,
    req: DeleteGroupsRequest,
    out: &mut Output,
) {
    let mut resp = DeleteGroupsResponse::default();
    for group_id in &req.groups_names {
        let name = group_id.as_str();
        let error = match groups.get(name) {
            None => code(ResponseError::GroupIdNotFound),
            Some(g) if g.state == GroupState::Dead => code(ResponseError::GroupIdNotFound),
            Some(g) if g.state != GroupState::Empty => code(ResponseError::NonEmptyGroup),
            Some(g) => {
                // Offsets first, then the group: a reader of the log never
                // sees offsets outliving their group's tombstone.
                for (topic, p) in offsets.partitions_of(name) {
                    offsets.remove(name, &topic, p);
                    out.records.push(tombstone(name, &topic, p));
                }
                let key = crate::classic::group_metadata_record(g).key;
                out.records.push(OffsetsRecord { key, value: None });
                // Pending members' session timers fire harmlessly later.
                groups.remove(name);
                0
            }
        };
        let mut r = DeletableGroupResult::default();
        r.group_id = group_id.clone();
        r.error_code = error;
        resp.results.push(r);
    }
    out.responses.push((id, Response::DeleteGroups(resp)));
}
