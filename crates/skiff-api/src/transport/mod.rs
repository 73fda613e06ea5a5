//! How clients reach `skiff serve` (issue 11 items 1 and 7): a unix socket that its file mode
//! guards, and — only when asked — TCP with TLS and a bearer token.
//!
//! The daemon does, in this order:
//! ```text
//! let cfg = ServeConfig::new(data_dir, listen);
//! let lock = DaemonLock::acquire(&cfg.data_dir)?;     // one daemon per data dir
//! let creds = Credentials::load_or_create(&cfg)?;     // CA, serving cert, token (0600 files)
//! let listeners = Listeners::bind(&cfg, &creds, &lock).await?; // socket, TCP, endpoint.json
//! listeners.serve(router, shutdown).await?;          // until `shutdown` resolves
//! ```
//! Everything lives in `<data_dir>/serve/` (mode 0700): `api.sock` (0600; no token needed, the
//! socket's permissions are the authentication), `endpoint.json` (where TCP clients connect),
//! `ca.crt`/`ca.key`, `server.crt`/`server.key`, `token`, `certs.json` (all 0600).

mod creds;
mod files;
mod lock;
mod server;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub use creds::{read_client_credentials, serving_names, Credentials};
pub use lock::{DaemonLock, LOCK_FILE};
pub use server::{serve, Listeners, Peer};

/// The daemon's private directory under the data dir.
pub const SERVE_DIR: &str = "serve";
/// The unix socket's name in [`SERVE_DIR`].
pub const SOCKET: &str = "api.sock";
/// Where the daemon says it listens, in [`SERVE_DIR`].
pub const ENDPOINT: &str = "endpoint.json";

/// The unix socket of the daemon of `data_dir`.
pub fn socket_path(data_dir: &Path) -> PathBuf {
    data_dir.join(SERVE_DIR).join(SOCKET)
}

/// Why the transport could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("{what} {path}: {source}")]
    Io {
        path: PathBuf,
        what: String,
        #[source]
        source: std::io::Error,
    },
    /// A file or directory that could have been planted or read by others.
    #[error("refusing {path}: it {why}")]
    Insecure { path: PathBuf, why: String },
    #[error("another skiff serve runs on this data dir{} (it holds {path})", pid.map(|p| format!(" (pid {p})")).unwrap_or_default())]
    Locked { path: PathBuf, pid: Option<u32> },
    #[error("credentials: {0}")]
    Credentials(String),
    #[error("listening on {addr}: {source}")]
    Listen {
        addr: String,
        #[source]
        source: std::io::Error,
    },
}

/// Bounds on what clients may hold (issue 11 "Bad input and security").
#[derive(Clone, Debug)]
pub struct Limits {
    /// Connections held at once per listener (socket, TCP); beyond it new connections wait in
    /// the kernel's backlog. Default: from the descriptor limit, at most 4096 (room for 1000
    /// watches from as many kubectl processes).
    pub max_connections: usize,
    /// A TLS handshake must end within this.
    pub tls_handshake_timeout: Duration,
    /// A request's headers must arrive within this (HTTP/1; slowloris).
    pub header_read_timeout: Duration,
    /// The largest request header block (HTTP/1 read buffer, HTTP/2 header list).
    pub max_header_bytes: usize,
    /// Concurrent streams per HTTP/2 connection (kube-rs and client-go multiplex watches).
    pub max_concurrent_streams: u32,
    /// HTTP/2 keep-alive ping interval (a dead peer's streams are dropped).
    pub keep_alive_interval: Duration,
    /// After shutdown, how long open requests (watches, log follows) get to end.
    pub shutdown_grace: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        let soft = rustix::process::getrlimit(rustix::process::Resource::Nofile)
            .current
            .unwrap_or(u64::MAX);
        // Half the descriptors (after a reserve for the store, pods and logs) per listener.
        let max_connections = usize::try_from(soft.saturating_sub(256) / 2)
            .unwrap_or(usize::MAX)
            .clamp(32, 4096);
        Self {
            max_connections,
            tls_handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(30),
            max_header_bytes: 64 * 1024,
            max_concurrent_streams: 1000,
            keep_alive_interval: Duration::from_secs(30),
            shutdown_grace: Duration::from_secs(2),
        }
    }
}

/// What `skiff serve` was asked to listen on.
#[derive(Clone, Debug)]
pub struct ServeConfig {
    pub data_dir: PathBuf,
    /// TCP (TLS) address; `None`: the unix socket only. Port 0 picks a free port (written to
    /// `endpoint.json`).
    pub listen: Option<SocketAddr>,
    pub limits: Limits,
}

impl ServeConfig {
    pub fn new(data_dir: PathBuf, listen: Option<SocketAddr>) -> Self {
        Self {
            data_dir,
            listen,
            limits: Limits::default(),
        }
    }
}

/// `<data_dir>/serve/endpoint.json`: where the daemon that last ran on the data dir listens.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Endpoint {
    /// The daemon's pid.
    pub pid: u32,
    /// The unix socket.
    pub socket: PathBuf,
    /// The TCP address bound (the actual port when 0 was asked), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub address: Option<SocketAddr>,
    /// The URL clients use (`https://127.0.0.1:PORT` when bound to every address).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
}

impl Endpoint {
    /// The endpoint file of `data_dir`, if a daemon ever wrote one.
    pub fn read(data_dir: &Path) -> Result<Option<Self>, TransportError> {
        let dir = match files::SecureDir::open(data_dir, false) {
            Ok(d) => d,
            Err(TransportError::Io { source, .. })
                if source.kind() == std::io::ErrorKind::NotFound =>
            {
                return Ok(None)
            }
            Err(e) => return Err(e),
        };
        let Some(b) = dir.read(ENDPOINT)? else {
            return Ok(None);
        };
        serde_json::from_slice(&b)
            .map(Some)
            .map_err(|e| TransportError::Insecure {
                path: dir.file_path(ENDPOINT),
                why: format!("is not an endpoint file: {e}"),
            })
    }

    /// The `https://` URL for a bound TCP address: loopback for a wildcard bind.
    pub fn url_for(addr: SocketAddr) -> String {
        let ip = match addr.ip() {
            std::net::IpAddr::V4(ip) if ip.is_unspecified() => {
                std::net::IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)
            }
            std::net::IpAddr::V6(ip) if ip.is_unspecified() => {
                std::net::IpAddr::V6(std::net::Ipv6Addr::LOCALHOST)
            }
            ip => ip,
        };
        format!("https://{}", SocketAddr::new(ip, addr.port()))
    }
}

/// A kubeconfig (YAML) for the daemon's TCP endpoint: cluster, user and context `skiff`. The
/// strings are JSON-quoted, which YAML reads as double-quoted scalars.
pub fn kubeconfig(server: &str, ca_pem: &str, token: &str) -> String {
    use base64::Engine;
    let q = |s: &str| serde_json::Value::String(s.to_string()).to_string();
    let ca = base64::engine::general_purpose::STANDARD.encode(ca_pem.as_bytes());
    format!(
        "apiVersion: v1\n\
         kind: Config\n\
         clusters:\n\
         - name: skiff\n  cluster:\n    server: {server}\n    certificate-authority-data: {ca}\n\
         users:\n\
         - name: skiff\n  user:\n    token: {token}\n\
         contexts:\n\
         - name: skiff\n  context:\n    cluster: skiff\n    user: skiff\n\
         current-context: skiff\n\
         preferences: {{}}\n",
        server = q(server),
        ca = q(&ca),
        token = q(token),
    )
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn url_for_wildcards_and_v6() {
        assert_eq!(
            Endpoint::url_for("0.0.0.0:6443".parse().unwrap()),
            "https://127.0.0.1:6443"
        );
        assert_eq!(
            Endpoint::url_for("[::]:6443".parse().unwrap()),
            "https://[::1]:6443"
        );
        assert_eq!(
            Endpoint::url_for("10.0.0.1:1".parse().unwrap()),
            "https://10.0.0.1:1"
        );
    }

    #[test]
    fn kubeconfig_shape() {
        let k = kubeconfig("https://127.0.0.1:1", "PEM", "tok");
        assert!(k.contains("    server: \"https://127.0.0.1:1\"\n"), "{k}");
        assert!(k.contains("certificate-authority-data: \"UEVN\"\n"), "{k}");
        assert!(k.contains("    token: \"tok\"\n"), "{k}");
        assert!(k.contains("current-context: skiff\n"), "{k}");
    }
}
