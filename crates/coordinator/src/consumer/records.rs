//! The KIP-848 consumer group records of `__consumer_offsets`, in Kafka 4.x's
//! formats (`group-coordinator/src/main/resources/common/message/ConsumerGroup*.json`).
//!
//! Keys are not flexible: `version:int16` (the record type) then
//! `group:string` (int16 length) and, for per-member types, `member:string`.
//! Values are `version:int16` (always 0) then a *flexible* body: compact
//! strings and arrays (unsigned varint of length+1), 16-byte UUIDs and a
//! tagged-field section after every struct (we write none, we skip any).
//!
//! ```text
//! key 3 ConsumerGroupMetadata           value: epoch:int32 | tags
//! key 4 ConsumerGroupPartitionMetadata  value: topics:[ topicId:uuid | name:string
//!                                               | numPartitions:int32
//!                                               | partitionMetadata:[..] (empty) | tags ] | tags
//! key 5 ConsumerGroupMemberMetadata     value: instanceId:string? | rackId:string?
//!                                               | clientId | clientHost | subscribedTopicNames:[string]
//!                                               | subscribedTopicRegex:string? | rebalanceTimeoutMs:int32
//!                                               | serverAssignor:string? | tags
//! key 6 ConsumerGroupTargetAssignmentMetadata value: assignmentEpoch:int32 | tags
//! key 7 ConsumerGroupTargetAssignmentMember   value: topicPartitions:[ topicId | partitions:[int32] | tags ] | tags
//! key 8 ConsumerGroupCurrentMemberAssignment  value: memberEpoch:int32 | previousMemberEpoch:int32
//!                                               | state:int8 | assignedPartitions:[tp] | partitionsPendingRevocation:[tp] | tags
//! ```
//!
//! A tombstone (null value) deletes what its key names.

use bytes::{BufMut, Bytes, BytesMut};
use uuid::Uuid;

use super::Assignment;
use crate::records::{put_string, Reader, RecordError, RecordKey};

/// The consumer group record types, by key version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Metadata = 3,
    PartitionMetadata = 4,
    MemberMetadata = 5,
    TargetAssignmentMetadata = 6,
    TargetAssignmentMember = 7,
    CurrentMemberAssignment = 8,
}

impl Kind {
    fn per_member(self) -> bool {
        matches!(
            self,
            Kind::MemberMetadata | Kind::TargetAssignmentMember | Kind::CurrentMemberAssignment
        )
    }
}

/// ConsumerGroupMemberMetadataValue.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MemberMetadataValue {
    pub instance_id: Option<String>,
    pub rack_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub subscribed_topic_names: Vec<String>,
    pub subscribed_topic_regex: Option<String>,
    pub rebalance_timeout_ms: i32,
    pub server_assignor: Option<String>,
}

/// ConsumerGroupCurrentMemberAssignmentValue.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CurrentAssignmentValue {
    pub member_epoch: i32,
    pub previous_member_epoch: i32,
    pub state: i8,
    pub assigned: Assignment,
    pub pending_revocation: Assignment,
}

/// One topic of ConsumerGroupPartitionMetadataValue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadataValue {
    pub id: Uuid,
    pub name: String,
    pub partitions: i32,
}

pub(crate) fn decode_key(r: &mut Reader<'_>, version: i16) -> Result<RecordKey, RecordError> {
    let kind = match version {
        3 => Kind::Metadata,
        4 => Kind::PartitionMetadata,
        5 => Kind::MemberMetadata,
        6 => Kind::TargetAssignmentMetadata,
        7 => Kind::TargetAssignmentMember,
        8 => Kind::CurrentMemberAssignment,
        _ => return Ok(RecordKey::Other(version)),
    };
    r.record = "ConsumerGroupKey";
    let group = r.string("groupId")?;
    let member = if kind.per_member() {
        Some(r.string("memberId")?)
    } else {
        None
    };
    Ok(RecordKey::Consumer {
        kind,
        group,
        member,
    })
}

pub fn encode_key(kind: Kind, group: &str, member: Option<&str>) -> Bytes {
    let mut buf = BytesMut::with_capacity(6 + group.len() + member.map_or(0, str::len));
    buf.put_i16(kind as i16);
    put_string(&mut buf, group);
    if let Some(m) = member {
        put_string(&mut buf, m);
    }
    buf.freeze()
}

// ------------------------------------------------------- flexible writers

fn put_uvarint(buf: &mut BytesMut, mut v: u32) {
    while v >= 0x80 {
        buf.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    buf.put_u8(v as u8);
}

fn put_cstring(buf: &mut BytesMut, s: &str) {
    put_uvarint(buf, s.len() as u32 + 1);
    buf.put_slice(s.as_bytes());
}

fn put_cnullable(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_cstring(buf, s),
        None => put_uvarint(buf, 0),
    }
}

fn put_len(buf: &mut BytesMut, n: usize) {
    put_uvarint(buf, n as u32 + 1);
}

fn no_tags(buf: &mut BytesMut) {
    buf.put_u8(0);
}

fn put_topic_partitions(buf: &mut BytesMut, a: &Assignment) {
    put_len(buf, a.len());
    for (id, parts) in a {
        buf.put_slice(id.as_bytes());
        put_len(buf, parts.len());
        for p in parts {
            buf.put_i32(*p);
        }
        no_tags(buf);
    }
}

fn value_start() -> BytesMut {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i16(0);
    buf
}

pub fn encode_epoch_value(epoch: i32) -> Bytes {
    let mut buf = value_start();
    buf.put_i32(epoch);
    no_tags(&mut buf);
    buf.freeze()
}

pub fn encode_partition_metadata_value(topics: &[TopicMetadataValue]) -> Bytes {
    let mut buf = value_start();
    put_len(&mut buf, topics.len());
    for t in topics {
        buf.put_slice(t.id.as_bytes());
        put_cstring(&mut buf, &t.name);
        buf.put_i32(t.partitions);
        put_len(&mut buf, 0); // rack metadata: not used
        no_tags(&mut buf);
    }
    no_tags(&mut buf);
    buf.freeze()
}

pub fn encode_member_metadata_value(v: &MemberMetadataValue) -> Bytes {
    let mut buf = value_start();
    put_cnullable(&mut buf, v.instance_id.as_deref());
    put_cnullable(&mut buf, v.rack_id.as_deref());
    put_cstring(&mut buf, &v.client_id);
    put_cstring(&mut buf, &v.client_host);
    put_len(&mut buf, v.subscribed_topic_names.len());
    for t in &v.subscribed_topic_names {
        put_cstring(&mut buf, t);
    }
    put_cnullable(&mut buf, v.subscribed_topic_regex.as_deref());
    buf.put_i32(v.rebalance_timeout_ms);
    put_cnullable(&mut buf, v.server_assignor.as_deref());
    no_tags(&mut buf);
    buf.freeze()
}

pub fn encode_target_member_value(a: &Assignment) -> Bytes {
    let mut buf = value_start();
    put_topic_partitions(&mut buf, a);
    no_tags(&mut buf);
    buf.freeze()
}

pub fn encode_current_assignment_value(v: &CurrentAssignmentValue) -> Bytes {
    let mut buf = value_start();
    buf.put_i32(v.member_epoch);
    buf.put_i32(v.previous_member_epoch);
    buf.put_i8(v.state);
    put_topic_partitions(&mut buf, &v.assigned);
    put_topic_partitions(&mut buf, &v.pending_revocation);
    no_tags(&mut buf);
    buf.freeze()
}

// ------------------------------------------------------------- decoding

fn reader<'a>(record: &'static str, data: &'a [u8]) -> Result<Reader<'a>, RecordError> {
    let mut r = Reader::new(record, data);
    let version = r.i16("version")?;
    if version != 0 {
        return Err(RecordError::UnsupportedVersion { record, version });
    }
    r.flexible = true;
    Ok(r)
}

fn uuid(r: &mut Reader<'_>, field: &'static str) -> Result<Uuid, RecordError> {
    Ok(Uuid::from_bytes(r.array::<16>(field)?))
}

fn topic_partitions(r: &mut Reader<'_>, field: &'static str) -> Result<Assignment, RecordError> {
    let n = r.array_len(field)?;
    let mut a = Assignment::new();
    for _ in 0..n {
        let id = uuid(r, "topicId")?;
        let np = r.array_len("partitions")?;
        let parts = a.entry(id).or_default();
        for _ in 0..np {
            parts.insert(r.i32("partition")?);
        }
        r.skip_tagged_fields()?;
    }
    a.retain(|_, p| !p.is_empty());
    Ok(a)
}

/// ConsumerGroupMetadataValue and ConsumerGroupTargetAssignmentMetadataValue.
pub fn decode_epoch_value(record: &'static str, data: &[u8]) -> Result<i32, RecordError> {
    let mut r = reader(record, data)?;
    let epoch = r.i32("epoch")?;
    r.skip_tagged_fields()?;
    Ok(epoch)
}

pub fn decode_partition_metadata_value(
    data: &[u8],
) -> Result<Vec<TopicMetadataValue>, RecordError> {
    let mut r = reader("ConsumerGroupPartitionMetadataValue", data)?;
    let n = r.array_len("topics")?;
    let mut topics = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let id = uuid(&mut r, "topicId")?;
        let name = r.string("topicName")?;
        let partitions = r.i32("numPartitions")?;
        let racks = r.array_len("partitionMetadata")?;
        for _ in 0..racks {
            r.i32("partition")?;
            let nr = r.array_len("racks")?;
            for _ in 0..nr {
                r.string("rack")?;
            }
            r.skip_tagged_fields()?;
        }
        r.skip_tagged_fields()?;
        topics.push(TopicMetadataValue {
            id,
            name,
            partitions,
        });
    }
    r.skip_tagged_fields()?;
    Ok(topics)
}

pub fn decode_member_metadata_value(data: &[u8]) -> Result<MemberMetadataValue, RecordError> {
    let mut r = reader("ConsumerGroupMemberMetadataValue", data)?;
    let instance_id = r.nullable_string("instanceId")?;
    let rack_id = r.nullable_string("rackId")?;
    let client_id = r.string("clientId")?;
    let client_host = r.string("clientHost")?;
    let n = r.array_len("subscribedTopicNames")?;
    let mut subscribed_topic_names = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        subscribed_topic_names.push(r.string("subscribedTopicName")?);
    }
    let subscribed_topic_regex = r.nullable_string("subscribedTopicRegex")?;
    let rebalance_timeout_ms = r.i32("rebalanceTimeoutMs")?;
    let server_assignor = r.nullable_string("serverAssignor")?;
    r.skip_tagged_fields()?;
    Ok(MemberMetadataValue {
        instance_id,
        rack_id,
        client_id,
        client_host,
        subscribed_topic_names,
        subscribed_topic_regex,
        rebalance_timeout_ms,
        server_assignor,
    })
}

pub fn decode_target_member_value(data: &[u8]) -> Result<Assignment, RecordError> {
    let mut r = reader("ConsumerGroupTargetAssignmentMemberValue", data)?;
    let a = topic_partitions(&mut r, "topicPartitions")?;
    r.skip_tagged_fields()?;
    Ok(a)
}

pub fn decode_current_assignment_value(data: &[u8]) -> Result<CurrentAssignmentValue, RecordError> {
    let mut r = reader("ConsumerGroupCurrentMemberAssignmentValue", data)?;
    let member_epoch = r.i32("memberEpoch")?;
    let previous_member_epoch = r.i32("previousMemberEpoch")?;
    let state = r.array::<1>("state")?[0] as i8;
    let assigned = topic_partitions(&mut r, "assignedPartitions")?;
    let pending_revocation = topic_partitions(&mut r, "partitionsPendingRevocation")?;
    r.skip_tagged_fields()?;
    Ok(CurrentAssignmentValue {
        member_epoch,
        previous_member_epoch,
        state,
        assigned,
        pending_revocation,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::decode_key as decode_any_key;
    use proptest::prelude::*;

    fn asg(pairs: &[(u128, &[i32])]) -> Assignment {
        pairs
            .iter()
            .map(|(id, ps)| (Uuid::from_u128(*id), ps.iter().copied().collect()))
            .collect()
    }

    #[test]
    fn keys_round_trip() {
        let k = encode_key(Kind::CurrentMemberAssignment, "g", Some("m"));
        assert_eq!(&k[..], &[0, 8, 0, 1, b'g', 0, 1, b'm']);
        assert_eq!(
            decode_any_key(&k).unwrap(),
            RecordKey::Consumer {
                kind: Kind::CurrentMemberAssignment,
                group: "g".into(),
                member: Some("m".into())
            }
        );
        let k = encode_key(Kind::Metadata, "g", None);
        assert_eq!(&k[..], &[0, 3, 0, 1, b'g']);
    }

    #[test]
    fn epoch_value_layout() {
        let b = encode_epoch_value(7);
        assert_eq!(&b[..], &[0, 0, 0, 0, 0, 7, 0]);
        assert_eq!(decode_epoch_value("x", &b).unwrap(), 7);
        // A tagged field we do not know (MetadataHash, tag 0, 8 bytes) is skipped.
        let with_tag = [0, 0, 0, 0, 0, 7, 1, 0, 8, 1, 2, 3, 4, 5, 6, 7, 8];
        assert_eq!(decode_epoch_value("x", &with_tag).unwrap(), 7);
    }

    #[test]
    fn values_round_trip() {
        let m = MemberMetadataValue {
            instance_id: Some("i".into()),
            rack_id: None,
            client_id: "c".into(),
            client_host: "/1.2.3.4".into(),
            subscribed_topic_names: vec!["a".into(), "b".into()],
            subscribed_topic_regex: None,
            rebalance_timeout_ms: 300_000,
            server_assignor: Some("uniform".into()),
        };
        let b = encode_member_metadata_value(&m);
        assert_eq!(decode_member_metadata_value(&b).unwrap(), m);

        let a = asg(&[(1, &[0, 2]), (2, &[5])]);
        assert_eq!(
            decode_target_member_value(&encode_target_member_value(&a)).unwrap(),
            a
        );
        let c = CurrentAssignmentValue {
            member_epoch: 3,
            previous_member_epoch: 2,
            state: 1,
            assigned: a.clone(),
            pending_revocation: asg(&[(3, &[1])]),
        };
        let b = encode_current_assignment_value(&c);
        assert_eq!(decode_current_assignment_value(&b).unwrap(), c);
        for n in 0..b.len() {
            assert!(decode_current_assignment_value(&b[..n]).is_err());
        }
        let t = vec![TopicMetadataValue {
            id: Uuid::from_u128(9),
            name: "t".into(),
            partitions: 6,
        }];
        let b = encode_partition_metadata_value(&t);
        assert_eq!(decode_partition_metadata_value(&b).unwrap(), t);
    }

    proptest! {
        #[test]
        fn decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = decode_epoch_value("x", &data);
            let _ = decode_partition_metadata_value(&data);
            let _ = decode_member_metadata_value(&data);
            let _ = decode_target_member_value(&data);
            let _ = decode_current_assignment_value(&data);
        }
    }
}
