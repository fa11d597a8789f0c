//! Requests written back to back on one connection before any response is
//! read are answered in order, each with its own correlation id.

mod common;

use common::*;
use gregor_records::Compression;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;

enum Sent {
    Metadata(i32),
    Produce(i32, i64),
    ApiVersions(i32),
}

#[test]
fn fifty_pipelined_requests_are_answered_in_order() {
    let broker = Broker::start();
    let mut setup = broker.client();
    setup.create_topic("pipe", 1, &[]);

    let mut c = broker.client();
    let metadata = MetadataRequest::default().with_topics(Some(vec![
        metadata_request::MetadataRequestTopic::default().with_name(Some(topic_name("pipe"))),
    ]));
    let versions = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("gregor-it"))
        .with_client_software_version(StrBytes::from_static_str("1"));

    // Encode all 50 first, then write them in one go.
    let mut wire = Vec::new();
    let mut sent = Vec::new();
    let mut next_offset = 0i64;
    for i in 0..50 {
        match i % 3 {
            0 => {
                let (id, f) = c.encode_request(12, &metadata);
                wire.extend(f);
                sent.push(Sent::Metadata(id));
            }
            1 => {
                let recs = records(
                    &format!("pipe{i}"),
                    1 + i % 4,
                    1_700_000_000_000 + i as i64,
                    20,
                );
                let req = produce_request("pipe", 0, &batch(&recs, Compression::Lz4), 1);
                let (id, f) = c.encode_request(9, &req);
                wire.extend(f);
                sent.push(Sent::Produce(id, next_offset));
                next_offset += recs.len() as i64;
            }
            _ => {
                let (id, f) = c.encode_request(3, &versions);
                wire.extend(f);
                sent.push(Sent::ApiVersions(id));
            }
        }
    }
    use std::io::Write;
    c.stream.write_all(&wire).unwrap();

    for s in &sent {
        match *s {
            Sent::Metadata(id) => {
                let r = c.read_response::<MetadataRequest>(12, id);
                assert_eq!(r.topics[0].error_code, 0);
            }
            Sent::Produce(id, offset) => {
                let r = c.read_response::<ProduceRequest>(9, id);
                let p = &r.responses[0].partition_responses[0];
                assert_eq!((p.error_code, p.base_offset), (0, offset));
            }
            Sent::ApiVersions(id) => {
                let r = c.read_response::<ApiVersionsRequest>(3, id);
                assert_eq!(r.error_code, 0);
                assert!(!r.api_keys.is_empty());
            }
        }
    }
    assert_eq!(setup.offset_for("pipe", 0, LATEST), next_offset);
}

/// acks=0 produces in a pipeline get no response; the responses of the
/// requests around them still come back in order.
#[test]
fn acks0_produce_in_a_pipeline_gets_no_response() {
    let broker = Broker::start();
    let mut c = broker.client();
    c.create_topic("pipe0", 1, &[]);
    let mut wire = Vec::new();
    let mut expected = Vec::new();
    for i in 0..20 {
        let recs = records(&format!("z{i}"), 2, 1_700_000_000_000 + i, 10);
        let acks = if i % 2 == 0 { 0 } else { 1 };
        let (id, f) = c.encode_request(
            9,
            &produce_request("pipe0", 0, &batch(&recs, Compression::None), acks),
        );
        wire.extend(f);
        if acks == 1 {
            expected.push((id, i * 2));
        }
    }
    let (api_id, f) = c.encode_request(3, &ApiVersionsRequest::default());
    wire.extend(f);
    use std::io::Write;
    c.stream.write_all(&wire).unwrap();
    for (id, offset) in expected {
        let r = c.read_response::<ProduceRequest>(9, id);
        let p = &r.responses[0].partition_responses[0];
        assert_eq!((p.error_code, p.base_offset), (0, offset));
    }
    let r = c.read_response::<ApiVersionsRequest>(3, api_id);
    assert_eq!(r.error_code, 0);
    assert_eq!(c.offset_for("pipe0", 0, LATEST), 40);
}

#[test]
fn requests_before_a_malformed_one_are_answered_before_the_close() {
    let broker = Broker::start();
    let mut c = broker.client();
    let versions = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("gregor-it"))
        .with_client_software_version(StrBytes::from_static_str("1"));
    // Both written before anything is read: a good request, then an unknown API key.
    let id = c.write_request(3, &versions);
    c.write_frame(&[0x27, 0x0f, 0, 0, 0, 0, 0, 1, 0, 0]);
    let resp: ApiVersionsResponse = c.read_response::<ApiVersionsRequest>(3, id);
    assert_eq!(resp.error_code, 0);
    assert!(!resp.api_keys.is_empty());
    c.expect_closed();
}

/// A response is not held back behind a later request that waits: an
/// ApiVersions answered before a pipelined long-poll Fetch reaches the
/// client while the fetch still waits (it would otherwise arrive only when
/// the fetch completes; clients such as librdkafka pipeline Metadata and
/// group requests ahead of waiting ones).
#[test]
fn a_waiting_request_does_not_hold_back_earlier_responses() {
    let broker = Broker::start();
    let mut c = broker.client();
    c.create_topic("waits", 1, &[]);
    let versions = ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("gregor-it"))
        .with_client_software_version(StrBytes::from_static_str("1"));
    // Waits up to 60 s for a record nobody has produced yet: far beyond the
    // client's 10 s read timeout, so the ApiVersions answer must not wait
    // for it.
    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(60_000)
        .with_min_bytes(1)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![fetch_request::FetchTopic::default()
            .with_topic(topic_name("waits"))
            .with_partitions(vec![fetch_request::FetchPartition::default()
                .with_partition(0)
                .with_fetch_offset(0)
                .with_current_leader_epoch(-1)
                .with_log_start_offset(-1)
                .with_partition_max_bytes(1 << 20)])]);
    let (versions_id, mut wire) = c.encode_request(3, &versions);
    let (fetch_id, f) = c.encode_request(12, &fetch);
    wire.extend(f);
    use std::io::Write;
    c.stream.write_all(&wire).unwrap();
    let r = c.read_response::<ApiVersionsRequest>(3, versions_id);
    assert_eq!(r.error_code, 0);
    // A record ends the fetch's wait, and its answer follows.
    let mut producer = broker.client();
    let recs = records("w", 1, 1_700_000_000_000, 10);
    producer.produce_ok("waits", 0, &batch(&recs, Compression::None), 1);
    let r = c.read_response::<FetchRequest>(12, fetch_id);
    let p = &r.responses[0].partitions[0];
    assert_eq!((p.error_code, p.high_watermark), (0, 1));
}
