//! Fetch (key 1), versions 4-18. Returns whole batches as stored, never
//! decoded; reads stop at the high watermark; waits up to `max_wait_ms` for
//! `min_bytes`, woken only by events of the fetched partitions (appends,
//! high-watermark moves, leadership changes).
//!
//! Limits as Kafka applies them: `partition_max_bytes` per partition and
//! `max_bytes` for the response, except that the first partition with data
//! returns at least one whole batch so a consumer can always progress.
//! A partition without data carries an empty record set, never null
//! (librdkafka rejects null). Incremental fetch sessions (KIP-227) are kept
//! by [`crate::fetch_session`]: an incremental fetch reads every partition of
//! its session and answers only those with something new.
//!
//! A fetch whose replica id (`replica_id` before v15, `replica_state` from
//! v15) is a node id is a follower's: only the leader serves it, to the
//! fetcher's followers only, reading up to the log end instead of the high
//! watermark and recording the follower's position (which moves the high
//! watermark); a follower whose log diverges from the leader's gets the
//! `diverging_epoch` answer (v12+) at once instead of records
//! (see [`Partition::read_for_follower`]).

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::fetch_response::{
    AbortedTransaction, FetchableTopicResponse, PartitionData,
};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse, ProducerId, TopicName};

use super::acl_util::Authz;
use super::util::{self, str_bytes};
use super::RequestContext;
use crate::broker::Broker;
use crate::fetch_session::{FetchContext, FetchSessionCache};
use crate::partition::{FollowerFetch, FollowerRead, Partition, PartitionError};
use crate::purgatory::Waiter;
use crate::quota::QuotaType;
use crate::response_buf::{is_placeholder, placeholder};
use gregor_security::acl::{AclOperation, ResourceType};
use gregor_storage::FileRecords;
use uuid::Uuid;

/// The node id of the follower sending `req`, if it is a follower's fetch
/// (consumers send -1).
pub(super) fn follower_id(ctx: &RequestContext, req: &FetchRequest) -> Option<i32> {
    let id = if ctx.api_version >= 15 {
        req.replica_state.replica_id.0
    } else {
        req.replica_id.0
    };
    (id >= 0).then_some(id)
}

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    mut req: FetchRequest,
) -> Option<FetchResponse> {
    let consumer = follower_id(ctx, &req).is_none();
    if consumer {
        // A fetch takes at most what the quota allows in its measured span
        // (Kafka's `getMaxValueInQuotaWindow`), so one response cannot be
        // over the quota for ever.
        if let Some(max) = super::quota_util::max_bytes_in_window(broker, ctx, QuotaType::Fetch) {
            req.max_bytes = req.max_bytes.min(max);
            req.min_bytes = req.min_bytes.min(req.max_bytes);
        }
    }
    let now_ms = broker.clock.now_ms();
    let session = broker.fetch_sessions.context(ctx.api_version, &req, now_ms);
    let resp = match &session {
        FetchContext::Error(e) => {
            let mut resp = FetchResponse::default();
            resp.error_code = e.code();
            return Some(resp);
        }
        FetchContext::Incremental(s, _) => {
            fetch(broker, ctx, &FetchSessionCache::session_request(s, &req)).await
        }
        FetchContext::Full | FetchContext::Sessionless => fetch(broker, ctx, &req).await,
    };
    let (mut resp, files) = resp;
    if consumer {
        // consumer_byte_rate, on the response's record bytes (followers are
        // exempt). Over the quota, Kafka answers with no data and takes the
        // bytes back off the rate; the client throttles itself from v8.
        let bytes: usize = resp
            .responses
            .iter()
            .flat_map(|t| t.partitions.iter())
            .filter_map(|p| p.records.as_ref().map(|r| r.len()))
            .sum();
        let ms = super::quota_util::record_bytes(broker, ctx, QuotaType::Fetch, bytes, 8);
        if ms > 0 {
            super::quota_util::unrecord_bytes(broker, ctx, QuotaType::Fetch, bytes);
            resp.responses.clear();
            resp.throttle_time_ms = ms;
        }
    }
    // Every partition read counts, also those an incremental answer leaves out.
    record_metrics(broker, ctx, &resp, consumer);
    match session {
        FetchContext::Incremental(s, epoch) => {
            resp = FetchSessionCache::finish_incremental(&s, epoch, resp);
        }
        // A throttled answer carries no partitions: no session from it.
        FetchContext::Full if resp.throttle_time_ms == 0 => {
            broker
                .fetch_sessions
                .finish_full(ctx.api_version, &req, !consumer, &mut resp, now_ms);
        }
        _ => {}
    }
    if !files.is_empty() {
        *ctx.file_records.lock() = in_response_order(&resp, files);
    }
    Some(resp)
}

/// Record sets of at least this many bytes go from the file with
/// `sendfile(2)` on a plain socket; smaller ones are read, as a read and
/// a share of one vectored write cost less than a flush plus a sendfile.
const SENDFILE_MIN: usize = 4096;

/// `GREGOR_FETCH_SENDFILE=0` in the environment reads every record set
/// into memory, as the TLS path does: a switch for diagnosis and for A/B
/// measurements of the two paths with one binary.
fn sendfile_enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("GREGOR_FETCH_SENDFILE").map_or(true, |v| v != "0"))
}

/// Records left in their file, with the partition whose placeholder stands for them.
struct PlacedFile {
    topic: TopicName,
    topic_id: Uuid,
    partition: i32,
    records: FileRecords,
}

/// The file records of the placeholders `resp` still carries, in the order
/// they are encoded. The response keeps a subsequence of the partitions
/// read (sessions and quotas only drop partitions), so one pass matches them.
fn in_response_order(resp: &FetchResponse, files: Vec<PlacedFile>) -> Vec<FileRecords> {
    let mut files = files.into_iter();
    let mut out = Vec::new();
    for t in &resp.responses {
        for p in &t.partitions {
            let Some(r) = p.records.as_ref().filter(|r| is_placeholder(r)) else {
                continue;
            };
            let found = files.by_ref().find(|f| {
                f.partition == p.partition_index
                    && f.topic_id == t.topic_id
                    && f.topic == t.topic
                    && f.records.len() == r.len()
            });
            // None cannot happen; the encoder then refuses the frame.
            out.extend(found.map(|f| f.records));
        }
    }
    out
}

/// One partition's records: on a plain socket, a placeholder and the file
/// records it stands for; else (or when small) the bytes.
fn read_records(
    log: &gregor_storage::Log,
    zero_copy: bool,
    offset: i64,
    max_bytes: usize,
    min_one_batch: bool,
    upper: i64,
) -> Result<(Bytes, i64, Option<FileRecords>), gregor_storage::StorageError> {
    if zero_copy {
        let read = log.read_file(offset, max_bytes, min_one_batch, upper)?;
        match read.records {
            None => return Ok((Bytes::new(), read.log_start_offset, None)),
            Some(f) => {
                // Small: the range found is read as it is, not looked up
                // again (a file cut short meanwhile is read the usual way).
                if let Some((bytes, file)) = place(f) {
                    return Ok((bytes, read.log_start_offset, file));
                }
            }
        }
    }
    let read = log.read(offset, max_bytes, min_one_batch, upper)?;
    Ok((read.records, read.log_start_offset, None))
}

/// Records found in their file: a placeholder and the file records when
/// large enough for `sendfile(2)`, else their bytes read at once; `None`
/// when the file was cut short before they could be read.
fn place(f: FileRecords) -> Option<(Bytes, Option<FileRecords>)> {
    if f.len() >= SENDFILE_MIN {
        if let Some(p) = placeholder(f.len()) {
            return Some((p, Some(f)));
        }
    }
    f.read().ok().map(|bytes| (bytes, None))
}

/// Bytes out (or replication bytes out) and fetch requests per topic.
fn record_metrics(broker: &Broker, ctx: &RequestContext, resp: &FetchResponse, consumer: bool) {
    let metrics = &broker.metrics;
    for t in &resp.responses {
        let name = if ctx.api_version >= 13 {
            super::metadata::topic_name_by_id(broker, &t.topic_id)
        } else {
            Some(t.topic.to_string())
        };
        let Some(name) = name else { continue };
        let bytes: u64 = t
            .partitions
            .iter()
            .filter_map(|p| p.records.as_ref().map(|r| r.len() as u64))
            .sum();
        let failed = t.partitions.iter().filter(|p| p.error_code != 0).count() as u64;
        let total = t.partitions.len() as u64;
        metrics.for_topic(&name, |m| {
            if consumer {
                m.bytes_out.add(bytes);
                m.total_fetch_requests.add(total);
                m.failed_fetch_requests.add(failed);
            } else {
                m.replication_bytes_out.add(bytes);
            }
        });
    }
}

async fn fetch(
    broker: &Broker,
    ctx: &RequestContext,
    req: &FetchRequest,
) -> (FetchResponse, Vec<PlacedFile>) {
    let deadline =
        tokio::time::Instant::now() + Duration::from_millis(req.max_wait_ms.max(0) as u64);
    // Registered with the fetched partitions only while this fetch waits.
    let mut waiter: Option<Arc<Waiter>> = None;
    loop {
        let pass = read_once(broker, ctx, req);
        let done = pass.bytes >= req.min_bytes.max(0) as usize
            || pass.answer_now
            || req.max_wait_ms <= 0
            || tokio::time::Instant::now() >= deadline;
        if done {
            return (pass.resp, pass.files);
        }
        let Some(w) = &waiter else {
            // Register, then read once more before sleeping: an append
            // between the read above and the registration fired no waiter,
            // and would otherwise sit unseen until the deadline.
            let w = Waiter::new();
            for partition in requested_partitions(broker, ctx, req) {
                partition.watchers().watch(&w);
            }
            waiter = Some(w);
            continue;
        };
        let waited = std::time::Instant::now();
        let _waiting = crate::metrics::Waiting::new(&broker.metrics.fetch_purgatory);
        tokio::select! {
            _ = w.woken() => ctx.timing.add_remote(waited.elapsed()),
            _ = tokio::time::sleep_until(deadline) => {
                ctx.timing.add_remote(waited.elapsed());
                let pass = read_once(broker, ctx, req);
                return (pass.resp, pass.files);
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

/// The replica a consumer in `rack` should fetch from instead of this
/// leader, when `replica.selector.class` is Kafka's
/// `RackAwareReplicaSelector`: an in-sync, live replica in the client's rack
/// (none when this leader is in that rack, or the client names no rack).
fn preferred_read_replica(broker: &Broker, partition: &Partition, rack: &str) -> Option<i32> {
    let selector = broker.config.props.get("replica.selector.class")?;
    if rack.is_empty() || !selector.ends_with("RackAwareReplicaSelector") {
        return None;
    }
    let view = partition.view();
    if view.role != crate::partition::Role::Leader || broker.config.rack.as_deref() == Some(rack) {
        return None;
    }
    let image = broker.metadata.image();
    view.isr.iter().copied().find(|&r| {
        r != broker.node_id()
            && image
                .brokers
                .get(&r)
                .is_some_and(|b| !b.fenced && b.rack.as_deref() == Some(rack))
    })
}

/// One pass over the requested partitions.
struct ReadPass {
    resp: FetchResponse,
    /// Record bytes in the response.
    bytes: usize,
    /// It must be sent at once (a partition had an error or a diverging epoch).
    answer_now: bool,
    /// The records the response's placeholders stand for, in read order.
    files: Vec<PlacedFile>,
}

fn read_once(broker: &Broker, ctx: &RequestContext, req: &FetchRequest) -> ReadPass {
    let mut resp = FetchResponse::default();
    let mut files = Vec::new();
    let zero_copy = ctx.zero_copy() && sendfile_enabled();
    let mut remaining = req.max_bytes.max(0) as usize;
    let mut total = 0usize;
    let mut answer_now = false;
    let follower = follower_id(ctx, req);
    // A follower needs CLUSTER_ACTION on the cluster, a consumer READ on
    // each topic; either way a refusal is TOPIC_AUTHORIZATION_FAILED per
    // partition, as Kafka answers.
    let authz = Authz::new(broker, ctx);
    let follower_allowed = follower.is_none() || authz.allows_cluster(AclOperation::ClusterAction);
    for topic in &req.topics {
        let name = if ctx.api_version >= 13 {
            super::metadata::topic_name_by_id(broker, &topic.topic_id)
        } else {
            Some(topic.topic.to_string())
        };
        let denied = match (&name, follower) {
            (_, Some(_)) => !follower_allowed,
            (Some(n), None) => !authz.allows(AclOperation::Read, ResourceType::Topic, n),
            (None, None) => false,
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
            let error = match (&name, partition, follower) {
                _ if denied => Some(ResponseError::TopicAuthorizationFailed),
                (None, _, _) => Some(ResponseError::UnknownTopicId),
                (Some(n), None, _) => Some(util::not_hosted(broker, n, p.partition)),
                (Some(_), Some(partition), Some(replica_id)) => {
                    let fetch = FollowerFetch {
                        replica_id,
                        fetch_offset: p.fetch_offset,
                        current_leader_epoch: p.current_leader_epoch,
                        last_fetched_epoch: if ctx.api_version >= 12 {
                            p.last_fetched_epoch
                        } else {
                            -1
                        },
                        max_bytes: (p.partition_max_bytes.max(0) as usize).min(remaining),
                        min_one_batch: total == 0,
                        in_file: zero_copy,
                    };
                    let (error, n, diverging, file) =
                        follower_partition(broker, ctx, &partition, &fetch, &mut pd);
                    if let Some(in_file) = file {
                        files.push(PlacedFile {
                            topic: t.topic.clone(),
                            topic_id: t.topic_id,
                            partition: p.partition,
                            records: in_file,
                        });
                    }
                    total += n;
                    remaining = remaining.saturating_sub(n);
                    // A diverging follower is answered at once, as Kafka does.
                    answer_now |= diverging;
                    error
                }
                (Some(_), Some(partition), None) => {
                    let hw = partition.high_watermark();
                    let lso = partition.last_stable_offset();
                    pd.high_watermark = hw;
                    pd.last_stable_offset = lso;
                    // read_committed (isolation level 1) reads up to the
                    // last stable offset and gets the aborted transactions
                    // of what it read, so the client can drop their records.
                    let committed = req.isolation_level == 1 && ctx.api_version >= 4;
                    let upper = if committed { lso } else { hw };
                    if ctx.api_version >= 5 {
                        pd.log_start_offset = partition.log().log_start_offset();
                    }
                    // KIP-392: from v11 a consumer may read from a follower
                    // (up to the follower's high watermark).
                    let checked = if ctx.api_version >= 11 {
                        partition.check_readable()
                    } else {
                        partition.check_leader()
                    }
                    .and_then(|()| partition.check_leader_epoch(p.current_leader_epoch));
                    let preferred = match &checked {
                        Ok(()) if ctx.api_version >= 11 => {
                            preferred_read_replica(broker, &partition, req.rack_id.as_str())
                        }
                        _ => None,
                    };
                    match (checked, preferred) {
                        (Err(e), _) => Some(util::partition_error(&e)),
                        (Ok(()), Some(replica)) => {
                            // Kafka answers with the replica to use and no records.
                            pd.preferred_read_replica = BrokerId(replica);
                            None
                        }
                        (Ok(()), None) => {
                            let limit = (p.partition_max_bytes.max(0) as usize).min(remaining);
                            // The first partition with data may exceed the limits by one batch.
                            let min_one = total == 0;
                            let log = partition.log();
                            let read = read_records(
                                &log,
                                zero_copy,
                                p.fetch_offset,
                                limit,
                                min_one,
                                upper,
                            );
                            match read {
                                Ok((records, log_start_offset, file)) => {
                                    if committed {
                                        pd.aborted_transactions = Some(
                                            log.aborted_transactions(p.fetch_offset, upper)
                                                .into_iter()
                                                .map(|a| {
                                                    let mut t = AbortedTransaction::default();
                                                    t.producer_id = ProducerId(a.producer_id);
                                                    t.first_offset = a.first_offset;
                                                    t
                                                })
                                                .collect(),
                                        );
                                    }
                                    let n = records.len();
                                    total += n;
                                    remaining = remaining.saturating_sub(n);
                                    if ctx.api_version >= 5 {
                                        pd.log_start_offset = log_start_offset;
                                    }
                                    if let Some(in_file) = file {
                                        files.push(PlacedFile {
                                            topic: t.topic.clone(),
                                            topic_id: t.topic_id,
                                            partition: p.partition,
                                            records: in_file,
                                        });
                                    }
                                    pd.records = Some(records);
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
                answer_now = true;
                pd.error_code = e.code();
            }
            t.partitions.push(pd);
        }
        resp.responses.push(t);
    }
    ReadPass {
        resp,
        bytes: total,
        answer_now,
        files,
    }
}

/// One partition of a follower's fetch: fills `pd` and returns its error, the
/// record bytes it carries, whether it is a diverging-epoch answer, and the
/// file records its placeholder stands for (a plain socket: followers get
/// `sendfile(2)` as consumers do).
fn follower_partition(
    broker: &Broker,
    ctx: &RequestContext,
    partition: &Partition,
    fetch: &FollowerFetch,
    pd: &mut PartitionData,
) -> (Option<ResponseError>, usize, bool, Option<FileRecords>) {
    let read = partition.read_for_follower(fetch, broker.clock.now_ms());
    // Read after the follower's position may have moved it.
    pd.high_watermark = partition.high_watermark();
    pd.last_stable_offset = partition.last_stable_offset();
    match read {
        Ok(FollowerRead::Records(read)) => {
            if ctx.api_version >= 5 {
                pd.log_start_offset = read.log_start_offset;
            }
            let n = read.records.len();
            pd.records = Some(read.records);
            (None, n, false, None)
        }
        Ok(FollowerRead::File(read)) => {
            if ctx.api_version >= 5 {
                pd.log_start_offset = read.log_start_offset;
            }
            // A file cut short meanwhile (the log truncated) answers with
            // nothing; the follower fetches again.
            let (records, file) = read.records.and_then(place).unwrap_or_default();
            let n = records.len();
            pd.records = Some(records);
            (None, n, false, file)
        }
        Ok(FollowerRead::Diverging {
            epoch,
            end_offset,
            log_start_offset,
            ..
        }) => {
            pd.diverging_epoch.epoch = epoch;
            pd.diverging_epoch.end_offset = end_offset;
            if ctx.api_version >= 5 {
                pd.log_start_offset = log_start_offset;
            }
            (None, 0, true, None)
        }
        Err(e) => {
            if let PartitionError::Storage(se) = &e {
                broker.on_storage_error(&partition.tp, se);
            }
            (Some(util::partition_error(&e)), 0, false, None)
        }
    }
}
