//! DescribeTransactions (API 65, v0) and ListTransactions (API 66, v0-2):
//! the admin view of this shard's transactional ids. Read-only; the runtime
//! merges the shards' answers.

use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::describe_transactions_response::{self, TopicData};
use kafka_protocol::messages::list_transactions_response;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, TopicName, TransactionalId,
};
use kafka_protocol::protocol::StrBytes;
use regex_automata::meta::Regex;

use super::metadata::{TxnMetadata, TxnState};
use super::TxnCoordinatorShard;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_owned())
}

/// KIP-1152's transactional id filter: Kafka compiles it with RE2/J and
/// keeps the ids it `matches()` whole. RE2 syntax here (the `regex` crate's
/// engine): the same for everything but a few escapes and flags. `Ok(None)`
/// when there is no filter (null or empty).
fn id_pattern(req: &ListTransactionsRequest) -> Result<Option<Regex>, ResponseError> {
    let Some(p) = req
        .transactional_id_pattern
        .as_deref()
        .filter(|p| !p.is_empty())
    else {
        return Ok(None);
    };
    // Checked alone first: a pattern like `a)|(b` would otherwise close the
    // anchoring group and match partially.
    Regex::new(p).map_err(|_| ResponseError::InvalidRegularExpression)?;
    Regex::new(&format!(r"\A(?:{p})\z"))
        .map(Some)
        .map_err(|_| ResponseError::InvalidRegularExpression)
}

/// The request-wide part of a ListTransactions response, computed once by
/// the runtime, which then appends every shard's
/// [`TxnCoordinatorShard::list_transactions`]: the state filters Kafka does
/// not know (`unknown_state_filters`, the others still apply) and
/// INVALID_REGULAR_EXPRESSION for a bad v2 pattern.
pub fn list_transactions_header(req: &ListTransactionsRequest) -> ListTransactionsResponse {
    let mut resp = ListTransactionsResponse::default();
    resp.unknown_state_filters = req
        .state_filters
        .iter()
        .filter(|s| TxnState::from_name(s.as_str()).is_none())
        .cloned()
        .collect();
    if let Err(e) = id_pattern(req) {
        resp.error_code = e.code();
    }
    resp
}

fn describe_one(
    shard: &TxnCoordinatorShard,
    id: &str,
) -> describe_transactions_response::TransactionState {
    let mut s = describe_transactions_response::TransactionState::default();
    s.transactional_id = TransactionalId(sb(id));
    let error = if id.is_empty() {
        ResponseError::InvalidRequest
    } else if !shard.owns(id) {
        ResponseError::NotCoordinator
    } else {
        ResponseError::TransactionalIdNotFound
    };
    let Some(m) = shard
        .txns
        .get(id)
        .filter(|_| !id.is_empty() && shard.owns(id))
    else {
        s.error_code = error.code();
        return s;
    };
    s.transaction_state = sb(m.state.name());
    s.transaction_timeout_ms = m.timeout_ms;
    s.transaction_start_time_ms = m.start_timestamp_ms;
    s.producer_id = m.producer_id.into();
    s.producer_epoch = m.producer_epoch;
    s.topics = m
        .partitions
        .iter()
        .map(|(topic, parts)| {
            let mut t = TopicData::default();
            t.topic = TopicName(sb(topic));
            t.partitions = parts.iter().copied().collect();
            t
        })
        .collect();
    s
}

impl TxnCoordinatorShard {
    /// DescribeTransactions for `ids` (those of this shard; others answer
    /// NOT_COORDINATOR), in order. Unknown ids: TRANSACTIONAL_ID_NOT_FOUND.
    /// The start time is -1 when no transaction ran since the last
    /// InitProducerId; after one completed it stays until the next.
    pub fn describe_transactions(
        &self,
        now_ms: i64,
        ids: &[String],
    ) -> Vec<describe_transactions_response::TransactionState> {
        let _ = now_ms; // nothing time-dependent
        ids.iter().map(|id| describe_one(self, id)).collect()
    }

    /// ListTransactions over this shard: state filters (Kafka's names,
    /// exact; unknown names match nothing but do not empty the list), producer
    /// id filters, the v1 duration filter (Kafka's rule: exclude when
    /// `now - start <= duration`, so an id with no transaction, start -1,
    /// passes any duration) and the v2 transactional id pattern (matched
    /// whole). An invalid pattern lists nothing; see
    /// [`list_transactions_header`] for the request-wide error.
    pub fn list_transactions(
        &self,
        now_ms: i64,
        req: &ListTransactionsRequest,
    ) -> Vec<list_transactions_response::TransactionState> {
        let Ok(pattern) = id_pattern(req) else {
            return Vec::new();
        };
        let states: Vec<TxnState> = req
            .state_filters
            .iter()
            .filter_map(|s| TxnState::from_name(s.as_str()))
            .collect();
        let include = |m: &TxnMetadata| {
            (req.state_filters.is_empty() || states.contains(&m.state))
                && (req.producer_id_filters.is_empty()
                    || req.producer_id_filters.iter().any(|p| p.0 == m.producer_id))
                && (req.duration_filter < 0
                    || now_ms.saturating_sub(m.start_timestamp_ms) > req.duration_filter)
                && pattern
                    .as_ref()
                    .is_none_or(|re| re.is_match(m.transactional_id.as_str()))
        };
        self.txns
            .values()
            .filter(|m| m.state != TxnState::Dead && include(m))
            .map(|m| {
                let mut s = list_transactions_response::TransactionState::default();
                s.transactional_id = TransactionalId(sb(&m.transactional_id));
                s.producer_id = m.producer_id.into();
                s.transaction_state = sb(m.state.name());
                s
            })
            .collect()
    }
}
