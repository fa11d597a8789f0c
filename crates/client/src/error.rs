//! The one error type of the client.
//!
//! Broker-reported failures keep Kafka's error code and its UPPER_SNAKE name
//! (`NOT_LEADER_OR_FOLLOWER`), so what a user sees matches the Java client's
//! exception names and the broker's logs. `Error` is `Clone` because one
//! failed produce request fails every record of its batches with the same
//! error.

use std::sync::Arc;
use std::time::Duration;

use kafka_protocol::error::ResponseError;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// An error code returned by a broker.
    #[error("{name} (error code {code}){}", message.as_deref().map(|m| format!(": {m}")).unwrap_or_default())]
    Kafka {
        code: i16,
        name: String,
        retriable: bool,
        message: Option<String>,
    },
    /// The connection to `broker` failed or closed.
    #[error("{broker}: {source}")]
    Io {
        broker: String,
        source: Arc<std::io::Error>,
    },
    /// The TLS handshake with `broker` failed (an untrusted or misnamed
    /// certificate, a client certificate the broker refused).
    #[error("SSL handshake with {broker} failed: {reason}")]
    Tls { broker: String, reason: String },
    /// The peer sent bytes we cannot make sense of, or we could not encode a request.
    #[error("protocol error ({context}): {reason}")]
    Protocol { context: String, reason: String },
    /// An operation did not finish within its time limit.
    #[error("{what} timed out after {after:?}")]
    Timeout { what: String, after: Duration },
    /// A configuration key is unknown or its value is invalid.
    #[error("config {key}: {reason}")]
    Config { key: String, reason: String },
    /// Record batches in a fetch response could not be decoded.
    #[error("records: {0}")]
    Records(#[from] gregor_records::RecordsError),
    /// The client (or the producer / consumer) was closed.
    #[error("{0} is closed")]
    Closed(&'static str),
    /// A request the client refuses to send (for instance a record larger
    /// than `max.request.size`) or an API the broker does not support.
    #[error("{0}")]
    Invalid(String),
    /// Another producer with the same `transactional.id` initialized since
    /// (the coordinator answered PRODUCER_FENCED or INVALID_PRODUCER_EPOCH).
    /// Fatal: this producer refuses every further send and transactional
    /// call; close it (Java: `ProducerFencedException`).
    #[error("transactional id {transactional_id:?}: producer id {producer_id} epoch {producer_epoch} was fenced by a newer producer with the same transactional.id ({name}, error code {code}); close this producer")]
    Fenced {
        transactional_id: String,
        producer_id: i64,
        producer_epoch: i16,
        code: i16,
        name: String,
    },
    /// Any other error after which the transactional producer cannot go on
    /// (an authorization failure, INVALID_TXN_STATE, an error the
    /// coordinator should never send). Fatal, as [`Error::Fenced`].
    #[error(
        "transactional id {transactional_id:?} can no longer be used: {cause}; close this producer"
    )]
    TransactionFatal {
        transactional_id: String,
        cause: Box<Error>,
    },
    /// The current transaction hit an error (a record that could not be
    /// written, a partition that could not be added) and can only be
    /// aborted: `commit_transaction` and new sends fail with this,
    /// `abort_transaction` works.
    #[error("the transaction must be aborted: {0}")]
    TransactionAbortable(Box<Error>),
    /// A record that was never sent because its transaction was aborted.
    #[error("the record's transaction was aborted before it was sent")]
    TransactionAborted,
    /// A transactional call in the wrong state (begin twice, commit without
    /// begin, send outside a transaction, a transactional call on a
    /// producer without `transactional.id`). Nothing was changed.
    #[error("{operation}: {reason} (transaction state {state})")]
    TransactionState {
        operation: &'static str,
        state: &'static str,
        reason: &'static str,
    },
}

impl Error {
    /// An error from a non-zero Kafka error code; `None` for 0.
    pub fn from_code(code: i16, message: Option<&str>) -> Option<Error> {
        let e = ResponseError::try_from_code(code)?;
        Some(Error::Kafka {
            code,
            name: upper_snake(&e),
            // Kafka's ConcurrentTransactionsException is a RetriableException
            // (the previous transaction is still completing); the protocol
            // crate's table says otherwise.
            retriable: e.is_retriable() || code == codes::CONCURRENT_TRANSACTIONS,
            message: message.map(str::to_string),
        })
    }

    /// `Err` for a non-zero code, else `Ok(())`.
    pub fn check(code: i16, message: Option<&str>) -> Result<()> {
        match Error::from_code(code, message) {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// The Kafka error code, if a broker reported this error.
    pub fn code(&self) -> Option<i16> {
        match self {
            Error::Kafka { code, .. } => Some(*code),
            _ => None,
        }
    }

    /// Whether a transactional producer is unusable after this error
    /// ([`Error::Fenced`], [`Error::TransactionFatal`]).
    pub fn is_fatal(&self) -> bool {
        matches!(self, Error::Fenced { .. } | Error::TransactionFatal { .. })
    }

    /// Whether trying again may succeed: retriable Kafka codes, lost
    /// connections and timeouts.
    pub fn is_retriable(&self) -> bool {
        match self {
            Error::Kafka { retriable, .. } => *retriable,
            Error::Io { .. } | Error::Timeout { .. } => true,
            _ => false,
        }
    }

    pub(crate) fn io(broker: impl Into<String>, e: std::io::Error) -> Error {
        Error::Io {
            broker: broker.into(),
            source: Arc::new(e),
        }
    }

    pub(crate) fn protocol(context: impl Into<String>, reason: impl std::fmt::Display) -> Error {
        Error::Protocol {
            context: context.into(),
            reason: reason.to_string(),
        }
    }

    pub(crate) fn config(key: &str, reason: impl Into<String>) -> Error {
        Error::Config {
            key: key.to_string(),
            reason: reason.into(),
        }
    }
}

/// Kafka error codes the client reacts to by name.
pub(crate) mod codes {
    pub const SASL_AUTHENTICATION_FAILED: i16 = 58;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const LEADER_NOT_AVAILABLE: i16 = 5;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const REQUEST_TIMED_OUT: i16 = 7;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;
    pub const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    pub const DUPLICATE_SEQUENCE_NUMBER: i16 = 46;
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub const INVALID_TXN_STATE: i16 = 48;
    pub const INVALID_PRODUCER_ID_MAPPING: i16 = 49;
    pub const CONCURRENT_TRANSACTIONS: i16 = 51;
    pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
    pub const OPERATION_NOT_ATTEMPTED: i16 = 55;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    pub const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
    #[cfg(test)]
    pub const INVALID_FETCH_SESSION_EPOCH: i16 = 71;
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    pub const UNKNOWN_LEADER_EPOCH: i16 = 75;
    pub const UNKNOWN_PRODUCER_ID: i16 = 59;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const FENCED_INSTANCE_ID: i16 = 82;
    pub const PRODUCER_FENCED: i16 = 90;
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
    pub const TRANSACTION_ABORTABLE: i16 = 120;
}

/// Whether `code` means our metadata (leaders, partitions) is stale.
pub(crate) fn is_metadata_error(code: i16) -> bool {
    use codes::*;
    matches!(
        code,
        UNKNOWN_TOPIC_OR_PARTITION
            | LEADER_NOT_AVAILABLE
            | NOT_LEADER_OR_FOLLOWER
            | KAFKA_STORAGE_ERROR
            | FENCED_LEADER_EPOCH
            | UNKNOWN_LEADER_EPOCH
            | UNKNOWN_TOPIC_ID
    )
}

/// Whether `code` means the group coordinator moved or is not ready.
pub(crate) fn is_coordinator_error(code: i16) -> bool {
    use codes::*;
    matches!(
        code,
        COORDINATOR_NOT_AVAILABLE | NOT_COORDINATOR | COORDINATOR_LOAD_IN_PROGRESS
    )
}

/// `NotLeaderOrFollower` -> `NOT_LEADER_OR_FOLLOWER`, Kafka's spelling.
fn upper_snake(e: &ResponseError) -> String {
    let camel = e.to_string();
    if matches!(e, ResponseError::Unknown(_)) {
        return "UNKNOWN".to_string();
    }
    let mut out = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(c.to_ascii_uppercase());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kafka_names_and_retriability() {
        let e = Error::from_code(6, Some("moved")).unwrap();
        assert_eq!(
            e.to_string(),
            "NOT_LEADER_OR_FOLLOWER (error code 6): moved"
        );
        assert!(e.is_retriable());
        let e = Error::from_code(36, None).unwrap();
        assert_eq!(e.to_string(), "TOPIC_ALREADY_EXISTS (error code 36)");
        assert!(!e.is_retriable());
        assert_eq!(e.code(), Some(36));
        assert!(Error::from_code(0, None).is_none());
        assert!(Error::check(0, None).is_ok());
        assert!(Error::from_code(51, None).unwrap().is_retriable());
        let e = Error::from_code(90, None).unwrap();
        assert_eq!(e.to_string(), "PRODUCER_FENCED (error code 90)");
        assert!(!e.is_retriable());
        assert!(matches!(
            Error::from_code(9999, None),
            Some(Error::Kafka { ref name, .. }) if name == "UNKNOWN"
        ));
    }
}
