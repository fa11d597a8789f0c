//! `gregor leader-election`: kafka-leader-election.sh (preferred or unclean
//! election for all partitions, one partition, or those of a JSON file),
//! printing what Kafka's LeaderElectionCommand prints.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use clap::{Args, ValueEnum};
use kafka_protocol::error::ResponseError;
use kafka_protocol::messages::elect_leaders_request::TopicPartitions;
use kafka_protocol::messages::{ElectLeadersRequest, TopicName};
use kafka_protocol::protocol::StrBytes;
use serde_json::Value;

use super::{block_on, client_err, Conn};

pub const EXAMPLES: &str = "Examples:
  gregor leader-election --bootstrap-server 127.0.0.1:9092 --election-type preferred --all-topic-partitions
  gregor leader-election --election-type unclean --topic orders --partition 0
  gregor leader-election --election-type preferred --path-to-json-file election.json
    (election.json: {\"partitions\": [{\"topic\": \"orders\", \"partition\": 0}]})";

#[derive(ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
#[value(rename_all = "UPPER")]
pub enum ElectionType {
    #[value(alias = "preferred")]
    Preferred,
    #[value(alias = "unclean")]
    Unclean,
}

impl ElectionType {
    fn code(self) -> i8 {
        match self {
            ElectionType::Preferred => 0,
            ElectionType::Unclean => 1,
        }
    }
    fn name(self) -> &'static str {
        match self {
            ElectionType::Preferred => "PREFERRED",
            ElectionType::Unclean => "UNCLEAN",
        }
    }
}

/// Elect a new leader for a set of topic partitions.
#[derive(Args, Debug)]
pub struct LeaderElectionArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// Type of election to attempt: PREFERRED or UNCLEAN (required).
    #[arg(long = "election-type", value_enum, ignore_case = true)]
    pub election_type: Option<ElectionType>,
    /// Every partition of every topic.
    #[arg(long = "all-topic-partitions")]
    pub all_topic_partitions: bool,
    /// The topic of the partition to elect a leader for (with --partition).
    #[arg(long)]
    pub topic: Option<String>,
    /// The partition to elect a leader for (with --topic).
    #[arg(long)]
    pub partition: Option<i32>,
    /// A JSON file of partitions: {"partitions": [{"topic": "t", "partition": 0}]}.
    #[arg(long = "path-to-json-file", value_name = "FILE")]
    pub path_to_json_file: Option<PathBuf>,
}

/// A partition as Kafka's `TopicPartition.toString` prints it.
type Tp = (String, i32);

fn tp_string((t, p): &Tp) -> String {
    format!("{t}-{p}")
}

pub fn run(args: LeaderElectionArgs) -> anyhow::Result<()> {
    // Kafka's validate(), in its order and words.
    let Some(election) = args.election_type else {
        bail!("Missing required option(s): election-type");
    };
    let chosen = [
        args.topic.is_some(),
        args.all_topic_partitions,
        args.path_to_json_file.is_some(),
    ]
    .iter()
    .filter(|x| **x)
    .count();
    if chosen != 1 {
        bail!("One and only one of the following options is required: topic, all-topic-partitions, path-to-json-file");
    }
    if args.topic.is_some() && args.partition.is_none() {
        bail!("Missing required option(s): partition");
    }
    if args.topic.is_none() && args.partition.is_some() {
        bail!("Option partition is only allowed if topic is used");
    }
    let partitions: Option<BTreeSet<Tp>> = match (&args.path_to_json_file, &args.topic) {
        (Some(path), _) => Some(parse_election_file(path)?),
        (None, Some(t)) => Some([(t.clone(), args.partition.unwrap_or(0))].into()),
        _ => None,
    };
    let config = args.conn.client_config(&[])?;
    block_on(async move {
        let req = ElectLeadersRequest::default()
            .with_election_type(election.code())
            .with_timeout_ms(i32::try_from(config.request_timeout.as_millis()).unwrap_or(30_000))
            .with_topic_partitions(partitions.as_ref().map(|set| {
                let mut by_topic: std::collections::BTreeMap<&str, Vec<i32>> = Default::default();
                for (t, p) in set {
                    by_topic.entry(t).or_default().push(*p);
                }
                by_topic
                    .into_iter()
                    .map(|(t, ps)| {
                        TopicPartitions::default()
                            .with_topic(TopicName(StrBytes::from_string(t.to_string())))
                            .with_partitions(ps)
                    })
                    .collect()
            }));
        let resp = super::wire::request(&config, 2, &req).await?;
        gregor_client::Error::check(resp.error_code, None).map_err(client_err)?;
        let mut succeeded = BTreeSet::new();
        let mut noop = BTreeSet::new();
        let mut failed = Vec::new();
        for t in &resp.replica_election_results {
            for p in &t.partition_result {
                let tp = (t.topic.to_string(), p.partition_id);
                match ResponseError::try_from_code(p.error_code) {
                    None => {
                        succeeded.insert(tp);
                    }
                    Some(ResponseError::ElectionNotNeeded) => {
                        noop.insert(tp);
                    }
                    Some(e) => failed.push((tp, exception(e, p.error_message.as_deref()))),
                }
            }
        }
        let join = |s: &BTreeSet<Tp>| s.iter().map(tp_string).collect::<Vec<_>>().join(", ");
        if !succeeded.is_empty() {
            println!(
                "Successfully completed leader election ({}) for partitions {}",
                election.name(),
                join(&succeeded)
            );
        }
        if !noop.is_empty() {
            println!(
                "Valid replica already elected for partitions {}",
                join(&noop)
            );
        }
        if !failed.is_empty() {
            failed.sort();
            for (tp, e) in &failed {
                println!(
                    "Error completing leader election ({}) for partition: {}: {e}",
                    election.name(),
                    tp_string(tp)
                );
            }
            bail!("{} replica(s) could not be elected", failed.len());
        }
        Ok(())
    })
}

/// An error as Java's `Throwable.toString` prints Kafka's exception for it:
/// `org.apache.kafka.common.errors.UnknownTopicOrPartitionException: message`.
fn exception(e: ResponseError, message: Option<&str>) -> String {
    let name = match gregor_client::Error::from_code(e.code(), None) {
        Some(gregor_client::Error::Kafka { name, .. }) => name,
        _ => format!("{e:?}"),
    };
    let camel: String = name
        .split('_')
        .map(|w| {
            let mut c = w.chars();
            match c.next() {
                Some(f) => f
                    .to_uppercase()
                    .chain(c.flat_map(char::to_lowercase))
                    .collect(),
                None => String::new(),
            }
        })
        .collect();
    let message = message.map(str::to_string).unwrap_or_else(|| e.to_string());
    format!("org.apache.kafka.common.errors.{camel}Exception: {message}")
}

/// The partitions of a `--path-to-json-file`, with Kafka's complaints.
fn parse_election_file(path: &PathBuf) -> anyhow::Result<BTreeSet<Tp>> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let js: Value = serde_json::from_str(&text)
        .map_err(|e| anyhow!("{}: not valid JSON: {e}", path.display()))?;
    if js.is_null() {
        bail!("Replica election data is empty");
    }
    let list = js
        .get("partitions")
        .ok_or_else(|| anyhow!("Replica election data is missing \"partitions\" field"))?
        .as_array()
        .ok_or_else(|| anyhow!("\"partitions\" is not a JSON array"))?;
    let mut all = Vec::new();
    for item in list {
        let topic = item
            .get("topic")
            .and_then(Value::as_str)
            .ok_or_else(|| anyhow!("No such field exists: `topic`"))?;
        let partition = item
            .get("partition")
            .and_then(Value::as_i64)
            .and_then(|p| i32::try_from(p).ok())
            .ok_or_else(|| anyhow!("No such field exists: `partition`"))?;
        all.push((topic.to_string(), partition));
    }
    let mut seen = BTreeSet::new();
    let dups: BTreeSet<String> = all
        .iter()
        .filter(|tp| !seen.insert((*tp).clone()))
        .map(tp_string)
        .collect();
    if !dups.is_empty() {
        bail!(
            "Replica election data contains duplicate partitions: [{}]",
            dups.into_iter().collect::<Vec<_>>().join(", ")
        );
    }
    Ok(all.into_iter().collect())
}
