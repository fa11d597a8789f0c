//! One record inside a batch: varint-framed, offsets and timestamps as deltas.
//!
//! ```text
//! length varint | attributes int8 | timestampDelta varlong | offsetDelta varint
//! keyLength varint | key | valueLength varint | value
//! headersCount varint | [headerKeyLength varint | key | headerValueLength varint | value]
//! ```
//!
//! A length of -1 means null (key, value, header value); header keys may not
//! be null. The record's `length` counts the bytes after the length varint and
//! must match them exactly, as Kafka's `DefaultRecord.readFrom` demands.
//!
//! [`RecordWalker`] is the one parser of this format: it yields byte ranges
//! and never allocates, so validation (the produce hot path) and decoding
//! share it.

use bytes::Bytes;

use crate::batch::TIMESTAMP_TYPE_MASK;
use crate::varint::{read_varint_raw, read_varlong_raw, VarintError};
use crate::{BatchHeader, Compression, RecordsError, TimestampType, BATCH_HEADER_LEN};

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    pub key: String,
    pub value: Option<Bytes>,
}

/// A decoded record with its absolute offset and timestamp.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Record {
    pub offset: i64,
    pub timestamp: i64,
    pub key: Option<Bytes>,
    pub value: Option<Bytes>,
    pub headers: Vec<Header>,
}

/// Why a record failed to parse. `&'static str` so the hot path never formats.
pub(crate) type RecordErr = &'static str;

impl From<VarintError> for RecordErr {
    fn from(e: VarintError) -> Self {
        e.reason()
    }
}

/// One record's fields as byte ranges into the walked buffer.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RawRecord {
    pub timestamp_delta: i64,
    pub offset_delta: i32,
    /// `(start, end)` into the buffer, `None` for null.
    pub key: Option<(usize, usize)>,
    pub value: Option<(usize, usize)>,
    pub headers_count: usize,
}

/// Reads a nullable length-prefixed field, returning its range.
#[inline(always)]
fn read_nullable(
    buf: &[u8],
    pos: &mut usize,
    end: usize,
    what: RecordErr,
) -> Result<Option<(usize, usize)>, RecordErr> {
    let len = read_varint_raw(&buf[..end], pos)?;
    if len == -1 {
        return Ok(None);
    }
    let len = usize::try_from(len).map_err(|_| what)?;
    let start = *pos;
    // `end` is within the buffer, so a field that fits cannot overflow.
    if len > end - start {
        return Err("field runs past the end of the record");
    }
    *pos = start + len;
    Ok(Some((start, start + len)))
}

/// Parses the record at `*pos` (which must lie within `buf`), calling
/// `on_header(key, value)` for each header; leaves `*pos` after the record.
#[inline(always)]
pub(crate) fn parse_record<F>(
    buf: &[u8],
    pos: &mut usize,
    mut on_header: F,
) -> Result<RawRecord, RecordErr>
where
    F: FnMut((usize, usize), Option<(usize, usize)>),
{
    let length = read_varint_raw(buf, pos)?;
    let length = usize::try_from(length).map_err(|_| "negative record length")?;
    let start = *pos;
    if length > buf.len() - start {
        return Err("record length runs past the end of the records");
    }
    let end = start + length;
    // Everything below reads from `rec` so nothing can stray past `end`.
    let rec = &buf[..end];
    let mut p = start;
    // attributes (unused by Kafka, any value accepted)
    if p >= end {
        return Err("record too short for its attributes");
    }
    p += 1;
    let timestamp_delta = read_varlong_raw(rec, &mut p)?;
    let offset_delta = read_varint_raw(rec, &mut p)?;
    let key = read_nullable(rec, &mut p, end, "invalid negative key length")?;
    let value = read_nullable(rec, &mut p, end, "invalid negative value length")?;
    let headers_count = read_varint_raw(rec, &mut p)?;
    let headers_count = usize::try_from(headers_count).map_err(|_| "negative header count")?;
    for _ in 0..headers_count {
        // Each header takes at least 2 bytes, so a huge count ends here.
        let Some(hkey) = read_nullable(rec, &mut p, end, "invalid negative header key length")?
        else {
            return Err("null header key");
        };
        let hval = read_nullable(rec, &mut p, end, "invalid negative header value length")?;
        on_header(hkey, hval);
    }
    if p != end {
        return Err("record length does not match the bytes of its fields");
    }
    *pos = end;
    Ok(RawRecord {
        timestamp_delta,
        offset_delta,
        key,
        value,
        headers_count,
    })
}

/// The smallest possible record: length, attributes, timestampDelta,
/// offsetDelta, key, value and header count, one byte each.
pub(crate) const MIN_RECORD_SIZE: usize = 7;

fn invalid(header: &BatchHeader, reason: impl Into<String>) -> RecordsError {
    RecordsError::InvalidRecords {
        base_offset: header.base_offset,
        reason: reason.into(),
    }
}

/// The batch's records section, decompressed if needed, bounded by
/// `max_decompressed`. Borrowed when uncompressed.
pub(crate) fn records_section<'a>(
    header: &BatchHeader,
    batch: &'a [u8],
    max_decompressed: usize,
) -> Result<std::borrow::Cow<'a, [u8]>, RecordsError> {
    let codec = header.compression()?;
    let raw = batch.get(BATCH_HEADER_LEN..).unwrap_or(&[]);
    Ok(match codec {
        Compression::None => std::borrow::Cow::Borrowed(raw),
        c => std::borrow::Cow::Owned(crate::compression::decompress(c, raw, max_decompressed)?),
    })
}

/// Decodes every record of the batch `batch` (whole batch bytes, header included),
/// decompressing if needed (output bounded by `max_decompressed`).
///
/// Offsets come from each record's offsetDelta (compacted batches have gaps),
/// timestamps from baseTimestamp + timestampDelta, or `maxTimestamp` for a
/// LogAppendTime batch, as Kafka's reader does. Requires exactly
/// `recordsCount` records and nothing after them. Does not check the CRC
/// (that is [`crate::validate_batch`]'s job). Bytes after the first batch
/// are ignored.
///
/// The returned keys and values share one buffer holding the (decompressed)
/// records section: holding any of them keeps that buffer alive.
pub fn decode_records(
    batch: &[u8],
    max_decompressed: usize,
) -> Result<(BatchHeader, Vec<Record>), RecordsError> {
    let header = BatchHeader::parse(batch)?;
    let size = header.total_size();
    let batch = batch.get(..size).ok_or(RecordsError::Truncated {
        what: "record batch",
        needed: size,
        available: batch.len(),
    })?;
    let count = usize::try_from(header.records_count).map_err(|_| {
        invalid(
            &header,
            format!("negative records count {}", header.records_count),
        )
    })?;
    // One copy of the whole section (or the decompressed buffer itself) that
    // every key and value then slices, instead of an allocation per field.
    let data: Bytes = match records_section(&header, batch, max_decompressed)? {
        std::borrow::Cow::Borrowed(b) => Bytes::copy_from_slice(b),
        std::borrow::Cow::Owned(v) => Bytes::from(v),
    };
    let log_append_time = header.attributes & TIMESTAMP_TYPE_MASK != 0;
    debug_assert_eq!(
        log_append_time,
        header.timestamp_type() == TimestampType::LogAppendTime
    );
    // Never trust the count for the allocation: it cannot exceed what fits.
    let mut records = Vec::with_capacity(count.min(data.len() / MIN_RECORD_SIZE));
    let mut pos = 0usize;
    let slice = |r: (usize, usize)| data.slice(r.0..r.1);
    for i in 0..count {
        if pos >= data.len() {
            return Err(invalid(
                &header,
                format!("batch declares {count} records but holds only {i}"),
            ));
        }
        let mut headers = Vec::new();
        let raw = parse_record(&data, &mut pos, |k, v| {
            headers.push(Header {
                key: String::from_utf8_lossy(&data[k.0..k.1]).into_owned(),
                value: v.map(slice),
            })
        })
        .map_err(|reason| invalid(&header, format!("record {i}: {reason}")))?;
        debug_assert_eq!(headers.len(), raw.headers_count);
        records.push(Record {
            offset: header.base_offset.wrapping_add(i64::from(raw.offset_delta)),
            timestamp: if log_append_time {
                header.max_timestamp
            } else {
                header.base_timestamp.wrapping_add(raw.timestamp_delta)
            },
            key: raw.key.map(slice),
            value: raw.value.map(slice),
            headers,
        });
    }
    if pos != data.len() {
        return Err(invalid(
            &header,
            format!(
                "{} bytes after the last of {count} records",
                data.len() - pos
            ),
        ));
    }
    Ok((header, records))
}
