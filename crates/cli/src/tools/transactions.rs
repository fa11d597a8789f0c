//! `gregor transactions`: kafka-transactions.sh. `describe-producers` (the
//! producers a partition replica holds state for, DescribeProducers) prints
//! what Kafka's TransactionsCommand prints; the transaction subcommands
//! (list, describe, abort, find-hanging) arrive with transactions.

use clap::{Args, Subcommand};
use gregor_client::TopicPartition;

use super::metadata_quorum::pretty_table;
use super::{block_on, client_err, Conn};

pub const EXAMPLES: &str = "Examples:
  gregor transactions --bootstrap-server 127.0.0.1:9092 describe-producers --topic orders --partition 0
  gregor transactions describe-producers --topic orders --partition 0 --broker-id 2";

/// Describe producers and transactions.
#[derive(Args, Debug)]
pub struct TransactionsArgs {
    #[command(flatten)]
    pub conn: Conn,
    #[command(subcommand)]
    pub command: TransactionsCommand,
}

#[derive(Subcommand, Debug)]
pub enum TransactionsCommand {
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
}

const HEADERS: [&str; 6] = [
    "ProducerId",
    "ProducerEpoch",
    "LatestCoordinatorEpoch",
    "LastSequence",
    "LastTimestamp",
    "CurrentTransactionStartOffset",
];

pub fn run(args: TransactionsArgs) -> anyhow::Result<()> {
    let TransactionsCommand::DescribeProducers {
        broker_id,
        topic,
        partition,
    } = args.command;
    let admin = args.conn.admin()?;
    block_on(async move {
        let tp = TopicPartition::new(topic, partition);
        let result = admin.describe_producers(&tp, broker_id).await;
        admin.close().await;
        let producers = result.map_err(|e| {
            let on = broker_id.map_or("leader".to_string(), |b| format!("broker {b}"));
            anyhow::anyhow!(
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
        print!("{}", pretty_table(&HEADERS, &rows));
        Ok(())
    })
}
