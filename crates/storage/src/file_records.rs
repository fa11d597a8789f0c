//! [`FileRecords`]: whole batches of a segment named by file and position,
//! for a reader that sends them without reading them (`sendfile(2)`).
//!
//! The slice holds the segment's file handle, so the bytes stay readable
//! while it is sent even if retention deletes the segment or the segment
//! cache closes its files meanwhile (the descriptor keeps the inode). Its
//! length is fixed when it is made, as Kafka's `FileRecords.slice` fixes
//! it: a log truncated below the slice before it is sent leaves the sender
//! short of bytes, which it must treat as an error (Kafka's `writeTo`
//! throws "has been truncated during write") rather than send a frame
//! shorter than its size prefix.

use std::fs::File;
use std::os::unix::fs::FileExt;
use std::sync::Arc;

use bytes::{Bytes, BytesMut};

/// `len` bytes of `file` from `position`: whole batches as stored.
#[derive(Debug, Clone)]
pub struct FileRecords {
    file: Arc<File>,
    position: u64,
    len: usize,
}

impl FileRecords {
    pub(crate) fn new(file: Arc<File>, position: u64, len: usize) -> Self {
        Self {
            file,
            position,
            len,
        }
    }

    /// The file, held open for as long as this slice lives.
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Where the slice starts in the file.
    pub fn position(&self) -> u64 {
        self.position
    }

    /// Bytes in the slice.
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The bytes, read into memory (for a transport that cannot send from
    /// the file). A file now shorter than the slice is an `UnexpectedEof`.
    pub fn read(&self) -> std::io::Result<Bytes> {
        let mut buf = BytesMut::zeroed(self.len);
        self.file.read_exact_at(&mut buf, self.position)?;
        Ok(buf.freeze())
    }
}
