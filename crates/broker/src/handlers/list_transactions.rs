//! ListTransactions (key 66), versions 0-2: the transactional ids this node
//! coordinates, filtered by state, producer id, duration (v1) and id pattern
//! (v2). The admin client asks every broker and merges the answers.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::{ListTransactionsRequest, ListTransactionsResponse};

use super::RequestContext;
use crate::broker::Broker;
use gregor_security::acl::{AclOperation as Op, ResourceType};

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: ListTransactionsRequest,
) -> Option<ListTransactionsResponse> {
    let mut resp = gregor_coordinator::txn::list_transactions_header(&req);
    if resp.error_code != 0 {
        return Some(resp);
    }
    if broker
        .metadata
        .image()
        .topic(crate::txn_runtime::TXN_TOPIC)
        .is_none()
    {
        // No transaction ever began here: nothing to list (and nothing to create).
        return Some(resp);
    }
    let parts = match broker.txns.local_partitions() {
        Ok(p) => p,
        Err(e) => {
            resp.error_code = super::coordinator_error(&e).code();
            return Some(resp);
        }
    };
    for p in parts {
        match broker.txns.read(p, |s, now| s.list_transactions(now, &req)) {
            Ok(states) => resp.transaction_states.extend(states),
            Err(e) => {
                // A shard that moved away meanwhile is the new leader's to list.
                let code = super::coordinator_error(&e);
                tracing::debug!(partition = p, error = %e, "ListTransactions skipped a shard");
                if code != ResponseError::NotCoordinator && resp.error_code == 0 {
                    resp.error_code = code.code();
                }
            }
        }
    }
    // Only the transactional ids the caller may describe.
    let authz = super::acl_util::Authz::new(broker, ctx);
    resp.transaction_states.retain(|s| {
        authz.allows(
            Op::Describe,
            ResourceType::TransactionalId,
            &s.transactional_id,
        )
    });
    Some(resp)
}
