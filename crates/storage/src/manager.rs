//! Every partition log under the configured log dirs, and the per-log-dir
//! checkpoint files Kafka keeps:
//!
//! - `recovery-point-offset-checkpoint`, `log-start-offset-checkpoint`,
//!   `replication-offset-checkpoint` (see [`crate::checkpoint`]), written
//!   periodically and at shutdown;
//! - `meta.properties` is the broker's, not written here.
//!
//! On open, every `<topic>-<partition>` directory is loaded with the recovery
//! point from the checkpoint (a log with no checkpoint entry is fully recovered).

use std::path::PathBuf;
use std::sync::Arc;

use crate::{Clock, Log, LogConfig, Result, TopicPartition};

#[derive(Debug)]
pub struct LogManager {
    _private: (),
}

impl LogManager {
    /// Opens all logs found in `log_dirs` (creating the dirs if absent).
    /// `config_for` gives the effective config of a topic's partitions.
    pub fn open(
        log_dirs: Vec<PathBuf>,
        clock: Arc<dyn Clock>,
        config_for: &dyn Fn(&str) -> LogConfig,
    ) -> Result<Self> {
        let _ = config_for;
        todo!("{log_dirs:?}{clock:?}")
    }
    pub fn get(&self, tp: &TopicPartition) -> Option<Arc<Log>> {
        todo!("{tp}")
    }
    /// The log of `tp`, created in the log dir with the fewest partitions if absent.
    pub fn get_or_create(&self, tp: &TopicPartition, config: LogConfig) -> Result<Arc<Log>> {
        todo!("{tp}{config:?}")
    }
    /// All logs currently open.
    pub fn all(&self) -> Vec<Arc<Log>> {
        todo!()
    }
    /// Closes and deletes the partition's directory (renamed to
    /// `<topic>-<partition>.<uuid>-delete` first, as Kafka does, then removed).
    pub fn delete(&self, tp: &TopicPartition) -> Result<()> {
        todo!("{tp}")
    }
    /// Writes the three checkpoint files of every log dir.
    /// `high_watermark` gives each log's high watermark for replication-offset-checkpoint.
    pub fn checkpoint(&self, high_watermark: &dyn Fn(&Log) -> i64) -> Result<()> {
        let _ = high_watermark;
        todo!()
    }
    /// Flush, snapshot and close every log, then checkpoint.
    pub fn shutdown(&self) -> Result<()> {
        todo!()
    }
}
