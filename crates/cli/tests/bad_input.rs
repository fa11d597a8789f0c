//! Hostile or broken input on one connection never takes the broker down,
//! never disturbs another connection, and never loses written data. Each
//! test ends with [`Fixture::check`]: the process is up, a connection opened
//! before the bad input still works, a new one works, and the data written
//! before is all there.

mod common;

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use common::*;
use gregor_broker::handlers::API_TABLE;
use gregor_records::{Compression, Record};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rand::{Rng, SeedableRng};

struct Fixture {
    broker: Broker,
    bystander: Client,
    written: Vec<Record>,
}

impl Fixture {
    fn new(overrides: &[&str]) -> Fixture {
        let broker = Broker::start_with(overrides);
        let mut bystander = broker.client();
        bystander.create_topic("keep", 2, &[]);
        let written = records("keep", 5, 1_700_000_000_000, 30);
        assert_eq!(
            bystander.produce_ok("keep", 0, &batch(&written, Compression::Gzip), -1),
            0
        );
        Fixture {
            broker,
            bystander,
            written,
        }
    }

    fn check(&mut self) {
        assert!(
            self.broker.is_running(),
            "broker died\n{}",
            self.broker.logs()
        );
        let v = self.bystander.api_versions();
        assert_eq!(v.error_code, 0);
        assert_records(
            &self.bystander.fetch_records("keep", 0, 0),
            &self.written,
            0,
        );
        let mut fresh = self.broker.client();
        assert_eq!(fresh.api_versions().error_code, 0);
        assert_eq!(
            fresh.offset_for("keep", 0, LATEST),
            self.written.len() as i64
        );
    }
}

/// A frame: header for `key`/`version` (the right header version) then `body`.
fn raw_request(key: ApiKey, version: i16, correlation_id: i32, body: &[u8]) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("bad-input")));
    let mut buf = BytesMut::new();
    header
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    buf.extend_from_slice(body);
    buf.to_vec()
}

#[test]
fn garbage_bytes_close_the_connection() {
    let mut f = Fixture::new(&[]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    for len in [1usize, 3, 4, 7, 100, 5000] {
        let mut c = f.broker.client();
        let garbage: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        c.write_raw(&garbage);
        let got = c.finish().expect("broker neither answered nor closed");
        assert!(got.is_empty(), "garbage got a {}-byte answer", got.len());
    }
    f.check();
}

#[test]
fn oversized_frame_closes_the_connection() {
    let mut f = Fixture::new(&["socket.request.max.bytes=1024"]);
    // A request at the limit is served...
    let recs = records("fits", 1, 1_700_000_000_000, 700);
    let req = produce_request("keep", 1, &batch(&recs, Compression::None), 1);
    let (_, frame) = f.bystander.encode_request(9, &req);
    assert!(frame.len() - 4 <= 1024, "{} bytes", frame.len());
    assert_eq!(
        f.bystander
            .produce_ok("keep", 1, &batch(&recs, Compression::None), 1),
        0
    );
    // ...one byte more is not: the connection is closed on the size alone,
    // before the body arrives.
    let mut c = f.broker.client();
    c.write_raw(&1025u32.to_be_bytes());
    c.write_raw(&[0u8; 16]);
    c.expect_closed();
    let mut c = f.broker.client();
    c.write_raw(&(i32::MAX as u32).to_be_bytes());
    c.expect_closed();
    f.check();
}

#[test]
fn oversized_produce_under_default_limit() {
    // 100 MiB default: a size prefix of 200 MiB is refused without reading.
    let mut f = Fixture::new(&[]);
    let mut c = f.broker.client();
    c.write_raw(&(200u32 << 20).to_be_bytes());
    c.expect_closed();
    f.check();
}

#[test]
fn negative_size_closes_the_connection() {
    let mut f = Fixture::new(&[]);
    for size in [-1i32, -2, i32::MIN] {
        let mut c = f.broker.client();
        c.write_raw(&size.to_be_bytes());
        c.expect_closed();
    }
    f.check();
}

#[test]
fn truncated_body_then_close() {
    let mut f = Fixture::new(&[]);
    let (_, frame) = f
        .bystander
        .encode_request(3, &ApiVersionsRequest::default());
    for cut in [1usize, 4, 5, 9, frame.len() - 1] {
        let mut c = f.broker.client();
        c.write_raw(&frame[..cut]);
        drop(c);
    }
    // And a half-closed connection: the broker sees EOF mid-frame and closes.
    let mut c = f.broker.client();
    c.write_raw(&frame[..frame.len() - 1]);
    assert_eq!(c.finish().expect("closed"), Vec::<u8>::new());
    f.check();
}

/// Thousands of seeded-random bodies behind valid headers, for every served
/// API and version. Whatever decodes is answered; the rest closes the connection.
#[test]
fn random_bodies_for_every_api_and_version() {
    let mut f = Fixture::new(&[]);
    let mut rng = rand::rngs::StdRng::seed_from_u64(0x6772_6567_6f72);
    let mut targets = Vec::new();
    for e in API_TABLE {
        for v in e.min_served..=e.max {
            targets.push((e.key, v));
        }
    }
    let (mut answered, mut closed, mut waited) = (0, 0, 0);
    for i in 0..3000 {
        let (key, version) = targets[i % targets.len()];
        let len = match rng.gen_range(0..4) {
            0 => rng.gen_range(0..8),
            1 => rng.gen_range(0..64),
            _ => rng.gen_range(0..512),
        };
        let mut body: Vec<u8> = (0..len).map(|_| rng.gen()).collect();
        // Small counts and lengths reach further than uniformly random ones.
        if len > 0 && rng.gen_bool(0.5) {
            body[0] = rng.gen_range(0..4);
        }
        let frame = raw_request(key, version, i as i32, &body);
        let mut c = f.broker.client();
        c.stream
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        c.write_frame(&frame);
        match c.finish() {
            Some(out) if out.is_empty() => closed += 1,
            Some(out) => {
                // Whatever was answered is one well-formed frame for this request.
                let size = u32::from_be_bytes(out[..4].try_into().unwrap()) as usize;
                assert_eq!(size + 4, out.len(), "{key:?} v{version}: response framing");
                let mut b = Bytes::copy_from_slice(&out[4..]);
                let h =
                    ResponseHeader::decode(&mut b, key.response_header_version(version)).unwrap();
                assert_eq!(h.correlation_id, i as i32);
                answered += 1;
            }
            // A decoded Fetch may wait up to its random max_wait_ms.
            None => waited += 1,
        }
        if i % 500 == 0 {
            assert!(
                f.broker.is_running(),
                "broker died at frame {i} ({key:?} v{version})"
            );
        }
    }
    eprintln!("random bodies: {answered} answered, {closed} closed, {waited} still waiting");
    assert!(
        waited < 30,
        "{waited} connections neither answered nor closed"
    );
    f.check();
}

#[test]
fn unknown_api_key_closes_the_connection() {
    let mut f = Fixture::new(&[]);
    let mut c = f.broker.client();
    let mut frame = vec![0x27, 0x0f, 0, 0, 0, 0, 0, 1, 0xff, 0xff];
    c.write_frame(&frame);
    c.expect_closed();
    // An API key Kafka knows but this broker does not serve.
    let unserved = (0..100i16)
        .find(|k| ApiKey::try_from(*k).is_ok() && !API_TABLE.iter().any(|e| e.key as i16 == *k))
        .expect("an API this broker does not serve");
    let mut c = f.broker.client();
    frame[..2].copy_from_slice(&unserved.to_be_bytes());
    c.write_frame(&frame);
    c.expect_closed();
    f.check();
}

#[test]
fn unsupported_version_closes_the_connection() {
    let mut f = Fixture::new(&[]);
    let mut cases = vec![(ApiKey::Produce, 2i16), (ApiKey::Metadata, -1)];
    for e in API_TABLE.iter().filter(|e| e.key != ApiKey::ApiVersions) {
        cases.push((e.key, e.max + 1));
        if e.min_served > 0 {
            cases.push((e.key, e.min_served - 1));
        }
    }
    for (key, version) in cases {
        let mut c = f.broker.client();
        // A v0-shaped header with an empty body: the version is refused first.
        let mut frame = (key as i16).to_be_bytes().to_vec();
        frame.extend_from_slice(&version.to_be_bytes());
        frame.extend_from_slice(&[0, 0, 0, 9, 0xff, 0xff]);
        c.write_frame(&frame);
        c.expect_closed();
    }
    f.check();
}

#[test]
fn too_new_api_versions_gets_v0_unsupported_version() {
    let mut f = Fixture::new(&[]);
    let mut c = f.broker.client();
    // ApiVersions v99 with a body this broker cannot know the shape of.
    let mut frame = vec![0, 18, 0, 99, 0, 0, 0x30, 0x39, 0, 2, b'x', b'y', 0];
    frame.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]);
    c.write_frame(&frame);
    let resp = c.read_frame().expect("a v0 response");
    let mut b = Bytes::from(resp);
    let h = ResponseHeader::decode(&mut b, 0).unwrap();
    assert_eq!(h.correlation_id, 12345);
    let r = ApiVersionsResponse::decode(&mut b, 0).unwrap();
    assert!(b.is_empty());
    assert_eq!(r.error_code, 35, "UNSUPPORTED_VERSION");
    let keys: Vec<i16> = r.api_keys.iter().map(|k| k.api_key).collect();
    for e in API_TABLE {
        assert!(keys.contains(&(e.key as i16)), "{:?} missing", e.key);
    }
    let av = r.api_keys.iter().find(|k| k.api_key == 18).unwrap();
    assert_eq!((av.min_version, av.max_version), (0, 4));
    // The client retries with a version it now knows is supported, on the same connection.
    let r = c.send(3, &ApiVersionsRequest::default());
    assert_eq!(r.error_code, 0);
    f.check();
}

#[test]
fn corrupt_crc_is_rejected_and_nothing_appended() {
    let mut f = Fixture::new(&[]);
    let good = batch(
        &records("good", 2, 1_700_000_000_100, 10),
        Compression::None,
    );
    let mut bad = batch(&records("bad", 3, 1_700_000_000_200, 10), Compression::None).to_vec();
    let last = bad.len() - 1;
    bad[last] ^= 0x55; // a value byte: the stored CRC no longer matches
                       // One request: partition 0 gets the corrupt batch, partition 1 a good one.
    let req = ProduceRequest::default()
        .with_acks(-1)
        .with_timeout_ms(5000)
        .with_topic_data(vec![produce_request::TopicProduceData::default()
            .with_name(topic_name("keep"))
            .with_partition_data(vec![
                produce_request::PartitionProduceData::default()
                    .with_index(0)
                    .with_records(Some(Bytes::from(bad.clone()))),
                produce_request::PartitionProduceData::default()
                    .with_index(1)
                    .with_records(Some(good.clone())),
            ])]);
    let r = f.bystander.send(9, &req);
    let parts = &r.responses[0].partition_responses;
    let p0 = parts.iter().find(|p| p.index == 0).unwrap();
    let p1 = parts.iter().find(|p| p.index == 1).unwrap();
    assert_eq!(p0.error_code, 2, "CORRUPT_MESSAGE");
    assert_eq!((p1.error_code, p1.base_offset), (0, 0));
    assert_eq!(
        f.bystander.offset_for("keep", 0, LATEST),
        f.written.len() as i64
    );
    // A corrupt batch after a good one in the same record set: all or nothing.
    let mut set = good.to_vec();
    set.extend_from_slice(&bad);
    let r = f.bystander.produce("keep", 0, &set, 1);
    assert_eq!(r.error_code, 2);
    assert_eq!(
        f.bystander.offset_for("keep", 0, LATEST),
        f.written.len() as i64
    );
    // Empty and truncated record sets are refused too.
    for records in [&[][..], &good[..good.len() - 3], &good[..20]] {
        let r = f.bystander.produce("keep", 0, records, 1);
        assert_ne!(r.error_code, 0, "{} bytes accepted", records.len());
    }
    assert_eq!(
        f.bystander.offset_for("keep", 0, LATEST),
        f.written.len() as i64
    );
    f.check();
}

#[test]
fn huge_array_count_closes_the_connection() {
    let mut f = Fixture::new(&[]);
    // Metadata v1: header, then topics count 0x7fffffff and nothing else.
    let frame = raw_request(ApiKey::Metadata, 1, 5, &0x7fff_ffffi32.to_be_bytes());
    let mut c = f.broker.client();
    c.write_frame(&frame);
    c.expect_closed();
    // The same for a compact (flexible) array: Metadata v12, varint count 2^31-1... the
    // largest a varint can claim.
    let frame = raw_request(ApiKey::Metadata, 12, 6, &[0xff, 0xff, 0xff, 0xff, 0x07]);
    let mut c = f.broker.client();
    c.write_frame(&frame);
    c.expect_closed();
    // And a Produce whose record set claims 2 GiB.
    let mut body = Vec::new();
    body.extend_from_slice(&(-1i16).to_be_bytes()); // transactional id: null
    body.extend_from_slice(&1i16.to_be_bytes()); // acks
    body.extend_from_slice(&1000i32.to_be_bytes()); // timeout
    body.extend_from_slice(&1i32.to_be_bytes()); // one topic
    body.extend_from_slice(&4i16.to_be_bytes());
    body.extend_from_slice(b"keep");
    body.extend_from_slice(&1i32.to_be_bytes()); // one partition
    body.extend_from_slice(&0i32.to_be_bytes());
    body.extend_from_slice(&0x7fff_ffffi32.to_be_bytes()); // records length
    let frame = raw_request(ApiKey::Produce, 3, 7, &body);
    let mut c = f.broker.client();
    c.write_frame(&frame);
    c.expect_closed();
    f.check();
}

/// Kafka's LogValidator: a client may not write commit/abort markers
/// (control batches): INVALID_RECORD with Kafka's message, nothing written.
#[test]
fn control_batches_from_clients_are_refused() {
    use gregor_records::batch::{compute_crc, ATTRIBUTES_OFFSET, CONTROL_MASK, CRC_OFFSET};
    let broker = Broker::start();
    let mut c = broker.client();
    c.create_topic("ctl", 1, &[]);
    let mut control = batch(&records("c", 1, 1_700_000_000_000, 8), Compression::None).to_vec();
    control[ATTRIBUTES_OFFSET + 1] |= CONTROL_MASK as u8;
    let crc = compute_crc(&control);
    control[CRC_OFFSET..CRC_OFFSET + 4].copy_from_slice(&crc.to_be_bytes());
    let r = c.produce("ctl", 0, &control, 1);
    assert_eq!(r.error_code, 87, "INVALID_RECORD");
    assert_eq!(
        r.error_message.as_ref().map(|m| m.to_string()).as_deref(),
        Some("Clients are not allowed to write control records")
    );
    assert_eq!(c.offset_for("ctl", 0, LATEST), 0, "nothing written");
    // An ordinary batch still goes in.
    let ok = batch(&records("d", 2, 1_700_000_000_000, 8), Compression::None);
    assert_eq!(c.produce_ok("ctl", 0, &ok, 1), 0);
}
