//! Shared harness for the integration tests: a real `gregor` process on
//! `127.0.0.1:0` with its own temporary log dir, and a blocking Kafka client
//! that speaks the wire protocol through `kafka-protocol` over a plain
//! `TcpStream`.
//!
//! Every wait is a poll against a deadline, never a fixed sleep. A
//! [`Broker`] kills its process when dropped, so a failing test never leaks a
//! server.

#![allow(dead_code)] // each test binary uses a different part of the harness

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use gregor_records::record::decode_records;
use gregor_records::{BatchBuilder, BatchHeader, BatchIter, Compression, Record};
use kafka_protocol::messages::create_topics_request::{CreatableTopic, CreatableTopicConfig};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::produce_response::PartitionProduceResponse;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, Request, StrBytes};

/// How long a broker may take to start or to shut down.
pub const START_DEADLINE: Duration = Duration::from_secs(30);
pub const STOP_DEADLINE: Duration = Duration::from_secs(15);
/// Socket timeout for a single read or write of the test client.
pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

/// Polls `cond` until it holds or `timeout` passes; returns whether it held.
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// A `gregor server` process and the directory it keeps its data in.
pub struct Broker {
    /// Root of the temporary directory: `data/` is log.dirs, stderr logs sit beside it.
    root: tempfile::TempDir,
    pub port: u16,
    overrides: Vec<String>,
    child: Option<Child>,
    starts: usize,
}

impl Broker {
    /// Starts a broker on an ephemeral port with a fresh log dir.
    pub fn start() -> Broker {
        Broker::start_with(&[])
    }

    /// Starts a broker with extra `--override key=value` settings.
    pub fn start_with(overrides: &[&str]) -> Broker {
        let root = tempfile::Builder::new()
            .prefix("gregor-it-")
            .tempdir()
            .expect("creating a temp dir");
        let mut b = Broker {
            root,
            port: 0,
            overrides: overrides.iter().map(|s| s.to_string()).collect(),
            child: None,
            starts: 0,
        };
        b.spawn();
        b
    }

    /// The broker's log dir (`log.dirs`).
    pub fn log_dir(&self) -> PathBuf {
        self.root.path().join("data")
    }

    /// The directory of one partition's log.
    pub fn partition_dir(&self, topic: &str, partition: i32) -> PathBuf {
        self.log_dir().join(format!("{topic}-{partition}"))
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("broker is not running").id()
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Connects a new client.
    pub fn client(&self) -> Client {
        Client::connect(self.port)
    }

    /// The stderr of every run so far, for failure messages.
    pub fn logs(&self) -> String {
        let mut out = String::new();
        for i in 0..self.starts {
            if let Ok(s) = std::fs::read_to_string(self.stderr_path(i)) {
                out.push_str(&format!("--- run {i} ---\n{s}"));
            }
        }
        out
    }

    fn stderr_path(&self, run: usize) -> PathBuf {
        self.root.path().join(format!("stderr-{run}.log"))
    }

    /// Starts the process on `self.port` (0 the first time) and waits for its
    /// listening line.
    fn spawn(&mut self) {
        assert!(self.child.is_none(), "broker already running");
        let stderr = std::fs::File::create(self.stderr_path(self.starts)).expect("stderr file");
        self.starts += 1;
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_gregor"));
        cmd.arg("server")
            .arg("--override")
            .arg(format!("listeners=PLAINTEXT://127.0.0.1:{}", self.port))
            .arg("--override")
            .arg(format!("log.dirs={}", self.log_dir().display()));
        for o in &self.overrides {
            cmd.arg("--override").arg(o);
        }
        // The load's last message must reach stderr (see below).
        let filter = match std::env::var("RUST_LOG") {
            Ok(f) if !f.is_empty() => format!("{f},gregor_broker::log_loading=info"),
            _ => "info".to_string(),
        };
        cmd.env("RUST_LOG", filter);
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawning gregor");
        let stdout = child.stdout.take().expect("piped stdout");
        self.child = Some(child);
        // A reader thread, so the deadline holds even if the broker never prints.
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let first = lines.next();
            let _ = tx.send(first);
            // Keep draining so the broker never blocks on a full pipe.
            for _ in lines {}
        });
        let line = match rx.recv_timeout(START_DEADLINE) {
            Ok(Some(Ok(line))) => line,
            other => panic!(
                "broker did not print its listening line ({other:?})\n{}",
                self.logs()
            ),
        };
        let prefix = "gregor: listening on PLAINTEXT://127.0.0.1:";
        let port: u16 = line
            .strip_prefix(prefix)
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| panic!("unexpected listening line {line:?}"));
        if self.port != 0 {
            assert_eq!(port, self.port, "restart bound a different port");
        }
        self.port = port;
        // The listener opens while the logs load, and until a partition's
        // log is loaded requests on it get retriable errors, which Kafka
        // clients retry and these tests' raw client does not: wait for the
        // load (or for the process to stop, as some tests expect it to).
        let stderr_path = self.stderr_path(self.starts - 1);
        let loaded = wait_until(START_DEADLINE, || {
            std::fs::read_to_string(&stderr_path)
                .is_ok_and(|s| s.contains(gregor_broker::log_loading::LOADED_MESSAGE))
                || !self.is_running()
        });
        assert!(loaded, "the broker's logs did not load\n{}", self.logs());
    }

    /// SIGTERM, then waits (with a deadline) for the process to exit.
    /// Waits (at most `deadline`) for the process to exit by itself.
    pub fn wait_exit(&mut self, deadline: Duration) -> ExitStatus {
        let end = Instant::now() + deadline;
        loop {
            let child = self.child.as_mut().expect("broker is not running");
            if let Some(status) = child.try_wait().expect("waiting for the broker") {
                self.child = None;
                return status;
            }
            if Instant::now() >= end {
                panic!("broker did not exit within {deadline:?}\n{}", self.logs());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn stop(&mut self) -> ExitStatus {
        let mut child = self.child.take().expect("broker is not running");
        let pid = libc::pid_t::try_from(child.id()).expect("pid fits pid_t");
        // SAFETY: plain kill(2) on our own child, which has not been reaped yet.
        let rc = unsafe { libc::kill(pid, libc::SIGTERM) };
        assert_eq!(rc, 0, "kill(SIGTERM) failed");
        let deadline = Instant::now() + STOP_DEADLINE;
        loop {
            if let Some(status) = child.try_wait().expect("waiting for the broker") {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "broker did not exit within {STOP_DEADLINE:?} of SIGTERM\n{}",
                    self.logs()
                );
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// SIGTERM and assert a clean exit (status 0).
    pub fn stop_clean(&mut self) {
        let status = self.stop();
        assert!(
            status.success(),
            "broker exited with {status}\n{}",
            self.logs()
        );
    }

    /// SIGKILL: no shutdown code runs, nothing is flushed by the broker.
    pub fn kill9(&mut self) {
        let mut child = self.child.take().expect("broker is not running");
        child.kill().expect("killing the broker");
        child.wait().expect("reaping the broker");
    }

    /// Starts the broker again on the same dir and port.
    pub fn restart(&mut self) {
        self.spawn();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() && std::env::var_os("GREGOR_IT_LOGS").is_some() {
            eprintln!("{}", self.logs());
        }
    }
}

/// A blocking Kafka protocol client on one connection.
pub struct Client {
    pub stream: TcpStream,
    next_correlation_id: i32,
}

impl Client {
    pub fn connect(port: u16) -> Client {
        let stream = TcpStream::connect(("127.0.0.1", port)).expect("connecting to the broker");
        stream.set_read_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_write_timeout(Some(IO_TIMEOUT)).unwrap();
        stream.set_nodelay(true).unwrap();
        Client {
            stream,
            next_correlation_id: 1,
        }
    }

    /// Encodes one request frame (size prefix included) with a fresh correlation id.
    pub fn encode_request<R: Request>(&mut self, version: i16, req: &R) -> (i32, Vec<u8>) {
        let correlation_id = self.next_correlation_id;
        self.next_correlation_id += 1;
        (correlation_id, encode_frame(version, correlation_id, req))
    }

    /// Writes one request without reading its response; returns its correlation id.
    pub fn write_request<R: Request>(&mut self, version: i16, req: &R) -> i32 {
        let (id, frame) = self.encode_request(version, req);
        self.stream.write_all(&frame).expect("writing a request");
        id
    }

    /// Reads one response and checks its correlation id.
    pub fn read_response<R: Request>(&mut self, version: i16, correlation_id: i32) -> R::Response {
        let frame = self.read_frame().expect("reading a response");
        let mut buf = Bytes::from(frame);
        let header = ResponseHeader::decode(&mut buf, R::Response::header_version(version))
            .expect("decoding the response header");
        assert_eq!(header.correlation_id, correlation_id, "correlation id");
        let resp = R::Response::decode(&mut buf, version).expect("decoding the response");
        assert!(buf.is_empty(), "{} bytes after the response", buf.len());
        resp
    }

    /// Sends a request and returns its response.
    pub fn send<R: Request>(&mut self, version: i16, req: &R) -> R::Response {
        let id = self.write_request(version, req);
        self.read_response::<R>(version, id)
    }

    /// Writes `payload` with a size prefix.
    pub fn write_frame(&mut self, payload: &[u8]) {
        let mut f = (payload.len() as u32).to_be_bytes().to_vec();
        f.extend_from_slice(payload);
        self.write_raw(&f);
    }

    /// Writes bytes as they are (the broker may already have closed: ignore errors).
    pub fn write_raw(&mut self, bytes: &[u8]) {
        let _ = self.stream.write_all(bytes);
        let _ = self.stream.flush();
    }

    /// Reads one size-prefixed frame (without the prefix).
    pub fn read_frame(&mut self) -> std::io::Result<Vec<u8>> {
        let mut size = [0u8; 4];
        self.stream.read_exact(&mut size)?;
        let size = i32::from_be_bytes(size);
        assert!(size >= 0, "negative response size {size}");
        let mut frame = vec![0u8; size as usize];
        self.stream.read_exact(&mut frame)?;
        Ok(frame)
    }

    /// Asserts that the broker closes this connection (EOF or reset) without
    /// sending anything, within the read timeout.
    pub fn expect_closed(&mut self) {
        let mut buf = [0u8; 1024];
        match self.stream.read(&mut buf) {
            Ok(0) => {}
            Ok(n) => panic!("expected the connection to close, got {n} bytes"),
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {}
            Err(e) => panic!("expected the connection to close: {e}"),
        }
    }

    /// Half-closes and reads everything until the broker closes its side.
    /// Returns the bytes read, or `None` if the read timed out.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        let _ = self.stream.shutdown(Shutdown::Write);
        let mut out = Vec::new();
        match self.stream.read_to_end(&mut out) {
            Ok(_) => Some(out),
            Err(e) if matches!(e.kind(), ErrorKind::ConnectionReset | ErrorKind::BrokenPipe) => {
                Some(out)
            }
            Err(_) => None,
        }
    }

    // ---- typed helpers -------------------------------------------------

    pub fn api_versions(&mut self) -> ApiVersionsResponse {
        let req = ApiVersionsRequest::default()
            .with_client_software_name(StrBytes::from_static_str("gregor-it"))
            .with_client_software_version(StrBytes::from_static_str("1"));
        self.send(3, &req)
    }

    /// Metadata v12 for the given topics (auto-creation off).
    pub fn metadata(&mut self, topics: &[&str]) -> MetadataResponse {
        let req = MetadataRequest::default()
            .with_topics(Some(
                topics
                    .iter()
                    .map(|t| MetadataRequestTopic::default().with_name(Some(topic_name(t))))
                    .collect(),
            ))
            .with_allow_auto_topic_creation(false);
        self.send(12, &req)
    }

    /// The topic id the broker reports for `topic`.
    pub fn topic_id(&mut self, topic: &str) -> uuid::Uuid {
        let m = self.metadata(&[topic]);
        assert_eq!(m.topics[0].error_code, 0, "metadata for {topic}");
        m.topics[0].topic_id
    }

    /// Creates a topic (replication factor 1) and asserts success.
    pub fn create_topic(&mut self, name: &str, partitions: i32, configs: &[(&str, &str)]) {
        let resp = self.create_topics(name, partitions, configs, false);
        let r = &resp.topics[0];
        assert_eq!(
            r.error_code,
            0,
            "creating {name}: {:?}",
            r.error_message.as_deref()
        );
    }

    /// CreateTopics v7 for one topic.
    pub fn create_topics(
        &mut self,
        name: &str,
        partitions: i32,
        configs: &[(&str, &str)],
        validate_only: bool,
    ) -> CreateTopicsResponse {
        let topic = CreatableTopic::default()
            .with_name(topic_name(name))
            .with_num_partitions(partitions)
            .with_replication_factor(1)
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        CreatableTopicConfig::default()
                            .with_name(StrBytes::from_string(k.to_string()))
                            .with_value(Some(StrBytes::from_string(v.to_string())))
                    })
                    .collect(),
            );
        let req = CreateTopicsRequest::default()
            .with_topics(vec![topic])
            .with_timeout_ms(10_000)
            .with_validate_only(validate_only);
        self.send(7, &req)
    }

    /// Produce v9 of one batch to one partition; returns the partition's response.
    pub fn produce(
        &mut self,
        topic: &str,
        partition: i32,
        batch: &[u8],
        acks: i16,
    ) -> PartitionProduceResponse {
        let req = produce_request(topic, partition, batch, acks);
        let mut resp = self.send(9, &req);
        assert_eq!(resp.responses.len(), 1);
        assert_eq!(resp.responses[0].name.as_str(), topic);
        resp.responses[0].partition_responses.remove(0)
    }

    /// Produces and asserts success; returns the base offset.
    pub fn produce_ok(&mut self, topic: &str, partition: i32, batch: &[u8], acks: i16) -> i64 {
        let r = self.produce(topic, partition, batch, acks);
        assert_eq!(
            r.error_code,
            0,
            "produce to {topic}-{partition}: {:?}",
            r.error_message.as_deref()
        );
        r.base_offset
    }

    /// One Fetch v12 of a partition from `offset` (no waiting). Returns the
    /// partition's error code, high watermark, log start offset and records.
    pub fn fetch(&mut self, topic: &str, partition: i32, offset: i64) -> FetchResult {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(1)
            .with_max_bytes(64 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![FetchTopic::default()
                .with_topic(topic_name(topic))
                .with_partitions(vec![FetchPartition::default()
                    .with_partition(partition)
                    .with_fetch_offset(offset)
                    .with_current_leader_epoch(-1)
                    .with_log_start_offset(-1)
                    .with_partition_max_bytes(1 << 20)])]);
        let resp = self.send(12, &req);
        assert_eq!(resp.error_code, 0, "fetch top-level error");
        let p = &resp.responses[0].partitions[0];
        FetchResult {
            error_code: p.error_code,
            high_watermark: p.high_watermark,
            log_start_offset: p.log_start_offset,
            records: p.records.clone().unwrap_or_default(),
        }
    }

    /// Every batch of the partition from `from` to the high watermark.
    pub fn fetch_all(&mut self, topic: &str, partition: i32, from: i64) -> Vec<FetchedBatch> {
        let mut out: Vec<FetchedBatch> = Vec::new();
        let mut offset = from;
        loop {
            let r = self.fetch(topic, partition, offset);
            assert_eq!(r.error_code, 0, "fetch {topic}-{partition} at {offset}");
            let batches = decode_batches(&r.records);
            for b in batches {
                // A fetch may start inside a batch: the whole batch comes back.
                if b.header.next_offset() <= offset {
                    continue;
                }
                offset = b.header.next_offset();
                out.push(b);
            }
            if offset >= r.high_watermark {
                return out;
            }
            assert!(
                !r.records.is_empty(),
                "fetch at {offset} below high watermark {} returned nothing",
                r.high_watermark
            );
        }
    }

    /// All records of the partition from `from`.
    pub fn fetch_records(&mut self, topic: &str, partition: i32, from: i64) -> Vec<Record> {
        self.fetch_all(topic, partition, from)
            .into_iter()
            .flat_map(|b| b.records)
            .filter(|r| r.offset >= from)
            .collect()
    }

    /// ListOffsets v7 of one partition: `(error_code, offset, timestamp)`.
    pub fn list_offset(&mut self, topic: &str, partition: i32, timestamp: i64) -> (i16, i64, i64) {
        let req = ListOffsetsRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_topics(vec![ListOffsetsTopic::default()
                .with_name(topic_name(topic))
                .with_partitions(vec![ListOffsetsPartition::default()
                    .with_partition_index(partition)
                    .with_current_leader_epoch(-1)
                    .with_timestamp(timestamp)])]);
        let resp = self.send(7, &req);
        let p = &resp.topics[0].partitions[0];
        (p.error_code, p.offset, p.timestamp)
    }

    /// ListOffsets offset, asserting no error.
    pub fn offset_for(&mut self, topic: &str, partition: i32, timestamp: i64) -> i64 {
        let (err, offset, _) = self.list_offset(topic, partition, timestamp);
        assert_eq!(err, 0, "ListOffsets {topic}-{partition} ts {timestamp}");
        offset
    }
}

pub const EARLIEST: i64 = -2;
pub const LATEST: i64 = -1;

/// One partition of a fetch response.
#[derive(Debug)]
pub struct FetchResult {
    pub error_code: i16,
    pub high_watermark: i64,
    pub log_start_offset: i64,
    pub records: Bytes,
}

/// A batch as fetched: its header, its records, and its bytes.
#[derive(Debug, Clone)]
pub struct FetchedBatch {
    pub header: BatchHeader,
    pub records: Vec<Record>,
    pub bytes: Bytes,
}

/// Splits a record set into batches and decodes each one. A trailing partial
/// batch (allowed by the protocol when a size limit cuts it) is dropped.
pub fn decode_batches(records: &[u8]) -> Vec<FetchedBatch> {
    let mut out = Vec::new();
    for item in BatchIter::new(records) {
        let Ok((header, _, bytes)) = item else { break };
        gregor_records::validate_batch(bytes, 64 << 20).expect("fetched batch validates");
        let (h, recs) = decode_records(bytes, 64 << 20).expect("fetched batch decodes");
        assert_eq!(h, header);
        out.push(FetchedBatch {
            header,
            records: recs,
            bytes: Bytes::copy_from_slice(bytes),
        });
    }
    out
}

pub fn topic_name(s: &str) -> TopicName {
    TopicName(StrBytes::from_string(s.to_string()))
}

/// Encodes a request frame, size prefix included.
pub fn encode_frame<R: Request>(version: i16, correlation_id: i32, req: &R) -> Vec<u8> {
    let header = RequestHeader::default()
        .with_request_api_key(R::KEY)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("gregor-it")));
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0, 0, 0, 0]);
    header
        .encode(&mut buf, R::header_version(version))
        .expect("encoding the request header");
    req.encode(&mut buf, version).expect("encoding the request");
    let size = (buf.len() - 4) as u32;
    buf[..4].copy_from_slice(&size.to_be_bytes());
    buf.to_vec()
}

/// A Produce request (v3-v12 shape: topics by name) for one batch.
pub fn produce_request(topic: &str, partition: i32, batch: &[u8], acks: i16) -> ProduceRequest {
    ProduceRequest::default()
        .with_acks(acks)
        .with_timeout_ms(10_000)
        .with_topic_data(vec![TopicProduceData::default()
            .with_name(topic_name(topic))
            .with_partition_data(vec![PartitionProduceData::default()
                .with_index(partition)
                .with_records(Some(Bytes::copy_from_slice(batch)))])])
}

/// Records `key-<tag>-<i>` / `value-<tag>-<i>` (value sized `value_len`, at
/// least the text), timestamps `ts0 + i`.
pub fn records(tag: &str, n: usize, ts0: i64, value_len: usize) -> Vec<Record> {
    (0..n)
        .map(|i| {
            let mut value = format!("value-{tag}-{i}-").into_bytes();
            while value.len() < value_len {
                value.push(b'a' + (value.len() % 26) as u8);
            }
            Record {
                offset: i as i64,
                timestamp: ts0 + i as i64,
                key: Some(Bytes::from(format!("key-{tag}-{i}"))),
                value: Some(Bytes::from(value)),
                headers: vec![gregor_records::Header {
                    key: "h".into(),
                    value: Some(Bytes::from(tag.to_string())),
                }],
            }
        })
        .collect()
}

/// Encodes `records` as one batch.
pub fn batch(records: &[Record], codec: Compression) -> Bytes {
    let mut b = BatchBuilder::new(0, codec);
    for r in records {
        b.push(r.clone());
    }
    b.build().expect("building a batch").freeze()
}

/// Asserts that `got` holds `want` at consecutive offsets from `base`
/// (keys, values, headers and timestamps).
pub fn assert_records(got: &[Record], want: &[Record], base: i64) {
    assert_eq!(got.len(), want.len(), "record count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert_eq!(g.offset, base + i as i64, "offset of record {i}");
        assert_eq!(g.key, w.key, "key of record {i}");
        assert_eq!(g.value, w.value, "value of record {i}");
        assert_eq!(g.headers, w.headers, "headers of record {i}");
        assert_eq!(g.timestamp, w.timestamp, "timestamp of record {i}");
    }
}

/// Paths of a partition's segment files with the given extension, sorted.
pub fn segment_files(dir: &Path, ext: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("reading {}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == ext))
        .collect();
    v.sort();
    v
}

/// Runs `cmd` with `stdin`, collecting its output; kills it and fails the
/// test if it has not exited within `deadline`.
pub fn run_bounded(mut cmd: Command, stdin: Option<&str>, deadline: Duration) -> Output {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("spawning gregor");
    if let Some(input) = stdin {
        let mut s = child.stdin.take().expect("stdin");
        // A tool that refuses its arguments exits without reading stdin;
        // the broken pipe that leaves is its answer, not a test failure.
        if let Err(e) = s.write_all(input.as_bytes()) {
            assert_eq!(
                e.kind(),
                std::io::ErrorKind::BrokenPipe,
                "writing stdin: {e}"
            );
        }
    }
    let drain = |r: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut r) = r {
                let _ = r.read_to_end(&mut buf);
            }
            buf
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    );
    let status = wait_bounded(&mut child, deadline, &format!("{cmd:?}"));
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

/// Waits for `child` until `deadline`; kills it and panics past that.
pub fn wait_bounded(child: &mut Child, deadline: Duration, what: &str) -> ExitStatus {
    let mut status = None;
    let exited = wait_until(deadline, || {
        status = child.try_wait().expect("try_wait");
        status.is_some()
    });
    if !exited {
        let _ = child.kill();
        let _ = child.wait();
        panic!("{what} still running after {deadline:?}");
    }
    status.expect("exit status")
}

/// A `gregor server --config FILE` (the real binary); killed when dropped.
pub struct ConfigServer {
    child: Child,
    pub port: u16,
}

impl Drop for ConfigServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl ConfigServer {
    /// Starts `gregor server --config <file>`: `Ok` with its port once it
    /// listens, `Err` with its exit status if it stops first (within
    /// `START_DEADLINE`, then `STOP_DEADLINE`).
    pub fn start(config: &Path, stderr: Stdio) -> Result<ConfigServer, ExitStatus> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_gregor"))
            .arg("server")
            .arg("--config")
            .arg(config)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("spawning gregor");
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let _ = tx.send(lines.next());
            for _ in lines {}
        });
        match rx.recv_timeout(START_DEADLINE) {
            Ok(Some(Ok(line))) => {
                let port = line
                    .strip_prefix("gregor: listening on PLAINTEXT://127.0.0.1:")
                    .and_then(|p| p.trim().parse().ok())
                    .unwrap_or_else(|| panic!("unexpected listening line {line:?}"));
                Ok(ConfigServer { child, port })
            }
            _ => {
                let deadline = std::time::Instant::now() + STOP_DEADLINE;
                loop {
                    if let Some(status) = child.try_wait().expect("waiting for gregor") {
                        return Err(status);
                    }
                    assert!(
                        std::time::Instant::now() < deadline,
                        "gregor neither listened nor exited"
                    );
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }
}
