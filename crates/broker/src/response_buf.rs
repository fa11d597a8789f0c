//! Response frames that carry record bytes without copying them.
//!
//! Fetch responses are mostly record batches already held as `Bytes` (read
//! from the segment files). Encoding them into one buffer would copy every
//! fetched byte once more. [`ResponseBuf`] is the buffer the message encoder
//! writes into: small writes are appended to the current chunk, but a write of
//! a slice that lies inside one of the registered record buffers becomes a
//! reference to it (`Bytes::slice_ref`), so the frame is a list of chunks
//! written to the socket with one vectored write.
//!
//! On a plaintext connection the record bytes need not be read at all: the
//! fetch handler puts a [`placeholder`] of the right length where the
//! records go and hands the [`FileRecords`] it stands for to the buffer,
//! which puts a [`Chunk::File`] in the frame where the encoder writes the
//! placeholder. The connection sends such chunks with `sendfile(2)`.

use std::collections::VecDeque;

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use gregor_storage::FileRecords;
use kafka_protocol::protocol::buf::ByteBufMut;

/// Below this size a copy is cheaper than another chunk in the vectored write.
const ZERO_COPY_MIN: usize = 1024;

/// The frame's size prefix, which the encoder's first chunk starts with and
/// [`ResponseBuf::into_frame`] fills in: a response that stays one chunk (all
/// but fetch responses with record sets) is then one allocation and one write.
const SIZE_PREFIX: usize = 4;

/// The largest record set a placeholder can stand for. Never read or
/// written, so it stays untouched, zero-filled address space (`.bss`) that
/// costs no memory; a larger record set is read into memory instead.
pub const PLACEHOLDER_MAX: usize = 16 << 20;
static PLACEHOLDER: [u8; PLACEHOLDER_MAX] = [0; PLACEHOLDER_MAX];

/// Bytes of length `len` standing for records the encoder must not copy:
/// only their length and address are used (None past [`PLACEHOLDER_MAX`]).
pub fn placeholder(len: usize) -> Option<Bytes> {
    PLACEHOLDER.get(..len).map(Bytes::from_static)
}

/// Whether `src` is (part of) a placeholder.
pub fn is_placeholder(src: &[u8]) -> bool {
    let start = PLACEHOLDER.as_ptr() as usize;
    let p = src.as_ptr() as usize;
    !src.is_empty() && p >= start && p + src.len() <= start + PLACEHOLDER_MAX
}

/// A piece of a response frame.
#[derive(Debug, Clone)]
pub enum Chunk {
    Bytes(Bytes),
    /// Record bytes to send from their segment file.
    File(FileRecords),
}

impl Chunk {
    pub fn len(&self) -> usize {
        match self {
            Self::Bytes(b) => b.len(),
            Self::File(f) => f.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A response frame: its chunks in order, the 4-byte size prefix first.
#[derive(Debug, Default)]
pub struct ResponseFrame {
    pub chunks: Vec<Chunk>,
}

impl ResponseFrame {
    /// A frame of one contiguous buffer (size prefix included).
    pub fn single(buf: BytesMut) -> Self {
        Self {
            chunks: vec![Chunk::Bytes(buf.freeze())],
        }
    }

    /// Total bytes of the frame.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Chunk::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The encoder's output buffer; see the module docs.
#[derive(Debug)]
pub struct ResponseBuf {
    done: Vec<Chunk>,
    /// Bytes in `done`, plus the size prefix once it has left `current`:
    /// `done_len + current.len()` is the offset the encoder sees, prefix
    /// included, in the same terms before and after a chunk is done.
    done_len: usize,
    /// Starts with the [`SIZE_PREFIX`] until the first chunk is done.
    current: BytesMut,
    shared: Vec<Bytes>,
    /// What the placeholders stand for, in the order they are encoded.
    files: VecDeque<FileRecords>,
    /// A placeholder (of this length) came without its file.
    unmatched: Option<usize>,
}

/// A placeholder in the encoded response did not match the file records
/// given for it: the frame would carry zeros instead of records.
#[derive(Debug, thiserror::Error)]
#[error("a fetch response placeholder of {len} bytes has no matching file records")]
pub struct UnmatchedPlaceholder {
    pub len: usize,
}

impl ResponseBuf {
    /// A buffer that will reference, rather than copy, slices of `shared`.
    pub fn new(shared: Vec<Bytes>) -> Self {
        let mut current = BytesMut::with_capacity(256);
        current.put_bytes(0, SIZE_PREFIX);
        Self {
            done: Vec::new(),
            done_len: 0,
            current,
            shared,
            files: VecDeque::new(),
            unmatched: None,
        }
    }

    /// Also sends `files` from their files where the encoder writes their
    /// [`placeholder`]s (in this order).
    pub fn with_files(shared: Vec<Bytes>, files: Vec<FileRecords>) -> Self {
        Self {
            files: files.into(),
            ..Self::new(shared)
        }
    }

    /// Finishes the frame, prefixing the 4-byte size.
    pub fn into_frame(mut self) -> ResponseFrame {
        let size = (self.done_len + self.current.len() - SIZE_PREFIX) as u32;
        if self.done.is_empty() {
            self.current[..SIZE_PREFIX].copy_from_slice(&size.to_be_bytes());
            return ResponseFrame::single(self.current);
        }
        let mut chunks = Vec::with_capacity(self.done.len() + 2);
        chunks.push(Chunk::Bytes(Bytes::copy_from_slice(&size.to_be_bytes())));
        chunks.append(&mut self.done);
        if !self.current.is_empty() {
            chunks.push(Chunk::Bytes(self.current.freeze()));
        }
        ResponseFrame { chunks }
    }

    /// [`ResponseBuf::into_frame`], checking every placeholder got its file.
    pub fn try_into_frame(self) -> Result<ResponseFrame, UnmatchedPlaceholder> {
        match self.unmatched {
            Some(len) => Err(UnmatchedPlaceholder { len }),
            None => Ok(self.into_frame()),
        }
    }

    fn push_done(&mut self, chunk: Chunk) {
        if self.done.is_empty() {
            // The frame's size is not known yet: the first chunk goes
            // without the prefix, which `into_frame` puts in a chunk of its own.
            bytes::Buf::advance(&mut self.current, SIZE_PREFIX);
            self.done_len += SIZE_PREFIX;
        }
        if !self.current.is_empty() {
            let head = self.current.split().freeze();
            self.done_len += head.len();
            self.done.push(Chunk::Bytes(head));
        }
        self.done_len += chunk.len();
        self.done.push(chunk);
    }

    fn shared_containing(&self, src: &[u8]) -> Option<Bytes> {
        let start = src.as_ptr() as usize;
        let end = start + src.len();
        self.shared.iter().find_map(|b| {
            let b_start = b.as_ptr() as usize;
            (start >= b_start && end <= b_start + b.len()).then(|| b.slice_ref(src))
        })
    }
}

// SAFETY: every method delegates to the current `BytesMut`, whose BufMut
// implementation upholds the trait's contract; `put_slice` either delegates
// or records a chunk without touching uninitialised memory.
unsafe impl BufMut for ResponseBuf {
    fn remaining_mut(&self) -> usize {
        self.current.remaining_mut()
    }

    unsafe fn advance_mut(&mut self, cnt: usize) {
        // SAFETY: the caller guarantees `cnt` bytes of `chunk_mut()` were initialised.
        unsafe { self.current.advance_mut(cnt) }
    }

    fn chunk_mut(&mut self) -> &mut UninitSlice {
        self.current.chunk_mut()
    }

    fn put_slice(&mut self, src: &[u8]) {
        if is_placeholder(src) {
            match self.files.pop_front() {
                Some(f) if f.len() == src.len() => self.push_done(Chunk::File(f)),
                _ => {
                    // Keeps the frame's length right; try_into_frame refuses it.
                    self.unmatched = Some(src.len());
                    self.current.extend_from_slice(src);
                }
            }
            return;
        }
        if src.len() >= ZERO_COPY_MIN {
            if let Some(piece) = self.shared_containing(src) {
                self.push_done(Chunk::Bytes(piece));
                return;
            }
        }
        self.current.extend_from_slice(src);
    }
}

impl ByteBufMut for ResponseBuf {
    fn offset(&self) -> usize {
        self.done_len + self.current.len()
    }

    /// Only within the current chunk (message encoding never seeks; record
    /// batch encoding, which does, never writes into a ResponseBuf).
    fn seek(&mut self, offset: usize) {
        let local = offset.saturating_sub(self.done_len);
        // Never into the size prefix while it is still in `current`.
        let floor = if self.done.is_empty() { SIZE_PREFIX } else { 0 };
        self.current.resize(local.max(floor), 0);
    }

    fn range(&mut self, r: std::ops::Range<usize>) -> &mut [u8] {
        let start = r
            .start
            .saturating_sub(self.done_len)
            .min(self.current.len());
        let end = r
            .end
            .saturating_sub(self.done_len)
            .clamp(start, self.current.len());
        &mut self.current[start..end]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn large_shared_slices_are_referenced_small_ones_copied() {
        let records = Bytes::from(vec![7u8; 5000]);
        let mut buf = ResponseBuf::new(vec![records.clone()]);
        buf.put_i32(42);
        buf.put_slice(&records[..]);
        buf.put_slice(&records[..10]); // small: copied
        buf.put_slice(&vec![1u8; 3000]); // not shared: copied
        let frame = buf.into_frame();
        let flat = flatten(&frame);
        let mut want = ((4 + 5000 + 10 + 3000) as u32).to_be_bytes().to_vec();
        want.extend_from_slice(&42i32.to_be_bytes());
        want.extend_from_slice(&records);
        want.extend_from_slice(&records[..10]);
        want.extend_from_slice(&[1u8; 3000]);
        assert_eq!(flat, want);
        // The record chunk is the shared allocation itself.
        assert!(frame.chunks.iter().any(
            |c| matches!(c, Chunk::Bytes(c) if c.as_ptr() == records.as_ptr() && c.len() == 5000)
        ));
    }

    fn flatten(frame: &ResponseFrame) -> Vec<u8> {
        let mut out = Vec::new();
        for c in &frame.chunks {
            match c {
                Chunk::Bytes(b) => out.extend_from_slice(b),
                Chunk::File(f) => out.extend_from_slice(&f.read().unwrap()),
            }
        }
        out
    }

    #[test]
    fn a_placeholder_without_its_file_is_refused() {
        let mut buf = ResponseBuf::with_files(Vec::new(), Vec::new());
        buf.put_i32(1);
        buf.put_slice(&placeholder(10).unwrap());
        assert!(buf.try_into_frame().is_err());
        assert!(placeholder(PLACEHOLDER_MAX + 1).is_none());
    }
}

/// The frame a sendfile response puts on the wire is byte for byte the frame
/// of the vectored path (records read into memory), over random logs and reads.
#[cfg(test)]
mod sendfile_tests {
    use std::sync::Arc;

    use bytes::Bytes;
    use gregor_records::{BatchBuilder, Compression, Record};
    use gregor_storage::{Clock, Log, LogConfig, ManualClock, TopicPartition};
    use kafka_protocol::messages::fetch_response::{FetchableTopicResponse, PartitionData};
    use kafka_protocol::messages::{FetchResponse, TopicName};
    use kafka_protocol::protocol::{Encodable, StrBytes};
    use proptest::prelude::*;
    use tokio::io::AsyncReadExt;

    use super::*;
    use crate::connection::write_frame;
    use crate::transport::frame_io::FrameWriter;

    fn batch(n: usize, value_len: usize) -> BytesMut {
        let mut b = BatchBuilder::new(0, Compression::None);
        for _ in 0..n {
            b.push(Record {
                offset: 0,
                timestamp: 1_000,
                key: None,
                value: Some(Bytes::from(vec![b'v'; value_len])),
                headers: vec![],
            });
        }
        b.build().unwrap()
    }

    /// One partition's read: (fetch offset fraction, max bytes, min one batch).
    type Read = (f64, usize, bool);

    /// The response for `reads` over `logs`, with records in memory
    /// (`files` false) or as placeholders plus their file records.
    fn encode(logs: &[Log], reads: &[Read], version: i16, files: bool) -> ResponseFrame {
        let mut resp = FetchResponse::default();
        let mut placed = Vec::new();
        let mut shared = Vec::new();
        let mut t = FetchableTopicResponse::default();
        t.topic = TopicName(StrBytes::from_static_str("t"));
        for (i, (at, max, min_one)) in reads.iter().enumerate() {
            let log = &logs[i % logs.len()];
            let offset = (log.log_end_offset() as f64 * at) as i64;
            let mut pd = PartitionData::default();
            pd.partition_index = i as i32;
            pd.high_watermark = log.log_end_offset();
            pd.records = Some(if files {
                match log
                    .read_file(offset, *max, *min_one, i64::MAX)
                    .unwrap()
                    .records
                {
                    Some(f) => {
                        let p = placeholder(f.len()).unwrap();
                        placed.push(f);
                        p
                    }
                    None => Bytes::new(),
                }
            } else {
                let r = log.read(offset, *max, *min_one, i64::MAX).unwrap().records;
                shared.push(r.clone());
                r
            });
            t.partitions.push(pd);
        }
        resp.responses.push(t);
        let mut buf = ResponseBuf::with_files(shared, placed);
        resp.encode(&mut buf, version).unwrap();
        buf.try_into_frame().unwrap()
    }

    /// What `frame` puts on a loopback TCP socket (sendfile for file chunks).
    async fn over_tcp(frame: ResponseFrame) -> Vec<u8> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let len = frame.len();
        let reader = tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut out = vec![0u8; len];
            s.read_exact(&mut out).await.unwrap();
            out
        });
        let socket = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (_rd, wr) = socket.into_split();
        let mut writer = FrameWriter::new(wr);
        write_frame(&mut writer, frame).await.unwrap();
        tokio::io::AsyncWriteExt::flush(&mut writer).await.unwrap();
        reader.await.unwrap()
    }

    /// What `frame` puts on a stream that is not a socket (TLS's path).
    async fn over_stream(frame: ResponseFrame) -> Vec<u8> {
        let len = frame.len();
        let (a, mut b) = tokio::io::duplex(len.max(1));
        let (_rd, wr) = tokio::io::split(a);
        let mut writer = FrameWriter::new(wr);
        write_frame(&mut writer, frame).await.unwrap();
        tokio::io::AsyncWriteExt::flush(&mut writer).await.unwrap();
        let mut out = vec![0u8; len];
        b.read_exact(&mut out).await.unwrap();
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 32, ..ProptestConfig::default() })]

        #[test]
        fn sendfile_frames_equal_vectored_frames(
            batches in prop::collection::vec((1usize..30, 0usize..2000), 1..40),
            reads in prop::collection::vec((0.0f64..1.0, 0usize..200_000, any::<bool>()), 1..6),
            version in prop::sample::select(vec![4i16, 11, 12, 16]),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let clock: Arc<dyn Clock> = Arc::new(ManualClock::new(1_000));
            let config = LogConfig {
                segment_bytes: 64 * 1024,
                index_interval_bytes: 1024,
                ..LogConfig::default()
            };
            // Two partitions, batches dealt between them.
            let logs: Vec<Log> = (0..2)
                .map(|p| {
                    let tp = TopicPartition::new("t", p);
                    Log::open(dir.path().join(format!("t-{p}")), tp, config.clone(), clock.clone(), 0, 0).unwrap()
                })
                .collect();
            for (i, (n, len)) in batches.iter().enumerate() {
                logs[i % 2].append_as_leader(batch(*n, *len), 0).unwrap();
            }
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            let vectored = rt.block_on(over_tcp(encode(&logs, &reads, version, false)));
            let sent = rt.block_on(over_tcp(encode(&logs, &reads, version, true)));
            let streamed = rt.block_on(over_stream(encode(&logs, &reads, version, true)));
            prop_assert_eq!(&sent, &vectored);
            prop_assert_eq!(&streamed, &vectored);
        }
    }
}
