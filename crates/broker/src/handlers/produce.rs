//! Produce (key 0): advertised 0-13 (librdkafka enables compression only when
//! version 0 is advertised), served 3-13 (RecordBatch v2). acks=0 gets no
//! response. Each partition's record batches are appended as they arrived:
//! validated in place, offsets patched, one write per partition.

use bytes::BytesMut;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};

use super::util::{self, str_bytes};
use super::RequestContext;
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: ProduceRequest,
) -> Option<ProduceResponse> {
    let acks = req.acks;
    let mut resp = ProduceResponse::default();
    let mut appended = false;
    for topic in req.topic_data {
        let name: String = if ctx.api_version >= 13 {
            super::metadata::topic_name_by_id(broker, &topic.topic_id).unwrap_or_default()
        } else {
            topic.name.to_string()
        };
        let mut t = TopicProduceResponse::default();
        t.name = topic.name.clone();
        t.topic_id = topic.topic_id;
        for p in topic.partition_data {
            let mut r = PartitionProduceResponse::default();
            r.index = p.index;
            r.base_offset = -1;
            r.log_append_time_ms = -1;
            r.log_start_offset = -1;
            let error = if !(-1..=1).contains(&acks) {
                Some(ResponseError::InvalidRequiredAcks)
            } else if req.transactional_id.is_some() {
                // Transactions arrive with the transaction coordinator; until then
                // no transactional producer can get this far (InitProducerId refuses it).
                Some(ResponseError::TransactionalIdAuthorizationFailed)
            } else {
                match broker.partition(&name, p.index) {
                    None if name.is_empty() => Some(ResponseError::UnknownTopicId),
                    None => Some(ResponseError::UnknownTopicOrPartition),
                    Some(_) if util::is_internal(&name) => {
                        Some(ResponseError::InvalidTopicException)
                    }
                    Some(partition) => {
                        let min_isr = partition.min_isr.load(std::sync::atomic::Ordering::Relaxed);
                        if acks == -1 && partition.isr_len < min_isr {
                            Some(ResponseError::NotEnoughReplicas)
                        } else {
                            let records = match p.records {
                                Some(bytes) => bytes
                                    .try_into_mut()
                                    .unwrap_or_else(|b| BytesMut::from(&b[..])),
                                None => BytesMut::new(),
                            };
                            if records.is_empty() {
                                Some(ResponseError::CorruptMessage)
                            } else {
                                match partition
                                    .log
                                    .append_as_leader(records, partition.leader_epoch)
                                {
                                    Ok(info) => {
                                        appended |= !info.duplicate;
                                        r.base_offset = info.base_offset;
                                        r.log_append_time_ms = info.log_append_time;
                                        if ctx.api_version >= 5 {
                                            r.log_start_offset = info.log_start_offset;
                                        }
                                        None
                                    }
                                    Err(e) => {
                                        tracing::debug!(partition = %partition.tp, error = %e, "produce rejected");
                                        broker.on_storage_error(&partition.tp, &e);
                                        if ctx.api_version >= 8 {
                                            r.error_message = Some(str_bytes(e.to_string()));
                                            r.record_errors = record_errors(&e);
                                        }
                                        Some(util::storage_error(&e))
                                    }
                                }
                            }
                        }
                    }
                }
            };
            if let Some(e) = error {
                r.error_code = e.code();
            }
            t.partition_responses.push(r);
        }
        if ctx.api_version < 13 {
            t.name = TopicName(str_bytes(name));
        }
        resp.responses.push(t);
    }
    if appended {
        broker.notify_appended();
    }
    if acks == 0 {
        None
    } else {
        Some(resp)
    }
}

/// KIP-467's per-record errors of a refused batch.
fn record_errors(e: &gregor_storage::StorageError) -> Vec<BatchIndexAndErrorMessage> {
    util::record_errors(e)
        .iter()
        .map(|re| {
            let mut m = BatchIndexAndErrorMessage::default();
            m.batch_index = re.batch_index;
            m.batch_index_error_message = Some(str_bytes(re.message.clone()));
            m
        })
        .collect()
}
