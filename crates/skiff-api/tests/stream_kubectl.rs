//! `kubectl exec`, `attach`, `cp` and `port-forward` (kubectl 1.33 over WebSocket, 1.27 over
//! SPDY) against `skiff_api::http::router` on 127.0.0.1, with a fake node: exec runs the
//! command on the host with tokio::process, attach echoes stdin, port-forward dials loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStatus, Node, Pod, PodStatus,
};
use serde_json::{json, Value};
use skiff_api::node::{
    ExecOptions, LogError, LogOptions, LogStream, NodeBackend, NodeFuture, PodConnection,
    StreamError, StreamIo, TermSize,
};
use skiff_api::registry::{resource, Api, BodyFormat, WriteOptions};
use skiff_api::store::{Store, StoreConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[derive(Default)]
struct FakeNode {
    resizes: Arc<Mutex<Vec<TermSize>>>,
    execs: Mutex<Vec<ExecOptions>>,
}

impl NodeBackend for FakeNode {
    fn node_name(&self) -> &str {
        "node1"
    }
    fn node_object(&self) -> Node {
        Node::default()
    }
    fn admit(&self, _pod: &Pod, _bound: &[Pod]) -> Result<(), String> {
        Ok(())
    }
    fn logs(&self, _pod: &Pod, _o: &LogOptions) -> Result<LogStream, LogError> {
        Ok(Box::pin(futures_util::stream::iter(Vec::<
            std::io::Result<Bytes>,
        >::new())))
    }

    fn exec(
        &self,
        _pod: &Pod,
        o: ExecOptions,
        io: StreamIo,
    ) -> NodeFuture<Result<i32, StreamError>> {
        self.execs.lock().unwrap().push(o.clone());
        if o.container == "gone" {
            return Box::pin(async {
                Err(StreamError {
                    code: 400,
                    message: "container not found (\"gone\")".into(),
                })
            });
        }
        let resizes = self.resizes.clone();
        Box::pin(async move {
            let StreamIo {
                stdin,
                stdout,
                stderr,
                mut resize,
            } = io;
            let mut cmd = tokio::process::Command::new(&o.command[0]);
            cmd.args(&o.command[1..])
                .stdin(if stdin.is_some() {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true);
            let mut child = cmd.spawn().map_err(|e| StreamError {
                code: 500,
                message: e.to_string(),
            })?;
            let cin = child.stdin.take();
            let mut cout = child.stdout.take().unwrap();
            let mut cerr = child.stderr.take().unwrap();
            let feed = async move {
                if let (Some(mut r), Some(mut w)) = (stdin, cin) {
                    let _ = tokio::io::copy(&mut r, &mut w).await;
                }
            };
            let tty = o.tty;
            let mut out = stdout;
            let mut err = stderr;
            let drain = async move {
                let a = async {
                    if let Some(w) = out.as_mut() {
                        let _ = tokio::io::copy(&mut cout, w).await;
                        let _ = w.shutdown().await;
                    }
                };
                let b = async {
                    match err.as_mut() {
                        Some(w) => {
                            let _ = tokio::io::copy(&mut cerr, w).await;
                        }
                        None if tty => {
                            let _ = tokio::io::copy(&mut cerr, &mut tokio::io::sink()).await;
                        }
                        None => {
                            let _ = tokio::io::copy(&mut cerr, &mut tokio::io::sink()).await;
                        }
                    }
                };
                tokio::join!(a, b);
            };
            let sizes = async move {
                if let Some(rx) = resize.as_mut() {
                    while let Some(s) = rx.recv().await {
                        resizes.lock().unwrap().push(s);
                    }
                }
            };
            tokio::spawn(sizes);
            // stdin is copied until the process exits (a TTY's stdin never ends by itself).
            let feed = tokio::spawn(feed);
            let (_, status) = tokio::join!(drain, child.wait());
            feed.abort();
            let status = status.map_err(|e| StreamError {
                code: 500,
                message: e.to_string(),
            })?;
            use std::os::unix::process::ExitStatusExt;
            Ok(status
                .code()
                .unwrap_or_else(|| 128 + status.signal().unwrap_or(0)))
        })
    }

    fn attach(
        &self,
        _pod: &Pod,
        _o: ExecOptions,
        io: StreamIo,
    ) -> NodeFuture<Result<(), StreamError>> {
        Box::pin(async move {
            let StreamIo { stdin, stdout, .. } = io;
            if let (Some(mut r), Some(mut w)) = (stdin, stdout) {
                w.write_all(b"attached\n").await.ok();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            }
            Ok(())
        })
    }

    fn port_forward(
        &self,
        _pod: &Pod,
        port: u16,
    ) -> NodeFuture<Result<Box<dyn PodConnection>, StreamError>> {
        Box::pin(async move {
            match tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
                Ok(c) => {
                    c.set_nodelay(true).ok();
                    Ok(Box::new(c) as Box<dyn PodConnection>)
                }
                Err(e) => Err(StreamError {
                    code: 500,
                    message: format!("dial tcp 127.0.0.1:{port}: connect: {e}"),
                }),
            }
        })
    }
}

const ALL_VERSIONS: [&str; 7] = ["1.27", "1.28", "1.29", "1.30", "1.31", "1.32", "1.33"];

/// The directory of the versioned kubectl binaries.
fn kubectl_dir() -> Option<PathBuf> {
    let dirs = std::env::var_os("PATH")?;
    std::env::split_paths(&dirs)
        .map(|d| d.join("kubectl"))
        .find(|p| p.exists())
        .and_then(|p| std::fs::canonicalize(p).ok())
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .filter(|d| d.join("kubectl.1.33").exists() && d.join("kubectl.1.27").exists())
}

struct Env {
    dir: tempfile::TempDir,
    kubeconfig: PathBuf,
    runs: AtomicUsize,
    bin: PathBuf,
}

impl Env {
    fn command(&self, version: &str, args: &[&str]) -> tokio::process::Command {
        let n = self.runs.fetch_add(1, Ordering::SeqCst);
        let home = self.dir.path().join(format!("home{n}"));
        std::fs::create_dir_all(&home).unwrap();
        let mut c = tokio::process::Command::new(self.kubectl(version));
        c.env("HOME", &home)
            .env("KUBECONFIG", &self.kubeconfig)
            .arg(format!("--cache-dir={}", home.join("cache").display()))
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        c
    }

    fn kubectl(&self, version: &str) -> PathBuf {
        self.bin.join(format!("kubectl.{version}"))
    }

    async fn run(&self, version: &str, args: &[&str], stdin: &[u8]) -> (i32, Vec<u8>, String) {
        let mut c = self.command(version, args);
        c.stdin(Stdio::piped());
        let mut child = c.spawn().unwrap();
        let mut i = child.stdin.take().unwrap();
        let data = stdin.to_vec();
        let feed = tokio::spawn(async move {
            let _ = i.write_all(&data).await;
        });
        let out = tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
            .await
            .expect("kubectl timed out")
            .unwrap();
        let _ = feed.await;
        (
            out.status.code().unwrap_or(-1),
            out.stdout,
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

async fn start() -> Option<(Env, Api, Arc<Mutex<Vec<TermSize>>>)> {
    let Some(bin) = kubectl_dir() else {
        eprintln!("kubectl 1.33/1.27 binaries not found; skipping");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store"), StoreConfig::default()).unwrap();
    let node = FakeNode::default();
    let resizes = node.resizes.clone();
    let api = Api::open(store, Arc::new(node)).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = skiff_api::http::router(api.clone());
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: skiff\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: skiff\n  context:\n    cluster: skiff\n    user: u\n    namespace: default\ncurrent-context: skiff\nusers:\n- name: u\n  user:\n    token: t\n"
        ),
    )
    .unwrap();
    seed(&api).await;
    Some((
        Env {
            dir,
            kubeconfig,
            runs: AtomicUsize::new(0),
            bin,
        },
        api,
        resizes,
    ))
}

async fn create(api: &Api, plural: &str, ns: &str, obj: Value) {
    let r = resource("", plural).unwrap();
    let _ = api
        .create(
            r,
            ns,
            &serde_json::to_vec(&obj).unwrap(),
            BodyFormat::Json,
            &WriteOptions::default(),
        )
        .await;
}

fn running(name: &str) -> ContainerStatus {
    ContainerStatus {
        name: name.into(),
        image: "busybox".into(),
        image_id: String::new(),
        ready: true,
        started: Some(true),
        state: Some(ContainerState {
            running: Some(ContainerStateRunning::default()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// A running pod `web` with containers `app` and `side` (stdin), and `one` with a
/// single container.
async fn seed(api: &Api) {
    create(
        api,
        "namespaces",
        "",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}),
    )
    .await;
    for (name, containers) in [
        (
            "web",
            json!([{"name": "app", "image": "busybox"},
                   {"name": "side", "image": "busybox", "stdin": true}]),
        ),
        ("one", json!([{"name": "only", "image": "busybox"}])),
    ] {
        create(
            api,
            "pods",
            "default",
            json!({"apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": name, "namespace": "default"},
                "spec": {"nodeName": "node1", "containers": containers}}),
        )
        .await;
        let pod = api
            .get(resource("", "pods").unwrap(), "default", name)
            .unwrap();
        let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_string();
        let names: Vec<String> = pod["spec"]["containers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_string())
            .collect();
        let status = PodStatus {
            phase: Some("Running".into()),
            container_statuses: Some(names.iter().map(|n| running(n)).collect()),
            ..Default::default()
        };
        let res = api
            .set_pod_statuses(vec![("default".into(), name.into(), uid, status)])
            .await;
        assert!(res.iter().all(Result::is_ok), "{res:?}");
    }
}

async fn exec_checks(env: &Env, v: &str) {
    // stdin in, stdout and stderr out, the exit code through the Status.
    let (rc, out, err) = env
        .run(
            v,
            &[
                "exec",
                "-i",
                "web",
                "-c",
                "app",
                "--",
                "sh",
                "-c",
                "cat; echo oops >&2; exit 3",
            ],
            b"hello through stdin\n",
        )
        .await;
    assert_eq!(
        String::from_utf8_lossy(&out),
        "hello through stdin\n",
        "{v}: {err}"
    );
    assert!(err.contains("oops"), "{v}: {err}");
    assert_eq!(rc, 3, "{v}: {err}");

    // Success, no stdin, the single container chosen by the server.
    let (rc, out, err) = env.run(v, &["exec", "one", "--", "echo", "hi"], b"").await;
    assert_eq!(
        (rc, String::from_utf8_lossy(&out).as_ref()),
        (0, "hi\n"),
        "{v}: {err}"
    );

    // A bigger output than any buffer on the way.
    let (rc, out, err) = env
        .run(
            v,
            &["exec", "one", "--", "head", "-c", "3000000", "/dev/zero"],
            b"",
        )
        .await;
    assert_eq!((rc, out.len()), (0, 3_000_000), "{v}: {err}");

    // Errors before the upgrade: kube's texts.
    let (rc, _, err) = env
        .run(v, &["exec", "web", "-c", "nope", "--", "true"], b"")
        .await;
    assert_ne!(rc, 0);
    assert!(
        err.contains("container nope is not valid for pod web"),
        "{v}: {err}"
    );
    let (rc, _, err) = env
        .run(
            v,
            &["exec", "web", "-c", "app", "--", "sh", "-c", "kill -9 $$"],
            b"",
        )
        .await;
    assert_eq!(rc, 137, "{v}: {err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_websocket_and_spdy() {
    let Some((env, _api, _)) = start().await else {
        return;
    };
    for v in ["1.33", "1.27"] {
        exec_checks(&env, v).await;
    }
    // Every other installed kubectl: 1.28/1.29 speak SPDY, 1.30+ WebSocket v5.
    for v in ALL_VERSIONS {
        if !env.kubectl(v).exists() {
            continue;
        }
        let (rc, out, err) = env
            .run(
                v,
                &["exec", "-i", "one", "--", "sh", "-c", "cat; exit 5"],
                b"v\n",
            )
            .await;
        assert_eq!(
            (rc, String::from_utf8_lossy(&out).as_ref()),
            (5, "v\n"),
            "{v}: {err}"
        );
    }
}

async fn call(api: &Api, method: &str, uri: &str, upgrade: Option<&str>) -> (u16, Value) {
    use tower::ServiceExt;
    let mut b = axum::http::Request::builder().method(method).uri(uri);
    if let Some(u) = upgrade {
        b = b
            .header("connection", "Upgrade")
            .header("upgrade", u)
            .header("x-stream-protocol-version", "v4.channel.k8s.io");
    }
    let resp = skiff_api::http::router(api.clone())
        .oneshot(b.body(axum::body::Body::empty()).unwrap())
        .await
        .unwrap();
    let code = resp.status().as_u16();
    let body = axum::body::to_bytes(resp.into_body(), 1 << 20)
        .await
        .unwrap();
    (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

#[tokio::test]
async fn exec_request_errors_use_kube_texts() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store"), StoreConfig::default()).unwrap();
    let api = Api::open(store, Arc::new(FakeNode::default()))
        .await
        .unwrap();
    seed(&api).await;
    let base = "/api/v1/namespaces/default/pods";
    let cases = [
        (
            format!("{base}/web/exec?command=true&stdout=true"),
            400,
            "a container name must be specified for pod web, choose one of: [app side]",
        ),
        (
            format!("{base}/web/exec?command=true&stdout=true&container=x"),
            400,
            "container x is not valid for pod web",
        ),
        (
            format!("{base}/nope/exec?command=true&stdout=true"),
            404,
            "pods \"nope\" not found",
        ),
        (
            format!("{base}/one/exec?command=true"),
            400,
            "you must specify at least 1 of stdin, stdout, stderr",
        ),
        (
            format!("{base}/one/exec?command=true&stdout=true"),
            400,
            "Upgrade request required",
        ),
        (
            format!("{base}/one/exec?command=true&stdout=true&container=gone"),
            400,
            "container gone is not valid for pod one",
        ),
    ];
    for (uri, code, text) in cases {
        let (c, body) = call(&api, "POST", &uri, None).await;
        assert_eq!(
            (c, body["message"].as_str().unwrap_or("")),
            (code, text),
            "{uri}"
        );
        assert_eq!(body["kind"], "Status");
    }
    // The node's immediate refusal is the answer to the upgrade request itself.
    let r = resource("", "pods").unwrap();
    let _ = r;
    let (c, body) = call(&api, "POST", &format!("{base}/one/portforward"), None).await;
    assert_eq!(
        (c, body["message"].as_str().unwrap_or("")),
        (400, "Upgrade request required")
    );
    let (c, _) = call(&api, "PUT", &format!("{base}/one/exec"), None).await;
    assert_eq!(c, 405);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_tty_under_script_gets_resize() {
    let Some((env, _api, resizes)) = start().await else {
        return;
    };
    for v in ["1.33", "1.27"] {
        resizes.lock().unwrap().clear();
        let kubectl = env.kubectl(v);
        let home = env.dir.path().join(format!("tty{v}"));
        std::fs::create_dir_all(&home).unwrap();
        let inner = format!(
            "stty cols 101 rows 33; {} --cache-dir={}/cache exec -it web -c app -- sh -c 'echo in-tty; sleep 0.3'",
            kubectl.display(),
            home.display()
        );
        let out = tokio::time::timeout(
            Duration::from_secs(60),
            tokio::process::Command::new("script")
                .args(["-qec", &inner, "/dev/null"])
                .env("HOME", &home)
                .env("KUBECONFIG", &env.kubeconfig)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .output(),
        )
        .await
        .unwrap()
        .unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(text.contains("in-tty"), "{v}: {text} {:?}", out.stderr);
        let sizes = resizes.lock().unwrap().clone();
        assert!(
            sizes.contains(&TermSize {
                width: 101,
                height: 33
            }),
            "{v}: resize events {sizes:?}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_and_cp() {
    let Some((env, _api, _)) = start().await else {
        return;
    };
    let work = tempfile::tempdir().unwrap();
    for v in ["1.33", "1.27"] {
        // attach to the stdin container: the fake echoes stdin after a greeting.
        let (rc, out, err) = env
            .run(v, &["attach", "-i", "web", "-c", "side"], b"typed\n")
            .await;
        let out = String::from_utf8_lossy(&out);
        assert!(out.contains("typed"), "{v}: rc {rc} out {out:?} err {err}");

        // cp both ways: kubectl runs tar through exec (the fake runs it on this host).
        let src = work.path().join(format!("src-{v}"));
        std::fs::create_dir_all(&src).unwrap();
        let payload: Vec<u8> = (0..200_000u32).flat_map(|i| i.to_le_bytes()).collect();
        std::fs::write(src.join("data.bin"), &payload).unwrap();
        let remote = work.path().join(format!("remote-{v}"));
        std::fs::create_dir_all(&remote).unwrap();
        let to = format!("default/one:{}/copied.bin", remote.display());
        let (rc, _, err) = env
            .run(v, &["cp", src.join("data.bin").to_str().unwrap(), &to], b"")
            .await;
        assert_eq!(rc, 0, "{v} cp to pod: {err}");
        assert_eq!(
            std::fs::read(remote.join("copied.bin")).unwrap(),
            payload,
            "{v}"
        );
        let back = work.path().join(format!("back-{v}.bin"));
        let from = format!("default/one:{}/copied.bin", remote.display());
        let (rc, _, err) = env
            .run(v, &["cp", &from, back.to_str().unwrap()], b"")
            .await;
        assert_eq!(rc, 0, "{v} cp from pod: {err}");
        assert_eq!(std::fs::read(&back).unwrap(), payload, "{v}");
    }
}

/// An echo server on loopback; returns its port.
async fn echo_server() -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = s.into_split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    port
}

/// Starts `kubectl port-forward` and returns it with the local port it listens on.
async fn port_forward(env: &Env, v: &str, remote: u16) -> (tokio::process::Child, u16) {
    let mut child = env
        .command(v, &["port-forward", "pod/one", &format!(":{remote}")])
        .spawn()
        .unwrap();
    let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    use tokio::io::AsyncBufReadExt;
    tokio::time::timeout(Duration::from_secs(30), out.read_line(&mut line))
        .await
        .expect("port-forward did not start")
        .unwrap();
    // "Forwarding from 127.0.0.1:40123 -> 8080"
    let local: u16 = line
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{v}: unexpected port-forward output {line:?}"));
    // Keep draining stdout (kubectl prints one line per connection).
    tokio::spawn(async move {
        let mut sink = tokio::io::sink();
        let _ = tokio::io::copy(&mut out, &mut sink).await;
    });
    (child, local)
}

/// Sends `n` pseudo-random bytes through the echo and checks they all come back.
async fn through(local: u16, n: usize, seed: u32) {
    let s = tokio::net::TcpStream::connect(("127.0.0.1", local))
        .await
        .unwrap();
    let (mut r, mut w) = s.into_split();
    let data: Arc<Vec<u8>> = Arc::new(
        (0..n as u32)
            .map(|i| (i.wrapping_mul(2_654_435_761).wrapping_add(seed) >> 13) as u8)
            .collect(),
    );
    let d = data.clone();
    let send = tokio::spawn(async move {
        for chunk in d.chunks(64 * 1024) {
            w.write_all(chunk).await.unwrap();
        }
        w
    });
    let mut got = vec![0u8; n];
    tokio::time::timeout(Duration::from_secs(60), r.read_exact(&mut got))
        .await
        .expect("echo timed out")
        .unwrap();
    let _ = send.await.unwrap();
    assert!(got == *data, "echoed bytes differ");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_two_connections_10mb() {
    let Some((env, _api, _)) = start().await else {
        return;
    };
    let echo = echo_server().await;
    for v in ALL_VERSIONS {
        if !env.kubectl(v).exists() {
            continue;
        }
        let (mut child, local) = port_forward(&env, v, echo).await;
        let t = std::time::Instant::now();
        tokio::join!(
            through(local, 10 * 1024 * 1024, 1),
            through(local, 10 * 1024 * 1024, 2)
        );
        eprintln!("{v}: 2 × 10 MB echoed in {:?}", t.elapsed());
        child.kill().await.ok();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_to_a_closed_port_reports_the_error() {
    let Some((env, _api, _)) = start().await else {
        return;
    };
    // A port nothing listens on.
    let closed = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    for v in ["1.33", "1.27"] {
        let (mut child, local) = port_forward(&env, v, closed).await;
        let mut s = tokio::net::TcpStream::connect(("127.0.0.1", local))
            .await
            .unwrap();
        let mut buf = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(20), s.read(&mut buf))
            .await
            .expect("the forwarded connection was not closed")
            .unwrap_or(0);
        assert_eq!(n, 0, "{v}");
        tokio::time::sleep(Duration::from_millis(300)).await;
        child.kill().await.ok();
        let out = child.wait_with_output().await.unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains(&format!(
                "error forwarding port {closed} to pod one_default"
            )),
            "{v}: {err}"
        );
    }
}

/// The router on loopback over a fake node, without kubectl; returns its port.
async fn serve_api() -> (tempfile::TempDir, u16) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store"), StoreConfig::default()).unwrap();
    let api = Api::open(store, Arc::new(FakeNode::default()))
        .await
        .unwrap();
    seed(&api).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = skiff_api::http::router(api);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (dir, port)
}

/// Exec over WebSocket as kube-rs speaks it: `v4.channel.k8s.io` (no close signal: the
/// command must not wait for stdin's end) and `v5.channel.k8s.io` (`[255, 0]` ends stdin).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_websocket_v4_and_v5_channels() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let (_dir, port) = serve_api().await;
    for (proto, cmd) in [
        ("v4.channel.k8s.io", "head -n 1; echo e >&2; exit 4"),
        ("v5.channel.k8s.io", "cat; echo e >&2; exit 4"),
    ] {
        let q: String = ["sh", "-c", cmd]
            .iter()
            .map(|c| format!("command={}&", urlencode(c)))
            .collect();
        let url = format!(
            "ws://127.0.0.1:{port}/api/v1/namespaces/default/pods/one/exec?{q}stdin=true&stdout=true&stderr=true"
        );
        let mut req = url.into_client_request().unwrap();
        req.headers_mut()
            .insert("Sec-WebSocket-Protocol", proto.parse().unwrap());
        let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
        assert_eq!(resp.headers()["sec-websocket-protocol"], proto);
        ws.send(Message::Binary(Bytes::from_static(b"\x00line one\n")))
            .await
            .unwrap();
        if proto.starts_with("v5") {
            ws.send(Message::Binary(Bytes::from_static(&[255, 0])))
                .await
                .unwrap();
        }
        let (mut out, mut err, mut status) = (Vec::new(), Vec::new(), Vec::new());
        while let Some(m) = tokio::time::timeout(Duration::from_secs(20), ws.next())
            .await
            .expect("exec over WebSocket hung")
        {
            match m {
                Ok(Message::Binary(b)) if !b.is_empty() => match b[0] {
                    1 => out.extend_from_slice(&b[1..]),
                    2 => err.extend_from_slice(&b[1..]),
                    3 => status.extend_from_slice(&b[1..]),
                    c => panic!("unexpected channel {c}"),
                },
                Ok(Message::Close(_)) | Err(_) => break,
                _ => {}
            }
        }
        assert_eq!(out, b"line one\n", "{proto}");
        assert_eq!(err, b"e\n", "{proto}");
        let s: Value = serde_json::from_slice(&status).unwrap();
        assert_eq!(s["reason"], "NonZeroExitCode", "{proto}: {s}");
        assert_eq!(s["details"]["causes"][0]["message"], "4", "{proto}: {s}");
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// A client that goes away mid-exec: the node's future is dropped, so the process is killed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_kills_the_exec() {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let (_dir, port) = serve_api().await;
    let q: String = ["sh", "-c", "echo $$; exec sleep 60"]
        .iter()
        .map(|c| format!("command={}&", urlencode(c)))
        .collect();
    let url =
        format!("ws://127.0.0.1:{port}/api/v1/namespaces/default/pods/one/exec?{q}stdout=true");
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "v5.channel.k8s.io".parse().unwrap(),
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
    let mut out = Vec::new();
    while !out.ends_with(b"\n") {
        match tokio::time::timeout(Duration::from_secs(10), ws.next()).await {
            Ok(Some(Ok(Message::Binary(b)))) if b.first() == Some(&1) => {
                out.extend_from_slice(&b[1..])
            }
            Ok(Some(Ok(_))) => {}
            other => panic!("no pid: {other:?}"),
        }
    }
    let pid: u32 = String::from_utf8_lossy(&out).trim().parse().unwrap();
    let alive = |pid: u32| {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| !s.contains(") Z "))
            .unwrap_or(false)
    };
    assert!(alive(pid));
    drop(ws);
    let t = std::time::Instant::now();
    while alive(pid) {
        assert!(
            t.elapsed() < Duration::from_secs(10),
            "the exec'd process {pid} outlived its client"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A port-forward client that goes away mid-copy (plain SPDY, spoken by hand): the pod's
/// connection is closed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_disconnect_closes_the_forwarded_connection() {
    use skiff_api::http::stream::frame::{self, Encoder};
    let (_dir, port) = serve_api().await;
    // A pod-side server that reports how much it read before the connection ended.
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let target = l.local_addr().unwrap().port();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel();
    tokio::spawn(async move {
        let (mut s, _) = l.accept().await.unwrap();
        let mut total = 0usize;
        let mut buf = vec![0u8; 65536];
        while let Ok(n) = s.read(&mut buf).await {
            if n == 0 {
                break;
            }
            total += n;
        }
        let _ = done_tx.send(total);
    });
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    s.write_all(
        b"POST /api/v1/namespaces/default/pods/one/portforward HTTP/1.1\r\nHost: x\r\n\
          Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n\
          Content-Length: 0\r\n\r\n",
    )
    .await
    .unwrap();
    let mut head = Vec::new();
    while !head.ends_with(b"\r\n\r\n") {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).await.unwrap();
        head.push(b[0]);
    }
    let head = String::from_utf8_lossy(&head);
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains("x-stream-protocol-version: portforward.k8s.io"),
        "{head}"
    );
    let mut enc = Encoder::new();
    let p = target.to_string();
    for (id, t) in [(1u32, "error"), (3, "data")] {
        let f = enc.syn_stream(
            id,
            0,
            &[("streamtype", t), ("port", &p), ("requestid", "7")],
        );
        s.write_all(&f).await.unwrap();
    }
    s.write_all(&frame::data_frame(3, false, &[5u8; 100_000]))
        .await
        .unwrap();
    // Let it arrive, then vanish without FIN or GOAWAY.
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(s);
    let total = tokio::time::timeout(Duration::from_secs(10), done_rx)
        .await
        .expect("the pod's connection was left open")
        .unwrap();
    assert_eq!(total, 100_000);
}
