//! `skiff run` on the real binary: start order, probes, restarts, back-off and termination of
//! pods whose containers are `/bin/sh -c` scripts logging `<ts> <name> Starting|Exiting` to a
//! shared file (see `common`). Each test is named after the SEMANTICS.md rule it proves.
//!
//! Orderings and outcomes are asserted exactly; durations only against generous bounds, so
//! the suite holds on a loaded 2-core machine.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use common::*;
use serde_json::json;

/// Sidecar body: runs until SIGTERM, then logs `Exiting` and exits 0.
fn serve() -> &'static str {
    SERVE
}

// S2: init containers run strictly in spec order, one at a time; apps start after the last.
#[test]
fn s2_init_containers_run_in_order_one_at_a_time() {
    let t = TestDir::new("s2-order");
    let step = "sleep 0.2; l Exiting";
    let pod = pod(
        "init-order",
        "Never",
        vec![
            container("first", step),
            container("second", step),
            container("third", step),
        ],
        vec![container("app", "l Exiting")],
    );
    let out = t.run(pod, &[]);
    let log = t.log();
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert_eq!(
        sequence(&log),
        [
            "first Starting",
            "first Exiting",
            "second Starting",
            "second Exiting",
            "third Starting",
            "third Exiting",
            "app Starting",
            "app Exiting"
        ],
        "log:\n{}",
        render(&log)
    );
    let p = out.pod();
    assert_eq!(p["status"]["phase"], "Succeeded");
    let names: Vec<_> = p["status"]["initContainerStatuses"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names, ["first", "second", "third"]);
    for n in ["first", "second", "third", "app"] {
        let s = status_of(&p, n);
        assert_eq!(
            s["state"]["terminated"]["reason"], "Completed",
            "{n}: {s:#}"
        );
        assert_eq!(s["restartCount"], 0, "{n}");
    }
}

// S2, S6: a sidecar starts before the next init container and keeps running while it runs
// and after it completed, until the pod's end.
#[test]
fn s2_s6_sidecar_starts_before_next_init_and_outlives_it() {
    let t = TestDir::new("s2-sidecar");
    let pod = pod(
        "sidecar-init",
        "Never",
        vec![
            sidecar("side", serve()),
            container("setup", "sleep 0.3; l Exiting"),
        ],
        vec![container("app", "sleep 0.2; l Exiting")],
    );
    let out = t.run(pod, &[]);
    let log = t.log();
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let r = render(&log);
    assert!(
        at(&log, "side", "Starting") < at(&log, "setup", "Starting"),
        "{r}"
    );
    assert!(
        at(&log, "setup", "Exiting") < at(&log, "app", "Starting"),
        "{r}"
    );
    assert!(
        at(&log, "app", "Exiting") < at(&log, "side", "Exiting"),
        "{r}"
    );
    // One sidecar instance the whole time.
    assert_eq!(all(&log, "side", "Starting").len(), 1, "{r}");
    let p = out.pod();
    assert_eq!(p["status"]["phase"], "Succeeded");
    assert_eq!(status_of(&p, "side")["restartCount"], 0);
}

// S3, S5: a sidecar with a startupProbe counts as started only once the probe passed; the
// app (the next container) waits for that.
#[test]
fn s3_s5_app_waits_for_sidecar_startup_probe() {
    let t = TestDir::new("s5-startup");
    let proxy = with(
        sidecar(
            "proxy",
            &format!("sleep 1; touch \"$T/ready\"; l Ready; {}", serve()),
        ),
        "startupProbe",
        exec_probe("test -e \"$T/ready\"", 1, 30),
    );
    let pod = pod(
        "startup-gate",
        "Never",
        vec![proxy],
        vec![container("app", "l Exiting")],
    );
    let out = t.run(pod, &[]);
    let log = t.log();
    let r = render(&log);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert!(
        at(&log, "proxy", "Ready") < at(&log, "app", "Starting"),
        "{r}"
    );
    // The probe runs at most once per period (1 s) after the file appears.
    assert!(
        at(&log, "app", "Starting") - at(&log, "proxy", "Ready") < 5.0,
        "{r}"
    );
    assert_eq!(all(&log, "proxy", "Starting").len(), 1, "{r}");
    let p = out.pod();
    assert_eq!(p["status"]["phase"], "Succeeded");
}

// R1, S6: under restartPolicy Never a sidecar that crashes (also during initialization) is
// restarted — the first restart immediately, the next only after 10 s back-off — while the
// regular init container and the app are untouched; its exit codes don't fail the pod (T7).
#[test]
fn r1_s6_crashing_sidecar_restarted_under_never_app_untouched() {
    let t = TestDir::new("r1-crash");
    let pod = pod(
        "crashy-sidecar",
        "Never",
        vec![
            sidecar("crashy", "sleep 0.3; l Exiting; exit 1"),
            container("setup", "sleep 0.6; l Exiting"),
        ],
        vec![container("app", "sleep 1; l Exiting")],
    );
    let out = t.run(pod, &[]);
    let log = t.log();
    let r = render(&log);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    // Initial instance plus the immediate restart; the third start waits 10 s (R5), longer
    // than this pod lives.
    assert_eq!(all(&log, "crashy", "Starting").len(), 2, "{r}");
    assert_eq!(all(&log, "setup", "Starting").len(), 1, "{r}");
    assert_eq!(all(&log, "app", "Starting").len(), 1, "{r}");
    assert_eq!(all(&log, "app", "Exiting").len(), 1, "{r}");
    let starts = all(&log, "crashy", "Starting");
    let first_exit = at(&log, "crashy", "Exiting");
    assert!(starts[1] > first_exit, "{r}");
    let p = out.pod();
    assert_eq!(p["status"]["phase"], "Succeeded");
    let crashy = status_of(&p, "crashy");
    assert_eq!(crashy["restartCount"], 1, "{crashy:#}");
    assert_eq!(
        crashy["lastState"]["terminated"]["exitCode"], 1,
        "{crashy:#}"
    );
    assert_eq!(crashy["lastState"]["terminated"]["reason"], "Error");
    let app = status_of(&p, "app");
    assert_eq!(app["restartCount"], 0);
    assert_eq!(app["state"]["terminated"]["exitCode"], 0);
    assert_eq!(status_of(&p, "setup")["restartCount"], 0);
}

// T4, T6, T7: when the app of a Job-style pod completes, the sidecars are stopped in reverse
// spec order, each only after the later one terminated; a sidecar exiting non-zero on SIGTERM
// does not matter; the pod Succeeded and skiff exits 0.
#[test]
fn t4_t6_t7_job_pod_stops_sidecars_in_reverse_order_and_succeeds() {
    let t = TestDir::new("t6-job");
    // Each sidecar takes a moment to stop so that an overlap would show.
    let slow_stop = |code: i32| {
        format!("trap 'sleep 0.2; l Exiting; exit {code}' TERM; while :; do sleep 0.05; done")
    };
    let pod = pod(
        "job",
        "Never",
        vec![
            sidecar("a", &slow_stop(0)),
            sidecar("b", &slow_stop(1)),
            sidecar("c", &slow_stop(0)),
        ],
        vec![container("job", "sleep 0.3; l Exiting")],
    );
    let out = t.run(pod, &[]);
    let log = t.log();
    let r = render(&log);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let exits: Vec<String> = log
        .iter()
        .filter(|l| l.what == "Exiting")
        .map(|l| l.name.clone())
        .collect();
    assert_eq!(exits, ["job", "c", "b", "a"], "{r}");
    let p = out.pod();
    assert_eq!(p["status"]["phase"], "Succeeded");
    for (n, code) in [("a", 0), ("b", 1), ("c", 0)] {
        let s = status_of(&p, n);
        assert_eq!(s["state"]["terminated"]["exitCode"], code, "{n}: {s:#}");
        assert_eq!(
            s["restartCount"], 0,
            "{n}: not restarted after the app completed"
        );
    }
    assert_eq!(
        condition(&p, "Ready")["reason"],
        "PodCompleted",
        "{:#}",
        p["status"]
    );
}

// T2, T5: a sidecar that ignores SIGTERM keeps running through the grace period and is
// SIGKILLed (exit 137) when it expires.
#[test]
fn t2_t5_sigterm_ignoring_sidecar_is_killed_after_grace() {
    let t = TestDir::new("t2-stubborn");
    let mut pod = pod(
        "stubborn",
        "Never",
        vec![sidecar(
            "stubborn",
            "trap 'l TermIgnored' TERM; while :; do sleep 0.2; l Alive; done",
        )],
        vec![container("app", "sleep 0.2; l Exiting")],
    );
    pod["spec"]["terminationGracePeriodSeconds"] = json!(2);
    let out = t.run(pod, &[]);
    let end = now();
    let log = t.log();
    let r = render(&log);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let app_exit = at(&log, "app", "Exiting");
    let term = at(&log, "stubborn", "TermIgnored");
    assert!(term > app_exit, "{r}");
    // Still alive after SIGTERM ...
    let alive_after: Vec<f64> = all(&log, "stubborn", "Alive")
        .into_iter()
        .filter(|ts| *ts > term)
        .collect();
    assert!(!alive_after.is_empty(), "{r}");
    // ... SIGKILLed no earlier than the 2 s grace after its SIGTERM, which came after the app's
    // exit, and not much later.
    assert!(
        end - app_exit >= 2.0,
        "ended {:.3}s after the app",
        end - app_exit
    );
    assert!(
        end - app_exit < 10.0,
        "ended {:.3}s after the app",
        end - app_exit
    );
    let p = out.pod();
    let s = status_of(&p, "stubborn");
    assert_eq!(s["state"]["terminated"]["exitCode"], 137, "{s:#}");
    assert_eq!(s["state"]["terminated"]["reason"], "Error", "{s:#}");
    assert_eq!(p["status"]["phase"], "Succeeded", "T7");
    assert!(
        out.stderr.contains("Killing: Stopping container stubborn"),
        "{}",
        out.stderr
    );
}

// T4: the sidecar's preStop hook runs after the app exited (Job-style end), and the sidecar
// is signalled only after its preStop returned.
#[test]
fn t4_sidecar_prestop_runs_after_apps_exit() {
    let t = TestDir::new("t4-prestop");
    let side = with(
        sidecar("side", serve()),
        "lifecycle",
        json!({"preStop": {"exec": {"command": ["/bin/sh", "-c",
            "echo \"$(date +%s.%N) side PreStop\" >> \"$T/log\"; sleep 0.5; echo \"$(date +%s.%N) side PreStopDone\" >> \"$T/log\""]}}}),
    );
    let pod = pod(
        "prestop",
        "Never",
        vec![side],
        vec![container("app", "sleep 0.3; l Exiting")],
    );
    let out = t.run(pod, &[]);
    let log = t.log();
    let r = render(&log);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    // (The two `Starting` lines race: the sidecar has no startupProbe, so the app starts as
    // soon as the sidecar's process runs.)
    let after_start: Vec<String> = sequence(&log)
        .into_iter()
        .filter(|l| !l.ends_with("Starting"))
        .collect();
    assert_eq!(
        after_start,
        [
            "app Exiting",
            "side PreStop",
            "side PreStopDone",
            "side Exiting"
        ],
        "{r}"
    );
    assert_eq!(out.pod()["status"]["phase"], "Succeeded");
}

// P10, ST6: a sidecar's readiness feeds the pod's Ready condition (and does not gate the app).
// Two pods run side by side until `--timeout`: in one the sidecar's readiness probe never
// passes, in the other it passes. The Ready condition's lastTransitionTime only moves when
// its status changes (ST6): if the pod never was Ready it stays at the pod's start; if it was,
// it moves to the termination.
#[test]
fn p10_st6_sidecar_readiness_feeds_pod_ready() {
    let t_unready = TestDir::new("p10-unready");
    let t_ready = TestDir::new("p10-ready");
    let make = |probe: &str| {
        let mut p = pod(
            "readiness",
            "Never",
            vec![with(
                sidecar("side", serve()),
                "readinessProbe",
                exec_probe(probe, 1, 1),
            )],
            vec![container("app", serve())],
        );
        p["spec"]["terminationGracePeriodSeconds"] = json!(2);
        p
    };
    let unready = make("exit 1");
    let ready = make("exit 0");
    let (out_unready, out_ready) = std::thread::scope(|s| {
        let a = s.spawn(|| t_unready.run(unready, &["--timeout", "3"]));
        let b = s.spawn(|| t_ready.run(ready, &["--timeout", "3"]));
        (a.join().unwrap(), b.join().unwrap())
    });
    for (out, t) in [(&out_unready, &t_unready), (&out_ready, &t_ready)] {
        assert_eq!(out.code, Some(124), "stderr:\n{}", out.stderr);
        // P10: the app started although (in one pod) the sidecar never became ready.
        assert_eq!(all(&t.log(), "app", "Starting").len(), 1);
    }
    assert!(
        out_unready
            .stderr
            .contains("Unhealthy: Readiness probe failed"),
        "{}",
        out_unready.stderr
    );
    let since_start = |out: &Outcome| {
        let p = out.pod();
        let start = rfc3339(p["status"]["startTime"].as_str().unwrap());
        let ready = condition(&p, "Ready");
        assert_eq!(ready["status"], "False", "terminal pod: {ready:#}");
        rfc3339(ready["lastTransitionTime"].as_str().unwrap()) - start
    };
    let never = since_start(&out_unready);
    let was = since_start(&out_ready);
    assert!(
        never <= 1,
        "Ready changed {never}s after start although the sidecar never was ready"
    );
    assert!(
        was >= 2,
        "Ready changed {was}s after start: it never was True although every container was ready"
    );
}

// P6: a failed liveness probe kills the app (reason LivenessProbe) and, under OnFailure, the
// app is restarted — even though it exited 0 on SIGTERM — immediately (no earlier exit, R9),
// with restartCount 1 and the killed instance in lastState.
#[test]
fn p6_liveness_failure_restarts_app() {
    let t = TestDir::new("p6-liveness");
    // First instance: marks itself sick and runs until killed. Second: heals and completes.
    let body = "if [ -e \"$T/restarted\" ]; then rm -f \"$T/sick\"; sleep 0.3; l Exiting; exit 0; fi; \
                touch \"$T/restarted\" \"$T/sick\"; trap 'l Exiting; exit 0' TERM; while :; do sleep 0.05; done";
    let app = with(
        container("app", body),
        "livenessProbe",
        exec_probe("test ! -e \"$T/sick\"", 1, 2),
    );
    let pod = pod("liveness", "OnFailure", vec![], vec![app]);
    let out = t.run(pod, &[]);
    let log = t.log();
    let r = render(&log);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let starts = all(&log, "app", "Starting");
    let exits = all(&log, "app", "Exiting");
    assert_eq!((starts.len(), exits.len()), (2, 2), "{r}");
    assert!(starts[1] > exits[0], "{r}");
    assert!(
        starts[1] - exits[0] < 5.0,
        "first restart is immediate: {r}"
    );
    assert!(
        out.stderr.contains("Unhealthy: Liveness probe failed")
            && out
                .stderr
                .contains("Killing: Container app failed liveness probe, will be restarted"),
        "{}",
        out.stderr
    );
    let p = out.pod();
    assert_eq!(p["status"]["phase"], "Succeeded");
    let s = status_of(&p, "app");
    assert_eq!(s["restartCount"], 1, "{s:#}");
    assert_eq!(s["lastState"]["terminated"]["exitCode"], 0, "{s:#}");
    assert_eq!(s["state"]["terminated"]["exitCode"], 0, "{s:#}");
}

// R5: the first restart after a crash is immediate, the next one waits the 10 s back-off.
#[test]
fn r5_backoff_first_restart_immediate_next_after_10s() {
    let t = TestDir::new("r5-backoff");
    let body = "n=$(cat \"$T/n\" 2>/dev/null || echo 0); n=$((n+1)); echo $n > \"$T/n\"; \
                if [ $n -ge 3 ]; then l Exiting; exit 0; fi; l Exiting; exit 1";
    let pod = pod("backoff", "OnFailure", vec![], vec![container("app", body)]);
    let out = t.run(pod, &[]);
    let log = t.log();
    let r = render(&log);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let starts = all(&log, "app", "Starting");
    let exits = all(&log, "app", "Exiting");
    assert_eq!((starts.len(), exits.len()), (3, 3), "{r}");
    assert!(starts[1] - exits[0] < 5.0, "first restart immediate: {r}");
    // finishedAt (ms precision) is at or after the `Exiting` line, up to 1 ms of truncation.
    let wait = starts[2] - exits[1];
    assert!(wait >= 10.0 - 0.002, "second restart after {wait:.3}s: {r}");
    assert!(wait < 20.0, "second restart after {wait:.3}s: {r}");
    assert!(
        out.stderr
            .contains("BackOff: Back-off restarting failed container app in pod backoff_default("),
        "{}",
        out.stderr
    );
    let p = out.pod();
    let s = status_of(&p, "app");
    assert_eq!(s["restartCount"], 2, "{s:#}");
    assert_eq!(s["lastState"]["terminated"]["exitCode"], 1, "{s:#}");
    assert_eq!(s["state"]["terminated"]["reason"], "Completed", "{s:#}");
    assert_eq!(p["status"]["phase"], "Succeeded");
}

// T10: activeDeadlineSeconds ends the pod: containers stopped gracefully, phase Failed with
// reason DeadlineExceeded, skiff exits 1.
#[test]
fn t10_active_deadline_fails_pod_with_deadline_exceeded() {
    let t = TestDir::new("t10-deadline");
    let mut pod = pod(
        "deadline",
        "Always",
        vec![sidecar("side", serve())],
        vec![container("app", serve())],
    );
    pod["spec"]["activeDeadlineSeconds"] = json!(2);
    let out = t.run(pod, &[]);
    let log = t.log();
    let r = render(&log);
    assert_eq!(out.code, Some(1), "stderr:\n{}", out.stderr);
    assert!(out.elapsed.as_secs_f64() >= 2.0, "{:?}", out.elapsed);
    assert!(out.elapsed.as_secs_f64() < 15.0, "{:?}", out.elapsed);
    // Graceful: both got SIGTERM, apps first.
    assert!(
        at(&log, "app", "Exiting") < at(&log, "side", "Exiting"),
        "{r}"
    );
    let p = out.pod();
    assert_eq!(p["status"]["phase"], "Failed");
    assert_eq!(p["status"]["reason"], "DeadlineExceeded");
    assert_eq!(
        p["status"]["message"],
        "Pod was active on the node longer than the specified deadline"
    );
    assert!(out.stderr.contains("DeadlineExceeded"), "{}", out.stderr);
}

/// Wall clock in seconds, comparable to `date +%s.%N`.
fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Seconds since the epoch of an RFC 3339 `...Z` timestamp with whole seconds.
fn rfc3339(s: &str) -> i64 {
    let (date, time) = s.trim_end_matches('Z').split_once('T').unwrap();
    let d: Vec<i64> = date.split('-').map(|x| x.parse().unwrap()).collect();
    let tm: Vec<i64> = time
        .split(':')
        .map(|x| x.split('.').next().unwrap().parse().unwrap())
        .collect();
    // Days from civil (Howard Hinnant's algorithm).
    let (y, m, day) = (d[0] - i64::from(d[1] <= 2), d[1], d[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    days * 86_400 + tm[0] * 3600 + tm[1] * 60 + tm[2]
}

/// A hook/probe command (`/bin/sh -c`) that appends `<ts> <name> <what>` to the shared log.
fn log_cmd(name: &str, what: &str) -> String {
    format!("echo \"$(date +%s.%N) {name} {what}\" >> \"$T/log\"")
}

fn post_start(name: &str, secs: f64) -> serde_json::Value {
    json!({"postStart": {"exec": {"command": ["/bin/sh", "-c",
        format!("sleep {secs}; {}", log_cmd(name, "PostStartDone"))]}}})
}

// S3, S4: a postStart hook runs inside the start call: the next init container waits for a
// sidecar's hook, and app N+1 is started only after app N's hook returned.
#[test]
fn s3_s4_post_start_hook_delays_next_container() {
    let t = TestDir::new("s3-poststart");
    let pod = pod(
        "poststart",
        "Never",
        vec![
            with(
                sidecar("side", serve()),
                "lifecycle",
                post_start("side", 0.5),
            ),
            container("setup", "l Exiting"),
        ],
        vec![
            // Outlives its hook: the hook dies with the container.
            with(
                container("first", "sleep 1.5; l Exiting"),
                "lifecycle",
                post_start("first", 0.5),
            ),
            container("second", "l Exiting"),
        ],
    );
    let out = t.run(pod, &[]);
    let log = t.log();
    let r = render(&log);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert!(
        at(&log, "side", "PostStartDone") < at(&log, "setup", "Starting"),
        "{r}"
    );
    assert!(
        at(&log, "setup", "Exiting") < at(&log, "first", "Starting"),
        "{r}"
    );
    assert!(
        at(&log, "first", "PostStartDone") < at(&log, "second", "Starting"),
        "{r}"
    );
    assert_eq!(out.pod()["status"]["phase"], "Succeeded");
}

// S7: under restartPolicy Never a failing regular init container fails the pod: the running
// sidecar is stopped, the app is never started (waiting PodInitializing), skiff exits 1.
#[test]
fn s7_failed_init_container_under_never_fails_pod() {
    let t = TestDir::new("s7-initfail");
    let pod = pod(
        "initfail",
        "Never",
        vec![
            sidecar("side", serve()),
            container("setup", "sleep 0.2; l Exiting; exit 3"),
        ],
        vec![container("app", "l Exiting")],
    );
    let out = t.run(pod, &[]);
    let log = t.log();
    let r = render(&log);
    assert_eq!(out.code, Some(1), "stderr:\n{}", out.stderr);
    assert!(all(&log, "app", "Starting").is_empty(), "{r}");
    assert_eq!(all(&log, "setup", "Starting").len(), 1, "{r}");
    assert!(
        at(&log, "setup", "Exiting") < at(&log, "side", "Exiting"),
        "{r}"
    );
    let p = out.pod();
    assert_eq!(p["status"]["phase"], "Failed");
    let setup = status_of(&p, "setup");
    assert_eq!(setup["state"]["terminated"]["exitCode"], 3, "{setup:#}");
    assert_eq!(setup["state"]["terminated"]["reason"], "Error", "{setup:#}");
    let app = status_of(&p, "app");
    assert_eq!(
        app["state"]["waiting"]["reason"], "PodInitializing",
        "{app:#}"
    );
    assert_eq!(condition(&p, "Initialized")["status"], "False");
}

// T2, T5: one grace budget for the whole pod, counted from the kill, with the 2 s floor.
// TGPS 4, `--timeout 1`: the app takes ~2 s to stop; sidecar `late` (declared last) is
// signalled then with what is left (4 − 2 = 2 s) and ignores it; sidecar `early` waits for
// `late` until the budget is spent and then still gets the 2 s minimum.
#[test]
fn t2_t5_sidecars_share_one_grace_budget_with_2s_floor() {
    let t = TestDir::new("t5-budget");
    let stubborn = "trap 'l TermIgnored' TERM; while :; do sleep 0.05; done";
    let mut pod = pod(
        "budget",
        "Always",
        vec![sidecar("early", stubborn), sidecar("late", stubborn)],
        vec![container(
            "app",
            "trap 'l GotTerm; sleep 2; l Exiting; exit 0' TERM; while :; do sleep 0.05; done",
        )],
    );
    pod["spec"]["terminationGracePeriodSeconds"] = json!(4);
    let out = t.run(pod, &["--timeout", "1"]);
    let end = now();
    let log = t.log();
    let r = render(&log);
    assert_eq!(out.code, Some(124), "stderr:\n{}", out.stderr);
    let t0 = at(&log, "app", "GotTerm");
    let app_exit = at(&log, "app", "Exiting");
    let late = at(&log, "late", "TermIgnored");
    let early = at(&log, "early", "TermIgnored");
    // Apps first, then sidecars in reverse order.
    assert!(app_exit < late && late < early, "{r}");
    assert!(
        late - app_exit < 1.5,
        "late signalled {:.3}s after the app exited: {r}",
        late - app_exit
    );
    // `late` got the rest of the budget (2 s), not a fresh one (4 s).
    let late_grace = early - late;
    assert!(
        (1.8..3.2).contains(&late_grace),
        "late's grace {late_grace:.3}s: {r}"
    );
    // `early` got the 2 s floor.
    let early_grace = end - early;
    assert!(
        (1.8..3.5).contains(&early_grace),
        "early's grace {early_grace:.3}s: {r}"
    );
    // The whole termination: 4 s budget + 2 s floor, not 4 + 4 + 4.
    assert!(
        (5.8..8.5).contains(&(end - t0)),
        "termination took {:.3}s: {r}",
        end - t0
    );
    let p = out.pod();
    for n in ["early", "late"] {
        assert_eq!(
            status_of(&p, n)["state"]["terminated"]["exitCode"],
            137,
            "{n}"
        );
    }
    assert_eq!(status_of(&p, "app")["state"]["terminated"]["exitCode"], 0);
}

// P1 (prober.go runProbe): an exec probe's command is expanded like the kubelet's
// `ExpandContainerCommandOnlyStatic` — `$(VAR)` from the container's static env values
// (`valueFrom` variables expand to ""), `$$` → `$` — while hook commands are not expanded at
// all (lifecycle/handlers.go passes `handler.Exec.Command` as is).
#[test]
fn p1_exec_probe_command_expands_static_env_hooks_do_not() {
    let t = TestDir::new("p1-expand");
    let probe = |name: &str, check: &str| {
        json!({
            "exec": {"command": ["/bin/sh", "-c",
                format!("echo ran >> \"$T/probe-{name}\"; {check}")]},
            "periodSeconds": 1,
            "failureThreshold": 1,
        })
    };
    let app = |name: &str, check: &str| {
        let mut c = with(
            container(name, "sleep 2.5; l Exiting"),
            "startupProbe",
            probe(name, check),
        );
        c["env"] = json!([
            {"name": "MODE", "value": "static"},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        ]);
        c
    };
    let hooked = with(
        app("hooked", "true"),
        "lifecycle",
        json!({"postStart": {"exec": {"command": ["/bin/sh", "-c",
            "echo \"[$(MODE)]\" > \"$T/hook-out\""]}}}),
    );
    let pod = pod(
        "expand",
        "Never",
        vec![],
        vec![
            // Unexpanded, the shell would run `MODE` as a command and compare "".
            app("static", "test \"$(MODE)\" = static"),
            // A fieldRef variable is not static: "" (the container itself sees the name).
            app("fieldref", "test \"x$(POD)\" = x"),
            app("escape", "test '$$x' = '$x'"),
            hooked,
        ],
    );
    let out = t.run(pod, &[]);
    assert!(
        !out.stderr.contains("Startup probe failed"),
        "{}",
        out.stderr
    );
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    for n in ["static", "fieldref", "escape"] {
        assert!(
            t.file(&format!("probe-{n}")).exists(),
            "{n}: probe never ran"
        );
    }
    // The hook's `$(MODE)` reached the shell unexpanded: a failed command substitution.
    assert_eq!(std::fs::read_to_string(t.file("hook-out")).unwrap(), "[]\n");
}

// T1, T9: termination does not wait for a postStart hook that hangs: `--timeout` cancels it
// (the kubelet cancels the sync the hook runs in), the container is stopped with the pod's
// grace, and the hook's process does not outlive the pod.
#[test]
fn t1_t9_timeout_cancels_hanging_post_start_hook() {
    let t = TestDir::new("t9-hang");
    let side = with(
        sidecar("side", serve()),
        "lifecycle",
        json!({"postStart": {"exec": {"command": ["/bin/sh", "-c",
            "echo $$ >> \"$T/hook-pids\"; exec sleep 1000"]}}}),
    );
    let mut pod = pod("hang", "Never", vec![side], vec![container("app", serve())]);
    pod["spec"]["terminationGracePeriodSeconds"] = json!(2);
    let out = t.run(pod, &["--timeout", "1"]);
    let log = t.log();
    assert_eq!(out.code, Some(124), "stderr:\n{}", out.stderr);
    assert!(out.elapsed.as_secs_f64() < 10.0, "took {:?}", out.elapsed);
    assert!(all(&log, "app", "Starting").is_empty(), "{}", render(&log));
    assert_eq!(all(&log, "side", "Exiting").len(), 1, "{}", render(&log));
    assert!(
        out.stderr
            .contains("Warning FailedPostStartHook: PostStartHook failed"),
        "{}",
        out.stderr
    );
    let hooks = t.pids("hook-pids");
    assert_eq!(hooks.len(), 1);
    // The hook's PID is its container's PID namespace's: check the host by marker.
    assert!(t.leftovers().is_empty(), "the hook outlived the pod");
    let p = out.pod();
    assert_eq!(p["status"]["phase"], "Failed", "T11: never initialized");
}
