//! `gregor consumer-perf-test`: kafka-consumer-perf-test.sh
//! (ConsumerPerformance): reads N records as a group member and prints
//! Kafka's summary line.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use clap::Args;
use gregor_client::Consumer;

use super::{admin_for, block_on, client_err, now_ms, parse_kv, Conn};

pub const EXAMPLES: &str = "Examples:
  gregor consumer-perf-test --bootstrap-server 127.0.0.1:9092 --topic perf --messages 1000000
  gregor consumer-perf-test --topic perf --num-records 50000 --group perf-2 --timeout 30000

Prints Kafka's header and one line:
  start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec,
  rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec";

const HEADER: &str = "start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec";

/// Measure consumer throughput.
#[derive(Args, Debug)]
pub struct ConsumerPerfArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// The topic to consume.
    #[arg(long, value_name = "TOPIC", required = true)]
    pub topic: String,
    /// The number of records to consume.
    #[arg(long, alias = "num-records", value_name = "N", required = true)]
    pub messages: u64,
    /// The group id (default: perf-consumer-<random>).
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Start at the end of the log when the group has no offsets (default: the beginning).
    #[arg(long = "from-latest")]
    pub from_latest: bool,
    /// Give up when no record arrives for this many milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    pub timeout: u64,
    /// max.partition.fetch.bytes.
    #[arg(long = "fetch-size", value_name = "BYTES")]
    pub fetch_size: Option<u64>,
    /// Do not print the header line.
    #[arg(long = "hide-header")]
    pub hide_header: bool,
    /// A consumer property (repeatable).
    #[arg(long = "consumer-property", value_name = "KEY=VALUE")]
    pub consumer_property: Vec<String>,
    /// A file of consumer properties.
    #[arg(long = "consumer.config", value_name = "FILE")]
    pub consumer_config: Option<PathBuf>,
}

/// `yyyy-MM-dd HH:mm:ss:SSS` (UTC), Kafka's default --date-format.
pub fn format_ms(ms: i64) -> String {
    let days = ms.div_euclid(86_400_000);
    let rem = ms.rem_euclid(86_400_000);
    // Howard Hinnant's civil_from_days.
    let z = days + 719_468;
    let era = if z >= 0 { z } else { z - 146_096 } / 146_097;
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}:{:03}",
        rem / 3_600_000,
        rem / 60_000 % 60,
        rem / 1000 % 60,
        rem % 1000
    )
}

pub fn run(args: ConsumerPerfArgs) -> anyhow::Result<()> {
    if args.messages == 0 {
        bail!("--messages must be at least 1");
    }
    let mut props = Vec::new();
    if let Some(path) = &args.consumer_config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        props.extend(gregor_client::config::parse_properties(&text));
    }
    if let Some(f) = args.fetch_size {
        props.push(("max.partition.fetch.bytes".into(), f.to_string()));
    }
    props.extend(parse_kv(&args.consumer_property, "--consumer-property")?);
    let reset = if args.from_latest {
        "latest"
    } else {
        "earliest"
    };
    props.insert(0, ("auto.offset.reset".into(), reset.into()));
    let group = args
        .group
        .clone()
        .unwrap_or_else(|| format!("perf-consumer-{}", now_ms() % 100_000));
    props.push(("group.id".into(), group));
    let config = args.conn.client_config(&props)?;
    let admin = admin_for(&config)?;
    block_on(async move {
        let exists = admin
            .list_topics(true)
            .await
            .map_err(client_err)?
            .iter()
            .any(|t| t.name == args.topic);
        admin.close().await;
        if !exists {
            bail!("Topic '{}' does not exist", args.topic);
        }
        let mut consumer = Consumer::new(config).map_err(client_err)?;
        let r = perf(&mut consumer, &args).await;
        let _ = consumer.close().await;
        r
    })
}

async fn perf(consumer: &mut Consumer, args: &ConsumerPerfArgs) -> anyhow::Result<()> {
    consumer
        .subscribe(&[args.topic.as_str()], None)
        .map_err(client_err)?;
    let start_ms = now_ms();
    let start = Instant::now();
    let mut joined: Option<Instant> = None;
    let mut count = 0u64;
    let mut bytes = 0u64;
    let mut last = Instant::now();
    let timeout = Duration::from_millis(args.timeout);
    while count < args.messages {
        let records = consumer
            .poll(Duration::from_millis(100))
            .await
            .map_err(client_err)?;
        if joined.is_none() && !consumer.assignment().is_empty() {
            joined = Some(Instant::now());
        }
        if records.is_empty() {
            if last.elapsed() > timeout {
                eprintln!(
                    "WARNING: Exiting before consuming the expected number of messages: timeout ({} ms) exceeded. You can use the --timeout option to increase the timeout.",
                    args.timeout
                );
                break;
            }
            continue;
        }
        last = Instant::now();
        for r in &records {
            count += 1;
            bytes += r.key.as_ref().map_or(0, |k| k.len() as u64)
                + r.value.as_ref().map_or(0, |v| v.len() as u64);
        }
    }
    let end_ms = now_ms();
    let elapsed = start.elapsed().as_secs_f64().max(1e-9);
    let rebalance_ms = joined.map_or(0, |j| (j - start).as_millis() as u64);
    let fetch_ms = (start.elapsed().as_millis() as u64).saturating_sub(rebalance_ms);
    let mb = bytes as f64 / (1024.0 * 1024.0);
    let fetch_s = fetch_ms as f64 / 1000.0;
    let per_fetch = |v: f64| if fetch_ms > 0 { v / fetch_s } else { 0.0 };
    if !args.hide_header {
        println!("{HEADER}");
    }
    println!(
        "{}, {}, {:.4}, {:.4}, {}, {:.4}, {}, {}, {:.4}, {:.4}",
        format_ms(start_ms),
        format_ms(end_ms),
        mb,
        mb / elapsed,
        count,
        count as f64 / elapsed,
        rebalance_ms,
        fetch_ms,
        per_fetch(mb),
        per_fetch(count as f64)
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(format_ms(0), "1970-01-01 00:00:00:000");
        assert_eq!(format_ms(1_700_000_000_123), "2023-11-14 22:13:20:123");
        assert_eq!(format_ms(951_782_400_000), "2000-02-29 00:00:00:000");
    }
}
