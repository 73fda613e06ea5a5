#![allow(clippy::unwrap_used)]

use axum::http::{Method, StatusCode};
use http_body_util::BodyExt;
use serde_json::json;

use super::health::{self, State};
use super::requests::{classify, Info};
use super::Metrics;
use crate::store::{Key, Mutation, Store, StoreConfig};

fn c(method: Method, path_query: &str) -> Option<Info> {
    let (path, query) = match path_query.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (path_query, None),
    };
    classify(&method, path, query, None)
}

/// (verb, group, version, resource, subresource, scope, long-running)
fn labels(
    i: Option<Info>,
) -> Option<(
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    &'static str,
    bool,
)> {
    let i = i?;
    let l = i.labels;
    Some((
        l.verb,
        l.group,
        l.version,
        l.resource,
        l.subresource,
        l.scope,
        i.long_running,
    ))
}

#[test]
fn request_classification_is_kubes() {
    let g = Method::GET;
    assert_eq!(
        labels(c(g.clone(), "/api/v1/namespaces/default/pods")),
        Some(("LIST", "", "v1", "pods", "", "namespace", false))
    );
    assert_eq!(
        labels(c(g.clone(), "/api/v1/pods")),
        Some(("LIST", "", "v1", "pods", "", "cluster", false))
    );
    assert_eq!(
        labels(c(g.clone(), "/api/v1/namespaces/default/pods/x")),
        Some(("GET", "", "v1", "pods", "", "resource", false))
    );
    assert_eq!(
        labels(c(
            g.clone(),
            "/api/v1/namespaces/default/pods?watch=true&resourceVersion=5"
        )),
        Some(("WATCH", "", "v1", "pods", "", "namespace", true))
    );
    assert_eq!(
        labels(c(g.clone(), "/api/v1/pods?watch=0")),
        Some(("LIST", "", "v1", "pods", "", "cluster", false))
    );
    assert_eq!(
        labels(c(
            g.clone(),
            "/api/v1/namespaces/default/pods/x/log?follow=true"
        )),
        Some(("CONNECT", "", "v1", "pods", "log", "resource", true))
    );
    assert_eq!(
        labels(c(
            Method::POST,
            "/api/v1/namespaces/default/pods/x/exec?command=true"
        )),
        Some(("CONNECT", "", "v1", "pods", "exec", "resource", true))
    );
    // A create is scoped "resource" (kube's CleanScope).
    assert_eq!(
        labels(c(Method::POST, "/api/v1/namespaces/default/pods")),
        Some(("POST", "", "v1", "pods", "", "resource", false))
    );
    assert_eq!(
        labels(c(Method::PUT, "/api/v1/namespaces/x/status")),
        Some(("PUT", "", "v1", "namespaces", "status", "resource", false))
    );
    assert_eq!(
        labels(c(g.clone(), "/api/v1/namespaces/x")),
        Some(("GET", "", "v1", "namespaces", "", "resource", false))
    );
    assert_eq!(
        labels(c(Method::DELETE, "/api/v1/namespaces/default/pods")),
        Some(("DELETE", "", "v1", "pods", "", "namespace", false))
    );
    let apply = classify(
        &Method::PATCH,
        "/api/v1/namespaces/default/pods/x",
        Some("fieldManager=kubectl"),
        Some(b"application/apply-patch+yaml"),
    );
    assert_eq!(apply.unwrap().labels.verb, "APPLY");
    assert_eq!(
        c(Method::POST, "/api/v1/namespaces/default/pods?dryRun=All")
            .unwrap()
            .labels
            .dry_run,
        "All"
    );
    assert_eq!(
        c(Method::POST, "/api/v1/namespaces/default/pods?dryRun=Nope")
            .unwrap()
            .labels
            .dry_run,
        "invalid"
    );
    // Non-resource paths: the path is the subresource label.
    assert_eq!(
        labels(c(g.clone(), "/readyz")),
        Some(("GET", "", "", "", "/readyz", "", false))
    );
    assert_eq!(
        labels(c(g.clone(), "/apis/apps/v1")),
        Some(("GET", "", "", "", "/apis", "", false))
    );
    // What skiff does not serve is not recorded: no series from arbitrary paths.
    for p in [
        "/api/v1/nothings",
        "/api/v1/pods/x",
        "/api/v2/pods",
        "/api/v1/namespaces/default/pods/x/nosuchsub",
        "/random/path",
        "/api/v1/a/b/c/d/e/f/g/h/i",
    ] {
        assert_eq!(c(g.clone(), p), None, "{p}");
    }
}

async fn body_text(r: axum::response::Response) -> String {
    String::from_utf8(r.into_body().collect().await.unwrap().to_bytes().to_vec()).unwrap()
}

fn params(q: &[(&str, &str)]) -> Vec<(String, String)> {
    q.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[tokio::test]
async fn health_texts_and_codes() {
    let up = State {
        store_open: true,
        shutting_down: false,
    };
    let r = health::serve("readyz", &[], &[], &up).unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        r.headers()["content-type"].to_str().unwrap(),
        "text/plain; charset=utf-8"
    );
    assert_eq!(body_text(r).await, "ok");
    let r = health::serve("readyz", &[], &params(&[("verbose", "")]), &up).unwrap();
    assert_eq!(
        body_text(r).await,
        "[+]ping ok\n[+]log ok\n[+]etcd ok\n[+]etcd-readiness ok\n[+]shutdown ok\nreadyz check passed\n"
    );
    let r = health::serve("livez", &[], &params(&[("verbose", "1")]), &up).unwrap();
    assert_eq!(
        body_text(r).await,
        "[+]ping ok\n[+]log ok\n[+]etcd ok\nlivez check passed\n"
    );
    // Stopping: readyz fails (listing, whatever verbose says); livez does not.
    let stopping = State {
        store_open: true,
        shutting_down: true,
    };
    let r = health::serve("readyz", &[], &[], &stopping).unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body_text(r).await,
        "[+]ping ok\n[+]log ok\n[+]etcd ok\n[+]etcd-readiness ok\n[-]shutdown failed: reason withheld\nreadyz check failed\n"
    );
    assert_eq!(
        health::serve("livez", &[], &[], &stopping)
            .unwrap()
            .status(),
        StatusCode::OK
    );
    let r = health::serve("readyz", &["shutdown"], &[], &stopping).unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        body_text(r).await,
        "internal server error: process is shutting down\n"
    );
    // The store closed: every endpoint fails its etcd check.
    let closed = State {
        store_open: false,
        shutting_down: false,
    };
    for name in ["healthz", "livez", "readyz"] {
        let r = health::serve(name, &[], &[], &closed).unwrap();
        assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR, "{name}");
        let t = body_text(r).await;
        assert!(t.contains("[-]etcd failed: reason withheld\n"), "{t}");
        assert!(t.ends_with(&format!("{name} check failed\n")), "{t}");
    }
    // exclude skips a check, and names what matched nothing.
    let r = health::serve(
        "readyz",
        &[],
        &params(&[
            ("exclude", "shutdown"),
            ("exclude", "nope"),
            ("verbose", ""),
        ]),
        &stopping,
    )
    .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(
        body_text(r).await,
        "[+]ping ok\n[+]log ok\n[+]etcd ok\n[+]etcd-readiness ok\n[+]shutdown excluded: ok\nwarn: some health checks cannot be excluded: no matches for \"nope\"\nreadyz check passed\n"
    );
    let r = health::serve("livez", &["ping"], &[], &up).unwrap();
    assert_eq!(body_text(r).await, "ok");
    assert!(health::serve("livez", &["shutdown"], &[], &up).is_none());
    assert!(health::serve("readyz", &["ping", "x"], &[], &up).is_none());
}

fn pod(name: &str, status: serde_json::Value) -> serde_json::Value {
    json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "uid": format!("uid-{name}")},
        "status": status,
    })
}

#[tokio::test]
async fn scrape_counts_objects_pods_containers_and_commits() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), StoreConfig::default()).unwrap();
    let m = Metrics::new();
    m.attach_store(&store);
    let pods = [
        pod(
            "a",
            json!({"phase": "Running", "podIP": "127.0.0.1", "containerStatuses": [
                {"name": "app", "restartCount": 3, "state": {"running": {}}},
                {"name": "side", "restartCount": 0, "state": {"waiting": {"reason": "CrashLoopBackOff"}},
                 "lastState": {"terminated": {"exitCode": 1}}},
            ]}),
        ),
        pod(
            "b",
            json!({"phase": "Pending", "containerStatuses": [
                {"name": "app", "restartCount": 0, "state": {"waiting": {"reason": "ContainerCreating"}}},
            ]}),
        ),
        pod(
            "c",
            json!({"phase": "Succeeded", "podIP": "127.0.0.1", "initContainerStatuses": [
                {"name": "init", "restartCount": 0, "state": {"terminated": {"exitCode": 0}}},
            ], "containerStatuses": [
                {"name": "app", "restartCount": 1, "state": {"terminated": {"exitCode": 0}}},
            ]}),
        ),
    ];
    let mut muts: Vec<Mutation> = pods
        .iter()
        .map(|p| Mutation::Create {
            key: Key::new("pods", "default", p["metadata"]["name"].as_str().unwrap()),
            object: p.clone(),
        })
        .collect();
    muts.push(Mutation::Create {
        key: Key::new("batch/jobs", "default", "j"),
        object: json!({"metadata": {"name": "j", "namespace": "default"}}),
    });
    for r in store.commit_many(muts).await {
        r.unwrap();
    }
    let text = m.encode(&store);
    let want = [
        "apiserver_storage_objects{resource=\"pods\"} 3\n",
        "apiserver_storage_objects{resource=\"jobs.batch\"} 1\n",
        "kubelet_running_pods 1\n",
        "kubelet_running_containers{container_state=\"running\"} 1\n",
        // side's last instance, c's init and app.
        "kubelet_running_containers{container_state=\"exited\"} 3\n",
        "skiff_pods{phase=\"Running\"} 1\n",
        "skiff_pods{phase=\"Pending\"} 1\n",
        "skiff_pods{phase=\"Succeeded\"} 1\n",
        "skiff_pods{phase=\"Failed\"} 0\n",
        "skiff_containers{state=\"waiting\"} 2\n",
        "skiff_containers{state=\"running\"} 1\n",
        "skiff_containers{state=\"terminated\"} 2\n",
        "kube_pod_container_status_restarts_total{namespace=\"default\",pod=\"a\",uid=\"uid-a\",container=\"app\"} 3\n",
        "kube_pod_container_status_restarts_total{namespace=\"default\",pod=\"c\",uid=\"uid-c\",container=\"app\"} 1\n",
        // One transaction of four mutations.
        "skiff_store_commit_duration_seconds_count 1\n",
        "skiff_store_commit_batch_size_sum 4.0\n",
    ];
    assert!(text.contains("# HELP apiserver_storage_objects Number of stored objects at the time of last check split by kind.\n"), "{text}");
    for w in want {
        assert!(text.contains(w), "missing {w:?} in:\n{text}");
    }
    // Counts follow the store: a deleted pod's series go.
    store
        .commit(Mutation::Delete {
            key: Key::new("pods", "default", "a"),
            expect_rev: None,
            expect_uid: None,
        })
        .await
        .unwrap();
    let text = m.encode(&store);
    assert!(
        text.contains("apiserver_storage_objects{resource=\"pods\"} 2\n"),
        "{text}"
    );
    assert!(!text.contains("pod=\"a\""), "{text}");
    assert!(
        text.contains("skiff_store_commit_duration_seconds_count 2\n"),
        "{text}"
    );
    assert!(store.is_open());
}
