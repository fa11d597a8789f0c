//! The web console: a single-page app (`assets/`, embedded in the binary)
//! and the JSON API it calls under `/api/`.
//!
//! The API talks to the cluster the way Kafka UIs do: through Gregor's own
//! client ([`gregor_client`]) connected to this node's client listener (its
//! advertised address), so leaders and coordinators are found anywhere in a
//! cluster and the listener's authentication and ACLs apply as for any
//! Kafka client. When that listener requires SASL, the console logs in
//! with the caller's HTTP basic credentials; when it cannot act as the
//! caller (a client-certificate principal, an SSL-only node), it acts as
//! the node and authorizes every call in-process for the caller (`auth`).
//!
//! - `auth`: which listener, which credentials, which checks
//! - `cluster`: brokers, controller, the metadata quorum
//! - `topics`: list (search, paging), detail, configs, create, delete
//! - `messages`: the message browser and producing a test message
//! - `groups`: consumer groups, lag per partition, offset resets
//!
//! Every list the API returns for a cluster-sized collection (topics,
//! partitions, groups) is paged on the server, so a page stays fast with
//! 10,000 partitions.

mod auth;
mod cluster;
mod groups;
mod messages;
mod topics;

use std::sync::Arc;

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use gregor_broker::Broker;
use serde::Deserialize;

pub use auth::Clients;

use crate::authn::Methods;
use crate::AppState;

/// The console's state: the broker (for its listener settings) and the
/// clients logged in per user.
#[derive(Clone)]
pub struct Console {
    clients: Arc<auth::ClientPool>,
}

impl Console {
    pub fn new(broker: Arc<Broker>, methods: Methods) -> Console {
        Console {
            clients: Arc::new(auth::ClientPool::new(broker, methods.any())),
        }
    }
}

/// The console's routes, as a router over the crate's state.
pub fn routes(state: &AppState, methods: Methods) -> Router<AppState> {
    let console = Console::new(state.broker.clone(), methods);
    Router::new()
        .route("/", get(index))
        .route("/assets/app.js", get(app_js))
        .route("/assets/app.css", get(app_css))
        .route("/api/whoami", get(whoami))
        .route("/api/cluster", get(cluster::cluster))
        .route("/api/topics", get(topics::list).post(topics::create))
        .route(
            "/api/topics/{topic}",
            get(topics::detail).delete(topics::delete),
        )
        .route(
            "/api/topics/{topic}/configs",
            get(topics::configs).post(topics::alter_configs),
        )
        .route("/api/topics/{topic}/messages", get(messages::browse))
        .route("/api/topics/{topic}/produce", post(messages::produce))
        .route("/api/groups", get(groups::list))
        .route("/api/groups/{group}", get(groups::detail))
        .route("/api/groups/{group}/reset", post(groups::reset))
        .with_state(console)
}

const INDEX_HTML: &str = include_str!("../../assets/index.html");
const APP_JS: &str = include_str!("../../assets/app.js");
const APP_CSS: &str = include_str!("../../assets/app.css");

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}
async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", APP_JS)
}
async fn app_css() -> Response {
    asset("text/css; charset=utf-8", APP_CSS)
}

/// The caller as the HTTP listener authenticated it.
async fn whoami(
    axum::Extension(caller): axum::Extension<crate::authn::Caller>,
) -> Json<serde_json::Value> {
    Json(serde_json::json!({
        "principal": caller.principal,
        "authenticated": caller.authenticated,
    }))
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

/// An API failure: an HTTP status and a message, sent as `{"error": "..."}`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    message: String,
    /// Ask the browser for basic credentials (401 on a SASL listener).
    challenge: bool,
}

impl ApiError {
    fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            challenge: false,
        }
    }
    fn not_found(message: impl Into<String>) -> ApiError {
        ApiError {
            status: StatusCode::NOT_FOUND,
            message: message.into(),
            challenge: false,
        }
    }
}

impl From<gregor_client::Error> for ApiError {
    fn from(e: gregor_client::Error) -> ApiError {
        use gregor_client::Error as E;
        let status = match &e {
            E::Kafka { code, .. } => match code {
                // *_AUTHORIZATION_FAILED
                29..=31 | 53 | 87 => StatusCode::FORBIDDEN,
                // UNKNOWN_TOPIC_OR_PARTITION, GROUP_ID_NOT_FOUND
                3 | 69 => StatusCode::NOT_FOUND,
                // SASL_AUTHENTICATION_FAILED
                58 => StatusCode::UNAUTHORIZED,
                // TOPIC_ALREADY_EXISTS, NON_EMPTY_GROUP, invalid requests
                36 | 68 | 37 | 38 | 40 | 41 | 42 | 44 | 17 => StatusCode::BAD_REQUEST,
                _ => StatusCode::BAD_GATEWAY,
            },
            // A refused SASL login (the client's wording): wrong credentials.
            E::Invalid(m) if m.starts_with("SASL authentication") => StatusCode::UNAUTHORIZED,
            E::Invalid(_) | E::Config { .. } => StatusCode::BAD_REQUEST,
            E::Timeout { .. } => StatusCode::GATEWAY_TIMEOUT,
            _ => StatusCode::BAD_GATEWAY,
        };
        ApiError {
            challenge: status == StatusCode::UNAUTHORIZED,
            status,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(serde_json::json!({ "error": self.message }));
        if self.challenge {
            (
                self.status,
                [(header::WWW_AUTHENTICATE, "Basic realm=\"gregor\"")],
                body,
            )
                .into_response()
        } else {
            (self.status, body).into_response()
        }
    }
}

pub type ApiResult<T> = Result<Json<T>, ApiError>;

/// `?page=&size=` of a paged list (page from 0; size 1..=500, default 50).
#[derive(Debug, Deserialize, Default)]
pub struct Paging {
    pub page: Option<usize>,
    pub size: Option<usize>,
}

impl Paging {
    pub const MAX_SIZE: usize = 500;

    /// The index range of the page within `total` items.
    pub fn range(&self, total: usize) -> std::ops::Range<usize> {
        let size = self.size.unwrap_or(50).clamp(1, Self::MAX_SIZE);
        let start = self.page.unwrap_or(0).saturating_mul(size).min(total);
        start..(start + size).min(total)
    }
    pub fn size(&self) -> usize {
        self.size.unwrap_or(50).clamp(1, Self::MAX_SIZE)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paging_clamps() {
        let p = |page, size| Paging {
            page: Some(page),
            size: Some(size),
        };
        assert_eq!(p(0, 10).range(25), 0..10);
        assert_eq!(p(2, 10).range(25), 20..25);
        assert_eq!(p(9, 10).range(25), 25..25);
        assert_eq!(p(0, 0).range(25), 0..1);
        assert_eq!(p(0, 10_000).range(10_000), 0..500);
        assert_eq!(p(usize::MAX, 10).range(5), 5..5);
        assert_eq!(Paging::default().range(100), 0..50);
    }

    #[test]
    fn client_errors_map_to_statuses() {
        let kafka = |code| {
            ApiError::from(gregor_client::Error::from_code(code, None).expect("an error code"))
        };
        assert_eq!(kafka(29).status, StatusCode::FORBIDDEN);
        assert_eq!(kafka(3).status, StatusCode::NOT_FOUND);
        assert_eq!(kafka(36).status, StatusCode::BAD_REQUEST);
        let e = kafka(58);
        assert_eq!(e.status, StatusCode::UNAUTHORIZED);
        assert!(e.challenge);
    }
}
