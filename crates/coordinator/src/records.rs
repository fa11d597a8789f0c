//! Kafka's record formats in `__consumer_offsets`, byte-compatible with
//! Kafka 3.x/4.x (`group-coordinator/src/main/resources/common/message/*.json`).
//!
//! Every key and value starts with a big-endian `int16` version. Strings are
//! `int16` length + UTF-8 (nullable: length -1), bytes are `int32` length +
//! data. Version 4 of the values is "flexible" (compact lengths as unsigned
//! varint of length+1, tagged fields); Kafka does not write it yet but reads
//! it, so do we.
//!
//! ```text
//! OffsetCommitKey    v0,v1  (written: v1)
//!   version:int16 | group:string | topic:string | partition:int32
//! GroupMetadataKey   v2
//!   version:int16 | group:string
//! OffsetCommitValue  v0-4   (written: v3, or v1 when the commit carries an
//!                            explicit retention, as Kafka does)
//!   version:int16 | offset:int64 | leaderEpoch:int32 (v3+) | metadata:string
//!   | commitTimestamp:int64 | expireTimestamp:int64 (v1 only)
//! GroupMetadataValue v0-4   (written: v3)
//!   version:int16 | protocolType:string | generation:int32
//!   | protocol:nullable string | leader:nullable string
//!   | currentStateTimestamp:int64 (v2+)
//!   | members:[ memberId:string | groupInstanceId:nullable string (v3+)
//!              | clientId:string | clientHost:string
//!              | rebalanceTimeout:int32 (v1+) | sessionTimeout:int32
//!              | subscription:bytes | assignment:bytes ]
//! ```
//!
//! Key versions 3-8 are KIP-848 consumer group records
//! ([`crate::consumer::records`]). Any other key version belongs to record
//! types this coordinator does not model (share groups, streams groups...); it decodes as
//! [`RecordKey::Other`] so replay can skip it without calling it garbage.

use bytes::{BufMut, Bytes, BytesMut};

/// Decoding failures. Replay logs them and skips the record.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RecordError {
    #[error("{record}: truncated at byte {at} while reading {field}")]
    Truncated {
        record: &'static str,
        field: &'static str,
        at: usize,
    },
    #[error("{record}: unsupported version {version}")]
    UnsupportedVersion { record: &'static str, version: i16 },
    #[error("{record}: field {field} is not valid UTF-8")]
    InvalidUtf8 {
        record: &'static str,
        field: &'static str,
    },
    #[error("{record}: field {field} has invalid length {len}")]
    InvalidLength {
        record: &'static str,
        field: &'static str,
        len: i64,
    },
    #[error("{record}: field {field} is null but not nullable")]
    UnexpectedNull {
        record: &'static str,
        field: &'static str,
    },
    #[error("{record}: field {field} has no meaning for value {value}")]
    InvalidValue {
        record: &'static str,
        field: &'static str,
        value: i64,
    },
}

/// A decoded `__consumer_offsets` key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RecordKey {
    OffsetCommit {
        group: String,
        topic: String,
        partition: i32,
    },
    GroupMetadata {
        group: String,
    },
    /// A KIP-848 consumer group record (key versions 3-8), see
    /// [`crate::consumer::records`]. `member` is set for the per-member types.
    Consumer {
        kind: crate::consumer::records::Kind,
        group: String,
        member: Option<String>,
    },
    /// A record type this coordinator does not handle (key version).
    Other(i16),
}

/// OffsetCommitValue. `leader_epoch` is -1 when unknown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OffsetCommitValue {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: String,
    pub commit_timestamp: i64,
    /// Only in v1 (commits with an explicit retention time, OffsetCommit v2-4).
    pub expire_timestamp: Option<i64>,
}

/// GroupMetadataValue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GroupMetadataValue {
    pub protocol_type: String,
    pub generation: i32,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    /// -1 when unknown (v0/v1 records).
    pub current_state_timestamp: i64,
    pub members: Vec<MemberMetadata>,
}

/// One member inside a [`GroupMetadataValue`]: only the metadata of the
/// group's selected protocol is stored (`subscription`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetadata {
    pub member_id: String,
    pub group_instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub rebalance_timeout: i32,
    pub session_timeout: i32,
    pub subscription: Bytes,
    pub assignment: Bytes,
}

const OFFSET_COMMIT_KEY_VERSION: i16 = 1;
const GROUP_METADATA_KEY_VERSION: i16 = 2;
const GROUP_METADATA_VALUE_VERSION: i16 = 3;

// ---------------------------------------------------------------- encoding

pub(crate) fn put_string(buf: &mut BytesMut, s: &str) {
    // Kafka strings are at most i16::MAX bytes; group ids, topics and
    // metadata are bounded well below that by request validation.
    let len = s.len().min(i16::MAX as usize);
    buf.put_i16(len as i16);
    buf.put_slice(&s.as_bytes()[..len]);
}

fn put_nullable_string(buf: &mut BytesMut, s: Option<&str>) {
    match s {
        Some(s) => put_string(buf, s),
        None => buf.put_i16(-1),
    }
}

fn put_bytes(buf: &mut BytesMut, b: &[u8]) {
    buf.put_i32(b.len() as i32);
    buf.put_slice(b);
}

pub fn encode_offset_commit_key(group: &str, topic: &str, partition: i32) -> Bytes {
    let mut buf = BytesMut::with_capacity(8 + group.len() + topic.len());
    buf.put_i16(OFFSET_COMMIT_KEY_VERSION);
    put_string(&mut buf, group);
    put_string(&mut buf, topic);
    buf.put_i32(partition);
    buf.freeze()
}

pub fn encode_group_metadata_key(group: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(4 + group.len());
    buf.put_i16(GROUP_METADATA_KEY_VERSION);
    put_string(&mut buf, group);
    buf.freeze()
}

/// v3, or v1 when `expire_timestamp` is set (Kafka keeps the v1 format for
/// commits that carry their own retention so the expiry survives a reload).
pub fn encode_offset_commit_value(v: &OffsetCommitValue) -> Bytes {
    let mut buf = BytesMut::with_capacity(32 + v.metadata.len());
    match v.expire_timestamp {
        Some(expire) => {
            buf.put_i16(1);
            buf.put_i64(v.offset);
            put_string(&mut buf, &v.metadata);
            buf.put_i64(v.commit_timestamp);
            buf.put_i64(expire);
        }
        None => {
            buf.put_i16(3);
            buf.put_i64(v.offset);
            buf.put_i32(v.leader_epoch);
            put_string(&mut buf, &v.metadata);
            buf.put_i64(v.commit_timestamp);
        }
    }
    buf.freeze()
}

pub fn encode_group_metadata_value(v: &GroupMetadataValue) -> Bytes {
    let mut buf = BytesMut::with_capacity(64);
    buf.put_i16(GROUP_METADATA_VALUE_VERSION);
    put_string(&mut buf, &v.protocol_type);
    buf.put_i32(v.generation);
    put_nullable_string(&mut buf, v.protocol.as_deref());
    put_nullable_string(&mut buf, v.leader.as_deref());
    buf.put_i64(v.current_state_timestamp);
    buf.put_i32(v.members.len() as i32);
    for m in &v.members {
        put_string(&mut buf, &m.member_id);
        put_nullable_string(&mut buf, m.group_instance_id.as_deref());
        put_string(&mut buf, &m.client_id);
        put_string(&mut buf, &m.client_host);
        buf.put_i32(m.rebalance_timeout);
        buf.put_i32(m.session_timeout);
        put_bytes(&mut buf, &m.subscription);
        put_bytes(&mut buf, &m.assignment);
    }
    buf.freeze()
}

// ---------------------------------------------------------------- decoding

/// A bounds-checked cursor; every read names the field for the error.
pub(crate) struct Reader<'a> {
    pub(crate) record: &'static str,
    data: &'a [u8],
    pos: usize,
    /// Flexible (compact) encoding.
    pub(crate) flexible: bool,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(record: &'static str, data: &'a [u8]) -> Self {
        Self {
            record,
            data,
            pos: 0,
            flexible: false,
        }
    }

    pub(crate) fn take(&mut self, n: usize, field: &'static str) -> Result<&'a [u8], RecordError> {
        let end = self.pos.checked_add(n).filter(|&e| e <= self.data.len());
        match end {
            Some(end) => {
                let s = &self.data[self.pos..end];
                self.pos = end;
                Ok(s)
            }
            None => Err(RecordError::Truncated {
                record: self.record,
                field,
                at: self.pos,
            }),
        }
    }

    pub(crate) fn array<const N: usize>(
        &mut self,
        field: &'static str,
    ) -> Result<[u8; N], RecordError> {
        let s = self.take(N, field)?;
        let mut a = [0u8; N];
        a.copy_from_slice(s);
        Ok(a)
    }

    pub(crate) fn i16(&mut self, field: &'static str) -> Result<i16, RecordError> {
        Ok(i16::from_be_bytes(self.array(field)?))
    }
    pub(crate) fn i32(&mut self, field: &'static str) -> Result<i32, RecordError> {
        Ok(i32::from_be_bytes(self.array(field)?))
    }
    pub(crate) fn i64(&mut self, field: &'static str) -> Result<i64, RecordError> {
        Ok(i64::from_be_bytes(self.array(field)?))
    }

    pub(crate) fn varint(&mut self, field: &'static str) -> Result<u32, RecordError> {
        let mut value: u32 = 0;
        for i in 0..5 {
            let b = self.array::<1>(field)?[0];
            value |= u32::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(RecordError::InvalidLength {
            record: self.record,
            field,
            len: -1,
        })
    }

    /// Length of a string/bytes/array field; `None` for null.
    fn length(&mut self, field: &'static str, wide: bool) -> Result<Option<usize>, RecordError> {
        let len: i64 = if self.flexible {
            i64::from(self.varint(field)?) - 1
        } else if wide {
            i64::from(self.i32(field)?)
        } else {
            i64::from(self.i16(field)?)
        };
        if len == -1 {
            return Ok(None);
        }
        // A length can never exceed what is left; checking here keeps a
        // garbage length from driving an allocation.
        if len < -1 || len as u64 > (self.data.len() - self.pos) as u64 {
            return Err(RecordError::InvalidLength {
                record: self.record,
                field,
                len,
            });
        }
        Ok(Some(len as usize))
    }

    pub(crate) fn nullable_string(
        &mut self,
        field: &'static str,
    ) -> Result<Option<String>, RecordError> {
        let Some(len) = self.length(field, false)? else {
            return Ok(None);
        };
        let raw = self.take(len, field)?;
        match std::str::from_utf8(raw) {
            Ok(s) => Ok(Some(s.to_owned())),
            Err(_) => Err(RecordError::InvalidUtf8 {
                record: self.record,
                field,
            }),
        }
    }

    pub(crate) fn string(&mut self, field: &'static str) -> Result<String, RecordError> {
        self.nullable_string(field)?
            .ok_or(RecordError::UnexpectedNull {
                record: self.record,
                field,
            })
    }

    pub(crate) fn bytes(&mut self, field: &'static str) -> Result<Bytes, RecordError> {
        // Kafka's `bytes` is not nullable here; treat null as empty like its
        // readers do for ignorable fields.
        match self.length(field, true)? {
            None => Ok(Bytes::new()),
            Some(len) => Ok(Bytes::copy_from_slice(self.take(len, field)?)),
        }
    }

    pub(crate) fn array_len(&mut self, field: &'static str) -> Result<usize, RecordError> {
        Ok(self.length(field, true)?.unwrap_or(0))
    }

    /// Length of a nullable array; `None` for null.
    pub(crate) fn nullable_array_len(
        &mut self,
        field: &'static str,
    ) -> Result<Option<usize>, RecordError> {
        self.length(field, true)
    }

    /// Skips a flexible version's tagged-field section.
    pub(crate) fn skip_tagged_fields(&mut self) -> Result<(), RecordError> {
        if !self.flexible {
            return Ok(());
        }
        let n = self.varint("tagged fields")?;
        for _ in 0..n {
            self.varint("tag")?;
            let size = self.varint("tag size")? as usize;
            self.take(size, "tagged field")?;
        }
        Ok(())
    }
}

pub fn decode_key(data: &[u8]) -> Result<RecordKey, RecordError> {
    let mut r = Reader::new("key", data);
    let version = r.i16("version")?;
    match version {
        0 | 1 => {
            r.record = "OffsetCommitKey";
            let group = r.string("group")?;
            let topic = r.string("topic")?;
            let partition = r.i32("partition")?;
            Ok(RecordKey::OffsetCommit {
                group,
                topic,
                partition,
            })
        }
        2 => {
            r.record = "GroupMetadataKey";
            Ok(RecordKey::GroupMetadata {
                group: r.string("group")?,
            })
        }
        3..=8 => crate::consumer::records::decode_key(&mut r, version),
        v if v < 0 => Err(RecordError::UnsupportedVersion {
            record: "key",
            version: v,
        }),
        v => Ok(RecordKey::Other(v)),
    }
}

pub fn decode_offset_commit_value(data: &[u8]) -> Result<OffsetCommitValue, RecordError> {
    let mut r = Reader::new("OffsetCommitValue", data);
    let version = r.i16("version")?;
    if !(0..=4).contains(&version) {
        return Err(RecordError::UnsupportedVersion {
            record: "OffsetCommitValue",
            version,
        });
    }
    r.flexible = version >= 4;
    let offset = r.i64("offset")?;
    let leader_epoch = if version >= 3 {
        r.i32("leaderEpoch")?
    } else {
        -1
    };
    let metadata = r.string("metadata")?;
    let commit_timestamp = r.i64("commitTimestamp")?;
    let expire_timestamp = if version == 1 {
        Some(r.i64("expireTimestamp")?).filter(|&t| t != -1)
    } else {
        None
    };
    r.skip_tagged_fields()?;
    Ok(OffsetCommitValue {
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
        expire_timestamp,
    })
}

pub fn decode_group_metadata_value(data: &[u8]) -> Result<GroupMetadataValue, RecordError> {
    let mut r = Reader::new("GroupMetadataValue", data);
    let version = r.i16("version")?;
    if !(0..=4).contains(&version) {
        return Err(RecordError::UnsupportedVersion {
            record: "GroupMetadataValue",
            version,
        });
    }
    r.flexible = version >= 4;
    let protocol_type = r.string("protocolType")?;
    let generation = r.i32("generation")?;
    let protocol = r.nullable_string("protocol")?;
    let leader = r.nullable_string("leader")?;
    let current_state_timestamp = if version >= 2 {
        r.i64("currentStateTimestamp")?
    } else {
        -1
    };
    let n = r.array_len("members")?;
    let mut members = Vec::with_capacity(n.min(1024));
    for _ in 0..n {
        let member_id = r.string("memberId")?;
        let group_instance_id = if version >= 3 {
            r.nullable_string("groupInstanceId")?
        } else {
            None
        };
        let client_id = r.string("clientId")?;
        let client_host = r.string("clientHost")?;
        let rebalance_timeout = if version >= 1 {
            Some(r.i32("rebalanceTimeout")?)
        } else {
            None
        };
        let session_timeout = r.i32("sessionTimeout")?;
        let subscription = r.bytes("subscription")?;
        let assignment = r.bytes("assignment")?;
        r.skip_tagged_fields()?;
        members.push(MemberMetadata {
            member_id,
            group_instance_id,
            client_id,
            client_host,
            // v0 had a single timeout; Kafka uses it for both.
            rebalance_timeout: rebalance_timeout.unwrap_or(session_timeout),
            session_timeout,
            subscription,
            assignment,
        });
    }
    r.skip_tagged_fields()?;
    Ok(GroupMetadataValue {
        protocol_type,
        generation,
        protocol,
        leader,
        current_state_timestamp,
        members,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn offset_commit_key_known_bytes() {
        let key = encode_offset_commit_key("g", "t", 3);
        assert_eq!(
            &key[..],
            &[0, 1, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3],
            "version 1, group, topic, partition"
        );
        assert_eq!(
            decode_key(&key).unwrap(),
            RecordKey::OffsetCommit {
                group: "g".into(),
                topic: "t".into(),
                partition: 3
            }
        );
        // Version 0 keys have the same layout.
        let v0 = [0, 0, 0, 1, b'g', 0, 1, b't', 0, 0, 0, 3];
        assert!(matches!(
            decode_key(&v0).unwrap(),
            RecordKey::OffsetCommit { partition: 3, .. }
        ));
    }

    #[test]
    fn offset_commit_value_v3_known_bytes() {
        let v = OffsetCommitValue {
            offset: 42,
            leader_epoch: 7,
            metadata: "m".into(),
            commit_timestamp: 1000,
            expire_timestamp: None,
        };
        let bytes = encode_offset_commit_value(&v);
        let mut expected = vec![0, 3];
        expected.extend_from_slice(&42i64.to_be_bytes());
        expected.extend_from_slice(&7i32.to_be_bytes());
        expected.extend_from_slice(&[0, 1, b'm']);
        expected.extend_from_slice(&1000i64.to_be_bytes());
        assert_eq!(&bytes[..], &expected[..]);
        assert_eq!(decode_offset_commit_value(&bytes).unwrap(), v);
    }

    #[test]
    fn offset_commit_value_v1_with_expiry() {
        let v = OffsetCommitValue {
            offset: 5,
            leader_epoch: -1,
            metadata: String::new(),
            commit_timestamp: 10,
            expire_timestamp: Some(20),
        };
        let bytes = encode_offset_commit_value(&v);
        assert_eq!(&bytes[..2], &[0, 1]);
        assert_eq!(bytes.len(), 2 + 8 + 2 + 8 + 8);
        assert_eq!(decode_offset_commit_value(&bytes).unwrap(), v);
    }

    #[test]
    fn offset_commit_value_v0_v2_v4() {
        let mut v0 = vec![0, 0];
        v0.extend_from_slice(&9i64.to_be_bytes());
        v0.extend_from_slice(&[0, 0]);
        v0.extend_from_slice(&77i64.to_be_bytes());
        let d = decode_offset_commit_value(&v0).unwrap();
        assert_eq!((d.offset, d.leader_epoch, d.commit_timestamp), (9, -1, 77));
        v0[1] = 2;
        assert_eq!(decode_offset_commit_value(&v0).unwrap().offset, 9);
        // v4: flexible; compact string "ab" (len+1 = 3) and an empty tag section.
        let mut v4 = vec![0, 4];
        v4.extend_from_slice(&9i64.to_be_bytes());
        v4.extend_from_slice(&3i32.to_be_bytes());
        v4.extend_from_slice(&[3, b'a', b'b']);
        v4.extend_from_slice(&77i64.to_be_bytes());
        v4.push(0);
        let d = decode_offset_commit_value(&v4).unwrap();
        assert_eq!(
            (d.offset, d.leader_epoch, d.metadata.as_str()),
            (9, 3, "ab")
        );
    }

    fn sample_group() -> GroupMetadataValue {
        GroupMetadataValue {
            protocol_type: "consumer".into(),
            generation: 3,
            protocol: Some("range".into()),
            leader: Some("m1".into()),
            current_state_timestamp: 1234,
            members: vec![MemberMetadata {
                member_id: "m1".into(),
                group_instance_id: Some("i1".into()),
                client_id: "c".into(),
                client_host: "/127.0.0.1".into(),
                rebalance_timeout: 300_000,
                session_timeout: 45_000,
                subscription: Bytes::from_static(b"sub"),
                assignment: Bytes::from_static(b"asg"),
            }],
        }
    }

    #[test]
    fn group_metadata_round_trip_and_layout() {
        let v = sample_group();
        let bytes = encode_group_metadata_value(&v);
        assert_eq!(&bytes[..2], &[0, 3]);
        assert_eq!(decode_group_metadata_value(&bytes).unwrap(), v);
        let key = encode_group_metadata_key("grp");
        assert_eq!(&key[..], &[0, 2, 0, 3, b'g', b'r', b'p']);
        assert_eq!(
            decode_key(&key).unwrap(),
            RecordKey::GroupMetadata {
                group: "grp".into()
            }
        );
        let empty = GroupMetadataValue {
            protocol: None,
            leader: None,
            members: vec![],
            ..v
        };
        let b = encode_group_metadata_value(&empty);
        assert_eq!(decode_group_metadata_value(&b).unwrap(), empty);
    }

    #[test]
    fn group_metadata_v0_uses_session_timeout_for_rebalance() {
        let mut b = vec![0, 0];
        b.extend_from_slice(&[0, 1, b'c']); // protocolType
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&[0xff, 0xff, 0xff, 0xff]); // protocol, leader null
        b.extend_from_slice(&1i32.to_be_bytes());
        b.extend_from_slice(&[0, 1, b'm', 0, 1, b'c', 0, 1, b'h']);
        b.extend_from_slice(&10_000i32.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        b.extend_from_slice(&0i32.to_be_bytes());
        let d = decode_group_metadata_value(&b).unwrap();
        assert_eq!(d.members[0].rebalance_timeout, 10_000);
        assert_eq!(d.current_state_timestamp, -1);
    }

    #[test]
    fn truncation_is_an_error() {
        let bytes = encode_group_metadata_value(&sample_group());
        for n in 0..bytes.len() {
            assert!(decode_group_metadata_value(&bytes[..n]).is_err(), "len {n}");
        }
    }

    proptest! {
        #[test]
        fn decoders_never_panic(data in proptest::collection::vec(any::<u8>(), 0..128)) {
            let _ = decode_key(&data);
            let _ = decode_offset_commit_value(&data);
            let _ = decode_group_metadata_value(&data);
        }

        #[test]
        fn offset_value_round_trip(offset in any::<i64>(), epoch in any::<i32>(),
                                   meta in ".{0,40}", ts in any::<i64>()) {
            let v = OffsetCommitValue { offset, leader_epoch: epoch, metadata: meta,
                                        commit_timestamp: ts, expire_timestamp: None };
            prop_assert_eq!(decode_offset_commit_value(&encode_offset_commit_value(&v)).unwrap(), v);
        }
    }
}
