//! A minimal HTTP/1.1 GET client for httpGet probes and hooks, on hyper's
//! connection-level API (no pooling: one connection per probe, like the
//! kubelet, which disables keep-alive). hyper is used rather than a
//! hand-written client because the gRPC prober needs its HTTP/2 anyway, and it
//! handles chunked bodies, header parsing and TLS streams correctly.

use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::TokioIo;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite};

/// Body bytes kept (the kubelet's maxRespBodyLength, 10 KiB, `pkg/probe/http/http.go`); the
/// rest of the body is not read: the connection is dropped.
pub const MAX_BODY: usize = 10 * 1024;
/// Response header fields accepted (hyper's default, stated here as the bound).
pub const MAX_HEADERS: usize = 100;
/// Bytes of status line and headers accepted (Go's transport allows 10 MB; a probe needs
/// far less). Also the read buffer's bound.
pub const MAX_HEAD_BYTES: usize = 64 * 1024;
/// Redirects followed before giving up (Go's http.Client default).
pub const MAX_REDIRECTS: usize = 10;
/// `User-Agent` the kubelet sends (`kube-probe/<major>.<minor>`), for the release skiff
/// implements (`skiff_model::KUBERNETES_MINOR`; a test keeps the two equal).
pub const USER_AGENT: &str = "kube-probe/1.37";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// Where to send the GET.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub scheme: Scheme,
    pub host: String,
    pub port: u16,
    /// Path and query, starting with `/`.
    pub path: String,
}

impl Target {
    pub fn url(&self) -> String {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        format!("{scheme}://{}{}", self.authority(), self.path)
    }

    fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }

    /// Resolves a `Location` header against this target.
    pub fn join(&self, location: &str) -> Option<Target> {
        if let Some(rest) = location
            .strip_prefix("http://")
            .map(|r| (Scheme::Http, r))
            .or_else(|| {
                location
                    .strip_prefix("https://")
                    .map(|r| (Scheme::Https, r))
            })
        {
            let (scheme, rest) = rest;
            let (auth, path) = match rest.find('/') {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, "/"),
            };
            let default_port = if scheme == Scheme::Https { 443 } else { 80 };
            let (host, port) = split_host_port(auth, default_port)?;
            return Some(Target {
                scheme,
                host,
                port,
                path: path.to_string(),
            });
        }
        if let Some(p) = location.strip_prefix("//") {
            return self.join(&format!(
                "{}:{p}",
                if self.scheme == Scheme::Https {
                    "https"
                } else {
                    "http"
                }
            ));
        }
        let path = if location.starts_with('/') {
            location.to_string()
        } else {
            let base = self.path.split('?').next().unwrap_or("/");
            let dir = &base[..base.rfind('/').map(|i| i + 1).unwrap_or(0)];
            format!("{dir}{location}")
        };
        Some(Target {
            path,
            ..self.clone()
        })
    }
}

fn split_host_port(auth: &str, default_port: u16) -> Option<(String, u16)> {
    if let Some(rest) = auth.strip_prefix('[') {
        let end = rest.find(']')?;
        let host = rest[..end].to_string();
        let port = match rest[end + 1..].strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => default_port,
        };
        return Some((host, port));
    }
    match auth.rsplit_once(':') {
        Some((h, p)) => Some((h.to_string(), p.parse().ok()?)),
        None => Some((auth.to_string(), default_port)),
    }
}

/// A response: status and at most [`MAX_BODY`] bytes of body.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub body: Vec<u8>,
    /// A redirect to another host was returned as is (not followed).
    pub redirect_not_followed: bool,
}

/// GET with redirects to the same host followed (the kubelet's
/// `followNonLocalRedirects=false`). Errors are rendered like Go's client.
/// `netns`: connect from inside this network namespace (the pod's).
/// `headers_seen` is set once a response head arrived, so that a caller whose timeout cut the
/// exchange can say, as Go's client does, whether it was awaiting headers or reading the body.
pub async fn get(
    target: &Target,
    headers: &[(String, String)],
    netns: Option<&OwnedFd>,
    headers_seen: &AtomicBool,
) -> Result<Response, String> {
    let first_host = target.host.clone();
    let mut current = target.clone();
    for _ in 0..=MAX_REDIRECTS {
        let (status, location, body) = get_once(&current, headers, netns, headers_seen)
            .await
            .map_err(|e| format!("Get \"{}\": {e}", current.url()))?;
        if (300..400).contains(&status) {
            if let Some(next) = location.as_deref().and_then(|l| current.join(l)) {
                if next.host != first_host {
                    return Ok(Response {
                        status,
                        body,
                        redirect_not_followed: true,
                    });
                }
                current = next;
                continue;
            }
        }
        return Ok(Response {
            status,
            body,
            redirect_not_followed: false,
        });
    }
    Err(format!(
        "Get \"{}\": stopped after {MAX_REDIRECTS} redirects",
        current.url()
    ))
}

async fn get_once(
    t: &Target,
    headers: &[(String, String)],
    netns: Option<&OwnedFd>,
    headers_seen: &AtomicBool,
) -> Result<(u16, Option<String>, Vec<u8>), String> {
    headers_seen.store(false, Ordering::Relaxed);
    let tcp = crate::namespaces::connect_tcp(netns, t.host.as_str(), t.port)
        .await
        .map_err(|e| format!("dial tcp {}: {}", t.authority(), describe_io(&e)))?;
    match t.scheme {
        Scheme::Http => exchange(tcp, t, headers, headers_seen).await,
        Scheme::Https => {
            let connector = tokio_rustls::TlsConnector::from(tls_config()?);
            let name = ServerName::try_from(t.host.clone()).map_err(|e| e.to_string())?;
            let tls = connector
                .connect(name, tcp)
                .await
                .map_err(|e| e.to_string())?;
            exchange(tls, t, headers, headers_seen).await
        }
    }
}

async fn exchange<I>(
    io: I,
    t: &Target,
    headers: &[(String, String)],
    headers_seen: &AtomicBool,
) -> Result<(u16, Option<String>, Vec<u8>), String>
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, conn) = hyper::client::conn::http1::Builder::new()
        .max_headers(MAX_HEADERS)
        .max_header_size(MAX_HEAD_BYTES)
        .max_buf_size(MAX_HEAD_BYTES)
        .handshake(TokioIo::new(io))
        .await
        .map_err(|e| e.to_string())?;
    // Dropping the guard (body read, error, or the caller's timeout) ends the connection.
    let _conn = AbortOnDrop(tokio::spawn(async move {
        if let Err(e) = conn.await {
            tracing::trace!(error = %e, "probe connection");
        }
    }));
    let mut req = Request::get(t.path.as_str());
    let has = |name: &str| headers.iter().any(|(k, _)| k.eq_ignore_ascii_case(name));
    if !has("host") {
        req = req.header("Host", t.authority());
    }
    if !has("user-agent") {
        req = req.header("User-Agent", USER_AGENT);
    }
    if !has("accept") {
        req = req.header("Accept", "*/*");
    }
    req = req.header("Connection", "close");
    for (k, v) in headers {
        req = req.header(k.as_str(), v.as_str());
    }
    let req = req.body(Empty::<Bytes>::new()).map_err(|e| e.to_string())?;
    let resp = sender.send_request(req).await.map_err(|e| chain(&e))?;
    headers_seen.store(true, Ordering::Relaxed);
    let status = resp.status().as_u16();
    let location = resp
        .headers()
        .get("location")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let mut body = resp.into_body();
    let mut out = Vec::new();
    while out.len() < MAX_BODY {
        match body.frame().await {
            Some(Ok(f)) => {
                if let Some(d) = f.data_ref() {
                    let take = (MAX_BODY - out.len()).min(d.len());
                    out.extend_from_slice(&d[..take]);
                }
            }
            Some(Err(e)) => return Err(chain(&e)),
            None => break,
        }
    }
    Ok((status, location, out))
}

/// Aborts a spawned task when dropped: a probe's connection task never outlives the probe.
pub(crate) struct AbortOnDrop(pub(crate) tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// An error and its causes, `outer: inner: ...` (hyper's own text is only "http2 error").
pub(crate) fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(s) = cur {
        let t = s.to_string();
        if !out.ends_with(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        cur = s.source();
    }
    out
}

/// Go-like wording for the common connect errors.
pub(crate) fn describe_io(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::ConnectionRefused => "connect: connection refused".into(),
        _ => e.to_string(),
    }
}

/// TLS without certificate verification, like the kubelet's probes.
fn tls_config() -> Result<Arc<rustls::ClientConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(NoVerify(provider)))
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}

#[derive(Debug)]
struct NoVerify(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for NoVerify {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_agent_names_the_implemented_release() {
        assert_eq!(
            USER_AGENT,
            format!(
                "kube-probe/{}.{}",
                skiff_model::KUBERNETES_MAJOR,
                skiff_model::KUBERNETES_MINOR
            )
        );
    }

    #[test]
    fn joins_locations() {
        let t = Target {
            scheme: Scheme::Http,
            host: "127.0.0.1".into(),
            port: 8080,
            path: "/a/b?x=1".into(),
        };
        assert_eq!(t.join("/c").unwrap().path, "/c");
        assert_eq!(t.join("c").unwrap().path, "/a/c");
        let o = t.join("https://example.com/z").unwrap();
        assert_eq!(
            (o.scheme, o.host.as_str(), o.port, o.path.as_str()),
            (Scheme::Https, "example.com", 443, "/z")
        );
        let o = t.join("http://[::1]:81").unwrap();
        assert_eq!((o.host.as_str(), o.port, o.path.as_str()), ("::1", 81, "/"));
        assert_eq!(o.url(), "http://[::1]:81/");
    }
}
