//! `skiff serve` as the `kube` crate (kube-rs, what Rust operators use) sees it: the
//! kubeconfig from `skiff kubeconfig` works as is (TLS with skiff's CA, bearer token), a
//! reflector on pods and a watcher on events follow a pod through its life as informers do
//! (list at a revision, then watch from it: images-serve-facts §6.1), and a write with a stale
//! resourceVersion is a 409 Conflict. Root only (the pod runs).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod serve;

use std::time::Duration;

use futures_util::{StreamExt, TryStreamExt};
use k8s_openapi::api::core::v1::{Event, Pod};
use kube::api::{Api, DeleteParams, PostParams};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use serde_json::json;
use serve::Daemon;

async fn client_for(d: &Daemon) -> kube::Client {
    let text = std::fs::read_to_string(&d.kubeconfig).unwrap();
    let kc = kube::config::Kubeconfig::from_yaml(&text).unwrap();
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .unwrap();
    kube::Client::try_from(config).unwrap()
}

#[test]
fn informers_follow_a_pod_through_its_life() {
    if !common::is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    // The daemon needs kubectl only for its cleanup; without it the test cleans up itself.
    let d = Daemon::start("serve-kube");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let client = client_for(&d).await;
        let pods: Api<Pod> = Api::namespaced(client.clone(), "default");
        let (reader, writer) = reflector::store::<Pod>();
        let pod_stream = reflector(writer, watcher(pods.clone(), watcher::Config::default()))
            .applied_objects()
            .boxed();
        let reflector_task = tokio::spawn(async move {
            let mut s = pod_stream;
            while let Some(r) = s.next().await {
                if let Err(e) = r {
                    eprintln!("pod watcher: {e}");
                }
            }
        });
        let events: Api<Event> = Api::namespaced(client.clone(), "default");
        let (ev_tx, mut ev_rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
        let ev_task = tokio::spawn(async move {
            let s = watcher(events, watcher::Config::default()).applied_objects();
            let mut s = std::pin::pin!(s);
            while let Ok(Some(e)) = s.try_next().await {
                let _ = ev_tx.send(e);
            }
        });

        let mut p = common::pod(
            "informed",
            "Always",
            vec![common::sidecar("proxy", common::SERVE)],
            vec![common::container("app", common::SERVE)],
        );
        for list in ["initContainers", "containers"] {
            for c in p["spec"][list].as_array_mut().unwrap() {
                c["env"] = json!([{"name": "T", "value": d.dir.path()}]);
            }
        }
        let pod: Pod = serde_json::from_value(p).unwrap();
        let created = pods.create(&PostParams::default(), &pod).await.unwrap();
        assert!(
            created.spec.as_ref().unwrap().node_name.is_some(),
            "admitted pods are bound to the node"
        );

        // The reflector's cache sees the pod become Ready.
        let ready = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                let cached = reader
                    .state()
                    .into_iter()
                    .find(|p| p.metadata.name.as_deref() == Some("informed"));
                let is_ready = cached
                    .and_then(|p| p.status.clone())
                    .and_then(|s| s.conditions)
                    .is_some_and(|cs| cs.iter().any(|c| c.type_ == "Ready" && c.status == "True"));
                if is_ready {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(
            ready.is_ok(),
            "never Ready in the reflector: {}",
            d.daemon_log()
        );

        // The events watcher got the kubelet's Started events.
        let mut started = 0;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        while started < 2 && tokio::time::Instant::now() < deadline {
            if let Ok(Some(e)) =
                tokio::time::timeout(Duration::from_millis(500), ev_rx.recv()).await
            {
                if e.reason.as_deref() == Some("Started")
                    && e.involved_object.name.as_deref() == Some("informed")
                {
                    started += 1;
                }
            }
        }
        assert_eq!(started, 2, "Started events seen by the watcher");

        // A write with a stale resourceVersion: 409 Conflict.
        let mut stale = created.clone();
        stale
            .metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert("x".into(), "y".into());
        match pods
            .replace("informed", &PostParams::default(), &stale)
            .await
        {
            Err(kube::Error::Api(s)) => assert_eq!(s.code, 409, "{s:?}"),
            other => panic!("a stale replace: {other:?}"),
        }

        // Deletion: the reflector's cache drops the pod once the kubelet finished it.
        pods.delete("informed", &DeleteParams::default())
            .await
            .unwrap();
        let gone = tokio::time::timeout(Duration::from_secs(60), async {
            loop {
                if !reader
                    .state()
                    .iter()
                    .any(|p| p.metadata.name.as_deref() == Some("informed"))
                {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await;
        assert!(gone.is_ok(), "never deleted: {}", d.daemon_log());
        reflector_task.abort();
        ev_task.abort();
    });
    // In order: the app stopped before the sidecar (T3–T5).
    let log = d.dir.log();
    assert!(common::at(&log, "app", "Exiting") < common::at(&log, "proxy", "Exiting"));
}
