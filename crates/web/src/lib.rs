//! Gregor's HTTP listener (`http.listeners`, default `http://127.0.0.1:8080`):
//! what Kafka operators bolt on beside a JVM broker (a JMX exporter, a lag
//! exporter, a UI), served by the broker process itself.
//!
//! - `/healthz`: the process is up and serving HTTP.
//! - [`console`]: the web console (`/`) and its JSON API (`/api/`).
//! - [`metrics`]: `/metrics` (Prometheus text or OpenMetrics) and `/readyz`.
//! - [`lag`]: consumer group lag computed by the broker (for `/metrics`).
//! - [`tls`]: `https://` listeners (`http.ssl.*` over the broker's `ssl.*`).
//! - [`authn`]: `http.authentication.method` (HTTP basic against the SCRAM
//!   users, or the client certificate); the console authorizes each call
//!   for that principal as the matching Kafka API would (`console::auth`).
//!
//! [`bind`] binds every configured address before the broker announces
//! itself (so a port-0 address can be printed), [`serve`] answers until the
//! shutdown future resolves.

pub mod authn;
pub mod console;
pub mod lag;
pub mod metrics;
pub mod tls;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::routing::get;
use axum::Router;
use gregor_broker::Broker;
use tokio::net::TcpListener;

use crate::authn::{Authenticator, Methods};
use crate::tls::{HttpListener, HttpPeer, HttpTls};

/// What every route handler is given.
#[derive(Clone)]
pub struct AppState {
    pub broker: Arc<Broker>,
}

/// The bound HTTP listeners.
pub struct HttpListeners {
    listeners: Vec<(TcpListener, bool)>,
    tls: Option<Arc<HttpTls>>,
    methods: Methods,
}

impl HttpListeners {
    /// The addresses actually bound (the port chosen for port 0).
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listeners
            .iter()
            .filter_map(|(l, _)| l.local_addr().ok())
            .collect()
    }
    /// `http://ADDR` or `https://ADDR` of each listener, as bound.
    pub fn urls(&self) -> Vec<String> {
        self.listeners
            .iter()
            .filter_map(|(l, https)| {
                let scheme = if *https { "https" } else { "http" };
                l.local_addr().ok().map(|a| format!("{scheme}://{a}"))
            })
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
/// The `http.ssl.*` settings and `http.authentication.method` are checked
/// here too, so a bad value stops the start with the key named.
pub async fn bind(broker: &Arc<Broker>) -> std::io::Result<HttpListeners> {
    let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
    let settings = &broker.config.http;
    let props = &broker.config.props;
    let methods = Methods::parse(
        props
            .get("http.authentication.method")
            .map(String::as_str)
            .unwrap_or("none"),
    )
    .map_err(invalid)?;
    let tls = if settings.listeners.iter().any(|l| l.https) {
        let tls_settings = tls::settings(props).map_err(invalid)?;
        let acceptor = gregor_broker::transport::tls_reload::ReloadableAcceptor::new(&tls_settings)
            .map_err(|e| invalid(e.to_string()))?;
        Some(Arc::new(HttpTls {
            acceptor: Arc::new(acceptor),
            settings: tls_settings,
        }))
    } else {
        None
    };
    let client_certs = tls
        .as_ref()
        .is_some_and(|t| t.settings.client_auth != gregor_broker::transport::tls::ClientAuth::None);
    if methods.mtls && !client_certs {
        return Err(invalid(
            "http.authentication.method=mtls needs an https:// listener in http.listeners \
             with http.ssl.client.auth=required (or requested) and a truststore"
                .into(),
        ));
    }
    let mut listeners = Vec::new();
    for endpoint in &settings.listeners {
        let (host, port) = (&endpoint.host, endpoint.port);
        match TcpListener::bind((host.as_str(), port)).await {
            Ok(l) => listeners.push((l, endpoint.https)),
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
    Ok(HttpListeners {
        listeners,
        tls,
        methods,
    })
}

/// Every route this crate serves, behind the authentication middleware.
pub fn router(state: AppState, auth: Arc<Authenticator>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .merge(console::routes(&state, auth.methods))
        .merge(metrics::routes())
        .with_state(state)
        .layer(axum::middleware::from_fn_with_state(
            auth,
            authn::middleware,
        ))
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
    let auth = Arc::new(Authenticator::new(broker.clone(), listeners.methods));
    let app = router(
        AppState {
            broker: broker.clone(),
        },
        auth,
    );
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let mut tasks = tokio::task::JoinSet::new();
    if let Some(tls) = &listeners.tls {
        tasks.spawn(tls::reload_loop(
            tls.clone(),
            broker.config.ssl_reload_interval_ms,
            stop_rx.clone(),
        ));
    }
    for (l, https) in listeners.listeners {
        let tls = if https { listeners.tls.clone() } else { None };
        let l = HttpListener::new(l, tls, broker.clone());
        let app = app
            .clone()
            .into_make_service_with_connect_info::<HttpPeer>();
        let mut stop = stop_rx.clone();
        tasks.spawn(async move {
            let served = axum::serve(l, app).with_graceful_shutdown(async move {
                let _ = stop.wait_for(|s| *s).await;
            });
            // axum's serve never returns an error (accept errors are retried).
            let _ = served.await;
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
