//! DescribeTransactions (key 65), version 0: the state of transactional ids
//! this node coordinates (Kafka's `kafka-transactions.sh describe`); an id
//! coordinated elsewhere gets NOT_COORDINATOR, as in Kafka (the admin client
//! sends each id to its coordinator).

use kafka_protocol::messages::describe_transactions_response::TransactionState;
use kafka_protocol::messages::{DescribeTransactionsRequest, DescribeTransactionsResponse};

use super::RequestContext;
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    _ctx: &RequestContext,
    req: DescribeTransactionsRequest,
) -> Option<DescribeTransactionsResponse> {
    let mut resp = DescribeTransactionsResponse::default();
    let by_shard = broker.txns.by_partition(
        req.transactional_ids
            .iter()
            .map(|id| (id.as_str(), id.to_string())),
    );
    for (shard, ids) in by_shard {
        let answer = broker
            .txns
            .read(shard, |s, now| s.describe_transactions(now, &ids));
        match answer {
            Ok(states) => resp.transaction_states.extend(states),
            Err(e) => {
                let code = super::coordinator_error(&e).code();
                for id in ids {
                    let mut st = TransactionState::default();
                    st.transactional_id = super::util::str_bytes(id).into();
                    st.error_code = code;
                    st.transaction_state = super::util::str_bytes(String::new());
                    st.producer_id = kafka_protocol::messages::ProducerId(-1);
                    st.producer_epoch = -1;
                    st.transaction_start_time_ms = -1;
                    resp.transaction_states.push(st);
                }
            }
        }
    }
    // Request order, as Kafka answers.
    let order: Vec<&str> = req.transactional_ids.iter().map(|s| s.as_str()).collect();
    resp.transaction_states.sort_by_key(|s| {
        order
            .iter()
            .position(|x| *x == s.transactional_id.as_str())
            .unwrap_or(usize::MAX)
    });
    Some(resp)
}
