//! [`SegmentMap`]: a log's segments by base offset, as a sorted vector.
//!
//! Kafka keeps a log's segments in a concurrent skip list; a `BTreeMap`
//! did the same job here, but its smallest node is a leaf with room for
//! eleven entries (192 bytes) while most partitions of a busy broker have
//! one segment, idle. The segments of a log are few (thousands at most:
//! `segment.bytes` is at least 1 MiB per segment) and change rarely (a
//! roll appends one at the end, retention drops some at the front, the
//! cleaner replaces a run of them, truncation drops the tail), so a sorted
//! vector serves every use: lookups are binary searches over the base
//! offsets stored beside the segments (O(log n), without touching the
//! segments), ranges are slices, and the one segment of an idle log sits
//! inline, with no allocation at all.

use std::sync::Arc;

use smallvec::SmallVec;

use crate::segment::LogSegment;

/// A log's segments, ascending by base offset (each stored with its base
/// offset, so searches stay in this vector). One segment is held inline.
#[derive(Debug, Clone, Default)]
pub struct SegmentMap {
    segs: SmallVec<[(i64, Arc<LogSegment>); 1]>,
}

impl SegmentMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.segs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.segs.is_empty()
    }

    /// The segments, ascending.
    pub fn iter(
        &self,
    ) -> impl DoubleEndedIterator<Item = &Arc<LogSegment>> + ExactSizeIterator + Clone {
        self.segs.iter().map(|(_, s)| s)
    }

    /// The base offsets, ascending.
    pub fn bases(&self) -> impl DoubleEndedIterator<Item = i64> + ExactSizeIterator + '_ {
        self.segs.iter().map(|(b, _)| *b)
    }

    /// The first segment (lowest base offset).
    pub fn first(&self) -> Option<&Arc<LogSegment>> {
        self.segs.first().map(|(_, s)| s)
    }

    /// The last segment: the log's active one.
    pub fn last(&self) -> Option<&Arc<LogSegment>> {
        self.segs.last().map(|(_, s)| s)
    }

    /// The segment whose base offset is `base`.
    pub fn get(&self, base: i64) -> Option<&Arc<LogSegment>> {
        self.segs
            .binary_search_by_key(&base, |(b, _)| *b)
            .ok()
            .map(|i| &self.segs[i].1)
    }

    /// How many segments have a base offset at or below `offset`.
    fn count_at_or_below(&self, offset: i64) -> usize {
        self.segs.partition_point(|(b, _)| *b <= offset)
    }

    /// How many segments have a base offset below `offset`.
    fn count_below(&self, offset: i64) -> usize {
        self.segs.partition_point(|(b, _)| *b < offset)
    }

    /// Index of the segment that holds `offset` (the last with a base
    /// offset at or below it), or 0 when every segment starts above it.
    fn floor_index(&self, offset: i64) -> usize {
        self.count_at_or_below(offset).saturating_sub(1)
    }

    /// The segment that holds `offset`: the last with a base offset at or
    /// below it (None when every segment starts above it).
    pub fn floor(&self, offset: i64) -> Option<&Arc<LogSegment>> {
        match self.count_at_or_below(offset) {
            0 => None,
            n => Some(&self.segs[n - 1].1),
        }
    }

    /// The first segment starting after `base`.
    pub fn after(&self, base: i64) -> Option<&Arc<LogSegment>> {
        self.segs.get(self.count_at_or_below(base)).map(|(_, s)| s)
    }

    /// The segments that may hold offsets in `[from, to)`: from the one
    /// holding `from` (or the first, when all start above it) to the last
    /// starting below `to`.
    pub fn between(
        &self,
        from: i64,
        to: i64,
    ) -> impl DoubleEndedIterator<Item = &Arc<LogSegment>> + ExactSizeIterator + Clone {
        let start = self.floor_index(from);
        let end = self.count_below(to).max(start);
        self.segs[start..end].iter().map(|(_, s)| s)
    }

    /// The segments from the one holding `from` (or the first, when all
    /// start above it) to the end.
    pub fn tail(
        &self,
        from: i64,
    ) -> impl DoubleEndedIterator<Item = &Arc<LogSegment>> + ExactSizeIterator + Clone {
        self.segs[self.floor_index(from)..].iter().map(|(_, s)| s)
    }

    /// Adds `seg` at its base offset, returning the segment it replaces
    /// there, if any. Appending after the last segment (a roll) is O(1).
    pub fn insert(&mut self, seg: Arc<LogSegment>) -> Option<Arc<LogSegment>> {
        let base = seg.base_offset();
        let i = self.count_below(base);
        match self.segs.get_mut(i) {
            Some((b, cur)) if *b == base => Some(std::mem::replace(cur, seg)),
            _ => {
                self.segs.insert(i, (base, seg));
                None
            }
        }
    }

    /// Removes the segment whose base offset is `base`.
    pub fn remove(&mut self, base: i64) -> Option<Arc<LogSegment>> {
        let i = self.segs.binary_search_by_key(&base, |(b, _)| *b).ok()?;
        let (_, s) = self.segs.remove(i);
        self.shrink();
        Some(s)
    }

    /// Removes the segments before the one holding `offset` (whose every
    /// offset is below it); never the last. Returns them, ascending.
    pub fn remove_before_floor(&mut self, offset: i64) -> Vec<Arc<LogSegment>> {
        let n = self.floor_index(offset);
        let out = self.segs.drain(..n).map(|(_, s)| s).collect();
        self.shrink();
        out
    }

    /// Removes the segments starting at or after `offset`, but never the
    /// first: a log keeps at least one segment. Returns them, ascending.
    pub fn remove_from(&mut self, offset: i64) -> Vec<Arc<LogSegment>> {
        let i = self.count_below(offset).max(1).min(self.segs.len());
        let out = self.segs.drain(i..).map(|(_, s)| s).collect();
        self.shrink();
        out
    }

    pub fn clear(&mut self) {
        self.segs = SmallVec::new();
    }

    /// Gives back the heap buffer once one segment is left (it then fits
    /// inline), and most of it when the log lost most of its segments.
    fn shrink(&mut self) {
        let len = self.segs.len();
        if self.segs.spilled()
            && (len <= self.segs.inline_size() || len <= self.segs.capacity() / 4)
        {
            self.segs.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::segment::SegmentConfig;

    fn seg(dir: &Path, base: i64) -> Arc<LogSegment> {
        let config = SegmentConfig {
            index_max_bytes: 1024,
            index_interval_bytes: 4096,
        };
        LogSegment::open(dir, base, config, 0).unwrap()
    }

    fn bases<'a>(it: impl Iterator<Item = &'a Arc<LogSegment>>) -> Vec<i64> {
        it.map(|s| s.base_offset()).collect()
    }

    #[test]
    fn one_segment_is_inline_and_as_small_as_a_btree_map() {
        assert_eq!(
            std::mem::size_of::<SegmentMap>(),
            std::mem::size_of::<std::collections::BTreeMap<i64, Arc<LogSegment>>>()
        );
        let dir = tempfile::tempdir().unwrap();
        let mut m = SegmentMap::new();
        m.insert(seg(dir.path(), 0));
        assert!(!m.segs.spilled());
        m.insert(seg(dir.path(), 10));
        assert!(m.segs.spilled());
        assert!(m.remove(0).is_some());
        assert!(!m.segs.spilled(), "back inline with one segment left");
        assert_eq!(bases(m.iter()), [10]);
    }

    #[test]
    fn lookups_and_ranges_match_a_btree_map() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = SegmentMap::new();
        let mut b = std::collections::BTreeMap::new();
        // Out of order, to exercise the sorted insert.
        for base in [40, 0, 20, 10, 30] {
            let s = seg(dir.path(), base);
            assert!(m.insert(s.clone()).is_none());
            b.insert(base, s);
        }
        assert_eq!(m.bases().collect::<Vec<_>>(), [0, 10, 20, 30, 40]);
        for offset in -5..50 {
            let want = b.range(..=offset).next_back().map(|(k, _)| *k);
            assert_eq!(m.floor(offset).map(|s| s.base_offset()), want, "{offset}");
            let next = b
                .range((
                    std::ops::Bound::Excluded(offset),
                    std::ops::Bound::Unbounded,
                ))
                .next()
                .map(|(k, _)| *k);
            assert_eq!(m.after(offset).map(|s| s.base_offset()), next, "{offset}");
            let start = want.unwrap_or(i64::MIN);
            let tail: Vec<i64> = b.range(start..).map(|(k, _)| *k).collect();
            assert_eq!(bases(m.tail(offset)), tail, "{offset}");
            for to in -5..50 {
                let within: Vec<i64> = if start < to {
                    b.range(start..to).map(|(k, _)| *k).collect()
                } else {
                    Vec::new()
                };
                assert_eq!(bases(m.between(offset, to)), within, "[{offset}, {to})");
            }
            assert_eq!(
                m.get(offset).map(|s| s.base_offset()),
                b.get(&offset).map(|s| s.base_offset())
            );
        }
        // Same base: replaced.
        let again = seg(dir.path(), 20);
        let old = m.insert(again.clone()).unwrap();
        assert_eq!(old.base_offset(), 20);
        assert!(Arc::ptr_eq(m.get(20).unwrap(), &again));
        assert_eq!(m.len(), 5);
    }

    #[test]
    fn removals_from_the_front_and_the_back_keep_a_segment() {
        let dir = tempfile::tempdir().unwrap();
        let mut m = SegmentMap::new();
        for base in [0, 10, 20, 30] {
            m.insert(seg(dir.path(), base));
        }
        // Offset 15 is in the segment at 10: the one before it goes.
        assert_eq!(bases(m.remove_before_floor(15).iter()), [0]);
        assert_eq!(bases(m.remove_before_floor(5).iter()), Vec::<i64>::new());
        // Past the end: all but the last go.
        assert_eq!(bases(m.remove_before_floor(99).iter()), [10, 20]);
        assert_eq!(m.bases().collect::<Vec<_>>(), [30]);
        assert!(!m.segs.spilled());

        for base in [40, 50] {
            m.insert(seg(dir.path(), base));
        }
        assert_eq!(bases(m.remove_from(45).iter()), [50]);
        // Everything at or after 0 is asked for: the first segment stays.
        assert_eq!(bases(m.remove_from(0).iter()), [40]);
        assert_eq!(m.bases().collect::<Vec<_>>(), [30]);
        assert!(m.remove_from(0).is_empty());
        m.clear();
        assert!(m.is_empty() && m.first().is_none() && m.last().is_none());
        assert!(m.remove_from(0).is_empty());
        assert!(m.remove_before_floor(0).is_empty());
    }
}
