//! Issue 8 item 6: what stays of a pod in the data dir, read back by `skiff logs` and
//! `skiff get pods` (kubectl's flags, messages, columns), for finished and running pods;
//! `--rm`, the retention bound and the data dir's trust checks.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(30);

/// `skiff ARGS --data-dir DATA` to completion.
fn skiff_in(data: &Path, args: &[&str]) -> Outcome {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(["--data-dir", data.to_str().unwrap()]);
    finish(spawn(&all), LIMIT)
}

/// Runs `pod` with its logs kept in `data`; returns the final Pod.
fn run_in(t: &TestDir, data: &Path, pod: Value, extra: &[&str]) -> Value {
    let mut args = vec!["--data-dir", data.to_str().unwrap()];
    args.extend_from_slice(extra);
    let out = t.run(pod, &args);
    assert!(
        matches!(out.code, Some(0 | 1)),
        "code {:?}\n{}",
        out.code,
        out.stderr
    );
    out.pod()
}

/// An init container, an app that fails once and then succeeds (OnFailure restarts it
/// at once), and a second app.
fn restart_pod(name: &str) -> Value {
    let prep = container("prep", "echo prepared");
    let app = container(
        "app",
        r#"if [ -f "$T/once" ]; then echo second; exit 0; fi; touch "$T/once"; echo first; sleep 0.2; echo oops >&2; exit 3"#,
    );
    let side = container("side", "echo side-out");
    pod(name, "OnFailure", vec![prep], vec![app, side])
}

/// Table rows split into cells (cells are separated by at least 3 spaces).
fn rows(table: &str) -> Vec<Vec<String>> {
    table
        .lines()
        .map(|l| {
            l.split("   ")
                .map(str::trim)
                .filter(|c| !c.is_empty())
                .map(str::to_string)
                .collect()
        })
        .collect()
}

fn pod_dirs(data: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(data.join("pods"))
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

// `skiff logs` on a finished pod: the current instance, `--previous` after a restart, the
// container chosen as kubectl does (and said on stderr), init containers, `--all-containers
// --prefix`, `--tail`/`--timestamps`, and kubectl's / the kubelet's errors.
#[test]
fn issue8_item6_logs_of_a_finished_pod_and_previous_after_restart() {
    let t = TestDir::new("logs-finished");
    let data = t.file("data");
    let p = run_in(&t, &data, restart_pod("restart"), &[]);
    assert_eq!(p["status"]["phase"], "Succeeded", "{:#}", p["status"]);
    assert_eq!(status_of(&p, "app")["restartCount"], 1);

    let out = skiff_in(&data, &["logs", "restart", "-c", "app"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "second\n");
    // --previous: the instance that failed, both streams.
    let out = skiff_in(&data, &["logs", "restart", "-c", "app", "--previous"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "first\noops\n");
    let out = skiff_in(
        &data,
        &[
            "logs",
            "pod/restart",
            "app",
            "-p",
            "--tail=1",
            "--timestamps",
        ],
    );
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let (ts, rest) = out.stdout.split_once(' ').unwrap();
    assert_eq!(rest, "oops\n");
    // RFC3339 with 9 fraction digits, UTC: 2006-01-02T15:04:05.000000000Z.
    assert_eq!(ts.len(), 30, "{ts}");
    assert!(
        ts.ends_with('Z') && ts.as_bytes()[10] == b'T' && ts.as_bytes()[19] == b'.',
        "{ts}"
    );

    // No -c on a pod of several containers: the first, said as kubectl says it.
    let out = skiff_in(&data, &["logs", "restart"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(out.stdout, "second\n");
    assert_eq!(
        out.stderr,
        "Defaulted container \"app\" out of: app, side, prep (init)\n"
    );
    let out = skiff_in(&data, &["logs", "restart", "-c", "prep"]);
    assert_eq!(out.stdout, "prepared\n");
    let out = skiff_in(&data, &["logs", "restart", "--all-containers", "--prefix"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout,
        "[pod/restart/prep] prepared\n[pod/restart/app] second\n[pod/restart/side] side-out\n"
    );
    // -f on a finished pod returns at the end of the log.
    let out = skiff_in(&data, &["logs", "-f", "restart", "-c", "side"]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(0), "side-out\n"));
    // Time bounds.
    let out = skiff_in(&data, &["logs", "restart", "-c", "app", "--since", "1h"]);
    assert_eq!(out.stdout, "second\n");
    let out = skiff_in(
        &data,
        &[
            "logs",
            "restart",
            "-c",
            "app",
            "--since-time",
            "2999-01-01T00:00:00Z",
        ],
    );
    assert_eq!((out.code, out.stdout.as_str()), (Some(0), ""));

    // Errors, with kubectl's words.
    let out = skiff_in(&data, &["logs", "restart", "-c", "side", "-p"]);
    assert_eq!(out.code, Some(1));
    assert_eq!(
        out.stderr,
        "Error from server (BadRequest): previous terminated container \"side\" in pod \"restart\" not found\n"
    );
    let out = skiff_in(&data, &["logs", "restart", "-c", "nope"]);
    assert_eq!(out.code, Some(1));
    assert_eq!(
        out.stderr,
        "error: container nope is not valid for pod restart out of: app, side, prep (init)\n"
    );
    let out = skiff_in(&data, &["logs", "nope"]);
    assert_eq!(out.code, Some(1));
    assert_eq!(
        out.stderr,
        "Error from server (NotFound): pods \"nope\" not found\n"
    );
    let out = skiff_in(&data, &["logs", "restart", "-n", "other"]);
    assert_eq!(out.code, Some(1), "{}", out.stderr);
    let out = skiff_in(
        &data,
        &[
            "logs",
            "restart",
            "--since",
            "1h",
            "--since-time",
            "2020-01-01T00:00:00Z",
        ],
    );
    assert_eq!(out.code, Some(2));
    assert!(out
        .stderr
        .contains("at most one of `sinceTime` or `sinceSeconds` may be specified"));
    let out = skiff_in(&data, &["logs", "restart", "app", "-c", "side"]);
    assert_eq!(out.code, Some(2));
    assert!(out
        .stderr
        .contains("only one of -c or an inline [CONTAINER] arg is allowed"));
    assert!(t.leftovers().is_empty(), "{:?}", t.leftovers());
}

// `skiff get pods`: kubectl's columns (aligned as its tabwriter does), STATUS per printPod,
// RESTARTS with `(… ago)`, the newest pod per name, `-o name|json|wide`, `-A`, the messages
// for nothing found, and `Unknown` for a pod whose skiff died mid-run.
#[test]
fn issue8_item6_get_pods_columns_and_statuses() {
    let t = TestDir::new("get-pods");
    let data = t.file("data");
    run_in(&t, &data, restart_pod("restart"), &[]);
    run_in(
        &t,
        &data,
        pod("fails", "Never", vec![], vec![container("c", "exit 1")]),
        &[],
    );
    let first_ok = run_in(
        &t,
        &data,
        pod("ok", "Never", vec![], vec![container("c", "true")]),
        &[],
    );
    let second_ok = run_in(
        &t,
        &data,
        pod("ok", "Never", vec![], vec![container("c", "true")]),
        &[],
    );
    assert_ne!(first_ok["metadata"]["uid"], second_ok["metadata"]["uid"]);

    let out = skiff_in(&data, &["get", "pods"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let r = rows(&out.stdout);
    assert_eq!(r[0], vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert_eq!(r.len(), 4, "one row per name:\n{}", out.stdout);
    assert_eq!(&r[1][..3], &["fails", "0/1", "Error"]);
    assert_eq!(r[1][3], "0");
    assert_eq!(&r[2][..4], &["ok", "0/1", "Completed", "0"]);
    assert_eq!(&r[3][..3], &["restart", "0/2", "Completed"]);
    assert!(
        r[3][3].starts_with("1 (") && r[3][3].ends_with("s ago)"),
        "{:?}",
        r[3]
    );
    assert!(r[3][4].ends_with('s'), "AGE {:?}", r[3]);
    // Aligned: every column starts where its header does.
    let lines: Vec<&str> = out.stdout.lines().collect();
    for h in ["READY", "STATUS", "RESTARTS", "AGE"] {
        let col = lines[0].find(h).unwrap();
        for l in &lines[1..] {
            assert_ne!(l.as_bytes()[col], b' ', "{h} misaligned:\n{}", out.stdout);
            assert_eq!(
                l.as_bytes()[col - 1],
                b' ',
                "{h} misaligned:\n{}",
                out.stdout
            );
        }
    }

    let out = skiff_in(&data, &["get", "pods", "-o", "name"]);
    assert_eq!(out.stdout, "pod/fails\npod/ok\npod/restart\n");
    let out = skiff_in(&data, &["get", "po", "-o", "json"]);
    let list: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().unwrap().len(), 3);
    assert!(
        out.stdout.starts_with("{\n    \"apiVersion\": \"v1\""),
        "kubectl's 4-space JSON"
    );
    let out = skiff_in(&data, &["get", "pod/ok", "-o", "json"]);
    let one: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(one["kind"], "Pod");
    assert_eq!(
        one["metadata"]["uid"], second_ok["metadata"]["uid"],
        "the newest"
    );
    assert_eq!(one["status"]["phase"], "Succeeded");
    assert_eq!(one["spec"]["containers"][0]["image"], "busybox:1.36");
    let out = skiff_in(&data, &["get", "pods", "-o", "wide"]);
    assert_eq!(
        rows(&out.stdout)[0],
        vec![
            "NAME",
            "READY",
            "STATUS",
            "RESTARTS",
            "AGE",
            "IP",
            "NODE",
            "NOMINATED NODE",
            "READINESS GATES"
        ]
    );
    let out = skiff_in(&data, &["get", "pods", "-A"]);
    let r = rows(&out.stdout);
    assert_eq!(r[0][0], "NAMESPACE");
    assert_eq!(&r[1][..2], &["default", "fails"]);

    let out = skiff_in(&data, &["get", "pods", "-n", "empty"]);
    assert_eq!((out.code, out.stdout.as_str()), (Some(0), ""));
    assert_eq!(out.stderr, "No resources found in empty namespace.\n");
    let out = skiff_in(&data, &["get", "pods", "ok", "nope"]);
    assert_eq!(out.code, Some(1));
    assert_eq!(
        out.stderr,
        "Error from server (NotFound): pods \"nope\" not found\n"
    );
    assert_eq!(rows(&out.stdout)[1][0], "ok");
    let out = skiff_in(&data, &["get", "deployments"]);
    assert_eq!(out.code, Some(2));
    assert!(
        out.stderr
            .contains("doesn't have a resource type \"deployments\""),
        "{}",
        out.stderr
    );

    // A pod whose skiff died while it ran: its last status says Running, nobody holds its
    // lock. Made from a finished pod's files.
    let src = pod_dirs(&data)
        .into_iter()
        .find(|d| d.to_string_lossy().contains("_fails_"))
        .unwrap();
    let ghost = data.join("pods/default_ghost_0000");
    std::fs::create_dir(&ghost).unwrap();
    let mut summary: Value =
        serde_json::from_slice(&std::fs::read(src.join("summary.json")).unwrap()).unwrap();
    summary["pod"]["metadata"]["name"] = json!("ghost");
    summary["pod"]["metadata"]["uid"] = json!("0000");
    summary["pod"]["status"]["phase"] = json!("Running");
    summary["pod"]["status"]["containerStatuses"][0]["state"] =
        json!({"running": {"startedAt": "2024-01-01T00:00:00Z"}});
    std::fs::write(ghost.join("summary.json"), summary.to_string()).unwrap();
    let out = skiff_in(&data, &["get", "pods", "ghost"]);
    assert_eq!(
        &rows(&out.stdout)[1][..3],
        &["ghost", "0/1", "Unknown"],
        "{}",
        out.stdout
    );
    assert!(t.leftovers().is_empty(), "{:?}", t.leftovers());
}

// A running pod seen from another terminal: `get pods` shows it Running while its skiff runs
// it, `logs` reads what it wrote so far, `logs -f` streams until the container ends; then the
// pod is Completed.
#[test]
fn issue8_item6_running_pod_from_another_terminal() {
    let t = TestDir::new("logs-running");
    let data = t.file("data");
    let manifest = t.manifest(pod(
        "live",
        "Never",
        vec![],
        vec![container(
            "c",
            "for i in 1 2 3 4 5 6; do echo tick $i; sleep 0.4; done",
        )],
    ));
    let run = spawn(&[
        "run",
        "-f",
        manifest.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    let running = wait_until(Duration::from_secs(20), || {
        let out = skiff_in(&data, &["get", "pods", "live"]);
        rows(&out.stdout)
            .get(1)
            .is_some_and(|r| r.get(2).map(String::as_str) == Some("Running"))
    });
    assert!(running, "never seen Running");
    let out = skiff_in(&data, &["get", "pods", "live"]);
    assert_eq!(&rows(&out.stdout)[1][..2], &["live", "1/1"]);
    let out = skiff_in(&data, &["logs", "live"]);
    assert!(out.stdout.starts_with("tick 1\n"), "{}", out.stdout);
    let out = skiff_in(&data, &["logs", "-f", "live"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert_eq!(
        out.stdout, "tick 1\ntick 2\ntick 3\ntick 4\ntick 5\ntick 6\n",
        "-f streams to the end"
    );
    let run_out = finish(run, LIMIT);
    assert_eq!(run_out.code, Some(0), "{}", run_out.stderr);
    let out = skiff_in(&data, &["get", "pods", "live"]);
    assert_eq!(&rows(&out.stdout)[1][..3], &["live", "0/1", "Completed"]);
    assert!(t.leftovers().is_empty(), "{:?}", t.leftovers());
}

// `--rm` removes what the pod left; `--keep-pods` bounds the finished pods kept.
#[test]
fn issue8_item6_rm_and_retention() {
    let t = TestDir::new("logs-retention");
    let data = t.file("data");
    let quick = |name: &str| pod(name, "Never", vec![], vec![container("c", "echo hi")]);
    run_in(&t, &data, quick("gone"), &["--rm"]);
    assert!(pod_dirs(&data).is_empty(), "{:?}", pod_dirs(&data));
    let out = skiff_in(&data, &["logs", "gone"]);
    assert_eq!(out.code, Some(1));
    for n in ["a", "b", "c"] {
        run_in(&t, &data, quick(n), &["--keep-pods", "2"]);
    }
    let dirs = pod_dirs(&data);
    assert_eq!(dirs.len(), 2, "{dirs:?}");
    let out = skiff_in(&data, &["get", "pods", "-o", "name"]);
    assert_eq!(out.stdout, "pod/b\npod/c\n");
    // Every finished pod ended more than 0 s ago: --keep-for 0s removes all of them, this
    // run's too once it has ended.
    run_in(&t, &data, quick("d"), &["--keep-for", "0s"]);
    assert!(pod_dirs(&data).is_empty(), "{:?}", pod_dirs(&data));
    let out = t.run(
        quick("x"),
        &["--data-dir", data.to_str().unwrap(), "--keep-for", "1d"],
    );
    assert_eq!(out.code, Some(2), "a Go duration has no days");
    assert!(out.stderr.contains("unknown unit"), "{}", out.stderr);
}

// The default data dir (here through SKIFF_DATA_DIR) is created 0711; a data dir writable by
// others is refused by `skiff run` and only warned about by the readers.
#[test]
fn issue8_item6_data_dir_default_and_trust() {
    let t = TestDir::new("logs-datadir");
    let data = t.file("envdata");
    let manifest = t.manifest(pod("env", "Never", vec![], vec![container("c", "echo hi")]));
    let run = |data: &Path| {
        let child = Command::new(env!("CARGO_BIN_EXE_skiff"))
            .args(["run", "-f", manifest.to_str().unwrap()])
            .env("SKIFF_DATA_DIR", data)
            .env_remove("SKIFF_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        finish(child, LIMIT)
    };
    let out = run(&data);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let mode = std::fs::metadata(&data).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o711);
    assert_eq!(pod_dirs(&data).len(), 1);
    let child = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["logs", "env"])
        .env("SKIFF_DATA_DIR", &data)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert_eq!(finish(child, LIMIT).stdout, "hi\n");

    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = run(&data);
    assert_eq!(out.code, Some(1));
    assert!(
        out.stderr.contains("writable by group or others"),
        "{}",
        out.stderr
    );
    assert_eq!(pod_dirs(&data).len(), 1, "nothing ran");
    let out = skiff_in(&data, &["get", "pods"]);
    assert_eq!(out.code, Some(0));
    assert!(
        out.stderr.starts_with("warning: data dir"),
        "{}",
        out.stderr
    );
    assert_eq!(rows(&out.stdout)[1][0], "env");
}
