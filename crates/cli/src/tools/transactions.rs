//! `gregor transactions`: kafka-transactions.sh, which inspects producers
//! and transactions and recovers from hanging ones. Each subcommand takes
//! Kafka's arguments and prints what Kafka's `TransactionsCommand` prints:
//!
//! - `list`: every transaction of every coordinator (ListTransactions).
//! - `describe`: one transactional id's state at its coordinator
//!   (DescribeTransactions).
//! - `describe-producers`: the producers a partition replica holds state
//!   for (DescribeProducers).
//! - `abort`: writes an ABORT marker to one partition (WriteTxnMarkers to
//!   its leader), for the open transaction starting at `--start-offset`
//!   (found with DescribeProducers) or the one named by producer id, epoch
//!   and coordinator epoch.
//! - `find-hanging`: open transactions on partitions that their coordinator
//!   no longer knows about, which hold back the last stable offset forever
//!   (see [`hanging`] for the test).

use std::collections::{BTreeMap, HashMap};

use anyhow::anyhow;
use clap::{Args, Subcommand};
use gregor_client::admin::{
    AbortTransactionSpec, ListTransactionsOptions, ProducerState, TransactionDescription,
};
use gregor_client::{Admin, TopicPartition};

use super::metadata_quorum::pretty_table;
use super::{block_on, client_err, now_ms, Conn};

pub const EXAMPLES: &str = "Examples:
  gregor transactions --bootstrap-server 127.0.0.1:9092 list
  gregor transactions list --duration-filter 60000
  gregor transactions describe --transactional-id my-txn
  gregor transactions describe-producers --topic orders --partition 0 [--broker-id 2]
  gregor transactions find-hanging --broker-id 1 [--max-transaction-timeout 15]
  gregor transactions find-hanging --topic orders --partition 0
  gregor transactions abort --topic orders --partition 0 --start-offset 1234
  gregor transactions abort --topic orders --partition 0 --producer-id 7 --producer-epoch 0 --coordinator-epoch 3";

/// Analyze the transactional state of producers in the cluster; detect and
/// recover from hanging transactions.
#[derive(Args, Debug)]
pub struct TransactionsArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub command: TransactionsCommand,
}

#[derive(Subcommand, Debug)]
pub enum TransactionsCommand {
    /// List transactions.
    List {
        /// Duration (in millis) to filter by: if < 0, all transactions will
        /// be returned; otherwise, only transactions running longer than
        /// this duration will be returned.
        #[arg(long = "duration-filter", allow_negative_numbers = true)]
        duration_filter: Option<i64>,
    },
    /// Describe the state of an active transactional-id.
    Describe {
        /// Transactional id.
        #[arg(long = "transactional-id")]
        transactional_id: String,
    },
    /// Describe the states of active producers for a topic partition.
    #[command(name = "describe-producers")]
    DescribeProducers {
        /// Optional broker id to describe the producer state on a specific replica.
        #[arg(long = "broker-id")]
        broker_id: Option<i32>,
        /// Topic name.
        #[arg(long)]
        topic: String,
        /// Partition number.
        #[arg(long)]
        partition: i32,
    },
    /// Abort a hanging transaction (requires administrative privileges).
    /// Brokers on 3.0 and above need only --start-offset; for older ones
    /// give --producer-id, --producer-epoch and --coordinator-epoch.
    Abort {
        /// Topic name.
        #[arg(long)]
        topic: String,
        /// Partition number.
        #[arg(long)]
        partition: i32,
        /// Start offset of the transaction to abort.
        #[arg(long = "start-offset")]
        start_offset: Option<i64>,
        /// Producer id.
        #[arg(long = "producer-id")]
        producer_id: Option<i64>,
        /// Producer epoch.
        #[arg(long = "producer-epoch")]
        producer_epoch: Option<i16>,
        /// Coordinator epoch (a negative one, as DescribeProducers shows for
        /// a producer that never finished a transaction, is taken as 0).
        #[arg(long = "coordinator-epoch", allow_negative_numbers = true)]
        coordinator_epoch: Option<i32>,
    },
    /// Find hanging transactions.
    #[command(name = "find-hanging")]
    FindHanging {
        /// Broker id to search for hanging transactions.
        #[arg(long = "broker-id")]
        broker_id: Option<i32>,
        /// Maximum transaction timeout in minutes to limit the scope of the
        /// search (15 minutes by default).
        #[arg(long = "max-transaction-timeout", default_value_t = 15)]
        max_transaction_timeout: i32,
        /// Topic name to limit search to (required if --partition is specified).
        #[arg(long)]
        topic: Option<String>,
        /// Partition number.
        #[arg(long)]
        partition: Option<i32>,
    },
}

const PRODUCER_HEADERS: [&str; 6] = [
    "ProducerId",
    "ProducerEpoch",
    "LatestCoordinatorEpoch",
    "LastSequence",
    "LastTimestamp",
    "CurrentTransactionStartOffset",
];

const LIST_HEADERS: [&str; 4] = [
    "TransactionalId",
    "Coordinator",
    "ProducerId",
    "TransactionState",
];

const DESCRIBE_HEADERS: [&str; 9] = [
    "CoordinatorId",
    "TransactionalId",
    "ProducerId",
    "ProducerEpoch",
    "TransactionState",
    "TransactionTimeoutMs",
    "CurrentTransactionStartTimeMs",
    "TransactionDurationMs",
    "TopicPartitions",
];

const HANGING_HEADERS: [&str; 8] = [
    "Topic",
    "Partition",
    "ProducerId",
    "ProducerEpoch",
    "CoordinatorEpoch",
    "StartOffset",
    "LastTimestamp",
    "Duration(min)",
];

/// Partitions (and topics) per request in `find-hanging`, as in Kafka: a
/// broker with many partitions is not asked about all of them at once.
const MAX_BATCH_SIZE: usize = 500;

pub fn run(args: TransactionsArgs) -> anyhow::Result<()> {
    let admin = args.conn.admin()?;
    block_on(async move {
        let result = match args.command {
            TransactionsCommand::List { duration_filter } => list(&admin, duration_filter).await,
            TransactionsCommand::Describe { transactional_id } => {
                describe(&admin, &transactional_id).await
            }
            TransactionsCommand::DescribeProducers {
                broker_id,
                topic,
                partition,
            } => describe_producers(&admin, TopicPartition::new(topic, partition), broker_id).await,
            TransactionsCommand::Abort {
                topic,
                partition,
                start_offset,
                producer_id,
                producer_epoch,
                coordinator_epoch,
            } => {
                let tp = TopicPartition::new(topic, partition);
                abort(
                    &admin,
                    tp,
                    start_offset,
                    producer_id,
                    producer_epoch,
                    coordinator_epoch,
                )
                .await
            }
            TransactionsCommand::FindHanging {
                broker_id,
                max_transaction_timeout,
                topic,
                partition,
            } => find_hanging(&admin, broker_id, max_transaction_timeout, topic, partition).await,
        };
        admin.close().await;
        result
    })
}

async fn list(admin: &Admin, duration_filter: Option<i64>) -> anyhow::Result<()> {
    let options = ListTransactionsOptions {
        duration_filter_ms: duration_filter,
        ..Default::default()
    };
    let listings = admin
        .list_transactions(&options)
        .await
        .map_err(|e| anyhow!("Failed to list transactions: {}", client_err(e)))?;
    let rows: Vec<Vec<String>> = listings
        .iter()
        .map(|l| {
            vec![
                l.transactional_id.clone(),
                l.coordinator.to_string(),
                l.producer_id.to_string(),
                l.state.to_string(),
            ]
        })
        .collect();
    print!("{}", pretty_table(&LIST_HEADERS, &rows));
    Ok(())
}

async fn describe(admin: &Admin, transactional_id: &str) -> anyhow::Result<()> {
    let d = admin
        .describe_transaction(transactional_id)
        .await
        .map_err(|e| {
            anyhow!(
                "Failed to describe transaction state of transactional-id `{transactional_id}`: {}",
                client_err(e)
            )
        })?;
    print!(
        "{}",
        pretty_table(&DESCRIBE_HEADERS, &[describe_row(&d, now_ms())])
    );
    Ok(())
}

/// The `describe` row of `d`, its duration measured to `now_ms`.
fn describe_row(d: &TransactionDescription, now_ms: i64) -> Vec<String> {
    let (start, duration) = match d.transaction_start_time_ms {
        Some(start) => (start.to_string(), (now_ms - start).to_string()),
        None => ("None".to_string(), "None".to_string()),
    };
    vec![
        d.coordinator_id.to_string(),
        d.transactional_id.clone(),
        d.producer_id.to_string(),
        d.producer_epoch.to_string(),
        d.state.to_string(),
        d.transaction_timeout_ms.to_string(),
        start,
        duration,
        d.topic_partitions
            .iter()
            .map(TopicPartition::to_string)
            .collect::<Vec<_>>()
            .join(","),
    ]
}

async fn describe_producers(
    admin: &Admin,
    tp: TopicPartition,
    broker_id: Option<i32>,
) -> anyhow::Result<()> {
    let producers = admin
        .describe_producers(&tp, broker_id)
        .await
        .map_err(|e| {
            let on = broker_id.map_or("leader".to_string(), |b| format!("broker {b}"));
            anyhow!(
                "Failed to describe producers for partition {tp} on {on}: {}",
                client_err(e)
            )
        })?;
    let rows: Vec<Vec<String>> = producers
        .iter()
        .map(|p| {
            vec![
                p.producer_id.to_string(),
                p.producer_epoch.to_string(),
                p.coordinator_epoch.unwrap_or(-1).to_string(),
                p.last_sequence.to_string(),
                p.last_timestamp.to_string(),
                p.current_txn_start_offset
                    .map_or("None".to_string(), |o| o.to_string()),
            ]
        })
        .collect();
    print!("{}", pretty_table(&PRODUCER_HEADERS, &rows));
    Ok(())
}

async fn abort(
    admin: &Admin,
    tp: TopicPartition,
    start_offset: Option<i64>,
    producer_id: Option<i64>,
    producer_epoch: Option<i16>,
    coordinator_epoch: Option<i32>,
) -> anyhow::Result<()> {
    let spec = match (start_offset, producer_id) {
        (None, None) => {
            return Err(anyhow!(
                "The transaction to abort must be identified either with --start-offset (for brokers on 3.0 or above) or with --producer-id, --producer-epoch, and --coordinator-epoch (for older brokers)"
            ))
        }
        (Some(start), _) => {
            let producers = admin.describe_producers(&tp, None).await.map_err(|e| {
                anyhow!(
                    "Failed to validate producer state for partition {tp}: {}",
                    client_err(e)
                )
            })?;
            let p = producers
                .iter()
                .find(|p| p.current_txn_start_offset == Some(start))
                .ok_or_else(|| {
                    anyhow!(
                        "Could not find any open transactions starting at offset {start} on partition {tp}"
                    )
                })?;
            AbortTransactionSpec {
                partition: tp,
                producer_id: p.producer_id,
                producer_epoch: i16::try_from(p.producer_epoch).map_err(|_| {
                    anyhow!(
                        "producer {} has epoch {}, which does not fit a producer epoch",
                        p.producer_id,
                        p.producer_epoch
                    )
                })?,
                coordinator_epoch: p.coordinator_epoch.unwrap_or(0),
            }
        }
        (None, Some(producer_id)) => {
            let producer_epoch = producer_epoch
                .ok_or_else(|| anyhow!("Missing required argument --producer-epoch"))?;
            let coordinator_epoch = coordinator_epoch
                .ok_or_else(|| anyhow!("Missing required argument --coordinator-epoch"))?;
            AbortTransactionSpec {
                partition: tp,
                producer_id,
                producer_epoch,
                // A transaction that a new producer id began and that hung
                // before its first marker shows coordinator epoch -1 in
                // DescribeProducers; 0 is at most any coordinator's epoch.
                coordinator_epoch: coordinator_epoch.max(0),
            }
        }
    };
    admin
        .abort_transaction(&spec)
        .await
        .map_err(|e| anyhow!("Failed to abort transaction {spec}: {}", client_err(e)))
}

/// An open transaction on one partition, from DescribeProducers.
#[derive(Debug, Clone, PartialEq, Eq)]
struct OpenTransaction {
    partition: TopicPartition,
    producer: ProducerState,
}

async fn find_hanging(
    admin: &Admin,
    broker_id: Option<i32>,
    max_transaction_timeout_min: i32,
    topic: Option<String>,
    partition: Option<i32>,
) -> anyhow::Result<()> {
    if topic.is_none() && broker_id.is_none() {
        return Err(anyhow!(
            "The `find-hanging` command requires either --topic or --broker-id to limit the scope of the search"
        ));
    }
    if partition.is_some() && topic.is_none() {
        return Err(anyhow!(
            "The --partition argument requires --topic to be provided"
        ));
    }
    let max_timeout_ms = i64::from(max_transaction_timeout_min) * 60_000;
    let partitions = partitions_to_search(admin, topic, partition, broker_id).await?;

    let mut producers: BTreeMap<TopicPartition, Vec<ProducerState>> = BTreeMap::new();
    for batch in partitions.chunks(MAX_BATCH_SIZE) {
        let answers = admin
            .describe_producers_batch(batch, broker_id)
            .await
            .and_then(|m| {
                m.into_iter()
                    .map(|(tp, r)| r.map(|ps| (tp, ps)))
                    .collect::<gregor_client::Result<Vec<_>>>()
            })
            .map_err(|e| {
                let on = broker_id.map_or("their leaders".to_string(), |b| format!("broker {b}"));
                anyhow!(
                    "Failed to describe producers for {} partitions on {on}: {}",
                    batch.len(),
                    client_err(e)
                )
            })?;
        producers.extend(answers);
    }
    let now = now_ms();
    let open = candidates(now, max_timeout_ms, &producers);
    let hanging = if open.is_empty() {
        Vec::new()
    } else {
        let mut producer_ids: Vec<i64> = open.iter().map(|t| t.producer.producer_id).collect();
        producer_ids.sort_unstable();
        producer_ids.dedup();
        let options = ListTransactionsOptions {
            producer_ids: producer_ids.clone(),
            ..Default::default()
        };
        let listings = admin.list_transactions(&options).await.map_err(|e| {
            anyhow!(
                "Failed to list transactions for {} producers: {}",
                producer_ids.len(),
                client_err(e)
            )
        })?;
        // A broker may answer more than was asked; only our producers count.
        let transactional_ids: HashMap<i64, String> = listings
            .into_iter()
            .filter(|l| producer_ids.contains(&l.producer_id))
            .map(|l| (l.producer_id, l.transactional_id))
            .collect();
        let mut ids: Vec<&str> = transactional_ids.values().map(String::as_str).collect();
        ids.sort_unstable();
        ids.dedup();
        let fail = |e: gregor_client::Error| {
            anyhow!(
                "Failed to describe {} transactions: {}",
                ids.len(),
                client_err(e)
            )
        };
        let mut descriptions: HashMap<String, Option<TransactionDescription>> = HashMap::new();
        for (id, r) in admin.describe_transactions(&ids).await.map_err(fail)? {
            match r {
                Ok(d) => {
                    descriptions.insert(id, Some(d));
                }
                Err(e) if e.code() == Some(TRANSACTIONAL_ID_NOT_FOUND) => {
                    descriptions.insert(id, None);
                }
                Err(e) => return Err(fail(e)),
            }
        }
        hanging(open, &transactional_ids, &descriptions)
    };
    let rows: Vec<Vec<String>> = hanging
        .iter()
        .map(|t| {
            vec![
                t.partition.topic.clone(),
                t.partition.partition.to_string(),
                t.producer.producer_id.to_string(),
                t.producer.producer_epoch.to_string(),
                t.producer.coordinator_epoch.unwrap_or(-1).to_string(),
                t.producer
                    .current_txn_start_offset
                    .unwrap_or(-1)
                    .to_string(),
                t.producer.last_timestamp.to_string(),
                ((now - t.producer.last_timestamp) / 60_000).to_string(),
            ]
        })
        .collect();
    print!("{}", pretty_table(&HANGING_HEADERS, &rows));
    Ok(())
}

const TRANSACTIONAL_ID_NOT_FOUND: i16 = 105;

/// The partitions `find-hanging` looks at: the one named, the named
/// topic's, or every topic's (internal ones included), keeping only those
/// with a replica on `broker_id` when given.
async fn partitions_to_search(
    admin: &Admin,
    topic: Option<String>,
    partition: Option<i32>,
    broker_id: Option<i32>,
) -> anyhow::Result<Vec<TopicPartition>> {
    let topics = match (topic, partition) {
        (Some(t), Some(p)) => return Ok(vec![TopicPartition::new(t, p)]),
        (Some(t), None) => vec![t],
        (None, _) => admin
            .list_topics(true)
            .await
            .map_err(|e| anyhow!("Failed to list topics: {}", client_err(e)))?
            .into_iter()
            .map(|t| t.name)
            .collect(),
    };
    let mut out = Vec::new();
    for batch in topics.chunks(MAX_BATCH_SIZE) {
        let names: Vec<&str> = batch.iter().map(String::as_str).collect();
        let described = admin.describe_topics(&names).await.map_err(|e| {
            anyhow!(
                "Failed to describe {} topics: {}",
                names.len(),
                client_err(e)
            )
        })?;
        for t in described {
            for p in &t.partitions {
                if broker_id.is_none_or(|b| p.replicas.contains(&b)) {
                    out.push(TopicPartition::new(t.name.clone(), p.partition));
                }
            }
        }
    }
    Ok(out)
}

/// The open transactions whose producer last wrote more than
/// `max_timeout_ms` before `now_ms`: no coordinator would still let them
/// run, so each is either about to be aborted or hanging.
fn candidates(
    now_ms: i64,
    max_timeout_ms: i64,
    producers: &BTreeMap<TopicPartition, Vec<ProducerState>>,
) -> Vec<OpenTransaction> {
    producers
        .iter()
        .flat_map(|(tp, states)| {
            states
                .iter()
                .filter(|p| {
                    p.current_txn_start_offset.is_some()
                        && now_ms - p.last_timestamp > max_timeout_ms
                })
                .map(|p| OpenTransaction {
                    partition: tp.clone(),
                    producer: p.clone(),
                })
        })
        .collect()
}

/// Which candidates hang: those whose producer id no coordinator lists,
/// whose transactional id is no longer found, or whose coordinator's
/// current transaction does not include the partition. DescribeTransactions
/// names every partition of an ongoing transaction and, while it prepares to
/// commit or abort, every one still waiting for its marker, so a partition
/// outside that set will never get one (Kafka's `filterHangingTransactions`).
fn hanging(
    candidates: Vec<OpenTransaction>,
    transactional_ids: &HashMap<i64, String>,
    descriptions: &HashMap<String, Option<TransactionDescription>>,
) -> Vec<OpenTransaction> {
    let mut out: Vec<OpenTransaction> = candidates
        .into_iter()
        .filter(|t| {
            match transactional_ids
                .get(&t.producer.producer_id)
                .and_then(|id| descriptions.get(id))
            {
                Some(Some(d)) => !d.topic_partitions.contains(&t.partition),
                // No transactional id for the producer, or the id is gone.
                _ => true,
            }
        })
        .collect();
    out.sort_by(|a, b| {
        (&a.partition, a.producer.producer_id).cmp(&(&b.partition, b.producer.producer_id))
    });
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use gregor_client::admin::TransactionState;

    use super::*;

    const MIN: i64 = 60_000;

    fn producer(id: i64, last_timestamp: i64, start: Option<i64>) -> ProducerState {
        ProducerState {
            producer_id: id,
            producer_epoch: 0,
            last_sequence: 0,
            last_timestamp,
            coordinator_epoch: None,
            current_txn_start_offset: start,
        }
    }

    fn tp(p: i32) -> TopicPartition {
        TopicPartition::new("t", p)
    }

    fn description(id: &str, pid: i64, partitions: &[i32]) -> TransactionDescription {
        TransactionDescription {
            coordinator_id: 1,
            transactional_id: id.to_string(),
            state: TransactionState::Ongoing,
            producer_id: pid,
            producer_epoch: 0,
            transaction_timeout_ms: 60_000,
            transaction_start_time_ms: Some(0),
            topic_partitions: partitions.iter().map(|p| tp(*p)).collect::<BTreeSet<_>>(),
        }
    }

    #[test]
    fn candidates_are_open_transactions_older_than_the_timeout() {
        let now = 100 * MIN;
        let producers = BTreeMap::from([
            (
                tp(0),
                vec![
                    producer(1, now - 16 * MIN, Some(10)), // open and old: candidate
                    producer(2, now - 16 * MIN, None),     // old but no open transaction
                    producer(3, now - 14 * MIN, Some(20)), // open but within the timeout
                    producer(4, now - 15 * MIN, Some(30)), // exactly the timeout: not older
                ],
            ),
            (tp(1), vec![producer(1, now - 60 * MIN, Some(0))]),
        ]);
        let got: Vec<(TopicPartition, i64)> = candidates(now, 15 * MIN, &producers)
            .into_iter()
            .map(|t| (t.partition, t.producer.producer_id))
            .collect();
        assert_eq!(got, vec![(tp(0), 1), (tp(1), 1)]);
        assert!(candidates(now, 61 * MIN, &producers).is_empty());
    }

    #[test]
    fn a_transaction_hangs_unless_its_coordinator_still_has_the_partition() {
        let open = |p: i32, pid: i64| OpenTransaction {
            partition: tp(p),
            producer: producer(pid, 0, Some(5)),
        };
        let candidates = vec![
            open(0, 1), // unknown producer id: hanging
            open(1, 2), // id no longer found: hanging
            open(2, 3), // ongoing with this partition: not hanging
            open(3, 3), // ongoing, but not with this partition: hanging
        ];
        let ids = HashMap::from([(2, "gone".to_string()), (3, "live".to_string())]);
        let descriptions = HashMap::from([
            ("gone".to_string(), None),
            ("live".to_string(), Some(description("live", 3, &[2]))),
        ]);
        let got: Vec<(i32, i64)> = hanging(candidates, &ids, &descriptions)
            .into_iter()
            .map(|t| (t.partition.partition, t.producer.producer_id))
            .collect();
        assert_eq!(got, vec![(0, 1), (1, 2), (3, 3)]);
    }

    #[test]
    fn describe_row_is_kafkas() {
        let d = description("x", 9, &[1, 0]);
        assert_eq!(
            describe_row(&d, 1_500),
            ["1", "x", "9", "0", "Ongoing", "60000", "0", "1500", "t-0,t-1"]
        );
        let idle = TransactionDescription {
            state: TransactionState::Empty,
            transaction_start_time_ms: None,
            topic_partitions: BTreeSet::new(),
            ..d
        };
        assert_eq!(
            describe_row(&idle, 1_500),
            ["1", "x", "9", "0", "Empty", "60000", "None", "None", ""]
        );
    }
}
