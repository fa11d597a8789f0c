//! Joins a group, prints records and commits after each batch.
//!
//! `cargo run -p gregor-client --example consumer -- localhost:9092 my-topic my-group`

use std::time::Duration;

use gregor_client::{ClientConfig, Consumer, RebalanceListener, TopicPartition};

struct PrintRebalance;

impl RebalanceListener for PrintRebalance {
    fn on_partitions_assigned(&mut self, partitions: &[TopicPartition]) {
        println!("assigned: {partitions:?}");
    }
    fn on_partitions_revoked(&mut self, partitions: &[TopicPartition]) {
        println!("revoked: {partitions:?}");
    }
}

#[tokio::main]
async fn main() -> gregor_client::Result<()> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "localhost:9092".into());
    let topic = args.next().unwrap_or_else(|| "example".into());
    let group = args.next().unwrap_or_else(|| "example-group".into());

    let config = ClientConfig::from_map([
        ("bootstrap.servers", bootstrap.as_str()),
        ("group.id", group.as_str()),
        ("auto.offset.reset", "earliest"),
        ("enable.auto.commit", "false"),
    ])?;
    let mut consumer = Consumer::new(config)?;
    consumer.subscribe(&[topic.as_str()], Some(Box::new(PrintRebalance)))?;
    let mut idle = 0;
    while idle < 10 {
        let records = consumer.poll(Duration::from_secs(1)).await?;
        if records.is_empty() {
            idle += 1;
            continue;
        }
        idle = 0;
        for r in &records {
            let value = r.value.as_deref().map(String::from_utf8_lossy);
            println!("{}-{}@{}: {:?}", r.topic, r.partition, r.offset, value);
        }
        consumer.commit_sync(None).await?;
    }
    consumer.close().await
}
