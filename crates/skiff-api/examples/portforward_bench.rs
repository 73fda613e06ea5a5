//! Port-forward throughput and exec round trip against `skiff_api::http::router` on loopback,
//! with a fake node (port-forward dials loopback servers; exec runs the command on the host).
//!
//! `cargo run --release -p skiff-api --example portforward_bench [MB]`
//!
//! Measures: the server alone (an in-process SPDY client: upload to a sink and download from
//! a source through one forwarded connection), then kubectl 1.33 (SPDY in WebSocket) and 1.27
//! (SPDY) port-forward, and `kubectl exec POD -- true` round trips, when those binaries are on
//! PATH.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::Instant;

use bytes::BytesMut;
use k8s_openapi::api::core::v1::{Node, Pod, PodStatus};
use serde_json::json;
use skiff_api::http::stream::frame::{self, Decoder, Encoder, Frame};
use skiff_api::node::{
    ExecOptions, LogError, LogOptions, LogStream, NodeBackend, NodeFuture, PodConnection,
    StreamError, StreamIo,
};
use skiff_api::registry::{resource, Api, BodyFormat, WriteOptions};
use skiff_api::store::{Store, StoreConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct BenchNode;

impl NodeBackend for BenchNode {
    fn node_name(&self) -> &str {
        "node1"
    }
    fn node_object(&self) -> Node {
        Node::default()
    }
    fn admit(&self, _: &Pod, _: &[Pod]) -> Result<(), String> {
        Ok(())
    }
    fn logs(&self, _: &Pod, _: &LogOptions) -> Result<LogStream, LogError> {
        Err(LogError {
            code: 404,
            message: "no logs".into(),
        })
    }
    fn exec(&self, _: &Pod, o: ExecOptions, io: StreamIo) -> NodeFuture<Result<i32, StreamError>> {
        Box::pin(async move {
            let status = tokio::process::Command::new(&o.command[0])
                .args(&o.command[1..])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .status()
                .await
                .map_err(|e| StreamError {
                    code: 500,
                    message: e.to_string(),
                })?;
            drop(io);
            Ok(status.code().unwrap_or(128))
        })
    }
    fn port_forward(
        &self,
        _: &Pod,
        port: u16,
    ) -> NodeFuture<Result<Box<dyn PodConnection>, StreamError>> {
        Box::pin(async move {
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .map(|c| Box::new(c) as Box<dyn PodConnection>)
                .map_err(|e| StreamError {
                    code: 500,
                    message: e.to_string(),
                })
        })
    }
}

/// A server that reads everything and answers with the byte count when the client closes
/// its side; with `source`, it instead writes that many bytes and closes.
async fn server(source: Option<usize>) -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                match source {
                    Some(n) => {
                        let chunk = vec![7u8; 256 * 1024];
                        let mut left = n;
                        while left > 0 {
                            let k = left.min(chunk.len());
                            if s.write_all(&chunk[..k]).await.is_err() {
                                return;
                            }
                            left -= k;
                        }
                    }
                    None => {
                        let mut buf = vec![0u8; 256 * 1024];
                        let mut total = 0u64;
                        while let Ok(n) = s.read(&mut buf).await {
                            if n == 0 {
                                break;
                            }
                            total += n as u64;
                        }
                        let _ = s.write_all(&total.to_be_bytes()).await;
                    }
                }
            });
        }
    });
    port
}

/// Opens a raw SPDY port-forward session (the HTTP upgrade by hand).
async fn spdy_session(api_port: u16) -> (tokio::net::TcpStream, BytesMut) {
    let mut s = tokio::net::TcpStream::connect(("127.0.0.1", api_port))
        .await
        .unwrap();
    s.set_nodelay(true).ok();
    s.write_all(
        b"POST /api/v1/namespaces/default/pods/one/portforward HTTP/1.1\r\nHost: x\r\n\
          Connection: Upgrade\r\nUpgrade: SPDY/3.1\r\nX-Stream-Protocol-Version: portforward.k8s.io\r\n\
          Content-Length: 0\r\n\r\n",
    )
    .await
    .unwrap();
    let mut buf = BytesMut::new();
    loop {
        s.read_buf(&mut buf).await.unwrap();
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            assert!(
                buf.starts_with(b"HTTP/1.1 101"),
                "{:?}",
                String::from_utf8_lossy(&buf)
            );
            let _ = buf.split_to(i + 4);
            return (s, buf);
        }
    }
}

/// Through the server alone: one forwarded connection, `mb` MiB up (to a sink), then `mb` MiB
/// down (from a source).
async fn raw_spdy(api_port: u16, mb: usize) {
    let bytes = mb << 20;
    for (label, port, up) in [
        ("upload  ", server(None).await, true),
        ("download", server(Some(bytes)).await, false),
    ] {
        let (mut s, mut buf) = spdy_session(api_port).await;
        let mut enc = Encoder::new();
        let p = port.to_string();
        for (id, t) in [(1u32, "error"), (3, "data")] {
            let f = enc.syn_stream(
                id,
                0,
                &[("streamtype", t), ("port", &p), ("requestid", "0")],
            );
            s.write_all(&f).await.unwrap();
        }
        let (mut r, mut w) = s.into_split();
        let t = Instant::now();
        let writer = tokio::spawn(async move {
            if up {
                let chunk = vec![1u8; 256 * 1024];
                let head = frame::data_header(3, false, chunk.len());
                let mut left = bytes;
                while left > 0 {
                    w.write_all(&head).await.unwrap();
                    w.write_all(&chunk).await.unwrap();
                    left -= chunk.len();
                }
            }
            w.write_all(&frame::data_frame(3, true, b"")).await.unwrap();
            w
        });
        let mut dec = Decoder::new();
        let mut got = 0usize;
        'read: loop {
            while let Some(f) = dec.decode(&mut buf).unwrap() {
                if let Frame::Data {
                    stream_id: 3,
                    data,
                    fin,
                } = f
                {
                    got += data.len();
                    if fin {
                        break 'read;
                    }
                }
            }
            buf.reserve(256 * 1024);
            if r.read_buf(&mut buf).await.unwrap() == 0 {
                break;
            }
        }
        let _w = writer.await.unwrap();
        let secs = t.elapsed().as_secs_f64();
        if up {
            assert_eq!(got, 8, "the sink's byte count");
        } else {
            assert_eq!(got, bytes);
        }
        println!(
            "server alone, SPDY {label}: {mb} MiB in {secs:.3} s = {:.0} MB/s",
            bytes as f64 / secs / 1e6
        );
    }
}

/// `exec one -- true` over WebSocket v5 from an in-process client: the server's and the fake
/// node's share of a round trip (upgrade, process start, status, close).
async fn ws_exec_round_trip(api_port: u16) {
    use futures_util::StreamExt;
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::Message;
    let mut times = Vec::new();
    for _ in 0..21 {
        let t = Instant::now();
        let url = format!(
            "ws://127.0.0.1:{api_port}/api/v1/namespaces/default/pods/one/exec?command=true&stdout=true&stderr=true"
        );
        let mut req = url.into_client_request().unwrap();
        req.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            "v5.channel.k8s.io".parse().unwrap(),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let mut ok = false;
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Binary(b) = m {
                if b.first() == Some(&3) {
                    ok = b.windows(7).any(|w| w == b"Success");
                }
            }
        }
        let _ = ws.close(None).await;
        assert!(ok);
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "in-process WebSocket exec one -- true: median {:?} (min {:?}, max {:?}, 21 runs)",
        times[10], times[0], times[20]
    );
}

fn kubectl_dir() -> Option<PathBuf> {
    let dirs = std::env::var_os("PATH")?;
    std::env::split_paths(&dirs)
        .map(|d| d.join("kubectl"))
        .find(|p| p.exists())
        .and_then(|p| std::fs::canonicalize(p).ok())
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .filter(|d| d.join("kubectl.1.33").exists())
}

async fn kubectl_port_forward(bin: &Path, home: &Path, kubeconfig: &Path, v: &str, mb: usize) {
    use tokio::io::AsyncBufReadExt;
    let sink = server(None).await;
    let mut child = tokio::process::Command::new(bin.join(format!("kubectl.{v}")))
        .env("HOME", home)
        .env("KUBECONFIG", kubeconfig)
        .args(["port-forward", "pod/one", &format!(":{sink}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut out = tokio::io::BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).await.unwrap();
    let local: u16 = line
        .split("127.0.0.1:")
        .nth(1)
        .and_then(|s| s.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap();
    tokio::spawn(async move {
        let _ = tokio::io::copy(&mut out, &mut tokio::io::sink()).await;
    });
    let s = tokio::net::TcpStream::connect(("127.0.0.1", local))
        .await
        .unwrap();
    let (mut r, mut w) = s.into_split();
    let bytes = mb << 20;
    let t = Instant::now();
    let chunk = vec![3u8; 256 * 1024];
    let mut left = bytes;
    while left > 0 {
        w.write_all(&chunk).await.unwrap();
        left -= chunk.len();
    }
    w.shutdown().await.unwrap();
    let mut count = [0u8; 8];
    r.read_exact(&mut count).await.unwrap();
    let secs = t.elapsed().as_secs_f64();
    assert_eq!(u64::from_be_bytes(count), bytes as u64);
    println!(
        "kubectl {v} port-forward upload: {mb} MiB in {secs:.3} s = {:.0} MB/s",
        bytes as f64 / secs / 1e6
    );
    child.kill().await.ok();
}

async fn kubectl_exec(bin: &Path, home: &Path, kubeconfig: &Path, v: &str, args: &[&str]) {
    let run = || {
        tokio::process::Command::new(bin.join(format!("kubectl.{v}")))
            .env("HOME", home)
            .env("KUBECONFIG", kubeconfig)
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
    };
    assert!(run().await.unwrap().success(), "warm-up");
    let mut times = Vec::new();
    for _ in 0..10 {
        let t = Instant::now();
        assert!(run().await.unwrap().success());
        times.push(t.elapsed());
    }
    times.sort();
    println!(
        "kubectl {v} {}: median {:?} (min {:?}, max {:?}, 10 runs, warm discovery cache)",
        args.join(" "),
        times[5],
        times[0],
        times[9]
    );
}

#[tokio::main]
async fn main() {
    let mb: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(512);
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store"), StoreConfig::default()).unwrap();
    let api = Api::open(store, Arc::new(BenchNode)).await.unwrap();
    let pods = resource("", "pods").unwrap();
    for (plural, ns, obj) in [
        (
            "namespaces",
            "",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}}),
        ),
        (
            "pods",
            "default",
            json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "one"},
                "spec": {"nodeName": "node1", "containers": [{"name": "c", "image": "busybox"}]}}),
        ),
    ] {
        let _ = api
            .create(
                resource("", plural).unwrap(),
                ns,
                &serde_json::to_vec(&obj).unwrap(),
                BodyFormat::Json,
                &WriteOptions::default(),
            )
            .await;
    }
    let uid = api.get(pods, "default", "one").unwrap()["metadata"]["uid"]
        .as_str()
        .unwrap_or("")
        .to_string();
    let status = PodStatus {
        phase: Some("Running".into()),
        ..Default::default()
    };
    let _ = api
        .set_pod_statuses(vec![("default".into(), "one".into(), uid, status)])
        .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let app = skiff_api::http::router(api.clone());
    // TCP_NODELAY as the daemon's listener sets it (transport/server.rs): without it Nagle
    // and delayed ACKs add ~40 ms to a SPDY exec's last frames.
    use axum::serve::ListenerExt;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });

    raw_spdy(port, mb).await;
    ws_exec_round_trip(port).await;

    let Some(bin) = kubectl_dir() else {
        println!("kubectl binaries not found: skipping the kubectl figures");
        return;
    };
    let home = dir.path().join("home");
    std::fs::create_dir_all(&home).unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: s\n  cluster:\n    server: http://127.0.0.1:{port}\ncontexts:\n- name: s\n  context:\n    cluster: s\n    user: u\n    namespace: default\ncurrent-context: s\nusers:\n- name: u\n  user:\n    token: t\n"
        ),
    )
    .unwrap();
    for v in ["1.33", "1.27"] {
        kubectl_port_forward(&bin, &home, &kubeconfig, v, mb.min(1024)).await;
    }
    for v in ["1.33", "1.27"] {
        kubectl_exec(&bin, &home, &kubeconfig, v, &["exec", "one", "--", "true"]).await;
        // The same kubectl's start-up and pod GET without the exec, for comparison.
        kubectl_exec(
            &bin,
            &home,
            &kubeconfig,
            v,
            &["get", "pod", "one", "-o", "name"],
        )
        .await;
    }
}
