//! Gregor's HTTP listener (`http.listeners`, default `http://127.0.0.1:8080`):
//! what Kafka operators bolt on beside a JVM broker (a JMX exporter, a lag
//! exporter, a UI), served by the broker process itself.
//!
//! - `/healthz`: the process is up and serving HTTP.
//! - [`console`]: the web console (`/`) and its JSON API (`/api/`).
//! - [`metrics`]: `/metrics` (Prometheus text or OpenMetrics) and `/readyz`.
//! - [`lag`]: consumer group lag computed by the broker (for `/metrics`).
//!
//! [`bind`] binds every configured address before the broker announces
//! itself (so a port-0 address can be printed), [`serve`] answers until the
//! shutdown future resolves.

pub mod console;
pub mod lag;
pub mod metrics;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use gregor_broker::Broker;
use tokio::net::TcpListener;

/// What every route handler is given.
#[derive(Clone)]
pub struct AppState {
    pub broker: Arc<Broker>,
}

/// The bound HTTP listeners.
pub struct HttpListeners {
    listeners: Vec<TcpListener>,
}

impl HttpListeners {
    /// The addresses actually bound (the port chosen for port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }
    pub fn is_empty(&self) -> bool {
        self.listeners.is_empty()
    }
}

/// Binds `http.listeners`. An address that cannot be bound fails the start
/// when it was configured explicitly; the default address (127.0.0.1:8080)
/// is skipped with a warning instead, so several nodes on one host (or a
/// host where something else holds 8080) still start.
pub async fn bind(broker: &Broker) -> std::io::Result<HttpListeners> {
    let settings = &broker.config.http;
    let mut listeners = Vec::new();
    for (host, port) in &settings.listeners {
        match TcpListener::bind((host.as_str(), *port)).await {
            Ok(l) => listeners.push(l),
            Err(e) if !settings.explicit => {
                tracing::warn!(%host, port, error = %e, "the default HTTP listener could not be bound; /metrics and the console are off (set http.listeners)");
            }
            Err(e) => {
                return Err(std::io::Error::new(
                    e.kind(),
                    format!("binding the HTTP listener http://{host}:{port}: {e}"),
                ))
            }
        }
    }
    Ok(HttpListeners { listeners })
}

/// Every route this crate serves.
pub fn router(state: AppState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .merge(console::routes(&state))
        .merge(metrics::routes())
        .with_state(state)
}

async fn healthz() -> &'static str {
    "ok\n"
}

/// Serves `router` on every listener until `shutdown` resolves.
pub async fn serve(
    listeners: HttpListeners,
    broker: Arc<Broker>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let app = router(AppState { broker });
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    for l in listeners.listeners {
        let app = app.clone();
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let served = axum::serve(l, app).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            });
            if let Err(e) = served.await {
                tracing::warn!(error = %e, "HTTP listener stopped");
            }
        });
    }
    shutdown.await;
    let _ = stop_tx.send(true);
    // Open keep-alive connections are not waited for past a short bound.
    let _ = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
}
