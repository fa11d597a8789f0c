//! Which part of a log is dirty, and which log to clean first (Kafka's
//! `LogCleanerManager.cleanableOffsets`, `LogToClean` and
//! `grabFilthiestCompactedLog`).

use std::sync::Arc;

use crate::{Log, Result};

/// A compacted log and its dirty section `[first_dirty, first_uncleanable)`.
#[derive(Debug, Clone)]
pub struct LogToClean {
    pub log: Arc<Log>,
    pub first_dirty_offset: i64,
    /// Never cleaned past: a segment boundary (see the module docs of
    /// [`crate::cleaner`]).
    pub first_uncleanable_offset: i64,
    /// Bytes of the segments wholly below the first dirty offset.
    pub clean_bytes: u64,
    /// Bytes of the segments in the dirty section.
    pub cleanable_bytes: u64,
    /// The dirty section holds a batch older than max.compaction.lag.ms.
    pub needs_compaction_now: bool,
}

impl LogToClean {
    /// Sizes the dirty section of `log` at time `now`, never past
    /// `stable_offset` nor the log's first unstable offset.
    pub fn new(log: Arc<Log>, stable_offset: i64, now: i64) -> Result<Self> {
        let config = log.config();
        let segs = log.segments();
        let log_start = log.log_start_offset();
        let log_end = log.log_end_offset();
        // A checkpoint outside the log (segments deleted by retention, or a
        // truncation past it) is reset to the log start, as Kafka does.
        let first_dirty = match log.cleaner_checkpoint() {
            Some(c) if c >= log_start && c <= log_end => c,
            _ => log_start,
        };
        // `next[i]` is where segment i ends (the next base, or the log end).
        let next: Vec<i64> = segs
            .iter()
            .skip(1)
            .map(|s| s.base_offset())
            .chain(std::iter::once(log_end))
            .collect();
        let active_base = segs.last().map_or(log_end, |s| s.base_offset());
        let lag = config.min_compaction_lag_ms.max(0);
        let lagged = if lag > 0 {
            segs.iter()
                .zip(&next)
                .filter(|(s, n)| **n > first_dirty && s.base_offset() < active_base)
                .find(|(s, _)| s.max_timestamp().timestamp > now.saturating_sub(lag))
                .map(|(s, _)| s.base_offset())
        } else {
            None
        };
        // Never past an undecided transaction: the cleaner must know every
        // transaction's outcome to remove aborted records (Kafka bounds the
        // clean by the last stable offset).
        let bound = [
            Some(stable_offset),
            Some(active_base),
            lagged,
            log.first_unstable_offset(),
        ]
        .into_iter()
        .flatten()
        .min()
        .unwrap_or(active_base);
        // Round down to the base of the segment holding the bound: only whole
        // segments are cleaned.
        let first_uncleanable = segs
            .iter()
            .map(|s| s.base_offset())
            .take_while(|b| *b <= bound)
            .last()
            .unwrap_or(bound)
            .max(first_dirty);
        let mut clean_bytes = 0;
        let mut cleanable_bytes = 0;
        let mut oldest_dirty: Option<i64> = None;
        for (s, n) in segs.iter().zip(&next) {
            if *n <= first_dirty {
                clean_bytes += s.size();
            } else if s.base_offset() < first_uncleanable {
                cleanable_bytes += s.size();
            }
            // max.compaction.lag.ms looks at every dirty non-active segment.
            if *n > first_dirty && s.base_offset() < active_base {
                if let Some(t) = s.first_batch_timestamp().filter(|t| *t > 0) {
                    oldest_dirty = Some(oldest_dirty.map_or(t, |o| o.min(t)));
                }
            }
        }
        let max_lag = config.max_compaction_lag_ms.max(0);
        let needs_compaction_now = oldest_dirty.is_some_and(|t| t < now.saturating_sub(max_lag));
        Ok(Self {
            log,
            first_dirty_offset: first_dirty,
            first_uncleanable_offset: first_uncleanable,
            clean_bytes,
            cleanable_bytes,
            needs_compaction_now,
        })
    }

    pub fn total_bytes(&self) -> u64 {
        self.clean_bytes + self.cleanable_bytes
    }

    /// Dirty bytes / total bytes (0 for an empty log).
    pub fn cleanable_ratio(&self) -> f64 {
        if self.total_bytes() == 0 {
            0.0
        } else {
            self.cleanable_bytes as f64 / self.total_bytes() as f64
        }
    }

    /// Whether the cleaner should clean it now: dirty ratio above
    /// min.cleanable.dirty.ratio (strictly, as Kafka compares), or something
    /// dirty past max.compaction.lag.ms.
    pub fn should_clean(&self) -> bool {
        let min_ratio = self.log.config().min_cleanable_dirty_ratio;
        self.cleanable_bytes > 0
            && (self.needs_compaction_now || self.cleanable_ratio() > min_ratio)
    }
}

/// The log to clean first among `dirty`: the largest dirty ratio among those
/// that should be cleaned.
pub fn filthiest(dirty: Vec<LogToClean>) -> Option<LogToClean> {
    dirty
        .into_iter()
        .filter(|l| l.total_bytes() > 0 && l.should_clean())
        .max_by(|a, b| a.cleanable_ratio().total_cmp(&b.cleanable_ratio()))
}
