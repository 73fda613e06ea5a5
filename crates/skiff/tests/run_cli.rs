//! `skiff run` as a command: `--timeout`, SIGINT, bad input, start failures, and what is left
//! behind (processes, temp dirs, CRI logs). Pods are `/bin/sh -c` scripts logging to a shared
//! file (see `common`); each test is named after the SEMANTICS.md rule (or CLI contract of
//! issue 3) it proves.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// A sidecar with a slow preStop and an app, both exiting 0 on SIGTERM.
fn serving_pod(name: &str) -> serde_json::Value {
    let side = with(
        sidecar("side", SERVE),
        "lifecycle",
        json!({"preStop": {"exec": {"command": ["/bin/sh", "-c",
            "echo \"$(date +%s.%N) side PreStop\" >> \"$T/log\"; sleep 0.3"]}}}),
    );
    // The app takes a moment to stop, so a sidecar signalled too early would show.
    let app = container(
        "app",
        "trap 'sleep 0.5; l Exiting; exit 0' TERM; while :; do sleep 0.05; done",
    );
    pod(name, "Always", vec![side], vec![app])
}

// T1, T4, T12 (CLI `--timeout`): when the time is up the pod is terminated gracefully — every
// preStop starts at once, the app is signalled, the sidecar only after the app exited — and
// skiff exits 124 saying it stopped the pod (issue 8 item 5); apps that exited 0 on SIGTERM
// make the pod Succeeded (T12). The timeout is a Go duration (issue 8 item 7).
#[test]
fn t1_t4_timeout_terminates_gracefully_exit_124() {
    let t = TestDir::new("t1-timeout");
    let out = t.run(serving_pod("timeout"), &["--timeout", "2s"]);
    let log = t.log();
    let r = render(&log);
    assert_eq!(out.code, Some(124), "stderr:\n{}", out.stderr);
    assert!(
        out.stderr
            .contains("skiff: pod timeout stopped after --timeout 2s\n"),
        "{}",
        out.stderr
    );
    assert!(out.elapsed >= Duration::from_secs(2), "{:?}", out.elapsed);
    assert!(out.elapsed < Duration::from_secs(15), "{:?}", out.elapsed);
    // T4: the sidecar's preStop does not wait for the app; its SIGTERM does.
    assert!(
        at(&log, "side", "PreStop") < at(&log, "app", "Exiting"),
        "{r}"
    );
    assert!(
        at(&log, "app", "Exiting") < at(&log, "side", "Exiting"),
        "{r}"
    );
    let p = out.pod();
    assert_eq!(p["status"]["phase"], "Succeeded", "T12: {:#}", p["status"]);
    assert_eq!(status_of(&p, "app")["state"]["terminated"]["exitCode"], 0);
    assert_eq!(status_of(&p, "app")["restartCount"], 0, "R2: no restart");
}

// T1: SIGINT to skiff terminates the pod gracefully (the same path as a deletion); skiff
// exits 130 and says the pod was stopped, even though it Succeeded (issue 8 item 5).
#[test]
fn t1_sigint_terminates_pod_gracefully() {
    let t = TestDir::new("t1-sigint");
    let manifest = t.manifest(serving_pod("sigint"));
    let child = spawn(&["run", "-f", manifest.to_str().unwrap(), "-o", "json"]);
    let pid = child.id();
    assert!(
        wait_until(Duration::from_secs(20), || all(&t.log(), "app", "Starting")
            .len()
            == 1),
        "app never started"
    );
    signal(pid, "INT");
    let out = finish(child, RUN_LIMIT);
    let log = t.log();
    let r = render(&log);
    assert!(
        out.stderr
            .contains("interrupted; stopping the pod gracefully"),
        "{}",
        out.stderr
    );
    assert!(
        at(&log, "side", "PreStop") < at(&log, "app", "Exiting"),
        "{r}"
    );
    assert!(
        at(&log, "app", "Exiting") < at(&log, "side", "Exiting"),
        "{r}"
    );
    let p = out.pod();
    assert_eq!(p["status"]["phase"], "Succeeded", "T12: {:#}", p["status"]);
    assert_eq!(out.code, Some(130), "stderr:\n{}", out.stderr);
    assert!(
        out.stderr.contains("skiff: pod sigint stopped (SIGINT)\n"),
        "{}",
        out.stderr
    );
}

// T1 (CLI): a second SIGINT kills at once, without waiting out the 30 s grace of a container
// that ignores SIGTERM. The pod ends Failed (137s), but skiff reports a stop, not a failure:
// exit 130, "stopped", and the table of what was killed.
#[test]
fn t1_second_sigint_kills_at_once() {
    let t = TestDir::new("t1-sigint2");
    let mut pod = pod(
        "sigint-twice",
        "Always",
        vec![sidecar(
            "side",
            "trap 'l TermIgnored' TERM; while :; do sleep 0.05; done",
        )],
        vec![container(
            "app",
            "trap 'l TermIgnored' TERM; while :; do sleep 0.05; done",
        )],
    );
    pod["spec"]["terminationGracePeriodSeconds"] = json!(30);
    let manifest = t.manifest(pod);
    let child = spawn(&["run", "-f", manifest.to_str().unwrap(), "-o", "json"]);
    let pid = child.id();
    assert!(
        wait_until(Duration::from_secs(20), || all(&t.log(), "app", "Starting")
            .len()
            == 1),
        "app never started"
    );
    signal(pid, "INT");
    assert!(
        wait_until(Duration::from_secs(20), || all(
            &t.log(),
            "app",
            "TermIgnored"
        )
        .len()
            == 1),
        "app never got SIGTERM"
    );
    let second = Instant::now();
    signal(pid, "INT");
    let out = finish(child, RUN_LIMIT);
    let after = second.elapsed();
    assert!(
        after < Duration::from_secs(10),
        "took {after:?} after the second SIGINT"
    );
    assert!(out.stderr.contains("killing the pod now"), "{}", out.stderr);
    let p = out.pod();
    let app = status_of(&p, "app");
    assert_eq!(app["state"]["terminated"]["exitCode"], 137, "{app:#}");
    let side = status_of(&p, "side");
    assert_eq!(side["state"]["terminated"]["exitCode"], 137, "{side:#}");
    assert_eq!(p["status"]["phase"], "Failed", "T12: {:#}", p["status"]);
    assert_eq!(out.code, Some(130), "stderr:\n{}", out.stderr);
    let headline = out
        .stderr
        .lines()
        .find(|l| l.starts_with("skiff: pod sigint-twice "))
        .unwrap_or_else(|| panic!("no summary:\n{}", out.stderr));
    assert_eq!(headline, "skiff: pod sigint-twice stopped (SIGINT)");
    assert!(
        out.stderr.lines().any(|l| l.starts_with("app ")
            && l.split_whitespace().collect::<Vec<_>>()[..5]
                == ["app", "app", "Error", "137", "0"]),
        "{}",
        out.stderr
    );
    assert!(t.leftovers().is_empty(), "{:?}", t.leftovers());
}

// V0 (CLI): an invalid manifest is rejected with the API server's message, exit 2, and nothing
// is started.
#[test]
fn v0_invalid_manifest_exit_2_nothing_started() {
    let t = TestDir::new("v0-invalid");
    let mut pod = pod(
        "invalid",
        "Sometimes",
        vec![],
        vec![container("app", "l Exiting")],
    );
    pod["spec"]["containers"][0]["name"] = json!("App_1");
    let out = t.run(pod, &[]);
    assert_eq!(out.code, Some(2), "stderr:\n{}", out.stderr);
    assert!(out.stdout.is_empty(), "{}", out.stdout);
    assert!(
        out.stderr.contains("The Pod \"invalid\" is invalid: \n* ")
            && out
                .stderr
                .contains("spec.restartPolicy: Unsupported value: \"Sometimes\"")
            && out
                .stderr
                .contains("spec.containers[0].name: Invalid value: \"App_1\""),
        "{}",
        out.stderr
    );
    assert!(!t.file("log").exists(), "a container ran");
    assert!(!t.file("pids").exists(), "a container ran");
}

// ST3, ST4: a command that does not exist cannot start: the runtime keeps a record
// `terminated{reason: StartError, exitCode: 128}` with the runtime's message, a Warning `Failed`
// event; under Never the pod is Failed and skiff exits 1. The other container is unaffected.
#[test]
fn st4_missing_command_is_start_error_128() {
    let t = TestDir::new("st4-missing");
    let mut missing = container("missing", "");
    missing["command"] = json!(["/nonexistent/skiff-no-such-binary"]);
    let pod = pod(
        "missing",
        "Never",
        vec![],
        vec![missing, container("other", "l Exiting")],
    );
    let out = t.run(pod, &[]);
    assert_eq!(out.code, Some(1), "stderr:\n{}", out.stderr);
    let p = out.pod();
    assert_eq!(p["status"]["phase"], "Failed");
    let s = status_of(&p, "missing");
    let term = &s["state"]["terminated"];
    assert_eq!(term["reason"], "StartError", "{s:#}");
    assert_eq!(term["exitCode"], 128, "{s:#}");
    assert!(
        term["message"]
            .as_str()
            .unwrap_or("")
            .contains("/nonexistent/skiff-no-such-binary"),
        "{s:#}"
    );
    assert_eq!(s["restartCount"], 0);
    assert!(
        out.stderr.contains("Warning Failed: Error: "),
        "{}",
        out.stderr
    );
    let other = status_of(&p, "other");
    assert_eq!(other["state"]["terminated"]["exitCode"], 0, "{other:#}");
}

// ST3, ST4, T11: a container that cannot start under OnFailure is retried (first restart
// immediate, R5), each failed attempt a `StartError`/128 record. While it waits its status is
// `waiting{RunContainerError|CrashLoopBackOff}` (engine table tests, status.rs) — but the CLI only
// prints the final status, and when activeDeadlineSeconds ends the pod the kubelet's
// TerminatePod turns every non-terminated app status into ContainerStatusUnknown/137 (T11),
// keeping the failed attempt in lastState.
#[test]
fn st4_t11_unstartable_container_retried_keeps_start_error_in_last_state() {
    let t = TestDir::new("st4-retry");
    let mut missing = container("missing", "");
    missing["command"] = json!(["/nonexistent/skiff-no-such-binary"]);
    let mut pod = pod("missing-retry", "OnFailure", vec![], vec![missing]);
    pod["spec"]["activeDeadlineSeconds"] = json!(2);
    let out = t.run(pod, &[]);
    assert_eq!(out.code, Some(1), "stderr:\n{}", out.stderr);
    let p = out.pod();
    assert_eq!(p["status"]["phase"], "Failed");
    assert_eq!(p["status"]["reason"], "DeadlineExceeded");
    let s = status_of(&p, "missing");
    assert_eq!(s["restartCount"], 1, "{s:#}");
    assert_eq!(
        s["lastState"]["terminated"]["reason"], "StartError",
        "{s:#}"
    );
    assert_eq!(s["lastState"]["terminated"]["exitCode"], 128, "{s:#}");
    let state = &s["state"]["terminated"];
    assert_eq!(state["reason"], "ContainerStatusUnknown", "{s:#}");
    assert_eq!(state["exitCode"], 137, "{s:#}");
    assert_eq!(
        out.stderr.matches("Warning Failed: Error: ").count(),
        2,
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("Warning BackOff: Back-off restarting failed container missing"),
        "{}",
        out.stderr
    );
}

/// Scripts for the fault pod: a daemon that escapes with setsid (its PID recorded), a
/// double-forked orphan, a zombie that its parent never reaps, and an output flood.
fn fault_pod(name: &str) -> serde_json::Value {
    let daemon = container(
        "daemon",
        "setsid sleep 1000 & echo $! >> \"$T/pids\"; \
         (sleep 1000 & echo $! >> \"$T/pids\") ; \
         sleep 0.3; l Exiting",
    );
    // `exec sleep` leaves the backgrounded child to a parent that never waits: a zombie.
    let zombie = sidecar(
        "zombie",
        "sh -c 'sleep 0.1 & echo $! >> \"$T/pids\"; exec sleep 1000' & echo $! >> \"$T/pids\"; \
         trap 'l Exiting; exit 0' TERM; while :; do sleep 0.05; done",
    );
    let flood = container(
        "flood",
        &format!(
            "yes {} | head -n {FLOOD_LINES}; l Exiting",
            "x".repeat(FLOOD_WIDTH)
        ),
    );
    pod(name, "Never", vec![zombie], vec![daemon, flood])
}

const FLOOD_LINES: usize = 40_000;
const FLOOD_WIDTH: usize = 99;

// Issue 3 "bad input and faults": daemonised children, orphans, zombies and output floods are
// handled, nothing of the pod is left running after `skiff run` returns, and without
// `--data-dir` no temporary directory is left behind.
#[test]
fn faults_leave_no_process_and_no_temp_dir_behind() {
    let t = TestDir::new("faults");
    let tmp = t.file("tmp");
    std::fs::create_dir(&tmp).unwrap();
    let manifest = t.manifest(fault_pod("faults"));
    let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_skiff"));
    cmd.args(["run", "-f", manifest.to_str().unwrap(), "-o", "json"])
        .env("TMPDIR", &tmp)
        .env("SKIFF_DATA_DIR", t.file("data"))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let out = finish(cmd.spawn().unwrap(), RUN_LIMIT);
    assert_eq!(out.code, Some(0), "stderr tail:\n{}", tail(&out.stderr));
    let pids = t.pids("pids");
    // 3 shells + setsid daemon + orphan + zombie parent + zombie child (PIDs as each
    // container's own PID namespace numbers them, so the host check is by marker).
    assert_eq!(pids.len(), 7, "{pids:?}");
    let marked = t.leftovers();
    assert!(marked.is_empty(), "left running: {marked:?}");
    let temp_left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(temp_left.is_empty(), "left in TMPDIR: {temp_left:?}");
    let p = out.pod();
    assert_eq!(p["status"]["phase"], "Succeeded");
    // The flood reached stderr (prefixed) even if a slow reader may lose lines live.
    assert!(out
        .stderr
        .contains(&format!("[flood] {}", "x".repeat(FLOOD_WIDTH))));
}

// Issue 3 CLI: with `--data-dir` the CRI logs stay at
// `pods/<ns>_<name>_<uid>/<container>/0.log`, in CRI format, complete even after a flood.
#[test]
fn data_dir_keeps_cri_logs() {
    let t = TestDir::new("datadir");
    let data = t.file("data");
    let out = t.run(fault_pod("logs"), &["--data-dir", data.to_str().unwrap()]);
    assert_eq!(out.code, Some(0), "stderr tail:\n{}", tail(&out.stderr));
    let p = out.pod();
    let uid = p["metadata"]["uid"].as_str().unwrap();
    let dir = data.join(format!("pods/default_logs_{uid}"));
    let flood = std::fs::read_to_string(dir.join("flood/0.log")).unwrap();
    let want = "x".repeat(FLOOD_WIDTH);
    let mut n = 0;
    for line in flood.lines() {
        // `<RFC3339Nano> <stdout|stderr> <P|F> <content>`
        let parts: Vec<&str> = line.splitn(4, ' ').collect();
        assert_eq!(parts.len(), 4, "not CRI: {line:?}");
        assert!(
            parts[0].len() >= 20 && parts[0].contains('T') && parts[0].ends_with('Z'),
            "timestamp: {line:?}"
        );
        assert!(
            parts[0].contains('.'),
            "timestamp without fraction: {line:?}"
        );
        assert_eq!(parts[1], "stdout", "{line:?}");
        assert_eq!(parts[2], "F", "{line:?}");
        assert_eq!(parts[3], want, "{line:?}");
        n += 1;
    }
    assert_eq!(n, FLOOD_LINES);
    for c in ["daemon", "zombie"] {
        assert!(dir.join(c).join("0.log").exists(), "{c} log missing");
    }
    assert!(t.leftovers().is_empty(), "{:?}", t.leftovers());
}

fn tail(s: &str) -> String {
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}
