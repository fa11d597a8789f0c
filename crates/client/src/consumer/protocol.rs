//! The consumer embedded protocol: what a member puts in JoinGroup's protocol
//! metadata (a Subscription) and what the leader hands back through
//! SyncGroup (an Assignment).
//!
//! ```text
//! version int16 | ConsumerProtocolSubscription or ConsumerProtocolAssignment encoded at that version
//! ```
//!
//! This is exactly the Java client's `ConsumerProtocol` framing, so Java and
//! Rust members can share a group. Like Java, a version newer than we know
//! is read as the newest we know (fields are only ever appended).

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::consumer_protocol_assignment::TopicPartition as AssignedTopic;
use kafka_protocol::messages::consumer_protocol_subscription::TopicPartition as OwnedTopic;
use kafka_protocol::messages::{ConsumerProtocolAssignment, ConsumerProtocolSubscription};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};

use crate::error::{Error, Result};
use crate::group_ops::{sb, topic_name};
use crate::types::TopicPartition;

/// The newest consumer protocol version we read and write (rack id, KIP-881).
pub const CONSUMER_PROTOCOL_VERSION: i16 = 3;

/// A member's subscription, as sent in JoinGroup.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Subscription {
    pub topics: Vec<String>,
    pub user_data: Option<Bytes>,
    /// Partitions the member owns now (cooperative rebalancing needs them).
    pub owned_partitions: Vec<TopicPartition>,
    /// The generation in which it got them; -1 if unknown.
    pub generation: i32,
    pub rack_id: Option<String>,
}

/// A member's assignment, as sent in SyncGroup.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Assignment {
    pub partitions: Vec<TopicPartition>,
    pub user_data: Option<Bytes>,
}

/// Groups partitions by topic, keeping topics and partitions sorted.
fn by_topic(tps: &[TopicPartition]) -> Vec<(String, Vec<i32>)> {
    let mut m: std::collections::BTreeMap<&str, Vec<i32>> = Default::default();
    for tp in tps {
        m.entry(&tp.topic).or_default().push(tp.partition);
    }
    m.into_iter()
        .map(|(t, mut ps)| {
            ps.sort_unstable();
            (t.to_string(), ps)
        })
        .collect()
}

fn read_version(buf: &mut Bytes, what: &str) -> Result<i16> {
    if buf.remaining() < 2 {
        return Err(Error::protocol(what, "shorter than its version"));
    }
    let v = buf.get_i16();
    if v < 0 {
        return Err(Error::protocol(what, format!("negative version {v}")));
    }
    Ok(v.min(CONSUMER_PROTOCOL_VERSION))
}

pub fn encode_subscription(s: &Subscription, version: i16) -> Result<Bytes> {
    let mut m = ConsumerProtocolSubscription::default()
        .with_topics(s.topics.iter().map(|t| sb(t)).collect())
        .with_user_data(s.user_data.clone());
    if version >= 1 {
        m.owned_partitions = by_topic(&s.owned_partitions)
            .into_iter()
            .map(|(t, ps)| {
                OwnedTopic::default()
                    .with_topic(topic_name(&t))
                    .with_partitions(ps)
            })
            .collect();
    }
    if version >= 2 {
        m.generation_id = s.generation;
    }
    if version >= 3 {
        m.rack_id = s.rack_id.as_deref().map(sb);
    }
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    m.encode(&mut buf, version)
        .map_err(|e| Error::protocol("encoding a subscription", e))?;
    Ok(buf.freeze())
}

pub fn decode_subscription(bytes: &[u8]) -> Result<Subscription> {
    let mut buf = Bytes::copy_from_slice(bytes);
    let version = read_version(&mut buf, "subscription")?;
    let m = ConsumerProtocolSubscription::decode(&mut buf, version)
        .map_err(|e| Error::protocol("decoding a subscription", e))?;
    Ok(Subscription {
        topics: m.topics.iter().map(StrBytes::to_string).collect(),
        user_data: m.user_data,
        owned_partitions: m
            .owned_partitions
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| TopicPartition::new(t.topic.0.to_string(), *p))
            })
            .collect(),
        generation: if version >= 2 { m.generation_id } else { -1 },
        rack_id: m.rack_id.map(|r| r.to_string()),
    })
}

pub fn encode_assignment(a: &Assignment, version: i16) -> Result<Bytes> {
    let m = ConsumerProtocolAssignment::default()
        .with_assigned_partitions(
            by_topic(&a.partitions)
                .into_iter()
                .map(|(t, ps)| {
                    AssignedTopic::default()
                        .with_topic(topic_name(&t))
                        .with_partitions(ps)
                })
                .collect(),
        )
        .with_user_data(a.user_data.clone());
    let mut buf = BytesMut::new();
    buf.put_i16(version);
    m.encode(&mut buf, version)
        .map_err(|e| Error::protocol("encoding an assignment", e))?;
    Ok(buf.freeze())
}

pub fn decode_assignment(bytes: &[u8]) -> Result<Assignment> {
    let mut buf = Bytes::copy_from_slice(bytes);
    let version = read_version(&mut buf, "assignment")?;
    let m = ConsumerProtocolAssignment::decode(&mut buf, version)
        .map_err(|e| Error::protocol("decoding an assignment", e))?;
    Ok(Assignment {
        partitions: m
            .assigned_partitions
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| TopicPartition::new(t.topic.0.to_string(), *p))
            })
            .collect(),
        user_data: m.user_data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_round_trips_at_every_version() {
        let s = Subscription {
            topics: vec!["a".into(), "b".into()],
            user_data: Some(Bytes::from_static(&[0, 0, 0, 7])),
            owned_partitions: vec![TopicPartition::new("a", 1), TopicPartition::new("a", 0)],
            generation: 7,
            rack_id: Some("r1".into()),
        };
        for v in 0..=3 {
            let d = decode_subscription(&encode_subscription(&s, v).unwrap()).unwrap();
            assert_eq!(d.topics, s.topics);
            assert_eq!(d.user_data, s.user_data);
            if v >= 1 {
                assert_eq!(
                    d.owned_partitions,
                    vec![TopicPartition::new("a", 0), TopicPartition::new("a", 1)]
                );
            }
            assert_eq!(d.generation, if v >= 2 { 7 } else { -1 });
            assert_eq!(d.rack_id.is_some(), v >= 3);
        }
    }

    #[test]
    fn java_v0_bytes() {
        // The Java client's ConsumerProtocol.serializeSubscription(new
        // Subscription(List.of("t")), (short) 0): version 0, one topic "t",
        // null user data.
        let java = [0u8, 0, 0, 0, 0, 1, 0, 1, b't', 0xff, 0xff, 0xff, 0xff];
        let s = decode_subscription(&java).unwrap();
        assert_eq!(s.topics, vec!["t"]);
        assert_eq!(s.user_data, None);
        let ours = encode_subscription(&s, 0).unwrap();
        assert_eq!(&ours[..], &java[..]);
    }

    #[test]
    fn assignment_round_trip_and_garbage() {
        let a = Assignment {
            partitions: vec![TopicPartition::new("x", 2), TopicPartition::new("y", 0)],
            user_data: None,
        };
        for v in 0..=3 {
            assert_eq!(
                decode_assignment(&encode_assignment(&a, v).unwrap()).unwrap(),
                a
            );
        }
        // A future version decodes as v3.
        let mut future = encode_assignment(&a, 3).unwrap().to_vec();
        future[1] = 9;
        assert_eq!(decode_assignment(&future).unwrap(), a);
        assert!(decode_assignment(&[0]).is_err());
        assert!(decode_assignment(&[0xff, 0xff, 0, 0]).is_err());
        assert!(decode_assignment(&[0, 0, 0x7f, 0xff, 0xff, 0xff]).is_err());
    }
}
