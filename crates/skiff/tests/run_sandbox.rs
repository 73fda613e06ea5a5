//! `skiff run` on the real binary: the pod sandbox's namespaces (issue 4 items 1, 2, 8, 9;
//! SEMANTICS S1). As root only (skipped with a reason otherwise). Ports are picked at random;
//! listeners are busybox `httpd`.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests may panic

mod common;

use std::time::Duration;

use common::*;
use serde_json::json;

fn root() -> bool {
    if !is_root() {
        eprintln!("skipped: pod namespaces need root");
        return false;
    }
    true
}

fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

/// PIDs of live processes in the network namespace `ns` (a `/proc/*/ns/net` link target).
fn in_netns(ns: &str) -> Vec<i32> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()))
        .filter(|pid| {
            std::fs::read_link(format!("/proc/{pid}/ns/net"))
                .map(|l| l.to_string_lossy() == ns)
                .unwrap_or(false)
                && alive(*pid)
        })
        .collect()
}

fn read(t: &TestDir, f: &str) -> String {
    std::fs::read_to_string(t.file(f)).unwrap_or_default()
}

// Item 1: a sidecar reaches the app on 127.0.0.1 inside the pod; the host cannot connect to
// that port; the sandbox (holder included) is gone after the run.
#[test]
fn item1_sidecar_reaches_app_on_localhost_and_host_cannot() {
    if !root() {
        return;
    }
    let t = TestDir::new("sb-net");
    let port = free_port();
    std::fs::create_dir_all(t.file("www")).unwrap();
    std::fs::write(t.file("www/hello"), "hello-from-app\n").unwrap();
    // The sidecar polls the app until it answers, then waits for the test to say stop.
    let side = sidecar(
        "side",
        &format!(
            "readlink /proc/self/ns/net > $T/netns; \
             until busybox wget -q -O $T/got http://127.0.0.1:{port}/hello; do sleep 0.05; done; \
             trap 'exit 0' TERM; while :; do sleep 0.05; done"
        ),
    );
    let app = container(
        "app",
        &format!(
            "busybox httpd -f -p 127.0.0.1:{port} -h $T/www & \
             while [ ! -e $T/stop ]; do sleep 0.05; done; kill $!; l Exiting"
        ),
    );
    let manifest = t.manifest(pod("sandbox-net", "Never", vec![side], vec![app]));
    let child = spawn(&["run", "-f", manifest.to_str().unwrap(), "-o", "json"]);
    assert!(
        wait_until(Duration::from_secs(20), || read(&t, "got")
            == "hello-from-app\n"),
        "the sidecar never reached the app"
    );
    let netns = read(&t, "netns").trim().to_string();
    assert_ne!(
        netns,
        std::fs::read_link("/proc/self/ns/net")
            .unwrap()
            .to_string_lossy()
    );
    let err = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::ConnectionRefused);
    std::fs::write(t.file("stop"), "").unwrap();
    let out = finish(child, RUN_LIMIT);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let p = out.pod();
    assert_eq!(p["status"]["phase"], "Succeeded");
    // The sandbox is gone at the end, and the condition says so (ST6).
    assert_eq!(
        condition(&p, "PodReadyToStartContainers")["status"],
        "False"
    );
    // Nothing is left in the pod's network namespace: no holder, no container.
    assert!(in_netns(&netns).is_empty(), "{:?}", in_netns(&netns));
}

// Item 1: hostname = pod name (or spec.hostname); the pod sees only its own loopback.
#[test]
fn item1_hostname_is_the_pod_name_and_only_lo_exists() {
    if !root() {
        return;
    }
    let t = TestDir::new("sb-uts");
    let c = container(
        "app",
        "cat /proc/sys/kernel/hostname > $T/hostname; cat /proc/net/dev > $T/dev",
    );
    let out = t.run(pod("pod-name-host", "Never", vec![], vec![c.clone()]), &[]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert_eq!(read(&t, "hostname"), "pod-name-host\n");
    let ifaces: Vec<String> = read(&t, "dev")
        .lines()
        .skip(2)
        .filter_map(|l| l.split(':').next().map(|s| s.trim().to_string()))
        .collect();
    assert_eq!(ifaces, ["lo"]);

    let mut p = pod("other-name", "Never", vec![], vec![c]);
    p["spec"]["hostname"] = json!("custom-host");
    let out = t.run(p, &[]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert_eq!(read(&t, "hostname"), "custom-host\n");
}

// Item 1: hostNetwork: the pod sees the host's interfaces and hostname.
#[test]
fn item1_host_network_pod_sees_the_host_interfaces() {
    if !root() {
        return;
    }
    let t = TestDir::new("sb-hostnet");
    let c = container(
        "app",
        "cat /proc/net/dev > $T/dev; cat /proc/sys/kernel/hostname > $T/hostname",
    );
    let mut p = pod("hostnet", "Never", vec![], vec![c]);
    p["spec"]["hostNetwork"] = json!(true);
    let out = t.run(p, &[]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    let names = |s: &str| -> Vec<String> {
        let mut v: Vec<String> = s
            .lines()
            .skip(2)
            .filter_map(|l| l.split(':').next().map(|s| s.trim().to_string()))
            .collect();
        v.sort();
        v
    };
    let host = std::fs::read_to_string("/proc/net/dev").unwrap();
    assert_eq!(names(&read(&t, "dev")), names(&host));
    assert_eq!(
        read(&t, "hostname"),
        std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap()
    );
}

// Item 1: shareProcessNamespace: one container sees the other's processes, and PID 1 is the
// sandbox's holder (as the pause container is).
#[test]
fn item1_share_process_namespace_containers_see_each_other() {
    if !root() {
        return;
    }
    let t = TestDir::new("sb-pid");
    // `7.77` appears in a's command line only (b builds it at run time).
    let a = container(
        "a",
        "sleep 7.77 & while [ ! -e $T/seen ]; do sleep 0.05; done; kill $!",
    );
    let b = container(
        "b",
        "m=7.7; m=${m}7; until grep -qs $m /proc/[0-9]*/cmdline; do sleep 0.05; done; \
         ls -d /proc/[0-9]* | wc -l > $T/count; touch $T/seen",
    );
    let mut p = pod("pid-share", "Never", vec![], vec![a, b]);
    p["spec"]["shareProcessNamespace"] = json!(true);
    let out = t.run(p, &[]);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert!(t.file("seen").exists());
    // Only the pod's processes: the holder, a's and b's shells and their children.
    let count: usize = read(&t, "count").trim().parse().unwrap();
    assert!(count < 12, "{count} processes visible");
    // Each shell recorded `$$` = its PID inside the pod namespace: not 1 (the holder's).
    for pid in t.pids("pids") {
        assert!(pid > 1, "{pid}");
    }
}

// Item 8: skiff killed with SIGKILL: the holder exits by itself (its lifeline closes).
#[test]
fn item8_holder_exits_when_skiff_is_killed() {
    if !root() {
        return;
    }
    let t = TestDir::new("sb-kill");
    let c = container("app", "readlink /proc/self/ns/net > $T/netns; sleep 30");
    let manifest = t.manifest(pod("sandbox-kill", "Never", vec![], vec![c]));
    let mut child = spawn(&["run", "-f", manifest.to_str().unwrap(), "-o", "json"]);
    assert!(wait_until(Duration::from_secs(20), || !read(&t, "netns").is_empty()));
    let netns = read(&t, "netns").trim().to_string();
    child.kill().unwrap();
    let _ = child.wait();
    // Left: the container (skiff's next start cleans those up); the holder must be gone.
    let containers = t.leftovers();
    assert!(
        wait_until(Duration::from_secs(5), || in_netns(&netns)
            .iter()
            .all(|p| t.leftovers().contains(p))),
        "holder still alive: {:?} (containers {containers:?})",
        in_netns(&netns)
    );
}

// Item 9: without root, skiff says once that namespaces (and cgroups) are unavailable and runs
// the pod's containers as plain host processes.
#[test]
fn item9_without_root_says_so_once_and_runs_host_containers() {
    if !root() {
        return;
    }
    if std::process::Command::new("setpriv")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("skipped: setpriv (util-linux) is not installed");
        return;
    }
    let t = TestDir::new("sb-nonroot");
    // World-writable so the unprivileged skiff and its containers can use it.
    std::fs::set_permissions(
        t.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o777),
    )
    .unwrap();
    let c = container(
        "app",
        "id -u > $T/uid; readlink /proc/self/ns/net > $T/netns",
    );
    let c2 = container("app2", "true");
    let manifest = t.manifest(pod("nonroot", "Never", vec![], vec![c, c2]));
    std::fs::set_permissions(
        &manifest,
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let child = std::process::Command::new("setpriv")
        .args([
            "--reuid=65534",
            "--regid=65534",
            "--clear-groups",
            "--inh-caps=-all",
            "--",
            env!("CARGO_BIN_EXE_skiff"),
            "run",
            "-f",
            manifest.to_str().unwrap(),
            "-o",
            "json",
            "--data-dir",
            t.file("data").to_str().unwrap(),
        ])
        .env_remove("SKIFF_LOG")
        // Without user namespaces (rootless mode is `run_rootless.rs`).
        .env("SKIFF_NO_USERNS", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let out = finish(child, RUN_LIMIT);
    assert_eq!(out.code, Some(0), "stderr:\n{}", out.stderr);
    assert_eq!(out.pod()["status"]["phase"], "Succeeded");
    assert_eq!(read(&t, "uid"), "65534\n");
    assert_eq!(
        read(&t, "netns").trim(),
        std::fs::read_link("/proc/self/ns/net")
            .unwrap()
            .to_string_lossy()
    );
    assert_eq!(
        out.stderr
            .matches("namespaces and cgroups are unavailable")
            .count(),
        1,
        "stderr:\n{}",
        out.stderr
    );
}
