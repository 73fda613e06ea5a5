//! The kubelet loop's routing, on the API over an in-process store and a recording runner
//! (no processes): what reaches the runner for creates, updates and deletions, and what the
//! reports make of the API objects (images-serve-facts §6.2: graceful deletion ends with the
//! kubelet's final delete; T1: the grace is what is left of the deletion's).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests

use std::sync::Mutex;

use k8s_openapi::api::core::v1::{Node, Pod, PodStatus};
use skiff_api::node::{LogError, LogOptions, LogStream, NodeBackend};
use skiff_api::registry::{BodyFormat, DeleteOptions, WriteOptions};
use skiff_api::store::{Store, StoreConfig};

use skiff_engine::Time;

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

#[derive(Debug, Clone, PartialEq)]
enum Call {
    Sync { name: String, image: String },
    Stop { uid: String, grace: Option<i64> },
}

#[derive(Default)]
struct Recording {
    calls: Mutex<Vec<Call>>,
}

impl PodRunner for Recording {
    fn sync(&self, pod: Pod, _objects: PodObjects) {
        let image = pod.spec.as_ref().unwrap().containers[0]
            .image
            .clone()
            .unwrap_or_default();
        self.calls.lock().unwrap().push(Call::Sync {
            name: pod.metadata.name.unwrap_or_default(),
            image,
        });
    }
    fn stop(&self, uid: &str, grace: Option<i64>) {
        self.calls.lock().unwrap().push(Call::Stop {
            uid: uid.into(),
            grace,
        });
    }
    fn forget(&self, _uid: &str) {}
    fn orphans(&self, _known: &dyn Fn(&str) -> bool) -> Vec<Pod> {
        Vec::new()
    }
}

struct Harness {
    api: Api,
    runner: Arc<Recording>,
    reports: mpsc::UnboundedSender<PodReport>,
    shutdown: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    let api = Api::open(store, Arc::new(FakeNode)).await.unwrap();
    let runner = Arc::new(Recording::default());
    let (tx, rx) = mpsc::unbounded_channel();
    let (stx, srx) = tokio::sync::watch::channel(false);
    let k = Kubelet::new(api.clone(), runner.clone(), "node1");
    let task = tokio::spawn(k.run(rx, srx));
    // The tempdir may go: the skeleton store is in memory; a durable one keeps the file open.
    std::mem::forget(dir);
    Harness {
        api,
        runner,
        reports: tx,
        shutdown: stx,
        task,
    }
}

fn pod_json(name: &str, image: &str) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeName": "node1",
            "terminationGracePeriodSeconds": 30,
            "containers": [{"name": "app", "image": image}]
        }
    }))
    .unwrap()
}

async fn eventually<F: Fn() -> bool>(what: &str, f: F) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for {what}");
}

fn pods() -> &'static registry::Resource {
    registry::resource("", "pods").unwrap()
}

async fn create(h: &Harness, name: &str, image: &str) -> Pod {
    let w = h
        .api
        .create(
            pods(),
            "default",
            &pod_json(name, image),
            BodyFormat::Json,
            &WriteOptions::default(),
        )
        .await
        .unwrap();
    serde_json::from_value((*w.object).clone()).unwrap()
}

#[tokio::test]
async fn a_created_pod_is_synced_once_and_its_status_reaches_the_api() {
    let h = harness().await;
    let pod = create(&h, "web", "busybox:1.35").await;
    let runner = h.runner.clone();
    eventually("sync", || runner.calls.lock().unwrap().len() == 1).await;
    assert_eq!(
        runner.calls.lock().unwrap()[0],
        Call::Sync {
            name: "web".into(),
            image: "busybox:1.35".into()
        }
    );
    let uid = pod.metadata.uid.clone().unwrap();
    h.reports
        .send(PodReport::Status {
            uid: uid.clone(),
            namespace: "default".into(),
            name: "web".into(),
            status: PodStatus {
                phase: Some("Running".into()),
                ..Default::default()
            },
        })
        .unwrap();
    let api = h.api.clone();
    eventually("status written", || {
        api.get(pods(), "default", "web")
            .map(|o| o["status"]["phase"] == "Running")
            .unwrap_or(false)
    })
    .await;
    h.shutdown.send(true).unwrap();
    h.task.await.unwrap();
}

#[tokio::test]
async fn statuses_are_coalesced_per_pod() {
    let h = harness().await;
    let pod = create(&h, "web", "busybox:1.35").await;
    let uid = pod.metadata.uid.clone().unwrap();
    let before = h.api.store().current_rev();
    for i in 0..50 {
        h.reports
            .send(PodReport::Status {
                uid: uid.clone(),
                namespace: "default".into(),
                name: "web".into(),
                status: PodStatus {
                    message: Some(i.to_string()),
                    ..Default::default()
                },
            })
            .unwrap();
    }
    let api = h.api.clone();
    eventually("last status", || {
        api.get(pods(), "default", "web")
            .map(|o| o["status"]["message"] == "49")
            .unwrap_or(false)
    })
    .await;
    let writes = h.api.store().current_rev() - before;
    assert!(writes < 50, "{writes} status writes for 50 reports");
    h.shutdown.send(true).unwrap();
    h.task.await.unwrap();
}

#[tokio::test]
async fn events_are_recorded_and_aggregated() {
    let h = harness().await;
    let pod = create(&h, "web", "busybox:1.35").await;
    let uid = pod.metadata.uid.clone().unwrap();
    let runner = h.runner.clone();
    eventually("sync", || !runner.calls.lock().unwrap().is_empty()).await;
    for ms in [1_000, 2_000, 3_000] {
        h.reports
            .send(PodReport::Event {
                uid: uid.clone(),
                namespace: "default".into(),
                name: "web".into(),
                event: skiff_engine::Event {
                    type_: skiff_engine::EventType::Warning,
                    reason: "BackOff".into(),
                    message: "Back-off restarting failed container app".into(),
                    container: Some("app".into()),
                },
                at: Time::from_millis(ms),
            })
            .unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    let api = h.api.clone();
    let events = registry::resource("", "events").unwrap();
    eventually("one event, count 3", || {
        let l = api
            .list(events, Some("default"), &Default::default())
            .unwrap();
        l.items.len() == 1 && l.items[0]["count"] == 3
    })
    .await;
    h.shutdown.send(true).unwrap();
    h.task.await.unwrap();
}

#[tokio::test]
async fn an_image_update_is_handed_to_the_worker() {
    let h = harness().await;
    let pod = create(&h, "web", "busybox:1.35").await;
    let runner = h.runner.clone();
    eventually("sync", || runner.calls.lock().unwrap().len() == 1).await;
    let mut updated = pod.clone();
    updated.spec.as_mut().unwrap().containers[0].image = Some("busybox:1.36".into());
    // The registry bumps the generation on a spec change; the skeleton registry does not,
    // so the test sets it as the registry will.
    updated.metadata.generation = Some(pod.metadata.generation.unwrap_or(1) + 1);
    h.api
        .update(
            pods(),
            "default",
            "web",
            None,
            &serde_json::to_vec(&updated).unwrap(),
            BodyFormat::Json,
            &WriteOptions::default(),
        )
        .await
        .unwrap();
    eventually("second sync", || runner.calls.lock().unwrap().len() == 2).await;
    assert_eq!(
        runner.calls.lock().unwrap()[1],
        Call::Sync {
            name: "web".into(),
            image: "busybox:1.36".into()
        }
    );
    h.shutdown.send(true).unwrap();
    h.task.await.unwrap();
}

#[tokio::test]
async fn a_graceful_deletion_stops_the_pod_and_ends_with_the_final_delete() {
    let h = harness().await;
    let pod = create(&h, "web", "busybox:1.35").await;
    let uid = pod.metadata.uid.clone().unwrap();
    let runner = h.runner.clone();
    eventually("sync", || runner.calls.lock().unwrap().len() == 1).await;
    // A graceful delete: the registry sets deletionTimestamp = now + grace (the pod is bound,
    // so the grace is the pod's 30 s).
    let out = h
        .api
        .delete(pods(), "default", "web", &DeleteOptions::default())
        .await
        .unwrap();
    assert!(matches!(out, registry::Deleted::Pending(_)));
    eventually("stop", || runner.calls.lock().unwrap().len() == 2).await;
    match &runner.calls.lock().unwrap()[1] {
        Call::Stop { uid: u, grace } => {
            assert_eq!(u, &uid);
            let g = grace.unwrap();
            assert!((29..=30).contains(&g), "grace {g}");
        }
        other => panic!("{other:?}"),
    }
    h.reports
        .send(PodReport::Finished {
            uid: uid.clone(),
            namespace: "default".into(),
            name: "web".into(),
            status: PodStatus {
                phase: Some("Succeeded".into()),
                ..Default::default()
            },
        })
        .unwrap();
    let api = h.api.clone();
    eventually("pod removed", || api.get(pods(), "default", "web").is_err()).await;
    h.shutdown.send(true).unwrap();
    h.task.await.unwrap();
}

#[tokio::test]
async fn a_forced_deletion_stops_at_once() {
    let h = harness().await;
    let pod = create(&h, "web", "busybox:1.35").await;
    let uid = pod.metadata.uid.clone().unwrap();
    let runner = h.runner.clone();
    eventually("sync", || runner.calls.lock().unwrap().len() == 1).await;
    h.api
        .delete(
            pods(),
            "default",
            "web",
            &DeleteOptions {
                grace_period_seconds: Some(0),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    eventually("stop", || runner.calls.lock().unwrap().len() == 2).await;
    assert_eq!(
        runner.calls.lock().unwrap()[1],
        Call::Stop {
            uid,
            grace: Some(0)
        }
    );
    h.shutdown.send(true).unwrap();
    h.task.await.unwrap();
}

#[tokio::test]
async fn terminal_pods_found_at_start_are_not_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    let api = Api::open(store, Arc::new(FakeNode)).await.unwrap();
    let w = api
        .create(
            pods(),
            "default",
            &pod_json("done", "busybox:1.35"),
            BodyFormat::Json,
            &WriteOptions::default(),
        )
        .await
        .unwrap();
    let uid = w.object["metadata"]["uid"].as_str().unwrap().to_string();
    api.set_pod_statuses(vec![(
        "default".into(),
        "done".into(),
        uid,
        PodStatus {
            phase: Some("Succeeded".into()),
            ..Default::default()
        },
    )])
    .await;
    let runner = Arc::new(Recording::default());
    let (_tx, rx) = mpsc::unbounded_channel();
    let (stx, srx) = tokio::sync::watch::channel(false);
    let task = tokio::spawn(Kubelet::new(api.clone(), runner.clone(), "node1").run(rx, srx));
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(runner.calls.lock().unwrap().is_empty());
    stx.send(true).unwrap();
    task.await.unwrap();
}
