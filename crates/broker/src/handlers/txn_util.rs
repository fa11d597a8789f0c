//! Shared bits of the transaction handlers.

use gregor_coordinator::txn::{TxnCoordinatorShard, TxnOutput, TxnResponse};
use gregor_coordinator::RequestId;
use kafka_protocol::error::ResponseError;

use crate::broker::Broker;

/// Runs one call on the shard of `transactional_id`; Kafka's error for the
/// client when the coordinator cannot serve it (NOT_COORDINATOR when this
/// node does not lead the id's `__transaction_state` partition).
pub async fn call<R>(
    broker: &Broker,
    api: &str,
    transactional_id: &str,
    f: impl FnOnce(&mut TxnCoordinatorShard, i64, RequestId) -> TxnOutput,
) -> Result<R, ResponseError>
where
    R: TryFrom<TxnResponse, Error = TxnResponse>,
{
    let p = broker.txns.partition_for(transactional_id);
    broker.txns.call(p, f).await.map_err(|e| {
        tracing::debug!(api, transactional_id, error = %e, "transaction coordinator unavailable");
        super::coordinator_error(&e)
    })
}
