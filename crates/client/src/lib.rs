//! A native Rust Kafka client: [`Producer`], [`Consumer`] and [`Admin`].
//!
//! It speaks only the Kafka wire protocol (through the `kafka-protocol`
//! codecs and `gregor-records` for record batches), so it works against
//! Gregor and against Apache Kafka alike. Configuration uses the Java
//! client's property names and defaults ([`ClientConfig`]).
//!
//! # Layout
//!
//! - [`config`]: `ClientConfig`, from a map or Java-properties text
//! - [`error`]: the one error type; broker errors keep Kafka's code and name
//! - `conn`: one pipelined connection per broker, ApiVersions negotiation
//! - [`tls`]: `security.protocol` SSL / SASL_SSL: the `ssl.*` settings as a rustls config
//! - [`oauthbearer`]: the OAUTHBEARER token (static, or Kafka's unsecured JWT)
//! - [`cluster`]: the metadata cache and connection pool
//! - [`admin`]: topics, configs, records, offsets, log dirs, groups
//! - [`producer`]: accumulator, sender, partitioners, retries, idempotence,
//!   transactions (`transactional.id`)
//! - [`consumer`]: fetcher, classic group membership, assignors, commits,
//!   `isolation.level=read_committed`
//! - `group_ops`, `offsets`: coordinator and leader requests shared by admin and consumer
//! - [`types`]: `TopicPartition`, `ProducerRecord`, `ConsumerRecord`, ...
//!
//! # Example
//!
//! ```no_run
//! use std::time::Duration;
//! use gregor_client::admin::NewTopic;
//! use gregor_client::{Admin, ClientConfig, Consumer, Producer, ProducerRecord};
//!
//! # async fn run() -> gregor_client::Result<()> {
//! let config = ClientConfig::from_properties("bootstrap.servers=localhost:9092")?;
//!
//! let admin = Admin::new(config.clone())?;
//! admin.create_topic(NewTopic::new("greetings", 3, 1)).await?;
//!
//! let producer = Producer::new(config.clone().with("linger.ms", "10")?)?;
//! let delivery = producer
//!     .send(ProducerRecord::new("greetings", "hello").with_key("k1"))
//!     .await?;
//! let written = delivery.await?;
//! println!("partition {} offset {}", written.partition, written.offset);
//! producer.close().await;
//!
//! let mut consumer = Consumer::new(
//!     config
//!         .with("group.id", "readers")?
//!         .with("auto.offset.reset", "earliest")?,
//! )?;
//! consumer.subscribe(&["greetings"], None)?;
//! for record in consumer.poll(Duration::from_secs(5)).await? {
//!     println!("{}: {:?}", record.offset, record.value);
//! }
//! consumer.commit_sync(None).await?;
//! consumer.close().await?;
//! # Ok(())
//! # }
//! ```

pub mod admin;
pub mod cluster;
pub mod config;
mod conn;
pub mod consumer;
pub mod error;
mod group_ops;
pub mod oauthbearer;
mod offsets;
pub mod producer;
pub mod tls;
pub mod types;

pub use admin::Admin;
pub use config::ClientConfig;
pub use consumer::{Consumer, FetchStats, RebalanceListener};
pub use error::{Error, Result};
pub use producer::{DeliveryFuture, Producer};
pub use types::*;
