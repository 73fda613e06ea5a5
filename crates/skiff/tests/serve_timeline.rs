//! A pod's timeline under `skiff serve` (issue 13 item 4): the daemon serves the live record
//! as the pods' `timeline` subresource (kubectl reaches it with the kubeconfig's credentials),
//! `skiff timeline POD` reads it over the data dir's socket or through `--kubeconfig` (as from
//! another machine), and it follows the pod while it runs. Root and kubectl 1.33 only;
//! skipped, saying so, otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
mod serve;

use std::process::Command;
use std::time::Duration;

use common::{container, exec_probe, pod, sidecar, with};
use serde_json::Value;
use serve::{kubectl_bin, Daemon};

fn skiff(args: &[&str]) -> (i32, String, String) {
    let o = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(args)
        .env_remove("SKIFF_LOG")
        .output()
        .unwrap();
    (
        o.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn instances_of<'a>(tl: &'a Value, container: &str) -> Vec<&'a Value> {
    tl["instances"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["container"] == container)
        .collect()
}

#[test]
fn the_daemon_serves_a_running_pod_s_timeline() {
    if !common::is_root() || kubectl_bin("1.33").is_none() {
        eprintln!("skipped: needs root and kubectl.1.33");
        return;
    }
    let d = Daemon::start("serve-timeline");
    let proxy = with(
        sidecar(
            "proxy",
            "touch $T/up; trap 'exit 0' TERM; while :; do sleep 0.05; done",
        ),
        "readinessProbe",
        exec_probe("test -e $T/up", 1, 1),
    );
    let p = pod(
        "tl-served",
        "Always",
        vec![proxy],
        // Ignores SIGTERM: the pod stays Terminating for its 5 s grace after the delete.
        vec![container(
            "app",
            "trap '' TERM; while :; do sleep 0.05; done",
        )],
    );
    let path = d.dir.manifest(p);
    d.ok("1.33", &["apply", "-f", path.to_str().unwrap()]);
    d.ok(
        "1.33",
        &[
            "wait",
            "--for=condition=Ready",
            "pod/tl-served",
            "--timeout=60s",
        ],
    );
    // Live: the readiness probe of the sidecar keeps running; the record grows.
    std::thread::sleep(Duration::from_millis(2500));
    let raw = d.ok(
        "1.33",
        &[
            "get",
            "--raw",
            "/api/v1/namespaces/default/pods/tl-served/timeline",
        ],
    );
    let tl: Value = serde_json::from_str(&raw).unwrap();
    assert_eq!(tl["pod"]["name"], "tl-served");
    assert_eq!(tl["finished"], false);
    let proxy = instances_of(&tl, "proxy");
    assert_eq!(proxy.len(), 1, "{tl:#}");
    let runs: i64 = proxy[0]["probes"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["kind"] == "readiness" && p["ok"] == true)
        .map(|p| p["runs"].as_i64().unwrap())
        .sum();
    assert!(runs >= 2, "{tl:#}");
    let app = instances_of(&tl, "app");
    assert_eq!(app[0]["gate"]["after"], "proxy");
    assert!(app[0]["startedMs"].as_i64().is_some());

    // The same through kubectl 1.27, and the subresource is listed in discovery.
    if kubectl_bin("1.27").is_some() {
        let raw = d.ok(
            "1.27",
            &[
                "get",
                "--raw",
                "/api/v1/namespaces/default/pods/tl-served/timeline",
            ],
        );
        assert!(raw.contains("\"tl-served\""));
    }
    let discovery = d.ok("1.33", &["get", "--raw", "/api/v1"]);
    assert!(discovery.contains("pods/timeline"), "{discovery}");

    // `skiff timeline` over the data dir's socket, and with the kubeconfig (another machine).
    let data = d.data.to_str().unwrap();
    let (rc, out, err) = skiff(&["timeline", "tl-served", "--data-dir", data, "-o", "json"]);
    assert_eq!(rc, 0, "{err}");
    let via_socket: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(via_socket["pod"]["uid"], tl["pod"]["uid"]);
    let kc = d.kubeconfig.to_str().unwrap();
    let (rc, out, err) = skiff(&["timeline", "tl-served", "--kubeconfig", kc, "-o", "json"]);
    assert_eq!(rc, 0, "{err}");
    let via_tls: Value = serde_json::from_str(&out).unwrap();
    assert!(via_tls["endMs"].as_i64() >= tl["endMs"].as_i64());
    let (rc, out, err) = skiff(&["timeline", "tl-served", "--kubeconfig", kc, "--width", "80"]);
    assert_eq!(rc, 0, "{err}");
    assert!(out.contains("proxy") && out.contains("app"), "{out}");

    // A pod that does not exist: kube's NotFound, from the API server.
    let (rc, _, err) = skiff(&["timeline", "nope", "--kubeconfig", kc]);
    assert_eq!(rc, 1);
    assert!(err.contains("NotFound") && err.contains("nope"), "{err}");

    // Deleted: while the pod terminates, the record shows the stop and its reason.
    d.ok("1.33", &["delete", "pod", "tl-served", "--wait=false"]);
    let done = common::wait_until(Duration::from_secs(30), || {
        let (rc, out, _) = skiff(&["timeline", "tl-served", "--data-dir", data, "-o", "json"]);
        rc == 0
            && serde_json::from_str::<Value>(&out).is_ok_and(|t| {
                instances_of(&t, "app")
                    .first()
                    .is_some_and(|a| a["signals"][0]["why"] == "deletion")
            })
    });
    assert!(done, "no deletion in the record\n{}", d.daemon_log());
}
