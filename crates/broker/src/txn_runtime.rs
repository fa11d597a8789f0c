//! The transaction coordinator on the shared [`CoordinatorRuntime`]: one
//! [`TxnCoordinatorShard`] per `__transaction_state` partition, loaded by
//! the partition's leader (its leader epoch is the coordinator epoch written
//! into markers), and the marker sender: once a PrepareCommit/PrepareAbort
//! is committed, WriteTxnMarkers goes to the leader of every partition of
//! the transaction (written directly when that is this node), retried until
//! each is written or its topic is gone, then CompleteCommit/CompleteAbort
//! is written.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use gregor_coordinator::txn::{
    MarkerSend, TxnConfig, TxnCoordinatorShard, TxnOutput, TxnResponse, TxnTimerKey,
};
use gregor_records::{BatchHeader, Record};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    ApiKey, ProducerId, TopicName, WriteTxnMarkersRequest, WriteTxnMarkersResponse,
};
use kafka_protocol::protocol::StrBytes;

use crate::broker::Broker;
use crate::coordinator_runtime::{
    CoordinatorRuntime, CoordinatorShard, Effects, EffectsOf, InternalTopic, Marker, TimerOp,
};
use crate::group_runtime::OFFSETS_TOPIC;

/// Name of the transaction state topic.
pub const TXN_TOPIC: &str = "__transaction_state";

pub type TxnRuntime = CoordinatorRuntime<TxnCoordinatorShard>;

/// Kafka's `transaction.state.log.*` and `transaction.*` broker configs.
pub fn txn_config(props: &BTreeMap<String, String>) -> (i32, TxnConfig) {
    fn get<T: std::str::FromStr>(props: &BTreeMap<String, String>, key: &str, d: T) -> T {
        props
            .get(key)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(d)
    }
    let d = TxnConfig::default();
    let partitions = get(props, "transaction.state.log.num.partitions", 50).max(1);
    let config = TxnConfig {
        transaction_max_timeout_ms: get(
            props,
            "transaction.max.timeout.ms",
            d.transaction_max_timeout_ms,
        ),
        transactional_id_expiration_ms: get(
            props,
            "transactional.id.expiration.ms",
            d.transactional_id_expiration_ms,
        ),
        abort_timed_out_transaction_cleanup_interval_ms: get(
            props,
            "transaction.abort.timed.out.transaction.cleanup.interval.ms",
            d.abort_timed_out_transaction_cleanup_interval_ms,
        ),
        remove_expired_transaction_cleanup_interval_ms: get(
            props,
            "transaction.remove.expired.transaction.cleanup.interval.ms",
            d.remove_expired_transaction_cleanup_interval_ms,
        ),
        transaction_state_partitions: partitions,
    };
    (partitions, config)
}

/// The transaction coordinator's runtime.
pub fn txn_runtime(broker: Weak<Broker>, props: &BTreeMap<String, String>) -> TxnRuntime {
    let (partitions, config) = txn_config(props);
    let segment_bytes = props
        .get("transaction.state.log.segment.bytes")
        .cloned()
        .unwrap_or_else(|| "104857600".into());
    let topic = InternalTopic {
        name: TXN_TOPIC,
        partitions,
        replication_factor_key: "transaction.state.log.replication.factor",
        min_isr_key: Some(("transaction.state.log.min.isr", 2)),
        configs: vec![
            ("cleanup.policy", "compact".into()),
            ("segment.bytes", segment_bytes),
            ("compression.type", "uncompressed".into()),
            ("unclean.leader.election.enable", "false".into()),
        ],
    };
    CoordinatorRuntime::new(
        broker,
        topic,
        move |partition, epoch| TxnCoordinatorShard::new(partition, epoch, config.clone()),
        |broker: &Arc<Broker>, partition, markers: Vec<MarkerSend>| {
            for m in markers {
                let b = broker.clone();
                tokio::spawn(async move { send_markers(b, partition, m).await });
            }
        },
    )
    .eager()
}

impl From<TxnOutput> for Effects<TxnResponse, TxnTimerKey, MarkerSend> {
    fn from(out: TxnOutput) -> Self {
        Effects {
            records: out.records,
            producer: None,
            responses: out.responses,
            timers: out
                .timers
                .into_iter()
                .map(|(key, deadline_ms)| TimerOp::Schedule { key, deadline_ms })
                .collect(),
            notices: out.markers,
        }
    }
}

impl CoordinatorShard for TxnCoordinatorShard {
    type Response = TxnResponse;
    type Timer = TxnTimerKey;
    type Notice = MarkerSend;

    fn replay_batch(&mut self, header: &BatchHeader, records: Vec<Record>) {
        if header.is_control() {
            return;
        }
        for r in records {
            let Some(key) = r.key else { continue };
            self.replay(&key, r.value.as_deref());
        }
    }

    fn loaded(&mut self, now_ms: i64) -> EffectsOf<Self> {
        TxnCoordinatorShard::loaded(self, now_ms).into()
    }

    fn on_timer(&mut self, now_ms: i64, key: TxnTimerKey) -> EffectsOf<Self> {
        TxnCoordinatorShard::on_timer(self, now_ms, key).into()
    }
}

/// How long the marker sender waits between rounds for partitions that
/// could not be written yet (no leader, leader moving, broker unreachable).
const MARKER_RETRY_BACKOFF: Duration = Duration::from_millis(100);
const MARKER_RETRY_BACKOFF_MAX: Duration = Duration::from_secs(2);

/// Writes the markers of one transaction to every partition of it, then
/// completes the transaction. Stops when this node is no longer the
/// coordinator in the epoch the markers carry (the next one resends them
/// from the log).
async fn send_markers(broker: Arc<Broker>, txn_partition: i32, m: MarkerSend) {
    let marker = Marker {
        producer_id: m.producer_id,
        producer_epoch: m.producer_epoch,
        commit: m.commit,
        coordinator_epoch: m.coordinator_epoch,
    };
    let mut remaining: BTreeSet<(String, i32)> = m.partitions.iter().cloned().collect();
    let mut backoff = MARKER_RETRY_BACKOFF;
    loop {
        let still_coordinator = broker
            .partition(TXN_TOPIC, txn_partition)
            .is_some_and(|p| p.is_leader() && p.leader_epoch() == m.coordinator_epoch);
        if !still_coordinator {
            tracing::info!(
                transactional_id = %m.transactional_id,
                "no longer the coordinator; markers left to the next one"
            );
            return;
        }
        let image = broker.metadata.image();
        let mut by_leader: BTreeMap<i32, Vec<(String, i32)>> = BTreeMap::new();
        remaining.retain(|(topic, p)| {
            let Some(t) = image.topic(topic) else {
                // Deleted: nothing to mark (Kafka drops it as well).
                return false;
            };
            match t.partitions.get(p) {
                None => false,
                Some(pi) => {
                    by_leader
                        .entry(pi.leader)
                        .or_default()
                        .push((topic.clone(), *p));
                    true
                }
            }
        });
        for (leader, parts) in by_leader {
            if leader < 0 {
                continue;
            }
            if leader == broker.node_id() {
                for (topic, p) in parts {
                    match write_marker_local(&broker, &topic, p, marker).await {
                        None => {
                            remaining.remove(&(topic, p));
                        }
                        Some(
                            ResponseError::InvalidProducerEpoch
                            | ResponseError::TransactionCoordinatorFenced,
                        ) => {
                            tracing::warn!(transactional_id = %m.transactional_id, topic, partition = p, "marker refused as fenced; giving up on this transaction here");
                            return;
                        }
                        Some(e) => {
                            tracing::debug!(transactional_id = %m.transactional_id, topic, partition = p, error = %e, "marker not written yet; retrying");
                        }
                    }
                }
                continue;
            }
            let Some(endpoint) = crate::handlers::broker_endpoint(&broker, leader) else {
                continue;
            };
            let request = marker_request(&m, &parts);
            let answer: Result<WriteTxnMarkersResponse, _> = broker
                .peers
                .roundtrip(
                    leader,
                    endpoint,
                    ApiKey::WriteTxnMarkers,
                    "WriteTxnMarkersRequest",
                    1,
                    &request,
                )
                .await;
            match answer {
                Err(e) => {
                    tracing::info!(transactional_id = %m.transactional_id, error = %e, "sending markers failed; retrying");
                }
                Ok(resp) => {
                    for r in resp.markers {
                        for t in r.topics {
                            for p in t.partitions {
                                let key = (t.name.to_string(), p.partition_index);
                                match ResponseError::try_from_code(p.error_code) {
                                    None => {
                                        remaining.remove(&key);
                                    }
                                    Some(
                                        ResponseError::InvalidProducerEpoch
                                        | ResponseError::TransactionCoordinatorFenced,
                                    ) => {
                                        // A newer coordinator or producer epoch
                                        // wrote there: this coordinator is stale.
                                        tracing::warn!(transactional_id = %m.transactional_id, partition = ?key, code = p.error_code, "marker refused as fenced; giving up on this transaction here");
                                        return;
                                    }
                                    Some(e) => {
                                        tracing::debug!(transactional_id = %m.transactional_id, partition = ?key, error = %e, "marker not written yet; retrying");
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if remaining.is_empty() {
            break;
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MARKER_RETRY_BACKOFF_MAX);
    }
    let (id, pid, epoch) = (m.transactional_id.clone(), m.producer_id, m.producer_epoch);
    let coordinator_epoch = m.coordinator_epoch;
    if let Err(e) = broker
        .txns
        .update(txn_partition, move |s, now| {
            // A shard reloaded in a newer epoch resends the markers itself.
            if s.coordinator_epoch() != coordinator_epoch {
                return TxnOutput::default();
            }
            s.markers_written(now, &id, pid, epoch)
        })
        .await
    {
        tracing::warn!(transactional_id = %m.transactional_id, error = %e, "completing the transaction failed; the next coordinator completes it");
    }
}

fn marker_request(m: &MarkerSend, parts: &[(String, i32)]) -> WriteTxnMarkersRequest {
    let mut topics: BTreeMap<&str, Vec<i32>> = BTreeMap::new();
    for (t, p) in parts {
        topics.entry(t.as_str()).or_default().push(*p);
    }
    let mut marker = WritableTxnMarker::default();
    marker.producer_id = ProducerId(m.producer_id);
    marker.producer_epoch = m.producer_epoch;
    marker.transaction_result = m.commit;
    marker.coordinator_epoch = m.coordinator_epoch;
    marker.topics = topics
        .into_iter()
        .map(|(name, partitions)| {
            let mut t = WritableTxnMarkerTopic::default();
            t.name = TopicName(StrBytes::from_string(name.to_string()));
            t.partition_indexes = partitions;
            t
        })
        .collect();
    let mut req = WriteTxnMarkersRequest::default();
    req.markers = vec![marker];
    req
}

/// Writes one marker to a partition this node leads and waits until the
/// in-sync replicas have it (markers are written with `acks=all`). `None`
/// when written; otherwise Kafka's error for the partition. Markers for
/// `__consumer_offsets` go through the group coordinator, which makes the
/// transaction's offsets visible (or drops them) in the same step.
pub async fn write_marker_local(
    broker: &Broker,
    topic: &str,
    partition: i32,
    marker: Marker,
) -> Option<ResponseError> {
    if topic == OFFSETS_TOPIC {
        let (pid, commit) = (marker.producer_id, marker.commit);
        return match broker
            .groups
            .append_marker(partition, marker, move |s, now| {
                s.complete_txn(now, pid, commit)
            })
            .await
        {
            Ok(()) => None,
            Err(e) => Some(crate::handlers::coordinator_error(&e)),
        };
    }
    let Some(p) = broker.partition(topic, partition) else {
        return Some(crate::handlers::not_hosted(broker, topic, partition));
    };
    let info = match p.append_marker(
        marker.producer_id,
        marker.producer_epoch,
        marker.commit,
        marker.coordinator_epoch,
    ) {
        Ok(info) => info,
        Err(e) => {
            if let crate::partition::PartitionError::Storage(se) = &e {
                broker.on_storage_error(&p.tp, se);
            }
            return Some(crate::handlers::partition_error(&e));
        }
    };
    match crate::coordinator_runtime::wait_replicated(&p, info.last_offset + 1).await {
        Ok(()) => None,
        Err(Some(e)) => Some(crate::handlers::partition_error(&e)),
        Err(None) => Some(ResponseError::RequestTimedOut),
    }
}

/// Asks the coordinator of `transactional_id` whether `topic`-`partition`
/// is in the open transaction of `producer_id` / `producer_epoch`
/// (AddPartitionsToTxn v4 with `verify_only`): `None` when it is, else the
/// coordinator's error (INVALID_TXN_STATE when it is not). With `add`
/// (a transactions v2 producer, KIP-890 part 2) the coordinator adds the
/// partition instead (AddPartitionsToTxn v5, not `verify_only`).
pub async fn verify_partition(
    broker: &Broker,
    transactional_id: &str,
    producer_id: i64,
    producer_epoch: i16,
    topic: &str,
    partition: i32,
    add: bool,
) -> Option<ResponseError> {
    let version: i16 = if add {
        gregor_coordinator::txn::ADD_PARTITIONS_V2_SINCE
    } else {
        4
    };
    use kafka_protocol::messages::add_partitions_to_txn_request::{
        AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
    };
    use kafka_protocol::messages::{
        AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, TransactionalId,
    };
    let mut t = AddPartitionsToTxnTopic::default();
    t.name = TopicName(StrBytes::from_string(topic.to_string()));
    t.partitions = vec![partition];
    let mut txn = AddPartitionsToTxnTransaction::default();
    txn.transactional_id = TransactionalId(StrBytes::from_string(transactional_id.to_string()));
    txn.producer_id = ProducerId(producer_id);
    txn.producer_epoch = producer_epoch;
    txn.verify_only = !add;
    txn.topics = vec![t];
    let mut req = AddPartitionsToTxnRequest::default();
    req.transactions = vec![txn];

    let shard = broker.txns.partition_for(transactional_id);
    let leader = broker.txns.leader_of(broker, shard);
    let resp: AddPartitionsToTxnResponse = if leader == broker.node_id() {
        match broker
            .txns
            .call(shard, move |s, now, id| {
                s.add_partitions_to_txn(now, id, version, &req)
            })
            .await
        {
            Ok(r) => r,
            Err(e) => return Some(crate::handlers::coordinator_error(&e)),
        }
    } else {
        let Some(endpoint) = crate::handlers::broker_endpoint(broker, leader) else {
            return Some(ResponseError::CoordinatorNotAvailable);
        };
        match broker
            .peers
            .roundtrip(
                leader,
                endpoint,
                ApiKey::AddPartitionsToTxn,
                "AddPartitionsToTxnRequest",
                version,
                &req,
            )
            .await
        {
            Ok(r) => r,
            Err(e) => {
                tracing::debug!(transactional_id, error = %e, "transaction verification failed");
                return Some(ResponseError::NetworkException);
            }
        }
    };
    if let Some(e) = ResponseError::try_from_code(resp.error_code) {
        // Kafka answers an unauthorized verification as a bad state.
        return Some(match e {
            ResponseError::ClusterAuthorizationFailed => ResponseError::InvalidTxnState,
            other => other,
        });
    }
    resp.results_by_transaction
        .iter()
        .flat_map(|r| &r.topic_results)
        .flat_map(|t| &t.results_by_partition)
        .find_map(|p| ResponseError::try_from_code(p.partition_error_code))
}
