//! The producer: `send` appends to a per-partition batch and returns at once
//! with a [`DeliveryFuture`]; a background sender task ships batches.
//!
//! - `accumulator.rs`: batching, buffer.memory, linger, sequence numbers
//! - `sender.rs`: Produce requests, responses, retries, InitProducerId
//! - `partitioner.rs`: murmur2 (Java-identical), sticky, round-robin
//! - `retry.rs`: the backoff / delivery-timeout decision
//! - `txn_manager.rs`: the transactional state machine (no I/O)
//! - `transaction.rs`: `init_transactions` .. `abort_transaction` and their
//!   coordinator requests
//!
//! With `transactional.id` set, every send belongs to a transaction:
//!
//! ```no_run
//! # use gregor_client::{ClientConfig, Producer, ProducerRecord};
//! # async fn run(config: ClientConfig) -> gregor_client::Result<()> {
//! let producer = Producer::new(config.with("transactional.id", "orders-1")?)?;
//! producer.init_transactions().await?;
//! producer.begin_transaction()?;
//! producer.send(ProducerRecord::new("orders", "o-1")).await?;
//! match producer.commit_transaction().await {
//!     Ok(()) => {}
//!     Err(e) if e.is_fatal() => return Err(e), // fenced: close the producer
//!     Err(_) => producer.abort_transaction().await?,
//! }
//! # Ok(())
//! # }
//! ```

mod accumulator;
pub mod partitioner;
mod retry;
mod sender;
mod transaction;
mod txn_manager;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use gregor_records::Record;
use tokio::task::JoinHandle;

use accumulator::{estimate_record_size, AccConfig, Accumulator, Append, Slot};
use partitioner::Partitioner;
use retry::RetryPolicy;

use crate::cluster::{Cluster, PartitionMetadata};
use crate::config::ClientConfig;
use crate::error::{codes, Error, Result};
use crate::types::{ProducerRecord, RecordMetadata, TopicPartition};

/// Resolves when the broker has acknowledged the record (per `acks`).
#[must_use = "a DeliveryFuture does nothing unless awaited; use send_and_forget to ignore the result"]
pub struct DeliveryFuture {
    slot: Slot,
}

impl Future for DeliveryFuture {
    type Output = Result<RecordMetadata>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.slot.poll(cx)
    }
}

pub(crate) struct Inner {
    cfg: Arc<ClientConfig>,
    cluster: Arc<Cluster>,
    acc: Accumulator,
    partitioner: Box<dyn Partitioner>,
    retry: RetryPolicy,
    /// The idempotent producer id and epoch, once InitProducerId answered
    /// (not used with a transactional.id: `txn` has them).
    pid: tokio::sync::Mutex<Option<(i64, i16)>>,
    /// With `transactional.id`: the transaction state and coordinator.
    txn: Option<transaction::Txn>,
}

impl Inner {
    async fn producer_id(&self) -> Result<(i64, i16)> {
        let mut pid = self.pid.lock().await;
        if let Some(p) = *pid {
            return Ok(p);
        }
        let p = sender::init_producer_id(self).await?;
        tracing::debug!(producer_id = p.0, epoch = p.1, "got producer id");
        *pid = Some(p);
        Ok(p)
    }

    fn reset_producer_id(&self) {
        if let Ok(mut pid) = self.pid.try_lock() {
            *pid = None;
        }
        self.acc.reset_sequences();
    }
}

/// Closes the accumulator when the last `Producer` clone goes away, so the
/// sender task finishes what is queued and exits.
struct CloseOnDrop {
    inner: Arc<Inner>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.inner.acc.close();
    }
}

/// Builds a producer with a custom partitioner.
pub struct ProducerBuilder {
    config: ClientConfig,
    partitioner: Option<Box<dyn Partitioner>>,
}

impl ProducerBuilder {
    pub fn partitioner(mut self, p: impl Partitioner + 'static) -> Self {
        self.partitioner = Some(Box::new(p));
        self
    }

    /// Starts the producer's sender task (needs a tokio runtime).
    pub fn build(self) -> Result<Producer> {
        let mut cfg = self.config;
        cfg.resolve_producer()?;
        let cfg = Arc::new(cfg);
        let cluster = Cluster::new(cfg.clone())?;
        let partitioner = self
            .partitioner
            .unwrap_or_else(|| partitioner::built_in(cfg.partitioner, cfg.partitioner_ignore_keys));
        let inner = Arc::new(Inner {
            acc: Accumulator::new(AccConfig {
                batch_size: cfg.batch_size.max(1),
                linger: cfg.linger,
                buffer_memory: cfg.buffer_memory,
                max_request_size: cfg.max_request_size,
                idempotent: cfg.enable_idempotence,
                max_in_flight: cfg.max_in_flight,
                delivery_timeout: cfg.delivery_timeout,
            }),
            retry: RetryPolicy {
                retries: cfg.retries,
                backoff: cfg.retry_backoff,
                backoff_max: cfg.retry_backoff_max,
                delivery_timeout: cfg.delivery_timeout,
            },
            pid: tokio::sync::Mutex::new(None),
            txn: cfg.transactional_id.clone().map(transaction::Txn::new),
            partitioner,
            cluster,
            cfg,
        });
        let task = tokio::spawn(sender::run(inner.clone()));
        Ok(Producer {
            guard: Arc::new(CloseOnDrop {
                inner: inner.clone(),
                task: Mutex::new(Some(task)),
            }),
            inner,
        })
    }
}

/// An asynchronous, batching producer. Cheap to clone; clones share batches
/// and connections, and the last one dropped lets queued records finish.
#[derive(Clone)]
pub struct Producer {
    inner: Arc<Inner>,
    guard: Arc<CloseOnDrop>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

impl Producer {
    /// A producer with the partitioner named by `partitioner.class`.
    pub fn new(config: ClientConfig) -> Result<Producer> {
        Self::builder(config).build()
    }

    pub fn builder(config: ClientConfig) -> ProducerBuilder {
        ProducerBuilder {
            config,
            partitioner: None,
        }
    }

    /// The partition count of `topic`, waiting up to max.block.ms for it to
    /// appear in metadata (asking the broker to auto-create it).
    async fn partition_count(&self, topic: &str) -> Result<i32> {
        let cluster = &self.inner.cluster;
        if let Some(n) = cluster.metadata().partition_count(topic) {
            return Ok(n as i32);
        }
        cluster.add_interest([topic]);
        let deadline = Instant::now() + self.inner.cfg.max_block;
        loop {
            let meta = cluster.ensure_fresh().await;
            if let Ok(m) = &meta {
                if let Some(n) = m.partition_count(topic) {
                    return Ok(n as i32);
                }
                // Not allowed to see the topic: fails at once, as Java's
                // waitOnMetadata throws TopicAuthorizationException.
                if let Some(t) = m
                    .topics
                    .get(topic)
                    .filter(|t| t.error_code == codes::TOPIC_AUTHORIZATION_FAILED)
                {
                    return Err(Error::from_code(t.error_code, Some(topic))
                        .unwrap_or_else(|| Error::Invalid(format!("topic {topic}"))));
                }
            }
            if Instant::now() >= deadline {
                return Err(match meta {
                    Err(e) => e,
                    Ok(_) => Error::Timeout {
                        what: format!("topic {topic} to appear in metadata (max.block.ms)"),
                        after: self.inner.cfg.max_block,
                    },
                });
            }
            tokio::time::sleep(self.inner.cfg.retry_backoff).await;
            cluster.request_refresh();
        }
    }

    /// Queues a record. Waits only for metadata of a new topic and for
    /// buffer.memory (both bounded by max.block.ms); the returned future
    /// resolves once the broker acknowledges the record.
    pub async fn send(&self, record: ProducerRecord) -> Result<DeliveryFuture> {
        let slot = self.enqueue(record).await?;
        Ok(DeliveryFuture { slot })
    }

    /// Queues a record without a way to learn its outcome.
    pub async fn send_and_forget(&self, record: ProducerRecord) -> Result<()> {
        self.enqueue(record).await.map(drop)
    }

    async fn enqueue(&self, r: ProducerRecord) -> Result<Slot> {
        let inner = &self.inner;
        if inner.acc.is_closing() {
            return Err(Error::Closed("producer"));
        }
        let n = self.partition_count(&r.topic).await?;
        if let Some(p) = r.partition {
            if p < 0 || p >= n {
                return Err(Error::Invalid(format!(
                    "partition {p} of {} does not exist ({n} partitions)",
                    r.topic
                )));
            }
        }
        let size = estimate_record_size(r.key.as_deref(), r.value.as_deref(), &r.headers);
        if size + gregor_records::BATCH_HEADER_LEN > inner.cfg.max_request_size {
            return Err(Error::Invalid(format!(
                "record of about {size} bytes is larger than max.request.size ({})",
                inner.cfg.max_request_size
            )));
        }
        if let Some(txn) = &inner.txn {
            // Fail before waiting for buffer memory.
            txn.lock().check_send()?;
        }
        inner.acc.reserve(size, inner.cfg.max_block).await?;
        let record = Record {
            offset: 0,
            timestamp: r.timestamp.unwrap_or_else(now_ms),
            key: r.key,
            value: r.value,
            headers: r.headers,
        };
        // A transactional record is appended under the transaction's lock:
        // a commit or abort starting meanwhile cannot miss it, and its
        // partition joins the transaction together with it.
        let mut txn = match &inner.txn {
            Some(t) => {
                let tm = t.lock();
                if let Err(e) = tm.check_send() {
                    inner.acc.unreserve(size);
                    return Err(e);
                }
                Some(tm)
            }
            None => None,
        };
        let topic = r.topic;
        // The clock is read only if a new batch is opened.
        let now = std::cell::OnceCell::new();
        let now = || *now.get_or_init(Instant::now);
        let (tp, appended) = match r.partition {
            Some(p) => {
                let tp = TopicPartition::new(topic, p);
                let appended = inner.acc.append(&tp, record, size, false, now);
                (tp, appended)
            }
            None => {
                let p = inner.partitioner.partition(
                    &topic,
                    record.key.as_deref(),
                    record.value.as_deref(),
                    n,
                );
                // The topic name moves into the TopicPartition: no copy per record.
                let mut tp = TopicPartition::new(topic, p);
                let sticky = inner.partitioner.repartition_on_new_batch();
                let appended = match inner.acc.append(&tp, record, size, sticky, now) {
                    Append::NeedsNewBatch(record) => {
                        inner.partitioner.on_new_batch(&tp.topic, p, n);
                        tp.partition = inner.partitioner.partition(
                            &tp.topic,
                            record.key.as_deref(),
                            record.value.as_deref(),
                            n,
                        );
                        inner.acc.append(&tp, record, size, false, now)
                    }
                    done => done,
                };
                (tp, appended)
            }
        };
        match appended {
            Append::Done(slot) => {
                if let Some(tm) = txn.as_mut() {
                    tm.add_partition(&tp);
                }
                Ok(slot)
            }
            // Only asked for with abort_on_new_batch, never on the last try.
            Append::NeedsNewBatch(_) => Err(Error::Closed("producer")),
        }
    }

    /// Sends everything queued now and waits until all of it has completed.
    pub async fn flush(&self) {
        self.inner.acc.flush().await
    }

    /// Flushes, stops the sender and closes connections. Records sent
    /// afterwards fail with `Closed`.
    pub async fn close(&self) {
        self.close_timeout(Duration::MAX).await
    }

    /// [`Producer::close`], but records still unsent after `timeout` fail.
    pub async fn close_timeout(&self, timeout: Duration) {
        let acc = &self.inner.acc;
        acc.close();
        if tokio::time::timeout(timeout, acc.flush()).await.is_err() {
            acc.abort_queued(&Error::Closed("producer"));
        }
        let task = self
            .guard
            .task
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(task) = task {
            if tokio::time::timeout(timeout, task).await.is_err() {
                tracing::warn!("producer sender did not stop in time");
            }
        }
        self.inner.cluster.close().await;
    }

    /// The partitions of `topic` with their leaders.
    pub async fn partitions_for(&self, topic: &str) -> Result<Vec<PartitionMetadata>> {
        self.partition_count(topic).await?;
        let meta = self.inner.cluster.metadata();
        let t = meta.topics.get(topic).ok_or_else(|| {
            Error::from_code(codes::UNKNOWN_TOPIC_OR_PARTITION, Some(topic))
                .unwrap_or(Error::Closed("producer"))
        })?;
        Ok(t.partitions.clone())
    }
}
