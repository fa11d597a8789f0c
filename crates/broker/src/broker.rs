//! The broker's shared state: configuration, the metadata store, the partition
//! logs, and the partitions this node leads. Handlers get `&Broker`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Weak};

use gregor_metadata::config_defs::{self, ConfigLayers, ResolvedConfig};
use gregor_metadata::{controller, ConfigResource, MetadataImage, MetadataRecord};
use gregor_records::Compression;
use gregor_storage::config::{CleanupPolicy, CompressionConfig, TimestampTypeConfig};
use gregor_storage::{Clock, Log, LogConfig, LogManager, TopicPartition};
use parking_lot::{Mutex, RwLock};
use uuid::Uuid;

use crate::cluster::QuorumLink;
use crate::config::BrokerConfig;
use crate::metadata_log::MetadataLog;
use crate::metadata_store::{
    MetadataStore, MetadataStoreConfig, MetadataStoreError, DEFAULT_SNAPSHOT_BYTES, METADATA_TOPIC,
};
pub use crate::partition::Partition;

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Metadata(#[from] MetadataStoreError),
    #[error(transparent)]
    Storage(#[from] gregor_storage::StorageError),
    #[error(transparent)]
    MetaProperties(#[from] crate::meta_properties::MetaPropertiesError),
    #[error("the broker is shutting down")]
    ShuttingDown,
    /// No active controller took a metadata change in time (an election
    /// that does not end, a quorum without a majority).
    #[error("the metadata change did not reach an active controller: {0}")]
    ControllerUnavailable(String),
    #[error("blocking task of the broker failed: {0}")]
    Blocking(#[from] tokio::task::JoinError),
    /// The inter-broker listener's TLS material cannot be loaded.
    #[error("inter-broker connections: {0}")]
    InterBrokerTls(#[from] crate::transport::tls::TlsError),
    /// RLIMIT_NOFILE is too low for the partitions and the segment cap.
    #[error(transparent)]
    FileLimit(#[from] crate::fd_limit::FdLimitError),
}

/// Hosted partitions by topic name, then partition index.
type HostedPartitions = HashMap<Arc<str>, BTreeMap<i32, Arc<Partition>>>;

/// Producer ids this broker may hand out: `[next, end)` of the block it owns.
#[derive(Debug, Default)]
struct ProducerIdBlock {
    next: i64,
    end: i64,
}

pub struct Broker {
    pub config: BrokerConfig,
    pub clock: Arc<dyn Clock>,
    pub metadata: MetadataLog,
    /// The cluster id of this node's formatted dirs (`meta.properties`).
    pub local_cluster_id: String,
    pub logs: LogManager,
    /// The partitions this node hosts, by topic name, then partition index.
    partitions: RwLock<HostedPartitions>,
    producer_ids: Mutex<ProducerIdBlock>,
    /// Woken when broker configs change in the image: the SSL listeners'
    /// reload task (`transport::tls_reload`) re-reads their settings.
    pub tls_configs_changed: tokio::sync::Notify,
    /// The TLS listeners' acceptors as served (set when they are bound),
    /// so a keystore alteration is checked against the certificate in use.
    pub tls_listeners:
        parking_lot::Mutex<Vec<Arc<crate::transport::tls_reload::ReloadableAcceptor>>>,
    /// The port each client listener advertises (`config.listeners` order):
    /// the port actually bound when it asked for 0.
    bound_ports: Vec<std::sync::atomic::AtomicU16>,
    /// The group coordinator runtime.
    pub groups: Arc<crate::group_runtime::GroupRuntime>,
    /// The transaction coordinator runtime.
    pub txns: Arc<crate::txn_runtime::TxnRuntime>,
    /// Connections to the other brokers for coordinator requests
    /// (transaction markers, KIP-890 verification).
    pub peers: crate::inter_broker::Peers,
    /// Opens this broker's connections to the other brokers' inter-broker
    /// listener (replica fetchers, coordinator requests).
    pub inter_broker_connector: Arc<crate::transport::client::ClientConnector>,
    /// This broker, for moving blocking work to the blocking pool from `&self`.
    this: Weak<Broker>,
    /// Serialises [`Broker::reconcile`] (whose file work runs without holding
    /// `partitions`), and holds the image it last reconciled to. Taken only
    /// off the async workers.
    reconciled: Mutex<Option<Arc<MetadataImage>>>,
    /// Set once on a fault this node cannot go on after (Kafka halts the
    /// process then): see [`Broker::halted`].
    fatal: tokio::sync::watch::Sender<Option<String>>,
    /// Replicas being moved to another log dir (AlterReplicaLogDirs).
    pub log_moves: crate::log_dir_move::LogDirMoves,
    /// Client quota sensors (produce and fetch byte rates).
    pub quotas: crate::quota::ClientQuotas,
    /// Incremental fetch sessions (KIP-227).
    pub fetch_sessions: crate::fetch_session::FetchSessionCache,
    /// `queued.max.request.bytes`: memory for requests read and not yet handled.
    pub request_memory: crate::transport::memory_pool::RequestMemoryPool,
    /// What the request path counts, for `/metrics`.
    pub metrics: crate::metrics::Metrics,
    /// The partition logs' background load (see [`crate::log_loading`]).
    pub log_loading: crate::log_loading::LogLoading,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("node_id", &self.config.node_id)
            .finish()
    }
}

/// Kafka prints UUIDs (cluster ids, topic ids) as URL-safe base64 without padding.
pub fn base64_uuid(id: Uuid) -> String {
    gregor_storage::partition_metadata::base64url_encode(id.as_bytes())
}

impl Broker {
    /// Opens (formatting on first start) the embedded metadata log and the
    /// partition logs: a single-node cluster.
    pub fn open(config: BrokerConfig, clock: Arc<dyn Clock>) -> Result<Arc<Self>, BrokerError> {
        Self::open_with(config, clock, None, false)
    }

    /// [`Broker::open`] (or [`Broker::open_in_quorum`] with `link`) that
    /// returns once the metadata is ready and the logs on disk are listed:
    /// the logs load on a thread of their own and each partition is hosted
    /// as soon as its log is loaded (see [`crate::log_loading`]), so the
    /// listeners can open at once. [`Broker::log_loading`] tells when all are.
    pub fn open_while_loading(
        config: BrokerConfig,
        clock: Arc<dyn Clock>,
        link: Option<Arc<QuorumLink>>,
    ) -> Result<Arc<Self>, BrokerError> {
        Self::open_with(config, clock, link, true)
    }

    /// Opens the partition logs of a node whose metadata comes from the Raft
    /// quorum `link` (it registers later, from `cluster::run_broker`).
    pub fn open_in_quorum(
        config: BrokerConfig,
        clock: Arc<dyn Clock>,
        link: Arc<QuorumLink>,
    ) -> Result<Arc<Self>, BrokerError> {
        Self::open_with(config, clock, Some(link), false)
    }

    fn open_with(
        config: BrokerConfig,
        clock: Arc<dyn Clock>,
        link: Option<Arc<QuorumLink>>,
        in_background: bool,
    ) -> Result<Arc<Self>, BrokerError> {
        config.warn_keys_without_effect();
        let dirs = crate::meta_properties::MetaPropertiesEnsemble::open_for_start(
            &config,
            clock.now_ms(),
            &mut rand::thread_rng(),
        )?;
        let cluster_id = dirs.cluster_id().unwrap_or_default().to_string();
        let snapshot_bytes = config
            .props
            .get("metadata.log.max.record.bytes.between.snapshots")
            .and_then(|v| v.trim().parse::<u64>().ok())
            .filter(|&v| v >= 1)
            .unwrap_or(DEFAULT_SNAPSHOT_BYTES);
        let node_id = config.node_id;
        let metadata = match link {
            Some(link) => MetadataLog::Quorum(link),
            None => {
                let store = MetadataStore::open(
                    &config.metadata_log_dir,
                    clock.clone(),
                    MetadataStoreConfig {
                        snapshot_bytes,
                        batch_limits: config.metadata_batch_limits(),
                    },
                )?;
                let endpoint = (config.advertised_host.clone(), config.advertised_port);
                let endpoints: Vec<gregor_metadata::BrokerEndpoint> = config
                    .listeners
                    .iter()
                    .map(|l| gregor_metadata::BrokerEndpoint {
                        name: l.listener.name.clone(),
                        host: l.advertised_host.clone(),
                        port: l.advertised_port,
                        security_protocol: l.protocol.name().to_string(),
                    })
                    .collect();
                let rack = config.rack.clone();
                let bootstrap = crate::bootstrap::read(&config.metadata_log_dir)
                    .map_err(MetadataStoreError::from)?;
                store
                    .update(|image| {
                        let records = crate::cluster::registration(
                            image,
                            &cluster_id,
                            node_id,
                            endpoint,
                            endpoints,
                            rack,
                            &bootstrap,
                        );
                        Ok::<_, std::convert::Infallible>((records, ()))
                    })?
                    .unwrap_or_else(|e| match e {});
                MetadataLog::Local(Box::new(store))
            }
        };

        let image = metadata.image();
        let static_props = config.props.clone();
        let config_for = |topic: &str| resolve_log_config(&image, &static_props, node_id, topic);
        let fd_plan = crate::fd_limit::check_and_raise(config.max_open_segments)?;
        let max_open_segments = fd_plan.max_open_segments;
        // Automatic cap: follows the partition count as partitions are created.
        let auto_fd_budget = (config.max_open_segments == 0)
            .then(|| fd_plan.soft_limit.saturating_sub(crate::fd_limit::RESERVED));
        tracing::info!(max_open_segments, "loading logs");
        let (logs, pending) = LogManager::open_deferred(
            config.log_dirs.clone(),
            clock.clone(),
            &config_for,
            gregor_storage::LogManagerOptions {
                max_open_segments,
                auto_fd_budget,
                recovery_threads_per_dir: config.recovery_threads_per_data_dir,
            },
        )?;
        let pending = if in_background {
            Some(pending)
        } else {
            logs.load_pending(pending, &|_| {})?;
            None
        };
        let inter_broker_connector = Arc::new(crate::transport::client::ClientConnector::new(
            &config.inter_broker_link,
        )?);
        let broker = Arc::new_cyclic(|weak| Self {
            bound_ports: config
                .listeners
                .iter()
                .map(|l| std::sync::atomic::AtomicU16::new(l.advertised_port))
                .collect(),
            groups: Arc::new(crate::group_runtime::group_runtime(
                weak.clone(),
                gregor_coordinator::GroupConfig {
                    group_overrides: group_overrides_lookup(weak.clone()),
                    ..config.group.clone()
                },
                config.offsets_topic_partitions,
            )),
            peers: crate::inter_broker::Peers::new(
                format!("broker-{node_id}-coordinator"),
                std::time::Duration::from_secs(30),
                inter_broker_connector.clone(),
            ),
            inter_broker_connector,
            txns: Arc::new(crate::txn_runtime::txn_runtime(weak.clone(), &config.props)),
            request_memory: crate::transport::memory_pool::RequestMemoryPool::new(
                config.queued_max_request_bytes,
            ),
            fetch_sessions: crate::fetch_session::FetchSessionCache::new(
                config
                    .props
                    .get("max.incremental.fetch.session.cache.slots")
                    .and_then(|v| v.trim().parse::<usize>().ok())
                    .unwrap_or(1000),
            ),
            quotas: crate::quota::ClientQuotas::new(crate::quota::WindowConfig {
                samples: config.quota_window_num,
                window_ms: config.quota_window_size_seconds as i64 * 1000,
            }),
            config,
            clock,
            metadata,
            local_cluster_id: cluster_id,
            logs,
            partitions: RwLock::new(HashMap::new()),
            producer_ids: Mutex::new(ProducerIdBlock::default()),
            tls_configs_changed: tokio::sync::Notify::new(),
            tls_listeners: parking_lot::Mutex::new(Vec::new()),
            this: weak.clone(),
            reconciled: Mutex::new(None),
            fatal: tokio::sync::watch::channel(None).0,
            log_moves: Default::default(),
            metrics: Default::default(),
            log_loading: crate::log_loading::LogLoading::new(pending.is_none()),
        });
        // Hosts what is loaded (everything, unless loading in the background).
        broker.reconcile()?;
        match pending {
            Some(pending) => {
                crate::log_loading::start(&broker, pending).map_err(|source| BrokerError::Io {
                    path: "the log loader thread".into(),
                    source,
                })?
            }
            None => broker.start_cleaner()?,
        }
        Ok(broker)
    }

    /// Starts the log cleaner, if enabled (once every log is loaded).
    pub(crate) fn start_cleaner(&self) -> Result<(), BrokerError> {
        if let Some(cleaner) = self.config.cleaner.clone() {
            // The cleaner may clean up to the last stable offset, as Kafka's.
            let weak = self.this.clone();
            self.logs.start_cleaner(
                cleaner,
                Arc::new(move |log: &Log| {
                    weak.upgrade()
                        .map_or(log.log_start_offset(), |b| b.last_stable_offset_of(log))
                }),
            )?;
        }
        Ok(())
    }

    /// Whether `topic`-`partition`, which the image places on this node, is
    /// not hosted yet because the logs are still loading: requests on it get
    /// Kafka's retriable answers until it is.
    pub fn partition_loading(&self, topic: &str, partition: i32) -> bool {
        !self.log_loading.is_done() && self.partition(topic, partition).is_none()
    }

    pub fn node_id(&self) -> i32 {
        self.config.node_id
    }

    pub fn cluster_id(&self) -> String {
        self.metadata
            .image()
            .cluster_id
            .clone()
            .unwrap_or_else(|| self.local_cluster_id.clone())
    }

    /// The active controller's node id as clients see it (this node on a
    /// single-node cluster; -1 while a quorum has none).
    pub fn controller_id(&self) -> i32 {
        match self.metadata.quorum() {
            // Clients can only reach brokers: a controller-only active
            // controller is stood in for by this broker (Kafka answers a
            // random live broker), which forwards what needs the controller.
            Some(link) => match link.controller_id() {
                Some(id) if self.metadata.image().is_live(id) => id,
                Some(_) => self.config.node_id,
                None => -1,
            },
            None => self.config.node_id,
        }
    }

    /// Every partition this node hosts.
    pub fn hosted_partitions(&self) -> Vec<Arc<Partition>> {
        self.partitions
            .read()
            .values()
            .flat_map(|ps| ps.values().cloned())
            .collect()
    }

    /// The host and port other brokers reach this one at: the inter-broker
    /// listener's advertised endpoint.
    pub fn advertised_endpoint(&self) -> (String, u16) {
        let port = self
            .bound_ports
            .get(self.config.inter_broker_listener)
            .map_or(self.config.advertised_port, |p| {
                p.load(std::sync::atomic::Ordering::Relaxed)
            });
        (self.config.advertised_host.clone(), port)
    }

    /// Every client listener's advertised endpoint, as registered with the
    /// controller (ports as bound).
    pub fn advertised_endpoints(&self) -> Vec<gregor_metadata::BrokerEndpoint> {
        self.config
            .listeners
            .iter()
            .zip(&self.bound_ports)
            .map(|(l, port)| gregor_metadata::BrokerEndpoint {
                name: l.listener.name.clone(),
                host: l.advertised_host.clone(),
                port: port.load(std::sync::atomic::Ordering::Relaxed),
                security_protocol: l.protocol.name().to_string(),
            })
            .collect()
    }

    /// This broker's advertised `(host, port)` on listener `name`.
    pub fn advertised_endpoint_on(&self, name: &str) -> Option<(String, u16)> {
        let i = self
            .config
            .listeners
            .iter()
            .position(|l| l.listener.name == name)?;
        Some((
            self.config.listeners[i].advertised_host.clone(),
            self.bound_ports[i].load(std::sync::atomic::Ordering::Relaxed),
        ))
    }

    /// Records the port client listener `index` bound, when it asked for port 0.
    pub fn set_bound_port(&self, index: usize, port: u16) {
        if let (Some(l), Some(p)) = (
            self.config.listeners.get(index),
            self.bound_ports.get(index),
        ) {
            if l.advertised_port == 0 {
                p.store(port, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// The partition `topic`-`partition` if this node hosts it.
    pub fn partition(&self, topic: &str, partition: i32) -> Option<Arc<Partition>> {
        self.partitions
            .read()
            .get(topic)
            .and_then(|ps| ps.get(&partition).cloned())
    }

    /// The last stable offset of a hosted partition's log (see
    /// [`Partition::last_stable_offset`]); a log that is not a hosted
    /// partition is committed to its end.
    fn last_stable_offset_of(&self, log: &Log) -> i64 {
        let tp = log.topic_partition();
        self.partition(&tp.topic, tp.partition)
            .filter(|p| std::ptr::eq(Arc::as_ptr(&p.log()), log))
            .map_or_else(|| log.log_end_offset(), |p| p.last_stable_offset())
    }

    /// The high watermark of a hosted partition's log. A log that is not a
    /// hosted partition has the one `on_disk` gives it (a log loaded while
    /// the broker serves, not hosted yet: its partition takes it from the
    /// file when hosted, and its log end may be past it), else it is
    /// committed to its end (the metadata log).
    fn high_watermark_of(&self, log: &Log, on_disk: Option<&BTreeMap<TopicPartition, i64>>) -> i64 {
        let tp = log.topic_partition();
        match self.partition(&tp.topic, tp.partition) {
            Some(p) if std::ptr::eq(Arc::as_ptr(&p.log()), log) => p.high_watermark(),
            _ => on_disk
                .and_then(|hws| hws.get(tp).copied())
                .unwrap_or_else(|| log.log_end_offset()),
        }
    }

    /// Called with every storage error a handler sees: an I/O error takes the
    /// partition's log dir offline (its partitions then answer
    /// KAFKA_STORAGE_ERROR) instead of failing the broker, as Kafka's
    /// LogDirFailureChannel does.
    ///
    /// As Kafka's log dir failure handler, the process halts when the failed
    /// dir holds the metadata log or no log dir is left online: see
    /// [`Broker::halted`].
    pub fn on_storage_error(&self, tp: &TopicPartition, error: &gregor_storage::StorageError) {
        if !matches!(error, gregor_storage::StorageError::Io { .. }) {
            return;
        }
        tracing::error!(partition = %tp, error = %error, "I/O error on log dir");
        let dir = self.logs.dir_of(tp).map(Path::to_path_buf);
        if self.logs.mark_dir_offline(tp).is_empty() {
            return;
        }
        if let Some(dir) = dir.filter(|d| *d == self.config.metadata_log_dir) {
            self.fatal_fault(format!(
                "log dir {} failed and it holds the metadata log",
                dir.display()
            ));
        } else if self.logs.all_offline() {
            self.fatal_fault(format!(
                "all log dirs ({}) have failed",
                self.logs
                    .dirs()
                    .iter()
                    .map(|d| d.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
    }

    /// Records a fault this node cannot go on after (the first one wins).
    pub fn fatal_fault(&self, reason: String) {
        self.fatal.send_if_modified(|f| {
            if f.is_some() {
                return false;
            }
            tracing::error!(reason = %reason, "fatal fault");
            *f = Some(reason);
            true
        });
    }

    /// Resolves with the reason once a fatal fault happened: the server
    /// halts then (exit status 1, no controlled shutdown), as Kafka does when
    /// the metadata log dir or every log dir fails, so a supervisor restarts
    /// it once the disk is fixed and the cluster moves leaderships meanwhile.
    pub async fn halted(&self) -> String {
        let mut rx = self.fatal.subscribe();
        loop {
            if let Some(reason) = rx.borrow_and_update().clone() {
                return reason;
            }
            if rx.changed().await.is_err() {
                return std::future::pending().await;
            }
        }
    }

    /// Holds off [`Broker::reconcile`] (which compares the partitions' logs
    /// with the log manager's) while a replica switches log dirs.
    pub(crate) fn reconcile_guard(
        &self,
    ) -> parking_lot::MutexGuard<'_, Option<Arc<MetadataImage>>> {
        self.reconciled.lock()
    }

    /// This broker as an `Arc`, to hand blocking work to the blocking pool.
    pub(crate) fn arc(&self) -> Result<Arc<Broker>, BrokerError> {
        self.this.upgrade().ok_or(BrokerError::ShuttingDown)
    }

    /// Runs blocking `work` (fsync, directory changes) on tokio's blocking
    /// pool, so a slow disk stalls only the requests waiting for it, never
    /// an async worker and the connections it serves.
    async fn blocking<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Broker) -> Result<T, BrokerError> + Send + 'static,
    ) -> Result<T, BrokerError> {
        let this = self.arc()?;
        tokio::task::spawn_blocking(move || work(&this)).await?
    }

    /// Brings the hosted partitions in line with the metadata image: opens logs
    /// of new partitions, applies changed topic configs, deletes logs of
    /// removed topics. Blocks on the disk; `partitions` is locked only to
    /// copy it and to swap the result in, never across file work, so
    /// requests looking partitions up do not wait for the disk.
    ///
    /// Only what changed since the last reconcile is applied: a topic whose
    /// image and configs (its own, this broker's, the cluster default) are
    /// shared with the last reconciled image keeps its partitions untouched.
    pub fn reconcile(&self) -> Result<(), BrokerError> {
        let mut reconciled = self.reconciled.lock();
        let image = self.metadata.image();
        let now = self.clock.now_ms();
        // Topics with logs loaded since the last reconcile: hosted now.
        let loaded = self.log_loading.take_dirty();

        let current = self.partitions.read().clone();
        let prev = reconciled.clone().filter(|prev| {
            [
                ConfigResource::Broker(self.config.node_id.to_string()),
                ConfigResource::Broker(String::new()),
            ]
            .iter()
            .all(|r| image.configs_shared_with(prev, r))
        });
        if prev.is_none() {
            // First image, or broker configs changed: SSL material may have.
            self.tls_configs_changed.notify_one();
        }
        let unchanged = |name: &str| {
            !loaded.contains(name)
                && prev.as_ref().is_some_and(|prev| {
                    image.topic_shared_with(prev, name)
                        && image.configs_shared_with(prev, &ConfigResource::Topic(name.to_string()))
                })
        };
        let mut next = HostedPartitions::new();
        // Read on the first new partition: the high watermarks of the last run.
        let mut checkpointed: Option<BTreeMap<TopicPartition, i64>> = None;
        for topic in image.topics() {
            let name: Arc<str> = Arc::from(topic.name.as_str());
            if let Some(existing) = current.get(&name).filter(|_| unchanged(&topic.name)) {
                next.insert(name, existing.clone());
                continue;
            }
            // One config per topic, shared by its partitions' logs.
            let config = Arc::new(resolve_log_config(
                &image,
                &self.config.props,
                self.config.node_id,
                &topic.name,
            ));
            let min_isr = config_defs::resolve_topic_configs(layers(
                &image,
                &self.config.props,
                self.config.node_id,
                &topic.name,
            ))
            .iter()
            .find(|c| c.name == "min.insync.replicas")
            .and_then(|c| c.value.as_deref().and_then(|v| v.parse::<usize>().ok()))
            .unwrap_or(1);
            let existing = current.get(&name);
            // Collected in partition order, then built in one go: full B-tree
            // nodes, where inserting in order leaves them about half full.
            let mut parts = Vec::with_capacity(topic.partitions.len());
            for (&p, image_p) in &topic.partitions {
                if !image_p.replicas.contains(&self.config.node_id) {
                    continue;
                }
                let reuse = existing
                    .and_then(|ps| ps.get(&p))
                    .filter(|old| old.topic_id == topic.topic_id);
                let partition = match reuse {
                    Some(old) => {
                        if old.log().config() != *config {
                            old.log().update_config(config.clone());
                        }
                        let isr_before = old.view().isr.len();
                        if old.apply_image(image_p, min_isr, now)
                            && image_p.leader == self.config.node_id
                        {
                            // Kafka counts these at the leader (IsrShrinksPerSec).
                            let isr_after = image_p.isr.len();
                            if isr_after < isr_before {
                                self.metrics.isr_shrinks.inc();
                            } else if isr_after > isr_before {
                                self.metrics.isr_expands.inc();
                            }
                        }
                        old.clone()
                    }
                    None => {
                        let tp = TopicPartition {
                            topic: name.clone(),
                            partition: p,
                        };
                        if self.logs.is_loading(&tp) {
                            // Left out until loaded: the load marks its
                            // topic, and the next reconcile hosts it.
                            continue;
                        }
                        let log = self.logs.get_or_create(&tp, config.clone())?;
                        log.set_topic_id(*topic.topic_id.as_bytes())?;
                        let hw = checkpointed
                            .get_or_insert_with(|| self.logs.read_high_watermarks())
                            .get(&tp)
                            .copied()
                            .unwrap_or(0);
                        Arc::new(Partition::new(
                            tp,
                            topic.topic_id,
                            log,
                            self.config.node_id,
                            image_p,
                            min_isr,
                            hw,
                            now,
                        ))
                    }
                };
                parts.push((p, partition));
            }
            next.insert(name, parts.into_iter().collect());
        }
        // Logs on disk whose topic is gone (deleted while we ran, or while we
        // were down) or whose replica moved away. A log the image still
        // places here is never deleted, even when this reconcile did not host
        // it: it may have finished loading after its topic was looked at.
        let node_id = self.config.node_id;
        let placed_here = |tp: &TopicPartition| {
            image
                .topic(&tp.topic)
                .and_then(|t| t.partitions.get(&tp.partition))
                .is_some_and(|p| p.replicas.contains(&node_id))
        };
        let removed: Vec<TopicPartition> = self
            .logs
            .all()
            .into_iter()
            .filter(|log| {
                let tp = log.topic_partition();
                let keep = next
                    .get(&tp.topic)
                    .and_then(|ps| ps.get(&tp.partition))
                    .is_some_and(|p| Arc::ptr_eq(&p.log(), log));
                !keep && &*tp.topic != METADATA_TOPIC && !placed_here(tp)
            })
            .map(|log| log.topic_partition().clone())
            .collect();
        self.metrics.retain_topics(|t| image.topic(t).is_some());
        *self.partitions.write() = next;
        *reconciled = Some(image);
        for tp in removed {
            tracing::info!(partition = %tp, "deleting log of removed partition");
            self.logs.delete(&tp)?;
        }
        Ok(())
    }

    /// Runs a controller decision against the metadata log, then reconciles.
    ///
    /// `decide` runs here, on the current image; the append, its fsync and
    /// the reconcile run on the blocking pool, and no lock is held across
    /// the wait. If another change landed in between, `decide` runs again on
    /// the new image (so it may run more than once; it has no side effects).
    pub async fn controller_update<R, E>(
        &self,
        decide: impl FnMut(&MetadataImage) -> Result<(Vec<MetadataRecord>, R), E>,
    ) -> Result<Result<R, E>, BrokerError> {
        self.metadata_update(decide, true).await
    }

    /// [`Broker::controller_update`] for callers that are not async
    /// (start-up, the group runtime's shard loading): blocks on the disk.
    pub fn controller_update_blocking<R, E>(
        &self,
        decide: impl FnOnce(&MetadataImage) -> Result<(Vec<MetadataRecord>, R), E>,
    ) -> Result<Result<R, E>, BrokerError> {
        let Some(store) = self.metadata.local() else {
            return Err(BrokerError::ControllerUnavailable(
                "a blocking metadata change needs the single-node metadata log".into(),
            ));
        };
        let out = store.update(decide)?;
        if out.is_ok() {
            self.reconcile()?;
        }
        Ok(out)
    }

    async fn metadata_update<R, E>(
        &self,
        mut decide: impl FnMut(&MetadataImage) -> Result<(Vec<MetadataRecord>, R), E>,
        reconcile: bool,
    ) -> Result<Result<R, E>, BrokerError> {
        if let Some(link) = self.metadata.quorum() {
            // Boxed: a round trip to the controller quorum is a large
            // future, and inline it would size the future of every handler
            // that may change metadata (about 2.7 KB of each), which the
            // connection allocates per request (`connection::serve_halves`).
            return Box::pin(self.quorum_update(link, decide, reconcile)).await;
        }
        loop {
            let base = self.metadata.image();
            let (records, value) = match decide(&base) {
                Ok(v) => v,
                Err(e) => return Ok(Err(e)),
            };
            if records.is_empty() {
                return Ok(Ok(value));
            }
            let committed = self
                .blocking(move |broker| {
                    let store = broker.metadata.local().ok_or(BrokerError::ShuttingDown)?;
                    let committed = store.try_commit(&base, &records)?;
                    if committed && reconcile {
                        broker.reconcile()?;
                    }
                    Ok(committed)
                })
                .await?;
            if committed {
                return Ok(Ok(value));
            }
        }
    }

    /// [`Broker::metadata_update`] through the Raft quorum: decide on this
    /// node's image, have the active controller append the records if its
    /// image is still the one decided on, else decide again on the newer one.
    async fn quorum_update<R, E>(
        &self,
        link: &Arc<QuorumLink>,
        mut decide: impl FnMut(&MetadataImage) -> Result<(Vec<MetadataRecord>, R), E>,
        reconcile: bool,
    ) -> Result<Result<R, E>, BrokerError> {
        let mut checked = false;
        loop {
            let base = link.applied_image();
            let (records, value) = match decide(&base.image) {
                Ok(v) => v,
                // A refusal decided on an image behind the controller's (a
                // broker it has not seen unfenced yet, a topic it has not
                // seen created) would be wrong: an empty proposal asks the
                // controller whether the image is current (a read barrier)
                // and the decision is made again on the newer one. Without
                // a controller to ask, the refusal stands.
                Err(e) if !checked => {
                    checked = true;
                    match link.propose(base.index, Vec::new()).await {
                        Ok(gregor_raft::Conditional::Stale { .. }) => continue,
                        _ => return Ok(Err(e)),
                    }
                }
                Err(e) => return Ok(Err(e)),
            };
            if records.is_empty() {
                return Ok(Ok(value));
            }
            match link.propose(base.index, records).await? {
                gregor_raft::Conditional::Committed(_) => {
                    if reconcile {
                        self.blocking(|broker| broker.reconcile()).await?;
                    }
                    return Ok(Ok(value));
                }
                gregor_raft::Conditional::Stale { .. } => continue,
            }
        }
    }

    /// Live broker ids of the cluster in placement order: replicas of a
    /// partition are consecutive entries, so when brokers name racks
    /// (`broker.rack`) the list alternates racks (Kafka's rack-alternated
    /// broker list) and a partition's replicas land on different racks
    /// while there are racks enough.
    pub fn broker_ids(&self) -> Vec<i32> {
        self.broker_ids_in(&self.metadata.image())
    }

    /// [`Broker::broker_ids`] as `image` has them (for decisions made on
    /// an image, so a decision made again on a newer one sees newer brokers).
    pub fn broker_ids_in(&self, image: &MetadataImage) -> Vec<i32> {
        let ids = rack_alternated(
            image
                .brokers
                .values()
                .filter(|b| !b.fenced)
                .map(|b| (b.node_id, b.rack.as_deref())),
        );
        if ids.is_empty() {
            vec![self.config.node_id]
        } else {
            ids
        }
    }

    /// Creates a topic with the broker's defaults (auto-creation).
    pub async fn auto_create_topic(
        &self,
        name: &str,
    ) -> Result<Result<(), controller::ControllerError>, BrokerError> {
        let mut req = controller::CreateTopic::new(name, self.config.num_partitions);
        req.replication_factor = self.config.default_replication_factor as i32;
        self.controller_update(|image| {
            let brokers = self.broker_ids_in(image);
            controller::create_topic(image, &req, &brokers, Uuid::new_v4()).map(|r| (r, ()))
        })
        .await
    }

    /// A new producer id, taking a new block from the controller when the
    /// current one is spent. The block's allocation (a metadata append)
    /// runs on the blocking pool with no lock held.
    pub async fn next_producer_id(&self) -> Result<i64, BrokerError> {
        if let Some(id) = self.take_producer_id() {
            return Ok(id);
        }
        let node_id = self.config.node_id;
        let start = self
            .metadata_update(
                |image| {
                    let (start, record) = controller::allocate_producer_ids(image, node_id);
                    Ok::<_, std::convert::Infallible>((vec![record], start))
                },
                false,
            )
            .await?
            .unwrap_or_else(|e| match e {});
        let mut block = self.producer_ids.lock();
        // Two requests may have found the block spent together: the first
        // to get here installs its new block; the others keep only the one
        // id they return (Kafka, too, leaves unused ids behind).
        if block.next >= block.end {
            *block = ProducerIdBlock {
                next: start + 1,
                end: start + controller::PRODUCER_ID_BLOCK,
            };
        }
        Ok(start)
    }

    fn take_producer_id(&self) -> Option<i64> {
        let mut block = self.producer_ids.lock();
        (block.next < block.end).then(|| {
            block.next += 1;
            block.next - 1
        })
    }

    /// Every topic config of `topic`, resolved with its source.
    pub fn describe_topic_configs(&self, topic: &str) -> Vec<ResolvedConfig> {
        let image = self.metadata.image();
        config_defs::resolve_topic_configs(layers(
            &image,
            &self.config.props,
            self.config.node_id,
            topic,
        ))
    }

    /// Every config of group `group` (ConfigResource GROUP), resolved with
    /// its source: the group's own settings, else the broker's `group.*` values.
    pub fn describe_group_configs(&self, group: &str) -> Vec<config_defs::ResolvedGroupConfig> {
        let image = self.metadata.image();
        let props = &self.config.props;
        config_defs::resolve_group_configs(
            image.configs(&ConfigResource::Group(group.to_string())),
            &|name| controller::static_broker_value(props, name),
        )
    }

    /// Flushes, snapshots and checkpoints every log; closes the metadata log.
    pub fn shutdown(&self) -> Result<(), BrokerError> {
        // Logs still loading are closed with the others.
        self.log_loading.join();
        // Copies to other log dirs stop (their future dirs go at the next start).
        self.log_moves.cancel_all();
        // LogManager::shutdown writes recovery points and log start offsets but
        // knows no high watermarks: write the full set first.
        self.checkpoint()?;
        self.logs.shutdown()?;
        if let Some(store) = self.metadata.local() {
            store.close()?;
        }
        Ok(())
    }

    /// Deletes segments past `retention.ms` / `retention.bytes` (every
    /// `log.retention.check.interval.ms`). Returns the number of segments deleted.
    pub fn enforce_retention(&self) -> Result<usize, BrokerError> {
        Ok(self.logs.enforce_retention()?)
    }

    /// Writes the log-dir checkpoint files (periodically and at shutdown).
    /// Blocks on the disk.
    ///
    /// While the logs load, the files keep the entries of the logs not
    /// loaded yet (see `LogManager::checkpoint`), and the high watermarks of
    /// loaded logs not hosted yet (see `high_watermark_of`).
    pub fn checkpoint(&self) -> Result<(), BrokerError> {
        let on_disk = (!self.log_loading.is_done()).then(|| self.logs.read_high_watermarks());
        self.logs
            .checkpoint(&|log: &Log| self.high_watermark_of(log, on_disk.as_ref()))?;
        Ok(())
    }

    /// [`Broker::checkpoint`] on the blocking pool, for request handlers.
    pub async fn checkpoint_async(&self) -> Result<(), BrokerError> {
        self.blocking(|broker| broker.checkpoint()).await
    }
}

/// Broker ids ordered so that racks alternate: the first broker of each
/// rack (racks in name order, brokers in id order), then the second of
/// each, and so on; brokers without a rack form one rack of their own.
fn rack_alternated<'a>(brokers: impl Iterator<Item = (i32, Option<&'a str>)>) -> Vec<i32> {
    let mut by_rack: BTreeMap<Option<&str>, Vec<i32>> = BTreeMap::new();
    for (id, rack) in brokers {
        by_rack.entry(rack).or_default().push(id);
    }
    for ids in by_rack.values_mut() {
        ids.sort_unstable();
    }
    let deepest = by_rack.values().map(Vec::len).max().unwrap_or(0);
    (0..deepest)
        .flat_map(|i| by_rack.values().filter_map(move |r| r.get(i).copied()))
        .collect()
}

/// The coordinator's view of group configs: a group's
/// `consumer.session.timeout.ms` / `consumer.heartbeat.interval.ms` as the
/// current metadata image holds them (read per heartbeat; no I/O).
fn group_overrides_lookup(
    broker: std::sync::Weak<Broker>,
) -> gregor_coordinator::GroupOverridesLookup {
    gregor_coordinator::GroupOverridesLookup::new(move |group| {
        let Some(broker) = broker.upgrade() else {
            return gregor_coordinator::GroupOverrides::default();
        };
        let image = broker.metadata.image();
        let configs = image.configs(&ConfigResource::Group(group.to_string()));
        let int = |name: &str| {
            configs
                .and_then(|m| m.get(name))
                .and_then(|v| v.trim().parse::<i32>().ok())
        };
        gregor_coordinator::GroupOverrides {
            consumer_session_timeout_ms: int(config_defs::CONSUMER_SESSION_TIMEOUT_MS),
            consumer_heartbeat_interval_ms: int(config_defs::CONSUMER_HEARTBEAT_INTERVAL_MS),
        }
    })
}

fn layers<'a>(
    image: &'a MetadataImage,
    static_props: &'a BTreeMap<String, String>,
    node_id: i32,
    topic: &str,
) -> ConfigLayers<'a> {
    ConfigLayers {
        topic: image.configs(&ConfigResource::Topic(topic.to_string())),
        broker_dynamic: image.configs(&ConfigResource::Broker(node_id.to_string())),
        default_dynamic: image.configs(&ConfigResource::Broker(String::new())),
        static_broker: static_props,
    }
}

/// The effective [`LogConfig`] of a topic: its overrides over the broker's
/// dynamic and static settings over Kafka's defaults.
pub fn resolve_log_config(
    image: &MetadataImage,
    static_props: &BTreeMap<String, String>,
    node_id: i32,
    topic: &str,
) -> LogConfig {
    let resolved = config_defs::resolve_topic_configs(layers(image, static_props, node_id, topic));
    let get = |name: &str| {
        resolved
            .iter()
            .find(|c| c.name == name)
            .and_then(|c| c.value.clone())
            .unwrap_or_default()
    };
    let long = |name: &str, default: i64| get(name).trim().parse::<i64>().unwrap_or(default);
    let d = LogConfig::default();
    let policy = get("cleanup.policy");
    let (compact, delete) = (policy.contains("compact"), policy.contains("delete"));
    LogConfig {
        segment_bytes: long("segment.bytes", d.segment_bytes as i64).max(1) as u64,
        segment_ms: long("segment.ms", d.segment_ms),
        segment_jitter_ms: long("segment.jitter.ms", 0),
        segment_index_bytes: long("segment.index.bytes", d.segment_index_bytes as i64).max(8)
            as u64,
        index_interval_bytes: long("index.interval.bytes", 4096).max(0) as u64,
        max_message_bytes: long("max.message.bytes", d.max_message_bytes as i64).max(0) as usize,
        flush_messages: long("flush.messages", i64::MAX),
        flush_ms: long("flush.ms", i64::MAX),
        retention_ms: long("retention.ms", d.retention_ms),
        retention_bytes: long("retention.bytes", -1),
        cleanup_policy: match (compact, delete) {
            (true, true) => CleanupPolicy::CompactDelete,
            (true, false) => CleanupPolicy::Compact,
            _ => CleanupPolicy::Delete,
        },
        message_timestamp_type: if get("message.timestamp.type") == "LogAppendTime" {
            TimestampTypeConfig::LogAppendTime
        } else {
            TimestampTypeConfig::CreateTime
        },
        message_timestamp_before_max_ms: long("message.timestamp.before.max.ms", i64::MAX),
        message_timestamp_after_max_ms: long("message.timestamp.after.max.ms", 3_600_000),
        compression: match get("compression.type").as_str() {
            "uncompressed" => CompressionConfig::Codec(Compression::None),
            "producer" | "" => CompressionConfig::Producer,
            other => Compression::from_name(other)
                .map_or(CompressionConfig::Producer, CompressionConfig::Codec),
        },
        file_delete_delay_ms: long("file.delete.delay.ms", 60_000),
        preallocate: get("preallocate") == "true",
        min_cleanable_dirty_ratio: get("min.cleanable.dirty.ratio")
            .trim()
            .parse()
            .unwrap_or(0.5),
        min_compaction_lag_ms: long("min.compaction.lag.ms", 0),
        max_compaction_lag_ms: long("max.compaction.lag.ms", i64::MAX),
        delete_retention_ms: long("delete.retention.ms", 86_400_000),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base64_uuid_matches_kafka() {
        // Kafka: Uuid(0, 1).toString() == "AAAAAAAAAAAAAAAAAAAAAQ"
        assert_eq!(base64_uuid(Uuid::from_u128(1)), "AAAAAAAAAAAAAAAAAAAAAQ");
        assert_eq!(
            base64_uuid(Uuid::from_u128(u128::MAX)),
            "_____________________w"
        );
    }

    fn open_broker(dir: &std::path::Path) -> Arc<Broker> {
        let mut props = BTreeMap::new();
        props.insert("log.dirs".to_string(), dir.display().to_string());
        props.insert("node.id".to_string(), "1".to_string());
        props.insert("num.partitions".to_string(), "2".to_string());
        props.insert("log.cleaner.enable".to_string(), "false".to_string());
        props.insert("log.index.size.max.bytes".to_string(), "4096".to_string());
        let config = BrokerConfig::from_props(props).unwrap();
        Broker::open(config, Arc::new(gregor_storage::ManualClock::new(1_000))).unwrap()
    }

    /// Changes from many tasks on a current-thread runtime (the append and
    /// reconcile on the blocking pool, decisions retried when another change
    /// landed first) all land, and reconciling applies each change.
    #[test]
    fn concurrent_controller_updates_land_and_reconcile() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let broker = open_broker(dir.path());
        rt.block_on(async {
            let creates: Vec<_> = (0..8)
                .map(|i| {
                    let b = broker.clone();
                    tokio::spawn(async move { b.auto_create_topic(&format!("t{i}")).await })
                })
                .collect();
            for c in creates {
                c.await.unwrap().unwrap().unwrap();
            }
            let ids: Vec<_> = (0..6)
                .map(|_| {
                    let b = broker.clone();
                    tokio::spawn(async move { b.next_producer_id().await })
                })
                .collect();
            let mut seen = std::collections::BTreeSet::new();
            for id in ids {
                assert!(seen.insert(id.await.unwrap().unwrap()));
            }
            broker.checkpoint_async().await.unwrap();

            let t1_before = broker.partition("t1", 0).unwrap();
            let set = |resource: ConfigResource, name: &str, value: &str| {
                let changes = BTreeMap::from([(name.to_string(), Some(value.to_string()))]);
                let b = broker.clone();
                async move {
                    b.controller_update(|image| {
                        controller::alter_configs(image, &resource, &changes, &b.config.props)
                            .map(|r| (r, ()))
                    })
                    .await
                    .unwrap()
                    .unwrap()
                }
            };
            set(ConfigResource::Topic("t0".into()), "retention.ms", "1234").await;
            assert_eq!(
                broker
                    .partition("t0", 1)
                    .unwrap()
                    .log()
                    .config()
                    .retention_ms,
                1234
            );
            // t1 was untouched: the same partition, its config as it was.
            let t1 = broker.partition("t1", 0).unwrap();
            assert!(Arc::ptr_eq(&t1, &t1_before));
            assert_eq!(
                t1.log().config().retention_ms,
                LogConfig::default().retention_ms
            );
            // A cluster-wide dynamic default reaches every topic without its own.
            set(
                ConfigResource::Broker(String::new()),
                "log.retention.ms",
                "777",
            )
            .await;
            assert_eq!(
                broker
                    .partition("t1", 0)
                    .unwrap()
                    .log()
                    .config()
                    .retention_ms,
                777
            );
            assert_eq!(
                broker
                    .partition("t0", 0)
                    .unwrap()
                    .log()
                    .config()
                    .retention_ms,
                1234
            );

            let t2_dir = broker.partition("t2", 0).unwrap().log().dir().to_path_buf();
            broker
                .controller_update(|image| controller::delete_topic(image, "t2").map(|r| (r, ())))
                .await
                .unwrap()
                .unwrap();
            assert!(broker.partition("t2", 0).is_none());
            assert!(!t2_dir.exists());
            assert_eq!(broker.metadata.image().topics().count(), 7);
        });
        broker.shutdown().unwrap();
        drop(broker);
        drop(rt);
        // The clean shutdown left a snapshot; a restart replays nothing.
        let broker = open_broker(dir.path());
        assert_eq!(
            broker
                .metadata
                .local()
                .unwrap()
                .open_stats()
                .replayed_records,
            0
        );
        assert!(broker
            .metadata
            .local()
            .unwrap()
            .open_stats()
            .snapshot
            .is_some());
        assert_eq!(broker.metadata.image().topics().count(), 7);
        assert_eq!(
            broker
                .partition("t0", 1)
                .unwrap()
                .log()
                .config()
                .retention_ms,
            1234
        );
        broker.shutdown().unwrap();
    }

    /// A broker opened while its logs load hosts nothing it has not loaded,
    /// answers the partitions still loading as such, and once the load is
    /// done hosts every partition with its data (after a crash: no clean
    /// stop, so the active segments are recovered in the background).
    #[test]
    fn open_while_loading_hosts_every_partition_once_loaded() {
        let dir = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let broker = open_broker(dir.path());
        rt.block_on(async {
            for t in ["a", "b", "c"] {
                broker.auto_create_topic(t).await.unwrap().unwrap();
            }
        });
        for (i, t) in ["a", "b", "c"].iter().enumerate() {
            for p in 0..2 {
                let batch = crate::partition::testing::batch(i + 1);
                broker
                    .partition(t, p)
                    .unwrap()
                    .append_records_as_leader(batch, -1)
                    .unwrap();
            }
        }
        broker.checkpoint().unwrap();
        // A crash: no shutdown, the metadata log as it is.
        drop(broker);

        let mut props = BTreeMap::new();
        props.insert("log.dirs".to_string(), dir.path().display().to_string());
        props.insert("node.id".to_string(), "1".to_string());
        props.insert("log.cleaner.enable".to_string(), "false".to_string());
        let config = BrokerConfig::from_props(props).unwrap();
        let clock = Arc::new(gregor_storage::ManualClock::new(2_000));
        let broker = Broker::open_while_loading(config, clock, None).unwrap();
        // Whatever is hosted already is loaded; the rest is loading.
        for t in ["a", "b", "c"] {
            for p in 0..2 {
                let tp = TopicPartition::new(t, p);
                if broker.partition(t, p).is_none() {
                    assert!(broker.partition_loading(t, p), "{tp}");
                } else {
                    assert!(!broker.logs.is_loading(&tp), "{tp}");
                }
            }
        }
        rt.block_on(broker.log_loading.wait_done());
        assert_eq!(broker.logs.load_progress(), (6, 6));
        for (i, t) in ["a", "b", "c"].iter().enumerate() {
            for p in 0..2 {
                let partition = broker.partition(t, p).unwrap();
                assert_eq!(partition.log().log_end_offset(), i as i64 + 1, "{t}-{p}");
                assert!(!broker.partition_loading(t, p));
            }
        }
        broker.shutdown().unwrap();
    }

    #[test]
    fn replicas_alternate_racks() {
        let brokers = [
            (1, Some("a")),
            (2, Some("a")),
            (3, Some("b")),
            (4, Some("b")),
            (5, Some("c")),
        ];
        let order = rack_alternated(brokers.into_iter());
        assert_eq!(order, vec![1, 3, 5, 2, 4]);
        // Any three consecutive brokers (a partition's replicas) span three racks
        // where the first three racks allow it.
        let rack = |id: i32| brokers.iter().find(|b| b.0 == id).unwrap().1;
        let racks: std::collections::BTreeSet<_> = order[..3].iter().map(|&b| rack(b)).collect();
        assert_eq!(racks.len(), 3);
        // No racks at all: id order.
        assert_eq!(
            rack_alternated([(3, None), (1, None), (2, None)].into_iter()),
            vec![1, 2, 3]
        );
    }

    #[test]
    fn log_config_resolution() {
        let image = MetadataImage::default();
        let mut props = BTreeMap::new();
        props.insert("log.segment.bytes".to_string(), "2097152".to_string());
        props.insert("log.retention.hours".to_string(), "2".to_string());
        let c = resolve_log_config(&image, &props, 1, "t");
        assert_eq!(c.segment_bytes, 2_097_152);
        assert_eq!(c.retention_ms, 7_200_000);
        assert_eq!(c.compression, CompressionConfig::Producer);
    }
}
