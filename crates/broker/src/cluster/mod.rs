//! A node of a multi-node cluster: its seat in the Raft metadata quorum
//! ([`QuorumLink`]) and the loops that make the broker act on the shared
//! metadata (KRaft's BrokerLifecycleManager, the active controller's
//! broker-liveness checks, the partition leaders' ISR changes).
//!
//! # The controller's RPCs
//!
//! Raft rides the CONTROLLER listener (see `gregor_raft::tcp`); beside it
//! travel two RPCs of our own, JSON [`ControllerRequest`]s:
//!
//! - `Propose { base, records }`: records a node decided on its image at
//!   log index `base`. The active controller appends them only if its image
//!   is still at `base` (a compare-and-set), else answers `Stale` and the
//!   node decides again once it has caught up. So every node keeps deciding
//!   with the same pure functions as a single node does (`controller.rs`,
//!   `election.rs`), and there is one writer: Kafka's "admin requests are
//!   forwarded to the active controller", with the decision made before
//!   the forward instead of after.
//! - `Heartbeat { broker_id, shutting_down }` every
//!   `broker.heartbeat.interval.ms`: the active controller notes the time;
//!   its loop ([`QuorumLink::run_controller`]) fences a broker not heard
//!   from for `broker.session.timeout.ms` (its leaderships move to live ISR
//!   members, it leaves every ISR), unfences it when it heartbeats again,
//!   and moves leaderships away from a broker that asks to shut down
//!   (controlled shutdown), fencing it once it leads nothing. It also
//!   completes partition reassignments whose target replicas are in sync
//!   and, every `leader.imbalance.check.interval.seconds`, moves leaderships
//!   back to preferred replicas.
//!
//! # A broker's loop ([`run_broker`], in `broker_loop.rs`)
//!
//! Registers (RegisterBroker), heartbeats, reconciles its partitions with
//! every new image (roles and epochs via `Partition::apply_image`), keeps
//! its replica fetchers pointed at the current leaders, and, for the
//! partitions it leads, shrinks the ISR of followers that fell behind for
//! `replica.lag.time.max.ms` and expands it with followers that caught up
//! (AlterPartition's rules, `gregor_metadata::election::alter_partition`).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use gregor_metadata::{election, ConfigResource, MetadataImage, MetadataRecord};
use gregor_raft::{
    AppHandler, AppLane, AppliedImage, Conditional, MetadataQuorum, ProposeError, TcpTransport,
};
use gregor_storage::Clock;
use parking_lot::Mutex;
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::broker::BrokerError;
use crate::config::{BrokerConfig, QuorumSettings};
use crate::transport::client::{ClientConnector, LinkAcceptor};
use crate::transport::tls_reload::{ReloadableAcceptor, ReloadableConnector};

mod broker_loop;

pub use broker_loop::{controlled_shutdown, registration, run_broker};

/// How long one proposal may take, retries included, before the request
/// that made it gets an error (Kafka's REQUEST_TIMED_OUT).
const PROPOSE_DEADLINE: Duration = Duration::from_secs(15);
/// One controller RPC's time limit.
const RPC_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the active controller checks broker liveness.
const CONTROLLER_TICK: Duration = Duration::from_millis(100);
/// How long the controller tries a broker's listener after one of the
/// broker's connections closed (see `Handler::closed`).
const PROBE_TIMEOUT_MS: u64 = 500;

#[derive(Debug, Serialize, Deserialize)]
enum ControllerRequest {
    Propose {
        base: Option<u64>,
        records: Vec<MetadataRecord>,
    },
    Heartbeat {
        broker_id: i32,
        shutting_down: bool,
    },
    /// An observer's long poll: answered (by any voter) once this voter's
    /// committed image is past `applied`, or after `max_wait_ms`.
    FetchMetadata {
        applied: Option<u64>,
        max_wait_ms: u64,
    },
}

#[derive(Debug, Serialize, Deserialize)]
enum ControllerResponse {
    Committed {
        index: u64,
    },
    Stale {
        applied: Option<u64>,
    },
    NotController {
        leader: Option<u64>,
    },
    Failed {
        message: String,
    },
    Heartbeat {
        fenced: bool,
        leaderships: usize,
    },
    /// The voter's committed image as records (`None`: unchanged since the
    /// observer's index) and the leader it knows.
    Metadata {
        index: Option<u64>,
        leader: Option<u64>,
        records: Option<Vec<MetadataRecord>>,
    },
}

/// What the active controller heard from one broker.
#[derive(Debug, Clone, Copy)]
struct Contact {
    last_ms: i64,
    shutting_down: bool,
    /// A connection from the broker closed after its last heartbeat (see
    /// [`AppHandler::closed`]) and its Kafka listener then refused a
    /// connection: its process is gone.
    gone: bool,
}

#[derive(Debug, Default)]
struct Contacts {
    /// The Raft term in which this node last became the active controller.
    term: u64,
    /// When it did: a broker never heard from has a session from then.
    since_ms: i64,
    seen: HashMap<i32, Contact>,
}

/// How this node holds the metadata log.
enum Seat {
    /// A controller: a Raft voter with the log on disk.
    Voter(MetadataQuorum),
    /// A broker-only node: it fetches the committed image from the voters
    /// (Kafka's brokers fetch `__cluster_metadata` from the controllers) and
    /// keeps it in memory.
    Observer {
        image: watch::Sender<AppliedImage>,
        leader: Mutex<Option<u64>>,
    },
}

/// This node's seat in the metadata quorum.
pub struct QuorumLink {
    seat: Seat,
    transport: Arc<TcpTransport>,
    /// The TLS sides of the controller links, reloaded with the keystore:
    /// this node's connector to the controllers and, once it serves the
    /// controller listener, that listener's acceptor.
    tls_connector: Option<Arc<ReloadableConnector>>,
    tls_acceptor: Mutex<Option<Arc<ReloadableAcceptor>>>,
    node_id: i32,
    pub settings: QuorumSettings,
    clock: Arc<dyn Clock>,
    contacts: Mutex<Contacts>,
    /// Set by a controlled shutdown: every heartbeat from then on asks the
    /// controller to move this broker's leaderships away.
    pub(crate) shutting_down: std::sync::atomic::AtomicBool,
}

#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    #[error(transparent)]
    Quorum(#[from] gregor_raft::quorum::QuorumError),
    #[error("this node is not a controller (process.roles has no 'controller')")]
    NotAController,
    #[error("binding the controller listener {addr}: {source}")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("controller listener: {0}")]
    Tls(#[from] crate::transport::tls::TlsError),
}

/// The connector of this node's links to the controllers, secured as the
/// controller listener's protocol says, and its TLS side (reloaded with
/// the keystore).
#[allow(clippy::type_complexity)]
fn controller_connector(
    config: &BrokerConfig,
) -> Result<(Arc<TcpTransport>, Option<Arc<ReloadableConnector>>), ClusterError> {
    Ok(match &config.controller_link {
        Some(link) => {
            let connector = ClientConnector::new(&link.security)?;
            let tls = connector.tls();
            (
                Arc::new(TcpTransport::with_connector(Arc::new(connector))),
                tls,
            )
        }
        None => (Arc::new(TcpTransport::default()), None),
    })
}

impl QuorumLink {
    /// See [`QuorumRuntime::fatal`].
    pub async fn fatal(self: Arc<Self>) -> String {
        match &self.seat {
            Seat::Voter(q) => q.fatal().await,
            Seat::Observer { .. } => std::future::pending().await,
        }
    }

    /// A broker-only node's link: no Raft member, no listener; its image
    /// comes from [`QuorumLink::run_observer`].
    pub fn observer(
        config: &BrokerConfig,
        settings: QuorumSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Self>, ClusterError> {
        let (transport, tls_connector) = controller_connector(config)?;
        Ok(Arc::new(Self {
            seat: Seat::Observer {
                image: watch::channel(AppliedImage::default()).0,
                leader: Mutex::new(None),
            },
            transport,
            tls_connector,
            tls_acceptor: Mutex::new(None),
            node_id: config.node_id,
            settings,
            clock,
            contacts: Mutex::new(Contacts::default()),
            shutting_down: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    /// Starts this node's Raft member on the metadata log dir and binds the
    /// CONTROLLER listener (served by [`QuorumLink::serve`]).
    pub async fn start(
        config: &BrokerConfig,
        settings: QuorumSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<(Arc<Self>, TcpListener), ClusterError> {
        let (transport, tls_connector) = controller_connector(config)?;
        let voters = settings
            .voters
            .iter()
            .map(|(&id, (host, port))| (id as u64, gregor_raft::Node::new(host.clone(), *port)))
            .collect();
        let quorum_config = gregor_raft::QuorumConfig {
            election_timeout_ms: settings.election_timeout_ms,
            // Also openraft's AppendEntries timeout, and its election timer
            // ticks every 1.5 × this (split votes: `break_split_votes`).
            heartbeat_interval_ms: (settings.election_timeout_ms / 10).max(1),
            clock: clock.clone(),
            batch_limits: config.metadata_batch_limits(),
            ..Default::default()
        };
        let Some(l) = &settings.controller_listener else {
            return Err(ClusterError::NotAController);
        };
        let host = if l.host.is_empty() {
            "0.0.0.0"
        } else {
            &l.host
        };
        let addr = format!("{host}:{}", l.port);
        let listener = TcpListener::bind(&addr)
            .await
            .map_err(|source| ClusterError::Bind {
                addr: addr.clone(),
                source,
            })?;
        let quorum = MetadataQuorum::start(
            config.node_id as u64,
            &config.metadata_log_dir,
            voters,
            transport.clone(),
            quorum_config,
        )
        .await?;
        let link = Arc::new(Self {
            seat: Seat::Voter(quorum),
            transport,
            tls_connector,
            tls_acceptor: Mutex::new(None),
            node_id: config.node_id,
            settings,
            clock,
            contacts: Mutex::new(Contacts::default()),
            shutting_down: std::sync::atomic::AtomicBool::new(false),
        });
        Ok((link, listener))
    }

    /// The Raft member, on a controller.
    pub fn voter(&self) -> Option<&MetadataQuorum> {
        match &self.seat {
            Seat::Voter(q) => Some(q),
            Seat::Observer { .. } => None,
        }
    }

    /// The committed image this node has, with its log index.
    pub fn applied_image(&self) -> AppliedImage {
        match &self.seat {
            Seat::Voter(q) => q.applied_image(),
            Seat::Observer { image, .. } => image.borrow().clone(),
        }
    }

    pub fn image(&self) -> Arc<MetadataImage> {
        self.applied_image().image
    }

    /// Sees every new image.
    pub fn subscribe(&self) -> watch::Receiver<AppliedImage> {
        match &self.seat {
            Seat::Voter(q) => q.subscribe(),
            Seat::Observer { image, .. } => image.subscribe(),
        }
    }

    /// Waits until this node's image reached log index `index`.
    pub async fn wait_applied(&self, index: Option<u64>, timeout: Duration) -> bool {
        match &self.seat {
            Seat::Voter(q) => q.wait_applied(index, timeout).await,
            Seat::Observer { image, .. } => {
                let mut rx = image.subscribe();
                tokio::time::timeout(timeout, rx.wait_for(|a| a.index >= index))
                    .await
                    .is_ok_and(|r| r.is_ok())
            }
        }
    }

    /// The active controller as this node knows it.
    fn leader(&self) -> Option<u64> {
        match &self.seat {
            Seat::Voter(q) => q.leader(),
            Seat::Observer { leader, .. } => *leader.lock(),
        }
    }

    fn is_leader(&self) -> bool {
        self.voter().is_some_and(|q| q.is_leader())
    }

    /// A voter's controller endpoint (from `controller.quorum.voters`).
    fn voter_node(&self, id: u64) -> Option<gregor_raft::Node> {
        let (host, port) = self.settings.voters.get(&i32::try_from(id).ok()?)?;
        Some(gregor_raft::Node::new(host.clone(), *port))
    }

    /// DescribeQuorum's answer as this node knows it (an observer knows the
    /// leader and the voters, no offsets).
    pub fn describe(&self) -> gregor_raft::Describe {
        match &self.seat {
            Seat::Voter(q) => q.describe(),
            Seat::Observer { .. } => gregor_raft::Describe {
                leader_id: self.leader(),
                leader_epoch: 0,
                high_watermark: self.applied_image().index.map_or(0, |i| i as i64 + 1),
                voters: self
                    .settings
                    .voters
                    .keys()
                    .map(|&id| gregor_raft::ReplicaState {
                        replica_id: id as u64,
                        endpoint: self.voter_node(id as u64),
                        log_end_offset: -1,
                        last_fetch_timestamp: -1,
                        last_caught_up_timestamp: -1,
                    })
                    .collect(),
                observers: Vec::new(),
            },
        }
    }

    /// Stops the Raft member (a controller's).
    pub async fn shutdown(&self) {
        if let Some(q) = self.voter() {
            if let Err(e) = q.shutdown().await {
                tracing::warn!(error = %e, "stopping the metadata quorum member");
            }
        }
    }

    /// Serves Raft and the controller's RPCs on `listener` until `stop`.
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        acceptor: Option<Arc<dyn gregor_raft::Acceptor>>,
        mut stop: watch::Receiver<bool>,
    ) {
        let Some(raft) = self.voter().map(|q| q.raft()) else {
            return;
        };
        let handler: Arc<dyn AppHandler> = Arc::new(Handler(self));
        gregor_raft::tcp::serve_with(listener, acceptor, raft, Some(handler), async move {
            let _ = stop.wait_for(|s| *s).await;
        })
        .await;
    }

    /// How the controller listener secures what it accepts (`None`:
    /// PLAINTEXT): TLS from the listener's `ssl.*` settings, SASL with its
    /// enabled mechanisms over its PLAIN users and this node's SCRAM
    /// credentials.
    fn acceptor(
        self: &Arc<Self>,
        config: &BrokerConfig,
    ) -> Result<Option<Arc<dyn gregor_raft::Acceptor>>, ClusterError> {
        let Some(link) = &config.controller_link else {
            return Ok(None);
        };
        let plaintext = link.security.protocol == crate::transport::SecurityProtocol::Plaintext;
        if plaintext && config.authorizer.is_none() {
            return Ok(None);
        }
        let authenticator = link.sasl_server.as_ref().map(|s| {
            let weak = Arc::downgrade(self);
            gregor_security::Authenticator::new(
                s.enabled.clone(),
                Arc::new(crate::sasl::BrokerCredentials::new(
                    move || weak.upgrade().map(|l| l.image()),
                    s.plain.clone(),
                )),
            )
        });
        let mut acceptor = LinkAcceptor::new(
            &link.security.listener,
            link.security.tls.as_ref(),
            authenticator,
        )?;
        if let Some(authorizer) = config.authorizer.clone() {
            // Peers are authorized by principal, as Kafka's controller does
            // (on a PLAINTEXT listener they are all User:ANONYMOUS).
            let weak = Arc::downgrade(self);
            acceptor = acceptor.with_authorizer(Arc::new(move |principal, host| {
                let Some(link) = weak.upgrade() else {
                    return false;
                };
                authorizer.authorize(
                    link.image().acls().map(|(_, b)| b),
                    &principal.to_string(),
                    &host.to_string(),
                    gregor_security::acl::AclOperation::ClusterAction,
                    gregor_security::acl::ResourceType::Cluster,
                    gregor_security::acl::CLUSTER_RESOURCE_NAME,
                ) == gregor_security::acl::Decision::Allowed
            }));
        }
        *self.tls_acceptor.lock() = acceptor.tls();
        Ok(Some(Arc::new(acceptor)))
    }

    /// The TLS sides of this node's controller links, for a reload.
    #[allow(clippy::type_complexity)]
    pub fn tls_reloadables(&self) -> (Vec<Arc<ReloadableAcceptor>>, Vec<Arc<ReloadableConnector>>) {
        (
            self.tls_acceptor.lock().iter().cloned().collect(),
            self.tls_connector.iter().cloned().collect(),
        )
    }

    /// The active controller's node id, if known.
    pub fn controller_id(&self) -> Option<i32> {
        self.leader().map(|l| l as i32)
    }

    /// Sends `request` to the active controller (handling it here when this
    /// node is the one).
    async fn call(&self, request: ControllerRequest) -> ControllerResponse {
        if self.is_leader() {
            return self.handle(request).await;
        }
        let Some(leader) = self.leader() else {
            return ControllerResponse::NotController { leader: None };
        };
        let Some(node) = self.voter_node(leader) else {
            return ControllerResponse::NotController { leader: None };
        };
        let body = match serde_json::to_value(&request) {
            Ok(b) => b,
            Err(e) => {
                return ControllerResponse::Failed {
                    message: e.to_string(),
                }
            }
        };
        let sent =
            self.transport
                .call_app(AppLane::Requests, self.node_id as u64, leader, &node, body);
        match tokio::time::timeout(RPC_TIMEOUT, sent).await {
            Ok(Ok(v)) => serde_json::from_value(v).unwrap_or_else(|e| ControllerResponse::Failed {
                message: format!("bad answer from the controller: {e}"),
            }),
            Ok(Err(e)) => ControllerResponse::Failed {
                message: e.to_string(),
            },
            Err(_) => ControllerResponse::Failed {
                message: format!("controller {leader} did not answer within {RPC_TIMEOUT:?}"),
            },
        }
    }

    /// A voter's side of [`ControllerRequest`]s: any voter notes heartbeats
    /// (brokers send them to all, so a newly elected controller already
    /// knows who is alive) and serves observers' metadata fetches; only the
    /// active controller appends proposals and answers heartbeats.
    async fn handle(&self, request: ControllerRequest) -> ControllerResponse {
        let (base, records, heartbeat_from) = match request {
            ControllerRequest::FetchMetadata {
                applied,
                max_wait_ms,
            } => return self.serve_metadata(applied, max_wait_ms).await,
            ControllerRequest::Heartbeat {
                broker_id,
                shutting_down,
            } => {
                let now = self.clock.now_ms();
                self.contacts.lock().seen.insert(
                    broker_id,
                    Contact {
                        last_ms: now,
                        shutting_down,
                        gone: false,
                    },
                );
                (None, Vec::new(), Some(broker_id))
            }
            ControllerRequest::Propose { base, records } => (base, records, None),
        };
        let Some(quorum) = self.voter().filter(|q| q.is_leader()) else {
            return ControllerResponse::NotController {
                leader: self.leader(),
            };
        };
        if let Some(broker_id) = heartbeat_from {
            let image = quorum.image();
            return ControllerResponse::Heartbeat {
                fenced: image.brokers.get(&broker_id).is_none_or(|b| b.fenced),
                leaderships: election::leaderships(&image, broker_id),
            };
        }
        match quorum.propose_if(base, records, RPC_TIMEOUT).await {
            Ok(Conditional::Committed(index)) => ControllerResponse::Committed { index },
            Ok(Conditional::Stale { applied }) => ControllerResponse::Stale { applied },
            Err(ProposeError::NotLeader(n)) => {
                ControllerResponse::NotController { leader: n.leader }
            }
            Err(e) => ControllerResponse::Failed {
                message: e.to_string(),
            },
        }
    }

    /// A voter's answer to an observer's [`ControllerRequest::FetchMetadata`].
    async fn serve_metadata(&self, applied: Option<u64>, max_wait_ms: u64) -> ControllerResponse {
        let Some(quorum) = self.voter() else {
            return ControllerResponse::NotController { leader: None };
        };
        let wait = Duration::from_millis(max_wait_ms.min(RPC_TIMEOUT.as_millis() as u64 / 2));
        let mut rx = quorum.subscribe();
        let _ = tokio::time::timeout(wait, rx.wait_for(|a| a.index != applied)).await;
        let current = quorum.applied_image();
        ControllerResponse::Metadata {
            index: current.index,
            leader: quorum.leader(),
            records: (current.index != applied).then(|| current.image.to_records()),
        }
    }

    /// A broker-only node's metadata loop (Kafka's broker fetching
    /// `__cluster_metadata`): long-polls a voter (the leader when known) for
    /// the committed image and publishes each new one, until `stop`.
    pub async fn run_observer(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let Seat::Observer { image, leader } = &self.seat else {
            return;
        };
        let voters: Vec<u64> = self.settings.voters.keys().map(|&v| v as u64).collect();
        let mut next = 0usize;
        let mut last_error: HashMap<u64, String> = HashMap::new();
        loop {
            let target = (*leader.lock()).unwrap_or_else(|| voters[next % voters.len().max(1)]);
            let Some(node) = self.voter_node(target) else {
                return;
            };
            let request = ControllerRequest::FetchMetadata {
                applied: image.borrow().index,
                max_wait_ms: 500,
            };
            let Ok(body) = serde_json::to_value(&request) else {
                return;
            };
            let sent = self.transport.call_app(
                AppLane::LongPolls,
                self.node_id as u64,
                target,
                &node,
                body,
            );
            let answer = tokio::select! {
                _ = stopped(&mut stop) => return,
                a = tokio::time::timeout(RPC_TIMEOUT, sent) => a,
            };
            // A link that cannot be opened (a refused certificate or
            // password) is logged once per voter and reason, not per retry.
            if let Ok(Err(e)) = &answer {
                let reason = e.to_string();
                if last_error.get(&target) != Some(&reason) {
                    tracing::warn!(controller = target, error = %reason, "cannot fetch metadata from the controller");
                    last_error.insert(target, reason);
                }
            }
            match answer
                .ok()
                .and_then(|r| r.ok())
                .and_then(|v| serde_json::from_value(v).ok())
            {
                Some(ControllerResponse::Metadata {
                    index,
                    leader: known,
                    records,
                }) => {
                    *leader.lock() = known;
                    if let Some(records) = records {
                        let mut built = MetadataImage::default();
                        for r in &records {
                            built.apply(r);
                        }
                        image.send_replace(AppliedImage {
                            index,
                            image: Arc::new(built),
                        });
                    }
                }
                _ => {
                    // That voter is down or not answering: try the next one.
                    *leader.lock() = None;
                    next += 1;
                    tokio::select! {
                        _ = stopped(&mut stop) => return,
                        _ = tokio::time::sleep(Duration::from_millis(100)) => {}
                    }
                }
            }
        }
    }

    /// Commits `records`, decided on the image at `base`, through the active
    /// controller, retrying while there is none (an election) until
    /// [`PROPOSE_DEADLINE`].
    pub async fn propose(
        &self,
        base: Option<u64>,
        records: Vec<MetadataRecord>,
    ) -> Result<Conditional, BrokerError> {
        let deadline = tokio::time::Instant::now() + PROPOSE_DEADLINE;
        let mut last = String::new();
        while tokio::time::Instant::now() < deadline {
            let request = ControllerRequest::Propose {
                base,
                records: records.clone(),
            };
            match self.call(request).await {
                ControllerResponse::Committed { index } => {
                    // Applied here before the caller reads its own write.
                    self.wait_applied(Some(index), RPC_TIMEOUT).await;
                    return Ok(Conditional::Committed(index));
                }
                ControllerResponse::Stale { applied } => {
                    self.wait_applied(applied, RPC_TIMEOUT).await;
                    return Ok(Conditional::Stale { applied });
                }
                ControllerResponse::NotController { .. } => last = "no active controller".into(),
                ControllerResponse::Failed { message } => last = message,
                ControllerResponse::Heartbeat { .. } | ControllerResponse::Metadata { .. } => {
                    last = "unexpected answer".into()
                }
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Err(BrokerError::ControllerUnavailable(last))
    }

    /// One heartbeat, sent to every voter (each notes it; the active
    /// controller answers): `(fenced, leaderships)` from the active one.
    pub(crate) async fn heartbeat(&self) -> Option<(bool, usize)> {
        let request = || ControllerRequest::Heartbeat {
            broker_id: self.node_id,
            shutting_down: self
                .shutting_down
                .load(std::sync::atomic::Ordering::Relaxed),
        };
        let calls = self.settings.voters.iter().map(|(&id, (host, port))| {
            let request = request();
            let node = gregor_raft::Node::new(host.clone(), *port);
            async move {
                if id == self.node_id {
                    return self.handle(request).await;
                }
                let Ok(body) = serde_json::to_value(&request) else {
                    return ControllerResponse::Failed {
                        message: "unencodable heartbeat".into(),
                    };
                };
                let sent = self.transport.call_app(
                    AppLane::Heartbeats,
                    self.node_id as u64,
                    id as u64,
                    &node,
                    body,
                );
                // A frozen voter must not hold up the heartbeats to the others.
                let limit = Duration::from_millis(self.settings.heartbeat_interval_ms.max(100));
                match tokio::time::timeout(limit, sent).await {
                    Ok(Ok(v)) => serde_json::from_value(v).unwrap_or(ControllerResponse::Failed {
                        message: "bad heartbeat answer".into(),
                    }),
                    _ => ControllerResponse::Failed {
                        message: format!("voter {id} did not answer"),
                    },
                }
            }
        });
        let answers = futures_join_all(calls).await;
        answers.into_iter().find_map(|a| match a {
            ControllerResponse::Heartbeat {
                fenced,
                leaderships,
            } => Some((fenced, leaderships)),
            _ => None,
        })
    }

    pub(crate) fn unclean_for(&self, image: &MetadataImage, topic: &str) -> bool {
        let key = "unclean.leader.election.enable";
        let value = image
            .configs(&ConfigResource::Topic(topic.to_string()))
            .and_then(|c| c.get(key).cloned())
            .or_else(|| {
                image
                    .configs(&ConfigResource::Broker(String::new()))
                    .and_then(|c| c.get(key).cloned())
            });
        match value {
            Some(v) => v.eq_ignore_ascii_case("true"),
            None => self.settings.unclean_leader_election,
        }
    }

    /// The active controller's liveness loop (runs on every node, acts only
    /// while this node leads the quorum): fences silent brokers, unfences
    /// returning ones, drives controlled shutdowns.
    pub async fn run_controller(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        let session = self.settings.session_timeout_ms as i64;

        let mut last_rebalance_ms = self.clock.now_ms();
        loop {
            tokio::select! {
                _ = stopped(&mut stop) => return,
                _ = tokio::time::sleep(CONTROLLER_TICK) => {}
            }
            let Some(quorum) = self.voter().filter(|q| q.is_leader()) else {
                continue;
            };
            let now = self.clock.now_ms();
            let term = quorum.metrics().borrow().current_term;
            let applied = quorum.applied_image();
            let image = &applied.image;
            let records = {
                let mut c = self.contacts.lock();
                if c.term != term {
                    // Brokers this node never heard from get a full session
                    // from now; the others are judged by their last heartbeat.
                    tracing::info!(term, "active controller: watching broker heartbeats");
                    c.term = term;
                    c.since_ms = now;
                }
                let mut records = Vec::new();
                for (&id, b) in image.brokers.iter() {
                    let contact = c.seen.get(&id).copied();
                    let last = contact.map_or(c.since_ms, |c| c.last_ms);
                    // Its connections closed and its listener refuses: gone
                    // (see `Handler::closed`), fenced without the session.
                    let closed_dead = contact.is_some_and(|c| c.gone);
                    let alive = now - last <= session && !closed_dead;
                    let shutting_down = contact.is_some_and(|c| c.shutting_down);
                    records = if !b.fenced && !alive {
                        if closed_dead {
                            tracing::warn!(
                                broker = id,
                                silent_ms = now - last,
                                "fencing a broker: its connections closed and its listener refuses connections"
                            );
                        } else {
                            tracing::warn!(
                                broker = id,
                                silent_ms = now - last,
                                "fencing a broker: no heartbeat within broker.session.timeout.ms"
                            );
                        }
                        election::fence_broker(image, id, &|t| self.unclean_for(image, t))
                    } else if b.fenced && alive && contact.is_some() && !shutting_down {
                        tracing::info!(broker = id, "unfencing a broker that heartbeats again");
                        election::unfence_broker(image, id)
                    } else if shutting_down && !b.fenced {
                        let moves = election::controlled_shutdown(image, id);
                        if moves.is_empty() {
                            tracing::info!(
                                broker = id,
                                "controlled shutdown: fencing a broker that leads nothing"
                            );
                            election::fence_broker(image, id, &|t| self.unclean_for(image, t))
                        } else {
                            moves
                        }
                    } else {
                        Vec::new()
                    };
                    if !records.is_empty() {
                        break;
                    }
                }
                records
            };
            let mut records = records;
            if records.is_empty() {
                // Reassignments whose target replicas are all in sync complete.
                records = election::complete_reassignments(image);
            }
            if records.is_empty() {
                // auto.leader.rebalance.enable: leaderships go back to the
                // preferred (first) replica once it is live and in sync.
                let due = self
                    .settings
                    .leader_rebalance_interval_ms
                    .is_some_and(|every| now - last_rebalance_ms >= every as i64);
                if !due {
                    continue;
                }
                last_rebalance_ms = now;
                let mut next = (**image).clone();
                for (topic, partition) in election::preferred_imbalance(image) {
                    if let Ok(r) = election::elect_preferred(&next, &topic, partition) {
                        next.apply(&r);
                        records.push(r);
                    }
                }
                if records.is_empty() {
                    continue;
                }
                tracing::info!(
                    partitions = records.len(),
                    "moving leaderships back to preferred replicas"
                );
            }
            let proposed = until_stopped(
                &mut stop,
                quorum.propose_if(applied.index, records, RPC_TIMEOUT),
            )
            .await;
            let Some(proposed) = proposed else { return };
            match proposed {
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "active controller: a liveness change failed"),
            }
        }
    }
}

/// Resolves once `stop` is set (the guard `wait_for` returns is not held
/// across an await).
pub(crate) async fn stopped(stop: &mut watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// Runs every future to completion concurrently; their outputs in order.
async fn futures_join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut pinned: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = pinned.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (f, slot) in pinned.iter_mut().zip(out.iter_mut()) {
            if slot.is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => *slot = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter().flatten().collect()
}

/// Runs `work` unless `stop` is set first (then `None`): a loop's step that
/// may wait on the quorum must not hold up the node's shutdown.
pub(crate) async fn until_stopped<F: std::future::Future>(
    stop: &mut watch::Receiver<bool>,
    work: F,
) -> Option<F::Output> {
    tokio::select! {
        _ = stopped(stop) => None,
        out = work => Some(out),
    }
}

struct Handler(Arc<QuorumLink>);

impl AppHandler for Handler {
    fn handle(
        &self,
        _from: u64,
        body: serde_json::Value,
    ) -> gregor_raft::network::BoxFuture<serde_json::Value> {
        let link = self.0.clone();
        Box::pin(async move {
            let response = match serde_json::from_value::<ControllerRequest>(body) {
                Ok(request) => link.handle(request).await,
                Err(e) => ControllerResponse::Failed {
                    message: format!("bad controller request: {e}"),
                },
            };
            serde_json::to_value(&response).unwrap_or(serde_json::Value::Null)
        })
    }

    /// A connection from broker `from` closed. A live broker closes one
    /// when a request of its times out, and reconnects; a dead one closed
    /// them all, and its listener is gone with it. So the broker's Kafka
    /// listener is tried once: refused, and no heartbeat since, means the
    /// process died and the controller fences it at its next tick instead
    /// of waiting out `broker.session.timeout.ms`. Anything else (accepted:
    /// alive or frozen; no answer: cut off) leaves it to the session.
    fn closed(&self, from: u64) {
        let Ok(id) = i32::try_from(from) else { return };
        let link = self.0.clone();
        let Some(last_ms) = link.contacts.lock().seen.get(&id).map(|c| c.last_ms) else {
            return;
        };
        let Some((host, port)) = link
            .image()
            .brokers
            .get(&id)
            .filter(|b| !b.fenced)
            .map(|b| (b.host.clone(), b.port))
        else {
            return;
        };
        tokio::spawn(async move {
            let probe = tokio::time::timeout(
                Duration::from_millis(PROBE_TIMEOUT_MS),
                tokio::net::TcpStream::connect((host.as_str(), port)),
            )
            .await;
            let refused = matches!(probe, Ok(Err(ref e)) if e.kind() == std::io::ErrorKind::ConnectionRefused);
            if !refused {
                return;
            }
            if let Some(c) = link.contacts.lock().seen.get_mut(&id) {
                // A heartbeat since the close replaced the contact: alive.
                if c.last_ms == last_ms {
                    c.gone = true;
                }
            }
        });
    }
}

/// The quorum side of a node's process: the CONTROLLER listener and the
/// active controller's loop, started before the broker opens its logs (so
/// elections proceed meanwhile) and stopped after it closed them.
pub struct QuorumRuntime {
    pub link: Arc<QuorumLink>,
    stop: watch::Sender<bool>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl QuorumRuntime {
    pub async fn start(
        config: &BrokerConfig,
        settings: QuorumSettings,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, ClusterError> {
        let (stop, stop_rx) = watch::channel(false);
        if !settings.controller {
            let link = QuorumLink::observer(config, settings, clock)?;
            let tasks = vec![tokio::spawn(link.clone().run_observer(stop_rx))];
            return Ok(Self { link, stop, tasks });
        }
        let (link, listener) = QuorumLink::start(config, settings, clock).await?;
        let acceptor = link.acceptor(config)?;
        let tasks = vec![
            tokio::spawn(link.clone().serve(listener, acceptor, stop_rx.clone())),
            tokio::spawn(link.clone().run_controller(stop_rx)),
        ];
        Ok(Self { link, stop, tasks })
    }

    /// Resolves with the reason once this node's quorum member stopped on
    /// its own (a storage error on the metadata log): see
    /// [`MetadataQuorum::fatal`]. Never resolves on a broker-only node.
    pub async fn fatal(&self) -> String {
        self.link.clone().fatal().await
    }

    /// Stops serving Raft and shuts the quorum member down.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        for t in self.tasks {
            let _ = t.await;
        }
        self.link.shutdown().await;
    }
}
