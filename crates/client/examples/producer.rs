//! Sends records and prints where they landed.
//!
//! `cargo run -p gregor-client --example producer -- localhost:9092 my-topic 10`

use gregor_client::{ClientConfig, Producer, ProducerRecord};

#[tokio::main]
async fn main() -> gregor_client::Result<()> {
    let mut args = std::env::args().skip(1);
    let bootstrap = args.next().unwrap_or_else(|| "localhost:9092".into());
    let topic = args.next().unwrap_or_else(|| "example".into());
    let count: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(10);

    let config = ClientConfig::from_map([
        ("bootstrap.servers", bootstrap.as_str()),
        ("compression.type", "lz4"),
        ("linger.ms", "5"),
    ])?;
    let producer = Producer::new(config)?;
    let mut deliveries = Vec::new();
    for i in 0..count {
        let record =
            ProducerRecord::new(topic.clone(), format!("message {i}")).with_key(format!("key-{i}"));
        deliveries.push(producer.send(record).await?);
    }
    for d in deliveries {
        let md = d.await?;
        println!("partition {} offset {}", md.partition, md.offset);
    }
    producer.close().await;
    Ok(())
}
