//! A connection's byte buffers, held only while bytes move.
//!
//! Most of a broker's connections are idle most of the time (10,000 idle
//! clients is an ordinary deployment), so what an idle connection holds is
//! what the broker's memory grows with. A [`FrameReader`] has no read buffer
//! while it waits for a request: on a plain socket it waits for readability
//! ([`FrameRead::ready`]) and only then takes a buffer, which it gives back
//! before it waits again. A [`FrameWriter`] takes its write buffer for the
//! first small response and gives it back at each flush. An idle plaintext
//! connection then holds its task, its contexts and the socket, no buffer.
//!
//! # Reused read buffers
//!
//! A busy connection would otherwise allocate and free an 8 KiB read buffer
//! for every request it waits for (a consumer polling back to back: one per
//! fetch). So the buffers a reader gives back go to a small cache of the
//! worker thread it runs on ([`CACHED_PER_THREAD`] buffers at most, so the
//! cache's memory is bounded by the worker count, not by the connections),
//! and the next socket that turns readable on that thread takes one from
//! there.
//!
//! Frames are split off the buffer without a copy: a frame is a `Bytes` into
//! the buffer's allocation, and handlers may keep slices of it (a parked
//! request, a group member's metadata). A buffer is therefore reused only
//! when no frame references it any more (`BytesMut::try_reclaim`, which
//! succeeds only for the allocation's last owner); a buffer still referenced
//! is dropped by the reader and freed with the last frame. The reader gives
//! its buffer back when it next waits, not when the last frame is split off:
//! by then the connection has handled that frame (requests are handled one
//! at a time), so the buffer is usually free again. While a frame is being
//! handled the reader still shares its allocation, so a produce request's
//! records that are the whole rest of a frame are copied before their
//! offsets are patched rather than patched where they arrived; that copy is
//! of the request's size, while the buffer it saves is 8 KiB (and flexible
//! produce versions, v9 and later, copy anyway: the request's tagged fields
//! after the records keep the frame shared).
//!
//! TLS streams keep their read buffer while idle: rustls may hold decrypted
//! bytes the socket no longer shows, so readability of the socket says
//! nothing; TLS state is per-connection memory anyway.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};
use tokio::net::TcpStream;

/// A read buffer's size: enough for many small pipelined requests per read;
/// larger frames bypass it (read straight into the frame).
pub const READ_BUFFER: usize = 8 * 1024;
/// How many unused read buffers a worker thread keeps for the next readable
/// socket: enough for the connections that turn readable together on one
/// thread to reuse buffers, few enough that the cache is at most 32 KiB per
/// thread whatever the number of connections.
pub const CACHED_PER_THREAD: usize = 4;

thread_local! {
    /// This thread's unused read buffers, each empty, unshared and of
    /// [`READ_BUFFER`] bytes.
    static READ_BUFFERS: RefCell<Vec<BytesMut>> = const { RefCell::new(Vec::new()) };
}

/// A read buffer of [`READ_BUFFER`] bytes: one this thread had cached, or a
/// new one.
fn take_buffer() -> BytesMut {
    READ_BUFFERS
        .try_with(|cache| cache.borrow_mut().pop())
        .ok()
        .flatten()
        .unwrap_or_else(|| BytesMut::with_capacity(READ_BUFFER))
}

/// Keeps `buf` for the next [`take_buffer`] on this thread if no frame
/// references its allocation any more and the cache has room; otherwise
/// drops it (freed now, or with the last frame that still references it).
fn give_back(mut buf: BytesMut) {
    if buf.capacity() == 0 {
        return;
    }
    buf.clear();
    // Succeeds only when this handle is the allocation's last owner: a
    // reclaimed buffer starts at its allocation's start again, so reading
    // into it can only ever overwrite bytes nobody else sees.
    if !buf.try_reclaim(READ_BUFFER) || buf.capacity() > 2 * READ_BUFFER {
        return;
    }
    let _ = READ_BUFFERS.try_with(|cache| {
        let mut cache = cache.borrow_mut();
        if cache.len() < CACHED_PER_THREAD {
            cache.push(buf);
        }
    });
}

/// How many read buffers this thread has cached (for tests and the bench).
pub fn cached_read_buffers() -> usize {
    READ_BUFFERS
        .try_with(|cache| cache.borrow().len())
        .unwrap_or(0)
}

/// A write buffer's size, for small responses (produce acknowledgements)
/// batched into one write; larger writes go straight to the stream.
pub const WRITE_BUFFER: usize = 8 * 1024;

/// A connection's read side.
pub trait FrameRead: AsyncRead + Unpin + Send {
    /// Whether [`FrameRead::ready`] really waits; streams that cannot tell
    /// wait in `read` with their buffer.
    const READY_WAITS: bool = false;

    /// Waits until a read would probably not wait (bytes, end of stream or
    /// an error), holding no buffer meanwhile.
    fn ready(&self) -> impl Future<Output = io::Result<()>> + Send {
        std::future::ready(Ok(()))
    }
}

impl FrameRead for tokio::net::tcp::OwnedReadHalf {
    const READY_WAITS: bool = true;

    fn ready(&self) -> impl Future<Output = io::Result<()>> + Send {
        // May report readiness left over from before (a new socket, a read
        // that drained the socket exactly): the reader then tries once and
        // comes back here without its buffer.
        self.readable()
    }
}

impl<S: AsyncRead + Send> FrameRead for tokio::io::ReadHalf<S> {}

/// A connection's write side. On a plain socket, record bytes go from
/// their segment file to the socket with `sendfile(2)`, never through user
/// space; any other stream (TLS) gets them read into memory.
pub trait FrameWrite: AsyncWrite + Unpin + Send {
    /// The socket, when file bytes may be sent to it straight from the file.
    fn socket(&self) -> Option<&TcpStream> {
        None
    }
}

impl FrameWrite for tokio::net::tcp::OwnedWriteHalf {
    fn socket(&self) -> Option<&TcpStream> {
        Some(self.as_ref())
    }
}

impl<S: AsyncRead + AsyncWrite + Send> FrameWrite for tokio::io::WriteHalf<S> {}

/// Reads size-prefixed frames, with a buffer only while bytes are arriving.
#[derive(Debug)]
pub struct FrameReader<R> {
    inner: R,
    /// Bytes read and not yet consumed. Empty, it may still hold the
    /// allocation the last frames were split from, given back (or dropped)
    /// before the reader waits again.
    buf: BytesMut,
}

impl<R: FrameRead> FrameReader<R> {
    pub fn new(inner: R) -> Self {
        Self {
            inner,
            buf: BytesMut::new(),
        }
    }

    /// Whether bytes of a next request are already here (pipelined), so
    /// answers may wait in the write buffer for the next one's.
    pub fn has_buffered(&self) -> bool {
        !self.buf.is_empty()
    }

    /// Bytes of memory the reader holds now (for tests and the bench).
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// The next frame's size prefix, or `None` when the stream ends between
    /// frames. Cancel safe: bytes read are kept for the next call.
    pub async fn read_size(&mut self) -> io::Result<Option<i32>> {
        while self.buf.len() < 4 {
            if self.fill(4).await? == 0 {
                // Kafka treats a stream ending inside a size as a close too.
                return Ok(None);
            }
        }
        Ok(Some(self.buf.get_i32()))
    }

    /// The frame of `size` bytes after its prefix. A frame that fits the
    /// buffer is split off it (no copy); a larger one is read straight into
    /// its own allocation of exactly `size` bytes, never zeroed.
    pub async fn read_frame(&mut self, size: usize) -> io::Result<Bytes> {
        if size <= READ_BUFFER {
            while self.buf.len() < size {
                if self.fill(size).await? == 0 {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
            }
            return Ok(self.buf.split_to(size).freeze());
        }
        if self.buf.len() >= size {
            return Ok(self.buf.split_to(size).freeze());
        }
        let mut frame = BytesMut::with_capacity(size);
        frame.extend_from_slice(&self.buf);
        give_back(std::mem::take(&mut self.buf));
        while frame.len() < size {
            let want = (size - frame.len()) as u64;
            if (&mut self.inner).take(want).read_buf(&mut frame).await? == 0 {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
        }
        Ok(frame.freeze())
    }

    /// Reads more bytes, at least `want` buffered bytes fitting; 0 at the
    /// end of the stream.
    async fn fill(&mut self, want: usize) -> io::Result<usize> {
        let target = READ_BUFFER.max(want);
        if self.buf.is_empty() {
            if R::READY_WAITS {
                loop {
                    // Nothing pending: wait without a buffer, then read what is
                    // there into one from this thread's cache; if nothing is
                    // (the readiness was stale), give it back and wait again.
                    // The read is tokio's, which clears readiness after a short
                    // read, so the next wait is for new bytes, without an extra
                    // syscall.
                    give_back(std::mem::take(&mut self.buf));
                    self.inner.ready().await?;
                    self.buf = take_buffer();
                    self.buf.reserve(target);
                    let (inner, buf) = (&mut self.inner, &mut self.buf);
                    let once =
                        std::future::poll_fn(|cx| Poll::Ready(poll_read_buf(inner, buf, cx))).await;
                    if let Poll::Ready(n) = once {
                        return n;
                    }
                }
            }
            // A stream that waits in `read` with its buffer (TLS): the same
            // buffer again if no frame holds it any more, else a cached one.
            if !self.buf.try_reclaim(target) {
                self.buf = take_buffer();
                self.buf.reserve(target);
            }
        } else if self.buf.capacity() < target && !self.buf.try_reclaim(target - self.buf.len()) {
            // The start of a frame at the end of a buffer whose earlier
            // frames are still referenced: it moves to a buffer of its own.
            let mut fresh = take_buffer();
            fresh.reserve(target);
            fresh.extend_from_slice(&self.buf);
            give_back(std::mem::replace(&mut self.buf, fresh));
        }
        self.inner.read_buf(&mut self.buf).await
    }
}

impl<R> Drop for FrameReader<R> {
    /// A closed connection's buffer serves the next readable socket.
    fn drop(&mut self) {
        give_back(std::mem::take(&mut self.buf));
    }
}

/// One `poll_read` into `buf`'s spare capacity.
fn poll_read_buf<R: AsyncRead + Unpin>(
    inner: &mut R,
    buf: &mut BytesMut,
    cx: &mut Context<'_>,
) -> Poll<io::Result<usize>> {
    let spare = buf.spare_capacity_mut();
    let mut read = tokio::io::ReadBuf::uninit(spare);
    ready!(Pin::new(inner).poll_read(cx, &mut read))?;
    let n = read.filled().len();
    // SAFETY: `poll_read` initialised the first `n` bytes of the spare
    // capacity (`ReadBuf::filled`).
    unsafe { buf.set_len(buf.len() + n) };
    Poll::Ready(Ok(n))
}

/// A write buffer that exists only between the first buffered write and the
/// next flush; otherwise tokio's `BufWriter`: writes that do not fit go
/// straight to the stream.
#[derive(Debug)]
pub struct FrameWriter<W> {
    inner: W,
    buf: Vec<u8>,
    /// Bytes of `buf` already written to `inner`.
    written: usize,
    /// Writes go straight to `inner` while nothing is buffered
    /// ([`FrameWriter::write_through`]).
    through: bool,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    pub fn new(inner: W) -> Self {
        Self {
            inner,
            buf: Vec::new(),
            written: 0,
            through: false,
        }
    }

    /// With `on`, writes made while nothing is buffered go straight to the
    /// stream: for a response that is flushed right after anyway (no
    /// further request waiting), copying it into a buffer first would only
    /// cost an allocation and a copy. A request-response client (a consumer
    /// polling one partition) then gets each answer in one write from the
    /// response's own chunks.
    pub fn write_through(&mut self, on: bool) {
        self.through = on;
    }

    pub fn get_ref(&self) -> &W {
        &self.inner
    }

    /// Bytes of memory the writer holds now (for tests and the bench).
    pub fn buffer_capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// Writes the buffered bytes out and gives the buffer back.
    fn poll_flush_buf(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.written < self.buf.len() {
            match ready!(Pin::new(&mut self.inner).poll_write(cx, &self.buf[self.written..])) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.written += n,
                Err(e) => return Poll::Ready(Err(e)),
            }
        }
        self.buf = Vec::new();
        self.written = 0;
        Poll::Ready(Ok(()))
    }

    fn buffer(&mut self, bytes: &[u8]) {
        if self.buf.capacity() == 0 {
            self.buf.reserve_exact(WRITE_BUFFER);
        }
        self.buf.extend_from_slice(bytes);
    }
}

impl<W: AsyncWrite + Unpin> AsyncWrite for FrameWriter<W> {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bytes: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        if this.buf.len() + bytes.len() > WRITE_BUFFER {
            ready!(this.poll_flush_buf(cx))?;
        }
        if bytes.len() >= WRITE_BUFFER || (this.through && this.buf.is_empty()) {
            Pin::new(&mut this.inner).poll_write(cx, bytes)
        } else {
            this.buffer(bytes);
            Poll::Ready(Ok(bytes.len()))
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let total = bufs.iter().map(|b| b.len()).sum::<usize>();
        if this.buf.len() + total > WRITE_BUFFER {
            ready!(this.poll_flush_buf(cx))?;
        }
        if total >= WRITE_BUFFER || (this.through && this.buf.is_empty()) {
            Pin::new(&mut this.inner).poll_write_vectored(cx, bufs)
        } else {
            for b in bufs {
                this.buffer(b);
            }
            Poll::Ready(Ok(total))
        }
    }

    fn is_write_vectored(&self) -> bool {
        true
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_flush_buf(cx))?;
        Pin::new(&mut this.inner).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        ready!(this.poll_flush_buf(cx))?;
        Pin::new(&mut this.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use tokio::io::{AsyncWriteExt, ReadHalf};
    use tokio::net::tcp::OwnedReadHalf;

    use super::*;

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut v = (payload.len() as i32).to_be_bytes().to_vec();
        v.extend_from_slice(payload);
        v
    }

    async fn tcp_pair() -> (FrameReader<OwnedReadHalf>, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let (rd, _wr) = server.into_split();
        (FrameReader::new(rd), client)
    }

    /// Polls a read of the next frame's size once and abandons it, as the
    /// connection loop's select does when it stops waiting (shutdown, idle
    /// timeout): what the reader holds then is what an idle connection
    /// holds. Nothing may be pending on the stream.
    fn wait_once<R: FrameRead>(reader: &mut FrameReader<R>) {
        let mut cx = Context::from_waker(std::task::Waker::noop());
        let read = std::pin::pin!(reader.read_size());
        assert!(read.poll(&mut cx).is_pending(), "nothing was sent");
    }

    /// Distinct contents for frame `i`; every 50th is larger than a read
    /// buffer, the others up to 2 KB so that bursts of them cross buffers.
    fn payload(i: usize) -> Vec<u8> {
        let len = if i % 50 == 49 {
            READ_BUFFER + READ_BUFFER / 2
        } else {
            1 + (i * 373) % 2000
        };
        (0..len).map(|j| (i * 31 + j * 7) as u8).collect()
    }

    /// Writes bursts of pipelined frames and reads each burst back, holding
    /// some frames (as a parked request or a kept slice would) while later
    /// reads reuse buffers: a held frame must keep its bytes.
    async fn held_frames_survive_later_reads<R: FrameRead>(
        reader: &mut FrameReader<R>,
        client: &mut (impl AsyncWrite + Unpin),
    ) {
        let mut held = Vec::new();
        let mut i = 0;
        for burst in 0..60 {
            let n = 1 + burst % 7;
            let bytes: Vec<u8> = (i..i + n).flat_map(|k| framed(&payload(k))).collect();
            client.write_all(&bytes).await.unwrap();
            client.flush().await.unwrap();
            for _ in 0..n {
                let size = reader.read_size().await.unwrap().unwrap() as usize;
                let frame = reader.read_frame(size).await.unwrap();
                assert_eq!(&frame[..], &payload(i)[..], "frame {i} as read");
                if i % 5 == 0 {
                    held.push((i, frame));
                }
                i += 1;
            }
            assert!(cached_read_buffers() <= CACHED_PER_THREAD);
        }
        for (i, frame) in &held {
            assert_eq!(&frame[..], &payload(*i)[..], "frame {i} after later reads");
        }
    }

    #[tokio::test]
    async fn a_held_frame_is_never_overwritten_by_a_reused_buffer() {
        let (mut reader, mut client) = tcp_pair().await;
        held_frames_survive_later_reads(&mut reader, &mut client).await;
        // A stream that keeps its buffer while waiting (TLS) reuses it in place.
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let (rd, _wr) = tokio::io::split(a);
        let mut reader = FrameReader::new(rd);
        held_frames_survive_later_reads(&mut reader, &mut b).await;
    }

    #[tokio::test]
    async fn a_buffer_no_frame_references_is_reused() {
        let (mut reader, mut client) = tcp_pair().await;
        client.write_all(&framed(b"first")).await.unwrap();
        let size = reader.read_size().await.unwrap().unwrap() as usize;
        let first = reader.read_frame(size).await.unwrap();
        let at = first.as_ptr();
        drop(first);
        wait_once(&mut reader);
        assert_eq!(reader.buffer_capacity(), 0);
        client.write_all(&framed(b"again")).await.unwrap();
        let size = reader.read_size().await.unwrap().unwrap() as usize;
        let again = reader.read_frame(size).await.unwrap();
        assert_eq!(
            again.as_ptr(),
            at,
            "the same buffer, from this thread's cache"
        );
        // Held, the frame keeps the buffer from the cache: the next read
        // gets another one.
        wait_once(&mut reader);
        client.write_all(&framed(b"third")).await.unwrap();
        let size = reader.read_size().await.unwrap().unwrap() as usize;
        let third = reader.read_frame(size).await.unwrap();
        assert_ne!(third.as_ptr(), at);
        assert_eq!(&again[..], b"again");
        assert_eq!(&third[..], b"third");
    }

    #[tokio::test]
    async fn the_read_buffer_cache_stays_bounded() {
        let mut pairs = Vec::new();
        for _ in 0..3 * CACHED_PER_THREAD {
            pairs.push(tcp_pair().await);
        }
        // Every connection busy at once: each holds a buffer.
        for (reader, client) in &mut pairs {
            client.write_all(&framed(b"ping")).await.unwrap();
            let size = reader.read_size().await.unwrap().unwrap() as usize;
            assert_eq!(&reader.read_frame(size).await.unwrap()[..], b"ping");
            assert!(reader.buffer_capacity() > 0);
        }
        // Then all idle: they give their buffers back; the cache keeps a few.
        for (reader, _) in &mut pairs {
            wait_once(reader);
            assert_eq!(reader.buffer_capacity(), 0);
            assert!(cached_read_buffers() <= CACHED_PER_THREAD);
        }
        assert_eq!(cached_read_buffers(), CACHED_PER_THREAD);
        // Busy readers dropped (closed connections) give theirs back too.
        for (reader, client) in &mut pairs {
            client.write_all(&framed(b"pong")).await.unwrap();
            let size = reader.read_size().await.unwrap().unwrap() as usize;
            assert_eq!(&reader.read_frame(size).await.unwrap()[..], b"pong");
        }
        drop(pairs);
        assert_eq!(cached_read_buffers(), CACHED_PER_THREAD);
    }

    #[tokio::test]
    async fn an_idle_socket_reader_holds_no_buffer() {
        let (mut reader, mut client) = tcp_pair().await;
        wait_once(&mut reader);
        assert_eq!(reader.buffer_capacity(), 0);
        client.write_all(&framed(b"hello")).await.unwrap();
        assert_eq!(reader.read_size().await.unwrap(), Some(5));
        assert_eq!(&reader.read_frame(5).await.unwrap()[..], b"hello");
        assert!(!reader.has_buffered());
        wait_once(&mut reader);
        assert_eq!(reader.buffer_capacity(), 0, "given back before waiting");
        drop(client);
        assert_eq!(reader.read_size().await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_request_split_across_many_small_writes() {
        let (mut reader, mut client) = tcp_pair().await;
        let payload: Vec<u8> = (0..3000u32).map(|i| i as u8).collect();
        let bytes = framed(&payload);
        let writer = tokio::spawn(async move {
            for chunk in bytes.chunks(7) {
                client.write_all(chunk).await.unwrap();
                client.flush().await.unwrap();
                tokio::task::yield_now().await;
            }
            client
        });
        let size = reader.read_size().await.unwrap().unwrap();
        assert_eq!(size as usize, payload.len());
        assert_eq!(
            &reader.read_frame(size as usize).await.unwrap()[..],
            &payload[..]
        );
        let _client = writer.await.unwrap();
        wait_once(&mut reader);
        assert_eq!(reader.buffer_capacity(), 0);
    }

    #[tokio::test]
    async fn a_large_request_after_idleness_and_pipelined_small_ones() {
        let (mut reader, mut client) = tcp_pair().await;
        let large: Vec<u8> = (0..(3 * READ_BUFFER + 5))
            .map(|i| (i % 251) as u8)
            .collect();
        let mut bytes = framed(b"first");
        bytes.extend(framed(&large));
        bytes.extend(framed(b"third"));
        let writer = tokio::spawn(async move {
            client.write_all(&bytes).await.unwrap();
            client
        });
        let mut frames = Vec::new();
        while frames.len() < 3 {
            let size = reader.read_size().await.unwrap().unwrap() as usize;
            frames.push(reader.read_frame(size).await.unwrap());
        }
        assert_eq!(&frames[0][..], b"first");
        assert_eq!(&frames[1][..], &large[..]);
        assert_eq!(&frames[2][..], b"third");
        assert!(!reader.has_buffered());
        let _client = writer.await.unwrap();
        wait_once(&mut reader);
        assert_eq!(reader.buffer_capacity(), 0);
    }

    #[tokio::test]
    async fn generic_streams_read_the_same_frames() {
        let (a, mut b) = tokio::io::duplex(64);
        let (rd, _wr) = tokio::io::split(a);
        let mut reader: FrameReader<ReadHalf<_>> = FrameReader::new(rd);
        let large = vec![7u8; READ_BUFFER + 1];
        let mut bytes = framed(&large);
        bytes.extend(framed(b"x"));
        bytes.extend_from_slice(&[0, 0]); // a size cut short by the close
        let writer = tokio::spawn(async move {
            b.write_all(&bytes).await.unwrap();
        });
        let size = reader.read_size().await.unwrap().unwrap() as usize;
        assert_eq!(reader.read_frame(size).await.unwrap(), large);
        assert_eq!(reader.read_size().await.unwrap(), Some(1));
        assert_eq!(&reader.read_frame(1).await.unwrap()[..], b"x");
        writer.await.unwrap();
        assert_eq!(reader.read_size().await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_body_cut_short_is_an_error() {
        let (a, mut b) = tokio::io::duplex(64);
        let (rd, _wr) = tokio::io::split(a);
        let mut reader = FrameReader::new(rd);
        b.write_all(&[0, 0, 0, 10, 1, 2]).await.unwrap();
        drop(b);
        assert_eq!(reader.read_size().await.unwrap(), Some(10));
        let err = reader.read_frame(10).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn a_response_larger_than_the_buffer_and_small_ones_batched() {
        let (a, mut b) = tokio::io::duplex(1 << 20);
        let (_rd, wr) = tokio::io::split(a);
        let mut writer = FrameWriter::new(wr);
        assert_eq!(writer.buffer_capacity(), 0);
        writer.write_all(b"small").await.unwrap();
        assert_eq!(writer.buffer_capacity(), WRITE_BUFFER);
        let large: Vec<u8> = (0..(2 * WRITE_BUFFER + 3)).map(|i| i as u8).collect();
        writer.write_all(&large).await.unwrap();
        let parts = [
            io::IoSlice::new(b"ab"),
            io::IoSlice::new(&large),
            io::IoSlice::new(b"cd"),
        ];
        let mut n = writer.write_vectored(&parts).await.unwrap();
        let mut expected = b"small".to_vec();
        expected.extend_from_slice(&large);
        let all: Vec<u8> = parts.iter().flat_map(|p| p.to_vec()).collect();
        // Vectored writes may be partial: finish them.
        while n < all.len() {
            n += writer.write(&all[n..]).await.unwrap();
        }
        expected.extend_from_slice(&all);
        writer.write_all(b"tail").await.unwrap();
        expected.extend_from_slice(b"tail");
        writer.flush().await.unwrap();
        assert_eq!(writer.buffer_capacity(), 0, "given back at the flush");
        let mut out = vec![0u8; expected.len()];
        tokio::io::AsyncReadExt::read_exact(&mut b, &mut out)
            .await
            .unwrap();
        assert_eq!(out, expected);
    }

    #[tokio::test]
    async fn writes_through_hold_no_buffer() {
        let (a, mut b) = tokio::io::duplex(1 << 16);
        let (_rd, wr) = tokio::io::split(a);
        let mut writer = FrameWriter::new(wr);
        writer.write_through(true);
        writer.write_all(b"answer").await.unwrap();
        assert_eq!(writer.buffer_capacity(), 0, "written at once");
        writer.write_through(false);
        writer.write_all(b"-next").await.unwrap();
        assert_eq!(writer.buffer_capacity(), WRITE_BUFFER);
        // Buffered bytes stay first even when writing through again.
        writer.write_through(true);
        writer.write_all(b"-last").await.unwrap();
        writer.flush().await.unwrap();
        let mut out = [0u8; 16];
        tokio::io::AsyncReadExt::read_exact(&mut b, &mut out)
            .await
            .unwrap();
        assert_eq!(&out, b"answer-next-last");
    }
}
