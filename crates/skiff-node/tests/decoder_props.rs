//! Issue 8 item 9: every decoder that reads bytes from a container, fed arbitrary bytes
//! (proptest). Each returns — no panic, no hang: every case runs under a wall-clock bound on a
//! thread of its own — and keeps its documented output bounds.
//!
//! Probes are driven end to end over loopback (gRPC reply bodies and raw garbage, raw HTTP
//! responses) or through a real command (exec output); the pure parsers directly (CRI log
//! line splitter and tail reader, termination message).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::{ExecAction, GRPCAction, HTTPGetAction, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use proptest::collection::vec;
use proptest::prelude::*;
use skiff_node::launch::TerminationMessagePolicy;
use skiff_node::logs::{parse_record, tail_content, LineSplitter};
use skiff_node::probe::{grpc, http, lossy_prefix, HostProber, ProbeOutcome, Prober, MAX_OUTPUT};
use skiff_node::runtime::ExecContext;
use skiff_node::termination::{self, keep_end, read_tail, termination_message};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

fn ctx() -> ExecContext {
    ExecContext {
        container_id: "props".into(),
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

/// Runs `f` on a thread of its own; a panic if it has not returned within `bound`.
fn within<T: Send + 'static>(bound: Duration, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(bound)
        .unwrap_or_else(|e| panic!("no result within {bound:?}: {e}"))
}

/// The servers' runtime, shared by all cases of this binary.
fn servers() -> &'static tokio::runtime::Runtime {
    static RT: OnceLock<tokio::runtime::Runtime> = OnceLock::new();
    RT.get_or_init(|| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    })
}

/// One probe, run as the worker runs it (own runtime on this case's thread), timed.
fn run_probe(probe: Probe, bound: Duration) -> (skiff_node::probe::ProbeResult, Duration) {
    within(bound, move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let t = Instant::now();
        let r = rt.block_on(async { HostProber::new().unwrap().probe(&probe, &ctx()).await });
        (r, t.elapsed())
    })
}

// ---------------------------------------------------------------- gRPC

struct Reply(Option<Bytes>, Option<hyper::HeaderMap>);

impl hyper::body::Body for Reply {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        _: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(d) = self.0.take() {
            return std::task::Poll::Ready(Some(Ok(Frame::data(d))));
        }
        std::task::Poll::Ready(self.1.take().map(|t| Ok(Frame::trailers(t))))
    }
}

/// A gRPC server answering every call with the current `body` and status OK.
fn grpc_server() -> &'static (u16, Arc<Mutex<Bytes>>) {
    static S: OnceLock<(u16, Arc<Mutex<Bytes>>)> = OnceLock::new();
    S.get_or_init(|| {
        let body = Arc::new(Mutex::new(Bytes::new()));
        let shared = body.clone();
        let port = servers().block_on(async move {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = l.local_addr().unwrap().port();
            tokio::spawn(async move {
                while let Ok((s, _)) = l.accept().await {
                    let shared = shared.clone();
                    tokio::spawn(async move {
                        let svc = service_fn(move |_req: Request<Incoming>| {
                            let data = shared.lock().unwrap().clone();
                            async move {
                                let mut t = hyper::HeaderMap::new();
                                t.insert("grpc-status", "0".parse().unwrap());
                                Ok::<_, Infallible>(
                                    Response::builder()
                                        .header("content-type", "application/grpc")
                                        .body(Reply((!data.is_empty()).then_some(data), Some(t)))
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
            port
        });
        (port, body)
    })
}

/// A raw TCP server: reads what the client sends first (up to 64 KiB or 100 ms), answers
/// with the current `reply` and closes.
fn raw_server() -> &'static (u16, Arc<Mutex<Vec<u8>>>) {
    static S: OnceLock<(u16, Arc<Mutex<Vec<u8>>>)> = OnceLock::new();
    S.get_or_init(|| {
        let reply = Arc::new(Mutex::new(Vec::new()));
        let shared = reply.clone();
        let port = servers().block_on(async move {
            let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let port = l.local_addr().unwrap().port();
            tokio::spawn(async move {
                while let Ok((mut s, _)) = l.accept().await {
                    let data = shared.lock().unwrap().clone();
                    tokio::spawn(async move {
                        let mut buf = vec![0u8; 64 * 1024];
                        let _ = tokio::time::timeout(Duration::from_millis(100), s.read(&mut buf))
                            .await;
                        let _ = s.write_all(&data).await;
                        let _ = s.shutdown().await;
                        // Drain what the client still sends so that closing sends no RST.
                        let _ = tokio::time::timeout(Duration::from_millis(200), async {
                            while matches!(s.read(&mut buf).await, Ok(n) if n > 0) {}
                        })
                        .await;
                    });
                }
            });
            port
        });
        (port, reply)
    })
}

fn grpc_probe(port: u16) -> Probe {
    Probe {
        grpc: Some(GRPCAction {
            port: port.into(),
            service: None,
            ..Default::default()
        }),
        timeout_seconds: Some(1),
        ..Default::default()
    }
}

fn framed(msg: &[u8]) -> Vec<u8> {
    let mut f = vec![0u8];
    f.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    f.extend_from_slice(msg);
    f
}

/// A reply body: arbitrary bytes, or an arbitrary protobuf message correctly framed.
fn grpc_body() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..300),
        vec(any::<u8>(), 0..300).prop_map(|m| framed(&m)),
        // Field 1 with arbitrary varints, then arbitrary trailing fields.
        (vec(any::<u8>(), 0..11), vec(any::<u8>(), 0..40)).prop_map(|(v, rest)| {
            let mut m = vec![0x08];
            m.extend(v);
            m.extend(rest);
            framed(&m)
        }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Whatever message body a gRPC server sends, the probe ends well within its timeout,
    /// succeeds exactly when the body is one message saying SERVING, and its output stays
    /// small.
    #[test]
    fn grpc_reply_of_any_bytes(body in grpc_body()) {
        let (port, shared) = grpc_server();
        *shared.lock().unwrap() = Bytes::from(body.clone());
        let (r, elapsed) = run_probe(grpc_probe(*port), Duration::from_secs(5));
        prop_assert!(elapsed < Duration::from_secs(1), "{:?}", elapsed);
        let serving = grpc::decode_response(&body) == Ok(grpc::SERVING);
        prop_assert_eq!(r.outcome == ProbeOutcome::Success, serving, "{}", r.output);
        prop_assert!(r.output.len() <= 512, "{}", r.output);
    }

    /// Whatever bytes a server answers a gRPC probe with (not HTTP/2 at all, mostly), the
    /// probe fails within its timeout.
    #[test]
    fn grpc_probe_against_garbage(reply in vec(any::<u8>(), 0..2048)) {
        let (port, shared) = raw_server();
        *shared.lock().unwrap() = reply;
        let (r, elapsed) = run_probe(grpc_probe(*port), Duration::from_secs(5));
        prop_assert!(elapsed < Duration::from_millis(1500), "{:?}", elapsed);
        prop_assert_ne!(r.outcome, ProbeOutcome::Success);
        prop_assert!(r.output.len() <= 1024, "{}", r.output);
    }
}

// ---------------------------------------------------------------- HTTP

const HEADS: &[&str] = &[
    "",
    "HTTP/1.1 200 OK\r\n",
    "HTTP/1.1 200 OK\r\n\r\n",
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n",
    "HTTP/1.1 200 OK\r\nContent-Length: 20000\r\n\r\n",
    "HTTP/1.1 302 Found\r\nLocation: /next\r\nContent-Length: 0\r\n\r\n",
    "HTTP/1.1 302 Found\r\nLocation: http://elsewhere.invalid/\r\n\r\n",
    "HTTP/1.1 500 Oops\r\n\r\n",
];

/// A response: one of a few heads (or none), then arbitrary bytes — sometimes more than the
/// 10 KiB body bound, mostly invalid UTF-8.
fn http_response() -> impl Strategy<Value = Vec<u8>> {
    (
        0..HEADS.len(),
        prop_oneof![
            4 => vec(any::<u8>(), 0..600),
            1 => vec(any::<u8>(), 10_000..24_000),
        ],
    )
        .prop_map(|(h, rest)| {
            let mut v = HEADS[h].as_bytes().to_vec();
            v.extend(rest);
            v
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Whatever an HTTP server answers, the probe ends within its timeout and its output stays
    /// within the 10 KiB body bound (plus the fixed text around it).
    #[test]
    fn http_response_of_any_bytes(reply in http_response()) {
        let (port, shared) = raw_server();
        *shared.lock().unwrap() = reply;
        let probe = Probe {
            http_get: Some(HTTPGetAction {
                port: IntOrString::Int((*port).into()),
                path: Some("/healthz".into()),
                ..Default::default()
            }),
            timeout_seconds: Some(2),
            ..Default::default()
        };
        let (r, elapsed) = run_probe(probe, Duration::from_secs(5));
        prop_assert!(elapsed < Duration::from_secs(2), "{:?}", elapsed);
        prop_assert!(r.output.len() <= http::MAX_BODY + 256, "{}", r.output.len());
        if r.outcome == ProbeOutcome::Success {
            let prefix = "Probe terminated redirects, Response body: ".len();
            prop_assert!(r.output.len() <= http::MAX_BODY + prefix, "{}", r.output.len());
        }
    }
}

// ---------------------------------------------------------------- exec output

/// Output bytes: arbitrary (mostly invalid UTF-8), or arbitrary Unicode text long enough to
/// be cut at the bound inside a multi-byte character.
fn exec_output() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..24_000),
        "\\PC{2000,6000}".prop_map(String::into_bytes),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(24))]

    /// Whatever an exec probe's command prints, the output is its first 10 KiB, made text,
    /// and never longer than 10 KiB.
    #[test]
    fn exec_output_of_any_bytes(out in exec_output()) {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(&out).unwrap();
        let probe = Probe {
            exec: Some(ExecAction {
                command: Some(vec!["cat".into(), f.path().display().to_string()]),
            }),
            timeout_seconds: Some(5),
            ..Default::default()
        };
        let (r, _) = run_probe(probe, Duration::from_secs(10));
        prop_assert_eq!(r.outcome, ProbeOutcome::Success);
        prop_assert!(r.output.len() <= MAX_OUTPUT, "{}", r.output.len());
        prop_assert_eq!(&r.output, &lossy_prefix(&out, MAX_OUTPUT));
        if out.len() <= MAX_OUTPUT {
            if let Ok(s) = std::str::from_utf8(&out) {
                prop_assert_eq!(r.output.as_str(), s);
            }
        }
    }

    /// The bound holds for the cut itself, whatever the bytes and the bound.
    #[test]
    fn lossy_prefix_bounds(bytes in vec(any::<u8>(), 0..200), max in 0usize..64) {
        let s = lossy_prefix(&bytes, max);
        prop_assert!(s.len() <= max);
        prop_assert!(String::from_utf8_lossy(&bytes[..bytes.len().min(max)]).starts_with(&s));
    }
}

// ---------------------------------------------------------------- CRI logs

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The CRI line splitter: every record at most `max` bytes, partial records exactly `max`,
    /// and the records (a newline after each full one) give back the input, with a newline
    /// added after an unterminated last line.
    #[test]
    fn line_splitter_of_any_chunks(
        chunks in vec(vec(prop_oneof![3 => any::<u8>(), 1 => Just(b'\n')], 0..200), 0..20),
        max in 1usize..48,
    ) {
        let input: Vec<u8> = chunks.concat();
        let records = within(Duration::from_secs(5), move || {
            let mut s = LineSplitter::new(max);
            let mut got: Vec<(Vec<u8>, bool)> = Vec::new();
            let mut emit = |c: &[u8], partial: bool| got.push((c.to_vec(), partial));
            for c in &chunks {
                s.feed(c, &mut emit);
            }
            s.finish(&mut emit);
            got
        });
        let mut rebuilt = Vec::new();
        for (content, partial) in &records {
            prop_assert!(content.len() <= max);
            prop_assert!(!content.contains(&b'\n'));
            if *partial {
                prop_assert_eq!(content.len(), max);
            }
            rebuilt.extend_from_slice(content);
            if !partial {
                rebuilt.push(b'\n');
            }
        }
        let mut expected = input.clone();
        if !expected.is_empty() && expected.last() != Some(&b'\n') {
            expected.push(b'\n');
        }
        prop_assert_eq!(rebuilt, expected);
    }

    /// The log tail reader (termination message fallback) on arbitrary log data: at most
    /// `max_bytes`, no panic; any record parses or is skipped.
    #[test]
    fn log_tail_of_any_bytes(
        data in vec(prop_oneof![4 => any::<u8>(), 1 => Just(b'\n'), 1 => Just(b' ')], 0..2000),
        max_lines in 0usize..100,
        max_bytes in 0usize..3000,
    ) {
        let d = data.clone();
        let out = within(Duration::from_secs(5), move || tail_content(&d, max_lines, max_bytes));
        prop_assert!(out.len() <= max_bytes);
        for rec in data.split(|&b| b == b'\n') {
            if let Some((_, content)) = parse_record(rec) {
                prop_assert!(content.len() <= rec.len());
            }
        }
    }
}

// ---------------------------------------------------------------- termination message

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Whatever the container wrote to its message file (or its logs), the message is at most
    /// 4096 bytes, the logs fallback at most 2048.
    #[test]
    fn termination_message_of_any_bytes(
        file in proptest::option::of(vec(any::<u8>(), 0..6000)),
        logs in vec(any::<u8>(), 0..3000),
        fallback in any::<bool>(),
        exit_code in -1i32..3,
    ) {
        let policy = if fallback {
            TerminationMessagePolicy::FallbackToLogsOnError
        } else {
            TerminationMessagePolicy::File
        };
        let from_logs = fallback && exit_code != 0 && file.as_ref().is_none_or(|f| f.is_empty());
        let msg = within(Duration::from_secs(5), move || {
            termination_message(file, policy, exit_code, move || logs)
        });
        prop_assert!(msg.len() <= termination::MAX_MESSAGE_BYTES);
        if from_logs {
            prop_assert!(msg.len() <= termination::FALLBACK_LOG_BYTES);
        }
    }

    /// `keep_end`: a suffix, at most `max` bytes, losing at most a partial character.
    #[test]
    fn keep_end_of_any_text(s in "\\PC{0,300}", max in 0usize..400) {
        let end = keep_end(&s, max);
        prop_assert!(s.ends_with(end));
        prop_assert!(end.len() <= max);
        prop_assert!(end.len() + 3 >= max.min(s.len()));
    }

    /// `read_tail` on a file of arbitrary content: exactly its last `max` bytes.
    #[test]
    fn read_tail_of_any_file(content in vec(any::<u8>(), 0..10_000), max in 0usize..5000) {
        let mut f = tempfile::tempfile().unwrap();
        f.write_all(&content).unwrap();
        let tail = read_tail(&f, max).unwrap();
        prop_assert_eq!(&tail[..], &content[content.len().saturating_sub(max)..]);
    }
}
