//! `skiff run -f job.yaml` (issue 12 item 3) on the built binary with real processes (host
//! runtime class): the Job runs through the Job controller (pkg/controller/job semantics, the
//! controller's own tests are in skiff-controllers), its pods on the same pod workers as
//! `skiff run`, and the exit code is the Job's result.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::path::PathBuf;
use std::process::{Command, Stdio};

use common::*;
use serde_json::{json, Value};

/// Writes a Job whose pod is `pod` (common::pod's shape; `T=<dir>` added to every container)
/// with `job_spec` fields, and returns the manifest.
fn job_manifest(t: &TestDir, name: &str, pod: Value, job_spec: Value) -> PathBuf {
    let mut spec = pod["spec"].clone();
    let dir = t.path().to_string_lossy().into_owned();
    for list in ["initContainers", "containers"] {
        if let Some(cs) = spec[list].as_array_mut() {
            for c in cs {
                c["env"] = json!([{"name": "T", "value": dir}]);
            }
        }
    }
    let mut js = job_spec;
    js["template"] = json!({"spec": spec});
    let job =
        json!({"apiVersion": "batch/v1", "kind": "Job", "metadata": {"name": name}, "spec": js});
    let path = t.file("job.yaml");
    std::fs::write(&path, skiff_model::manifest::emit::to_yaml(&job)).unwrap();
    path
}

/// `skiff run -f MANIFEST -o json` with `env`.
fn run_job(manifest: &std::path::Path, env: &[(&str, &str)]) -> Outcome {
    run_job_with(manifest, env, &[])
}

/// `skiff run -f MANIFEST -o json EXTRA…` with `env`.
fn run_job_with(manifest: &std::path::Path, env: &[(&str, &str)], extra: &[&str]) -> Outcome {
    let child = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["run", "-f", manifest.to_str().unwrap(), "-o", "json"])
        .args(extra)
        .env(
            "SKIFF_DATA_DIR",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("skiff-data"),
        )
        .env_remove("SKIFF_LOG")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    finish(child, RUN_LIMIT)
}

fn condition<'a>(job: &'a Value, type_: &str) -> Option<&'a Value> {
    job["status"]["conditions"].as_array().and_then(|a| {
        a.iter()
            .find(|c| c["type"] == type_ && c["status"] == "True")
    })
}

/// A Job whose pod has a native sidecar completes when the app exits 0 (the pod Succeeds with
/// its regular containers; job_controller.go counts Succeeded pods), the sidecar is stopped
/// after the app, and `skiff run` exits 0 with the Job Complete (SuccessCriteriaMet first).
#[test]
fn sidecar_job_completes_when_the_app_exits() {
    let t = TestDir::new("job-sidecar");
    let pod = pod(
        "x",
        "Never",
        vec![container("setup", "l Done"), sidecar("side", SERVE)],
        vec![container("app", "sleep 0.2; l Done")],
    );
    let m = job_manifest(&t, "sidecar-job", pod, json!({}));
    let out = run_job_with(&m, &[], &["--timeline"]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    // `--timeline`: the pod's drawing after the summary, the sidecar stopped for completion.
    let drawing = &out.stderr[out
        .stderr
        .find("app started after sidecar `side`")
        .unwrap_or_else(|| panic!("no timeline in:\n{}", out.stderr))..];
    assert!(
        drawing.contains("sidecar side: SIGTERM at") && drawing.contains("pod completed"),
        "{drawing}"
    );
    let job: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(job["status"]["succeeded"], 1, "{:#}", job["status"]);
    assert!(condition(&job, "SuccessCriteriaMet").is_some());
    let c = condition(&job, "Complete").expect("Complete");
    assert_eq!(c["reason"], "CompletionsReached");
    assert!(job["status"]["completionTime"].is_string());
    // The selector and labels the API server generates.
    let uid = job["metadata"]["uid"].as_str().unwrap();
    assert_eq!(
        job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"],
        uid
    );
    let log = t.log();
    assert_eq!(
        sequence(&log),
        vec![
            "setup Starting",
            "setup Done",
            "side Starting",
            "app Starting",
            "app Done",
            "side Exiting"
        ],
        "{}",
        render(&log)
    );
    assert!(
        out.stderr
            .contains("Normal SuccessfulCreate: Created pod: sidecar-job-"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("Normal Completed: Job completed (job/sidecar-job)"),
        "{}",
        out.stderr
    );
    assert!(
        out.stderr
            .contains("skiff: job sidecar-job Complete (1 succeeded, 0 failed)"),
        "{}",
        out.stderr
    );
    assert!(t.leftovers().is_empty());
}

/// A failing Job retries its pod after the back-off (backoff_utils.go; the base is shortened
/// for the test) and fails with BackoffLimitExceeded once failures exceed backoffLimit; exit 1.
#[test]
fn failing_job_hits_backoff_limit() {
    let t = TestDir::new("job-backoff");
    let pod = pod(
        "x",
        "Never",
        vec![],
        vec![container("app", "l Failing; exit 3")],
    );
    let m = job_manifest(&t, "failing", pod, json!({"backoffLimit": 1}));
    let out = run_job(&m, &[("SKIFF_TEST_JOB_BACKOFF_MS", "1500")]);
    assert_eq!(out.code, Some(1), "stderr:\n{}", out.stderr);
    let job: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(job["status"]["failed"], 2, "{:#}", job["status"]);
    let f = condition(&job, "Failed").expect("Failed");
    assert_eq!(f["reason"], "BackoffLimitExceeded");
    assert_eq!(f["message"], "Job has reached the specified backoff limit");
    assert!(condition(&job, "FailureTarget").is_some());
    let starts = all(&t.log(), "app", "Starting");
    assert_eq!(starts.len(), 2, "one retry:\n{}", render(&t.log()));
    // The retry waited for the back-off (counted from the first pod's finish time, which the
    // status carries at whole seconds, as the API does).
    assert!(starts[1] - starts[0] >= 0.4, "{starts:?}");
    assert!(out.stderr.contains("Warning BackoffLimitExceeded: Job has reached the specified backoff limit (job/failing)"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains("skiff: job failing Failed (BackoffLimitExceeded)"),
        "{}",
        out.stderr
    );
}

/// An Indexed Job's pods see their index in JOB_COMPLETION_INDEX (indexed_job_utils.go: the
/// downward API from the index label) and the Job lists every index completed.
#[test]
fn indexed_job_sees_its_completion_index() {
    let t = TestDir::new("job-indexed");
    let pod = pod(
        "x",
        "Never",
        vec![],
        vec![container("app", "l \"index=$JOB_COMPLETION_INDEX\"")],
    );
    let m = job_manifest(
        &t,
        "indexed",
        pod,
        json!({"completionMode": "Indexed", "completions": 3, "parallelism": 3}),
    );
    let out = run_job(&m, &[]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let job: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(
        job["status"]["completedIndexes"], "0-2",
        "{:#}",
        job["status"]
    );
    assert_eq!(job["status"]["succeeded"], 3);
    let mut seen: Vec<String> = t
        .log()
        .into_iter()
        .filter(|l| l.name == "app" && l.what.starts_with("index="))
        .map(|l| l.what)
        .collect();
    seen.sort();
    assert_eq!(seen, vec!["index=0", "index=1", "index=2"]);
    for i in 0..3 {
        assert!(
            out.stderr.contains(&format!("Created pod: indexed-{i}-")),
            "{}",
            out.stderr
        );
    }
}

/// completions 3, parallelism 2 (job_controller.go manageJob): three pods succeed, never more
/// than two at once.
#[test]
fn completions_three_parallelism_two() {
    let t = TestDir::new("job-parallel");
    let pod = pod(
        "x",
        "Never",
        vec![],
        vec![container("app", "sleep 0.5; l Done")],
    );
    let m = job_manifest(&t, "par", pod, json!({"completions": 3, "parallelism": 2}));
    let out = run_job(&m, &[]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let job: Value = serde_json::from_str(&out.stdout).unwrap();
    assert_eq!(job["status"]["succeeded"], 3, "{:#}", job["status"]);
    let log = t.log();
    let starts = all(&log, "app", "Starting");
    let dones = all(&log, "app", "Done");
    assert_eq!((starts.len(), dones.len()), (3, 3), "{}", render(&log));
    // At every start, fewer than two others are running.
    let mut events: Vec<(f64, i32)> = starts
        .iter()
        .map(|s| (*s, 1))
        .chain(dones.iter().map(|d| (*d, -1)))
        .collect();
    events.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let mut running = 0;
    let mut peak = 0;
    for (_, d) in events {
        running += d;
        peak = peak.max(running);
    }
    assert_eq!(peak, 2, "{}", render(&log));
    assert!(t.leftovers().is_empty());
}

/// A Job the API server refuses is refused before anything starts (exit 2), with
/// kube-apiserver's text (validation.go: restartPolicy Always is not allowed).
#[test]
fn an_invalid_job_is_refused_with_the_api_servers_text() {
    let t = TestDir::new("job-invalid");
    let pod = pod("x", "Always", vec![], vec![container("app", "true")]);
    let m = job_manifest(&t, "bad", pod, json!({}));
    let out = run_job(&m, &[]);
    assert_eq!(out.code, Some(2), "stderr:\n{}", out.stderr);
    assert!(
        out.stderr.contains("spec.template.spec.restartPolicy"),
        "{}",
        out.stderr
    );
    assert!(t.log().is_empty());
}

/// `--timeout` bounds a Job run as it bounds a pod's: every pod is stopped gracefully, the run
/// exits 124 and nothing is left running.
#[test]
fn timeout_stops_the_jobs_pods() {
    let t = TestDir::new("job-timeout");
    let pod = pod("x", "Never", vec![], vec![container("app", SERVE)]);
    let m = job_manifest(&t, "slow", pod, json!({"parallelism": 2, "completions": 4}));
    let child = Command::new(env!("CARGO_BIN_EXE_skiff"))
        .args(["run", "-f", m.to_str().unwrap(), "--timeout", "1s"])
        .env(
            "SKIFF_DATA_DIR",
            std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("skiff-data"),
        )
        .env_remove("SKIFF_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = finish(child, RUN_LIMIT);
    assert_eq!(out.code, Some(124), "stderr:\n{}", out.stderr);
    assert_eq!(
        all(&t.log(), "app", "Exiting").len(),
        2,
        "{}",
        render(&t.log())
    );
    assert!(
        out.stderr
            .contains("skiff: job slow stopped after --timeout 1s"),
        "{}",
        out.stderr
    );
    assert!(t.leftovers().is_empty());
}
