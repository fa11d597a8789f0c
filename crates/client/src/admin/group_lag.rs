//! A consumer group's offsets and lag, and the plan of an offset reset: what
//! `kafka-consumer-groups --describe` and `--reset-offsets` compute, shared
//! by `gregor consumer-groups` and the web console so both show the same
//! numbers by construction.
//!
//! Lag is the log end offset (ListOffsets latest, read_uncommitted, as
//! Kafka's tool asks) minus the committed offset (OffsetFetch).

use std::collections::{BTreeMap, BTreeSet};

use super::{Admin, GroupDescription};
use crate::config::IsolationLevel;
use crate::error::{Error, Result};
use crate::types::{OffsetSpec, TopicPartition};

/// One partition of a group: committed offset, log end, lag and the member
/// it is assigned to (`None` for committed offsets no member consumes).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionLag {
    pub partition: TopicPartition,
    pub current_offset: Option<i64>,
    pub log_end_offset: Option<i64>,
    /// `log_end_offset - current_offset` when both are known.
    pub lag: Option<i64>,
    pub member_id: Option<String>,
    pub client_host: Option<String>,
    pub client_id: Option<String>,
}

/// Where [`Admin::plan_group_offset_reset`] moves each partition.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffsetResetSpec {
    Earliest,
    Latest,
    /// The committed offset (the end of the log where none is committed).
    Current,
    /// This offset, clamped to the partition's range.
    Offset(i64),
    /// The committed offset shifted by n, clamped to the partition's range.
    ShiftBy(i64),
    /// The first offset whose timestamp is at least this (ms), else the end.
    Timestamp(i64),
}

impl Admin {
    /// The rows of `kafka-consumer-groups --describe` for a described group:
    /// assigned partitions first (members with the most partitions first,
    /// each member's partitions sorted), then committed offsets of
    /// partitions no member has.
    pub async fn describe_group_lag(&self, d: &GroupDescription) -> Result<Vec<PartitionLag>> {
        let committed = self.list_group_offsets(&d.group_id, None).await?;
        let mut rows = Vec::new();
        let mut members: Vec<_> = d
            .members
            .iter()
            .filter(|m| !m.assignment.is_empty())
            .collect();
        members.sort_by_key(|m| std::cmp::Reverse(m.assignment.len()));
        let mut assigned = BTreeSet::new();
        for m in members {
            let mut tps = m.assignment.clone();
            tps.sort();
            for tp in tps {
                assigned.insert(tp.clone());
                rows.push(PartitionLag {
                    current_offset: committed.get(&tp).map(|o| o.offset),
                    log_end_offset: None,
                    lag: None,
                    member_id: Some(m.member_id.clone()),
                    client_host: Some(m.client_host.clone()),
                    client_id: Some(m.client_id.clone()),
                    partition: tp,
                });
            }
        }
        for (tp, o) in &committed {
            if !assigned.contains(tp) {
                rows.push(PartitionLag {
                    partition: tp.clone(),
                    current_offset: Some(o.offset),
                    log_end_offset: None,
                    lag: None,
                    member_id: None,
                    client_host: None,
                    client_id: None,
                });
            }
        }
        if rows.is_empty() {
            return Ok(rows);
        }
        let tps: Vec<TopicPartition> = rows.iter().map(|r| r.partition.clone()).collect();
        let ends = self.offsets_at(&tps, OffsetSpec::Latest).await?;
        for r in &mut rows {
            r.log_end_offset = ends.get(&r.partition).copied().filter(|e| *e >= 0);
            r.lag = match (r.current_offset.filter(|c| *c >= 0), r.log_end_offset) {
                (Some(c), Some(e)) => Some(e - c),
                _ => None,
            };
        }
        Ok(rows)
    }

    /// The new offset of each of `partitions` (every partition the group has
    /// offsets for if `None`) under `spec`, without changing anything. Fails
    /// as Kafka's tool does when the group has active members: offsets can
    /// only be reset while it is Empty (or does not exist yet). Apply the
    /// plan with [`Admin::alter_group_offsets`].
    pub async fn plan_group_offset_reset(
        &self,
        group: &str,
        partitions: Option<&[TopicPartition]>,
        spec: OffsetResetSpec,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        // A group that does not exist yet is inactive: resetting creates its offsets.
        let state = match self.describe_groups(&[group]).await {
            Ok(mut d) => d.pop().map_or_else(|| "Dead".to_string(), |d| d.state),
            Err(e) if e.code() == Some(69) => "Dead".to_string(),
            Err(e) => return Err(e),
        };
        if state != "Empty" && state != "Dead" {
            return Err(Error::Invalid(format!(
                "Assignments can only be reset if the group '{group}' is inactive, but the current state is {state}."
            )));
        }
        let committed = self.list_group_offsets(group, None).await?;
        let partitions: Vec<TopicPartition> = match partitions {
            Some(p) => p.to_vec(),
            None => committed.keys().cloned().collect(),
        };
        let earliest = self.offsets_at(&partitions, OffsetSpec::Earliest).await?;
        let latest = self.offsets_at(&partitions, OffsetSpec::Latest).await?;
        let by_time = match spec {
            OffsetResetSpec::Timestamp(ts) => {
                self.offsets_at(&partitions, OffsetSpec::Timestamp(ts))
                    .await?
            }
            _ => BTreeMap::new(),
        };
        let mut plan = BTreeMap::new();
        for tp in &partitions {
            let current = committed.get(tp).map(|o| o.offset);
            let new = reset_target(
                spec,
                current,
                earliest.get(tp).copied(),
                latest.get(tp).copied(),
                by_time.get(tp).copied(),
            )
            .map_err(|why| Error::Invalid(format!("{why} for {tp} in group '{group}'")))?;
            plan.insert(tp.clone(), new);
        }
        Ok(plan)
    }

    /// ListOffsets for `partitions` at one spec (read_uncommitted).
    async fn offsets_at(
        &self,
        partitions: &[TopicPartition],
        spec: OffsetSpec,
    ) -> Result<BTreeMap<TopicPartition, i64>> {
        if partitions.is_empty() {
            return Ok(BTreeMap::new());
        }
        let specs: Vec<(TopicPartition, OffsetSpec)> =
            partitions.iter().map(|tp| (tp.clone(), spec)).collect();
        Ok(self
            .list_offsets(&specs, IsolationLevel::ReadUncommitted)
            .await?
            .into_iter()
            .map(|(tp, o)| (tp, o.offset))
            .collect())
    }
}

/// One partition's new offset; the error says why there is none.
fn reset_target(
    spec: OffsetResetSpec,
    current: Option<i64>,
    earliest: Option<i64>,
    latest: Option<i64>,
    by_time: Option<i64>,
) -> std::result::Result<i64, &'static str> {
    let clamp = |o: i64| -> i64 {
        let lo = earliest.unwrap_or(0);
        let hi = latest.unwrap_or(o);
        o.clamp(lo, hi.max(lo))
    };
    let new = match spec {
        OffsetResetSpec::Earliest => earliest,
        OffsetResetSpec::Latest => latest,
        OffsetResetSpec::Offset(o) => Some(clamp(o)),
        OffsetResetSpec::ShiftBy(n) => {
            let base = current.ok_or("no committed offset to shift")?;
            Some(clamp(base.saturating_add(n)))
        }
        // No record at or after the time: the end of the log.
        OffsetResetSpec::Timestamp(_) => match by_time {
            Some(o) if o >= 0 => Some(o),
            _ => latest,
        },
        OffsetResetSpec::Current => current.or(latest),
    };
    new.ok_or("no offset found")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_clamp_to_the_log() {
        use OffsetResetSpec::*;
        let t = |spec, cur| reset_target(spec, cur, Some(5), Some(20), Some(-1));
        assert_eq!(t(Earliest, None), Ok(5));
        assert_eq!(t(Latest, None), Ok(20));
        assert_eq!(t(Offset(100), None), Ok(20));
        assert_eq!(t(Offset(1), None), Ok(5));
        assert_eq!(t(ShiftBy(-3), Some(10)), Ok(7));
        assert_eq!(t(ShiftBy(-30), Some(10)), Ok(5));
        assert!(t(ShiftBy(1), None).is_err());
        assert_eq!(t(Current, Some(12)), Ok(12));
        assert_eq!(t(Current, None), Ok(20));
        // No record at or after the time: the end.
        assert_eq!(t(Timestamp(0), None), Ok(20));
        assert_eq!(
            reset_target(Timestamp(0), None, Some(5), Some(20), Some(9)),
            Ok(9)
        );
    }
}
