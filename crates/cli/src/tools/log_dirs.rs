//! `gregor log-dirs`: kafka-log-dirs.sh (`--describe`, prints Kafka's JSON).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::bail;
use clap::Args;
use serde_json::{json, Value};

use super::{block_on, client_err, Conn};

pub const EXAMPLES: &str = "Examples:
  gregor log-dirs --bootstrap-server 127.0.0.1:9092 --describe
  gregor log-dirs --describe --topic-list orders,payments --broker-list 1";

/// Describe the log directories of brokers and the replicas in them.
#[derive(Args, Debug)]
pub struct LogDirsArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Describe the log directories on the brokers (required).
    #[arg(long, required = true)]
    pub describe: bool,
    /// Only these topics: "topic1,topic2" (all topics by default).
    #[arg(long = "topic-list", value_name = "TOPICS", default_value = "")]
    pub topic_list: String,
    /// Only these brokers: "0,1,2" (all brokers by default).
    #[arg(long = "broker-list", value_name = "IDS", default_value = "")]
    pub broker_list: String,
}

fn split(s: &str) -> impl Iterator<Item = &str> {
    s.split(',').map(str::trim).filter(|x| !x.is_empty())
}

pub fn run(args: LogDirsArgs) -> anyhow::Result<()> {
    let topics: BTreeSet<String> = split(&args.topic_list).map(str::to_string).collect();
    let mut asked = BTreeSet::new();
    for b in split(&args.broker_list) {
        match b.parse::<i32>() {
            Ok(id) => {
                asked.insert(id);
            }
            Err(_) => bail!("--broker-list: '{b}' is not a broker id"),
        }
    }
    let admin = args.conn.admin()?;
    block_on(async move {
        let cluster = super::broker_ids(&admin).await?;
        let missing: Vec<String> = asked.difference(&cluster).map(i32::to_string).collect();
        if !missing.is_empty() {
            let all: Vec<String> = cluster.iter().map(i32::to_string).collect();
            bail!(
                "The given brokers do not exist from --broker-list: {}. Current existent brokers: {}",
                missing.join(","),
                all.join(",")
            );
        }
        let brokers: Vec<i32> = if asked.is_empty() {
            cluster.into_iter().collect()
        } else {
            asked.into_iter().collect()
        };
        println!("Querying brokers for log directories information");
        let dirs = admin
            .describe_log_dirs(&brokers)
            .await
            .map_err(client_err)?;
        admin.close().await;
        let ids: Vec<String> = brokers.iter().map(i32::to_string).collect();
        println!(
            "Received log directory information from brokers {}",
            ids.join(",")
        );
        let mut by_broker: BTreeMap<i32, Vec<Value>> =
            brokers.iter().map(|b| (*b, Vec::new())).collect();
        for d in dirs {
            let partitions: Vec<Value> = d
                .replicas
                .iter()
                .filter(|r| topics.is_empty() || topics.contains(&r.partition.topic))
                .map(|r| {
                    json!({
                        "partition": r.partition.to_string(),
                        "size": r.size,
                        "offsetLag": r.offset_lag,
                        "isFuture": r.is_future,
                    })
                })
                .collect();
            let error = gregor_client::Error::from_code(d.error_code, None).map(|e| match e {
                gregor_client::Error::Kafka { name, .. } => name,
                other => other.to_string(),
            });
            by_broker.entry(d.broker).or_default().push(json!({
                "logDir": d.path,
                "error": error,
                "partitions": partitions,
            }));
        }
        let out = json!({
            "version": 1,
            "brokers": by_broker
                .into_iter()
                .map(|(b, dirs)| json!({"broker": b, "logDirs": dirs}))
                .collect::<Vec<_>>(),
        });
        println!("{out}");
        Ok(())
    })
}
