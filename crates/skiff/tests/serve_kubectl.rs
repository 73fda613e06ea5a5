//! `skiff serve` driven by the real kubectl binaries installed here (issue 11 "How it is
//! checked"): a pod with a native sidecar applied, waited Ready, listed (`2/2 Running`),
//! its logs, an image update of the sidecar that restarts the sidecar alone (S10), deletion
//! with ordered termination seen in the containers' own logs (T3–T5), describe with events,
//! a watch, 409 on a stale update, 422 and strict-decoding texts; then the crash test: the
//! daemon killed with SIGKILL and started again keeps every container (same PIDs, one start
//! each, restart counts unchanged). Root only (pods run in sandboxes); skipped, saying so,
//! where kubectl is not installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod serve;

use std::time::Duration;

use common::{at, container, pod, sidecar, with, SERVE};
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

/// The web pod: a `proxy` sidecar (startup probe on a file it writes) and an `app`.
fn web(d: &Daemon) -> String {
    let proxy = with(
        sidecar("proxy", &format!("touch $T/proxy-up; {SERVE}")),
        "startupProbe",
        json!({"exec": {"command": ["/bin/sh", "-c", "test -f $T/proxy-up"]}, "periodSeconds": 1}),
    );
    let app = container("app", &format!("echo hello from app; {SERVE}"));
    let p = pod("web", "Always", vec![proxy], vec![app]);
    manifest(d, p)
}

/// Writes `p` (with `T` in every container) as YAML and returns its path.
fn manifest(d: &Daemon, p: Value) -> String {
    d.dir.manifest(p).to_string_lossy().into_owned()
}

fn status_of<'a>(pod: &'a Value, name: &str) -> &'a Value {
    common::status_of(pod, name)
}

#[test]
fn kubectl_drives_a_sidecar_pod_through_its_life() {
    if skip() {
        return;
    }
    let d = Daemon::start("serve-kubectl");
    // A watch started before the pod exists sees it come (kubectl get -w: Table watch events).
    let watcher = d.spawn_kubectl("1.33", &["get", "pods", "-w", "--request-timeout=60s"]);
    let path = web(&d);
    let out = d.ok("1.33", &["apply", "-f", &path]);
    assert!(out.contains("pod/web created"), "{out}");
    d.ok(
        "1.33",
        &["wait", "--for=condition=Ready", "pod/web", "--timeout=60s"],
    );

    let watched = serve::finish_kubectl(watcher, Duration::from_millis(500));
    assert!(
        watched
            .lines()
            .any(|l| l.starts_with("web ") && l.contains("Running")),
        "kubectl get -w saw: {watched}"
    );

    // get pods: kubectl's columns from the server's Table (ST9).
    let table = d.ok("1.33", &["get", "pods"]);
    let row = table.lines().find(|l| l.starts_with("web ")).unwrap_or("");
    assert!(table.starts_with("NAME"), "{table}");
    assert!(row.contains("2/2") && row.contains("Running"), "{table}");
    let wide = d.ok("1.33", &["get", "pods", "-o", "wide"]);
    assert!(
        wide.contains("NODE") && wide.contains("127.0.0.1"),
        "{wide}"
    );
    let name = d.ok("1.33", &["get", "pods", "-o", "name"]);
    assert_eq!(name.trim(), "pod/web");

    // logs
    let logs = d.ok("1.33", &["logs", "web", "-c", "app"]);
    assert!(logs.contains("hello from app"), "{logs}");

    // describe: the events the kubelet loop recorded.
    let desc = d.ok("1.33", &["describe", "pod", "web"]);
    assert!(desc.contains("Events:"), "{desc}");
    assert!(desc.contains("Started"), "{desc}");

    // An image change of the sidecar restarts it alone (S10).
    let before = d.get_json(&["pod", "web"]);
    let proxy_id = status_of(&before, "proxy")["containerID"].clone();
    let app_id = status_of(&before, "app")["containerID"].clone();
    d.ok("1.33", &["set", "image", "pod/web", "proxy=busybox:1.37"]);
    let restarted = common::wait_until(Duration::from_secs(30), || {
        let p = d.get_json(&["pod", "web"]);
        status_of(&p, "proxy")["restartCount"] == 1 && status_of(&p, "proxy")["ready"] == true
    });
    assert!(restarted, "{}", d.daemon_log());
    let after = d.get_json(&["pod", "web"]);
    assert_ne!(status_of(&after, "proxy")["containerID"], proxy_id);
    assert_eq!(status_of(&after, "app")["containerID"], app_id);
    assert_eq!(status_of(&after, "app")["restartCount"], 0);

    // A stale update: 409 with kube's text.
    let mut stale = before.clone();
    stale["metadata"]["labels"] = json!({"x": "y"});
    let stale_path = d.dir.file("stale.json");
    std::fs::write(&stale_path, stale.to_string()).unwrap();
    let (rc, _, err) = d.kubectl("1.33", &["replace", "-f", stale_path.to_str().unwrap()]);
    assert_ne!(rc, 0);
    assert!(
        err.contains("the object has been modified; please apply your changes to the latest version and try again"),
        "{err}"
    );

    // Graceful deletion: the app gets SIGTERM before the sidecar (T3–T5).
    d.ok("1.33", &["delete", "pod", "web", "--timeout=60s"]);
    // (The first proxy's Exiting was its image-change restart: the last one counts.)
    let log = d.dir.log();
    let app_exit = at(&log, "app", "Exiting");
    let proxy_exit = *common::all(&log, "proxy", "Exiting").last().unwrap();
    assert!(app_exit < proxy_exit, "app {app_exit} proxy {proxy_exit}");
    let (rc, _, err) = d.kubectl("1.33", &["get", "pod", "web"]);
    assert_ne!(rc, 0);
    assert!(err.contains("pods \"web\" not found"), "{err}");
}

#[test]
fn bad_manifests_get_the_api_servers_errors() {
    if skip() {
        return;
    }
    let d = Daemon::start("serve-errors");
    // 422 Invalid with the field errors.
    let mut bad = pod("bad", "Always", vec![], vec![container("app", SERVE)]);
    bad["spec"]["containers"][0]["name"] = json!("Bad_Name");
    let path = manifest(&d, bad);
    let (rc, _, err) = d.kubectl("1.33", &["apply", "-f", &path]);
    assert_ne!(rc, 0);
    assert!(err.contains("is invalid"), "{err}");
    assert!(err.contains("spec.containers[0].name"), "{err}");

    // Strict decoding: an unknown field.
    let mut unknown = pod("unknown", "Always", vec![], vec![container("app", SERVE)]);
    unknown["spec"]["containers"][0]["imagePullPolicyy"] = json!("Always");
    let path = manifest(&d, unknown);
    let (rc, _, err) = d.kubectl("1.33", &["create", "-f", &path]);
    assert_ne!(rc, 0);
    assert!(err.contains("imagePullPolicyy"), "{err}");

    // Already exists.
    let ok = manifest(
        &d,
        pod("twice", "Always", vec![], vec![container("app", SERVE)]),
    );
    d.ok("1.33", &["create", "-f", &ok]);
    let (rc, _, err) = d.kubectl("1.33", &["create", "-f", &ok]);
    assert_ne!(rc, 0);
    assert!(err.contains("pods \"twice\" already exists"), "{err}");

    // A forbidden pod update: the first line of ValidatePodUpdate's message.
    let (rc, _, err) = d.kubectl(
        "1.33",
        &[
            "patch",
            "pod",
            "twice",
            "--type=merge",
            "-p",
            r#"{"spec":{"containers":[{"name":"app","image":"busybox:1.36","command":["true"]}]}}"#,
        ],
    );
    assert_ne!(rc, 0);
    assert!(
        err.contains("spec: Forbidden: pod updates may not change fields other than"),
        "{err}"
    );
}

#[test]
fn kubectl_1_27_works_too() {
    if skip() || kubectl_bin("1.27").is_none() {
        return;
    }
    let d = Daemon::start("serve-kubectl127");
    let path = manifest(
        &d,
        pod(
            "old",
            "Always",
            vec![],
            vec![container("app", &format!("echo old client; {SERVE}"))],
        ),
    );
    d.ok("1.27", &["apply", "-f", &path]);
    d.ok(
        "1.27",
        &["wait", "--for=condition=Ready", "pod/old", "--timeout=60s"],
    );
    let table = d.ok("1.27", &["get", "pods"]);
    assert!(
        table.contains("1/1") && table.contains("Running"),
        "{table}"
    );
    let logs = d.ok("1.27", &["logs", "old"]);
    assert!(logs.contains("old client"), "{logs}");
    d.ok("1.27", &["delete", "pod", "old", "--timeout=60s"]);
}

#[test]
fn the_daemon_survives_its_own_kill_9() {
    if skip() {
        return;
    }
    let mut d = Daemon::start("serve-crash");
    let path = web(&d);
    d.ok("1.33", &["apply", "-f", &path]);
    d.ok(
        "1.33",
        &["wait", "--for=condition=Ready", "pod/web", "--timeout=60s"],
    );
    let pids_before = d.dir.pids("pids");
    let before = d.get_json(&["pod", "web"]);
    assert_eq!(pids_before.len(), 2, "{pids_before:?}");

    for round in 0..3 {
        d.kill9();
        // The containers do not notice.
        for &p in &pids_before {
            assert!(
                common::alive(p),
                "round {round}: pid {p} died with the daemon"
            );
        }
        d.spawn();
        let ok = common::wait_until(Duration::from_secs(20), || {
            let p = d.get_json(&["pod", "web"]);
            status_of(&p, "app")["ready"] == true && status_of(&p, "proxy")["ready"] == true
        });
        assert!(ok, "round {round}: {}", d.daemon_log());
    }
    std::thread::sleep(Duration::from_secs(2));
    let after = d.get_json(&["pod", "web"]);
    assert_eq!(
        d.dir.pids("pids"),
        pids_before,
        "a container was started again"
    );
    for c in ["proxy", "app"] {
        assert_eq!(
            status_of(&after, c)["restartCount"],
            status_of(&before, c)["restartCount"],
            "{c}"
        );
        assert_eq!(
            status_of(&after, c)["containerID"],
            status_of(&before, c)["containerID"],
            "{c}"
        );
    }
    let starts: Vec<_> = d
        .dir
        .log()
        .into_iter()
        .filter(|l| l.what == "Starting")
        .map(|l| l.name)
        .collect();
    assert_eq!(starts.len(), 2, "{starts:?}");
    d.ok("1.33", &["delete", "pod", "web", "--timeout=60s"]);
}
