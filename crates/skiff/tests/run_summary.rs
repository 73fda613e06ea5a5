//! How `skiff run` ends and what it prints where (issue 8 items 5, 7 and 8), on the built
//! binary: the summary (one line on success, a table per container otherwise), exit codes
//! 0/1/2/124/130/143 and `--exit-code-from`, Go durations, the checks before anything starts,
//! container output on stdout and events on stderr, the colour policy (pipes, `NO_COLOR`,
//! `CLICOLOR_FORCE`, a real terminal made by `script`), container lines after their Started
//! event, and repeated events counted.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::json;

/// Runs `cmd` with the colour variables of the test's own environment removed, `TERM=xterm`,
/// the tests' data dir (pods `run` keeps stay out of the machine's) and `env` on top.
fn spawn_clean(cmd: &mut Command, env: &[(&str, &str)]) -> Outcome {
    cmd.env_remove("SKIFF_LOG")
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("CLICOLOR")
        .env("TERM", "xterm")
        .env(
            "SKIFF_DATA_DIR",
            Path::new(env!("CARGO_TARGET_TMPDIR")).join("skiff-data"),
        )
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    finish(cmd.spawn().unwrap(), RUN_LIMIT)
}

/// Runs `skiff run -f MANIFEST EXTRA` (no `-o` unless in `extra`) with `env` set and the
/// colour variables of the test's own environment removed.
fn run_env(manifest: &Path, extra: &[&str], env: &[(&str, &str)]) -> Outcome {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_skiff"));
    cmd.args(["run", "-f", manifest.to_str().unwrap()])
        .args(extra);
    spawn_clean(&mut cmd, env)
}

/// Runs `skiff run -f MANIFEST` inside `script`, whose pty is skiff's stdout and stderr (both
/// come back as `script`'s stdout).
fn run_in_terminal(manifest: &Path, env: &[(&str, &str)]) -> Outcome {
    let cmdline = format!(
        "{} run -f {}",
        env!("CARGO_BIN_EXE_skiff"),
        manifest.to_str().unwrap()
    );
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &cmdline, "/dev/null"]);
    spawn_clean(&mut cmd, env)
}

/// init `setup`, sidecar `side`, app `app` that prints `hello`: Succeeds.
fn good_pod(name: &str) -> serde_json::Value {
    pod(
        name,
        "Never",
        vec![container("setup", "echo set up"), sidecar("side", SERVE)],
        vec![container("app", "echo hello; l Exiting")],
    )
}

/// Like `good_pod` with a second app `bad` that leaves a termination message and exits 3.
fn bad_pod(name: &str) -> serde_json::Value {
    pod(
        name,
        "Never",
        vec![container("setup", "echo set up"), sidecar("side", SERVE)],
        vec![
            container(
                "bad",
                "echo 'it broke' > /dev/termination-log; sleep 0.2; exit 3",
            ),
            container("good", "echo fine"),
        ],
    )
}

/// The summary lines: from the headline `skiff: pod NAME …` to the end.
fn summary<'a>(stderr: &'a str, name: &str) -> Vec<&'a str> {
    let lines: Vec<&str> = stderr.lines().collect();
    let start = lines
        .iter()
        .position(|l| l.starts_with(&format!("skiff: pod {name} ")))
        .unwrap_or_else(|| panic!("no summary for {name}:\n{stderr}"));
    lines[start..].to_vec()
}

fn cells(line: &str) -> Vec<&str> {
    line.split_whitespace().collect()
}

const ESC: char = '\u{1b}';

// Issue 8 item 5: a pod that Succeeds ends with one line — counts of containers and restarts —
// and exit 0; no table. Item 8: the container output is on stdout, events and the summary on
// stderr, and nothing is coloured in pipes.
#[test]
fn success_is_one_line_and_output_goes_to_stdout() {
    let t = TestDir::new("sum-ok");
    let manifest = t.manifest(good_pod("fine"));
    let out = run_env(&manifest, &[], &[]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert_eq!(
        summary(&out.stderr, "fine"),
        ["skiff: pod fine Succeeded (3 containers, 0 restarts)"]
    );
    assert!(out.stdout.contains("[app] hello\n"), "{}", out.stdout);
    assert!(out.stdout.contains("[setup] set up\n"), "{}", out.stdout);
    assert!(
        out.stdout
            .lines()
            .all(|l| l.starts_with('[') && !l.starts_with("[event]")),
        "only container lines on stdout:\n{}",
        out.stdout
    );
    assert!(
        out.stderr.contains("Normal Started: Started container app"),
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("[app]"), "{}", out.stderr);
    assert!(!out.stdout.contains(ESC) && !out.stderr.contains(ESC));
}

// Issue 8 item 8: with `-o json` stdout holds only the object; container output moves to
// stderr.
#[test]
fn with_o_json_container_output_goes_to_stderr() {
    let t = TestDir::new("sum-o");
    let out = t.run(good_pod("objout"), &[]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert_eq!(out.pod()["status"]["phase"], "Succeeded");
    assert!(out.stderr.contains("[app] hello\n"), "{}", out.stderr);
}

// Issue 8 item 5: a failed pod ends with a table, one row per container in spec order: KIND
// init/sidecar/app, kubectl's state word, exit code, restarts and the last message; exit 1.
#[test]
fn failure_prints_a_table_per_container() {
    let t = TestDir::new("sum-fail");
    let manifest = t.manifest(bad_pod("broken"));
    let out = run_env(&manifest, &[], &[]);
    assert_eq!(out.code, Some(1), "stderr:\n{}", out.stderr);
    let s = summary(&out.stderr, "broken");
    assert_eq!(s[0], "skiff: pod broken Failed (Error)", "{}", out.stderr);
    assert_eq!(
        cells(s[1]),
        [
            "CONTAINER",
            "KIND",
            "STATUS",
            "EXIT",
            "RESTARTS",
            "REASON/MESSAGE"
        ]
    );
    assert_eq!(cells(s[2]), ["setup", "init", "Completed", "0", "0"]);
    assert_eq!(cells(s[3]), ["side", "sidecar", "Completed", "0", "0"]);
    assert_eq!(
        cells(s[4]),
        ["bad", "app", "Error", "3", "0", "it", "broke"]
    );
    assert_eq!(cells(s[5]), ["good", "app", "Completed", "0", "0"]);
    assert_eq!(s.len(), 6, "{}", out.stderr);
    // Columns line up (kubectl's tabwriter style).
    let col = |l: &str| {
        l.find(char::is_whitespace)
            .map(|i| i + l[i..].len() - l[i..].trim_start().len())
    };
    assert_eq!(col(s[1]), col(s[4]), "{s:#?}");
    assert!(!out.stderr.contains(ESC));
}

// Issue 8 item 5: `--exit-code-from C` (docker compose's flag) makes skiff's exit code C's,
// whatever the pod's phase; a name that is not a container is bad input (exit 2, nothing runs).
#[test]
fn exit_code_from_a_container() {
    let t = TestDir::new("sum-from");
    let manifest = t.manifest(bad_pod("from"));
    let out = run_env(&manifest, &["--exit-code-from", "bad"], &[]);
    assert_eq!(out.code, Some(3), "stderr:\n{}", out.stderr);
    assert_eq!(
        summary(&out.stderr, "from")[0],
        "skiff: pod from Failed (Error); exit code 3 from container bad"
    );
    let out = run_env(&manifest, &["--exit-code-from", "good"], &[]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert_eq!(
        summary(&out.stderr, "from"),
        ["skiff: pod from Failed (Error); exit code 0 from container good"]
    );

    let t = TestDir::new("sum-from-bad");
    let manifest = t.manifest(bad_pod("from"));
    let out = run_env(&manifest, &["--exit-code-from", "nope"], &[]);
    assert_eq!(out.code, Some(2), "stderr:\n{}", out.stderr);
    assert_eq!(
        out.stderr,
        "error: --exit-code-from: pod \"from\" has no container \"nope\" (its containers: setup, side, bad, good)\n"
    );
    assert!(!t.file("log").exists(), "a container ran");
}

// Issue 8 item 5: SIGTERM to skiff stops the pod gracefully and exits 143 (128 + 15), saying
// "stopped", not "Failed".
#[test]
fn sigterm_stops_the_pod_and_exits_143() {
    let t = TestDir::new("sum-term");
    let manifest = t.manifest(pod("term", "Always", vec![], vec![container("app", SERVE)]));
    let child = spawn(&["run", "-f", manifest.to_str().unwrap()]);
    let pid = child.id();
    assert!(
        wait_until(Duration::from_secs(20), || !all(
            &t.log(),
            "app",
            "Starting"
        )
        .is_empty()),
        "app never started"
    );
    signal(pid, "TERM");
    let out = finish(child, RUN_LIMIT);
    assert_eq!(out.code, Some(143), "stderr:\n{}", out.stderr);
    let s = summary(&out.stderr, "term");
    assert_eq!(s[0], "skiff: pod term stopped (SIGTERM)");
    assert_eq!(cells(s[2]), ["app", "app", "Completed", "0", "0"]);
    assert!(!all(&t.log(), "app", "Exiting").is_empty(), "graceful");
}

// Issue 8 item 7: `--timeout` takes Go durations (kubectl's), a bare integer is seconds, 0 is
// no timeout; bad values are refused before anything starts, with Go's words.
#[test]
fn timeout_takes_go_durations() {
    let t = TestDir::new("sum-go");
    let manifest = t.manifest(pod("go", "Always", vec![], vec![container("app", SERVE)]));
    let out = run_env(&manifest, &["--timeout", "1500ms"], &[]);
    assert_eq!(out.code, Some(124), "stderr:\n{}", out.stderr);
    assert!(
        out.elapsed >= Duration::from_millis(1500),
        "{:?}",
        out.elapsed
    );
    assert!(out.elapsed < Duration::from_secs(12), "{:?}", out.elapsed);
    assert_eq!(
        summary(&out.stderr, "go")[0],
        "skiff: pod go stopped after --timeout 1.5s"
    );

    let ran = t.log().len();
    for (value, want) in [
        ("5x", "time: unknown unit \"x\" in duration \"5x\""),
        ("1.5", "time: missing unit in duration \"1.5\""),
        ("-1s", "\"-1s\" is negative"),
        ("1h 30m", "time: unknown unit \"h \" in duration \"1h 30m\""),
    ] {
        let flag = format!("--timeout={value}");
        let out = run_env(&manifest, &[&flag], &[]);
        assert_eq!(out.code, Some(2), "{value}: {}", out.stderr);
        assert!(out.stderr.contains(want), "{value}: {}", out.stderr);
        assert!(out.stderr.contains("90s, 2m or 1h30m"), "{}", out.stderr);
    }
    assert_eq!(t.log().len(), ran, "nothing ran for bad values");

    let t = TestDir::new("sum-go0");
    let manifest = t.manifest(good_pod("zero"));
    let out = run_env(&manifest, &["--timeout", "0"], &[]);
    assert_eq!(out.code, Some(0), "0 is no timeout: {}", out.stderr);
}

// Issue 8 item 5: what this build cannot run is refused before anything starts, exit 2: a pod
// without runtimeClassName in one sentence naming the file and the fix; under `host`, every
// container without a command at once, by field path — instead of a StartError retried with
// back-off for ever.
#[test]
fn runtime_class_and_commands_are_checked_before_anything_starts() {
    let t = TestDir::new("sum-rc");
    // A runtime class this node does not have: the apiserver's `Unsupported value` style,
    // naming the classes it has (`host` first, then the working OCI runtimes).
    let mut p = good_pod("norc");
    p["spec"]["runtimeClassName"] = json!("kata");
    let manifest = t.manifest(p);
    let out = run_env(&manifest, &[], &[]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    assert!(
        out.stderr.starts_with(&format!(
            "error: {}: pod \"norc\": spec.runtimeClassName: Unsupported value: \"kata\": supported values: \"host\"",
            manifest.display()
        )),
        "{}",
        out.stderr
    );

    let mut p = good_pod("nocmd");
    p["spec"]["initContainers"][0]
        .as_object_mut()
        .unwrap()
        .remove("command");
    let mut web = container("web", "");
    web.as_object_mut().unwrap().remove("command");
    web["args"] = json!(["serve"]);
    web["image"] = json!("nginx:1.27");
    p["spec"]["containers"].as_array_mut().unwrap().push(web);
    let manifest = t.manifest(p);
    let out = run_env(&manifest, &[], &[]);
    assert_eq!(out.code, Some(2), "{}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    assert!(
        lines[0].starts_with(&format!(
            "error: {}: pod \"nocmd\" cannot run: runtimeClassName \"host\" runs each container's `command`",
            manifest.display()
        )),
        "{}",
        out.stderr
    );
    assert_eq!(
        &lines[1..],
        [
            "  spec.initContainers[0].command: Required value: container \"setup\" (image \"busybox:1.36\") has no command",
            "  spec.containers[1].command: Required value: container \"web\" (image \"nginx:1.27\") has no command",
        ]
    );
    assert!(out.elapsed < Duration::from_secs(5), "{:?}", out.elapsed);
    assert!(t.log().is_empty(), "nothing started: {:?}", t.log());
}

// Issue 8 item 8: colour only on a terminal (a pty made by `script`), never in pipes;
// `NO_COLOR` wins; `CLICOLOR_FORCE` colours pipes too — container lines, events and the
// summary alike.
#[test]
fn colour_policy_terminal_pipes_no_color_clicolor_force() {
    let t = TestDir::new("sum-color");
    let manifest = t.manifest(good_pod("colour"));

    let piped = run_env(&manifest, &[], &[]);
    assert_eq!(piped.code, Some(0), "{}", piped.stderr);
    assert!(!piped.stdout.contains(ESC) && !piped.stderr.contains(ESC));

    let forced = run_env(&manifest, &[], &[("CLICOLOR_FORCE", "1")]);
    assert!(
        forced.stdout.contains("\u{1b}[36m[setup]\u{1b}[0m set up"),
        "{}",
        forced.stdout
    );
    assert!(
        forced.stderr.contains("\u{1b}[2m[event] "),
        "{}",
        forced.stderr
    );
    assert!(
        forced
            .stderr
            .contains("skiff: \u{1b}[32mpod colour Succeeded (3 containers, 0 restarts)\u{1b}[0m"),
        "{}",
        forced.stderr
    );

    let both = run_env(
        &manifest,
        &[],
        &[("CLICOLOR_FORCE", "1"), ("NO_COLOR", "1")],
    );
    assert!(!both.stdout.contains(ESC) && !both.stderr.contains(ESC));

    let tty = run_in_terminal(&manifest, &[]);
    assert_eq!(tty.code, Some(0), "{}", tty.stdout);
    assert!(
        tty.stdout.contains("\u{1b}[36m[setup]\u{1b}[0m set up"),
        "{}",
        tty.stdout
    );
    assert!(tty.stdout.contains("\u{1b}[2m[event] "), "{}", tty.stdout);

    for env in [[("NO_COLOR", "1")], [("TERM", "dumb")]] {
        let plain = run_in_terminal(&manifest, &env);
        assert_eq!(plain.code, Some(0), "{}", plain.stdout);
        assert!(
            plain.stdout.contains("[setup] set up"),
            "{env:?}: {}",
            plain.stdout
        );
        assert!(!plain.stdout.contains(ESC), "{env:?}: {}", plain.stdout);
    }
}

// Issue 8 item 8: skiff's own notices (tracing) read `skiff: <level>: …`, without ANSI in
// pipes; module paths only at debug level.
#[test]
fn notices_are_plain_skiff_lines() {
    let t = TestDir::new("sum-notice");
    let manifest = t.manifest(good_pod("notice"));
    let out = run_env(&manifest, &[], &[("SKIFF_LOG", "debug")]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let debug: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("container started"))
        .collect();
    assert!(!debug.is_empty(), "{}", out.stderr);
    for l in &debug {
        assert!(
            l.starts_with("skiff: debug: skiff_node::runtime: container started id="),
            "{l}"
        );
    }
    assert!(!out.stderr.contains(ESC));
    assert!(!out.stderr.contains(" DEBUG "), "{}", out.stderr);
    let forced = run_env(
        &manifest,
        &[],
        &[("SKIFF_LOG", "debug"), ("CLICOLOR_FORCE", "1")],
    );
    assert!(
        forced.stderr.contains("skiff: \u{1b}[34mdebug\u{1b}[0m: "),
        "{}",
        forced.stderr
    );
}

const APPS: usize = 12;

// Issue 8 item 8: a container's lines never print before its Started event — for the first
// instance and for a restart (first restart immediate, R5), whose Started is counted
// (`x2 over …`). Containers print at once, racing the event.
#[test]
fn container_lines_come_after_their_started_event() {
    let t = TestDir::new("sum-order");
    // `echo` itself, no shell prelude: the line exists as soon as the process does.
    let mut apps: Vec<_> = (0..APPS)
        .map(|i| {
            let mut c = container(&format!("c{i}"), "");
            c["command"] = json!(["/bin/echo", format!("first-c{i}")]);
            c
        })
        .collect();
    apps.push(container(
        "flaky",
        "if [ -e \"$T/ran\" ]; then echo run-1; exit 0; fi; touch \"$T/ran\"; echo run-0; exit 1",
    ));
    let manifest = t.manifest(pod("order", "OnFailure", vec![], apps));
    // Both streams on stderr (-o json), so their order is one order.
    let out = run_env(&manifest, &["-o", "json"], &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let lines: Vec<&str> = out.stderr.lines().collect();
    let pos = |pred: &dyn Fn(&str) -> bool| lines.iter().position(|l| pred(l));
    for i in 0..APPS {
        let name = format!("c{i}");
        let started = pos(&|l| l.ends_with(&format!("Started: Started container {name}")))
            .unwrap_or_else(|| panic!("no Started for {name}:\n{}", out.stderr));
        let line = pos(&|l| l == format!("[{name}] first-{name}"))
            .unwrap_or_else(|| panic!("no line of {name}:\n{}", out.stderr));
        assert!(started < line, "{name}:\n{}", out.stderr);
    }
    let first = pos(&|l| l.ends_with("Started: Started container flaky")).unwrap();
    let run0 = pos(&|l| l == "[flaky] run-0").unwrap();
    let again = pos(&|l| l.contains("Started: Started container flaky (x2 over "))
        .unwrap_or_else(|| panic!("restart's Started not counted:\n{}", out.stderr));
    let run1 = pos(&|l| l == "[flaky] run-1").unwrap();
    assert!(
        first < run0 && run0 < again && again < run1,
        "{}",
        out.stderr
    );
}

// Issue 8 item 8: repeated events are counted like the kubelet's correlator instead of one
// line per probe period: a readiness probe failing every second prints its first failure,
// then one line with the count (`x5 over 4s`) — not five lines.
#[test]
fn repeated_events_are_counted() {
    let t = TestDir::new("sum-repeat");
    let app = with(
        container("app", "sleep 4.5"),
        "readinessProbe",
        exec_probe("exit 1", 1, 3),
    );
    let manifest = t.manifest(pod("repeat", "Never", vec![], vec![app]));
    let out = run_env(&manifest, &[], &[]);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    let failed: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| l.contains("Warning Unhealthy: Readiness probe failed"))
        .collect();
    assert_eq!(failed.len(), 2, "{}", out.stderr);
    assert!(failed[0].ends_with("(app)"), "{}", failed[0]);
    let counted = failed[1];
    let n: u32 = counted
        .split("(app, x")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no count: {counted}"));
    assert!((3..=6).contains(&n), "{counted}");
    assert!(counted.ends_with("s)"), "{counted}");
}
