//! The producer against a real broker: delivery results, partitioning,
//! acks=0, flush, and idempotent retries over a connection that drops
//! responses.

mod common;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use common::Broker;
use gregor_client::admin::NewTopic;
use gregor_client::config::IsolationLevel;
use gregor_client::producer::partitioner::partition_for_key;
use gregor_client::{Admin, OffsetSpec, Producer, ProducerRecord, TopicPartition};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn end_offsets(admin: &Admin, topic: &str, partitions: i32) -> Vec<i64> {
    let specs: Vec<_> = (0..partitions)
        .map(|p| (TopicPartition::new(topic, p), OffsetSpec::Latest))
        .collect();
    let r = admin
        .list_offsets(&specs, IsolationLevel::ReadUncommitted)
        .await
        .unwrap();
    (0..partitions)
        .map(|p| r[&TopicPartition::new(topic, p)].offset)
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_reports_offsets_and_keys_pick_java_partitions() {
    let broker = Broker::start();
    let admin = Admin::new(broker.config()).unwrap();
    admin.create_topic(NewTopic::new("t", 4, 1)).await.unwrap();
    let producer = Producer::new(broker.config()).unwrap();

    let mut futures = Vec::new();
    for i in 0..200 {
        let key = format!("key-{i}");
        let f = producer
            .send(
                ProducerRecord::new("t", format!("v{i}"))
                    .with_key(key.clone())
                    .with_timestamp(1_000 + i),
            )
            .await
            .unwrap();
        futures.push((key, i, f));
    }
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    for (key, i, f) in futures {
        let md = f.await.unwrap();
        assert_eq!(md.partition, partition_for_key(key.as_bytes(), 4), "{key}");
        assert_eq!(md.timestamp, 1_000 + i);
        // Offsets within a partition follow send order.
        let expected = next.entry(md.partition).or_insert(0);
        assert_eq!(md.offset, *expected);
        *expected += 1;
    }
    assert_eq!(end_offsets(&admin, "t", 4).await.iter().sum::<i64>(), 200);

    // Explicit partitions, send_and_forget, flush.
    for _ in 0..10 {
        producer
            .send_and_forget(ProducerRecord::new("t", "x").with_partition(2))
            .await
            .unwrap();
    }
    producer.flush().await;
    assert_eq!(end_offsets(&admin, "t", 4).await[2], next[&2] + 10);
    let bad = producer
        .send(ProducerRecord::new("t", "x").with_partition(9))
        .await;
    assert!(bad.is_err());
    producer.close().await;
    assert!(producer.send(ProducerRecord::new("t", "x")).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyless_records_stick_to_a_partition_per_batch() {
    let broker = Broker::start();
    let admin = Admin::new(broker.config()).unwrap();
    admin.create_topic(NewTopic::new("s", 8, 1)).await.unwrap();
    // A long linger keeps all records in one batch: sticky means one partition.
    let cfg = broker.config().with("linger.ms", "1000").unwrap();
    let producer = Producer::new(cfg).unwrap();
    let mut fs = Vec::new();
    for _ in 0..50 {
        fs.push(producer.send(ProducerRecord::new("s", "v")).await.unwrap());
    }
    producer.flush().await;
    let mut parts = std::collections::BTreeSet::new();
    for f in fs {
        parts.insert(f.await.unwrap().partition);
    }
    assert_eq!(parts.len(), 1, "{parts:?}");
    producer.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acks_zero_and_round_robin() {
    let broker = Broker::start();
    let admin = Admin::new(broker.config()).unwrap();
    admin.create_topic(NewTopic::new("r", 3, 1)).await.unwrap();
    let cfg = broker
        .config()
        .with("acks", "0")
        .unwrap()
        .with(
            "partitioner.class",
            "org.apache.kafka.clients.producer.RoundRobinPartitioner",
        )
        .unwrap();
    let producer = Producer::new(cfg).unwrap();
    let mut fs = Vec::new();
    for i in 0..30 {
        fs.push(
            producer
                .send(ProducerRecord::new("r", format!("{i}")))
                .await
                .unwrap(),
        );
    }
    for f in fs {
        assert_eq!(f.await.unwrap().offset, -1);
    }
    producer.close().await;
    assert!(
        common::wait_until(std::time::Duration::from_secs(10), || async {
            end_offsets(&admin, "r", 3).await == vec![10, 10, 10]
        })
        .await
    );
}

/// A TCP proxy that forwards everything, except that once `armed`, it closes
/// both sides right after forwarding the first Produce request (API key 0)
/// to the broker, before the broker's response can come back.
fn dropping_proxy(listener: TcpListener, broker_port: u16, armed: Arc<AtomicBool>) {
    tokio::spawn(async move {
        loop {
            let Ok((client, _)) = listener.accept().await else {
                return;
            };
            let armed = armed.clone();
            tokio::spawn(async move {
                let Ok(server) = TcpStream::connect(("127.0.0.1", broker_port)).await else {
                    return;
                };
                let (mut cr, mut cw) = client.into_split();
                let (mut sr, mut sw) = server.into_split();
                let back = tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut sr, &mut cw).await;
                });
                // Client → broker, frame by frame, so Produce can be spotted.
                loop {
                    let mut len = [0u8; 4];
                    if cr.read_exact(&mut len).await.is_err() {
                        break;
                    }
                    let n = u32::from_be_bytes(len) as usize;
                    let mut frame = vec![0u8; n];
                    if cr.read_exact(&mut frame).await.is_err() {
                        break;
                    }
                    let is_produce = n >= 2 && frame[0] == 0 && frame[1] == 0;
                    if sw.write_all(&len).await.is_err() || sw.write_all(&frame).await.is_err() {
                        break;
                    }
                    if is_produce && armed.swap(false, Ordering::SeqCst) {
                        // Let the broker append it, then cut the client off.
                        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                        back.abort();
                        return;
                    }
                }
                back.abort();
            });
        }
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idempotent_retry_after_dropped_connection_has_no_duplicates() {
    // The broker advertises the proxy's address, so every connection the
    // client makes (bootstrap and leader) goes through the proxy.
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let broker = Broker::start_with(&[&format!(
        "advertised.listeners=PLAINTEXT://127.0.0.1:{port}"
    )]);
    let armed = Arc::new(AtomicBool::new(false));
    dropping_proxy(listener, broker.port, armed.clone());
    let cfg = broker.config_for(&format!("127.0.0.1:{port}"));
    let admin = Admin::new(cfg.clone()).unwrap();
    admin
        .create_topic(NewTopic::new("idem", 1, 1))
        .await
        .unwrap();
    let producer = Producer::new(cfg).unwrap();
    // Warm up (metadata, producer id) before arming the proxy.
    producer
        .send(ProducerRecord::new("idem", "warm"))
        .await
        .unwrap()
        .await
        .unwrap();
    armed.store(true, Ordering::SeqCst);
    let mut fs = Vec::new();
    for i in 0..100 {
        fs.push(
            producer
                .send(ProducerRecord::new("idem", format!("{i}")))
                .await
                .unwrap(),
        );
    }
    let mut offsets = Vec::new();
    for f in fs {
        offsets.push(f.await.unwrap().offset);
    }
    assert!(
        !armed.load(Ordering::SeqCst),
        "the proxy never dropped a Produce"
    );
    // 1 warm-up + 100, each exactly once, in order.
    assert_eq!(end_offsets(&admin, "idem", 1).await, vec![101]);
    assert_eq!(offsets, (1..=100).collect::<Vec<i64>>());
    producer.close().await;
}
