//! openraft's own storage test suite, run against the Kafka-log storage and
//! the image state machine.

use std::sync::Arc;

use gregor_raft::{LogStore, StateMachine, StorageError, TypeConfig};
use gregor_storage::SystemClock;
use openraft::testing::{StoreBuilder, Suite};
use tempfile::TempDir;

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let log = LogStore::open(dir.path(), Arc::new(SystemClock)).expect("open log");
        let sm = StateMachine::open(dir.path()).expect("open state machine");
        Ok((dir, log, sm))
    }
}

#[test]
fn openraft_storage_suite() {
    Suite::test_all(Builder).unwrap();
}
