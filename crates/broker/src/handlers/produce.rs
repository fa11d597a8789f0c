//! Produce (key 0): advertised 0-13 (librdkafka enables compression only when
//! version 0 is advertised), served 3-13 (RecordBatch v2). acks=0 gets no
//! response. Each partition's record batches go to its [`Partition`], which
//! checks leadership and `min.insync.replicas` and appends them as they
//! arrived: validated in place, offsets patched, one write per partition.
//!
//! [`Partition`]: crate::Partition

use bytes::{Bytes, BytesMut};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::produce_response::{
    BatchIndexAndErrorMessage, PartitionProduceResponse, TopicProduceResponse,
};
use kafka_protocol::messages::{ProduceRequest, ProduceResponse, TopicName};

use super::util::{self, str_bytes};
use super::RequestContext;
use crate::broker::Broker;
use crate::partition::PartitionError;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: ProduceRequest,
) -> Option<ProduceResponse> {
    let acks = req.acks;
    let mut resp = ProduceResponse::default();
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
            let refused = if !(-1..=1).contains(&acks) {
                Some(ResponseError::InvalidRequiredAcks)
            } else if req.transactional_id.is_some() {
                // Transactions arrive with the transaction coordinator; until then
                // no transactional producer can get this far (InitProducerId refuses it).
                Some(ResponseError::TransactionalIdAuthorizationFailed)
            } else {
                append(broker, ctx, &name, p.index, p.records, acks, &mut r).err()
            };
            if let Some(e) = refused {
                r.error_code = e.code();
            }
            t.partition_responses.push(r);
        }
        if ctx.api_version < 13 {
            t.name = TopicName(str_bytes(name));
        }
        resp.responses.push(t);
    }
    (acks != 0).then_some(resp)
}

/// One partition's append; fills `r` with the outcome.
fn append(
    broker: &Broker,
    ctx: &RequestContext,
    topic: &str,
    index: i32,
    records: Option<Bytes>,
    acks: i16,
    r: &mut PartitionProduceResponse,
) -> Result<(), ResponseError> {
    let Some(partition) = broker.partition(topic, index) else {
        return Err(if topic.is_empty() {
            ResponseError::UnknownTopicId
        } else {
            ResponseError::UnknownTopicOrPartition
        });
    };
    if util::is_internal(topic) {
        return Err(ResponseError::InvalidTopicException);
    }
    let records = match records {
        Some(bytes) if !bytes.is_empty() => bytes
            .try_into_mut()
            .unwrap_or_else(|b| BytesMut::from(&b[..])),
        _ => return Err(ResponseError::CorruptMessage),
    };
    match partition.append_records_as_leader(records, acks) {
        Ok(info) => {
            r.base_offset = info.base_offset;
            r.log_append_time_ms = info.log_append_time;
            if ctx.api_version >= 5 {
                r.log_start_offset = info.log_start_offset;
            }
            Ok(())
        }
        Err(e) => {
            tracing::debug!(partition = %partition.tp, error = %e, "produce rejected");
            if let PartitionError::Storage(se) = &e {
                broker.on_storage_error(&partition.tp, se);
                if ctx.api_version >= 8 {
                    r.record_errors = record_errors(se);
                }
            }
            if ctx.api_version >= 8 {
                r.error_message = Some(str_bytes(e.to_string()));
            }
            Err(util::partition_error(&e))
        }
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
