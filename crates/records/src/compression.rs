//! Kafka's codecs with Kafka's framings: gzip (RFC 1952), snappy (xerial
//! "SNAPPY" stream framing as snappy-java writes; raw snappy accepted on read),
//! lz4 (LZ4 frame format), zstd (frame).

use crate::RecordsError;

/// Attributes bits 0-2.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Compression {
    None = 0,
    Gzip = 1,
    Snappy = 2,
    Lz4 = 3,
    Zstd = 4,
}

impl Compression {
    pub fn from_attributes(attributes: i16) -> Option<Self> {
        todo!("{}", attributes)
    }
    /// Kafka's `compression.type` names: none, gzip, snappy, lz4, zstd.
    pub fn from_name(name: &str) -> Option<Self> {
        todo!("{}", name)
    }
    pub fn name(&self) -> &'static str {
        todo!()
    }
}

pub fn compress(codec: Compression, input: &[u8]) -> Result<Vec<u8>, RecordsError> {
    todo!("{:?}{}", codec, input.len())
}
/// Decompresses, failing if the output would exceed `max_out` bytes.
pub fn decompress(
    codec: Compression,
    input: &[u8],
    max_out: usize,
) -> Result<Vec<u8>, RecordsError> {
    todo!("{:?}{}{}", codec, input.len(), max_out)
}
