//! TODO(storage helper)
#[derive(Debug)]
pub struct LogSegment;
