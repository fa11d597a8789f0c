//! `/metrics` (Prometheus text format 0.0.4, or OpenMetrics 1.0 when the
//! `Accept` header asks for `application/openmetrics-text`) and `/readyz`.
//!
//! A scrape renders the broker's registry (`gregor_broker::metrics`: what
//! the request path counted) and then reads the broker's state: hosted
//! partitions (leaders, under-replicated, under-min-ISR, log sizes and
//! offsets), the metadata log, the controller, the groups this node
//! coordinates and their lag ([`crate::lag`]). Per-partition series are
//! left out with `gregor.metrics.partition.level=false`. The work runs on
//! the blocking pool: it may load a coordinator shard and reads log batches.

use std::collections::BTreeMap;
use std::path::PathBuf;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use gregor_broker::metrics::{Exposition, Kind};
use gregor_broker::Broker;

use crate::AppState;

const TEXT: &str = "text/plain; version=0.0.4; charset=utf-8";
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// `/metrics` and `/readyz`.
pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/readyz", get(readyz))
}

async fn metrics(State(state): State<AppState>, headers: HeaderMap) -> Response {
    let openmetrics = headers
        .get_all(header::ACCEPT)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.contains("application/openmetrics-text"));
    let broker = state.broker.clone();
    match tokio::task::spawn_blocking(move || render(&broker, openmetrics)).await {
        Ok(text) => {
            let kind = if openmetrics { OPENMETRICS } else { TEXT };
            ([(header::CONTENT_TYPE, kind)], text).into_response()
        }
        Err(e) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("scrape failed: {e}\n"),
        )
            .into_response(),
    }
}

/// The whole exposition.
pub fn render(broker: &Broker, openmetrics: bool) -> String {
    let mut out = Exposition::new(openmetrics);
    broker.metrics.render(&mut out);
    render_log_loading(broker, &mut out);
    render_partitions(broker, &mut out);
    render_cleaner(broker, &mut out);
    render_cluster(broker, &mut out);
    render_groups(broker, &mut out);
    out.finish()
}

fn gauge(out: &mut Exposition, name: &str, help: &str, value: f64) {
    out.family(name, Kind::Gauge, help);
    out.sample(name, &[], value);
}

/// How far the start-up load of the logs found on disk is.
fn render_log_loading(broker: &Broker, out: &mut Exposition) {
    let (loaded, found) = broker.logs.load_progress();
    gauge(
        out,
        "gregor_log_loading_loaded_logs",
        "Logs found on disk at start that are loaded so far.",
        loaded as f64,
    );
    gauge(
        out,
        "gregor_log_loading_total_logs",
        "Logs found on disk at start (loaded or still loading).",
        found as f64,
    );
    gauge(
        out,
        "gregor_log_loading_done",
        "1 once every log found at start is loaded and its partition hosted.",
        if broker.log_loading.is_done() {
            1.0
        } else {
            0.0
        },
    );
}

/// Replication state and log sizes of the hosted partitions.
fn render_partitions(broker: &Broker, out: &mut Exposition) {
    let per_partition = broker.config.metrics.partition_level;
    let mut partitions = broker.hosted_partitions();
    partitions.sort_by(|a, b| (&a.tp.topic, a.tp.partition).cmp(&(&b.tp.topic, b.tp.partition)));
    struct Row {
        topic: String,
        partition: String,
        size: u64,
        start: i64,
        end: i64,
        hw: i64,
        under_replicated: bool,
        isr: usize,
        replicas: usize,
    }
    let (mut leaders, mut under_replicated, mut under_min_isr, mut at_min_isr) = (0, 0, 0, 0);
    let mut by_dir: BTreeMap<PathBuf, u64> = BTreeMap::new();
    let mut by_topic: BTreeMap<String, u64> = BTreeMap::new();
    let mut rows = Vec::with_capacity(if per_partition { partitions.len() } else { 0 });
    for p in &partitions {
        let view = p.view();
        let log = p.log();
        let size = log.size_bytes();
        let leader = view.role == gregor_broker::partition::Role::Leader;
        let ur = leader && view.isr.len() < view.replicas.len();
        if leader {
            leaders += 1;
            under_replicated += usize::from(ur);
            under_min_isr += usize::from(view.isr.len() < view.min_isr);
            at_min_isr += usize::from(view.isr.len() == view.min_isr);
        }
        let dir = log.dir().parent().map(PathBuf::from).unwrap_or_default();
        *by_dir.entry(dir).or_default() += size;
        *by_topic.entry(p.tp.topic.to_string()).or_default() += size;
        if per_partition {
            rows.push(Row {
                topic: p.tp.topic.to_string(),
                partition: p.tp.partition.to_string(),
                size,
                start: log.log_start_offset(),
                end: log.log_end_offset(),
                hw: view.high_watermark,
                under_replicated: ur,
                isr: view.isr.len(),
                replicas: view.replicas.len(),
            });
        }
    }
    gauge(
        out,
        "kafka_server_replicamanager_partitioncount",
        "Partitions hosted by this node.",
        partitions.len() as f64,
    );
    gauge(
        out,
        "kafka_server_replicamanager_leadercount",
        "Partitions this node leads.",
        leaders as f64,
    );
    gauge(
        out,
        "kafka_server_replicamanager_underreplicatedpartitions",
        "Partitions this node leads whose ISR is smaller than their replica set.",
        under_replicated as f64,
    );
    gauge(
        out,
        "kafka_server_replicamanager_underminisrpartitioncount",
        "Partitions this node leads whose ISR is below min.insync.replicas.",
        under_min_isr as f64,
    );
    gauge(
        out,
        "kafka_server_replicamanager_atminisrpartitioncount",
        "Partitions this node leads whose ISR is at min.insync.replicas.",
        at_min_isr as f64,
    );

    out.family(
        "kafka_log_logmanager_size",
        Kind::Gauge,
        "Bytes of the partition logs in each log dir.",
    );
    for (dir, size) in &by_dir {
        out.sample(
            "kafka_log_logmanager_size",
            &[("logdirectory", &dir.display().to_string())],
            *size as f64,
        );
    }
    out.family(
        "gregor_log_topic_size",
        Kind::Gauge,
        "Bytes of the partition logs of each topic on this node.",
    );
    for (topic, size) in &by_topic {
        out.sample("gregor_log_topic_size", &[("topic", topic)], *size as f64);
    }
    if !per_partition {
        return;
    }
    type Field = fn(&Row) -> f64;
    let series: [(&str, &str, Field); 7] = [
        ("kafka_log_log_size", "Bytes of the partition's log.", |r| {
            r.size as f64
        }),
        (
            "kafka_log_log_logstartoffset",
            "The partition's log start offset.",
            |r| r.start as f64,
        ),
        (
            "kafka_log_log_logendoffset",
            "The partition's log end offset.",
            |r| r.end as f64,
        ),
        (
            "gregor_partition_highwatermark",
            "The partition's high watermark on this replica.",
            |r| r.hw as f64,
        ),
        (
            "kafka_cluster_partition_underreplicated",
            "1 if this node leads the partition and its ISR is smaller than its replica set.",
            |r| f64::from(u8::from(r.under_replicated)),
        ),
        (
            "kafka_cluster_partition_insyncreplicascount",
            "The partition's ISR size.",
            |r| r.isr as f64,
        ),
        (
            "kafka_cluster_partition_replicascount",
            "The partition's replica count.",
            |r| r.replicas as f64,
        ),
    ];
    for (name, help, field) in series {
        out.family(name, Kind::Gauge, help);
        for r in &rows {
            out.sample(
                name,
                &[("topic", &r.topic), ("partition", &r.partition)],
                field(r),
            );
        }
    }
}

/// The log cleaner's gauges (Kafka's `kafka.log:type=LogCleaner` and
/// `type=LogCleanerManager`); zeros while `log.cleaner.enable=false`.
fn render_cleaner(broker: &Broker, out: &mut Exposition) {
    let cleaner = broker.logs.cleaner();
    let m = cleaner.as_ref().map(|c| c.metrics()).unwrap_or_default();
    let series = [
        (
            "kafka_log_logcleaner_max_clean_time_secs",
            "The longest of the cleaner threads' last cleans (s).",
            m.max_clean_time_secs,
        ),
        (
            "kafka_log_logcleaner_cleaner_recopy_percent",
            "Bytes written / bytes read of the threads' last cleans, averaged (%).",
            m.cleaner_recopy_percent,
        ),
        (
            "kafka_log_logcleaner_max_buffer_utilization_percent",
            "The fullest offset map of the threads' last cleans (%).",
            m.max_buffer_utilization_percent,
        ),
        (
            "kafka_log_logcleaner_deadthreadcount",
            "Cleaner threads that died.",
            m.dead_thread_count as f64,
        ),
        (
            "kafka_log_logcleanermanager_max_dirty_percent",
            "Cleanable ratio of the dirtiest log at the last selection (%).",
            m.max_dirty_percent,
        ),
        (
            "kafka_log_logcleanermanager_time_since_last_run_ms",
            "Time since the cleaner last looked for a log to clean (ms).",
            m.time_since_last_run_ms as f64,
        ),
    ];
    for (name, help, value) in series {
        gauge(out, name, help, value);
    }
    let name = "kafka_log_logcleanermanager_uncleanable_partitions_count";
    out.family(
        name,
        Kind::Gauge,
        "Partitions of a log dir skipped after a cleaning error.",
    );
    let mut by_dir: BTreeMap<PathBuf, usize> =
        broker.logs.dirs().iter().map(|d| (d.clone(), 0)).collect();
    for tp in cleaner
        .map(|c| c.uncleanable_partitions())
        .unwrap_or_default()
    {
        if let Some(dir) = broker.logs.dir_of(&tp) {
            *by_dir.entry(dir.to_path_buf()).or_default() += 1;
        }
    }
    for (dir, n) in &by_dir {
        out.sample(
            name,
            &[("logdirectory", &dir.display().to_string())],
            *n as f64,
        );
    }
}

/// The controller's view (reported by the active controller only, as
/// Kafka's), and this node's metadata log position.
fn render_cluster(broker: &Broker, out: &mut Exposition) {
    let image = broker.metadata.image();
    let active = broker.controller_id() == broker.node_id();
    let offline = if active {
        image
            .topics()
            .flat_map(|t| t.partitions.values())
            .filter(|p| p.leader < 0)
            .count()
    } else {
        0
    };
    gauge(
        out,
        "kafka_controller_kafkacontroller_activecontrollercount",
        "1 on the active controller.",
        f64::from(u8::from(active)),
    );
    gauge(
        out,
        "kafka_controller_kafkacontroller_offlinepartitionscount",
        "Partitions without a leader (on the active controller).",
        offline as f64,
    );
    gauge(
        out,
        "kafka_controller_kafkacontroller_globaltopiccount",
        "Topics in the cluster (on the active controller).",
        if active {
            image.topics().count() as f64
        } else {
            0.0
        },
    );
    let (applied, end) = metadata_position(broker);
    gauge(
        out,
        "kafka_server_broker_metadata_metrics_last_applied_record_offset",
        "Offset of the last metadata record applied here.",
        applied as f64,
    );
    gauge(
        out,
        "gregor_metadata_log_end_offset",
        "The metadata log's committed end (Raft high watermark) as this node knows it.",
        end as f64,
    );
    gauge(
        out,
        "gregor_metadata_lag",
        "Committed metadata records not applied here yet.",
        (end - 1 - applied).max(0) as f64,
    );
}

/// (last applied offset, committed end offset) of the metadata log here.
fn metadata_position(broker: &Broker) -> (i64, i64) {
    match (broker.metadata.local(), broker.metadata.quorum()) {
        (Some(store), _) => {
            let end = store.log_end_offset();
            (end - 1, end)
        }
        (None, Some(link)) => {
            let applied = link.applied_image().index.map_or(-1, |i| i as i64);
            (applied, link.describe().high_watermark)
        }
        (None, None) => (-1, 0),
    }
}

/// Group counts by protocol and state, and consumer lag.
fn render_groups(broker: &Broker, out: &mut Exposition) {
    let per_partition = broker.config.metrics.partition_level;
    let groups = crate::lag::collect(broker);
    let mut counts: BTreeMap<(&str, &str), usize> = BTreeMap::new();
    for g in &groups {
        *counts.entry((g.group.protocol, g.group.state)).or_default() += 1;
    }
    let name = "kafka_server_group_coordinator_metrics_group_count";
    out.family(
        name,
        Kind::Gauge,
        "Groups this node coordinates, per protocol and state.",
    );
    for ((protocol, state), n) in &counts {
        out.sample(name, &[("protocol", protocol), ("state", state)], *n as f64);
    }
    out.family(
        "kafka_consumergroup_lag_sum",
        Kind::Gauge,
        "Lag of a group on a topic (records), summed over its partitions.",
    );
    for g in &groups {
        let mut by_topic: BTreeMap<&str, i64> = BTreeMap::new();
        for p in &g.partitions {
            if let Some(lag) = p.lag {
                *by_topic.entry(&p.topic).or_default() += lag;
            }
        }
        for (topic, lag) in by_topic {
            out.sample(
                "kafka_consumergroup_lag_sum",
                &[("consumergroup", &g.group.group_id), ("topic", topic)],
                lag as f64,
            );
        }
    }
    out.family(
        "kafka_consumergroup_lag_seconds_max",
        Kind::Gauge,
        "Age (s) of the oldest record not consumed by a group on a topic.",
    );
    for g in &groups {
        let mut by_topic: BTreeMap<&str, f64> = BTreeMap::new();
        for p in &g.partitions {
            if let Some(s) = p.lag_seconds {
                let e = by_topic.entry(&p.topic).or_default();
                *e = e.max(s);
            }
        }
        for (topic, s) in by_topic {
            out.sample(
                "kafka_consumergroup_lag_seconds_max",
                &[("consumergroup", &g.group.group_id), ("topic", topic)],
                s,
            );
        }
    }
    if !per_partition {
        return;
    }
    out.family(
        "kafka_consumergroup_current_offset",
        Kind::Gauge,
        "A group's committed offset.",
    );
    for g in &groups {
        for p in &g.partitions {
            let part = p.partition.to_string();
            out.sample(
                "kafka_consumergroup_current_offset",
                &[
                    ("consumergroup", &g.group.group_id),
                    ("topic", &p.topic),
                    ("partition", &part),
                ],
                p.committed as f64,
            );
        }
    }
    out.family(
        "kafka_consumergroup_lag",
        Kind::Gauge,
        "A group's lag (records): high watermark minus committed offset.",
    );
    for g in &groups {
        for p in &g.partitions {
            if let Some(lag) = p.lag {
                let part = p.partition.to_string();
                out.sample(
                    "kafka_consumergroup_lag",
                    &[
                        ("consumergroup", &g.group.group_id),
                        ("topic", &p.topic),
                        ("partition", &part),
                    ],
                    lag as f64,
                );
            }
        }
    }
    out.family(
        "kafka_consumergroup_lag_seconds",
        Kind::Gauge,
        "Age (s) of the first record a group has not consumed; 0 when caught up.",
    );
    for g in &groups {
        for p in &g.partitions {
            if let Some(s) = p.lag_seconds {
                let part = p.partition.to_string();
                out.sample(
                    "kafka_consumergroup_lag_seconds",
                    &[
                        ("consumergroup", &g.group.group_id),
                        ("topic", &p.topic),
                        ("partition", &part),
                    ],
                    s,
                );
            }
        }
    }
}

async fn readyz(State(state): State<AppState>) -> Response {
    match not_ready(&state.broker) {
        None => (StatusCode::OK, "ready\n").into_response(),
        Some(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}\n"),
        )
            .into_response(),
    }
}

/// Why this node should not get traffic yet, if it should not: its logs
/// are still loading (a restart; see `gregor_broker::log_loading`), it is not
/// registered and unfenced, has not applied the committed metadata, or
/// has not loaded a partition the metadata says it leads.
pub fn not_ready(broker: &Broker) -> Option<String> {
    if !broker.log_loading.is_done() {
        let (loaded, found) = broker.logs.load_progress();
        return Some(format!("loading logs: {loaded} of {found}"));
    }
    if let Some(link) = broker.metadata.quorum() {
        if link.controller_id().is_none() {
            return Some("no active controller known".into());
        }
        let image = link.image();
        if !image.is_live(broker.node_id()) {
            return Some(format!(
                "node {} is not registered and unfenced",
                broker.node_id()
            ));
        }
        let (applied, end) = metadata_position(broker);
        if applied + 1 < end {
            return Some(format!(
                "metadata applied to offset {applied}, committed up to {}",
                end - 1
            ));
        }
    }
    let image = broker.metadata.image();
    for topic in image.topics() {
        for (&index, p) in &topic.partitions {
            if p.leader != broker.node_id() {
                continue;
            }
            let loaded = broker
                .partition(&topic.name, index)
                .is_some_and(|h| h.is_leader());
            if !loaded {
                return Some(format!("leader of {}-{index} not loaded yet", topic.name));
            }
        }
    }
    None
}
