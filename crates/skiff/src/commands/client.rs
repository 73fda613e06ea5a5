//! `skiff get` and `skiff logs` against a running `skiff serve` (issue 11 item 7): a small
//! HTTP/1 client over the daemon's unix socket (`<data_dir>/serve/api.sock`, whose mode is the
//! authentication: no token). The commands feed what it returns to their own printing code.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;

/// A JSON answer larger than this is refused (a PodList of thousands of pods is far less).
const MAX_JSON: usize = 256 * 1024 * 1024;
/// A request (other than a followed log) must complete within this.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// What went wrong talking to the daemon.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The daemon's Status answer; printed as kubectl prints it.
    #[error("Error from server ({reason}): {message}")]
    Status {
        code: u16,
        reason: String,
        message: String,
    },
    #[error("talking to skiff serve at {socket}: {what}")]
    Transport { socket: PathBuf, what: String },
}

/// The daemon of a data dir, found answering on its socket.
pub struct DaemonClient {
    /// The socket as shown in messages.
    socket: PathBuf,
    /// The path connected to: the socket's, or (for a path longer than a unix socket address
    /// holds) the same through `/proc/self/fd/N` of the serve dir held open in `_dir`.
    connect_path: PathBuf,
    _dir: Option<std::fs::File>,
    rt: tokio::runtime::Runtime,
}

/// The longest path a unix socket address holds (sun_path less its NUL).
const SUN_PATH_MAX: usize = 107;

impl DaemonClient {
    /// `Ok(None)` when no daemon runs on `data_dir` (no socket, or nobody listens: a stale
    /// one). A socket the caller may not open is an error (a daemon runs, but not for them).
    pub fn connect(data_dir: &Path) -> Result<Option<Self>, ClientError> {
        let socket = skiff_api::transport::socket_path(data_dir);
        let (connect_path, dir) = if socket.as_os_str().len() <= SUN_PATH_MAX {
            (socket.clone(), None)
        } else {
            use std::os::fd::AsRawFd;
            let serve_dir = data_dir.join(skiff_api::transport::SERVE_DIR);
            match std::fs::File::open(&serve_dir) {
                Ok(d) => (
                    PathBuf::from(format!(
                        "/proc/self/fd/{}/{}",
                        d.as_raw_fd(),
                        skiff_api::transport::SOCKET
                    )),
                    Some(d),
                ),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
                Err(e) => {
                    return Err(ClientError::Transport {
                        socket,
                        what: e.to_string(),
                    })
                }
            }
        };
        match std::os::unix::net::UnixStream::connect(&connect_path) {
            Ok(_) => {}
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused
                ) =>
            {
                return Ok(None)
            }
            Err(e) => {
                return Err(ClientError::Transport {
                    socket,
                    what: format!("{e} (the socket of a daemon of another user?)"),
                })
            }
        }
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| ClientError::Transport {
                socket: socket.clone(),
                what: format!("starting the client: {e}"),
            })?;
        Ok(Some(Self {
            socket,
            connect_path,
            _dir: dir,
            rt,
        }))
    }

    fn transport(&self, what: impl std::fmt::Display) -> ClientError {
        ClientError::Transport {
            socket: self.socket.clone(),
            what: what.to_string(),
        }
    }

    /// Sends `GET path` on a fresh connection; the response with its status checked (a
    /// non-2xx answer becomes [`ClientError::Status`]).
    async fn send(
        &self,
        path: &str,
    ) -> Result<hyper::Response<hyper::body::Incoming>, ClientError> {
        let stream = tokio::net::UnixStream::connect(&self.connect_path)
            .await
            .map_err(|e| self.transport(e))?;
        let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| self.transport(e))?;
        tokio::spawn(conn);
        let req = Request::get(path)
            .header(hyper::header::HOST, "skiff")
            .header(hyper::header::ACCEPT, "application/json, */*")
            .header(
                hyper::header::USER_AGENT,
                concat!("skiff/", env!("CARGO_PKG_VERSION")),
            )
            .body(Empty::<Bytes>::new())
            .map_err(|e| self.transport(e))?;
        let resp = sender
            .send_request(req)
            .await
            .map_err(|e| self.transport(e))?;
        if resp.status().is_success() {
            return Ok(resp);
        }
        let status = resp.status();
        let body = Limited::new(resp.into_body(), 1024 * 1024)
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        Err(status_error(status, &body))
    }

    /// `GET path`, decoded from JSON.
    pub fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.rt.block_on(async {
            let fut = async {
                let resp = self.send(path).await?;
                let body = Limited::new(resp.into_body(), MAX_JSON)
                    .collect()
                    .await
                    .map_err(|e| self.transport(format!("reading the answer to {path}: {e}")))?
                    .to_bytes();
                serde_json::from_slice(&body)
                    .map_err(|e| self.transport(format!("decoding the answer to {path}: {e}")))
            };
            tokio::time::timeout(REQUEST_TIMEOUT, fut)
                .await
                .map_err(|_| {
                    self.transport(format!("no answer to {path} within {REQUEST_TIMEOUT:?}"))
                })?
        })
    }

    /// `GET path`, its body copied to `out` as it arrives (a followed log never ends on its
    /// own). Flushed after every chunk. A broken pipe on `out` ends the copy quietly.
    pub fn stream(&self, path: &str, out: &mut dyn Write) -> Result<(), ClientError> {
        self.rt.block_on(async {
            let resp = tokio::time::timeout(REQUEST_TIMEOUT, self.send(path))
                .await
                .map_err(|_| {
                    self.transport(format!("no answer to {path} within {REQUEST_TIMEOUT:?}"))
                })??;
            let mut body = resp.into_body();
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| self.transport(format!("reading {path}: {e}")))?;
                if let Some(data) = frame.data_ref() {
                    match out.write_all(data).and_then(|()| out.flush()) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return Ok(()),
                        Err(e) => return Err(self.transport(format!("writing the output: {e}"))),
                    }
                }
            }
            Ok(())
        })
    }
}

/// A non-2xx answer: its Status (kube's `{"kind":"Status",…}`) or the bare HTTP status.
fn status_error(status: StatusCode, body: &[u8]) -> ClientError {
    #[derive(serde::Deserialize)]
    struct Status {
        #[serde(default)]
        reason: String,
        #[serde(default)]
        message: String,
    }
    match serde_json::from_slice::<Status>(body) {
        Ok(s) if !s.message.is_empty() => ClientError::Status {
            code: status.as_u16(),
            reason: if s.reason.is_empty() {
                status
                    .canonical_reason()
                    .unwrap_or("Unknown")
                    .replace(' ', "")
            } else {
                s.reason
            },
            message: s.message,
        },
        _ => ClientError::Status {
            code: status.as_u16(),
            reason: status
                .canonical_reason()
                .unwrap_or("Unknown")
                .replace(' ', ""),
            message: String::from_utf8_lossy(&body[..body.len().min(1024)])
                .trim()
                .to_string(),
        },
    }
}

/// Percent-encodes a path segment or query value (everything but RFC 3986's unreserved
/// characters), so a name from the command line can never change the request's shape.
pub fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_keeps_names_and_escapes_the_rest() {
        assert_eq!(encode("web-1.a_b~"), "web-1.a_b~");
        assert_eq!(encode("a/b?c=d&e"), "a%2Fb%3Fc%3Dd%26e");
        assert_eq!(
            encode("2024-01-01T00:00:00+01:00"),
            "2024-01-01T00%3A00%3A00%2B01%3A00"
        );
    }

    #[test]
    fn status_errors_read_like_kubectl() {
        let e = status_error(
            StatusCode::NOT_FOUND,
            br#"{"kind":"Status","status":"Failure","reason":"NotFound","message":"pods \"x\" not found","code":404}"#,
        );
        assert_eq!(
            e.to_string(),
            "Error from server (NotFound): pods \"x\" not found"
        );
        let e = status_error(StatusCode::BAD_GATEWAY, b"oops");
        assert_eq!(e.to_string(), "Error from server (BadGateway): oops");
    }

    #[test]
    fn no_daemon_is_none() {
        let t = tempfile::tempdir().unwrap();
        assert!(DaemonClient::connect(t.path()).unwrap().is_none());
        // A stale socket nobody listens on.
        std::fs::create_dir(t.path().join("serve")).unwrap();
        let l = std::os::unix::net::UnixListener::bind(t.path().join("serve/api.sock")).unwrap();
        drop(l);
        assert!(DaemonClient::connect(t.path()).unwrap().is_none());
    }
}
