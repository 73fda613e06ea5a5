//! The listeners: the unix socket (its mode is the authentication) and, when asked, TCP with
//! TLS and a bearer token. Both serve HTTP/1 and HTTP/2 (by ALPN over TLS, by preface on the
//! socket) with upgrades (exec), bounded: connections per listener, TLS handshake and header
//! timeouts, header sizes, HTTP/2 streams.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::Router;
use hyper::body::Incoming;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{watch, Semaphore};
use tower::ServiceExt;

use super::files::SecureDir;
use super::{Credentials, DaemonLock, Endpoint, Limits, ServeConfig, TransportError};
use super::{ENDPOINT, SOCKET};

/// How a request reached the daemon; an extension on every request the router sees.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Peer {
    /// The unix socket (its permissions admitted the caller).
    Unix,
    /// TCP with TLS and the bearer token, from this address.
    Tcp(SocketAddr),
}

/// The bound listeners, before serving.
pub struct Listeners {
    unix: UnixListener,
    tcp: Option<(TcpListener, tokio_rustls::TlsAcceptor)>,
    token: Arc<Credentials>,
    endpoint: Endpoint,
    dir: SecureDir,
    limits: Limits,
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Listeners")
            .field("endpoint", &self.endpoint)
            .finish_non_exhaustive()
    }
}

/// The longest unix socket path bind(2) takes (sun_path less its NUL).
const SUN_PATH_MAX: usize = 107;

impl Listeners {
    /// Binds the unix socket (replacing a stale one: the lock proves no daemon uses it) and,
    /// with `cfg.listen`, the TCP listener; writes `endpoint.json`. Every descriptor is
    /// CLOEXEC (tokio's and std's sockets are made with SOCK_CLOEXEC), so the monitors the
    /// daemon starts never hold the listen sockets.
    pub async fn bind(
        cfg: &ServeConfig,
        creds: Credentials,
        _lock: &DaemonLock,
    ) -> Result<Self, TransportError> {
        // TCP first: a taken port fails the start before anything is changed on disk.
        let (tcp, address) = match cfg.listen {
            None => (None, None),
            Some(addr) => {
                let l = TcpListener::bind(addr)
                    .await
                    .map_err(|e| TransportError::Listen {
                        addr: addr.to_string(),
                        source: e,
                    })?;
                let local = l.local_addr().map_err(|e| TransportError::Listen {
                    addr: addr.to_string(),
                    source: e,
                })?;
                let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(creds.tls_config()?));
                (Some((l, acceptor)), Some(local))
            }
        };
        let dir = SecureDir::open(&cfg.data_dir, true)?;
        dir.remove(SOCKET)?;
        // Bound under a temporary name, narrowed to 0600 and renamed into place: `api.sock`
        // never exists with a wider mode (and the directory is 0700 besides).
        let tmp = format!(".{SOCKET}.{}.tmp", std::process::id());
        dir.remove(&tmp)?;
        let bind_path = {
            let plain = dir.file_path(&tmp);
            if plain.as_os_str().len() <= SUN_PATH_MAX {
                plain
            } else {
                // A long data dir: through the directory's descriptor (short, and exactly
                // the directory checked).
                use std::os::fd::AsRawFd;
                std::path::PathBuf::from(format!("/proc/self/fd/{}/{tmp}", dir.as_fd().as_raw_fd()))
            }
        };
        let socket = dir.file_path(SOCKET);
        let unix = UnixListener::bind(&bind_path).map_err(|e| TransportError::Listen {
            addr: socket.display().to_string(),
            source: e,
        })?;
        dir.chmod(&tmp, 0o600)?;
        dir.rename(&tmp, SOCKET)?;

        let endpoint = Endpoint {
            pid: std::process::id(),
            socket,
            address,
            server: address.map(Endpoint::url_for),
        };
        let json = serde_json::to_vec_pretty(&endpoint)
            .map_err(|e| TransportError::Credentials(format!("endpoint.json: {e}")))?;
        dir.write(ENDPOINT, &json)?;
        Ok(Self {
            unix,
            tcp,
            token: Arc::new(creds),
            endpoint,
            dir,
            limits: cfg.limits.clone(),
        })
    }

    /// The credentials TCP clients are checked against.
    pub fn credentials(&self) -> &Credentials {
        &self.token
    }

    /// Where clients reach this daemon.
    pub fn endpoint(&self) -> &Endpoint {
        &self.endpoint
    }

    /// Serves `router` on every listener until `shutdown` resolves; then stops accepting,
    /// asks open connections to finish (each gets `limits.shutdown_grace`), and removes the
    /// socket.
    pub async fn serve(
        self,
        router: Router,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), TransportError> {
        let Listeners {
            unix,
            tcp,
            token,
            dir,
            limits,
            ..
        } = self;
        let (stop_tx, stop_rx) = watch::channel(false);
        let builders = Arc::new(Builders::new(&limits));
        let unix_task = tokio::spawn(accept_unix(
            unix,
            router.clone(),
            builders.clone(),
            limits.clone(),
            stop_rx.clone(),
        ));
        let tcp_task = tcp.map(|(l, acceptor)| {
            tokio::spawn(accept_tcp(
                l,
                acceptor,
                router.clone(),
                token.clone(),
                builders.clone(),
                limits.clone(),
                stop_rx.clone(),
            ))
        });
        shutdown.await;
        let _ = stop_tx.send(true);
        // The accept loops wait for their connections (each bounded by the grace).
        let _ = unix_task.await;
        if let Some(t) = tcp_task {
            let _ = t.await;
        }
        dir.remove(SOCKET)?;
        Ok(())
    }
}

/// [`Listeners::bind`] then [`Listeners::serve`].
pub async fn serve(
    router: Router,
    cfg: &ServeConfig,
    creds: Credentials,
    lock: &DaemonLock,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), TransportError> {
    Listeners::bind(cfg, creds, lock)
        .await?
        .serve(router, shutdown)
        .await
}

/// The connection builders: by ALPN over TLS (HTTP/1 or HTTP/2 only: no protocol sniffing,
/// which would wait for bytes with no timeout), by preface on the unix socket.
struct Builders {
    auto: auto::Builder<TokioExecutor>,
    http1: hyper::server::conn::http1::Builder,
    http2: hyper::server::conn::http2::Builder<TokioExecutor>,
}

impl Builders {
    fn new(limits: &Limits) -> Self {
        let mut http1 = hyper::server::conn::http1::Builder::new();
        http1
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_read_timeout)
            .max_buf_size(limits.max_header_bytes.max(8192));
        let mut http2 = hyper::server::conn::http2::Builder::new(TokioExecutor::new());
        http2
            .timer(TokioTimer::new())
            .max_concurrent_streams(limits.max_concurrent_streams)
            .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
            .keep_alive_interval(limits.keep_alive_interval)
            .keep_alive_timeout(Duration::from_secs(20));
        Self {
            auto: http_builder(limits),
            http1,
            http2,
        }
    }
}

fn http_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut b = auto::Builder::new(TokioExecutor::new());
    b.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // hyper's floor is 8 KiB.
        .max_buf_size(limits.max_header_bytes.max(8192));
    b.http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.max_concurrent_streams)
        .max_header_list_size(u32::try_from(limits.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(limits.keep_alive_interval)
        .keep_alive_timeout(Duration::from_secs(20));
    b
}

/// Waits a little after an accept error (EMFILE and friends) instead of spinning.
async fn accept_backoff(e: &std::io::Error) {
    tracing::warn!(error = %e, "accepting a connection");
    tokio::time::sleep(Duration::from_millis(100)).await;
}

async fn accept_unix(
    listener: UnixListener,
    router: Router,
    builders: Arc<Builders>,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stop.changed() => break,
        };
        let stream: tokio::net::UnixStream = tokio::select! {
            r = listener.accept() => match r {
                Ok((s, _)) => s,
                Err(e) => { accept_backoff(&e).await; continue; }
            },
            _ = stop.changed() => break,
        };
        let svc = Svc {
            router: router.clone(),
            auth: None,
            peer: Peer::Unix,
            authed: Arc::new(AtomicBool::new(true)),
        };
        let builders = builders.clone();
        let stop = stop.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            // The protocol is sniffed from the first bytes, which must come in time.
            if let Ok(Ok(())) =
                tokio::time::timeout(limits.header_read_timeout, stream.readable()).await
            {
                let conn = builders
                    .auto
                    .serve_connection_with_upgrades(TokioIo::new(stream), svc);
                let grace = limits.shutdown_grace;
                drive(
                    conn,
                    |c| c.graceful_shutdown(),
                    stop,
                    grace,
                    std::future::pending(),
                )
                .await;
            }
            drop(permit);
        });
    }
    drop(listener);
    drain(&slots, limits.max_connections, limits.shutdown_grace).await;
}

async fn accept_tcp(
    listener: TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    router: Router,
    creds: Arc<Credentials>,
    builders: Arc<Builders>,
    limits: Limits,
    mut stop: watch::Receiver<bool>,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => match p { Ok(p) => p, Err(_) => break },
            _ = stop.changed() => break,
        };
        let (stream, remote) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => { accept_backoff(&e).await; continue; }
            },
            _ = stop.changed() => break,
        };
        // Watch events are small writes that must leave at once.
        let _ = stream.set_nodelay(true);
        let svc = Svc {
            router: router.clone(),
            auth: Some(creds.clone()),
            peer: Peer::Tcp(remote),
            authed: Arc::new(AtomicBool::new(false)),
        };
        let builders = builders.clone();
        let acceptor = acceptor.clone();
        let stop = stop.clone();
        let limits = limits.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(limits.tls_handshake_timeout, acceptor.accept(stream)).await
            {
                Ok(Ok(tls)) => {
                    let grace = limits.shutdown_grace;
                    // A connection without one authenticated request within the header
                    // timeout is closed: idle or failing clients (an HTTP/2 one that never
                    // sends its preface, one retrying 401s) hold no slot for long.
                    let authed = svc.authed.clone();
                    let give_up = async move {
                        tokio::time::sleep(limits.header_read_timeout).await;
                        if authed.load(Ordering::Relaxed) {
                            std::future::pending::<()>().await;
                        }
                    };
                    if tls.get_ref().1.alpn_protocol() == Some(b"h2") {
                        let conn = builders.http2.serve_connection(TokioIo::new(tls), svc);
                        drive(conn, |c| c.graceful_shutdown(), stop, grace, give_up).await;
                    } else {
                        let conn = builders
                            .http1
                            .serve_connection(TokioIo::new(tls), svc)
                            .with_upgrades();
                        drive(conn, |c| c.graceful_shutdown(), stop, grace, give_up).await;
                    }
                }
                Ok(Err(e)) => tracing::debug!(%remote, error = %e, "TLS handshake failed"),
                Err(_) => tracing::debug!(%remote, "TLS handshake timed out"),
            }
            drop(permit);
        });
    }
    drop(listener);
    drain(&slots, limits.max_connections, limits.shutdown_grace).await;
}

/// Waits until every connection has ended (they each end within the grace after the stop).
async fn drain(slots: &Semaphore, max: usize, grace: Duration) {
    let n = u32::try_from(max).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(grace + Duration::from_secs(1), slots.acquire_many(n)).await;
}

/// Runs a connection until it ends or the daemon stops; then asks it to finish (in-flight
/// requests complete, no new ones) and drops it after `grace`.
/// `give_up` resolving drops the connection at once.
async fn drive<C, E>(
    conn: C,
    graceful: fn(Pin<&mut C>),
    mut stop: watch::Receiver<bool>,
    grace: Duration,
    give_up: impl Future<Output = ()>,
) where
    C: Future<Output = Result<(), E>>,
    E: std::fmt::Display,
{
    tokio::pin!(conn);
    let stopping = async {
        // A closed sender is a stop too.
        let _ = stop.wait_for(|s| *s).await;
    };
    tokio::select! {
        res = conn.as_mut() => {
            if let Err(e) = res {
                tracing::debug!(error = %e, "connection ended with an error");
            }
            return;
        }
        _ = give_up => {
            tracing::debug!("closing a connection that never authenticated");
            return;
        }
        _ = stopping => {}
    }
    graceful(conn.as_mut());
    let _ = tokio::time::timeout(grace, conn).await;
}

/// The per-connection service: the token check (TCP), the [`Peer`] extension, the router.
#[derive(Clone)]
struct Svc {
    router: Router,
    auth: Option<Arc<Credentials>>,
    peer: Peer,
    /// Whether a request on this connection carried the token.
    authed: Arc<AtomicBool>,
}

type BoxFut = Pin<Box<dyn Future<Output = Result<Response<Body>, Infallible>> + Send>>;

impl hyper::service::Service<Request<Incoming>> for Svc {
    type Response = Response<Body>;
    type Error = Infallible;
    type Future = BoxFut;

    fn call(&self, req: Request<Incoming>) -> Self::Future {
        let mut req = req.map(Body::new);
        if let Some(creds) = &self.auth {
            if authorized(&req, creds) {
                self.authed.store(true, Ordering::Relaxed);
                // Handlers have no use for it, and it must never reach a log.
                req.headers_mut().remove(hyper::header::AUTHORIZATION);
            } else if !public_info(&req) {
                return Box::pin(std::future::ready(Ok(unauthorized())));
            }
        }
        req.extensions_mut().insert(self.peer);
        let router = self.router.clone();
        Box::pin(async move { router.oneshot(req).await })
    }
}

/// `Authorization: Bearer <token>` (the scheme case-insensitive, as kube-apiserver's bearer
/// token authenticator reads it), exactly one such header.
fn authorized(req: &Request<Body>, creds: &Credentials) -> bool {
    let mut values = req.headers().get_all(hyper::header::AUTHORIZATION).iter();
    let (Some(v), None) = (values.next(), values.next()) else {
        return false;
    };
    let v = v.as_bytes();
    let Some(pos) = v.iter().position(|&b| b == b' ') else {
        return false;
    };
    let (scheme, rest) = v.split_at(pos);
    if !scheme.eq_ignore_ascii_case(b"bearer") {
        return false;
    }
    let token = rest.trim_ascii();
    !token.is_empty() && creds.token_matches(token)
}

/// What kube-apiserver serves to anonymous clients (the `system:public-info-viewer` role: GET
/// `/healthz`, `/livez`, `/readyz` and their checks, `/version`), to a request without any
/// `Authorization` header: a wrong token is still 401, as kube's authenticator fails it.
/// `/metrics` needs the token.
fn public_info(req: &Request<Body>) -> bool {
    if req.method() != hyper::Method::GET
        || req.headers().contains_key(hyper::header::AUTHORIZATION)
    {
        return false;
    }
    let path = req.uri().path();
    path == "/version"
        || path == "/version/"
        || ["/healthz", "/livez", "/readyz"].iter().any(|p| {
            path.strip_prefix(p)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        })
}

/// kube-apiserver's answer to a request without valid credentials.
fn unauthorized() -> Response<Body> {
    let body = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#;
    let mut r = Response::new(Body::from(body));
    *r.status_mut() = StatusCode::UNAUTHORIZED;
    r.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    r
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn bearer_parsing() {
        let t = tempfile::tempdir().unwrap();
        let creds =
            Credentials::load_or_create(&ServeConfig::new(t.path().to_path_buf(), None)).unwrap();
        let req = |h: &[&str]| {
            let mut b = Request::builder();
            for v in h {
                b = b.header("authorization", *v);
            }
            b.body(Body::empty()).unwrap()
        };
        let tok = creds.token().to_string();
        assert!(authorized(&req(&[&format!("Bearer {tok}")]), &creds));
        assert!(authorized(&req(&[&format!("bearer  {tok} ")]), &creds));
        assert!(!authorized(&req(&[]), &creds));
        assert!(!authorized(&req(&["Bearer "]), &creds));
        assert!(!authorized(&req(&[&format!("Basic {tok}")]), &creds));
        assert!(!authorized(&req(&[&format!("Bearer {tok}x")]), &creds));
        assert!(!authorized(
            &req(&[&format!("Bearer {tok}"), &format!("Bearer {tok}")]),
            &creds
        ));
    }

    #[test]
    fn public_info_paths() {
        let req = |m: &str, path: &str, auth: bool| {
            let mut b = Request::builder().method(m).uri(path);
            if auth {
                b = b.header("authorization", "Bearer wrong");
            }
            b.body(Body::empty()).unwrap()
        };
        for p in [
            "/healthz",
            "/livez",
            "/readyz",
            "/readyz/etcd",
            "/livez/ping",
            "/version",
        ] {
            assert!(public_info(&req("GET", p, false)), "{p}");
            // A wrong token is refused even there.
            assert!(!public_info(&req("GET", p, true)), "{p}");
        }
        for p in ["/metrics", "/api/v1/pods", "/readyzx", "/", "/versions"] {
            assert!(!public_info(&req("GET", p, false)), "{p}");
        }
        assert!(!public_info(&req("POST", "/healthz", false)));
    }
}
