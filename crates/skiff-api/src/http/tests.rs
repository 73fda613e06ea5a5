//! The HTTP layer driven through `tower::ServiceExt::oneshot` over the registry and the
//! in-memory store: routing, negotiation, Table shape, watch framing, limits.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{header, Method, Request, StatusCode};
use axum::Router;
use bytes::Bytes;
use futures_util::StreamExt;
use http_body_util::BodyExt;
use k8s_openapi::api::core::v1::{Node, Pod};
use serde_json::{json, Value};
use tower::ServiceExt;

use crate::node::{LogError, LogOptions, LogStream, NodeBackend};
use crate::registry::Api;
use crate::store::{Store, StoreConfig};

pub(crate) struct FakeNode {
    pub seen: std::sync::Mutex<Vec<LogOptions>>,
}

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
    fn logs(&self, _pod: &Pod, options: &LogOptions) -> Result<LogStream, LogError> {
        self.seen.lock().unwrap().push(options.clone());
        if options.previous {
            return Err(LogError {
                code: 400,
                message: format!(
                    "previous terminated container \"{}\" in pod \"p\" not found",
                    options.container
                ),
            });
        }
        let chunks = vec![
            Ok(Bytes::from("line 1\n")),
            Ok(Bytes::from(format!("from {}\n", options.container))),
        ];
        Ok(Box::pin(futures_util::stream::iter(chunks)))
    }
    /// A record for the pod named "has-timeline" only.
    fn timeline(&self, pod: &Pod) -> Option<Value> {
        (pod.metadata.name.as_deref() == Some("has-timeline"))
            .then(|| json!({"version": 1, "pod": {"name": "has-timeline"}}))
    }
}

#[tokio::test]
async fn the_timeline_subresource_asks_the_node() {
    let (app, _api, _node, _dir) = setup().await;
    for name in ["has-timeline", "never-ran"] {
        let (s, _) = create_pod(&app, name).await;
        assert_eq!(s, StatusCode::CREATED);
    }
    let base = "/api/v1/namespaces/default/pods";
    let (s, v) = get_json(
        &app,
        &format!("{base}/has-timeline/timeline"),
        "application/json",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["pod"]["name"], "has-timeline");
    let (s, v) = get_json(
        &app,
        &format!("{base}/never-ran/timeline"),
        "application/json",
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(
        v["message"],
        "pod \"never-ran\" has no timeline on this node (it has not run here)"
    );
    // A pod that does not exist is the usual NotFound; the subresource is read-only.
    let (s, v) = get_json(&app, &format!("{base}/nope/timeline"), "application/json").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["message"], "pods \"nope\" not found");
    let (s, _, _) = call(
        &app,
        Method::POST,
        &format!("{base}/has-timeline/timeline"),
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
}

async fn setup() -> (Router, Api, Arc<FakeNode>, tempfile::TempDir) {
    setup_with(StoreConfig::default()).await
}

async fn setup_with(cfg: StoreConfig) -> (Router, Api, Arc<FakeNode>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), cfg).unwrap();
    let node = Arc::new(FakeNode {
        seen: Default::default(),
    });
    let api = Api::open(store, node.clone()).await.unwrap();
    (super::router(api.clone()), api, node, dir)
}

async fn call(
    app: &Router,
    method: Method,
    uri: &str,
    headers: &[(&str, &str)],
    body: impl Into<Body>,
) -> (StatusCode, axum::http::HeaderMap, Bytes) {
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
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.unwrap().to_bytes();
    (status, headers, body)
}

async fn get_json(app: &Router, uri: &str, accept: &str) -> (StatusCode, Value) {
    let (s, _, b) = call(app, Method::GET, uri, &[("accept", accept)], Body::empty()).await;
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

const TABLE: &str = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";

fn pod(name: &str) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"app": "x"}},
        "spec": {"nodeName": "node1", "containers": [{"name": "app", "image": "busybox"}, {"name": "side", "image": "busybox"}]},
        "status": {"phase": "Running"}
    })
}

async fn create_pod(app: &Router, name: &str) -> (StatusCode, Value) {
    let (s, _, b) = call(
        app,
        Method::POST,
        "/api/v1/namespaces/default/pods?fieldManager=kubectl-create&fieldValidation=Strict",
        &[("content-type", "application/json")],
        serde_json::to_vec(&pod(name)).unwrap(),
    )
    .await;
    (s, serde_json::from_slice(&b).unwrap_or(Value::Null))
}

#[tokio::test]
async fn version_and_discovery() {
    let (app, ..) = setup().await;
    let (s, v) = get_json(&app, "/version", "application/json").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["major"], "1");
    assert_eq!(v["minor"], "33");
    assert!(v["gitVersion"].as_str().unwrap().starts_with("v1.33."));

    let (s, v) = get_json(&app, "/api", "application/json").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["kind"], "APIVersions");
    assert_eq!(v["versions"], json!(["v1"]));
    let (_, v) = get_json(&app, "/apis", "application/json").await;
    assert_eq!(v["kind"], "APIGroupList");

    let (s, v) = get_json(&app, "/api/v1", "application/json, */*").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["kind"], "APIResourceList");
    assert_eq!(v["groupVersion"], "v1");
    let names: Vec<&str> = v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    for n in [
        "pods",
        "pods/status",
        "pods/log",
        "namespaces",
        "events",
        "nodes",
    ] {
        assert!(names.contains(&n), "{n} missing from {names:?}");
    }
    let pods = v["resources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "pods")
        .unwrap();
    assert_eq!(pods["shortNames"], json!(["po"]));
    assert_eq!(pods["namespaced"], true);

    // Aggregated discovery when asked (kubectl 1.33's Accept).
    let agg = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
    let (s, h, b) = call(
        &app,
        Method::GET,
        "/api?timeout=32s",
        &[("accept", agg)],
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        h[header::CONTENT_TYPE],
        "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList"
    );
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["kind"], "APIGroupDiscoveryList");
    let res = &v["items"][0]["versions"][0]["resources"];
    let pods = res
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["resource"] == "pods")
        .unwrap();
    assert_eq!(pods["scope"], "Namespaced");
    assert_eq!(pods["responseKind"]["kind"], "Pod");
    let subs: Vec<&str> = pods["subresources"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["subresource"].as_str().unwrap())
        .collect();
    assert_eq!(
        subs,
        ["status", "log", "exec", "attach", "portforward", "timeline"]
    );
    // skiff's own: the pod's lifecycle timeline, read-only.
    let timeline = pods["subresources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["subresource"] == "timeline")
        .unwrap();
    assert_eq!(timeline["verbs"], json!(["get"]));
    // kubectl 1.27 offers v2beta1 only.
    let (_, h, _) = call(
        &app,
        Method::GET,
        "/apis",
        &[("accept", "application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json")],
        Body::empty(),
    )
    .await;
    assert!(h[header::CONTENT_TYPE]
        .to_str()
        .unwrap()
        .contains("v=v2beta1"));

    for p in ["/healthz", "/livez", "/readyz", "/readyz/ping"] {
        let (s, _, b) = call(&app, Method::GET, p, &[], Body::empty()).await;
        assert_eq!((s, &b[..]), (StatusCode::OK, &b"ok"[..]), "{p}");
    }
}

#[tokio::test]
async fn openapi_caching() {
    let (app, ..) = setup().await;
    let (s, v) = get_json(&app, "/openapi/v3", "application/json, */*").await;
    assert_eq!(s, StatusCode::OK);
    let url = v["paths"]["api/v1"]["serverRelativeURL"]
        .as_str()
        .unwrap()
        .to_string();
    let (s, h, _) = call(&app, Method::GET, &url, &[], Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[header::CACHE_CONTROL], "public, immutable");
    assert!(h.contains_key(header::EXPIRES));
    let etag = h[header::ETAG].to_str().unwrap().to_string();
    let (s, _, _) = call(
        &app,
        Method::GET,
        "/openapi/v3/api/v1",
        &[("if-none-match", &etag)],
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_MODIFIED);
    let (s, h, _) = call(&app, Method::GET, "/openapi/v3/api/v1", &[], Body::empty()).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[header::CACHE_CONTROL], "no-cache, private");
    let (s, h, _) = call(
        &app,
        Method::GET,
        "/openapi/v3/api/v1?hash=stale",
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::MOVED_PERMANENTLY);
    assert_eq!(h[header::LOCATION], url.as_str());
    let (s, v) = get_json(&app, "/openapi/v3/apis/nope/v1", "application/json").await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["kind"], "Status");
}

/// kubectl 1.27/1.28 (client-go `OpenAPISchema`): `/openapi/v2` in protobuf, falling back to
/// `/swagger-2.0.0.pb-v1`; JSON for a JSON Accept; 406 otherwise; ETag and 304.
#[tokio::test]
async fn openapi_v2_by_accept() {
    use crate::openapi::v2;
    let (app, ..) = setup().await;
    let pb = "application/com.github.proto-openapi.spec.v2@v1.0+protobuf";
    let (s, h, body) = call(
        &app,
        Method::GET,
        "/openapi/v2",
        &[("accept", pb)],
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], v2::PROTOBUF);
    assert_eq!(h[header::VARY], "Accept");
    assert_eq!(body, v2::document(v2::Format::Protobuf));
    let etag = h[header::ETAG].to_str().unwrap().to_string();
    assert_eq!(etag, format!("\"{}\"", v2::etag()));
    let (s, h, body) = call(
        &app,
        Method::GET,
        "/openapi/v2",
        &[("accept", pb), ("if-none-match", &etag)],
        Body::empty(),
    )
    .await;
    assert_eq!((s, body.len()), (StatusCode::NOT_MODIFIED, 0));
    assert_eq!(h[header::ETAG], etag.as_str());
    let (s, h, body) = call(
        &app,
        Method::GET,
        "/swagger-2.0.0.pb-v1",
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], v2::PROTOBUF);
    assert_eq!(body, v2::document(v2::Format::Protobuf));
    let (s, v) = get_json(&app, "/openapi/v2", "application/json").await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["swagger"], "2.0");
    assert!(v["definitions"]["io.k8s.api.core.v1.Pod"].is_object());
    let (s, _, _) = call(
        &app,
        Method::GET,
        "/openapi/v2",
        &[("accept", "text/html")],
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::NOT_ACCEPTABLE);
    let (s, _, _) = call(&app, Method::POST, "/openapi/v2", &[], Body::empty()).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn unknown_paths_and_verbs() {
    let (app, ..) = setup().await;
    for p in [
        "/api/v1/widgets",
        "/apis/batch/v1/widgets",
        "/api/v1/pods/x",
        "/nope",
        "/api/v1/namespaces/default/pods/x/exec2",
    ] {
        let (s, v) = get_json(&app, p, "application/json").await;
        assert_eq!(s, StatusCode::NOT_FOUND, "{p}");
        assert_eq!(
            v,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                "message": "the server could not find the requested resource", "reason": "NotFound",
                "details": {}, "code": 404})
        );
    }
    let (s, _, b) = call(
        &app,
        Method::POST,
        "/api/v1/namespaces/default/pods/x",
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["reason"], "MethodNotAllowed");
    assert_eq!(v["code"], 405);
    // Namespaces have no deletecollection.
    let (s, _, _) = call(
        &app,
        Method::DELETE,
        "/api/v1/namespaces",
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
    // A namespaced resource is created under its namespace only.
    let (s, _, _) = call(&app, Method::POST, "/api/v1/pods", &[], Body::empty()).await;
    assert_eq!(s, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn crud_codes_and_errors() {
    let (app, ..) = setup().await;
    let (s, v) = create_pod(&app, "web").await;
    assert_eq!(s, StatusCode::CREATED);
    assert_eq!(v["metadata"]["name"], "web");
    let (s, v) = create_pod(&app, "web").await;
    assert_eq!(s, StatusCode::CONFLICT);
    assert_eq!(v["reason"], "AlreadyExists");
    assert_eq!(v["message"], "pods \"web\" already exists");

    let (s, v) = get_json(
        &app,
        "/api/v1/namespaces/default/pods/web",
        "application/json",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["metadata"]["name"], "web");
    let (s, v) = get_json(
        &app,
        "/api/v1/namespaces/default/pods/nope",
        "application/json",
    )
    .await;
    assert_eq!(s, StatusCode::NOT_FOUND);
    assert_eq!(v["message"], "pods \"nope\" not found");

    // Protobuf asked (describe): JSON answered.
    let (s, h, b) = call(
        &app,
        Method::GET,
        "/api/v1/namespaces/default/pods/web",
        &[(
            "accept",
            "application/vnd.kubernetes.protobuf,application/json",
        )],
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "application/json");
    assert_eq!(serde_json::from_slice::<Value>(&b).unwrap()["kind"], "Pod");

    // Plain list.
    let (s, v) = get_json(
        &app,
        "/api/v1/namespaces/default/pods?limit=500",
        "application/json",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["kind"], "PodList");
    assert_eq!(v["apiVersion"], "v1");
    assert!(v["metadata"]["resourceVersion"]
        .as_str()
        .unwrap()
        .parse::<u64>()
        .is_ok());
    assert_eq!(v["items"].as_array().unwrap().len(), 1);
    // All namespaces.
    let (s, v) = get_json(&app, "/api/v1/pods", "application/json").await;
    assert_eq!(
        (s, v["items"].as_array().unwrap().len()),
        (StatusCode::OK, 1)
    );

    // Bad parameters.
    let (s, v) = get_json(
        &app,
        "/api/v1/namespaces/default/pods?limit=abc",
        "application/json",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v["message"],
        "strconv.ParseInt: parsing \"abc\": invalid syntax"
    );
    let (s, _, b) = call(
        &app,
        Method::POST,
        "/api/v1/namespaces/default/pods?fieldValidation=Bogus",
        &[("content-type", "application/json")],
        serde_json::to_vec(&pod("z")).unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(
        v["message"],
        "CreateOptions.meta.k8s.io \"\" is invalid: fieldValidation: Unsupported value: \"Bogus\": supported values: \"\", \"Ignore\", \"Strict\", \"Warn\""
    );
    let (s, _, b) = call(
        &app,
        Method::POST,
        "/api/v1/namespaces/default/pods",
        &[("content-type", "text/plain")],
        "x",
    )
    .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        serde_json::from_slice::<Value>(&b).unwrap()["reason"],
        "UnsupportedMediaType"
    );

    // PATCH with an unknown Content-Type: kube's 415 text.
    let (s, _, b) = call(
        &app,
        Method::PATCH,
        "/api/v1/namespaces/default/pods/web",
        &[("content-type", "application/json")],
        "{}",
    )
    .await;
    assert_eq!(s, StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        serde_json::from_slice::<Value>(&b).unwrap()["message"],
        "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json, application/apply-patch+yaml"
    );
    let (s, _, b) = call(
        &app,
        Method::PATCH,
        "/api/v1/namespaces/default/pods/web",
        &[("content-type", "application/apply-patch+yaml")],
        "{}",
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(serde_json::from_slice::<Value>(&b).unwrap()["message"]
        .as_str()
        .unwrap()
        .ends_with("fieldManager: Required value: is required for apply patch"));

    // PUT (of the object as read, as clients do).
    let (_, mut p) = get_json(
        &app,
        "/api/v1/namespaces/default/pods/web",
        "application/json",
    )
    .await;
    p["metadata"]["labels"]["v"] = json!("2");
    let (s, _, b) = call(
        &app,
        Method::PUT,
        "/api/v1/namespaces/default/pods/web",
        &[("content-type", "application/json")],
        serde_json::to_vec(&p).unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(
        serde_json::from_slice::<Value>(&b).unwrap()["metadata"]["labels"]["v"],
        "2"
    );

    // DELETE of a pod answers the object; of a configmap, a Success Status.
    let (s, _, b) = call(
        &app,
        Method::DELETE,
        "/api/v1/namespaces/default/pods/web",
        &[("content-type", "application/json")],
        r#"{"propagationPolicy":"Background"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(serde_json::from_slice::<Value>(&b).unwrap()["kind"], "Pod");
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1"}});
    let (s, _, _) = call(
        &app,
        Method::POST,
        "/api/v1/namespaces/default/configmaps",
        &[],
        serde_json::to_vec(&cm).unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _, b) = call(
        &app,
        Method::DELETE,
        "/api/v1/namespaces/default/configmaps/c?gracePeriodSeconds=0",
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["kind"], "Status");
    assert_eq!(v["status"], "Success");
    assert_eq!(v["details"]["name"], "c");
    assert_eq!(v["details"]["kind"], "configmaps");
    // Bad delete options.
    let (s, _, b) = call(
        &app,
        Method::DELETE,
        "/api/v1/namespaces/default/configmaps/c",
        &[],
        r#"{"propagationPolicy":"Sideways"}"#,
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(serde_json::from_slice::<Value>(&b).unwrap()["message"]
        .as_str()
        .unwrap()
        .starts_with("DeleteOptions.meta.k8s.io \"\" is invalid: propagationPolicy: Unsupported value: \"Sideways\""));
    let (s, _, _) = call(
        &app,
        Method::DELETE,
        "/api/v1/namespaces/default/configmaps/c",
        &[],
        "{not json",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn tables_for_list_get_and_options() {
    let (app, ..) = setup().await;
    create_pod(&app, "a").await;
    create_pod(&app, "b").await;
    let (s, v) = get_json(&app, "/api/v1/namespaces/default/pods?limit=500", TABLE).await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(v["kind"], "Table");
    assert_eq!(v["apiVersion"], "meta.k8s.io/v1");
    assert!(v["metadata"]["resourceVersion"].is_string());
    let cols: Vec<(&str, i64)> = v["columnDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["priority"].as_i64().unwrap()))
        .collect();
    assert_eq!(
        cols,
        [
            ("Name", 0),
            ("Ready", 0),
            ("Status", 0),
            ("Restarts", 0),
            ("Age", 0),
            ("IP", 1),
            ("Node", 1),
            ("Nominated Node", 1),
            ("Readiness Gates", 1)
        ]
    );
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["cells"][0], "a");
    assert_eq!(rows[0]["cells"][1], "0/2");
    // STATUS as printPod derives it from what the registry stored (tables::tests pins the
    // words).
    assert!(rows[0]["cells"][2].is_string());
    assert_eq!(rows[0]["cells"][3], "0");
    assert_eq!(rows[0]["cells"][6], "node1");
    assert_eq!(rows[0]["object"]["kind"], "PartialObjectMetadata");
    assert_eq!(rows[0]["object"]["apiVersion"], "meta.k8s.io/v1");
    assert_eq!(rows[0]["object"]["metadata"]["labels"]["app"], "x");
    assert!(rows[0]["object"].get("spec").is_none());

    // v1beta1 only.
    let (_, v) = get_json(
        &app,
        "/api/v1/namespaces/default/pods",
        "application/json;as=Table;v=v1beta1;g=meta.k8s.io",
    )
    .await;
    assert_eq!(v["apiVersion"], "meta.k8s.io/v1beta1");
    assert_eq!(v["rows"][0]["object"]["apiVersion"], "meta.k8s.io/v1beta1");
    // An unknown Table version falls through to the next range.
    let (_, v) = get_json(
        &app,
        "/api/v1/namespaces/default/pods",
        "application/json;as=Table;v=v9;g=meta.k8s.io,application/json",
    )
    .await;
    assert_eq!(v["kind"], "PodList");

    // includeObject.
    let (_, v) = get_json(
        &app,
        "/api/v1/namespaces/default/pods?includeObject=Object",
        TABLE,
    )
    .await;
    assert_eq!(v["rows"][0]["object"]["spec"]["nodeName"], "node1");
    let (_, v) = get_json(
        &app,
        "/api/v1/namespaces/default/pods?includeObject=None",
        TABLE,
    )
    .await;
    assert_eq!(v["rows"][0]["object"], Value::Null);
    let (s, v) = get_json(
        &app,
        "/api/v1/namespaces/default/pods?includeObject=Bogus",
        TABLE,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["message"], "Unable to convert to Table as requested: includeObject: Invalid value: \"Bogus\": must be 'Metadata', 'Object', 'None', or empty");
    // Ignored when no Table is answered.
    let (s, _) = get_json(
        &app,
        "/api/v1/namespaces/default/pods?includeObject=Bogus",
        "application/json",
    )
    .await;
    assert_eq!(s, StatusCode::OK);

    // Single get.
    let (_, v) = get_json(&app, "/api/v1/namespaces/default/pods/a", TABLE).await;
    assert_eq!(v["kind"], "Table");
    assert_eq!(v["rows"].as_array().unwrap().len(), 1);
    assert!(v["metadata"]["resourceVersion"].is_string());

    // PartialObjectMetadataList.
    let (_, v) = get_json(
        &app,
        "/api/v1/namespaces/default/pods",
        "application/json;as=PartialObjectMetadataList;v=v1;g=meta.k8s.io,application/json",
    )
    .await;
    assert_eq!(v["kind"], "PartialObjectMetadataList");
    assert_eq!(v["items"][0]["metadata"]["name"], "a");

    // Other kinds' columns.
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"}, "data": {"a": "1", "b": "2"}});
    call(
        &app,
        Method::POST,
        "/api/v1/namespaces/default/configmaps",
        &[],
        serde_json::to_vec(&cm).unwrap(),
    )
    .await;
    let (_, v) = get_json(&app, "/api/v1/namespaces/default/configmaps", TABLE).await;
    assert_eq!(v["columnDefinitions"][1]["name"], "Data");
    assert_eq!(v["rows"][0]["cells"][1], 2);
}

#[tokio::test]
async fn body_limit_and_deep_nesting() {
    let (app, ..) = setup().await;
    // Declared too large: refused without reading.
    let (s, _, b) = call(
        &app,
        Method::POST,
        "/api/v1/namespaces/default/configmaps",
        &[("content-length", "4000000")],
        Body::from(vec![b' '; 16]),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    let v: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(v["reason"], "RequestEntityTooLarge");
    assert_eq!(v["message"], "Request entity too large: limit is 3145728");
    // Streamed (no length) and too large: cut at the limit.
    let chunks = (0..100).map(|_| Ok::<_, std::io::Error>(Bytes::from(vec![b' '; 64 * 1024])));
    let (s, _, _) = call(
        &app,
        Method::POST,
        "/api/v1/namespaces/default/configmaps",
        &[],
        Body::from_stream(futures_util::stream::iter(chunks)),
    )
    .await;
    assert_eq!(s, StatusCode::PAYLOAD_TOO_LARGE);
    // Deeply nested JSON is a 400, not a stack overflow.
    let deep = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let (s, _, _) = call(
        &app,
        Method::POST,
        "/api/v1/namespaces/default/configmaps",
        &[],
        deep.clone(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    let (s, _, _) = call(
        &app,
        Method::DELETE,
        "/api/v1/namespaces/default/configmaps/x",
        &[],
        deep.clone(),
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // The same as YAML (a flow sequence is YAML too).
    let (s, _, _) = call(
        &app,
        Method::POST,
        "/api/v1/namespaces/default/configmaps",
        &[("content-type", "application/yaml")],
        deep,
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    // And the server still answers.
    let (s, _) = get_json(
        &app,
        "/api/v1/namespaces/default/configmaps",
        "application/json",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn warnings_become_headers() {
    let mut h = axum::http::HeaderMap::new();
    super::add_warnings(
        &mut h,
        &[
            "unknown field \"spec.foo\"".to_string(),
            "two\nlines".to_string(),
        ],
    );
    let w: Vec<&str> = h
        .get_all(header::WARNING)
        .iter()
        .map(|v| v.to_str().unwrap())
        .collect();
    assert_eq!(
        w,
        [
            "299 - \"unknown field \\\"spec.foo\\\"\"",
            "299 - \"twolines\""
        ]
    );
}

/// Reads the next NDJSON line of a watch body.
async fn next_line(body: &mut axum::body::BodyDataStream, buf: &mut Vec<u8>) -> Option<Value> {
    loop {
        if let Some(i) = buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = buf.drain(..=i).collect();
            return Some(serde_json::from_slice(&line).unwrap());
        }
        match tokio::time::timeout(Duration::from_secs(5), body.next()).await {
            Ok(Some(Ok(chunk))) => buf.extend_from_slice(&chunk),
            _ => return None,
        }
    }
}

#[tokio::test]
async fn watch_streams_table_events_and_times_out() {
    let (app, api, ..) = setup().await;
    create_pod(&app, "a").await;
    let rv = api.store().current_rev();
    let resp = app
        .clone()
        .oneshot(
            Request::get(format!(
                "/api/v1/namespaces/default/pods?resourceVersion={rv}&watch=true&timeoutSeconds=2&allowWatchBookmarks=true"
            ))
            .header("accept", TABLE)
            .body(Body::empty())
            .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let mut body = resp.into_body().into_data_stream();
    let mut buf = Vec::new();
    create_pod(&app, "b").await;
    let ev = next_line(&mut body, &mut buf).await.unwrap();
    assert_eq!(ev["type"], "ADDED");
    assert_eq!(ev["object"]["kind"], "Table");
    assert_eq!(ev["object"]["columnDefinitions"][0]["name"], "Name");
    assert_eq!(ev["object"]["rows"][0]["cells"][0], "b");
    let new_rv = api.store().current_rev().to_string();
    // timeoutSeconds=2: a bookmark, then the end of the stream.
    let t0 = std::time::Instant::now();
    let ev = next_line(&mut body, &mut buf).await.unwrap();
    assert_eq!(ev["type"], "BOOKMARK");
    assert_eq!(ev["object"]["metadata"]["resourceVersion"], new_rv.as_str());
    assert!(next_line(&mut body, &mut buf).await.is_none());
    assert!(t0.elapsed() < Duration::from_secs(4));
}

#[tokio::test]
async fn watch_plain_json_single_object() {
    let (app, api, ..) = setup().await;
    create_pod(&app, "a").await;
    let rv = api.store().current_rev();
    let resp = app
        .clone()
        .oneshot(
            Request::get(format!("/api/v1/namespaces/default/pods?fieldSelector=metadata.name%3Da&resourceVersion={rv}&watch=1&timeoutSeconds=1"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = resp.into_body().into_data_stream();
    let mut buf = Vec::new();
    call(
        &app,
        Method::DELETE,
        "/api/v1/namespaces/default/pods/a?gracePeriodSeconds=0",
        &[],
        Body::empty(),
    )
    .await;
    let ev = next_line(&mut body, &mut buf).await.unwrap();
    assert_eq!(ev["type"], "DELETED");
    assert_eq!(ev["object"]["kind"], "Pod");
    assert_eq!(ev["object"]["metadata"]["name"], "a");
    // No bookmarks unless asked; the stream ends at the timeout.
    assert!(next_line(&mut body, &mut buf).await.is_none());
}

#[tokio::test]
async fn many_watches() {
    let (app, api, ..) = setup().await;
    let rv = api.store().current_rev();
    let mut bodies = Vec::new();
    for _ in 0..1000 {
        let resp = app
            .clone()
            .oneshot(
                Request::get(format!("/api/v1/namespaces/default/pods?resourceVersion={rv}&watch=true&timeoutSeconds=30"))
                    .body(Body::empty())
                    .unwrap(),
            )
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::OK);
        bodies.push(resp.into_body().into_data_stream());
    }
    create_pod(&app, "a").await;
    for body in bodies.iter_mut().step_by(97) {
        let mut buf = Vec::new();
        let ev = next_line(body, &mut buf).await.unwrap();
        assert_eq!(ev["type"], "ADDED");
    }
}

#[tokio::test]
async fn logs_options_and_errors() {
    let (app, _api, node, _dir) = setup().await;
    create_pod(&app, "p").await;
    // Two containers, none named: kube's 400 listing them.
    let (s, v) = get_json(
        &app,
        "/api/v1/namespaces/default/pods/p/log",
        "application/json",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v["message"],
        "a container name must be specified for pod p, choose one of: [app side]"
    );
    let (s, v) = get_json(
        &app,
        "/api/v1/namespaces/default/pods/p/log?container=nope",
        "application/json",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(v["message"], "container nope is not valid for pod p");
    let (s, v) = get_json(
        &app,
        "/api/v1/namespaces/default/pods/p/log?container=app&tailLines=-1",
        "application/json",
    )
    .await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(v["message"], "PodLogOptions \"p\" is invalid: tailLines: Invalid value: -1: must be greater than or equal to 0");
    let (s, _) = get_json(&app, "/api/v1/namespaces/default/pods/p/log?container=app&sinceSeconds=5&sinceTime=2026-01-01T00:00:00Z", "application/json").await;
    assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY);
    let (s, v) = get_json(
        &app,
        "/api/v1/namespaces/default/pods/nope/log",
        "application/json",
    )
    .await;
    assert_eq!(
        (s, v["message"].as_str()),
        (StatusCode::NOT_FOUND, Some("pods \"nope\" not found"))
    );
    let (s, v) = get_json(
        &app,
        "/api/v1/namespaces/default/pods/p/log?container=app&previous=true",
        "application/json",
    )
    .await;
    assert_eq!(s, StatusCode::BAD_REQUEST);
    assert_eq!(
        v["message"],
        "previous terminated container \"app\" in pod \"p\" not found"
    );

    let (s, h, b) = call(
        &app,
        Method::GET,
        "/api/v1/namespaces/default/pods/p/log?container=side&follow=true&timestamps=true&tailLines=10&limitBytes=100&sinceTime=2026-01-01T00:00:00Z",
        &[],
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    assert_eq!(h[header::CONTENT_TYPE], "text/plain");
    assert_eq!(&b[..], b"line 1\nfrom side\n");
    let seen = node.seen.lock().unwrap().last().cloned().unwrap();
    assert_eq!(
        seen,
        LogOptions {
            container: "side".into(),
            follow: true,
            previous: false,
            timestamps: true,
            tail_lines: Some(10),
            since_seconds: None,
            since_time_unix_nanos: Some(1_767_225_600_000_000_000),
            limit_bytes: Some(100),
        }
    );
}

#[tokio::test]
async fn watch_from_compacted_revision_is_an_error_event() {
    let (app, ..) = setup_with(StoreConfig {
        history: 2,
        watcher_queue: 100,
        ..StoreConfig::default()
    })
    .await;
    for i in 0..5 {
        create_pod(&app, &format!("p{i}")).await;
    }
    let (s, _, b) = call(
        &app,
        Method::GET,
        "/api/v1/namespaces/default/pods?resourceVersion=1&watch=true",
        &[("accept", TABLE)],
        Body::empty(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let lines: Vec<Value> = b
        .split(|c| *c == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert_eq!(lines[0]["type"], "ERROR");
    // A Status, never a Table, even when Tables were asked for.
    assert_eq!(lines[0]["object"]["kind"], "Status");
    assert_eq!(lines[0]["object"]["code"], 410);
    assert_eq!(lines[0]["object"]["reason"], "Expired");
}

/// A client that never reads does not make the server buffer: the store cuts the watcher off
/// at its queue bound and the stream ends after what was queued.
#[tokio::test]
async fn a_client_that_never_reads_is_cut_off() {
    let (app, api, ..) = setup_with(StoreConfig {
        history: 10_000,
        watcher_queue: 8,
        ..StoreConfig::default()
    })
    .await;
    let rv = api.store().current_rev();
    let resp = app
        .clone()
        .oneshot(
            Request::get(format!(
                "/api/v1/namespaces/default/pods?resourceVersion={rv}&watch=true"
            ))
            .body(Body::empty())
            .unwrap(),
        )
        .await
        .unwrap();
    for i in 0..200 {
        create_pod(&app, &format!("p{i}")).await;
    }
    // Only now the client reads: at most the queue bound of events, then the end (or the
    // registry's ERROR 410).
    let mut body = resp.into_body().into_data_stream();
    let mut buf = Vec::new();
    let mut n = 0;
    while let Some(ev) = next_line(&mut body, &mut buf).await {
        n += 1;
        if ev["type"] == "ERROR" {
            assert_eq!(ev["object"]["code"], 410);
            break;
        }
        assert_eq!(ev["type"], "ADDED");
    }
    assert!(
        n <= 10,
        "{n} events buffered for a client that did not read"
    );
}

#[tokio::test]
async fn list_option_combinations_kube_refuses() {
    let (app, ..) = setup().await;
    let cases = [
        (
            "/api/v1/pods?resourceVersionMatch=Exact",
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided",
        ),
        (
            "/api/v1/pods?resourceVersion=5&resourceVersionMatch=Sometimes",
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Unsupported value: \"Sometimes\": supported values: \"Exact\", \"NotOlderThan\", \"\"",
        ),
        (
            "/api/v1/pods?sendInitialEvents=true",
            "ListOptions.meta.k8s.io \"\" is invalid: sendInitialEvents: Forbidden: sendInitialEvents is forbidden for list",
        ),
        (
            "/api/v1/pods?watch=true&sendInitialEvents=true",
            "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: sendInitialEvents requires setting resourceVersionMatch to NotOlderThan",
        ),
        (
            "/api/v1/pods?watch=true&resourceVersionMatch=Exact",
            "ListOptions.meta.k8s.io \"\" is invalid: [resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden for watch unless sendInitialEvents is provided, resourceVersionMatch: Unsupported value: \"Exact\": supported values: \"NotOlderThan\"]",
        ),
    ];
    for (uri, message) in cases {
        let (s, v) = get_json(&app, uri, "application/json").await;
        assert_eq!(s, StatusCode::UNPROCESSABLE_ENTITY, "{uri}");
        assert_eq!(v["message"], message, "{uri}");
        assert_eq!(v["details"]["kind"], "ListOptions");
    }
    let (s, _) = get_json(
        &app,
        "/api/v1/pods?resourceVersion=0&resourceVersionMatch=NotOlderThan",
        "application/json",
    )
    .await;
    assert_eq!(s, StatusCode::OK);
}

#[tokio::test]
async fn huge_watch_timeout_is_capped() {
    let (app, ..) = setup().await;
    let resp = app
        .oneshot(
            Request::get("/api/v1/pods?watch=true&timeoutSeconds=9223372036854775807")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
}

#[tokio::test]
async fn shutdown_ends_watches() {
    let (_, api, ..) = setup().await;
    let token = tokio_util::sync::CancellationToken::new();
    let app = super::router_with_shutdown(api, token.clone());
    let resp = app
        .oneshot(
            Request::get("/api/v1/pods?watch=true")
                .body(Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let mut body = resp.into_body().into_data_stream();
    let t0 = std::time::Instant::now();
    token.cancel();
    let end = tokio::time::timeout(Duration::from_secs(5), body.next()).await;
    assert!(matches!(end, Ok(None)), "{end:?}");
    assert!(t0.elapsed() < Duration::from_secs(1));
}

/// SEMANTICS A4 over HTTP: a quota refusal is a 403 Status with the plugin's text; the
/// deprecated `orphanDependents: true` is the Orphan propagation (`orphan` finalizer).
#[tokio::test]
async fn quota_refusal_and_orphan_dependents_over_http() {
    let (app, api, _node, _dir) = setup().await;
    api.store()
        .commit(crate::store::Mutation::Create {
            key: crate::store::Key::new("resourcequotas", "default", "q"),
            object: json!({"apiVersion": "v1", "kind": "ResourceQuota",
                "metadata": {"name": "q", "namespace": "default", "uid": "u-q"},
                "spec": {"hard": {"pods": "1"}}}),
        })
        .await
        .unwrap();
    assert_eq!(create_pod(&app, "a").await.0, StatusCode::CREATED);
    let (s, b) = create_pod(&app, "b").await;
    assert_eq!(s, StatusCode::FORBIDDEN);
    assert_eq!(b["reason"], "Forbidden");
    assert_eq!(
        b["message"],
        "pods \"b\" is forbidden: exceeded quota: q, requested: pods=1, used: pods=1, limited: pods=1"
    );
    let (s, _, _) = call(
        &app,
        Method::POST,
        "/api/v1/namespaces/default/configmaps",
        &[("content-type", "application/json")],
        serde_json::to_vec(
            &json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "owner"}}),
        )
        .unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::CREATED);
    let (s, _, b) = call(
        &app,
        Method::DELETE,
        "/api/v1/namespaces/default/configmaps/owner",
        &[("content-type", "application/json")],
        serde_json::to_vec(&json!({"orphanDependents": true})).unwrap(),
    )
    .await;
    assert_eq!(s, StatusCode::OK);
    let b: Value = serde_json::from_slice(&b).unwrap();
    assert_eq!(b["metadata"]["finalizers"], json!(["orphan"]));
    assert!(b["metadata"]["deletionTimestamp"].is_string());
}
