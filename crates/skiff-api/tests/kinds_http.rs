//! Issue 12's kinds over HTTP (`skiff_api::http::router` driven with `tower::ServiceExt`):
//! discovery of the `apps` and `batch` groups (legacy and aggregated, categories, the `scale`
//! subresource's autoscaling/v1 kind), the `/scale` and `/status` subresources, 422 Status
//! rendering, Tables, field selectors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use axum::Router;
use bytes::Bytes;
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{json, Value};
use skiff_api::node::{LogError, LogOptions, LogStream, NodeBackend};
use skiff_api::registry::Api;
use skiff_api::store::{Store, StoreConfig};
use tower::ServiceExt;

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
        Err(LogError {
            code: 404,
            message: "no logs".into(),
        })
    }
}

async fn setup() -> (Router, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    let api = Api::open(store, Arc::new(FakeNode)).await.unwrap();
    (skiff_api::http::router(api), dir)
}

async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> (StatusCode, Value) {
    let mut req = Request::builder().method(method).uri(uri);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = app
        .clone()
        .oneshot(req.body(body.into()).unwrap())
        .await
        .unwrap();
    let status = resp.status();
    let body: Bytes = resp.into_body().collect().await.unwrap().to_bytes();
    (status, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

async fn get(app: &Router, uri: &str, accept: &str) -> (StatusCode, Value) {
    call(app, Method::GET, uri, &[("accept", accept)], Body::empty()).await
}

async fn post(app: &Router, uri: &str, obj: Value) -> (StatusCode, Value) {
    call(
        app,
        Method::POST,
        uri,
        &[("content-type", "application/json")],
        serde_json::to_vec(&obj).unwrap(),
    )
    .await
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web"},
        "spec": {"replicas": 2, "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "c", "image": "busybox"}]}}},
    })
}

#[tokio::test]
async fn discovery_of_apps_and_batch() {
    let (app, _d) = setup().await;
    let (s, v) = get(&app, "/apis", "application/json").await;
    assert_eq!(s, StatusCode::OK);
    let groups: Vec<&str> = v["groups"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["name"].as_str().unwrap())
        .collect();
    assert!(groups.contains(&"apps") && groups.contains(&"batch"), "{v}");
    let (_, v) = get(&app, "/apis/batch", "application/json").await;
    assert_eq!(v["kind"], "APIGroup");
    assert_eq!(v["preferredVersion"]["groupVersion"], "batch/v1");

    let (s, v) = get(&app, "/apis/apps/v1", "application/json").await;
    assert_eq!(s, StatusCode::OK);
    let res = v["resources"].as_array().unwrap();
    let find = |n: &str| res.iter().find(|r| r["name"] == n).cloned().unwrap();
    let d = find("deployments");
    assert_eq!(d["shortNames"], json!(["deploy"]));
    assert_eq!(d["categories"], json!(["all"]));
    assert_eq!(d["kind"], "Deployment");
    let scale = find("deployments/scale");
    assert_eq!(
        (&scale["group"], &scale["version"], &scale["kind"]),
        (&json!("autoscaling"), &json!("v1"), &json!("Scale"))
    );
    assert_eq!(scale["verbs"], json!(["get", "patch", "update"]));
    assert_eq!(find("replicasets")["shortNames"], json!(["rs"]));
    let (_, v) = get(&app, "/apis/batch/v1", "application/json").await;
    let res = v["resources"].as_array().unwrap();
    let cj = res.iter().find(|r| r["name"] == "cronjobs").unwrap();
    assert_eq!(cj["shortNames"], json!(["cj"]));
    assert!(res.iter().any(|r| r["name"] == "jobs/status"));
    let (_, v) = get(&app, "/api/v1", "application/json").await;
    let res = v["resources"].as_array().unwrap();
    let short = |n: &str| {
        res.iter()
            .find(|r| r["name"] == n)
            .map(|r| r["shortNames"].clone())
    };
    assert_eq!(short("limitranges"), Some(json!(["limits"])));
    assert_eq!(short("resourcequotas"), Some(json!(["quota"])));
    assert!(res.iter().any(|r| r["name"] == "resourcequotas/status"));

    // Aggregated (kubectl 1.33): responseKind of /scale is autoscaling/v1 Scale.
    let agg =
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json";
    let (_, v) = get(&app, "/apis", agg).await;
    let apps = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|g| g["metadata"]["name"] == "apps")
        .unwrap();
    let deploy = apps["versions"][0]["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "deployments")
        .unwrap();
    assert_eq!(deploy["categories"], json!(["all"]));
    let subs = deploy["subresources"].as_array().unwrap();
    assert_eq!(subs[0]["subresource"], "status");
    assert_eq!(subs[0]["responseKind"]["kind"], "Deployment");
    assert_eq!(subs[1]["subresource"], "scale");
    assert_eq!(
        subs[1]["responseKind"],
        json!({"group": "autoscaling", "version": "v1", "kind": "Scale"})
    );
}

#[tokio::test]
async fn scale_and_status_over_http() {
    let (app, _d) = setup().await;
    let base = "/apis/apps/v1/namespaces/default/deployments";
    let (s, d) = post(&app, base, deployment()).await;
    assert_eq!(s, StatusCode::CREATED, "{d}");
    let (s, sc) = get(&app, &format!("{base}/web/scale"), "application/json").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(sc["kind"], "Scale");
    assert_eq!(sc["apiVersion"], "autoscaling/v1");
    assert_eq!(sc["spec"]["replicas"], 2);
    assert_eq!(sc["status"]["selector"], "app=web");
    assert_eq!(
        sc["metadata"]["resourceVersion"],
        d["metadata"]["resourceVersion"]
    );
    // kubectl scale: a merge patch of the Scale.
    let (s, sc) = call(
        &app,
        Method::PATCH,
        &format!("{base}/web/scale"),
        &[("content-type", "application/merge-patch+json")],
        r#"{"spec":{"replicas":5}}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{sc}");
    assert_eq!(sc["spec"]["replicas"], 5);
    let (_, d) = get(&app, &format!("{base}/web"), "application/json").await;
    assert_eq!(d["spec"]["replicas"], 5);
    assert_eq!(d["metadata"]["generation"], 2);
    // /status of a resource without one: 404.
    let (s, _) = get(
        &app,
        "/api/v1/namespaces/default/limitranges/x/status",
        "application/json",
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    let (s, _) = get(
        &app,
        "/apis/batch/v1/namespaces/default/jobs/x/scale",
        "application/json",
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    // /status PUT keeps the spec.
    let mut st = d.clone();
    st["spec"]["replicas"] = json!(9);
    st["status"] =
        json!({"replicas": 5, "readyReplicas": 4, "updatedReplicas": 5, "availableReplicas": 4});
    let (s, out) = call(
        &app,
        Method::PUT,
        &format!("{base}/web/status"),
        &[("content-type", "application/json")],
        serde_json::to_vec(&st).unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK, "{out}");
    assert_eq!(out["spec"]["replicas"], 5);
    assert_eq!(out["status"]["readyReplicas"], 4);
    // The Table shows it.
    let table = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json";
    let (_, t) = get(&app, base, table).await;
    assert_eq!(t["kind"], "Table");
    assert_eq!(
        t["rows"][0]["cells"],
        json!([
            "web",
            "4/5",
            5,
            4,
            t["rows"][0]["cells"][4],
            "c",
            "busybox",
            "app=web"
        ])
    );
}

#[tokio::test]
async fn invalid_job_is_a_422_status() {
    let (app, _d) = setup().await;
    let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": "j"},
        "spec": {"template": {"spec": {"restartPolicy": "Always", "containers": [{"name": "c", "image": "busybox"}]}}}});
    let (s, v) = post(&app, "/apis/batch/v1/namespaces/default/jobs", job).await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{v}");
    assert_eq!(v["kind"], "Status");
    assert_eq!(v["reason"], "Invalid");
    assert_eq!(v["details"]["group"], "batch");
    assert_eq!(v["details"]["kind"], "Job");
    assert!(
        v["message"]
            .as_str()
            .unwrap()
            .starts_with("Job.batch \"j\" is invalid: spec.template.spec.restartPolicy: "),
        "{v}"
    );
    // Wrong apiVersion for the group.
    let (s, v) = post(
        &app,
        "/apis/batch/v1/namespaces/default/jobs",
        json!({"apiVersion": "v1", "kind": "Job", "metadata": {"name": "j"}}),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST, "{v}");
}

#[tokio::test]
async fn job_field_selector_over_http() {
    let (app, _d) = setup().await;
    for n in ["a", "b"] {
        let job = json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": n},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "c", "image": "busybox"}]}}}});
        let (s, v) = post(&app, "/apis/batch/v1/namespaces/default/jobs", job).await;
        assert_eq!(s, StatusCode::CREATED, "{v}");
    }
    let (s, _) = call(
        &app,
        Method::PATCH,
        "/apis/batch/v1/namespaces/default/jobs/a/status",
        &[("content-type", "application/merge-patch+json")],
        r#"{"status":{"succeeded":1}}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let (s, v) = get(
        &app,
        "/apis/batch/v1/jobs?fieldSelector=status.successful%3D1",
        "application/json",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["kind"], "JobList");
    assert_eq!(v["apiVersion"], "batch/v1");
    let names: Vec<&str> = v["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["a"]);
}
