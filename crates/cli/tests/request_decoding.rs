//! The broker's request decoding path (`gregor_broker::handlers::decode_only`,
//! what `dispatch` runs before a handler) without a broker process:
//!
//! - every served API and version decodes a valid request;
//! - inputs the fuzzer (`fuzz/fuzz_targets/request.rs`) once crashed on stay fixed;
//! - `write_fuzz_seeds` (ignored) writes those valid requests as a seed corpus:
//!
//! ```sh
//! GREGOR_FUZZ_SEEDS=$PWD/fuzz/corpus/request \
//!   cargo test -p gregor-cli --test request_decoding -- --ignored write_fuzz_seeds
//! ```

use bytes::Bytes;
use gregor_broker::handlers::{decode_only, DispatchError, API_TABLE};
use gregor_records::{BatchBuilder, Compression, Record};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Encodable, Request, StrBytes};

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn name(v: &str) -> TopicName {
    TopicName(s(v))
}

/// A request frame without the size prefix (what `decode_only` takes), or
/// `None` if `req` has fields that `version` cannot carry.
fn frame<R: Request>(version: i16, req: &R) -> Option<Vec<u8>> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(s("seed")));
    let mut buf = bytes::BytesMut::new();
    header.encode(&mut buf, R::header_version(version)).ok()?;
    req.encode(&mut buf, version).ok()?;
    Some(buf.to_vec())
}

fn batch() -> Bytes {
    let mut b = BatchBuilder::new(0, Compression::None);
    for i in 0..3 {
        b.push(Record {
            offset: i,
            timestamp: 1_700_000_000_000 + i,
            key: Some(Bytes::from(format!("k{i}"))),
            value: Some(Bytes::from(format!("v{i}"))),
            headers: vec![],
        });
    }
    b.build().unwrap().freeze()
}

/// Encodes one prepared request at a given version (`None`: not encodable there).
type Encoder = Box<dyn Fn(i16) -> Option<Vec<u8>>>;

/// Requests with their arrays filled in, at least one per served API.
fn populated() -> Vec<(i16, Encoder)> {
    use kafka_protocol::messages::*;
    let topic_id = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
    let mut v: Vec<(i16, Encoder)> = Vec::new();
    macro_rules! add {
        ($t:ty, $req:expr) => {{
            let req: $t = $req;
            v.push((<$t>::KEY, Box::new(move |ver| frame(ver, &req))));
        }};
    }
    let records = batch();
    add!(ProduceRequest, {
        let data = produce_request::PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(records.clone()));
        ProduceRequest::default()
            .with_acks(-1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_name(name("t"))
                .with_partition_data(vec![data])])
    });
    add!(ProduceRequest, {
        let data = produce_request::PartitionProduceData::default()
            .with_index(0)
            .with_records(Some(records.clone()));
        ProduceRequest::default()
            .with_acks(1)
            .with_timeout_ms(1000)
            .with_topic_data(vec![produce_request::TopicProduceData::default()
                .with_topic_id(topic_id)
                .with_partition_data(vec![data])])
    });
    for by_id in [false, true] {
        add!(FetchRequest, {
            let mut t = fetch_request::FetchTopic::default().with_partitions(vec![
                fetch_request::FetchPartition::default()
                    .with_partition(0)
                    .with_fetch_offset(5)
                    .with_partition_max_bytes(1 << 20),
            ]);
            if by_id {
                t.topic_id = topic_id;
            } else {
                t.topic = name("t");
            }
            FetchRequest::default()
                .with_max_wait_ms(500)
                .with_min_bytes(1)
                .with_topics(vec![t])
        });
    }
    add!(ListOffsetsRequest, {
        ListOffsetsRequest::default().with_topics(vec![
            list_offsets_request::ListOffsetsTopic::default()
                .with_name(name("t"))
                .with_partitions(vec![list_offsets_request::ListOffsetsPartition::default()
                    .with_partition_index(0)
                    .with_timestamp(-2)]),
        ])
    });
    add!(MetadataRequest, {
        MetadataRequest::default().with_topics(Some(vec![
            metadata_request::MetadataRequestTopic::default().with_name(Some(name("t"))),
            metadata_request::MetadataRequestTopic::default().with_name(Some(name("u"))),
        ]))
    });
    add!(
        MetadataRequest,
        MetadataRequest::default().with_topics(None)
    );
    add!(ApiVersionsRequest, {
        ApiVersionsRequest::default()
            .with_client_software_name(s("seed"))
            .with_client_software_version(s("1.0"))
    });
    add!(CreateTopicsRequest, {
        CreateTopicsRequest::default()
            .with_timeout_ms(1000)
            .with_topics(vec![create_topics_request::CreatableTopic::default()
                .with_name(name("t"))
                .with_num_partitions(3)
                .with_replication_factor(1)
                .with_configs(vec![
                    create_topics_request::CreatableTopicConfig::default()
                        .with_name(s("cleanup.policy"))
                        .with_value(Some(s("compact"))),
                ])])
    });
    add!(CreateTopicsRequest, {
        CreateTopicsRequest::default().with_topics(vec![
            create_topics_request::CreatableTopic::default()
                .with_name(name("t"))
                .with_num_partitions(-1)
                .with_replication_factor(-1)
                .with_assignments(vec![
                    create_topics_request::CreatableReplicaAssignment::default()
                        .with_partition_index(0)
                        .with_broker_ids(vec![BrokerId(1)]),
                ]),
        ])
    });
    add!(
        DeleteTopicsRequest,
        DeleteTopicsRequest::default().with_topic_names(vec![name("t")])
    );
    add!(DeleteTopicsRequest, {
        DeleteTopicsRequest::default().with_topics(vec![
            delete_topics_request::DeleteTopicState::default().with_name(Some(name("t"))),
            delete_topics_request::DeleteTopicState::default().with_topic_id(topic_id),
        ])
    });
    add!(DeleteRecordsRequest, {
        DeleteRecordsRequest::default().with_topics(vec![
            delete_records_request::DeleteRecordsTopic::default()
                .with_name(name("t"))
                .with_partitions(vec![
                    delete_records_request::DeleteRecordsPartition::default()
                        .with_partition_index(0)
                        .with_offset(3),
                ]),
        ])
    });
    add!(InitProducerIdRequest, {
        InitProducerIdRequest::default()
            .with_transaction_timeout_ms(60_000)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    });
    add!(DescribeConfigsRequest, {
        DescribeConfigsRequest::default()
            .with_include_synonyms(true)
            .with_resources(vec![
                describe_configs_request::DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(s("t"))
                    .with_configuration_keys(Some(vec![s("retention.ms")])),
            ])
    });
    add!(AlterConfigsRequest, {
        AlterConfigsRequest::default().with_resources(vec![
            alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("t"))
                .with_configs(vec![alter_configs_request::AlterableConfig::default()
                    .with_name(s("retention.ms"))
                    .with_value(Some(s("1000")))]),
        ])
    });
    add!(CreatePartitionsRequest, {
        CreatePartitionsRequest::default()
            .with_timeout_ms(1000)
            .with_topics(vec![
                create_partitions_request::CreatePartitionsTopic::default()
                    .with_name(name("t"))
                    .with_count(4)
                    .with_assignments(Some(vec![
                        create_partitions_request::CreatePartitionsAssignment::default()
                            .with_broker_ids(vec![BrokerId(1)]),
                    ])),
            ])
    });
    add!(IncrementalAlterConfigsRequest, {
        IncrementalAlterConfigsRequest::default().with_resources(vec![
            incremental_alter_configs_request::AlterConfigsResource::default()
                .with_resource_type(2)
                .with_resource_name(s("t"))
                .with_configs(vec![
                    incremental_alter_configs_request::AlterableConfig::default()
                        .with_name(s("retention.ms"))
                        .with_config_operation(0)
                        .with_value(Some(s("1000"))),
                    incremental_alter_configs_request::AlterableConfig::default()
                        .with_name(s("segment.ms"))
                        .with_config_operation(1),
                ]),
        ])
    });
    add!(
        DescribeClusterRequest,
        DescribeClusterRequest::default().with_include_cluster_authorized_operations(true)
    );
    add!(DescribeTopicPartitionsRequest, {
        DescribeTopicPartitionsRequest::default()
            .with_response_partition_limit(100)
            .with_topics(vec![
                describe_topic_partitions_request::TopicRequest::default().with_name(name("t")),
            ])
            .with_cursor(Some(
                describe_topic_partitions_request::Cursor::default()
                    .with_topic_name(name("t"))
                    .with_partition_index(1),
            ))
    });
    add!(
        DescribeUserScramCredentialsRequest,
        DescribeUserScramCredentialsRequest::default().with_users(Some(vec![
            describe_user_scram_credentials_request::UserName::default().with_name(s("alice")),
        ]))
    );
    add!(AlterUserScramCredentialsRequest, {
        use alter_user_scram_credentials_request::{
            ScramCredentialDeletion, ScramCredentialUpsertion,
        };
        AlterUserScramCredentialsRequest::default()
            .with_deletions(vec![ScramCredentialDeletion::default()
                .with_name(s("bob"))
                .with_mechanism(2)])
            .with_upsertions(vec![ScramCredentialUpsertion::default()
                .with_name(s("alice"))
                .with_mechanism(1)
                .with_iterations(8192)
                .with_salt(bytes::Bytes::from_static(b"salt"))
                .with_salted_password(bytes::Bytes::from(vec![7u8; 32]))])
    });
    add!(DescribeClientQuotasRequest, {
        DescribeClientQuotasRequest::default()
            .with_components(vec![
                describe_client_quotas_request::ComponentData::default()
                    .with_entity_type(s("user"))
                    .with_match_type(0)
                    .with_match(Some(s("alice"))),
                describe_client_quotas_request::ComponentData::default()
                    .with_entity_type(s("client-id"))
                    .with_match_type(1),
            ])
            .with_strict(true)
    });
    add!(AlterClientQuotasRequest, {
        use alter_client_quotas_request::{EntityData, EntryData, OpData};
        AlterClientQuotasRequest::default().with_entries(vec![EntryData::default()
            .with_entity(vec![
                EntityData::default()
                    .with_entity_type(s("user"))
                    .with_entity_name(Some(s("alice"))),
                EntityData::default().with_entity_type(s("client-id")),
            ])
            .with_ops(vec![
                OpData::default()
                    .with_key(s("producer_byte_rate"))
                    .with_value(1024.0),
                OpData::default()
                    .with_key(s("consumer_byte_rate"))
                    .with_remove(true),
            ])])
    });
    add!(
        SaslHandshakeRequest,
        SaslHandshakeRequest::default().with_mechanism(s("SCRAM-SHA-256"))
    );
    add!(
        SaslAuthenticateRequest,
        SaslAuthenticateRequest::default()
            .with_auth_bytes(bytes::Bytes::from_static(b"n,,n=alice,r=abc"))
    );
    add!(
        DescribeAclsRequest,
        DescribeAclsRequest::default()
            .with_resource_type_filter(2)
            .with_resource_name_filter(Some(s("logs-1")))
            .with_pattern_type_filter(2)
            .with_principal_filter(Some(s("User:alice")))
            .with_operation(1)
            .with_permission_type(1)
    );
    add!(
        CreateAclsRequest,
        CreateAclsRequest::default().with_creations(vec![
            create_acls_request::AclCreation::default()
                .with_resource_type(2)
                .with_resource_name(s("logs-"))
                .with_resource_pattern_type(4)
                .with_principal(s("User:alice"))
                .with_host(s("*"))
                .with_operation(3)
                .with_permission_type(3)
        ])
    );
    add!(
        DeleteAclsRequest,
        DeleteAclsRequest::default().with_filters(vec![
            delete_acls_request::DeleteAclsFilter::default()
                .with_resource_type_filter(1)
                .with_pattern_type_filter(1)
                .with_host_filter(Some(s("*")))
                .with_operation(1)
                .with_permission_type(1)
        ])
    );
    v
}

/// The default-valued request of an API key (every client-facing API that
/// kafka-protocol knows, so APIs added to the broker are covered at once).
fn default_frame(key: i16, version: i16) -> Option<Vec<u8>> {
    macro_rules! by_key {
        ($($t:ty),* $(,)?) => {
            $( if key == <$t>::KEY { return frame(version, &<$t>::default()); } )*
        };
    }
    by_key!(
        ProduceRequest,
        FetchRequest,
        ListOffsetsRequest,
        MetadataRequest,
        OffsetCommitRequest,
        OffsetFetchRequest,
        FindCoordinatorRequest,
        JoinGroupRequest,
        HeartbeatRequest,
        LeaveGroupRequest,
        SyncGroupRequest,
        DescribeGroupsRequest,
        ListGroupsRequest,
        SaslHandshakeRequest,
        ApiVersionsRequest,
        CreateTopicsRequest,
        DeleteTopicsRequest,
        DeleteRecordsRequest,
        InitProducerIdRequest,
        OffsetForLeaderEpochRequest,
        AddPartitionsToTxnRequest,
        AddOffsetsToTxnRequest,
        EndTxnRequest,
        WriteTxnMarkersRequest,
        TxnOffsetCommitRequest,
        DescribeAclsRequest,
        CreateAclsRequest,
        DeleteAclsRequest,
        DescribeConfigsRequest,
        AlterConfigsRequest,
        AlterReplicaLogDirsRequest,
        DescribeLogDirsRequest,
        SaslAuthenticateRequest,
        CreatePartitionsRequest,
        CreateDelegationTokenRequest,
        RenewDelegationTokenRequest,
        ExpireDelegationTokenRequest,
        DescribeDelegationTokenRequest,
        DeleteGroupsRequest,
        ElectLeadersRequest,
        IncrementalAlterConfigsRequest,
        AlterPartitionReassignmentsRequest,
        ListPartitionReassignmentsRequest,
        OffsetDeleteRequest,
        DescribeClientQuotasRequest,
        UpdateFeaturesRequest,
        AlterClientQuotasRequest,
        DescribeUserScramCredentialsRequest,
        AlterUserScramCredentialsRequest,
        DescribeClusterRequest,
        DescribeQuorumRequest,
        DescribeProducersRequest,
        DescribeTransactionsRequest,
        ListTransactionsRequest,
        ConsumerGroupHeartbeatRequest,
        ConsumerGroupDescribeRequest,
        GetTelemetrySubscriptionsRequest,
        PushTelemetryRequest,
        ListConfigResourcesRequest,
        DescribeTopicPartitionsRequest,
        ShareGroupHeartbeatRequest,
        ShareGroupDescribeRequest,
        ShareFetchRequest,
        ShareAcknowledgeRequest,
        DescribeShareGroupOffsetsRequest,
        AlterShareGroupOffsetsRequest,
        DeleteShareGroupOffsetsRequest,
    );
    panic!("API key {key} has no request type here")
}

/// `(name, frame)` for every valid request of every served API and version.
fn valid_frames() -> Vec<(String, Vec<u8>)> {
    let populated = populated();
    let mut out = Vec::new();
    for e in API_TABLE {
        let key = e.key as i16;
        for version in e.min_served..=e.max {
            let f = default_frame(key, version)
                .unwrap_or_else(|| panic!("default {:?} v{version} does not encode", e.key));
            out.push((format!("{:?}-v{version}-default", e.key), f));
            for (i, (k, make)) in populated.iter().enumerate() {
                if *k == key {
                    if let Some(f) = make(version) {
                        out.push((format!("{:?}-v{version}-{i}", e.key), f));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn every_served_api_and_version_decodes() {
    let frames = valid_frames();
    for (name, f) in &frames {
        if let Err(e) = decode_only(Bytes::copy_from_slice(f)) {
            panic!("{name}: {e}");
        }
    }
    // Every populated request encodes at some served version (a request
    // type that never encodes is a mistake in this file).
    for (key, make) in populated() {
        let e = API_TABLE.iter().find(|e| e.key as i16 == key).unwrap();
        assert!(
            (e.min_served..=e.max).any(|v| make(v).is_some()),
            "populated {:?} request encodes at no served version",
            e.key
        );
    }
}

#[test]
fn rejects_what_dispatch_rejects() {
    // Too short for a header.
    assert!(matches!(
        decode_only(Bytes::from_static(&[0, 3, 0])),
        Err(DispatchError::Malformed { .. })
    ));
    // Unknown API key.
    assert!(matches!(
        decode_only(Bytes::from_static(&[0x27, 0x0f, 0, 0, 0, 0, 0, 1])),
        Err(DispatchError::UnknownApi(9999))
    ));
    // Produce v2 is advertised but not served.
    let mut f = frame(3, &ProduceRequest::default()).unwrap();
    f[2..4].copy_from_slice(&2i16.to_be_bytes());
    assert!(matches!(
        decode_only(Bytes::from(f)),
        Err(DispatchError::UnsupportedVersion { .. })
    ));
    // A too-new ApiVersions is answered (KIP-511), not rejected.
    let mut f = frame(3, &ApiVersionsRequest::default()).unwrap();
    f[2..4].copy_from_slice(&99i16.to_be_bytes());
    assert!(decode_only(Bytes::from(f)).is_ok());
    // Every valid frame cut short at every length: an error or (a cut in
    // trailing tagged fields) a decode, never a panic.
    for (_, f) in valid_frames() {
        for len in 0..f.len() {
            let _ = decode_only(Bytes::copy_from_slice(&f[..len]));
        }
    }
}

/// Metadata v1 claiming 0x7fffffff topics in a 4-byte body: must fail fast
/// without preallocating (the vendored kafka-protocol patch).
#[test]
fn huge_array_count_is_an_error_not_an_allocation() {
    let mut f = frame(1, &MetadataRequest::default().with_topics(Some(vec![]))).unwrap();
    let n = f.len();
    f[n - 4..].copy_from_slice(&0x7fff_ffffi32.to_be_bytes());
    assert!(matches!(
        decode_only(Bytes::from(f)),
        Err(DispatchError::Malformed { .. })
    ));
}

/// Writes every valid frame into `$GREGOR_FUZZ_SEEDS` for the `request` fuzz target.
#[test]
#[ignore = "writes the fuzz seed corpus; run by hand"]
fn write_fuzz_seeds() {
    let dir = std::env::var_os("GREGOR_FUZZ_SEEDS").expect("set GREGOR_FUZZ_SEEDS to a directory");
    let dir = std::path::PathBuf::from(dir);
    std::fs::create_dir_all(&dir).unwrap();
    let frames = valid_frames();
    for (name, f) in &frames {
        std::fs::write(dir.join(name), f).unwrap();
    }
    eprintln!("wrote {} seeds to {}", frames.len(), dir.display());
}
