//! What the client knows about the cluster: brokers, topics, partition leaders
//! (the metadata cache) and one [`Connection`] per broker.
//!
//! Metadata is an immutable snapshot behind an `Arc`, replaced whole on each
//! refresh, so readers never hold a lock across an await. Requests that fail
//! with NOT_LEADER_OR_FOLLOWER, UNKNOWN_TOPIC_OR_PARTITION, LEADER_NOT_AVAILABLE
//! and the like call [`Cluster::request_refresh`]; the next user refreshes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::{MetadataRequest, TopicName};
use kafka_protocol::protocol::StrBytes;

use crate::config::ClientConfig;
use crate::conn::{Connection, Security};
use crate::error::{Error, Result};
use crate::types::TopicPartition;

pub use uuid::Uuid;

/// A broker as Metadata describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokerMetadata {
    pub node_id: i32,
    pub host: String,
    pub port: i32,
    pub rack: Option<String>,
}

impl BrokerMetadata {
    pub fn address(&self) -> String {
        format!("{}:{}", self.host, self.port)
    }
}

/// One partition of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionMetadata {
    pub partition: i32,
    /// -1 when there is no leader.
    pub leader: i32,
    pub leader_epoch: i32,
    pub replicas: Vec<i32>,
    pub isr: Vec<i32>,
    pub offline_replicas: Vec<i32>,
    pub error_code: i16,
}

/// A topic and its partitions (sorted by index).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicMetadata {
    pub name: String,
    pub topic_id: Uuid,
    pub is_internal: bool,
    pub error_code: i16,
    pub partitions: Vec<PartitionMetadata>,
}

/// A snapshot of cluster metadata.
#[derive(Debug, Clone)]
pub struct Metadata {
    pub cluster_id: Option<String>,
    pub controller_id: i32,
    pub brokers: BTreeMap<i32, BrokerMetadata>,
    pub topics: HashMap<String, TopicMetadata>,
    fetched_at: Option<Instant>,
}

impl Metadata {
    fn empty() -> Self {
        Metadata {
            cluster_id: None,
            controller_id: -1,
            brokers: BTreeMap::new(),
            topics: HashMap::new(),
            fetched_at: None,
        }
    }

    /// The partition count of `topic`, if it is known and healthy.
    pub fn partition_count(&self, topic: &str) -> Option<usize> {
        self.topics
            .get(topic)
            .filter(|t| t.error_code == 0 && !t.partitions.is_empty())
            .map(|t| t.partitions.len())
    }

    /// The leader and leader epoch of a partition, if it has one.
    pub fn leader(&self, tp: &TopicPartition) -> Option<(i32, i32)> {
        let t = self.topics.get(&tp.topic)?;
        let p = t.partitions.iter().find(|p| p.partition == tp.partition)?;
        (p.leader >= 0).then_some((p.leader, p.leader_epoch))
    }
}

pub(crate) struct Cluster {
    pub config: Arc<ClientConfig>,
    /// TLS config and SASL credentials, built once from `config`.
    security: Security,
    conns: tokio::sync::Mutex<HashMap<i32, Arc<Connection>>>,
    meta: RwLock<Arc<Metadata>>,
    /// Only one Metadata request at a time; waiters reuse its result.
    refreshing: tokio::sync::Mutex<()>,
    /// Bumped by each completed refresh: a waiter that sees it move skips its own.
    generation: Mutex<u64>,
    stale: Mutex<bool>,
    /// Topics a producer or consumer uses: what a refresh asks for.
    interest: Mutex<BTreeSet<String>>,
}

fn plock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Cluster {
    pub fn new(config: Arc<ClientConfig>) -> Result<Arc<Cluster>> {
        config.validate_common()?;
        let security = Security {
            tls: match config.ssl_enabled {
                true => Some(config.ssl.rustls_config()?),
                false => None,
            },
            sasl: config.sasl_credentials()?,
        };
        Ok(Arc::new(Cluster {
            config,
            security,
            conns: tokio::sync::Mutex::new(HashMap::new()),
            meta: RwLock::new(Arc::new(Metadata::empty())),
            refreshing: tokio::sync::Mutex::new(()),
            generation: Mutex::new(0),
            stale: Mutex::new(true),
            interest: Mutex::new(BTreeSet::new()),
        }))
    }

    pub fn metadata(&self) -> Arc<Metadata> {
        self.meta.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Marks the cache stale: the next [`Cluster::ensure_fresh`] refreshes.
    pub fn request_refresh(&self) {
        *plock(&self.stale) = true;
    }

    /// Adds topics to those refreshes ask about; true if any was new.
    pub fn add_interest<'a>(&self, topics: impl IntoIterator<Item = &'a str>) -> bool {
        let mut set = plock(&self.interest);
        let mut added = false;
        for t in topics {
            added |= set.insert(t.to_string());
        }
        if added {
            self.request_refresh();
        }
        added
    }

    /// Refreshes the topics of interest if the cache is stale or old.
    pub async fn ensure_fresh(&self) -> Result<Arc<Metadata>> {
        let meta = self.metadata();
        let old = meta
            .fetched_at
            .is_none_or(|t| t.elapsed() >= self.config.metadata_max_age);
        if *plock(&self.stale) || old {
            let topics: Vec<String> = plock(&self.interest).iter().cloned().collect();
            self.refresh(Some(&topics), true).await
        } else {
            Ok(meta)
        }
    }

    /// Fetches metadata for `topics` (`None`: every topic) and merges it into
    /// the cache. Concurrent callers share one request.
    pub async fn refresh(
        &self,
        topics: Option<&[String]>,
        auto_create: bool,
    ) -> Result<Arc<Metadata>> {
        let generation = *plock(&self.generation);
        let _guard = self.refreshing.lock().await;
        if *plock(&self.generation) != generation
            && topics.is_some_and(|t| {
                let m = self.metadata();
                t.iter().all(|n| m.topics.contains_key(n))
            })
        {
            // Someone refreshed while we waited for the lock, and it covered our topics.
            return Ok(self.metadata());
        }
        let req = MetadataRequest::default()
            .with_topics(topics.map(|ts| {
                ts.iter()
                    .map(|t| {
                        MetadataRequestTopic::default()
                            .with_name(Some(TopicName(StrBytes::from_string(t.clone()))))
                    })
                    .collect()
            }))
            .with_allow_auto_topic_creation(auto_create);
        let conn = self.any_connection().await?;
        let resp = match conn.send(&req).await {
            Ok(r) => r,
            Err(e) => {
                self.drop_connection(&conn).await;
                return Err(e);
            }
        };
        let mut next = (*self.metadata()).clone();
        next.cluster_id = resp.cluster_id.map(|s| s.to_string());
        next.controller_id = resp.controller_id.0;
        next.brokers = resp
            .brokers
            .into_iter()
            .map(|b| {
                (
                    b.node_id.0,
                    BrokerMetadata {
                        node_id: b.node_id.0,
                        host: b.host.to_string(),
                        port: b.port,
                        rack: b.rack.map(|r| r.to_string()),
                    },
                )
            })
            .collect();
        if topics.is_none() {
            next.topics.clear();
        }
        for t in resp.topics {
            let Some(name) = t.name.map(|n| n.0.to_string()) else {
                continue;
            };
            let mut partitions: Vec<PartitionMetadata> = t
                .partitions
                .into_iter()
                .map(|p| PartitionMetadata {
                    partition: p.partition_index,
                    leader: p.leader_id.0,
                    leader_epoch: p.leader_epoch,
                    replicas: p.replica_nodes.into_iter().map(|b| b.0).collect(),
                    isr: p.isr_nodes.into_iter().map(|b| b.0).collect(),
                    offline_replicas: p.offline_replicas.into_iter().map(|b| b.0).collect(),
                    error_code: p.error_code,
                })
                .collect();
            partitions.sort_by_key(|p| p.partition);
            next.topics.insert(
                name.clone(),
                TopicMetadata {
                    name,
                    topic_id: t.topic_id,
                    is_internal: t.is_internal,
                    error_code: t.error_code,
                    partitions,
                },
            );
        }
        next.fetched_at = Some(Instant::now());
        let next = Arc::new(next);
        *self.meta.write().unwrap_or_else(|p| p.into_inner()) = next.clone();
        *plock(&self.stale) = false;
        *plock(&self.generation) += 1;
        Ok(next)
    }

    /// The connection to broker `node_id`, connecting if needed.
    pub async fn connection(&self, node_id: i32) -> Result<Arc<Connection>> {
        let mut conns = self.conns.lock().await;
        if let Some(c) = conns.get(&node_id) {
            if !c.is_closed() {
                return Ok(c.clone());
            }
            conns.remove(&node_id);
        }
        let addr = match self.metadata().brokers.get(&node_id) {
            Some(b) => b.address(),
            None => {
                drop(conns);
                // Boxed: refresh may itself need a connection.
                Box::pin(self.refresh(Some(&[]), false)).await?;
                conns = self.conns.lock().await;
                self.metadata()
                    .brokers
                    .get(&node_id)
                    .map(BrokerMetadata::address)
                    .ok_or_else(|| Error::Invalid(format!("unknown broker {node_id}")))?
            }
        };
        let c = Arc::new(
            Connection::connect(
                &addr,
                node_id,
                &self.config.client_id,
                self.config.request_timeout,
                &self.security,
            )
            .await?,
        );
        conns.insert(node_id, c.clone());
        Ok(c)
    }

    /// Any live connection: an open one, else a known broker, else a bootstrap server.
    pub async fn any_connection(&self) -> Result<Arc<Connection>> {
        {
            let conns = self.conns.lock().await;
            if let Some(c) = conns.values().find(|c| !c.is_closed()) {
                return Ok(c.clone());
            }
        }
        let known: Vec<i32> = self.metadata().brokers.keys().copied().collect();
        let mut last_err = None;
        for id in known {
            match self.connection(id).await {
                Ok(c) => return Ok(c),
                Err(e) => last_err = Some(e),
            }
        }
        // Bootstrap connections get negative ids so they never collide with a
        // broker's; they are used until metadata names the real brokers.
        for (i, addr) in self.config.bootstrap_servers.iter().enumerate() {
            let id = -1 - i as i32;
            match Connection::connect(
                addr,
                id,
                &self.config.client_id,
                self.config.request_timeout,
                &self.security,
            )
            .await
            {
                Ok(c) => {
                    let c = Arc::new(c);
                    self.conns.lock().await.insert(id, c.clone());
                    return Ok(c);
                }
                Err(e) => last_err = Some(e),
            }
        }
        Err(last_err.unwrap_or_else(|| Error::config("bootstrap.servers", "must be set")))
    }

    /// The connection to the controller (for admin writes), or any broker.
    pub async fn controller_connection(&self) -> Result<Arc<Connection>> {
        let mut meta = self.metadata();
        if meta.fetched_at.is_none() {
            meta = self.refresh(Some(&[]), false).await?;
        }
        if meta.controller_id >= 0 {
            if let Ok(c) = self.connection(meta.controller_id).await {
                return Ok(c);
            }
        }
        self.any_connection().await
    }

    /// Forgets a connection that failed, so the next user reconnects.
    pub async fn drop_connection(&self, conn: &Arc<Connection>) {
        let mut conns = self.conns.lock().await;
        if conns
            .get(&conn.node_id)
            .is_some_and(|c| Arc::ptr_eq(c, conn))
        {
            conns.remove(&conn.node_id);
        }
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.conns.lock().await.clear();
    }

    /// Metadata for `topics`, refreshing (with retries) until every one is
    /// known with all partitions led, or `timeout` passes. Topics that do not
    /// exist are returned with their error code, not retried.
    pub async fn wait_for_topics(
        &self,
        topics: &[String],
        timeout: Duration,
    ) -> Result<Arc<Metadata>> {
        let deadline = Instant::now() + timeout;
        loop {
            let meta = self.refresh(Some(topics), false).await;
            match meta {
                Ok(m) => {
                    let ready = topics.iter().all(|t| {
                        m.topics.get(t).is_some_and(|tm| {
                            tm.error_code == crate::error::codes::UNKNOWN_TOPIC_OR_PARTITION
                                || (tm.error_code == 0
                                    && tm.partitions.iter().all(|p| p.leader >= 0))
                        })
                    });
                    if ready || Instant::now() >= deadline {
                        return Ok(m);
                    }
                }
                Err(e) if !e.is_retriable() || Instant::now() >= deadline => return Err(e),
                Err(_) => {}
            }
            tokio::time::sleep(self.config.retry_backoff).await;
        }
    }
}
