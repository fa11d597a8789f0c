//! DescribeLogDirs (key 35), versions 1-4: every log dir with the size of each
//! partition in it, and (v4) the file system's total and usable bytes.

use std::collections::BTreeMap;
use std::path::Path;

use kafka_protocol::messages::describe_log_dirs_response::{
    DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
};
use kafka_protocol::messages::{DescribeLogDirsRequest, DescribeLogDirsResponse, TopicName};

use super::util::str_bytes;
use super::RequestContext;
use crate::broker::Broker;

pub async fn handle(
    broker: &Broker,
    ctx: &RequestContext,
    req: DescribeLogDirsRequest,
) -> Option<DescribeLogDirsResponse> {
    let wanted: Option<BTreeMap<String, Vec<i32>>> = req.topics.map(|ts| {
        ts.into_iter()
            .map(|t| (t.topic.to_string(), t.partitions))
            .collect()
    });
    // DESCRIBE on the cluster; refused, v3+ carries the error, older
    // versions just an empty answer (Kafka's handler).
    if !super::acl_util::authorize_cluster(
        broker,
        ctx,
        gregor_security::acl::AclOperation::Describe,
    ) {
        let mut resp = DescribeLogDirsResponse::default();
        if ctx.api_version >= 3 {
            resp.error_code =
                kafka_protocol::error::ResponseError::ClusterAuthorizationFailed.code();
        }
        return Some(resp);
    }
    let mut resp = DescribeLogDirsResponse::default();
    for dir in broker.logs.dirs() {
        let mut result = DescribeLogDirsResult::default();
        let abs = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.clone());
        result.log_dir = str_bytes(abs.display().to_string());
        if broker.logs.is_dir_offline(dir) {
            result.error_code = kafka_protocol::error::ResponseError::KafkaStorageError.code();
            resp.results.push(result);
            continue;
        }
        if ctx.api_version >= 4 {
            if let Some((total, usable)) = fs_space(dir) {
                result.total_bytes = total;
                result.usable_bytes = usable;
            }
        }
        let mut topics: BTreeMap<String, Vec<DescribeLogDirsPartition>> = BTreeMap::new();
        for log in broker.logs.all() {
            let tp = log.topic_partition();
            if broker.logs.dir_of(tp) != Some(dir.as_path()) {
                continue;
            }
            if let Some(w) = &wanted {
                if !w
                    .get(&*tp.topic)
                    .is_some_and(|ps| ps.contains(&tp.partition))
                {
                    continue;
                }
            }
            let mut p = DescribeLogDirsPartition::default();
            p.partition_index = tp.partition;
            p.partition_size = log.size_bytes() as i64;
            // Kafka's lag of a current replica: how far its log end is
            // behind the high watermark (never, for a leader).
            p.offset_lag = broker.partition(&tp.topic, tp.partition).map_or(0, |part| {
                (part.high_watermark() - log.log_end_offset()).max(0)
            });
            topics.entry(tp.topic.to_string()).or_default().push(p);
        }
        // Replicas being copied into this dir (AlterReplicaLogDirs): Kafka's
        // future replicas, lagging by what the copy still lacks.
        for f in broker.log_moves.futures() {
            if f.dir != *dir {
                continue;
            }
            if let Some(w) = &wanted {
                if !w
                    .get(&*f.tp.topic)
                    .is_some_and(|ps| ps.contains(&f.tp.partition))
                {
                    continue;
                }
            }
            let mut p = DescribeLogDirsPartition::default();
            p.partition_index = f.tp.partition;
            p.partition_size = f.size_bytes as i64;
            p.is_future_key = true;
            p.offset_lag = broker
                .partition(&f.tp.topic, f.tp.partition)
                .map_or(0, |part| {
                    (part.log().log_end_offset() - f.log_end_offset).max(0)
                });
            topics.entry(f.tp.topic.to_string()).or_default().push(p);
        }
        result.topics = topics
            .into_iter()
            .map(|(name, mut partitions)| {
                partitions.sort_by_key(|p| p.partition_index);
                let mut t = DescribeLogDirsTopic::default();
                t.name = TopicName(str_bytes(name));
                t.partitions = partitions;
                t
            })
            .collect();
        resp.results.push(result);
    }
    Some(resp)
}

/// Total and available bytes of the file system holding `dir`.
fn fs_space(dir: &Path) -> Option<(i64, i64)> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a valid NUL-terminated path and `st` is writable memory of the right type.
    let rc = unsafe { libc::statvfs(c.as_ptr(), st.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: statvfs returned 0, so it filled `st`.
    let st = unsafe { st.assume_init() };
    let frsize = st.f_frsize as i64;
    Some((
        (st.f_blocks as i64).saturating_mul(frsize),
        (st.f_bavail as i64).saturating_mul(frsize),
    ))
}
