//! `gregor console-producer`: kafka-console-producer.sh. Each input line
//! (stdin or --file) is one record; keys and headers are parsed as Kafka's
//! LineMessageReader does.

use std::collections::VecDeque;
use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{anyhow, bail, Context};
use bytes::Bytes;
use clap::Args;
use gregor_client::{DeliveryFuture, Header, Producer, ProducerRecord};

use super::{block_on, client_err, one_line, parse_kv, Conn};

pub const EXAMPLES: &str = "Examples:
  gregor console-producer --bootstrap-server 127.0.0.1:9092 --topic orders
  gregor console-producer --topic orders --property parse.key=true --property key.separator=:
  gregor console-producer --topic orders --file lines.txt --compression-codec zstd
  printf 'h1:v1,h2:v2\\tkey\\tvalue\\n' | gregor console-producer --topic orders \\
      --property parse.headers=true --property parse.key=true

Line format: [HEADERS<headers.delimiter>][KEY<key.separator>]VALUE, where
HEADERS is k1:v1,k2:v2 (headers.separator, headers.key.separator). Reader
properties and defaults: parse.key=false key.separator=\\t parse.headers=false
headers.delimiter=\\t headers.separator=, headers.key.separator=:
ignore.error=false null.marker=(none).";

/// Read lines from stdin (or a file) and send each as a record.
#[derive(Args, Debug)]
pub struct ConsoleProducerArgs {
    #[command(flatten)]
    pub conn: Conn,
    /// The topic to produce to.
    #[arg(long, value_name = "TOPIC", required = true)]
    pub topic: String,
    /// A line reader property: parse.key, key.separator, parse.headers,
    /// headers.delimiter, headers.separator, headers.key.separator,
    /// ignore.error, null.marker (repeatable).
    #[arg(long, value_name = "KEY=VALUE")]
    pub property: Vec<String>,
    /// A producer property (repeatable), e.g. linger.ms=10.
    #[arg(long = "producer-property", value_name = "KEY=VALUE")]
    pub producer_property: Vec<String>,
    /// A file of producer properties.
    #[arg(long = "producer.config", value_name = "FILE")]
    pub producer_config: Option<PathBuf>,
    /// Compression: none, gzip (the default when the flag has no value), snappy, lz4 or zstd.
    #[arg(long = "compression-codec", value_name = "CODEC", num_args = 0..=1, default_missing_value = "gzip")]
    pub compression_codec: Option<String>,
    /// acks: 0, 1 or -1/all.
    #[arg(
        long = "request-required-acks",
        value_name = "ACKS",
        default_value = "-1",
        allow_hyphen_values = true
    )]
    pub request_required_acks: String,
    /// Send each record and wait for its acknowledgement before the next.
    #[arg(long)]
    pub sync: bool,
    /// Read lines from this file instead of stdin.
    #[arg(long, value_name = "FILE")]
    pub file: Option<PathBuf>,
}

/// How lines become records (Kafka's LineMessageReader).
#[derive(Debug, Clone)]
pub struct LineReader {
    parse_key: bool,
    key_separator: String,
    parse_headers: bool,
    headers_delimiter: String,
    headers_separator: String,
    headers_key_separator: String,
    ignore_error: bool,
    null_marker: Option<String>,
}

fn flag(v: &str) -> bool {
    v.trim().eq_ignore_ascii_case("true")
}

impl LineReader {
    pub fn new(props: &[(String, String)]) -> anyhow::Result<LineReader> {
        let mut r = LineReader {
            parse_key: false,
            key_separator: "\t".into(),
            parse_headers: false,
            headers_delimiter: "\t".into(),
            headers_separator: ",".into(),
            headers_key_separator: ":".into(),
            ignore_error: false,
            null_marker: None,
        };
        for (k, v) in props {
            match k.as_str() {
                "parse.key" => r.parse_key = flag(v),
                "key.separator" => r.key_separator = unescape(v),
                "parse.headers" => r.parse_headers = flag(v),
                "headers.delimiter" => r.headers_delimiter = unescape(v),
                "headers.separator" => r.headers_separator = unescape(v),
                "headers.key.separator" => r.headers_key_separator = unescape(v),
                "ignore.error" => r.ignore_error = flag(v),
                "null.marker" => r.null_marker = Some(unescape(v)),
                other => bail!("Unknown --property '{other}'"),
            }
        }
        for (name, sep) in [
            ("key.separator", &r.key_separator),
            ("headers.delimiter", &r.headers_delimiter),
            ("headers.separator", &r.headers_separator),
            ("headers.key.separator", &r.headers_key_separator),
        ] {
            if sep.is_empty() {
                bail!("--property {name} must not be empty");
            }
        }
        if r.parse_headers && r.headers_separator == r.headers_key_separator {
            bail!("headers.separator and headers.key.separator may not be equal");
        }
        Ok(r)
    }

    fn nullable(&self, s: &str) -> Option<Bytes> {
        if self.null_marker.as_deref() == Some(s) {
            None
        } else {
            Some(Bytes::copy_from_slice(s.as_bytes()))
        }
    }

    /// One line (without its newline) as a record; `n` is the 1-based line number.
    pub fn record(&self, topic: &str, line: &str, n: u64) -> anyhow::Result<ProducerRecord> {
        let mut rest = line;
        let mut headers = Vec::new();
        if self.parse_headers {
            match rest.split_once(self.headers_delimiter.as_str()) {
                Some((h, r)) => {
                    rest = r;
                    for entry in h
                        .split(self.headers_separator.as_str())
                        .filter(|e| !e.is_empty())
                    {
                        let (k, v) = match entry.split_once(self.headers_key_separator.as_str()) {
                            Some((k, v)) => (k, self.nullable(v)),
                            None => (entry, None),
                        };
                        if self.null_marker.as_deref() == Some(k) {
                            bail!("Header keys should not be equal to the null marker '{k}' as they can't be null");
                        }
                        headers.push(Header {
                            key: k.to_string(),
                            value: v,
                        });
                    }
                }
                None if self.ignore_error => {}
                None => bail!("No headers delimiter found on line number {n}: '{line}'"),
            }
        }
        let mut key = None;
        if self.parse_key {
            match rest.split_once(self.key_separator.as_str()) {
                Some((k, r)) => {
                    key = self.nullable(k);
                    rest = r;
                }
                None if self.ignore_error => {}
                None => bail!("No key separator found on line number {n}: '{line}'"),
            }
        }
        Ok(ProducerRecord {
            topic: topic.to_string(),
            partition: None,
            key,
            value: self.nullable(rest),
            headers,
            timestamp: None,
        })
    }
}

/// `\t`, `\n` and `\\` in property values, as a shell user types them.
fn unescape(s: &str) -> String {
    s.replace("\\t", "\t")
        .replace("\\n", "\n")
        .replace("\\r", "\r")
        .replace("\\\\", "\\")
}

/// Producer settings: --command-config, --producer.config, the flags, then --producer-property.
pub fn producer_props(
    producer_config: Option<&PathBuf>,
    flags: Vec<(String, String)>,
    props: &[String],
    props_flag: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    if let Some(path) = producer_config {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read {}", path.display()))?;
        out.extend(gregor_client::config::parse_properties(&text));
    }
    out.extend(flags);
    out.extend(parse_kv(props, props_flag)?);
    Ok(out)
}

pub fn run(args: ConsoleProducerArgs) -> anyhow::Result<()> {
    let reader = LineReader::new(&parse_kv(&args.property, "--property")?)?;
    let mut flags = vec![("acks".to_string(), args.request_required_acks.clone())];
    if let Some(c) = &args.compression_codec {
        flags.push(("compression.type".to_string(), c.clone()));
    }
    let props = producer_props(
        args.producer_config.as_ref(),
        flags,
        &args.producer_property,
        "--producer-property",
    )?;
    let config = args.conn.client_config(&props)?;
    let input: Box<dyn BufRead + Send> = match &args.file {
        Some(f) => Box::new(std::io::BufReader::new(
            std::fs::File::open(f).with_context(|| format!("cannot open {}", f.display()))?,
        )),
        None => Box::new(std::io::BufReader::new(std::io::stdin())),
    };
    block_on(async move {
        let producer = Producer::new(config).map_err(client_err)?;
        let r = produce_lines(&producer, &reader, &args, input).await;
        producer.close().await;
        r
    })
}

async fn produce_lines(
    producer: &Producer,
    reader: &LineReader,
    args: &ConsoleProducerArgs,
    input: Box<dyn BufRead + Send>,
) -> anyhow::Result<()> {
    // Lines come from a thread, so a slow terminal never blocks the runtime.
    let (tx, mut rx) = tokio::sync::mpsc::channel::<std::io::Result<String>>(1024);
    std::thread::spawn(move || {
        for line in input.lines() {
            let stop = line.is_err();
            if tx.blocking_send(line).is_err() || stop {
                break;
            }
        }
    });
    let mut pending: VecDeque<DeliveryFuture> = VecDeque::new();
    let mut first_error: Option<anyhow::Error> = None;
    let mut n = 0u64;
    while let Some(line) = rx.recv().await {
        let line = line.context("reading input")?;
        n += 1;
        let line = line.strip_suffix('\r').unwrap_or(&line);
        let record = reader.record(&args.topic, line, n)?;
        let fut = producer.send(record).await.map_err(client_err)?;
        if args.sync {
            fut.await.map_err(client_err)?;
            continue;
        }
        pending.push_back(fut);
        while pending.len() > 10_000 {
            if let Some(f) = pending.pop_front() {
                if let Err(e) = f.await {
                    first_error.get_or_insert(client_err(e));
                }
            }
        }
    }
    producer.flush().await;
    for f in pending {
        if let Err(e) = f.await {
            first_error.get_or_insert(client_err(e));
        }
    }
    match first_error {
        Some(e) => Err(anyhow!(
            "sending to {} failed: {}",
            args.topic,
            one_line(&e)
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(props: &[(&str, &str)]) -> LineReader {
        let p: Vec<(String, String)> = props
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        LineReader::new(&p).unwrap()
    }

    #[test]
    fn lines_to_records() {
        let r = reader(&[]);
        let rec = r.record("t", "a\tb", 1).unwrap();
        assert_eq!(rec.key, None);
        assert_eq!(rec.value.as_deref(), Some(&b"a\tb"[..]));

        let r = reader(&[("parse.key", "true"), ("key.separator", ":")]);
        let rec = r.record("t", "k:v:w", 1).unwrap();
        assert_eq!(rec.key.as_deref(), Some(&b"k"[..]));
        assert_eq!(rec.value.as_deref(), Some(&b"v:w"[..]));
        assert!(r
            .record("t", "nokey", 3)
            .unwrap_err()
            .to_string()
            .contains("line number 3"));

        let r = reader(&[
            ("parse.key", "true"),
            ("parse.headers", "true"),
            ("null.marker", "NULL"),
        ]);
        let rec = r.record("t", "h1:v1,h2,h3:NULL\tk\tNULL", 1).unwrap();
        assert_eq!(rec.headers.len(), 3);
        assert_eq!(rec.headers[0].key, "h1");
        assert_eq!(rec.headers[0].value.as_deref(), Some(&b"v1"[..]));
        assert_eq!(rec.headers[1].value, None);
        assert_eq!(rec.headers[2].value, None);
        assert_eq!(rec.value, None);
        assert!(r.record("t", "noheaders", 1).is_err());
        assert!(LineReader::new(&[("bogus".into(), "1".into())]).is_err());
    }
}
