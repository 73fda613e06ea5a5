//! The registry over the (in-memory) store with a fake node: each test names the upstream
//! rule it checks.

use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Node, NodeCondition, NodeStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde_json::json;

use super::*;
use crate::node::{LogError, LogOptions, LogStream};
use crate::store::StoreConfig;

struct FakeNode {
    refuse: Mutex<Option<String>>,
    ready: Mutex<String>,
}

impl NodeBackend for FakeNode {
    fn node_name(&self) -> &str {
        "node-1"
    }
    fn node_object(&self) -> Node {
        let ready = self.ready.lock().map(|r| r.clone()).unwrap_or_default();
        Node {
            metadata: ObjectMeta {
                name: Some("node-1".into()),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(NodeStatus {
                conditions: Some(vec![NodeCondition {
                    type_: "Ready".into(),
                    status: ready,
                    ..NodeCondition::default()
                }]),
                ..NodeStatus::default()
            }),
        }
    }
    fn admit(&self, _pod: &Pod, _bound: &[Pod]) -> Result<(), String> {
        match self.refuse.lock().ok().and_then(|r| r.clone()) {
            Some(m) => Err(m),
            None => Ok(()),
        }
    }
    fn logs(&self, _pod: &Pod, _o: &LogOptions) -> Result<LogStream, LogError> {
        Err(LogError {
            code: 404,
            message: "no logs".into(),
        })
    }
}

fn fake() -> Arc<FakeNode> {
    Arc::new(FakeNode {
        refuse: Mutex::new(None),
        ready: Mutex::new("True".into()),
    })
}

/// The API over a store in its own temporary directory (removed when the returned guard
/// drops), with a fake node.
async fn api_with(cfg: StoreConfig) -> (Api, Arc<FakeNode>, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
    let store = Store::open(dir.path(), cfg).unwrap_or_else(|e| panic!("store: {e}"));
    let node = fake();
    let api = Api::open(store, node.clone())
        .await
        .unwrap_or_else(|e| panic!("open: {e}"));
    (api, node, dir)
}

async fn api() -> (Api, tempfile::TempDir) {
    let (api, _, dir) = api_with(StoreConfig::default()).await;
    (api, dir)
}

fn r(plural: &str) -> &'static Resource {
    resource("", plural).unwrap_or_else(|| panic!("{plural}"))
}

fn wo() -> WriteOptions {
    WriteOptions {
        field_validation: FieldValidation::Strict,
        ..WriteOptions::default()
    }
}

fn pod_body(name: &str) -> Vec<u8> {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "web"}},
        "spec": {"containers": [{"name": "app", "image": "busybox:1.35", "command": ["sleep", "1000"]}]}
    })
    .to_string()
    .into_bytes()
}

async fn create(api: &Api, plural: &str, ns: &str, body: Value) -> Result<Written, ApiError> {
    api.create(
        r(plural),
        ns,
        body.to_string().as_bytes(),
        BodyFormat::Json,
        &wo(),
    )
    .await
}

async fn create_pod(api: &Api, ns: &str, name: &str) -> Arc<Value> {
    api.create(r("pods"), ns, &pod_body(name), BodyFormat::Json, &wo())
        .await
        .unwrap_or_else(|e| panic!("create {name}: {e}"))
        .object
}

fn err<T>(r: Result<T, ApiError>) -> ApiError {
    match r {
        Ok(_) => panic!("expected an error"),
        Err(e) => e,
    }
}

fn rv(o: &Value) -> Rev {
    o["metadata"]["resourceVersion"]
        .as_str()
        .and_then(|s| s.parse().ok())
        .unwrap_or(0)
}

async fn next(w: &mut ApiWatch) -> Option<ApiWatchEvent> {
    tokio::time::timeout(Duration::from_secs(2), w.next())
        .await
        .unwrap_or(None)
}

async fn no_event(w: &mut ApiWatch) {
    if let Ok(Some(e)) = tokio::time::timeout(Duration::from_millis(100), w.next()).await {
        panic!("unexpected {} {}", e.type_, e.object);
    }
}

/// A fresh cluster's namespaces, their `default` ServiceAccounts and the Node; opening the
/// same store again adds nothing.
#[tokio::test]
async fn bootstrap_is_complete_and_idempotent() {
    let (api, node, _dir) = api_with(StoreConfig::default()).await;
    for ns in SYSTEM_NAMESPACES {
        let n = api
            .get(r("namespaces"), "", ns)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(n["status"]["phase"], "Active");
        assert_eq!(n["spec"]["finalizers"], json!(["kubernetes"]));
        assert!(api.get(r("serviceaccounts"), ns, "default").is_ok(), "{ns}");
    }
    let n = api
        .get(r("nodes"), "", "node-1")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n["status"]["conditions"][0]["status"], "True");
    let rev = api.store().current_rev();
    let again = Api::open(api.store().clone(), node.clone())
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.store().current_rev(), rev);
    // refresh_node writes only a changed status.
    again.refresh_node().await.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(again.store().current_rev(), rev);
    *node.ready.lock().unwrap_or_else(|p| p.into_inner()) = "False".into();
    again.refresh_node().await.unwrap_or_else(|e| panic!("{e}"));
    let n = again
        .get(r("nodes"), "", "node-1")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(n["status"]["conditions"][0]["status"], "False");
}

/// rest.BeforeCreate, pod strategy PrepareForCreate, the ServiceAccount admission plugin,
/// binding to the node (trap 14).
#[tokio::test]
async fn pod_create_defaults_binds_and_stamps() {
    let (api, _dir) = api().await;
    let p = create_pod(&api, "default", "web").await;
    assert_eq!(p["spec"]["nodeName"], "node-1");
    assert_eq!(p["spec"]["serviceAccountName"], "default");
    assert_eq!(p["spec"]["serviceAccount"], "default");
    assert_eq!(p["spec"]["terminationGracePeriodSeconds"], 30);
    assert_eq!(
        p["spec"]["containers"][0]["imagePullPolicy"],
        "IfNotPresent"
    );
    assert_eq!(p["metadata"]["generation"], 1);
    assert_eq!(p["status"]["phase"], "Pending");
    assert_eq!(p["status"]["qosClass"], "BestEffort");
    assert!(p["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36));
    assert!(p["metadata"]["creationTimestamp"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));
    assert_eq!(rv(&p), api.store().current_rev());
    let e = err(api
        .create(
            r("pods"),
            "default",
            &pod_body("web"),
            BodyFormat::Json,
            &wo(),
        )
        .await);
    assert_eq!((e.code, e.reason), (409, "AlreadyExists"));
    assert_eq!(e.message, "pods \"web\" already exists");
    assert_eq!(e.details, Some(json!({"name": "web", "kind": "pods"})));
    // generateName: a 5-character suffix.
    let g = create(&api, "pods", "default", json!({"metadata": {"generateName": "job-"}, "spec": {"containers": [{"name": "a", "image": "i"}]}}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let name = g.object["metadata"]["name"].as_str().unwrap_or("");
    assert!(name.starts_with("job-") && name.len() == 9, "{name}");
    // A resourceVersion on create is the storage's 500.
    let e = err(create(
        &api,
        "configmaps",
        "default",
        json!({"metadata": {"name": "c", "resourceVersion": "5"}}),
    )
    .await);
    assert_eq!(
        e.message,
        "resourceVersion should not be set on objects to be created"
    );
}

/// NamespaceLifecycle admission: missing namespace 404, terminating 403; the namespace of
/// the body must be the URL's (EnsureObjectNamespaceMatchesRequestNamespace).
#[tokio::test]
async fn namespace_rules_on_create() {
    let (api, _dir) = api().await;
    let e = err(api
        .create(r("pods"), "nope", &pod_body("p"), BodyFormat::Json, &wo())
        .await);
    assert_eq!(
        (e.code, e.message.as_str()),
        (404, "namespaces \"nope\" not found")
    );
    let e = err(create(
        &api,
        "configmaps",
        "default",
        json!({"metadata": {"name": "c", "namespace": "kube-system"}}),
    )
    .await);
    assert_eq!(e.code, 400);
    assert_eq!(
        e.message,
        "the namespace of the provided object does not match the namespace sent on the request"
    );
    create(
        &api,
        "namespaces",
        "",
        json!({"metadata": {"name": "team"}}),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(api.get(r("serviceaccounts"), "team", "default").is_ok());
    // Keep it Terminating: a pod whose deletion is pending.
    create_pod(&api, "team", "p").await;
    let d = api
        .delete(r("namespaces"), "", "team", &DeleteOptions::default())
        .await;
    assert!(matches!(d, Ok(Deleted::Pending(_))));
    let e = err(create(
        &api,
        "namespaces",
        "",
        json!({"metadata": {"name": "team"}}),
    )
    .await);
    assert_eq!(
        e.message,
        "object is being deleted: namespaces \"team\" already exists"
    );
    let e = err(create(
        &api,
        "configmaps",
        "team",
        json!({"metadata": {"name": "c"}}),
    )
    .await);
    assert_eq!(e.code, 403);
    assert_eq!(e.message, "configmaps \"c\" is forbidden: unable to create new content in namespace team because it is being terminated");
}

/// ValidatePod → 422 Invalid with details.causes; ServiceAccount admission and node
/// admission → 403.
#[tokio::test]
async fn pod_refusals() {
    let (api, node, _dir) = api_with(StoreConfig::default()).await;
    let e = err(create(
        &api,
        "pods",
        "default",
        json!({"metadata": {"name": "bad"}, "spec": {"containers": [{"name": "a"}]}}),
    )
    .await);
    assert_eq!((e.code, e.reason), (422, "Invalid"));
    assert_eq!(
        e.message,
        "Pod \"bad\" is invalid: spec.containers[0].image: Required value"
    );
    assert_eq!(
        e.details,
        Some(
            json!({"name": "bad", "kind": "Pod", "causes": [{"reason": "FieldValueRequired", "message": "Required value", "field": "spec.containers[0].image"}]})
        )
    );
    let e = err(create(&api, "pods", "default", json!({"metadata": {"name": "sa"}, "spec": {"serviceAccountName": "robot", "containers": [{"name": "a", "image": "i"}]}})).await);
    assert_eq!(e.code, 403);
    assert_eq!(e.message, "pods \"sa\" is forbidden: service account default/robot was not found, retry after the service account is created");
    *node.refuse.lock().unwrap_or_else(|p| p.into_inner()) =
        Some("Node didn't have enough resource: cpu".into());
    let e = err(api
        .create(
            r("pods"),
            "default",
            &pod_body("big"),
            BodyFormat::Json,
            &wo(),
        )
        .await);
    assert_eq!(e.code, 403);
    assert_eq!(
        e.message,
        "pods \"big\" is forbidden: Node didn't have enough resource: cpu"
    );
    // Strict decoding.
    let e = err(create(&api, "pods", "default", json!({"metadata": {"name": "x"}, "spec": {"foo": 1, "containers": [{"name": "a", "image": "i"}]}})).await);
    assert_eq!(e.message, "Pod in version \"v1\" cannot be handled as a Pod: strict decoding error: unknown field \"spec.foo\"");
    let w = api
        .create(
            r("configmaps"),
            "default",
            br#"{"metadata":{"name":"w"},"dataa":{}}"#,
            BodyFormat::Json,
            &WriteOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(w.warnings, vec!["unknown field \"dataa\""]);
}

/// ValidatePodUpdate (only images etc. change; 1.27+ first line), podStrategy
/// PrepareForUpdate (status kept), the /status strategy (spec kept), RV precondition (409),
/// unconditional updates, no-op updates, generation bump on spec change.
#[tokio::test]
async fn pod_updates_as_the_api_server_allows_them() {
    let (api, _dir) = api().await;
    let p = create_pod(&api, "default", "web").await;
    let put = |v: &Value| v.to_string().into_bytes();
    // Image change: allowed, generation 2, status untouched even if sent.
    let mut new = (*p).clone();
    new["spec"]["containers"][0]["image"] = json!("busybox:1.36");
    new["status"] = json!({"phase": "Succeeded"});
    let w = api
        .update(
            r("pods"),
            "default",
            "web",
            None,
            &put(&new),
            BodyFormat::Json,
            &wo(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(w.object["spec"]["containers"][0]["image"], "busybox:1.36");
    assert_eq!(w.object["metadata"]["generation"], 2);
    assert_eq!(w.object["status"]["phase"], "Pending");
    // Stale resourceVersion: 409 Conflict.
    let e = err(api
        .update(
            r("pods"),
            "default",
            "web",
            None,
            &put(&new),
            BodyFormat::Json,
            &wo(),
        )
        .await);
    assert_eq!((e.code, e.reason), (409, "Conflict"));
    assert_eq!(e.message, "Operation cannot be fulfilled on pods \"web\": the object has been modified; please apply your changes to the latest version and try again");
    // Another field: 422 with ValidatePodUpdate's first line.
    let mut bad = (*w.object).clone();
    bad["spec"]["restartPolicy"] = json!("Never");
    let e = err(api
        .update(
            r("pods"),
            "default",
            "web",
            None,
            &put(&bad),
            BodyFormat::Json,
            &wo(),
        )
        .await);
    assert_eq!(e.code, 422);
    assert_eq!(e.message.lines().next(), Some("Pod \"web\" is invalid: spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`,`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 if it was previously negative)"));
    // Unconditional (no resourceVersion) and no-op: no new revision.
    let mut same = (*w.object).clone();
    same["metadata"]
        .as_object_mut()
        .map(|m| m.remove("resourceVersion"));
    let before = api.store().current_rev();
    let w2 = api
        .update(
            r("pods"),
            "default",
            "web",
            None,
            &put(&same),
            BodyFormat::Json,
            &wo(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(api.store().current_rev(), before);
    assert_eq!(rv(&w2.object), rv(&w.object));
    // /status: status changes, spec does not.
    let mut st = (*w2.object).clone();
    st["status"] = json!({"phase": "Running"});
    st["spec"]["containers"][0]["image"] = json!("other");
    let s = api
        .update(
            r("pods"),
            "default",
            "web",
            Some("status"),
            &put(&st),
            BodyFormat::Json,
            &wo(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(s.object["status"]["phase"], "Running");
    assert_eq!(s.object["spec"]["containers"][0]["image"], "busybox:1.36");
    assert_eq!(s.object["metadata"]["generation"], 2);
    // The name of the body must be the URL's.
    let e = err(api
        .update(
            r("pods"),
            "default",
            "other",
            None,
            &put(&st),
            BodyFormat::Json,
            &wo(),
        )
        .await);
    assert_eq!(
        e.message,
        "the name of the object (web) does not match the name on the URL (other)"
    );
}

/// pod strategy CheckGracefulDelete + rest.BeforeDelete: graceful MODIFIED, only shorter
/// grace later, the kubelet's final grace-0 delete with uid precondition; --force; unbound
/// and terminal pods go at once.
#[tokio::test]
async fn graceful_pod_deletion() {
    let (api, _dir) = api().await;
    let p = create_pod(&api, "default", "web").await;
    let uid = p["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let mut w = api
        .watch(
            r("pods"),
            Some("default"),
            &WatchOptions {
                resource_version: Some(rv(&p).to_string()),
                ..WatchOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let d = api
        .delete(r("pods"), "default", "web", &DeleteOptions::default())
        .await;
    let Ok(Deleted::Pending(obj)) = d else {
        panic!("not pending: {d:?}")
    };
    assert_eq!(obj["metadata"]["deletionGracePeriodSeconds"], 30);
    let ts = obj["metadata"]["deletionTimestamp"]
        .as_str()
        .and_then(strategy::parse_time)
        .unwrap_or(0);
    assert!((ts - strategy::unix_now() - 30).abs() <= 2);
    let e = next(&mut w).await.unwrap_or_else(|| panic!("no event"));
    assert_eq!(e.type_, "MODIFIED");
    // A longer grace changes nothing; a shorter one shortens.
    let long = DeleteOptions {
        grace_period_seconds: Some(60),
        ..DeleteOptions::default()
    };
    let Ok(Deleted::Pending(o2)) = api.delete(r("pods"), "default", "web", &long).await else {
        panic!()
    };
    assert_eq!(o2["metadata"]["deletionGracePeriodSeconds"], 30);
    let short = DeleteOptions {
        grace_period_seconds: Some(5),
        ..DeleteOptions::default()
    };
    let Ok(Deleted::Pending(o3)) = api.delete(r("pods"), "default", "web", &short).await else {
        panic!()
    };
    assert_eq!(o3["metadata"]["deletionGracePeriodSeconds"], 5);
    // The kubelet's final delete: wrong uid refused, right uid removes.
    let e = err(api.finish_pod_deletion("default", "web", "wrong").await);
    assert_eq!(e.code, 409);
    assert!(
        e.message
            .contains("Precondition failed: UID in precondition: wrong"),
        "{}",
        e.message
    );
    api.finish_pod_deletion("default", "web", &uid)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(api.get(r("pods"), "default", "web").is_err());
    assert_eq!(next(&mut w).await.map(|e| e.type_), Some("MODIFIED"));
    assert_eq!(next(&mut w).await.map(|e| e.type_), Some("DELETED"));
    // --grace-period=0 --force: removed at once.
    create_pod(&api, "default", "f").await;
    let force = DeleteOptions {
        grace_period_seconds: Some(0),
        ..DeleteOptions::default()
    };
    assert!(matches!(
        api.delete(r("pods"), "default", "f", &force).await,
        Ok(Deleted::Gone(_))
    ));
    // A terminal pod: grace 0.
    let t = create_pod(&api, "default", "t").await;
    let st = PodStatus {
        phase: Some("Succeeded".into()),
        ..PodStatus::default()
    };
    let uid_t = t["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let res = api
        .set_pod_statuses(vec![("default".into(), "t".into(), uid_t, st)])
        .await;
    assert!(res.iter().all(Result::is_ok));
    assert!(matches!(
        api.delete(r("pods"), "default", "t", &DeleteOptions::default())
            .await,
        Ok(Deleted::Gone(_))
    ));
    // Preconditions.
    create_pod(&api, "default", "q").await;
    let pre = DeleteOptions {
        precondition_resource_version: Some("1".into()),
        ..DeleteOptions::default()
    };
    let e = err(api.delete(r("pods"), "default", "q", &pre).await);
    assert_eq!(e.code, 409);
}

/// Finalizers (store.go): a DELETE only marks; the update that empties them removes the
/// object; no new finalizer once deletion started.
#[tokio::test]
async fn finalizers_hold_deletion() {
    let (api, _dir) = api().await;
    create(
        &api,
        "configmaps",
        "default",
        json!({"metadata": {"name": "c", "finalizers": ["example.com/hold"]}, "data": {"a": "1"}}),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let Ok(Deleted::Pending(m)) = api
        .delete(r("configmaps"), "default", "c", &DeleteOptions::default())
        .await
    else {
        panic!()
    };
    assert!(m["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(m["metadata"]["deletionGracePeriodSeconds"], 0);
    let mut add = (*m).clone();
    add["metadata"]["finalizers"] = json!(["example.com/hold", "example.com/more"]);
    let e = err(api
        .update(
            r("configmaps"),
            "default",
            "c",
            None,
            add.to_string().as_bytes(),
            BodyFormat::Json,
            &wo(),
        )
        .await);
    assert_eq!(e.code, 422);
    assert!(e.message.contains("no new finalizers can be added if the object is being deleted, found new finalizers []string{\"example.com/more\"}"), "{}", e.message);
    let mut rm = (*m).clone();
    rm["metadata"]["finalizers"] = json!([]);
    api.update(
        r("configmaps"),
        "default",
        "c",
        None,
        rm.to_string().as_bytes(),
        BodyFormat::Json,
        &wo(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert!(api.get(r("configmaps"), "default", "c").is_err());
}

/// Namespace deletion: immortal namespaces 403 (NamespaceLifecycle); phase Terminating,
/// contents deleted (pods gracefully), then the namespace goes once empty.
#[tokio::test]
async fn namespace_deletion_empties_then_removes() {
    let (api, _dir) = api().await;
    let e = err(api
        .delete(r("namespaces"), "", "default", &DeleteOptions::default())
        .await);
    assert_eq!(
        (e.code, e.message.as_str()),
        (
            403,
            "namespaces \"default\" is forbidden: this namespace may not be deleted"
        )
    );
    create(&api, "namespaces", "", json!({"metadata": {"name": "tmp"}}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    create(
        &api,
        "configmaps",
        "tmp",
        json!({"metadata": {"name": "c"}}),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let p = create_pod(&api, "tmp", "p").await;
    let Ok(Deleted::Pending(n)) = api
        .delete(r("namespaces"), "", "tmp", &DeleteOptions::default())
        .await
    else {
        panic!()
    };
    assert_eq!(n["status"]["phase"], "Terminating");
    assert!(api.get(r("configmaps"), "tmp", "c").is_err());
    assert!(api.get(r("serviceaccounts"), "tmp", "default").is_err());
    let pod = api
        .get(r("pods"), "tmp", "p")
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(pod["metadata"]["deletionTimestamp"].is_string());
    api.reconcile_namespaces()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(api.get(r("namespaces"), "", "tmp").is_ok());
    api.finish_pod_deletion("tmp", "p", p["metadata"]["uid"].as_str().unwrap_or(""))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    api.reconcile_namespaces()
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(api.get(r("namespaces"), "", "tmp").is_err());
}

/// List: selectors, resourceVersion semantics (Exact → 410 once changed, future → 504),
/// limit + continue pinned to the first page's revision.
#[tokio::test]
async fn list_semantics() {
    let (api, _dir) = api().await;
    for i in 0..5 {
        create(
            &api,
            "configmaps",
            "default",
            json!({"metadata": {"name": format!("c{i}"), "labels": {"n": i.to_string()}}}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let cms = r("configmaps");
    let l = api
        .list(
            cms,
            Some("default"),
            &ListOptions {
                label_selector: Some("n>2".into()),
                ..ListOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(l.items.len(), 2);
    let l = api
        .list(
            cms,
            None,
            &ListOptions {
                field_selector: Some("metadata.name=c1".into()),
                ..ListOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(l.items.len(), 1);
    let e = err(api.list(
        cms,
        None,
        &ListOptions {
            label_selector: Some("n in 1".into()),
            ..ListOptions::default()
        },
    ));
    assert_eq!(e.code, 400);
    // Pages.
    let p1 = api
        .list(
            cms,
            Some("default"),
            &ListOptions {
                limit: Some(2),
                ..ListOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(p1.items.len(), 2);
    let token = p1.continue_token.clone().unwrap_or_default();
    // A change after the first page does not show in the next pages (pinned revision).
    create(
        &api,
        "configmaps",
        "default",
        json!({"metadata": {"name": "c10"}}),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    let p2 = api
        .list(
            cms,
            Some("default"),
            &ListOptions {
                limit: Some(2),
                continue_token: Some(token),
                ..ListOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = p2.items.iter().map(|o| meta_str(o, "name")).collect();
    assert_eq!(names, vec!["c2", "c3"]);
    assert_eq!(p2.resource_version, p1.resource_version);
    let p3 = api
        .list(
            cms,
            Some("default"),
            &ListOptions {
                limit: Some(2),
                continue_token: p2.continue_token.clone(),
                ..ListOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let names: Vec<&str> = p3.items.iter().map(|o| meta_str(o, "name")).collect();
    assert_eq!(names, vec!["c4"]);
    assert!(p3.continue_token.is_none());
    // resourceVersion: Exact at an older revision of a changed resource is 410; too large 504.
    let old = p1.resource_version;
    let e = err(api.list(
        cms,
        None,
        &ListOptions {
            resource_version: Some(old.to_string()),
            resource_version_match: Some("Exact".into()),
            ..ListOptions::default()
        },
    ));
    assert_eq!(e.code, 410);
    let ok = api
        .list(
            r("secrets"),
            None,
            &ListOptions {
                resource_version: Some(old.to_string()),
                resource_version_match: Some("Exact".into()),
                ..ListOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(ok.resource_version, old);
    let e = err(api.list(
        cms,
        None,
        &ListOptions {
            resource_version: Some("999999".into()),
            ..ListOptions::default()
        },
    ));
    assert_eq!(e.code, 504);
    let e = err(api.list(
        cms,
        None,
        &ListOptions {
            resource_version_match: Some("Exact".into()),
            ..ListOptions::default()
        },
    ));
    assert_eq!(e.code, 422);
    assert_eq!(e.message, "ListOptions.meta.k8s.io \"\" is invalid: resourceVersionMatch: Forbidden: resourceVersionMatch is forbidden unless resourceVersion is provided");
}

/// Watch: synthetic ADDED then live (RV unset), only later events (RV=N), selector
/// transitions as the cacher sends them, bookmarks, streaming lists, 410 inside the stream.
#[tokio::test]
async fn watch_semantics() {
    let (api, _dir) = api().await;
    let cms = r("configmaps");
    let a = create(
        &api,
        "configmaps",
        "default",
        json!({"metadata": {"name": "a", "labels": {"x": "1"}}}),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"))
    .object;
    let mut w = api
        .watch(cms, Some("default"), &WatchOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    let e = next(&mut w).await.unwrap_or_else(|| panic!("none"));
    assert_eq!((e.type_, meta_str(&e.object, "name")), ("ADDED", "a"));
    no_event(&mut w).await;
    create(
        &api,
        "configmaps",
        "default",
        json!({"metadata": {"name": "b"}}),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(next(&mut w).await.map(|e| e.type_), Some("ADDED"));
    // From a revision: only what follows.
    let mut from = api
        .watch(
            cms,
            None,
            &WatchOptions {
                resource_version: Some(rv(&a).to_string()),
                ..WatchOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let e = next(&mut from).await.unwrap_or_else(|| panic!("none"));
    assert_eq!(meta_str(&e.object, "name"), "b");
    // Selector transitions.
    let mut sel = api
        .watch(
            cms,
            None,
            &WatchOptions {
                label_selector: Some("x=1".into()),
                allow_bookmarks: true,
                ..WatchOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(next(&mut sel).await.map(|e| e.type_), Some("ADDED"));
    let cur = api
        .get(cms, "default", "a")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut out = (*cur).clone();
    out["metadata"]["labels"]["x"] = json!("2");
    api.update(
        cms,
        "default",
        "a",
        None,
        out.to_string().as_bytes(),
        BodyFormat::Json,
        &wo(),
    )
    .await
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(next(&mut sel).await.map(|e| e.type_), Some("DELETED"));
    let cur = api
        .get(cms, "default", "b")
        .unwrap_or_else(|e| panic!("{e}"));
    let mut into = (*cur).clone();
    into["metadata"]["labels"] = json!({"x": "1"});
    let b2 = api
        .update(
            cms,
            "default",
            "b",
            None,
            into.to_string().as_bytes(),
            BodyFormat::Json,
            &wo(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let e = next(&mut sel).await.unwrap_or_else(|| panic!("none"));
    assert_eq!((e.type_, meta_str(&e.object, "name")), ("ADDED", "b"));
    let bm = sel.bookmark().unwrap_or_else(|| panic!("no bookmark"));
    assert_eq!(bm.type_, "BOOKMARK");
    assert_eq!(
        bm.object["metadata"]["resourceVersion"],
        json!(rv(&b2.object).to_string())
    );
    assert_eq!(bm.object["kind"], "ConfigMap");
    assert!(w.bookmark().is_none(), "bookmarks only when asked for");
    // Streaming list: ADDED then the initial-events-end bookmark, even when empty.
    let o = WatchOptions {
        send_initial_events: Some(true),
        resource_version_match: Some("NotOlderThan".into()),
        allow_bookmarks: true,
        ..WatchOptions::default()
    };
    let mut sl = api
        .watch(r("secrets"), Some("default"), &o)
        .unwrap_or_else(|e| panic!("{e}"));
    let e = next(&mut sl).await.unwrap_or_else(|| panic!("none"));
    assert_eq!(e.type_, "BOOKMARK");
    assert_eq!(
        e.object["metadata"]["annotations"]["k8s.io/initial-events-end"],
        "true"
    );
    let e = err(api.watch(
        cms,
        None,
        &WatchOptions {
            send_initial_events: Some(true),
            ..WatchOptions::default()
        },
    ));
    assert_eq!(e.code, 422);
    assert!(e
        .message
        .contains("sendInitialEvents requires setting resourceVersionMatch to NotOlderThan"));
}

/// A compacted start revision: HTTP 200 then an ERROR event with a 410 Expired Status.
#[tokio::test]
async fn watch_too_old_is_an_error_event() {
    let (api, _, _dir) = api_with(StoreConfig {
        history: 2,
        watcher_queue: 100,
        ..StoreConfig::default()
    })
    .await;
    for i in 0..5 {
        create(
            &api,
            "configmaps",
            "default",
            json!({"metadata": {"name": format!("c{i}")}}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let mut w = api
        .watch(
            r("configmaps"),
            None,
            &WatchOptions {
                resource_version: Some("2".into()),
                ..WatchOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let e = next(&mut w).await.unwrap_or_else(|| panic!("none"));
    assert_eq!(e.type_, "ERROR");
    assert_eq!(e.object["code"], 410);
    assert_eq!(e.object["reason"], "Expired");
    assert!(e.object["message"]
        .as_str()
        .is_some_and(|m| m.starts_with("too old resource version: 2 (")));
    assert!(next(&mut w).await.is_none());
}

/// The node's writes: statuses batched with uid checks (spec untouched), events by name,
/// event TTL.
#[tokio::test]
async fn node_side_writes() {
    let (api, _dir) = api().await;
    let a = create_pod(&api, "default", "a").await;
    let b = create_pod(&api, "default", "b").await;
    let st = |phase: &str| PodStatus {
        phase: Some(phase.into()),
        ..PodStatus::default()
    };
    let uid = |p: &Value| p["metadata"]["uid"].as_str().unwrap_or("").to_string();
    let res = api
        .set_pod_statuses(vec![
            ("default".into(), "a".into(), uid(&a), st("Running")),
            ("default".into(), "b".into(), "stale".into(), st("Running")),
            ("default".into(), "gone".into(), "x".into(), st("Running")),
        ])
        .await;
    assert!(res[0].is_ok());
    assert_eq!(res[1].as_ref().err().map(|e| e.code), Some(409));
    assert_eq!(res[2].as_ref().err().map(|e| e.code), Some(404));
    let a2 = api
        .get(r("pods"), "default", "a")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(a2["status"]["phase"], "Running");
    assert_eq!(a2["status"]["qosClass"], "BestEffort");
    assert_eq!(a2["spec"], a["spec"]);
    assert_eq!(
        api.get(r("pods"), "default", "b")
            .map(|p| p["status"]["phase"].clone())
            .ok(),
        Some(json!("Pending"))
    );
    let _ = b;
    let ev = |count: i32, last: &str| Event {
        metadata: ObjectMeta {
            name: Some("a.1".into()),
            namespace: Some("default".into()),
            ..ObjectMeta::default()
        },
        reason: Some("Started".into()),
        count: Some(count),
        last_timestamp: last
            .parse()
            .ok()
            .map(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time),
        ..Event::default()
    };
    api.record_events(vec![ev(1, "2020-01-01T00:00:00Z")]).await;
    let e1 = api
        .get(r("events"), "default", "a.1")
        .unwrap_or_else(|e| panic!("{e}"));
    api.record_events(vec![ev(2, "2020-01-01T00:00:00Z")]).await;
    let e2 = api
        .get(r("events"), "default", "a.1")
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(e2["count"], 2);
    assert_eq!(e2["metadata"]["uid"], e1["metadata"]["uid"]);
    // The TTL runs from the last write (an etcd lease upstream), not from lastTimestamp.
    assert_eq!(api.expire_events(EVENT_TTL).await, 0);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert_eq!(api.expire_events(Duration::ZERO).await, 1);
    assert!(api.get(r("events"), "default", "a.1").is_err());
}

/// PATCH through the patch module then the update path; apply creates a missing object.
#[tokio::test]
async fn patches() {
    let (api, _dir) = api().await;
    create_pod(&api, "default", "web").await;
    let pods = r("pods");
    let w = api
        .patch(
            pods,
            "default",
            "web",
            None,
            PatchType::Merge,
            br#"{"metadata":{"labels":{"tier":"x"}}}"#,
            &wo(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(w.object["metadata"]["labels"]["tier"], "x");
    let w = api
        .patch(
            pods,
            "default",
            "web",
            None,
            PatchType::Json,
            br#"[{"op":"replace","path":"/spec/containers/0/image","value":"busybox:2"}]"#,
            &wo(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(w.object["spec"]["containers"][0]["image"], "busybox:2");
    let e = err(api
        .patch(
            pods,
            "default",
            "web",
            None,
            PatchType::Merge,
            br#"{"spec":{"restartPolicy":"Never"}}"#,
            &wo(),
        )
        .await);
    assert_eq!(e.code, 422);
    let e = err(api
        .patch(
            pods,
            "default",
            "nope",
            None,
            PatchType::Merge,
            b"{}",
            &wo(),
        )
        .await);
    assert_eq!(e.code, 404);
    let e = err(api
        .patch(
            r("configmaps"),
            "default",
            "cm",
            None,
            PatchType::Apply,
            b"metadata:\n  name: cm\n",
            &wo(),
        )
        .await);
    assert_eq!(e.code, 422);
    let o = WriteOptions {
        field_manager: Some("me".into()),
        ..wo()
    };
    let w = api
        .patch(
            r("configmaps"),
            "default",
            "cm",
            None,
            PatchType::Apply,
            b"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\ndata:\n  a: b\n",
            &o,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(w.created);
    assert_eq!(w.object["data"]["a"], "b");
    // kubectl --server-side sends the apply body as JSON.
    let w = api
        .patch(
            r("configmaps"),
            "default",
            "cm",
            None,
            PatchType::Apply,
            br#"{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"cm"},"data":{"a":"c"}}"#,
            &o,
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(!w.created);
    assert_eq!(w.object["data"]["a"], "c");
}

/// Hostile bodies: refused with a Status, never a panic.
#[tokio::test]
async fn hostile_bodies_are_refused() {
    let (api, _dir) = api().await;
    let pods = r("pods");
    for body in [
        &b"["[..],
        b"null",
        b"42",
        b"\"x\"",
        br#"{"metadata":"x"}"#,
        br#"{"metadata":{"name":7}}"#,
        br#"{"metadata":{"name":"a"},"spec":[]}"#,
    ] {
        let e = err(api
            .create(pods, "default", body, BodyFormat::Json, &wo())
            .await);
        assert!(
            e.code == 400 || e.code == 422,
            "{}: {e:?}",
            String::from_utf8_lossy(body)
        );
    }
    let deep = "[".repeat(100_000);
    let e = err(api
        .create(pods, "default", deep.as_bytes(), BodyFormat::Json, &wo())
        .await);
    assert_eq!(e.code, 400);
    let e = err(api
        .create(pods, "default", b"a: [\n", BodyFormat::Yaml, &wo())
        .await);
    assert_eq!(e.code, 400);
    let o = WriteOptions {
        field_manager: Some("me".into()),
        ..wo()
    };
    let e = err(api
        .patch(
            r("configmaps"),
            "default",
            "x",
            None,
            PatchType::Apply,
            b"metadata: 3\n",
            &o,
        )
        .await);
    assert_eq!(e.code, 400);
    let e = err(api
        .patch(
            r("configmaps"),
            "default",
            "x",
            None,
            PatchType::Apply,
            b"- 1\n",
            &o,
        )
        .await);
    assert!(e.code == 400 || e.code == 422, "{e:?}");
}

fn assert_send<T: Send>(_: T) {}

/// The HTTP layer runs these futures on a multi-threaded runtime: they must be Send.
#[tokio::test]
async fn futures_are_send() {
    let (api, _dir) = api().await;
    let o = wo();
    let d = DeleteOptions::default();
    assert_send(api.create(r("pods"), "default", b"{}", BodyFormat::Json, &o));
    assert_send(api.update(r("pods"), "default", "x", None, b"{}", BodyFormat::Json, &o));
    assert_send(api.patch(r("pods"), "default", "x", None, PatchType::Merge, b"{}", &o));
    assert_send(api.delete(r("pods"), "default", "x", &d));
    assert_send(api.delete_collection(r("pods"), None, &ListOptions::default(), &d));
    assert_send(api.reconcile_namespaces());
    assert_send(api.set_pod_statuses(Vec::new()));
    assert_send(api.finish_pod_deletion("default", "x", "u"));
    assert_send(api.record_events(Vec::new()));
    assert_send(api.expire_events(EVENT_TTL));
    assert_send(api.refresh_node());
    let mut w = api
        .watch(r("pods"), None, &WatchOptions::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert_send(w.next());
}

/// plugin/pkg/admission/serviceaccount mountServiceAccountToken (when turned on).
#[tokio::test]
async fn token_volume_when_turned_on() {
    let (api, _dir) = api().await;
    let p = create_pod(&api, "default", "off").await;
    assert!(p["spec"]["volumes"].is_null());
    api.set_token_volumes(true);
    let p = create_pod(&api, "default", "on").await;
    let vol = &p["spec"]["volumes"][0];
    let name = vol["name"].as_str().unwrap_or("");
    assert!(
        name.starts_with("kube-api-access-") && name.len() == 21,
        "{name}"
    );
    assert_eq!(
        vol["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
        3607
    );
    assert_eq!(
        p["spec"]["containers"][0]["volumeMounts"][0],
        json!({"name": name, "readOnly": true, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"})
    );
    let no = create(&api, "pods", "default", json!({"metadata": {"name": "no"}, "spec": {"automountServiceAccountToken": false, "containers": [{"name": "a", "image": "i"}]}}))
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(no.object["spec"]["volumes"].is_null());
}

/// What `kubectl delete --wait` and `kubectl wait` do: list with a name field selector at
/// RV 0, then watch from the list's revision with the same selector (cacher filtering of a
/// watch from a revision).
#[tokio::test]
async fn selector_watch_from_a_revision_sees_the_deletion() {
    let (api, _dir) = api().await;
    let pods = r("pods");
    create_pod(&api, "default", "x").await;
    create_pod(&api, "default", "y").await;
    let l = api
        .list(
            pods,
            Some("default"),
            &ListOptions {
                field_selector: Some("metadata.name=x".into()),
                resource_version: Some("0".into()),
                limit: Some(500),
                ..ListOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(l.items.len(), 1);
    let mut w = api
        .watch(
            pods,
            Some("default"),
            &WatchOptions {
                field_selector: Some("metadata.name=x".into()),
                resource_version: Some(l.resource_version.to_string()),
                allow_bookmarks: true,
                ..WatchOptions::default()
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
    let force = DeleteOptions {
        grace_period_seconds: Some(0),
        ..DeleteOptions::default()
    };
    api.delete(pods, "default", "y", &force)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    api.delete(pods, "default", "x", &force)
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    let e = next(&mut w).await.unwrap_or_else(|| panic!("none"));
    assert_eq!((e.type_, meta_str(&e.object, "name")), ("DELETED", "x"));
    no_event(&mut w).await;
}

/// deletecollection: each selected object deleted as by its own DELETE.
#[tokio::test]
async fn delete_collection_by_label() {
    let (api, _dir) = api().await;
    for (n, l) in [("a", "1"), ("b", "1"), ("c", "2")] {
        create(
            &api,
            "configmaps",
            "default",
            json!({"metadata": {"name": n, "labels": {"g": l}}}),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    }
    let gone = api
        .delete_collection(
            r("configmaps"),
            Some("default"),
            &ListOptions {
                label_selector: Some("g=1".into()),
                ..ListOptions::default()
            },
            &DeleteOptions::default(),
        )
        .await
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(gone.len(), 2);
    assert!(api.get(r("configmaps"), "default", "c").is_ok());
    assert!(api.get(r("configmaps"), "default", "a").is_err());
}

mod policy_tests;
