//! How clients reach `skiff serve` (issue 11 items 1 and 7): the transport of skiff-api
//! serving a tiny router in this process (`/version`, a fake pods API), and the real binary's
//! `skiff kubeconfig`, `skiff get pods`, `skiff logs` against it; real kubectl binaries and
//! curl over TLS with the generated CA and token.

#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::io::{Read, Write};
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{Path as UrlPath, RawQuery};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Extension, Router};
use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use serde_json::{json, Value};
use skiff_api::transport::{
    Credentials, DaemonLock, Endpoint, Limits, Listeners, Peer, ServeConfig, TransportError,
};

fn pod_json(ns: &str, name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": ns, "uid": "u-1",
                     "creationTimestamp": "2024-01-01T00:00:00Z", "resourceVersion": "7"},
        "spec": {"containers": [{"name": "app", "image": "busybox"}, {"name": "side", "image": "busybox"}],
                 "nodeName": "node1"},
        "status": {"phase": "Running", "podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}],
                   "conditions": [{"type": "Initialized", "status": "True"}, {"type": "Ready", "status": "True"}],
                   "containerStatuses": [
                       {"name": "app", "ready": true, "started": true, "restartCount": 0, "image": "busybox", "imageID": "",
                        "containerID": "skiff://a", "state": {"running": {"startedAt": "2024-01-01T00:00:01Z"}}},
                       {"name": "side", "ready": true, "started": true, "restartCount": 0, "image": "busybox", "imageID": "",
                        "containerID": "skiff://b", "state": {"running": {"startedAt": "2024-01-01T00:00:01Z"}}}]}
    })
}

fn not_found(name: &str) -> axum::response::Response {
    (
        hyper::StatusCode::NOT_FOUND,
        [("content-type", "application/json")],
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
               "message": format!("pods \"{name}\" not found"), "reason": "NotFound",
               "details": {"name": name, "kind": "pods"}, "code": 404})
        .to_string(),
    )
        .into_response()
}

/// The fake API: `/version` (what the kubectl dispatcher needs), pods `web` in `default` and
/// `dns` in `kube-system`, a log endpoint echoing its query, `/peer` naming the transport.
fn router() -> Router {
    let list = |items: Vec<Value>| {
        axum::Json(
            json!({"apiVersion": "v1", "kind": "PodList", "metadata": {"resourceVersion": "9"}, "items": items}),
        )
    };
    Router::new()
        .route(
            "/version",
            get(|| async {
                axum::Json(json!({"major": "1", "minor": "33", "gitVersion": "v1.33.0-skiff",
                    "gitCommit": "", "gitTreeState": "", "buildDate": "2024-01-01T00:00:00Z",
                    "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"}))
            }),
        )
        .route(
            "/watch",
            get(|| async {
                // One event, then a stream that never ends (as an idle watch).
                let first = futures_util::stream::once(async {
                    Ok::<_, std::io::Error>(Bytes::from_static(b"{\"type\":\"ADDED\"}\n"))
                });
                axum::body::Body::from_stream(
                    futures_util::StreamExt::chain(first, futures_util::stream::pending()),
                )
            }),
        )
        .route(
            "/peer",
            get(|Extension(p): Extension<Peer>| async move { format!("{p:?}") }),
        )
        .route(
            "/api/v1/pods",
            get(move || async move {
                list(vec![pod_json("default", "web"), pod_json("kube-system", "dns")])
            }),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods",
            get(move |UrlPath(ns): UrlPath<String>| async move {
                list(match ns.as_str() {
                    "default" => vec![pod_json("default", "web")],
                    "kube-system" => vec![pod_json("kube-system", "dns")],
                    _ => vec![],
                })
            }),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}",
            get(
                |UrlPath((ns, name)): UrlPath<(String, String)>| async move {
                    if ns == "default" && name == "web" {
                        axum::Json(pod_json(&ns, &name)).into_response()
                    } else {
                        not_found(&name)
                    }
                },
            ),
        )
        .route(
            "/api/v1/namespaces/{ns}/pods/{name}/log",
            get(
                |UrlPath((_ns, name)): UrlPath<(String, String)>, RawQuery(q): RawQuery| async move {
                    if name != "web" {
                        return not_found(&name);
                    }
                    format!("line one\nquery {}\n", q.unwrap_or_default()).into_response()
                },
            ),
        )
}

/// A daemon's transport running in this process on its own runtime thread; stopped on drop.
struct Daemon {
    data_dir: PathBuf,
    endpoint: Endpoint,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<Result<(), TransportError>>>,
}

impl Daemon {
    fn start(data_dir: &Path, listen: Option<&str>) -> Self {
        Self::start_with(data_dir, listen, Limits::default())
    }

    fn start_with(data_dir: &Path, listen: Option<&str>, limits: Limits) -> Self {
        let mut cfg = ServeConfig::new(data_dir.to_path_buf(), listen.map(|l| l.parse().unwrap()));
        cfg.limits = limits;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let (ep_tx, ep_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let lock = DaemonLock::acquire(&cfg.data_dir)?;
                let creds = Credentials::load_or_create(&cfg)?;
                let l = Listeners::bind(&cfg, creds, &lock).await?;
                ep_tx.send(l.endpoint().clone()).unwrap();
                l.serve(router(), async {
                    let _ = stop_rx.await;
                })
                .await
            })
        });
        let endpoint = match ep_rx.recv_timeout(Duration::from_secs(30)) {
            Ok(e) => e,
            Err(_) => panic!("daemon did not start: {:?}", thread.join()),
        };
        Daemon {
            data_dir: data_dir.to_path_buf(),
            endpoint,
            stop: Some(stop_tx),
            thread: Some(thread),
        }
    }

    fn addr(&self) -> std::net::SocketAddr {
        self.endpoint.address.unwrap()
    }

    fn serve_file(&self, name: &str) -> PathBuf {
        self.data_dir.join("serve").join(name)
    }

    fn token(&self) -> String {
        std::fs::read_to_string(self.serve_file("token"))
            .unwrap()
            .trim()
            .to_string()
    }

    fn stop(mut self) -> Result<(), TransportError> {
        let _ = self.stop.take().unwrap().send(());
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::symlink_metadata(p).unwrap().permissions().mode() & 0o7777
}

/// One HTTPS GET with a rustls client trusting only `ca_pem`; (status, body, ALPN protocol).
fn tls_get(
    addr: std::net::SocketAddr,
    ca_pem: &[u8],
    token: Option<&str>,
    path: &str,
) -> Result<(u16, String), String> {
    use rustls::pki_types::pem::PemObject;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from_pem_slice(ca_pem).unwrap())
            .unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let cfg = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
        let tcp = tokio::net::TcpStream::connect(addr)
            .await
            .map_err(|e| e.to_string())?;
        let name = rustls::pki_types::ServerName::IpAddress(addr.ip().into());
        let tls = connector
            .connect(name, tcp)
            .await
            .map_err(|e| format!("TLS: {e}"))?;
        let (mut send, conn) =
            hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                .await
                .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let mut req = hyper::Request::get(path).header("host", addr.to_string());
        if let Some(t) = token {
            req = req.header("authorization", format!("Bearer {t}"));
        }
        let resp = send
            .send_request(req.body(Empty::<Bytes>::new()).unwrap())
            .await
            .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let body = resp.into_body().collect().await.unwrap().to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    })
}

fn skiff(args: &[&str]) -> common::Outcome {
    common::finish(common::spawn(args), Duration::from_secs(60))
}

/// The directory of the installed kubectl binaries (`kubectl` is a link into it).
fn kubectl_dir() -> Option<PathBuf> {
    let k = std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join("kubectl"))
        .find(|p| p.exists())?;
    Some(std::fs::canonicalize(k).ok()?.parent()?.to_path_buf())
}

/// `kubectl ARGS` with its own HOME and cache dir under `dir`.
fn kubectl(bin: &Path, dir: &Path, args: &[&str]) -> (i32, String, String) {
    let home = dir.join(format!(
        "home-{}",
        bin.file_name().unwrap().to_string_lossy()
    ));
    std::fs::create_dir_all(&home).unwrap();
    let cache = home.join("cache");
    let out = Command::new(bin)
        .args(args)
        .arg(format!("--cache-dir={}", cache.display()))
        .env("HOME", &home)
        .env_remove("KUBECONFIG")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn socket_and_files_are_private() {
    let t = common::TestDir::new("serve-files");
    let data = t.file("data");
    let d = Daemon::start(&data, None);
    let sock = d.serve_file("api.sock");
    let meta = std::fs::symlink_metadata(&sock).unwrap();
    assert!(meta.file_type().is_socket());
    assert_eq!(mode(&sock), 0o600);
    assert_eq!(mode(&data.join("serve")), 0o700);
    for f in [
        "ca.crt",
        "ca.key",
        "server.crt",
        "server.key",
        "token",
        "endpoint.json",
    ] {
        let p = d.serve_file(f);
        assert!(std::fs::symlink_metadata(&p).unwrap().is_file(), "{f}");
        assert_eq!(mode(&p), 0o600, "{f}");
    }
    assert_eq!(mode(&data.join("serve.lock")), 0o600);
    // The token: 32 random bytes, base64url.
    let token = d.token();
    assert_eq!(token.len(), 43, "{token}");
    assert!(token
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    // Unix socket only: no TCP address, and nothing to build a kubeconfig from.
    assert_eq!(d.endpoint.address, None);
    assert_eq!(d.endpoint.socket, sock);
    let o = skiff(&["kubeconfig", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(o.code, Some(1), "{o:?}");
    assert!(o.stderr.contains("--listen"), "{}", o.stderr);
    // Requests over the socket need no token.
    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    s.write_all(b"GET /peer HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.starts_with("HTTP/1.1 200"), "{resp}");
    assert!(resp.ends_with("Unix"), "{resp}");
    // A second daemon on the data dir is refused, naming this one.
    match DaemonLock::acquire(&data) {
        Err(e @ TransportError::Locked { .. }) => {
            assert!(
                e.to_string()
                    .contains(&format!("(pid {})", std::process::id())),
                "{e}"
            )
        }
        other => panic!("{other:?}"),
    }
    d.stop().unwrap();
    // Stopped: the socket is gone, the lock free.
    assert!(!sock.exists());
    drop(DaemonLock::acquire(&data).unwrap());
}

#[test]
fn socket_never_seen_with_a_wider_mode() {
    let t = common::TestDir::new("serve-window");
    let data = t.file("data");
    let sock = data.join("serve").join("api.sock");
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watcher = {
        let (done, sock) = (done.clone(), sock.clone());
        std::thread::spawn(move || {
            let (mut seen, mut wrong) = (0u64, Vec::new());
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Ok(m) = std::fs::symlink_metadata(&sock) {
                    seen += 1;
                    if m.permissions().mode() & 0o7777 != 0o600 {
                        wrong.push(m.permissions().mode());
                    }
                }
            }
            (seen, wrong)
        })
    };
    for _ in 0..15 {
        let d = Daemon::start(&data, None);
        d.stop().unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (seen, wrong) = watcher.join().unwrap();
    assert!(seen > 0, "the watcher never saw the socket");
    assert!(wrong.is_empty(), "modes seen: {wrong:?}");
}

#[test]
fn tls_and_bearer_token() {
    let t = common::TestDir::new("serve-tls");
    let data = t.file("data");
    let d = Daemon::start(&data, Some("127.0.0.1:0"));
    let addr = d.addr();
    assert_ne!(addr.port(), 0);
    assert_eq!(
        d.endpoint.server.as_deref(),
        Some(format!("https://{addr}").as_str())
    );
    let ca = std::fs::read(d.serve_file("ca.crt")).unwrap();
    let token = d.token();
    let unauthorized = r#"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Unauthorized","reason":"Unauthorized","code":401}"#;
    assert_eq!(
        tls_get(addr, &ca, None, "/api").unwrap(),
        (401, unauthorized.to_string())
    );
    // What kube serves anonymous clients (system:public-info-viewer) needs no token...
    assert_eq!(tls_get(addr, &ca, None, "/version").unwrap().0, 200);
    // ...but a wrong one is refused there too.
    assert_eq!(
        tls_get(addr, &ca, Some("wrong-token-wrong-token"), "/version").unwrap(),
        (401, unauthorized.to_string())
    );
    let (code, body) = tls_get(addr, &ca, Some(&token), "/version").unwrap();
    assert_eq!(code, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["minor"], "33");
    let peer = tls_get(addr, &ca, Some(&token), "/peer").unwrap().1;
    assert!(peer.starts_with("Tcp(127.0.0.1:"), "{peer}");
    // Another data dir's CA does not verify this server.
    let other = t.file("other");
    let o = Daemon::start(&other, None);
    let other_ca = std::fs::read(o.serve_file("ca.crt")).unwrap();
    let e = tls_get(addr, &other_ca, Some(&token), "/version").unwrap_err();
    assert!(e.contains("TLS"), "{e}");
    // Plain HTTP on the TLS port gets nothing served.
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    s.write_all(b"GET /version HTTP/1.1\r\nhost: x\r\n\r\n")
        .unwrap();
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    assert!(!String::from_utf8_lossy(&buf).contains("minor"));

    // curl, if installed: verifies with --cacert, HTTP/2 by ALPN.
    if Path::new("/usr/bin/curl").exists() {
        let ca_path = d.serve_file("ca.crt");
        let curl = |extra: &[&str]| {
            let out = Command::new("curl")
                .args(["-sS", "--max-time", "20", "--cacert"])
                .arg(&ca_path)
                .args(["-w", "\n%{http_code} %{http_version}"])
                .args(extra)
                .arg(format!("https://{addr}/version"))
                .output()
                .unwrap();
            String::from_utf8_lossy(&out.stdout).into_owned()
        };
        let out = curl(&["-H", &format!("Authorization: Bearer {token}")]);
        assert!(out.ends_with("\n200 2"), "{out}");
        assert!(out.contains("\"minor\":\"33\""), "{out}");
        let out = curl(&["--http1.1", "-H", &format!("Authorization: Bearer {token}")]);
        assert!(out.ends_with("\n200 1.1"), "{out}");
        let out = curl(&["-H", "Authorization: Bearer nope-nope-nope-nope"]);
        assert!(out.ends_with("\n401 2"), "{out}");
        assert!(out.starts_with(unauthorized), "{out}");
        // By name too: localhost is in the certificate.
        let out = Command::new("curl")
            .args(["-sS", "--max-time", "20", "--cacert"])
            .arg(&ca_path)
            .args(["-H", &format!("Authorization: Bearer {token}")])
            .arg(format!("https://localhost:{}/version", addr.port()))
            .output()
            .unwrap();
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("\"minor\""),
            "{out:?}"
        );
    }
    drop(o);
    d.stop().unwrap();
}

#[test]
fn kubeconfig_works_with_kubectl() {
    let t = common::TestDir::new("serve-kubeconfig");
    let data = t.file("data");
    // No daemon ever ran: exit 1 and a clear message.
    let o = skiff(&["kubeconfig", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(o.code, Some(1), "{o:?}");
    assert!(
        o.stderr.contains("no skiff serve has run on"),
        "{}",
        o.stderr
    );
    assert!(o.stdout.is_empty());

    let d = Daemon::start(&data, Some("127.0.0.1:0"));
    let o = skiff(&["kubeconfig", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(o.code, Some(0), "{o:?}");
    assert!(o.stderr.is_empty(), "{}", o.stderr);
    let kc: Value = serde_yaml_ng::from_str(&o.stdout).unwrap();
    assert_eq!(
        kc["clusters"][0]["cluster"]["server"],
        format!("https://{}", d.addr())
    );
    assert_eq!(kc["users"][0]["user"]["token"], d.token().as_str());
    assert_eq!(kc["current-context"], "skiff");
    let kubeconfig = t.file("kubeconfig");
    std::fs::write(&kubeconfig, &o.stdout).unwrap();
    let kc_arg = format!("--kubeconfig={}", kubeconfig.display());

    let Some(dir) = kubectl_dir() else {
        eprintln!("kubectl not installed: skipping the kubectl part");
        return;
    };
    let mut ran = 0;
    for v in [
        "kubectl.1.33",
        "kubectl.1.32",
        "kubectl.1.31",
        "kubectl.1.30",
        "kubectl.1.29",
        "kubectl.1.28",
        "kubectl.1.27",
        "kubectl",
    ] {
        let bin = dir.join(v);
        if !bin.exists() {
            continue;
        }
        ran += 1;
        let (code, out, err) = kubectl(&bin, t.path(), &[&kc_arg, "version", "-o", "json"]);
        assert_eq!(code, 0, "{v}: {out}\n{err}");
        let vj: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(vj["serverVersion"]["gitVersion"], "v1.33.0-skiff", "{v}");
        // The dispatcher picked kubectl 1.33 from the server's minor.
        if v == "kubectl" {
            assert_eq!(
                vj["clientVersion"]["minor"], "33",
                "the dispatcher ran another kubectl: {out}"
            );
        }
    }
    assert!(ran > 0, "no kubectl binary found in {}", dir.display());
    // A wrong token: kubectl says so (client-go words a 401 on /version as it does against
    // kube-apiserver: "the server has asked for the client to provide credentials").
    let bad = t.file("bad-kubeconfig");
    std::fs::write(&bad, o.stdout.replace(&d.token(), "not-the-token-at-all")).unwrap();
    let bin = dir.join("kubectl.1.33");
    if bin.exists() {
        let (code, out, err) = kubectl(
            &bin,
            &t.file("bad"),
            &[&format!("--kubeconfig={}", bad.display()), "version"],
        );
        assert_ne!(code, 0, "{out}\n{err}");
        assert!(err.contains("You must be logged in to the server"), "{err}");
    }
    // After the daemon stops, the kubeconfig still prints (a warning says it is not running).
    d.stop().unwrap();
    let o = skiff(&["kubeconfig", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(o.code, Some(0), "{o:?}");
    assert!(o.stderr.contains("no skiff serve runs on"), "{}", o.stderr);
}

#[test]
fn get_and_logs_read_from_the_daemon() {
    let t = common::TestDir::new("serve-get");
    let data = t.file("data");
    let dd = data.to_str().unwrap();
    // No daemon: today's behaviour (reads skiff run's pods; none here).
    let o = skiff(&["get", "pods", "--data-dir", dd]);
    assert_eq!(o.code, Some(0), "{o:?}");
    assert_eq!(o.stderr, "No resources found in default namespace.\n");

    let d = Daemon::start(&data, None);
    let o = skiff(&["get", "pods", "--data-dir", dd]);
    assert_eq!(o.code, Some(0), "{o:?}");
    let lines: Vec<&str> = o.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", o.stdout);
    assert!(
        lines[0].starts_with("NAME   READY   STATUS    RESTARTS   AGE"),
        "{}",
        o.stdout
    );
    let cells: Vec<&str> = lines[1].split_whitespace().collect();
    assert_eq!(&cells[..4], &["web", "2/2", "Running", "0"], "{}", o.stdout);
    let o = skiff(&["get", "pods", "-A", "-o", "wide", "--data-dir", dd]);
    assert_eq!(o.code, Some(0), "{o:?}");
    assert!(o.stdout.starts_with("NAMESPACE"), "{}", o.stdout);
    assert!(o.stdout.contains("kube-system"), "{}", o.stdout);
    assert!(o.stdout.contains("10.0.0.5"), "{}", o.stdout);
    assert!(o.stdout.contains("node1"), "{}", o.stdout);
    let o = skiff(&["get", "pod", "web", "-o", "json", "--data-dir", dd]);
    assert_eq!(o.code, Some(0), "{o:?}");
    let p: Value = serde_json::from_str(&o.stdout).unwrap();
    assert_eq!(p["metadata"]["resourceVersion"], "7");
    let o = skiff(&["get", "pods", "nope", "--data-dir", dd]);
    assert_eq!(o.code, Some(1), "{o:?}");
    assert_eq!(
        o.stderr,
        "Error from server (NotFound): pods \"nope\" not found\n"
    );
    let o = skiff(&["get", "pods", "-n", "empty", "--data-dir", dd]);
    assert_eq!(o.stderr, "No resources found in empty namespace.\n");

    // logs: the container chosen as kubectl does, the options sent as kubectl sends them.
    let o = skiff(&["logs", "web", "--data-dir", dd]);
    assert_eq!(o.code, Some(0), "{o:?}");
    assert_eq!(o.stdout, "line one\nquery container=app\n");
    assert_eq!(o.stderr, "Defaulted container \"app\" out of: app, side\n");
    let o = skiff(&[
        "logs",
        "pod/web",
        "-c",
        "side",
        "--tail=3",
        "--timestamps",
        "--since=90s",
        "--limit-bytes=100",
        "--prefix",
        "--data-dir",
        dd,
    ]);
    assert_eq!(o.code, Some(0), "{o:?}");
    assert_eq!(
        o.stdout,
        "[pod/web/side] line one\n[pod/web/side] query container=side&timestamps=true&tailLines=3&sinceSeconds=90&limitBytes=100\n"
    );
    let o = skiff(&[
        "logs",
        "web",
        "--all-containers",
        "-f",
        "--since-time=2024-01-01T00:00:00+01:00",
        "--data-dir",
        dd,
    ]);
    assert_eq!(o.code, Some(0), "{o:?}");
    let mut lines: Vec<&str> = o.stdout.lines().collect();
    lines.sort();
    assert_eq!(
        lines,
        vec![
            "line one",
            "line one",
            "query container=app&follow=true&sinceTime=2023-12-31T23%3A00%3A00Z",
            "query container=side&follow=true&sinceTime=2023-12-31T23%3A00%3A00Z",
        ],
        "{}",
        o.stdout
    );
    let o = skiff(&["logs", "nope", "--data-dir", dd]);
    assert_eq!(o.code, Some(1), "{o:?}");
    assert_eq!(
        o.stderr,
        "Error from server (NotFound): pods \"nope\" not found\n"
    );
    let o = skiff(&["logs", "web", "-c", "zzz", "--data-dir", dd]);
    assert_eq!(o.code, Some(1), "{o:?}");
    assert!(
        o.stderr
            .contains("container zzz is not valid for pod web out of: app, side"),
        "{}",
        o.stderr
    );
    // The daemon gone: back to the data dir's own pods.
    d.stop().unwrap();
    let o = skiff(&["get", "pods", "--data-dir", dd]);
    assert_eq!(o.stderr, "No resources found in default namespace.\n");
}

#[test]
fn children_inherit_no_listener_or_key() {
    let t = common::TestDir::new("serve-cloexec");
    let data = t.file("data");
    let d = Daemon::start(&data, Some("127.0.0.1:0"));
    // Connections open on both listeners while the child starts.
    let _tcp = std::net::TcpStream::connect(d.addr()).unwrap();
    let _unix = std::os::unix::net::UnixStream::connect(d.serve_file("api.sock")).unwrap();
    let out = Command::new("sh")
        .arg("-c")
        .arg("for f in /proc/self/fd/*; do readlink \"$f\"; done")
        .output()
        .unwrap();
    let fds = String::from_utf8_lossy(&out.stdout).into_owned();
    let data_s = data.to_string_lossy().into_owned();
    // The std streams plus the shell's own; no socket, nothing of the data dir (the test's
    // own connections are CLOEXEC too: std opens everything so).
    for l in fds.lines() {
        assert!(
            !l.starts_with("socket:") && !l.contains(&data_s),
            "inherited: {l}\n{fds}"
        );
    }
    d.stop().unwrap();
}

#[test]
fn idle_connections_are_bounded() {
    let t = common::TestDir::new("serve-bounds");
    let data = t.file("data");
    let limits = Limits {
        max_connections: 4,
        tls_handshake_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let d = Daemon::start_with(&data, Some("127.0.0.1:0"), limits);
    let ca = std::fs::read(d.serve_file("ca.crt")).unwrap();
    let token = d.token();
    // Eight connections that never start TLS: they hold every slot, then time out.
    let idle: Vec<std::net::TcpStream> = (0..8)
        .map(|_| std::net::TcpStream::connect(d.addr()).unwrap())
        .collect();
    let start = Instant::now();
    let (code, _) = tls_get(d.addr(), &ca, Some(&token), "/version").unwrap();
    assert_eq!(code, 200);
    // Served once the handshake timeouts freed slots (twice 1 s for 8 idle in 4 slots), not
    // never; and not at once.
    let waited = start.elapsed();
    assert!(waited >= Duration::from_millis(900), "{waited:?}");
    assert!(waited < Duration::from_secs(10), "{waited:?}");
    for mut s in idle {
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let mut b = [0u8; 1];
        // Closed by the daemon (EOF or reset), not left hanging.
        assert!(matches!(s.read(&mut b), Ok(0) | Err(_)));
    }
    d.stop().unwrap();
}

#[test]
fn planted_symlink_at_the_token_path_is_refused() {
    let t = common::TestDir::new("serve-symlink");
    let data = t.file("data");
    let serve = data.join("serve");
    std::fs::create_dir_all(&serve).unwrap();
    std::fs::set_permissions(&serve, std::fs::Permissions::from_mode(0o700)).unwrap();
    let target = t.file("victim");
    std::fs::write(&target, "do-not-read-or-overwrite-this").unwrap();
    std::os::unix::fs::symlink(&target, serve.join("token")).unwrap();
    let e = Credentials::load_or_create(&ServeConfig::new(data.clone(), None)).unwrap_err();
    assert!(matches!(e, TransportError::Insecure { .. }), "{e:?}");
    assert!(e.to_string().contains("symlink"), "{e}");
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "do-not-read-or-overwrite-this"
    );
    // kubeconfig refuses it too.
    let o = skiff(&["kubeconfig", "--data-dir", data.to_str().unwrap()]);
    assert_eq!(o.code, Some(1), "{o:?}");
    // A serve dir others may enter is refused.
    std::fs::remove_file(serve.join("token")).unwrap();
    std::fs::set_permissions(&serve, std::fs::Permissions::from_mode(0o755)).unwrap();
    let e = Credentials::load_or_create(&ServeConfig::new(data, None)).unwrap_err();
    assert!(e.to_string().contains("0755"), "{e}");
}

#[test]
fn a_thousand_watches_and_a_stop() {
    let t = common::TestDir::new("serve-watches");
    let data = t.file("data");
    // Both ends of 1000 connections live in this process: make room (soft limit up to the
    // hard one), as a daemon on a machine with a low default would have to.
    use rustix::process::{getrlimit, setrlimit, Resource};
    let mut lim = getrlimit(Resource::Nofile);
    if lim.current.is_some_and(|c| c < 4096) {
        lim.current = lim.maximum;
        setrlimit(Resource::Nofile, lim).unwrap();
    }
    let limits = Limits {
        max_connections: 1100,
        ..Limits::default()
    };
    let d = Daemon::start_with(&data, None, limits);
    let sock = d.serve_file("api.sock");
    let mut watches = Vec::new();
    for i in 0..1000 {
        let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(b"GET /watch HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        watches.push(s);
        // Read each answer's head and first event as they come (every 100 connections).
        if i % 100 == 99 {
            for s in &mut watches[i - 99..=i] {
                let mut got = Vec::new();
                let mut b = [0u8; 512];
                while !String::from_utf8_lossy(&got).contains("ADDED") {
                    let n = s.read(&mut b).unwrap();
                    assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
                    got.extend_from_slice(&b[..n]);
                }
                assert!(got.starts_with(b"HTTP/1.1 200"));
            }
        }
    }
    // Others are still served.
    let mut s = std::os::unix::net::UnixStream::connect(&sock).unwrap();
    s.write_all(b"GET /version HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    assert!(resp.contains("\"minor\":\"33\""), "{resp}");
    // A stop ends the watches within the grace (2 s), not never.
    let start = Instant::now();
    d.stop().unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    let mut b = [0u8; 64];
    let mut w = watches.pop().unwrap();
    assert!(matches!(w.read(&mut b), Ok(0) | Err(_)));
}

#[test]
fn slow_tls_clients_are_cut_off() {
    use rustls::pki_types::pem::PemObject;
    let t = common::TestDir::new("serve-slow");
    let data = t.file("data");
    let limits = Limits {
        header_read_timeout: Duration::from_secs(1),
        ..Limits::default()
    };
    let d = Daemon::start_with(&data, Some("127.0.0.1:0"), limits);
    let ca = std::fs::read(d.serve_file("ca.crt")).unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(rustls::pki_types::CertificateDer::from_pem_slice(&ca).unwrap())
            .unwrap();
        let mut cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
        cfg.alpn_protocols = vec![b"http/1.1".to_vec()];
        let connector = tokio_rustls::TlsConnector::from(Arc::new(cfg));
        for partial in [&b""[..], b"GET /version HTTP/1.1\r\nhost: x\r\n"] {
            let tcp = tokio::net::TcpStream::connect(d.addr()).await.unwrap();
            let name = rustls::pki_types::ServerName::IpAddress(d.addr().ip().into());
            let mut tls = connector.connect(name, tcp).await.unwrap();
            tls.write_all(partial).await.unwrap();
            tls.flush().await.unwrap();
            let start = Instant::now();
            let mut b = Vec::new();
            let r = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut b)).await;
            assert!(r.is_ok(), "not closed within 10 s");
            assert!(!String::from_utf8_lossy(&b).contains("minor"));
            let took = start.elapsed();
            assert!(
                took >= Duration::from_millis(800) && took < Duration::from_secs(5),
                "{took:?}"
            );
        }
        // HTTP/2 by ALPN, then silence: closed too.
        let mut cfg2 = (**connector.config()).clone();
        cfg2.alpn_protocols = vec![b"h2".to_vec()];
        let h2 = tokio_rustls::TlsConnector::from(Arc::new(cfg2));
        let tcp = tokio::net::TcpStream::connect(d.addr()).await.unwrap();
        let name = rustls::pki_types::ServerName::IpAddress(d.addr().ip().into());
        let mut tls = h2.connect(name, tcp).await.unwrap();
        assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
        let start = Instant::now();
        let mut b = Vec::new();
        let r = tokio::time::timeout(Duration::from_secs(10), tls.read_to_end(&mut b)).await;
        assert!(
            r.is_ok(),
            "an idle HTTP/2 connection was not closed within 10 s"
        );
        assert!(
            start.elapsed() < Duration::from_secs(5),
            "{:?}",
            start.elapsed()
        );
        // Requests without the token, one after another on one connection: the connection is
        // closed once the header timeout has passed without an authenticated request.
        let tcp = tokio::net::TcpStream::connect(d.addr()).await.unwrap();
        let name = rustls::pki_types::ServerName::IpAddress(d.addr().ip().into());
        let mut tls = connector.connect(name, tcp).await.unwrap();
        let start = Instant::now();
        let mut answered = 0;
        loop {
            let sent = tls.write_all(b"GET /api HTTP/1.1\r\nhost: x\r\n\r\n").await;
            let mut b = [0u8; 1024];
            match tokio::time::timeout(Duration::from_secs(5), tls.read(&mut b)).await {
                Ok(Ok(n)) if n > 0 && sent.is_ok() => {
                    assert!(b.starts_with(b"HTTP/1.1 401"));
                    answered += 1;
                }
                _ => break,
            }
            assert!(start.elapsed() < Duration::from_secs(8), "never closed");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        assert!(answered >= 2, "{answered}");
        // A watch (a request in flight, its answer streaming) outlives the header timeout.
        let tcp = tokio::net::TcpStream::connect(d.addr()).await.unwrap();
        let name = rustls::pki_types::ServerName::IpAddress(d.addr().ip().into());
        let mut tls = connector.connect(name, tcp).await.unwrap();
        let req = format!(
            "GET /watch HTTP/1.1\r\nhost: x\r\nauthorization: Bearer {}\r\n\r\n",
            d.token()
        );
        tls.write_all(req.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let mut b = [0u8; 512];
        while !String::from_utf8_lossy(&got).contains("ADDED") {
            let n = tls.read(&mut b).await.unwrap();
            assert!(n > 0, "{}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&b[..n]);
        }
        let r = tokio::time::timeout(Duration::from_millis(2500), tls.read(&mut b)).await;
        assert!(r.is_err(), "the watch ended: {r:?}");
    });
    d.stop().unwrap();
}

#[test]
fn wildcard_listen_serves_every_host_address() {
    let t = common::TestDir::new("serve-wildcard");
    let data = t.file("data");
    let d = Daemon::start(&data, Some("0.0.0.0:0"));
    let port = d.addr().port();
    assert_eq!(
        d.endpoint.server.as_deref(),
        Some(format!("https://127.0.0.1:{port}").as_str())
    );
    let ca = std::fs::read(d.serve_file("ca.crt")).unwrap();
    let meta: Value =
        serde_json::from_slice(&std::fs::read(d.serve_file("certs.json")).unwrap()).unwrap();
    let ips: Vec<std::net::Ipv4Addr> = meta["serverNames"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|n| n.as_str()?.parse().ok())
        .collect();
    assert!(ips.contains(&std::net::Ipv4Addr::LOCALHOST), "{meta}");
    // Every address of the host verifies against the CA.
    for ip in ips {
        let addr = std::net::SocketAddr::new(ip.into(), port);
        let (code, body) = tls_get(addr, &ca, Some(&d.token()), "/version").unwrap();
        assert_eq!(code, 200, "{addr}: {body}");
    }
    d.stop().unwrap();
}

#[test]
fn long_data_dir_restart_on_the_same_port_and_a_taken_port() {
    let t = common::TestDir::new("serve-long");
    // A socket path longer than a unix socket address holds (108 bytes).
    let data = t.file(&"d".repeat(120));
    let dd = data.to_str().unwrap();
    assert!(data.join("serve/api.sock").as_os_str().len() > 108);
    let d = Daemon::start(&data, Some("127.0.0.1:0"));
    let addr = d.addr();
    assert_eq!(mode(&d.serve_file("api.sock")), 0o600);
    let o = skiff(&["get", "pods", "--data-dir", dd]);
    assert_eq!(o.code, Some(0), "{o:?}");
    assert!(o.stdout.contains("web "), "{}", o.stdout);
    let ca = std::fs::read(d.serve_file("ca.crt")).unwrap();
    assert_eq!(
        tls_get(addr, &ca, Some(&d.token()), "/version").unwrap().0,
        200
    );
    let token = d.token();
    d.stop().unwrap();
    // Restarted on the same port at once (the closed connections' TIME_WAIT does not stop
    // it), with the same CA and token.
    let d = Daemon::start(&data, Some(&addr.to_string()));
    assert_eq!(d.addr(), addr);
    assert_eq!(d.token(), token);
    assert_eq!(tls_get(addr, &ca, Some(&token), "/version").unwrap().0, 200);

    // A taken port: the start fails naming it, before any socket is made.
    let other = t.file("other");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let cfg = ServeConfig::new(other.clone(), Some(addr));
    let e = rt
        .block_on(async {
            let lock = DaemonLock::acquire(&other)?;
            let creds = Credentials::load_or_create(&cfg)?;
            Listeners::bind(&cfg, creds, &lock).await.map(|_| ())
        })
        .unwrap_err();
    assert!(
        e.to_string().contains(&format!("listening on {addr}")),
        "{e}"
    );
    assert!(!other.join("serve/api.sock").exists());
    d.stop().unwrap();
}
