//! Server time of `kubectl get pods` with 1000 pods: the Table list request
//! (`GET /api/v1/namespaces/default/pods?limit=500` with kubectl's Table Accept) through the
//! HTTP router, from the request to the last byte of the response body; then the mean time
//! of a single pod's GET (the per-request cost: routing, metrics, a small answer).
//!
//! `cargo run --release -p skiff-api --example list_bench [PODS] [ROUNDS]`
//! With `--serve PORT` it then serves the API on 127.0.0.1:PORT (plain HTTP) for timing real
//! kubectl runs against it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStatus, Node, Pod, PodCondition, PodIP,
    PodStatus,
};
use serde_json::json;
use skiff_api::node::{LogError, LogOptions, LogStream, NodeBackend};
use skiff_api::registry::{resource, Api, BodyFormat, WriteOptions};
use skiff_api::store::{Store, StoreConfig};
use tower::ServiceExt;

struct NoNode;

impl NodeBackend for NoNode {
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
            message: "no logs here".into(),
        })
    }
}

fn status(i: usize) -> PodStatus {
    let c = |name: &str, restarts: i32| ContainerStatus {
        name: name.into(),
        image: "docker.io/library/busybox:1.36".into(),
        image_id: "sha256:0123456789abcdef".into(),
        ready: true,
        started: Some(true),
        restart_count: restarts,
        state: Some(ContainerState {
            running: Some(ContainerStateRunning::default()),
            ..Default::default()
        }),
        ..Default::default()
    };
    PodStatus {
        phase: Some("Running".into()),
        pod_ip: Some(format!("10.88.{}.{}", i / 250, i % 250 + 2)),
        pod_ips: Some(vec![PodIP {
            ip: format!("10.88.{}.{}", i / 250, i % 250 + 2),
        }]),
        conditions: Some(
            [
                "PodReadyToStartContainers",
                "Initialized",
                "Ready",
                "ContainersReady",
                "PodScheduled",
            ]
            .iter()
            .map(|t| PodCondition {
                type_: t.to_string(),
                status: "True".into(),
                ..Default::default()
            })
            .collect(),
        ),
        container_statuses: Some(vec![c("app", (i % 3) as i32)]),
        init_container_statuses: Some(vec![c("side", 0)]),
        ..Default::default()
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let serve_port = args
        .iter()
        .position(|a| a == "--serve")
        .and_then(|i| args.get(i + 1))
        .and_then(|p| p.parse::<u16>().ok());
    let nums: Vec<usize> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let pods = nums.first().copied().unwrap_or(1000);
    let rounds = nums.get(1).copied().unwrap_or(20);

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    let api = Api::open(store, Arc::new(NoNode)).await.unwrap();
    let r = resource("", "pods").unwrap();
    for i in 0..pods {
        let name = format!("pod-{i:04}");
        let pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default",
                "labels": {"app": "bench", "tier": format!("t{}", i % 7)},
                "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"apiVersion\":\"v1\",\"kind\":\"Pod\"}"}},
            "spec": {"nodeName": "node1",
                "initContainers": [{"name": "side", "image": "docker.io/library/busybox:1.36", "restartPolicy": "Always",
                    "command": ["sh", "-c", "sleep infinity"]}],
                "containers": [{"name": "app", "image": "docker.io/library/busybox:1.36",
                    "command": ["sh", "-c", "sleep infinity"], "env": [{"name": "A", "value": "1"}],
                    "resources": {"requests": {"cpu": "10m", "memory": "16Mi"}}}]}
        });
        api.create(
            r,
            "default",
            &serde_json::to_vec(&pod).unwrap(),
            BodyFormat::Json,
            &WriteOptions::default(),
        )
        .await
        .unwrap();
        let uid = api.get(r, "default", &name).unwrap()["metadata"]["uid"]
            .as_str()
            .unwrap_or("")
            .to_string();
        api.set_pod_statuses(vec![("default".into(), name, uid, status(i))])
            .await;
    }
    let app = skiff_api::http::router(api.clone());
    let accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
    let mut times: Vec<Duration> = Vec::new();
    let mut bytes = 0;
    for _ in 0..rounds {
        // As kubectl does: pages of 500, following `continue` (a registry that ignores
        // `limit` answers everything at once).
        let mut total = Duration::ZERO;
        let mut cont: Option<String> = None;
        bytes = 0;
        loop {
            let uri = match &cont {
                None => "/api/v1/namespaces/default/pods?limit=500".to_string(),
                Some(c) => format!(
                    "/api/v1/namespaces/default/pods?limit=500&continue={}",
                    query_escape(c)
                ),
            };
            let req = Request::get(uri)
                .header("accept", accept)
                .body(Body::empty())
                .unwrap();
            let t0 = Instant::now();
            let resp = app.clone().oneshot(req).await.unwrap();
            let body = resp.into_body().collect().await.unwrap().to_bytes();
            total += t0.elapsed();
            bytes += body.len();
            let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
            cont = v["metadata"]["continue"]
                .as_str()
                .filter(|c| !c.is_empty())
                .map(str::to_string);
            if cont.is_none() {
                break;
            }
        }
        times.push(total);
    }
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "Table list of {pods} pods: median {:.1} ms, min {:.1} ms, max {:.1} ms over {rounds} rounds ({} KiB)",
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1]),
        bytes / 1024
    );
    // The per-request cost (routing, metrics, a small JSON answer): a single pod's GET.
    let gets = 20_000u32;
    let mut get_times: Vec<Duration> = Vec::new();
    for _ in 0..5 {
        let t0 = Instant::now();
        for _ in 0..gets {
            let req = Request::get("/api/v1/namespaces/default/pods/pod-0000")
                .body(Body::empty())
                .unwrap();
            let resp = app.clone().oneshot(req).await.unwrap();
            let _ = resp.into_body().collect().await.unwrap();
        }
        get_times.push(t0.elapsed() / gets);
    }
    get_times.sort();
    println!(
        "GET of one pod: median {:.1} µs per request (5 runs of {gets}; min {:.1}, max {:.1})",
        get_times[2].as_secs_f64() * 1e6,
        get_times[0].as_secs_f64() * 1e6,
        get_times[4].as_secs_f64() * 1e6,
    );
    if let Some(port) = serve_port {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        println!("serving on http://127.0.0.1:{port}");
        axum::serve(listener, app).await.unwrap();
    }
}

/// Percent-encodes a query value (continue tokens are base64).
fn query_escape(v: &str) -> String {
    v.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}
