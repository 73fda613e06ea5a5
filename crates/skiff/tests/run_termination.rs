//! `skiff run` on the real binary, as root, playing the attacker (issue 7): termination
//! messages (item 1 d: FIFOs and symlinks at `terminationMessagePath`, the default path, the
//! kubelet's caps), containers that can never start and `--timeout` bounding the whole run
//! (item 7), and exec probes writing `oom_score_adj` through skiff's own `/proc` (item 7).
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::time::{Duration, Instant};

use common::*;

fn root() -> bool {
    if !is_root() {
        eprintln!("skipped: needs root (mount namespaces, runAsUser)");
        return false;
    }
    true
}
use serde_json::{json, Value};

fn mkfifo(p: &std::path::Path) {
    let st = std::process::Command::new("mkfifo")
        .arg(p)
        .status()
        .unwrap();
    assert!(st.success());
}

fn terminated<'a>(pod: &'a Value, name: &str) -> &'a Value {
    &status_of(pod, name)["state"]["terminated"]
}

// 1(d): a FIFO at a custom terminationMessagePath (a host path the container controls) used to
// hang skiff for good at the container's exit (root opened it on the host). Now the instance's
// own file is bind-mounted over it in the container's namespace: skiff ends by itself, the
// container's message arrives, and the FIFO on the host is untouched.
#[test]
fn issue7_item1d_fifo_at_custom_path_cannot_hang_skiff() {
    if !root() {
        return;
    }
    let t = TestDir::new("i7-fifo");
    let fifo = t.file("fifo");
    mkfifo(&fifo);
    let app = with(
        container(
            "app",
            &format!("printf bye > {}; l Exiting", fifo.display()),
        ),
        "terminationMessagePath",
        json!(fifo),
    );
    let out = t.run(
        pod("fifo", "Never", vec![], vec![app]),
        &["--timeout", "30"],
    );
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert!(
        out.elapsed < Duration::from_secs(15),
        "took {:?}",
        out.elapsed
    );
    let p = out.pod();
    assert_eq!(terminated(&p, "app")["message"], "bye", "{p:#}");
    let ft = std::fs::symlink_metadata(&fifo).unwrap().file_type();
    assert!(ft.is_fifo(), "the host FIFO was replaced");
    assert!(t.leftovers().is_empty(), "{:?}", t.leftovers());
}

// 1(d): an init container plants a FIFO in an emptyDir; the app's terminationMessagePath points
// there. SIGTERM to skiff stops the pod and skiff ends (it used to hang, ignoring SIGTERM and a
// double SIGINT); what the app wrote on its way out is its message.
#[test]
fn issue7_item1d_fifo_in_empty_dir_and_sigterm_end_normally() {
    if !root() {
        return;
    }
    let t = TestDir::new("i7-fifo-vol");
    let vol = t.file("vol");
    let msg = vol.join("msg");
    let mut init = container("plant", &format!("mkfifo {}; l Exiting", msg.display()));
    init["volumeMounts"] = json!([{"name": "v", "mountPath": vol}]);
    let mut app = container(
        "app",
        &format!(
            "trap 'printf stopped > {}; l Exiting; exit 0' TERM; while :; do sleep 0.05; done",
            msg.display()
        ),
    );
    app["volumeMounts"] = json!([{"name": "v", "mountPath": vol}]);
    app["terminationMessagePath"] = json!(msg);
    let mut p = pod("fifovol", "Never", vec![init], vec![app]);
    p["spec"]["volumes"] = json!([{"name": "v", "emptyDir": {}}]);
    let manifest = t.manifest(p);
    let child = spawn(&["run", "-f", manifest.to_str().unwrap(), "-o", "json"]);
    let pid = child.id();
    assert!(
        wait_until(Duration::from_secs(20), || !all(
            &t.log(),
            "app",
            "Starting"
        )
        .is_empty()),
        "app never started: {}",
        render(&t.log())
    );
    let sent = Instant::now();
    signal(pid, "TERM");
    let out = finish(child, RUN_LIMIT);
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "took {:?} after SIGTERM",
        sent.elapsed()
    );
    let p = out.pod();
    assert_eq!(terminated(&p, "app")["message"], "stopped", "{p:#}");
    assert_eq!(terminated(&p, "app")["exitCode"], 0, "{p:#}");
    assert!(t.leftovers().is_empty(), "{:?}", t.leftovers());
}

// 1(d): a symlink at terminationMessagePath pointing to a root-only host file: skiff (root)
// used to read the path on the host once it changed during the run, so a non-root container
// that made the symlink got the file copied into its status. Now only what the container wrote
// into its own file can appear; the host file stays as it was. Both a symlink planted before
// the start and one the container makes while it runs (in a world-writable directory).
#[test]
fn issue7_item1d_symlink_never_copies_a_root_only_file_into_the_status() {
    if !root() {
        return;
    }
    let t = TestDir::new("i7-symlink");
    // Traversable by uid 65534; `drop` is world-writable like /tmp.
    std::fs::set_permissions(t.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    let drop = t.file("drop");
    std::fs::create_dir(&drop).unwrap();
    std::fs::set_permissions(&drop, std::fs::Permissions::from_mode(0o777)).unwrap();
    let secret = t.file("secret");
    std::fs::write(&secret, "TOPSECRET-7d\n").unwrap();
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o600)).unwrap();
    let planted = drop.join("planted");
    std::os::unix::fs::symlink(&secret, &planted).unwrap();
    let made = drop.join("made");
    let nobody = json!({"runAsUser": 65534, "runAsGroup": 65534});

    let mut pre = container("pre", "exit 1");
    pre["terminationMessagePath"] = json!(planted);
    pre["terminationMessagePolicy"] = json!("FallbackToLogsOnError");
    pre["securityContext"] = nobody.clone();
    let mut racer = container(
        "racer",
        &format!(
            "rm -f {m} 2>/dev/null; ln -s {s} {m} 2>/dev/null; ls -l {m} >&2; exit 1",
            m = made.display(),
            s = secret.display()
        ),
    );
    racer["terminationMessagePath"] = json!(made);
    racer["securityContext"] = nobody;
    let out = t.run(
        pod("symlink", "Never", vec![], vec![pre, racer]),
        &["--timeout", "30"],
    );
    assert_eq!(out.code, Some(1), "stderr:\n{}", out.stderr);
    assert!(!out.stdout.contains("TOPSECRET"), "{}", out.stdout);
    let p = out.pod();
    for name in ["pre", "racer"] {
        let s = terminated(&p, name);
        assert_eq!(s["exitCode"], 1, "{name}: {s:#}");
        assert!(
            s["message"]
                .as_str()
                .is_none_or(|m| !m.contains("TOPSECRET")),
            "{name}: {s:#}"
        );
    }
    assert_eq!(std::fs::read_to_string(&secret).unwrap(), "TOPSECRET-7d\n");
    let mode = std::fs::metadata(&secret).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o600);
    assert!(std::fs::symlink_metadata(&planted)
        .unwrap()
        .file_type()
        .is_symlink());
}

// 1(d) + ST4: the default path works like anywhere else — the container writes
// /dev/termination-log (no skiff-specific env var any more) and the message is in its status,
// for root, for another runAsUser (the file is 0666) and under readOnlyRootFilesystem (the file
// is a mount of its own, bound before `/` turns read-only).
#[test]
fn issue7_item1d_default_path_message_reaches_the_status() {
    if !root() {
        return;
    }
    let t = TestDir::new("i7-default");
    let a = container(
        "a",
        "printf \"bye ${SKIFF_TERMINATION_LOG:-without env}\" > /dev/termination-log; l Exiting",
    );
    let mut b = container(
        "b",
        "printf \"bye from $(id -u)\" > /dev/termination-log; l Exiting; exit 2",
    );
    b["securityContext"] = json!({"runAsUser": 1000, "runAsGroup": 1000});
    let mut ro = container(
        "ro",
        "printf 'bye read-only' > /dev/termination-log; exit 0",
    );
    ro["securityContext"] = json!({"readOnlyRootFilesystem": true});
    let out = t.run(
        pod("default", "Never", vec![], vec![a, b, ro]),
        &["--timeout", "30"],
    );
    let p = out.pod();
    assert_eq!(terminated(&p, "a")["message"], "bye without env", "{p:#}");
    assert_eq!(terminated(&p, "b")["message"], "bye from 1000", "{p:#}");
    assert_eq!(terminated(&p, "b")["exitCode"], 2, "{p:#}");
    assert_eq!(terminated(&p, "ro")["message"], "bye read-only", "{p:#}");
    assert!(t.leftovers().is_empty(), "{:?}", t.leftovers());
}

// 1(d) + ST4 caps as the kubelet applies them: four containers (one init, three apps) each
// write 8 KiB; the file's last 4096 bytes are kept, then the pod's 12 KiB divided by the
// spec's five containers (2457 each) keeps the start of those (`normalizeStatus`).
#[test]
fn issue7_item1d_caps_4096_per_container_and_12k_per_pod_as_the_kubelet() {
    if !root() {
        return;
    }
    let t = TestDir::new("i7-caps");
    // 8 KiB per container: the file's last 4096 bytes are kept ("TAIL-<name>" starts them),
    // then the pod's 12 KiB divided by the spec's 5 containers keeps the start of those.
    let body = |name: &str| {
        format!(
            "head -c 4096 /dev/zero | tr '\\0' y > /dev/termination-log; \
             printf 'TAIL-{name}' >> /dev/termination-log; \
             head -c 4090 /dev/zero | tr '\\0' x >> /dev/termination-log; l Exiting"
        )
    };
    let mut apps: Vec<_> = ["a", "b", "c"]
        .iter()
        .map(|n| container(n, &body(n)))
        .collect();
    apps.push(container("quiet", "l Exiting"));
    let init = vec![container("i", &body("i"))];
    let out = t.run(pod("caps", "Never", init, apps), &["--timeout", "30"]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let p = out.pod();
    let mut total = 0;
    for (list, name) in [
        ("initContainerStatuses", "i"),
        ("containerStatuses", "a"),
        ("containerStatuses", "b"),
        ("containerStatuses", "c"),
    ] {
        let s = p["status"][list]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["name"] == name)
            .unwrap();
        let m = s["state"]["terminated"]["message"].as_str().unwrap();
        assert_eq!(m.len(), 12 * 1024 / 5, "{name}");
        assert!(
            m.starts_with(&format!("TAIL-{name}")),
            "{name}: {}...",
            &m[..20]
        );
        total += m.len();
    }
    assert!(total <= 12 * 1024, "{total}");
}

// 7: a NUL byte in args can never reach exec(2). The kubelet reports the runtime's failure:
// terminated StartError, exit 128; with restartPolicy Never the pod fails at once (no hang,
// nothing ran).
#[test]
fn issue7_item7_nul_in_args_is_a_start_error() {
    let t = TestDir::new("i7-nul");
    let mut app = container("app", "l Ran");
    app["args"] = json!(["a\u{0}b"]);
    let out = t.run(pod("nul", "Never", vec![], vec![app]), &["--timeout", "30"]);
    assert_eq!(out.code, Some(1), "stderr:\n{}", out.stderr);
    assert!(
        out.elapsed < Duration::from_secs(15),
        "took {:?}",
        out.elapsed
    );
    let p = out.pod();
    assert_eq!(p["status"]["phase"], "Failed", "{p:#}");
    let s = terminated(&p, "app");
    assert_eq!(s["reason"], "StartError", "{s:#}");
    assert_eq!(s["exitCode"], 128, "{s:#}");
    assert!(
        s["message"]
            .as_str()
            .unwrap()
            .contains("invalid argument (command/args contains a NUL byte)"),
        "{s:#}"
    );
    assert!(t.log().is_empty(), "it ran: {:?}", t.log());
}

// 7: a missing ConfigMap key in env is CreateContainerConfigError; the kubelet keeps the pod
// Pending and retries with back-off for ever (nothing in the cluster can add the key while
// the kubelet waits — here nothing at all can). `skiff run` does the same, so `--timeout`
// (or a signal, or activeDeadlineSeconds) is what ends it: exit 124, bounded, nothing ran.
#[test]
fn issue7_item7_missing_configmap_key_waits_like_the_kubelet_until_timeout() {
    let t = TestDir::new("i7-cmkey");
    let mut app = container("app", "l Ran");
    app["env"] =
        json!([{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "cfg", "key": "nope"}}}]);
    let p = pod("cmkey", "Always", vec![], vec![app]);
    let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                    "metadata": {"name": "cfg"}, "data": {"other": "1"}});
    let out = t.run_with_docs(&[cm], p, &["--timeout", "3"]);
    assert_eq!(out.code, Some(124), "stderr:\n{}", out.stderr);
    assert!(
        out.elapsed < Duration::from_secs(12),
        "took {:?}",
        out.elapsed
    );
    assert!(
        out.stderr
            .contains("Warning Failed: Error: couldn't find key nope in ConfigMap default/cfg"),
        "{}",
        out.stderr
    );
    assert!(t.log().is_empty(), "it ran: {:?}", t.log());
}

// 7: `--timeout` bounds the whole run. A container ignoring SIGTERM in a pod with a huge
// terminationGracePeriodSeconds used to keep skiff for that long after the timeout; now the
// stop gets at most max(--timeout, 5) s of grace: `--timeout 2` ends in about 7 s, exit 124,
// nothing left. Also when SIGTERM started the stop before the timeout.
#[test]
fn issue7_item7_timeout_bounds_a_huge_grace_period() {
    let stubborn = "trap 'l TermIgnored' TERM; while :; do sleep 0.05; done";
    let huge = |name: &str| {
        let mut p = pod(name, "Never", vec![], vec![container("app", stubborn)]);
        p["spec"]["terminationGracePeriodSeconds"] = json!(100_000);
        p
    };

    let t = TestDir::new("i7-grace");
    let out = t.run(huge("grace"), &["--timeout", "2"]);
    assert_eq!(out.code, Some(124), "stderr:\n{}", out.stderr);
    assert!(
        out.elapsed < Duration::from_secs(12),
        "took {:?}:\n{}",
        out.elapsed,
        out.stderr
    );
    assert_eq!(
        all(&t.log(), "app", "TermIgnored").len(),
        1,
        "{}",
        render(&t.log())
    );
    assert_eq!(terminated(&out.pod(), "app")["exitCode"], 137);
    assert!(t.leftovers().is_empty(), "{:?}", t.leftovers());

    // SIGTERM first (the pod's own 100000 s grace), then the timeout shrinks it.
    let t = TestDir::new("i7-grace-sig");
    let manifest = t.manifest(huge("gracesig"));
    let child = spawn(&[
        "run",
        "-f",
        manifest.to_str().unwrap(),
        "-o",
        "json",
        "--timeout",
        "3",
    ]);
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
    assert!(
        out.elapsed < Duration::from_secs(14),
        "took {:?}:\n{}",
        out.elapsed,
        out.stderr
    );
    assert_eq!(terminated(&out.pod(), "app")["exitCode"], 137);
    assert!(t.leftovers().is_empty(), "{:?}", t.leftovers());
}

// 7: exec probes write oom_score_adj before entering the container's mount namespace. A
// privileged container mounts a tmpfs over its own /proc with `self/oom_score_adj` a symlink
// to a host file; a probe that wrote `/proc/self/oom_score_adj` after joining that namespace
// would write the pod's score (BestEffort: 1000) into the host file as root.
#[test]
fn issue7_item7_exec_probe_oom_score_adj_is_not_written_through_the_container_proc() {
    if !root() {
        return;
    }
    let t = TestDir::new("i7-oom");
    let victim = t.file("victim");
    std::fs::write(&victim, "original\n").unwrap();
    let script = format!(
        "mount -t tmpfs none /proc && mkdir /proc/self && ln -s {} /proc/self/oom_score_adj \
         && l Planted; while :; do sleep 0.05; done",
        victim.display()
    );
    let mut app = container("app", &script);
    app["securityContext"] = json!({"privileged": true});
    app["readinessProbe"] = json!({
        "exec": {"command": ["/bin/sh", "-c", format!("echo probed >> {}/probes", t.path().display())]},
        "periodSeconds": 1,
    });
    let out = t.run(pod("oom", "Never", vec![], vec![app]), &["--timeout", "5"]);
    assert_eq!(out.code, Some(124), "stderr:\n{}", out.stderr);
    assert_eq!(
        all(&t.log(), "app", "Planted").len(),
        1,
        "{}\n{}",
        render(&t.log()),
        out.stderr
    );
    let probes = std::fs::read_to_string(t.file("probes")).unwrap_or_default();
    assert!(
        probes.lines().count() >= 2,
        "probes ran: {probes:?}\n{}",
        out.stderr
    );
    assert_eq!(std::fs::read_to_string(&victim).unwrap(), "original\n");
    assert!(t.leftovers().is_empty(), "{:?}", t.leftovers());
}
