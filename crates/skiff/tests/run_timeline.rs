//! The lifecycle timeline of real pods (issue 13): `skiff run --timeline` draws it at the end,
//! `skiff timeline POD` reads it back from the data dir (text and JSON), and the record holds
//! what happened: gates, probes, hooks, signals with their reasons, exits.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::time::Duration;

use common::*;
use serde_json::{json, Value};

/// `skiff timeline ARGS` on the tests' data dir.
fn timeline(args: &[&str]) -> Outcome {
    let mut all = vec!["timeline"];
    all.extend_from_slice(args);
    finish(spawn(&all), Duration::from_secs(30))
}

fn instance<'a>(tl: &'a Value, container: &str, attempt: i64) -> &'a Value {
    tl["instances"]
        .as_array()
        .unwrap()
        .iter()
        .find(|i| i["container"] == container && i["attempt"] == attempt)
        .unwrap_or_else(|| panic!("no {container}#{attempt} in {tl:#}"))
}

/// S1/T4 on real processes: an init container, a sidecar gated by its startup probe and a
/// preStop hook, an app that completes.
#[test]
fn a_sidecar_pod_s_timeline_shows_gates_probes_and_the_ordered_stop() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let d = TestDir::new("timeline-sidecar");
    let proxy = with(
        with(
            sidecar(
                "proxy",
                "sleep 0.6; touch $T/ready; trap 'l Exiting; exit 0' TERM; while :; do sleep 0.05; done",
            ),
            "startupProbe",
            json!({"exec": {"command": ["/bin/sh", "-c", "test -e $T/ready"]},
                   "periodSeconds": 1, "failureThreshold": 30}),
        ),
        "lifecycle",
        json!({"preStop": {"exec": {"command": ["/bin/sh", "-c", "sleep 0.3"]}}}),
    );
    let p = pod(
        "tl-sidecar",
        "Never",
        vec![container("setup", "sleep 0.2"), proxy],
        vec![container("app", "sleep 0.5; l done")],
    );
    let out = d.run(p, &["--timeline"]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    // The drawing comes after the summary, on stderr.
    let summary = out.stderr.find("Succeeded").unwrap();
    let drawing = &out.stderr[summary..];
    assert!(
        drawing.contains("app started after sidecar `proxy` passed its startup probe"),
        "{drawing}"
    );

    let json_out = timeline(&["tl-sidecar", "-o", "json"]);
    assert_eq!(json_out.code, Some(0), "{}", json_out.stderr);
    let tl: Value = serde_json::from_str(&json_out.stdout).unwrap();
    assert_eq!(tl["pod"]["name"], "tl-sidecar");
    assert_eq!(tl["finished"], true);
    let kinds: Vec<_> = tl["containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap(), c["kind"].as_str().unwrap()))
        .collect();
    assert_eq!(
        kinds,
        vec![("setup", "init"), ("proxy", "sidecar"), ("app", "app")]
    );
    let setup = instance(&tl, "setup", 0);
    let proxy = instance(&tl, "proxy", 0);
    let app = instance(&tl, "app", 0);
    assert_eq!(proxy["gate"]["after"], "setup");
    assert_eq!(proxy["gate"]["milestone"], "completed");
    assert_eq!(app["gate"]["after"], "proxy");
    assert_eq!(app["gate"]["milestone"], "startupPassed");
    // The app was asked for only once the startup probe passed, which took ≥ 0.6 s.
    let passed = proxy["startupPassedMs"].as_i64().unwrap();
    assert!(app["requestedMs"].as_i64().unwrap() >= passed);
    assert!(
        passed - proxy["startedMs"].as_i64().unwrap() >= 600,
        "{tl:#}"
    );
    assert!(setup["exit"]["code"] == 0 && app["exit"]["code"] == 0);
    // T4: the app exited, then the sidecar's preStop, then its SIGTERM for the completion.
    let app_exit = app["exit"]["atMs"].as_i64().unwrap();
    let pre = &proxy["preStop"];
    assert!(pre["beginMs"].as_i64().unwrap() >= app_exit, "{tl:#}");
    assert!(pre["endMs"].as_i64().unwrap() - pre["beginMs"].as_i64().unwrap() >= 300);
    assert_eq!(pre["ok"], true);
    let sig = &proxy["signals"][0];
    assert_eq!(sig["signal"], "SIGTERM");
    assert_eq!(sig["why"], "completion");
    assert!(sig["atMs"].as_i64().unwrap() >= pre["endMs"].as_i64().unwrap());
    // Failed startup runs are recorded with their time taken.
    let probes = proxy["probes"].as_array().unwrap();
    assert!(probes
        .iter()
        .any(|p| p["kind"] == "startup" && p["ok"] == true));

    // The terminal drawing at a fixed width, without colour (not a terminal).
    let text = timeline(&["pod/tl-sidecar", "--width", "90"]);
    assert_eq!(text.code, Some(0), "{}", text.stderr);
    assert!(
        text.stdout.lines().all(|l| l.chars().count() <= 90),
        "{}",
        text.stdout
    );
    assert!(!text.stdout.contains('\x1b'));
    for name in ["setup", "proxy", "app"] {
        assert!(text.stdout.contains(name), "{}", text.stdout);
    }
}

/// T1 through `--timeout`: an app that ignores SIGTERM gets SIGKILL after its grace, both
/// signals recorded with the reason `timeout`.
#[test]
fn a_timeout_stop_is_recorded_as_such() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let d = TestDir::new("timeline-timeout");
    let mut p = pod(
        "tl-timeout",
        "Never",
        vec![],
        vec![container(
            "app",
            "trap '' TERM; while :; do sleep 0.05; done",
        )],
    );
    p["spec"]["terminationGracePeriodSeconds"] = json!(2);
    let out = d.run(p, &["--timeout", "1s"]);
    assert_eq!(out.code, Some(124), "{}", out.stderr);
    let tl: Value = serde_json::from_str(&timeline(&["tl-timeout", "-o", "json"]).stdout).unwrap();
    let app = instance(&tl, "app", 0);
    let sigs: Vec<_> = app["signals"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["signal"].as_str().unwrap(), s["why"].as_str().unwrap()))
        .collect();
    assert_eq!(sigs, vec![("SIGTERM", "timeout"), ("SIGKILL", "timeout")]);
    let t = |s: &Value| s["atMs"].as_i64().unwrap();
    let gap = t(&app["signals"][1]) - t(&app["signals"][0]);
    assert!((1_900..3_500).contains(&gap), "grace {gap} ms");
    assert_eq!(app["exit"]["code"], 137);
    assert!(tl["podMarks"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["kind"] == "stopRequested" && m["why"] == "timeout"));
}

#[test]
fn timeline_refuses_what_is_not_a_pod_and_says_when_there_is_none() {
    let out = timeline(&["deployment/web"]);
    assert_eq!(out.code, Some(2));
    assert!(out.stderr.contains("draws pods only"), "{}", out.stderr);
    let out = timeline(&["no-such-pod-anywhere"]);
    assert_eq!(out.code, Some(1));
    assert_eq!(
        out.stderr.trim(),
        "Error from server (NotFound): pods \"no-such-pod-anywhere\" not found"
    );
    let out = timeline(&["x", "-o", "yaml"]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
}

/// A pod that `skiff run` still runs: `skiff timeline` from another process shows it live
/// (not finished, running up to now); Ctrl-C then stops it and the record says so.
#[test]
fn a_running_pod_is_drawn_live_and_an_interrupt_is_recorded() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let d = TestDir::new("timeline-live");
    let manifest = d.manifest(pod(
        "tl-live",
        "Never",
        vec![],
        vec![container("app", SERVE)],
    ));
    let child = spawn(&["run", "-f", manifest.to_str().unwrap()]);
    let pid = child.id();
    let mut live = Value::Null;
    let seen = wait_until(Duration::from_secs(20), || {
        let out = timeline(&["tl-live", "-o", "json"]);
        live = serde_json::from_str(&out.stdout).unwrap_or(Value::Null);
        live["instances"][0]["startedMs"].is_i64()
    });
    assert!(seen, "no live record: {live:#}");
    std::thread::sleep(Duration::from_millis(2500));
    let out = timeline(&["tl-live", "-o", "json"]);
    let now: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(now["finished"], false);
    // Drawn up to now, though nothing happened (nothing was written) since the start.
    let started = now["instances"][0]["startedMs"].as_i64().unwrap();
    assert!(now["endMs"].as_i64().unwrap() - started >= 2_000, "{now:#}");
    let text = timeline(&["tl-live", "--width", "80"]);
    assert!(text.stdout.contains("running"), "{}", text.stdout);

    signal(pid, "INT");
    let out = finish(child, RUN_LIMIT);
    assert_eq!(out.code, Some(130), "{}", out.stderr);
    let tl: Value = serde_json::from_str(&timeline(&["tl-live", "-o", "json"]).stdout).unwrap();
    assert_eq!(tl["finished"], true);
    let app = instance(&tl, "app", 0);
    assert_eq!(app["signals"][0]["why"], "interrupt", "{tl:#}");
    assert_eq!(app["exit"]["code"], 0);
}
