//! The records of the metadata log. Each is stored as the value of one
//! Kafka record in `__cluster_metadata-0` (a normal Kafka-format log), encoded
//! as a versioned JSON object: `{"v":0,"type":"Topic",...}`. JSON keeps the
//! log readable with `gregor dump-log --print-records`; the volume is tiny.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// What a config record applies to (Kafka's ConfigResource types).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum ConfigResource {
    Topic(String),
    /// A broker by id; `""` is the cluster-wide dynamic default.
    Broker(String),
    /// A consumer (or share / streams) group by id (Kafka 4's group configs).
    Group(String),
}

/// One advertised listener of a broker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerEndpoint {
    /// The listener name (`PLAINTEXT`, `SSL`, `CLIENT`, ...).
    pub name: String,
    pub host: String,
    pub port: u16,
    /// `PLAINTEXT`, `SSL`, `SASL_PLAINTEXT` or `SASL_SSL`.
    pub security_protocol: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type")]
pub enum MetadataRecord {
    /// The cluster was formatted: its id. The first record of every metadata log.
    Cluster {
        cluster_id: String,
    },
    /// A broker registered (with its listener endpoint and rack).
    RegisterBroker {
        node_id: i32,
        host: String,
        port: u16,
        rack: Option<String>,
    },
    /// The client listeners of a registered broker (Kafka's
    /// `BrokerRegistrationRecord.endPoints`): a Metadata request is answered
    /// with the endpoints of the listener it arrived on. Written right after
    /// [`MetadataRecord::RegisterBroker`], which clears them; a broker
    /// without this record is reached at its registered `host:port`.
    BrokerEndpoints {
        node_id: i32,
        endpoints: Vec<BrokerEndpoint>,
    },
    /// A broker was fenced (`true`: it lost its session, its replicas may
    /// not lead or join an ISR) or unfenced (`false`: it is live again).
    /// Kafka's `BrokerRegistrationChangeRecord.fenced`.
    BrokerFence {
        node_id: i32,
        fenced: bool,
    },
    Topic {
        name: String,
        topic_id: Uuid,
    },
    Partition {
        topic_id: Uuid,
        partition: i32,
        replicas: Vec<i32>,
        isr: Vec<i32>,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        /// While a reassignment is in progress: the replicas it adds and
        /// those it will remove (Kafka's `PartitionRecord.addingReplicas` /
        /// `removingReplicas`); both are also in `replicas`. Empty, and then
        /// left out of the JSON, otherwise, so records written before
        /// reassignments existed decode and are written unchanged.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        adding_replicas: Vec<i32>,
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        removing_replicas: Vec<i32>,
    },
    RemoveTopic {
        topic_id: Uuid,
    },
    /// Sets (`Some`) or deletes (`None`) one config of a resource.
    Config {
        resource: ConfigResource,
        name: String,
        value: Option<String>,
    },
    /// Producer ids below `next_producer_id` are handed out; a broker owns
    /// the block it allocated.
    ProducerIds {
        broker_id: i32,
        next_producer_id: i64,
    },
    /// A cluster feature's finalized level (Kafka's `FeatureLevelRecord`),
    /// e.g. `transaction.version`; level 0 removes the feature.
    FeatureLevel {
        name: String,
        level: i16,
    },
    /// A user's SCRAM credential for one mechanism, added or replaced
    /// (Kafka's `UserScramCredentialRecord`). `mechanism` is Kafka's type
    /// id (1 SCRAM-SHA-256, 2 SCRAM-SHA-512); the byte fields are base64 in
    /// the JSON. The salted password itself is never stored.
    UserScramCredential {
        name: String,
        mechanism: i8,
        #[serde(with = "b64")]
        salt: Vec<u8>,
        #[serde(with = "b64")]
        stored_key: Vec<u8>,
        #[serde(with = "b64")]
        server_key: Vec<u8>,
        iterations: i32,
    },
    /// A user's SCRAM credential for one mechanism was deleted (Kafka's
    /// `RemoveUserScramCredentialRecord`).
    RemoveUserScramCredential {
        name: String,
        mechanism: i8,
    },
    /// An ACL was created (Kafka's `AccessControlEntryRecord`). The enum
    /// fields are Kafka's wire codes (`gregor_security::acl`); `id` names
    /// the ACL for its removal.
    AccessControlEntry {
        id: Uuid,
        resource_type: i8,
        resource_name: String,
        pattern_type: i8,
        principal: String,
        host: String,
        operation: i8,
        permission_type: i8,
    },
    /// The ACL `id` was deleted (Kafka's `RemoveAccessControlEntryRecord`).
    RemoveAccessControlEntry {
        id: Uuid,
    },
    /// One quota of a client quota entity was set or removed (Kafka's
    /// `ClientQuotaRecord`, type 14). `entity` names the entity by its
    /// parts (`user`, `client-id` or `ip`); a `None` name is the default
    /// of that type (`<default>`).
    ClientQuota {
        entity: Vec<QuotaEntityPart>,
        key: String,
        value: QuotaValue,
        remove: bool,
    },
    /// The start of a metadata transaction (KIP-868's
    /// `BeginTransactionRecord`): the records up to the matching
    /// [`MetadataRecord::EndTransaction`] are one change, written in several
    /// batches because one would be too large. Readers apply them together
    /// (see [`crate::transaction`]).
    BeginTransaction {
        name: String,
    },
    /// The end of the open metadata transaction: its records take effect.
    EndTransaction,
    /// The open metadata transaction is abandoned (its writer lost its
    /// place before it ended): its records never take effect.
    AbortTransaction {
        reason: String,
    },
}

/// One part of a client quota entity: its type (`user`, `client-id`,
/// `ip`) and name, `None` for the type's default.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct QuotaEntityPart {
    pub entity_type: String,
    pub entity_name: Option<String>,
}

/// A quota's value. Always finite (the controller refuses NaN and
/// infinities, which JSON cannot hold either), so comparing bits is equality.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct QuotaValue(pub f64);

impl Eq for QuotaValue {}

impl MetadataRecord {
    /// The record that creates `binding` as ACL `id`.
    pub fn acl(id: Uuid, binding: &gregor_security::acl::AclBinding) -> Self {
        MetadataRecord::AccessControlEntry {
            id,
            resource_type: binding.pattern.resource_type.code(),
            resource_name: binding.pattern.name.clone(),
            pattern_type: binding.pattern.pattern_type.code(),
            principal: binding.entry.principal.clone(),
            host: binding.entry.host.clone(),
            operation: binding.entry.operation.code(),
            permission_type: binding.entry.permission.code(),
        }
    }
}

/// Bytes as a base64 string in the JSON of a record.
mod b64 {
    use base64::engine::general_purpose::STANDARD;
    use base64::Engine;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&STANDARD.encode(bytes))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        STANDARD.decode(text).map_err(serde::de::Error::custom)
    }
}

#[derive(Debug, thiserror::Error)]
#[error("metadata record at offset {offset} is not valid: {source}")]
pub struct DecodeError {
    pub offset: i64,
    #[source]
    pub source: serde_json::Error,
}

#[derive(Serialize, Deserialize)]
struct Versioned<T> {
    v: u8,
    #[serde(flatten)]
    record: T,
}

impl MetadataRecord {
    pub fn encode(&self) -> Vec<u8> {
        // Serialising these plain data types cannot fail.
        serde_json::to_vec(&Versioned { v: 0, record: self }).unwrap_or_default()
    }

    pub fn decode(bytes: &[u8], offset: i64) -> Result<Self, DecodeError> {
        serde_json::from_slice::<Versioned<MetadataRecord>>(bytes)
            .map(|v| v.record)
            .map_err(|source| DecodeError { offset, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let records = vec![
            MetadataRecord::Cluster {
                cluster_id: "abc".into(),
            },
            MetadataRecord::Topic {
                name: "t".into(),
                topic_id: Uuid::from_u128(5),
            },
            MetadataRecord::Config {
                resource: ConfigResource::Topic("t".into()),
                name: "retention.ms".into(),
                value: None,
            },
            MetadataRecord::Config {
                resource: ConfigResource::Group("g".into()),
                name: "consumer.session.timeout.ms".into(),
                value: Some("50000".into()),
            },
            MetadataRecord::BrokerFence {
                node_id: 2,
                fenced: true,
            },
            MetadataRecord::UserScramCredential {
                name: "alice".into(),
                mechanism: 1,
                salt: vec![1, 2, 3],
                stored_key: vec![0xff; 32],
                server_key: vec![],
                iterations: 4096,
            },
            MetadataRecord::RemoveUserScramCredential {
                name: "alice".into(),
                mechanism: 2,
            },
            MetadataRecord::AccessControlEntry {
                id: Uuid::from_u128(9),
                resource_type: 2,
                resource_name: "logs-".into(),
                pattern_type: 4,
                principal: "User:alice".into(),
                host: "*".into(),
                operation: 3,
                permission_type: 3,
            },
            MetadataRecord::RemoveAccessControlEntry {
                id: Uuid::from_u128(9),
            },
            MetadataRecord::ClientQuota {
                entity: vec![
                    QuotaEntityPart {
                        entity_type: "user".into(),
                        entity_name: None,
                    },
                    QuotaEntityPart {
                        entity_type: "client-id".into(),
                        entity_name: Some("c".into()),
                    },
                ],
                key: "producer_byte_rate".into(),
                value: QuotaValue(1024.5),
                remove: false,
            },
            MetadataRecord::BeginTransaction {
                name: "create topic t".into(),
            },
            MetadataRecord::EndTransaction,
            MetadataRecord::AbortTransaction { reason: "r".into() },
            MetadataRecord::Partition {
                topic_id: Uuid::from_u128(5),
                partition: 1,
                replicas: vec![3, 1, 2],
                isr: vec![1, 2],
                leader: 1,
                leader_epoch: 4,
                partition_epoch: 9,
                adding_replicas: vec![3],
                removing_replicas: vec![2],
            },
        ];
        for r in records {
            let bytes = r.encode();
            assert_eq!(MetadataRecord::decode(&bytes, 0).unwrap(), r);
        }
        assert!(MetadataRecord::decode(b"{\"v\":0,\"type\":\"Nope\"}", 3).is_err());
        // Records written before the Group variant existed still decode.
        let old = br#"{"v":0,"type":"Config","resource":{"Broker":"1"},"name":"a","value":"b"}"#;
        assert!(MetadataRecord::decode(old, 0).is_ok());
        // Records written before BrokerFence existed still decode.
        let old =
            br#"{"v":0,"type":"RegisterBroker","node_id":1,"host":"h","port":9092,"rack":null}"#;
        assert!(MetadataRecord::decode(old, 0).is_ok());
        // Partition records written before reassignments existed still
        // decode (with none in progress), and such records encode as before.
        let old = br#"{"v":0,"type":"Partition","topic_id":"00000000-0000-0000-0000-000000000005","partition":0,"replicas":[1],"isr":[1],"leader":1,"leader_epoch":0,"partition_epoch":0}"#;
        let decoded = MetadataRecord::decode(old, 0).unwrap();
        assert_eq!(
            decoded,
            MetadataRecord::Partition {
                topic_id: Uuid::from_u128(5),
                partition: 0,
                replicas: vec![1],
                isr: vec![1],
                leader: 1,
                leader_epoch: 0,
                partition_epoch: 0,
                adding_replicas: vec![],
                removing_replicas: vec![],
            }
        );
        assert_eq!(decoded.encode(), old.to_vec());
        assert!(MetadataRecord::decode(b"\xff", 3).is_err());
        let scram = br#"{"v":0,"type":"UserScramCredential","name":"a","mechanism":1,"salt":"AQID","stored_key":"","server_key":"","iterations":4096}"#;
        let decoded = MetadataRecord::decode(scram, 0).unwrap();
        assert_eq!(decoded.encode(), scram.to_vec());
        let bad = br#"{"v":0,"type":"UserScramCredential","name":"a","mechanism":1,"salt":"!","stored_key":"","server_key":"","iterations":4096}"#;
        assert!(MetadataRecord::decode(bad, 0).is_err());
    }
}
