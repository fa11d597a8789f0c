//! Small value types shared by the producer, the consumer and the admin client.

use std::fmt;

use bytes::Bytes;

pub use gregor_records::Header;

/// A topic name and a partition index.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicPartition {
    pub topic: String,
    pub partition: i32,
}

impl TopicPartition {
    pub fn new(topic: impl Into<String>, partition: i32) -> Self {
        TopicPartition {
            topic: topic.into(),
            partition,
        }
    }
}

impl fmt::Display for TopicPartition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.topic, self.partition)
    }
}

/// A record to send. `partition: None` lets the partitioner choose;
/// `timestamp: None` stamps the record with the current time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProducerRecord {
    pub topic: String,
    pub partition: Option<i32>,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
    pub timestamp: Option<i64>,
}

impl ProducerRecord {
    /// A record with a value and nothing else.
    pub fn new(topic: impl Into<String>, value: impl Into<Bytes>) -> Self {
        ProducerRecord {
            topic: topic.into(),
            value: Some(value.into()),
            ..Default::default()
        }
    }
    pub fn with_key(mut self, key: impl Into<Bytes>) -> Self {
        self.key = Some(key.into());
        self
    }
    pub fn with_partition(mut self, partition: i32) -> Self {
        self.partition = Some(partition);
        self
    }
    pub fn with_timestamp(mut self, timestamp_ms: i64) -> Self {
        self.timestamp = Some(timestamp_ms);
        self
    }
    pub fn with_header(mut self, key: impl Into<String>, value: Option<Bytes>) -> Self {
        self.headers.push(Header {
            key: key.into(),
            value,
        });
        self
    }
}

/// Where a record landed: what a [`crate::producer::DeliveryFuture`] resolves to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMetadata {
    pub partition: i32,
    /// -1 with `acks=0`, where the broker does not say.
    pub offset: i64,
    /// The record's CreateTime, or the broker's LogAppendTime for such topics.
    pub timestamp: i64,
}

/// A record read by the consumer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerRecord {
    pub topic: String,
    pub partition: i32,
    pub offset: i64,
    pub timestamp: i64,
    pub timestamp_type: gregor_records::TimestampType,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
    pub leader_epoch: Option<i32>,
}

/// An offset to commit, with its optional metadata string.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetAndMetadata {
    pub offset: i64,
    pub leader_epoch: Option<i32>,
    pub metadata: String,
}

impl OffsetAndMetadata {
    pub fn new(offset: i64) -> Self {
        OffsetAndMetadata {
            offset,
            leader_epoch: None,
            metadata: String::new(),
        }
    }
}

/// Who consumed the offsets a transactional producer commits with
/// [`crate::Producer::send_offsets_to_transaction`]: the group coordinator
/// refuses them from a member that is no longer in the group's generation
/// (a zombie consumer), which is what makes consume-transform-produce
/// exactly once across rebalances. Get it from
/// [`crate::Consumer::group_metadata`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConsumerGroupMetadata {
    pub group_id: String,
    /// -1 outside a generation (manual assignment).
    pub generation_id: i32,
    /// Empty outside a generation.
    pub member_id: String,
    pub group_instance_id: Option<String>,
}

impl ConsumerGroupMetadata {
    /// Metadata naming only the group (generation -1, no member): the
    /// coordinator then skips the generation check, as for Java's
    /// `sendOffsetsToTransaction(offsets, groupId)`.
    pub fn new(group_id: impl Into<String>) -> Self {
        ConsumerGroupMetadata {
            group_id: group_id.into(),
            generation_id: -1,
            member_id: String::new(),
            group_instance_id: None,
        }
    }
}

/// Which offset ListOffsets should look up.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetSpec {
    Earliest,
    Latest,
    /// The offset of the record with the largest timestamp (KIP-734).
    MaxTimestamp,
    /// The earliest offset whose timestamp is at least this (ms).
    Timestamp(i64),
}

impl OffsetSpec {
    /// The `timestamp` field of a ListOffsets request.
    pub(crate) fn wire(self) -> i64 {
        match self {
            OffsetSpec::Earliest => -2,
            OffsetSpec::Latest => -1,
            OffsetSpec::MaxTimestamp => -3,
            OffsetSpec::Timestamp(t) => t,
        }
    }
}

/// An answer to ListOffsets: `offset` -1 if no record matches a timestamp.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OffsetAndTimestamp {
    pub offset: i64,
    pub timestamp: i64,
    pub leader_epoch: Option<i32>,
}

pub(crate) fn epoch_opt(e: i32) -> Option<i32> {
    (e >= 0).then_some(e)
}
