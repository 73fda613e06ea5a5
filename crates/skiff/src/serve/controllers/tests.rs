//! The controller manager on the API over a temp-dir store, with a toy controller that keeps
//! one pod per ConfigMap: informers wake the owner when its pod changes, decisions are written
//! through the API, conflicts and deletions requeue, events are recorded, `requeue_after` fires.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

use std::sync::atomic::{AtomicUsize, Ordering};

use k8s_openapi::api::core::v1::{Container, Node, Pod, PodSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use skiff_api::node::{LogError, LogOptions, LogStream, NodeBackend};
use skiff_api::store::{Store, StoreConfig};

use super::*;

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

/// Keeps a pod `<cm>-pod` owned by each ConfigMap; counts its calls.
#[derive(Default)]
struct OnePodPerConfigMap {
    calls: AtomicUsize,
    requeue: Option<Duration>,
}

impl Reconciler for OnePodPerConfigMap {
    fn component(&self) -> &'static str {
        "toy-controller"
    }
    fn owner(&self) -> Option<&'static Resource> {
        registry::resource("", "configmaps")
    }
    fn owned(&self) -> Vec<&'static Resource> {
        vec![registry::resource("", "pods").unwrap()]
    }
    fn reconcile(
        &self,
        owner: &Value,
        owned: &[Vec<Arc<Value>>],
        _now: Timestamp,
    ) -> Result<Decision, String> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        let uid = owner["metadata"]["uid"].as_str().ok_or("no uid")?;
        let name = owner["metadata"]["name"].as_str().ok_or("no name")?;
        let ns = owner["metadata"]["namespace"].as_str().ok_or("no ns")?;
        let mine = owned[0].iter().any(|p| {
            p["metadata"]["ownerReferences"][0]["uid"].as_str() == Some(uid)
                && !p["metadata"]["deletionTimestamp"].is_string()
        });
        let mut d = Decision {
            requeue_after: self.requeue,
            ..Default::default()
        };
        if !mine {
            let pod = Pod {
                metadata: ObjectMeta {
                    name: Some(format!("{name}-pod")),
                    namespace: Some(ns.into()),
                    owner_references: Some(vec![OwnerReference {
                        api_version: "v1".into(),
                        kind: "ConfigMap".into(),
                        name: name.into(),
                        uid: uid.into(),
                        controller: Some(true),
                        block_owner_deletion: Some(true),
                    }]),
                    ..Default::default()
                },
                spec: Some(PodSpec {
                    containers: vec![Container {
                        name: "app".into(),
                        image: Some("busybox".into()),
                        ..Default::default()
                    }],
                    ..Default::default()
                }),
                ..Default::default()
            };
            d.actions.push(Action::Create(Object::Pod(Box::new(pod))));
            d.events.push(EventNote {
                kind: Kind::Pod,
                namespace: ns.into(),
                name: name.into(),
                uid: uid.into(),
                type_: "Normal",
                reason: "SuccessfulCreate".into(),
                message: format!("Created pod: {name}-pod"),
            });
        }
        Ok(d)
    }
}

async fn api() -> Api {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    let api = Api::open(store, Arc::new(FakeNode)).await.unwrap();
    std::mem::forget(dir);
    api
}

async fn eventually<F: Fn() -> bool>(what: &str, f: F) {
    for _ in 0..300 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn pods(api: &Api) -> Vec<Arc<Value>> {
    api.list(
        registry::resource("", "pods").unwrap(),
        Some("default"),
        &ListOptions::default(),
    )
    .unwrap()
    .items
}

async fn create_cm(api: &Api, name: &str) {
    let body = serde_json::to_vec(&serde_json::json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": name, "namespace": "default"},
    }))
    .unwrap();
    api.create(
        registry::resource("", "configmaps").unwrap(),
        "default",
        &body,
        BodyFormat::Json,
        &WriteOptions::default(),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn owned_objects_are_created_recreated_and_events_recorded() {
    let api = api().await;
    let toy = Arc::new(OnePodPerConfigMap::default());
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(run(api.clone(), vec![toy.clone()], rx));

    create_cm(&api, "a").await;
    eventually("the pod of a", || {
        pods(&api).iter().any(|p| p["metadata"]["name"] == "a-pod")
    })
    .await;
    let events = api
        .list(
            registry::resource("", "events").unwrap(),
            Some("default"),
            &ListOptions::default(),
        )
        .unwrap()
        .items;
    assert!(
        events.iter().any(|e| e["reason"] == "SuccessfulCreate"
            && e["message"] == "Created pod: a-pod"
            && e["source"]["component"] == "toy-controller"),
        "{events:?}"
    );

    // The owned pod goes away (force delete): its change wakes the owner, which makes another.
    let r = registry::resource("", "pods").unwrap();
    let uid_before = pods(&api)[0]["metadata"]["uid"].clone();
    api.delete(
        r,
        "default",
        "a-pod",
        &DeleteOptions {
            grace_period_seconds: Some(0),
            ..Default::default()
        },
    )
    .await
    .unwrap();
    eventually("a-pod made again", || {
        pods(&api)
            .iter()
            .any(|p| p["metadata"]["name"] == "a-pod" && p["metadata"]["uid"] != uid_before)
    })
    .await;

    stop.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the manager stops at shutdown")
        .unwrap();
}

#[tokio::test]
async fn requeue_after_reconciles_again_without_a_change() {
    let api = api().await;
    let toy = Arc::new(OnePodPerConfigMap {
        requeue: Some(Duration::from_millis(30)),
        ..Default::default()
    });
    let (stop, rx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(run(api.clone(), vec![toy.clone()], rx));
    create_cm(&api, "b").await;
    eventually("several reconciles by timer", || {
        toy.calls.load(Ordering::SeqCst) >= 6
    })
    .await;
    // Exactly one pod: decisions read what the previous ones wrote.
    assert_eq!(pods(&api).len(), 1);
    stop.send(true).unwrap();
    task.await.unwrap();
}
