//! AddOffsetsToTxn (key 25), versions 0-4: adds the `__consumer_offsets`
//! partition of a consumer group to a producer's open transaction, so the
//! offsets it then commits with TxnOffsetCommit become visible exactly when
//! the transaction commits.

use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

use super::{txn_util, RequestContext};
use crate::broker::Broker;
use gregor_security::acl::{AclOperation as Op, ResourceType};
use kafka_protocol::error::ResponseError;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: AddOffsetsToTxnRequest,
) -> Option<AddOffsetsToTxnResponse> {
    let mut resp = AddOffsetsToTxnResponse::default();
    // WRITE on the transactional id, then READ on the group.
    let authz = super::acl_util::Authz::new(broker, ctx);
    if !authz.allows(
        Op::Write,
        ResourceType::TransactionalId,
        &req.transactional_id,
    ) {
        resp.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
        return Some(resp);
    }
    if !authz.allows(Op::Read, ResourceType::Group, &req.group_id) {
        resp.error_code = ResponseError::GroupAuthorizationFailed.code();
        return Some(resp);
    }
    if let Err(e) = broker.groups.ensure_topic().await {
        resp.error_code = super::coordinator_error(&e).code();
        return Some(resp);
    }
    let offsets_partition = broker.groups.partition_for(&req.group_id);
    let txn_id = req.transactional_id.to_string();
    let v = ctx.api_version;
    match txn_util::call(broker, "AddOffsetsToTxn", &txn_id, move |s, now, id| {
        s.add_offsets_to_txn(now, id, v, &req, offsets_partition)
    })
    .await
    {
        Ok(r) => Some(r),
        Err(e) => {
            resp.error_code = e.code();
            Some(resp)
        }
    }
}
