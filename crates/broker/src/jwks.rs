//! The JWKS of an OAUTHBEARER listener validating signed tokens, fetched
//! from `sasl.oauthbearer.jwks.endpoint.url` over http:// or https:// and
//! kept current, as Kafka's `RefreshingHttpsJwks` does:
//!
//! - fetched at start, then every `sasl.oauthbearer.jwks.endpoint.refresh.ms`;
//! - a token naming an unknown `kid` asks for an early refresh (at most one
//!   per [`EXPEDITE_INTERVAL`], so clients cannot make the broker hammer the
//!   identity provider); that token still fails, its client retries;
//! - a failed fetch is retried after `...retry.backoff.ms`, doubling up to
//!   `...retry.backoff.max.ms`, at most [`MAX_ATTEMPTS`] times per refresh;
//!   the last good set stays in use meanwhile.
//!
//! The HTTP client is a small HTTP/1.1 GET (Content-Length, chunked or
//! close-delimited bodies, no redirects) capped at [`MAX_BODY`] bytes; https
//! trusts the system's CA bundle. The refresher task is aborted when the
//! last [`HttpJwks`] handle (the listener's authenticator and its sessions)
//! is dropped.

use std::sync::Arc;
use std::time::{Duration, Instant};

use gregor_security::oauthbearer::{JwkSet, JwksProvider};
use parking_lot::{Mutex, RwLock};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Notify;

/// The fewest time between two refreshes asked for by unknown key ids.
pub const EXPEDITE_INTERVAL: Duration = Duration::from_secs(5);
/// Fetch attempts per refresh.
pub const MAX_ATTEMPTS: u32 = 10;
/// The largest JWKS document accepted.
pub const MAX_BODY: usize = 1 << 20;
/// One fetch's time limit (connect, TLS, request and response).
const FETCH_TIMEOUT: Duration = Duration::from_secs(10);

/// How an endpoint is fetched (Kafka's `sasl.oauthbearer.jwks.endpoint.*`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JwksEndpoint {
    pub url: String,
    pub refresh: Duration,
    pub retry_backoff: Duration,
    pub retry_backoff_max: Duration,
}

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    #[error("{0} is not an http:// or https:// URL with a host")]
    Url(String),
    #[error("{url}: {source}")]
    Io {
        url: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{url}: timed out after {FETCH_TIMEOUT:?}")]
    Timeout { url: String },
    #[error("{url}: {reason}")]
    Http { url: String, reason: String },
    #[error("{url}: {source}")]
    Jwks {
        url: String,
        #[source]
        source: gregor_security::oauthbearer::OAuthConfigError,
    },
}

struct Shared {
    current: RwLock<Option<Arc<JwkSet>>>,
    wake: Notify,
    last_expedite: Mutex<Option<Instant>>,
}

/// A JWKS kept current from an HTTP(S) endpoint by a background task.
#[derive(Clone)]
pub struct HttpJwks {
    shared: Arc<Shared>,
    _task: Arc<AbortOnDrop>,
}

struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(t) = &self.0 {
            t.abort();
        }
    }
}

impl HttpJwks {
    /// Starts refreshing `endpoint` on the current tokio runtime (none:
    /// logged, and every validation fails).
    pub fn start(endpoint: JwksEndpoint) -> Self {
        let shared = Arc::new(Shared {
            current: RwLock::new(None),
            wake: Notify::new(),
            last_expedite: Mutex::new(None),
        });
        let task = match tokio::runtime::Handle::try_current() {
            Ok(rt) => Some(rt.spawn(refresh_loop(endpoint, shared.clone()))),
            Err(_) => {
                tracing::error!(url = %endpoint.url, "no tokio runtime: the JWKS is never fetched");
                None
            }
        };
        HttpJwks {
            shared,
            _task: Arc::new(AbortOnDrop(task)),
        }
    }
}

impl JwksProvider for HttpJwks {
    fn jwks(&self) -> Option<Arc<JwkSet>> {
        self.shared.current.read().clone()
    }

    fn refresh_soon(&self, kid: Option<&str>) {
        let now = Instant::now();
        let mut last = self.shared.last_expedite.lock();
        if last.is_some_and(|t| now.saturating_duration_since(t) < EXPEDITE_INTERVAL) {
            return;
        }
        *last = Some(now);
        tracing::info!(
            kid = kid.unwrap_or("(none)"),
            "unknown JWKS key id: refreshing the JWKS"
        );
        self.shared.wake.notify_one();
    }
}

async fn refresh_loop(endpoint: JwksEndpoint, shared: Arc<Shared>) {
    loop {
        let mut backoff = endpoint.retry_backoff;
        for attempt in 1..=MAX_ATTEMPTS {
            match fetch_jwks(&endpoint.url).await {
                Ok(set) => {
                    tracing::debug!(url = %endpoint.url, keys = set.keys.len(), "JWKS retrieved");
                    *shared.current.write() = Some(Arc::new(set));
                    break;
                }
                Err(e) => {
                    tracing::warn!(error = %e, attempt, "JWKS retrieval failed");
                    if attempt < MAX_ATTEMPTS {
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(endpoint.retry_backoff_max);
                    }
                }
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(endpoint.refresh) => {}
            _ = shared.wake.notified() => {}
        }
    }
}

/// Fetches and parses the JWKS at `url`.
pub async fn fetch_jwks(url: &str) -> Result<JwkSet, FetchError> {
    let body = match tokio::time::timeout(FETCH_TIMEOUT, http_get(url)).await {
        Ok(r) => r?,
        Err(_) => return Err(FetchError::Timeout { url: url.into() }),
    };
    JwkSet::parse(&body).map_err(|source| FetchError::Jwks {
        url: url.into(),
        source,
    })
}

struct Target<'a> {
    tls: bool,
    host: &'a str,
    port: u16,
    path: &'a str,
}

fn parse_url(url: &str) -> Option<Target<'_>> {
    let (tls, rest) = if let Some(r) = url.strip_prefix("https://") {
        (true, r)
    } else {
        (false, url.strip_prefix("http://")?)
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let default = if tls { 443 } else { 80 };
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None if after.is_empty() => default,
            None => return None,
        };
        (h, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, p.parse().ok()?),
            None => (authority, default),
        }
    };
    (!host.is_empty()).then_some(Target {
        tls,
        host,
        port,
        path,
    })
}

async fn http_get(url: &str) -> Result<Vec<u8>, FetchError> {
    let t = parse_url(url).ok_or_else(|| FetchError::Url(url.into()))?;
    let io = |source| FetchError::Io {
        url: url.into(),
        source,
    };
    let tcp = TcpStream::connect((t.host, t.port)).await.map_err(io)?;
    let host_header = if t.host.contains(':') {
        format!("[{}]", t.host)
    } else {
        t.host.to_string()
    };
    let request = format!(
        "GET {} HTTP/1.1\r\nHost: {host_header}\r\nAccept: application/json\r\nUser-Agent: gregor\r\nConnection: close\r\n\r\n",
        t.path
    );
    let raw = if t.tls {
        let name = rustls_pki_types::ServerName::try_from(t.host.to_string())
            .map_err(|_| FetchError::Url(url.into()))?;
        let config = tls_client_config().map_err(|reason| FetchError::Http {
            url: url.into(),
            reason,
        })?;
        let connector = tokio_rustls::TlsConnector::from(config);
        let stream = connector.connect(name, tcp).await.map_err(io)?;
        exchange(stream, &request).await.map_err(io)?
    } else {
        exchange(tcp, &request).await.map_err(io)?
    };
    parse_response(&raw).map_err(|reason| FetchError::Http {
        url: url.into(),
        reason,
    })
}

async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    mut s: S,
    request: &str,
) -> std::io::Result<Vec<u8>> {
    s.write_all(request.as_bytes()).await?;
    s.flush().await?;
    let mut out = Vec::new();
    // Headers plus the body limit; a longer answer is cut and then refused.
    let limit = (MAX_BODY + 64 * 1024) as u64;
    let read = (&mut s).take(limit).read_to_end(&mut out).await;
    match read {
        Ok(_) => Ok(out),
        // Servers that close TLS without close_notify: keep what arrived.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !out.is_empty() => Ok(out),
        Err(e) => Err(e),
    }
}

/// *ring*'s provider, deprecated for its lack of post-quantum key exchange:
/// see `transport::tls::provider`.
#[allow(deprecated)]
fn tls_client_config() -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for path in [
        "/etc/ssl/certs/ca-certificates.crt",
        "/etc/pki/tls/certs/ca-bundle.crt",
        "/etc/ssl/cert.pem",
    ] {
        use rustls_pki_types::pem::PemObject;
        if let Ok(iter) = rustls_pki_types::CertificateDer::pem_file_iter(path) {
            for cert in iter.flatten() {
                let _ = roots.add(cert);
            }
            break;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map(|b| Arc::new(b.with_root_certificates(roots).with_no_client_auth()))
        .map_err(|e| format!("TLS: {e}"))
}

/// The body of a 200 answer.
fn parse_response(raw: &[u8]) -> Result<Vec<u8>, String> {
    let end = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("no end of the HTTP headers")?;
    let head = std::str::from_utf8(&raw[..end]).map_err(|_| "HTTP headers are not UTF-8")?;
    let body = &raw[end + 4..];
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let code = status.split(' ').nth(1).unwrap_or_default();
    if !status.starts_with("HTTP/1.") || code != "200" {
        return Err(format!("HTTP answer {status:?}"));
    }
    let mut chunked = false;
    let mut length = None;
    for line in lines {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let v = v.trim();
        if k.eq_ignore_ascii_case("transfer-encoding") && v.eq_ignore_ascii_case("chunked") {
            chunked = true;
        } else if k.eq_ignore_ascii_case("content-length") {
            length = Some(v.parse::<usize>().map_err(|_| "bad Content-Length")?);
        }
    }
    let out = if chunked {
        dechunk(body)?
    } else if let Some(n) = length {
        body.get(..n)
            .ok_or("body shorter than Content-Length")?
            .to_vec()
    } else {
        body.to_vec()
    };
    if out.len() > MAX_BODY {
        return Err(format!("the JWKS is larger than {MAX_BODY} bytes"));
    }
    Ok(out)
}

fn dechunk(mut body: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::new();
    loop {
        let eol = body
            .windows(2)
            .position(|w| w == b"\r\n")
            .ok_or("truncated chunk size")?;
        let size_text = std::str::from_utf8(&body[..eol]).map_err(|_| "bad chunk size")?;
        let size_text = size_text.split(';').next().unwrap_or_default().trim();
        let size = usize::from_str_radix(size_text, 16).map_err(|_| "bad chunk size")?;
        body = &body[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if size > MAX_BODY || out.len() + size > MAX_BODY {
            return Err(format!("the JWKS is larger than {MAX_BODY} bytes"));
        }
        let chunk = body.get(..size).ok_or("truncated chunk")?;
        out.extend_from_slice(chunk);
        body = body.get(size + 2..).ok_or("truncated chunk")?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::net::TcpListener;

    const JWKS: &str = r#"{"keys":[{"kty":"RSA","kid":"k1","n":"AQAB","e":"AQAB"}]}"#;

    #[test]
    fn urls_and_responses() {
        let t = parse_url("http://127.0.0.1:8080/jwks.json").unwrap();
        assert_eq!(
            (t.tls, t.host, t.port, t.path),
            (false, "127.0.0.1", 8080, "/jwks.json")
        );
        let t = parse_url("https://idp.example").unwrap();
        assert_eq!(
            (t.tls, t.host, t.port, t.path),
            (true, "idp.example", 443, "/")
        );
        let t = parse_url("http://[::1]:9/x").unwrap();
        assert_eq!((t.host, t.port), ("::1", 9));
        for bad in ["ftp://x/", "http://", "http://h:port/", "http://[::1/"] {
            assert!(parse_url(bad).is_none(), "{bad}");
        }
        let ok = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}xx").unwrap();
        assert_eq!(ok, b"{}");
        let chunked =
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n1;x\r\n \r\n0\r\n\r\n")
                .unwrap();
        assert_eq!(chunked, b"{} ");
        assert_eq!(
            parse_response(b"HTTP/1.0 200 OK\r\n\r\nabc").unwrap(),
            b"abc"
        );
        for bad in [
            &b"HTTP/1.1 404 Not Found\r\n\r\n"[..],
            b"garbage",
            b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\n\r\n{}",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nffffffffffffffff\r\nab",
        ] {
            assert!(parse_response(bad).is_err());
        }
    }

    /// Serves `bodies` in turn (the last one repeatedly), one per connection.
    async fn serve(bodies: Vec<&'static str>) -> (String, Arc<std::sync::atomic::AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/jwks", listener.local_addr().unwrap());
        let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = hits.clone();
        tokio::spawn(async move {
            loop {
                let Ok((mut s, _)) = listener.accept().await else {
                    return;
                };
                let n = counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let body = bodies[n.min(bodies.len() - 1)];
                let mut buf = [0u8; 1024];
                let _ = s.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.0 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            }
        });
        (url, hits)
    }

    async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while !f() {
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    #[tokio::test]
    async fn fetches_and_refreshes_on_unknown_kid() {
        const ROTATED: &str = r#"{"keys":[{"kty":"RSA","kid":"k2","n":"AQAB","e":"AQAB"}]}"#;
        let (url, hits) = serve(vec!["not json", JWKS, ROTATED]).await;
        let jwks = HttpJwks::start(JwksEndpoint {
            url,
            refresh: Duration::from_secs(3600),
            retry_backoff: Duration::from_millis(1),
            retry_backoff_max: Duration::from_millis(5),
        });
        // The first answer is refused and retried.
        wait_for("the first JWKS", || jwks.jwks().is_some()).await;
        assert_eq!(jwks.jwks().unwrap().keys[0].kid.as_deref(), Some("k1"));
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 2);
        jwks.refresh_soon(Some("k2"));
        wait_for("the rotated JWKS", || {
            jwks.jwks().unwrap().keys[0].kid.as_deref() == Some("k2")
        })
        .await;
        // A second unknown kid right away does not fetch again.
        let before = *jwks.shared.last_expedite.lock();
        jwks.refresh_soon(Some("k3"));
        assert_eq!(*jwks.shared.last_expedite.lock(), before);
        assert_eq!(hits.load(std::sync::atomic::Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn fetch_errors() {
        let (url, _) = serve(vec!["{\"nokeys\": 1}"]).await;
        assert!(matches!(
            fetch_jwks(&url).await,
            Err(FetchError::Jwks { .. })
        ));
        assert!(matches!(
            fetch_jwks("gopher://x").await,
            Err(FetchError::Url(_))
        ));
        let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/", closed.local_addr().unwrap());
        drop(closed);
        assert!(matches!(fetch_jwks(&url).await, Err(FetchError::Io { .. })));
    }
}
