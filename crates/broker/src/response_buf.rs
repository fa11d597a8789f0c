//! Response frames that carry record bytes without copying them.
//!
//! Fetch responses are mostly record batches already held as `Bytes` (read
//! from the segment files). Encoding them into one buffer would copy every
//! fetched byte once more. [`ResponseBuf`] is the buffer the message encoder
//! writes into: small writes are appended to the current chunk, but a write of
//! a slice that lies inside one of the registered record buffers becomes a
//! reference to it (`Bytes::slice_ref`), so the frame is a list of chunks
//! written to the socket with one vectored write.

use bytes::buf::UninitSlice;
use bytes::{BufMut, Bytes, BytesMut};
use kafka_protocol::protocol::buf::ByteBufMut;

/// Below this size a copy is cheaper than another chunk in the vectored write.
const ZERO_COPY_MIN: usize = 1024;

/// A response frame: its chunks in order, the 4-byte size prefix first.
#[derive(Debug, Default)]
pub struct ResponseFrame {
    pub chunks: Vec<Bytes>,
}

impl ResponseFrame {
    /// A frame of one contiguous buffer (size prefix included).
    pub fn single(buf: BytesMut) -> Self {
        Self {
            chunks: vec![buf.freeze()],
        }
    }

    /// Total bytes of the frame.
    pub fn len(&self) -> usize {
        self.chunks.iter().map(Bytes::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// The encoder's output buffer; see the module docs.
#[derive(Debug)]
pub struct ResponseBuf {
    done: Vec<Bytes>,
    done_len: usize,
    current: BytesMut,
    shared: Vec<Bytes>,
}

impl ResponseBuf {
    /// A buffer that will reference, rather than copy, slices of `shared`.
    pub fn new(shared: Vec<Bytes>) -> Self {
        Self {
            done: Vec::new(),
            done_len: 0,
            current: BytesMut::with_capacity(256),
            shared,
        }
    }

    /// Finishes the frame, prefixing the 4-byte size.
    pub fn into_frame(mut self) -> ResponseFrame {
        let size = (self.done_len + self.current.len()) as u32;
        let mut chunks = Vec::with_capacity(self.done.len() + 2);
        chunks.push(Bytes::copy_from_slice(&size.to_be_bytes()));
        chunks.append(&mut self.done);
        if !self.current.is_empty() {
            chunks.push(self.current.freeze());
        }
        ResponseFrame { chunks }
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
        if src.len() >= ZERO_COPY_MIN {
            if let Some(piece) = self.shared_containing(src) {
                if !self.current.is_empty() {
                    let head = self.current.split().freeze();
                    self.done_len += head.len();
                    self.done.push(head);
                }
                self.done_len += piece.len();
                self.done.push(piece);
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
        self.current.resize(local, 0);
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
        let flat: Vec<u8> = frame
            .chunks
            .iter()
            .flat_map(|c| c.iter().copied())
            .collect();
        let mut want = ((4 + 5000 + 10 + 3000) as u32).to_be_bytes().to_vec();
        want.extend_from_slice(&42i32.to_be_bytes());
        want.extend_from_slice(&records);
        want.extend_from_slice(&records[..10]);
        want.extend_from_slice(&[1u8; 3000]);
        assert_eq!(flat, want);
        // The record chunk is the shared allocation itself.
        assert!(frame
            .chunks
            .iter()
            .any(|c| c.as_ptr() == records.as_ptr() && c.len() == 5000));
    }
}
