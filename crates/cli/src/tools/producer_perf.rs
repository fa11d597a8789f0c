//! `gregor producer-perf-test`: kafka-producer-perf-test.sh
//! (ProducerPerformance): sends fixed-size records at a target rate and
//! prints throughput and latency in Kafka's format.

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use anyhow::bail;
use bytes::Bytes;
use clap::Args;
use gregor_client::{DeliveryFuture, Producer, ProducerRecord};

use super::console_producer::producer_props;
use super::{block_on, client_err, one_line, Conn};

pub const EXAMPLES: &str = "Examples:
  gregor producer-perf-test --topic perf --num-records 1000000 --record-size 100 --throughput -1
  gregor producer-perf-test --topic perf --num-records 50000 --record-size 1024 --throughput 10000 \\
      --producer-props acks=1 linger.ms=10 compression.type=lz4
  gregor producer-perf-test --topic perf --num-records 1000 --record-size 100 --throughput -1 \\
      --producer-props bootstrap.servers=broker1:9092

Prints a progress line every 5 seconds and, at the end:
  N records sent, X records/sec (Y MB/sec), A ms avg latency, M ms max latency,
  P50 ms 50th, P95 ms 95th, P99 ms 99th, P999 ms 99.9th.";

/// Measure producer throughput and latency.
#[derive(Args, Debug)]
pub struct ProducerPerfArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// The topic to produce to.
    #[arg(long, value_name = "TOPIC", required = true)]
    pub topic: String,
    /// Number of records to send.
    #[arg(long = "num-records", value_name = "N", required = true)]
    pub num_records: u64,
    /// Size of each record in bytes.
    #[arg(long = "record-size", value_name = "BYTES", required = true)]
    pub record_size: usize,
    /// Records per second at most; -1 for no limit.
    #[arg(long, value_name = "RATE", required = true, allow_hyphen_values = true)]
    pub throughput: f64,
    /// Producer properties: KEY=VALUE... (e.g. acks=1 linger.ms=5).
    #[arg(long = "producer-props", value_name = "KEY=VALUE", num_args = 1..)]
    pub producer_props: Vec<String>,
    /// A file of producer properties.
    #[arg(long = "producer.config", value_name = "FILE")]
    pub producer_config: Option<PathBuf>,
}

/// Latencies and counts, as Kafka's ProducerPerformance.Stats keeps them.
struct Stats {
    start: Instant,
    count: u64,
    bytes: u64,
    total_latency: u64,
    max_latency: u64,
    latencies: Vec<u32>,
    sampling: u64,
    window_start: Instant,
    window_count: u64,
    window_bytes: u64,
    window_total: u64,
    window_max: u64,
    errors: u64,
    first_error: Option<String>,
}

impl Stats {
    fn new(num_records: u64) -> Stats {
        let now = Instant::now();
        Stats {
            start: now,
            count: 0,
            bytes: 0,
            total_latency: 0,
            max_latency: 0,
            // At most 500k samples, like Kafka.
            latencies: Vec::with_capacity(num_records.min(500_000) as usize),
            sampling: (num_records / num_records.clamp(1, 500_000)).max(1),
            window_start: now,
            window_count: 0,
            window_bytes: 0,
            window_total: 0,
            window_max: 0,
            errors: 0,
            first_error: None,
        }
    }

    fn record(&mut self, latency_ms: u64, bytes: u64) {
        self.count += 1;
        self.bytes += bytes;
        self.total_latency += latency_ms;
        self.max_latency = self.max_latency.max(latency_ms);
        self.window_count += 1;
        self.window_bytes += bytes;
        self.window_total += latency_ms;
        self.window_max = self.window_max.max(latency_ms);
        if self.count.checked_rem(self.sampling) == Some(0) {
            self.latencies
                .push(u32::try_from(latency_ms).unwrap_or(u32::MAX));
        }
    }

    /// The 5-second progress line, then a new window.
    fn window_line(&mut self) -> Option<String> {
        let elapsed = self.window_start.elapsed().as_secs_f64().max(1e-9);
        let line = (self.window_count > 0).then(|| {
            format!(
                "{} records sent, {:.1} records/sec ({:.2} MB/sec), {:.1} ms avg latency, {:.1} ms max latency.",
                self.window_count,
                self.window_count as f64 / elapsed,
                self.window_bytes as f64 / elapsed / (1024.0 * 1024.0),
                self.window_total as f64 / self.window_count as f64,
                self.window_max as f64
            )
        });
        self.window_start = Instant::now();
        self.window_count = 0;
        self.window_bytes = 0;
        self.window_total = 0;
        self.window_max = 0;
        line
    }

    fn total_line(&mut self) -> String {
        let elapsed_ms = (self.start.elapsed().as_millis() as f64).max(1.0);
        let mut sorted = self.latencies.clone();
        sorted.sort_unstable();
        let pct = |p: f64| -> u32 {
            if sorted.is_empty() {
                return 0;
            }
            let i = ((p * sorted.len() as f64) as usize).min(sorted.len() - 1);
            sorted[i]
        };
        format!(
            "{} records sent, {:.6} records/sec ({:.2} MB/sec), {:.2} ms avg latency, {:.2} ms max latency, {} ms 50th, {} ms 95th, {} ms 99th, {} ms 99.9th.",
            self.count,
            1000.0 * self.count as f64 / elapsed_ms,
            1000.0 * self.bytes as f64 / elapsed_ms / (1024.0 * 1024.0),
            if self.count > 0 {
                self.total_latency as f64 / self.count as f64
            } else {
                0.0
            },
            self.max_latency as f64,
            pct(0.5),
            pct(0.95),
            pct(0.99),
            pct(0.999)
        )
    }
}

/// Kafka's payload: random upper-case letters.
fn payload(size: usize) -> Bytes {
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut v = Vec::with_capacity(size);
    for _ in 0..size {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        v.push(b'A' + (seed % 26) as u8);
    }
    Bytes::from(v)
}

pub fn run(args: ProducerPerfArgs) -> anyhow::Result<()> {
    if args.throughput == 0.0 {
        bail!("--throughput must be positive, or -1 for no limit");
    }
    let props = producer_props(
        args.producer_config.as_ref(),
        Vec::new(),
        &args.producer_props,
        "--producer-props",
    )?;
    let config = args.conn.client_config(&props)?;
    block_on(async move {
        let producer = Producer::new(config).map_err(client_err)?;
        let r = perf(&producer, &args).await;
        producer.close().await;
        r
    })
}

async fn perf(producer: &Producer, args: &ProducerPerfArgs) -> anyhow::Result<()> {
    let value = payload(args.record_size);
    let stats = Arc::new(Mutex::new(Stats::new(args.num_records)));
    let window = |s: &Arc<Mutex<Stats>>| s.lock().unwrap_or_else(|p| p.into_inner()).window_line();
    // Progress every 5 seconds.
    let reporter = {
        let stats = stats.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(5));
            tick.tick().await;
            loop {
                tick.tick().await;
                if let Some(line) = window(&stats) {
                    println!("{line}");
                }
            }
        })
    };
    let start = Instant::now();
    let mut handles = Vec::new();
    let bytes = args.record_size as u64;
    // Delivery futures are awaited in chunks, one task per chunk (not per
    // record): the task polls every pending future of its chunk whenever one
    // of them wakes it, so each latency is still taken when that record
    // completes.
    let mut chunk: Vec<(Instant, DeliveryFuture)> = Vec::with_capacity(CHUNK);
    for i in 0..args.num_records {
        if args.throughput > 0.0 {
            let due = start + Duration::from_secs_f64(i as f64 / args.throughput);
            let now = Instant::now();
            if due > now {
                if !chunk.is_empty() {
                    handles.push(tokio::spawn(await_chunk(
                        std::mem::take(&mut chunk),
                        stats.clone(),
                        bytes,
                    )));
                }
                tokio::time::sleep(due - now).await;
            }
        }
        let sent = Instant::now();
        let record = ProducerRecord::new(args.topic.clone(), value.clone());
        let fut = match producer.send(record).await {
            Ok(f) => f,
            Err(e) => {
                reporter.abort();
                return Err(client_err(e));
            }
        };
        chunk.push((sent, fut));
        if chunk.len() >= CHUNK {
            let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK));
            handles.push(tokio::spawn(await_chunk(full, stats.clone(), bytes)));
        }
        // Reap finished tasks now and then to keep the list short.
        if handles.len() >= 100_000 {
            handles.retain(|h| !h.is_finished());
        }
    }
    if !chunk.is_empty() {
        handles.push(tokio::spawn(await_chunk(chunk, stats.clone(), bytes)));
    }
    producer.flush().await;
    for h in handles {
        let _ = h.await;
    }
    reporter.abort();
    let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
    println!("{}", s.total_line());
    if let Some(e) = &s.first_error {
        bail!("{} records failed; the first: {e}", s.errors);
    }
    Ok(())
}

/// Records handed to one completion task.
const CHUNK: usize = 64;

/// Waits for a chunk of delivery futures, timing each as it completes, and
/// adds them to `stats` under one lock.
async fn await_chunk(
    mut pending: Vec<(Instant, DeliveryFuture)>,
    stats: Arc<Mutex<Stats>>,
    bytes: u64,
) {
    let mut done: Vec<(u64, Option<gregor_client::Error>)> = Vec::with_capacity(pending.len());
    std::future::poll_fn(|cx| {
        pending.retain_mut(|(sent, fut)| match Pin::new(fut).poll(cx) {
            Poll::Ready(r) => {
                done.push((sent.elapsed().as_millis() as u64, r.err()));
                false
            }
            Poll::Pending => true,
        });
        if pending.is_empty() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    let mut s = stats.lock().unwrap_or_else(|p| p.into_inner());
    for (ms, err) in done {
        match err {
            None => s.record(ms, bytes),
            Some(e) => {
                s.errors += 1;
                if s.first_error.is_none() {
                    s.first_error = Some(one_line(&client_err(e)));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn total_line_format() {
        let mut s = Stats::new(4);
        for ms in [1, 2, 3, 10] {
            s.record(ms, 100);
        }
        let line = s.total_line();
        assert!(line.starts_with("4 records sent, "), "{line}");
        assert!(
            line.ends_with(
                "ms avg latency, 10.00 ms max latency, 3 ms 50th, 10 ms 95th, 10 ms 99th, 10 ms 99.9th."
            ),
            "{line}"
        );
        assert_eq!(payload(10).len(), 10);
        assert!(payload(100).iter().all(|b| b.is_ascii_uppercase()));
    }
}
