//! FindCoordinator (key 10), versions 0-6: a group's coordinator is the
//! leader of its `__consumer_offsets` partition, a transactional id's the
//! leader of its `__transaction_state` partition (COORDINATOR_NOT_AVAILABLE
//! while it has none). The first request of each kind creates its topic, as
//! Kafka does.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::acl_util::Authz;
use super::util::str_bytes;
use super::RequestContext;
use crate::broker::Broker;
use gregor_security::acl::{AclOperation as Op, ResourceType};

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: FindCoordinatorRequest,
) -> Option<FindCoordinatorResponse> {
    let error = match req.key_type {
        KEY_TYPE_GROUP => broker.groups.ensure_topic().await.err().map(|e| {
            tracing::warn!(error = %e, "cannot create the offsets topic");
            ResponseError::CoordinatorNotAvailable
        }),
        KEY_TYPE_TRANSACTION => broker.txns.ensure_topic().await.err().map(|e| {
            tracing::warn!(error = %e, "cannot create the transaction state topic");
            ResponseError::CoordinatorNotAvailable
        }),
        _ => Some(ResponseError::InvalidRequest),
    };
    // Where the coordinator of `key` is: `(node, host, port)`.
    let locate = |key: &str| -> Result<(i32, String, u16), ResponseError> {
        let (leader, topic, partition) = if req.key_type == KEY_TYPE_GROUP {
            let p = broker.groups.partition_for(key);
            (broker.groups.leader_of(broker, p), broker.groups.topic(), p)
        } else {
            let p = broker.txns.partition_for(key);
            (broker.txns.leader_of(broker, p), broker.txns.topic(), p)
        };
        // The image may name this node before its partition is set up (a
        // topic another request just created): not yet, the client retries.
        // A partition whose log is still loading (a restart) is this
        // node's: Kafka names the coordinator, which answers
        // COORDINATOR_LOAD_IN_PROGRESS until it has loaded.
        if leader == broker.node_id()
            && !broker.partition_loading(topic, partition)
            && !broker
                .partition(topic, partition)
                .is_some_and(|p| p.is_leader())
        {
            return Err(ResponseError::CoordinatorNotAvailable);
        }
        let (host, port) =
            super::util::broker_endpoint_on(broker, leader, &ctx.connection.listener)
                .ok_or(ResponseError::CoordinatorNotAvailable)?;
        Ok((leader, host, port))
    };
    // DESCRIBE on the group or transactional id, before anything else.
    let authz = Authz::new(broker, ctx);
    let denied = |key: &str| -> Option<ResponseError> {
        if req.key_type == KEY_TYPE_GROUP {
            (!authz.allows(Op::Describe, ResourceType::Group, key))
                .then_some(ResponseError::GroupAuthorizationFailed)
        } else if req.key_type == KEY_TYPE_TRANSACTION {
            (!authz.allows(Op::Describe, ResourceType::TransactionalId, key))
                .then_some(ResponseError::TransactionalIdAuthorizationFailed)
        } else {
            None
        }
    };
    let mut resp = FindCoordinatorResponse::default();
    if ctx.api_version < 4 {
        match denied(req.key.as_str()).or(error) {
            Some(e) => {
                resp.error_code = e.code();
                resp.node_id = BrokerId(-1);
                resp.port = -1;
            }
            None => match locate(req.key.as_str()) {
                Ok((node, host, port)) => {
                    resp.node_id = BrokerId(node);
                    resp.host = str_bytes(host);
                    resp.port = i32::from(port);
                }
                Err(e) => {
                    resp.error_code = e.code();
                    resp.node_id = BrokerId(-1);
                    resp.port = -1;
                }
            },
        }
        if ctx.api_version >= 1 {
            resp.error_message = None;
        }
        return Some(resp);
    }
    resp.coordinators = req
        .coordinator_keys
        .iter()
        .map(|key: &StrBytes| {
            let mut c = Coordinator::default();
            c.key = key.clone();
            c.error_message = None;
            match denied(key.as_str())
                .or(error)
                .map_or_else(|| locate(key.as_str()), Err)
            {
                Err(e) => {
                    c.error_code = e.code();
                    c.node_id = BrokerId(-1);
                    c.port = -1;
                }
                Ok((node, host, port)) => {
                    c.node_id = BrokerId(node);
                    c.host = str_bytes(host);
                    c.port = i32::from(port);
                }
            }
            c
        })
        .collect();
    Some(resp)
}
