//! The record accumulator: per-partition queues of batches waiting to be sent.
//!
//! ```text
//! send() ──reserve buffer.memory──► append to the partition's last batch
//!                                   (or open a new one past batch.size)
//! sender ──ready(now)──► which leaders have a batch that is full, lingered
//!                        linger.ms, being flushed, or due for retry
//!        ──drain(node)─► at most one batch per partition, up to
//!                        max.request.size, sequence numbers assigned here
//! ```
//!
//! Memory is reserved per record before it is appended and released when
//! its batch completes, so `buffer.memory` bounds what is queued *and* in
//! flight; a full buffer makes `send` wait (bounded by `max.block.ms`).
//!
//! With idempotence, sequence numbers are given out at drain time in queue
//! order, and a batch that failed goes back to the front of its queue in
//! sequence order. Such a batch is resent only when nothing else of its
//! partition is in flight, which keeps the broker seeing sequences in order
//! no matter how the earlier attempt failed.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use bytes::Bytes;
use gregor_records::batch::increment_sequence;
use gregor_records::{BatchBuilder, Compression, Record};
use tokio::sync::Notify;

use crate::error::{Error, Result};
use crate::types::{RecordMetadata, TopicPartition};

/// A batch's outcome, shared by the delivery futures of all its records
/// (one allocation and one lock per batch, not a channel per record).
#[derive(Default)]
pub(crate) struct BatchDone {
    state: Mutex<DoneState>,
}

#[derive(Default)]
struct DoneState {
    /// `(base_offset, log_append_time)` or the batch's error, once known.
    result: Option<Result<(i64, i64)>>,
    /// Tasks waiting for `result`; a future keeps its slot across polls.
    wakers: Vec<Waker>,
}

impl BatchDone {
    fn lock(&self) -> std::sync::MutexGuard<'_, DoneState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets the outcome (the first one wins) and wakes the waiting futures.
    fn resolve(&self, result: Result<(i64, i64)>) {
        let wakers = {
            let mut s = self.lock();
            if s.result.is_some() {
                return;
            }
            s.result = Some(result);
            std::mem::take(&mut s.wakers)
        };
        let mut last: Option<Waker> = None;
        for w in wakers {
            if last.as_ref().is_some_and(|l| l.will_wake(&w)) {
                continue;
            }
            w.wake_by_ref();
            last = Some(w);
        }
    }
}

/// One record's place in its batch: what a `DeliveryFuture` polls.
pub(crate) struct Slot {
    done: Arc<BatchDone>,
    partition: i32,
    index: i64,
    timestamp: i64,
    /// Where this future's waker sits in `wakers`, once registered.
    waker: Option<usize>,
}

impl Slot {
    pub fn poll(&mut self, cx: &mut Context<'_>) -> Poll<Result<RecordMetadata>> {
        let mut s = self.done.lock();
        match &s.result {
            Some(Ok((base_offset, log_append_time))) => Poll::Ready(Ok(RecordMetadata {
                partition: self.partition,
                offset: if *base_offset >= 0 {
                    base_offset + self.index
                } else {
                    -1
                },
                timestamp: if *log_append_time >= 0 {
                    *log_append_time
                } else {
                    self.timestamp
                },
            })),
            Some(Err(e)) => Poll::Ready(Err(e.clone())),
            None => {
                match self.waker {
                    // Polled by the same task as before: already registered.
                    // (A slot may be shared with other futures, so it is
                    // never overwritten: a new task gets a new slot.)
                    Some(i) if s.wakers.get(i).is_some_and(|w| w.will_wake(cx.waker())) => {}
                    _ => {
                        // Futures of one batch polled by one task share a waker.
                        let i = match s.wakers.last() {
                            Some(l) if l.will_wake(cx.waker()) => s.wakers.len() - 1,
                            _ => {
                                s.wakers.push(cx.waker().clone());
                                s.wakers.len() - 1
                            }
                        };
                        self.waker = Some(i);
                    }
                }
                Poll::Pending
            }
        }
    }
}

/// Resolves a batch's futures with `Closed` if it is dropped unresolved
/// (e.g. the sender task went away), as a dropped channel would.
struct Completion(Arc<BatchDone>);

impl Drop for Completion {
    fn drop(&mut self) {
        self.0.resolve(Err(Error::Closed("producer")));
    }
}

/// Upper bound of a record's encoded size inside a batch (varints at their
/// widest), which is what buffer.memory and batch.size are charged.
pub(crate) fn estimate_record_size(
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    headers: &[gregor_records::Header],
) -> usize {
    let field = |b: Option<&[u8]>| 5 + b.map_or(0, <[u8]>::len);
    let hdrs: usize = headers
        .iter()
        .map(|h| 5 + h.key.len() + field(h.value.as_deref()))
        .sum();
    // length, attributes, timestamp delta, offset delta, header count
    5 + 1 + 10 + 5 + field(key) + field(value) + 5 + hdrs
}

pub(crate) struct ProducerBatch {
    pub tp: TopicPartition,
    records: Vec<Record>,
    done: Completion,
    /// Sum of the records' estimated sizes (the buffer.memory charge).
    pub size: usize,
    pub created: Instant,
    /// Failed attempts so far.
    pub attempts: u32,
    pub retry_at: Option<Instant>,
    pub base_sequence: i32,
    pub producer_id: i64,
    pub producer_epoch: i16,
    encoded: Option<Bytes>,
}

impl ProducerBatch {
    fn new(tp: TopicPartition, now: Instant) -> Self {
        ProducerBatch {
            tp,
            records: Vec::new(),
            done: Completion(Arc::default()),
            size: 0,
            created: now,
            attempts: 0,
            retry_at: None,
            base_sequence: -1,
            producer_id: -1,
            producer_epoch: -1,
            encoded: None,
        }
    }

    #[cfg(test)]
    pub fn record_count(&self) -> usize {
        self.records.len()
    }

    /// The batch's wire bytes, built once: a retry must send exactly the
    /// same bytes (same sequence, same CRC) for the broker to spot a duplicate.
    /// A transactional producer's batches carry the transactional bit.
    pub fn encoded(&mut self, compression: Compression, transactional: bool) -> Result<Bytes> {
        if let Some(b) = &self.encoded {
            return Ok(b.clone());
        }
        let mut builder = BatchBuilder::new(0, compression);
        builder.transactional = transactional;
        builder.producer_id = self.producer_id;
        builder.producer_epoch = self.producer_epoch;
        builder.base_sequence = self.base_sequence;
        for r in &self.records {
            builder.push(r.clone());
        }
        let bytes = builder.build()?.freeze();
        self.encoded = Some(bytes.clone());
        Ok(bytes)
    }

    /// Resolves every record: offsets count up from `base_offset` (-1 stays
    /// -1: acks=0 or a duplicate whose offset the broker did not say), and
    /// timestamps are the broker's LogAppendTime when it gives one.
    pub fn succeed(self, base_offset: i64, log_append_time: i64) {
        self.done.0.resolve(Ok((base_offset, log_append_time)));
    }

    pub fn fail(self, err: &Error) {
        self.done.0.resolve(Err(err.clone()));
    }

    /// Appends a record and hands back its delivery slot.
    fn push(&mut self, record: Record, size: usize) -> Slot {
        let slot = Slot {
            done: self.done.0.clone(),
            partition: self.tp.partition,
            index: self.records.len() as i64,
            timestamp: record.timestamp,
            waker: None,
        };
        self.records.push(record);
        self.size += size;
        slot
    }
}

#[derive(Default)]
struct PartitionQueue {
    batches: VecDeque<ProducerBatch>,
    in_flight: usize,
    next_sequence: i32,
}

#[derive(Debug, Clone, Copy)]
pub(crate) struct AccConfig {
    pub batch_size: usize,
    pub linger: Duration,
    pub buffer_memory: usize,
    pub max_request_size: usize,
    pub idempotent: bool,
    pub max_in_flight: usize,
    pub delivery_timeout: Duration,
}

#[derive(Default)]
struct State {
    queues: BTreeMap<TopicPartition, PartitionQueue>,
    /// Bytes reserved by queued and in-flight records.
    used: usize,
    /// Batches queued or in flight.
    batches: usize,
    flushes: usize,
    closing: bool,
}

/// What the sender should do next.
#[derive(Debug, Default)]
pub(crate) struct Ready {
    /// Leaders with at least one sendable batch.
    pub nodes: BTreeSet<i32>,
    /// When to look again if nothing else wakes the sender.
    pub next_wake: Option<Instant>,
    /// Some partition with queued batches has no known leader.
    pub unknown_leader: bool,
    /// Batches that just failed with delivery.timeout.ms while queued.
    pub expired: usize,
    /// Whether one of them had a sequence number (a gap the broker will see).
    pub expired_sequenced: bool,
}

pub(crate) enum Append {
    Done(Slot),
    /// The partitioner's partition needs a new batch: let it switch (KIP-480).
    NeedsNewBatch(Record),
}

pub(crate) struct Accumulator {
    pub cfg: AccConfig,
    state: Mutex<State>,
    /// Buffer memory was released.
    space: Notify,
    /// Something became sendable (or a request finished): wakes the sender.
    pub wake: Notify,
    /// A batch completed: wakes flush().
    done: Notify,
}

fn min_instant(a: Option<Instant>, b: Instant) -> Option<Instant> {
    Some(a.map_or(b, |a| a.min(b)))
}

impl Accumulator {
    pub fn new(cfg: AccConfig) -> Self {
        Accumulator {
            cfg,
            state: Mutex::new(State::default()),
            space: Notify::new(),
            wake: Notify::new(),
            done: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Reserves `size` bytes of buffer memory, waiting up to `max_block` for
    /// completed batches to free it. A lone record may exceed what is free
    /// when nothing else is buffered, so it can never wait forever.
    pub async fn reserve(&self, size: usize, max_block: Duration) -> Result<()> {
        if size > self.cfg.buffer_memory {
            return Err(Error::Invalid(format!(
                "record of about {size} bytes is larger than buffer.memory ({})",
                self.cfg.buffer_memory
            )));
        }
        // Fast path: memory is free, no need to register for a wakeup.
        {
            let mut s = self.lock();
            if s.closing {
                return Err(Error::Closed("producer"));
            }
            if s.used + size <= self.cfg.buffer_memory {
                s.used += size;
                return Ok(());
            }
        }
        let deadline = tokio::time::Instant::now() + max_block;
        loop {
            let notified = self.space.notified();
            tokio::pin!(notified);
            // Register before checking, so a release in between is not missed.
            notified.as_mut().enable();
            {
                let mut s = self.lock();
                if s.closing {
                    return Err(Error::Closed("producer"));
                }
                if s.used + size <= self.cfg.buffer_memory {
                    s.used += size;
                    return Ok(());
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return Err(Error::Timeout {
                    what: "waiting for buffer.memory".into(),
                    after: max_block,
                });
            }
        }
    }

    /// Returns reserved memory that never made it into a batch.
    pub fn unreserve(&self, size: usize) {
        self.lock().used -= size;
        self.space.notify_waiters();
    }

    /// Appends a record whose memory is already reserved.
    pub fn append(
        &self,
        tp: &TopicPartition,
        record: Record,
        size: usize,
        abort_on_new_batch: bool,
        now: impl FnOnce() -> Instant,
    ) -> Append {
        let mut s = self.lock();
        // Look up before inserting: `entry` would clone the topic name.
        if !s.queues.contains_key(tp) {
            s.queues.insert(tp.clone(), PartitionQueue::default());
        }
        let Some(q) = s.queues.get_mut(tp) else {
            unreachable!("inserted above")
        };
        if let Some(last) = q.batches.back_mut() {
            let open = last.attempts == 0 && last.encoded.is_none() && last.base_sequence < 0;
            if open && last.size + size <= self.cfg.batch_size {
                let slot = last.push(record, size);
                let full = last.size >= self.cfg.batch_size;
                drop(s);
                if full || self.cfg.linger.is_zero() {
                    self.wake.notify_one();
                }
                return Append::Done(slot);
            }
        }
        if abort_on_new_batch {
            return Append::NeedsNewBatch(record);
        }
        let mut b = ProducerBatch::new(tp.clone(), now());
        let slot = b.push(record, size);
        q.batches.push_back(b);
        s.batches += 1;
        drop(s);
        // A new batch either completes the one before it or starts a linger
        // timer earlier than the sender may be sleeping for.
        self.wake.notify_one();
        Append::Done(slot)
    }

    /// Finds the leaders with sendable batches; fails batches whose delivery
    /// timeout passed while queued. Partitions not `allowed` (a transactional
    /// producer's partitions not yet in the transaction) wait.
    pub fn ready(
        &self,
        now: Instant,
        leader: impl Fn(&TopicPartition) -> Option<i32>,
        allowed: impl Fn(&TopicPartition) -> bool,
    ) -> Ready {
        let mut out = Ready::default();
        let mut expired = Vec::new();
        {
            let mut s = self.lock();
            let force = s.flushes > 0 || s.closing;
            for (tp, q) in s.queues.iter_mut() {
                while q
                    .batches
                    .front()
                    .is_some_and(|b| now >= b.created + self.cfg.delivery_timeout)
                {
                    if let Some(b) = q.batches.pop_front() {
                        expired.push(b);
                    }
                }
                let Some(b) = q.batches.front() else { continue };
                out.next_wake = min_instant(out.next_wake, b.created + self.cfg.delivery_timeout);
                if !allowed(tp) {
                    continue;
                }
                match self.sendable(q, b, now, force) {
                    Ok(()) => match leader(tp) {
                        Some(node) => {
                            out.nodes.insert(node);
                        }
                        None => out.unknown_leader = true,
                    },
                    Err(Some(at)) => out.next_wake = min_instant(out.next_wake, at),
                    Err(None) => {}
                }
            }
        }
        out.expired = expired.len();
        out.expired_sequenced = expired.iter().any(|b| b.base_sequence >= 0);
        if !expired.is_empty() {
            let err = Error::Timeout {
                what: "record delivery (delivery.timeout.ms)".into(),
                after: self.cfg.delivery_timeout,
            };
            for b in expired {
                self.finish(b, |b| b.fail(&err));
            }
        }
        out
    }

    /// `Ok` if `b` (the front of `q`) can go now, else when to look again
    /// (`None`: when something in flight completes).
    fn sendable(
        &self,
        q: &PartitionQueue,
        b: &ProducerBatch,
        now: Instant,
        force: bool,
    ) -> Result<(), Option<Instant>> {
        if let Some(at) = b.retry_at {
            if at > now {
                return Err(Some(at));
            }
        }
        if self.cfg.idempotent
            && (q.in_flight >= self.cfg.max_in_flight || (b.attempts > 0 && q.in_flight > 0))
        {
            return Err(None);
        }
        let full = q.batches.len() > 1 || b.size >= self.cfg.batch_size;
        let due = b.created + self.cfg.linger;
        if full || force || b.attempts > 0 || now >= due {
            Ok(())
        } else {
            Err(Some(due))
        }
    }

    /// Takes sendable batches led by `node`, one per partition, up to
    /// max.request.size (but always at least one). `pid` stamps idempotent
    /// batches and their sequences.
    pub fn drain(
        &self,
        node: i32,
        now: Instant,
        leader: impl Fn(&TopicPartition) -> Option<i32>,
        allowed: impl Fn(&TopicPartition) -> bool,
        pid: Option<(i64, i16)>,
    ) -> Vec<ProducerBatch> {
        let mut out = Vec::new();
        let mut bytes = 0usize;
        let mut s = self.lock();
        let force = s.flushes > 0 || s.closing;
        for (tp, q) in s.queues.iter_mut() {
            let Some(b) = q.batches.front() else { continue };
            if leader(tp) != Some(node) || !allowed(tp) || self.sendable(q, b, now, force).is_err()
            {
                continue;
            }
            // Records plus the 61-byte header bound the batch's size on the wire.
            let est = b.size + gregor_records::BATCH_HEADER_LEN;
            if !out.is_empty() && bytes + est > self.cfg.max_request_size {
                break;
            }
            let Some(mut b) = q.batches.pop_front() else {
                continue;
            };
            if let Some((id, epoch)) = pid {
                if b.base_sequence < 0 || b.producer_id != id || b.producer_epoch != epoch {
                    b.producer_id = id;
                    b.producer_epoch = epoch;
                    b.base_sequence = q.next_sequence;
                    q.next_sequence = increment_sequence(q.next_sequence, b.records.len() as i32);
                    b.encoded = None;
                }
            }
            bytes += est;
            q.in_flight += 1;
            out.push(b);
        }
        out
    }

    /// Puts a failed batch back for another attempt at `retry_at`.
    pub fn reenqueue(&self, mut b: ProducerBatch, retry_at: Instant) {
        b.attempts += 1;
        b.retry_at = Some(retry_at);
        let mut s = self.lock();
        let q = s.queues.entry(b.tp.clone()).or_default();
        q.in_flight = q.in_flight.saturating_sub(1);
        // Failed batches go before new ones, in sequence order among themselves.
        let pos = q
            .batches
            .iter()
            .position(|o| {
                o.attempts == 0 || (b.base_sequence >= 0 && o.base_sequence > b.base_sequence)
            })
            .unwrap_or(q.batches.len());
        q.batches.insert(pos, b);
        drop(s);
        self.wake.notify_one();
    }

    /// Completes an in-flight batch with `f` and releases its memory.
    pub fn complete(&self, b: ProducerBatch, f: impl FnOnce(ProducerBatch)) {
        {
            let mut s = self.lock();
            if let Some(q) = s.queues.get_mut(&b.tp) {
                q.in_flight = q.in_flight.saturating_sub(1);
            }
        }
        self.finish(b, f);
        self.wake.notify_one();
    }

    fn finish(&self, b: ProducerBatch, f: impl FnOnce(ProducerBatch)) {
        {
            let mut s = self.lock();
            s.used = s.used.saturating_sub(b.size);
            s.batches = s.batches.saturating_sub(1);
        }
        f(b);
        self.space.notify_waiters();
        self.done.notify_waiters();
    }

    /// Forgets every sequence (after a new producer id): queued batches are
    /// renumbered when next drained.
    pub fn reset_sequences(&self) {
        let mut s = self.lock();
        for q in s.queues.values_mut() {
            q.next_sequence = 0;
        }
    }

    /// Whether nothing is queued or in flight.
    pub fn is_empty(&self) -> bool {
        self.lock().batches == 0
    }

    /// Makes every batch ready and waits until all have completed.
    pub async fn flush(&self) {
        self.lock().flushes += 1;
        self.wake.notify_one();
        loop {
            let done = self.done.notified();
            tokio::pin!(done);
            done.as_mut().enable();
            if self.is_empty() {
                break;
            }
            done.await;
        }
        self.lock().flushes -= 1;
    }

    /// From now on everything is ready and new appends are refused.
    pub fn close(&self) {
        self.lock().closing = true;
        self.wake.notify_one();
        self.space.notify_waiters();
    }

    pub fn is_closing(&self) -> bool {
        self.lock().closing
    }

    /// Fails queued batches that were never given a sequence number: a
    /// transaction that can no longer commit drops what it has not sent.
    /// Batches with a sequence (retries) stay, so the partition's sequence
    /// numbers have no gap; they finish before EndTxn goes out.
    pub fn abort_unsequenced(&self, err: &Error) -> usize {
        let dropped: Vec<ProducerBatch> = {
            let mut s = self.lock();
            let mut out = Vec::new();
            for q in s.queues.values_mut() {
                let (keep, drop): (VecDeque<_>, VecDeque<_>) =
                    q.batches.drain(..).partition(|b| b.base_sequence >= 0);
                q.batches = keep;
                out.extend(drop);
            }
            out
        };
        let n = dropped.len();
        for b in dropped {
            self.finish(b, |b| b.fail(err));
        }
        n
    }

    /// Fails everything still queued (not in flight), e.g. on a forced close.
    pub fn abort_queued(&self, err: &Error) {
        let drained: Vec<ProducerBatch> = {
            let mut s = self.lock();
            s.queues
                .values_mut()
                .flat_map(|q| q.batches.drain(..))
                .collect()
        };
        for b in drained {
            self.finish(b, |b| b.fail(err));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> AccConfig {
        AccConfig {
            batch_size: 1000,
            linger: Duration::from_millis(10),
            buffer_memory: 10_000,
            max_request_size: 3000,
            idempotent: true,
            max_in_flight: 5,
            delivery_timeout: Duration::from_secs(60),
        }
    }

    fn rec(n: usize) -> (Record, usize) {
        let r = Record {
            value: Some(Bytes::from(vec![b'x'; n])),
            ..Default::default()
        };
        let size = estimate_record_size(None, r.value.as_deref(), &[]);
        (r, size)
    }

    fn append(acc: &Accumulator, tp: &TopicPartition, n: usize, now: Instant) -> Slot {
        let (r, size) = rec(n);
        let Append::Done(slot) = acc.append(tp, r, size, false, || now) else {
            panic!("no new batch asked for");
        };
        acc.lock().used += size;
        slot
    }

    /// A slot's result, which must be there already.
    fn result(mut slot: Slot) -> Result<RecordMetadata> {
        struct Noop;
        impl std::task::Wake for Noop {
            fn wake(self: Arc<Self>) {}
        }
        let waker = Waker::from(Arc::new(Noop));
        match slot.poll(&mut Context::from_waker(&waker)) {
            Poll::Ready(r) => r,
            Poll::Pending => panic!("not resolved"),
        }
    }

    #[test]
    fn batches_fill_to_batch_size_then_linger() {
        let acc = Accumulator::new(cfg());
        let tp = TopicPartition::new("t", 0);
        let t0 = Instant::now();
        let leader = |_: &TopicPartition| Some(1);
        append(&acc, &tp, 100, t0);
        // Not full, linger not over: not ready, wake at t0 + linger.
        let r = acc.ready(t0, leader, |_| true);
        assert!(r.nodes.is_empty());
        assert_eq!(r.next_wake, Some(t0 + Duration::from_millis(10)));
        assert!(!acc
            .ready(t0 + Duration::from_millis(10), leader, |_| true)
            .nodes
            .is_empty());
        // Records past batch.size open a second batch; the first is then full.
        for _ in 0..8 {
            append(&acc, &tp, 100, t0);
        }
        assert_eq!(acc.lock().queues[&tp].batches.len(), 2);
        assert!(acc.ready(t0, leader, |_| true).nodes.contains(&1));
        // One batch per partition per drain; sequences start at 0.
        let d = acc.drain(1, t0, leader, |_| true, Some((7, 0)));
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].base_sequence, 0);
        let first_count = d[0].record_count() as i32;
        let d2 = acc.drain(
            1,
            t0 + Duration::from_millis(10),
            leader,
            |_| true,
            Some((7, 0)),
        );
        assert_eq!(d2[0].base_sequence, first_count);
        // The abort-on-new-batch path hands the record back.
        let (r, size) = rec(10);
        assert!(matches!(
            acc.append(&tp, r, size, true, || t0),
            Append::NeedsNewBatch(..)
        ));
    }

    #[test]
    fn drain_respects_max_request_size_and_leaders() {
        let acc = Accumulator::new(cfg());
        let t0 = Instant::now();
        for p in 0..6 {
            append(&acc, &TopicPartition::new("t", p), 900, t0);
        }
        let leader = |tp: &TopicPartition| Some(if tp.partition < 4 { 1 } else { 2 });
        let later = t0 + Duration::from_secs(1);
        let r = acc.ready(later, leader, |_| true);
        assert_eq!(r.nodes.iter().copied().collect::<Vec<_>>(), vec![1, 2]);
        // ~960 bytes each: three fit in 3000.
        let d = acc.drain(1, later, leader, |_| true, None);
        assert_eq!(d.len(), 3);
        assert!(d.iter().all(|b| b.base_sequence == -1));
        assert_eq!(acc.drain(1, later, leader, |_| true, None).len(), 1);
        assert_eq!(acc.drain(2, later, leader, |_| true, None).len(), 2);
        // Unknown leaders are reported, not drained.
        append(&acc, &TopicPartition::new("u", 0), 10, t0);
        assert!(
            acc.ready(later, |tp| (tp.topic == "t").then_some(1), |_| true)
                .unknown_leader
        );
    }

    #[test]
    fn retries_go_first_in_sequence_order_and_alone() {
        let acc = Accumulator::new(cfg());
        let tp = TopicPartition::new("t", 0);
        let t0 = Instant::now();
        let leader = |_: &TopicPartition| Some(1);
        let pid = Some((1, 0));
        let mut drained = Vec::new();
        for _ in 0..3 {
            append(&acc, &tp, 900, t0);
            drained.extend(acc.drain(1, t0 + Duration::from_secs(1), leader, |_| true, pid));
        }
        append(&acc, &tp, 10, t0); // a new batch behind the retries
        assert_eq!(
            drained.iter().map(|b| b.base_sequence).collect::<Vec<_>>(),
            vec![0, 1, 2]
        );
        // All three fail; they come back in reverse order.
        let now = t0 + Duration::from_secs(2);
        for b in drained.into_iter().rev() {
            acc.reenqueue(b, now);
        }
        let seqs: Vec<i32> = acc.lock().queues[&tp]
            .batches
            .iter()
            .map(|b| b.base_sequence)
            .collect();
        assert_eq!(seqs, vec![0, 1, 2, -1]);
        // Retried batches go one at a time.
        let d = acc.drain(1, now, leader, |_| true, pid);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].base_sequence, 0);
        assert!(acc.drain(1, now, leader, |_| true, pid).is_empty());
        acc.complete(d.into_iter().next().unwrap(), |b| b.succeed(0, -1));
        assert_eq!(acc.drain(1, now, leader, |_| true, pid)[0].base_sequence, 1);
    }

    #[test]
    fn completion_resolves_offsets_and_timestamps() {
        let acc = Accumulator::new(cfg());
        let tp = TopicPartition::new("t", 3);
        let t0 = Instant::now();
        let rx1 = append(&acc, &tp, 1, t0);
        let rx2 = append(&acc, &tp, 1, t0);
        let mut d = acc.drain(1, t0 + Duration::from_secs(1), |_| Some(1), |_| true, None);
        acc.complete(d.remove(0), |b| b.succeed(100, 555));
        let m1 = result(rx1).unwrap();
        let m2 = result(rx2).unwrap();
        assert_eq!((m1.partition, m1.offset, m1.timestamp), (3, 100, 555));
        assert_eq!(m2.offset, 101);
        assert!(acc.is_empty());
        assert_eq!(acc.lock().used, 0);
    }

    #[test]
    fn slots_wake_once_resolved_and_fail_if_dropped() {
        use std::sync::atomic::{AtomicUsize, Ordering};
        struct Count(AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let acc = Accumulator::new(cfg());
        let tp = TopicPartition::new("t", 0);
        let t0 = Instant::now();
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(count.clone());
        let mut cx = Context::from_waker(&waker);
        let mut slots = vec![append(&acc, &tp, 1, t0), append(&acc, &tp, 1, t0)];
        for _ in 0..3 {
            for s in &mut slots {
                assert!(s.poll(&mut cx).is_pending());
            }
        }
        // The second record moves to another task: both tasks stay registered.
        let count2 = Arc::new(Count(AtomicUsize::new(0)));
        let waker2 = Waker::from(count2.clone());
        assert!(slots[1]
            .poll(&mut Context::from_waker(&waker2))
            .is_pending());
        // One wake per task.
        let mut d = acc.drain(1, t0 + Duration::from_secs(1), |_| Some(1), |_| true, None);
        acc.complete(d.remove(0), |b| b.succeed(7, -1));
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert_eq!(count2.0.load(Ordering::SeqCst), 1);
        let offsets: Vec<i64> = slots
            .into_iter()
            .map(|s| result(s).unwrap().offset)
            .collect();
        assert_eq!(offsets, vec![7, 8]);
        // A batch dropped unresolved fails its records with Closed.
        let slot = append(&acc, &tp, 1, t0);
        drop(acc);
        assert!(matches!(result(slot), Err(Error::Closed(_))));
    }

    #[test]
    fn delivery_timeout_expires_queued_batches() {
        let acc = Accumulator::new(cfg());
        let tp = TopicPartition::new("t", 0);
        let t0 = Instant::now();
        let rx = append(&acc, &tp, 1, t0);
        acc.ready(t0 + Duration::from_secs(61), |_| None, |_| true);
        assert!(matches!(result(rx), Err(Error::Timeout { .. })));
        assert!(acc.is_empty());
    }

    #[test]
    fn partitions_not_allowed_wait_and_unsequenced_batches_can_be_dropped() {
        let acc = Accumulator::new(cfg());
        let t0 = Instant::now();
        let later = t0 + Duration::from_secs(1);
        let leader = |_: &TopicPartition| Some(1);
        let pid = Some((9, 2));
        let (a, b) = (TopicPartition::new("t", 0), TopicPartition::new("t", 1));
        let ra = append(&acc, &a, 10, t0);
        let rb = append(&acc, &b, 10, t0);
        // Only `a` is in the transaction: `b` neither counts as ready nor
        // as leaderless, and is not drained.
        let only_a = |tp: &TopicPartition| tp.partition == 0;
        let r = acc.ready(later, |tp| (tp.partition == 0).then_some(1), only_a);
        assert!(!r.unknown_leader);
        assert_eq!(r.nodes.into_iter().collect::<Vec<_>>(), vec![1]);
        let mut d = acc.drain(1, later, leader, only_a, pid);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].tp, a);
        // A transactional batch carries the attribute bit, with its producer.
        let bytes = d[0].encoded(Compression::None, true).unwrap();
        let h = gregor_records::BatchHeader::parse(&bytes).unwrap();
        assert!(h.is_transactional() && !h.is_control());
        assert_eq!(
            (h.producer_id, h.producer_epoch, h.base_sequence),
            (9, 2, 0)
        );
        // It fails and waits for a retry with its sequence; a new batch of
        // `a` and the unsent one of `b` have none.
        acc.reenqueue(d.remove(0), later);
        let ra2 = append(&acc, &a, 10, t0);
        assert_eq!(acc.abort_unsequenced(&Error::TransactionAborted), 2);
        assert!(matches!(result(rb), Err(Error::TransactionAborted)));
        assert!(matches!(result(ra2), Err(Error::TransactionAborted)));
        // The retry is still there and goes out with its sequence.
        let d = acc.drain(1, later, leader, |_| true, pid);
        assert_eq!(d.len(), 1);
        assert_eq!(d[0].base_sequence, 0);
        acc.complete(d.into_iter().next().unwrap(), |b| b.succeed(0, -1));
        assert_eq!(result(ra).unwrap().offset, 0);
        assert!(acc.is_empty());
    }

    #[test]
    fn expired_batches_are_reported() {
        let acc = Accumulator::new(cfg());
        let t0 = Instant::now();
        let tp = TopicPartition::new("t", 0);
        append(&acc, &tp, 1, t0);
        let mut d = acc.drain(
            1,
            t0 + Duration::from_secs(1),
            |_| Some(1),
            |_| true,
            Some((1, 0)),
        );
        acc.reenqueue(d.remove(0), t0 + Duration::from_secs(2));
        append(&acc, &tp, 1, t0);
        let r = acc.ready(t0 + Duration::from_secs(61), |_| Some(1), |_| true);
        assert_eq!(r.expired, 2);
        assert!(r.expired_sequenced);
        assert!(acc.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn reserve_waits_for_memory() {
        let acc = std::sync::Arc::new(Accumulator::new(AccConfig {
            buffer_memory: 100,
            ..cfg()
        }));
        acc.reserve(80, Duration::from_secs(1)).await.unwrap();
        // Too big for the whole buffer: an error at once.
        assert!(acc.reserve(101, Duration::from_secs(1)).await.is_err());
        // Waits max.block and times out...
        let e = acc
            .reserve(30, Duration::from_millis(500))
            .await
            .unwrap_err();
        assert!(matches!(e, Error::Timeout { .. }));
        // ...or proceeds once memory is released.
        let a2 = acc.clone();
        let waiter = tokio::spawn(async move { a2.reserve(30, Duration::from_secs(5)).await });
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!waiter.is_finished());
        acc.unreserve(80);
        waiter.await.unwrap().unwrap();
    }
}
