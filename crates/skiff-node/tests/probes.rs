#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::*;
use http_body_util::{BodyExt, Full};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use k8s_openapi::api::core::v1::{
    ContainerPort, ExecAction, GRPCAction, HTTPGetAction, HTTPHeader, LifecycleHandler, Probe,
    SleepAction, TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use skiff_node::probe::{HookRunner, HostProber, ProbeOutcome, Prober};
use skiff_node::runtime::{ExecContext, HostContainer, HostRuntime, StopSignal};
use tokio::net::TcpListener;

fn ctx(ports: Vec<(&str, u16)>) -> ExecContext {
    ExecContext {
        container_id: "test".into(),
        container_name: "app".into(),
        env: vec![
            ("PATH".into(), "/usr/bin:/bin".into()),
            ("FOO".into(), "bar".into()),
        ],
        working_dir: "/".into(),
        ports: ports
            .into_iter()
            .map(|(n, p)| ContainerPort {
                name: Some(n.into()),
                container_port: p.into(),
                ..Default::default()
            })
            .collect(),
        host: "127.0.0.1".into(),
        netns: None,
        setup: Default::default(),
        mounts: Vec::new(),
        group: None,
    }
}

fn exec_probe(cmd: &[&str], timeout: i32) -> Probe {
    Probe {
        exec: Some(ExecAction {
            command: Some(cmd.iter().map(|s| s.to_string()).collect()),
        }),
        timeout_seconds: Some(timeout),
        ..Default::default()
    }
}

fn http_probe(port: IntOrString, path: &str) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            port,
            path: Some(path.into()),
            http_headers: Some(vec![HTTPHeader {
                name: "X-Custom".into(),
                value: "v1".into(),
            }]),
            ..Default::default()
        }),
        timeout_seconds: Some(1),
        ..Default::default()
    }
}

async fn start_sleeper(dir: &std::path::Path) -> HostContainer {
    let mut c = sh("app", "exec sleep 1000");
    env(&mut c, "FOO", "from-container");
    HostRuntime::new()
        .unwrap()
        .start(launch(&c, dir), Default::default(), None)
        .await
        .unwrap()
}

#[tokio::test]
async fn exec_probe_in_container_context() {
    let dir = tempfile::tempdir().unwrap();
    let ct = start_sleeper(dir.path()).await;
    let p = HostProber::new().unwrap();
    let cx = ct.exec_context().clone();

    let r = p
        .probe(&exec_probe(&["sh", "-c", "echo \"$FOO\"; pwd >&2"], 1), &cx)
        .await;
    assert_eq!(r.outcome, ProbeOutcome::Success);
    assert_eq!(r.output, "from-container\n/\n");

    let r = p
        .probe(&exec_probe(&["sh", "-c", "echo no; exit 1"], 1), &cx)
        .await;
    assert_eq!(
        (r.outcome, r.output.as_str()),
        (ProbeOutcome::Failure, "no\n")
    );

    // The probe runs inside the container's tracking group.
    let r = p
        .probe(
            &exec_probe(
                &[
                    "sh",
                    "-c",
                    "cat /proc/self/environ | tr '\\0' '\\n' | grep SKIFF_CONTAINER_ID",
                ],
                1,
            ),
            &cx,
        )
        .await;
    assert_eq!(r.output.trim(), format!("SKIFF_CONTAINER_ID={}", ct.id()));

    let t = Instant::now();
    let r = p
        .probe(
            &exec_probe(&["sh", "-c", "echo started; exec sleep 30"], 1),
            &cx,
        )
        .await;
    assert_eq!(r.outcome, ProbeOutcome::Failure);
    assert!(r.output.contains("timed out"), "{}", r.output);
    assert!(t.elapsed() < Duration::from_secs(3));

    let r = p.probe(&exec_probe(&["nope-cmd"], 1), &cx).await;
    assert_eq!(r.outcome, ProbeOutcome::Failure);
    assert!(
        r.output.contains("executable file not found"),
        "{}",
        r.output
    );

    // Large output is capped at 10 KiB.
    let r = p
        .probe(
            &exec_probe(&["sh", "-c", "head -c 50000 /dev/zero | tr '\\0' a"], 1),
            &cx,
        )
        .await;
    assert_eq!(
        (r.outcome, r.output.len()),
        (ProbeOutcome::Success, 10 * 1024)
    );

    ct.signal(StopSignal::Kill).unwrap();
    assert_eq!(ct.wait().await.exit_code, 137);
}

async fn http_handler(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let resp = |code: u16, body: String| {
        Response::builder()
            .status(code)
            .body(Full::new(Bytes::from(body)))
            .unwrap()
    };
    Ok(match req.uri().path() {
        "/ok" => resp(200, "fine".into()),
        "/bad" => resp(500, "broken".into()),
        "/redirect" => Response::builder()
            .status(302)
            .header("Location", "/ok")
            .body(Full::new(Bytes::new()))
            .unwrap(),
        "/away" => Response::builder()
            .status(302)
            .header("Location", "http://other.invalid:1/x")
            .body(Full::new(Bytes::new()))
            .unwrap(),
        "/loop" => Response::builder()
            .status(302)
            .header("Location", "/loop")
            .body(Full::new(Bytes::new()))
            .unwrap(),
        "/slow" => {
            tokio::time::sleep(Duration::from_secs(5)).await;
            resp(200, "late".into())
        }
        "/headers" => {
            let h = |n: &str| {
                req.headers()
                    .get(n)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or("")
                    .to_string()
            };
            resp(
                200,
                format!("{}|{}|{}", h("x-custom"), h("user-agent"), h("host")),
            )
        }
        _ => resp(404, "".into()),
    })
}

async fn http_server() -> SocketAddr {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(s), service_fn(http_handler))
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn http_get_probe() {
    let addr = http_server().await;
    let port = addr.port();
    let cx = ctx(vec![("http", port)]);
    let p = HostProber::new().unwrap();

    let r = p
        .probe(&http_probe(IntOrString::Int(port.into()), "/ok"), &cx)
        .await;
    assert_eq!(
        (r.outcome, r.output.as_str()),
        (ProbeOutcome::Success, "fine")
    );
    // Named port.
    let r = p
        .probe(&http_probe(IntOrString::String("http".into()), "ok"), &cx)
        .await;
    assert_eq!(r.outcome, ProbeOutcome::Success);
    let r = p
        .probe(&http_probe(IntOrString::String("nope".into()), "/ok"), &cx)
        .await;
    assert_eq!(r.outcome, ProbeOutcome::Unknown);

    let r = p
        .probe(&http_probe(IntOrString::Int(port.into()), "/bad"), &cx)
        .await;
    assert_eq!(
        (r.outcome, r.output.as_str()),
        (
            ProbeOutcome::Failure,
            "HTTP probe failed with statuscode: 500"
        )
    );
    let r = p
        .probe(&http_probe(IntOrString::Int(port.into()), "/missing"), &cx)
        .await;
    assert_eq!(r.outcome, ProbeOutcome::Failure);

    // Same-host redirect is followed; another host's is not (3xx = success).
    let r = p
        .probe(&http_probe(IntOrString::Int(port.into()), "/redirect"), &cx)
        .await;
    assert_eq!(
        (r.outcome, r.output.as_str()),
        (ProbeOutcome::Success, "fine")
    );
    let r = p
        .probe(&http_probe(IntOrString::Int(port.into()), "/away"), &cx)
        .await;
    assert_eq!(r.outcome, ProbeOutcome::Success);
    assert!(r.output.starts_with("Probe terminated redirects"));
    let r = p
        .probe(&http_probe(IntOrString::Int(port.into()), "/loop"), &cx)
        .await;
    assert_eq!(r.outcome, ProbeOutcome::Failure);
    assert!(
        r.output.contains("stopped after 10 redirects"),
        "{}",
        r.output
    );

    let r = p
        .probe(&http_probe(IntOrString::Int(port.into()), "/headers"), &cx)
        .await;
    assert_eq!(r.output, format!("v1|kube-probe/1.37|127.0.0.1:{port}"));

    let t = Instant::now();
    let r = p
        .probe(&http_probe(IntOrString::Int(port.into()), "/slow"), &cx)
        .await;
    assert_eq!(r.outcome, ProbeOutcome::Failure);
    assert!(r.output.contains("deadline exceeded"), "{}", r.output);
    assert!(t.elapsed() < Duration::from_secs(3));

    // Nothing listening.
    let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = free.local_addr().unwrap().port();
    drop(free);
    let r = p
        .probe(&http_probe(IntOrString::Int(closed.into()), "/"), &cx)
        .await;
    assert_eq!(r.outcome, ProbeOutcome::Failure);
    assert!(r.output.contains("connection refused"), "{}", r.output);
}

#[tokio::test]
async fn https_probe_skips_certificate_verification() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()]).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(cert.signing_key.serialize_der().into());
    let cfg = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key)
        .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(cfg));
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(s).await {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tls), service_fn(http_handler))
                        .await;
                }
            });
        }
    });
    let mut probe = http_probe(IntOrString::Int(port.into()), "/ok");
    probe.http_get.as_mut().unwrap().scheme = Some("HTTPS".into());
    let r = HostProber::new().unwrap().probe(&probe, &ctx(vec![])).await;
    assert_eq!(
        (r.outcome, r.output.as_str()),
        (ProbeOutcome::Success, "fine")
    );
}

#[tokio::test]
async fn tcp_socket_probe() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let p = HostProber::new().unwrap();
    let probe = |port: IntOrString| Probe {
        tcp_socket: Some(TCPSocketAction { host: None, port }),
        timeout_seconds: Some(1),
        ..Default::default()
    };
    let r = p
        .probe(
            &probe(IntOrString::String("db".into())),
            &ctx(vec![("db", port)]),
        )
        .await;
    assert_eq!(r.outcome, ProbeOutcome::Success);
    drop(l);
    let r = p
        .probe(&probe(IntOrString::Int(port.into())), &ctx(vec![]))
        .await;
    assert_eq!(r.outcome, ProbeOutcome::Failure);
    assert_eq!(
        r.output,
        format!("dial tcp 127.0.0.1:{port}: connect: connection refused")
    );
}

/// Response body of one gRPC message followed by trailers.
struct GrpcBody {
    data: Option<Bytes>,
    trailers: Option<hyper::HeaderMap>,
}

impl hyper::body::Body for GrpcBody {
    type Data = Bytes;
    type Error = Infallible;
    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        if let Some(d) = self.data.take() {
            return Poll::Ready(Some(Ok(Frame::data(d))));
        }
        Poll::Ready(self.trailers.take().map(|t| Ok(Frame::trailers(t))))
    }
}

async fn grpc_handler(req: Request<Incoming>) -> Result<Response<GrpcBody>, Infallible> {
    assert_eq!(req.uri().path(), "/grpc.health.v1.Health/Check");
    let body = req.into_body().collect().await.unwrap().to_bytes();
    // Request: 5-byte prefix + optional field 1 (service).
    let service = if body.len() > 7 {
        String::from_utf8_lossy(&body[7..]).into_owned()
    } else {
        String::new()
    };
    let mut trailers = hyper::HeaderMap::new();
    let (status, code) = match service.as_str() {
        "" => (1u8, "0"),
        "down" => (2, "0"),
        _ => (0, "5"),
    };
    trailers.insert("grpc-status", code.parse().unwrap());
    if code != "0" {
        trailers.insert("grpc-message", "unknown service".parse().unwrap());
    }
    let data = if code == "0" {
        Some(Bytes::from(vec![0, 0, 0, 0, 2, 0x08, status]))
    } else {
        None
    };
    Ok(Response::builder()
        .header("content-type", "application/grpc")
        .body(GrpcBody {
            data,
            trailers: Some(trailers),
        })
        .unwrap())
}

#[tokio::test]
async fn grpc_probe() {
    let l = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((s, _)) = l.accept().await {
            tokio::spawn(async move {
                let _ = hyper::server::conn::http2::Builder::new(TokioExecutor::new())
                    .serve_connection(TokioIo::new(s), service_fn(grpc_handler))
                    .await;
            });
        }
    });
    let p = HostProber::new().unwrap();
    let probe = |service: Option<&str>| Probe {
        grpc: Some(GRPCAction {
            port: port.into(),
            service: service.map(str::to_string),
            ..Default::default()
        }),
        timeout_seconds: Some(1),
        ..Default::default()
    };
    let r = p.probe(&probe(None), &ctx(vec![])).await;
    assert_eq!(r.outcome, ProbeOutcome::Success, "{}", r.output);
    let r = p.probe(&probe(Some("down")), &ctx(vec![])).await;
    assert_eq!(
        (r.outcome, r.output.as_str()),
        (
            ProbeOutcome::Failure,
            "service unhealthy (responded with \"NOT_SERVING\")"
        )
    );
    let r = p.probe(&probe(Some("other")), &ctx(vec![])).await;
    assert_eq!(r.outcome, ProbeOutcome::Failure);
    assert_eq!(
        r.output,
        "rpc error: code = NotFound desc = unknown service"
    );
}

#[tokio::test]
async fn lifecycle_hooks() {
    let p = HostProber::new().unwrap();
    let cx = ctx(vec![]);
    let exec = |cmd: &str| LifecycleHandler {
        exec: Some(ExecAction {
            command: Some(vec!["sh".into(), "-c".into(), cmd.into()]),
        }),
        ..Default::default()
    };
    let t = Duration::from_secs(2);
    assert_eq!(
        p.run_hook(&exec("test \"$FOO\" = bar"), &cx, t).await,
        Ok(())
    );
    let e = p
        .run_hook(&exec("echo boom; exit 4"), &cx, t)
        .await
        .unwrap_err();
    assert_eq!(e, "command 'sh -c echo boom; exit 4' exited with 4: boom\n");
    let e = p
        .run_hook(&exec("exec sleep 30"), &cx, Duration::from_millis(200))
        .await
        .unwrap_err();
    assert!(e.contains("timed out"), "{e}");

    let addr = http_server().await;
    let get = |port: u16| LifecycleHandler {
        http_get: Some(HTTPGetAction {
            port: IntOrString::Int(port.into()),
            path: Some("/bad".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    // Status codes do not fail an httpGet hook, only transport errors do.
    assert_eq!(p.run_hook(&get(addr.port()), &cx, t).await, Ok(()));
    let free = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let closed = free.local_addr().unwrap().port();
    drop(free);
    assert!(p.run_hook(&get(closed), &cx, t).await.is_err());

    let sleep = |s: i64| LifecycleHandler {
        sleep: Some(SleepAction { seconds: s }),
        ..Default::default()
    };
    let start = Instant::now();
    assert_eq!(p.run_hook(&sleep(1), &cx, t).await, Ok(()));
    assert!(start.elapsed() >= Duration::from_secs(1));
    // Cut short by the timeout (grace period).
    let start = Instant::now();
    assert_eq!(
        p.run_hook(&sleep(30), &cx, Duration::from_millis(100))
            .await,
        Ok(())
    );
    assert!(start.elapsed() < Duration::from_secs(1));
}
