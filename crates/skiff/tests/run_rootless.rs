//! `skiff run` on the real binary: rootless pods in an unprivileged user namespace (issue 4
//! item 9), `readOnlyRootFilesystem` (item 7) and the `HOSTNAME` env (item 1). Rootless runs
//! use `setpriv` to start skiff as uid 65534 from the root test process (CI runs as root);
//! skipped with a reason where root, `setpriv` or unprivileged user namespaces are missing.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use serde_json::{json, Value};

const NOBODY: &str = "65534";

fn root() -> bool {
    if !is_root() {
        eprintln!("skipped: needs root (pod namespaces, or setpriv to become uid {NOBODY})");
        return false;
    }
    true
}

/// Root, setpriv, and an unprivileged user namespace for uid 65534 (what skiff will try).
fn rootless_possible() -> bool {
    if !root() {
        return false;
    }
    let ok = Command::new("setpriv")
        .args(nobody_args())
        .args(["unshare", "-U", "-r", "-n", "true"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        eprintln!("skipped: setpriv/unshare missing or unprivileged user namespaces not allowed");
    }
    ok
}

fn nobody_args() -> [&'static str; 5] {
    [
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=-all",
        "--",
    ]
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn read(t: &TestDir, f: &str) -> String {
    std::fs::read_to_string(t.file(f)).unwrap_or_default()
}

/// PIDs of live processes whose namespace `kind` is `link` (a `/proc/*/ns/<kind>` target).
fn in_ns(kind: &str, link: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/{kind}"))
                .map(|l| l.to_string_lossy() == link)
                .unwrap_or(false)
                && alive(*pid)
        })
        .collect()
}

fn own_ns(kind: &str) -> String {
    std::fs::read_link(format!("/proc/self/ns/{kind}"))
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

/// The test dir made usable by uid 65534 (0777), with the skiff binary linked (or copied)
/// into it so its path is traversable whatever the target dir's modes.
fn nobody_dir(test: &str) -> (TestDir, PathBuf) {
    let t = TestDir::new(test);
    std::fs::set_permissions(t.path(), PermissionsExt::from_mode(0o777)).unwrap();
    // An installed skiff: the binary and its container monitor side by side.
    let bin = t.file("skiff");
    for (src, dst) in [
        (env!("CARGO_BIN_EXE_skiff"), bin.clone()),
        (env!("CARGO_BIN_EXE_skiff-monitor"), t.file("skiff-monitor")),
    ] {
        if std::fs::hard_link(src, &dst).is_err() {
            std::fs::copy(src, &dst).unwrap();
        }
        std::fs::set_permissions(&dst, PermissionsExt::from_mode(0o755)).unwrap();
    }
    (t, bin)
}

/// Starts `skiff run` on `pod` as uid 65534 (data dir in the test dir).
fn spawn_as_nobody(
    t: &TestDir,
    bin: &std::path::Path,
    pod: Value,
    env: &[(&str, &str)],
) -> std::process::Child {
    let manifest = t.manifest(pod);
    std::fs::set_permissions(&manifest, PermissionsExt::from_mode(0o644)).unwrap();
    let mut cmd = Command::new("setpriv");
    cmd.args(nobody_args())
        .arg(bin)
        .args(["run", "-f", manifest.to_str().unwrap(), "-o", "json"])
        .arg("--data-dir")
        .arg(t.file("data"))
        .env_remove("SKIFF_LOG")
        .env_remove("SKIFF_NO_USERNS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.spawn().unwrap()
}

// Item 9 (rootless): skiff as uid 65534 puts the pod in an unprivileged user namespace with
// its own network and UTS namespaces: the sidecar reaches the app on 127.0.0.1 while the host
// cannot connect, hostname = pod name, an emptyDir is shared by two containers (mounted in
// their own mount namespaces), a TCP startup probe reaches the pod network, a
// readOnlyRootFilesystem works inside the user namespace, and nothing is left afterwards.
#[test]
fn item9_rootless_pod_uses_a_user_namespace() {
    if !rootless_possible() {
        return;
    }
    let (t, bin) = nobody_dir("rootless");
    std::fs::create_dir_all(t.file("www")).unwrap();
    std::fs::write(t.file("www/hello"), "hello-from-app\n").unwrap();
    let (side_port, app_port) = (free_port(), free_port());
    let vol = t.file("vol").to_string_lossy().into_owned();
    let mount = json!([{"name": "shared", "mountPath": vol}]);
    // The sidecar serves (its startup probe connects), then polls the app until it answers,
    // then reads what the app wrote into the shared emptyDir.
    let side = with(
        with(
            sidecar(
                "side",
                &format!(
                    "busybox httpd -f -p 127.0.0.1:{side_port} -h $T/www & \
                     readlink /proc/self/ns/user > $T/userns; readlink /proc/self/ns/net > $T/netns; \
                     id -u > $T/uid; hostname > $T/hostname; \
                     until busybox wget -q -O $T/got http://127.0.0.1:{app_port}/hello; do sleep 0.05; done; \
                     until [ -s {vol}/from-app ]; do sleep 0.05; done; cp {vol}/from-app $T/side-saw; \
                     trap 'kill $!; exit 0' TERM; while :; do sleep 0.05; done"
                ),
            ),
            "startupProbe",
            json!({"tcpSocket": {"port": side_port}, "periodSeconds": 1}),
        ),
        "volumeMounts",
        mount.clone(),
    );
    // The app starts only once the sidecar's startup probe succeeded (native sidecar).
    let app = with(
        with(
            container(
                "app",
                &format!(
                    "busybox httpd -f -p 127.0.0.1:{app_port} -h $T/www & \
                     echo shared > {vol}/from-app; \
                     if touch /var/tmp/skiff-rootless-ro-$$$$ 2>/dev/null; then echo yes; else echo no; fi > $T/root-writable; \
                     while [ ! -e $T/stop ]; do sleep 0.05; done; kill $!"
                ),
            ),
            "volumeMounts",
            mount,
        ),
        "securityContext",
        json!({"readOnlyRootFilesystem": true}),
    );
    // The app's output dir stays writable: the test dir bound onto itself.
    let mut app = app;
    app["volumeMounts"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "t", "mountPath": t.path()}));
    let mut p = pod("rootless-pod", "Never", vec![side], vec![app]);
    p["spec"]["volumes"] = json!([
        {"name": "shared", "emptyDir": {}},
        {"name": "t", "hostPath": {"path": t.path(), "type": "Directory"}},
    ]);
    let child = spawn_as_nobody(&t, &bin, p, &[]);
    assert!(
        wait_until(Duration::from_secs(30), || read(&t, "got")
            == "hello-from-app\n"),
        "the sidecar never reached the app"
    );
    let err = std::net::TcpStream::connect(("127.0.0.1", app_port)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    std::fs::write(t.file("stop"), "").unwrap();
    let out = finish(child, RUN_LIMIT);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert_eq!(out.pod()["status"]["phase"], "Succeeded", "{}", out.stderr);
    let userns = read(&t, "userns").trim().to_string();
    let netns = read(&t, "netns").trim().to_string();
    assert_ne!(userns, own_ns("user"));
    assert_ne!(netns, own_ns("net"));
    // uid 0 inside the namespace (65534 outside), hostname = pod name.
    assert_eq!(read(&t, "uid"), "0\n");
    assert_eq!(read(&t, "hostname"), "rootless-pod\n");
    assert_eq!(read(&t, "side-saw"), "shared\n");
    assert_eq!(read(&t, "root-writable"), "no\n");
    // The emptyDir was mounted in the containers only: the host's mount point is gone.
    assert!(!t.file("vol").join("from-app").exists());
    // Rootless mode is said once; nothing of the pod is left: no holder, no container.
    assert_eq!(out.stderr.matches("rootless:").count(), 1, "{}", out.stderr);
    assert!(
        in_ns("user", &userns).is_empty(),
        "{:?}",
        in_ns("user", &userns)
    );
    assert!(in_ns("net", &netns).is_empty());
}

// Item 9 (rootless) + item 7 (securityContext): inside the user namespace only uid 0 (skiff's
// uid outside) exists; another runAsUser is a clear CreateContainerConfigError.
#[test]
fn item9_rootless_run_as_other_user_is_a_config_error() {
    if !rootless_possible() {
        return;
    }
    let (t, bin) = nobody_dir("rootless-sc");
    let ok = with(
        container("ok", "id -u > $T/ok-uid"),
        "securityContext",
        json!({"runAsUser": 0}),
    );
    let bad = with(
        container("bad", "true"),
        "securityContext",
        json!({"runAsUser": 1000}),
    );
    // A config error is retried (kubelet); the deadline ends the pod.
    let mut p = pod("rootless-sc", "Never", vec![], vec![ok, bad]);
    p["spec"]["activeDeadlineSeconds"] = json!(2);
    let child = spawn_as_nobody(&t, &bin, p, &[]);
    let out = finish(child, RUN_LIMIT);
    assert_eq!(out.code, Some(1), "stderr:\n{}", out.stderr);
    assert_eq!(read(&t, "ok-uid"), "0\n", "{}", out.stderr);
    assert!(
        out.stderr.contains(
            "Warning Failed: Error: rootless skiff runs containers in a user namespace that maps only uid 65534"
        ),
        "{}",
        out.stderr
    );
}

// Item 9: with user namespaces unavailable (SKIFF_NO_USERNS=1 stands in for
// user.max_user_namespaces=0), rootless skiff says once that namespaces and cgroups are
// unavailable and runs plain host processes.
#[test]
fn item9_without_user_namespaces_falls_back_to_host_processes() {
    if !rootless_possible() {
        return;
    }
    let (t, bin) = nobody_dir("rootless-nouserns");
    let c = container(
        "app",
        "readlink /proc/self/ns/user > $T/userns; id -u > $T/uid",
    );
    let child = spawn_as_nobody(
        &t,
        &bin,
        pod("no-userns", "Never", vec![], vec![c]),
        &[("SKIFF_NO_USERNS", "1")],
    );
    let out = finish(child, RUN_LIMIT);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert_eq!(read(&t, "userns").trim(), own_ns("user"));
    assert_eq!(read(&t, "uid"), "65534\n");
    assert_eq!(
        out.stderr
            .matches("namespaces and cgroups are unavailable")
            .count(),
        1,
        "{}",
        out.stderr
    );
    assert!(!out.stderr.contains("rootless:"), "{}", out.stderr);
}

// Item 7: readOnlyRootFilesystem: the container cannot write anywhere on the root filesystem
// but can write to its emptyDir and to a writable hostPath mount; the host's `/` stays
// writable.
#[test]
fn item7_read_only_root_filesystem() {
    if !root() {
        return;
    }
    let t = TestDir::new("ro-root");
    let probe = format!("/var/tmp/skiff-ro-{}", std::process::id());
    let c = with(
        container(
            "app",
            &format!(
                "if touch {probe} 2>/dev/null; then echo yes; else echo no; fi > $T/root; \
                 if echo x > /vol/f; then cat /vol/f; else echo no; fi > $T/vol; \
                 grep ' / / ' /proc/self/mountinfo | cut -d' ' -f6 > $T/opts"
            ),
        ),
        "securityContext",
        json!({"readOnlyRootFilesystem": true}),
    );
    let mut c = c;
    c["volumeMounts"] = json!([
        {"name": "v", "mountPath": "/vol"},
        {"name": "t", "mountPath": t.path()},
    ]);
    let mut p = pod("ro-root", "Never", vec![], vec![c]);
    p["spec"]["volumes"] = json!([
        {"name": "v", "emptyDir": {}},
        {"name": "t", "hostPath": {"path": t.path(), "type": "Directory"}},
    ]);
    let out = t.run(p, &[]);
    let _ = std::fs::remove_file(&probe);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert_eq!(read(&t, "root"), "no\n");
    assert_eq!(read(&t, "vol"), "x\n");
    assert!(read(&t, "opts").starts_with("ro"), "{}", read(&t, "opts"));
    // The host's `/` is untouched.
    let host_probe = format!("{probe}-host");
    std::fs::write(&host_probe, "").unwrap();
    std::fs::remove_file(&host_probe).unwrap();
    let _ = std::fs::remove_dir("/vol");
}

// Item 1: HOSTNAME in the container env is spec.hostname when set (as the UTS hostname), the
// pod name otherwise, and the node's hostname with hostNetwork.
#[test]
fn item1_hostname_env_follows_spec_hostname() {
    if !root() {
        return;
    }
    let t = TestDir::new("hostname-env");
    let c = container("app", "echo \"$HOSTNAME $(hostname)\" > $T/h");
    let mut p = pod("env-host", "Never", vec![], vec![c.clone()]);
    p["spec"]["hostname"] = json!("custom-host");
    let out = t.run(p, &[]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert_eq!(read(&t, "h"), "custom-host custom-host\n");

    let out = t.run(pod("env-host", "Never", vec![], vec![c.clone()]), &[]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert_eq!(read(&t, "h"), "env-host env-host\n");

    let mut p = pod("env-host", "Never", vec![], vec![c]);
    p["spec"]["hostNetwork"] = json!(true);
    let out = t.run(p, &[]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let node = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
    assert_eq!(read(&t, "h"), format!("{0} {0}\n", node.trim_end()));
}
