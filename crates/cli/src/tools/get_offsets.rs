//! `gregor get-offsets`: kafka-get-offsets.sh (GetOffsetShell).

use anyhow::{anyhow, bail};
use clap::Args;
use gregor_client::config::IsolationLevel;
use gregor_client::{OffsetSpec, TopicPartition};

use super::{block_on, client_err, Conn};

pub const EXAMPLES: &str = "Examples:
  gregor get-offsets --bootstrap-server 127.0.0.1:9092 --topic orders
  gregor get-offsets --topic orders --partitions 0,2-3 --time earliest
  gregor get-offsets --topic-partitions orders:0,payments --time max-timestamp
  gregor get-offsets --topic orders --time 1700000000000

Prints one line per partition: TOPIC:PARTITION:OFFSET (OFFSET is empty when
no record matches a timestamp).";

/// Print the offsets of topic partitions (latest, earliest, max timestamp or by time).
#[derive(Args, Debug)]
pub struct GetOffsetsArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// The topic to get the offsets of (all topics if not given).
    #[arg(long, value_name = "TOPIC")]
    pub topic: Option<String>,
    /// Partition ids and ranges: "0,2-4" (all partitions if not given).
    #[arg(long, value_name = "IDS")]
    pub partitions: Option<String>,
    /// Topic-partitions: "topic1:0,topic2:1-3,topic3" (instead of --topic/--partitions).
    #[arg(long = "topic-partitions", value_name = "LIST", conflicts_with_all = ["topic", "partitions"])]
    pub topic_partitions: Option<String>,
    /// earliest | latest | max-timestamp | a timestamp in ms | -1 (latest) | -2 (earliest) | -3 (max-timestamp).
    #[arg(
        long,
        value_name = "TIME",
        default_value = "latest",
        allow_hyphen_values = true
    )]
    pub time: String,
    /// Leave out internal topics when listing all topics.
    #[arg(long = "exclude-internal-topics")]
    pub exclude_internal_topics: bool,
}

fn parse_time(s: &str) -> anyhow::Result<OffsetSpec> {
    Ok(match s {
        "latest" | "-1" => OffsetSpec::Latest,
        "earliest" | "-2" => OffsetSpec::Earliest,
        "max-timestamp" | "-3" => OffsetSpec::MaxTimestamp,
        other => match other.parse::<i64>() {
            Ok(t) if t >= 0 => OffsetSpec::Timestamp(t),
            _ => bail!("Malformed time argument {other}. Please use -1 or latest / -2 or earliest / -3 or max-timestamp, or a specified long format timestamp"),
        },
    })
}

/// "0,2-4" as a predicate on partition ids.
fn parse_partitions(s: &str) -> anyhow::Result<Vec<(i32, i32)>> {
    s.split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .map(|p| {
            let bad = || anyhow!("Invalid partition '{p}': use ids and ranges such as 0,2-4");
            match p.split_once('-') {
                Some((a, b)) => {
                    let a: i32 = a.trim().parse().map_err(|_| bad())?;
                    let b: i32 = if b.trim().is_empty() {
                        i32::MAX
                    } else {
                        b.trim().parse().map_err(|_| bad())?
                    };
                    Ok((a, b))
                }
                None => {
                    let a: i32 = p.parse().map_err(|_| bad())?;
                    Ok((a, a))
                }
            }
        })
        .collect()
}

/// A topic (`None`: every topic) and partition ranges (empty: every partition).
type Filter = (Option<String>, Vec<(i32, i32)>);

fn in_ranges(ranges: &[(i32, i32)], p: i32) -> bool {
    ranges.is_empty() || ranges.iter().any(|(a, b)| (*a..=*b).contains(&p))
}

pub fn run(args: GetOffsetsArgs) -> anyhow::Result<()> {
    let spec = parse_time(&args.time)?;
    let mut filters: Vec<Filter> = Vec::new();
    if let Some(tp) = &args.topic_partitions {
        for item in tp.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            match item.split_once(':') {
                Some((t, p)) => filters.push((Some(t.to_string()), parse_partitions(p)?)),
                None => filters.push((Some(item.to_string()), Vec::new())),
            }
        }
    } else {
        let ranges = match &args.partitions {
            Some(p) => parse_partitions(p)?,
            None => Vec::new(),
        };
        filters.push((args.topic.clone(), ranges));
    }
    let admin = args.conn.admin()?;
    block_on(async move {
        let listing = admin
            .list_topics(!args.exclude_internal_topics)
            .await
            .map_err(client_err)?;
        let mut names: Vec<String> = listing
            .into_iter()
            .map(|t| t.name)
            .filter(|n| {
                filters
                    .iter()
                    .any(|(t, _)| t.as_ref().is_none() || t.as_ref() == Some(n))
            })
            .collect();
        names.sort();
        for (t, _) in &filters {
            if let Some(t) = t {
                if !names.contains(t) {
                    bail!("Topic '{t}' does not exist");
                }
            }
        }
        if names.is_empty() {
            return Ok(());
        }
        let refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let topics = admin.describe_topics(&refs).await.map_err(client_err)?;
        let mut specs = Vec::new();
        for t in &topics {
            for p in &t.partitions {
                let wanted = filters.iter().any(|(ft, ranges)| {
                    (ft.is_none() || ft.as_ref() == Some(&t.name)) && in_ranges(ranges, p.partition)
                });
                if wanted {
                    specs.push((TopicPartition::new(t.name.clone(), p.partition), spec));
                }
            }
        }
        if specs.is_empty() {
            bail!("Could not match any topic-partitions with the specified filters");
        }
        let offsets = admin
            .list_offsets(&specs, IsolationLevel::ReadUncommitted)
            .await
            .map_err(client_err)?;
        admin.close().await;
        let mut out = String::new();
        for (tp, o) in offsets {
            if o.offset >= 0 {
                out.push_str(&format!("{}:{}:{}\n", tp.topic, tp.partition, o.offset));
            } else {
                out.push_str(&format!("{}:{}:\n", tp.topic, tp.partition));
            }
        }
        print!("{out}");
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_and_times() {
        let r = parse_partitions("0,2-4,7-").unwrap();
        assert!(in_ranges(&r, 0) && in_ranges(&r, 3) && in_ranges(&r, 100));
        assert!(!in_ranges(&r, 1) && !in_ranges(&r, 5));
        assert!(parse_partitions("x").is_err());
        assert_eq!(parse_time("-2").unwrap(), OffsetSpec::Earliest);
        assert_eq!(parse_time("123").unwrap(), OffsetSpec::Timestamp(123));
        assert!(parse_time("soon").is_err());
    }
}
