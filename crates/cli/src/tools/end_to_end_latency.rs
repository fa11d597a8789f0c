//! `gregor end-to-end-latency`: kafka-e2e-latency.sh (EndToEndLatency):
//! sends one record at a time and waits until a consumer sees it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail};
use bytes::Bytes;
use clap::Args;
use gregor_client::{Consumer, Producer, ProducerRecord, TopicPartition};

use super::{block_on, client_err, Conn};

pub const EXAMPLES: &str = "Examples (Kafka's positional form and the named one):
  gregor end-to-end-latency 127.0.0.1:9092 latency 10000 1 100
  gregor end-to-end-latency --bootstrap-server 127.0.0.1:9092 --topic latency --num-records 10000 \\
      --producer-acks all --record-size 100

The topic must have one partition (it is created if missing). Prints every
1000th latency, then `Avg latency: X ms` and
`Percentiles: 50th = A, 99th = B, 99.9th = C` (milliseconds).";

/// Measure produce-to-consume latency, one record at a time.
#[derive(Args, Debug)]
pub struct EndToEndArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Kafka's positional form: BROKER_LIST TOPIC NUM_MESSAGES PRODUCER_ACKS MESSAGE_SIZE_BYTES [PROPERTIES_FILE].
    #[arg(value_name = "ARGS", num_args = 0..=6)]
    pub positional: Vec<String>,
    /// The topic (one partition).
    #[arg(long, value_name = "TOPIC")]
    pub topic: Option<String>,
    /// How many records to send.
    #[arg(long = "num-records", value_name = "N")]
    pub num_records: Option<u64>,
    /// acks: 1 or all.
    #[arg(
        long = "producer-acks",
        value_name = "ACKS",
        allow_hyphen_values = true
    )]
    pub producer_acks: Option<String>,
    /// Record size in bytes.
    #[arg(long = "record-size", value_name = "BYTES")]
    pub record_size: Option<usize>,
}

struct Plan {
    topic: String,
    num: u64,
    acks: String,
    size: usize,
    conn: Conn,
}

fn plan(args: EndToEndArgs) -> anyhow::Result<Plan> {
    let mut conn = args.conn.clone();
    let p = &args.positional;
    if !p.is_empty() {
        if p.len() < 5 {
            bail!("Expected BROKER_LIST TOPIC NUM_MESSAGES PRODUCER_ACKS MESSAGE_SIZE_BYTES [PROPERTIES_FILE], got {} arguments", p.len());
        }
        // Kafka's BROKER_LIST wins over the properties file, as --bootstrap-server does.
        conn.bootstrap_server = Some(p[0].clone());
        if let Some(f) = p.get(5) {
            conn.command_config = Some(PathBuf::from(f));
        }
        return Ok(Plan {
            topic: p[1].clone(),
            num: p[2]
                .parse()
                .map_err(|_| anyhow!("NUM_MESSAGES '{}' is not a number", p[2]))?,
            acks: p[3].clone(),
            size: p[4]
                .parse()
                .map_err(|_| anyhow!("MESSAGE_SIZE_BYTES '{}' is not a number", p[4]))?,
            conn,
        });
    }
    Ok(Plan {
        topic: args.topic.ok_or_else(|| anyhow!("--topic is required"))?,
        num: args
            .num_records
            .ok_or_else(|| anyhow!("--num-records is required"))?,
        acks: args.producer_acks.unwrap_or_else(|| "1".to_string()),
        size: args
            .record_size
            .ok_or_else(|| anyhow!("--record-size is required"))?,
        conn,
    })
}

pub fn run(args: EndToEndArgs) -> anyhow::Result<()> {
    let plan = plan(args)?;
    if plan.acks != "1" && plan.acks != "all" && plan.acks != "-1" {
        bail!("Latency testing requires synchronous acknowledgement. Please use 1 or all");
    }
    if plan.num == 0 {
        bail!("NUM_MESSAGES must be at least 1");
    }
    let pconf = plan.conn.client_config(&[
        ("acks".into(), plan.acks.clone()),
        ("linger.ms".into(), "0".into()),
    ])?;
    let cconf = plan.conn.client_config(&[
        ("enable.auto.commit".into(), "false".into()),
        ("fetch.max.wait.ms".into(), "100".into()),
    ])?;
    let admin = plan.conn.admin()?;
    block_on(async move {
        let topics = admin.list_topics(true).await.map_err(client_err)?;
        if !topics.iter().any(|t| t.name == plan.topic) {
            eprintln!("Topic \"{}\" does not exist. Will create topic with 1 partition and the default replication factor.", plan.topic);
            let t = gregor_client::admin::NewTopic {
                name: plan.topic.clone(),
                num_partitions: Some(1),
                ..Default::default()
            };
            admin.create_topic(t).await.map_err(client_err)?;
        }
        let meta = admin
            .describe_topics(&[plan.topic.as_str()])
            .await
            .map_err(client_err)?;
        admin.close().await;
        if meta.first().map_or(0, |t| t.partitions.len()) != 1 {
            bail!("Topic '{}' must have exactly one partition", plan.topic);
        }
        let producer = Producer::new(pconf).map_err(client_err)?;
        let mut consumer = Consumer::new(cconf).map_err(client_err)?;
        let r = measure(&producer, &mut consumer, &plan).await;
        producer.close().await;
        let _ = consumer.close().await;
        r
    })
}

async fn measure(producer: &Producer, consumer: &mut Consumer, plan: &Plan) -> anyhow::Result<()> {
    let tp = TopicPartition::new(plan.topic.clone(), 0);
    consumer
        .assign(std::slice::from_ref(&tp))
        .map_err(client_err)?;
    consumer.seek_to_end(std::slice::from_ref(&tp));
    // Resolve the position before the first send, so it is not missed.
    consumer.position(&tp).await.map_err(client_err)?;
    let mut latencies = Vec::with_capacity(plan.num as usize);
    let mut total = Duration::ZERO;
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    for i in 0..plan.num {
        let value: Vec<u8> = (0..plan.size)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                b'A' + (seed % 26) as u8
            })
            .collect();
        let value = Bytes::from(value);
        let begin = Instant::now();
        producer
            .send(ProducerRecord::new(plan.topic.clone(), value.clone()).with_partition(0))
            .await
            .map_err(client_err)?
            .await
            .map_err(client_err)?;
        let deadline = begin + Duration::from_secs(10);
        let got = loop {
            let records = consumer
                .poll(Duration::from_millis(200))
                .await
                .map_err(client_err)?;
            if let Some(r) = records.into_iter().next() {
                break r;
            }
            if Instant::now() >= deadline {
                bail!("poll() timed out before finding a result (timeout: 10000 ms)");
            }
        };
        let elapsed = begin.elapsed();
        if got.value.as_deref() != Some(&value[..]) {
            bail!("The message read does not match the message sent (record {i})");
        }
        if i % 1000 == 0 {
            println!("{i}\t{}", elapsed.as_secs_f64() * 1000.0);
        }
        total += elapsed;
        latencies.push(elapsed.as_millis() as u64);
    }
    println!(
        "Avg latency: {:.4} ms",
        total.as_secs_f64() * 1000.0 / plan.num as f64
    );
    latencies.sort_unstable();
    let at = |p: f64| latencies[((latencies.len() as f64 * p) as usize).min(latencies.len() - 1)];
    println!(
        "Percentiles: 50th = {}, 99th = {}, 99.9th = {}",
        at(0.5),
        at(0.99),
        at(0.999)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct T {
        #[command(flatten)]
        a: EndToEndArgs,
    }

    #[test]
    fn positional_and_named() {
        let t = T::parse_from(["x", "h:1", "top", "5", "all", "10"]);
        let p = plan(t.a).unwrap();
        assert_eq!(
            (p.topic.as_str(), p.num, p.acks.as_str(), p.size),
            ("top", 5, "all", 10)
        );
        assert_eq!(p.conn.bootstrap_server.as_deref(), Some("h:1"));
        let t = T::parse_from([
            "x",
            "--topic",
            "t",
            "--num-records",
            "3",
            "--record-size",
            "4",
        ]);
        let p = plan(t.a).unwrap();
        assert_eq!((p.num, p.acks.as_str()), (3, "1"));
        let t = T::parse_from(["x", "h:1", "top"]);
        assert!(plan(t.a).is_err());
    }
}
