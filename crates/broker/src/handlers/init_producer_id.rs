//! InitProducerId (key 22), versions 0-5. Without a transactional id: a
//! fresh producer id with epoch 0 from the block this broker owns
//! (idempotent producers). With one: the transaction coordinator of the id
//! (epoch bump, fencing of the previous producer, abort of its open
//! transaction); a producer id is allocated up front for it to use when the
//! id is new or its epoch is exhausted.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

use super::{txn_util, RequestContext};
use crate::broker::Broker;
use gregor_security::acl::{AclOperation as Op, ResourceType};

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: InitProducerIdRequest,
) -> Option<InitProducerIdResponse> {
    let mut resp = InitProducerIdResponse::default();
    resp.producer_id = ProducerId(-1);
    resp.producer_epoch = -1;
    // A transactional producer needs WRITE on its transactional id; an
    // idempotent one IDEMPOTENT_WRITE on the cluster or WRITE on some topic
    // (KIP-679), else CLUSTER_AUTHORIZATION_FAILED.
    let authz = super::acl_util::Authz::new(broker, ctx);
    let refused = match &req.transactional_id {
        Some(id) => (!authz.allows(Op::Write, ResourceType::TransactionalId, id))
            .then_some(ResponseError::TransactionalIdAuthorizationFailed),
        None => (!authz.allows_cluster(Op::IdempotentWrite)
            && !authz.allows_any(Op::Write, ResourceType::Topic))
        .then_some(ResponseError::ClusterAuthorizationFailed),
    };
    if let Some(e) = refused {
        resp.error_code = e.code();
        return Some(resp);
    }
    let fresh = match broker.next_producer_id().await {
        Ok(id) => id,
        Err(e) => {
            tracing::error!(error = %e, "allocating a producer id failed");
            resp.error_code = ResponseError::CoordinatorNotAvailable.code();
            return Some(resp);
        }
    };
    let Some(txn_id) = req.transactional_id.as_ref().map(|s| s.to_string()) else {
        resp.producer_id = ProducerId(fresh);
        resp.producer_epoch = 0;
        return Some(resp);
    };
    if txn_id.is_empty() {
        resp.error_code = ResponseError::InvalidRequest.code();
        return Some(resp);
    }
    let v = ctx.api_version;
    match txn_util::call(broker, "InitProducerId", &txn_id, move |s, now, id| {
        s.init_producer_id(now, id, v, &req, fresh)
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
