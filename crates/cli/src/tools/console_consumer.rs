//! `gregor console-consumer`: kafka-console-consumer.sh, printing records as
//! Kafka's DefaultMessageFormatter does.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use clap::Args;
use gregor_client::{Admin, Consumer, ConsumerRecord, OffsetAndMetadata, TopicPartition};
use gregor_records::TimestampType;

use super::{admin_for, block_on, client_err, parse_kv, Conn};

pub const EXAMPLES: &str = "Examples:
  gregor console-consumer --bootstrap-server 127.0.0.1:9092 --topic orders --from-beginning
  gregor console-consumer --topic orders --group billing --max-messages 10
  gregor console-consumer --topic orders --partition 0 --offset 42 --timeout-ms 5000
  gregor console-consumer --topic orders --from-beginning --property print.key=true \\
      --property print.headers=true --property print.timestamp=true --property key.separator=:

Formatter properties and defaults: print.timestamp=false print.partition=false
print.offset=false print.headers=false print.key=false print.value=true
key.separator=\\t line.separator=\\n headers.separator=, headers.key.separator=:
null.literal=null. Without --group the consumer reads every partition without
a group (nothing is committed).";

/// Print records of a topic to stdout.
#[derive(Args, Debug)]
pub struct ConsoleConsumerArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// The topic to consume.
    #[arg(long, value_name = "TOPIC", required = true)]
    pub topic: String,
    /// Start with the earliest record rather than the latest (when there is no committed offset).
    #[arg(long = "from-beginning")]
    pub from_beginning: bool,
    /// Consume as a member of this group (offsets are committed).
    #[arg(long, value_name = "GROUP")]
    pub group: Option<String>,
    /// Consume only this partition.
    #[arg(long, value_name = "P", conflicts_with = "group")]
    pub partition: Option<i32>,
    /// With --partition: earliest, latest (default) or an offset.
    #[arg(long, value_name = "OFFSET", requires = "partition")]
    pub offset: Option<String>,
    /// Exit after this many records.
    #[arg(long = "max-messages", value_name = "N")]
    pub max_messages: Option<u64>,
    /// Exit when no record arrives for this long.
    #[arg(long = "timeout-ms", value_name = "MS")]
    pub timeout_ms: Option<u64>,
    /// A formatter property (repeatable): print.key=true, key.separator=:, ...
    #[arg(long, value_name = "KEY=VALUE")]
    pub property: Vec<String>,
    /// A consumer property (repeatable), e.g. fetch.max.wait.ms=100.
    #[arg(long = "consumer-property", value_name = "KEY=VALUE")]
    pub consumer_property: Vec<String>,
    /// A file of consumer properties.
    #[arg(long = "consumer.config", value_name = "FILE")]
    pub consumer_config: Option<PathBuf>,
}

/// Kafka's DefaultMessageFormatter.
#[derive(Debug, Clone)]
pub struct Formatter {
    timestamp: bool,
    partition: bool,
    offset: bool,
    headers: bool,
    key: bool,
    value: bool,
    key_separator: String,
    line_separator: String,
    headers_separator: String,
    headers_key_separator: String,
    null_literal: String,
}

fn unescape(s: &str) -> String {
    s.replace("\\t", "\t")
        .replace("\\n", "\n")
        .replace("\\r", "\r")
        .replace("\\\\", "\\")
}

impl Formatter {
    pub fn new(props: &[(String, String)]) -> anyhow::Result<Formatter> {
        let mut f = Formatter {
            timestamp: false,
            partition: false,
            offset: false,
            headers: false,
            key: false,
            value: true,
            key_separator: "\t".into(),
            line_separator: "\n".into(),
            headers_separator: ",".into(),
            headers_key_separator: ":".into(),
            null_literal: "null".into(),
        };
        for (k, v) in props {
            let on = v.trim().eq_ignore_ascii_case("true");
            match k.as_str() {
                "print.timestamp" => f.timestamp = on,
                "print.partition" => f.partition = on,
                "print.offset" => f.offset = on,
                "print.headers" => f.headers = on,
                "print.key" => f.key = on,
                "print.value" => f.value = on,
                "key.separator" => f.key_separator = unescape(v),
                "line.separator" => f.line_separator = unescape(v),
                "headers.separator" => f.headers_separator = unescape(v),
                "headers.key.separator" => f.headers_key_separator = unescape(v),
                "null.literal" => f.null_literal = unescape(v),
                // Deserializers: only strings are printed.
                "key.deserializer" | "value.deserializer" | "headers.deserializer" => {}
                other => bail!("Unknown --property '{other}'"),
            }
        }
        Ok(f)
    }

    fn text(&self, b: Option<&[u8]>) -> String {
        match b {
            Some(b) => String::from_utf8_lossy(b).into_owned(),
            None => self.null_literal.clone(),
        }
    }

    pub fn format(&self, r: &ConsumerRecord) -> String {
        let mut fields = Vec::new();
        if self.timestamp {
            let kind = match r.timestamp_type {
                TimestampType::CreateTime => "CreateTime",
                TimestampType::LogAppendTime => "LogAppendTime",
            };
            if r.timestamp < 0 {
                fields.push("NO_TIMESTAMP".to_string());
            } else {
                fields.push(format!("{kind}:{}", r.timestamp));
            }
        }
        if self.partition {
            fields.push(format!("Partition:{}", r.partition));
        }
        if self.offset {
            fields.push(format!("Offset:{}", r.offset));
        }
        if self.headers {
            if r.headers.is_empty() {
                fields.push("NO_HEADERS".to_string());
            } else {
                let hs: Vec<String> = r
                    .headers
                    .iter()
                    .map(|h| {
                        format!(
                            "{}{}{}",
                            h.key,
                            self.headers_key_separator,
                            self.text(h.value.as_deref())
                        )
                    })
                    .collect();
                fields.push(hs.join(&self.headers_separator));
            }
        }
        if self.key {
            fields.push(self.text(r.key.as_deref()));
        }
        if self.value {
            fields.push(self.text(r.value.as_deref()));
        }
        let mut s = fields.join(&self.key_separator);
        s.push_str(&self.line_separator);
        s
    }
}

pub fn run(args: ConsoleConsumerArgs) -> anyhow::Result<()> {
    let formatter = Formatter::new(&parse_kv(&args.property, "--property")?)?;
    let mut props = Vec::new();
    if let Some(path) = &args.consumer_config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        props.extend(gregor_client::config::parse_properties(&text));
    }
    props.extend(parse_kv(&args.consumer_property, "--consumer-property")?);
    let reset = if args.from_beginning {
        "earliest"
    } else {
        "latest"
    };
    props.push(("auto.offset.reset".into(), reset.into()));
    if let Some(g) = &args.group {
        // Printed records are committed at exit: never more than was printed.
        props.insert(0, ("enable.auto.commit".into(), "false".into()));
        props.push(("group.id".into(), g.clone()));
    }
    let config = args.conn.client_config(&props)?;
    let admin = admin_for(&config)?;
    block_on(async move {
        let mut consumer = Consumer::new(config).map_err(client_err)?;
        let r = consume(&admin, &mut consumer, &formatter, &args).await;
        let _ = consumer.close().await;
        admin.close().await;
        r
    })
}

async fn consume(
    admin: &Admin,
    consumer: &mut Consumer,
    formatter: &Formatter,
    args: &ConsoleConsumerArgs,
) -> anyhow::Result<()> {
    let exists = admin
        .list_topics(true)
        .await
        .map_err(client_err)?
        .iter()
        .any(|t| t.name == args.topic);
    if !exists {
        bail!("Topic '{}' does not exist", args.topic);
    }
    if args.group.is_some() {
        consumer
            .subscribe(&[args.topic.as_str()], None)
            .map_err(client_err)?;
    } else {
        let meta = admin
            .describe_topics(&[args.topic.as_str()])
            .await
            .map_err(client_err)?;
        let mut tps: Vec<TopicPartition> = meta
            .iter()
            .flat_map(|t| {
                t.partitions
                    .iter()
                    .map(|p| TopicPartition::new(t.name.clone(), p.partition))
            })
            .collect();
        if let Some(p) = args.partition {
            if !tps.iter().any(|tp| tp.partition == p) {
                bail!("Partition {p} of topic '{}' does not exist", args.topic);
            }
            tps = vec![TopicPartition::new(args.topic.clone(), p)];
        }
        consumer.assign(&tps).map_err(client_err)?;
        match args.offset.as_deref() {
            // auto.offset.reset (earliest with --from-beginning) decides.
            None => {}
            Some("latest") => consumer.seek_to_end(&tps),
            Some("earliest") => consumer.seek_to_beginning(&tps),
            Some(o) => {
                let off: i64 = o.parse().map_err(|_| {
                    anyhow!("--offset must be earliest, latest or a non-negative number, got '{o}'")
                })?;
                if off < 0 {
                    bail!("--offset must be earliest, latest or a non-negative number, got '{o}'");
                }
                consumer.seek(&tps[0], off).map_err(client_err)?;
            }
        }
    }
    let timeout = args.timeout_ms.map(Duration::from_millis);
    let mut last = Instant::now();
    let mut count = 0u64;
    let mut printed: BTreeMap<TopicPartition, OffsetAndMetadata> = BTreeMap::new();
    let stdout = std::io::stdout();
    'outer: loop {
        if args.max_messages.is_some_and(|m| count >= m) {
            break;
        }
        let wait = timeout.map_or(Duration::from_millis(500), |t| {
            t.saturating_sub(last.elapsed())
                .max(Duration::from_millis(1))
        });
        let records = consumer
            .poll(wait.min(Duration::from_millis(500)))
            .await
            .map_err(client_err)?;
        if records.is_empty() {
            if timeout.is_some_and(|t| last.elapsed() >= t) {
                break;
            }
            continue;
        }
        last = Instant::now();
        let mut out = stdout.lock();
        for r in &records {
            if args.max_messages.is_some_and(|m| count >= m) {
                break 'outer;
            }
            // A write error (a full disk behind `>`) ends the consumer; a
            // closed pipe (`| head`) ends the process by SIGPIPE (main.rs),
            // committing nothing: records in the pipe may never be read.
            if out.write_all(formatter.format(r).as_bytes()).is_err() {
                break 'outer;
            }
            count += 1;
            printed.insert(
                TopicPartition::new(r.topic.clone(), r.partition),
                OffsetAndMetadata::new(r.offset + 1),
            );
        }
        let _ = out.flush();
    }
    if args.group.is_some() && !printed.is_empty() {
        consumer
            .commit_sync(Some(printed))
            .await
            .map_err(client_err)?;
    }
    eprintln!("Processed a total of {count} messages");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn formats_like_kafka() {
        let r = ConsumerRecord {
            topic: "t".into(),
            partition: 2,
            offset: 7,
            timestamp: 1000,
            timestamp_type: TimestampType::CreateTime,
            key: Some(Bytes::from_static(b"k")),
            value: None,
            headers: vec![gregor_client::Header {
                key: "h".into(),
                value: Some(Bytes::from_static(b"v")),
            }],
            leader_epoch: None,
        };
        let f = Formatter::new(&[]).unwrap();
        assert_eq!(f.format(&r), "null\n");
        let props: Vec<(String, String)> = [
            "print.timestamp",
            "print.partition",
            "print.offset",
            "print.headers",
            "print.key",
        ]
        .iter()
        .map(|k| (k.to_string(), "true".to_string()))
        .chain([("key.separator".to_string(), "|".to_string())])
        .collect();
        let f = Formatter::new(&props).unwrap();
        assert_eq!(
            f.format(&r),
            "CreateTime:1000|Partition:2|Offset:7|h:v|k|null\n"
        );
    }
}
