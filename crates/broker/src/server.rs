//! The listener: accepts connections, spawns one task per connection, and
//! shuts down in order: stop accepting, let in-flight requests finish, stop
//! background tasks, flush and checkpoint the logs.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;

use crate::broker::Broker;

/// Upper bound on open client connections (Kafka: max.connections, default unlimited).
pub const MAX_CONNECTIONS: usize = 10_000;
/// How long shutdown waits for in-flight requests.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Binds the configured listener. Port 0 binds an ephemeral port, which is then advertised.
pub async fn bind(broker: &Broker) -> std::io::Result<TcpListener> {
    let l = &broker.config.listener;
    let host = if l.host.is_empty() {
        "0.0.0.0"
    } else {
        l.host.as_str()
    };
    let socket = tokio::net::TcpSocket::new_v4().or_else(|_| tokio::net::TcpSocket::new_v6())?;
    socket.set_reuseaddr(true)?;
    let addr = tokio::net::lookup_host((host, l.port))
        .await?
        .next()
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("cannot resolve {host}"),
            )
        })?;
    let socket = if addr.is_ipv6() {
        let s = tokio::net::TcpSocket::new_v6()?;
        s.set_reuseaddr(true)?;
        s
    } else {
        socket
    };
    socket.bind(addr)?;
    let listener = socket.listen(1024)?;
    broker.set_bound_port(listener.local_addr()?.port());
    Ok(listener)
}

/// Serves until `shutdown` resolves, then shuts down cleanly.
pub async fn run(broker: Arc<Broker>, listener: TcpListener, shutdown: impl Future<Output = ()>) {
    let (stop_tx, stop_rx) = watch::channel(false);
    let limit = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut connections = JoinSet::new();
    let checkpointer = tokio::spawn(checkpoint_loop(broker.clone(), stop_rx.clone()));
    let retention = tokio::spawn(retention_loop(broker.clone(), stop_rx.clone()));
    let group_timers = tokio::spawn(broker.groups.clone().run_timers(stop_rx.clone()));
    let txn_timers = tokio::spawn(broker.txns.clone().run_timers(stop_rx.clone()));
    let cluster = tokio::spawn(crate::cluster::run_broker(broker.clone(), stop_rx.clone()));
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            _ = &mut shutdown => break,
            accepted = listener.accept() => {
                let (socket, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off, keep serving.
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let Ok(permit) = limit.clone().try_acquire_owned() else {
                    tracing::warn!(%peer, "too many connections, closing");
                    continue;
                };
                let broker = broker.clone();
                let stop = stop_rx.clone();
                connections.spawn(async move {
                    if let Err(e) = crate::connection::serve(broker, socket, stop).await {
                        tracing::debug!(%peer, error = %e, "connection closed");
                    }
                    drop(permit);
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    // Leaderships move to other brokers while this one still answers (with
    // NOT_LEADER_OR_FOLLOWER and fresh metadata) and its followers catch up.
    crate::cluster::controlled_shutdown(&broker).await;
    drop(listener);
    tracing::info!("shutting down: waiting for in-flight requests");
    let _ = stop_tx.send(true);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        connections.abort_all();
    }
    let _ = checkpointer.await;
    let _ = retention.await;
    let _ = group_timers.await;
    let _ = txn_timers.await;
    let _ = cluster.await;
    let b = broker.clone();
    match tokio::task::spawn_blocking(move || b.shutdown()).await {
        Ok(Ok(())) => tracing::info!("shut down cleanly"),
        Ok(Err(e)) => tracing::error!(error = %e, "shutdown: flushing logs failed"),
        Err(e) => tracing::error!(error = %e, "shutdown task failed"),
    }
}

/// Writes the log-dir checkpoints every `log.flush.offset.checkpoint.interval.ms`.
async fn checkpoint_loop(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let period = Duration::from_millis(broker.config.checkpoint_interval_ms);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(period) => {
                let b = broker.clone();
                if let Ok(Err(e)) = tokio::task::spawn_blocking(move || b.checkpoint()).await {
                    tracing::warn!(error = %e, "writing checkpoints failed");
                }
            }
        }
    }
}

/// Applies retention every `log.retention.check.interval.ms`.
async fn retention_loop(broker: Arc<Broker>, mut stop: watch::Receiver<bool>) {
    let period = Duration::from_millis(broker.config.retention_check_interval_ms);
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            _ = tokio::time::sleep(period) => {
                let b = broker.clone();
                match tokio::task::spawn_blocking(move || b.enforce_retention()).await {
                    Ok(Ok(0)) | Err(_) => {}
                    Ok(Ok(n)) => tracing::info!(segments = n, "retention deleted segments"),
                    Ok(Err(e)) => tracing::warn!(error = %e, "retention failed"),
                }
            }
        }
    }
}
