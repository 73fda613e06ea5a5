//! Issue 8 item 9: no probe or hook attempt outlives its timeout. The worker's hard deadline
//! (`probe::probe_with_deadline`, `probe::hook_with_deadline`) holds against a prober that
//! blocks its thread, one that never completes, one that panics; an exec command whose
//! attempt is cut is killed; and a pod with two hostile gRPC probes runs to its end.
//!
//! Each check that could hang on a regression runs under a wall-clock bound on a thread of its
//! own (`within`), so that a regression fails the test instead of hanging it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::convert::Infallible;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::{
    ExecAction, GRPCAction, HTTPGetAction, LifecycleHandler, Pod, Probe, SleepAction,
    TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use skiff_engine::EngineConfig;
use skiff_node::probe::deadline::SLACK;
use skiff_node::probe::{
    hook_with_deadline, probe_with_deadline, HookRunner, HostProber, ProbeOutcome, ProbeResult,
    Prober,
};
use skiff_node::runtime::ExecContext;
use skiff_node::sandbox::PodObjects;
use skiff_node::worker::{self, Notice, WorkerConfig};
use tokio::net::TcpListener;
use tokio::sync::mpsc;

fn ctx() -> ExecContext {
    ExecContext {
        container_id: "deadline".into(),
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

/// Runs `f` on a thread with a current-thread runtime (one executor thread, like the worst
/// case of a busy `skiff run`) and fails if it has not finished within `bound`.
fn within<T: Send + 'static, Fut: Future<Output = T> + 'static>(
    bound: Duration,
    f: impl FnOnce() -> Fut + Send + 'static,
) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _ = tx.send(rt.block_on(f()));
    });
    rx.recv_timeout(bound)
        .unwrap_or_else(|e| panic!("not finished within {bound:?}: {e}"))
}

/// A prober (and hook runner) whose attempt blocks its thread without ever yielding, as a
/// decoder looping on hostile input does, until `release` is set.
#[derive(Clone)]
struct Blocking {
    release: Arc<AtomicBool>,
    entered: Arc<AtomicUsize>,
}

impl Blocking {
    fn new() -> Self {
        Blocking {
            release: Arc::new(AtomicBool::new(false)),
            entered: Arc::new(AtomicUsize::new(0)),
        }
    }

    fn block(&self) {
        self.entered.fetch_add(1, Ordering::SeqCst);
        while !self.release.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Prober for Blocking {
    fn probe(&self, _: &Probe, _: &ExecContext) -> impl Future<Output = ProbeResult> + Send {
        let this = self.clone();
        async move {
            this.block();
            ProbeResult {
                outcome: ProbeOutcome::Success,
                output: "released".into(),
            }
        }
    }
}

impl HookRunner for Blocking {
    fn run_hook(
        &self,
        _: &LifecycleHandler,
        _: &ExecContext,
        _: Duration,
    ) -> impl Future<Output = Result<(), String>> + Send {
        let this = self.clone();
        async move {
            this.block();
            Ok(())
        }
    }
}

/// A prober whose attempt never completes (but yields); `dropped` is set when the worker's
/// deadline cancels it.
#[derive(Clone)]
struct Pending {
    dropped: Arc<AtomicBool>,
}

struct SetOnDrop(Arc<AtomicBool>);

impl Drop for SetOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

impl Prober for Pending {
    fn probe(&self, _: &Probe, _: &ExecContext) -> impl Future<Output = ProbeResult> + Send {
        let guard = SetOnDrop(self.dropped.clone());
        async move {
            let _guard = guard;
            std::future::pending::<()>().await;
            unreachable!()
        }
    }
}

/// A prober that panics.
#[derive(Clone)]
struct Panicking;

impl Prober for Panicking {
    async fn probe(&self, _: &Probe, _: &ExecContext) -> ProbeResult {
        panic!("prober bug")
    }
}

fn probe_of(kind: &str, port: u16, timeout: i32) -> Probe {
    let mut p = Probe {
        timeout_seconds: Some(timeout),
        ..Default::default()
    };
    match kind {
        "exec" => {
            p.exec = Some(ExecAction {
                command: Some(vec!["check".into(), "--deep".into()]),
            })
        }
        "http" => {
            p.http_get = Some(HTTPGetAction {
                port: IntOrString::Int(port.into()),
                path: Some("/healthz".into()),
                ..Default::default()
            })
        }
        "tcp" => {
            p.tcp_socket = Some(TCPSocketAction {
                port: IntOrString::Int(port.into()),
                host: None,
            })
        }
        _ => {
            p.grpc = Some(GRPCAction {
                port: port.into(),
                service: None,
                ..Default::default()
            })
        }
    }
    p
}

/// Every probe kind: a prober that blocks its thread ends at its timeout plus the slack, as a
/// failure with the kind's own timeout text; two at once on one executor thread too.
#[test]
fn blocking_prober_of_every_kind_ends_at_its_timeout() {
    let fake = Blocking::new();
    let f = fake.clone();
    let results = within(Duration::from_secs(5), move || async move {
        let limit = Duration::from_millis(300);
        let t = Instant::now();
        let run = |kind: &'static str| {
            let f = f.clone();
            async move { probe_with_deadline(&f, probe_of(kind, 8080, 1), ctx(), limit).await }
        };
        let (a, b, c, d) = tokio::join!(run("exec"), run("http"), run("tcp"), run("grpc"));
        (vec![a, b, c, d], t.elapsed())
    });
    fake.release.store(true, Ordering::SeqCst);
    let (results, elapsed) = results;
    assert_eq!(fake.entered.load(Ordering::SeqCst), 4);
    let texts: Vec<_> = results
        .iter()
        .map(|r| (r.outcome, r.output.as_str()))
        .collect();
    use ProbeOutcome::Failure;
    assert_eq!(
        texts,
        [
            (Failure, "command \"check --deep\" timed out"),
            (Failure, "Get \"http://127.0.0.1:8080/healthz\": context deadline exceeded (Client.Timeout exceeded while awaiting headers)"),
            (Failure, "dial tcp 127.0.0.1:8080: i/o timeout"),
            (Failure, "timeout: health rpc did not complete within 1s"),
        ]
    );
    let deadline = Duration::from_millis(300) + SLACK;
    assert!(
        elapsed >= deadline && elapsed < deadline + Duration::from_millis(500),
        "{elapsed:?}"
    );
}

/// The same for every hook kind; a sleep hook cut at its deadline succeeds, as the prober's
/// own cut does.
#[test]
fn blocking_hook_runner_of_every_kind_ends_at_its_timeout() {
    let fake = Blocking::new();
    let f = fake.clone();
    let (results, elapsed) = within(Duration::from_secs(5), move || async move {
        let limit = Duration::from_millis(200);
        let exec = LifecycleHandler {
            exec: Some(ExecAction {
                command: Some(vec!["sh".into(), "-c".into(), "drain".into()]),
            }),
            ..Default::default()
        };
        let http = LifecycleHandler {
            http_get: Some(HTTPGetAction {
                port: IntOrString::Int(9),
                path: Some("stop".into()),
                ..Default::default()
            }),
            ..Default::default()
        };
        let sleep = LifecycleHandler {
            sleep: Some(SleepAction { seconds: 30 }),
            ..Default::default()
        };
        let t = Instant::now();
        let r = tokio::join!(
            hook_with_deadline(&f, exec, ctx(), limit),
            hook_with_deadline(&f, http, ctx(), limit),
            hook_with_deadline(&f, sleep, ctx(), limit),
        );
        (r, t.elapsed())
    });
    fake.release.store(true, Ordering::SeqCst);
    assert_eq!(
        results,
        (
            Err("command 'sh -c drain' timed out".to_string()),
            Err("Get \"http://127.0.0.1:9/stop\": context deadline exceeded".to_string()),
            Ok(()),
        )
    );
    let deadline = Duration::from_millis(200) + SLACK;
    assert!(
        elapsed >= deadline && elapsed < deadline + Duration::from_millis(500),
        "{elapsed:?}"
    );
}

/// An attempt that never completes is cancelled (dropped) at the deadline, not left behind.
#[test]
fn pending_prober_is_cancelled_at_the_deadline() {
    let fake = Pending {
        dropped: Arc::new(AtomicBool::new(false)),
    };
    let f = fake.clone();
    let r = within(Duration::from_secs(5), move || async move {
        probe_with_deadline(
            &f,
            probe_of("tcp", 81, 1),
            ctx(),
            Duration::from_millis(100),
        )
        .await
    });
    assert_eq!(r.outcome, ProbeOutcome::Failure);
    assert_eq!(r.output, "dial tcp 127.0.0.1:81: i/o timeout");
    let t = Instant::now();
    while !fake.dropped.load(Ordering::SeqCst) {
        assert!(t.elapsed() < Duration::from_secs(2), "attempt not dropped");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A prober that panics gives an error result; the caller goes on.
#[test]
fn panicking_prober_is_an_error_result() {
    let r = within(Duration::from_secs(5), || async {
        probe_with_deadline(
            &Panicking,
            probe_of("grpc", 1, 1),
            ctx(),
            Duration::from_secs(1),
        )
        .await
    });
    assert_eq!(r.outcome, ProbeOutcome::Unknown);
    assert_eq!(r.output, "the probe ended without a result");
}

/// An exec probe whose attempt the worker's deadline cuts (here before the probe's own
/// timeout) has its command killed, not left running.
#[test]
fn exec_command_is_killed_when_its_attempt_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pid");
    let script = format!("echo $$ > {}; exec sleep 30", pidfile.display());
    let probe = Probe {
        exec: Some(ExecAction {
            command: Some(vec!["sh".into(), "-c".into(), script.clone()]),
        }),
        timeout_seconds: Some(30),
        ..Default::default()
    };
    let r = within(Duration::from_secs(10), move || async move {
        let p = HostProber::new().unwrap();
        probe_with_deadline(&p, probe, ctx(), Duration::from_millis(300)).await
    });
    assert_eq!(r.outcome, ProbeOutcome::Failure);
    assert_eq!(r.output, format!("command \"sh -c {script}\" timed out"));
    let pid: i32 = std::fs::read_to_string(&pidfile)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    let t = Instant::now();
    while common::alive(pid) {
        assert!(
            t.elapsed() < Duration::from_secs(3),
            "pid {pid} still alive"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

// ------------------------------------------------ hostile gRPC server, through the worker

/// `[flags, len:4] [0x12, varint(2^64 - 11)]`: the reply that looped the hand-written decoder.
fn wrapping_reply() -> Bytes {
    let mut msg = vec![0x12u8];
    let mut v = u64::MAX - 10;
    while v >= 0x80 {
        msg.push((v as u8) | 0x80);
        v >>= 7;
    }
    msg.push(v as u8);
    let mut f = vec![0u8];
    f.extend_from_slice(&(msg.len() as u32).to_be_bytes());
    f.extend_from_slice(&msg);
    Bytes::from(f)
}

struct OneReply(Option<Bytes>, Option<hyper::HeaderMap>);

impl hyper::body::Body for OneReply {
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

/// A gRPC server on loopback answering every Check with the crafted reply and status OK.
async fn hostile_grpc_server() -> (u16, Arc<AtomicUsize>) {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let calls = counter.clone();
            tokio::spawn(async move {
                let svc = service_fn(move |_req: Request<Incoming>| {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async {
                        let mut t = hyper::HeaderMap::new();
                        t.insert("grpc-status", "0".parse().unwrap());
                        Ok::<_, Infallible>(
                            Response::builder()
                                .header("content-type", "application/grpc")
                                .body(OneReply(Some(wrapping_reply()), Some(t)))
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
    (port, calls)
}

/// The acceptance check: the gRPC prober fed the hostile reply by a fake server on loopback
/// returns within its timeout, with the decode error; two at once on one executor thread.
#[test]
fn hostile_grpc_reply_returns_within_the_probe_timeout() {
    let (results, elapsed) = within(Duration::from_secs(5), || async {
        let (port, calls) = hostile_grpc_server().await;
        let p = HostProber::new().unwrap();
        let (probe, cx) = (probe_of("grpc", port, 1), ctx());
        let t = Instant::now();
        let (a, b) = tokio::join!(p.probe(&probe, &cx), p.probe(&probe, &cx));
        assert_eq!(calls.load(Ordering::SeqCst), 2);
        (vec![a, b], t.elapsed())
    });
    for r in results {
        assert_eq!(r.outcome, ProbeOutcome::Failure);
        assert!(
            r.output.starts_with(
                "rpc error: code = Internal desc = grpc: failed to unmarshal the received message: "
            ),
            "{}",
            r.output
        );
    }
    assert!(elapsed < Duration::from_secs(1), "{elapsed:?}");
}

fn hostile_pod(port: u16) -> Pod {
    let probe = format!(
        "{{grpc: {{port: {port}}}, periodSeconds: 1, timeoutSeconds: 1, failureThreshold: 100}}"
    );
    let yaml = format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: hostile-grpc, namespace: default, uid: "pd{pid:06x}-grpc"}}
spec:
  runtimeClassName: host
  hostNetwork: true
  restartPolicy: Never
  terminationGracePeriodSeconds: 1
  containers:
  - name: a
    image: host
    command: [/bin/sh, -c, "sleep 3"]
    livenessProbe: {probe}
  - name: b
    image: host
    command: [/bin/sh, -c, "sleep 3"]
    readinessProbe: {probe}
"#,
        pid = std::process::id() & 0xff_ffff,
    );
    let pod: Pod = serde_yaml_ng::from_str(&yaml).unwrap();
    // prepare_pod clears server-set metadata as the API server does on create; the uid is
    // then the server's to give (here: the test's own, which its leak checks look for).
    let uid = pod.metadata.uid.clone();
    let mut pod = skiff_model::prepare_pod(pod).unwrap();
    pod.metadata.uid = uid;
    pod
}

/// Two hostile gRPC probes in one pod, on `skiff run`'s runtime (two worker threads): the pod
/// runs to its end (both containers exit after 3 s), every probe reported its decode error.
/// (With the looping decoder and no hard deadline, both worker threads spun and even the
/// runtime's own timers stopped: hence the wall-clock bound from another thread.)
#[test]
fn two_hostile_grpc_probes_do_not_wedge_the_worker() {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipping: needs root (pod sandbox)");
        return;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let data = tempfile::tempdir().unwrap();
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let (port, calls) = rt.block_on(hostile_grpc_server());
        let cfg = WorkerConfig {
            data_dir: data.path().join("data"),
            engine: EngineConfig::default(),
            objects: PodObjects::default(),
            keeper: None,
            image_pulls: worker::PullQueue::serial(),
            persistent: false,
        };
        let (_cmd_tx, cmd_rx) = mpsc::channel(1);
        let (notice_tx, mut notice_rx) = mpsc::unbounded_channel();
        let t = Instant::now();
        let status = rt.block_on(worker::run_pod(hostile_pod(port), cfg, cmd_rx, notice_tx));
        let elapsed = t.elapsed();
        let mut unhealthy = Vec::new();
        while let Ok(n) = notice_rx.try_recv() {
            if let Notice::Event(e, _) = n {
                if e.reason == "Unhealthy" {
                    unhealthy.push((e.container.unwrap_or_default(), e.message));
                }
            }
        }
        rt.shutdown_timeout(Duration::from_secs(1));
        let _ = tx.send((status, elapsed, unhealthy, calls.load(Ordering::SeqCst)));
    });
    let (status, elapsed, unhealthy, calls) = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("the pod worker is wedged");
    let status = status.unwrap();
    assert_eq!(status.phase.as_deref(), Some("Succeeded"), "{status:?}");
    assert!(elapsed < Duration::from_secs(10), "{elapsed:?}");
    assert!(calls >= 2, "{calls}");
    let mut containers: Vec<&str> = unhealthy.iter().map(|(c, _)| c.as_str()).collect();
    containers.dedup();
    containers.sort();
    containers.dedup();
    assert_eq!(containers, ["a", "b"], "{unhealthy:?}");
    for (_, message) in &unhealthy {
        assert!(message.contains("failed to unmarshal"), "{message}");
    }
}
