//! The HTTP(S) front of the server: the accept loop with its limits and
//! timeouts, TLS, the `Host` check, and a graceful stop that never waits on a
//! slow client for longer than a deadline.
//!
//! What a hostile client on the lab network can no longer do:
//! - hold connections open forever: headers must arrive within
//!   `header_timeout` (which is also the keep-alive idle limit and the TLS
//!   handshake limit), a request body within `body_timeout`;
//! - exhaust file descriptors: at most `max_connections` are open (further
//!   clients wait in the kernel's backlog), and one client address holds at
//!   most `max_connections_per_client` of them (further ones are closed);
//! - send big bodies: more than `body_limit` bytes answers 413;
//! - put its own host into our `Location` headers: `Host` must be a host name
//!   or address with an optional port, else 400.

use anyhow::{Context, Result};
use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::header::{CONNECTION, CONTENT_LENGTH, CONTENT_TYPE, HOST, TRANSFER_ENCODING};
use axum::http::{HeaderValue, Request, Response, StatusCode};
use http_body_util::BodyExt;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt;
use tracing::{debug, info, warn};

/// Bounds on what one client may hold or send.
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub max_connections_per_client: usize,
    /// Until a request's headers are in; also the keep-alive idle limit and
    /// the TLS handshake limit.
    pub header_timeout: Duration,
    /// Until a request's whole body is in.
    pub body_timeout: Duration,
    pub body_limit: usize,
    /// How long a stop waits for requests in flight before closing the
    /// remaining connections.
    pub shutdown_grace: Duration,
}

/// A rustls server configuration from PEM files (certificate chain, private
/// key), HTTP/1.1 only.
pub fn tls_config(cert: &Path, key: &Path) -> Result<Arc<rustls::ServerConfig>> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .with_context(|| format!("cannot read --tls-cert {}", cert.display()))?;
    if certs.is_empty() {
        anyhow::bail!("--tls-cert {} holds no certificate", cert.display());
    }
    // The key's contents are never part of an error message.
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("cannot read a private key from --tls-key {}", key.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("--tls-cert and --tls-key do not make a usable pair")?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Serve `app` on `listener` until `shutdown` completes, then give requests
/// in flight `limits.shutdown_grace` and close what is left. Each request
/// carries `ConnectInfo<SocketAddr>` (the client's address).
pub async fn serve(
    listener: TcpListener,
    app: Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let local = listener.local_addr()?;
    let tls = tls.map(tokio_rustls::TlsAcceptor::from);
    let app = app.layer(axum::middleware::from_fn_with_state(
        Arc::new(limits.clone()),
        bounded_body,
    ));
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_client: Arc<Mutex<HashMap<IpAddr, usize>>> = Arc::default();
    let graceful = CancellationToken::new();
    let hard = CancellationToken::new();
    let tracker = TaskTracker::new();
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("the semaphore is never closed"),
            () = &mut shutdown => break,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(c) => c,
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!("cannot accept a connection: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(client) =
            ClientSlot::take(&per_client, peer.ip(), limits.max_connections_per_client)
        else {
            debug!(client = %peer, "too many connections from this client: closed");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let conn = Connection {
            app: app.clone(),
            peer,
            local,
            limits: limits.clone(),
            graceful: graceful.clone(),
            hard: hard.clone(),
        };
        let tls = tls.clone();
        tracker.spawn(async move {
            let _held = (permit, client);
            match tls {
                None => conn.run(stream).await,
                Some(acceptor) => {
                    let handshake =
                        tokio::time::timeout(conn.limits.header_timeout, acceptor.accept(stream));
                    match handshake.await {
                        Ok(Ok(stream)) => conn.run(stream).await,
                        Ok(Err(e)) => debug!(client = %peer, "TLS handshake failed: {e}"),
                        Err(_) => debug!(client = %peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(listener);
    tracker.close();
    graceful.cancel();
    if tokio::time::timeout(limits.shutdown_grace, tracker.wait())
        .await
        .is_err()
    {
        info!(
            "closing {} connection(s) still open after {:?}",
            tracker.len(),
            limits.shutdown_grace
        );
        hard.cancel();
        tracker.wait().await;
    }
    Ok(())
}

/// One client address's share of the connections; released on drop.
struct ClientSlot {
    map: Arc<Mutex<HashMap<IpAddr, usize>>>,
    ip: IpAddr,
}

impl ClientSlot {
    fn take(map: &Arc<Mutex<HashMap<IpAddr, usize>>>, ip: IpAddr, max: usize) -> Option<Self> {
        let mut m = map.lock().unwrap_or_else(|p| p.into_inner());
        let n = m.entry(ip).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(ClientSlot {
            map: Arc::clone(map),
            ip,
        })
    }
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut m = self.map.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = m.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                m.remove(&self.ip);
            }
        }
    }
}

struct Connection {
    app: Router,
    peer: SocketAddr,
    local: SocketAddr,
    limits: Limits,
    graceful: CancellationToken,
    hard: CancellationToken,
}

impl Connection {
    async fn run<IO>(self, io: IO)
    where
        IO: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
    {
        let Connection {
            app,
            peer,
            local,
            limits,
            graceful,
            hard,
        } = self;
        let service = hyper::service::service_fn(move |mut req: Request<Incoming>| {
            let app = app.clone();
            async move {
                let method = crate::metrics::method_label(req.method());
                let resp = match check_framing(&req).or_else(|| check_host(&mut req, local)) {
                    Some(refused) => refused,
                    None => {
                        req.extensions_mut().insert(ConnectInfo(peer));
                        let Ok(resp) = app.oneshot(req.map(Body::new)).await;
                        resp
                    }
                };
                crate::metrics::http_request(method, &resp);
                Ok::<_, std::convert::Infallible>(resp)
            }
        });
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .max_buf_size(64 * 1024)
            // hyper checks max_buf_size only on an incomplete parse, so a head
            // read in one go could exceed it: bound the parsed head too (431).
            .max_header_size(64 * 1024);
        let conn = builder.serve_connection(TokioIo::new(io), service);
        tokio::pin!(conn);
        let res = tokio::select! {
            r = conn.as_mut() => r,
            () = graceful.cancelled() => {
                conn.as_mut().graceful_shutdown();
                tokio::select! {
                    r = conn.as_mut() => r,
                    () = hard.cancelled() => Ok(()),
                }
            }
        };
        if let Err(e) = res {
            debug!(client = %peer, "connection ended: {e}");
        }
    }
}

/// The only transfer coding we read is a lone `chunked`: anything else
/// (`gzip, chunked`, ...) would be read as if it were not there, so it is
/// refused before the body is touched, and the connection closed, since its
/// framing cannot be trusted any more.
fn check_framing(req: &Request<Incoming>) -> Option<Response<Body>> {
    let codings: Vec<&HeaderValue> = req.headers().get_all(TRANSFER_ENCODING).iter().collect();
    match codings.as_slice() {
        [] => None,
        [one] if one.as_bytes().trim_ascii().eq_ignore_ascii_case(b"chunked") => None,
        _ => {
            let mut resp = error(
                StatusCode::BAD_REQUEST,
                "unsupported Transfer-Encoding: only a single `chunked` is accepted",
            );
            resp.headers_mut()
                .insert(CONNECTION, HeaderValue::from_static("close"));
            Some(resp)
        }
    }
}

/// A `Host` header must be `host[:port]` and given once (RFC 9112 3.2); a
/// request without one (HTTP/1.0) gets the address it reached. The refusal, if any.
fn check_host(req: &mut Request<Incoming>, local: SocketAddr) -> Option<Response<Body>> {
    if req.headers().get_all(HOST).iter().nth(1).is_some() {
        return Some(error(StatusCode::BAD_REQUEST, "more than one Host header"));
    }
    match req.headers().get(HOST) {
        None => {
            let v = HeaderValue::from_str(&local.to_string()).expect("an address is a header");
            req.headers_mut().insert(HOST, v);
            None
        }
        Some(h) => match h.to_str().ok().filter(|h| valid_host(h)) {
            Some(_) => None,
            None => {
                let shown: String = String::from_utf8_lossy(h.as_bytes())
                    .chars()
                    .take(80)
                    .flat_map(char::escape_default)
                    .collect();
                Some(error(
                    StatusCode::BAD_REQUEST,
                    &format!(
                        "invalid Host header \"{shown}\": expected a host name or address \
                         with an optional port"
                    ),
                ))
            }
        },
    }
}

/// `name`, `name:port`, `1.2.3.4:port`, `[v6]:port`; a DNS-shaped name
/// (labels of letters, digits, `-` and `_`, at most 253 bytes), a port of
/// 1-65535. No user info, path, query or fragment.
pub fn valid_host(h: &str) -> bool {
    let (host, port) = if let Some(rest) = h.strip_prefix('[') {
        let Some((v6, after)) = rest.split_once(']') else {
            return false;
        };
        if v6.parse::<std::net::Ipv6Addr>().is_err() {
            return false;
        }
        match after {
            "" => return true,
            p => match p.strip_prefix(':') {
                Some(port) => (None, Some(port)),
                None => return false,
            },
        }
    } else {
        match h.rsplit_once(':') {
            Some((host, port)) => (Some(host), Some(port)),
            None => (Some(h), None),
        }
    };
    if let Some(port) = port {
        let ok = !port.is_empty()
            && port.len() <= 5
            && port.bytes().all(|b| b.is_ascii_digit())
            && matches!(port.parse::<u32>(), Ok(1..=65535));
        if !ok {
            return false;
        }
    }
    match host {
        None => true,
        Some(host) => {
            !host.is_empty()
                && host.len() <= 253
                && host.split('.').enumerate().all(|(i, label)| {
                    // One trailing dot (the DNS root) is fine.
                    (label.is_empty() && i > 0 && host.ends_with('.') && host.len() > 1)
                        || (!label.is_empty()
                            && label.len() <= 63
                            && !label.starts_with('-')
                            && label
                                .bytes()
                                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
                })
                && !host.ends_with("..")
        }
    }
}

fn error(code: StatusCode, msg: &str) -> Response<Body> {
    let body =
        serde_json::to_string(&crate::wire::Error { error: msg }).expect("a string serializes");
    let mut resp = Response::new(Body::from(body));
    *resp.status_mut() = code;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    resp
}

/// Read the whole request body within `body_timeout` and `body_limit`
/// before any handler runs, so a slow or oversized body is refused in one
/// place (408, 413) and handlers only see complete bodies.
async fn bounded_body(
    axum::extract::State(limits): axum::extract::State<Arc<Limits>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let declared = req
        .headers()
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limits.body_limit as u64) {
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "request body of {} bytes is over the limit of {} bytes",
                declared.unwrap_or_default(),
                limits.body_limit
            ),
        );
    }
    let (parts, body) = req.into_parts();
    let limited = http_body_util::Limited::new(body, limits.body_limit);
    match tokio::time::timeout(limits.body_timeout, limited.collect()).await {
        Err(_) => error(
            StatusCode::REQUEST_TIMEOUT,
            &format!(
                "request body not received within {} s",
                limits.body_timeout.as_secs_f64()
            ),
        ),
        Ok(Err(e)) if e.is::<http_body_util::LengthLimitError>() => error(
            StatusCode::PAYLOAD_TOO_LARGE,
            &format!(
                "request body is over the limit of {} bytes",
                limits.body_limit
            ),
        ),
        Ok(Err(e)) => error(StatusCode::BAD_REQUEST, &format!("bad request body: {e}")),
        Ok(Ok(collected)) => {
            let req = axum::extract::Request::from_parts(parts, Body::from(collected.to_bytes()));
            next.run(req).await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::valid_host;

    #[test]
    fn hosts() {
        for ok in [
            "localhost",
            "localhost:5000",
            "prov.lab",
            "prov.lab.:80",
            "10.0.0.1",
            "10.0.0.1:65535",
            "[::1]",
            "[::1]:5000",
            "a_b.lab",
        ] {
            assert!(valid_host(ok), "{ok}");
        }
        for bad in [
            "",
            ":80",
            "evil.example/x?y=",
            "user:pw@evil.example",
            "host:99999",
            "host:0",
            "host:",
            "host:+80",
            "host:80:80",
            "[::1",
            "[zz]:80",
            "[::1]x",
            "a..b",
            "-a.lab",
            "a b",
            "a\u{e9}.lab",
            "host#frag",
            "..",
            ".",
            &"a".repeat(254),
            &format!("{}.lab", "a".repeat(64)),
        ] {
            assert!(!valid_host(bad), "{bad:?}");
        }
    }
}
