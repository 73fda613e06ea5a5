//! Issue 9: a `skiff run` killed with SIGKILL mid-pod. Its containers live under their
//! monitors, so they keep running and logging; the pod's keeper notices that skiff is gone and
//! has the engine stop the pod in order (apps, then sidecars in reverse order: T3–T5) within
//! its grace period, then cleans up. Afterwards no process, mount, cgroup or namespace of the
//! pod is left, and the CRI logs hold every line the containers wrote.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::*;
use serde_json::json;

/// Every live process whose command line or environment names `dir` (containers carry
/// `T=<dir>`; the monitors, the keeper and the namespace holder name files under it).
fn processes_naming(dir: &Path) -> Vec<(i32, String)> {
    let needle = dir.to_string_lossy().into_owned();
    let me = std::process::id() as i32;
    let mut found = Vec::new();
    for e in std::fs::read_dir("/proc").unwrap().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<i32>().ok()) else {
            continue;
        };
        if pid == me || !alive(pid) {
            continue;
        }
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        let text = |b: &[u8]| String::from_utf8_lossy(b).replace('\0', " ");
        if text(&cmdline).contains(&needle) || text(&environ).contains(&needle) {
            found.push((pid, text(&cmdline)));
        }
    }
    found
}

/// Mount points under `dir` (this process's mount namespace is the host's).
fn mounts_under(dir: &Path) -> Vec<String> {
    let needle = dir.to_string_lossy().into_owned();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .filter_map(|l| l.split(' ').nth(4))
        .filter(|m| m.starts_with(&needle))
        .map(str::to_string)
        .collect()
}

/// Cgroup directories named `pod<uid>` in any hierarchy.
fn pod_cgroups(uid: &str) -> Vec<PathBuf> {
    fn walk(dir: &Path, name: &str, depth: usize, out: &mut Vec<PathBuf>) {
        if depth == 0 {
            return;
        }
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            if !e.file_type().is_ok_and(|t| t.is_dir()) {
                continue;
            }
            let p = e.path();
            if e.file_name().to_string_lossy() == name {
                out.push(p.clone());
            }
            walk(&p, name, depth - 1, out);
        }
    }
    let mut out = Vec::new();
    walk(
        Path::new("/sys/fs/cgroup"),
        &format!("pod{uid}"),
        8,
        &mut out,
    );
    out
}

/// The numbers `n` of the `count <n>` records of a CRI log, in file order.
fn counts(log: &Path) -> Vec<u64> {
    std::fs::read_to_string(log)
        .unwrap()
        .lines()
        .filter_map(|l| {
            l.split_once(" stdout F count ")
                .map(|(_, n)| n.parse().unwrap())
        })
        .collect()
}

// Issue 9 "How it is checked": SIGKILL to `skiff run` mid-pod → within the grace period no
// process, mount, cgroup or namespace of the pod is left, the CRI logs hold every line written
// before, the stop followed T4 (the app first, then the sidecar), and the monitor recorded the
// exit of a container that ended on its own meanwhile.
#[test]
fn sigkill_to_run_stops_the_pod_in_order_and_leaves_nothing() {
    if !is_root() {
        eprintln!("skipped: needs root (namespaces, mounts, cgroups)");
        return;
    }
    let t = TestDir::new("crash");
    let data = t.file("data");
    // Counts to stdout every 10 ms; on SIGTERM logs Exiting and stops.
    let counter = "i=0; trap 'l Exiting; exit 0' TERM; \
                   while :; do i=$((i+1)); echo count $i; sleep 0.01; done";
    let quick = "trap '' TERM; sleep 1.5; l Done; exit 3";
    let mut p = pod(
        "crash",
        "Never",
        vec![sidecar("proxy", counter)],
        vec![container("app", counter), container("quick", quick)],
    );
    p["spec"]["terminationGracePeriodSeconds"] = json!(8);
    // An emptyDir: a tmpfs mount the cleanup has to remove.
    p["spec"]["volumes"] = json!([{"name": "scratch", "emptyDir": {"medium": "Memory"}}]);
    p["spec"]["containers"][0]["volumeMounts"] =
        json!([{"name": "scratch", "mountPath": "/scratch"}]);
    let manifest = t.manifest(p);
    let mut child = spawn(&[
        "run",
        "-f",
        manifest.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert!(
        wait_until(Duration::from_secs(20), || all(&t.log(), "app", "Starting")
            .len()
            == 1
            && all(&t.log(), "proxy", "Starting").len() == 1),
        "the pod did not start:\n{}",
        render(&t.log())
    );
    std::thread::sleep(Duration::from_millis(500));
    let pod_dir = std::fs::read_dir(data.join("pods"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.is_dir())
        .unwrap();
    let uid = pod_dir
        .file_name()
        .unwrap()
        .to_string_lossy()
        .rsplit('_')
        .next()
        .unwrap()
        .to_string();
    assert!(!pod_cgroups(&uid).is_empty() || !Path::new("/sys/fs/cgroup/memory").exists());
    assert!(
        !mounts_under(&data).is_empty(),
        "the emptyDir tmpfs is mounted"
    );

    signal(child.id(), "KILL");
    let killed_at = Instant::now();
    let _ = child.wait();

    // The grace period is 8 s; the app and the sidecar stop at once on SIGTERM, `quick`
    // ignores it and ends on its own at 1.5 s. Allow the grace plus a margin.
    let gone = wait_until(Duration::from_secs(8 + 5), || {
        processes_naming(t.path()).is_empty()
            && mounts_under(&data).is_empty()
            && pod_cgroups(&uid).is_empty()
    });
    assert!(
        gone,
        "left after {:?}: processes {:?}, mounts {:?}, cgroups {:?}\nkeeper log:\n{}",
        killed_at.elapsed(),
        processes_naming(t.path()),
        mounts_under(&data),
        pod_cgroups(&uid),
        std::fs::read_to_string(pod_dir.join("keeper.log")).unwrap_or_default()
    );
    assert!(
        killed_at.elapsed() < Duration::from_secs(8),
        "stopped within the grace period"
    );

    // T4: the app was stopped first, the sidecar after it.
    let log = t.log();
    assert!(
        at(&log, "app", "Exiting") < at(&log, "proxy", "Exiting"),
        "{}",
        render(&log)
    );
    // Every line the counters wrote is in their CRI logs, in order, none missing.
    for name in ["app", "proxy"] {
        let n = counts(&pod_dir.join(name).join("0.log"));
        assert!(n.len() > 20, "{name}: {} lines", n.len());
        assert!(
            n.iter().copied().eq(1..=n.len() as u64),
            "{name}: lines missing or out of order"
        );
    }
    // The monitor of `quick` recorded its own exit (code 3) after skiff was gone.
    let exit = std::fs::read_to_string(pod_dir.join("quick").join("0.exit")).unwrap();
    assert!(exit.contains("\nexited=3\n"), "{exit}");
    // The pod's status says how it ended.
    let pod: serde_json::Value =
        serde_json::from_slice(&std::fs::read(pod_dir.join("pod.json")).unwrap()).unwrap();
    assert_eq!(pod["status"]["phase"], "Failed", "{:#}", pod["status"]);
}

// Faults (issue 9): a monitor killed with SIGKILL. The container it held is reported as
// exited with an unknown status, killed, and — R3: Unknown always leads to a restart attempt,
// whatever the restartPolicy — started again; never left running unseen.
#[test]
fn r3_killed_monitor_is_unknown_then_restarted() {
    if !is_root() {
        eprintln!("skipped: needs root");
        return;
    }
    let t = TestDir::new("monitor-killed");
    let data = t.file("data");
    let body = "if [ -e \"$T/once\" ]; then l Again; exit 0; fi; touch \"$T/once\"; sleep 30";
    let manifest = t.manifest(pod("mk", "Never", vec![], vec![container("app", body)]));
    let child = spawn(&[
        "run",
        "-f",
        manifest.to_str().unwrap(),
        "-o",
        "json",
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    // The record is written once the start returned, which can be after the container ran.
    let record = || {
        std::fs::read_dir(data.join("pods"))
            .ok()?
            .flatten()
            .map(|e| e.path().join("app").join("0.state.json"))
            .find(|p| p.exists())
    };
    assert!(wait_until(Duration::from_secs(20), || t
        .file("once")
        .exists()
        && record().is_some()));
    let record = record().unwrap();
    let rec: serde_json::Value = serde_json::from_slice(&std::fs::read(&record).unwrap()).unwrap();
    let (monitor, main) = (
        rec["monitor"]["pid"].as_i64().unwrap() as i32,
        rec["main"]["pid"].as_i64().unwrap() as i32,
    );
    assert!(alive(monitor) && alive(main));
    kill_pid(monitor);
    let out = finish(child, RUN_LIMIT);
    assert_eq!(out.code, Some(0), "{}", out.stderr);
    assert!(
        !alive(main),
        "the container of the killed monitor was killed"
    );
    let pod = out.pod();
    let app = status_of(&pod, "app");
    assert_eq!(app["restartCount"], 1, "{app:#}");
    assert_eq!(
        app["lastState"]["terminated"]["reason"], "ContainerStatusUnknown",
        "{app:#}"
    );
    assert_eq!(app["lastState"]["terminated"]["exitCode"], 137);
    assert_eq!(app["state"]["terminated"]["exitCode"], 0);
    assert_eq!(all(&t.log(), "app", "Again").len(), 1);
}
