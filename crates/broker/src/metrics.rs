//! The broker's metrics registry: what the request path counts, read by
//! `/metrics` (the web crate renders it with [`crate::metrics::render`]).
//!
//! Recording is lock-free: every counter and histogram bucket is an atomic.
//! Series per API are a fixed array indexed by API key; series per topic
//! and per listener live in maps whose entries are created on first use
//! (a shared read lock on the fast path, the write lock only the first
//! time a topic is seen) and dropped when the topic goes
//! ([`Metrics::retain_topics`], from the broker's reconcile). Per-partition
//! state (log sizes, offsets, replication, consumer lag) is not recorded at
//! all: it is read from the hosted partitions when scraped.
//!
//! Names follow Kafka's MBeans as the Prometheus JMX exporter's common rules
//! render them (`kafka.server:type=BrokerTopicMetrics,name=MessagesInPerSec`
//! becomes `kafka_server_brokertopicmetrics_messagesin_total`), so existing
//! dashboards need little change.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI16, AtomicI64, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use parking_lot::RwLock;

/// Upper bounds (ms) of the request-time histogram buckets; `+Inf` is implied.
pub const TIME_BUCKETS_MS: [f64; 16] = [
    0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0, 2500.0, 5000.0,
    10000.0,
];

/// Highest API key with its own series (Kafka's keys are below 100).
const MAX_API_KEY: usize = 127;

/// A monotonically increasing count.
#[derive(Debug, Default)]
pub struct Counter(AtomicU64);

impl Counter {
    pub fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn inc(&self) {
        self.add(1);
    }
    pub fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A value that goes up and down.
#[derive(Debug, Default)]
pub struct Gauge(AtomicI64);

impl Gauge {
    pub fn add(&self, n: i64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }
    pub fn get(&self) -> i64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// A histogram of durations in milliseconds over [`TIME_BUCKETS_MS`]: one
/// atomic per bucket (not cumulative; summed when rendered), the count and
/// the sum in microseconds.
#[derive(Debug, Default)]
pub struct Histogram {
    buckets: [AtomicU64; TIME_BUCKETS_MS.len() + 1],
    count: AtomicU64,
    sum_us: AtomicU64,
}

impl Histogram {
    pub fn observe(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        let ms = us as f64 / 1000.0;
        let i = TIME_BUCKETS_MS
            .iter()
            .position(|&b| ms <= b)
            .unwrap_or(TIME_BUCKETS_MS.len());
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.count.fetch_add(1, Ordering::Relaxed);
        self.sum_us.fetch_add(us, Ordering::Relaxed);
    }
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
    /// Cumulative counts per bucket bound (the last is `+Inf`).
    fn cumulative(&self) -> [u64; TIME_BUCKETS_MS.len() + 1] {
        let mut out = [0; TIME_BUCKETS_MS.len() + 1];
        let mut acc = 0;
        for (o, b) in out.iter_mut().zip(&self.buckets) {
            acc += b.load(Ordering::Relaxed);
            *o = acc;
        }
        out
    }
}

/// Kafka's BrokerTopicMetrics, for one topic or for all of them.
#[derive(Debug, Default)]
pub struct TopicMetrics {
    pub messages_in: Counter,
    pub bytes_in: Counter,
    /// Record bytes sent to consumers (followers' fetches are replication).
    pub bytes_out: Counter,
    pub bytes_rejected: Counter,
    pub total_produce_requests: Counter,
    pub failed_produce_requests: Counter,
    pub total_fetch_requests: Counter,
    pub failed_fetch_requests: Counter,
    pub replication_bytes_in: Counter,
    pub replication_bytes_out: Counter,
}

/// Kafka's RequestMetrics for one API.
#[derive(Debug, Default)]
pub struct ApiMetrics {
    pub requests: Counter,
    pub total_time: Histogram,
    pub local_time: Histogram,
    pub remote_time: Histogram,
    pub response_send_time: Histogram,
}

/// Kafka's socket-server-metrics for one listener.
#[derive(Debug, Default)]
pub struct ListenerMetrics {
    pub connection_count: Gauge,
    pub connections_created: Counter,
    pub connections_closed: Counter,
    pub successful_authentication: Counter,
    pub failed_authentication: Counter,
}

/// How long one request spent in each phase (Kafka's RequestChannel
/// timings). There is no request queue: a connection's task decodes and
/// handles its requests itself, in order.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestTimes {
    /// Handling without the waits below.
    pub local: Duration,
    /// Waiting in purgatory: an `acks=all` produce for the ISR, a fetch for
    /// `min.bytes`.
    pub remote: Duration,
    /// Writing the response to the connection.
    pub response_send: Duration,
    /// From the whole request read to its response written (with a quota's
    /// throttle, if any).
    pub total: Duration,
}

/// What the handlers of one connection report about the request being
/// handled (requests on a connection are handled one at a time).
#[derive(Debug, Default)]
pub struct RequestTiming {
    remote_us: AtomicU64,
    /// The first non-zero error code of the response (for the request observer).
    error: AtomicI16,
}

impl RequestTiming {
    /// Time spent waiting in purgatory (added by the produce and fetch handlers).
    pub fn add_remote(&self, d: Duration) {
        let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX);
        self.remote_us.fetch_add(us, Ordering::Relaxed);
    }
    /// The purgatory time of the request just handled, resetting it.
    pub fn take_remote(&self) -> Duration {
        Duration::from_micros(self.remote_us.swap(0, Ordering::Relaxed))
    }
    /// Notes the response's first error code (0: none).
    pub fn set_error(&self, code: i16) {
        self.error.store(code, Ordering::Relaxed);
    }
    /// The error code of the request just handled, resetting it.
    pub fn take_error(&self) -> i16 {
        self.error.swap(0, Ordering::Relaxed)
    }
}

/// One answered request, as a [`RequestObserver`] sees it.
#[derive(Debug)]
pub struct RequestRecord<'a> {
    pub api_key: i16,
    /// -1 (and the client id empty) when the header could not be read.
    pub api_version: i16,
    pub correlation_id: i32,
    pub client_id: &'a str,
    pub principal: &'a str,
    pub listener: &'a str,
    /// The response's first non-zero error code, 0 if none.
    pub error_code: i16,
    /// When the request had been read (wall clock).
    pub start: std::time::SystemTime,
    pub times: &'a RequestTimes,
    /// A quota's hold before the response was sent (old clients).
    pub throttle: Duration,
}

/// Told about every answered request, after its response is written: the
/// OpenTelemetry export (`gregor` built with the `otel` feature) is one.
pub trait RequestObserver: Send + Sync {
    fn request(&self, record: &RequestRecord<'_>);
}

static OBSERVER: std::sync::OnceLock<Box<dyn RequestObserver>> = std::sync::OnceLock::new();

/// Installs the process's request observer (once; `false` if one was).
/// Without one, the request path pays a single atomic load.
pub fn set_request_observer(observer: Box<dyn RequestObserver>) -> bool {
    OBSERVER.set(observer).is_ok()
}

/// The installed request observer, if any.
pub fn request_observer() -> Option<&'static dyn RequestObserver> {
    OBSERVER.get().map(|o| &**o)
}

/// The registry (one per broker).
#[derive(Debug)]
pub struct Metrics {
    pub all_topics: TopicMetrics,
    topics: RwLock<HashMap<Arc<str>, Arc<TopicMetrics>>>,
    apis: Box<[ApiMetrics]>,
    /// (API key, error code) → times a response carried it (per partition,
    /// topic or group, as Kafka's `errorCounts()`).
    errors: RwLock<HashMap<(i16, i16), Arc<Counter>>>,
    listeners: RwLock<HashMap<Arc<str>, Arc<ListenerMetrics>>>,
    pub isr_shrinks: Counter,
    pub isr_expands: Counter,
    /// Produce requests waiting for the ISR (`acks=all`).
    pub produce_purgatory: Gauge,
    /// Fetches waiting for `min.bytes`.
    pub fetch_purgatory: Gauge,
    /// Completed rebalances of classic groups this node coordinates.
    pub classic_rebalances: Counter,
    /// Group epoch bumps of consumer (KIP-848) groups this node coordinates.
    pub consumer_rebalances: Counter,
}

/// Counts one waiting request in a purgatory gauge while it lives (a
/// request whose connection closes is dropped mid-wait).
#[derive(Debug)]
pub struct Waiting<'a>(&'a Gauge);

impl<'a> Waiting<'a> {
    pub fn new(gauge: &'a Gauge) -> Self {
        gauge.add(1);
        Self(gauge)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.add(-1);
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self {
            all_topics: TopicMetrics::default(),
            topics: RwLock::default(),
            apis: (0..=MAX_API_KEY).map(|_| ApiMetrics::default()).collect(),
            errors: RwLock::default(),
            listeners: RwLock::default(),
            isr_shrinks: Counter::default(),
            isr_expands: Counter::default(),
            produce_purgatory: Gauge::default(),
            fetch_purgatory: Gauge::default(),
            classic_rebalances: Counter::default(),
            consumer_rebalances: Counter::default(),
        }
    }
}

impl Metrics {
    /// The series of one topic, created on first use.
    pub fn topic(&self, topic: &str) -> Arc<TopicMetrics> {
        if let Some(t) = self.topics.read().get(topic) {
            return t.clone();
        }
        self.topics
            .write()
            .entry(Arc::from(topic))
            .or_default()
            .clone()
    }

    /// Runs `f` on the series of `topic` and on the all-topics series.
    pub fn for_topic(&self, topic: &str, f: impl Fn(&TopicMetrics)) {
        f(&self.all_topics);
        if let Some(t) = self.topics.read().get(topic) {
            f(t);
            return;
        }
        f(&self.topic(topic));
    }

    /// Drops the series of topics `keep` refuses (deleted topics).
    pub fn retain_topics(&self, keep: impl Fn(&str) -> bool) {
        let gone = self.topics.read().keys().any(|t| !keep(t));
        if gone {
            self.topics.write().retain(|t, _| keep(t));
        }
    }

    /// The series of one API (`None` for a key beyond Kafka's range).
    pub fn api(&self, key: i16) -> Option<&ApiMetrics> {
        usize::try_from(key).ok().and_then(|k| self.apis.get(k))
    }

    /// Records one answered request.
    pub fn record_request(&self, key: i16, times: &RequestTimes) {
        if let Some(a) = self.api(key) {
            a.requests.inc();
            a.total_time.observe(times.total);
            a.local_time.observe(times.local);
            a.remote_time.observe(times.remote);
            a.response_send_time.observe(times.response_send);
        }
    }

    /// Counts one error code (0 included, as Kafka's `ErrorsPerSec{error=NONE}`).
    pub fn record_error(&self, key: i16, code: i16) {
        self.record_errors(key, code, 1);
    }

    /// Counts the error codes of one response (Kafka's `ErrorsPerSec`, fed
    /// from `errorCounts()`): grouped first, so a fetch of a thousand
    /// partitions costs one map lookup per distinct code, not per partition.
    /// Returns the first non-zero code (0 if none).
    pub fn record_response_errors(&self, key: i16, each: impl FnOnce(&mut dyn FnMut(i16))) -> i16 {
        // Nearly always one or two distinct codes: a linear scan.
        let mut seen: Vec<(i16, u64)> = Vec::new();
        each(
            &mut |code| match seen.iter_mut().find(|(c, _)| *c == code) {
                Some((_, n)) => *n += 1,
                None => seen.push((code, 1)),
            },
        );
        let first = seen.iter().find(|(c, _)| *c != 0).map_or(0, |(c, _)| *c);
        for (code, n) in seen {
            self.record_errors(key, code, n);
        }
        first
    }

    /// Counts `n` answers with one error code.
    pub fn record_errors(&self, key: i16, code: i16, n: u64) {
        if let Some(c) = self.errors.read().get(&(key, code)) {
            c.add(n);
            return;
        }
        self.errors.write().entry((key, code)).or_default().add(n);
    }

    /// The series of one listener, created on first use.
    pub fn listener(&self, name: &str) -> Arc<ListenerMetrics> {
        if let Some(l) = self.listeners.read().get(name) {
            return l.clone();
        }
        self.listeners
            .write()
            .entry(Arc::from(name))
            .or_default()
            .clone()
    }

    /// Renders everything this registry records (the web crate adds the
    /// series read from the broker's state).
    pub fn render(&self, out: &mut Exposition) {
        self.render_topics(out);
        self.render_requests(out);
        self.render_listeners(out);
        out.family(
            "kafka_server_replicamanager_isrshrinks",
            Kind::Counter,
            "ISR shrinks of partitions this node leads.",
        );
        out.sample(
            "kafka_server_replicamanager_isrshrinks_total",
            &[],
            self.isr_shrinks.get() as f64,
        );
        out.family(
            "kafka_server_replicamanager_isrexpands",
            Kind::Counter,
            "ISR expansions of partitions this node leads.",
        );
        out.sample(
            "kafka_server_replicamanager_isrexpands_total",
            &[],
            self.isr_expands.get() as f64,
        );
        out.family(
            "kafka_server_delayedoperationpurgatory_purgatorysize",
            Kind::Gauge,
            "Requests waiting in a purgatory.",
        );
        for (op, g) in [
            ("Produce", &self.produce_purgatory),
            ("Fetch", &self.fetch_purgatory),
        ] {
            out.sample(
                "kafka_server_delayedoperationpurgatory_purgatorysize",
                &[("delayedoperation", op)],
                g.get() as f64,
            );
        }
        for (name, help, c) in [
            (
                "kafka_server_group_coordinator_metrics_group_rebalance",
                "Completed rebalances of classic groups coordinated here (join phases ending in a generation with members).",
                &self.classic_rebalances,
            ),
            (
                "kafka_server_group_coordinator_metrics_consumer_group_rebalance",
                "Rebalances of consumer groups coordinated here (group epoch bumps).",
                &self.consumer_rebalances,
            ),
        ] {
            out.family(name, Kind::Counter, help);
            out.sample(&format!("{name}_total"), &[], c.get() as f64);
        }
        let (flushes, flush_time) = gregor_storage::log::FLUSH_STATS.get();
        out.family(
            "kafka_log_logflushstats_logflushrateandtimems",
            Kind::Summary,
            "Log flushes to disk and their time (ms).",
        );
        let name = "kafka_log_logflushstats_logflushrateandtimems";
        out.sample(&format!("{name}_count"), &[], flushes as f64);
        out.sample(
            &format!("{name}_sum"),
            &[],
            flush_time.as_secs_f64() * 1000.0,
        );
    }

    fn render_topics(&self, out: &mut Exposition) {
        let topics = self.topics.read();
        let mut names: Vec<&Arc<str>> = topics.keys().collect();
        names.sort();
        type Field = fn(&TopicMetrics) -> &Counter;
        let series: [(&str, &str, Field); 10] = [
            ("messagesin", "Records appended as leader.", |t| {
                &t.messages_in
            }),
            ("bytesin", "Record bytes appended as leader.", |t| {
                &t.bytes_in
            }),
            ("bytesout", "Record bytes sent to consumers.", |t| {
                &t.bytes_out
            }),
            (
                "bytesrejected",
                "Record bytes of refused produce requests.",
                |t| &t.bytes_rejected,
            ),
            (
                "totalproducerequests",
                "Produce requests (per partition).",
                |t| &t.total_produce_requests,
            ),
            (
                "failedproducerequests",
                "Failed produce requests (per partition).",
                |t| &t.failed_produce_requests,
            ),
            (
                "totalfetchrequests",
                "Consumer fetch requests (per partition).",
                |t| &t.total_fetch_requests,
            ),
            (
                "failedfetchrequests",
                "Failed consumer fetch requests (per partition).",
                |t| &t.failed_fetch_requests,
            ),
            (
                "replicationbytesin",
                "Record bytes appended as follower.",
                |t| &t.replication_bytes_in,
            ),
            (
                "replicationbytesout",
                "Record bytes sent to followers.",
                |t| &t.replication_bytes_out,
            ),
        ];
        for (name, help, field) in series {
            let family = format!("kafka_server_brokertopicmetrics_{name}");
            out.family(&family, Kind::Counter, help);
            let sample = format!("{family}_total");
            out.sample(&sample, &[], field(&self.all_topics).get() as f64);
            for t in &names {
                out.sample(&sample, &[("topic", t)], field(&topics[*t]).get() as f64);
            }
        }
    }

    fn render_requests(&self, out: &mut Exposition) {
        let used: Vec<(i16, &ApiMetrics)> = self
            .apis
            .iter()
            .enumerate()
            .filter(|(_, a)| a.requests.get() > 0)
            .map(|(k, a)| (k as i16, a))
            .collect();
        out.family(
            "kafka_network_requestmetrics_requests",
            Kind::Counter,
            "Requests answered, per API.",
        );
        for (k, a) in &used {
            let name = api_name(*k);
            out.sample(
                "kafka_network_requestmetrics_requests_total",
                &[("request", &name)],
                a.requests.get() as f64,
            );
        }
        type Field = fn(&ApiMetrics) -> &Histogram;
        let phases: [(&str, &str, Field); 4] = [
            (
                "totaltimems",
                "Request time from read to response written (ms).",
                |a| &a.total_time,
            ),
            (
                "localtimems",
                "Request handling time, without purgatory waits (ms).",
                |a| &a.local_time,
            ),
            (
                "remotetimems",
                "Time waiting in purgatory: acks=all, fetch.min.bytes (ms).",
                |a| &a.remote_time,
            ),
            (
                "responsesendtimems",
                "Time writing the response (ms).",
                |a| &a.response_send_time,
            ),
        ];
        for (phase, help, field) in phases {
            let family = format!("kafka_network_requestmetrics_{phase}");
            out.family(&family, Kind::Histogram, help);
            for (k, a) in &used {
                let name = api_name(*k);
                out.histogram(&family, &[("request", &name)], field(a));
            }
        }
        let errors = self.errors.read();
        let mut keys: Vec<&(i16, i16)> = errors.keys().collect();
        keys.sort();
        out.family(
            "kafka_network_requestmetrics_errors",
            Kind::Counter,
            "Error codes in responses, per API (Kafka's errorCounts: per partition, topic or group as the API answers).",
        );
        for key in keys {
            let name = api_name(key.0);
            out.sample(
                "kafka_network_requestmetrics_errors_total",
                &[("request", &name), ("error", &error_name(key.1))],
                errors[key].get() as f64,
            );
        }
    }

    fn render_listeners(&self, out: &mut Exposition) {
        let listeners = self.listeners.read();
        let mut names: Vec<&Arc<str>> = listeners.keys().collect();
        names.sort();
        let prefix = "kafka_server_socket_server_metrics";
        out.family(
            &format!("{prefix}_connection_count"),
            Kind::Gauge,
            "Open connections per listener.",
        );
        for n in &names {
            let v = listeners[*n].connection_count.get();
            out.sample(
                &format!("{prefix}_connection_count"),
                &[("listener", n)],
                v as f64,
            );
        }
        type Field = fn(&ListenerMetrics) -> &Counter;
        let counters: [(&str, &str, Field); 4] = [
            ("connection_creation", "Connections accepted.", |l| {
                &l.connections_created
            }),
            ("connection_close", "Connections closed.", |l| {
                &l.connections_closed
            }),
            (
                "successful_authentication",
                "Successful SASL authentications.",
                |l| &l.successful_authentication,
            ),
            (
                "failed_authentication",
                "Failed authentications (SASL, TLS handshake, client certificate).",
                |l| &l.failed_authentication,
            ),
        ];
        for (name, help, field) in counters {
            let family = format!("{prefix}_{name}");
            out.family(&family, Kind::Counter, help);
            for n in &names {
                let v = field(&listeners[*n]).get();
                out.sample(&format!("{family}_total"), &[("listener", n)], v as f64);
            }
        }
    }
}

/// The version, correlation id and client id of a request frame's header
/// (for the slow-request log; whatever cannot be read is left empty).
pub fn request_header_fields(frame: &[u8]) -> (i16, i32, String) {
    let version = frame
        .get(2..4)
        .map_or(-1, |b| i16::from_be_bytes([b[0], b[1]]));
    let correlation = frame
        .get(4..8)
        .map_or(-1, |b| i32::from_be_bytes([b[0], b[1], b[2], b[3]]));
    let client_id = frame
        .get(8..10)
        .and_then(|b| usize::try_from(i16::from_be_bytes([b[0], b[1]])).ok())
        .and_then(|len| frame.get(10..10 + len))
        .map(|b| String::from_utf8_lossy(b).into_owned())
        .unwrap_or_default();
    (version, correlation, client_id)
}

/// Kafka's name of an API key (`Produce`, `ApiVersions`), or the number.
pub fn api_name(key: i16) -> String {
    kafka_protocol::messages::ApiKey::try_from(key)
        .map(|k| format!("{k:?}"))
        .unwrap_or_else(|_| key.to_string())
}

/// Kafka's name of an error code (`NONE`, `NOT_LEADER_OR_FOLLOWER`): the
/// protocol crate's variant name in Kafka's spelling.
pub fn error_name(code: i16) -> String {
    match kafka_protocol::error::ResponseError::try_from_code(code) {
        None => "NONE".into(),
        Some(kafka_protocol::error::ResponseError::Unknown(c)) => format!("UNKNOWN_{c}"),
        Some(e) => {
            let camel = e.to_string();
            let mut out = String::with_capacity(camel.len() + 8);
            for (i, c) in camel.chars().enumerate() {
                if c.is_ascii_uppercase() && i > 0 {
                    out.push('_');
                }
                out.push(c.to_ascii_uppercase());
            }
            out
        }
    }
}

/// Prometheus metric kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
    Summary,
}

/// A text exposition being written: Prometheus text format 0.0.4, or
/// OpenMetrics 1.0 (`# EOF` at the end; counters' `# TYPE` names the
/// family without `_total`, which both formats accept).
#[derive(Debug)]
pub struct Exposition {
    text: String,
    openmetrics: bool,
}

impl Exposition {
    pub fn new(openmetrics: bool) -> Self {
        Self {
            text: String::with_capacity(64 * 1024),
            openmetrics,
        }
    }

    /// Starts a metric family: `# HELP` and `# TYPE`. In the 0.0.4 format a
    /// counter's family is named with its samples' `_total`.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        let kind_name = match kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
            Kind::Summary => "summary",
        };
        let suffix = if kind == Kind::Counter && !self.openmetrics {
            "_total"
        } else {
            ""
        };
        let _ = writeln!(self.text, "# HELP {name}{suffix} {}", escape_help(help));
        let _ = writeln!(self.text, "# TYPE {name}{suffix} {kind_name}");
    }

    /// One sample line.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        self.text.push_str(name);
        write_labels(&mut self.text, labels, None);
        self.text.push(' ');
        write_value(&mut self.text, value);
        self.text.push('\n');
    }

    /// The `_bucket`, `_sum` (ms) and `_count` samples of a histogram.
    pub fn histogram(&mut self, name: &str, labels: &[(&str, &str)], h: &Histogram) {
        let cumulative = h.cumulative();
        let bucket = format!("{name}_bucket");
        for (i, count) in cumulative.iter().enumerate() {
            let le = TIME_BUCKETS_MS
                .get(i)
                .map_or_else(|| "+Inf".to_string(), |b| format_float(*b));
            self.text.push_str(&bucket);
            write_labels(&mut self.text, labels, Some(&le));
            let _ = writeln!(self.text, " {count}");
        }
        let sum_ms = h.sum_us.load(Ordering::Relaxed) as f64 / 1000.0;
        self.sample(&format!("{name}_sum"), labels, sum_ms);
        // The count read last: never below the buckets' total.
        self.sample(
            &format!("{name}_count"),
            labels,
            cumulative[cumulative.len() - 1] as f64,
        );
    }

    /// The finished text (`# EOF` added for OpenMetrics).
    pub fn finish(mut self) -> String {
        if self.openmetrics {
            self.text.push_str("# EOF\n");
        }
        self.text
    }
}

fn write_labels(out: &mut String, labels: &[(&str, &str)], le: Option<&str>) {
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    let mut first = true;
    for (k, v) in labels.iter().copied().chain(le.map(|le| ("le", le))) {
        if !first {
            out.push(',');
        }
        first = false;
        out.push_str(k);
        out.push_str("=\"");
        escape_label_value(out, v);
        out.push('"');
    }
    out.push('}');
}

/// Label values escape `\`, `"` and newlines (both formats).
pub fn escape_label_value(out: &mut String, v: &str) {
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

/// HELP text escapes `\` and newlines.
pub fn escape_help(v: &str) -> String {
    v.replace('\\', "\\\\").replace('\n', "\\n")
}

fn write_value(out: &mut String, v: f64) {
    out.push_str(&format_float(v));
}

fn format_float(v: f64) -> String {
    if v.is_nan() {
        "NaN".into()
    } else if v.is_infinite() {
        if v > 0.0 { "+Inf" } else { "-Inf" }.into()
    } else if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut out = Exposition::new(false);
        out.sample("m", &[("topic", "a\"b\\c\nd")], 1.0);
        assert_eq!(out.finish(), "m{topic=\"a\\\"b\\\\c\\nd\"} 1\n");
    }

    #[test]
    fn error_names_are_kafkas() {
        assert_eq!(error_name(0), "NONE");
        assert_eq!(error_name(6), "NOT_LEADER_OR_FOLLOWER");
        assert_eq!(error_name(17), "INVALID_TOPIC_EXCEPTION");
        assert_eq!(error_name(-1), "UNKNOWN_SERVER_ERROR");
        assert_eq!(error_name(9999), "UNKNOWN_9999");
    }

    #[test]
    fn header_fields_never_panic() {
        let mut frame = vec![0, 0, 0, 9, 0, 0, 0, 7, 0, 3];
        frame.extend_from_slice(b"app");
        assert_eq!(request_header_fields(&frame), (9, 7, "app".into()));
        assert_eq!(request_header_fields(&frame[..11]), (9, 7, String::new()));
        assert_eq!(
            request_header_fields(&[0, 0, 0xff, 0xff, 0, 0, 0, 1, 0xff, 0xff]),
            (-1, 1, String::new())
        );
        assert_eq!(request_header_fields(&[]), (-1, -1, String::new()));
    }

    #[test]
    fn help_is_escaped() {
        assert_eq!(escape_help("a\\b\nc"), "a\\\\b\\nc");
    }

    #[test]
    fn counters_are_typed_per_format() {
        let mut text = Exposition::new(false);
        text.family("x", Kind::Counter, "h");
        assert_eq!(text.finish(), "# HELP x_total h\n# TYPE x_total counter\n");
        let mut om = Exposition::new(true);
        om.family("x", Kind::Counter, "h");
        assert_eq!(om.finish(), "# HELP x h\n# TYPE x counter\n# EOF\n");
    }

    #[test]
    fn histogram_buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_micros(50)); // 0.05 ms: first bucket
        h.observe(Duration::from_millis(3)); // 3 ms: le=5
        h.observe(Duration::from_secs(60)); // +Inf
        let mut out = Exposition::new(false);
        out.histogram("t", &[("request", "Produce")], &h);
        let text = out.finish();
        assert!(
            text.contains("t_bucket{request=\"Produce\",le=\"0.1\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("t_bucket{request=\"Produce\",le=\"2.5\"} 1\n"),
            "{text}"
        );
        assert!(
            text.contains("t_bucket{request=\"Produce\",le=\"5\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("t_bucket{request=\"Produce\",le=\"10000\"} 2\n"),
            "{text}"
        );
        assert!(
            text.contains("t_bucket{request=\"Produce\",le=\"+Inf\"} 3\n"),
            "{text}"
        );
        assert!(text.contains("t_count{request=\"Produce\"} 3\n"), "{text}");
        assert!(
            text.contains("t_sum{request=\"Produce\"} 60003.05\n"),
            "{text}"
        );
    }

    #[test]
    fn topic_series_count_and_go_with_the_topic() {
        let m = Metrics::default();
        m.for_topic("a", |t| t.messages_in.add(3));
        m.for_topic("b", |t| t.messages_in.add(4));
        m.for_topic("a", |t| t.messages_in.add(1));
        assert_eq!(m.topic("a").messages_in.get(), 4);
        assert_eq!(m.all_topics.messages_in.get(), 8);
        m.retain_topics(|t| t != "a");
        let mut out = Exposition::new(false);
        m.render(&mut out);
        let text = out.finish();
        assert!(!text.contains("topic=\"a\""), "{text}");
        assert!(text.contains("kafka_server_brokertopicmetrics_messagesin_total{topic=\"b\"} 4\n"));
        assert!(text.contains("kafka_server_brokertopicmetrics_messagesin_total 8\n"));
    }

    #[test]
    fn requests_and_errors_by_api() {
        let m = Metrics::default();
        let times = RequestTimes {
            total: Duration::from_millis(2),
            ..Default::default()
        };
        m.record_request(0, &times);
        m.record_request(0, &times);
        m.record_request(18, &times);
        m.record_request(-1, &times); // ignored, not a panic
        m.record_error(0, 0);
        m.record_error(0, 6);
        m.record_error(0, 6);
        let mut out = Exposition::new(false);
        m.render(&mut out);
        let text = out.finish();
        assert!(
            text.contains("kafka_network_requestmetrics_requests_total{request=\"Produce\"} 2\n")
        );
        assert!(text
            .contains("kafka_network_requestmetrics_requests_total{request=\"ApiVersions\"} 1\n"));
        assert!(text.contains(
            "kafka_network_requestmetrics_errors_total{request=\"Produce\",error=\"NOT_LEADER_OR_FOLLOWER\"} 2\n"
        ));
        assert!(text.contains(
            "kafka_network_requestmetrics_errors_total{request=\"Produce\",error=\"NONE\"} 1\n"
        ));
        assert!(text
            .contains("kafka_network_requestmetrics_totaltimems_count{request=\"Produce\"} 2\n"));
    }

    #[test]
    fn remote_time_is_taken_once() {
        let t = RequestTiming::default();
        t.add_remote(Duration::from_millis(5));
        t.add_remote(Duration::from_millis(1));
        assert_eq!(t.take_remote(), Duration::from_millis(6));
        assert_eq!(t.take_remote(), Duration::ZERO);
    }
}
