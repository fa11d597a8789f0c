//! One record inside a batch: varint-framed, offsets and timestamps as deltas.
//!
//! ```text
//! length varint | attributes int8 | timestampDelta varlong | offsetDelta varint
//! keyLength varint | key | valueLength varint | value
//! headersCount varint | [headerKeyLength varint | key | headerValueLength varint | value]
//! ```

use bytes::Bytes;

use crate::{BatchHeader, RecordsError};

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

/// Decodes every record of the batch `batch` (whole batch bytes, header included),
/// decompressing if needed (output bounded by `max_decompressed`).
pub fn decode_records(
    batch: &[u8],
    max_decompressed: usize,
) -> Result<(BatchHeader, Vec<Record>), RecordsError> {
    todo!("{}{}", batch.len(), max_decompressed)
}
