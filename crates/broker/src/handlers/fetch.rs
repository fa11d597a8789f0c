//! Fetch (key 1), versions 4-18. Returns whole batches as stored, never
//! decoded; reads stop at the high watermark; waits up to `max_wait_ms` for
//! `min_bytes`, woken only by events of the fetched partitions (appends,
//! high-watermark moves, leadership changes).
//!
//! Limits as Kafka applies them: `partition_max_bytes` per partition and
//! `max_bytes` for the response, except that the first partition with data
//! returns at least one whole batch so a consumer can always progress.
//! A partition without data carries an empty record set, never null
//! (librdkafka rejects null). Fetch sessions (KIP-227) are declined with
//! session id 0, so every request is a full fetch.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
use kafka_protocol::messages::{FetchRequest, FetchResponse, TopicName};

use super::util::{self, str_bytes};
use super::RequestContext;
use crate::broker::Broker;
use crate::partition::Partition;
use crate::purgatory::Waiter;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: FetchRequest,
) -> Option<FetchResponse> {
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    // Registered with the fetched partitions only while this fetch waits.
    let mut waiter: Option<Arc<Waiter>> = None;
    loop {
        let (resp, bytes, errors) = read_once(broker, ctx, &req);
        let done = bytes >= req.min_bytes.max(0) as usize
            || errors
            || req.max_wait_ms <= 0
            || tokio::time::Instant::now() >= deadline;
        if done {
            return Some(resp);
        }
        let w = waiter.get_or_insert_with(|| {
            let w = Waiter::new();
            for partition in requested_partitions(broker, ctx, &req) {
                partition.watchers().watch(&w);
            }
            w
        });
        tokio::select! {
            _ = w.woken() => {}
            _ = tokio::time::sleep_until(deadline) => {
                let (resp, _, _) = read_once(broker, ctx, &req);
                return Some(resp);
            }
        }
    }
}

/// The hosted partitions a fetch names.
fn requested_partitions(
    broker: &Broker,
    ctx: &RequestContext,
    req: &FetchRequest,
) -> Vec<Arc<Partition>> {
    let mut out = Vec::new();
    for topic in &req.topics {
        let name = if ctx.api_version >= 13 {
            super::metadata::topic_name_by_id(broker, &topic.topic_id)
        } else {
            Some(topic.topic.to_string())
        };
        let Some(name) = name else { continue };
        out.extend(
            topic
                .partitions
                .iter()
                .filter_map(|p| broker.partition(&name, p.partition)),
        );
    }
    out
}

/// One pass over the requested partitions: the response, its record bytes,
/// and whether any partition had an error (errors are returned at once).
fn read_once(
    broker: &Broker,
    ctx: &RequestContext,
    req: &FetchRequest,
) -> (FetchResponse, usize, bool) {
    let mut resp = FetchResponse::default();
    let mut remaining = req.max_bytes.max(0) as usize;
    let mut total = 0usize;
    let mut any_error = false;
    for topic in &req.topics {
        let name = if ctx.api_version >= 13 {
            super::metadata::topic_name_by_id(broker, &topic.topic_id)
        } else {
            Some(topic.topic.to_string())
        };
        let mut t = FetchableTopicResponse::default();
        t.topic = topic.topic.clone();
        t.topic_id = topic.topic_id;
        if ctx.api_version < 13 {
            t.topic = TopicName(str_bytes(name.clone().unwrap_or_default()));
        }
        for p in &topic.partitions {
            let mut pd = PartitionData::default();
            pd.partition_index = p.partition;
            pd.high_watermark = -1;
            pd.last_stable_offset = -1;
            pd.log_start_offset = -1;
            pd.records = Some(Bytes::new());
            let partition = name
                .as_deref()
                .and_then(|n| broker.partition(n, p.partition));
            let error = match (&name, partition) {
                (None, _) => Some(ResponseError::UnknownTopicId),
                (Some(_), None) => Some(ResponseError::UnknownTopicOrPartition),
                (Some(_), Some(partition)) => {
                    let hw = partition.high_watermark();
                    pd.high_watermark = hw;
                    pd.last_stable_offset = hw;
                    if ctx.api_version >= 5 {
                        pd.log_start_offset = partition.log.log_start_offset();
                    }
                    let checked = partition
                        .check_leader()
                        .and_then(|()| partition.check_leader_epoch(p.current_leader_epoch));
                    match checked {
                        Err(e) => Some(util::partition_error(&e)),
                        Ok(()) => {
                            let limit = (p.partition_max_bytes.max(0) as usize).min(remaining);
                            // The first partition with data may exceed the limits by one batch.
                            let min_one = total == 0;
                            match partition.log.read(p.fetch_offset, limit, min_one, hw) {
                                Ok(read) => {
                                    let n = read.records.len();
                                    total += n;
                                    remaining = remaining.saturating_sub(n);
                                    if ctx.api_version >= 5 {
                                        pd.log_start_offset = read.log_start_offset;
                                    }
                                    pd.records = Some(read.records);
                                    None
                                }
                                Err(e) => {
                                    broker.on_storage_error(&partition.tp, &e);
                                    Some(util::storage_error(&e))
                                }
                            }
                        }
                    }
                }
            };
            if let Some(e) = error {
                any_error = true;
                pd.error_code = e.code();
            }
            t.partitions.push(pd);
        }
        resp.responses.push(t);
    }
    (resp, total, any_error)
}
