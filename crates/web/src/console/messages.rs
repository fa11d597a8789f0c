//! The message browser, `GET /api/topics/{t}/messages?partition=&offset=|timestamp=&limit=`
//! (no offset and no timestamp: the last `limit` records), and
//! `POST /api/topics/{t}/produce` for a test message.
//!
//! Records are read with the client's consumer (assign and seek, no group:
//! nothing is committed). Keys, values and header values are rendered on
//! the server: a JSON object or array pretty-printed, other UTF-8 as text,
//! anything else as hex, each cut at [`MAX_SHOWN`] bytes.

use std::time::{Duration, Instant};

use axum::extract::{Path, Query};
use axum::Json;
use bytes::Bytes;
use gregor_client::config::IsolationLevel;
use gregor_client::{Consumer, OffsetSpec, ProducerRecord, TopicPartition};
use gregor_records::TimestampType;
use serde::{Deserialize, Serialize};

use gregor_security::acl::{AclOperation as Op, ResourceType as Res};

use super::auth::Clients;
use super::{ApiError, ApiResult};

/// Bytes of a key or value shown; the rest is cut (the size is still reported).
const MAX_SHOWN: usize = 64 * 1024;
/// Records per browse request at most.
const MAX_LIMIT: usize = 500;
/// How long one browse request reads before answering with what it has.
const READ_DEADLINE: Duration = Duration::from_secs(5);

/// A key, value or header value as the page shows it.
#[derive(Debug, Serialize, PartialEq, Eq)]
pub struct Rendered {
    /// "null", "json", "text" or "binary" (hex).
    kind: &'static str,
    text: String,
    /// The full size in bytes.
    size: usize,
    truncated: bool,
}

pub fn render(bytes: Option<&[u8]>) -> Rendered {
    let Some(b) = bytes else {
        return Rendered {
            kind: "null",
            text: String::new(),
            size: 0,
            truncated: false,
        };
    };
    let truncated = b.len() > MAX_SHOWN;
    if let Ok(s) = std::str::from_utf8(b) {
        let trimmed = s.trim_start();
        if !truncated && (trimmed.starts_with('{') || trimmed.starts_with('[')) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(s) {
                if let Ok(pretty) = serde_json::to_string_pretty(&v) {
                    return Rendered {
                        kind: "json",
                        text: pretty,
                        size: b.len(),
                        truncated: false,
                    };
                }
            }
        }
        let mut end = b.len().min(MAX_SHOWN);
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        return Rendered {
            kind: "text",
            text: s[..end].to_string(),
            size: b.len(),
            truncated,
        };
    }
    let shown = &b[..b.len().min(MAX_SHOWN)];
    let mut text = String::with_capacity(shown.len() * 3);
    for (i, byte) in shown.iter().enumerate() {
        if i > 0 {
            text.push(if i % 16 == 0 { '\n' } else { ' ' });
        }
        text.push_str(&format!("{byte:02x}"));
    }
    Rendered {
        kind: "binary",
        text,
        size: b.len(),
        truncated,
    }
}

#[derive(Deserialize)]
pub struct BrowseQuery {
    partition: i32,
    offset: Option<i64>,
    /// Milliseconds since the epoch: from the first record at or after it.
    timestamp: Option<i64>,
    limit: Option<usize>,
}

#[derive(Serialize)]
pub struct MessagePage {
    partition: i32,
    earliest_offset: i64,
    latest_offset: i64,
    /// Where reading started.
    start_offset: i64,
    /// The offset after the last record returned (where a live tail goes on).
    next_offset: i64,
    records: Vec<MessageView>,
}

#[derive(Serialize)]
struct MessageView {
    offset: i64,
    timestamp: i64,
    timestamp_type: &'static str,
    key: Rendered,
    value: Rendered,
    headers: Vec<HeaderView>,
}

#[derive(Serialize)]
struct HeaderView {
    key: String,
    value: Rendered,
}

pub async fn browse(
    clients: Clients,
    Path(topic): Path<String>,
    Query(q): Query<BrowseQuery>,
) -> ApiResult<MessagePage> {
    // Fetch's check (ListOffsets needs DESCRIBE, which READ implies).
    clients.authorize(Op::Read, Res::Topic, &topic)?;
    let limit = q.limit.unwrap_or(20).clamp(1, MAX_LIMIT);
    let tp = TopicPartition::new(&topic, q.partition);
    let at = |spec: OffsetSpec| {
        let admin = clients.admin.clone();
        let tp = tp.clone();
        async move {
            let got = admin
                .list_offsets(&[(tp.clone(), spec)], IsolationLevel::ReadUncommitted)
                .await?;
            Ok::<_, ApiError>(got.get(&tp).map_or(-1, |o| o.offset))
        }
    };
    let earliest = at(OffsetSpec::Earliest).await?;
    let latest = at(OffsetSpec::Latest).await?;
    if earliest < 0 || latest < 0 {
        return Err(ApiError::not_found(format!("no partition {tp}")));
    }
    let start = match (q.offset, q.timestamp) {
        (Some(o), _) => o.clamp(earliest, latest),
        (None, Some(ts)) => match at(OffsetSpec::Timestamp(ts)).await? {
            o if o >= 0 => o,
            _ => latest,
        },
        (None, None) => latest
            .saturating_sub(i64::try_from(limit).unwrap_or(i64::MAX))
            .max(earliest),
    };
    let mut page = MessagePage {
        partition: q.partition,
        earliest_offset: earliest,
        latest_offset: latest,
        start_offset: start,
        next_offset: start,
        records: Vec::new(),
    };
    if start >= latest {
        return Ok(Json(page));
    }
    let config = clients
        .config
        .clone()
        .with("enable.auto.commit", "false")?
        .with("client.id", "gregor-console-browser")?;
    let mut consumer = Consumer::new(config)?;
    let read = read_range(&mut consumer, &tp, start, latest, limit, &mut page).await;
    let _ = consumer.close().await;
    read?;
    Ok(Json(page))
}

async fn read_range(
    consumer: &mut Consumer,
    tp: &TopicPartition,
    start: i64,
    latest: i64,
    limit: usize,
    page: &mut MessagePage,
) -> Result<(), ApiError> {
    consumer.assign(std::slice::from_ref(tp))?;
    consumer.seek(tp, start)?;
    let deadline = Instant::now() + READ_DEADLINE;
    while page.records.len() < limit && page.next_offset < latest {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        for r in consumer.poll(left.min(Duration::from_millis(500))).await? {
            if r.offset < start || page.records.len() >= limit {
                continue;
            }
            page.next_offset = r.offset + 1;
            page.records.push(MessageView {
                offset: r.offset,
                timestamp: r.timestamp,
                timestamp_type: match r.timestamp_type {
                    TimestampType::CreateTime => "CreateTime",
                    TimestampType::LogAppendTime => "LogAppendTime",
                },
                key: render(r.key.as_deref()),
                value: render(r.value.as_deref()),
                headers: r
                    .headers
                    .iter()
                    .map(|h| HeaderView {
                        key: h.key.clone(),
                        value: render(h.value.as_deref()),
                    })
                    .collect(),
            });
        }
        // Transaction markers and compacted-away offsets: the position is
        // past them even when no record came back.
        if let Ok(pos) = consumer.position(tp).await {
            page.next_offset = page.next_offset.max(pos.min(latest));
        }
    }
    Ok(())
}

#[derive(Deserialize)]
pub struct ProduceRequest {
    partition: Option<i32>,
    key: Option<String>,
    value: Option<String>,
    #[serde(default)]
    headers: Vec<HeaderInput>,
}

#[derive(Deserialize)]
pub struct HeaderInput {
    key: String,
    value: Option<String>,
}

pub async fn produce(
    clients: Clients,
    Path(topic): Path<String>,
    Json(req): Json<ProduceRequest>,
) -> ApiResult<serde_json::Value> {
    clients.authorize(Op::Write, Res::Topic, &topic)?;
    let mut record = ProducerRecord::new(&topic, Bytes::new());
    record.value = req.value.map(Bytes::from);
    if let Some(k) = req.key {
        record = record.with_key(k);
    }
    if let Some(p) = req.partition {
        record = record.with_partition(p);
    }
    for h in req.headers {
        record = record.with_header(h.key, h.value.map(Bytes::from));
    }
    let producer = clients.producer().await?;
    let written = producer.send(record).await?.await?;
    Ok(Json(serde_json::json!({
        "topic": topic,
        "partition": written.partition,
        "offset": written.offset,
        "timestamp": written.timestamp,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_json_text_binary_and_null() {
        let j = render(Some(br#"{"a":1,"b":[true]}"#));
        assert_eq!(j.kind, "json");
        assert!(j.text.contains("\n  \"a\": 1"), "{}", j.text);
        assert_eq!(render(Some(b"hello")).kind, "text");
        assert_eq!(render(Some(b"{not json")).kind, "text");
        let b = render(Some(&[0xff, 0x00, 0x10]));
        assert_eq!((b.kind, b.text.as_str()), ("binary", "ff 00 10"));
        assert_eq!(render(None).kind, "null");
    }

    #[test]
    fn cuts_long_values_on_char_boundaries() {
        let long = "é".repeat(MAX_SHOWN);
        let r = render(Some(long.as_bytes()));
        assert!(r.truncated);
        assert_eq!(r.size, long.len());
        assert!(r.text.len() <= MAX_SHOWN);
        let bin = vec![0xffu8; MAX_SHOWN + 1];
        let r = render(Some(&bin));
        assert!(r.truncated && r.kind == "binary");
        // 16 bytes a line.
        assert_eq!(r.text.lines().next().map(|l| l.len()), Some(16 * 3 - 1));
    }
}
