//! Kafka RecordBatch v2 (magic 2): the unit that producers send, the log stores
//! and fetches return, byte for byte.
//!
//! # Layout
//!
//! - [`batch`]: [`BatchHeader`] (the fixed 61-byte header) parsed from bytes
//!   without copying, [`BatchIter`] to walk a buffer of concatenated batches,
//!   and in-place patches of the fields the broker owns (`baseOffset`,
//!   `partitionLeaderEpoch`, LogAppendTime).
//! - [`validate`]: full validation of a produced batch (magic, lengths,
//!   CRC32C, record count, offset deltas, codec) as Kafka's LogValidator does.
//! - [`record`]: individual records (varint-encoded) and their decoding.
//! - [`control`]: control batches: transaction markers (build and parse).
//! - [`builder`]: [`BatchBuilder`] to write batches (used by tests, tools and
//!   the client).
//! - [`compression`]: gzip, snappy (xerial framing), lz4 (frame), zstd.
//! - [`varint`]: zig-zag varints as Kafka encodes them.
//!
//! ```text
//! RecordBatch v2
//!  0  baseOffset            int64
//!  8  batchLength           int32   (bytes after this field)
//! 12  partitionLeaderEpoch  int32
//! 16  magic                 int8    (= 2)
//! 17  crc                   uint32  (CRC32C of bytes 21..end)
//! 21  attributes            int16   (bits 0-2 codec, 3 timestamp type,
//!                                    4 transactional, 5 control)
//! 23  lastOffsetDelta       int32
//! 27  baseTimestamp         int64
//! 35  maxTimestamp          int64
//! 43  producerId            int64
//! 51  producerEpoch         int16
//! 53  baseSequence          int32
//! 57  recordsCount          int32
//! 61  records...
//! ```

pub mod batch;
pub mod builder;
pub mod compression;
pub mod control;
pub mod record;
pub mod validate;
pub mod varint;

pub use batch::{BatchHeader, BatchIter, TimestampType};
pub use builder::BatchBuilder;
pub use compression::Compression;
pub use control::{
    build_control_batch, parse_control_record, read_control_batch, ControlRecord, ControlRecordType,
};
pub use record::{Header, Record};
pub use validate::{validate_batch, ValidatedBatch};

/// Size of the fixed RecordBatch v2 header.
pub const BATCH_HEADER_LEN: usize = 61;
/// Offset of `batchLength` + 4: the bytes before `partitionLeaderEpoch`.
pub const LOG_OVERHEAD: usize = 12;

/// Everything that can be wrong with bytes claiming to be record batches.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum RecordsError {
    #[error("buffer of {available} bytes is too short for {needed} bytes of {what}")]
    Truncated {
        what: &'static str,
        needed: usize,
        available: usize,
    },
    #[error("batch at base offset {base_offset} has magic {magic}, only magic 2 is supported")]
    UnsupportedMagic { base_offset: i64, magic: i8 },
    #[error("batch at base offset {base_offset} has invalid batchLength {length}")]
    InvalidLength { base_offset: i64, length: i32 },
    #[error(
        "batch at base offset {base_offset} has CRC {actual:#010x}, expected {expected:#010x}"
    )]
    CrcMismatch {
        base_offset: i64,
        expected: u32,
        actual: u32,
    },
    #[error("batch at base offset {base_offset} uses unknown compression codec {codec}")]
    UnknownCodec { base_offset: i64, codec: i16 },
    #[error("batch at base offset {base_offset}: {reason}")]
    InvalidRecords { base_offset: i64, reason: String },
    #[error("{codec:?} decompression failed: {reason}")]
    Decompression { codec: Compression, reason: String },
    #[error("{codec:?} compression failed: {reason}")]
    CompressionFailed { codec: Compression, reason: String },
    /// A control record key or value with a negative version (corruption).
    #[error("control record {part} has invalid version {version}")]
    InvalidControlRecord { part: &'static str, version: i16 },
    /// A control record whose type is not ABORT (0) or COMMIT (1).
    #[error(
        "control record type {control_type} is not a transaction marker (0 = ABORT, 1 = COMMIT)"
    )]
    UnknownControlRecordType { control_type: i16 },
}
