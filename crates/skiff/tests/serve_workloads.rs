//! Workloads under `skiff serve`, driven by the real kubectl (issue 12 "How it is checked"): a
//! Job whose pod carries a native sidecar completes when the app exits and `kubectl wait
//! --for=condition=Complete` sees it, the sidecar stopped after the app; a failing Job stops at
//! its backoffLimit with the replacement back-off between its pods; an Indexed Job gives each
//! pod its `JOB_COMPLETION_INDEX`; a Deployment's rolling update never drops below
//! `replicas - maxUnavailable` available pods, `kubectl rollout status` follows it, and `kubectl
//! scale` resizes it. Root only; skipped, saying so, where kubectl is not installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod serve;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use common::{container, sidecar, SERVE};
use serde_json::{json, Value};
use serve::{kubectl_bin, Daemon};

fn skip() -> bool {
    if !common::is_root() {
        eprintln!("skipped: needs root");
        return true;
    }
    if kubectl_bin("1.33").is_none() {
        eprintln!("skipped: kubectl.1.33 is not installed");
        return true;
    }
    false
}

/// A pod template (host runtime class) whose containers see `T`, the test's directory.
fn template(d: &Daemon, labels: Value, init: Vec<Value>, apps: Vec<Value>, restart: &str) -> Value {
    let t = d.dir.path().to_string_lossy().into_owned();
    let env = |mut c: Value| {
        c["env"] = json!([{"name": "T", "value": t}]);
        c
    };
    json!({
        "metadata": {"labels": labels},
        "spec": {
            "runtimeClassName": "host",
            "restartPolicy": restart,
            "terminationGracePeriodSeconds": 5,
            "initContainers": init.into_iter().map(env).collect::<Vec<_>>(),
            "containers": apps.into_iter().map(env).collect::<Vec<_>>(),
        }
    })
}

fn apply(d: &Daemon, version: &str, object: &Value) {
    let (rc, out, err) = d.kubectl_stdin(version, &["apply", "-f", "-"], &object.to_string());
    assert_eq!(rc, 0, "apply failed: {err}\n{out}\n{}", d.daemon_log());
}

/// Lines of the shared log: (seconds, container, what).
fn log_lines(d: &Daemon) -> Vec<(f64, String, String)> {
    std::fs::read_to_string(d.dir.path().join("log"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| {
            let mut it = l.splitn(3, ' ');
            Some((
                it.next()?.parse().ok()?,
                it.next()?.to_string(),
                it.next()?.to_string(),
            ))
        })
        .collect()
}

fn condition<'a>(o: &'a Value, type_: &str) -> Option<&'a Value> {
    o["status"]["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)
}

#[test]
fn a_job_whose_pod_has_a_sidecar_completes_when_the_app_exits() {
    if skip() {
        return;
    }
    let d = Daemon::start("serve-job-sidecar");
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "migrate"},
        "spec": {
            "backoffLimit": 0,
            "template": template(
                &d,
                json!({}),
                vec![sidecar("proxy", SERVE)],
                vec![container("app", "sleep 0.3; l Done")],
                "Never",
            ),
        }
    });
    apply(&d, "1.33", &job);
    let out = d.ok(
        "1.33",
        &[
            "wait",
            "--for=condition=Complete",
            "job/migrate",
            "--timeout=60s",
        ],
    );
    assert!(out.contains("job.batch/migrate condition met"), "{out}");

    let j = d.get_json(&["job", "migrate"]);
    assert_eq!(j["status"]["succeeded"], 1, "{j:#}");
    assert!(j["status"]["completionTime"].is_string(), "{j:#}");
    assert_eq!(condition(&j, "Complete").unwrap()["status"], "True");
    // The controller's labels and selector (batch/v1 job strategy).
    let uid = j["metadata"]["uid"].as_str().unwrap();
    assert_eq!(
        j["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
        uid
    );
    let pods = d.get_json(&["pods", "-l", "job-name=migrate"]);
    let items = pods["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{pods:#}");
    let p = &items[0];
    assert_eq!(p["status"]["phase"], "Succeeded", "{p:#}");
    assert_eq!(p["metadata"]["ownerReferences"][0]["kind"], "Job");
    assert_eq!(p["metadata"]["ownerReferences"][0]["controller"], true);
    assert_eq!(
        p["metadata"]["labels"]["batch.kubernetes.io/job-name"],
        "migrate"
    );
    // The sidecar was stopped after the app ended (T3: sidecars after the regular containers).
    let lines = log_lines(&d);
    let app_done = lines
        .iter()
        .find(|l| l.1 == "app" && l.2 == "Done")
        .map(|l| l.0);
    let proxy_exit = lines
        .iter()
        .find(|l| l.1 == "proxy" && l.2 == "Exiting")
        .map(|l| l.0);
    assert!(
        matches!((app_done, proxy_exit), (Some(a), Some(p)) if a < p),
        "{lines:?}"
    );

    // kubectl 1.27 lists it with kube's columns.
    let out = d.ok("1.27", &["get", "jobs"]);
    assert!(out.contains("migrate") && out.contains("1/1"), "{out}");
    // Background deletion removes its pods (the garbage collector).
    d.ok("1.33", &["delete", "job", "migrate", "--wait=true"]);
    assert!(common::wait_until(Duration::from_secs(30), || {
        d.get_json(&["pods", "-l", "job-name=migrate"])["items"]
            .as_array()
            .is_some_and(Vec::is_empty)
    }));
}

#[test]
fn a_failing_job_stops_at_its_backoff_limit() {
    if skip() {
        return;
    }
    let d = Daemon::start("serve-job-backoff");
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "flaky"},
        "spec": {
            "backoffLimit": 1,
            "template": template(&d, json!({}), vec![], vec![container("app", "l Failing; exit 3")], "Never"),
        }
    });
    apply(&d, "1.33", &job);
    let out = d.ok(
        "1.33",
        &[
            "wait",
            "--for=condition=Failed",
            "job/flaky",
            "--timeout=90s",
        ],
    );
    assert!(out.contains("condition met"), "{out}");
    let j = d.get_json(&["job", "flaky"]);
    assert_eq!(j["status"]["failed"], 2, "{j:#}");
    let failed = condition(&j, "Failed").unwrap();
    assert_eq!(failed["reason"], "BackoffLimitExceeded", "{j:#}");
    // The replacement waited the controller's back-off (10 s for the first failure).
    let starts: Vec<f64> = log_lines(&d)
        .into_iter()
        .filter(|l| l.1 == "app" && l.2 == "Starting")
        .map(|l| l.0)
        .collect();
    assert_eq!(starts.len(), 2, "{starts:?}");
    assert!(starts[1] - starts[0] >= 9.0, "{starts:?}");
}

#[test]
fn an_indexed_job_gives_each_pod_its_completion_index() {
    if skip() {
        return;
    }
    let d = Daemon::start("serve-job-indexed");
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "shards"},
        "spec": {
            "completions": 3,
            "parallelism": 2,
            "completionMode": "Indexed",
            "template": template(&d, json!({}), vec![], vec![container("app", "l \"index=$JOB_COMPLETION_INDEX\"")], "Never"),
        }
    });
    apply(&d, "1.33", &job);
    d.ok(
        "1.33",
        &[
            "wait",
            "--for=condition=Complete",
            "job/shards",
            "--timeout=60s",
        ],
    );
    let j = d.get_json(&["job", "shards"]);
    assert_eq!(j["status"]["succeeded"], 3, "{j:#}");
    assert_eq!(j["status"]["completedIndexes"], "0-2", "{j:#}");
    let mut seen: Vec<String> = log_lines(&d)
        .into_iter()
        .filter(|l| l.1 == "app" && l.2.starts_with("index="))
        .map(|l| l.2)
        .collect();
    seen.sort();
    assert_eq!(seen, ["index=0", "index=1", "index=2"]);
    let pods = d.get_json(&["pods", "-l", "job-name=shards"]);
    for p in pods["items"].as_array().unwrap() {
        let index = p["metadata"]["annotations"]["batch.kubernetes.io/job-completion-index"]
            .as_str()
            .unwrap();
        assert!(
            p["metadata"]["name"]
                .as_str()
                .unwrap()
                .starts_with(&format!("shards-{index}-")),
            "{p:#}"
        );
    }
}

/// Ready pods of the deployment `web`.
fn ready_pods(d: &Daemon) -> usize {
    let (rc, out, _) = d.kubectl("1.33", &["get", "pods", "-l", "app=web", "-o", "json"]);
    if rc != 0 {
        return usize::MAX;
    }
    let v: Value = serde_json::from_str(&out).unwrap_or(Value::Null);
    v["items"]
        .as_array()
        .map(|items| {
            items
                .iter()
                .filter(|p| {
                    p["metadata"]["deletionTimestamp"].is_null()
                        && condition(p, "Ready").is_some_and(|c| c["status"] == "True")
                })
                .count()
        })
        .unwrap_or(usize::MAX)
}

#[test]
fn a_deployment_rolls_out_without_losing_availability() {
    if skip() {
        return;
    }
    let d = Daemon::start("serve-deploy");
    let mut c = container("app", SERVE);
    c["readinessProbe"] = json!({"exec": {"command": ["/bin/true"]}, "periodSeconds": 1});
    let deploy = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web"},
        "spec": {
            "replicas": 3,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
            "template": template(&d, json!({"app": "web"}), vec![], vec![c], "Always"),
        }
    });
    apply(&d, "1.33", &deploy);
    let out = d.ok(
        "1.33",
        &["rollout", "status", "deployment/web", "--timeout=60s"],
    );
    assert!(out.contains("successfully rolled out"), "{out}");
    assert_eq!(ready_pods(&d), 3);

    // Sample availability during the rolling update of the template.
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let lowest = std::thread::scope(|scope| {
        let sampler = scope.spawn(|| {
            let mut lowest = usize::MAX;
            while !stop.load(Ordering::SeqCst) {
                lowest = lowest.min(ready_pods(&d));
                std::thread::sleep(Duration::from_millis(100));
            }
            lowest
        });
        d.ok("1.33", &["set", "env", "deployment/web", "VERSION=2"]);
        let out = d.ok(
            "1.27",
            &["rollout", "status", "deployment/web", "--timeout=90s"],
        );
        assert!(out.contains("successfully rolled out"), "{out}");
        stop.store(true, Ordering::SeqCst);
        sampler.join().unwrap()
    });
    assert!(
        lowest >= 3,
        "availability dropped to {lowest} ready pods during the rollout"
    );
    eprintln!("rollout of 3 replicas took {:?}", started.elapsed());

    // Every remaining pod runs the new template; the old ReplicaSet is scaled to 0.
    let rs = d.get_json(&["replicasets", "-l", "app=web"]);
    let sets = rs["items"].as_array().unwrap();
    assert_eq!(sets.len(), 2, "{rs:#}");
    let mut replicas: Vec<i64> = sets
        .iter()
        .map(|s| s["spec"]["replicas"].as_i64().unwrap())
        .collect();
    replicas.sort();
    assert_eq!(replicas, [0, 3]);
    let out = d.ok("1.33", &["get", "deploy", "web"]);
    assert!(out.contains("3/3"), "{out}");

    d.ok("1.33", &["scale", "deployment/web", "--replicas=1"]);
    assert!(
        common::wait_until(Duration::from_secs(30), || {
            d.get_json(&["pods", "-l", "app=web"])["items"]
                .as_array()
                .is_some_and(|p| p.len() == 1)
        }),
        "{}\n{:#}\n{}",
        d.ok("1.33", &["get", "pods"]),
        d.get_json(&["pods", "-l", "app=web"]),
        d.daemon_log()
    );
}
