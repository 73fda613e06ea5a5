//! `/metrics` and the health endpoints through the real kubectl (`get --raw`), with the scrape
//! parsed by a Prometheus text parser (prometheus-parse): the families, labels and counts
//! after kubectl created, listed, got and watched pods.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStatus, Node, Pod, PodStatus,
};
use prometheus_parse::{Scrape, Value};
use skiff_api::metrics::Metrics;
use skiff_api::node::{LogError, LogOptions, LogStream, NodeBackend};
use skiff_api::registry::{resource, Api};
use skiff_api::store::{Store, StoreConfig};
use tokio_util::sync::CancellationToken;

struct FakeNode;

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
        Ok(Box::pin(futures_util::stream::empty()))
    }
}

fn kubectl_dir() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("kubectl"))
        .find(|p| p.exists())
        .and_then(|p| std::fs::canonicalize(p).ok())
        .and_then(|p| p.parent().map(Path::to_path_buf))
        .filter(|d| d.join("kubectl.1.33").exists())
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
        let mut c = tokio::process::Command::new(self.bin.join(format!("kubectl.{version}")));
        c.env("HOME", &home)
            .env("KUBECONFIG", &self.kubeconfig)
            .arg(format!("--cache-dir={}", home.join("cache").display()))
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        c
    }

    async fn kubectl(&self, version: &str, args: &[&str]) -> (i32, String, String) {
        let out = self.command(version, args).output().await.unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    async fn scrape(&self) -> Scrape {
        let (code, out, err) = self.kubectl("1.33", &["get", "--raw", "/metrics"]).await;
        assert_eq!(code, 0, "{err}");
        Scrape::parse(out.lines().map(|l| Ok(l.to_string()))).unwrap()
    }
}

/// The value of the sample of `metric` whose labels include `labels` (histograms: the count).
fn value(s: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    s.samples
        .iter()
        .filter(|x| x.metric == metric)
        .find(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            Value::Histogram(b) => b
                .iter()
                .find(|h| h.less_than.is_infinite())
                .map(|h| h.count)
                .unwrap_or(0.0),
            Value::Summary(_) => f64::NAN,
        })
}

async fn start() -> Option<(Env, Api, CancellationToken)> {
    let Some(bin) = kubectl_dir() else {
        eprintln!("kubectl binaries not found; skipping");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store"), StoreConfig::default()).unwrap();
    let api = Api::open(store, Arc::new(FakeNode)).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let cancel = CancellationToken::new();
    let app = skiff_api::http::router_with_metrics(api.clone(), cancel.clone(), Metrics::new());
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
    Some((
        Env {
            dir,
            kubeconfig,
            runs: AtomicUsize::new(0),
            bin,
        },
        api,
        cancel,
    ))
}

const PODS: &str = "apiVersion: v1
kind: Pod
metadata: {name: one}
spec:
  nodeName: node1
  containers: [{name: app, image: busybox}]
---
apiVersion: v1
kind: Pod
metadata: {name: two}
spec:
  nodeName: node1
  containers: [{name: app, image: busybox}, {name: side, image: busybox}]
";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_after_kubectl_and_health() {
    let Some((env, api, cancel)) = start().await else {
        return;
    };
    let file = env.dir.path().join("pods.yaml");
    std::fs::write(&file, PODS).unwrap();
    let (code, _, err) = env
        .kubectl("1.33", &["create", "-f", file.to_str().unwrap()])
        .await;
    assert_eq!(code, 0, "{err}");
    for _ in 0..3 {
        let (code, _, err) = env.kubectl("1.33", &["get", "pods"]).await;
        assert_eq!(code, 0, "{err}");
    }
    let (code, _, err) = env
        .kubectl("1.27", &["get", "pod", "one", "-o", "name"])
        .await;
    assert_eq!(code, 0, "{err}");

    // The kubelet's status for `one`: running, restarted twice.
    let pod = api
        .get(resource("", "pods").unwrap(), "default", "one")
        .unwrap();
    let uid = pod["metadata"]["uid"].as_str().unwrap().to_string();
    let status = PodStatus {
        phase: Some("Running".into()),
        pod_ip: Some("127.0.0.1".into()),
        container_statuses: Some(vec![ContainerStatus {
            name: "app".into(),
            restart_count: 2,
            state: Some(ContainerState {
                running: Some(ContainerStateRunning::default()),
                ..Default::default()
            }),
            ..Default::default()
        }]),
        ..Default::default()
    };
    for r in api
        .set_pod_statuses(vec![("default".into(), "one".into(), uid.clone(), status)])
        .await
    {
        r.unwrap();
    }

    // A watch in progress is a long-running request.
    let mut watch = env
        .command("1.33", &["get", "pods", "--watch", "-o", "name"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let long = [
        ("verb", "WATCH"),
        ("resource", "pods"),
        ("scope", "namespace"),
    ];
    let mut s = env.scrape().await;
    for _ in 0..100 {
        if value(&s, "apiserver_longrunning_requests", &long) == Some(1.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        s = env.scrape().await;
    }
    assert_eq!(
        value(&s, "apiserver_longrunning_requests", &long),
        Some(1.0)
    );

    let pods = |verb: &'static str, scope: &'static str, code: &'static str| {
        [
            ("verb", verb),
            ("group", ""),
            ("version", "v1"),
            ("resource", "pods"),
            ("subresource", ""),
            ("scope", scope),
            ("component", "apiserver"),
            ("dry_run", ""),
            ("code", code),
        ]
    };
    assert_eq!(
        value(
            &s,
            "apiserver_request_total",
            &pods("POST", "resource", "201")
        ),
        Some(2.0)
    );
    // Three `get pods`, and the list `get --watch` starts with.
    assert_eq!(
        value(
            &s,
            "apiserver_request_total",
            &pods("LIST", "namespace", "200")
        ),
        Some(4.0)
    );
    assert_eq!(
        value(
            &s,
            "apiserver_request_total",
            &pods("GET", "resource", "200")
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            &s,
            "apiserver_request_total",
            &pods("WATCH", "namespace", "200")
        ),
        Some(1.0)
    );
    let lat = &pods("LIST", "namespace", "")[..8];
    assert_eq!(
        value(&s, "apiserver_request_duration_seconds", lat),
        Some(4.0)
    );
    // Discovery and the scrape itself are non-resource requests.
    assert!(value(
        &s,
        "apiserver_request_total",
        &[("subresource", "/api"), ("code", "200")]
    )
    .is_some_and(|v| v >= 1.0));
    assert_eq!(
        value(&s, "apiserver_storage_objects", &[("resource", "pods")]),
        Some(2.0)
    );
    assert!(value(
        &s,
        "apiserver_storage_objects",
        &[("resource", "namespaces")]
    )
    .is_some_and(|v| v >= 4.0));
    assert_eq!(value(&s, "kubelet_running_pods", &[]), Some(1.0));
    assert_eq!(
        value(
            &s,
            "kubelet_running_containers",
            &[("container_state", "running")]
        ),
        Some(1.0)
    );
    assert_eq!(value(&s, "skiff_pods", &[("phase", "Running")]), Some(1.0));
    assert_eq!(value(&s, "skiff_pods", &[("phase", "Pending")]), Some(1.0));
    assert_eq!(
        value(
            &s,
            "kube_pod_container_status_restarts_total",
            &[("pod", "one"), ("container", "app"), ("uid", &uid)]
        ),
        Some(2.0)
    );
    assert!(value(&s, "skiff_store_commit_duration_seconds", &[]).is_some_and(|v| v >= 3.0));
    assert!(value(&s, "skiff_store_watchers", &[]).is_some_and(|v| v >= 1.0));
    assert_eq!(
        s.docs.get("apiserver_request_duration_seconds").map(String::as_str),
        Some("Response latency distribution in seconds for each verb, dry run value, group, version, resource, subresource, scope and component.")
    );

    // The watch ended: no longer long-running.
    watch.kill().await.unwrap();
    let _ = watch.wait().await;
    for _ in 0..100 {
        s = env.scrape().await;
        if value(&s, "apiserver_longrunning_requests", &long) == Some(0.0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        value(&s, "apiserver_longrunning_requests", &long),
        Some(0.0)
    );

    // Health, by both kubectls.
    for v in ["1.33", "1.27"] {
        let (code, out, err) = env.kubectl(v, &["get", "--raw", "/readyz?verbose"]).await;
        assert_eq!(code, 0, "{err}");
        assert_eq!(
            out,
            "[+]ping ok\n[+]log ok\n[+]etcd ok\n[+]etcd-readiness ok\n[+]shutdown ok\nreadyz check passed\n"
        );
        let (code, out, _) = env.kubectl(v, &["get", "--raw", "/livez"]).await;
        assert_eq!((code, out.as_str()), (0, "ok"));
        let (code, out, _) = env.kubectl(v, &["get", "--raw", "/healthz/etcd"]).await;
        assert_eq!((code, out.as_str()), (0, "ok"));
    }
    let (code, _, err) = env.kubectl("1.33", &["get", "--raw", "/readyz/nope"]).await;
    assert_ne!(code, 0);
    assert!(
        err.contains("NotFound") || err.contains("not find"),
        "{err}"
    );
    // Stopping: /readyz fails with the listing, /livez still passes.
    cancel.cancel();
    let (code, _, err) = env.kubectl("1.33", &["get", "--raw", "/readyz"]).await;
    assert_ne!(code, 0);
    assert!(
        err.contains("[-]shutdown failed: reason withheld") && err.contains("readyz check failed"),
        "{err}"
    );
    let (code, out, _) = env.kubectl("1.33", &["get", "--raw", "/livez"]).await;
    assert_eq!((code, out.as_str()), (0, "ok"));
}
