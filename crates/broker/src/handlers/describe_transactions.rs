//! DescribeTransactions (key 65), version 0: the state of transactional ids
//! this node coordinates (Kafka's `kafka-transactions.sh describe`); an id
//! coordinated elsewhere gets NOT_COORDINATOR, as in Kafka (the admin client
//! sends each id to its coordinator).

use kafka_protocol::messages::describe_transactions_response::TransactionState;
use kafka_protocol::messages::{DescribeTransactionsRequest, DescribeTransactionsResponse};

use super::RequestContext;
use crate::broker::Broker;
use gregor_security::acl::{AclOperation as Op, ResourceType};
use kafka_protocol::error::ResponseError;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeTransactionsRequest,
) -> Option<DescribeTransactionsResponse> {
    let mut resp = DescribeTransactionsResponse::default();
    // DESCRIBE on each transactional id; of its partitions, those of topics
    // the caller may describe (Kafka's handler).
    let authz = super::acl_util::Authz::new(broker, ctx);
    let (allowed, denied): (Vec<_>, Vec<_>) = req
        .transactional_ids
        .iter()
        .partition(|id| authz.allows(Op::Describe, ResourceType::TransactionalId, id));
    for id in denied {
        let mut st = TransactionState::default();
        st.transactional_id = id.clone();
        st.error_code = ResponseError::TransactionalIdAuthorizationFailed.code();
        st.transaction_state = super::util::str_bytes(String::new());
        st.producer_id = kafka_protocol::messages::ProducerId(-1);
        st.producer_epoch = -1;
        st.transaction_start_time_ms = -1;
        resp.transaction_states.push(st);
    }
    let by_shard = broker
        .txns
        .by_partition(allowed.iter().map(|id| (id.as_str(), id.to_string())));
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
    for st in &mut resp.transaction_states {
        st.topics
            .retain(|t| authz.allows(Op::Describe, ResourceType::Topic, &t.topic));
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
