//! The container monitor (issue 9 item 1): the container's output reaches its CRI log in full
//! and in order whatever skiff does, a container outlives the closing of its stdout, and a
//! monitor that is killed leaves a container reported as unknown and killed, never running
//! unseen. Needs the `skiff-monitor` binary beside the test executables (`cargo test
//! --workspace` builds it; or `cargo build -p skiff`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::*;
use skiff_node::logs::{read_log, ReadOptions};
use skiff_node::runtime::HostRuntime;
use skiff_node::state::{InstanceRecord, Observed};

fn rt() -> HostRuntime {
    HostRuntime::new().unwrap()
}

// 100 000 lines written as fast as the container can: every one in the CRI log, in order
// (across rotations too: read back through the reader `skiff logs` uses).
#[tokio::test]
async fn hundred_thousand_lines_all_logged_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let c = sh("flood", "seq 1 100000");
    let l = launch(&c, dir.path());
    let log_path = l.log_path();
    let ct = rt().start(l, Default::default(), None).await.unwrap();
    let exit = ct.wait().await;
    assert_eq!(exit.exit_code, 0);
    let mut out = Vec::new();
    read_log(&log_path, &ReadOptions::default(), &mut out).unwrap();
    let text = String::from_utf8(out).unwrap();
    let mut n = 0u32;
    for line in text.lines() {
        n += 1;
        assert_eq!(line, n.to_string(), "line {n} out of order or missing");
    }
    assert_eq!(n, 100_000);
}

// A container that closes its stdout (and stderr) keeps running: no SIGPIPE, no kill; what
// it wrote before is logged and its exit code is its own.
#[tokio::test]
async fn closing_stdout_does_not_stop_the_container() {
    let dir = tempfile::tempdir().unwrap();
    let c = sh(
        "closer",
        "echo before; exec 1>&- 2>&-; sleep 0.3; touch \"$MARK\"; exit 7",
    );
    let mut c = c;
    let mark = dir.path().join("still-running");
    env(&mut c, "MARK", mark.to_str().unwrap());
    let l = launch(&c, dir.path());
    let log_path = l.log_path();
    let ct = rt().start(l, Default::default(), None).await.unwrap();
    let exit = ct.wait().await;
    assert_eq!(exit.exit_code, 7);
    assert!(
        mark.exists(),
        "the container ran on after closing its output"
    );
    let log = std::fs::read_to_string(&log_path).unwrap();
    assert!(log.ends_with(" stdout F before\n"), "{log}");
}

// Faults: a monitor killed with SIGKILL. The container it held is reported as exited with an
// unknown status (R3/S7 path) and everything of it is killed; nothing runs on unseen.
#[tokio::test]
async fn killed_monitor_means_unknown_status_and_a_killed_container() {
    let dir = tempfile::tempdir().unwrap();
    let c = sh("held", "sleep 30 & wait");
    let l = launch(&c, dir.path());
    let ct = rt().start(l, Default::default(), None).await.unwrap();
    let (pid, monitor) = (ct.pid(), ct.monitor_pid());
    assert!(alive(pid) && alive(monitor));
    let children = std::fs::read_to_string(format!("/proc/{monitor}/task/{monitor}/children"))
        .unwrap_or_default();
    assert!(
        children.split_whitespace().any(|p| p == pid.to_string()),
        "the monitor is the container's parent"
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(monitor),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    let exit = ct.wait().await;
    assert!(exit.status_unknown);
    assert_eq!(exit.exit_code, 137);
    ct.cleaned_up().await;
    eventually("the container to be gone", || !alive(pid)).await;
    assert!(ct.pids().is_empty());
}

// State on disk: each started instance has its record (identity, monitor and main process with
// start times, log and exit paths), and after the end the exit record the monitor wrote.
#[tokio::test]
async fn instance_record_and_exit_record_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    let c = sh("rec", "sleep 0.2; exit 4");
    let mut l = launch(&c, dir.path());
    l.instance = 42;
    let cdir = l.container_dir();
    let ct = rt().start(l, Default::default(), None).await.unwrap();
    let rec = InstanceRecord::read(&InstanceRecord::path(&cdir, 0)).unwrap();
    assert_eq!(
        (rec.container.as_str(), rec.instance, rec.attempt),
        ("rec", 42, 0)
    );
    assert_eq!(rec.main.pid, ct.pid());
    assert_eq!(rec.monitor.pid, ct.monitor_pid());
    assert!(rec.monitor.alive());
    let (found, errors) = skiff_node::state::scan_pod(cdir.parent().unwrap());
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].observed, Observed::Running);
    assert_eq!(ct.wait().await.exit_code, 4);
    let (found, _) = skiff_node::state::scan_pod(cdir.parent().unwrap());
    assert!(matches!(&found[0].observed, Observed::Exited(r) if r.status.code() == 4));
}

// Many containers started at the same moment from several threads: each forked launcher holds
// the others' pipes until it execs, so none may wait on a pipe before its exec (it once did:
// two launchers each waited for a pipe end the other held).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_starts_never_wait_on_each_other() {
    let dir = tempfile::tempdir().unwrap();
    let runtime = std::sync::Arc::new(rt());
    let started = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        let mut tasks = Vec::new();
        for i in 0..24 {
            let runtime = runtime.clone();
            let l = launch(&sh(&format!("c{i}"), "echo hi; exit 5"), dir.path());
            tasks.push(tokio::spawn(async move {
                let ct = runtime.start(l, Default::default(), None).await.unwrap();
                ct.wait().await.exit_code
            }));
        }
        let mut codes = Vec::new();
        for t in tasks {
            codes.push(t.await.unwrap());
        }
        codes
    })
    .await
    .expect("concurrent starts deadlocked");
    assert!(started.iter().all(|&c| c == 5), "{started:?}");
}
