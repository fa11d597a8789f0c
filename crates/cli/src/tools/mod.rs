//! The Kafka command-line tools (`kafka-topics.sh`, `kafka-configs.sh`, ...)
//! as `gregor` subcommands, built on the native client (`gregor-client`).
//!
//! Every tool takes `--bootstrap-server` and `--command-config FILE` (client
//! properties, Kafka's format), prints what Kafka's tool prints, and on
//! failure prints one `Error: ...` line to stderr and exits non-zero. The
//! servers to contact are, as in Kafka: `--bootstrap-server` when given, else
//! `bootstrap.servers` from the tool's properties (`--command-config`,
//! `--producer-props`, `--producer.config`, `--producer-property`,
//! `--consumer.config`, `--consumer-property`), else 127.0.0.1:9092.

use std::future::Future;
use std::path::PathBuf;

use anyhow::{anyhow, Context};
use clap::Args;
use gregor_client::{Admin, ClientConfig};

pub mod acls;
pub mod configs;
pub mod configs_quotas;
pub mod configs_users;
pub mod console_consumer;
pub mod console_producer;
pub mod consumer_groups;
pub mod consumer_perf;
pub mod delete_records;
pub mod end_to_end_latency;
pub mod features;
pub mod get_offsets;
pub mod leader_election;
pub mod log_dirs;
pub mod metadata_quorum;
pub mod producer_perf;
pub mod reassign_partitions;
pub mod topics;
pub mod transactions;
mod wire;

/// The subcommand names of the tools, for one-line argument errors.
pub const TOOL_NAMES: &[&str] = &[
    "topics",
    "configs",
    "delete-records",
    "log-dirs",
    "get-offsets",
    "consumer-groups",
    "console-producer",
    "producer-perf-test",
    "console-consumer",
    "consumer-perf-test",
    "end-to-end-latency",
    "metadata-quorum",
    "leader-election",
    "reassign-partitions",
    "transactions",
];

/// Where the tools connect when neither `--bootstrap-server` nor a
/// `bootstrap.servers` property says otherwise.
pub const DEFAULT_BOOTSTRAP: &str = "127.0.0.1:9092";

/// Connection options shared by every tool.
#[derive(Args, Debug, Clone)]
pub struct Conn {
    /// The server(s) to connect to: HOST:PORT[,HOST:PORT...]. Overrides
    /// bootstrap.servers from the properties; without either, 127.0.0.1:9092.
    // An Option, not clap's default_value: the default must not override a
    // bootstrap.servers property, and a given flag must.
    #[arg(long = "bootstrap-server", value_name = "HOST:PORT")]
    pub bootstrap_server: Option<String>,
    /// A file of client properties (Kafka's format: key=value lines), e.g.
    /// client.id or request.timeout.ms.
    #[arg(long = "command-config", value_name = "FILE")]
    pub command_config: Option<PathBuf>,
}

impl Conn {
    /// The client config: the --command-config file, then `extra` (in
    /// order), then --bootstrap-server if given; 127.0.0.1:9092 only when
    /// none of them named the servers (Kafka's precedence).
    pub fn client_config(&self, extra: &[(String, String)]) -> anyhow::Result<ClientConfig> {
        let mut config = ClientConfig::new();
        if let Some(path) = &self.command_config {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            for (k, v) in gregor_client::config::parse_properties(&text) {
                config
                    .set(&k, &v)
                    .map_err(|e| anyhow!("{}: {e}", path.display()))?;
            }
        }
        for (k, v) in extra {
            config.set(k, v).map_err(|e| anyhow!("{e}"))?;
        }
        if let Some(servers) = &self.bootstrap_server {
            config
                .set("bootstrap.servers", servers)
                .map_err(|e| anyhow!("--bootstrap-server: {e}"))?;
        } else if config.bootstrap_servers.is_empty() {
            config
                .set("bootstrap.servers", DEFAULT_BOOTSTRAP)
                .map_err(|e| anyhow!("{e}"))?;
        }
        if config.client_id.is_empty() {
            config.client_id = "gregor-tools".to_string();
        }
        Ok(config)
    }

    /// An admin client.
    pub fn admin(&self) -> anyhow::Result<Admin> {
        Admin::new(self.client_config(&[])?).map_err(client_err)
    }
}

/// An admin client beside a tool's producer or consumer, built from that
/// client's config so it reaches the same servers however they were named.
pub fn admin_for(config: &ClientConfig) -> anyhow::Result<Admin> {
    Admin::new(config.clone()).map_err(client_err)
}

/// Runs a tool's async body on a small runtime.
pub fn block_on<F: Future<Output = anyhow::Result<()>>>(f: F) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .thread_name("gregor-tool")
        .build()
        .context("starting the async runtime")?;
    rt.block_on(f)
}

/// The ids of the cluster's brokers (DescribeCluster).
pub async fn broker_ids(admin: &Admin) -> anyhow::Result<std::collections::BTreeSet<i32>> {
    Ok(admin
        .describe_cluster()
        .await
        .map_err(client_err)?
        .brokers
        .iter()
        .map(|b| b.node_id)
        .collect())
}

/// A client error as the user should read it: the broker's message when it
/// sent one, otherwise the error's name.
pub fn client_err(e: gregor_client::Error) -> anyhow::Error {
    match &e {
        // Messages such as "Topic 'x' already exists." read well alone; a
        // bare detail (a topic name) keeps the error name in front.
        gregor_client::Error::Kafka {
            message: Some(m), ..
        } if m.contains(' ') => anyhow!("{m}"),
        _ => anyhow!("{e}"),
    }
}

/// One line for an error: contexts joined with ": ", newlines flattened.
pub fn one_line(e: &anyhow::Error) -> String {
    let s = format!("{e:#}");
    s.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// `k=v` pairs (as in `--config k=v` or `--producer-property k=v`).
pub fn parse_kv(items: &[String], flag: &str) -> anyhow::Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|s| {
            s.split_once('=')
                .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
                .filter(|(k, _)| !k.is_empty())
                .ok_or_else(|| anyhow!("{flag} expects key=value, got '{s}'"))
        })
        .collect()
}

/// A Kafka topic id as Kafka prints it (URL-safe base64, no padding).
pub fn topic_id_string(id: &gregor_client::cluster::Uuid) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id.as_bytes())
}

/// Milliseconds since the epoch, now.
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Parses an ISO-8601 date-time as Kafka's tools take it
/// (`YYYY-MM-DDTHH:mm:SS[.sss][Z|±HH:mm|±HHmm]`; no zone means UTC) into
/// epoch milliseconds.
pub fn parse_datetime(s: &str) -> anyhow::Result<i64> {
    let bad = || {
        anyhow!("Error parsing timestamp '{s}': expected format yyyy-MM-ddTHH:mm:SS.sss[Z|±HH:mm]")
    };
    let (date, rest) = s.split_once('T').ok_or_else(bad)?;
    let mut d = date.split('-');
    let year: i64 = d.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let month: i64 = d.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let day: i64 = d.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    if d.next().is_some() || !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return Err(bad());
    }
    // Split the zone off the time.
    let (time, offset_min) = if let Some(t) = rest.strip_suffix('Z') {
        (t, 0i64)
    } else if let Some(pos) = rest.rfind(['+', '-']) {
        let (t, z) = rest.split_at(pos);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let digits: String = z[1..].chars().filter(|c| *c != ':').collect();
        if digits.len() != 4 {
            return Err(bad());
        }
        let h: i64 = digits[..2].parse().map_err(|_| bad())?;
        let m: i64 = digits[2..].parse().map_err(|_| bad())?;
        (t, sign * (h * 60 + m))
    } else {
        (rest, 0)
    };
    let (hms, frac) = match time.split_once('.') {
        Some((a, b)) => (a, b),
        None => (time, ""),
    };
    let mut t = hms.split(':');
    let hour: i64 = t.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let minute: i64 = t.next().and_then(|v| v.parse().ok()).ok_or_else(bad)?;
    let second: i64 = match t.next() {
        Some(v) => v.parse().map_err(|_| bad())?,
        None => 0,
    };
    if t.next().is_some() || hour > 23 || minute > 59 || second > 60 {
        return Err(bad());
    }
    let millis: i64 = if frac.is_empty() {
        0
    } else {
        if !frac.chars().all(|c| c.is_ascii_digit()) {
            return Err(bad());
        }
        let mut f: String = frac.chars().take(3).collect();
        while f.len() < 3 {
            f.push('0');
        }
        f.parse().map_err(|_| bad())?
    };
    let days = days_from_civil(year, month, day);
    let secs = days * 86_400 + hour * 3600 + minute * 60 + second - offset_min * 60;
    Ok(secs * 1000 + millis)
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = if y >= 0 { y } else { y - 399 } / 400;
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datetimes() {
        assert_eq!(parse_datetime("1970-01-01T00:00:00").unwrap(), 0);
        assert_eq!(parse_datetime("1970-01-01T00:00:01.5Z").unwrap(), 1500);
        assert_eq!(
            parse_datetime("2024-03-01T12:30:00.000+01:00").unwrap(),
            1_709_292_600_000
        );
        assert_eq!(
            parse_datetime("2024-03-01T11:30:00.000").unwrap(),
            1_709_292_600_000
        );
        assert!(parse_datetime("yesterday").is_err());
    }

    #[test]
    fn bootstrap_precedence() {
        let props = [("bootstrap.servers".to_string(), "p:1".to_string())];
        let conn = |flag: Option<&str>| Conn {
            bootstrap_server: flag.map(str::to_string),
            command_config: None,
        };
        let servers = |conn: Conn, extra: &[(String, String)]| {
            conn.client_config(extra).unwrap().bootstrap_servers
        };
        assert_eq!(servers(conn(Some("f:1")), &props), ["f:1"]);
        assert_eq!(servers(conn(None), &props), ["p:1"]);
        assert_eq!(servers(conn(None), &[]), [DEFAULT_BOOTSTRAP]);
    }

    #[test]
    fn kv() {
        let v = parse_kv(&["a=b".into(), "c = d=e".into()], "--x").unwrap();
        assert_eq!(v[1], ("c".into(), "d=e".into()));
        assert!(parse_kv(&["nope".into()], "--x").is_err());
    }
}
