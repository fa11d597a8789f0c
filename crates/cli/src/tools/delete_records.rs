//! `gregor delete-records`: kafka-delete-records.sh.

use std::collections::BTreeMap;

use anyhow::{anyhow, bail, Context};
use clap::Args;
use gregor_client::TopicPartition;

use super::{block_on, client_err, one_line, Conn};

pub const EXAMPLES: &str = "Examples:
  gregor delete-records --bootstrap-server 127.0.0.1:9092 --offset-json-file delete.json

The JSON file (Kafka's format; offset -1 deletes up to the high watermark):
  {\"partitions\": [{\"topic\": \"orders\", \"partition\": 0, \"offset\": 100}], \"version\": 1}";

/// Delete the records of partitions before the given offsets.
#[derive(Args, Debug)]
pub struct DeleteRecordsArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// A JSON file with the partitions and offsets to delete records before.
    #[arg(long = "offset-json-file", value_name = "FILE", required = true)]
    pub offset_json_file: std::path::PathBuf,
}

/// Parses Kafka's offset JSON: `{"partitions":[{"topic":..,"partition":..,"offset":..}],"version":1}`.
pub fn parse_offset_json(text: &str) -> anyhow::Result<Vec<(TopicPartition, i64)>> {
    let v: serde_json::Value = serde_json::from_str(text)
        .map_err(|e| anyhow!("the offset JSON file is not valid JSON: {e}"))?;
    if let Some(version) = v.get("version") {
        if version.as_i64() != Some(1) {
            bail!("Not supported version field value {version}");
        }
    }
    let parts = v
        .get("partitions")
        .and_then(|p| p.as_array())
        .ok_or_else(|| anyhow!("the offset JSON file has no \"partitions\" array"))?;
    let mut out = Vec::new();
    for p in parts {
        let topic = p
            .get("topic")
            .and_then(|t| t.as_str())
            .ok_or_else(|| anyhow!("a partition entry has no \"topic\" string: {p}"))?;
        let partition = p
            .get("partition")
            .and_then(|t| t.as_i64())
            .and_then(|n| i32::try_from(n).ok())
            .ok_or_else(|| anyhow!("a partition entry has no valid \"partition\": {p}"))?;
        let offset = p
            .get("offset")
            .and_then(|t| t.as_i64())
            .ok_or_else(|| anyhow!("a partition entry has no valid \"offset\": {p}"))?;
        out.push((TopicPartition::new(topic, partition), offset));
    }
    let mut seen = BTreeMap::new();
    let mut dups = Vec::new();
    for (tp, _) in &out {
        if seen.insert(tp.clone(), ()).is_some() {
            dups.push(tp.to_string());
        }
    }
    if !dups.is_empty() {
        bail!(
            "Offset json file contains duplicate topic partitions: {}",
            dups.join(",")
        );
    }
    Ok(out)
}

pub fn run(args: DeleteRecordsArgs) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(&args.offset_json_file)
        .with_context(|| format!("cannot read {}", args.offset_json_file.display()))?;
    let items = parse_offset_json(&text)?;
    let admin = args.conn.admin()?;
    block_on(async move {
        println!("Executing records delete operation");
        let mut lines = Vec::new();
        let mut failed = 0;
        // One call per partition, so that each gets its own result line.
        for (tp, offset) in items {
            let one = BTreeMap::from([(tp.clone(), offset)]);
            match admin.delete_records(&one).await {
                Ok(r) => match r.get(&tp) {
                    Some(low) => lines.push(format!("partition: {tp}\tlow_watermark: {low}")),
                    None => {
                        failed += 1;
                        lines.push(format!("partition: {tp}\terror: no result from the broker"));
                    }
                },
                Err(e) => {
                    failed += 1;
                    lines.push(format!(
                        "partition: {tp}\terror: {}",
                        one_line(&client_err(e))
                    ));
                }
            }
        }
        admin.close().await;
        println!("Records delete operation completed:");
        for l in lines {
            println!("{l}");
        }
        if failed > 0 {
            bail!("{failed} partition(s) failed");
        }
        Ok(())
    })
}
