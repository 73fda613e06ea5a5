//! Issue 7 item 4: everything a probe or hook reads from the pod is bounded. Each test plays
//! the attacker on loopback (or as the probe command) and asserts the probe ends with a bounded
//! result, in bounded time, with this process's peak RSS small.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::{ExecAction, GRPCAction, HTTPGetAction, LifecycleHandler, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use skiff_node::probe::{HookRunner, HostProber, ProbeOutcome, Prober};
use skiff_node::runtime::ExecContext;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const MIB: u64 = 1024 * 1024;

fn ctx() -> ExecContext {
    ExecContext {
        container_id: "bounds".into(),
        container_name: "app".into(),
        env: vec![("PATH".into(), "/usr/bin:/bin".into())],
        working_dir: "/".into(),
        ports: Vec::new(),
        host: "127.0.0.1".into(),
        netns: None,
        setup: Default::default(),
        mounts: Vec::new(),
        group: None,
    }
}

/// This process's peak resident set (VmHWM), in bytes. The tests in this binary together
/// must stay far below what the attacks would cost unbounded (gigabytes).
/// Runs `probe` once against the hostile server, timed.
async fn run_probe(probe: &Probe) -> (skiff_node::probe::ProbeResult, Duration) {
    let t = Instant::now();
    let r = HostProber::new().unwrap().probe(probe, &ctx()).await;
    (r, t.elapsed())
}

fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).unwrap();
    let kb: u64 = line.split_whitespace().nth(1).unwrap().parse().unwrap();
    kb * 1024
}

fn assert_small_rss() {
    let peak = peak_rss();
    assert!(peak < 200 * MIB, "peak RSS {} MiB", peak / MIB);
}

// ---------------------------------------------------------------- gRPC

/// What the hostile gRPC server sends after the response headers.
#[derive(Clone, Copy)]
enum GrpcAttack {
    /// A message prefix claiming 4 GiB - 1, then zeros forever.
    HugeMessage,
    /// Valid 7-byte SERVING messages, forever.
    EndlessMessages,
    /// A message exactly one byte over 4 MiB, sent in full.
    OneOverMax,
    /// A valid SERVING reply of exactly 4 MiB (padded with an unknown field), then trailers.
    ExactlyMax,
    /// A 100-byte message's prefix, then one byte per 100 ms, never the trailers.
    Trickle,
}

/// An endless (or long) response body; counts what it hands to hyper.
struct Hostile {
    attack: GrpcAttack,
    sent: Arc<AtomicU64>,
    started: bool,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl hyper::body::Body for Hostile {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let serving = Bytes::from_static(&[0, 0, 0, 0, 2, 0x08, 1]);
        let chunk = match (self.attack, self.started) {
            (GrpcAttack::HugeMessage, false) => Bytes::from_static(&[0, 0xff, 0xff, 0xff, 0xff]),
            (GrpcAttack::HugeMessage, true) => Bytes::from(vec![0u8; 64 * 1024]),
            (GrpcAttack::EndlessMessages, _) => serving.repeat(1024).into(),
            (GrpcAttack::OneOverMax, false) => {
                let len = (4 * 1024 * 1024 + 1) as u32;
                let mut v = vec![0u8];
                v.extend_from_slice(&len.to_be_bytes());
                Bytes::from(v)
            }
            (GrpcAttack::ExactlyMax, false) => {
                let pad = 4 * 1024 * 1024 - 3 - 4;
                let mut v = vec![0u8];
                v.extend_from_slice(&(4 * 1024 * 1024u32).to_be_bytes());
                v.extend_from_slice(&[0x08, 1, 0x12]);
                let mut l = pad as u32;
                while l >= 0x80 {
                    v.push((l as u8) | 0x80);
                    l >>= 7;
                }
                v.push(l as u8);
                v.resize(5 + 4 * 1024 * 1024, 0);
                Bytes::from(v)
            }
            (GrpcAttack::ExactlyMax, true) => {
                let mut t = hyper::HeaderMap::new();
                if self.sent.load(Ordering::Relaxed) == u64::MAX {
                    return Poll::Ready(None);
                }
                self.sent.store(u64::MAX, Ordering::Relaxed);
                t.insert("grpc-status", "0".parse().unwrap());
                return Poll::Ready(Some(Ok(Frame::trailers(t))));
            }
            (GrpcAttack::OneOverMax, true) => {
                if self.sent.load(Ordering::Relaxed) > 4 * MIB + 6 {
                    return Poll::Ready(None);
                }
                Bytes::from(vec![0u8; 64 * 1024])
            }
            (GrpcAttack::Trickle, false) => Bytes::from_static(&[0, 0, 0, 0, 100]),
            (GrpcAttack::Trickle, true) => {
                let sleep = self.sleep.get_or_insert_with(|| {
                    Box::pin(tokio::time::sleep(Duration::from_millis(100)))
                });
                if sleep.as_mut().poll(cx).is_pending() {
                    return Poll::Pending;
                }
                self.sleep = None;
                Bytes::from_static(&[0])
            }
        };
        self.started = true;
        self.sent.fetch_add(chunk.len() as u64, Ordering::Relaxed);
        Poll::Ready(Some(Ok(Frame::data(chunk))))
    }
}

use std::future::Future;

async fn hostile_grpc_server(attack: GrpcAttack) -> (u16, Arc<AtomicU64>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let sent = counter.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_req: Request<Incoming>| {
                    let sent = sent.clone();
                    async move {
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("content-type", "application/grpc")
                                .body(Hostile {
                                    attack,
                                    sent,
                                    started: false,
                                    sleep: None,
                                })
                                .unwrap(),
                        )
                    }
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    (port, sent)
}

fn grpc_probe(port: u16, timeout: i32) -> Probe {
    Probe {
        grpc: Some(GRPCAction {
            port: port.into(),
            service: None,
            ..Default::default()
        }),
        timeout_seconds: Some(timeout),
        ..Default::default()
    }
}

#[tokio::test]
async fn issue7_item4_grpc_reply_bigger_than_4mib_is_refused_at_its_prefix() {
    let (port, sent) = hostile_grpc_server(GrpcAttack::HugeMessage).await;
    let (r, elapsed) = run_probe(&grpc_probe(port, 5)).await;
    assert_eq!(r.outcome, ProbeOutcome::Failure);
    assert_eq!(
        r.output,
        "rpc error: code = ResourceExhausted desc = grpc: received message larger than max (4294967295 vs. 4194304)"
    );
    assert!(elapsed < Duration::from_secs(2), "{:?}", elapsed);
    // The server could push no more than our flow-control window.
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        sent.load(Ordering::Relaxed) < 8 * MIB,
        "{}",
        sent.load(Ordering::Relaxed)
    );
    assert_small_rss();
}

#[tokio::test]
async fn issue7_item4_grpc_one_byte_over_the_limit_is_refused() {
    let (port, _) = hostile_grpc_server(GrpcAttack::OneOverMax).await;
    let (r, _) = run_probe(&grpc_probe(port, 5)).await;
    assert_eq!(r.outcome, ProbeOutcome::Failure);
    assert!(
        r.output
            .contains("received message larger than max (4194305 vs. 4194304)"),
        "{}",
        r.output
    );
}

#[tokio::test]
async fn issue7_item4_grpc_reply_of_exactly_4mib_is_read() {
    let (port, _) = hostile_grpc_server(GrpcAttack::ExactlyMax).await;
    let (r, _) = run_probe(&grpc_probe(port, 5)).await;
    assert_eq!(r.outcome, ProbeOutcome::Success, "{}", r.output);
}

#[tokio::test]
async fn issue7_item4_grpc_endless_stream_of_messages_is_a_cardinality_violation() {
    let (port, sent) = hostile_grpc_server(GrpcAttack::EndlessMessages).await;
    let (r, elapsed) = run_probe(&grpc_probe(port, 5)).await;
    assert_eq!(r.outcome, ProbeOutcome::Failure);
    assert!(r.output.contains("cardinality violation"), "{}", r.output);
    assert!(elapsed < Duration::from_secs(2), "{:?}", elapsed);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(sent.load(Ordering::Relaxed) < 8 * MIB);
    assert_small_rss();
}

#[tokio::test]
async fn issue7_item4_grpc_trickling_reply_ends_at_the_probe_timeout() {
    let (port, _) = hostile_grpc_server(GrpcAttack::Trickle).await;
    let (r, elapsed) = run_probe(&grpc_probe(port, 1)).await;
    assert_eq!(
        (r.outcome, r.output.as_str()),
        (
            ProbeOutcome::Failure,
            "timeout: health rpc did not complete within 1s"
        )
    );
    assert!(elapsed < Duration::from_millis(1500), "{:?}", elapsed);
}

#[tokio::test]
async fn issue7_item4_grpc_header_flood_is_refused() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let svc = service_fn(|_req: Request<Incoming>| async {
                    let mut b = Response::builder().header("content-type", "application/grpc");
                    // 1 MiB of headers: 256 fields of 4 KiB.
                    for i in 0..256 {
                        b = b.header(format!("x-flood-{i}"), "v".repeat(4096));
                    }
                    Ok::<_, Infallible>(b.body(http_body_util::Empty::<Bytes>::new()).unwrap())
                });
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(s), svc)
                    .await;
            });
        }
    });
    let (r, elapsed) = run_probe(&grpc_probe(port, 5)).await;
    assert_eq!(r.outcome, ProbeOutcome::Failure, "{}", r.output);
    assert!(!r.output.contains("timeout"), "{}", r.output);
    assert!(elapsed < Duration::from_secs(2), "{:?}", elapsed);
}

/// A raw HTTP/2 server that answers stream 1 with a header block that never ends: HEADERS
/// without END_HEADERS, then CONTINUATION frames forever (the "CONTINUATION flood").
#[tokio::test]
async fn issue7_item4_grpc_continuation_flood_is_refused() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        let Ok((s, _)) = l.accept().await else { return };
        let (mut rd, mut wr) = s.into_split();
        tokio::spawn(async move {
            let mut sink = [0u8; 4096];
            while matches!(rd.read(&mut sink).await, Ok(n) if n > 0) {}
        });
        let frame = |kind: u8, flags: u8, stream: u32, payload: &[u8]| {
            let mut f = (payload.len() as u32).to_be_bytes()[1..].to_vec();
            f.extend_from_slice(&[kind, flags]);
            f.extend_from_slice(&stream.to_be_bytes());
            f.extend_from_slice(payload);
            f
        };
        // Literal header fields without indexing, name "x", value "y": 5 bytes each.
        let fields: Vec<u8> = [0u8, 1, b'x', 1, b'y'].repeat(3000);
        let mut out = frame(4, 0, 0, &[]); // SETTINGS
        out.extend(frame(1, 0, 1, &[0x88])); // HEADERS :status 200, no END_HEADERS
        if wr.write_all(&out).await.is_err() {
            return;
        }
        let cont = frame(9, 0, 1, &fields); // CONTINUATION, no END_HEADERS
        loop {
            if wr.write_all(&cont).await.is_err() {
                return;
            }
            counter.fetch_add(cont.len() as u64, Ordering::Relaxed);
        }
    });
    let (r, elapsed) = run_probe(&grpc_probe(port, 5)).await;
    assert_eq!(r.outcome, ProbeOutcome::Failure, "{}", r.output);
    assert!(r.output.starts_with("http2 error: "), "{}", r.output);
    assert!(!r.output.contains("timeout"), "{}", r.output);
    assert!(elapsed < Duration::from_secs(2), "{:?}", elapsed);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(
        sent.load(Ordering::Relaxed) < 16 * MIB,
        "{}",
        sent.load(Ordering::Relaxed)
    );
    assert_small_rss();
}

// ---------------------------------------------------------------- HTTP

/// A raw HTTP/1.1 server: writes `head` after reading the request, then calls `body` forever
/// (each call's bytes written, with `pause` between calls). Counts bytes written.
async fn raw_http_server(
    head: &'static str,
    body: &'static [u8],
    pause: Duration,
) -> (u16, Arc<AtomicU64>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let sent = Arc::new(AtomicU64::new(0));
    let counter = sent.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(serve_raw(s, head, body, pause, counter.clone()));
        }
    });
    (port, sent)
}

async fn serve_raw(
    mut s: TcpStream,
    head: &'static str,
    body: &'static [u8],
    pause: Duration,
    sent: Arc<AtomicU64>,
) {
    let mut req = [0u8; 4096];
    let _ = s.read(&mut req).await;
    if s.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    loop {
        if s.write_all(body).await.is_err() {
            return;
        }
        sent.fetch_add(body.len() as u64, Ordering::Relaxed);
        if !pause.is_zero() {
            tokio::time::sleep(pause).await;
        }
    }
}

fn http_probe(port: u16, timeout: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            port: IntOrString::Int(port.into()),
            path: Some("/".into()),
            ..Default::default()
        }),
        timeout_seconds: Some(timeout),
        ..Default::default()
    }
}

static MEGA_A: [u8; 1024 * 1024] = [b'a'; 1024 * 1024];

#[tokio::test]
async fn issue7_item4_http_endless_body_is_cut_at_10kib() {
    // No length, body until the connection closes: endless.
    let (port, sent) = raw_http_server(
        "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n",
        &MEGA_A,
        Duration::ZERO,
    )
    .await;
    let (r, elapsed) = run_probe(&http_probe(port, 5)).await;
    assert_eq!(r.outcome, ProbeOutcome::Success);
    assert_eq!(r.output.len(), 10 * 1024);
    assert!(elapsed < Duration::from_secs(2), "{:?}", elapsed);
    // The connection is closed once 10 KiB are read: the server's writes fail soon after.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = sent.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(sent.load(Ordering::Relaxed), after, "still being read");
    assert!(after < 64 * MIB, "{after}");

    // Chunked, endless, for an httpGet hook: it succeeds without reading it all.
    let (port, _) = raw_http_server(
        "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
        b"1\r\na\r\n",
        Duration::ZERO,
    )
    .await;
    let hook = LifecycleHandler {
        http_get: http_probe(port, 1).http_get,
        ..Default::default()
    };
    let t = Instant::now();
    let res = HostProber::new()
        .unwrap()
        .run_hook(&hook, &ctx(), Duration::from_secs(5))
        .await;
    assert_eq!(res, Ok(()));
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_small_rss();
}

#[tokio::test]
async fn issue7_item4_http_trickled_headers_and_body_end_at_the_timeout() {
    // Headers that never end, one field per 50 ms.
    let (port, _) = raw_http_server(
        "HTTP/1.1 200 OK\r\n",
        b"X-A: b\r\n",
        Duration::from_millis(50),
    )
    .await;
    let (r, elapsed) = run_probe(&http_probe(port, 1)).await;
    assert_eq!(r.outcome, ProbeOutcome::Failure);
    assert!(
        r.output.ends_with(
            "context deadline exceeded (Client.Timeout exceeded while awaiting headers)"
        ),
        "{}",
        r.output
    );
    assert!(elapsed < Duration::from_millis(1500), "{:?}", elapsed);

    // A body that never reaches 10 KiB nor ends: one byte per 50 ms.
    let (port, _) = raw_http_server(
        "HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n",
        b"a",
        Duration::from_millis(50),
    )
    .await;
    let (r, elapsed) = run_probe(&http_probe(port, 1)).await;
    assert_eq!(r.outcome, ProbeOutcome::Failure);
    assert_eq!(
        r.output,
        "context deadline exceeded (Client.Timeout or context cancellation while reading body)"
    );
    assert!(elapsed < Duration::from_millis(1500), "{:?}", elapsed);

    // The same for an httpGet hook: its timeout bounds it.
    let hook = LifecycleHandler {
        http_get: http_probe(port, 1).http_get,
        ..Default::default()
    };
    let t = Instant::now();
    let e = HostProber::new()
        .unwrap()
        .run_hook(&hook, &ctx(), Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(e.contains("while reading body"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
}

#[tokio::test]
async fn issue7_item4_http_header_flood_is_refused() {
    let (port, sent) = raw_http_server(
        "HTTP/1.1 200 OK\r\n",
        b"X-Flood: aaaaaaaaaaaaaaaa\r\n",
        Duration::ZERO,
    )
    .await;
    let (r, elapsed) = run_probe(&http_probe(port, 5)).await;
    assert_eq!(r.outcome, ProbeOutcome::Failure);
    assert!(!r.output.contains("deadline"), "{}", r.output);
    assert!(elapsed < Duration::from_secs(2), "{:?}", elapsed);
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(sent.load(Ordering::Relaxed) < 64 * MIB);
    assert_small_rss();
}

// ---------------------------------------------------------------- exec

fn alive(pid: i32) -> bool {
    // A zombie is dead for this purpose (the reaper collects it).
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !s
            .rsplit(')')
            .next()
            .unwrap_or("")
            .trim_start()
            .starts_with('Z'),
        Err(_) => false,
    }
}

#[tokio::test]
async fn issue7_item4_exec_probe_printing_forever_is_capped_and_killed_at_its_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let script = format!(
        "yes > /dev/null & echo $! > {d}/bg; echo $$ > {d}/fg; exec yes",
        d = dir.path().display()
    );
    let probe = Probe {
        exec: Some(ExecAction {
            command: Some(vec!["sh".into(), "-c".into(), script.clone()]),
        }),
        timeout_seconds: Some(1),
        ..Default::default()
    };
    let p = HostProber::new().unwrap();
    let t = Instant::now();
    let r = p.probe(&probe, &ctx()).await;
    assert_eq!(r.outcome, ProbeOutcome::Failure);
    assert!(r.output.contains("timed out"), "{}", r.output);
    assert!(t.elapsed() < Duration::from_secs(3), "{:?}", t.elapsed());
    for f in ["fg", "bg"] {
        let pid: i32 = std::fs::read_to_string(dir.path().join(f))
            .unwrap()
            .trim()
            .parse()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(2);
        while alive(pid) && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert!(!alive(pid), "{f} process {pid} survived the probe");
    }

    // The same command as an exec hook: bounded by the hook's timeout.
    let hook = LifecycleHandler {
        exec: probe.exec.clone(),
        ..Default::default()
    };
    let t = Instant::now();
    let e = p
        .run_hook(&hook, &ctx(), Duration::from_millis(500))
        .await
        .unwrap_err();
    assert!(e.contains("timed out"), "{e}");
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());

    // Output that ends is kept up to 10 KiB, the rest dropped, even past gigabytes... here 64 MiB.
    let r = p
        .probe(
            &Probe {
                exec: Some(ExecAction {
                    command: Some(vec![
                        "sh".into(),
                        "-c".into(),
                        "head -c 67108864 /dev/zero; echo".into(),
                    ]),
                }),
                timeout_seconds: Some(10),
                ..Default::default()
            },
            &ctx(),
        )
        .await;
    assert_eq!(
        (r.outcome, r.output.len()),
        (ProbeOutcome::Success, 10 * 1024)
    );
    assert_small_rss();
}
