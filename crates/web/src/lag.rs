//! Consumer group lag, computed by the broker itself (what Burrow or
//! kafka_exporter compute from outside): for every group this node
//! coordinates, each committed offset against the partition's high
//! watermark, as `gregor consumer-groups --describe` (and Kafka's
//! kafka-consumer-groups.sh) report it: `LAG = LOG-END-OFFSET -
//! CURRENT-OFFSET`, the log end being the high watermark (ListOffsets
//! latest, read_uncommitted).
//!
//! Each group is reported by its coordinator only (the leader of its
//! `__consumer_offsets` partition), so summing over brokers counts every
//! group once. The high watermark is read from this node's replica of the
//! partition (leader or follower); a partition this node has no replica of
//! has no lag series here.
//!
//! Lag in seconds: how old the first record not yet consumed is, from the
//! first timestamp of the batch holding the committed offset (0 when the
//! group is caught up).

use gregor_broker::Broker;
use gregor_coordinator::GroupSummary;

/// One committed offset and its lag.
#[derive(Debug, Clone, PartialEq)]
pub struct PartitionLag {
    pub topic: String,
    pub partition: i32,
    /// The group's committed offset.
    pub committed: i64,
    /// The partition's high watermark, if this node has a replica.
    pub end: Option<i64>,
    /// `end - committed`, as the consumer-groups tool prints it.
    pub lag: Option<i64>,
    /// Age (seconds) of the first record past the committed offset; 0 when
    /// caught up; `None` when it cannot be read.
    pub lag_seconds: Option<f64>,
}

/// One group this node coordinates.
#[derive(Debug, Clone)]
pub struct GroupLag {
    pub group: GroupSummary,
    pub partitions: Vec<PartitionLag>,
}

/// The groups of every `__consumer_offsets` partition this node
/// coordinates, with their lag. Blocking (it may load a coordinator shard
/// and reads log batches): call it off the async workers.
pub fn collect(broker: &Broker) -> Vec<GroupLag> {
    let Ok(parts) = broker.groups.local_partitions() else {
        return Vec::new();
    };
    let now_ms = broker.clock.now_ms();
    let mut out = Vec::new();
    for p in parts {
        // A partition not led here (or not created yet) has no groups here.
        let Some(offsets) = broker.partition(gregor_broker::group_runtime::OFFSETS_TOPIC, p) else {
            continue;
        };
        if !offsets.is_leader() {
            continue;
        }
        let Ok(groups) = broker.groups.read(p, |s, _| s.group_summaries()) else {
            continue;
        };
        for group in groups {
            let partitions = group
                .offsets
                .iter()
                .map(|(topic, partition, committed)| {
                    partition_lag(broker, topic, *partition, *committed, now_ms)
                })
                .collect();
            out.push(GroupLag { group, partitions });
        }
    }
    out.sort_by(|a, b| a.group.group_id.cmp(&b.group.group_id));
    out
}

fn partition_lag(
    broker: &Broker,
    topic: &str,
    partition: i32,
    committed: i64,
    now_ms: i64,
) -> PartitionLag {
    let hosted = broker.partition(topic, partition);
    let end = hosted.as_ref().map(|p| p.high_watermark());
    let lag = end.filter(|_| committed >= 0).map(|end| end - committed);
    let lag_seconds = match (&hosted, lag) {
        (Some(_), Some(lag)) if lag <= 0 => Some(0.0),
        (Some(p), Some(_)) => first_timestamp_at(&p.log(), committed, p.high_watermark())
            .map(|ts| (now_ms.saturating_sub(ts)).max(0) as f64 / 1000.0),
        _ => None,
    };
    PartitionLag {
        topic: topic.to_string(),
        partition,
        committed,
        end,
        lag,
        lag_seconds,
    }
}

/// The first timestamp of the batch holding `offset` (below `end`).
fn first_timestamp_at(log: &gregor_storage::Log, offset: i64, end: i64) -> Option<i64> {
    let read = log.read(offset, 1, true, end).ok()?;
    let (header, _, _) = gregor_records::BatchIter::new(&read.records).next()?.ok()?;
    Some(header.base_timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use gregor_records::{BatchBuilder, Compression, Record};

    #[test]
    fn lag_seconds_come_from_the_batch_holding_the_offset() {
        let dir = tempfile::tempdir().unwrap();
        let tp = gregor_storage::TopicPartition {
            topic: "t".into(),
            partition: 0,
        };
        let log = gregor_storage::Log::open(
            dir.path().join("t-0"),
            tp,
            gregor_storage::LogConfig::default(),
            std::sync::Arc::new(gregor_storage::SystemClock),
            0,
            0,
        )
        .unwrap();
        // Nothing readable: no timestamp, never a panic.
        assert_eq!(first_timestamp_at(&log, 0, 0), None);
        for ts in [1_000, 5_000] {
            let mut b = BatchBuilder::new(0, Compression::None);
            for i in 0..2 {
                b.push(Record {
                    timestamp: ts + i,
                    value: Some(bytes::Bytes::from_static(b"v")),
                    ..Record::default()
                });
            }
            log.append_as_leader(b.build().unwrap(), 0).unwrap();
        }
        assert_eq!(first_timestamp_at(&log, 0, 4), Some(1_000));
        assert_eq!(first_timestamp_at(&log, 3, 4), Some(5_000));
        // Past the high watermark: nothing.
        assert_eq!(first_timestamp_at(&log, 2, 2), None);
    }
}
