//! `gregor metadata-quorum`: kafka-metadata-quorum.sh (`describe --status`,
//! `describe --replication [--human-readable]`), printing what Kafka's
//! MetadataQuorumCommand prints.

use anyhow::{anyhow, bail};
use clap::{Args, Subcommand};
use kafka_protocol::messages::describe_quorum_request::{PartitionData, TopicData};
use kafka_protocol::messages::describe_quorum_response::{self, ReplicaState};
use kafka_protocol::messages::{DescribeQuorumRequest, DescribeQuorumResponse, TopicName};
use kafka_protocol::protocol::StrBytes;

use super::{block_on, client_err, now_ms, Conn};

pub const EXAMPLES: &str = "Examples:
  gregor metadata-quorum --bootstrap-server 127.0.0.1:9092 describe --status
  gregor metadata-quorum --bootstrap-server 127.0.0.1:9092 describe --replication --human-readable";

/// Describe the KRaft metadata quorum.
#[derive(Args, Debug)]
pub struct MetadataQuorumArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub command: QuorumCommand,
}

#[derive(Subcommand, Debug)]
pub enum QuorumCommand {
    /// Describe the metadata quorum info.
    Describe {
        /// A short summary of the quorum status.
        #[arg(long)]
        status: bool,
        /// Detailed information about the status of replication.
        #[arg(long)]
        replication: bool,
        /// Human-readable output (with --replication).
        #[arg(long = "human-readable")]
        human_readable: bool,
    },
}

/// The one replica state a quorum describes, as Kafka's `QuorumInfo` holds it.
struct Quorum {
    leader_id: i32,
    leader_epoch: i32,
    high_watermark: i64,
    voters: Vec<ReplicaState>,
    observers: Vec<ReplicaState>,
    nodes: Vec<describe_quorum_response::Node>,
}

pub fn run(args: MetadataQuorumArgs) -> anyhow::Result<()> {
    let QuorumCommand::Describe {
        status,
        replication,
        human_readable,
    } = args.command;
    // Kafka's checks, in its order.
    if !replication && !status {
        bail!("One of --status or --replication must be specified with describe sub-command");
    }
    if status && human_readable {
        bail!("The option --human-readable is only supported along with --replication");
    }
    let config = args.conn.client_config(&[])?;
    let admin = args.conn.admin()?;
    block_on(async move {
        let quorum = describe(&config).await?;
        if replication {
            print_replication(&quorum, human_readable)?;
        } else {
            let cluster_id = admin
                .describe_cluster()
                .await
                .map_err(client_err)?
                .cluster_id;
            print_status(&cluster_id, &quorum)?;
        }
        admin.close().await;
        Ok(())
    })
}

async fn describe(config: &gregor_client::ClientConfig) -> anyhow::Result<Quorum> {
    let req = DescribeQuorumRequest::default().with_topics(vec![TopicData::default()
        .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
        .with_partitions(vec![PartitionData::default().with_partition_index(0)])]);
    let resp: DescribeQuorumResponse = super::wire::request(config, 2, &req).await?;
    gregor_client::Error::check(resp.error_code, resp.error_message.as_deref())
        .map_err(client_err)?;
    let p = resp
        .topics
        .into_iter()
        .flat_map(|t| t.partitions)
        .next()
        .ok_or_else(|| anyhow!("DescribeQuorum: the response has no partition"))?;
    gregor_client::Error::check(p.error_code, p.error_message.as_deref()).map_err(client_err)?;
    Ok(Quorum {
        leader_id: p.leader_id.0,
        leader_epoch: p.leader_epoch,
        high_watermark: p.high_watermark,
        voters: p.current_voters,
        observers: p.observers,
        nodes: resp.nodes,
    })
}

fn leader(q: &Quorum) -> anyhow::Result<&ReplicaState> {
    q.voters
        .iter()
        .find(|v| v.replica_id.0 == q.leader_id)
        .ok_or_else(|| {
            anyhow!(
                "the quorum's leader {} is not among its voters",
                q.leader_id
            )
        })
}

fn print_status(cluster_id: &str, q: &Quorum) -> anyhow::Result<()> {
    let leader = leader(q)?;
    // The voter with the smallest log end offset (the first such, as Java's
    // Stream.min keeps).
    let lagging = q
        .voters
        .iter()
        .reduce(|a, b| {
            if b.log_end_offset < a.log_end_offset {
                b
            } else {
                a
            }
        })
        .unwrap_or(leader);
    let max_lag = leader.log_end_offset - lagging.log_end_offset;
    let max_lag_ms = if std::ptr::eq(leader, lagging) {
        0
    } else if leader.last_caught_up_timestamp >= 0 && lagging.last_caught_up_timestamp >= 0 {
        leader.last_caught_up_timestamp - lagging.last_caught_up_timestamp
    } else {
        -1
    };
    println!("ClusterId:              {cluster_id}");
    println!("LeaderId:               {}", q.leader_id);
    println!("LeaderEpoch:            {}", q.leader_epoch);
    println!("HighWatermark:          {}", q.high_watermark);
    println!("MaxFollowerLag:         {max_lag}");
    println!("MaxFollowerLagTimeMs:   {max_lag_ms}");
    println!("CurrentVoters:          {}", replica_list(q, &q.voters));
    println!("CurrentObservers:       {}", replica_list(q, &q.observers));
    Ok(())
}

/// `[{"id": 1, "directoryId": "...", "endpoints": ["CONTROLLER://host:9093"]}, ...]`
/// as Kafka's tool prints it: no directoryId when it is zero, no endpoints
/// when the node has none.
fn replica_list(q: &Quorum, replicas: &[ReplicaState]) -> String {
    let items: Vec<String> = replicas
        .iter()
        .map(|r| {
            let mut s = format!("{{\"id\": {}", r.replica_id.0);
            if !r.replica_directory_id.is_nil() {
                s.push_str(&format!(
                    ", \"directoryId\": \"{}\"",
                    kafka_uuid(r.replica_directory_id.as_bytes())
                ));
            }
            let endpoints: Vec<String> = q
                .nodes
                .iter()
                .find(|n| n.node_id == r.replica_id)
                .map(|n| {
                    n.listeners
                        .iter()
                        .map(|l| {
                            let host = if l.host.contains(':') {
                                format!("[{}]", l.host.as_str())
                            } else {
                                l.host.to_string()
                            };
                            format!("\"{}://{host}:{}\"", l.name.as_str(), l.port)
                        })
                        .collect()
                })
                .unwrap_or_default();
            if !endpoints.is_empty() {
                s.push_str(&format!(", \"endpoints\": [{}]", endpoints.join(", ")));
            }
            s.push('}');
            s
        })
        .collect();
    format!("[{}]", items.join(", "))
}

fn kafka_uuid(id: &[u8; 16]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(id)
}

fn print_replication(q: &Quorum, human: bool) -> anyhow::Result<()> {
    let leader = leader(q)?;
    let now = now_ms();
    let time = |ts: i64, what: &str| -> anyhow::Result<String> {
        if ts < 0 {
            return Ok("-1".into());
        }
        if !human {
            return Ok(ts.to_string());
        }
        if ts <= 0 || ts > now {
            bail!(
                "Error while computing relative time, possible drift in system clock. Current timestamp is {now}, {what} timestamp is {ts}"
            );
        }
        Ok(format!("{} ms ago", now - ts))
    };
    let mut rows: Vec<Vec<String>> = Vec::new();
    let groups = [
        (vec![leader], "Leader"),
        (
            q.voters
                .iter()
                .filter(|v| v.replica_id.0 != q.leader_id)
                .collect(),
            "Follower",
        ),
        (q.observers.iter().collect(), "Observer"),
    ];
    for (replicas, status) in groups {
        for r in replicas {
            rows.push(vec![
                r.replica_id.0.to_string(),
                kafka_uuid(r.replica_directory_id.as_bytes()),
                r.log_end_offset.to_string(),
                (leader.log_end_offset - r.log_end_offset).to_string(),
                time(r.last_fetch_timestamp, "last fetch")?,
                time(r.last_caught_up_timestamp, "last caught up")?,
                status.to_string(),
            ]);
        }
    }
    let headers = [
        "NodeId",
        "DirectoryId",
        "LogEndOffset",
        "Lag",
        "LastFetchTimestamp",
        "LastCaughtUpTimestamp",
        "Status",
    ];
    print!("{}", pretty_table(&headers, &rows));
    Ok(())
}

/// Kafka's `ToolsUtils.prettyPrintTable`: every cell padded to its column's
/// width and followed by a tab (the last one too).
pub fn pretty_table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.len()).collect();
    for row in rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.len());
        }
    }
    let line = |cells: &mut dyn Iterator<Item = &str>| {
        let mut s = String::new();
        for (cell, w) in cells.zip(&widths) {
            s.push_str(&format!("{cell:<w$}\t"));
        }
        s.push('\n');
        s
    };
    let mut out = line(&mut headers.iter().copied());
    for row in rows {
        out.push_str(&line(&mut row.iter().map(String::as_str)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_pads_and_tabs_like_kafka() {
        let t = pretty_table(&["A", "Bee"], &[vec!["long".into(), "x".into()]]);
        assert_eq!(t, "A   \tBee\t\nlong\tx  \t\n");
    }
}
