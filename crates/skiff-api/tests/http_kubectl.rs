//! The real kubectl binaries (1.33 and 1.27, and the `kubectl` dispatcher) against
//! `skiff_api::http::router` served on plain HTTP on 127.0.0.1 (TLS and tokens are the
//! transport's; here only the HTTP layer is under test). Each kubectl run gets its own HOME
//! and cache dir, so every command does its own discovery.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStatus, Event, Node, ObjectReference, Pod,
    PodCondition, PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use serde_json::{json, Value};
use skiff_api::node::{LogError, LogOptions, LogStream, NodeBackend};
use skiff_api::registry::{resource, Api, BodyFormat, WriteOptions};
use skiff_api::store::{Store, StoreConfig};

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
    fn logs(&self, _pod: &Pod, o: &LogOptions) -> Result<LogStream, LogError> {
        let text = format!("hello from {}\nsecond line\n", o.container);
        Ok(Box::pin(futures_util::stream::iter(vec![Ok(Bytes::from(
            text,
        ))])))
    }
}

/// The directory of the versioned kubectl binaries (beside the `kubectl` dispatcher).
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
    async fn kubectl(&self, version: &str, args: &[&str]) -> (i32, String, String) {
        let out = self.command(version, args).output().await.unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn command(&self, version: &str, args: &[&str]) -> tokio::process::Command {
        let n = self.runs.fetch_add(1, Ordering::SeqCst);
        let home = self.dir.path().join(format!("home{n}"));
        std::fs::create_dir_all(&home).unwrap();
        let exe = if version.is_empty() {
            self.bin.join("kubectl")
        } else {
            self.bin.join(format!("kubectl.{version}"))
        };
        let mut c = tokio::process::Command::new(exe);
        c.env("HOME", &home)
            .env("KUBECONFIG", &self.kubeconfig)
            .env("KUBECACHEDIR", home.join("cache"))
            .arg(format!("--cache-dir={}", home.join("cache").display()))
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        c
    }
}

async fn start() -> Option<(Env, Api)> {
    let Some(bin) = kubectl_dir() else {
        eprintln!("kubectl binaries not found; skipping");
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("store"), StoreConfig::default()).unwrap();
    let api = Api::open(store, Arc::new(FakeNode)).await.unwrap();
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
    ))
}

async fn create(api: &Api, plural: &str, ns: &str, obj: Value) {
    let r = resource("", plural).unwrap();
    // The registry may already have made it (the default namespaces).
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

fn running(name: &str, restarts: i32) -> ContainerStatus {
    ContainerStatus {
        name: name.into(),
        image: "busybox".into(),
        image_id: String::new(),
        ready: true,
        started: Some(true),
        restart_count: restarts,
        state: Some(ContainerState {
            running: Some(ContainerStateRunning::default()),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Namespaces, a running two-container pod `web` (its status written the kubelet's way), an
/// event about it.
async fn seed(api: &Api) {
    for ns in ["default", "kube-system"] {
        create(
            api,
            "namespaces",
            "",
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}, "status": {"phase": "Active"}}),
        )
        .await;
    }
    create(
        api,
        "pods",
        "default",
        json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
            "spec": {"nodeName": "node1", "containers": [
                {"name": "app", "image": "busybox"}, {"name": "side", "image": "busybox"}]}
        }),
    )
    .await;
    let pod = api
        .get(resource("", "pods").unwrap(), "default", "web")
        .unwrap();
    let uid = pod["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let status = PodStatus {
        phase: Some("Running".into()),
        pod_ip: Some("10.88.0.5".into()),
        pod_ips: Some(vec![PodIP {
            ip: "10.88.0.5".into(),
        }]),
        conditions: Some(vec![PodCondition {
            type_: "Ready".into(),
            status: "True".into(),
            ..Default::default()
        }]),
        container_statuses: Some(vec![running("app", 0), running("side", 0)]),
        ..Default::default()
    };
    let res = api
        .set_pod_statuses(vec![("default".into(), "web".into(), uid.clone(), status)])
        .await;
    assert!(res.iter().all(Result::is_ok), "{res:?}");
    api.record_events(vec![Event {
        metadata: ObjectMeta {
            name: Some("web.1".into()),
            namespace: Some("default".into()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            kind: Some("Pod".into()),
            name: Some("web".into()),
            namespace: Some("default".into()),
            uid: Some(uid),
            api_version: Some("v1".into()),
            ..Default::default()
        },
        reason: Some("Started".into()),
        message: Some("Started container app".into()),
        type_: Some("Normal".into()),
        count: Some(1),
        first_timestamp: Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)),
        last_timestamp: Some(Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH)),
        ..Default::default()
    }])
    .await;
}

fn words(line: &str) -> Vec<&str> {
    line.split("  ")
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect()
}

async fn basic_commands(env: &Env, v: &str) {
    // get pods: the server's Table, kubectl's columns.
    let (rc, out, err) = env.kubectl(v, &["get", "pods"]).await;
    assert_eq!(rc, 0, "{v} get pods: {err}");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(
        words(lines[0]),
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{out}"
    );
    assert_eq!(
        &words(lines[1])[..4],
        ["web", "2/2", "Running", "0"],
        "{out}"
    );

    let (rc, out, err) = env.kubectl(v, &["get", "pods", "-o", "wide"]).await;
    assert_eq!(rc, 0, "{err}");
    assert_eq!(
        words(out.lines().next().unwrap()),
        [
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES"
        ],
        "{out}"
    );
    let row = words(out.lines().nth(1).unwrap()).join("|");
    assert!(row.ends_with("10.88.0.5|node1|<none>|<none>"), "{out}");

    let (rc, out, err) = env.kubectl(v, &["get", "pod", "web", "-o", "json"]).await;
    assert_eq!(rc, 0, "{err}");
    let pod: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(pod["kind"], "Pod");
    assert_eq!(pod["metadata"]["name"], "web");
    let (rc, out, _) = env.kubectl(v, &["get", "pod", "web", "-o", "yaml"]).await;
    assert_eq!(rc, 0);
    assert!(out.contains("name: web"), "{out}");
    let (rc, out, _) = env.kubectl(v, &["get", "pods", "-o", "name"]).await;
    assert_eq!((rc, out.trim()), (0, "pod/web"));
    let (rc, out, _) = env
        .kubectl(v, &["get", "pod", "web", "-o", "jsonpath={.status.podIP}"])
        .await;
    assert_eq!((rc, out.as_str()), (0, "10.88.0.5"));

    let (rc, out, err) = env.kubectl(v, &["get", "ns"]).await;
    assert_eq!(rc, 0, "{err}");
    assert_eq!(
        words(out.lines().next().unwrap()),
        ["NAME", "STATUS", "AGE"]
    );
    assert!(
        out.lines().any(|l| words(l)[..2] == ["default", "Active"]),
        "{out}"
    );

    let (rc, out, err) = env.kubectl(v, &["api-resources"]).await;
    assert_eq!(rc, 0, "{err}");
    let pods = out
        .lines()
        .find(|l| l.starts_with("pods "))
        .unwrap_or_else(|| panic!("{out}"));
    assert_eq!(words(pods), ["pods", "po", "v1", "true", "Pod"]);
    assert!(out.lines().any(|l| l.starts_with("namespaces ")), "{out}");

    let (rc, out, err) = env.kubectl(v, &["describe", "pod", "web"]).await;
    assert_eq!(rc, 0, "{err}");
    assert!(out.contains("Name:") && out.contains("web"), "{out}");
    let events = out
        .split("Events:")
        .nth(1)
        .unwrap_or_else(|| panic!("{out}"));
    assert!(
        events.contains("Started") && events.contains("Started container app"),
        "{out}"
    );

    let (rc, out, err) = env.kubectl(v, &["get", "events"]).await;
    assert_eq!(rc, 0, "{err}");
    assert_eq!(
        words(out.lines().next().unwrap()),
        ["LAST SEEN", "TYPE", "REASON", "OBJECT", "MESSAGE"],
        "{out}"
    );
    assert!(out.contains("pod/web"), "{out}");

    let (rc, out, err) = env.kubectl(v, &["logs", "web", "-c", "side"]).await;
    assert_eq!(rc, 0, "{err}");
    assert_eq!(out, "hello from side\nsecond line\n");
    let (rc, out, _) = env.kubectl(v, &["logs", "-f", "web", "-c", "app"]).await;
    assert_eq!((rc, out.as_str()), (0, "hello from app\nsecond line\n"));

    let (rc, _, err) = env.kubectl(v, &["get", "pod", "nope"]).await;
    assert_eq!(rc, 1);
    assert!(
        err.contains("Error from server (NotFound): pods \"nope\" not found"),
        "{err}"
    );
}

async fn watch_receives_event(env: &Env, api: &Api, v: &str, name: &str) {
    use tokio::io::AsyncBufReadExt;
    let mut cmd = env.command(v, &["get", "pods", "-w"]);
    cmd.stdout(std::process::Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
    // The list first (web), then the watch.
    let first = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(first.starts_with("NAME"), "{first}");
    let web = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(web.starts_with("web "), "{web}");
    // Give kubectl time to start its watch, then make a change.
    tokio::time::sleep(Duration::from_millis(500)).await;
    create(
        api,
        "pods",
        "default",
        json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": "default"},
            "spec": {"containers": [{"name": "c", "image": "busybox"}]}}),
    )
    .await;
    let line = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(line.starts_with(&format!("{name} ")), "{line}");
    // READY from the Table (its STATUS depends on what the registry makes of a new pod).
    assert_eq!(words(&line)[1], "0/1", "{line}");
    child.kill().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_33() {
    let Some((env, api)) = start().await else {
        return;
    };
    basic_commands(&env, "1.33").await;
    watch_receives_event(&env, &api, "1.33", "w133").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_1_27() {
    let Some((env, api)) = start().await else {
        return;
    };
    basic_commands(&env, "1.27").await;
    watch_receives_event(&env, &api, "1.27", "w127").await;
}

/// The plain `kubectl` is a dispatcher that picks `kubectl.1.<minor>` from `/version`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dispatcher_picks_1_33() {
    let Some((env, _api)) = start().await else {
        return;
    };
    let (rc, out, err) = env.kubectl("", &["version", "-o", "json"]).await;
    assert_eq!(rc, 0, "{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["clientVersion"]["minor"], "33", "{out}");
    assert_eq!(v["serverVersion"]["minor"], "33", "{out}");
}
