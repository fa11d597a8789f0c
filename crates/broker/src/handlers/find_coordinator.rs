//! FindCoordinator (key 10), versions 0-6: this node coordinates every group
//! (and, once transactions land, every transactional id). The first request
//! creates `__consumer_offsets`, as Kafka does.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};
use kafka_protocol::protocol::StrBytes;

use super::util::str_bytes;
use super::RequestContext;
use crate::broker::Broker;

const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: FindCoordinatorRequest,
) -> Option<FindCoordinatorResponse> {
    let (host, port) = broker.advertised_endpoint();
    let error = match req.key_type {
        KEY_TYPE_GROUP => broker.groups.ensure_offsets_topic().await.err().map(|e| {
            tracing::warn!(error = %e, "cannot create the offsets topic");
            ResponseError::CoordinatorNotAvailable
        }),
        KEY_TYPE_TRANSACTION => None,
        _ => Some(ResponseError::InvalidRequest),
    };
    let mut resp = FindCoordinatorResponse::default();
    if ctx.api_version < 4 {
        match error {
            Some(e) => {
                resp.error_code = e.code();
                resp.node_id = BrokerId(-1);
                resp.port = -1;
            }
            None => {
                resp.node_id = BrokerId(broker.node_id());
                resp.host = str_bytes(host);
                resp.port = port as i32;
            }
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
            match error {
                Some(e) => {
                    c.error_code = e.code();
                    c.node_id = BrokerId(-1);
                    c.port = -1;
                }
                None => {
                    c.node_id = BrokerId(broker.node_id());
                    c.host = str_bytes(host.clone());
                    c.port = port as i32;
                }
            }
            c
        })
        .collect();
    Some(resp)
}
