//! A broker's part in a cluster (Kafka's BrokerLifecycleManager and the
//! partition leaders' side of replication): registration, heartbeats,
//! following each new metadata image with the hosted partitions and the
//! replica fetchers, ISR changes, offline log dirs, controlled shutdown.

use std::sync::Arc;
use std::time::Duration;

use gregor_metadata::{election, MetadataImage, MetadataRecord};
use tokio::sync::watch;

use super::{stopped, until_stopped, QuorumLink};
use crate::broker::Broker;
use crate::partition::Role;
use crate::replica_fetcher::{FetcherConfig, Follow, ReplicaFetchers, StorageErrorHandler};

/// How long a controlled shutdown waits for the leaderships to move.
const CONTROLLED_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(10);

/// The records that register this broker (and name the cluster, with the
/// `bootstrap` records of `gregor storage format`, on a fresh quorum), or
/// none when the image already has them.
pub fn registration(
    image: &MetadataImage,
    cluster_id: &str,
    node_id: i32,
    endpoint: (String, u16),
    endpoints: Vec<gregor_metadata::BrokerEndpoint>,
    rack: Option<String>,
    bootstrap: &[MetadataRecord],
) -> Vec<MetadataRecord> {
    let mut records = Vec::new();
    if image.cluster_id.is_none() {
        records.push(MetadataRecord::Cluster {
            cluster_id: cluster_id.to_string(),
        });
        // A new cluster starts at the newest feature levels, as Kafka 4's
        // `kafka-storage format` does; a cluster formatted before a feature
        // existed stays at level 0 until `gregor features upgrade`.
        for (name, level) in crate::features::BOOTSTRAP_LEVELS {
            records.push(MetadataRecord::FeatureLevel {
                name: name.to_string(),
                level: *level,
            });
        }
        records.extend_from_slice(bootstrap);
    }
    let (host, port) = endpoint;
    let registered = image.brokers.get(&node_id);
    if registered.is_none_or(|b| {
        b.host != host || b.port != port || b.rack != rack || b.endpoints != endpoints
    }) {
        records.push(MetadataRecord::RegisterBroker {
            node_id,
            host,
            port,
            rack,
        });
        // Every client listener, so each is answered with its own endpoints.
        records.push(MetadataRecord::BrokerEndpoints { node_id, endpoints });
    }
    records
}

/// A broker's part in the cluster, until `stop`: registration, heartbeats,
/// reconciling with each new image, replica fetchers, ISR changes.
pub async fn run_broker(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let Some(link) = broker.metadata.quorum().cloned() else {
        return;
    };
    // Registration, heartbeats and following the leaders start once the
    // logs are loaded (a Kafka broker stays fenced until then): no replica
    // fetcher or leadership change acts on a log that is not there yet.
    if until_stopped(&mut stop, broker.log_loading.wait_done())
        .await
        .is_none()
    {
        return;
    }
    let weak = Arc::downgrade(&broker);
    let fetchers = ReplicaFetchers::with_storage_errors(
        broker.node_id(),
        broker.clock.clone(),
        FetcherConfig::from_props(&broker.config.props),
        StorageErrorHandler::new(move |tp, e| {
            if let Some(broker) = weak.upgrade() {
                broker.on_storage_error(tp, e);
            }
        }),
        broker.inter_broker_connector.clone(),
    );
    let mut images = link.subscribe();
    // Heartbeats and ISR changes run on their own tasks: a slow metadata
    // change (waiting out an election) must neither let the session lapse
    // nor hold up following the metadata.
    let heartbeats = tokio::spawn(heartbeat_loop(broker.clone(), link.clone(), stop.clone()));
    let isr = tokio::spawn(isr_loop(broker.clone(), link.clone(), stop.clone()));
    // The image this node started with counts as news: a restarted node
    // whose image is already current (nothing changes while it rejoins)
    // must start following its leaders now, not at the next change.
    images.borrow_and_update();
    let mut running = until_stopped(&mut stop, follow_image(&broker, &fetchers))
        .await
        .is_some();
    while running {
        tokio::select! {
            _ = stopped(&mut stop) => break,
            changed = images.changed() => {
                if changed.is_err() {
                    break;
                }
                images.borrow_and_update();
                running = until_stopped(&mut stop, follow_image(&broker, &fetchers))
                    .await
                    .is_some();
            }
        }
    }
    let _ = heartbeats.await;
    let _ = isr.await;
    fetchers.shutdown().await;
}

/// [`maintain_isr`] every quarter of `replica.lag.time.max.ms` (50 ms to
/// 1 s) until `stop`.
async fn isr_loop(broker: Arc<Broker>, link: Arc<QuorumLink>, mut stop: watch::Receiver<bool>) {
    let lag_max_ms = link.settings.replica_lag_time_max_ms;
    let every = Duration::from_millis((lag_max_ms as u64 / 4).clamp(50, 1_000));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => return,
            _ = tick.tick() => {
                if until_stopped(&mut stop, maintain_isr(&broker, lag_max_ms)).await.is_none() {
                    return;
                }
            }
        }
    }
}

/// Registers this broker, then heartbeats every `broker.heartbeat.interval.ms`
/// until `stop`.
async fn heartbeat_loop(
    broker: Arc<Broker>,
    link: Arc<QuorumLink>,
    mut stop: watch::Receiver<bool>,
) {
    let every = Duration::from_millis(link.settings.heartbeat_interval_ms);
    // Registration may wait out an election; heartbeats go on meanwhile.
    let mut registration = std::pin::pin!(async {
        while !register(&broker).await {
            tokio::time::sleep(every).await;
        }
    });
    let mut registered = false;
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => return,
            _ = &mut registration, if !registered => registered = true,
            _ = tick.tick() => {
                if until_stopped(&mut stop, link.heartbeat()).await.is_none() {
                    return;
                }
            }
        }
    }
}

async fn register(broker: &Broker) -> bool {
    let cluster_id = broker.local_cluster_id.clone();
    let node_id = broker.node_id();
    let endpoint = broker.advertised_endpoint();
    let endpoints = broker.advertised_endpoints();
    let rack = broker.config.rack.clone();
    let bootstrap = match crate::bootstrap::read(&broker.config.metadata_log_dir) {
        Ok(records) => records,
        Err(e) => {
            tracing::error!("cannot read the bootstrap metadata: {e}");
            return false;
        }
    };
    match broker
        .controller_update(|image| {
            Ok::<_, std::convert::Infallible>((
                registration(
                    image,
                    &cluster_id,
                    node_id,
                    endpoint.clone(),
                    endpoints.clone(),
                    rack.clone(),
                    &bootstrap,
                ),
                (),
            ))
        })
        .await
    {
        Ok(_) => {
            tracing::info!(node_id, "registered with the active controller");
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, "broker registration failed; retrying");
            false
        }
    }
}

/// Reconciles the partitions with the current image and points the replica
/// fetchers at the current leaders.
async fn follow_image(broker: &Arc<Broker>, fetchers: &Arc<ReplicaFetchers>) {
    let b = broker.clone();
    match tokio::task::spawn_blocking(move || b.reconcile()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(error = %e, "applying the metadata image failed"),
        Err(e) => tracing::error!(error = %e, "applying the metadata image failed"),
    }
    let image = broker.metadata.image();
    let mut follows = Vec::new();
    for p in broker.hosted_partitions() {
        let Role::Follower { leader } = p.view().role else {
            continue;
        };
        let Some(b) = image.brokers.get(&leader).filter(|b| !b.fenced) else {
            continue;
        };
        follows.push(Follow {
            partition: p,
            leader,
            leader_host: b.host.clone(),
            leader_port: b.port,
        });
    }
    fetchers.update(follows);
}

/// The leader side of ISR changes (Kafka's `maybeShrinkIsr` / `maybeExpandIsr`):
/// for each partition this node leads, the ISR without followers that have
/// not caught up for `lag_max_ms`, plus live replicas whose fetch position
/// reached the high watermark. A change goes to the active controller as
/// AlterPartition does (checked against the partition epoch).
async fn maintain_isr(broker: &Broker, lag_max_ms: i64) {
    give_up_offline_replicas(broker).await;
    let now = broker.clock.now_ms();
    let image = broker.metadata.image();
    let mut changes = Vec::new();
    for p in broker.hosted_partitions() {
        let view = p.view();
        if view.role != Role::Leader {
            continue;
        }
        let followers = p.followers();
        let hw = view.high_watermark;
        let mut isr: Vec<i32> = view
            .isr
            .iter()
            .copied()
            .filter(|&r| {
                r == broker.node_id()
                    || followers
                        .get(&r)
                        .is_some_and(|f| now - f.last_caught_up_ms <= lag_max_ms)
            })
            .collect();
        for &r in &view.replicas {
            if isr.contains(&r) || !image.is_live(r) {
                continue;
            }
            if followers
                .get(&r)
                .is_some_and(|f| f.log_end_offset >= hw && now - f.last_caught_up_ms <= lag_max_ms)
            {
                isr.push(r);
            }
        }
        // Added members count for the high watermark from now on, before the
        // controller has even seen the request (Kafka's maximal ISR).
        p.expect_isr(&isr);
        if isr.len() == view.isr.len() && isr.iter().all(|r| view.isr.contains(r)) {
            continue;
        }
        tracing::info!(partition = %p.tp, from = ?view.isr, to = ?isr, "changing the ISR");
        changes.push((p.clone(), view, isr));
    }
    if changes.is_empty() {
        return;
    }
    // One metadata change for every partition of this pass: a leader of
    // many partitions does not queue a controller round trip per partition
    // (and a change the controller refuses leaves the others standing).
    let node = broker.node_id();
    let outcome = broker
        .controller_update(|image| {
            let mut records = Vec::new();
            for (p, view, isr) in &changes {
                match election::alter_partition(
                    image,
                    p.topic_id,
                    p.tp.partition,
                    node,
                    view.leader_epoch,
                    view.partition_epoch,
                    isr,
                ) {
                    Ok(r) => records.push(r),
                    Err(e) => tracing::info!(partition = %p.tp, error = ?e, "ISR change refused"),
                }
            }
            Ok::<_, std::convert::Infallible>((records, ()))
        })
        .await;
    if let Err(e) = outcome {
        tracing::warn!(partitions = changes.len(), error = %e, "ISR change failed");
    }
}

/// Replicas on a log dir that went offline (an I/O error) leave their ISRs
/// and leaderships, as Kafka's controller handles a broker's offline dirs,
/// so the other replicas serve those partitions.
async fn give_up_offline_replicas(broker: &Broker) {
    let node = broker.node_id();
    let image = broker.metadata.image();
    let offline: std::collections::BTreeSet<(String, i32)> = broker
        .hosted_partitions()
        .into_iter()
        .filter(|p| broker.logs.is_offline(&p.tp))
        .filter(|p| {
            image
                .topic(&p.tp.topic)
                .and_then(|t| t.partitions.get(&p.tp.partition))
                .is_some_and(|i| i.leader == node || (i.isr.contains(&node) && i.isr.len() > 1))
        })
        .map(|p| (p.tp.topic.to_string(), p.tp.partition))
        .collect();
    if offline.is_empty() {
        return;
    }
    let Some(link) = broker.metadata.quorum() else {
        return;
    };
    tracing::warn!(
        partitions = offline.len(),
        "giving up replicas on an offline log dir"
    );
    let outcome = broker
        .controller_update(|image| {
            let records =
                election::offline_replicas(image, node, &offline, &|t| link.unclean_for(image, t));
            Ok::<_, std::convert::Infallible>((records, ()))
        })
        .await;
    if let Err(e) = outcome {
        tracing::warn!(error = %e, "giving up replicas on an offline log dir failed");
    }
}

/// Kafka's controlled shutdown: asks the active controller to move every
/// leadership of this broker elsewhere, and waits (bounded) until it leads
/// nothing, so producers switch leaders before this process stops.
pub async fn controlled_shutdown(broker: &Broker) {
    let Some(link) = broker.metadata.quorum() else {
        return;
    };
    if !link.settings.controlled_shutdown {
        return;
    }
    let deadline = tokio::time::Instant::now() + CONTROLLED_SHUTDOWN_TIMEOUT;
    let every = Duration::from_millis(link.settings.heartbeat_interval_ms.min(100));
    tracing::info!("controlled shutdown: moving leaderships away");
    link.shutting_down
        .store(true, std::sync::atomic::Ordering::Relaxed);
    // With no active controller answering for a whole session (the quorum
    // is shutting down too, or lost its majority) nothing can move: stop.
    let silence = Duration::from_millis(link.settings.session_timeout_ms);
    let mut last_answer = tokio::time::Instant::now();
    while tokio::time::Instant::now() < deadline {
        match link.heartbeat().await {
            Some((fenced, 0)) => {
                tracing::info!(fenced, "controlled shutdown: this broker leads nothing now");
                return;
            }
            Some(_) => last_answer = tokio::time::Instant::now(),
            None if last_answer.elapsed() >= silence => {
                tracing::warn!(
                    "controlled shutdown: no active controller answers; stopping anyway"
                );
                return;
            }
            None => {}
        }
        tokio::time::sleep(every).await;
    }
    tracing::warn!("controlled shutdown did not finish in time; stopping anyway");
}
