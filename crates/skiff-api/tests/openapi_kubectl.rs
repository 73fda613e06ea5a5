//! The real kubectl (1.33 and 1.27) against a tiny test server (plain HTTP on 127.0.0.1) that
//! serves `/version`, legacy discovery, skiff's `/openapi/v3` documents and an in-memory pods
//! endpoint whose PATCH goes through skiff's patch module. Checks: `kubectl explain` prints a
//! field from the generated schemas; `create`/`apply` send `fieldValidation=Strict` (so kubectl
//! leaves unknown fields to the server); client-side `apply` of a changed manifest sends a
//! strategic merge patch that skiff applies to the intended result; `apply --server-side`
//! creates and records managedFields.
//!
//! Skipped (with a message) when the versioned kubectl binaries are not installed (a failure
//! with `SKIFF_REQUIRE_KUBECTL=1`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // test scaffolding may panic

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde_json::{json, Value};
use skiff_api::patch::{apply_patch, server_side_apply};
use skiff_api::registry::PatchType;

/// One logged request.
#[derive(Clone, Debug)]
struct Logged {
    method: String,
    uri: String,
    content_type: String,
    body: String,
}

#[derive(Default)]
struct Srv {
    log: Mutex<Vec<Logged>>,
    pods: Mutex<HashMap<String, Value>>,
}

type S = State<Arc<Srv>>;

fn json_response(code: StatusCode, v: Value) -> Response {
    (code, [("content-type", "application/json")], v.to_string()).into_response()
}

fn log(s: &Srv, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) {
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    s.log.lock().unwrap().push(Logged {
        method: method.to_string(),
        uri: uri.to_string(),
        content_type,
        body: String::from_utf8_lossy(body).into_owned(),
    });
}

async fn fallback(
    State(s): S,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    log(&s, &method, &uri, &headers, &body);
    let path = uri.path();
    match path {
        "/version" => json_response(
            StatusCode::OK,
            json!({"major": "1", "minor": "33", "gitVersion": "v1.33.1", "platform": "linux/amd64"}),
        ),
        "/api" => json_response(
            StatusCode::OK,
            json!({"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1"}]}),
        ),
        "/apis" => json_response(
            StatusCode::OK,
            json!({"kind": "APIGroupList", "apiVersion": "v1", "groups": []}),
        ),
        "/api/v1" => {
            let r = |name: &str, kind: &str, ns: bool| {
                json!({"name": name, "singularName": "", "namespaced": ns, "kind": kind,
                    "verbs": ["create", "delete", "get", "list", "patch", "update", "watch"]})
            };
            json_response(
                StatusCode::OK,
                json!({"kind": "APIResourceList", "groupVersion": "v1", "resources": [
                    r("pods", "Pod", true), r("namespaces", "Namespace", false), r("configmaps", "ConfigMap", true),
                    r("nodes", "Node", false), r("secrets", "Secret", true),
                    r("serviceaccounts", "ServiceAccount", true), r("events", "Event", true)
                ]}),
            )
        }
        "/openapi/v2" => (
            StatusCode::OK,
            [("content-type", skiff_api::openapi::v2::PROTOBUF)],
            skiff_api::openapi::v2::document(skiff_api::openapi::v2::Format::Protobuf),
        )
            .into_response(),
        "/openapi/v3" => json_response(StatusCode::OK, skiff_api::openapi::v3_index()),
        p if p.starts_with("/openapi/v3/") => {
            match skiff_api::openapi::v3_document(&p["/openapi/v3/".len()..]) {
                Some(b) => {
                    (StatusCode::OK, [("content-type", "application/json")], b).into_response()
                }
                None => StatusCode::NOT_FOUND.into_response(),
            }
        }
        _ => json_response(
            StatusCode::NOT_FOUND,
            json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404, "message": "the server could not find the requested resource"}),
        ),
    }
}

fn not_found(name: &str) -> Response {
    json_response(
        StatusCode::NOT_FOUND,
        json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "reason": "NotFound",
            "details": {"name": name, "kind": "pods"}, "code": 404, "message": format!("pods \"{name}\" not found")}),
    )
}

async fn pods(State(s): S, method: Method, uri: Uri, headers: HeaderMap, body: Bytes) -> Response {
    log(&s, &method, &uri, &headers, &body);
    let Ok(mut pod) = serde_json::from_slice::<Value>(&body) else {
        return StatusCode::BAD_REQUEST.into_response();
    };
    let name = pod["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    pod["metadata"]["namespace"] = json!("default");
    pod["metadata"]["uid"] = json!("u-1");
    pod["metadata"]["resourceVersion"] = json!("1");
    s.pods.lock().unwrap().insert(name, pod.clone());
    json_response(StatusCode::CREATED, pod)
}

async fn pod(
    State(s): S,
    UrlPath((_ns, name)): UrlPath<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    log(&s, &method, &uri, &headers, &body);
    let live = s.pods.lock().unwrap().get(&name).cloned();
    match method.as_str() {
        "GET" => match live {
            Some(p) => json_response(StatusCode::OK, p),
            None => not_found(&name),
        },
        "PATCH" => {
            let ct = headers
                .get("content-type")
                .and_then(|v| v.to_str().ok())
                .unwrap_or("");
            let result = if ct.starts_with("application/apply-patch") {
                let manager = uri
                    .query()
                    .unwrap_or("")
                    .split('&')
                    .find_map(|kv| kv.strip_prefix("fieldManager="))
                    .unwrap_or("");
                let applied: Value = match serde_json::from_slice(&body) {
                    Ok(v) => v,
                    Err(_) => return StatusCode::UNSUPPORTED_MEDIA_TYPE.into_response(),
                };
                server_side_apply("Pod", live.as_ref(), &applied, manager, true)
            } else {
                let Some(live) = live else {
                    return not_found(&name);
                };
                let t = match ct {
                    "application/json-patch+json" => PatchType::Json,
                    "application/merge-patch+json" => PatchType::Merge,
                    _ => PatchType::StrategicMerge,
                };
                apply_patch("Pod", t, &live, &body)
            };
            match result {
                Ok(p) => {
                    s.pods.lock().unwrap().insert(name, p.clone());
                    json_response(StatusCode::OK, p)
                }
                Err(e) => json_response(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure", "message": e.to_string(), "reason": "Invalid", "code": 422}),
                ),
            }
        }
        _ => StatusCode::METHOD_NOT_ALLOWED.into_response(),
    }
}

/// Starts the server on a thread of its own; returns its base URL and state.
fn start() -> (String, Arc<Srv>) {
    let state = Arc::new(Srv::default());
    let st = state.clone();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = Router::new()
                .route("/api/v1/namespaces/{ns}/pods", axum::routing::post(pods))
                .route("/api/v1/namespaces/{ns}/pods/{name}", get(pod).patch(pod))
                .fallback(fallback)
                .with_state(st);
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap().port()).unwrap();
            axum::serve(l, app).await.unwrap();
        });
    });
    let port = rx.recv().unwrap();
    (format!("http://127.0.0.1:{port}"), state)
}

/// The versioned kubectl: on PATH, or beside the `kubectl` dispatcher (its real directory).
fn kubectl_bin(version: &str) -> Option<PathBuf> {
    let found = find_kubectl(version);
    // No project script installs kubectl (it comes with this machine's image), so a machine
    // without it skips rather than fails, CI included; SKIFF_REQUIRE_KUBECTL=1 makes it a failure.
    assert!(
        found.is_some() || std::env::var_os("SKIFF_REQUIRE_KUBECTL").is_none(),
        "kubectl.{version} not found on PATH"
    );
    found
}

fn find_kubectl(version: &str) -> Option<PathBuf> {
    let name = format!("kubectl.{version}");
    let path = std::env::var_os("PATH")?;
    for dir in std::env::split_paths(&path) {
        if dir.join(&name).is_file() {
            return Some(dir.join(&name));
        }
        if let Ok(real) = std::fs::canonicalize(dir.join("kubectl")) {
            let cand = real.with_file_name(&name);
            if cand.is_file() {
                return Some(cand);
            }
        }
    }
    None
}

struct Kubectl {
    bin: PathBuf,
    home: tempfile::TempDir,
}

impl Kubectl {
    fn new(version: &str, server: &str) -> Option<Kubectl> {
        let bin = kubectl_bin(version)?;
        let home = tempfile::tempdir().unwrap();
        let cfg = format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: t\n  cluster:\n    server: {server}\ncontexts:\n- name: t\n  context:\n    cluster: t\n    user: u\n    namespace: default\ncurrent-context: t\nusers:\n- name: u\n  user:\n    token: test\n"
        );
        std::fs::write(home.path().join("kubeconfig"), cfg).unwrap();
        Some(Kubectl { bin, home })
    }

    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let h = self.home.path();
        let out = Command::new(&self.bin)
            .args(args)
            .arg(format!("--cache-dir={}", h.join("cache").display()))
            .env("HOME", h)
            .env("KUBECONFIG", h.join("kubeconfig"))
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    fn file(&self, name: &str, text: &str) -> String {
        let p = self.home.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    }
}

const POD: &str = "apiVersion: v1
kind: Pod
metadata:
  name: web
spec:
  initContainers:
  - name: side
    image: busybox:1
    restartPolicy: Always
  containers:
  - name: app
    image: nginx
    ports:
    - containerPort: 80
";

fn requests(s: &Srv, method: &str, path_prefix: &str) -> Vec<Logged> {
    s.log
        .lock()
        .unwrap()
        .iter()
        .filter(|l| l.method == method && l.uri.starts_with(path_prefix))
        .cloned()
        .collect()
}

fn explain(version: &str) {
    let (url, _s) = start();
    let Some(k) = Kubectl::new(version, &url) else {
        eprintln!("kubectl.{version} not installed: skipped");
        return;
    };
    let (rc, out, err) = k.run(&["explain", "pods.spec.initContainers.restartPolicy"]);
    assert_eq!(rc, 0, "kubectl.{version} explain: {out}\n{err}");
    eprintln!("kubectl.{version} explain:\n{out}");
    assert!(out.contains("KIND:") && out.contains("Pod"), "{out}");
    assert!(
        out.contains("FIELD: restartPolicy <string>")
            || out.contains("FIELD:    restartPolicy <string>"),
        "{out}"
    );
    assert!(out.contains("sidecar"), "{out}");
    let (rc, out, err) = k.run(&["explain", "pods.spec.containers.ports"]);
    assert_eq!(rc, 0, "{err}");
    assert!(out.contains("containerPort"), "{out}");
    let (rc, out, err) = k.run(&["explain", "pods", "--recursive"]);
    assert_eq!(rc, 0, "{err}");
    assert!(
        out.contains("restartPolicy") && out.contains("ephemeralContainers"),
        "{out}"
    );
    for what in [
        "nodes.status.conditions",
        "configmaps.data",
        "secrets.type",
        "serviceaccounts",
        "events.involvedObject",
        "namespaces.spec.finalizers",
    ] {
        let (rc, out, err) = k.run(&["explain", what]);
        assert_eq!(rc, 0, "kubectl.{version} explain {what}: {out}{err}");
        assert!(out.contains("DESCRIPTION"), "{out}");
    }
}

#[test]
fn kubectl_1_33_explain() {
    explain("1.33");
}

#[test]
fn kubectl_1_27_explain() {
    explain("1.27");
}

fn create_and_apply(version: &str) {
    let (url, s) = start();
    let Some(k) = Kubectl::new(version, &url) else {
        eprintln!("kubectl.{version} not installed: skipped");
        return;
    };
    let f = k.file("pod.yaml", POD);
    // create: validation through the server (fieldValidation=Strict), not client-side
    let (rc, out, err) = k.run(&["create", "-f", &f]);
    assert_eq!(
        rc,
        0,
        "kubectl.{version} create: {out}\n{err}\n{:?}",
        s.log
            .lock()
            .unwrap()
            .iter()
            .map(|l| format!("{} {}", l.method, l.uri))
            .collect::<Vec<_>>()
    );
    let posts = requests(&s, "POST", "/api/v1/namespaces/default/pods");
    assert_eq!(posts.len(), 1, "{posts:?}");
    assert!(
        posts[0].uri.contains("fieldValidation=Strict"),
        "{}",
        posts[0].uri
    );
    s.pods.lock().unwrap().clear();

    // apply (new): POST with the last-applied annotation
    let (rc, out, err) = k.run(&["apply", "-f", &f]);
    assert_eq!(rc, 0, "kubectl.{version} apply: {out}\n{err}");
    // apply again with a changed sidecar image and an added env var: a strategic merge patch
    let changed = POD.replace("busybox:1", "busybox:2").replace(
        "    image: nginx\n",
        "    image: nginx\n    env:\n    - name: A\n      value: x\n",
    );
    let f2 = k.file("pod2.yaml", &changed);
    let (rc, out, err) = k.run(&["apply", "-f", &f2]);
    assert_eq!(rc, 0, "kubectl.{version} apply (update): {out}\n{err}");
    let patches = requests(&s, "PATCH", "/api/v1/namespaces/default/pods/web");
    assert_eq!(patches.len(), 1, "{patches:?}");
    let p = &patches[0];
    eprintln!(
        "kubectl.{version} apply PATCH {} ({}): {}",
        p.uri, p.content_type, p.body
    );
    assert_eq!(p.content_type, "application/strategic-merge-patch+json");
    assert!(p.uri.contains("fieldValidation=Strict"), "{}", p.uri);
    let live = s.pods.lock().unwrap()["web"].clone();
    assert_eq!(
        live["spec"]["initContainers"],
        json!([{"name": "side", "image": "busybox:2", "restartPolicy": "Always"}])
    );
    assert_eq!(
        live["spec"]["containers"],
        json!([{"name": "app", "image": "nginx", "ports": [{"containerPort": 80}], "env": [{"name": "A", "value": "x"}]}])
    );

    // and again: the env var removed, port 80 replaced by 8080, a finalizer added, a label set:
    // kubectl sends `$patch: delete` items, `$setElementOrder` and a primitive merge list
    let third = POD
        .replace("busybox:1", "busybox:2")
        .replace("containerPort: 80", "containerPort: 8080")
        .replace(
            "  name: web\n",
            "  name: web\n  labels:\n    app: web\n  finalizers:\n  - example.com/f\n",
        );
    let f3 = k.file("pod3.yaml", &third);
    let (rc, out, err) = k.run(&["apply", "-f", &f3]);
    assert_eq!(rc, 0, "kubectl.{version} apply (third): {out}\n{err}");
    let patches = requests(&s, "PATCH", "/api/v1/namespaces/default/pods/web");
    eprintln!("kubectl.{version} apply PATCH: {}", patches[1].body);
    let live = s.pods.lock().unwrap()["web"].clone();
    assert_eq!(
        live["spec"]["containers"],
        json!([{"name": "app", "image": "nginx", "ports": [{"containerPort": 8080}]}])
    );
    assert_eq!(live["metadata"]["finalizers"], json!(["example.com/f"]));
    assert_eq!(live["metadata"]["labels"], json!({"app": "web"}));

    // a manifest with an unknown field: kubectl does not refuse it, it asks the server to
    // (fieldValidation=Strict); the registry's strict decoding answers 400.
    let bad = POD
        .replace("name: web", "name: bad")
        .replace("  containers:\n", "  bogusField: 1\n  containers:\n");
    let f4 = k.file("bad.yaml", &bad);
    let before = requests(&s, "POST", "/api/v1/namespaces/default/pods").len();
    let (rc, _out, err) = k.run(&["apply", "-f", &f4]);
    assert_eq!(rc, 0, "{err}");
    let posts = requests(&s, "POST", "/api/v1/namespaces/default/pods");
    assert_eq!(posts.len(), before + 1);
    assert!(
        posts[before].uri.contains("fieldValidation=Strict")
            && posts[before].body.contains("bogusField")
    );
}

#[test]
fn kubectl_1_33_create_and_apply() {
    create_and_apply("1.33");
}

#[test]
fn kubectl_1_27_create_and_apply() {
    create_and_apply("1.27");
}

#[test]
fn kubectl_1_33_server_side_apply() {
    server_side_apply_by("1.33");
}

#[test]
fn kubectl_1_27_server_side_apply() {
    server_side_apply_by("1.27");
}

fn server_side_apply_by(version: &str) {
    let (url, s) = start();
    let Some(k) = Kubectl::new(version, &url) else {
        eprintln!("kubectl.{version} not installed: skipped");
        return;
    };
    let f = k.file("pod.yaml", POD);
    let (rc, out, err) = k.run(&["apply", "--server-side", "-f", &f]);
    assert_eq!(rc, 0, "{out}\n{err}");
    let patches = requests(&s, "PATCH", "/api/v1/namespaces/default/pods/web");
    assert_eq!(patches.len(), 1);
    assert_eq!(patches[0].content_type, "application/apply-patch+yaml");
    assert!(
        patches[0].uri.contains("fieldManager=kubectl") && patches[0].uri.contains("force=false"),
        "{}",
        patches[0].uri
    );
    let live = s.pods.lock().unwrap()["web"].clone();
    let mf = &live["metadata"]["managedFields"][0];
    assert_eq!(mf["manager"], "kubectl");
    assert_eq!(mf["operation"], "Apply");
    assert!(
        mf["fieldsV1"]["f:spec"]["f:initContainers"]["k:{\"name\":\"side\"}"]["f:restartPolicy"]
            .is_object(),
        "{mf}"
    );

    // a second apply with the sidecar's image changed and the app's port dropped: merged by
    // name, the port this manager no longer applies is removed, one entry for the manager
    let changed = POD
        .replace("busybox:1", "busybox:2")
        .replace("    ports:\n    - containerPort: 80\n", "");
    let f2 = k.file("pod2.yaml", &changed);
    let (rc, out, err) = k.run(&["apply", "--server-side", "-f", &f2]);
    assert_eq!(rc, 0, "{out}\n{err}");
    let live = s.pods.lock().unwrap()["web"].clone();
    assert_eq!(
        live["spec"]["initContainers"],
        json!([{"name": "side", "image": "busybox:2", "restartPolicy": "Always"}])
    );
    assert_eq!(
        live["spec"]["containers"],
        json!([{"name": "app", "image": "nginx"}])
    );
    assert_eq!(
        live["metadata"]["managedFields"].as_array().unwrap().len(),
        1
    );
}

/// `kubectl patch` with each `--type`: the body kubectl sends goes through skiff's patch module.
#[test]
fn kubectl_1_33_patch_types() {
    let (url, s) = start();
    let Some(k) = Kubectl::new("1.33", &url) else {
        eprintln!("kubectl.1.33 not installed: skipped");
        return;
    };
    let f = k.file("pod.yaml", POD);
    let (rc, _, err) = k.run(&["create", "-f", &f]);
    assert_eq!(rc, 0, "{err}");
    // strategic (the default): containers merge by name, the sidecar is untouched
    let (rc, out, err) = k.run(&[
        "patch",
        "pod",
        "web",
        "-p",
        r#"{"spec":{"containers":[{"name":"app","image":"nginx:2"}]}}"#,
    ]);
    assert_eq!(rc, 0, "{out}{err}");
    assert!(out.contains("pod/web patched"), "{out}");
    let live = s.pods.lock().unwrap()["web"].clone();
    assert_eq!(live["spec"]["containers"][0]["image"], "nginx:2");
    assert_eq!(
        live["spec"]["containers"][0]["ports"],
        json!([{"containerPort": 80}])
    );
    assert_eq!(live["spec"]["initContainers"][0]["image"], "busybox:1");
    // json
    let (rc, out, err) = k.run(&[
        "patch",
        "pod",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/initContainers/0/image","value":"busybox:3"}]"#,
    ]);
    assert_eq!(rc, 0, "{out}{err}");
    assert_eq!(
        s.pods.lock().unwrap()["web"]["spec"]["initContainers"][0]["image"],
        "busybox:3"
    );
    // a failing json patch: the server's message reaches the user
    let (rc, _out, err) = k.run(&[
        "patch",
        "pod",
        "web",
        "--type=json",
        "-p",
        r#"[{"op":"test","path":"/metadata/name","value":"other"}]"#,
    ]);
    assert_ne!(rc, 0);
    assert!(
        err.contains("testing value /metadata/name failed: test failed"),
        "{err}"
    );
    // merge: lists are replaced
    let (rc, out, err) = k.run(&[
        "patch",
        "pod",
        "web",
        "--type=merge",
        "-p",
        r#"{"spec":{"containers":[{"name":"only","image":"x"}]}}"#,
    ]);
    assert_eq!(rc, 0, "{out}{err}");
    assert_eq!(
        s.pods.lock().unwrap()["web"]["spec"]["containers"],
        json!([{"name": "only", "image": "x"}])
    );
    let types: Vec<String> = requests(&s, "PATCH", "/api/v1/namespaces/default/pods/web")
        .into_iter()
        .map(|l| l.content_type)
        .collect();
    assert_eq!(
        types,
        [
            "application/strategic-merge-patch+json",
            "application/json-patch+json",
            "application/json-patch+json",
            "application/merge-patch+json"
        ]
    );
}
