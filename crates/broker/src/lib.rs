//! The Kafka broker.
//!
//! # Layout
//!
//! - [`config`]: static broker configuration (`server.properties`, overrides).
//! - [`broker`]: [`Broker`], the shared state: metadata, logs, hosted partitions.
//! - [`metadata_log`]: where the metadata comes from: the embedded single-node log or the quorum.
//! - [`metadata_store`]: the single-node metadata log runtime (append, replay, image).
//! - [`cluster`]: a node of a multi-node cluster: its seat in the Raft metadata quorum, the
//!   controller's RPCs (forwarded proposals, heartbeats, fencing), the broker's cluster loop.
//! - [`meta_properties`]: `meta.properties` of each log dir (cluster, node and dir ids), checked
//!   at start and written by `gregor storage format`.
//! - [`bootstrap`]: `bootstrap.checkpoint`, the records (SCRAM credentials) a new cluster
//!   starts with, left by `gregor storage format --add-scram`.
//! - [`sasl`]: a listener's SASL mechanisms and credentials (JAAS users, the image's SCRAM
//!   credentials, OAUTHBEARER's validator) for the connection code's SaslHandshake /
//!   SaslAuthenticate; [`jwks`]: an OAUTHBEARER listener's JWKS fetched over HTTP(S).
//! - [`partition`]: [`Partition`], one hosted partition: its log and replication state (role,
//!   leader epoch, ISR, high watermark, followers' positions) behind one lock.
//! - [`quota`]: client quotas (produce / fetch byte rates per user and client id): the
//!   quota that applies, the measured rate and the throttle time.
//! - [`metrics`]: the metrics registry (lock-free counters and histograms the request path
//!   records) and the Prometheus / OpenMetrics text writer `/metrics` uses.
//! - [`purgatory`]: requests waiting on partitions, woken by those partitions' events only.
//! - [`log_loading`]: loading the partition logs in the background while the listeners
//!   serve; each partition is hosted as soon as its log is loaded.
//! - [`malloc`]: glibc malloc's tuning: fixed thresholds so large requests reuse heap pages, and
//!   free pages returned after the log load, for the RSS of idle
//!   partitions.
//! - [`log_dir_move`]: moving a replica to another log dir (AlterReplicaLogDirs): a copy
//!   filled while the partition runs, switched in with appends held off.
//! - [`replica_fetcher`]: the follower side of replication: one fetching task per leader,
//!   appending the leader's batches, taking its high watermark, truncating divergent tails.
//! - [`group_runtime`]: runs the group coordinator's state machines over `__consumer_offsets`.
//! - [`server`]: the listeners (PLAINTEXT and SSL), connection tasks and ordered shutdown.
//! - [`connection`]: framing and in-order request handling on one connection, over any byte
//!   stream (TCP or TLS).
//! - [`transport`]: what a connection knows about itself ([`transport::ConnectionContext`]:
//!   listener, security protocol, peer, principal), TLS settings and principal mapping.
//! - [`handlers`]: one module per Kafka API, routed from one table.
//! - [`response_buf`]: response frames that reference fetched record bytes instead of copying them.

pub mod bootstrap;
pub mod broker;
pub mod cluster;
pub mod config;
pub mod connection;
pub mod coordinator_runtime;
pub mod fd_limit;
pub mod features;
pub mod fetch_session;
pub mod group_runtime;
pub mod handlers;
pub mod inter_broker;
pub mod java_properties;
pub mod jwks;
pub mod log_dir_move;
pub mod log_loading;
pub mod malloc;
pub mod meta_properties;
pub mod metadata_log;
pub mod metadata_store;
pub mod metrics;
pub mod partition;
pub mod purgatory;
pub mod quota;
pub mod replica_fetcher;
pub mod response_buf;
pub mod sasl;
pub mod server;
pub mod transport;
pub mod txn_runtime;

pub use broker::Broker;
pub use config::BrokerConfig;
pub use partition::Partition;
